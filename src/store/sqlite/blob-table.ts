/**
 * The embedded store's values (blobs), on one SQLite connection.
 *
 * Rows are appended to `blob_rows` in insertion order and never updated. A value is found by its
 * digest through two indexes, `blob_recent` and `blob_index`, keyed by the digest's first 8 bytes
 * (`k`, then the row):
 * - a new value's key goes into `blob_recent`, a small tree whose pages stay few and hot;
 * - once `blob_recent` holds {@link MERGE_AT} keys, they move to `blob_index` in one transaction,
 *   in key order.
 * Why: digests are random, so every insert into one large index lands on a random page, and each
 * commit writes every page it touched. With one index, the bytes written per value grew with the
 * store (2.8 KB per execution at 100,000 records, 11 KB at 500,000, and capture slowed from 34,000
 * to 19,600 executions/s); moved in bulk, each page of the large index is written once per merge.
 * Why 8 bytes: an entry a quarter the size of a whole digest means a quarter of the pages to touch
 * and write per commit (a value's insert cost 8.1 µs with 32-byte keys, 5.6 µs with these). Two
 * digests can share a prefix, so a lookup also compares the whole digest in `blob_rows`; key order
 * is digest order, so paging in digest order still walks the indexes.
 * Every value's row is in exactly one of the two indexes (the merge moves them in one
 * transaction). The view `blobs` shows them as one table, for reading.
 */
import type Database from 'better-sqlite3';

/** Digests kept in `blob_recent` before they move to `blob_index`. */
export const MERGE_AT = 100_000;

/** The rows in `index` whose digest is `expr`. */
function rowsIn(index: 'blob_recent' | 'blob_index', expr: string): string {
  return `SELECT r.seq FROM ${index} i JOIN blob_rows r ON r.seq = i.seq WHERE i.k = substr(${expr}, 1, 8) AND r.hash = ${expr}`;
}

/** The row of a digest, whichever index holds it (the digest is bound four times: positional parameters allocate nothing per call). */
const SEQ_OF = `(${rowsIn('blob_recent', '?')} UNION ALL ${rowsIn('blob_index', '?')} LIMIT 1)`;

/**
 * A page of `index`'s digests and sizes after a digest (bind its first 8 bytes, the digest, the
 * limit): (k, hash) order is digest order, so a page starts at the prefix and ends early.
 */
function pageIn(index: 'blob_recent' | 'blob_index'): string {
  return `SELECT r.hash, r.size FROM ${index} i JOIN blob_rows r ON r.seq = i.seq WHERE i.k >= ? AND r.hash > ? ORDER BY i.k, r.hash LIMIT ?`;
}

/** SQL that is true when the value with digest `expr` is stored (`@hash`: bind `{ hash }`). */
export function blobStoredSql(expr: string): string {
  return `(EXISTS (${rowsIn('blob_recent', expr)}) OR EXISTS (${rowsIn('blob_index', expr)}))`;
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
      insertRecent: db.prepare('INSERT INTO blob_recent (k, seq) VALUES (substr(?, 1, 8), ?)'),
      deleteRow: db.prepare('DELETE FROM blob_rows WHERE seq = ?'),
      deleteRecent: db.prepare('DELETE FROM blob_recent WHERE k = substr(?, 1, 8) AND seq = ?'),
      deleteIndexed: db.prepare('DELETE FROM blob_index WHERE k = substr(?, 1, 8) AND seq = ?'),
      listIndexed: db.prepare(pageIn('blob_index')),
      listRecent: db.prepare(pageIn('blob_recent')),
      countRecent: db.prepare('SELECT count(*) FROM blob_recent').pluck(),
      moveRecent: db.prepare('INSERT INTO blob_index (k, seq) SELECT k, seq FROM blob_recent ORDER BY k, seq'),
      clearRecent: db.prepare('DELETE FROM blob_recent'),
      count: db.prepare('SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM blob_rows'),
    };
  }

  /** Store a value unless its digest is already stored; true when it was new. */
  insert(digest: Uint8Array, size: number, location: number, bytes: Uint8Array | null): boolean {
    const s = this.#stmt;
    if (s.seq.get(digest, digest, digest, digest) !== null) return false;
    const seq = s.insertRow.run(digest, size, location, bytes).lastInsertRowid;
    s.insertRecent.run(digest, seq);
    this.#recent++;
    return true;
  }

  /** Size and location (0 inline, 1 file) of a stored value. */
  stat(digest: Uint8Array): { size: number; location: number } | undefined {
    return this.#stmt.stat.get(digest, digest, digest, digest) as { size: number; location: number } | undefined;
  }

  /** Location and inline bytes of a stored value. */
  get(digest: Uint8Array): { location: number; bytes: Buffer | null } | undefined {
    return this.#stmt.get.get(digest, digest, digest, digest) as { location: number; bytes: Buffer | null } | undefined;
  }

  /** Remove a value's row and its digest (dropping values no one needs, repairing a damaged one). */
  delete(digest: Uint8Array): void {
    const s = this.#stmt;
    const seq = s.seq.get(digest, digest, digest, digest) as number | null;
    if (seq === null) return;
    s.deleteRecent.run(digest, seq);
    s.deleteIndexed.run(digest, seq);
    s.deleteRow.run(seq);
  }

  /** Digests and sizes in digest order, after `after`, at most `limit`. */
  list(after: Uint8Array, limit: number): { hash: Buffer; size: number }[] {
    // The key bound from JavaScript: SQLite's substr() of an empty blob is NULL.
    const k = after.subarray(0, 8);
    const a = this.#stmt.listIndexed.all(k, after, limit) as { hash: Buffer; size: number }[];
    const b = this.#stmt.listRecent.all(k, after, limit) as { hash: Buffer; size: number }[];
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
