/**
 * State of stateful steps. A step declared `stateful: true` receives `ctx.state`, a plain object
 * it may change freely (e.g. a running aggregate keyed by route); the object lives across calls.
 * At each checkpoint the states of all stateful steps are snapshot as one canonical value, whose
 * hash the checkpoint records; resume and replay start from such a snapshot.
 *
 * A state must stay JSON-compatible: a state that cannot be canonicalized fails the checkpoint,
 * naming the step and the path in the state.
 */
import { ProvenantError, UnhashableValueError } from '../errors.js';
import { decodeValue, encodeValue, type ContentHash, type EncodedValue } from '../hash/canonical.js';
import type { Store } from '../store/store.js';

/** The state objects of a pipeline's stateful steps, by step id. */
export type StepStates = Map<string, Record<string, unknown>>;

/** Fresh, empty states for the given stateful steps. */
export function emptyStates(statefulStepIds: readonly string[]): StepStates {
  return new Map(statefulStepIds.map((id) => [id, {}]));
}

/**
 * Snapshot states as one value `{ v: 1, steps: { [stepId]: state } }`, or null when there are none.
 * @throws ProvenantError CHECKPOINT_INVALID naming the step and path when a state cannot be hashed
 */
export function snapshotStates(states: StepStates): EncodedValue | null {
  if (states.size === 0) return null;
  const steps: Record<string, unknown> = {};
  for (const [id, state] of states) steps[id] = state;
  try {
    return encodeValue({ v: 1, steps });
  } catch (err) {
    if (err instanceof UnhashableValueError) {
      throw new ProvenantError('CHECKPOINT_INVALID', `the state of a stateful step cannot be snapshot: ${err.message}`, {
        hint: 'Keep ctx.state JSON-compatible (no NaN, functions, class instances or cycles).',
        context: { path: err.path },
        cause: err,
      });
    }
    throw err;
  }
}

/**
 * States restored from a snapshot (null hash: all empty). Steps missing from the snapshot start empty.
 * @throws BlobMissingError | BlobCorruptError when the snapshot is not intact
 */
export async function restoreStates(store: Store, hash: ContentHash | null, statefulStepIds: readonly string[]): Promise<StepStates> {
  const states = emptyStates(statefulStepIds);
  if (hash === null) return states;
  const snapshot = decodeValue(await store.getBlob(hash), 'json') as { steps?: Record<string, Record<string, unknown>> };
  for (const id of statefulStepIds) {
    const s = snapshot.steps?.[id];
    if (s !== undefined && s !== null && typeof s === 'object') states.set(id, s);
  }
  return states;
}
