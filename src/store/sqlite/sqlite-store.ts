/**
 * The embedded store: SQLite (better-sqlite3) for metadata and small blobs, plus a
 * content-addressed folder for large blobs. Zero configuration; one folder (`./.provenant`).
 *
 * Locking and durability model:
 * - Two connections per open store (the main one, and the writer thread's, below), WAL journal,
 *   `synchronous = NORMAL`: a committed transaction
 *   survives a crash of the process (SIGKILL); after a power loss the database stays consistent
 *   and may lose the last transactions before the crash. `busy_timeout` waits up to 5 s for
 *   another process's write lock.
 * - better-sqlite3 is synchronous, so a transaction (`db.transaction(fn)`) runs to completion
 *   without yielding to the event loop: no other call of this process can interleave with it and
 *   no mutex is needed. All async work (large-blob files) happens before a transaction begins.
 * - Writes use `BEGIN IMMEDIATE` (better-sqlite3's `.immediate`), so two processes never deadlock
 *   upgrading read locks to write locks.
 * - Large blobs are written (fsync, rename, fsync folder) before the transaction that refers to
 *   them commits: no committed record can point at a missing file.
 * - Batches of executions are packed into buffers and committed by a writer thread with its
 *   own connection (`writer-thread.ts`), in order, so capture hashes on one core while SQLite
 *   writes on the other. `commitBatch`/`appendExecutions` resolve once the batch is committed.
 *   Everything else uses the main connection; `busy_timeout` covers the rare overlap of the two
 *   writers. Without a build of `writer-thread.js` (running from TypeScript sources) or with
 *   `writerThread: false`, batches are committed on the main connection instead.
 */
import Database from 'better-sqlite3';
import { mkdirSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { FileBlobs } from '../../blob/file-blobs.js';
import { BlobCorruptError, BlobMissingError, ProvenantError } from '../../errors.js';
import {
  canonicalize,
  hashFromBytes,
  hashToBytes,
  sha256,
  type ContentHash,
  type JsonValue,
} from '../../hash/canonical.js';
import { isUuid, nowUs, uuidFromBytes, uuidToBytes } from '../../ids.js';
import { BatchApplier, DEFAULT_CACHE_MIB, configureConnection } from './apply-batch.js';
import { LOCATION_FILE, LOCATION_INLINE, PackedBatchBuilder, decodeEncodings, packBatch, type PackedBatch } from './packed-batch.js';
import { CHECKPOINT_SELECT, toCheckpoint, type CheckpointRow } from './checkpoints.js';
import type {
  CheckpointQuery,
  CheckpointRecord,
  CheckpointTransition,
  ExecutionSketch,
  ValueWrite,
  ExecutionBatch,
  ExecutionContext,
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
  StepManifest,
  StepSummary,
  StepVersion,
  StreamEntry,
  StreamSummary,
  StreamValue,
  AccessLogEntry,
  AccessLogQuery,
  TokenInfo,
  TokenRecord,
} from '../records.js';
import { CHECKPOINT_INLINE_MAX, replayJobSnapshotText, type BlobLocation, type ExecutionBatchBuilder, type ReplayJobSnapshot, type Store, type StoreCapabilities, type StoreStats } from '../store.js';
import { MIGRATIONS, SCHEMA_VERSION } from './migrations.js';
import type { BlobTable } from './blob-table.js';
import { createSigningKey } from '../../merkle/head.js';
import { SqliteObjects } from './objects.js';
import { TOKEN_SELECT, checkStreamId, toAccess, toStreamSummary, toToken, type AccessRow, type StreamSummaryRow, type TokenRow } from '../shared-rows.js';

/** Options of {@link SqliteStore.open}. */
export interface SqliteStoreOptions {
  /** Create the folder and database when absent. Default: true. */
  readonly create?: boolean;
  /** Blobs up to this many bytes live inside SQLite; larger ones are files. Default: 64 KiB. */
  readonly inlineBlobMaxBytes?: number;
  /** Commit execution batches on a writer thread. Default: true. */
  readonly writerThread?: boolean;
  /**
   * Append records to the Merkle log and sign tree heads. Default: true. Off only to measure
   * what the log costs (the benchmark): records written without it are not in the log, and
   * `verify` reports them.
   */
  readonly tamperEvidence?: boolean;
  /**
   * SQLite page cache of each connection, in MiB. Default: 64 (capture's value-hash index stays
   * cached). `provenant serve` uses 8: a long-running server then stays within a small, fixed
   * amount of memory while it appends its access log and read records.
   */
  readonly cacheMiB?: number;
}

/** File name of the SQLite database inside a store folder. */
export const DATABASE_FILE = 'provenant.db';

const DEFAULT_INLINE_MAX = 64 * 1024;

interface ExecutionRow {
  id: Buffer;
  run_id: string;
  step_id: string;
  version_hash: Buffer;
  inputs: Buffer;
  output: Buffer | null;
  params: Buffer;
  context_hash: Buffer;
  context: string;
  started: number;
  duration: number;
  status: number;
  error: Buffer | null;
  nondeterminism: Buffer | null;
  encodings: Buffer | null;
  stream_id: string | null;
  offset: number | null;
  record_hash: Buffer;
}

interface RunRow {
  id: string;
  kind: string;
  name: string;
  started: number;
  environment: string;
  policy: string;
  context: string;
  options: string;
  ended: number | null;
  status: string | null;
  summary: string | null;
}

const EXECUTION_SELECT = `
SELECT e.id, r.id AS run_id, sv.step_id, sv.version_hash, e.inputs, e.output, e.params,
       c.hash AS context_hash, c.context, e.started, e.duration, e.status, e.error, e.nondeterminism, e.encodings,
       s.id AS stream_id, e."offset", e.record_hash
FROM executions e
JOIN runs r ON r.seq = e.run
JOIN step_versions sv ON sv.seq = e.step_version
JOIN contexts c ON c.seq = e.context
LEFT JOIN streams s ON s.seq = e.stream`;

const RUN_SELECT = `
SELECT r.id, r.kind, r.name, r.started, r.environment, r.policy, c.context, r.options,
       re.ended, re.status, re.summary
FROM runs r JOIN contexts c ON c.seq = r.context LEFT JOIN run_ends re ON re.run = r.seq`;

const INSERT_ACCESS_SQL =
  'INSERT INTO access_log (id, time, principal, token, address, method, target, route, status, rights, trace_id, duration, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)';

/** The embedded SQLite store. Open with {@link SqliteStore.open} or `openStore(dir)`. */
export class SqliteStore implements Store {
  readonly location: string;
  readonly capabilities: StoreCapabilities = Object.freeze({ concurrentWriters: false, fileBlobs: true });

  readonly #db: Database.Database;
  readonly #files: FileBlobs;
  readonly #inlineMax: number;
  readonly #applier: BatchApplier;
  /** The values, through the main connection (shared with its batch applier). */
  get #blobs(): BlobTable {
    return this.#applier.blobs;
  }
  readonly #writer: WriterThread | undefined;
  readonly #stmt: ReturnType<typeof prepareStatements>;
  readonly #objects: SqliteObjects;
  /** The access log's own connection, opened on first use (see appendAccessLog). */
  #log: { db: Database.Database; insert: Database.Statement } | undefined;

  private constructor(dir: string, db: Database.Database, inlineMax: number, writerThread: boolean, tamperEvidence: boolean, cacheMiB: number) {
    this.location = dir;
    this.#db = db;
    this.#inlineMax = inlineMax;
    this.#files = new FileBlobs(join(dir, 'blobs'), join(dir, 'tmp'));
    this.#stmt = prepareStatements(db);
    this.#applier = new BatchApplier(db, dir, tamperEvidence);
    this.#objects = new SqliteObjects(db, dir);
    const script = writerThread ? writerScript() : undefined;
    this.#writer = script === undefined ? undefined : new WriterThread(script, { databasePath: join(dir, DATABASE_FILE), location: dir, tamperEvidence, cacheMiB });
  }

  /**
   * Open (and by default create) the store in `dir`.
   * @throws ProvenantError STORE_NOT_FOUND when absent and `create` is false; STORE_TOO_NEW when
   * the store was written by a newer Provenant.
   */
  static open(dir: string, options: SqliteStoreOptions = {}): SqliteStore {
    const root = resolve(dir);
    const file = join(root, DATABASE_FILE);
    if (!existsSync(file)) {
      if (options.create === false) {
        throw new ProvenantError('STORE_NOT_FOUND', `no Provenant store at ${root}`, {
          hint: 'Run `provenant init` there, or pass --store <dir> (or set PROVENANT_STORE) to use another store.',
          context: { store: root },
        });
      }
      mkdirSync(root, { recursive: true });
    }
    const db = new Database(file);
    try {
      // Refuse a newer store before anything (even the journal mode) is changed in it.
      checkSchemaVersion(db, root);
      configureConnection(db, options.cacheMiB);
      migrate(db, root);
      // Every COMPLETE checkpoint carries a signed tree head: a store gets its key when first opened.
      createSigningKey(root);
    } catch (err) {
      db.close();
      throw err;
    }
    return new SqliteStore(root, db, options.inlineBlobMaxBytes ?? DEFAULT_INLINE_MAX, options.writerThread ?? true, options.tamperEvidence ?? true, options.cacheMiB ?? DEFAULT_CACHE_MIB);
  }

  /** Path of the SQLite database file. */
  get databasePath(): string {
    return join(this.location, DATABASE_FILE);
  }

  /** The underlying connection, for diagnostics (`PRAGMA integrity_check`) and benchmarks only. */
  get database(): Database.Database {
    return this.#db;
  }

  // ---- blobs ----------------------------------------------------------------------------

  /**
   * Store bytes. If the store already holds them but its copy is damaged or missing, the copy is
   * replaced by these bytes (their hash proves them right): this is how a corrupt blob is repaired.
   */
  async putBlob(bytes: Uint8Array): Promise<ContentHash> {
    const hash = sha256(bytes);
    const size = bytes.byteLength;
    const key = hashToBytes(hash);
    const existing = this.#blobs.stat(key);
    let repair = false;
    if (existing !== undefined) {
      try {
        await this.getBlob(hash);
        return hash;
      } catch (err) {
        if (!(err instanceof BlobCorruptError || err instanceof BlobMissingError)) throw err;
        repair = true;
      }
    }
    if (size > this.#inlineMax) await this.#files.write(hash, bytes, { replace: repair });
    this.#db
      .transaction(() => {
        if (repair) this.#blobs.delete(key);
        this.#blobs.insert(key, size, size > this.#inlineMax ? LOCATION_FILE : LOCATION_INLINE, size > this.#inlineMax ? null : bytes);
        this.#blobs.mergeIfDue();
      })
      .immediate();
    return hash;
  }

  async putBlobStream(source: Readable | AsyncIterable<Uint8Array>): Promise<{ hash: ContentHash; size: number }> {
    const { hash, size } = await this.#files.writeStream(source);
    this.#db
      .transaction(() => {
        this.#blobs.insert(hashToBytes(hash), size, LOCATION_FILE, null);
        this.#blobs.mergeIfDue();
      })
      .immediate();
    return { hash, size };
  }

  async getBlob(hash: ContentHash): Promise<Uint8Array> {
    const row = this.#blobs.get(hashToBytes(hash));
    if (row === undefined) throw new BlobMissingError(hash, `store ${this.location}`);
    if (row.location === LOCATION_FILE) return this.#files.read(hash);
    const bytes = row.bytes ?? Buffer.alloc(0);
    const actual = sha256(bytes);
    if (actual !== hash) throw new BlobCorruptError(hash, actual, `inline in ${this.databasePath}`);
    return bytes;
  }

  async openBlobStream(hash: ContentHash): Promise<Readable> {
    const row = this.#blobs.stat(hashToBytes(hash));
    if (row === undefined) throw new BlobMissingError(hash, `store ${this.location}`);
    if (row.location === LOCATION_FILE) return this.#files.openStream(hash);
    return Readable.from([await this.getBlob(hash)]);
  }

  async hasBlob(hash: ContentHash): Promise<boolean> {
    return this.#blobs.stat(hashToBytes(hash)) !== undefined;
  }

  async statBlob(hash: ContentHash): Promise<{ size: number; location: BlobLocation } | undefined> {
    const row = this.#blobs.stat(hashToBytes(hash));
    if (row === undefined) return undefined;
    return { size: row.size, location: row.location === LOCATION_FILE ? 'file' : 'inline' };
  }

  async listBlobs(options: { afterHash?: ContentHash; limit?: number } = {}): Promise<{ hash: ContentHash; size: number }[]> {
    const after = options.afterHash === undefined ? Buffer.alloc(0) : hashToBytes(options.afterHash);
    const rows = this.#blobs.list(after, options.limit ?? 1000);
    return rows.map((r) => ({ hash: hashFromBytes(r.hash), size: r.size }));
  }

  // ---- steps ----------------------------------------------------------------------------

  async registerStepVersion(version: StepVersion): Promise<StepVersion> {
    const existing = await this.getStepVersion(version.stepId, version.versionHash);
    if (existing !== undefined) return existing;
    if (!(await this.hasBlob(version.versionHash))) {
      throw new ProvenantError('ARTIFACT_MISSING', `the artifact of step ${version.stepId} version ${version.versionHash} is not stored`, {
        hint: 'Store the artifact bytes (putBlob) before registering the version.',
        context: { stepId: version.stepId, versionHash: version.versionHash },
      });
    }
    this.#stmt.insertStepVersion.run(
      version.stepId,
      hashToBytes(version.versionHash),
      JSON.stringify(version.manifest),
      version.firstSeenUs,
      version.firstRunId,
    );
    return version;
  }

  async getStepVersion(stepId: string, versionHash: ContentHash): Promise<StepVersion | undefined> {
    const row = this.#stmt.getStepVersion.get(stepId, hashToBytes(versionHash)) as StepVersionRow | undefined;
    return row === undefined ? undefined : toStepVersion(row);
  }

  async listSteps(): Promise<StepSummary[]> {
    const rows = this.#stmt.listStepVersions.all() as (StepVersionRow & { executions: number; failed: number })[];
    const byStep = new Map<string, (StepVersion & { executions: number; failed: number })[]>();
    for (const row of rows) {
      const list = byStep.get(row.step_id) ?? [];
      list.push({ ...toStepVersion(row), executions: row.executions, failed: row.failed });
      byStep.set(row.step_id, list);
    }
    return [...byStep].map(([stepId, versions]) => ({ stepId, versions }));
  }

  // ---- runs -----------------------------------------------------------------------------

  async createRun(run: RunRecord): Promise<void> {
    const json = canonicalize(run.context);
    const context = this.#applier.internContext(sha256(json), json);
    this.#stmt.insertRun.run(
      run.id,
      run.kind,
      run.name,
      run.startedUs,
      canonicalize(run.environment),
      run.failurePolicy,
      context,
      canonicalize(run.options),
    );
  }

  async endRun(end: RunEnd): Promise<void> {
    try {
      const { changes } = this.#stmt.insertRunEnd.run(end.endedUs, end.status, canonicalize(end.summary), end.runId);
      if (changes === 0) {
        throw new ProvenantError('NOT_FOUND', `run ${end.runId} does not exist in ${this.location}`, { context: { runId: end.runId } });
      }
    } catch (err) {
      if (isConstraint(err)) {
        throw new ProvenantError('RUN_CLOSED', `run ${end.runId} has already ended`, { context: { runId: end.runId } });
      }
      throw err;
    }
  }

  async getRun(runId: string): Promise<RunInfo | undefined> {
    const row = this.#stmt.getRun.get(runId) as RunRow | undefined;
    return row === undefined ? undefined : toRunInfo(row);
  }

  async listRuns(limit = 100): Promise<RunInfo[]> {
    return (this.#stmt.listRuns.all(limit) as RunRow[]).map(toRunInfo);
  }

  // ---- executions -----------------------------------------------------------------------

  async appendExecutions(batch: ExecutionBatch): Promise<void> {
    if (batch.executions.length === 0 && batch.values.length === 0) return;
    await this.commitBatch(packBatch(batch, this.#isFile, canonicalize, (v) => this.#files.write(v.hash, v.bytes)));
  }

  newBatch(like?: ExecutionBatchBuilder): PackedBatchBuilder {
    // Buffers start as large as the previous batch of the same kind needed, plus a margin, so they do not grow.
    const sizes = like instanceof PackedBatchBuilder ? like.sizes : undefined;
    const hint = sizes === undefined ? undefined : { values: Math.ceil(sizes.values * 1.1), executions: Math.ceil(sizes.executions * 1.1) };
    // Large values start their durable file writes as soon as they are added (see commitBatch).
    return new PackedBatchBuilder(this.#isFile, canonicalize, hint, (v) => this.#files.write(v.hash, v.bytes));
  }


  async commitBatch(batch: ExecutionBatchBuilder, checkpoint?: CheckpointTransition): Promise<void> {
    if (!(batch instanceof PackedBatchBuilder)) throw new TypeError('commitBatch takes a batch made by this store\'s newBatch()');
    // Large values are durable files before any record that refers to them commits.
    await batch.fileWrites();
    const packed = batch.finish(checkpoint);
    if (this.#writer !== undefined) await this.#writer.apply(packed);
    else this.#applier.apply(packed);
  }

  readonly #isFile = (size: number): boolean => size > this.#inlineMax;

  async getExecution(id: string): Promise<ExecutionRecord | undefined> {
    let key: Buffer;
    try {
      key = uuidToBytes(id);
    } catch {
      return undefined;
    }
    const row = this.#stmt.getExecution.get(key) as ExecutionRow | undefined;
    return row === undefined ? undefined : toExecution(row);
  }

  async listExecutions(query: ExecutionQuery = {}): Promise<ExecutionRecord[]> {
    const { where, args } = this.#executionFilter(query);
    if (query.afterId !== undefined) {
      if (!isUuid(query.afterId)) {
        throw new ProvenantError('INPUT_INVALID', `"${query.afterId}" is not an execution id (a UUID) to list after`, {
          hint: 'Pass the id of the last execution of the previous page.',
          context: { afterId: query.afterId },
        });
      }
      where.push('e.id > ?');
      args.push(uuidToBytes(query.afterId));
    }
    args.push(query.limit ?? 100);
    const sql = `${EXECUTION_SELECT} ${where.length > 0 ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY e.id LIMIT ?`;
    return (this.#db.prepare(sql).all(...args) as ExecutionRow[]).map(toExecution);
  }

  async countExecutions(query: Omit<ExecutionQuery, 'afterId' | 'limit'> = {}): Promise<number> {
    const { where, args } = this.#executionFilter(query);
    const joins = query.stepId !== undefined ? 'JOIN step_versions sv ON sv.seq = e.step_version' : '';
    const runJoin = query.runId !== undefined ? 'JOIN runs r ON r.seq = e.run' : '';
    const sql = `SELECT count(*) AS n FROM executions e ${joins} ${runJoin} ${where.length > 0 ? 'WHERE ' + where.join(' AND ') : ''}`;
    return (this.#db.prepare(sql).get(...args) as { n: number }).n;
  }

  async listDeadLetters(runId?: string): Promise<{ executionId: string; runId: string; reason: string }[]> {
    const rows = this.#db
      .prepare(
        `SELECT d.execution, r.id AS run_id, d.reason FROM dead_letters d JOIN runs r ON r.seq = d.run
         ${runId === undefined ? '' : 'WHERE r.id = ?'} ORDER BY d.execution`,
      )
      .all(...(runId === undefined ? [] : [runId])) as { execution: Buffer; run_id: string; reason: string }[];
    return rows.map((r) => ({ executionId: uuidFromBytes(r.execution), runId: r.run_id, reason: r.reason }));
  }

  // ---- embedded stream logs -------------------------------------------------------------

  async appendToStream(streamId: string, values: readonly StreamValue[], options: { appendedUs?: number } = {}): Promise<{ first: number; next: number }> {
    checkStreamId(streamId);
    // Large values are durable files before the log rows that refer to them commit.
    for (const v of values) if (v.bytes.byteLength > this.#inlineMax) await this.#files.write(v.hash, v.bytes);
    const stmt = this.#stmt;
    const inlineMax = this.#inlineMax;
    const appendedUs = options.appendedUs ?? nowUs();
    return this.#db
      .transaction(() => {
        const seq = this.#applier.internStream(streamId);
        const first = (stmt.streamNext.get(seq) as { next: number }).next;
        values.forEach((v, i) => {
          const key = hashToBytes(v.hash);
          const size = v.bytes.byteLength;
          this.#blobs.insert(key, size, size > inlineMax ? LOCATION_FILE : LOCATION_INLINE, size > inlineMax ? null : v.bytes);
          stmt.insertStreamEntry.run(seq, first + i, key, v.encoding === 'bytes' ? 1 : 0, appendedUs);
        });
        this.#blobs.mergeIfDue();
        return { first, next: first + values.length };
      })
      .immediate();
  }

  async readStream(streamId: string, range: { from?: number; to?: number; limit?: number } = {}): Promise<StreamEntry[]> {
    const rows = this.#stmt.readStream.all(streamId, range.from ?? 0, range.to ?? Number.MAX_SAFE_INTEGER, range.limit ?? 1000) as {
      offset: number;
      value: Buffer;
      encoding: number;
      appended: number;
    }[];
    return rows.map((r) => ({ streamId, offset: r.offset, hash: hashFromBytes(r.value), encoding: r.encoding === 1 ? 'bytes' : 'json', appendedUs: r.appended }));
  }

  async getStream(streamId: string): Promise<StreamSummary | undefined> {
    const row = this.#stmt.streamSummary.get(streamId) as StreamSummaryRow | undefined;
    return row === undefined || row.length === 0 ? undefined : toStreamSummary(row);
  }

  async listStreams(): Promise<StreamSummary[]> {
    return (this.#stmt.listStreams.all() as StreamSummaryRow[]).map(toStreamSummary);
  }

  // ---- checkpoints ----------------------------------------------------------------------

  async applyCheckpoint(transition: CheckpointTransition, values: readonly ValueWrite[] = []): Promise<void> {
    const rows: { hash: Buffer; size: number; location: number; bytes: Uint8Array | null }[] = [];
    for (const v of values) {
      const size = v.bytes.byteLength;
      const file = size > Math.max(this.#inlineMax, CHECKPOINT_INLINE_MAX);
      if (file) await this.#files.write(v.hash, v.bytes);
      rows.push({ hash: hashToBytes(v.hash), size, location: file ? LOCATION_FILE : LOCATION_INLINE, bytes: file ? null : v.bytes });
    }
    this.#applier.applyCheckpoint(transition, rows);
  }

  async getCheckpoint(checkpointId: string): Promise<CheckpointRecord | undefined> {
    const row = this.#stmt.getCheckpoint.get(checkpointId) as CheckpointRow | undefined;
    return row === undefined ? undefined : toCheckpoint(row);
  }

  async listCheckpoints(query: CheckpointQuery = {}): Promise<CheckpointRecord[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (query.streamId !== undefined) {
      where.push('s.id = ?');
      args.push(query.streamId);
    }
    if (query.runId !== undefined) {
      where.push('r.id = ?');
      args.push(query.runId);
    }
    if (query.afterId !== undefined) {
      where.push('c.seq > (SELECT seq FROM checkpoints WHERE id = ?)');
      args.push(query.afterId);
    }
    args.push(query.limit ?? 1000);
    const sql = `${CHECKPOINT_SELECT} ${where.length > 0 ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY c.seq LIMIT ?`;
    return (this.#db.prepare(sql).all(...args) as CheckpointRow[]).map(toCheckpoint);
  }

  async listExecutionSketches(runId: string, firstId: string, lastId: string): Promise<ExecutionSketch[]> {
    const rows = this.#stmt.executionSketches.all(runId, uuidToBytes(firstId), uuidToBytes(lastId)) as SketchRow[];
    return rows.map(toSketch);
  }

  // ---- objects --------------------------------------------------------------------------

  async commitObjectVersions(batch: ObjectVersionBatch): Promise<ObjectVersionRecord[]> {
    const builder = packBatch({ executions: batch.executions, values: batch.values }, this.#isFile, canonicalize, (v) => this.#files.write(v.hash, v.bytes));
    await builder.fileWrites();
    const packed = builder.finish();
    let records: ObjectVersionRecord[] = [];
    // On the main connection (the writer thread serves capture batches): busy_timeout covers overlap.
    this.#applier.apply(packed, () => {
      records = this.#objects.insertVersions(batch.versions);
      this.#applier.log.appendObjectVersions(records.map((r) => uuidToBytes(r.versionId)));
    });
    return records;
  }

  async getObjectVersion(versionId: string): Promise<ObjectVersionRecord | undefined> {
    return this.#objects.getVersion(versionId);
  }

  async objectVersionAt(objectId: string, atUs: number): Promise<ObjectVersionRecord | undefined> {
    return this.#objects.versionAt(objectId, atUs);
  }

  async listObjectVersions(objectId: string, range: { untilUs?: number; limit?: number } = {}): Promise<ObjectVersionRecord[]> {
    return this.#objects.listVersions(objectId, range.untilUs, range.limit);
  }

  async findObjectVersions(by: { contentHash?: ContentHash; executionId?: string }): Promise<ObjectVersionRecord[]> {
    return this.#objects.findVersions(by);
  }

  async listObjects(options: { prefix?: string; limit?: number } = {}): Promise<{ objectId: string; versions: number; latestUs: number }[]> {
    return this.#objects.listObjects(options.prefix ?? '', options.limit ?? 1000);
  }

  async walkLineage(query: LineageQuery): Promise<LineageRows> {
    return this.#objects.walk(query);
  }

  async recomputePlan(versionId: string): Promise<RecomputeRow[]> {
    return this.#objects.plan(versionId);
  }

  async setMaterialization(setting: MaterializationSetting): Promise<void> {
    this.#objects.setMaterialization(setting);
  }

  async listMaterialization(): Promise<MaterializationSetting[]> {
    return this.#objects.listMaterialization();
  }

  async setPinned(versionId: string, pinned: boolean): Promise<void> {
    this.#objects.setPinned(versionId, pinned);
  }

  async recordObjectReads(reads: readonly ObjectRead[]): Promise<void> {
    if (reads.length > 0) this.#objects.recordReads(reads);
  }

  async listVersionUsage(): Promise<VersionUsage[]> {
    return this.#objects.usage();
  }

  async dropBlobs(hashes: readonly ContentHash[]): Promise<{ dropped: ContentHash[]; bytes: number }> {
    const dropped: ContentHash[] = [];
    const files: ContentHash[] = [];
    let bytes = 0;
    this.#db
      .transaction(() => {
        // Decided inside the write transaction: nothing can start referring to them meanwhile.
        for (const hash of this.#objects.droppable(hashes)) {
          const key = hashToBytes(hash);
          const row = this.#blobs.stat(key);
          if (row === undefined) continue;
          this.#blobs.delete(key);
          if (row.location === LOCATION_FILE) files.push(hash);
          dropped.push(hash);
          bytes += row.size;
        }
      })
      .immediate();
    // Files go after the rows: a crash in between leaves a stray file, never a row without bytes.
    for (const hash of files) await this.#files.remove(hash);
    return { dropped, bytes };
  }

  // ---- access: tokens and the access log -------------------------------------------------

  async createToken(token: TokenRecord): Promise<void> {
    try {
      this.#stmt.insertToken.run(
        token.id,
        hashToBytes(token.hash),
        token.principal,
        JSON.stringify(token.grants),
        token.createdUs,
        token.expiresUs,
        token.label,
      );
    } catch (err) {
      if (isConstraint(err)) {
        throw new ProvenantError('INPUT_INVALID', `a token with id ${token.id} or the same secret already exists`, {
          hint: 'Create the token again: a new one gets a fresh id and secret.',
          context: { tokenId: token.id },
        });
      }
      throw err;
    }
  }

  async findToken(hash: ContentHash): Promise<TokenInfo | undefined> {
    const row = this.#stmt.findToken.get(hashToBytes(hash)) as TokenRow | undefined;
    return row === undefined ? undefined : toToken(row);
  }

  async listTokens(): Promise<TokenInfo[]> {
    return (this.#stmt.listTokens.all() as TokenRow[]).map(toToken);
  }

  async revokeToken(tokenId: string, revokedUs: number): Promise<TokenInfo> {
    this.#db
      .transaction(() => {
        const row = this.#stmt.getToken.get(tokenId) as TokenRow | undefined;
        if (row === undefined) {
          throw new ProvenantError('NOT_FOUND', `no token with id ${tokenId} in ${this.location}`, {
            hint: 'List tokens with `provenant token list`.',
            context: { tokenId },
          });
        }
        this.#stmt.insertRevocation.run(revokedUs, tokenId);
      })
      .immediate();
    this.#revocations.count = -1;
    return toToken(this.#stmt.getToken.get(tokenId) as TokenRow);
  }

  readonly #revocations = { dataVersion: -1, count: -1 };

  /**
   * Counted again only when the database changed since the last count: `PRAGMA data_version`
   * (a read of the connection's own state) changes when another connection or process commits;
   * this connection's own revocations reset the count themselves.
   */
  readonly revocationCount = async (): Promise<number> => {
    const version = this.#stmt.dataVersion.get() as number;
    if (version !== this.#revocations.dataVersion || this.#revocations.count < 0) {
      this.#revocations.count = (this.#stmt.revocationCount.get() as { n: number }).n;
      this.#revocations.dataVersion = version;
    }
    return this.#revocations.count;
  };

  /**
   * Appends go through a connection of their own with a small page cache: a server logs every
   * request, and on the main connection (64 MiB cache) the new log pages would stay cached and
   * grow the process's memory by up to that much under load.
   */
  async appendAccessLog(entries: readonly AccessLogEntry[]): Promise<void> {
    if (entries.length === 0) return;
    if (this.#log === undefined) {
      const db = new Database(this.databasePath);
      configureConnection(db);
      db.pragma('cache_size = -1024');
      this.#log = { db, insert: db.prepare(INSERT_ACCESS_SQL) };
    }
    const { db, insert } = this.#log;
    db
      .transaction(() => {
        for (const e of entries) {
          insert.run(
            e.id,
            e.timeUs,
            e.principal,
            e.tokenId,
            e.address,
            e.method,
            e.target,
            e.route,
            e.status,
            JSON.stringify(e.rights),
            e.traceId,
            e.durationUs,
            canonicalize(e.detail),
          );
        }
      })
      .immediate();
  }

  async listAccessLog(query: AccessLogQuery = {}): Promise<AccessLogEntry[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (query.principal !== undefined) {
      where.push('principal = ?');
      args.push(query.principal);
    }
    if (query.sinceUs !== undefined) {
      where.push('time >= ?');
      args.push(query.sinceUs);
    }
    if (query.afterId !== undefined) {
      where.push('seq > coalesce((SELECT seq FROM access_log WHERE id = ?), 0)');
      args.push(query.afterId);
    }
    args.push(query.limit ?? 1000);
    const sql = `SELECT * FROM access_log ${where.length > 0 ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY seq LIMIT ?`;
    return (this.#db.prepare(sql).all(...args) as AccessRow[]).map(toAccess);
  }

  async appendReplayJobSnapshot(snapshot: ReplayJobSnapshot): Promise<void> {
    const view = replayJobSnapshotText(snapshot);
    this.#stmt.insertJobSnapshot.run(snapshot.jobId, snapshot.atUs, view);
  }

  async latestReplayJobSnapshot(jobId: string): Promise<ReplayJobSnapshot | undefined> {
    const row = this.#stmt.latestJobSnapshot.get(jobId) as { at: number; view: string } | undefined;
    return row === undefined ? undefined : { jobId, atUs: row.at, view: JSON.parse(row.view) as JsonValue };
  }

  async stats(): Promise<StoreStats> {
    const one = (sql: string): number => (this.#db.prepare(sql).get() as { n: number | null }).n ?? 0;
    const values = this.#blobs.totals();
    return {
      executions: one('SELECT count(*) AS n FROM executions'),
      failedExecutions: one('SELECT count(*) AS n FROM executions WHERE status = 1'),
      runs: one('SELECT count(*) AS n FROM runs'),
      stepVersions: one('SELECT count(*) AS n FROM step_versions'),
      blobs: values.n,
      blobBytes: values.bytes,
    };
  }

  async close(): Promise<void> {
    await this.#writer?.close();
    if (this.#log?.db.open === true) this.#log.db.close();
    if (this.#db.open) this.#db.close();
  }

  // ---- internals ------------------------------------------------------------------------

  #executionFilter(query: Omit<ExecutionQuery, 'afterId' | 'limit'>): { where: string[]; args: unknown[] } {
    const where: string[] = [];
    const args: unknown[] = [];
    if (query.stepId !== undefined) {
      where.push('sv.step_id = ?');
      args.push(query.stepId);
    }
    if (query.runId !== undefined) {
      where.push('r.id = ?');
      args.push(query.runId);
    }
    if (query.status !== undefined) {
      where.push('e.status = ?');
      args.push(query.status === 'ok' ? 0 : 1);
    }
    return { where, args };
  }

}

function prepareStatements(db: Database.Database) {
  return {
    insertStepVersion: db.prepare(
      'INSERT INTO step_versions (step_id, version_hash, manifest, first_seen, first_run) VALUES (?, ?, ?, ?, ?)',
    ),
    getStepVersion: db.prepare('SELECT * FROM step_versions WHERE step_id = ? AND version_hash = ?'),
    listStepVersions: db.prepare(`
      SELECT sv.*, coalesce(c.n, 0) AS executions, coalesce(c.failed, 0) AS failed
      FROM step_versions sv
      LEFT JOIN (SELECT step_version, count(*) AS n, sum(status) AS failed FROM executions GROUP BY step_version) c
        ON c.step_version = sv.seq
      ORDER BY sv.step_id, sv.first_seen, sv.seq`),
    insertRun: db.prepare(
      'INSERT INTO runs (id, kind, name, started, environment, policy, context, options) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    streamNext: db.prepare('SELECT coalesce(max("offset") + 1, 0) AS next FROM stream_log WHERE stream = ?'),
    insertStreamEntry: db.prepare('INSERT INTO stream_log (stream, "offset", value, encoding, appended) VALUES (?, ?, ?, ?, ?)'),
    readStream: db.prepare(`
      SELECT l."offset", l.value, l.encoding, l.appended FROM stream_log l JOIN streams s ON s.seq = l.stream
      WHERE s.id = ? AND l."offset" >= ? AND l."offset" < ? ORDER BY l."offset" LIMIT ?`),
    streamSummary: db.prepare(`
      SELECT s.id, count(l."offset") AS length, min(l.appended) AS first, max(l.appended) AS last
      FROM streams s LEFT JOIN stream_log l ON l.stream = s.seq WHERE s.id = ? GROUP BY s.id`),
    listStreams: db.prepare(`
      SELECT s.id, count(*) AS length, min(l.appended) AS first, max(l.appended) AS last
      FROM streams s JOIN stream_log l ON l.stream = s.seq GROUP BY s.id ORDER BY s.id`),
    insertRunEnd: db.prepare('INSERT INTO run_ends (run, ended, status, summary) SELECT seq, ?, ?, ? FROM runs WHERE id = ?'),
    getRun: db.prepare(`${RUN_SELECT} WHERE r.id = ?`),
    listRuns: db.prepare(`${RUN_SELECT} ORDER BY r.seq DESC LIMIT ?`),
    getExecution: db.prepare(`${EXECUTION_SELECT} WHERE e.id = ?`),
    getCheckpoint: db.prepare(`${CHECKPOINT_SELECT} WHERE c.id = ?`),
    insertToken: db.prepare('INSERT INTO tokens (id, hash, principal, grants, created, expires, label) VALUES (?, ?, ?, ?, ?, ?, ?)'),
    findToken: db.prepare(`${TOKEN_SELECT} WHERE t.hash = ?`),
    getToken: db.prepare(`${TOKEN_SELECT} WHERE t.id = ?`),
    listTokens: db.prepare(`${TOKEN_SELECT} ORDER BY t.seq`),
    revocationCount: db.prepare('SELECT count(*) AS n FROM token_revocations'),
    dataVersion: db.prepare('PRAGMA data_version').pluck(),
    insertJobSnapshot: db.prepare('INSERT INTO replay_job_snapshots (job, at, view) VALUES (?, ?, ?)'),
    latestJobSnapshot: db.prepare('SELECT at, view FROM replay_job_snapshots WHERE job = ? ORDER BY seq DESC LIMIT 1'),
    insertRevocation: db.prepare('INSERT OR IGNORE INTO token_revocations (token, revoked) SELECT seq, ? FROM tokens WHERE id = ?'),
    executionSketches: db.prepare(`
      SELECT e.id, sv.step_id, sv.version_hash, e.inputs, e.output, e.params, e.status, e.error, e.nondeterminism,
             e.encodings, e."offset"
      FROM executions e JOIN step_versions sv ON sv.seq = e.step_version
      WHERE e.run = (SELECT seq FROM runs WHERE id = ?) AND e.id BETWEEN ? AND ? ORDER BY e.id`),
  };
}

/** The schema version of the SQLite store in folder `dir` (0 when it has none), read without writing anything. */
export function sqliteSchemaVersion(dir: string): number {
  const file = join(resolve(dir), DATABASE_FILE);
  if (!existsSync(file)) return 0;
  const db = new Database(file, { readonly: true });
  try {
    return schemaVersion(db);
  } finally {
    db.close();
  }
}

/** The store's schema version (0 for a new database), read without writing anything. */
function schemaVersion(db: Database.Database): number {
  const table = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").get();
  if (table === undefined) return 0;
  return (db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as { v: number | null }).v ?? 0;
}

function checkSchemaVersion(db: Database.Database, root: string): void {
  const current = schemaVersion(db);
  if (current > SCHEMA_VERSION) {
    throw new ProvenantError('STORE_TOO_NEW', `the store at ${root} has schema version ${current}; this Provenant knows up to ${SCHEMA_VERSION}`, {
      hint: 'Upgrade Provenant to open this store. Nothing was written.',
      context: { store: root, storeSchema: current, knownSchema: SCHEMA_VERSION },
    });
  }
}

function migrate(db: Database.Database, root: string): void {
  checkSchemaVersion(db, root);
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied INTEGER NOT NULL)`);
  const current = schemaVersion(db);
  for (const m of MIGRATIONS) {
    if (m.version <= current) continue;
    db.transaction(() => {
      db.exec(m.sql);
      m.after?.(db);
      db.prepare('INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
    }).immediate();
  }
}

interface StepVersionRow {
  step_id: string;
  version_hash: Buffer;
  manifest: string;
  first_seen: number;
  first_run: string | null;
}

function toStepVersion(row: StepVersionRow): StepVersion {
  return {
    stepId: row.step_id,
    versionHash: hashFromBytes(row.version_hash),
    manifest: JSON.parse(row.manifest) as StepManifest,
    firstSeenUs: row.first_seen,
    firstRunId: row.first_run,
  };
}

function toRunInfo(row: RunRow): RunInfo {
  return {
    id: row.id,
    kind: row.kind as RunInfo['kind'],
    name: row.name,
    startedUs: row.started,
    environment: JSON.parse(row.environment) as RunInfo['environment'],
    failurePolicy: row.policy as RunInfo['failurePolicy'],
    context: JSON.parse(row.context) as ExecutionContext,
    options: JSON.parse(row.options) as RunInfo['options'],
    end:
      row.ended === null
        ? null
        : {
            runId: row.id,
            endedUs: row.ended,
            status: row.status as RunEnd['status'],
            summary: JSON.parse(row.summary ?? 'null') as RunEnd['summary'],
          },
  };
}

function toExecution(row: ExecutionRow): ExecutionRecord {
  const inputHashes: ContentHash[] = [];
  for (let i = 0; i * 32 < row.inputs.length; i++) inputHashes.push(hashFromBytes(row.inputs.subarray(i * 32, i * 32 + 32)));
  const encodings = decodeEncodings(row.encodings, inputHashes.length);
  const inputEncodings = encodings.inputs;
  return {
    id: uuidFromBytes(row.id),
    runId: row.run_id,
    functionId: row.step_id,
    functionVersionHash: hashFromBytes(row.version_hash),
    inputHashes,
    inputEncodings,
    outputHash: row.output === null ? null : hashFromBytes(row.output),
    outputEncoding: encodings.output,
    paramsHash: hashFromBytes(row.params),
    contextHash: hashFromBytes(row.context_hash),
    context: JSON.parse(row.context) as ExecutionContext,
    startedUs: row.started,
    endedUs: row.started + row.duration,
    status: row.status === 0 ? 'ok' : 'failed',
    errorHash: row.error === null ? null : hashFromBytes(row.error),
    nondeterminismHash: row.nondeterminism === null ? null : hashFromBytes(row.nondeterminism),
    streamId: row.stream_id,
    offset: row.offset,
    recordHash: hashFromBytes(row.record_hash),
  };
}

function isConstraint(err: unknown): boolean {
  return typeof err === 'object' && err !== null && String((err as { code?: unknown }).code).startsWith('SQLITE_CONSTRAINT');
}

/** The writer thread's script, next to this module when built; undefined when running from source without a build. */
function writerScript(): URL | undefined {
  const built = new URL('./writer-thread.js', import.meta.url);
  if (existsSync(fileURLToPath(built))) return built;
  const fromSource = new URL('../../../dist/store/sqlite/writer-thread.js', import.meta.url);
  return existsSync(fileURLToPath(fromSource)) ? fromSource : undefined;
}

/** The main-thread side of the writer thread: sends packed batches in order, awaits each commit. */
class WriterThread {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: () => void; reject: (err: unknown) => void }>();
  #next = 1;
  #broken: ProvenantError | undefined;

  constructor(script: URL, data: { databasePath: string; location: string; tamperEvidence: boolean; cacheMiB: number }) {
    const location = data.location;
    this.#worker = new Worker(script, { workerData: data });
    this.#worker.unref();
    this.#worker.on('message', (msg: { id: number; error?: { code?: string; message: string; hint?: string; context?: Record<string, unknown> } }) => {
      const p = this.#pending.get(msg.id);
      if (p === undefined) return;
      this.#settled(msg.id);
      if (msg.error === undefined) p.resolve();
      else
        p.reject(
          new ProvenantError((msg.error.code ?? 'STORE_BUSY') as ConstructorParameters<typeof ProvenantError>[0], msg.error.message, {
            ...(msg.error.hint === undefined ? {} : { hint: msg.error.hint }),
            context: msg.error.context ?? { store: location },
          }),
        );
    });
    const fail = (why: string) => {
      this.#broken = new ProvenantError('STORE_BUSY', `the store's writer thread stopped (${why}); batches not yet committed were not recorded`, {
        hint: 'Reopen the store and run again; committed records are intact.',
        context: { store: location },
      });
      for (const [id, p] of this.#pending) {
        this.#settled(id);
        p.reject(this.#broken);
      }
    };
    this.#worker.on('error', (err) => fail(err.message));
    this.#worker.on('exit', (code) => {
      if (this.#pending.size > 0 || this.#broken === undefined) fail(`exit code ${code}`);
    });
  }

  /** Commit a packed batch on the writer thread; resolves when it is committed. */
  apply(batch: PackedBatch): Promise<void> {
    return this.#send({ batch }, batch.sections.map((section) => section.buffer));
  }

  async close(): Promise<void> {
    if (this.#broken !== undefined) return;
    await this.#send({ close: true }, []);
    this.#broken = new ProvenantError('STORE_BUSY', 'the store is closed', {});
    await this.#worker.terminate();
  }

  #send(msg: { batch?: PackedBatch; close?: true }, transfer: ArrayBuffer[]): Promise<void> {
    if (this.#broken !== undefined) return Promise.reject(this.#broken);
    const id = this.#next++;
    return new Promise<void>((resolve, reject) => {
      if (this.#pending.size === 0) this.#worker.ref();
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, ...msg }, transfer);
    });
  }

  #settled(id: number): void {
    this.#pending.delete(id);
    if (this.#pending.size === 0) this.#worker.unref();
  }
}

interface SketchRow {
  id: Buffer;
  step_id: string;
  version_hash: Buffer;
  inputs: Buffer;
  output: Buffer | null;
  params: Buffer;
  status: number;
  error: Buffer | null;
  nondeterminism: Buffer | null;
  encodings: Buffer | null;
  offset: number | null;
}

function toSketch(row: SketchRow): ExecutionSketch {
  const inputHashes: ContentHash[] = [];
  for (let i = 0; i * 32 < row.inputs.length; i++) inputHashes.push(hashFromBytes(row.inputs.subarray(i * 32, i * 32 + 32)));
  const encodings = decodeEncodings(row.encodings, inputHashes.length);
  return {
    id: uuidFromBytes(row.id),
    functionId: row.step_id,
    functionVersionHash: hashFromBytes(row.version_hash),
    inputHashes,
    inputEncodings: encodings.inputs,
    outputHash: row.output === null ? null : hashFromBytes(row.output),
    outputEncoding: encodings.output,
    paramsHash: hashFromBytes(row.params),
    status: row.status === 0 ? 'ok' : 'failed',
    errorHash: row.error === null ? null : hashFromBytes(row.error),
    nondeterminismHash: row.nondeterminism === null ? null : hashFromBytes(row.nondeterminism),
    offset: row.offset,
  };
}

