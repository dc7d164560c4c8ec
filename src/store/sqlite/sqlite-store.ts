/**
 * The embedded store: SQLite (better-sqlite3) for metadata and small blobs, plus a
 * content-addressed folder for large blobs. Zero configuration; one folder (`./.provenant`).
 *
 * Locking and durability model:
 * - One connection per process, WAL journal, `synchronous = NORMAL`: a committed transaction
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
 */
import Database from 'better-sqlite3';
import { mkdirSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { FileBlobs } from '../../blob/file-blobs.js';
import { BlobCorruptError, BlobMissingError, ProvenantError } from '../../errors.js';
import {
  canonicalize,
  hashFromBytes,
  hashToBytes,
  sha256,
  type ContentHash,
  type ValueEncoding,
} from '../../hash/canonical.js';
import { uuidFromBytes, uuidToBytes } from '../../ids.js';
import type {
  ExecutionBatch,
  ExecutionContext,
  ExecutionQuery,
  ExecutionRecord,
  RunEnd,
  RunInfo,
  RunRecord,
  StepManifest,
  StepSummary,
  StepVersion,
} from '../records.js';
import type { BlobLocation, Store, StoreCapabilities, StoreStats } from '../store.js';
import { MIGRATIONS, SCHEMA_VERSION } from './migrations.js';

/** Options of {@link SqliteStore.open}. */
export interface SqliteStoreOptions {
  /** Create the folder and database when absent. Default: true. */
  readonly create?: boolean;
  /** Blobs up to this many bytes live inside SQLite; larger ones are files. Default: 64 KiB. */
  readonly inlineBlobMaxBytes?: number;
}

/** File name of the SQLite database inside a store folder. */
export const DATABASE_FILE = 'provenant.db';

const DEFAULT_INLINE_MAX = 64 * 1024;
const LOCATION_INLINE = 0;
const LOCATION_FILE = 1;

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
  encodings: number;
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
       c.hash AS context_hash, c.context, e.started, e.duration, e.status, e.error, e.encodings,
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

/** The embedded SQLite store. Open with {@link SqliteStore.open} or `openStore(dir)`. */
export class SqliteStore implements Store {
  readonly location: string;
  readonly capabilities: StoreCapabilities = Object.freeze({ concurrentWriters: false, fileBlobs: true });

  readonly #db: Database.Database;
  readonly #files: FileBlobs;
  readonly #inlineMax: number;
  readonly #runSeq = new Map<string, number>();
  readonly #stepSeq = new Map<string, number>();
  readonly #contextSeq = new Map<string, number>();
  readonly #streamSeq = new Map<string, number>();
  readonly #stmt: ReturnType<typeof prepareStatements>;

  private constructor(dir: string, db: Database.Database, inlineMax: number) {
    this.location = dir;
    this.#db = db;
    this.#inlineMax = inlineMax;
    this.#files = new FileBlobs(join(dir, 'blobs'), join(dir, 'tmp'));
    this.#stmt = prepareStatements(db);
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
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 5000');
      migrate(db, root);
    } catch (err) {
      db.close();
      throw err;
    }
    return new SqliteStore(root, db, options.inlineBlobMaxBytes ?? DEFAULT_INLINE_MAX);
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

  async putBlob(bytes: Uint8Array): Promise<ContentHash> {
    const hash = sha256(bytes);
    await this.#writeValues([{ hash, bytes }], () => undefined);
    return hash;
  }

  async putBlobStream(source: Readable | AsyncIterable<Uint8Array>): Promise<{ hash: ContentHash; size: number }> {
    const { hash, size } = await this.#files.writeStream(source);
    this.#stmt.insertBlob.run(hashToBytes(hash), size, LOCATION_FILE, null);
    return { hash, size };
  }

  async getBlob(hash: ContentHash): Promise<Uint8Array> {
    const row = this.#stmt.getBlob.get(hashToBytes(hash)) as { location: number; bytes: Buffer | null } | undefined;
    if (row === undefined) throw new BlobMissingError(hash, `store ${this.location}`);
    if (row.location === LOCATION_FILE) return this.#files.read(hash);
    const bytes = row.bytes ?? Buffer.alloc(0);
    const actual = sha256(bytes);
    if (actual !== hash) throw new BlobCorruptError(hash, actual, `inline in ${this.databasePath}`);
    return bytes;
  }

  async openBlobStream(hash: ContentHash): Promise<Readable> {
    const row = this.#stmt.getBlob.get(hashToBytes(hash)) as { location: number } | undefined;
    if (row === undefined) throw new BlobMissingError(hash, `store ${this.location}`);
    if (row.location === LOCATION_FILE) return this.#files.openStream(hash);
    const { Readable } = await import('node:stream');
    return Readable.from([await this.getBlob(hash)]);
  }

  async hasBlob(hash: ContentHash): Promise<boolean> {
    return this.#stmt.getBlobStat.get(hashToBytes(hash)) !== undefined;
  }

  async statBlob(hash: ContentHash): Promise<{ size: number; location: BlobLocation } | undefined> {
    const row = this.#stmt.getBlobStat.get(hashToBytes(hash)) as { size: number; location: number } | undefined;
    if (row === undefined) return undefined;
    return { size: row.size, location: row.location === LOCATION_FILE ? 'file' : 'inline' };
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
    const context = this.#internContext(run.context);
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
      this.#stmt.insertRunEnd.run(this.#requireRun(end.runId), end.endedUs, end.status, canonicalize(end.summary));
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
    const stmt = this.#stmt;
    await this.#writeValues(batch.values, () => {
      for (const e of batch.executions) {
        const inputs =
          e.inputHashes.length === 1 ? hashToBytes(e.inputHashes[0] as string) : Buffer.concat(e.inputHashes.map(hashToBytes));
        stmt.insertExecution.run(
          uuidToBytes(e.id),
          this.#requireRun(e.runId),
          this.#requireStepVersion(e.functionId, e.functionVersionHash),
          inputs,
          e.outputHash === null ? null : hashToBytes(e.outputHash),
          hashToBytes(e.paramsHash),
          this.#internContext(e.context, e.contextHash),
          e.startedUs,
          e.endedUs - e.startedUs,
          e.status === 'ok' ? 0 : 1,
          e.errorHash === null ? null : hashToBytes(e.errorHash),
          encodeEncodings(e.outputEncoding, e.inputEncodings),
          e.streamId === null ? null : this.#internStream(e.streamId),
          e.offset,
          hashToBytes(e.recordHash),
        );
      }
      for (const d of batch.deadLetters ?? []) {
        const runId = batch.executions.find((e) => e.id === d.executionId)?.runId;
        if (runId === undefined) throw new TypeError(`dead letter ${d.executionId} is not in its batch`);
        stmt.insertDeadLetter.run(uuidToBytes(d.executionId), this.#requireRun(runId), d.reason);
      }
    });
  }

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

  async stats(): Promise<StoreStats> {
    const one = (sql: string): number => (this.#db.prepare(sql).get() as { n: number | null }).n ?? 0;
    return {
      executions: one('SELECT count(*) AS n FROM executions'),
      failedExecutions: one('SELECT count(*) AS n FROM executions WHERE status = 1'),
      runs: one('SELECT count(*) AS n FROM runs'),
      stepVersions: one('SELECT count(*) AS n FROM step_versions'),
      blobs: one('SELECT count(*) AS n FROM blobs'),
      blobBytes: one('SELECT sum(size) AS n FROM blobs'),
    };
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }

  // ---- internals ------------------------------------------------------------------------

  /** Write large values as files first, then small values and `then` in one transaction. */
  async #writeValues(values: ExecutionBatch['values'], then: () => void): Promise<void> {
    const large = values.filter((v) => v.bytes.byteLength > this.#inlineMax);
    for (const v of large) await this.#files.write(v.hash, v.bytes);
    const insertBlob = this.#stmt.insertBlob;
    const inlineMax = this.#inlineMax;
    try {
      this.#db
        .transaction(() => {
          for (const v of values) {
            const size = v.bytes.byteLength;
            if (size > inlineMax) insertBlob.run(hashToBytes(v.hash), size, LOCATION_FILE, null);
            else insertBlob.run(hashToBytes(v.hash), size, LOCATION_INLINE, v.bytes);
          }
          then();
        })
        .immediate();
    } catch (err) {
      // Rows interned inside the rolled-back transaction are gone: forget their cached numbers.
      this.#contextSeq.clear();
      this.#streamSeq.clear();
      throw err;
    }
  }

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

  #requireRun(runId: string): number {
    let seq = this.#runSeq.get(runId);
    if (seq === undefined) {
      const row = this.#stmt.getRunSeq.get(runId) as { seq: number } | undefined;
      if (row === undefined) {
        throw new ProvenantError('NOT_FOUND', `run ${runId} does not exist in ${this.location}`, { context: { runId } });
      }
      seq = row.seq;
      this.#runSeq.set(runId, seq);
    }
    return seq;
  }

  #requireStepVersion(stepId: string, versionHash: ContentHash): number {
    const key = `${stepId}\u0000${versionHash}`;
    let seq = this.#stepSeq.get(key);
    if (seq === undefined) {
      const row = this.#stmt.getStepVersionSeq.get(stepId, hashToBytes(versionHash)) as { seq: number } | undefined;
      if (row === undefined) {
        throw new ProvenantError('STEP_NOT_FOUND', `step ${stepId} version ${versionHash} is not registered in ${this.location}`, {
          hint: 'Register the step version before recording executions of it.',
          context: { stepId, versionHash },
        });
      }
      seq = row.seq;
      this.#stepSeq.set(key, seq);
    }
    return seq;
  }

  #internContext(context: ExecutionContext, knownHash?: ContentHash): number {
    const text = knownHash === undefined ? canonicalize(context) : undefined;
    const hash = knownHash ?? sha256(text as string);
    let seq = this.#contextSeq.get(hash);
    if (seq === undefined) {
      const key = hashToBytes(hash);
      this.#stmt.insertContext.run(key, text ?? canonicalize(context));
      seq = (this.#stmt.getContextSeq.get(key) as { seq: number }).seq;
      this.#contextSeq.set(hash, seq);
    }
    return seq;
  }

  #internStream(streamId: string): number {
    let seq = this.#streamSeq.get(streamId);
    if (seq === undefined) {
      this.#stmt.insertStream.run(streamId);
      seq = (this.#stmt.getStreamSeq.get(streamId) as { seq: number }).seq;
      this.#streamSeq.set(streamId, seq);
    }
    return seq;
  }
}

function prepareStatements(db: Database.Database) {
  return {
    insertBlob: db.prepare('INSERT OR IGNORE INTO blobs (hash, size, location, bytes) VALUES (?, ?, ?, ?)'),
    getBlob: db.prepare('SELECT location, bytes FROM blobs WHERE hash = ?'),
    getBlobStat: db.prepare('SELECT size, location FROM blobs WHERE hash = ?'),
    insertStepVersion: db.prepare(
      'INSERT INTO step_versions (step_id, version_hash, manifest, first_seen, first_run) VALUES (?, ?, ?, ?, ?)',
    ),
    getStepVersion: db.prepare('SELECT * FROM step_versions WHERE step_id = ? AND version_hash = ?'),
    getStepVersionSeq: db.prepare('SELECT seq FROM step_versions WHERE step_id = ? AND version_hash = ?'),
    listStepVersions: db.prepare(`
      SELECT sv.*, coalesce(c.n, 0) AS executions, coalesce(c.failed, 0) AS failed
      FROM step_versions sv
      LEFT JOIN (SELECT step_version, count(*) AS n, sum(status) AS failed FROM executions GROUP BY step_version) c
        ON c.step_version = sv.seq
      ORDER BY sv.step_id, sv.first_seen, sv.seq`),
    insertContext: db.prepare('INSERT OR IGNORE INTO contexts (hash, context) VALUES (?, ?)'),
    getContextSeq: db.prepare('SELECT seq FROM contexts WHERE hash = ?'),
    insertStream: db.prepare('INSERT OR IGNORE INTO streams (id) VALUES (?)'),
    getStreamSeq: db.prepare('SELECT seq FROM streams WHERE id = ?'),
    insertRun: db.prepare(
      'INSERT INTO runs (id, kind, name, started, environment, policy, context, options) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    getRunSeq: db.prepare('SELECT seq FROM runs WHERE id = ?'),
    insertRunEnd: db.prepare('INSERT INTO run_ends (run, ended, status, summary) VALUES (?, ?, ?, ?)'),
    getRun: db.prepare(`${RUN_SELECT} WHERE r.id = ?`),
    listRuns: db.prepare(`${RUN_SELECT} ORDER BY r.seq DESC LIMIT ?`),
    insertExecution: db.prepare(`
      INSERT INTO executions (id, run, step_version, inputs, output, params, context, started, duration,
                              status, error, encodings, stream, "offset", record_hash)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    getExecution: db.prepare(`${EXECUTION_SELECT} WHERE e.id = ?`),
    insertDeadLetter: db.prepare('INSERT INTO dead_letters (execution, run, reason) VALUES (?, ?, ?)'),
  };
}

function migrate(db: Database.Database, root: string): void {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied INTEGER NOT NULL)`);
  const current = (db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as { v: number | null }).v ?? 0;
  if (current > SCHEMA_VERSION) {
    throw new ProvenantError('STORE_TOO_NEW', `the store at ${root} has schema version ${current}; this Provenant knows up to ${SCHEMA_VERSION}`, {
      hint: 'Upgrade Provenant to open this store. Nothing was written.',
      context: { store: root, storeSchema: current, knownSchema: SCHEMA_VERSION },
    });
  }
  for (const m of MIGRATIONS) {
    if (m.version <= current) continue;
    db.transaction(() => {
      db.exec(m.sql);
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

function encodeEncodings(output: ValueEncoding, inputs: readonly ValueEncoding[]): number {
  let bits = output === 'bytes' ? 1 : 0;
  for (let i = 0; i < inputs.length; i++) if (inputs[i] === 'bytes') bits |= 1 << (i + 1);
  return bits;
}

function toExecution(row: ExecutionRow): ExecutionRecord {
  const inputHashes: ContentHash[] = [];
  const inputEncodings: ValueEncoding[] = [];
  for (let i = 0; i * 32 < row.inputs.length; i++) {
    inputHashes.push(hashFromBytes(row.inputs.subarray(i * 32, i * 32 + 32)));
    inputEncodings.push(row.encodings & (1 << (i + 1)) ? 'bytes' : 'json');
  }
  return {
    id: uuidFromBytes(row.id),
    runId: row.run_id,
    functionId: row.step_id,
    functionVersionHash: hashFromBytes(row.version_hash),
    inputHashes,
    inputEncodings,
    outputHash: row.output === null ? null : hashFromBytes(row.output),
    outputEncoding: row.encodings & 1 ? 'bytes' : 'json',
    paramsHash: hashFromBytes(row.params),
    contextHash: hashFromBytes(row.context_hash),
    context: JSON.parse(row.context) as ExecutionContext,
    startedUs: row.started,
    endedUs: row.started + row.duration,
    status: row.status === 0 ? 'ok' : 'failed',
    errorHash: row.error === null ? null : hashFromBytes(row.error),
    streamId: row.stream_id,
    offset: row.offset,
    recordHash: hashFromBytes(row.record_hash),
  };
}

function isConstraint(err: unknown): boolean {
  return typeof err === 'object' && err !== null && String((err as { code?: unknown }).code).startsWith('SQLITE_CONSTRAINT');
}
