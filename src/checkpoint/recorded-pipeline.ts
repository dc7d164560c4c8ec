/**
 * What a checkpoint records of the pipeline it applied: every step's id, exact code version,
 * params and whether it keeps state — stored as a value whose hash each checkpoint carries. Resume
 * and replay load exactly these versions from their stored artifacts.
 */
import { ProvenantError } from '../errors.js';
import { decodeValue, encodeValue, type ContentHash, type EncodedValue, type JsonValue } from '../hash/canonical.js';
import type { FailurePolicy } from '../store/records.js';
import type { Store } from '../store/store.js';

/** One step as a checkpoint records it. */
export interface RecordedStep {
  readonly id: string;
  readonly versionHash: ContentHash;
  readonly params: JsonValue;
  readonly stateful: boolean;
}

/** The pipeline a checkpoint applied (format 1). */
export interface RecordedPipeline {
  readonly v: 1;
  readonly name: string;
  readonly failurePolicy: FailurePolicy;
  readonly steps: readonly RecordedStep[];
}

/** The pipeline as a value to store. */
export function encodeRecordedPipeline(p: RecordedPipeline): EncodedValue {
  return encodeValue({
    v: 1,
    name: p.name,
    failurePolicy: p.failurePolicy,
    steps: p.steps.map((s) => ({ id: s.id, versionHash: s.versionHash, params: s.params, stateful: s.stateful })),
  });
}

/**
 * Read a recorded pipeline back.
 * @throws BlobMissingError | BlobCorruptError; ProvenantError CHECKPOINT_INVALID when it is not a pipeline value
 */
export async function readRecordedPipeline(store: Store, hash: ContentHash): Promise<RecordedPipeline> {
  const value = decodeValue(await store.getBlob(hash), 'json') as Partial<RecordedPipeline> | null;
  if (value === null || typeof value !== 'object' || value.v !== 1 || !Array.isArray(value.steps)) {
    throw new ProvenantError('CHECKPOINT_INVALID', `value ${hash} is not a recorded pipeline`, { context: { hash } });
  }
  return value as RecordedPipeline;
}
