/**
 * Provenant: records how every piece of data in a pipeline was made — the exact code version,
 * input and output hashes, parameters and context — so any of it can be replayed later.
 *
 * @example
 * import { openStore, startRun } from 'provenant';
 * const store = await openStore('./.provenant');
 * const run = await startRun(store, { name: 'flights' });
 * const normalize = await run.step('normalize', { module: new URL('./steps/normalize.ts', import.meta.url).pathname });
 * for (const record of records) await run.call(normalize, record);
 * await run.finish();
 * await store.close();
 *
 * @packageDocumentation
 */
export {
  canonicalize,
  encodeValue,
  hashValue,
  decodeValue,
  isContentHash,
  sha256,
  MAX_DEPTH,
  type ContentHash,
  type EncodedValue,
  type JsonValue,
  type ValueEncoding,
} from './hash/canonical.js';
export {
  ProvenantError,
  UnhashableValueError,
  BlobCorruptError,
  BlobMissingError,
  type ErrorCode,
  type ProvenantErrorOptions,
} from './errors.js';
export type { Store, StoreCapabilities, StoreStats, BlobLocation } from './store/store.js';
export type * from './store/records.js';
export { openStore, migrateStore, DEFAULT_STORE, type OpenStoreOptions, type MigrationReport } from './store/open.js';
export { SqliteStore, type SqliteStoreOptions } from './store/sqlite/sqlite-store.js';
export { PostgresStore, type PostgresStoreOptions } from './store/postgres/postgres-store.js';
export { copyStore, type CopyReport, type CopyCount, type CopyOptions } from './store/copy.js';
export { runWorker, submitJob, listJobs, getJob, type WorkerOptions, type WorkerEvent, type WorkerSummary, type ReplayJobSpec, type JobInfo } from './worker/worker.js';
export { startRun, Run, StepFailedError, CanonicalValue, environmentFingerprint, type StartRunOptions, type CallOutcome, type CallOrigin, type RunSummary } from './capture/run.js';
export { withContext, currentContext } from './capture/context.js';
export { executionRecordHash, canonicalRecord, RECORD_FORMAT } from './hash/record-hash.js';
export { loadStep, type LoadedStep, type StepContext, type StepFunction } from './step/runtime.js';
export { prepareStep } from './step/register.js';
export { buildStepArtifact, type StepSource } from './step/bundle.js';
export { definePipeline, type PipelineDefinition, type PipelineStep } from './pipeline/define.js';
export {
  runPipeline,
  resumePipeline,
  openSource,
  type RunPipelineOptions,
  type ResumePipelineOptions,
  type PipelineResult,
  type PipelineProgress,
} from './pipeline/execute.js';
export type { SourceRecord, RecordSource, SourceSpec, SourceReadOptions, MalformedInfo, IdleTick } from './sources/source.js';
export { type CheckpointPolicy, DEFAULT_CHECKPOINT_POLICY } from './checkpoint/checkpointer.js';
export { NdjsonFileSink, functionSink, type Sink } from './checkpoint/sink.js';
export { runChain, findCheckpoint, checkpointRange, streamTimeline, type CheckpointRange } from './checkpoint/chain.js';
export {
  replay,
  replaySteps,
  ReplaySession,
  ReplayedStep,
  type ReplayOptions,
  type ReplayResult,
  type ReplayDivergence,
  type ReplayCause,
  type ReplayProgress,
  type ReplayStepsOptions,
  type ReplayStats,
  type StepSubstitution,
} from './replay/range.js';
export { diffJson, applyPatch, jsonEqual, valueAt, parsePointer, escapePointerToken, type JsonPatchOperation } from './replay/json-patch.js';
export { loadPredicate, type OutputPredicate, type PredicateInfo } from './replay/predicate.js';
export { whatIf, type WhatIfOptions, type WhatIfResult, type WhatIfStepCounts, type WhatIfRecordDiff, type WhatIfRecordOutcome } from './whatif/whatif.js';
export { bisect, type BisectOptions, type BisectResult, type BisectProbe, type BisectExecution, type BisectCheckpoint } from './bisect/bisect.js';
export { runDebugger, type DebuggerOptions, type DebuggerSummary } from './debug/debugger.js';
export { renderJson, renderPatch, type RenderOptions } from './debug/render.js';
export { DECODE_STEP_ID } from './sources/decode-step.js';
export { loadPipelineFile, type LoadedPipeline } from './pipeline/load.js';
export { readRecords, valuesOf, formatOf, FileSource, type FileFormat, type ReadRecordsOptions } from './sources/files.js';
export {
  openJetStreamSource,
  publishRecords,
  type JetStreamSource,
  type JetStreamSourceOptions,
  type JetStreamLocation,
  type JetStreamBounds,
  type PublishTarget,
  type PublishRecordsOptions,
  type PublishResult,
} from './sources/jetstream.js';
export { PROVENANT_VERSION } from './version.js';
export {
  withTape,
  RecordingTape,
  ReplayTape,
  DeterminismViolationError,
  type Tape,
  type TapeEntry,
  type NondeterminismKind,
  type NondeterminismRecord,
  type ValueKind,
} from './step/determinism.js';
export type { FetchRecord, FetchRequestRecord, FetchResponseRecord, FetchErrorRecord, FetchOutcome } from './step/fetch.js';
export { reexecute, type ReexecutionResult, type DivergenceCause } from './replay/execution.js';
export { appendRecords, readLog, LogSource, type AppendRecordsOptions, type ReadLogOptions } from './stream/log.js';
export { verifyStore, type VerifyReport, type VerifyOptions, type Finding, type FindingKind } from './merkle/verify.js';
export { proveInclusion, proveConsistency, verifyProofFile, latestHead, type ProofFile, type InclusionProofFile, type ConsistencyProofFile, type ProofCheck } from './merkle/proof.js';
export { parsePublicKey, verifyHeadSignature, canonicalHead, keyId, type SignedTreeHead } from './merkle/head.js';
export { leafHash, nodeHash, rootOf, EMPTY_ROOT, inclusionProof, consistencyProof, verifyInclusion, verifyConsistency } from './merkle/tree.js';
export {
  exportFormat,
  exportFormats,
  registerExportFormat,
  selectExecutions,
  provJson,
  provJsonLd,
  provTurtle,
  openLineageEvents,
  emitOpenLineage,
  type ExportFormat,
  type ExportScope,
  type RunEvent,
  type EmitOptions,
} from './export/index.js';
export {
  putObject,
  deriveObject,
  listObjectVersions,
  resolveVersion,
  type ObjectVersion,
  type PutObjectOptions,
  type DeriveOptions,
  type DeriveResult,
  type VersionRef,
} from './objects/versions.js';
export { getAsOf, type AsOfOptions, type AsOfResult, type RecomputeBudget } from './objects/asof.js';
export { lineage, renderLineageTree, type LineageGraph, type LineageNode, type LineageEdge, type LineageOptions } from './objects/lineage.js';
export { setPolicy, listPolicies, parsePolicy, formatPolicy, gc, materialize, decideKeeps, type MaterializationPolicy, type GcResult, type KeepDecision } from './objects/materialize.js';
export { validateObjectId, parseTime, MAX_OBJECT_ID_LENGTH, type TimeInput } from './objects/refs.js';
export { exportCypher, cypherString, type CypherDialect, type CypherExportOptions } from './export/cypher.js';
export { createServer } from './http/lazy.js';
export type { ServerOptions, ProvenantServer } from './http/server.js';
export type { Problem } from './http/problem.js';
export { createToken, authenticate, revokeToken, TOKEN_PREFIX, type CreateTokenOptions, type CreatedToken, type Authentication, type TokenRefusal } from './auth/tokens.js';
export { Grants, parseGrant, patternCovers, RIGHTS, type Grant, type Right } from './auth/grants.js';
