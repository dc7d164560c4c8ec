#!/usr/bin/env -S node --max-semi-space-size=64
/**
 * The `provenant` command line. (The larger young generation in the line above makes capture
 * about 8% faster: per-execution garbage dies before it is promoted. It applies when the CLI runs
 * as `provenant`/`npx provenant`; `node dist/cli/main.js` works the same, without it.)
 * Every command takes `--store <dir>` (default `./.provenant`, or
 * the PROVENANT_STORE environment variable) and `--help`; listing commands take `--json`.
 * Errors are mapped to messages and exit codes in one place (`./errors.ts`).
 */
import { Command, Option } from 'commander';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProvenantError } from '../errors.js';
import { decodeValue, type ContentHash, type ValueEncoding } from '../hash/canonical.js';
import { openSource, resumePipeline, runPipeline, type PipelineProgress, type PipelineResult } from '../pipeline/execute.js';
import { loadPipelineFile, type LoadedPipeline } from '../pipeline/load.js';
import { allCheckpoints } from '../checkpoint/chain.js';
import type { CheckpointPolicy } from '../checkpoint/checkpointer.js';
import { NdjsonFileSink } from '../checkpoint/sink.js';
import type { RecordSource } from '../sources/source.js';
import { reexecute } from '../replay/execution.js';
import { replay, type ReplayResult } from '../replay/range.js';
import { appendRecords, LogSource } from '../stream/log.js';
import { FileSource, formatOf, readRecords, valuesOf } from '../sources/files.js';
import type { CheckpointRecord, ExecutionRecord, FailurePolicy } from '../store/records.js';
import type { Store } from '../store/store.js';
import { PROVENANT_VERSION } from '../version.js';
import { exitWith } from './errors.js';
import { print, printList, storeOption, withStore, type StoreOpts } from './common.js';
import { count, durationUs, foldedJson, isoUs, paint, shortHash, table } from './format.js';
import { Progress } from './progress.js';
import { runDemo, type DemoOptions } from './demo.js';
import { addReplayToolCommands } from './replay-tools.js';
import { addScaleCommands } from './scale.js';
import { addExportCommand, addTamperCommands } from './tamper.js';
import { addObjectCommands } from './objects.js';
import { addServerCommands } from './server-commands.js';



function nonNegativeInt(name: string) {
  return (v: string): number => {
    const n = Number(v.replace(/_/g, ''));
    if (!Number.isInteger(n) || n < 0) throw new ProvenantError('INPUT_INVALID', `${name} must be a whole number (0 or more), not "${v}"`);
    return n;
  };
}

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new ProvenantError('INPUT_INVALID', `${name} must be a positive whole number, not "${v}"`);
    return n;
  };
}

/** A duration: `500ms`, `5s`, `2m`, `1h`, or a number of seconds. */
function parseDuration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v.trim());
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
  const ms = m === null ? Number.NaN : Number(m[1]) * unit[(m[2] ?? 's') as keyof typeof unit];
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new ProvenantError('INPUT_INVALID', `"${v}" is not a duration; write e.g. 500ms, 5s, 2m`, { context: { value: v } });
  }
  return Math.round(ms);
}

function parsePolicy(v: string): FailurePolicy {
  if (v !== 'stop' && v !== 'dead-letter') throw new ProvenantError('INPUT_INVALID', `--on-error must be "stop" or "dead-letter", not "${v}"`);
  return v;
}

interface RunOpts extends StoreOpts {
  input?: string;
  stream?: string;
  jetstream?: string;
  nats?: string;
  subject?: string;
  follow?: boolean;
  limit?: number;
  fromOffset?: number;
  onError?: FailurePolicy;
  output?: string;
  principal?: string;
  checkpointEvery?: number;
  checkpointInterval?: number;
  checkpoints?: boolean;
  keepInput?: boolean;
  resume?: boolean | string;
  json?: boolean;
  quiet?: boolean;
}

/** The source a run reads, from exactly one of --input, --stream, --jetstream. */
async function sourceOf(opts: RunOpts, store: Store): Promise<RecordSource> {
  if (opts.input !== undefined) return new FileSource(opts.input);
  if (opts.stream !== undefined) {
    if ((await store.getStream(opts.stream)) === undefined) {
      throw new ProvenantError('NOT_FOUND', `stream ${opts.stream} has no records in ${store.location}`, {
        hint: 'Append records with `provenant stream append <stream> <file>`; list streams with `provenant stream list`.',
        context: { streamId: opts.stream },
      });
    }
    return new LogSource(store, opts.stream);
  }
  return openSource(store, { kind: 'jetstream', servers: opts.nats ?? DEFAULT_NATS, stream: opts.jetstream as string, ...(opts.subject === undefined ? {} : { subject: opts.subject }) });
}

const DEFAULT_NATS = process.env.PROVENANT_NATS ?? 'nats://127.0.0.1:4222';

function checkOneSource(opts: RunOpts): void {
  const given = [opts.input, opts.stream, opts.jetstream].filter((x) => x !== undefined).length;
  if (given !== 1) {
    throw new ProvenantError('INPUT_INVALID', 'give the records to run over with exactly one of --input <file>, --stream <id> or --jetstream <stream>', {
      hint: 'A file (.json, .ndjson, .csv, .parquet), a stream appended with `provenant stream append`, or a NATS JetStream stream.',
    });
  }
  // Check the input before anything is created or recorded: a typo must not leave a failed run behind.
  const input = opts.input;
  if (input !== undefined) {
    formatOf(input);
    if (!existsSync(input)) {
      throw new ProvenantError('INPUT_INVALID', `input file ${resolve(input)} does not exist`, { context: { file: resolve(input) } });
    }
  }
}

function checkpointPolicy(opts: RunOpts): CheckpointPolicy | false {
  if (opts.checkpoints === false) return false;
  return {
    ...(opts.checkpointEvery === undefined ? {} : { everyRecords: opts.checkpointEvery }),
    ...(opts.checkpointInterval === undefined ? {} : { intervalMs: opts.checkpointInterval }),
  };
}

/** With --follow: stop cleanly on Ctrl-C / SIGTERM (the open checkpoint commits). */
function stopSignal(follow: boolean | undefined): AbortSignal | undefined {
  if (follow !== true) return undefined;
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return controller.signal;
}

async function runCommand(pipelineFile: string | undefined, opts: RunOpts): Promise<void> {
  const resumeId = typeof opts.resume === 'string' ? opts.resume : undefined;
  if (resumeId === undefined) checkOneSource(opts);
  const loaded = pipelineFile === undefined ? undefined : await loadPipelineFile(pipelineFile);
  const name = loaded?.definition.name ?? `run ${resumeId ?? ''}`;
  const progress = new Progress(`run ${name}`, opts.quiet === true || opts.json === true);
  const signal = stopSignal(opts.follow);
  const onProgress = (p: PipelineProgress): void =>
    progress.update(p.records, `${count(p.executions)} executions, ${count(p.failed)} failed, ${count(p.checkpoints)} checkpoints`);
  const result = await withStore(opts, opts.input !== undefined || opts.jetstream !== undefined, async (store) => {
    let r: PipelineResult | undefined;
    if (opts.resume !== undefined && opts.resume !== false) {
      let runId = resumeId;
      let source: RecordSource | undefined;
      if (runId === undefined) {
        source = await sourceOf(opts, store);
        runId = await unfinishedRun(store, (loaded as LoadedPipeline).definition.name, source.streamId);
        if (runId === undefined) process.stderr.write(`Nothing to resume for ${name} over ${source.streamId}; starting a new run.\n`);
      }
      if (runId !== undefined) {
        r = await resumePipeline(store, runId, {
          ...(source === undefined ? {} : { source }),
          ...(opts.output === undefined ? {} : { sink: new NdjsonFileSink(opts.output) }),
          onProgress,
          progressEvery: 500,
          ...(opts.follow === undefined ? {} : { follow: opts.follow }),
          ...(signal === undefined ? {} : { signal }),
        });
      } else {
        await source?.close();
      }
    }
    if (r === undefined) {
      if (loaded === undefined) throw new ProvenantError('INPUT_INVALID', 'give the pipeline file to run');
      const source = await sourceOf(opts, store);
      let sink: NdjsonFileSink | undefined;
      if (opts.output !== undefined) {
        sink = new NdjsonFileSink(opts.output);
        await sink.restore(null); // a new run's output file starts empty
      }
      try {
        r = await runPipeline(store, loaded.definition, source, {
          baseDir: loaded.baseDir,
          ...(opts.onError === undefined ? {} : { failurePolicy: opts.onError }),
          context: { source: 'cli', ...(opts.principal === undefined ? {} : { principal: opts.principal }) },
          runOptions: { pipeline: loaded.file, ...(opts.limit === undefined ? {} : { limit: opts.limit }) },
          ...(sink === undefined ? {} : { sink }),
          ...(opts.limit === undefined ? {} : { limit: opts.limit }),
          ...(opts.fromOffset === undefined ? {} : { from: opts.fromOffset }),
          checkpoint: checkpointPolicy(opts),
          ...(opts.keepInput === undefined ? {} : { keepInput: opts.keepInput }),
          ...(opts.follow === undefined ? {} : { follow: opts.follow }),
          ...(signal === undefined ? {} : { signal }),
          onProgress,
          progressEvery: 500,
        });
      } finally {
        await source.close();
      }
    }
    progress.done();
    const stats = await store.stats();
    return { ...r, store: store.location, storeStats: stats };
  });
  print(opts.json === true, result, () => runSummaryText(result));
}

/** The latest capture run of a pipeline over a stream that has not ended, if any. */
async function unfinishedRun(store: Store, pipelineName: string, streamId: string): Promise<string | undefined> {
  const checkpoints = await allCheckpoints(store, { streamId });
  for (let i = checkpoints.length - 1; i >= 0; i--) {
    const c = checkpoints[i] as CheckpointRecord;
    const run = await store.getRun(c.runId);
    if (run !== undefined && run.kind === 'capture' && run.name === pipelineName) return run.end === null ? run.id : undefined;
  }
  return undefined;
}

function runSummaryText(r: PipelineResult & { store: string; storeStats: { executions: number; blobs: number; blobBytes: number } }): string {
  const rate = r.durationMs > 0 ? Math.round((r.executions / r.durationMs) * 1000) : r.executions;
  const lines = [
    `${paint('bold', r.resumedFrom === undefined ? 'Recorded' : 'Resumed')} run ${r.runId} (${r.status}) into ${r.store}`,
    ...(r.resumedFrom === undefined ? [] : [`  went on from checkpoint ${r.resumedFrom ?? '(the start of the run)'}`]),
    `  ${count(r.records)} records → ${count(r.outputs)} outputs; ${count(r.executions)} executions (${count(rate)}/s), ${count(r.failed)} failed, ${count(r.deadLettered)} dead-lettered`,
    ...(r.checkpoints === 0 ? [] : [`  ${count(r.checkpoints)} checkpoints, the last ${r.lastCheckpointId ?? '-'}`]),
    '',
    table(
      ['STEP', 'VERSION', 'EXECUTIONS', 'FAILED'],
      Object.entries(r.steps).map(([id, s]) => [id, shortHash(s.versionHash), count(s.executions), count(s.failed)]),
    ),
    '',
    `  Store now holds ${count(r.storeStats.executions)} executions and ${count(r.storeStats.blobs)} values (${(r.storeStats.blobBytes / 1e6).toFixed(1)} MB).`,
    `  Next: provenant executions --step ${Object.keys(r.steps)[0] ?? '<id>'}   ·   provenant checkpoints --run ${r.runId}   ·   provenant show <executionId>`,
  ];
  return lines.join('\n');
}

function replaySummaryText(r: ReplayResult): string {
  const rate = r.durationMs > 0 ? Math.round((r.records / r.durationMs) * 1000) : r.records;
  const verdict = r.diverged === 0 ? paint('green', 'reproduced') : paint('red', 'diverged');
  const lines = [
    `${verdict}  replayed ${count(r.checkpoints)} checkpoints of run ${r.runId} over ${r.streamId}`,
    `  from ${r.from}`,
    `  to   ${r.to}`,
    `  ${count(r.records)} records (${count(rate)}/s), ${count(r.executions)} executions: ${count(r.matched)} matched, ${count(r.diverged)} diverged`,
    `  records read from ${r.inputFrom.slice === 0 ? 'the source' : r.inputFrom.source === 0 ? 'kept input slices' : `the source (${count(r.inputFrom.source)}) and kept input slices (${count(r.inputFrom.slice)})`}; replay run ${r.replayRunId}`,
  ];
  const d = r.firstDivergence;
  if (d !== null) {
    lines.push(
      '',
      `${paint('bold', 'First divergence')}: ${paint('red', d.cause)}`,
      `  checkpoint ${d.checkpointId}, offset ${d.offset ?? '-'}`,
      `  step       ${d.stepId}${d.versionHash === null ? '' : ` @ ${d.versionHash}`}`,
      ...(d.executionId === null ? [] : [`  recorded   execution ${d.executionId} (provenant show ${d.executionId})`]),
      ...(d.replayExecutionId === null ? [] : [`  replayed   execution ${d.replayExecutionId} (provenant show ${d.replayExecutionId})`]),
      `  input      ${d.inputHash ?? '-'}`,
      `  expected   ${d.expectedHash ?? '(failure)'}`,
      `  actual     ${d.actualHash ?? '(none)'}`,
      ...(d.detail === null ? [] : [`  detail     ${d.detail}`]),
    );
  }
  return lines.join('\n');
}

function executionRow(e: ExecutionRecord): string[] {
  return [e.id, e.functionId, shortHash(e.functionVersionHash), e.status === 'ok' ? 'ok' : paint('red', 'failed'), isoUs(e.startedUs), durationUs(e.endedUs - e.startedUs), e.offset === null ? '-' : String(e.offset)];
}

async function valueOf(store: Store, hash: ContentHash | null, encoding: ValueEncoding): Promise<unknown> {
  if (hash === null) return null;
  return decodeValue(await store.getBlob(hash), encoding);
}

/** Build the command tree. Exported for tests. */
export function buildProgram(): Command {
  const program = new Command('provenant')
    .description('Record how every piece of data in a pipeline was made, and replay it.')
    .version(PROVENANT_VERSION)
    // Before the subcommands are added, so that they inherit it: usage errors reach exitWith (exit 2).
    .exitOverride()
    .showHelpAfterError()
    .configureOutput({ outputError: (text, write) => write(paint('red', text, process.stderr)) });

  program
    .command('init')
    .description('create an empty store')
    .addOption(storeOption())
    .option('--json', 'machine-readable output')
    .action(async (opts: StoreOpts & { json?: boolean }) => {
      const existed = existsSync(opts.store);
      await withStore(opts, true, async (store) => {
        print(opts.json === true, { store: store.location, created: !existed }, () =>
          existed ? `Store ready at ${store.location}` : `Created an empty store at ${store.location}`,
        );
      });
    });

  const addRunOptions = (cmd: Command): Command =>
    cmd
      .addOption(storeOption())
      .option('--limit <n>', 'process at most n records', positiveInt('--limit'))
      .option('--on-error <policy>', 'on a step failure: stop | dead-letter (default: the pipeline\'s, else stop)', parsePolicy)
      .option('--output <file>', 'write each record\'s final output as NDJSON')
      .option('--principal <name>', 'who is running this (recorded in every execution\'s context)')
      .option('--checkpoint-every <n>', 'close a checkpoint every n records (default 10000)', positiveInt('--checkpoint-every'))
      .option('--checkpoint-interval <duration>', 'close a checkpoint at least this often, e.g. 5s, 500ms, 2m (default 10s)', parseDuration)
      .option('--no-checkpoints', 'write no checkpoints (the run cannot be resumed or replayed by range)')
      .option('--keep-input', 'keep each checkpoint\'s input slice in the store (default for JetStream sources)')
      .option('--quiet', 'no progress output')
      .option('--json', 'machine-readable summary');

  addRunOptions(
    program
      .command('run')
      .description('run a pipeline over a file, an embedded stream or a JetStream stream, recording every execution with checkpoints')
      .argument('[pipeline]', 'pipeline file (.ts or .js) whose default export is definePipeline({...})')
      .option('--input <file>', 'input records: a .json, .ndjson/.jsonl, .csv or .parquet file')
      .option('--stream <id>', 'input records: an embedded stream (see `provenant stream append`)')
      .option('--jetstream <stream>', 'input records: a NATS JetStream stream (offset = stream sequence)')
      .option('--nats <url>', 'NATS server for --jetstream (default nats://127.0.0.1:4222, or PROVENANT_NATS)')
      .option('--subject <subject>', 'with --jetstream: only messages on this subject')
      .option('--follow', 'keep waiting for new records at the end of a JetStream stream (Ctrl-C stops cleanly)')
      .option('--from-offset <n>', 'start at this offset of the input (default: its first), e.g. to go on where an earlier run stopped', nonNegativeInt('--from-offset'))
      .option('--resume [runId]', 'go on with a crashed run from its last COMPLETE checkpoint (the given run, or the latest unfinished one of this pipeline over this input)'),
  ).action(async (pipeline: string | undefined, opts: RunOpts) => {
    if (pipeline === undefined && typeof opts.resume !== 'string') {
      throw new ProvenantError('INPUT_INVALID', 'give the pipeline file to run (or --resume <runId>)', { hint: 'provenant run pipeline.ts --input records.ndjson' });
    }
    await runCommand(pipeline, opts);
  });

  addRunOptions(
    program
      .command('demo')
      .description('the story of a bad deploy on real data (vega-datasets flights-20k.json): record it, replay it, bisect to the bad version, what-if the fix')
      .option('--input <file>', 'another input file (default: vega-datasets flights-20k.json)'),
  ).action(async (opts: DemoOptions) => {
    await runDemo(opts);
  });

  const stream = program.command('stream').description('embedded stream logs: append-only, offset-addressed records');
  stream
    .command('append')
    .description('append the records of a file (.json, .ndjson, .csv, .parquet) to a stream, in order; they get the next offsets')
    .argument('<stream>', 'stream id, e.g. flights')
    .argument('<file>', 'records to append')
    .addOption(storeOption())
    .option('--limit <n>', 'append at most n records', positiveInt('--limit'))
    .option('--quiet', 'no progress output')
    .option('--json', 'machine-readable output')
    .action(async (id: string, file: string, opts: StoreOpts & { limit?: number; quiet?: boolean; json?: boolean }) => {
      formatOf(file);
      if (!existsSync(file)) throw new ProvenantError('INPUT_INVALID', `input file ${resolve(file)} does not exist`, { context: { file: resolve(file) } });
      const progress = new Progress(`append to ${id}`, opts.quiet === true || opts.json === true);
      await withStore(opts, true, async (store) => {
        const r = await appendRecords(store, id, valuesOf(readRecords(file, opts.limit === undefined ? {} : { limit: opts.limit })), {
          onProgress: (n) => progress.update(n),
        });
        progress.done();
        print(opts.json === true, { streamId: id, ...r }, () =>
          `Appended ${count(r.appended)} records to stream ${id}: offsets ${count(r.first)} to ${count(r.next - 1)}; it now holds ${count(r.next)}.`,
        );
      });
    });
  stream
    .command('publish')
    .description('publish the records of a file (.json, .ndjson, .csv, .parquet) to a NATS JetStream stream, in order, one message each')
    .argument('<stream>', 'JetStream stream name, e.g. FLIGHTS')
    .argument('<file>', 'records to publish')
    .option('--nats <url>', 'NATS server (default nats://127.0.0.1:4222, or PROVENANT_NATS)')
    .option('--subject <subject>', 'subject to publish on (default: the stream\'s only subject)')
    .option('--create', 'create the stream when it does not exist')
    .option('--limit <n>', 'publish at most n records', positiveInt('--limit'))
    .option('--quiet', 'no progress output')
    .option('--json', 'machine-readable output')
    .action(async (name: string, file: string, opts: { nats?: string; subject?: string; create?: boolean; limit?: number; quiet?: boolean; json?: boolean }) => {
      formatOf(file);
      if (!existsSync(file)) throw new ProvenantError('INPUT_INVALID', `input file ${resolve(file)} does not exist`, { context: { file: resolve(file) } });
      const { publishRecords } = await import('../sources/jetstream.js');
      const progress = new Progress(`publish to ${name}`, opts.quiet === true || opts.json === true);
      const servers = opts.nats ?? DEFAULT_NATS;
      const r = await publishRecords(
        { servers, stream: name, ...(opts.subject === undefined ? {} : { subject: opts.subject }), ...(opts.create === true ? { create: true } : {}) },
        valuesOf(readRecords(file, opts.limit === undefined ? {} : { limit: opts.limit })),
        { onProgress: (n) => progress.update(n) },
      );
      progress.done();
      print(opts.json === true, { stream: name, servers, ...r }, () =>
        `Published ${count(r.published)} records to JetStream stream ${name} on ${servers}: sequences ${count(r.first)} to ${count(r.next - 1)}.\n` +
        `  Run a pipeline over it: provenant run <pipeline> --jetstream ${name}${opts.nats === undefined ? '' : ` --nats ${opts.nats}`}`,
      );
    });
  stream
    .command('list')
    .description('list streams with their length and when they were last appended to')
    .addOption(storeOption())
    .option('--json', 'machine-readable output')
    .action(async (opts: StoreOpts & { json?: boolean }) => {
      await withStore(opts, false, async (store) => {
        const streams = await store.listStreams();
        printList(opts.json === true, streams, 'No stream logs yet. Append one with `provenant stream append <stream> <file>`.', () =>
          table(
            ['STREAM', 'RECORDS', 'FIRST APPENDED', 'LAST APPENDED'],
            streams.map((s) => [s.streamId, count(s.length), s.firstAppendedUs === null ? '-' : isoUs(s.firstAppendedUs), s.lastAppendedUs === null ? '-' : isoUs(s.lastAppendedUs)]),
          ),
        );
      });
    });

  program
    .command('checkpoints')
    .description('list the temporal checkpoints of a stream or a run: id, time, offsets, executions, status')
    .addOption(storeOption())
    .option('--stream <id>', 'only checkpoints over this stream (an embedded stream id, file:<path>, jetstream:<name>)')
    .option('--run <id>', 'only this run\'s checkpoints')
    .option('--limit <n>', 'at most n, the latest (default 50)', positiveInt('--limit'))
    .option('--json', 'machine-readable output')
    .action(async (opts: StoreOpts & { stream?: string; run?: string; limit?: number; json?: boolean }) => {
      await withStore(opts, false, async (store) => {
        const query = { ...(opts.stream === undefined ? {} : { streamId: opts.stream }), ...(opts.run === undefined ? {} : { runId: opts.run }) };
        const all = await allCheckpoints(store, query);
        if (all.length === 0 && opts.stream !== undefined && (await store.getStream(opts.stream)) === undefined && !opts.stream.includes(':')) {
          throw new ProvenantError('NOT_FOUND', `no stream ${opts.stream} in ${store.location}`, {
            hint: 'List streams with `provenant stream list`; file runs are checkpointed as file:<absolute path>.',
            context: { streamId: opts.stream },
          });
        }
        const shown = all.slice(-(opts.limit ?? 50));
        printList(opts.json === true, shown, 'No checkpoints match.', () => {
          const rows = shown.map((c) => [
            c.checkpointId,
            isoUs(c.end?.endedUs ?? c.startedUs),
            c.streamId,
            `${count(c.startOffset)}..${c.end === null ? '' : count(c.end.endOffset)}`,
            c.end === null ? '-' : count(c.end.records),
            c.end === null ? '-' : count(c.end.executions),
            c.end === null ? '-' : count(c.end.failed),
            c.status === 'COMPLETE' ? paint('green', c.status) : c.status === 'FAILED' ? paint('red', c.status) : paint('yellow', c.status),
            c.end?.stateHash ? shortHash(c.end.stateHash) : '-',
          ]);
          const failed = shown.filter((c) => c.status === 'FAILED' && c.end?.reason);
          return (
            table(['CHECKPOINT', 'TIME', 'STREAM', 'OFFSETS', 'RECORDS', 'EXECUTIONS', 'FAILED', 'STATUS', 'STATE'], rows) +
            (all.length > shown.length ? `\n${count(shown.length)} of ${count(all.length)} shown (the latest); --limit to see more` : '') +
            failed.map((c) => `\n${paint('red', 'FAILED')} ${c.checkpointId}: ${c.end?.reason ?? ''}`).join('')
          );
        });
      });
    });

  program
    .command('replay')
    .description('replay a range of checkpoints with the recorded code versions; with --verify, check every output hash and name the first divergence')
    .addOption(storeOption())
    .requiredOption('--stream <id>', 'the stream whose checkpoints to replay (see `provenant checkpoints`)')
    .option('--from <checkpoint>', 'first checkpoint (id or unique prefix; default: the run\'s first)')
    .option('--to <checkpoint>', 'last checkpoint, inclusive (default: the run\'s last ended one)')
    .option('--run <id>', 'the run whose checkpoints to replay (default: --from\'s run, else the latest over the stream)')
    .option('--verify', 'exit with code 4 when any output differs from the recorded one')
    .option('--input <file>', 'read the records from this file instead of the recorded source (e.g. a moved copy)')
    .option('--output <file>', 'write each record\'s replayed final output as NDJSON')
    .option('--principal <name>', 'who is replaying (recorded in the replay run\'s context)')
    .option('--quiet', 'no progress output')
    .option('--json', 'machine-readable result')
    .action(
      async (opts: StoreOpts & { stream: string; from?: string; to?: string; run?: string; verify?: boolean; input?: string; output?: string; principal?: string; quiet?: boolean; json?: boolean }) => {
        if (opts.input !== undefined && !existsSync(opts.input)) {
          throw new ProvenantError('INPUT_INVALID', `input file ${resolve(opts.input)} does not exist`, { context: { file: resolve(opts.input) } });
        }
        const progress = new Progress(`replay ${opts.stream}`, opts.quiet === true || opts.json === true);
        const sink = opts.output === undefined ? undefined : new NdjsonFileSink(opts.output);
        if (sink !== undefined) await sink.restore(null);
        const result = await withStore(opts, false, async (store) => {
          const source = opts.input === undefined ? undefined : new FileSource(opts.input);
          return replay(store, {
            streamId: opts.stream,
            ...(opts.from === undefined ? {} : { from: opts.from }),
            ...(opts.to === undefined ? {} : { to: opts.to }),
            ...(opts.run === undefined ? {} : { runId: opts.run }),
            ...(source === undefined ? {} : { source }),
            ...(sink === undefined ? {} : { sink: (o: unknown) => sink.write(o) }),
            context: { source: 'cli', ...(opts.principal === undefined ? {} : { principal: opts.principal }) },
            onProgress: (p) => progress.update(p.records, `${count(p.executions)} executions, ${count(p.diverged)} diverged, checkpoint ${p.checkpoints} of ${p.totalCheckpoints}`, p.totalRecords),
            progressEvery: 500,
          });
        });
        progress.done();
        await sink?.close();
        print(opts.json === true, result, () => replaySummaryText(result));
        if (opts.verify === true && result.diverged > 0) process.exitCode = 4;
      },
    );

  program
    .command('executions')
    .description('list recorded executions, oldest first')
    .addOption(storeOption())
    .option('--step <id>', 'only this step')
    .option('--run <id>', 'only this run')
    .addOption(new Option('--status <status>', 'only ok or failed executions').choices(['ok', 'failed']))
    .option('--limit <n>', 'at most n (default 50)', positiveInt('--limit'))
    .option('--after <executionId>', 'only executions after this one (paging)')
    .option('--json', 'machine-readable output')
    .action(async (opts: StoreOpts & { step?: string; run?: string; status?: 'ok' | 'failed'; limit?: number; after?: string; json?: boolean }) => {
      await withStore(opts, false, async (store) => {
        const filter = {
          ...(opts.step === undefined ? {} : { stepId: opts.step }),
          ...(opts.run === undefined ? {} : { runId: opts.run }),
          ...(opts.status === undefined ? {} : { status: opts.status }),
        };
        const list = await store.listExecutions({ ...filter, limit: opts.limit ?? 50, ...(opts.after === undefined ? {} : { afterId: opts.after }) });
        const total = await store.countExecutions(filter);
        print(opts.json === true, { total, executions: list }, () =>
          list.length === 0
            ? 'No executions match.'
            : `${table(['EXECUTION', 'STEP', 'VERSION', 'STATUS', 'STARTED', 'DURATION', 'OFFSET'], list.map(executionRow))}\n${count(list.length)} of ${count(total)} shown` +
              (list.length < total ? `; next page: --after ${list[list.length - 1]?.id ?? ''}` : ''),
        );
      });
    });

  program
    .command('show')
    .description('show one execution: its record, input, output, params, context and error')
    .argument('<executionId>')
    .addOption(storeOption())
    .option('--json', 'machine-readable output')
    .action(async (id: string, opts: StoreOpts & { json?: boolean }) => {
      await withStore(opts, false, async (store) => {
        const e = await store.getExecution(id);
        if (e === undefined) {
          throw new ProvenantError('NOT_FOUND', `no execution ${id} in ${store.location}`, {
            hint: 'List executions with `provenant executions`.',
            context: { executionId: id },
          });
        }
        const inputs = await Promise.all(e.inputHashes.map((h, i) => valueOf(store, h, e.inputEncodings[i] ?? 'json')));
        const output = await valueOf(store, e.outputHash, e.outputEncoding);
        const params = await valueOf(store, e.paramsHash, 'json');
        const error = await valueOf(store, e.errorHash, 'json');
        const version = await store.getStepVersion(e.functionId, e.functionVersionHash);
        const full = { execution: e, inputs, output, params, error, stepVersion: version ?? null };
        print(opts.json === true, full, () =>
          [
            `${paint('bold', 'Execution')} ${e.id}  ${e.status === 'ok' ? paint('green', 'ok') : paint('red', 'failed')}`,
            `  step       ${e.functionId} @ ${e.functionVersionHash}`,
            `  module     ${version ? `${version.manifest.module}#${version.manifest.export}` : '?'}`,
            `  run        ${e.runId}`,
            `  started    ${isoUs(e.startedUs)}  (${durationUs(e.endedUs - e.startedUs)})`,
            `  origin     ${e.streamId === null ? '-' : `${e.streamId} offset ${e.offset ?? '?'}`}`,
            `  record     ${e.recordHash}`,
            `  context    ${JSON.stringify(e.context)}`,
            '',
            `${paint('bold', 'Params')} ${shortHash(e.paramsHash)}`,
            foldedJson(params),
            ...inputs.flatMap((v, i) => [`${paint('bold', `Input ${i}`)} ${shortHash(e.inputHashes[i] ?? null)}`, foldedJson(v)]),
            e.status === 'ok' ? `${paint('bold', 'Output')} ${shortHash(e.outputHash)}` : paint('red', 'Error'),
            foldedJson(e.status === 'ok' ? output : error),
          ].join('\n'),
        );
      });
    });

  program
    .command('reexecute')
    .description('run one recorded execution again with its recorded code, input, params, clock reads and random draws; check the output hash')
    .argument('<executionId>')
    .addOption(storeOption())
    .option('--json', 'machine-readable output')
    .action(async (id: string, opts: StoreOpts & { json?: boolean }) => {
      await withStore(opts, false, async (store) => {
        const r = await reexecute(store, id);
        print(opts.json === true, r, () =>
          [
            `${r.matches ? paint('green', 'reproduced') : paint('red', 'diverged')}  execution ${r.executionId} (step ${r.stepId} @ ${shortHash(r.versionHash)})`,
            `  recorded output  ${r.recordedOutputHash ?? '(failed)'}`,
            `  replayed output  ${r.replayedOutputHash ?? `(failed: ${r.error ?? '?'})`}`,
            ...(r.cause === null ? [] : [`  cause            ${r.cause}`]),
          ].join('\n'),
        );
        if (!r.matches) process.exitCode = 4;
      });
    });

  program
    .command('steps')
    .description("list steps, each version's hash, when it first ran, and its executions")
    .addOption(storeOption())
    .option('--json', 'machine-readable output')
    .action(async (opts: StoreOpts & { json?: boolean }) => {
      await withStore(opts, false, async (store) => {
        const steps = await store.listSteps();
        printList(opts.json === true, steps, 'No steps recorded yet.', () =>
          table(
            ['STEP', 'VERSION', 'FIRST RAN', 'EXECUTIONS', 'FAILED', 'MODULE', 'FILES'],
            steps.flatMap((s) =>
              s.versions.map((v) => [
                s.stepId,
                shortHash(v.versionHash),
                isoUs(v.firstSeenUs),
                count(v.executions),
                count(v.failed),
                `${v.manifest.module}#${v.manifest.export}`,
                String(v.manifest.files.length + v.manifest.packages.length),
              ]),
            ),
          ),
        );
      });
    });

  program
    .command('runs')
    .description('list runs, newest first')
    .addOption(storeOption())
    .option('--limit <n>', 'at most n (default 20)', positiveInt('--limit'))
    .option('--json', 'machine-readable output')
    .action(async (opts: StoreOpts & { limit?: number; json?: boolean }) => {
      await withStore(opts, false, async (store) => {
        const runs = await store.listRuns(opts.limit ?? 20);
        printList(opts.json === true, runs, 'No runs recorded yet.', () =>
          table(
            ['RUN', 'KIND', 'NAME', 'STARTED', 'STATUS', 'EXECUTIONS'],
            runs.map((r) => [
              r.id,
              r.kind,
              r.name,
              isoUs(r.startedUs),
              r.end?.status ?? 'running or crashed',
              r.end === null ? '-' : count(Number((r.end.summary as { executions?: number }).executions ?? 0)),
            ]),
          ),
        );
      });
    });

  addReplayToolCommands(program);
  addScaleCommands(program);
  addTamperCommands(program);
  addExportCommand(program);
  addObjectCommands(program);
  addServerCommands(program);

  return program;
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === (await import('node:fs')).realpathSync(process.argv[1]);
if (isMain) {
  const program = buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    exitWith(err, process.argv.includes('--json'));
  }
}
