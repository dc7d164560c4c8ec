/**
 * Commands for growing past one process: `provenant migrate` (bring a store's schema up to date),
 * `provenant copy` (move a whole store between backends), `provenant worker` (one of several
 * processes sharing a JetStream stream and queued jobs through a PostgreSQL store) and
 * `provenant jobs` (queue replay jobs for the workers, and follow them).
 */
import { Option, type Command } from 'commander';
import { ProvenantError } from '../errors.js';
import { copyStore, type CopyReport } from '../store/copy.js';
import { DEFAULT_STORE, migrateStore, openStore } from '../store/open.js';
import { loadPipelineFile } from '../pipeline/load.js';
import { getJob, listJobs, runWorker, submitJob } from '../worker/worker.js';
import type { ContentHash, JsonValue } from '../hash/canonical.js';
import { parseTime } from '../objects/refs.js';
import { prepareStep } from '../step/register.js';
import { substitutionsOf } from './replay-tools.js';
import { count, isoUs, table } from './format.js';
import { collect, print, printList, storeOption, withStore, type StoreOpts } from './common.js';
import { Progress } from './progress.js';

/** Add `migrate`, `copy`, `worker` and `jobs` to the program. */
export function addScaleCommands(program: Command): void {
  program
    .command('migrate')
    .description('bring a store (folder or postgres:// URL) to the newest schema, creating it when absent')
    .addOption(storeOption())
    .option('--json', 'machine-readable output')
    .action(async (opts: StoreOpts & { json?: boolean }) => {
      const r = await migrateStore(opts.store);
      print(opts.json === true, r, () =>
        r.from === r.to ? `${r.store} (${r.backend}) is up to date at schema version ${r.to}` : `${r.store} (${r.backend}): schema version ${r.from} → ${r.to}`,
      );
    });

  program
    .command('copy')
    .description('copy a whole store to another (either backend), keeping ids, times and record hashes; verified at the end; safe to run again')
    .requiredOption('--from <store>', 'the store to copy (a folder or postgres:// URL)')
    .requiredOption('--to <store>', 'the store to copy into (created when absent)')
    .option('--quiet', 'no progress output')
    .option('--json', 'machine-readable report')
    .action(async (opts: { from: string; to: string; quiet?: boolean; json?: boolean }) => {
      if (opts.from === opts.to) {
        throw new ProvenantError('INPUT_INVALID', '--from and --to name the same store', { hint: 'Give two different stores.', context: { store: opts.from } });
      }
      const from = await openStore(opts.from ?? DEFAULT_STORE, { create: false });
      try {
        const to = await openStore(opts.to);
        try {
          const progress = new Progress('copy', opts.quiet === true || opts.json === true, 'items');
          const report = await copyStore(from, to, { onProgress: (phase, done) => progress.update(done, phase) });
          progress.done();
          print(opts.json === true, report, () => copyText(report));
        } finally {
          await to.close();
        }
      } finally {
        await from.close();
      }
    });

  program
    .command('worker')
    .description('process a JetStream stream together with other workers (segments of offsets under leases, one checkpoint each) and take queued jobs; needs a PostgreSQL store')
    .argument('<pipeline>', 'pipeline file (.ts or .js) whose default export is definePipeline({...})')
    .addOption(storeOption())
    .requiredOption('--stream <name>', 'the JetStream stream to process')
    .option('--nats <url>', 'NATS server (default nats://127.0.0.1:4222, or PROVENANT_NATS)')
    .option('--subject <subject>', 'only messages on this subject')
    .option('--group <name>', 'workers of one group share the stream (default: the pipeline name)')
    .option('--segment-size <n>', 'offsets per segment and checkpoint (default 1000; the last segments of a backlog are halved, down to an eighth, while other workers are busy)', positiveInt('--segment-size'))
    .option('--lease <ms>', 'lease length in ms, renewed every third of it (default 30000)', positiveInt('--lease'))
    .option('--poll <ms>', 'when idle, look for work this often in ms; other workers wake it sooner when there is some (default 500)', positiveInt('--poll'))
    .addOption(
      new Option('--state <scope>', "stateful steps' state: through the whole stream (segments in order, one at a time) or per segment (segments in parallel, each from empty state)")
        .choices(['stream', 'segment'])
        .default('stream'),
    )
    .option('--drain', 'exit once every record of the stream is done and no job is queued')
    .option('--quiet', 'no progress output')
    .option('--json', 'machine-readable summary (and one JSON line per segment or job on stderr)')
    .action(
      async (
        pipelineFile: string,
        opts: StoreOpts & { stream: string; nats?: string; subject?: string; group?: string; segmentSize?: number; lease?: number; poll?: number; state: 'stream' | 'segment'; drain?: boolean; quiet?: boolean; json?: boolean },
      ) => {
        const pipeline = await loadPipelineFile(pipelineFile);
        const stop = new AbortController();
        const onSignal = (): void => stop.abort();
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        const summary = await withStore(opts, true, (store) =>
          runWorker(store, pipeline, {
            servers: opts.nats ?? process.env.PROVENANT_NATS ?? 'nats://127.0.0.1:4222',
            stream: opts.stream,
            ...(opts.subject === undefined ? {} : { subject: opts.subject }),
            ...(opts.group === undefined ? {} : { group: opts.group }),
            ...(opts.segmentSize === undefined ? {} : { segmentSize: opts.segmentSize }),
            ...(opts.lease === undefined ? {} : { leaseMs: opts.lease }),
            ...(opts.poll === undefined ? {} : { pollMs: opts.poll }),
            state: opts.state,
            drain: opts.drain === true,
            signal: stop.signal,
            onEvent: (e) => {
              if (opts.quiet === true) return;
              const text =
                e.kind === 'segment'
                  ? `segment ${e.start}..${e.end}: ${count(e.records)} records, run ${e.runId ?? '-'}`
                  : e.kind === 'job'
                    ? `job ${e.jobId}: ${e.status}${e.error === undefined ? '' : ` (${e.error})`}`
                    : e.kind === 'idle'
                      ? 'idle: nothing to take; waiting for work'
                      : `waiting ${(e.waitMs / 1000).toFixed(1)} s: ${e.reason}`;
              process.stderr.write(opts.json === true ? `${JSON.stringify(e)}\n` : `${text}\n`);
            },
          }),
        );
        print(opts.json === true, summary, () => `worker ${summary.workerId}: ${count(summary.segments)} segments, ${count(summary.records)} records, ${count(summary.jobs)} jobs`);
      },
    );

  const jobs = program.command('jobs').description('replay jobs queued in a PostgreSQL store and taken by workers');
  jobs
    .command('submit')
    .description("queue a job for the workers: a replay (verify) of a stream's checkpoints, a what-if (with --replace/--param), or an as-of read (with --object)")
    .addOption(storeOption())
    .option('--stream <id>', 'the stream whose checkpoints to replay (replay, what-if)')
    .option('--run <id>', 'the run to replay (default: the latest over the stream)')
    .option('--from <checkpoint>', 'first checkpoint')
    .option('--to <checkpoint>', 'last checkpoint, inclusive')
    .option('--replace <stepId=code>', 'what-if: run another version of a step — a recorded version hash (or unique prefix), or a module file, stored and registered now; repeatable', collect, [])
    .option('--param <stepId.name=json>', 'what-if: set a param of a step; repeatable', collect, [])
    .option('--label <text>', 'what-if: a name for it')
    .option('--object <id>', 'as-of read: the object')
    .option('--as-of <time>', 'as-of read: the time (ISO 8601 with an offset, or epoch ms; default now)')
    .option('--attempts <n>', 'tries before the job fails (default 3)', positiveInt('--attempts'))
    .option('--json', 'machine-readable output')
    .action(
      async (
        opts: StoreOpts & { stream?: string; run?: string; from?: string; to?: string; replace: string[]; param: string[]; label?: string; object?: string; asOf?: string; attempts?: number; json?: boolean },
      ) => {
        const job = await withStore(opts, false, async (store) => {
          if (opts.object !== undefined) {
            if (opts.stream !== undefined || opts.replace.length > 0 || opts.param.length > 0) {
              throw new ProvenantError('INPUT_INVALID', '--object queues an as-of read: it does not take --stream, --replace or --param', { hint: 'Queue the replay or what-if as a job of its own.' });
            }
            return submitJob(store, { kind: 'asof', objectId: opts.object, asOfMs: opts.asOf === undefined ? Date.now() : parseTime(opts.asOf) }, opts.attempts ?? 3);
          }
          if (opts.stream === undefined) {
            throw new ProvenantError('INPUT_INVALID', 'give --stream <id> (a replay or what-if) or --object <id> (an as-of read)', { hint: 'e.g. provenant jobs submit --stream flights --store postgres://…' });
          }
          const range = {
            streamId: opts.stream,
            ...(opts.run === undefined ? {} : { runId: opts.run }),
            ...(opts.from === undefined ? {} : { from: opts.from }),
            ...(opts.to === undefined ? {} : { to: opts.to }),
          };
          if (opts.replace.length === 0 && opts.param.length === 0) return submitJob(store, { kind: 'replay', ...range }, opts.attempts ?? 3);
          // A job names recorded versions only (a worker elsewhere cannot read a local file): a
          // module given here is stored and registered as a version of its step first.
          const subs = await substitutionsOf(store, opts.replace, opts.param);
          const substitutions: Record<string, { versionHash?: ContentHash; params?: Record<string, JsonValue> }> = {};
          for (const [stepId, sub] of Object.entries(subs)) {
            let versionHash: ContentHash | undefined;
            if (sub.code !== undefined) versionHash = 'versionHash' in sub.code ? sub.code.versionHash : (await prepareStep(store, stepId, { module: sub.code.module, ...(sub.code.export === undefined ? {} : { export: sub.code.export }) })).versionHash;
            substitutions[stepId] = { ...(versionHash === undefined ? {} : { versionHash }), ...(sub.params === undefined ? {} : { params: { ...sub.params } }) };
          }
          return submitJob(store, { kind: 'whatif', ...range, substitutions, ...(opts.label === undefined ? {} : { label: opts.label }) }, opts.attempts ?? 3);
        });
        const what = job.kind === 'asof' ? `as-of read of ${opts.object ?? ''}` : `${job.kind === 'whatif' ? 'what-if' : 'replay'} of ${opts.stream ?? ''}`;
        print(opts.json === true, job, () => `queued job ${job.id} (${what}); follow it with \`provenant jobs show ${job.id}\``);
      },
    );
  jobs
    .command('list')
    .description('list jobs, newest first')
    .addOption(storeOption())
    .option('--limit <n>', 'at most n jobs (default 100)', positiveInt('--limit'))
    .option('--json', 'machine-readable output')
    .action(async (opts: StoreOpts & { limit?: number; json?: boolean }) => {
      const list = await withStore(opts, false, (store) => listJobs(store, opts.limit ?? 100));
      printList(opts.json === true, list, 'No jobs.', (items) =>
        table(
          ['JOB', 'KIND', 'STATUS', 'ATTEMPTS', 'WORKER', 'SUBMITTED', 'ERROR'],
          items.map((j) => [j.id, j.kind, j.status, `${j.attempts}/${j.maxAttempts}`, j.worker ?? '-', isoUs(j.submittedUs), j.error ?? '']),
        ),
      );
    });
  jobs
    .command('show')
    .description('show one job with its result')
    .argument('<id>', 'job id')
    .addOption(storeOption())
    .option('--json', 'machine-readable output')
    .action(async (id: string, opts: StoreOpts & { json?: boolean }) => {
      const job = await withStore(opts, false, async (store) => {
        const found = await getJob(store, id);
        if (found === undefined) {
          throw new ProvenantError('NOT_FOUND', `no job ${id} in ${store.location}`, { hint: 'List jobs with `provenant jobs list`.', context: { jobId: id } });
        }
        return found;
      });
      print(opts.json === true, job, () => JSON.stringify(job, null, 2));
    });
}

function positiveInt(flag: string): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n <= 0) {
      throw new ProvenantError('INPUT_INVALID', `${flag} ${v}: expected a whole number above 0`, { context: { argument: `${flag} ${v}` } });
    }
    return n;
  };
}

function copyText(r: CopyReport): string {
  const rows = Object.entries(r.counts).map(([kind, c]) => `  ${kind.padEnd(14)} ${count(c.source).padStart(10)} in source, ${count(c.copied)} copied now`);
  const v = r.verification;
  return [
    `Copied ${r.from} → ${r.to}`,
    ...rows,
    `Verified on the target: ${count(v.executions)} execution record hashes, ${count(v.checkpoints)} checkpoint record hashes, ${count(v.blobs)} blobs read back, ${count(v.streamEntries)} stream entries — ${v.ok ? 'all equal' : 'DIFFERENCES'}`,
  ].join('\n');
}
