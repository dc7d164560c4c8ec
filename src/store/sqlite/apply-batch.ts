/**
 * Applying a packed batch to a SQLite connection in one `BEGIN IMMEDIATE` transaction: the
 * executions, their values and dead letters commit together or not at all. Used on the writer
 * thread's own connection, or on the main connection when the store runs without a writer thread.
 */
import type Database from 'better-sqlite3';
import { ProvenantError } from '../../errors.js';
import { hashToBytes } from '../../hash/canonical.js';
import type { CheckpointTransition } from '../records.js';
import { BlobTable } from './blob-table.js';
import { CheckpointWriter } from './checkpoints.js';
import { MerkleLogWriter } from './merkle-log.js';
import { type PackedBatch, unpackBatch } from './packed-batch.js';

/** Page cache per connection by default: capture's value-hash index stays cached longer. */
export const DEFAULT_CACHE_MIB = 64;

/** Pragmas every connection to a store uses (see sqlite-store.ts for the model). */
export function configureConnection(db: Database.Database, cacheMiB = DEFAULT_CACHE_MIB): void {
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  db.pragma(`cache_size = ${-Math.max(1, Math.round(cacheMiB * 1024))}`);
  db.pragma('wal_autocheckpoint = 10000');
}

/** Writes packed batches through one connection, interning runs, steps, contexts and streams. */
export class BatchApplier {
  readonly #db: Database.Database;
  readonly #location: string;
  readonly #runSeq = new Map<string, number>();
  readonly #stepSeq = new Map<string, number>();
  readonly #contextSeq = new Map<string, number>();
  readonly #streamSeq = new Map<string, number>();
  readonly #stmt;
  readonly #checkpoints: CheckpointWriter;
  readonly #log: MerkleLogWriter;
  readonly #blobs: BlobTable;

  /** `location`: the store folder (where the signing key is); `tamperEvidence`: append to the Merkle log (default true). */
  constructor(db: Database.Database, location: string, tamperEvidence = true) {
    this.#db = db;
    this.#location = location;
    this.#log = new MerkleLogWriter(db, location, tamperEvidence);
    this.#blobs = new BlobTable(db);
    this.#checkpoints = new CheckpointWriter(db, location, this.#log);
    this.#stmt = {
      insertExecution: db.prepare(`
        INSERT INTO executions (id, run, step_version, inputs, output, params, context, started, duration,
                                status, error, nondeterminism, encodings, stream, "offset", record_hash)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      insertDeadLetter: db.prepare('INSERT INTO dead_letters (execution, run, reason) VALUES (?, ?, ?)'),
      getRunSeq: db.prepare('SELECT seq FROM runs WHERE id = ?'),
      getStepVersionSeq: db.prepare('SELECT seq FROM step_versions WHERE step_id = ? AND version_hash = ?'),
      insertContext: db.prepare('INSERT OR IGNORE INTO contexts (hash, context) VALUES (?, ?)'),
      getContextSeq: db.prepare('SELECT seq FROM contexts WHERE hash = ?'),
      insertStream: db.prepare('INSERT OR IGNORE INTO streams (id) VALUES (?)'),
      getStreamSeq: db.prepare('SELECT seq FROM streams WHERE id = ?'),
    };
  }

  /**
   * Commit a packed batch atomically: all of it or none. `alsoInside` runs in the same
   * transaction after the batch is written (object versions made by its executions).
   */
  apply(batch: PackedBatch, alsoInside?: () => void): void {
    // Rows interned inside a rolled-back transaction are gone: #transaction forgets their numbers.
    this.#transaction(() => {
      this.#write(batch);
      alsoInside?.();
    });
  }

  #write(batch: PackedBatch): void {
    const { values, executions, deadLetters } = unpackBatch(batch);
    const d = batch.dictionary;
    const s = this.#stmt;
    const runs = d.runs.map((r) => this.#requireRun(r));
    const steps = d.steps.map(([id, v]) => this.#requireStepVersion(id, v));
    const contexts = d.contexts.map(([h, json]) => this.internContext(h, json));
    const streams = d.streams.map((id) => this.internStream(id));
    for (const v of values) this.#blobs.insert(v.digest, v.size, v.location, v.bytes);
    // Leaves first (a clean range is checked against the executions already stored), per run.
    if (executions.length > 0) {
      const first = executions[0] as (typeof executions)[number];
      if (executions.every((e) => e.run === first.run)) this.#log.appendExecutions(runs[first.run] as number, executions);
      else {
        const byRun = new Map<number, typeof executions>();
        for (const e of executions) {
          const list = byRun.get(e.run) ?? [];
          list.push(e);
          byRun.set(e.run, list);
        }
        for (const [run, list] of byRun) this.#log.appendExecutions(runs[run] as number, list);
      }
    }
    for (const e of executions) {
      s.insertExecution.run(
        e.id,
        runs[e.run],
        steps[e.step],
        e.inputs,
        e.output,
        e.params,
        contexts[e.context],
        e.started,
        e.duration,
        e.status,
        e.error,
        e.nondeterminism,
        e.encodings,
        e.stream < 0 ? null : streams[e.stream],
        e.offset,
        e.recordHash,
      );
    }
    for (const dl of deadLetters) {
      const e = executions[dl.execution];
      if (e === undefined) throw new TypeError('dead letter refers outside its batch');
      s.insertDeadLetter.run(e.id, runs[e.run], d.reasons[dl.reason]);
    }
    if (batch.checkpoint !== undefined) {
      this.#checkpoints.apply(batch.checkpoint, (id) => this.#requireRun(id), (id) => this.internStream(id));
    }
    this.#blobs.mergeIfDue();
  }

  /** The values, through this applier's connection. */
  get blobs(): BlobTable {
    return this.#blobs;
  }

  /** The Merkle log this applier appends to (for other records committed in its transactions). */
  get log(): MerkleLogWriter {
    return this.#log;
  }

  /** End and/or open a checkpoint in its own transaction, after storing the values it refers to. */
  applyCheckpoint(transition: CheckpointTransition, values: readonly { hash: Buffer; size: number; location: number; bytes: Uint8Array | null }[]): void {
    this.#transaction(() => {
      for (const v of values) this.#blobs.insert(v.hash, v.size, v.location, v.bytes);
      this.#blobs.mergeIfDue();
      this.#checkpoints.apply(transition, (id) => this.#requireRun(id), (id) => this.internStream(id));
    });
  }

  #transaction(fn: () => void): void {
    try {
      this.#db.transaction(fn).immediate();
    } catch (err) {
      this.#contextSeq.clear();
      this.#streamSeq.clear();
      this.#log.reset();
      throw err;
    }
  }

  #requireRun(runId: string): number {
    let seq = this.#runSeq.get(runId);
    if (seq === undefined) {
      const row = this.#stmt.getRunSeq.get(runId) as { seq: number } | undefined;
      if (row === undefined) {
        throw new ProvenantError('NOT_FOUND', `run ${runId} does not exist in ${this.#location}`, { context: { runId } });
      }
      seq = row.seq;
      this.#runSeq.set(runId, seq);
    }
    return seq;
  }

  #requireStepVersion(stepId: string, versionHash: string): number {
    const key = `${stepId}\u0000${versionHash}`;
    let seq = this.#stepSeq.get(key);
    if (seq === undefined) {
      const row = this.#stmt.getStepVersionSeq.get(stepId, hashToBytes(versionHash)) as { seq: number } | undefined;
      if (row === undefined) {
        throw new ProvenantError('STEP_NOT_FOUND', `step ${stepId} version ${versionHash} is not registered in ${this.#location}`, {
          hint: 'Register the step version before recording executions of it.',
          context: { stepId, versionHash },
        });
      }
      seq = row.seq;
      this.#stepSeq.set(key, seq);
    }
    return seq;
  }

  /** The number of a context, inserting it when new. */
  internContext(hash: string, json: string): number {
    let seq = this.#contextSeq.get(hash);
    if (seq === undefined) {
      const key = hashToBytes(hash);
      this.#stmt.insertContext.run(key, json);
      seq = (this.#stmt.getContextSeq.get(key) as { seq: number }).seq;
      this.#contextSeq.set(hash, seq);
    }
    return seq;
  }

  /** The number of a stream id, inserting it when new. */
  internStream(streamId: string): number {
    let seq = this.#streamSeq.get(streamId);
    if (seq === undefined) {
      this.#stmt.insertStream.run(streamId);
      seq = (this.#stmt.getStreamSeq.get(streamId) as { seq: number }).seq;
      this.#streamSeq.set(streamId, seq);
    }
    return seq;
  }
}
