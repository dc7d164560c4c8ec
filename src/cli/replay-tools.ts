/**
 * The commands built on replay: `provenant debug` (the step debugger), `provenant whatif` (replay
 * with substituted code or params, with per-record diffs) and `provenant bisect` (the first
 * checkpoint and execution whose output went bad). Their summaries are also what `provenant demo`
 * prints.
 */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ProvenantError } from '../errors.js';
import type { ContentHash, JsonValue } from '../hash/canonical.js';
import { bisect, type BisectExecution, type BisectResult } from '../bisect/bisect.js';
import { runDebugger } from '../debug/debugger.js';
import { oneLine } from '../debug/render.js';
import { loadPredicate } from '../replay/predicate.js';
import type { StepSubstitution } from '../replay/range.js';
import { FileSource } from '../sources/files.js';
import type { Store } from '../store/store.js';
import { whatIf, type WhatIfResult } from '../whatif/whatif.js';
import { count, isoUs, paint, shortHash, table } from './format.js';
import { Progress } from './progress.js';
import { collect, print, storeOption, withStore } from './common.js';

const STEP_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** A `--replace` before it is resolved against the store. */
export interface ReplaceSpec {
  readonly stepId: string;
  /** A full hash, or a prefix to resolve among the step's versions. */
  readonly versionPrefix?: string;
  readonly module?: string;
  readonly export?: string;
}

/**
 * Read `--replace <stepId>=<module.ts[#export]>` or `--replace <stepId>=<versionHash or unique prefix>`.
 * @throws ProvenantError INPUT_INVALID naming the argument
 */
export function parseReplace(arg: string): ReplaceSpec {
  const bad = (why: string): never => {
    throw new ProvenantError('INPUT_INVALID', `--replace ${arg}: ${why}`, {
      hint: 'Write --replace <stepId>=<module.ts> (a module file, optionally #exportName) or --replace <stepId>=<versionHash> (see `provenant steps`).',
      context: { argument: `--replace ${arg}` },
    });
  };
  const eq = arg.indexOf('=');
  if (eq <= 0) return bad('expected <stepId>=<module or version hash>');
  const stepId = arg.slice(0, eq);
  const target = arg.slice(eq + 1);
  if (!STEP_ID_RE.test(stepId)) return bad(`"${stepId}" is not a step id`);
  if (target === '') return bad('nothing after "="');
  if (/^sha256:[0-9a-f]*$/.test(target)) {
    if (target.length < 'sha256:'.length + 8) return bad('give at least 8 hex digits of the version hash');
    return { stepId, versionPrefix: target };
  }
  const hashAt = target.lastIndexOf('#');
  const module = hashAt > 0 ? target.slice(0, hashAt) : target;
  const exportName = hashAt > 0 ? target.slice(hashAt + 1) : undefined;
  if (!existsSync(module)) return bad(`module ${resolve(module)} does not exist (and it is not a version hash sha256:…)`);
  return { stepId, module: resolve(module), ...(exportName === undefined ? {} : { export: exportName }) };
}

/**
 * Read `--param <stepId>.<name>=<json>`.
 * @throws ProvenantError INPUT_INVALID naming the argument
 */
export function parseParam(arg: string): { stepId: string; name: string; value: JsonValue } {
  const bad = (why: string): never => {
    throw new ProvenantError('INPUT_INVALID', `--param ${arg}: ${why}`, {
      hint: 'Write --param <stepId>.<name>=<JSON value>, e.g. --param classify.lateAfterMinutes=30 or --param enrich.mode=\'"fast"\'.',
      context: { argument: `--param ${arg}` },
    });
  };
  const eq = arg.indexOf('=');
  if (eq <= 0) return bad('expected <stepId>.<name>=<json>');
  const key = arg.slice(0, eq);
  const dot = key.indexOf('.');
  if (dot <= 0 || dot === key.length - 1) return bad('expected <stepId>.<name> before "="');
  const stepId = key.slice(0, dot);
  if (!STEP_ID_RE.test(stepId)) return bad(`"${stepId}" is not a step id`);
  let value: JsonValue;
  try {
    value = JSON.parse(arg.slice(eq + 1)) as JsonValue;
  } catch {
    return bad(`the value ${JSON.stringify(arg.slice(eq + 1))} is not JSON (a string needs quotes: '"text"')`);
  }
  return { stepId, name: key.slice(dot + 1), value };
}

/**
 * Turn `--replace` and `--param` arguments into substitutions, resolving version hash prefixes
 * among the recorded versions of each step.
 * @throws ProvenantError INPUT_INVALID (syntax; a step replaced twice), STEP_NOT_FOUND (no such version)
 */
export async function substitutionsOf(store: Store, replaces: readonly string[], params: readonly string[]): Promise<Record<string, StepSubstitution>> {
  const out: Record<string, { code?: StepSubstitution['code']; params?: Record<string, JsonValue> }> = {};
  let steps: Awaited<ReturnType<Store['listSteps']>> | undefined;
  for (const arg of replaces) {
    const r = parseReplace(arg);
    if (out[r.stepId]?.code !== undefined) {
      throw new ProvenantError('INPUT_INVALID', `--replace ${arg}: step ${r.stepId} is replaced twice`, { context: { argument: `--replace ${arg}` } });
    }
    let code: StepSubstitution['code'];
    if (r.versionPrefix !== undefined) {
      steps ??= await store.listSteps();
      const versions = steps.find((s) => s.stepId === r.stepId)?.versions.map((v) => v.versionHash) ?? [];
      const matches = versions.filter((v) => v.startsWith(r.versionPrefix as string));
      if (matches.length !== 1) {
        throw new ProvenantError(matches.length === 0 ? 'STEP_NOT_FOUND' : 'INPUT_INVALID', `--replace ${arg}: ${matches.length === 0 ? `step ${r.stepId} has no recorded version ${r.versionPrefix}` : `${r.versionPrefix} matches ${matches.length} versions of ${r.stepId}`}`, {
          hint: `List the versions with \`provenant steps\`${versions.length === 0 ? '' : `; ${r.stepId} has ${versions.map((v) => shortHash(v)).join(', ')}`}.`,
          context: { argument: `--replace ${arg}`, stepId: r.stepId },
        });
      }
      code = { versionHash: matches[0] as ContentHash };
    } else {
      code = { module: r.module as string, ...(r.export === undefined ? {} : { export: r.export }) };
    }
    out[r.stepId] = { ...(out[r.stepId] ?? {}), code };
  }
  for (const arg of params) {
    const p = parseParam(arg);
    const entry = (out[p.stepId] ??= {});
    entry.params = { ...(entry.params ?? {}), [p.name]: p.value };
  }
  if (Object.keys(out).length === 0) {
    throw new ProvenantError('INPUT_INVALID', 'give what to change: at least one --replace <stepId>=<module.ts|versionHash> or --param <stepId>.<name>=<json>', {
      hint: 'e.g. provenant whatif --stream flights --replace normalize=examples/flights/steps/normalize.ts',
    });
  }
  return out as Record<string, StepSubstitution>;
}

/** A path relative to the working folder when it is inside it. */
export function displayPath(p: string): string {
  const cwd = process.cwd();
  const r = p.startsWith(`${cwd}/`) ? p.slice(cwd.length + 1) : p;
  return /\s/.test(r) ? JSON.stringify(r) : r;
}

/** The human summary of a what-if. */
export function whatIfSummaryText(r: WhatIfResult, showDiffs = 3): string {
  const o = r.recordOutcomes;
  const pct = (n: number): string => (r.records === 0 ? '0' : ((n / r.records) * 100).toFixed(1));
  const lines = [
    `${paint('bold', 'What-if')} ${r.label === null ? '' : `"${r.label}" `}replayed ${count(r.checkpoints)} checkpoint${r.checkpoints === 1 ? '' : 's'} of run ${r.runId} over ${r.streamId}: ${count(r.records)} records, ${count(r.executions)} executions`,
    ...Object.entries(r.substitutions).map(([stepId, s]) => {
      const parts = [];
      if (s.versionHash !== null) parts.push(`code ${shortHash(s.versionHash)}${s.module === null ? '' : ` (${displayPath(s.module)})`}`);
      if (s.params !== null) parts.push(`params ${oneLine(s.params, 100)}`);
      return `  ${stepId} ← ${parts.join(', ')}`;
    }),
    `  Records: ${count(o.unchanged)} unchanged, ${paint(o.changed > 0 ? 'yellow' : 'green', `${count(o.changed)} changed`)} (${pct(o.changed)}%), ${count(o.newlyFailing)} newly failing, ${count(o.fixed)} fixed`,
    '',
    table(
      ['STEP', 'VERSION', 'RECORDED', 'EXECUTIONS', 'UNCHANGED', 'CHANGED', 'NEWLY FAILING', 'FIXED', 'ADDED', 'NOT REACHED'],
      r.steps.map((s) => [
        s.stepId + (s.substituted ? '*' : ''),
        shortHash(s.versionHash),
        shortHash(s.recordedVersionHash),
        count(s.executions),
        count(s.unchanged),
        count(s.changed),
        count(s.newlyFailing),
        count(s.fixed),
        count(s.added),
        count(s.notReached),
      ]),
    ),
  ];
  const shown = r.diffs.slice(0, showDiffs);
  if (shown.length > 0) {
    lines.push('', `${paint('bold', 'First changed records')} (RFC 6902 patch, recorded → what-if):`);
    for (const d of shown) {
      lines.push(`  offset ${count(d.offset)} (${d.outcome}, first changed at ${d.firstChangedStep ?? '-'})`);
      if (d.outcome === 'changed') {
        lines.push(
          ...d.patch.slice(0, 8).map((op) =>
            op.op === 'replace'
              ? `    replace ${op.path}  ${oneLine(d.was[op.path], 50)} → ${oneLine(op.value, 50)}`
              : op.op === 'remove'
                ? `    remove  ${op.path}  (was ${oneLine(d.was[op.path], 50)})`
                : `    ${op.op.padEnd(7)} ${op.path}${'value' in op ? `  ${oneLine(op.value, 50)}` : ''}`,
          ),
        );
        if (d.patch.length > 8) lines.push(`    … ${d.patch.length - 8} more operations`);
      } else lines.push(`    recorded ${d.recordedError === null ? (d.recordedOutputHash ?? '-') : `failed: ${d.recordedError}`} → ${d.newError === null ? (d.newOutputHash ?? '-') : `failed: ${d.newError}`}`);
    }
  }
  lines.push('', `  What-if run ${r.whatIfRunId}${r.reportHash === null ? '' : `; full report stored as ${shortHash(r.reportHash)}`} (--json or --out <file> for every record's patch)`);
  return lines.join('\n');
}

function executionText(e: BisectExecution, label: string): string[] {
  return [
    `${paint('bold', label)}: ${paint('cyan', e.stepId)} @ ${e.versionHash}`,
    `  at         offset ${count(e.offset)}, checkpoint ${e.checkpointId}${e.executionId === null ? '' : `, execution ${e.executionId}`}`,
    `  version    ${e.version === null ? '(not registered)' : `first ran ${isoUs(e.version.firstSeenUs)}${e.version.firstRunId === null ? '' : ` in run ${e.version.firstRunId}`}; ${e.version.module}#${e.version.export}`}`,
    `  input      ${oneLine(e.input, 140)}`,
    `  params     ${oneLine(e.params, 140)}`,
    e.error === null ? `  output     ${oneLine(e.output, 140)}` : `  error      ${e.error}`,
  ];
}

/** The human summary of a bisect. */
export function bisectSummaryText(r: BisectResult): string {
  const bad = r.firstBadCheckpoint;
  if (bad === null) {
    return `${paint('green', 'Every output is good')}: ${count(r.checkpoints)} checkpoints of ${r.streamId} searched with ${count(r.checkpointReplays)} checkpoint replays (at most ${r.maxCheckpointReplays}).`;
  }
  const good = r.lastGoodCheckpoint;
  const lines = [
    `${paint('bold', 'First bad checkpoint')}: ${bad.checkpointId} (run ${bad.runId}, offsets ${count(bad.startOffset)}..${count(bad.endOffset)})`,
    `  found with ${count(r.checkpointReplays)} checkpoint replays among ${count(r.checkpoints)} checkpoints (at most ${r.maxCheckpointReplays})`,
    `  last good checkpoint: ${good === null ? '(none: the first checkpoint searched is bad)' : `${good.checkpointId} (offsets ${count(good.startOffset)}..${count(good.endOffset)})`}`,
  ];
  if (good !== null) {
    const changed = Object.entries(bad.versions).filter(([id, v]) => good.versions[id] !== v);
    lines.push(`  code changed between them: ${changed.length === 0 ? 'none' : changed.map(([id, v]) => `${id} ${shortHash(good.versions[id] ?? null)} → ${shortHash(v)}`).join(', ')}`);
  }
  if (r.firstBadRecord !== null) lines.push(`  first bad record: offset ${count(r.firstBadRecord.offset)}, final output ${oneLine(r.firstBadRecord.output, 120)}`);
  lines.push('');
  if (r.firstBadExecution !== null) lines.push(...executionText(r.firstBadExecution, 'First bad execution'));
  if (r.lastGoodExecution !== null) lines.push('', ...executionText(r.lastGoodExecution, `Last good execution of ${r.lastGoodExecution.stepId}`));
  const bad1 = r.firstBadExecution;
  if (bad1 !== null) {
    const introduced = r.versionIntroduced;
    const where = bad1.version === null ? '' : ` (${bad1.version.module}, first ran ${isoUs(bad1.version.firstSeenUs)})`;
    lines.push('');
    if (introduced !== null) {
      lines.push(
        `${paint('bold', 'Verdict')}: ${paint('red', `${introduced.stepId} ${shortHash(introduced.to)}`)}${where} is the version responsible: it replaced ${shortHash(introduced.from)} between the last good checkpoint and the first bad one.`,
      );
      if (r.lastGoodExecution !== null && !r.versionChanged) lines.push('  The last good execution ran that version too, on another input: the fault shows on some inputs only.');
    } else if (r.versionChanged && r.lastGoodExecution !== null) {
      lines.push(`${paint('bold', 'Verdict')}: the version of ${bad1.stepId} changed: ${shortHash(r.lastGoodExecution.versionHash)} (last good) → ${shortHash(bad1.versionHash)}${where} (first bad).`);
    } else {
      lines.push(`${paint('bold', 'Verdict')}: ${bad1.stepId} ran the same code (${shortHash(bad1.versionHash)}) before and after: the input (data) made the difference.`);
    }
  }
  lines.push('  (Bisect assumes outputs are good up to a point in the stream and bad after it.)');
  return lines.join('\n');
}

/** Add `debug`, `whatif` and `bisect` to the program. */
export function addReplayToolCommands(program: Command): void {
  program
    .command('debug')
    .description('step through a replay of a range of checkpoints, execution by execution (commands from a terminal or piped standard input)')
    .addOption(storeOption())
    .requiredOption('--stream <id>', 'the stream whose checkpoints to replay (see `provenant checkpoints`)')
    .option('--from <checkpoint>', 'first checkpoint (id or unique prefix; default: the run\'s first)')
    .option('--to <checkpoint>', 'last checkpoint, inclusive (default: the run\'s last ended one)')
    .option('--run <id>', 'the run whose checkpoints to replay (default: --from\'s run, else the latest over the stream)')
    .option('--input <file>', 'read the records from this file instead of the recorded source')
    .option('--replace <stepId=code>', 'debug a what-if: run other code for a step (module path[#export] or recorded version hash); repeatable', collect, [])
    .option('--param <stepId.name=json>', 'debug a what-if: set a param of a step; repeatable', collect, [])
    .option('--json', 'print the session summary as JSON when it ends')
    .action(async (opts: { store: string; stream: string; from?: string; to?: string; run?: string; input?: string; replace: string[]; param: string[]; json?: boolean }) => {
      for (const r of opts.replace) parseReplace(r);
      for (const p of opts.param) parseParam(p);
      if (opts.input !== undefined && !existsSync(opts.input)) {
        throw new ProvenantError('INPUT_INVALID', `input file ${resolve(opts.input)} does not exist`, { context: { file: resolve(opts.input) } });
      }
      const summary = await withStore(opts, false, async (store) =>
        runDebugger({
          store,
          streamId: opts.stream,
          ...(opts.from === undefined ? {} : { from: opts.from }),
          ...(opts.to === undefined ? {} : { to: opts.to }),
          ...(opts.run === undefined ? {} : { runId: opts.run }),
          ...(opts.input === undefined ? {} : { source: new FileSource(opts.input) }),
          ...(opts.replace.length + opts.param.length === 0 ? {} : { substitutions: await substitutionsOf(store, opts.replace, opts.param) }),
          context: { source: 'cli' },
          input: process.stdin,
          output: process.stdout,
          terminal: process.stdin.isTTY === true && process.stdout.isTTY === true,
          color: process.stdout.isTTY === true && process.env.NO_COLOR === undefined,
        }),
      );
      if (opts.json === true) print(true, summary, () => '');
    });

  program
    .command('whatif')
    .description('replay a range of checkpoints with other code or params for chosen steps; report what changes, with per-record RFC 6902 diffs (a run of its own; history is unchanged)')
    .addOption(storeOption())
    .requiredOption('--stream <id>', 'the stream whose checkpoints to replay')
    .option('--from <checkpoint>', 'first checkpoint (id or unique prefix; default: the run\'s first)')
    .option('--to <checkpoint>', 'last checkpoint, inclusive (default: the run\'s last ended one)')
    .option('--run <id>', 'the run whose checkpoints to replay (default: --from\'s run, else the latest over the stream)')
    .option('--replace <stepId=code>', 'run other code for a step: a module file (path[#export]) or a recorded version hash (or unique prefix); repeatable', collect, [])
    .option('--param <stepId.name=json>', 'set a param of a step to a JSON value; repeatable', collect, [])
    .option('--label <text>', 'a name for this what-if (recorded with its run)')
    .option('--input <file>', 'read the records from this file instead of the recorded source')
    .option('--out <file>', 'write the full JSON report (every record\'s patch) to this file')
    .option('--diffs <n>', 'changed records to show in the summary (default 3)', (v) => Number(v))
    .option('--principal <name>', 'who is asking (recorded in the what-if run\'s context)')
    .option('--quiet', 'no progress output')
    .option('--json', 'print the full JSON report')
    .action(
      async (opts: {
        store: string;
        stream: string;
        from?: string;
        to?: string;
        run?: string;
        replace: string[];
        param: string[];
        label?: string;
        input?: string;
        out?: string;
        diffs?: number;
        principal?: string;
        quiet?: boolean;
        json?: boolean;
      }) => {
        // Syntax first: a typo must not leave anything behind.
        for (const r of opts.replace) parseReplace(r);
        for (const p of opts.param) parseParam(p);
        if (opts.input !== undefined && !existsSync(opts.input)) {
          throw new ProvenantError('INPUT_INVALID', `input file ${resolve(opts.input)} does not exist`, { context: { file: resolve(opts.input) } });
        }
        const progress = new Progress(`what-if ${opts.stream}`, opts.quiet === true || opts.json === true);
        const result = await withStore(opts, false, async (store) =>
          whatIf(store, {
            streamId: opts.stream,
            ...(opts.from === undefined ? {} : { from: opts.from }),
            ...(opts.to === undefined ? {} : { to: opts.to }),
            ...(opts.run === undefined ? {} : { runId: opts.run }),
            substitutions: await substitutionsOf(store, opts.replace, opts.param),
            ...(opts.label === undefined ? {} : { label: opts.label }),
            ...(opts.input === undefined ? {} : { source: new FileSource(opts.input) }),
            context: { source: 'cli', ...(opts.principal === undefined ? {} : { principal: opts.principal }) },
            onProgress: (p) => progress.update(p.records, `checkpoint ${p.checkpoints} of ${p.totalCheckpoints}`, p.totalRecords),
            progressEvery: 500,
          }),
        );
        progress.done();
        if (opts.out !== undefined) await writeFile(opts.out, `${JSON.stringify(result, null, 2)}\n`);
        print(opts.json === true, result, () => whatIfSummaryText(result, opts.diffs ?? 3) + (opts.out === undefined ? '' : `\n  Report written to ${resolve(opts.out)}`));
      },
    );

  program
    .command('bisect')
    .description('find the first checkpoint whose outputs a predicate rejects (binary search, O(log n) checkpoint replays), then the first bad execution in it: step, version, input, params, output')
    .addOption(storeOption())
    .requiredOption('--stream <id>', 'the stream to search (its checkpoints across runs, in offset order)')
    .requiredOption('--good <module>', 'predicate module: export default function good(output, record, info): boolean')
    .option('--from <checkpoint>', 'first checkpoint to search (default: the first)')
    .option('--to <checkpoint>', 'last checkpoint to search, inclusive (default: the last)')
    .option('--run <id>', 'search only this run\'s checkpoints')
    .option('--input <file>', 'read the records from this file instead of the recorded sources')
    .option('--quiet', 'no progress output')
    .option('--json', 'machine-readable result')
    .action(async (opts: { store: string; stream: string; good: string; from?: string; to?: string; run?: string; input?: string; quiet?: boolean; json?: boolean }) => {
      const good = await loadPredicate(opts.good);
      if (opts.input !== undefined && !existsSync(opts.input)) {
        throw new ProvenantError('INPUT_INVALID', `input file ${resolve(opts.input)} does not exist`, { context: { file: resolve(opts.input) } });
      }
      const progress = new Progress(`bisect ${opts.stream}`, opts.quiet === true || opts.json === true, 'checkpoint replays');
      const result = await withStore(opts, false, (store) =>
        bisect(store, {
          streamId: opts.stream,
          good,
          ...(opts.from === undefined ? {} : { from: opts.from }),
          ...(opts.to === undefined ? {} : { to: opts.to }),
          ...(opts.run === undefined ? {} : { runId: opts.run }),
          ...(opts.input === undefined ? {} : { source: new FileSource(opts.input) }),
          context: { source: 'cli' },
          onProbe: (p, done, max) => progress.update(done, `checkpoint ${p.checkpointId.slice(0, 13)}… ${p.good ? 'good' : 'bad'}`, max),
        }),
      );
      progress.done();
      print(opts.json === true, result, () => bisectSummaryText(result));
    });
}
