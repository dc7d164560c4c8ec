/**
 * The records Provenant keeps, as every store backend returns them. Ids are UUIDv7 strings,
 * hashes are `sha256:<hex>`, times are integer microseconds since the Unix epoch.
 */
import type { ContentHash, JsonValue, ValueEncoding } from '../hash/canonical.js';

/** Who asked, from where, with which rights; carried across async calls and part of every execution. */
export interface ExecutionContext {
  /** Where the request came from: `cli`, `http`, `library`, a job name… */
  readonly source?: string;
  /** Who asked (a user or service name). */
  readonly principal?: string;
  /** Where it ran or was asked from (host, address, region). */
  readonly location?: string;
  /** Rights the caller held for this work, e.g. `read:customers/*`. */
  readonly rights?: readonly string[];
  /** W3C trace id, to join with tracing systems. */
  readonly traceId?: string;
}

/** What the bundler found a step's code to be made of (informational; the hash covers the code itself). */
export interface StepManifest {
  /** Artifact format; bumps when the way artifacts are built changes. */
  readonly format: 'provenant-step/1';
  /** The step's module, relative to its project root. */
  readonly module: string;
  /** The module export that is the step function. */
  readonly export: string;
  /** Every local source file bundled in, relative to the project root, with its size. */
  readonly files: readonly { readonly path: string; readonly bytes: number }[];
  /** npm packages bundled in, with their exact versions. */
  readonly packages: readonly { readonly name: string; readonly version: string }[];
  /** The bundler and its version. */
  readonly bundler: string;
}

/** One version of a step: the exact code that runs for it, stored as an artifact (a blob). */
export interface StepVersion {
  readonly stepId: string;
  /** Hash of the artifact's bytes: the step's code identity. */
  readonly versionHash: ContentHash;
  readonly manifest: StepManifest;
  /** When this version was first registered (by the first run that used it). */
  readonly firstSeenUs: number;
  readonly firstRunId: string | null;
}

/** Outcome of an execution. */
export type ExecutionStatus = 'ok' | 'failed';

/** A failed execution's error, stored as a value. */
export interface RecordedError {
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
  readonly code?: string;
}

/** One call of a step: the provenance record. */
export interface ExecutionRecord {
  readonly id: string;
  readonly runId: string;
  readonly functionId: string;
  readonly functionVersionHash: ContentHash;
  /** Ordered hashes of the inputs. */
  readonly inputHashes: readonly ContentHash[];
  /** Encoding of each input (`json` or raw `bytes`), in order. */
  readonly inputEncodings: readonly ValueEncoding[];
  /** Null when the step failed. */
  readonly outputHash: ContentHash | null;
  readonly outputEncoding: ValueEncoding;
  readonly paramsHash: ContentHash;
  readonly contextHash: ContentHash;
  readonly context: ExecutionContext;
  readonly startedUs: number;
  readonly endedUs: number;
  readonly status: ExecutionStatus;
  /** Hash of the {@link RecordedError} value, when failed. */
  readonly errorHash: ContentHash | null;
  /**
   * Hash of the clock reads and random draws the call consumed (a `NondeterminismRecord`, fed back
   * at replay), or null when it consumed none.
   */
  readonly nondeterminismHash: ContentHash | null;
  readonly streamId: string | null;
  readonly offset: number | null;
  /** Hash of this record's canonical form (see `hash/record-hash.ts`), computed when it was committed. */
  readonly recordHash: ContentHash;
}

/** An execution as handed to the store; the store computes and keeps its record hash on commit. */
export type ExecutionWrite = Omit<ExecutionRecord, 'recordHash'>;

/** A value to store alongside the records that refer to it. */
export interface ValueWrite {
  readonly hash: ContentHash;
  readonly bytes: Uint8Array;
  /** When present, the value's bytes are this text's UTF-8 (saves making the bytes). */
  readonly text?: string;
}

/** A batch of executions and the values they refer to, committed atomically. */
export interface ExecutionBatch {
  readonly executions: readonly ExecutionWrite[];
  /** Inputs, outputs, params, contexts and errors; duplicates and already-stored ones are skipped. */
  readonly values: readonly ValueWrite[];
  /** Executions (by id) that were dead-lettered, with the reason. */
  readonly deadLetters?: readonly { readonly executionId: string; readonly reason: string }[];
}

/** What kind of run: a capture now; replays and what-ifs are runs of their own (later). */
export type RunKind = 'capture' | 'replay' | 'whatif';

/** What the run does when a step fails. */
export type FailurePolicy = 'stop' | 'dead-letter';

/** Node version, platform and lockfile hash of the process that made a run. */
export interface EnvironmentFingerprint {
  readonly node: string;
  readonly platform: string;
  readonly arch: string;
  readonly provenant: string;
  /** Hash of the project's package-lock.json, or null when none was found. */
  readonly lockfileHash: ContentHash | null;
}

/** A run: a capture, a replay or a what-if. */
export interface RunRecord {
  readonly id: string;
  readonly kind: RunKind;
  /** The pipeline or job name. */
  readonly name: string;
  readonly startedUs: number;
  readonly environment: EnvironmentFingerprint;
  readonly failurePolicy: FailurePolicy;
  readonly context: ExecutionContext;
  /** Free-form canonical JSON describing the run's input and options. */
  readonly options: JsonValue;
}

/** How a run ended. */
export type RunStatus = 'completed' | 'failed' | 'stopped';

/** The end of a run, appended when it finishes (runs are never updated in place). */
export interface RunEnd {
  readonly runId: string;
  readonly endedUs: number;
  readonly status: RunStatus;
  readonly summary: JsonValue;
}

/** A run with its end, if it ended. */
export interface RunInfo extends RunRecord {
  readonly end: RunEnd | null;
}

/** Per step, its versions with counts. */
export interface StepSummary {
  readonly stepId: string;
  readonly versions: readonly (StepVersion & { readonly executions: number; readonly failed: number })[];
}

/** One record of an embedded stream log. */
export interface StreamEntry {
  readonly streamId: string;
  /** Position in the stream: 0, 1, 2… with no gaps. */
  readonly offset: number;
  readonly hash: ContentHash;
  readonly encoding: ValueEncoding;
  readonly appendedUs: number;
}

/** An embedded stream log and its extent. */
export interface StreamSummary {
  readonly streamId: string;
  /** Number of records; the next append gets this offset. */
  readonly length: number;
  readonly firstAppendedUs: number | null;
  readonly lastAppendedUs: number | null;
}

/** A value to append to a stream: its canonical encoding. */
export interface StreamValue extends ValueWrite {
  readonly encoding: ValueEncoding;
}

/** Filters for listing executions. All optional; results are in id (time) order. */
export interface ExecutionQuery {
  readonly stepId?: string;
  readonly runId?: string;
  readonly status?: ExecutionStatus;
  /** Only executions whose id sorts after this one (paging). */
  readonly afterId?: string;
  /** At most this many. Default 100. */
  readonly limit?: number;
}

/** Where a checkpoint is: opened and filling, committed with its records, or ended by a failure. */
export type CheckpointStatus = 'IN_PROGRESS' | 'COMPLETE' | 'FAILED';

/**
 * A checkpoint being opened: it covers the stream from `startOffset` on. Written IN_PROGRESS, in
 * the same transaction as the end of the checkpoint before it (the first one when its run starts).
 */
export interface CheckpointBegin {
  /** UUIDv7. */
  readonly checkpointId: string;
  readonly runId: string;
  readonly streamId: string;
  /** The checkpoint this one follows in its run's chain (null for the first). */
  readonly previousId: string | null;
  /** First offset covered (inclusive). */
  readonly startOffset: number;
  readonly startedUs: number;
  /**
   * Hash of the pipeline applied in this checkpoint (a stored value): each step's id, code version
   * hash, params hash and whether it keeps state. This ties the offsets to the exact code.
   */
  readonly pipelineHash: ContentHash;
}

/** How a checkpoint ended; appended (never updated), committed with all of the checkpoint's executions. */
export interface CheckpointEnd {
  readonly checkpointId: string;
  readonly status: 'COMPLETE' | 'FAILED';
  /** First offset not covered (exclusive): the checkpoint covers `[startOffset, endOffset)`. */
  readonly endOffset: number;
  /** The checkpoint's timestamp. */
  readonly endedUs: number;
  /** Source records covered. */
  readonly records: number;
  readonly executions: number;
  readonly failed: number;
  readonly deadLettered: number;
  /** The checkpoint's executions are its run's executions with ids from the first to the last (inclusive). */
  readonly firstExecutionId: string | null;
  readonly lastExecutionId: string | null;
  /** Hash of the state snapshot of the pipeline's stateful steps at the end (a stored value), or null when none keeps state. */
  readonly stateHash: ContentHash | null;
  /** Where the run's sink was when this checkpoint committed (e.g. `{ bytes: 1234 }` of an NDJSON file), or null. */
  readonly sinkPosition: JsonValue;
  /** Hash of the checkpoint's input slice (offsets and record hashes, a stored value) when the run keeps input, else null. */
  readonly inputSliceHash: ContentHash | null;
  /** Why it FAILED; null when COMPLETE. */
  readonly reason: string | null;
}

/** Both halves of a checkpoint in a transaction: the end of the current one, the beginning of the next. */
export interface CheckpointTransition {
  readonly end?: CheckpointEnd;
  readonly begin?: CheckpointBegin;
}

/** A checkpoint as stored: its beginning, and its end once it has one. */
export interface CheckpointRecord extends CheckpointBegin {
  readonly status: CheckpointStatus;
  /** Null while IN_PROGRESS. */
  readonly end: CheckpointEnd | null;
  /** Hash of the canonical record of the ended checkpoint (see `hash/record-hash.ts`), null while IN_PROGRESS. */
  readonly recordHash: ContentHash | null;
}

/** Filters for listing checkpoints; results are in the order they were opened. */
export interface CheckpointQuery {
  readonly streamId?: string;
  readonly runId?: string;
  /** Only checkpoints opened after this one (paging). */
  readonly afterId?: string;
  /** Default 1000. */
  readonly limit?: number;
}

/** An execution as replay needs it: lean, in id order. */
export type ExecutionSketch = Pick<
  ExecutionRecord,
  | 'id'
  | 'functionId'
  | 'functionVersionHash'
  | 'inputHashes'
  | 'inputEncodings'
  | 'outputHash'
  | 'outputEncoding'
  | 'paramsHash'
  | 'status'
  | 'errorHash'
  | 'nondeterminismHash'
  | 'offset'
>;

// ---- objects -------------------------------------------------------------------------------

/**
 * One version of a named object (`customers/42`): made by ingestion (original data, always kept)
 * or by an execution from other versions. Valid from its transaction time until the next version.
 */
export interface ObjectVersionRecord {
  /** UUIDv7. */
  readonly versionId: string;
  readonly objectId: string;
  /** 1 for the object's first version, then 2, 3… */
  readonly ordinal: number;
  /** Transaction time (epoch microseconds): the version is current from then on. */
  readonly validFromUs: number;
  readonly contentHash: ContentHash;
  readonly encoding: ValueEncoding;
  /** Media type given at ingestion (`application/json` for JSON values by default). */
  readonly contentType: string;
  /** Size of the canonical bytes. */
  readonly size: number;
  /** The execution that made it; null for ingested original data. */
  readonly executionId: string | null;
  /** The versions that execution used, in input order (empty for originals). */
  readonly inputVersionIds: readonly string[];
  /** Hash of the canonical version record (see `hash/record-hash.ts`). */
  readonly recordHash: ContentHash;
  /** Pinned by hand: its bytes are kept whatever the policy says (not part of the record hash). */
  readonly pinned: boolean;
}

/** A version as handed to the store: the store gives it its ordinal, time and record hash. */
export interface ObjectVersionWrite {
  readonly versionId: string;
  readonly objectId: string;
  readonly contentHash: ContentHash;
  readonly encoding: ValueEncoding;
  readonly contentType: string;
  readonly size: number;
  readonly executionId: string | null;
  readonly inputVersionIds: readonly string[];
  /**
   * Transaction time to record instead of the commit time (copying a store); must be later than
   * the object's last version. Default: now (made later than the last version if the clock lags).
   */
  readonly validFromUs?: number;
}

/** Versions with the executions that made them and the values both refer to, committed atomically. */
export interface ObjectVersionBatch {
  readonly versions: readonly ObjectVersionWrite[];
  readonly executions: readonly ExecutionWrite[];
  readonly values: readonly ValueWrite[];
}

/** A reachable version in a lineage walk, with its distance from the start in executions. */
export interface LineageVersion {
  readonly version: ObjectVersionRecord;
  readonly depth: number;
  /** The execution that made it, in brief (backends fill it from the same query; absent for originals). */
  readonly maker?: LineageMaker;
}

/** An execution as a lineage graph names it. */
export interface LineageMaker {
  readonly executionId: string;
  readonly stepId: string;
  readonly versionHash: ContentHash;
  readonly startedUs: number;
  readonly status: ExecutionStatus;
}

/** A lineage walk over the version DAG, done in the store (recursive queries). */
export interface LineageQuery {
  /** Versions to start from (depth 0). */
  readonly from: readonly string[];
  /** `up`: the versions they were made from; `down`: the versions made from them. */
  readonly direction: 'up' | 'down';
  /** Executions to walk through at most (undefined: no limit). */
  readonly depth?: number;
  /** Ignore versions made after this time (epoch microseconds). */
  readonly untilUs?: number;
  /** Stop after this many versions (default 100,000); the answer says it was cut. */
  readonly limit?: number;
}

/** The answer to a {@link LineageQuery}. */
export interface LineageRows {
  readonly versions: readonly LineageVersion[];
  /** True when the limit cut the walk. */
  readonly truncated: boolean;
}

/** A version needed to recompute another: kept (its bytes are stored) or to be made by its execution. */
export interface RecomputeRow {
  readonly version: ObjectVersionRecord;
  /** Its bytes are stored: read it, do not recompute it. */
  readonly kept: boolean;
}

/** A materialization policy and where it applies. */
export interface MaterializationSetting {
  /** `store` (every step without its own setting) or `step:<stepId>`. */
  readonly scope: string;
  /** `all`, `none`, `every:<k>`, or `cost:<ms per KiB>`. */
  readonly policy: string;
  readonly setUs: number;
}

/** What gc and the cost-based policy know about a derived version. */
export interface VersionUsage {
  readonly version: ObjectVersionRecord;
  readonly stepId: string;
  /** Its execution's duration (microseconds). */
  readonly durationUs: number;
  /** How often it was read (as-of reads that returned it or used it). */
  readonly reads: number;
  readonly kept: boolean;
}

/** One as-of read, kept to measure read frequency and recompute cost. */
export interface ObjectRead {
  readonly versionId: string;
  readonly atUs: number;
  readonly recomputed: boolean;
  /** Time spent obtaining the bytes (microseconds). */
  readonly costUs: number;
}
/** A bearer token as stored: only the hash of its secret is kept. Tokens are appended, never updated. */
export interface TokenRecord {
  /** UUIDv7. */
  readonly id: string;
  /** SHA-256 of the whole token string (`sha256:<hex>`): what a request's token is looked up by. */
  readonly hash: ContentHash;
  /** Who the token speaks for. */
  readonly principal: string;
  /** Grants as written, `<right>:<pattern>` (see `auth/grants.ts`). */
  readonly grants: readonly string[];
  readonly createdUs: number;
  /** When it stops working, or null for never. */
  readonly expiresUs: number | null;
  /** A note for people (`ci`, `auditor laptop`), or null. */
  readonly label: string | null;
}

/** A token with its revocation, if revoked. */
export interface TokenInfo extends TokenRecord {
  /** When it was revoked (appended to the revocations), or null. */
  readonly revokedUs: number | null;
}

/** One request to the HTTP API, as the access log keeps it (append-only). */
export interface AccessLogEntry {
  /** UUIDv7. */
  readonly id: string;
  readonly timeUs: number;
  /** Who asked; null when no valid token was given. */
  readonly principal: string | null;
  readonly tokenId: string | null;
  /** The client's address. */
  readonly address: string;
  readonly method: string;
  /** The request target (path and query), at most 2,048 characters. */
  readonly target: string;
  /** The route it matched (`/data/*`), or null. */
  readonly route: string | null;
  readonly status: number;
  /** The grants that allowed what was done (`read:customers/*`). */
  readonly rights: readonly string[];
  /** W3C trace id (from `traceparent`, or made for the request). */
  readonly traceId: string;
  readonly durationUs: number;
  /** What was read or caused: object id, executions run, job id, the reason of a refusal… */
  readonly detail: JsonValue;
}

/** Filters for the access log; results are oldest first. */
export interface AccessLogQuery {
  readonly principal?: string;
  /** Only entries at or after this time (epoch microseconds). */
  readonly sinceUs?: number;
  /** Only entries after this one (paging). */
  readonly afterId?: string;
  /** Default 1000. */
  readonly limit?: number;
}
