/**
 * A replay or what-if job, run in a worker thread of the server: it opens the store itself, runs
 * the library function, posts progress as it goes and the result at the end. The thread has a
 * heap limit (`resourceLimits`) and the server terminates it at its time budget, so a job that
 * runs away ends with an error instead of taking the server down.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openStore } from '../store/open.js';
import { replay } from '../replay/range.js';
import { whatIf } from '../whatif/whatif.js';
import { ProvenantError } from '../errors.js';
import type { JobRequest } from './jobs.js';

const request = workerData as JobRequest;
const port = parentPort;

async function main(): Promise<void> {
  if (port === null) return;
  const store = await openStore(request.storeDir, { create: false });
  try {
    const onProgress = (progress: unknown): void => port.postMessage({ type: 'progress', progress });
    const range = {
      ...(request.from === undefined ? {} : { from: request.from }),
      ...(request.to === undefined ? {} : { to: request.to }),
      ...(request.runId === undefined ? {} : { runId: request.runId }),
    };
    if (request.mode === 'verify') {
      const result = await replay(store, { streamId: request.streamId, ...range, verify: true, context: request.context, onProgress, progressEvery: 500 });
      port.postMessage({ type: 'result', result });
    } else {
      const result = await whatIf(store, {
        streamId: request.streamId,
        ...range,
        // The API names recorded versions only (never code): { versionHash, params } → { code: { versionHash }, params }.
        substitutions: Object.fromEntries(
          Object.entries(request.substitutions ?? {}).map(([stepId, sub]) => [
            stepId,
            { ...(sub.versionHash === undefined ? {} : { code: { versionHash: sub.versionHash } }), ...(sub.params === undefined ? {} : { params: sub.params }) },
          ]),
        ),
        ...(request.label === undefined ? {} : { label: request.label }),
        context: request.context,
        onProgress,
        progressEvery: 500,
        maxRecordDiffs: request.maxRecordDiffs,
      });
      port.postMessage({ type: 'result', result });
    }
  } finally {
    await store.close();
  }
}

main().catch((err: unknown) => {
  const e = err instanceof ProvenantError ? { code: err.code, message: err.message, hint: err.hint, context: err.context } : { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) };
  port?.postMessage({ type: 'error', error: e });
});
