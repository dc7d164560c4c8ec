/**
 * `provenant demo`: the story of a bad deploy, told on real data (vega-datasets flights-20k.json).
 *
 * 1. The example flights pipeline runs over the first half of the flights (normalize version 1),
 *    then a second run goes on over the rest with normalize version 2 — which has a subtle unit
 *    slip (delays of an hour or more taken for seconds). Both runs are recorded with checkpoints.
 * 2. Both runs are replayed from their checkpoints with the recorded code: every output hash is
 *    reproduced.
 * 3. `bisect`, with a predicate that says "an output keeps the source's delay", finds the first
 *    bad checkpoint in O(log n) checkpoint replays, the first bad execution, its step and version.
 * 4. A what-if replays the second run with the fixed normalize (version 3) and counts the records
 *    whose output would change, per step, with each record's RFC 6902 patch.
 *
 * Every figure printed is computed from what the store recorded.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProvenantError } from '../errors.js';
import { bisect } from '../bisect/bisect.js';
import { NdjsonFileSink } from '../checkpoint/sink.js';
import { runPipeline, type PipelineProgress, type PipelineResult } from '../pipeline/execute.js';
import { loadPipelineFile } from '../pipeline/load.js';
import { loadPredicate } from '../replay/predicate.js';
import { replay, type ReplayResult } from '../replay/range.js';
import { vegaDatasetPath } from '../sources/datasets.js';
import { FileSource, readRecords } from '../sources/files.js';
import type { FailurePolicy } from '../store/records.js';
import { whatIf } from '../whatif/whatif.js';
import { print, withStore } from './common.js';
import { count, paint, shortHash, table } from './format.js';
import { Progress } from './progress.js';
import { bisectSummaryText, whatIfSummaryText } from './replay-tools.js';

/** The demo's options (those of `provenant run` that apply). */
export interface DemoOptions {
  store: string;
  input?: string;
  limit?: number;
  onError?: FailurePolicy;
  output?: string;
  principal?: string;
  checkpointEvery?: number;
  checkpointInterval?: number;
  checkpoints?: boolean;
  keepInput?: boolean;
  quiet?: boolean;
  json?: boolean;
}

const example = (rel: string): string => fileURLToPath(new URL(`../../examples/flights/${rel}`, import.meta.url));

/** Run the demo (see the module comment). */
export async function runDemo(opts: DemoOptions): Promise<void> {
  if (opts.checkpoints === false) {
    throw new ProvenantError('INPUT_INVALID', 'the demo needs checkpoints (bisect and what-if replay checkpoint ranges); leave out --no-checkpoints');
  }
  const input = resolve(opts.input ?? vegaDatasetPath('flights-20k.json'));
  const quiet = opts.quiet === true || opts.json === true;
  let total = 0;
  for await (const _ of readRecords(input, opts.limit === undefined ? {} : { limit: opts.limit })) total++;
  const half = Math.floor(total / 2);
  const v1 = await loadPipelineFile(example('pipeline.ts'));
  const v2 = await loadPipelineFile(example('pipeline-v2.ts'));
  const checkpoint = { everyRecords: opts.checkpointEvery ?? 2_000, intervalMs: opts.checkpointInterval ?? 60_000 };

  const out = await withStore(opts, true, async (store) => {
    const runs: PipelineResult[] = [];
    for (const [part, loaded, from, to] of [
      [1, v1, 0, half],
      [2, v2, half, total],
    ] as const) {
      const progress = new Progress(`demo run ${part} (normalize v${part})`, quiet);
      const source = new FileSource(input);
      let sink: NdjsonFileSink | undefined;
      if (opts.output !== undefined) {
        sink = new NdjsonFileSink(opts.output);
        if (part === 1) await sink.restore(null); // the second run appends
      }
      try {
        runs.push(
          await runPipeline(store, loaded.definition, source, {
            baseDir: loaded.baseDir,
            ...(opts.onError === undefined ? {} : { failurePolicy: opts.onError }),
            context: { source: 'cli', ...(opts.principal === undefined ? {} : { principal: opts.principal }) },
            runOptions: { pipeline: loaded.file, demo: `part ${part} of 2` },
            ...(sink === undefined ? {} : { sink }),
            from,
            to,
            checkpoint,
            ...(opts.keepInput === undefined ? {} : { keepInput: opts.keepInput }),
            onProgress: (p: PipelineProgress) => progress.update(p.records, `${count(p.executions)} executions`, to - from),
            progressEvery: 500,
          }),
        );
      } finally {
        await source.close();
      }
      progress.done();
    }
    const [run1, run2] = runs as [PipelineResult, PipelineResult];
    const streamId = `file:${input}`;
    const replays: ReplayResult[] = [];
    for (const r of runs) {
      if (r.checkpoints === 0 || r.status !== 'completed') continue;
      const progress = new Progress('demo replay', quiet);
      replays.push(
        await replay(store, {
          streamId,
          runId: r.runId,
          context: { source: 'cli' },
          onProgress: (p) => progress.update(p.records, `${count(p.diverged)} diverged`, p.totalRecords),
        }),
      );
      progress.done();
    }
    const bisectProgress = new Progress('demo bisect', quiet, 'checkpoint replays');
    const predicate = example('predicates/delay-kept.ts');
    const found = await bisect(store, {
      streamId,
      good: await loadPredicate(predicate),
      context: { source: 'cli' },
      onProbe: (_p, done, max) => bisectProgress.update(done, '', max),
    });
    bisectProgress.done();
    const whatIfProgress = new Progress('demo what-if', quiet);
    const fix = example('steps/normalize-v3.ts');
    const what = await whatIf(store, {
      streamId,
      runId: run2.runId,
      substitutions: { normalize: { code: { module: fix } } },
      label: 'normalize v3 (the fix)',
      context: { source: 'cli' },
      onProgress: (p) => whatIfProgress.update(p.records, '', p.totalRecords),
    });
    whatIfProgress.done();
    const stats = await store.stats();
    return { run1, run2, replays, bisect: found, whatIf: what, streamId, stats, location: store.location, predicate, fix };
  });

  const { run1, run2, replays, stats, location, streamId } = out;
  const rel = (p: string): string => {
    const r = p.startsWith(process.cwd()) ? p.slice(process.cwd().length + 1) : p;
    return /\s/.test(r) ? JSON.stringify(r) : r;
  };
  const stream = /\s/.test(streamId) ? JSON.stringify(streamId) : streamId;
  const replayed = replays.reduce((a, r) => ({ checkpoints: a.checkpoints + r.checkpoints, executions: a.executions + r.executions, matched: a.matched + r.matched, diverged: a.diverged + r.diverged, records: a.records + r.records, ms: a.ms + r.durationMs }), { checkpoints: 0, executions: 0, matched: 0, diverged: 0, records: 0, ms: 0 });
  const b = out.bisect;
  const w = out.whatIf;
  const executions = run1.executions + run2.executions;
  const rate = Math.round((executions / Math.max(run1.durationMs + run2.durationMs, 1)) * 1000);
  print(opts.json === true, { runs: [run1, run2], replays, bisect: b, whatIf: w, store: location, storeStats: stats }, () =>
    [
      `${paint('bold', '1. A bad deploy, recorded')}: the flights of ${rel(input)} through ${rel(v1.file)}, then, from offset ${count(half)}, with normalize v2 (${rel(v2.file)})`,
      `  into ${location}: ${count(run1.records + run2.records)} records → ${count(run1.outputs + run2.outputs)} outputs; ${count(executions)} executions (${count(rate)}/s), ${count(run1.failed + run2.failed)} failed`,
      '',
      table(
        ['RUN', 'OFFSETS', 'NORMALIZE', 'CLASSIFY', 'ROUTESTATS', 'EXECUTIONS', 'FAILED', 'CHECKPOINTS'],
        [run1, run2].map((r, i) => [
          r.runId,
          i === 0 ? `${count(0)}..${count(half)}` : `${count(half)}..${count(total)}`,
          `${shortHash(r.versions.normalize ?? null)} (v${i + 1})`,
          shortHash(r.versions.classify ?? null),
          shortHash(r.versions.routeStats ?? null),
          count(r.executions),
          count(r.failed),
          count(r.checkpoints),
        ]),
      ),
      '',
      `${paint('bold', '2.')} ${replayed.diverged === 0 ? paint('green', 'Replayed') : paint('red', 'Replayed')} their ${count(replayed.checkpoints)} checkpoints with the recorded code: ${count(replayed.executions)} executions, ${count(replayed.matched)} matched, ${count(replayed.diverged)} diverged (${count(Math.round((replayed.records / Math.max(replayed.ms, 1)) * 1000))} records/s)`,
      '',
      `${paint('bold', '3. Bisect')} with ${rel(out.predicate)} ("an output keeps the source's delay"):`,
      bisectSummaryText(b),
      '',
      `${paint('bold', '4. What-if')} with the fix, normalize v3:`,
      whatIfSummaryText(w, 1),
      '',
      `Try: provenant bisect --stream ${stream} --good ${rel(out.predicate)}`,
      `     provenant whatif --stream ${stream} --replace normalize=${rel(out.fix)} --label fix`,
      `     provenant debug --stream ${stream}${b.firstBadCheckpoint === null ? '' : ` --from ${b.firstBadCheckpoint.checkpointId}`}     (then: break when=!${rel(out.predicate)}, continue, inspect input, diff, help)`,
      `     provenant checkpoints --stream ${stream}   ·   provenant show <executionId>   ·   provenant runs`,
    ].join('\n'),
  );
}
