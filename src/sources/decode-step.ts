/**
 * The built-in `provenant.decode` step: how a malformed source record is recorded. Well-formed
 * records are decoded by the source readers directly (no execution per record); a record they
 * cannot decode is passed, raw, through this step, whose stored artifact decodes it again and
 * fails with the reason — so the failure is an execution like any other (with its input, error
 * and offset, dead-lettered), and `provenant reexecute` reproduces it from the stored code.
 */
import { sha256 } from '../hash/canonical.js';
import { nowUs } from '../ids.js';
import type { Store } from '../store/store.js';
import { ARTIFACT_GLOBAL } from '../step/bundle.js';
import { loadStep, type LoadedStep } from '../step/runtime.js';
import { PROVENANT_VERSION } from '../version.js';

/** The step id under which malformed records are recorded. */
export const DECODE_STEP_ID = 'provenant.decode';

/**
 * The decoder's code. Input: the raw record (its text for JSON sources; the cells of a CSV row).
 * Params: `{ format, reason }`, the reader's reason for refusing it. Text is parsed as JSON
 * again (so the recorded error is the parser's); other records fail with the reader's reason.
 */
const DECODE_ARTIFACT = `var ${ARTIFACT_GLOBAL} = (() => {
  function decode(raw, params) {
    if (typeof raw === 'string' && params.format !== 'csv' && params.format !== 'unhashable') {
      try {
        return JSON.parse(raw);
      } catch (err) {
        throw new Error('not valid JSON: ' + err.message);
      }
    }
    throw new Error(String(params.reason));
  }
  return { default: decode };
})();
`;

/** Store and register the decode step (idempotent) and load it from the store. */
export async function prepareDecodeStep(store: Store, runId: string | null): Promise<LoadedStep> {
  const bytes = Buffer.from(DECODE_ARTIFACT, 'utf8');
  const versionHash = sha256(bytes);
  await store.putBlob(bytes);
  await store.registerStepVersion({
    stepId: DECODE_STEP_ID,
    versionHash,
    manifest: { format: 'provenant-step/1', module: 'provenant:decode', export: 'default', files: [], packages: [], bundler: `provenant@${PROVENANT_VERSION}` },
    firstSeenUs: nowUs(),
    firstRunId: runId,
  });
  return loadStep(store, DECODE_STEP_ID, versionHash);
}
