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
import { createWriteStream, existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProvenantError } from '../errors.js';
import { decodeValue, type ContentHash, type ValueEncoding } from '../hash/canonical.js';
import { runPipeline, type PipelineResult } from '../pipeline/execute.js';
import { loadPipelineFile } from '../pipeline/load.js';
import { reexecute } from '../replay/execution.js';
import { appendRecords, readLog } from '../stream/log.js';
import { formatOf, readRecords, valuesOf } from '../sources/files.js';
import { vegaDatasetPath } from '../sources/datasets.js';
import type { ExecutionRecord, FailurePolicy } from '../store/records.js';
import { DEFAULT_STORE, openStore } from '../store/open.js';
import type { Store } from '../store/store.js';
import { PROVENANT_VERSION } from '../version.js';
import { exitWith } from './errors.js';
import { count, durationUs, foldedJson, isoUs, paint, shortHash, table } from './format.js';
import { Progress } from './progress.js';

interface StoreOpts {
  store: string;
}

const storeOption = (): Option =>
  new Option('--store <dir>', 'store folder').default(process.env.PROVENANT_STORE ?? DEFAULT_STORE).env('PROVENANT_STORE');

async function withStore<T>(opts: StoreOpts, create: boolean, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore(opts.store, { create });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

function print(json: boolean, value: unknown, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
}

/** Print a list: as JSON, or `empty` when there is nothing, or the human rendering. */
function printList<T>(json: boolean, list: readonly T[], empty: string, human: (items: readonly T[]) => string): void {
  print(json, list, () => (list.length === 0 ? empty : human(list)));
}


function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new ProvenantError('INPUT_INVALID', `${name} must be a positive whole number, not "${v}"`);
    return n;
  };
}

function parsePolicy(v: string): FailurePolicy {
  if (v !== 'stop' && v !== 'dead-letter') throw new ProvenantError('INPUT_INVALID', `--on-error must be "stop" or "dead-letter", not "${v}"`);
  return v;
}

interface RunOpts extends StoreOpts {
  input?: string;
  stream?: string;
  limit?: number;
  onError?: FailurePolicy;
  output?: string;
  principal?: string;
  json?: boolean;
  quiet?: boolean;
}

async function runCommand(pipelineFile: string, opts: RunOpts, label = 'run'): Promise<void> {
  if ((opts.input === undefined) === (opts.stream === undefined)) {
    throw new ProvenantError('INPUT_INVALID', 'give the records to run over with either --input <file> or --stream <id>', {
      hint: 'A file (.json, .ndjson, .csv, .parquet) or a stream appended with `provenant stream append`.',
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
  const loaded = await loadPipelineFile(pipelineFile);
  const progress = new Progress(`${label} ${loaded.definition.name}`, opts.quiet === true || opts.json === true);
  const out = opts.output === undefined ? undefined : createWriteStream(opts.output);
  const result = await withStore(opts, input !== undefined, async (store) => {
    if (opts.stream !== undefined && (await store.getStream(opts.stream)) === undefined) {
      throw new ProvenantError('NOT_FOUND', `stream ${opts.stream} has no records in ${store.location}`, {
        hint: 'Append records with `provenant stream append <stream> <file>`; list streams with `provenant stream list`.',
        context: { streamId: opts.stream },
      });
    }
    const records =
      input !== undefined
        ? readRecords(input, opts.limit === undefined ? {} : { limit: opts.limit })
        : readLog(store, opts.stream as string, opts.limit === undefined ? {} : { to: opts.limit });
    const r = await runPipeline(store, loaded.definition, records, {
      baseDir: loaded.baseDir,
      streamId: input !== undefined ? `file:${input}` : (opts.stream as string),
      ...(opts.onError === undefined ? {} : { failurePolicy: opts.onError }),
      context: { source: 'cli', ...(opts.principal === undefined ? {} : { principal: opts.principal }) },
      runOptions: {
        pipeline: loaded.file,
        ...(input !== undefined ? { input } : { stream: opts.stream as string }),
        ...(opts.limit === undefined ? {} : { limit: opts.limit }),
      },
      ...(out === undefined ? {} : { sink: (o: unknown) => void out.write(`${JSON.stringify(o)}\n`) }),
      onProgress: (p) => progress.update(p.records, `${count(p.executions)} executions, ${count(p.failed)} failed`),
      progressEvery: 500,
    });
    progress.done();
    const stats = await store.stats();
    return { ...r, store: store.location, storeStats: stats };
  });
  if (out !== undefined) await new Promise<void>((res) => out.end(res));
  print(opts.json === true, result, () => runSummaryText(result));
}

function runSummaryText(r: PipelineResult & { store: string; storeStats: { executions: number; blobs: number; blobBytes: number } }): string {
  const rate = r.durationMs > 0 ? Math.round((r.executions / r.durationMs) * 1000) : r.executions;
  const lines = [
    `${paint('bold', 'Recorded')} run ${r.runId} (${r.status}) into ${r.store}`,
    `  ${count(r.records)} records → ${count(r.outputs)} outputs; ${count(r.executions)} executions (${count(rate)}/s), ${count(r.failed)} failed, ${count(r.deadLettered)} dead-lettered`,
    '',
    table(
      ['STEP', 'VERSION', 'EXECUTIONS', 'FAILED'],
      Object.entries(r.steps).map(([id, s]) => [id, shortHash(s.versionHash), count(s.executions), count(s.failed)]),
    ),
    '',
    `  Store now holds ${count(r.storeStats.executions)} executions and ${count(r.storeStats.blobs)} values (${(r.storeStats.blobBytes / 1e6).toFixed(1)} MB).`,
    `  Next: provenant executions --step ${Object.keys(r.steps)[0] ?? '<id>'}   ·   provenant steps   ·   provenant show <executionId>`,
  ];
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
      .option('--quiet', 'no progress output')
      .option('--json', 'machine-readable summary');

  addRunOptions(
    program
      .command('run')
      .description('run a pipeline over an input file (.json, .ndjson, .csv, .parquet), recording every execution')
      .argument('<pipeline>', 'pipeline file (.ts or .js) whose default export is definePipeline({...})')
      .option('--input <file>', 'input records: a .json, .ndjson/.jsonl, .csv or .parquet file')
      .option('--stream <id>', 'input records: an embedded stream (see `provenant stream append`)'),
  ).action(async (pipeline: string, opts: RunOpts) => runCommand(pipeline, opts));

  addRunOptions(
    program
      .command('demo')
      .description('run the example flights pipeline over real data (vega-datasets flights-20k.json) into the store')
      .option('--input <file>', 'another input file (default: vega-datasets flights-20k.json)'),
  ).action(async (opts: Omit<RunOpts, 'input'> & { input?: string }) => {
    const pipeline = fileURLToPath(new URL('../../examples/flights/pipeline.ts', import.meta.url));
    await runCommand(pipeline, { ...opts, input: opts.input ?? vegaDatasetPath('flights-20k.json') }, 'demo');
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
