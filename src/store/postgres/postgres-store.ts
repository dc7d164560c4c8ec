/**
 * The shared store: PostgreSQL for metadata and blobs (`pg`), for teams that outgrow one process.
 * Open it with `openStore('postgres://user@host:5432/db?schema=name')`.
 *
 * Concurrency and durability model:
 * - A pool of connections (default 4). Every write is one transaction at READ COMMITTED; a batch
 *   of executions, its values, its dead letters and a checkpoint transition commit together or not
 *   at all, durably (`synchronous_commit` as the server has it, `on` by default).
 * - Many processes may write at once (capability `concurrentWriters`): execution ids, value
 *   hashes and checkpoint ids are unique keys; values are inserted `ON CONFLICT DO NOTHING`;
 *   appends to one embedded stream log are serialized by a transaction-level advisory lock.
 * - Migrations run under an advisory lock, once, whoever opens the store first.
 * - History is append-only: triggers refuse UPDATE, DELETE and TRUNCATE (APPEND_ONLY).
 * - A lost connection (server restart) is retried with backoff for up to 60 s. A batch whose
 *   COMMIT was cut off is checked before it is retried, so it is never recorded twice.
 */
import type { Readable } from 'node:stream';
import pg from 'pg';
import { BlobCorruptError, BlobMissingError, ProvenantError } from '../../errors.js';
import { canonicalize, hashFromBytes, hashToBytes, sha256, type ContentHash, type JsonValue } from '../../hash/canonical.js';
import { isUuid, nowUs } from '../../ids.js';
import type {
  AccessLogEntry,
  AccessLogQuery,
  CheckpointQuery,
  CheckpointRecord,
  CheckpointTransition,
  ExecutionBatch,
  ExecutionContext,
  ExecutionQuery,
  ExecutionRecord,
  ExecutionSketch,
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
  ValueWrite,
  TokenInfo,
  TokenRecord,
} from '../records.js';
import { decodeEncodings } from '../sqlite/packed-batch.js';
import { replayJobSnapshotText, type BlobLocation, type ExecutionBatchBuilder, type ReplayJobSnapshot, type Store, type StoreCapabilities, type StoreStats } from '../store.js';
import { PgBatch, hexOf } from './batch.js';
import { int2Array, int4Array, int8Array, textArray, uuidArray } from './binary-arrays.js';
import { LOCATION_CHUNKED, blobRow, chunkStream, insertBlobHeap, insertBlobs, readBlob, writeStream } from './blobs.js';
import { PG_CHECKPOINT_SELECT, applyTransition, toPgCheckpoint, type PgCheckpointRow } from './checkpoints.js';
import * as access from './access.js';
import { checkStreamId, toStreamSummary, type StreamSummaryRow } from '../shared-rows.js';
import { DEFAULT_RETRY, createPool, inTransaction, parsePgLocation, sqlState, withClient, type PgLocation } from './connection.js';
import { PgMerkleLog, pgKeyHome, runLeavesOf } from './merkle-log.js';
import { PG_MIGRATIONS, PG_SCHEMA_VERSION } from './migrations.js';
import * as objects from './objects.js';
import { Readable as NodeReadable } from 'node:stream';

/** Options of {@link PostgresStore.open}. */
export interface PostgresStoreOptions {
  /** Create the schema and tables when absent. Default: true. */
  readonly create?: boolean;
  /** Connections in the pool. Default: 4. */
  readonly poolSize?: number;
}

const EXECUTION_SELECT = `
SELECT e.id::text AS id, r.id AS run_id, sv.step_id, sv.version_hash, e.inputs, e.output, e.params,
       e.context AS context_hash, c.context, e.started, e.duration, e.status, e.error, e.nondeterminism, e.encodings,
       e.stream AS stream_id, e."offset", e.record_hash
FROM executions e
JOIN runs r ON r.seq = e.run
JOIN step_versions sv ON sv.seq = e.step_version
JOIN contexts c ON c.hash = e.context`;

const RUN_SELECT = `
SELECT r.id, r.kind, r.name, r.started, r.environment, r.policy, c.context, r.options,
       re.ended, re.status, re.summary
FROM runs r JOIN contexts c ON c.hash = r.context LEFT JOIN run_ends re ON re.run = r.seq`;

/** The PostgreSQL store. Open with {@link PostgresStore.open} or `openStore('postgres://…')`. */
export class PostgresStore implements Store {
  readonly location: string;
  readonly capabilities: StoreCapabilities = Object.freeze({ concurrentWriters: true, fileBlobs: false });

  readonly #pool: pg.Pool;
  readonly #where: PgLocation;
  readonly #runSeq = new Map<string, number>();
  readonly #stepSeq = new Map<string, number>();
  #closed = false;
  #commitGuard: ((client: pg.ClientBase, checkpoint: CheckpointTransition) => Promise<void>) | undefined;
  readonly #log: PgMerkleLog;
  /** Where this store's signing key is kept (outside the database; see src/store/postgres/merkle-log.ts). */
  readonly keyHome: string;

  private constructor(where: PgLocation, pool: pg.Pool) {
    this.#where = where;
    this.location = where.display;
    this.#pool = pool;
    const url = new URL(where.connectionString);
    this.keyHome = pgKeyHome({ host: url.hostname || 'localhost', port: url.port || '5432', database: decodeURIComponent(url.pathname.slice(1)) || 'postgres', schema: where.schema });
    this.#log = new PgMerkleLog(where.schema, this.keyHome);
  }

  /**
   * Open (and by default create) the store at a `postgres://` URL; `?schema=name` keeps it in its
   * own schema. Migrates the schema to this version.
   * @throws ProvenantError STORE_NOT_FOUND (no store and `create: false`), STORE_TOO_NEW, STORE_BUSY (unreachable)
   */
  static async open(location: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const where = parsePgLocation(location);
    const pool = createPool(where, options.poolSize ?? 4);
    const store = new PostgresStore(where, pool);
    try {
      await store.#migrate(options.create ?? true);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
    return store;
  }

  /** The store's schema version before and after bringing it up to date (what `provenant migrate` reports). */
  static async migrate(location: string): Promise<{ from: number; to: number }> {
    const where = parsePgLocation(location);
    const pool = createPool(where, 1);
    const store = new PostgresStore(where, pool);
    try {
      const from = await withClient(pool, where.display, (c) => schemaVersion(c, where.schema), { retry: { budgetMs: 3_000, initialDelayMs: 200, maxDelayMs: 1_000 } });
      await store.#migrate(true);
      return { from, to: PG_SCHEMA_VERSION };
    } finally {
      await pool.end().catch(() => undefined);
    }
  }

  /** The connection pool, for the work queue and tests (same schema, same retry rules). */
  get pool(): pg.Pool {
    return this.#pool;
  }

  /** The schema the store's tables live in. */
  get schema(): string {
    return this.#where.schema;
  }

  /**
   * A check run inside every transaction that ends a checkpoint, before it commits; throwing
   * refuses the commit (the worker's fence: a worker whose lease was taken over must not complete
   * the segment's checkpoint too). `undefined` removes it.
   */
  setCommitGuard(guard: ((client: pg.ClientBase, checkpoint: CheckpointTransition) => Promise<void>) | undefined): void {
    this.#commitGuard = guard;
  }

  /** Run `fn` with a pooled connection, retried on connection loss (see the module comment). */
  withClient<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.#withClient(fn);
  }

  async #migrate(create: boolean): Promise<void> {
    const schema = this.#where.schema;
    // Opening does not wait long for a server that is not there (later work retries for a minute).
    await withClient(this.#pool, this.location, async (client) => {
      const current = await schemaVersion(client, schema);
      if (current > PG_SCHEMA_VERSION) throw tooNew(this.location, current);
      if (current === PG_SCHEMA_VERSION) return;
      if (current === 0 && !create) {
        throw new ProvenantError('STORE_NOT_FOUND', `no Provenant store in ${this.location} (schema ${schema})`, {
          hint: 'Run `provenant migrate --store <url>` (or `provenant init`) to create it, or check the URL and its ?schema=.',
          context: { store: this.location, schema },
        });
      }
      await inTransaction(client, async () => {
        // One migrator at a time, whoever opens the store first; the others wait, then see it done.
        await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`provenant.migrate.${schema}`]);
        await client.query(`CREATE SCHEMA IF NOT EXISTS ${pg.escapeIdentifier(schema)}`);
        await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied bigint NOT NULL)`);
        const now = await schemaVersion(client, schema);
        if (now > PG_SCHEMA_VERSION) throw tooNew(this.location, now);
        for (const m of PG_MIGRATIONS) {
          if (m.version <= now) continue;
          await client.query(m.sql);
          if (m.after !== undefined) await m.after(client);
          await client.query('INSERT INTO schema_migrations (version, name, applied) VALUES ($1, $2, $3)', [m.version, m.name, Date.now()]);
        }
      });
    }, { retry: { budgetMs: 3_000, initialDelayMs: 200, maxDelayMs: 1_000 } });
  }

  #withClient<T>(fn: (client: pg.PoolClient) => Promise<T>, beforeRetry?: () => Promise<{ done: true; value: T } | undefined>): Promise<T> {
    if (this.#closed) return Promise.reject(new ProvenantError('STORE_BUSY', `the store ${this.location} is closed`, { context: { store: this.location } }));
    const retry = this.#where.retryMs === undefined ? {} : { retry: { ...DEFAULT_RETRY, budgetMs: this.#where.retryMs } };
    return withClient(this.#pool, this.location, fn, beforeRetry === undefined ? retry : { ...retry, beforeRetry });
  }

  #query<R extends pg.QueryResultRow>(config: pg.QueryConfig | string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    return this.#withClient((c) => (typeof config === 'string' ? c.query<R>(config, values) : c.query<R>(config)));
  }

  // ---- blobs ----------------------------------------------------------------------------

  async putBlob(bytes: Uint8Array): Promise<ContentHash> {
    const hash = sha256(bytes);
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    await this.#withClient(async (c) => {
      const existing = await blobRow(c, hash, false);
      if (existing !== undefined) {
        try {
          await readBlob(c, hash, this.location);
          return;
        } catch (err) {
          if (!(err instanceof BlobCorruptError)) throw err;
        }
        // Damaged bytes: the hash proves these right, so they replace the copy (as SQLite does).
        await inTransaction(c, async () => {
          await c.query('DELETE FROM blobs WHERE hash = $1', [hashToBytes(hash)]);
          await insertBlobs(c, [{ hash, bytes: buf }]);
        });
        return;
      }
      await inTransaction(c, () => insertBlobs(c, [{ hash, bytes: buf }]));
    });
    return hash;
  }

  async putBlobStream(source: Readable | AsyncIterable<Uint8Array>): Promise<{ hash: ContentHash; size: number }> {
    // Not retried: the source cannot be read twice.
    return withClient(this.#pool, this.location, async (c) => {
      await c.query('BEGIN');
      try {
        const { hash, size, isNew } = await writeStream(c, source);
        await c.query(isNew ? 'COMMIT' : 'ROLLBACK');
        return { hash, size };
      } catch (err) {
        await c.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    }, { retry: { budgetMs: 0, initialDelayMs: 0, maxDelayMs: 0 } });
  }

  async getBlob(hash: ContentHash): Promise<Uint8Array> {
    return this.#withClient((c) => readBlob(c, hash, `store ${this.location}`));
  }

  async openBlobStream(hash: ContentHash): Promise<Readable> {
    const row = await this.#withClient((c) => blobRow(c, hash, true));
    if (row === undefined) throw new BlobMissingError(hash, `store ${this.location}`);
    if (row.location === LOCATION_CHUNKED) return chunkStream(this.#pool, hash, row, `store ${this.location}`);
    const bytes = row.bytes ?? Buffer.alloc(0);
    const actual = sha256(bytes);
    if (actual !== hash) throw new BlobCorruptError(hash, actual, `store ${this.location}`);
    return NodeReadable.from([bytes]);
  }

  async hasBlob(hash: ContentHash): Promise<boolean> {
    return (await this.#withClient((c) => blobRow(c, hash, false))) !== undefined;
  }

  async statBlob(hash: ContentHash): Promise<{ size: number; location: BlobLocation } | undefined> {
    const row = await this.#withClient((c) => blobRow(c, hash, false));
    return row === undefined ? undefined : { size: row.size, location: 'inline' };
  }

  async listBlobs(options: { afterHash?: ContentHash; limit?: number } = {}): Promise<{ hash: ContentHash; size: number }[]> {
    const after = options.afterHash === undefined ? Buffer.alloc(0) : hashToBytes(options.afterHash);
    const r = await this.#query<{ hash: Buffer; size: number }>({
      name: 'provenant_list_blobs',
      text: 'SELECT hash, size FROM blobs WHERE hash > $1 ORDER BY hash LIMIT $2',
      values: [after, options.limit ?? 1000],
    });
    return r.rows.map((row) => ({ hash: hashFromBytes(row.hash), size: row.size }));
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
    // Two workers may register the same version at once: the first row wins and is returned.
    await this.#query(
      `INSERT INTO step_versions (step_id, version_hash, manifest, first_seen, first_run) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (step_id, version_hash) DO NOTHING`,
      [version.stepId, hashToBytes(version.versionHash), JSON.stringify(version.manifest), version.firstSeenUs, version.firstRunId],
    );
    return (await this.getStepVersion(version.stepId, version.versionHash)) ?? version;
  }

  async getStepVersion(stepId: string, versionHash: ContentHash): Promise<StepVersion | undefined> {
    const r = await this.#query<StepVersionRow>({
      name: 'provenant_get_step_version',
      text: 'SELECT step_id, version_hash, manifest, first_seen, first_run FROM step_versions WHERE step_id = $1 AND version_hash = $2',
      values: [stepId, hashToBytes(versionHash)],
    });
    const row = r.rows[0];
    return row === undefined ? undefined : toStepVersion(row);
  }

  async listSteps(): Promise<StepSummary[]> {
    const r = await this.#query<StepVersionRow & { executions: number; failed: number }>(`
      SELECT sv.step_id, sv.version_hash, sv.manifest, sv.first_seen, sv.first_run,
             coalesce(c.n, 0)::bigint AS executions, coalesce(c.failed, 0)::bigint AS failed
      FROM step_versions sv
      LEFT JOIN (SELECT step_version, count(*) AS n, sum(status) AS failed FROM executions GROUP BY step_version) c
        ON c.step_version = sv.seq
      ORDER BY sv.step_id, sv.first_seen, sv.seq`);
    const byStep = new Map<string, (StepVersion & { executions: number; failed: number })[]>();
    for (const row of r.rows) {
      const list = byStep.get(row.step_id) ?? [];
      list.push({ ...toStepVersion(row), executions: row.executions, failed: row.failed });
      byStep.set(row.step_id, list);
    }
    return [...byStep].map(([stepId, versions]) => ({ stepId, versions }));
  }

  // ---- runs -----------------------------------------------------------------------------

  async createRun(run: RunRecord): Promise<void> {
    const json = canonicalize(run.context);
    const contextHash = hashToBytes(sha256(json));
    await this.#withClient((c) =>
      inTransaction(c, async () => {
        await c.query('INSERT INTO contexts (hash, context) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING', [contextHash, json]);
        try {
          await c.query(
            'INSERT INTO runs (id, kind, name, started, environment, policy, context, options) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
            [run.id, run.kind, run.name, run.startedUs, canonicalize(run.environment), run.failurePolicy, contextHash, canonicalize(run.options)],
          );
        } catch (err) {
          if (sqlState(err) === '23505') {
            throw new ProvenantError('INPUT_INVALID', `run ${run.id} already exists in ${this.location}`, {
              hint: 'A run id is recorded once; start a new run with a new id.',
              context: { runId: run.id },
            });
          }
          throw err;
        }
      }),
    );
  }

  async endRun(end: RunEnd): Promise<void> {
    let inserted: number;
    try {
      const r = await this.#query('INSERT INTO run_ends (run, ended, status, summary) SELECT seq, $1, $2, $3 FROM runs WHERE id = $4', [
        end.endedUs,
        end.status,
        canonicalize(end.summary),
        end.runId,
      ]);
      inserted = r.rowCount ?? 0;
    } catch (err) {
      if (sqlState(err) === '23505') throw new ProvenantError('RUN_CLOSED', `run ${end.runId} has already ended`, { context: { runId: end.runId } });
      throw err;
    }
    if (inserted === 0) throw new ProvenantError('NOT_FOUND', `run ${end.runId} does not exist in ${this.location}`, { context: { runId: end.runId } });
  }

  async getRun(runId: string): Promise<RunInfo | undefined> {
    const r = await this.#query<RunRow>(`${RUN_SELECT} WHERE r.id = $1`, [runId]);
    const row = r.rows[0];
    return row === undefined ? undefined : toRunInfo(row);
  }

  async listRuns(limit = 100): Promise<RunInfo[]> {
    const r = await this.#query<RunRow>(`${RUN_SELECT} ORDER BY r.seq DESC LIMIT $1`, [limit]);
    return r.rows.map(toRunInfo);
  }

  // ---- executions -----------------------------------------------------------------------

  async appendExecutions(batch: ExecutionBatch): Promise<void> {
    if (batch.executions.length === 0 && batch.values.length === 0) return;
    const b = new PgBatch();
    for (const v of batch.values) b.addValue(v);
    for (const e of batch.executions) b.addExecution(e);
    for (const d of batch.deadLetters ?? []) b.addDeadLetter(d.executionId, d.reason);
    await this.commitBatch(b);
  }

  newBatch(_like?: ExecutionBatchBuilder): PgBatch {
    return new PgBatch();
  }

  async commitBatch(batch: ExecutionBatchBuilder, checkpoint?: CheckpointTransition): Promise<void> {
    if (!(batch instanceof PgBatch)) throw new TypeError("commitBatch takes a batch made by this store's newBatch()");
    if (batch.executionCount === 0 && batch.values.size === 0 && checkpoint === undefined) return;
    // Did a commit cut off by a lost connection land? Then it is not done again.
    const landed = async (): Promise<{ done: true; value: undefined } | undefined> => {
      const c = batch.columns;
      let r: pg.QueryResult;
      if (c.id.length > 0) r = await this.#pool.query('SELECT 1 FROM executions WHERE id = $1', [c.id[0]]);
      else if (checkpoint?.end !== undefined)
        r = await this.#pool.query('SELECT 1 FROM checkpoint_ends e JOIN checkpoints c ON c.seq = e.checkpoint WHERE c.id = $1', [checkpoint.end.checkpointId]);
      else if (checkpoint?.begin !== undefined) r = await this.#pool.query('SELECT 1 FROM checkpoints WHERE id = $1', [checkpoint.begin.checkpointId]);
      else return undefined; // values only: inserting them again is harmless
      return r.rowCount === 0 ? undefined : { done: true, value: undefined };
    };
    await this.#withClient((client) => inTransaction(client, () => this.#write(client, batch, checkpoint)), landed);
  }

  async #write(client: pg.PoolClient, batch: PgBatch, checkpoint: CheckpointTransition | undefined): Promise<void> {
    const c = batch.columns;
    const runSeq = (id: string) => this.#requireRun(client, id);
    const runs = new Map<string, number>();
    for (const id of new Set(c.runId)) runs.set(id, await runSeq(id));
    const steps = await this.#requireSteps(client, new Set(c.stepKey));
    if (batch.contexts.size > 0) {
      await client.query({
        name: 'provenant_insert_contexts',
        text: `INSERT INTO contexts (hash, context) SELECT decode(h, 'hex'), j FROM unnest($1::text[], $2::text[]) AS t(h, j)
               ON CONFLICT (hash) DO NOTHING`,
        values: [[...batch.contexts.keys()], [...batch.contexts.values()]],
      });
    }
    // The Merkle log's segments of these executions, read before they are inserted (a clean id range
    // needs each run's largest id before the batch); appended under the log's lock at the end.
    const runLeaves = c.id.length > 0 ? await runLeavesOf(client, c, batch.heap.bytes(), runs) : [];
    if (c.id.length > 0) {
      try {
        // Digests come out of one binary parameter ($1) by offset (-1: NULL); the columns are binary arrays.
        await client.query({
          name: 'provenant_insert_executions_v2',
          text: `INSERT INTO executions (id, run, step_version, inputs, output, params, context, started, duration, status,
                                        error, nondeterminism, encodings, stream, "offset", record_hash)
                 SELECT id, run, sv, substring($1::bytea from ia + 1 for il),
                        CASE WHEN oa < 0 THEN NULL ELSE substring($1::bytea from oa + 1 for 32) END,
                        substring($1::bytea from pa + 1 for 32), substring($1::bytea from ca + 1 for 32),
                        started, duration, status,
                        CASE WHEN ea < 0 THEN NULL ELSE substring($1::bytea from ea + 1 for 32) END,
                        CASE WHEN na < 0 THEN NULL ELSE substring($1::bytea from na + 1 for 32) END,
                        CASE WHEN ga < 0 THEN NULL ELSE substring($1::bytea from ga + 1 for gl) END,
                        stream, off, substring($1::bytea from ra + 1 for 32)
                 FROM unnest($2::uuid[], $3::bigint[], $4::bigint[], $5::int[], $6::int[], $7::int[], $8::int[], $9::int[], $10::bigint[],
                             $11::bigint[], $12::smallint[], $13::int[], $14::int[], $15::int[], $16::int[], $17::text[], $18::bigint[], $19::int[])
                   AS t(id, run, sv, ia, il, oa, pa, ca, started, duration, status, ea, na, ga, gl, stream, off, ra)`,
          values: [
            batch.heap.bytes(),
            uuidArray(c.id),
            int8Array(c.runId.map((id) => runs.get(id))),
            int8Array(c.stepKey.map((k) => steps.get(k))),
            int4Array(c.inputsAt),
            int4Array(c.inputsLength),
            int4Array(c.outputAt),
            int4Array(c.paramsAt),
            int4Array(c.contextAt),
            int8Array(c.started),
            int8Array(c.duration),
            int2Array(c.status),
            int4Array(c.errorAt),
            int4Array(c.nondeterminismAt),
            int4Array(c.encodingsAt),
            int4Array(c.encodingsLength),
            textArray(c.stream),
            int8Array(c.offset),
            int4Array(c.recordHashAt),
          ],
        });
      } catch (err) {
        if (sqlState(err) === '23505') {
          throw new ProvenantError('INPUT_INVALID', `an execution of this batch is already recorded in ${this.location}; nothing of the batch was written`, {
            hint: 'An execution id is recorded once.',
            context: { store: this.location, detail: (err as { detail?: string }).detail ?? null },
          });
        }
        throw err;
      }
    }
    if (batch.deadLetters.length > 0) {
      const runOf = new Map(c.id.map((id, i) => [id, runs.get(c.runId[i] as string)]));
      await client.query(
        'INSERT INTO dead_letters (execution, run, reason) SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[])',
        [batch.deadLetters.map((d) => d.executionId), batch.deadLetters.map((d) => runOf.get(d.executionId)), batch.deadLetters.map((d) => d.reason)],
      );
    }
    // The values last (before the checkpoint, which checks its own): workers writing at once often
    // store the same new values, and a value row another worker's open transaction is inserting
    // makes this one wait until that transaction ends — inserted last, they are held only until
    // the commit, not for the whole batch.
    await insertBlobHeap(client, batch.valueHeap.bytes(), batch.values);
    if (checkpoint?.end !== undefined && this.#commitGuard !== undefined) await this.#commitGuard(client, checkpoint);
    // The log last, under its lock (held until the commit): executions, then the ended checkpoint and its head.
    if (runLeaves.length > 0) {
      await this.#log.lock(client);
      await this.#log.append(client, PgMerkleLog.executionSegments(runLeaves));
    }
    if (checkpoint !== undefined) await this.#applyTransition(client, checkpoint, runSeq);
  }

  /** Apply a checkpoint transition; an ended checkpoint becomes a leaf of the log (and a COMPLETE one gets a signed head). */
  async #applyTransition(client: pg.ClientBase, transition: CheckpointTransition, runSeq: (id: string) => Promise<number>): Promise<void> {
    if (transition.end !== undefined) await this.#log.lock(client);
    await applyTransition(client, transition, this.location, runSeq, async (ended) => {
      await this.#log.append(client, [PgMerkleLog.checkpointSegment(ended.seq, ended.recordHash)]);
      if (ended.status === 'COMPLETE') await this.#log.recordHead(client, ended.seq);
    });
  }

  async #requireRun(client: pg.ClientBase, runId: string): Promise<number> {
    let seq = this.#runSeq.get(runId);
    if (seq === undefined) {
      const r = await client.query<{ seq: number }>({ name: 'provenant_run_seq', text: 'SELECT seq FROM runs WHERE id = $1', values: [runId] });
      seq = r.rows[0]?.seq;
      if (seq === undefined) throw new ProvenantError('NOT_FOUND', `run ${runId} does not exist in ${this.location}`, { context: { runId } });
      this.#runSeq.set(runId, seq);
    }
    return seq;
  }

  async #requireSteps(client: pg.ClientBase, keys: Set<string>): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const key of keys) {
      let seq = this.#stepSeq.get(key);
      if (seq === undefined) {
        const [stepId, versionHash] = key.split('\u0000') as [string, string];
        const r = await client.query<{ seq: number }>({
          name: 'provenant_step_seq',
          text: 'SELECT seq FROM step_versions WHERE step_id = $1 AND version_hash = decode($2, \'hex\')',
          values: [stepId, hexOf(versionHash, 'version hash')],
        });
        seq = r.rows[0]?.seq;
        if (seq === undefined) {
          throw new ProvenantError('STEP_NOT_FOUND', `step ${stepId} version ${versionHash} is not registered in ${this.location}`, {
            hint: 'Register the step version before recording executions of it.',
            context: { stepId, versionHash },
          });
        }
        this.#stepSeq.set(key, seq);
      }
      out.set(key, seq);
    }
    return out;
  }

  async getExecution(id: string): Promise<ExecutionRecord | undefined> {
    if (!isUuid(id)) return undefined;
    const r = await this.#query<ExecutionRow>({ name: 'provenant_get_execution', text: `${EXECUTION_SELECT} WHERE e.id = $1`, values: [id] });
    const row = r.rows[0];
    return row === undefined ? undefined : toExecution(row);
  }

  async listExecutions(query: ExecutionQuery = {}): Promise<ExecutionRecord[]> {
    const { where, args } = executionFilter(query);
    if (query.afterId !== undefined) {
      if (!isUuid(query.afterId)) {
        throw new ProvenantError('INPUT_INVALID', `"${query.afterId}" is not an execution id (a UUID) to list after`, {
          hint: 'Pass the id of the last execution of the previous page.',
          context: { afterId: query.afterId },
        });
      }
      args.push(query.afterId);
      where.push(`e.id > $${args.length}`);
    }
    args.push(query.limit ?? 100);
    const sql = `${EXECUTION_SELECT} ${where.length > 0 ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY e.id LIMIT $${args.length}`;
    return (await this.#query<ExecutionRow>(sql, args)).rows.map(toExecution);
  }

  async countExecutions(query: Omit<ExecutionQuery, 'afterId' | 'limit'> = {}): Promise<number> {
    const { where, args } = executionFilter(query);
    const joins = `${query.stepId !== undefined ? 'JOIN step_versions sv ON sv.seq = e.step_version' : ''} ${query.runId !== undefined ? 'JOIN runs r ON r.seq = e.run' : ''}`;
    const sql = `SELECT count(*) AS n FROM executions e ${joins} ${where.length > 0 ? 'WHERE ' + where.join(' AND ') : ''}`;
    return ((await this.#query<{ n: number }>(sql, args)).rows[0] as { n: number }).n;
  }

  async listDeadLetters(runId?: string): Promise<{ executionId: string; runId: string; reason: string }[]> {
    const r = await this.#query<{ execution: string; run_id: string; reason: string }>(
      `SELECT d.execution::text AS execution, r.id AS run_id, d.reason FROM dead_letters d JOIN runs r ON r.seq = d.run
       ${runId === undefined ? '' : 'WHERE r.id = $1'} ORDER BY d.execution`,
      runId === undefined ? [] : [runId],
    );
    return r.rows.map((row) => ({ executionId: row.execution, runId: row.run_id, reason: row.reason }));
  }

  // ---- embedded stream logs -------------------------------------------------------------

  async appendToStream(streamId: string, values: readonly StreamValue[], options: { appendedUs?: number } = {}): Promise<{ first: number; next: number }> {
    checkStreamId(streamId);
    const appendedUs = options.appendedUs ?? nowUs();
    const hexes = values.map((v) => hexOf(v.hash, 'value hash'));
    return this.#withClient((c) =>
      inTransaction(c, async () => {
        // Appends to one stream are serialized: each gets the next offsets, with no gaps.
        await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`provenant.stream.${streamId}`]);
        const next = await c.query<{ next: number }>('SELECT coalesce(max("offset") + 1, 0) AS next FROM stream_log WHERE stream = $1', [streamId]);
        const first = (next.rows[0] as { next: number }).next;
        await insertBlobs(
          c,
          values.map((v) => ({ hash: v.hash, bytes: Buffer.from(v.bytes.buffer, v.bytes.byteOffset, v.bytes.byteLength) })),
        );
        await c.query(
          `INSERT INTO stream_log (stream, "offset", value, encoding, appended)
           SELECT $1, $2::bigint + o - 1, decode(h, 'hex'), e, $3 FROM unnest($4::text[], $5::smallint[]) WITH ORDINALITY AS t(h, e, o)`,
          [streamId, first, appendedUs, hexes, values.map((v) => (v.encoding === 'bytes' ? 1 : 0))],
        );
        return { first, next: first + values.length };
      }),
    );
  }

  async readStream(streamId: string, range: { from?: number; to?: number; limit?: number } = {}): Promise<StreamEntry[]> {
    const r = await this.#query<{ offset: number; value: Buffer; encoding: number; appended: number }>({
      name: 'provenant_read_stream',
      text: `SELECT "offset", value, encoding, appended FROM stream_log WHERE stream = $1 AND "offset" >= $2 AND "offset" < $3 ORDER BY "offset" LIMIT $4`,
      values: [streamId, range.from ?? 0, range.to ?? Number.MAX_SAFE_INTEGER, range.limit ?? 1000],
    });
    return r.rows.map((row) => ({ streamId, offset: row.offset, hash: hashFromBytes(row.value), encoding: row.encoding === 1 ? 'bytes' : 'json', appendedUs: row.appended }));
  }

  async getStream(streamId: string): Promise<StreamSummary | undefined> {
    const r = await this.#query<StreamSummaryRow>(
      `SELECT stream AS id, count(*) AS length, min(appended) AS first, max(appended) AS last FROM stream_log WHERE stream = $1 GROUP BY stream`,
      [streamId],
    );
    const row = r.rows[0];
    return row === undefined ? undefined : toStreamSummary(row);
  }

  async listStreams(): Promise<StreamSummary[]> {
    const r = await this.#query<StreamSummaryRow>(
      `SELECT stream AS id, count(*) AS length, min(appended) AS first, max(appended) AS last FROM stream_log GROUP BY stream ORDER BY stream COLLATE "C"`,
    );
    return r.rows.map(toStreamSummary);
  }

  // ---- checkpoints ----------------------------------------------------------------------

  async applyCheckpoint(transition: CheckpointTransition, values: readonly ValueWrite[] = []): Promise<void> {
    const rows = values.map((v) => {
      hexOf(v.hash, 'value hash');
      return { hash: v.hash, bytes: Buffer.from(v.bytes.buffer, v.bytes.byteOffset, v.bytes.byteLength) };
    });
    const landed = async (): Promise<{ done: true; value: undefined } | undefined> => {
      const id = transition.end?.checkpointId ?? transition.begin?.checkpointId;
      if (id === undefined) return undefined;
      const r =
        transition.end !== undefined
          ? await this.#pool.query('SELECT 1 FROM checkpoint_ends e JOIN checkpoints c ON c.seq = e.checkpoint WHERE c.id = $1', [id])
          : await this.#pool.query('SELECT 1 FROM checkpoints WHERE id = $1', [id]);
      return r.rowCount === 0 ? undefined : { done: true, value: undefined };
    };
    await this.#withClient(
      (c) =>
        inTransaction(c, async () => {
          await insertBlobs(c, rows);
          if (transition.end !== undefined && this.#commitGuard !== undefined) await this.#commitGuard(c, transition);
          await this.#applyTransition(c, transition, (id) => this.#requireRun(c, id));
        }),
      landed,
    );
  }

  async getCheckpoint(checkpointId: string): Promise<CheckpointRecord | undefined> {
    if (!isUuid(checkpointId)) return undefined;
    const r = await this.#query<PgCheckpointRow>({ name: 'provenant_get_checkpoint', text: `${PG_CHECKPOINT_SELECT} WHERE c.id = $1`, values: [checkpointId] });
    const row = r.rows[0];
    return row === undefined ? undefined : toPgCheckpoint(row);
  }

  async listCheckpoints(query: CheckpointQuery = {}): Promise<CheckpointRecord[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (query.streamId !== undefined) {
      args.push(query.streamId);
      where.push(`c.stream = $${args.length}`);
    }
    if (query.runId !== undefined) {
      args.push(query.runId);
      where.push(`r.id = $${args.length}`);
    }
    if (query.afterId !== undefined) {
      if (!isUuid(query.afterId)) return [];
      args.push(query.afterId);
      where.push(`c.seq > (SELECT seq FROM checkpoints WHERE id = $${args.length})`);
    }
    args.push(query.limit ?? 1000);
    const sql = `${PG_CHECKPOINT_SELECT} ${where.length > 0 ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY c.seq LIMIT $${args.length}`;
    return (await this.#query<PgCheckpointRow>(sql, args)).rows.map(toPgCheckpoint);
  }

  async listExecutionSketches(runId: string, firstId: string, lastId: string): Promise<ExecutionSketch[]> {
    if (!isUuid(firstId) || !isUuid(lastId)) return [];
    const r = await this.#query<SketchRow>({
      name: 'provenant_execution_sketches',
      text: `SELECT e.id::text AS id, sv.step_id, sv.version_hash, e.inputs, e.output, e.params, e.status, e.error, e.nondeterminism,
                    e.encodings, e."offset"
             FROM executions e JOIN step_versions sv ON sv.seq = e.step_version
             WHERE e.run = (SELECT seq FROM runs WHERE id = $1) AND e.id BETWEEN $2 AND $3 ORDER BY e.id`,
      values: [runId, firstId, lastId],
    });
    return r.rows.map(toSketch);
  }

  // ---- objects ---------------------------------------------------------------------------

  async commitObjectVersions(batch: ObjectVersionBatch): Promise<ObjectVersionRecord[]> {
    const b = new PgBatch();
    for (const v of batch.values) b.addValue(v);
    for (const e of batch.executions) b.addExecution(e);
    // Versions commit with the executions that made them and the values both refer to.
    return this.#withClient((c) =>
      inTransaction(c, async () => {
        await this.#write(c, b, undefined);
        const records = await objects.insertVersions(c, batch.versions, this.location);
        if (records.length > 0) {
          const seqs = await c.query<{ seq: number; id: Buffer; record_hash: Buffer }>(
            'SELECT seq, uuid_send(id) AS id, record_hash FROM object_versions WHERE id = ANY($1::uuid[]) ORDER BY seq',
            [records.map((r) => r.versionId)],
          );
          await this.#log.lock(c);
          await this.#log.append(c, [PgMerkleLog.objectVersionSegment(seqs.rows.map((v) => ({ seq: v.seq, id: v.id, recordHash: v.record_hash })))]);
        }
        return records;
      }),
    );
  }

  getObjectVersion(versionId: string): Promise<ObjectVersionRecord | undefined> {
    return this.#withClient((c) => objects.getVersion(c, versionId));
  }

  objectVersionAt(objectId: string, atUs: number): Promise<ObjectVersionRecord | undefined> {
    return this.#withClient((c) => objects.versionAt(c, objectId, atUs));
  }

  listObjectVersions(objectId: string, range: { untilUs?: number; limit?: number } = {}): Promise<ObjectVersionRecord[]> {
    return this.#withClient((c) => objects.listVersions(c, objectId, range.untilUs, range.limit));
  }

  findObjectVersions(by: { contentHash?: ContentHash; executionId?: string }): Promise<ObjectVersionRecord[]> {
    return this.#withClient((c) => objects.findVersions(c, by));
  }

  listObjects(options: { prefix?: string; limit?: number } = {}): Promise<{ objectId: string; versions: number; latestUs: number }[]> {
    return this.#withClient((c) => objects.listObjects(c, options.prefix ?? '', options.limit ?? 1000));
  }

  walkLineage(query: LineageQuery): Promise<LineageRows> {
    return this.#withClient((c) => objects.walk(c, query));
  }

  recomputePlan(versionId: string): Promise<RecomputeRow[]> {
    return this.#withClient((c) => objects.plan(c, versionId));
  }

  setMaterialization(setting: MaterializationSetting): Promise<void> {
    return this.#withClient((c) => objects.setMaterialization(c, setting));
  }

  listMaterialization(): Promise<MaterializationSetting[]> {
    return this.#withClient((c) => objects.listMaterialization(c));
  }

  setPinned(versionId: string, pinned: boolean): Promise<void> {
    return this.#withClient((c) => objects.setPinned(c, versionId, pinned, this.location));
  }

  async recordObjectReads(reads: readonly ObjectRead[]): Promise<void> {
    if (reads.length > 0) await this.#withClient((c) => objects.recordReads(c, reads));
  }

  listVersionUsage(): Promise<VersionUsage[]> {
    return this.#withClient((c) => objects.usage(c));
  }

  async dropBlobs(hashes: readonly ContentHash[]): Promise<{ dropped: ContentHash[]; bytes: number }> {
    return this.#withClient((c) =>
      inTransaction(c, async () => {
        // Lock out concurrent writers of versions and executions while deciding: nothing can start
        // referring to the candidates meanwhile.
        await c.query('LOCK TABLE executions, object_versions, version_pins IN SHARE MODE');
        const dropped: ContentHash[] = [];
        let bytes = 0;
        for (const hash of await objects.droppable(c, hashes)) {
          const r = await c.query<{ size: number; chunks: number | null }>('DELETE FROM blobs WHERE hash = $1 RETURNING size, chunks', [hashToBytes(hash)]);
          const row = r.rows[0];
          if (row === undefined) continue;
          if (row.chunks !== null) await c.query('DELETE FROM blob_chunks WHERE chunks = $1', [row.chunks]);
          dropped.push(hash);
          bytes += row.size;
        }
        return { dropped, bytes };
      }),
    );
  }

  // ---- access: tokens and the access log -------------------------------------------------

  createToken(token: TokenRecord): Promise<void> {
    return this.#withClient((c) => access.createToken(c, token));
  }

  findToken(hash: ContentHash): Promise<TokenInfo | undefined> {
    return this.#withClient((c) => access.findToken(c, hash));
  }

  listTokens(): Promise<TokenInfo[]> {
    return this.#withClient((c) => access.listTokens(c));
  }

  revokeToken(tokenId: string, revokedUs: number): Promise<TokenInfo> {
    return this.#withClient((c) => access.revokeToken(c, tokenId, revokedUs, this.location));
  }

  async appendAccessLog(entries: readonly AccessLogEntry[]): Promise<void> {
    if (entries.length > 0) await this.#withClient((c) => access.appendAccessLog(c, entries));
  }

  listAccessLog(query: AccessLogQuery = {}): Promise<AccessLogEntry[]> {
    return this.#withClient((c) => access.listAccessLog(c, query));
  }

  async appendReplayJobSnapshot(snapshot: ReplayJobSnapshot): Promise<void> {
    const view = replayJobSnapshotText(snapshot);
    await this.#withClient((c) => c.query('INSERT INTO replay_job_snapshots (job, at, view) VALUES ($1, $2, $3)', [snapshot.jobId, snapshot.atUs, view]));
  }

  async latestReplayJobSnapshot(jobId: string): Promise<ReplayJobSnapshot | undefined> {
    const r = await this.#withClient((c) => c.query<{ at: number; view: string }>('SELECT at, view FROM replay_job_snapshots WHERE job = $1 ORDER BY seq DESC LIMIT 1', [jobId]));
    const row = r.rows[0];
    return row === undefined ? undefined : { jobId, atUs: row.at, view: JSON.parse(row.view) as JsonValue };
  }

  async stats(): Promise<StoreStats> {
    const r = await this.#query<{ executions: number; failed: number; runs: number; steps: number; blobs: number; bytes: number }>(`
      SELECT (SELECT count(*) FROM executions) AS executions,
             (SELECT count(*) FROM executions WHERE status = 1) AS failed,
             (SELECT count(*) FROM runs) AS runs,
             (SELECT count(*) FROM step_versions) AS steps,
             (SELECT count(*) FROM blobs) AS blobs,
             (SELECT coalesce(sum(size), 0)::bigint FROM blobs) AS bytes`);
    const row = r.rows[0] as { executions: number; failed: number; runs: number; steps: number; blobs: number; bytes: number };
    return { executions: row.executions, failedExecutions: row.failed, runs: row.runs, stepVersions: row.steps, blobs: row.blobs, blobBytes: row.bytes };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }
}

/** The schema version of the store in `schema` (0 when it has none). */
async function schemaVersion(client: pg.ClientBase, schema: string): Promise<number> {
  const t = await client.query('SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2', [schema, 'schema_migrations']);
  if (t.rowCount === 0) return 0;
  const r = await client.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${pg.escapeIdentifier(schema)}.schema_migrations`);
  return r.rows[0]?.v ?? 0;
}

function tooNew(location: string, current: number): ProvenantError {
  return new ProvenantError('STORE_TOO_NEW', `the store at ${location} has schema version ${current}; this Provenant knows up to ${PG_SCHEMA_VERSION}`, {
    hint: 'Upgrade Provenant to open this store. Nothing was written.',
    context: { store: location, storeSchema: current, knownSchema: PG_SCHEMA_VERSION },
  });
}

function executionFilter(query: Omit<ExecutionQuery, 'afterId' | 'limit'>): { where: string[]; args: unknown[] } {
  const where: string[] = [];
  const args: unknown[] = [];
  if (query.stepId !== undefined) {
    args.push(query.stepId);
    where.push(`sv.step_id = $${args.length}`);
  }
  if (query.runId !== undefined) {
    args.push(query.runId);
    where.push(`r.id = $${args.length}`);
  }
  if (query.status !== undefined) {
    args.push(query.status === 'ok' ? 0 : 1);
    where.push(`e.status = $${args.length}`);
  }
  return { where, args };
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
        : { runId: row.id, endedUs: row.ended, status: row.status as RunEnd['status'], summary: JSON.parse(row.summary ?? 'null') as RunEnd['summary'] },
  };
}

interface SketchRow {
  id: string;
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

interface ExecutionRow extends SketchRow {
  run_id: string;
  context_hash: Buffer;
  context: string;
  started: number;
  duration: number;
  stream_id: string | null;
  record_hash: Buffer;
}

const optHash = (b: Buffer | null): ContentHash | null => (b === null ? null : hashFromBytes(b));

function toSketch(row: SketchRow): ExecutionSketch {
  const inputHashes: ContentHash[] = [];
  for (let i = 0; i * 32 < row.inputs.length; i++) inputHashes.push(hashFromBytes(row.inputs.subarray(i * 32, i * 32 + 32)));
  const encodings = decodeEncodings(row.encodings, inputHashes.length);
  return {
    id: row.id,
    functionId: row.step_id,
    functionVersionHash: hashFromBytes(row.version_hash),
    inputHashes,
    inputEncodings: encodings.inputs,
    outputHash: optHash(row.output),
    outputEncoding: encodings.output,
    paramsHash: hashFromBytes(row.params),
    status: row.status === 0 ? 'ok' : 'failed',
    errorHash: optHash(row.error),
    nondeterminismHash: optHash(row.nondeterminism),
    offset: row.offset,
  };
}

function toExecution(row: ExecutionRow): ExecutionRecord {
  const s = toSketch(row);
  return {
    id: s.id,
    runId: row.run_id,
    functionId: s.functionId,
    functionVersionHash: s.functionVersionHash,
    inputHashes: s.inputHashes,
    inputEncodings: s.inputEncodings,
    outputHash: s.outputHash,
    outputEncoding: s.outputEncoding,
    paramsHash: s.paramsHash,
    contextHash: hashFromBytes(row.context_hash),
    context: JSON.parse(row.context) as ExecutionContext,
    startedUs: row.started,
    endedUs: row.started + row.duration,
    status: s.status,
    errorHash: s.errorHash,
    nondeterminismHash: s.nondeterminismHash,
    streamId: row.stream_id,
    offset: s.offset,
    recordHash: hashFromBytes(row.record_hash),
  };
}


