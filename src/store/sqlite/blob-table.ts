/**
 * The embedded store's values (blobs), on one SQLite connection.
 *
 * Rows are appended to `blob_rows` in insertion order and never updated. A value is found by its
 * digest through two indexes, `blob_recent` and `blob_index` (digest → row):
 * - a new value's digest goes into `blob_recent`, a small tree whose pages stay few and hot;
 * - once `blob_recent` holds {@link MERGE_AT} digests, they move to `blob_index` in one
 *   transaction, in digest order.
 * Why: digests are random, so every insert into one large index lands on a random page, and each
 * commit writes every page it touched. With one index, the bytes written per value grew with the
 * store (2.8 KB per execution at 100,000 records, 11 KB at 500,000, and capture slowed from 34,000
 * to 19,600 executions/s); moved in bulk, each page of the large index is written once per merge.
 * Every digest is in exactly one of the two indexes (the merge moves them in one transaction).
 * The view `blobs` shows them as one table, for reading.
 */
import type Database from 'better-sqlite3';

/** Digests kept in `blob_recent` before they move to `blob_index`. */
export const MERGE_AT = 100_000;

/** The row of a digest, whichever index holds it (the digest is bound twice: positional parameters allocate nothing per call). */
const SEQ_OF = '(SELECT seq FROM blob_recent WHERE hash = ? UNION ALL SELECT seq FROM blob_index WHERE hash = ? LIMIT 1)';

/** SQL that is true when the value with digest `expr` is stored (`@hash`: bind `{ hash }`). */
export function blobStoredSql(expr: string): string {
  return `(EXISTS (SELECT 1 FROM blob_recent WHERE hash = ${expr}) OR EXISTS (SELECT 1 FROM blob_index WHERE hash = ${expr}))`;
}

/** The blob statements of one connection. Writes must run inside the caller's transaction. */
export class BlobTable {
  readonly #stmt;
  readonly #mergeAt: number;
  /** Digests this connection put into `blob_recent` since it last counted them. */
  #recent = 0;

  /** `mergeAt`: digests kept in `blob_recent` before they move (default {@link MERGE_AT}). */
  constructor(db: Database.Database, mergeAt = MERGE_AT) {
    this.#mergeAt = mergeAt;
    this.#stmt = {
      seq: db.prepare(`SELECT ${SEQ_OF} AS seq`).pluck(),
      stat: db.prepare(`SELECT size, location FROM blob_rows WHERE seq = ${SEQ_OF}`),
      get: db.prepare(`SELECT location, bytes FROM blob_rows WHERE seq = ${SEQ_OF}`),
      insertRow: db.prepare('INSERT INTO blob_rows (hash, size, location, bytes) VALUES (?, ?, ?, ?)'),
      insertRecent: db.prepare('INSERT INTO blob_recent (hash, seq) VALUES (?, ?)'),
      deleteRow: db.prepare('DELETE FROM blob_rows WHERE seq = ?'),
      deleteRecent: db.prepare('DELETE FROM blob_recent WHERE hash = ?'),
      deleteIndexed: db.prepare('DELETE FROM blob_index WHERE hash = ?'),
      listIndexed: db.prepare('SELECT i.hash, r.size FROM blob_index i JOIN blob_rows r ON r.seq = i.seq WHERE i.hash > ? ORDER BY i.hash LIMIT ?'),
      listRecent: db.prepare('SELECT i.hash, r.size FROM blob_recent i JOIN blob_rows r ON r.seq = i.seq WHERE i.hash > ? ORDER BY i.hash LIMIT ?'),
      countRecent: db.prepare('SELECT count(*) FROM blob_recent').pluck(),
      moveRecent: db.prepare('INSERT INTO blob_index (hash, seq) SELECT hash, seq FROM blob_recent ORDER BY hash'),
      clearRecent: db.prepare('DELETE FROM blob_recent'),
      count: db.prepare('SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM blob_rows'),
    };
  }

  /** Store a value unless its digest is already stored; true when it was new. */
  insert(digest: Uint8Array, size: number, location: number, bytes: Uint8Array | null): boolean {
    const s = this.#stmt;
    if (s.seq.get(digest, digest) !== null) return false;
    const seq = s.insertRow.run(digest, size, location, bytes).lastInsertRowid;
    s.insertRecent.run(digest, seq);
    this.#recent++;
    return true;
  }

  /** Size and location (0 inline, 1 file) of a stored value. */
  stat(digest: Uint8Array): { size: number; location: number } | undefined {
    return this.#stmt.stat.get(digest, digest) as { size: number; location: number } | undefined;
  }

  /** Location and inline bytes of a stored value. */
  get(digest: Uint8Array): { location: number; bytes: Buffer | null } | undefined {
    return this.#stmt.get.get(digest, digest) as { location: number; bytes: Buffer | null } | undefined;
  }

  /** Remove a value's row and its digest (dropping values no one needs, repairing a damaged one). */
  delete(digest: Uint8Array): void {
    const s = this.#stmt;
    const seq = s.seq.get(digest, digest) as number | null;
    if (seq === null) return;
    s.deleteRow.run(seq);
    s.deleteRecent.run(digest);
    s.deleteIndexed.run(digest);
  }

  /** Digests and sizes in digest order, after `after`, at most `limit`. */
  list(after: Uint8Array, limit: number): { hash: Buffer; size: number }[] {
    const a = this.#stmt.listIndexed.all(after, limit) as { hash: Buffer; size: number }[];
    const b = this.#stmt.listRecent.all(after, limit) as { hash: Buffer; size: number }[];
    return [...a, ...b].sort((x, y) => Buffer.compare(x.hash, y.hash)).slice(0, limit);
  }

  /** How many values, and their bytes. */
  totals(): { n: number; bytes: number } {
    return this.#stmt.count.get() as { n: number; bytes: number };
  }

  /**
   * Move the digests of `blob_recent` to `blob_index` once there are `mergeAt` of them
   * (counted again before: other connections insert too). Call inside a write transaction.
   */
  mergeIfDue(): void {
    if (this.#recent < this.#mergeAt) return;
    const s = this.#stmt;
    const n = s.countRecent.get() as number;
    if (n >= this.#mergeAt) {
      s.moveRecent.run();
      s.clearRecent.run();
      this.#recent = 0;
    } else this.#recent = n;
  }
}
