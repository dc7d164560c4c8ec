/**
 * Re-executing one recorded execution: its step version loaded from the stored artifact, its
 * recorded input and params, and its recorded clock reads, random draws and HTTP answers fed back
 * (no network is used), so that a deterministic step reproduces its recorded output bit for bit.
 * The outcome is data: whether the output hash matches, and if not, why.
 */
import { ProvenantError } from '../errors.js';
import { decodeValue, encodeValue, type ContentHash } from '../hash/canonical.js';
import type { Store } from '../store/store.js';
import { ReplayTape, withTape, type NondeterminismRecord } from '../step/determinism.js';
import { loadStep, type StepContext } from '../step/runtime.js';
import { thrownMessage } from '../step/call.js';

/** Why a re-execution did not reproduce the recorded output. */
export type DivergenceCause =
  /** The step read the clock or randomness, or made HTTP calls, differently than at capture. */
  | 'nondeterminism'
  /** The output differs although every recorded read was fed back: nondeterminism that was not recorded. */
  | 'unrecorded-nondeterminism'
  /** The step failed at replay (or succeeded where it had failed). */
  | 'outcome-changed';

/** The result of re-executing one execution. */
export interface ReexecutionResult {
  readonly executionId: string;
  readonly stepId: string;
  readonly versionHash: ContentHash;
  readonly recordedOutputHash: ContentHash | null;
  readonly replayedOutputHash: ContentHash | null;
  /** True when the replay reproduced the recorded outcome (same output hash, or failed again). */
  readonly matches: boolean;
  readonly cause: DivergenceCause | null;
  /** The replayed output (decoded canonical form), or null when it failed. */
  readonly output: unknown;
  /** The error the replay raised, if it failed. */
  readonly error: string | null;
}

/**
 * Re-execute a recorded execution with its recorded code, input, params and nondeterminism.
 * @throws ProvenantError NOT_FOUND for an unknown execution; STEP_NOT_FOUND, ARTIFACT_MISSING,
 * ARTIFACT_CORRUPT, BLOB_MISSING, BLOB_CORRUPT when what it needs is not intact.
 */
export async function reexecute(store: Store, executionId: string): Promise<ReexecutionResult> {
  const e = await store.getExecution(executionId);
  if (e === undefined) {
    throw new ProvenantError('NOT_FOUND', `no execution ${executionId} in ${store.location}`, { context: { executionId } });
  }
  const step = await loadStep(store, e.functionId, e.functionVersionHash);
  const inputs = await Promise.all(e.inputHashes.map(async (h, i) => decodeValue(await store.getBlob(h), e.inputEncodings[i] ?? 'json')));
  const params = decodeValue(await store.getBlob(e.paramsHash), 'json');
  const recorded = e.nondeterminismHash === null ? null : (decodeValue(await store.getBlob(e.nondeterminismHash), 'json') as NondeterminismRecord);
  const tape = new ReplayTape(recorded, `execution ${e.id} (step ${e.functionId})`);
  const ctx: StepContext = { stepId: e.functionId, versionHash: e.functionVersionHash, executionId: e.id, runId: e.runId, context: e.context };
  const input = inputs.length === 1 ? inputs[0] : inputs;

  let output: unknown = null;
  let outputHash: ContentHash | null = null;
  let error: unknown;
  try {
    output = await withTape(tape, () => step.fn(input, params, ctx));
    // A fetch left pending, or a divergence the step caught (a fetch's rejection), fails the call.
    const violation = tape.close();
    if (violation !== undefined) throw violation;
    outputHash = encodeValue(output).hash;
  } catch (err) {
    tape.close();
    error = err;
  }
  const failedBefore = e.status === 'failed';
  const recordedError = e.errorHash === null ? null : (decodeValue(await store.getBlob(e.errorHash), 'json') as { message?: string });
  const message = error === undefined ? null : thrownMessage(error);
  // A failed execution is reproduced when the replay fails with the same message.
  const matches = failedBefore ? message !== null && message === recordedError?.message : error === undefined && outputHash === e.outputHash;
  let cause: DivergenceCause | null = null;
  if (!matches) {
    if (tape.diverged) cause = 'nondeterminism';
    else if (failedBefore || error !== undefined) cause = 'outcome-changed';
    else cause = 'unrecorded-nondeterminism';
  }
  return {
    executionId: e.id,
    stepId: e.functionId,
    versionHash: e.functionVersionHash,
    recordedOutputHash: e.outputHash,
    replayedOutputHash: outputHash,
    matches,
    cause,
    output: error === undefined ? output : null,
    error: message,
  };
}

