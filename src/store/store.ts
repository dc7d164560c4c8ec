/**
 * The one asynchronous store interface. Every backend (`sqlite/` now, `postgres/` later) implements
 * it and passes the same contract suite (`test/store/contract.ts`). Backends differ only in the
 * {@link StoreCapabilities} they declare, never in behaviour a user can see.
 *
 * Rules every backend keeps:
 * - History is append-only: executions, runs, run ends, step versions and dead letters are
 *   inserted, never updated or deleted.
 * - A batch of executions commits atomically together with the values it refers to; a value a
 *   committed record refers to is never missing after a crash.
 * - Every blob read is verified against its hash; corrupt bytes are never returned.
 */
import type { Readable } from 'node:stream';
import { canonicalize, type ContentHash, type JsonValue } from '../hash/canonical.js';
import { ProvenantError } from '../errors.js';
import type {
  CheckpointQuery,
  CheckpointRecord,
  CheckpointTransition,
  ExecutionSketch,
  ExecutionBatch,
  ExecutionWrite,
  ValueWrite,
  ExecutionQuery,
  ExecutionRecord,
  LineageQuery,
  LineageRows,
  MaterializationSetting,
  ObjectRead,
  ObjectVersionBatch,
  ObjectVersionRecord,
  RecomputeRow,
  VersionUsage,
  RunEnd,
  RunInfo,
  RunRecord,
  StepSummary,
  StreamEntry,
  StreamSummary,
  StreamValue,
  StepVersion,
  AccessLogEntry,
  AccessLogQuery,
  TokenInfo,
  TokenRecord,
} from './records.js';

/** What a backend can do, so callers branch on abilities rather than on backend names. */
export interface StoreCapabilities {
  /** Several processes may write at once. */
  readonly concurrentWriters: boolean;
  /** Blobs above the inline limit live as files in a folder. */
  readonly fileBlobs: boolean;
}

/** Where a blob's bytes are kept. */
export type BlobLocation = 'inline' | 'file';

/**
 * A batch being filled by capture, in the backend's own form: each execution and value is encoded
 * as it is added, so that nothing per execution is held until the commit. Commit it with
 * {@link Store.commitBatch} of the store that created it.
 */
export interface ExecutionBatchBuilder {
  /** Executions added so far. */
  readonly executionCount: number;
  /** Values added so far. */
  readonly valueCount: number;
  /** Add a value that executions in this batch refer to (duplicates are skipped on commit). */
  addValue(value: ValueWrite, options?: AddValueOptions): void;
  /**
   * Add an execution. Ids and hashes are validated no later than the commit: a malformed one
   * makes {@link Store.commitBatch} refuse the whole batch with INPUT_INVALID.
   */
  addExecution(execution: ExecutionWrite): void;
  /** Mark an execution already in this batch as dead-lettered. */
  addDeadLetter(executionId: string, reason: string): void;
}

/** Checkpoint values (state snapshots, input slices) up to this size commit inside the checkpoint's transaction. */
export const CHECKPOINT_INLINE_MAX = 16 * 1024 * 1024;

/** Where a batch keeps a value. */
export interface AddValueOptions {
  /**
   * Keep the value inside the batch's transaction up to this size even when the store would put
   * a value that large in a file (checkpoint state snapshots and input slices: metadata written
   * once per checkpoint, atomic with it, with no separate fsync).
   */
  readonly inlineUpTo?: number;
}

/** Statistics for `provenant` summaries. */
export interface StoreStats {
  readonly executions: number;
  readonly failedExecutions: number;
  readonly runs: number;
  readonly stepVersions: number;
  readonly blobs: number;
  readonly blobBytes: number;
}

/** The store interface every backend implements. */
export interface Store {
  /** Human-readable location (a folder path or a connection string without password). */
  readonly location: string;
  readonly capabilities: StoreCapabilities;

  // Blobs: content-addressed, deduplicated, verified on read.
  /** Store bytes; returns their hash. Storing the same bytes twice keeps one copy. */
  putBlob(bytes: Uint8Array): Promise<ContentHash>;
  /** Store a stream without holding it whole in memory; returns its hash and size. */
  putBlobStream(source: Readable | AsyncIterable<Uint8Array>): Promise<{ hash: ContentHash; size: number }>;
  /** The bytes of a blob, verified. @throws BlobMissingError | BlobCorruptError */
  getBlob(hash: ContentHash): Promise<Uint8Array>;
  /** A stream of a blob's bytes; it errors with BlobCorruptError at the end if they do not match. */
  openBlobStream(hash: ContentHash): Promise<Readable>;
  hasBlob(hash: ContentHash): Promise<boolean>;
  /** Where a blob is kept and its size, or undefined when absent. */
  statBlob(hash: ContentHash): Promise<{ size: number; location: BlobLocation } | undefined>;
  /** Every blob's hash and size, in hash order, after `afterHash` (paging; at most `limit`, default 1000). */
  listBlobs(options?: { afterHash?: ContentHash; limit?: number }): Promise<{ hash: ContentHash; size: number }[]>;

  // Steps.
  /** Record a step version (idempotent: an existing one is returned unchanged). */
  registerStepVersion(version: StepVersion): Promise<StepVersion>;
  getStepVersion(stepId: string, versionHash: ContentHash): Promise<StepVersion | undefined>;
  /** Every step with its versions, oldest first, and how many executions each has. */
  listSteps(): Promise<StepSummary[]>;

  // Runs.
  createRun(run: RunRecord): Promise<void>;
  endRun(end: RunEnd): Promise<void>;
  getRun(runId: string): Promise<RunInfo | undefined>;
  listRuns(limit?: number): Promise<RunInfo[]>;

  // Executions.
  /** Commit executions and their values atomically. */
  appendExecutions(batch: ExecutionBatch): Promise<void>;
  /** A new, empty batch to fill and then {@link commitBatch}; `like`: a batch of the same kind, to size it from. */
  newBatch(like?: ExecutionBatchBuilder): ExecutionBatchBuilder;
  /**
   * Commit a batch from {@link newBatch} atomically; resolves when it is durable. With a
   * checkpoint transition, the current checkpoint's end and the next one's beginning commit in
   * the same transaction as the batch (values they refer to must be in the batch or stored).
   */
  commitBatch(batch: ExecutionBatchBuilder, checkpoint?: CheckpointTransition): Promise<void>;
  getExecution(id: string): Promise<ExecutionRecord | undefined>;
  listExecutions(query?: ExecutionQuery): Promise<ExecutionRecord[]>;
  countExecutions(query?: Omit<ExecutionQuery, 'afterId' | 'limit'>): Promise<number>;
  /** Dead-lettered executions of a run (or of all runs). */
  listDeadLetters(runId?: string): Promise<{ executionId: string; runId: string; reason: string }[]>;

  // Embedded stream logs: append-only, offset-addressed.
  /**
   * Append values to a stream (created on first append), atomically and in order; they get the
   * next offsets. Returns the first offset given and the next free one. `appendedUs` (default: now)
   * is the time recorded for them; copying a store passes the original one.
   * @throws ProvenantError INPUT_INVALID for a malformed stream id.
   */
  appendToStream(streamId: string, values: readonly StreamValue[], options?: { appendedUs?: number }): Promise<{ first: number; next: number }>;
  /** Entries of a stream with `from <= offset < to`, in order (at most `limit`, default 1000). */
  readStream(streamId: string, range?: { from?: number; to?: number; limit?: number }): Promise<StreamEntry[]>;
  /** One stream's extent, or undefined when it has no log. */
  getStream(streamId: string): Promise<StreamSummary | undefined>;
  /** Every stream that has a log. */
  listStreams(): Promise<StreamSummary[]>;

  // Temporal checkpoints: opened IN_PROGRESS, ended COMPLETE or FAILED by appending, never updated.
  /**
   * End and/or open a checkpoint outside a batch (a run's first checkpoint; ending one that a
   * crashed process left IN_PROGRESS), storing `values` it refers to in the same transaction.
   * @throws ProvenantError CHECKPOINT_INVALID (already ended, malformed), NOT_FOUND (unknown checkpoint or run)
   */
  applyCheckpoint(transition: CheckpointTransition, values?: readonly ValueWrite[]): Promise<void>;
  getCheckpoint(checkpointId: string): Promise<CheckpointRecord | undefined>;
  /** Checkpoints in the order they were opened. */
  listCheckpoints(query?: CheckpointQuery): Promise<CheckpointRecord[]>;
  /**
   * A run's executions with ids from `firstId` to `lastId` inclusive (a checkpoint's executions),
   * lean, in id order.
   */
  listExecutionSketches(runId: string, firstId: string, lastId: string): Promise<ExecutionSketch[]>;

  // Objects: named, versioned data. A version is ingested (original) or made by an execution from
  // other versions; the versions an execution used are the edges of the provenance DAG.
  /**
   * Commit versions together with the executions that made them and the values both refer to, in
   * one transaction. Each version gets the next ordinal of its object and a transaction time later
   * than the object's last version. Returns the versions as recorded.
   * @throws ProvenantError INPUT_INVALID, NOT_FOUND (unknown input version or execution), BLOB_MISSING (content not stored)
   */
  commitObjectVersions(batch: ObjectVersionBatch): Promise<ObjectVersionRecord[]>;
  getObjectVersion(versionId: string): Promise<ObjectVersionRecord | undefined>;
  /** The version of an object current at a time (the last one valid from at or before it). */
  objectVersionAt(objectId: string, atUs: number): Promise<ObjectVersionRecord | undefined>;
  /** An object's versions, oldest first (those valid from at or before `untilUs`). */
  listObjectVersions(objectId: string, range?: { untilUs?: number; limit?: number }): Promise<ObjectVersionRecord[]>;
  /** Versions with this content, or the version an execution made. */
  findObjectVersions(by: { contentHash?: ContentHash; executionId?: string }): Promise<ObjectVersionRecord[]>;
  /** Objects whose id starts with `prefix`, by id, with their version counts. */
  listObjects(options?: { prefix?: string; limit?: number }): Promise<{ objectId: string; versions: number; latestUs: number }[]>;
  /** Ancestors or descendants of versions, found by a recursive query in the store. */
  walkLineage(query: LineageQuery): Promise<LineageRows>;
  /**
   * What recomputing a version needs: it and the closure of its inputs, stopping at versions whose
   * bytes are kept; in commit order, so every version comes after the versions it was made from.
   * @throws ProvenantError INPUT_INVALID for a malformed id
   */
  recomputePlan(versionId: string): Promise<RecomputeRow[]>;

  // Materialization: which versions keep their bytes. Settings, pins and reads are appended.
  setMaterialization(setting: MaterializationSetting): Promise<void>;
  /** The current setting of each scope. */
  listMaterialization(): Promise<MaterializationSetting[]>;
  /** Pin (keep whatever the policy) or unpin a version. @throws ProvenantError NOT_FOUND */
  setPinned(versionId: string, pinned: boolean): Promise<void>;
  recordObjectReads(reads: readonly ObjectRead[]): Promise<void>;
  /** Every derived version with its step, execution duration, read count and whether it is kept. */
  listVersionUsage(): Promise<VersionUsage[]>;
  /**
   * Delete the bytes of derived versions' contents that nothing else needs: never an original's,
   * a pinned version's, a step artifact, a stream record, a checkpoint value, or any value of an
   * execution outside the object DAG. Returns what was deleted.
   */
  dropBlobs(hashes: readonly ContentHash[]): Promise<{ dropped: ContentHash[]; bytes: number }>;
  // Access: bearer tokens (only their hashes) and the access log of the HTTP API. Both append-only.
  /** Record a new token. @throws ProvenantError INPUT_INVALID when its id or hash is already used */
  createToken(token: TokenRecord): Promise<void>;
  /** The token whose hash this is (revoked and expired ones included: the caller decides), or undefined. */
  findToken(hash: ContentHash): Promise<TokenInfo | undefined>;
  /** Every token, oldest first. */
  listTokens(): Promise<TokenInfo[]>;
  /**
   * Revoke a token (appends its revocation; revoking twice keeps the first time).
   * @throws ProvenantError NOT_FOUND for an unknown token id
   */
  revokeToken(tokenId: string, revokedUs: number): Promise<TokenInfo>;
  /**
   * How many revocations the store holds, when the backend can say so much more cheaply than it
   * finds a token (the embedded store: a local read). A server remembers tokens that
   * authenticated and forgets them all as soon as this number changes; without it, every request
   * looks its token up.
   */
  readonly revocationCount?: () => Promise<number>;
  /** Append entries to the access log, in one transaction. */
  appendAccessLog(entries: readonly AccessLogEntry[]): Promise<void>;
  /** Access log entries, oldest first. */
  listAccessLog(query?: AccessLogQuery): Promise<AccessLogEntry[]>;
  /** Append a snapshot of a replay job of the HTTP API (at each change, and as a heartbeat while it runs). */
  appendReplayJobSnapshot(snapshot: ReplayJobSnapshot): Promise<void>;
  /** The latest snapshot of a replay job of the HTTP API, or undefined when none was recorded. */
  latestReplayJobSnapshot(jobId: string): Promise<ReplayJobSnapshot | undefined>;

  stats(): Promise<StoreStats>;
  close(): Promise<void>;
}

/** A replay job of the HTTP API as it stood at a time: its view, as `GET /replays/{id}` shows it. */
export interface ReplayJobSnapshot {
  readonly jobId: string;
  /** When the snapshot was taken (epoch microseconds). */
  readonly atUs: number;
  readonly view: JsonValue;
}

/**
 * A snapshot's view as stored (RFC 8785 JSON), after checking what every backend requires.
 * @throws ProvenantError INPUT_INVALID for an empty or overlong job id, a time that is not a whole number, or a view that is not JSON
 */
export function replayJobSnapshotText(snapshot: ReplayJobSnapshot): string {
  if (typeof snapshot.jobId !== 'string' || snapshot.jobId.length === 0 || snapshot.jobId.length > 100 || !snapshot.jobId.isWellFormed()) {
    throw new ProvenantError('INPUT_INVALID', `a replay job id must be 1 to 100 characters: ${String(snapshot.jobId).slice(0, 120)}`);
  }
  if (!Number.isSafeInteger(snapshot.atUs)) {
    throw new ProvenantError('INPUT_INVALID', `replay job ${snapshot.jobId}: its snapshot time must be whole microseconds`, { context: { jobId: snapshot.jobId } });
  }
  return canonicalize(snapshot.view);
}
