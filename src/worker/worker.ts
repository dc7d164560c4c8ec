/**
 * Several workers sharing a JetStream stream and queued jobs through a PostgreSQL store.
 *
 * How the stream is shared out — by OFFSET SEGMENTS under leases, not by a shared pull consumer:
 * - The stream's sequence space is cut into segments of consecutive offsets `[start, end)`
 *   (`work_segments`, created as the stream grows, under an advisory lock so that they never
 *   overlap). A free worker takes the first free segment with `FOR UPDATE SKIP LOCKED` and holds it
 *   under a lease it renews while it works.
 * - A segment is processed as ONE checkpoint of a run of its own, reading exactly `[start, end)`
 *   by sequence. The checkpoint commits with all of its executions in one transaction; only then
 *   is the segment marked done (this is the "acknowledgement": nothing is done before its
 *   checkpoint is COMPLETE and durable).
 * - A worker that dies (SIGKILL, lost machine) stops renewing; when its lease has passed, another
 *   worker takes the segment and processes it again from its start. The dead attempt never
 *   completed its checkpoint, so its partial executions belong to no COMPLETE checkpoint: across
 *   COMPLETE checkpoints every offset is covered exactly once. (When the dead worker's checkpoint
 *   DID commit just before it died, the next taker finds it and only marks the segment done.)
 * - At the end of a backlog, the last open segment is halved when it is taken while another
 *   worker is busy ({@link splitLast}), so that workers finish together.
 * Why not a durable pull consumer: a pull consumer hands each worker an interleaved subset of
 * sequences, and redelivers unacknowledged ones to anyone, so a worker's checkpoint would not be
 * a contiguous range `[start, end)` and replay by range would not hold. Segments keep checkpoints
 * contiguous, make each one replayable on its own, and make "exactly once" checkable with SQL.
 * Stateful steps (`stateful: true`): by default (`state: 'stream'`) their state runs through the
 * whole stream, as in one `provenant run`: segments are then taken strictly in order (a segment
 * only once every earlier one is done — one at a time, whichever worker is free), and each starts
 * from the state snapshot of the previous segment's last checkpoint, which its first checkpoint
 * names as previous (replay restores it the same way). `state: 'segment'` gives up that order for
 * parallelism: each segment starts from empty state. Pipelines without stateful steps always run
 * segments in parallel.
 *
 * Jobs (`jobs` table): replays, what-ifs and as-of reads queued by `provenant jobs submit`, taken by free workers the same
 * way (lease, `SKIP LOCKED`), retried by another worker when the lease of a dead one passes, up to
 * `max_attempts`.
 */
import { hostname } from 'node:os';
import type pg from 'pg';
import { endAbandoned, runChain } from '../checkpoint/chain.js';
import { ProvenantError, errorMessage } from '../errors.js';
import { canonicalize, type ContentHash, type JsonValue } from '../hash/canonical.js';
import { newId, nowUs } from '../ids.js';
import { getAsOf } from '../objects/asof.js';
import { validateObjectId } from '../objects/refs.js';
import { runPipeline, type PipelineResult } from '../pipeline/execute.js';
import type { LoadedPipeline } from '../pipeline/load.js';
import { replay } from '../replay/range.js';
import type { LoadedStep } from '../step/runtime.js';
import { openJetStreamSource, type JetStreamSource } from '../sources/jetstream.js';
import { inTransaction } from '../store/postgres/connection.js';
import { PostgresStore } from '../store/postgres/postgres-store.js';
import type { CheckpointRecord } from '../store/records.js';
import type { Store } from '../store/store.js';
import { whatIf } from '../whatif/whatif.js';
import { WorkWakeup, notifyWork } from './wakeup.js';

/** The server's clock in epoch microseconds (leases use one clock for every worker). */
const NOW_US = `(extract(epoch from clock_timestamp()) * 1000000)::bigint`;

/** Options of {@link runWorker}. */
export interface WorkerOptions {
  /** NATS server(s). */
  readonly servers: string;
  /** The JetStream stream. */
  readonly stream: string;
  readonly subject?: string;
  /** Workers of one group share segments; default: the pipeline's name. */
  readonly group?: string;
  /** Offsets per segment (and per checkpoint). Default: 1000. */
  readonly segmentSize?: number;
  /** Lease length; renewed every third of it while working. Default: 30 s. */
  readonly leaseMs?: number;
  /** This worker's name in leases. Default: `<host>:<pid>`. */
  readonly workerId?: string;
  /** Stop when the stream's records are all done and no job is queued (else keep polling). */
  readonly drain?: boolean;
  /**
   * Wait between polls when there is nothing to do. Default: 500 ms. Other workers of the store
   * cut it short when they cut segments, finish one or queue or end a job (`./wakeup.ts`).
   */
  readonly pollMs?: number;
  readonly signal?: AbortSignal;
  /** Called after each segment is done (with the run that did it) and each job finished. */
  readonly onEvent?: (event: WorkerEvent) => void;
  /**
   * The state of stateful steps: through the whole `stream` (default; segments in order, one at a
   * time) or per `segment` (segments in parallel, each from empty state). See the module comment.
   */
  readonly state?: 'stream' | 'segment';
}

/** What a worker did, as it happens. */
export type WorkerEvent =
  | { readonly kind: 'segment'; readonly start: number; readonly end: number; readonly runId: string | null; readonly records: number; readonly attempt: number }
  | { readonly kind: 'job'; readonly jobId: string; readonly status: 'done' | 'failed' | 'queued'; readonly error?: string }
  /** The store (or the stream) could not be reached; the worker waits `waitMs` and goes on. */
  | { readonly kind: 'waiting'; readonly reason: string; readonly waitMs: number }
  /** Nothing to take: the worker waits for work (once each time it runs out, not at every poll). */
  | { readonly kind: 'idle' };

/** What {@link runWorker} did in total. */
export interface WorkerSummary {
  readonly workerId: string;
  readonly segments: number;
  readonly records: number;
  readonly jobs: number;
}

interface SegmentRow {
  start_offset: number;
  end_offset: number;
  attempts: number;
}

/** The PostgreSQL store behind `store`, or a clear error. */
export function requirePostgres(store: Store, what: string): PostgresStore {
  if (!(store instanceof PostgresStore)) {
    throw new ProvenantError('INPUT_INVALID', `${what} needs a PostgreSQL store; ${store.location} is an embedded one`, {
      hint: 'Pass --store postgres://user@host:5432/db (or set PROVENANT_STORE); move an embedded store there with `provenant copy`.',
      context: { store: store.location },
    });
  }
  return store;
}

/**
 * Run one worker until `signal` aborts (or, with `drain`, until everything is done): take free
 * segments of the stream and queued jobs, one at a time, under leases.
 */
export async function runWorker(store: Store, pipeline: LoadedPipeline, options: WorkerOptions): Promise<WorkerSummary> {
  const pgStore = requirePostgres(store, 'provenant worker');
  const workerId = options.workerId ?? `${hostname()}:${process.pid}`;
  const group = options.group ?? pipeline.definition.name;
  const size = options.segmentSize ?? 1000;
  const leaseMs = options.leaseMs ?? 30_000;
  const pollMs = options.pollMs ?? 500;
  const source = await openJetStreamSource({ servers: options.servers, stream: options.stream, ...(options.subject === undefined ? {} : { subject: options.subject }) });
  const streamId = source.streamId;
  let segments = 0;
  let records = 0;
  let jobs = 0;
  let outages = 0;
  // The pipeline's steps are built, stored and loaded once (by the first segment's run) and reused
  // by every later segment: a worker runs the code it started with, warm.
  const stepCache = new Map<string, LoadedStep>();
  const ordered = options.state !== 'segment' && pipeline.definition.steps.some((s) => s.stateful === true);
  const wakeup = new WorkWakeup(connectionStringOf(pgStore), pgStore.schema);
  wakeup.listen();
  let idle = false;
  try {
    while (options.signal?.aborted !== true) {
      // Read before looking: a notification that comes while this worker looks cuts its wait short.
      const seen = wakeup.generation;
      try {
        await ensureSegments(pgStore, source, group, streamId, size);
        outages = 0;
        const claimed = await claim(pgStore, ordered, group, streamId, workerId, leaseMs);
        // At the end of a backlog, halve the last segment while another worker is busy, so that the
        // workers finish together rather than one waiting out the other's last segment.
        const segment = claimed === undefined || ordered ? claimed : await splitLast(pgStore, group, streamId, claimed, workerId, minPiece(size));
        if (segment !== undefined) {
          const r = await withLease(pgStore, 'segment', { group, streamId, start: segment.start_offset }, workerId, leaseMs, () =>
            processSegment(pgStore, pipeline, source, group, segment, workerId, stepCache, ordered),
          );
          segments++;
          records += r.records;
          options.onEvent?.({ kind: 'segment', start: segment.start_offset, end: segment.end_offset, runId: r.runId, records: r.records, attempt: segment.attempts });
          idle = false;
          continue;
        }
        const job = await claimJob(pgStore, workerId, leaseMs);
        if (job !== undefined) {
          const status = await withLease(pgStore, 'job', { id: job.id }, workerId, leaseMs, () => runJob(pgStore, job, workerId));
          jobs++;
          options.onEvent?.({ kind: 'job', jobId: job.id, ...status });
          idle = false;
          continue;
        }
        if (options.drain === true && (await drained(pgStore, source, group, streamId))) break;
      } catch (err) {
        // A store away for longer than its retries: wait and go on (a segment this worker held is
        // taken again, by it or another worker, once its lease passes). Anything else stops the worker.
        if (!(err instanceof ProvenantError && err.retryable)) throw err;
        const waitMs = Math.min(pollMs * 2 ** outages++, 10_000);
        options.onEvent?.({ kind: 'waiting', reason: err.message, waitMs });
        await sleep(waitMs, options.signal);
        continue;
      }
      if (!idle) {
        idle = true;
        options.onEvent?.({ kind: 'idle' });
      }
      await wakeup.wait(pollMs, seen, options.signal);
    }
  } finally {
    await wakeup.close();
    await source.close();
  }
  return { workerId, segments, records, jobs };
}

/** Take the transaction-level lock under which a group's segments of a stream are cut or split. */
async function lockSegments(c: pg.ClientBase, group: string, streamId: string): Promise<void> {
  await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`provenant.segments.${group}.${streamId}`]);
}

/** Cut the part of the stream not yet in segments into segments (one worker at a time). */
async function ensureSegments(store: PostgresStore, source: JetStreamSource, group: string, streamId: string, size: number): Promise<void> {
  const { firstSeq, lastSeq } = await source.bounds();
  await store.withClient(async (c) => {
    const known = await c.query<{ end: number | null }>('SELECT max(end_offset) AS end FROM work_segments WHERE grp = $1 AND stream = $2', [group, streamId]);
    const from = known.rows[0]?.end ?? firstSeq;
    if (from > lastSeq) return;
    await c.query('BEGIN');
    try {
      await lockSegments(c, group, streamId);
      const again = await c.query<{ end: number | null }>('SELECT max(end_offset) AS end FROM work_segments WHERE grp = $1 AND stream = $2', [group, streamId]);
      const starts: number[] = [];
      const ends: number[] = [];
      for (let start = again.rows[0]?.end ?? firstSeq; start <= lastSeq; start += size) {
        starts.push(start);
        ends.push(Math.min(start + size, lastSeq + 1));
      }
      if (starts.length > 0) {
        await c.query(
          `INSERT INTO work_segments (grp, stream, start_offset, end_offset, status)
           SELECT $1, $2, s, e, 'open' FROM unnest($3::bigint[], $4::bigint[]) AS t(s, e)`,
          [group, streamId, starts, ends],
        );
        // Sent on commit: idle workers take the new segments at once.
        await notifyWork(c, store.schema);
      }
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  });
}

/**
 * Take the first free segment (open, or running with a lease that has passed). `ordered`: only
 * the first segment not done, and only when it is free (stateful steps with state through the
 * stream: segments one at a time, in order).
 */
async function claim(store: PostgresStore, ordered: boolean, group: string, streamId: string, workerId: string, leaseMs: number): Promise<SegmentRow | undefined> {
  const free = (t: string): string => `(${t}status = 'open' OR (${t}status = 'running' AND ${t}lease_until < ${NOW_US}))`;
  // The free row is picked once, in a CTE: a subquery joined in UPDATE … FROM may be scanned again
  // (a nested loop), and with SKIP LOCKED a second scan would take a second row. In order, the first
  // segment not done is waited for (FOR UPDATE), never skipped for a later one.
  const pick = ordered
    ? `SELECT start_offset FROM work_segments WHERE grp = $1 AND stream = $2 AND status <> 'done' ORDER BY start_offset LIMIT 1 FOR UPDATE`
    : `SELECT start_offset FROM work_segments WHERE grp = $1 AND stream = $2 AND ${free('')} ORDER BY start_offset LIMIT 1 FOR UPDATE SKIP LOCKED`;
  const r = await store.withClient((c) =>
    c.query<SegmentRow>(
      `WITH f AS MATERIALIZED (${pick})
       UPDATE work_segments s SET status = 'running', worker = $3, lease_until = ${NOW_US} + $4::bigint, attempts = s.attempts + 1
       FROM f WHERE s.grp = $1 AND s.stream = $2 AND s.start_offset = f.start_offset AND ${free('s.')}
       RETURNING s.start_offset, s.end_offset, s.attempts`,
      [group, streamId, workerId, leaseMs * 1000],
    ),
  );
  return r.rows[0];
}

/** The smallest piece {@link splitLast} leaves: an eighth of a segment, and at least 100 offsets. */
function minPiece(size: number): number {
  return Math.max(100, Math.ceil(size / 8));
}

/**
 * When the segment just claimed (a first attempt) was the last open one and another worker is
 * still running one, keep its first half and leave the second half open: the last segments of a
 * backlog get smaller and smaller (down to `min` offsets), and the workers finish within a small
 * piece of each other instead of one idling through the other's last full segment. Segments stay
 * contiguous and each is still one checkpoint. Never splits a segment taken over from another
 * worker (its dead attempt may have committed a checkpoint for the whole range).
 */
async function splitLast(store: PostgresStore, group: string, streamId: string, segment: SegmentRow, workerId: string, min: number): Promise<SegmentRow> {
  const { start_offset: start, end_offset: end } = segment;
  if (segment.attempts !== 1 || end - start < 2 * min) return segment;
  return store.withClient((c) =>
    inTransaction(c, async () => {
      // Under the lock that cuts segments: the stream's covered end (max(end_offset)) stays the same.
      await lockSegments(c, group, streamId);
      const mine = await c.query<{ end: number }>(`SELECT end_offset AS end FROM work_segments WHERE grp = $1 AND stream = $2 AND start_offset = $3 AND worker = $4 AND status = 'running'`, [
        group,
        streamId,
        start,
        workerId,
      ]);
      const current = mine.rows[0]?.end;
      // Not ours any more (the lease passed): nothing to split, and the commit guard refuses its checkpoint.
      if (current === undefined) return segment;
      // A try whose reply was lost after its commit (the store retries on a lost connection) split it already.
      if (Number(current) !== end) return { ...segment, end_offset: Number(current) };
      const r = await c.query<{ open: number; others: number }>(
        `SELECT count(*) FILTER (WHERE status = 'open')::int AS open,
                count(*) FILTER (WHERE status = 'running' AND worker <> $3 AND lease_until >= ${NOW_US})::int AS others
         FROM work_segments WHERE grp = $1 AND stream = $2`,
        [group, streamId, workerId],
      );
      const row = r.rows[0];
      if (row === undefined || row.open > 0 || row.others === 0) return segment;
      const mid = start + Math.ceil((end - start) / 2);
      await c.query(`UPDATE work_segments SET end_offset = $4 WHERE grp = $1 AND stream = $2 AND start_offset = $3`, [group, streamId, start, mid]);
      await c.query(`INSERT INTO work_segments (grp, stream, start_offset, end_offset, status) VALUES ($1, $2, $3, $4, 'open')`, [group, streamId, mid, end]);
      // Sent on commit: an idle worker takes the second half at once.
      await notifyWork(c, store.schema);
      return { ...segment, end_offset: mid };
    }),
  );
}

/** The last COMPLETE checkpoint of the (done) segment that ends where `start` begins, or undefined for the stream's first segment. */
async function previousSegmentCheckpoint(store: PostgresStore, group: string, streamId: string, start: number): Promise<CheckpointRecord | undefined> {
  const r = await store.withClient((c) =>
    c.query<{ run_id: string | null; status: string }>('SELECT run_id, status FROM work_segments WHERE grp = $1 AND stream = $2 AND end_offset = $3', [group, streamId, start]),
  );
  const row = r.rows[0];
  if (row === undefined) return undefined;
  if (row.status !== 'done' || row.run_id === null) {
    throw new ProvenantError('STORE_BUSY', `segment ${start} of ${streamId} cannot start: the segment before it is not done`, {
      hint: 'Nothing to do: it is taken again once the segment before it is done.',
      context: { stream: streamId, start },
      retryable: true,
    });
  }
  const chain = await runChain(store, row.run_id);
  const last = [...chain].reverse().find((c) => c.status === 'COMPLETE');
  if (last === undefined) {
    throw new ProvenantError('CHECKPOINT_INVALID', `the segment before ${start} of ${streamId} (run ${row.run_id}) has no COMPLETE checkpoint to continue from`, {
      context: { stream: streamId, start, runId: row.run_id },
    });
  }
  return last;
}

/** Run `fn` while renewing the lease every third of its length. */
async function withLease<T>(store: PostgresStore, kind: 'segment' | 'job', key: { group?: string; streamId?: string; start?: number; id?: string }, workerId: string, leaseMs: number, fn: () => Promise<T>): Promise<T> {
  const renew = (): void => {
    const q =
      kind === 'segment'
        ? store.pool.query(`UPDATE work_segments SET lease_until = ${NOW_US} + $5::bigint WHERE grp = $1 AND stream = $2 AND start_offset = $3 AND worker = $4 AND status = 'running'`, [
            key.group,
            key.streamId,
            key.start,
            workerId,
            leaseMs * 1000,
          ])
        : store.pool.query(`UPDATE jobs SET lease_until = ${NOW_US} + $3::bigint WHERE id = $1 AND worker = $2 AND status = 'running'`, [key.id, workerId, leaseMs * 1000]);
    // A renewal lost to a restart is retried at the next tick; the lease is three ticks long.
    q.catch(() => undefined);
  };
  const timer = setInterval(renew, Math.max(100, Math.floor(leaseMs / 3)));
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

/** Process one segment as one checkpoint of a run of its own; mark it done once that checkpoint is COMPLETE. */
async function processSegment(
  store: PostgresStore,
  pipeline: LoadedPipeline,
  source: JetStreamSource,
  group: string,
  segment: SegmentRow,
  workerId: string,
  stepCache: Map<string, LoadedStep>,
  ordered: boolean,
): Promise<{ runId: string | null; records: number }> {
  const { start_offset: start, end_offset: end } = segment;
  // A previous holder may have committed the checkpoint and died before marking the segment done.
  const previous = await completeCheckpointOf(store, group, source.streamId, start);
  // Earlier attempts that died left their run open and its checkpoint IN_PROGRESS: end them.
  if (segment.attempts > 1) {
    await closeAbandonedAttempts(store, group, source.streamId, start, previous, `the worker's lease on segment ${start} of ${source.streamId} passed before this checkpoint completed; worker ${workerId} took the segment over`);
  }
  let runId = previous;
  let records = 0;
  // The fence: the segment's checkpoint commits only while this worker still holds the segment (the
  // row is locked inside the commit's transaction), so a worker whose lease was taken over while it
  // was slow cannot complete the segment a second time.
  store.setCommitGuard(async (client) => {
    const held = await client.query(`SELECT 1 FROM work_segments WHERE grp = $1 AND stream = $2 AND start_offset = $3 AND worker = $4 AND status = 'running' FOR UPDATE`, [
      group,
      source.streamId,
      start,
      workerId,
    ]);
    if (held.rowCount === 0) {
      throw new ProvenantError('STORE_BUSY', `segment ${start}..${end} of ${source.streamId} was taken over by another worker; this worker's attempt is not committed`, {
        hint: 'Nothing to do: the other worker processes the segment. Raise --lease if workers are often slower than it.',
        context: { stream: source.streamId, start, end, worker: workerId, lostLease: true },
      });
    }
  });
  if (runId === null) {
    // State through the stream: this segment starts where the one before it ended.
    const continueFrom = ordered ? await previousSegmentCheckpoint(store, group, source.streamId, start) : undefined;
    let result: PipelineResult;
    for (let attempt = 1; ; attempt++) {
      try {
        // The attempt cut before left its run open and its checkpoint IN_PROGRESS: end them first.
        if (attempt > 1) {
          await closeAbandonedAttempts(store, group, source.streamId, start, null, `the connection to the store was lost during this attempt at segment ${start} of ${source.streamId}; worker ${workerId} did the segment again`);
        }
        result = await runPipeline(store, pipeline.definition, source, {
          baseDir: pipeline.baseDir,
          from: start,
          to: end,
          // One checkpoint for the whole segment: it commits with all of its executions, or not at all.
          checkpoint: { everyRecords: end - start + 1, intervalMs: 2 ** 31 - 1, maxExecutions: Number.MAX_SAFE_INTEGER },
          context: { source: 'worker', principal: workerId },
          runOptions: { worker: { group, stream: source.streamId, segment: start, end, worker: workerId } },
          stepCache,
          ...(continueFrom === undefined ? {} : { continueFrom }),
        });
        break;
      } catch (err) {
        if (lostLease(err)) {
          store.setCommitGuard(undefined);
          return { runId: null, records: 0 };
        }
        // A run cut by a lost connection leaves an unfinished checkpoint; the segment is done again by a new run.
        if (!(err instanceof ProvenantError && err.retryable) || attempt >= 5) throw err;
        await sleep(500 * attempt);
      }
    }
    runId = result.runId;
    records = result.records;
  }
  store.setCommitGuard(undefined);
  await store.withClient(async (c) => {
    await c.query(`UPDATE work_segments SET status = 'done', run_id = $4, lease_until = NULL WHERE grp = $1 AND stream = $2 AND start_offset = $3 AND worker = $5`, [
      group,
      source.streamId,
      start,
      runId,
      workerId,
    ]);
    // Workers waiting for it (the next segment in order, or the end of a --drain) look again now.
    await notifyWork(c, store.schema);
  });
  return { runId, records };
}

/**
 * End what earlier attempts at a segment left open (a dead worker's, or this worker's own attempt
 * cut by a lost connection): each IN_PROGRESS checkpoint FAILED ("abandoned: <why>", no executions
 * — none of them committed) and each run `failed`. The run that completed the segment, if any, is
 * left alone.
 */
async function closeAbandonedAttempts(store: PostgresStore, group: string, streamId: string, start: number, completedRunId: string | null, why: string): Promise<void> {
  const r = await store.withClient((c) =>
    c.query<{ id: string }>(
      `SELECT r.id FROM runs r LEFT JOIN run_ends e ON e.run = r.seq
       WHERE e.run IS NULL AND (r.options::jsonb -> 'worker' ->> 'group') = $1 AND (r.options::jsonb -> 'worker' ->> 'segment')::bigint = $2
         AND ((r.options::jsonb -> 'worker' ->> 'stream') = $3
              OR ((r.options::jsonb -> 'worker' ->> 'stream') IS NULL AND EXISTS (SELECT 1 FROM checkpoints c WHERE c.run = r.seq AND c.stream = $3)))`,
      [group, start, streamId],
    ),
  );
  for (const { id: runId } of r.rows) {
    if (runId === completedRunId) continue;
    for (const c of await store.listCheckpoints({ runId })) if (c.status === 'IN_PROGRESS') await endAbandoned(store, c, why);
    await store.endRun({ runId, endedUs: nowUs(), status: 'failed', summary: { reason: `abandoned: ${why}` } }).catch((err: unknown) => {
      if (!(err instanceof ProvenantError && err.code === 'RUN_CLOSED')) throw err;
    });
  }
}

/** The run of a COMPLETE checkpoint of this group starting at `start`, or null. */
async function completeCheckpointOf(store: PostgresStore, group: string, streamId: string, start: number): Promise<string | null> {
  const r = await store.withClient((c) =>
    c.query<{ id: string }>(
      `SELECT r.id FROM checkpoints c JOIN checkpoint_ends e ON e.checkpoint = c.seq JOIN runs r ON r.seq = c.run
       WHERE c.stream = $1 AND c.start_offset = $2 AND e.status = 'COMPLETE' AND (r.options::jsonb -> 'worker' ->> 'group') = $3 LIMIT 1`,
      [streamId, start, group],
    ),
  );
  return r.rows[0]?.id ?? null;
}

/** Whether every offset of the stream is in a done segment and no job waits. */
async function drained(store: PostgresStore, source: JetStreamSource, group: string, streamId: string): Promise<boolean> {
  const { lastSeq } = await source.bounds();
  const r = await store.withClient((c) =>
    c.query<{ pending: number; covered: number | null; jobs: number }>(
      `SELECT (SELECT count(*) FROM work_segments WHERE grp = $1 AND stream = $2 AND status <> 'done') AS pending,
              (SELECT max(end_offset) FROM work_segments WHERE grp = $1 AND stream = $2) AS covered,
              (SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')) AS jobs`,
      [group, streamId],
    ),
  );
  const row = r.rows[0];
  return row !== undefined && row.pending === 0 && row.jobs === 0 && (row.covered ?? 0) > lastSeq;
}

// ---- jobs ---------------------------------------------------------------------------------------

/** A replay (verify) queued for the workers. `kind` may be left out. */
export interface ReplayJobSpec {
  readonly kind?: 'replay';
  readonly streamId: string;
  readonly runId?: string;
  readonly from?: string;
  readonly to?: string;
}

/** A what-if queued for the workers: recorded step versions (and params) substituted over a range. */
export interface WhatIfJobSpec {
  readonly kind: 'whatif';
  readonly streamId: string;
  readonly runId?: string;
  readonly from?: string;
  readonly to?: string;
  /** Per step: a recorded version to run instead, and/or params to set. */
  readonly substitutions: Readonly<Record<string, { readonly versionHash?: ContentHash; readonly params?: Readonly<Record<string, JsonValue>> }>>;
  readonly label?: string;
}

/** An as-of read queued for the workers: the object as it was at `asOfMs`, recomputed if need be. */
export interface AsOfJobSpec {
  readonly kind: 'asof';
  readonly objectId: string;
  /** Epoch milliseconds. */
  readonly asOfMs: number;
}

/** What a job does. */
export type JobSpec = ReplayJobSpec | WhatIfJobSpec | AsOfJobSpec;

/** A job as listed. */
export interface JobInfo {
  readonly id: string;
  readonly kind: 'replay' | 'whatif' | 'asof';
  readonly spec: JobSpec;
  readonly status: 'queued' | 'running' | 'done' | 'failed';
  readonly attempts: number;
  readonly maxAttempts: number;
  readonly worker: string | null;
  readonly submittedUs: number;
  readonly startedUs: number | null;
  readonly finishedUs: number | null;
  readonly result: JsonValue;
  readonly error: string | null;
}

interface JobRow {
  id: string;
  kind: string;
  spec: string;
  status: string;
  attempts: number;
  max_attempts: number;
  worker: string | null;
  submitted: number;
  started: number | null;
  finished: number | null;
  result: string | null;
  error: string | null;
}

const JOB_COLUMNS = 'id::text AS id, kind, spec, status, attempts, max_attempts, worker, submitted, started, finished, result, error';

function toJob(row: JobRow): JobInfo {
  return {
    id: row.id,
    kind: row.kind as JobInfo['kind'],
    spec: JSON.parse(row.spec) as JobSpec,
    status: row.status as JobInfo['status'],
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    worker: row.worker,
    submittedUs: row.submitted,
    startedUs: row.started,
    finishedUs: row.finished,
    result: row.result === null ? null : (JSON.parse(row.result) as JsonValue),
    error: row.error,
  };
}

/**
 * Queue a job for the workers — a replay (verify), a what-if or an as-of read; returns the job.
 * @throws ProvenantError INPUT_INVALID for a malformed spec (before anything is queued)
 */
export async function submitJob(store: Store, spec: JobSpec, maxAttempts = 3): Promise<JobInfo> {
  const pgStore = requirePostgres(store, 'queuing a job');
  const kind = spec.kind ?? 'replay';
  if (kind === 'asof') {
    const a = spec as AsOfJobSpec;
    validateObjectId(a.objectId);
    if (!Number.isSafeInteger(a.asOfMs) || a.asOfMs < 0) throw new ProvenantError('INPUT_INVALID', `as-of time ${String(a.asOfMs)} is not epoch milliseconds`, { context: { objectId: a.objectId } });
  }
  if (kind === 'whatif') {
    const w = spec as WhatIfJobSpec;
    if (Object.keys(w.substitutions).length === 0) {
      throw new ProvenantError('INPUT_INVALID', 'a what-if job needs at least one substitution', { hint: 'Give --substitute <stepId>=<versionHash> (a recorded version, see `provenant steps`).', context: { streamId: w.streamId } });
    }
  }
  const id = newId();
  // One transaction: the notification goes out when the job is there, and a connection lost
  // before the commit leaves nothing behind for the retry to collide with.
  const r = await pgStore.withClient((c) =>
    inTransaction(c, async () => {
      const inserted = await c.query<JobRow>(
        `INSERT INTO jobs (id, kind, spec, status, max_attempts, submitted) VALUES ($1, $2, $3, 'queued', $4, ${NOW_US}) RETURNING ${JOB_COLUMNS}`,
        [id, kind, canonicalize(spec as unknown as JsonValue), maxAttempts],
      );
      // An idle worker takes it now rather than at its next poll.
      await notifyWork(c, pgStore.schema);
      return inserted;
    }),
  );
  return toJob(r.rows[0] as JobRow);
}

/** Jobs, newest first. */
export async function listJobs(store: Store, limit = 100): Promise<JobInfo[]> {
  const pgStore = requirePostgres(store, 'listing jobs');
  const r = await pgStore.withClient((c) => c.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs ORDER BY submitted DESC, id DESC LIMIT $1`, [limit]));
  return r.rows.map(toJob);
}

/** One job, or undefined. */
export async function getJob(store: Store, id: string): Promise<JobInfo | undefined> {
  const pgStore = requirePostgres(store, 'showing a job');
  if (!/^[0-9a-f-]{36}$/.test(id)) return undefined;
  const r = await pgStore.withClient((c) => c.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE id = $1`, [id]));
  const row = r.rows[0];
  return row === undefined ? undefined : toJob(row);
}

async function claimJob(store: PostgresStore, workerId: string, leaseMs: number): Promise<JobRow | undefined> {
  const r = await store.withClient((c) =>
    c.query<JobRow>(
      `WITH f AS MATERIALIZED (
         SELECT id FROM jobs
         WHERE (status = 'queued' OR (status = 'running' AND lease_until < ${NOW_US})) AND attempts < max_attempts
         ORDER BY submitted LIMIT 1 FOR UPDATE SKIP LOCKED)
       UPDATE jobs j SET status = 'running', worker = $1, lease_until = ${NOW_US} + $2::bigint, attempts = j.attempts + 1, started = ${NOW_US}
       FROM f WHERE j.id = f.id
       RETURNING j.id::text AS id, j.kind, j.spec, j.status, j.attempts, j.max_attempts, j.worker, j.submitted, j.started, j.finished, j.result, j.error`,
      [workerId, leaseMs * 1000],
    ),
  );
  return r.rows[0];
}

async function runJob(store: PostgresStore, job: JobRow, workerId: string): Promise<{ status: 'done' | 'failed' | 'queued'; error?: string }> {
  const spec = JSON.parse(job.spec) as JobSpec;
  const context = { source: 'worker', principal: workerId };
  try {
    let summary: unknown;
    if (job.kind === 'asof') {
      const a = spec as AsOfJobSpec;
      const r = await getAsOf(store, a.objectId, a.asOfMs, { context });
      summary = { objectId: r.objectId, asOf: new Date(a.asOfMs).toISOString(), versionId: r.version.versionId, contentHash: r.contentHash, contentType: r.contentType, bytes: r.bytes.byteLength, obtained: r.obtained, executionsRun: r.executionsRun, cacheHits: r.cacheHits };
    } else {
      const range = {
        streamId: (spec as ReplayJobSpec).streamId,
        ...((spec as ReplayJobSpec).runId === undefined ? {} : { runId: (spec as ReplayJobSpec).runId as string }),
        ...((spec as ReplayJobSpec).from === undefined ? {} : { from: (spec as ReplayJobSpec).from as string }),
        ...((spec as ReplayJobSpec).to === undefined ? {} : { to: (spec as ReplayJobSpec).to as string }),
      };
      if (job.kind === 'whatif') {
        const w = spec as WhatIfJobSpec;
        const result = await whatIf(store, {
          ...range,
          substitutions: Object.fromEntries(
            Object.entries(w.substitutions).map(([stepId, sub]) => [stepId, { ...(sub.versionHash === undefined ? {} : { code: { versionHash: sub.versionHash } }), ...(sub.params === undefined ? {} : { params: sub.params }) }]),
          ),
          ...(w.label === undefined ? {} : { label: w.label }),
          context,
          maxRecordDiffs: 100,
        });
        summary = result;
      } else {
        const { divergences: _d, ...rest } = await replay(store, { ...range, context });
        summary = rest;
      }
    }
    await endJob(store, `UPDATE jobs SET status = 'done', finished = ${NOW_US}, result = $2, lease_until = NULL, error = NULL WHERE id = $1 AND worker = $3`, [
      job.id,
      JSON.stringify(summary),
      workerId,
    ]);
    return { status: 'done' };
  } catch (err) {
    const message = errorMessage(err);
    const status = job.attempts >= job.max_attempts ? 'failed' : 'queued';
    await endJob(store, `UPDATE jobs SET status = $2, error = $3, finished = ${NOW_US}, lease_until = NULL WHERE id = $1 AND worker = $4`, [job.id, status, message, workerId]);
    return { status, error: message };
  }
}

/** Record how a job ended (or that it is queued again), and wake the idle workers: a draining one may be waiting for it. */
async function endJob(store: PostgresStore, sql: string, values: unknown[]): Promise<void> {
  await store.withClient(async (c) => {
    await c.query(sql, values);
    await notifyWork(c, store.schema);
  });
}

/** Whether an error (or one it was caused by) says the segment's lease was taken over. */
function lostLease(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof ProvenantError && e.context.lostLease === true) return true;
  }
  return false;
}

/** The connection string of a store's pool (the wake-up listener opens its own connection). */
function connectionStringOf(store: PostgresStore): string {
  const cs = store.pool.options.connectionString;
  if (cs === undefined) throw new TypeError('the store pool has no connection string');
  return cs;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

