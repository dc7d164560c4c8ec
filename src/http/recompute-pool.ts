/**
 * The server's recomputation workers (see `recompute-worker.ts`): a fixed number of threads, each
 * with a heap limit, answering one as-of read at a time; requests wait in a bounded queue. A
 * request past its time budget has its thread terminated (and replaced) and fails with
 * BUDGET_EXCEEDED; so does one whose thread runs out of heap. The server itself is untouched.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ProvenantError, type ErrorCode } from '../errors.js';
import type { RecomputeReply, RecomputeRequest } from './recompute-worker.js';

/** Limits of the pool. */
export interface RecomputePoolLimits {
  readonly workers: number;
  readonly queue: number;
  readonly timeoutMs: number;
  readonly memoryMb: number;
}

type Success = Extract<RecomputeReply, { ok: true }>;

interface Pending {
  readonly request: Omit<RecomputeRequest, 'id'>;
  readonly resolve: (reply: Success) => void;
  readonly reject: (err: unknown) => void;
}

interface Slot {
  worker: Worker;
  busy: { id: number; pending: Pending; timer: NodeJS.Timeout } | undefined;
}

/** A pool of recomputation threads over one store. */
export class RecomputePool {
  readonly #storeDir: string;
  readonly #limits: RecomputePoolLimits;
  readonly #slots: Slot[] = [];
  readonly #queue: Pending[] = [];
  #next = 1;
  #closed = false;

  constructor(storeDir: string, limits: RecomputePoolLimits) {
    this.#storeDir = storeDir;
    this.#limits = limits;
    for (let i = 0; i < limits.workers; i++) this.#slots.push(this.#spawn());
  }

  /**
   * Run `getAsOf` in a worker.
   * @throws ProvenantError from getAsOf, or BUDGET_EXCEEDED (time, memory, queue full)
   */
  run(request: Omit<RecomputeRequest, 'id'>): Promise<Success> {
    if (this.#closed) return Promise.reject(new ProvenantError('STORE_BUSY', 'the server is closing'));
    if (this.#queue.length >= this.#limits.queue) {
      return Promise.reject(
        new ProvenantError('BUDGET_EXCEEDED', `${this.#queue.length} recomputations are already waiting; this one was not started`, { hint: 'Retry in a moment.', retryable: true }),
      );
    }
    return new Promise<Success>((resolve, reject) => {
      this.#queue.push({ request, resolve, reject });
      this.#pump();
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const p of this.#queue.splice(0)) p.reject(new ProvenantError('STORE_BUSY', 'the server is closing'));
    await Promise.all(this.#slots.map((s) => s.worker.terminate()));
  }

  #spawn(): Slot {
    const worker = new Worker(workerScript(), {
      workerData: { storeDir: this.#storeDir },
      // A small young generation: recomputations allocate short-lived values, and a large one
      // (V8 grows it under load up to this bound) would be resident memory the server keeps.
      resourceLimits: { maxOldGenerationSizeMb: this.#limits.memoryMb, maxYoungGenerationSizeMb: Math.min(16, Math.max(8, this.#limits.memoryMb / 4)) },
    });
    worker.unref();
    const slot: Slot = { worker, busy: undefined };
    worker.on('message', (reply: RecomputeReply) => {
      const busy = slot.busy;
      if (busy === undefined || busy.id !== reply.id) return;
      clearTimeout(busy.timer);
      slot.busy = undefined;
      if (reply.ok) busy.pending.resolve(reply);
      else {
        const e = reply.error;
        busy.pending.reject(new ProvenantError(e.code as ErrorCode, e.message, { ...(e.hint === undefined ? {} : { hint: e.hint }), ...(e.context === undefined ? {} : { context: e.context }) }));
      }
      this.#pump();
    });
    worker.on('error', (err: Error & { code?: string }) => {
      const oom = err.code === 'ERR_WORKER_OUT_OF_MEMORY';
      this.#fail(
        slot,
        oom
          ? new ProvenantError('BUDGET_EXCEEDED', `the recomputation used more than its memory budget of ${this.#limits.memoryMb} MiB and was stopped`, {
              hint: 'Pin the version (`provenant materialize`) so that it is read rather than recomputed, or ask the operator for a larger budget.',
            })
          : new ProvenantError('STORE_BUSY', `the recomputation thread failed: ${err.message}`, { retryable: true }),
      );
    });
    worker.on('exit', () => {
      if (slot.busy !== undefined) this.#fail(slot, new ProvenantError('STORE_BUSY', 'the recomputation thread stopped', { retryable: true }));
    });
    return slot;
  }

  /** Fail the slot's request, replace its thread. */
  #fail(slot: Slot, err: ProvenantError): void {
    const busy = slot.busy;
    slot.busy = undefined;
    if (busy !== undefined) {
      clearTimeout(busy.timer);
      busy.pending.reject(err);
    }
    void slot.worker.terminate();
    if (this.#closed) return;
    const index = this.#slots.indexOf(slot);
    if (index >= 0) this.#slots[index] = this.#spawn();
    this.#pump();
  }

  #pump(): void {
    for (const slot of this.#slots) {
      if (slot.busy !== undefined) continue;
      const pending = this.#queue.shift();
      if (pending === undefined) return;
      const id = this.#next++;
      const timeoutMs = pending.request.timeoutMs;
      const timer = setTimeout(() => {
        this.#fail(
          slot,
          new ProvenantError('BUDGET_EXCEEDED', `the recomputation ran past its time budget of ${timeoutMs} ms and was stopped`, {
            hint: 'Pin the version (`provenant materialize`) so that it is read rather than recomputed, or ask the operator for a larger --recompute-timeout.',
            retryable: true,
          }),
        );
      }, timeoutMs + 50);
      slot.busy = { id, pending, timer };
      slot.worker.postMessage({ ...pending.request, id });
    }
  }
}

function workerScript(): URL {
  const built = new URL('./recompute-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(built))) return built;
  return new URL('../../dist/http/recompute-worker.js', import.meta.url);
}
