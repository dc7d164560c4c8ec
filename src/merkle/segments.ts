/**
 * The Merkle log's segments, as both backends store them: a segment names a run of consecutive
 * leaves by where their records are (the leaf entries are the records' stored record hashes).
 */
import { uuidFromBytes, uuidToBytes } from '../ids.js';

/** Segment kind: executions of one run. */
export const LEAF_EXECUTIONS = 0;
/** Segment kind: one ended checkpoint. */
export const LEAF_CHECKPOINT = 1;
/** Segment kind: object versions committed together. */
export const LEAF_OBJECT_VERSIONS = 2;

/** Leaves to append, and where their records are (see the `merkle_segments` columns). */
export interface LogSegment {
  readonly kind: number;
  readonly scope: number;
  readonly first?: Buffer | null;
  readonly last?: Buffer | null;
  readonly ids?: Buffer | null;
  /** The entries (32-byte record hashes), in leaf order. */
  readonly entries: readonly Buffer[];
}

/**
 * The segment of one run's executions of a batch (16-byte ids, in insertion order): a clean id
 * range when every id is above the run's largest before the batch (`previousMax`) and the ids
 * increase; else the ids listed.
 */
export function executionsSegment(runSeq: number, previousMax: Buffer | null, ids: readonly Buffer[], recordHashes: readonly Buffer[]): LogSegment {
  let clean = ids.length > 0 && (previousMax === null || Buffer.compare(ids[0] as Buffer, previousMax) > 0);
  for (let i = 1; clean && i < ids.length; i++) clean = Buffer.compare(ids[i - 1] as Buffer, ids[i] as Buffer) < 0;
  return {
    kind: LEAF_EXECUTIONS,
    scope: runSeq,
    first: clean ? (ids[0] as Buffer) : null,
    last: clean ? (ids[ids.length - 1] as Buffer) : null,
    ids: clean ? null : Buffer.concat(ids),
    entries: recordHashes,
  };
}

/**
 * {@link executionsSegment} for ids given as canonical UUID text (lowercase hex, which sorts as the
 * 16 bytes do): only the ids the segment keeps are turned into bytes — the first and last of a
 * clean range, which is the usual case.
 */
export function executionsSegmentOfText(runSeq: number, previousMax: Buffer | null, ids: readonly string[], recordHashes: readonly Buffer[]): LogSegment {
  const previous = previousMax === null ? null : uuidFromBytes(previousMax);
  let clean = ids.length > 0 && (previous === null || (ids[0] as string) > previous);
  for (let i = 1; clean && i < ids.length; i++) clean = (ids[i - 1] as string) < (ids[i] as string);
  return {
    kind: LEAF_EXECUTIONS,
    scope: runSeq,
    first: clean ? uuidToBytes(ids[0] as string) : null,
    last: clean ? uuidToBytes(ids[ids.length - 1] as string) : null,
    ids: clean ? null : Buffer.concat(ids.map(uuidToBytes)),
    entries: recordHashes,
  };
}
