/**
 * Replay and what-if jobs behind `POST /replays`: a request starts a job and returns its id at
 * once; the job runs in a worker thread with a heap limit and a time budget (see `job-worker.ts`),
 * at most `concurrency` at a time, the rest queued.
 *
 * Every change of a job (queued, running, progress at most every {@link PROGRESS_SNAPSHOT_MS},
 * completed or failed) is handed to `persist`, which the server appends to the store as a
 * snapshot; while a job is not over, a snapshot is also taken every {@link HEARTBEAT_MS}. So a
 * job outlives its server: after a restart (or from another server on the same store) it is read
 * back from its latest snapshot, and one that stopped getting snapshots — its server died — is
 * reported as interrupted ({@link storedJobView}). The runs jobs record are in the store for good
 * (`result.replayRunId` / `result.whatIfRunId`).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { newId } from '../ids.js';
import type { JsonValue } from '../hash/canonical.js';
import type { ExecutionContext } from '../store/records.js';
import type { Store } from '../store/store.js';

/** What a job is asked to do (also what its worker receives). */
export interface JobRequest {
  readonly storeDir: string;
  readonly mode: 'verify' | 'whatif';
  readonly streamId: string;
  readonly from?: string;
  readonly to?: string;
  readonly runId?: string;
  /** What-if: recorded versions and/or params per step (never code). */
  readonly substitutions?: Readonly<Record<string, { versionHash?: `sha256:${string}`; params?: Record<string, JsonValue> }>>;
  readonly label?: string;
  readonly context: ExecutionContext;
  readonly maxRecordDiffs: number;
}

/** Where a job is. */
export type JobStatus = 'queued' | 'running' | 'completed' | 'failed';

/** A job as `GET /replays/{id}` shows it. */
export interface JobView {
  readonly id: string;
  readonly mode: 'verify' | 'whatif';
  readonly streamId: string;
  readonly status: JobStatus;
  readonly principal: string;
  readonly createdAt: string;
  readonly startedAt: string | null;
  readonly endedAt: string | null;
  /** Counts so far (checkpoints, records, executions, diverged, and their totals). */
  readonly progress: JsonValue;
  /** The replay or what-if result, once completed. */
  readonly result: JsonValue;
  /** Why it failed: `{ code, message, hint? }`. */
  readonly error: JsonValue;
}

/** Limits of the job runner. */
export interface JobLimits {
  /** Jobs running at once. */
  readonly concurrency: number;
  /** Jobs waiting; beyond, new ones are refused (503). */
  readonly queue: number;
  /** Wall time a job may run. */
  readonly timeoutMs: number;
  /** Heap a job's thread may use (old generation), in MiB. */
  readonly memoryMb: number;
}

interface Job {
  view: { -readonly [K in keyof JobView]: JobView[K] };
  request: JobRequest;
  worker: Worker | undefined;
}

const KEEP_FINISHED = 1000;

/** Progress is snapshotted at most this often. */
export const PROGRESS_SNAPSHOT_MS = 2_000;
/** A job not over is snapshotted at least this often (its server's heartbeat). */
export const HEARTBEAT_MS = 15_000;
/** A stored job not over whose latest snapshot is older than this is reported as interrupted. */
export const INTERRUPTED_AFTER_MS = 4 * HEARTBEAT_MS;

/**
 * A job as read back from its latest stored snapshot (`atMs`: when it was taken). A job that was
 * queued or running when its last snapshot was taken, longer ago than {@link INTERRUPTED_AFTER_MS},
 * lost its server: it is reported as failed (`INTERRUPTED`), as it was last seen otherwise.
 */
export function storedJobView(view: JobView, atMs: number, nowMs = Date.now()): JobView {
  if ((view.status !== 'queued' && view.status !== 'running') || nowMs - atMs <= INTERRUPTED_AFTER_MS) return view;
  return {
    ...view,
    status: 'failed',
    error: {
      code: 'INTERRUPTED',
      message: `the server running this job stopped before it ended: nothing was recorded about it since ${new Date(atMs).toISOString()}, when it was ${view.status}`,
      hint: 'Submit the job again (POST /replays); the runs it recorded before it stopped stay in the store.',
    },
  };
}

/** The jobs of one server. */
export class JobRunner {
  readonly #jobs = new Map<string, Job>();
  readonly #queue: Job[] = [];
  readonly #limits: JobLimits;
  readonly #onEnd: (view: JobView) => void;
  readonly #persist: (view: JobView) => void;
  readonly #heartbeat: NodeJS.Timeout;
  #running = 0;
  #closed = false;

  /**
   * @param onEnd called once when a job completes or fails
   * @param persist called with a copy of a job's view at each change and heartbeat (must not throw)
   */
  constructor(limits: JobLimits, onEnd: (view: JobView) => void, persist: (view: JobView) => void = () => undefined) {
    this.#limits = limits;
    this.#onEnd = onEnd;
    this.#persist = persist;
    this.#heartbeat = setInterval(() => {
      for (const job of this.#jobs.values()) if (job.view.status === 'queued' || job.view.status === 'running') this.#persist({ ...job.view });
    }, HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  /** Whether another job can be accepted now. */
  get full(): boolean {
    return this.#queue.length >= this.#limits.queue;
  }

  /** Accept a job; it runs as soon as a slot is free. */
  submit(request: JobRequest, principal: string): JobView {
    const job: Job = {
      view: {
        id: newId(),
        mode: request.mode,
        streamId: request.streamId,
        status: 'queued',
        principal,
        createdAt: new Date().toISOString(),
        startedAt: null,
        endedAt: null,
        progress: null,
        result: null,
        error: null,
      },
      request,
      worker: undefined,
    };
    this.#jobs.set(job.view.id, job);
    this.#queue.push(job);
    this.#persist({ ...job.view });
    this.#pump();
    return { ...job.view };
  }

  /** A job by id, or undefined. */
  get(id: string): JobView | undefined {
    const job = this.#jobs.get(id);
    return job === undefined ? undefined : { ...job.view };
  }

  /** Stop every running job and refuse new ones; jobs not over are recorded as interrupted. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#heartbeat);
    this.#queue.length = 0;
    const endedAt = new Date().toISOString();
    for (const job of this.#jobs.values()) {
      if (job.view.status !== 'queued' && job.view.status !== 'running') continue;
      job.view.status = 'failed';
      job.view.endedAt = endedAt;
      job.view.error = { code: 'INTERRUPTED', message: 'the server stopped before the job ended', hint: 'Submit the job again (POST /replays); the runs it recorded before it stopped stay in the store.' };
      this.#persist({ ...job.view });
    }
    await Promise.all([...this.#jobs.values()].flatMap((j) => (j.worker === undefined ? [] : [j.worker.terminate()])));
  }

  #pump(): void {
    while (!this.#closed && this.#running < this.#limits.concurrency && this.#queue.length > 0) {
      const job = this.#queue.shift() as Job;
      this.#start(job);
    }
  }

  #start(job: Job): void {
    this.#running++;
    job.view.status = 'running';
    job.view.startedAt = new Date().toISOString();
    this.#persist({ ...job.view });
    let settled = false;
    let progressSnapshotAt = Date.now();
    const finish = (outcome: { result: JsonValue } | { error: JsonValue }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // After close(), which recorded the job as interrupted, the thread's exit changes nothing.
      if (this.#closed) return;
      if ('result' in outcome) {
        job.view.status = 'completed';
        job.view.result = outcome.result;
      } else {
        job.view.status = 'failed';
        job.view.error = outcome.error;
      }
      job.view.endedAt = new Date().toISOString();
      const worker = job.worker;
      job.worker = undefined;
      void worker?.terminate();
      this.#running--;
      this.#forgetOld();
      this.#persist({ ...job.view });
      this.#onEnd({ ...job.view });
      this.#pump();
    };
    const worker = new Worker(jobWorkerScript(), {
      workerData: job.request,
      resourceLimits: { maxOldGenerationSizeMb: this.#limits.memoryMb, maxYoungGenerationSizeMb: Math.min(64, Math.max(8, this.#limits.memoryMb / 4)) },
    });
    job.worker = worker;
    const timer = setTimeout(() => {
      finish({
        error: {
          code: 'BUDGET_EXCEEDED',
          message: `the job ran past its time budget of ${this.#limits.timeoutMs} ms and was stopped`,
          hint: 'Replay a smaller range of checkpoints (from/to), or ask the operator for a larger --job-timeout.',
        },
      });
    }, this.#limits.timeoutMs);
    worker.on('message', (msg: { type: 'progress'; progress: JsonValue } | { type: 'result'; result: JsonValue } | { type: 'error'; error: JsonValue }) => {
      if (msg.type === 'progress') {
        job.view.progress = msg.progress;
        if (Date.now() - progressSnapshotAt >= PROGRESS_SNAPSHOT_MS) {
          progressSnapshotAt = Date.now();
          this.#persist({ ...job.view });
        }
      }
      else if (msg.type === 'result') finish({ result: msg.result });
      else finish({ error: msg.error });
    });
    worker.on('error', (err: Error & { code?: string }) => {
      const oom = err.code === 'ERR_WORKER_OUT_OF_MEMORY';
      finish({
        error: oom
          ? { code: 'BUDGET_EXCEEDED', message: `the job used more than its memory budget of ${this.#limits.memoryMb} MiB and was stopped`, hint: 'Replay a smaller range of checkpoints, or ask the operator for a larger --job-memory.' }
          : { code: 'INTERNAL', message: err.message },
      });
    });
    worker.on('exit', (code) => finish({ error: { code: 'INTERNAL', message: `the job's thread exited (code ${code}) before it answered` } }));
  }

  #forgetOld(): void {
    if (this.#jobs.size <= KEEP_FINISHED) return;
    for (const [id, job] of this.#jobs) {
      if (this.#jobs.size <= KEEP_FINISHED) break;
      if (job.view.status === 'completed' || job.view.status === 'failed') this.#jobs.delete(id);
    }
  }
}

/**
 * A job by id: this server's own from memory; any other (an earlier server's, or another server's
 * on the same store) from its latest stored snapshot (see {@link storedJobView}). Undefined when
 * no job has that id.
 */
export async function findJob(jobs: JobRunner, store: Store, id: string): Promise<JobView | undefined> {
  const mine = jobs.get(id);
  if (mine !== undefined) return mine;
  const stored = await store.latestReplayJobSnapshot(id);
  return stored === undefined ? undefined : storedJobView(stored.view as unknown as JobView, stored.atUs / 1000);
}

/** The worker's script next to this module when built; else the build in dist/ (running from sources, as tests do). */
function jobWorkerScript(): URL {
  const built = new URL('./job-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(built))) return built;
  return new URL('../../dist/http/job-worker.js', import.meta.url);
}
