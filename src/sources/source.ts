/**
 * Record sources: ordered, offset-addressed sequences of input records that a pipeline runs over.
 * Three kinds exist: the embedded stream log (offset = position in the log, from 0), files
 * (offset = record index in the file, from 0) and NATS JetStream streams (offset = stream
 * sequence, from 1). A run records its source's {@link SourceSpec} so that resume and replay can
 * open the same source again and read any offset range of it.
 */
import type { EncodedValue, JsonValue } from '../hash/canonical.js';

/** A record from a source, with its position. */
export interface SourceRecord {
  /** Position in the source (see the module comment for what an offset is per kind). */
  readonly offset: number;
  /**
   * The decoded record; for a malformed record, its raw text (or bytes) as read. A malformed
   * record becomes a failed execution with its error and offset, dead-lettered, and the run goes on.
   */
  readonly value: unknown;
  /** Set when the record could not be decoded (not JSON, a CSV row with the wrong arity…). */
  readonly malformed?: MalformedInfo;
  /** The value's canonical encoding, when the source already holds it verified (saves hashing it again). */
  readonly encoded?: EncodedValue;
}

/** Why a record could not be decoded. */
export interface MalformedInfo {
  /** The source's format: `ndjson`, `csv`, `json`, `jetstream`… */
  readonly format: string;
  /** What is wrong, for a person: `not valid JSON: Unexpected token } at position 12`. */
  readonly reason: string;
}

/**
 * Yielded by a live source while it waits for records, at least every `idleMs` it was given, so
 * that a run can close time-based checkpoints when no record arrives.
 */
export interface IdleTick {
  readonly idle: true;
}

/** True for an {@link IdleTick}. */
export function isIdleTick(item: SourceRecord | IdleTick): item is IdleTick {
  return (item as IdleTick).idle === true;
}

/** How to open a source again (recorded with each run). */
export type SourceSpec =
  | { readonly kind: 'log'; readonly streamId: string }
  | { readonly kind: 'file'; readonly path: string; readonly format: string }
  | { readonly kind: 'jetstream'; readonly servers: string; readonly stream: string; readonly subject?: string };

/** Options of {@link RecordSource.read}. */
export interface SourceReadOptions {
  /** First offset (inclusive). Default: the source's first offset. */
  readonly from?: number;
  /** Last offset (exclusive). Default: the end of the source as it is when reading starts (or never, when `follow`). */
  readonly to?: number;
  /** Keep waiting for new records at the end (live sources); yields {@link IdleTick}s while waiting. */
  readonly follow?: boolean;
  /** With `follow`: longest wait between ticks, in ms. Default: 1000. */
  readonly idleMs?: number;
  /** Stop waiting and end when this signal aborts (with `follow`). */
  readonly signal?: AbortSignal;
}

/** An ordered, offset-addressed source of records. */
export interface RecordSource {
  /** The stream id executions and checkpoints record (`flights`, `file:/data/x.ndjson`, `jetstream:ORDERS`). */
  readonly streamId: string;
  /** Enough to open this source again (JSON, recorded with the run). */
  readonly spec: SourceSpec & JsonValue;
  /** True when old records may disappear (JetStream retention): checkpoints should keep their input. */
  readonly mayForget: boolean;
  /**
   * Records with `from <= offset < to`, in offset order (offsets may skip numbers where the source
   * has gaps, e.g. deleted JetStream messages).
   * @throws ProvenantError SOURCE_UNAVAILABLE when the range is no longer (or not yet) held by the source.
   */
  read(options?: SourceReadOptions): AsyncIterable<SourceRecord | IdleTick>;
  /** The first offset the source holds now (where a run without `from` starts). Default: 0. */
  firstOffset?(): Promise<number>;
  /** Release connections and files. */
  close(): Promise<void>;
}
