/**
 * A recomputation worker of the HTTP server: as-of reads that must run code (versions whose bytes
 * are not kept, on-read transforms) run here, in a thread with a heap limit that the server
 * terminates at the request's time budget — a step that loops or allocates without end costs
 * that request a 503, never the server. The thread opens the store itself and answers one request
 * at a time.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ProvenantError } from '../errors.js';
import type { JsonValue } from '../hash/canonical.js';
import { getAsOf } from '../objects/asof.js';
import { openStore } from '../store/open.js';
import { SERVER_CACHE_MIB } from './memory.js';
import type { ExecutionContext } from '../store/records.js';

/** A request to the worker. */
export interface RecomputeRequest {
  readonly id: number;
  readonly objectId: string;
  readonly asOfMs: number;
  readonly transform?: string;
  readonly params?: JsonValue;
  readonly context?: ExecutionContext;
  readonly timeoutMs: number;
  readonly maxExecutions: number;
  readonly maxBytes: number;
}

/** The worker's answer. */
export type RecomputeReply =
  | {
      readonly id: number;
      readonly ok: true;
      readonly bytes: Uint8Array;
      readonly contentType: string;
      readonly contentHash: string;
      readonly obtained: 'read' | 'recomputed';
      readonly executionsRun: number;
      readonly cacheHits: number;
      readonly versionId: string;
      readonly validFrom: string;
      readonly transformExecutionId?: string;
    }
  | { readonly id: number; readonly ok: false; readonly error: { code: string; message: string; hint?: string; context?: Record<string, unknown> } };

const port = parentPort;
const { storeDir } = workerData as { storeDir: string };
const opened = openStore(storeDir, { create: false, writerThread: false, cacheMiB: SERVER_CACHE_MIB });

port?.on('message', (req: RecomputeRequest) => {
  void (async () => {
    try {
      const store = await opened;
      const r = await getAsOf(store, req.objectId, req.asOfMs, {
        budget: { timeoutMs: req.timeoutMs, maxExecutions: req.maxExecutions, maxBytes: req.maxBytes },
        ...(req.transform === undefined ? {} : { transform: req.transform, params: req.params ?? {}, context: req.context ?? {} }),
      });
      const bytes = new Uint8Array(r.bytes); // a copy we may transfer
      const reply: RecomputeReply = {
        id: req.id,
        ok: true,
        bytes,
        contentType: r.contentType,
        contentHash: r.contentHash,
        obtained: r.obtained,
        executionsRun: r.executionsRun,
        cacheHits: r.cacheHits,
        versionId: r.version.versionId,
        validFrom: r.version.validFrom,
        ...(r.transformExecutionId === undefined ? {} : { transformExecutionId: r.transformExecutionId }),
      };
      port.postMessage(reply, [bytes.buffer as ArrayBuffer]);
    } catch (err) {
      const error =
        err instanceof ProvenantError
          ? { code: err.code, message: err.message, ...(err.hint === undefined ? {} : { hint: err.hint }), context: { ...err.context } }
          : { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) };
      port.postMessage({ id: req.id, ok: false, error } satisfies RecomputeReply);
    }
  })();
});
