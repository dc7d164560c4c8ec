/**
 * What `verify` and the proofs read from a store: its records as stored (raw, so a change is
 * seen as it is), its Merkle log's segments and heads, and the records each segment's leaves
 * stand for. One implementation per backend: SQLite here, PostgreSQL in
 * src/store/postgres/merkle-read.ts. Both give rows in the same shape (ids and hashes as bytes,
 * runs, step versions, contexts and streams as numbers explained by {@link Lookups}).
 */
import { ProvenantError } from '../errors.js';
import { hashFromBytes, type ContentHash } from '../hash/canonical.js';
import { uuidFromBytes } from '../ids.js';
import type { CheckpointRecord } from '../store/records.js';
import { CHECKPOINT_SELECT, toCheckpoint, type CheckpointRow } from '../store/sqlite/checkpoints.js';
import { MerkleLogReader, type HeadRow, type LeafRecord, type SegmentRow } from '../store/sqlite/merkle-read.js';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';
import { PostgresStore } from '../store/postgres/postgres-store.js';
import { PgMerkleSource } from '../store/postgres/merkle-read.js';
import type { Store } from '../store/store.js';

export type { HeadRow, LeafRecord, SegmentRow };

/** An execution row as stored (SQLite's column shape; PostgreSQL rows are brought to it). */
export interface RawExecution {
  id: Buffer;
  run: number;
  step_version: number;
  inputs: Buffer;
  output: Buffer | null;
  params: Buffer;
  context: number;
  started: number;
  duration: number;
  status: number;
  error: Buffer | null;
  nondeterminism: Buffer | null;
  encodings: Buffer | null;
  stream: number | null;
  offset: number | null;
  record_hash: Buffer;
}

/** What the numbers of {@link RawExecution} stand for. */
export interface Lookups {
  runs: Map<number, string>;
  steps: Map<number, { stepId: string; version: ContentHash }>;
  contexts: Map<number, ContentHash>;
  streams: Map<number, string>;
}

/** A checkpoint as stored: the values it names, and its record (end null while IN_PROGRESS). */
export interface RawCheckpoint {
  readonly seq: number;
  readonly id: string;
  /** Pipeline, state snapshot and input slice digests (null when absent). */
  readonly values: readonly (Buffer | null)[];
  readonly record: CheckpointRecord;
  readonly recordHash: Buffer | null;
}

/** A blob row: its hash, and its bytes when they are inline in the row (else read through the store). */
export interface RawBlob {
  readonly hash: Buffer;
  readonly inline: Buffer | null;
}

/** Read access to a store's records and Merkle log, for `verify` and proofs. */
export interface MerkleSource {
  lookups(): Promise<Lookups>;
  /** Every execution row (any order). */
  executions(): AsyncIterable<RawExecution>;
  /** Every checkpoint. */
  checkpoints(): AsyncIterable<RawCheckpoint>;
  /** Every object version id, in commit order. */
  objectVersionIds(): Promise<string[]>;
  /** The log's segments, in log order. */
  segments(): Promise<SegmentRow[]>;
  /** The tree heads, oldest first. */
  heads(): Promise<HeadRow[]>;
  /** The records a segment's leaves stand for, as the store has them now (see MerkleLogReader.records). */
  records(segment: SegmentRow): Promise<LeafRecord[]>;
  /** Every stored value's hash. */
  blobHashes(): Promise<Buffer[]>;
  /** Every blob row. */
  blobs(): AsyncIterable<RawBlob>;
  /** The ids of one run's executions. */
  runExecutionIds(run: number): Promise<Buffer[]>;
  /** Every execution id. */
  executionIds(): AsyncIterable<Buffer>;
  /** Hashes (hex) of object versions' contents: absent by policy is not missing. */
  versionValues(): Promise<Set<string>>;
  /** A checkpoint's row number (the key of its leaf), or undefined. */
  checkpointSeq(id: string): Promise<number | undefined>;
}

/** The Merkle source of a store, or a clear error for a backend without a log. */
export function merkleSource(store: Store): MerkleSource {
  if (store instanceof SqliteStore) return new SqliteMerkleSource(store);
  if (store instanceof PostgresStore) return new PgMerkleSource(store);
  throw new ProvenantError('INPUT_INVALID', `the store at ${store.location} keeps no Merkle log`, {
    hint: 'Verify and prove on an embedded (SQLite) or PostgreSQL store.',
    context: { store: store.location },
  });
}

/** The SQLite backend's records and log (read through its main connection). */
class SqliteMerkleSource implements MerkleSource {
  readonly #store: SqliteStore;
  readonly #reader: MerkleLogReader;

  constructor(store: SqliteStore) {
    this.#store = store;
    this.#reader = new MerkleLogReader(store.database);
  }

  get #db() {
    return this.#store.database;
  }

  async lookups(): Promise<Lookups> {
    const db = this.#db;
    return {
      runs: new Map((db.prepare('SELECT seq, id FROM runs').all() as { seq: number; id: string }[]).map((r) => [r.seq, r.id])),
      steps: new Map(
        (db.prepare('SELECT seq, step_id, version_hash FROM step_versions').all() as { seq: number; step_id: string; version_hash: Buffer }[]).map((r) => [
          r.seq,
          { stepId: r.step_id, version: hashFromBytes(r.version_hash) },
        ]),
      ),
      contexts: new Map((db.prepare('SELECT seq, hash FROM contexts').all() as { seq: number; hash: Buffer }[]).map((r) => [r.seq, hashFromBytes(r.hash)])),
      streams: new Map((db.prepare('SELECT seq, id FROM streams').all() as { seq: number; id: string }[]).map((r) => [r.seq, r.id])),
    };
  }

  async *executions(): AsyncIterable<RawExecution> {
    yield* this.#db.prepare('SELECT * FROM executions').iterate() as IterableIterator<RawExecution>;
  }

  async *checkpoints(): AsyncIterable<RawCheckpoint> {
    for (const row of this.#db.prepare(CHECKPOINT_SELECT).iterate() as IterableIterator<CheckpointRow>) {
      yield { seq: row.seq, id: row.id, values: [row.pipeline, row.state, row.input_slice], record: toCheckpoint(row), recordHash: row.record_hash };
    }
  }

  async objectVersionIds(): Promise<string[]> {
    return (this.#db.prepare('SELECT id FROM object_versions ORDER BY seq').all() as { id: Buffer }[]).map(({ id }) => (id.length === 16 ? uuidFromBytes(id) : id.toString('hex')));
  }

  async segments(): Promise<SegmentRow[]> {
    return this.#reader.segments();
  }

  async heads(): Promise<HeadRow[]> {
    return this.#reader.heads();
  }

  async records(segment: SegmentRow): Promise<LeafRecord[]> {
    return this.#reader.records(segment);
  }

  async blobHashes(): Promise<Buffer[]> {
    return (this.#db.prepare('SELECT hash FROM blob_rows').all() as { hash: Buffer }[]).map((r) => r.hash);
  }

  async *blobs(): AsyncIterable<RawBlob> {
    for (const row of this.#db.prepare('SELECT hash, location, bytes FROM blob_rows').iterate() as IterableIterator<{ hash: Buffer; location: number; bytes: Buffer | null }>) {
      yield { hash: row.hash, inline: row.location === 0 ? (row.bytes ?? Buffer.alloc(0)) : null };
    }
  }

  async runExecutionIds(run: number): Promise<Buffer[]> {
    return (this.#db.prepare('SELECT id FROM executions WHERE run = ?').all(run) as { id: Buffer }[]).map((r) => r.id);
  }

  async *executionIds(): AsyncIterable<Buffer> {
    for (const row of this.#db.prepare('SELECT id FROM executions').iterate() as IterableIterator<{ id: Buffer }>) yield row.id;
  }

  async versionValues(): Promise<Set<string>> {
    return new Set((this.#db.prepare('SELECT DISTINCT value FROM object_versions').all() as { value: Buffer }[]).map((r) => r.value.toString('hex')));
  }

  async checkpointSeq(id: string): Promise<number | undefined> {
    return (this.#db.prepare('SELECT seq FROM checkpoints WHERE id = ?').get(id) as { seq: number } | undefined)?.seq;
  }
}
