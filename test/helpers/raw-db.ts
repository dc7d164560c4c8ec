/**
 * Direct access to a SQLite store's database file, bypassing Provenant, to do what an attacker or
 * a damaged disk would: drop triggers, overwrite bytes. Open only while the store is closed.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';

/** Run `fn` on the raw database of the store in `storeDir`, then close it. */
export function withRawDb<T>(storeDir: string, fn: (db: Database.Database) => T): T {
  const db = new Database(join(storeDir, 'provenant.db'));
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

/** The 32 digest bytes of a `sha256:<hex>` hash, as the SQLite store keys blobs. */
export function digestBytes(hash: string): Buffer {
  return Buffer.from(hash.slice('sha256:'.length), 'hex');
}

/** Where the SQLite store keeps a large blob's file. */
export function blobFilePath(storeDir: string, hash: string): string {
  const hex = hash.slice('sha256:'.length);
  return join(storeDir, 'blobs', 'sha256', hex.slice(0, 2), hex.slice(2, 4), hex.slice(4));
}

/** Replace a stored inline blob's bytes (the trigger that forbids this is dropped first). */
export function overwriteInlineBlob(storeDir: string, hash: string, bytes: Uint8Array): void {
  withRawDb(storeDir, (db) => {
    const changed = overwriteBlobRow(db, digestBytes(hash), Buffer.from(bytes));
    if (changed !== 1) throw new Error(`no inline blob ${hash} to overwrite`);
  });
}

/** Overwrite the bytes of a value's row on an open raw database (dropping the trigger that forbids it); rows changed. */
export function overwriteBlobRow(db: Database.Database, digest: Buffer, bytes: Buffer): number {
  db.exec('DROP TRIGGER IF EXISTS blob_rows_no_update');
  return db.prepare('UPDATE blob_rows SET bytes = ? WHERE hash = ?').run(bytes, digest).changes;
}

/**
 * Undo migration 8 on an open raw database: the values go back into one \`blobs\` table keyed by
 * digest, as stores before it kept them (for tests that take a store back to an older schema).
 */
export function revertToBlobsTable(db: Database.Database): void {
  db.exec(`DROP VIEW blobs;
    CREATE TABLE blobs (seq INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE, size INTEGER NOT NULL, location INTEGER NOT NULL, bytes BLOB);
    INSERT INTO blobs (seq, hash, size, location, bytes) SELECT seq, hash, size, location, bytes FROM blob_rows ORDER BY seq;
    CREATE TRIGGER blobs_no_update BEFORE UPDATE ON blobs BEGIN SELECT RAISE(ABORT, 'provenant: blobs are immutable'); END;
    DROP TABLE blob_rows; DROP TABLE blob_index; DROP TABLE blob_recent;
    DELETE FROM schema_migrations WHERE version >= 8;`);
}

/** Delete a value (its row and its digest) on an open raw database, as a lost or damaged store would lose it. */
export function deleteBlobRow(db: Database.Database, digest: Buffer): void {
  db.prepare('DELETE FROM blob_recent WHERE seq IN (SELECT seq FROM blob_rows WHERE hash = ?)').run(digest);
  db.prepare('DELETE FROM blob_index WHERE seq IN (SELECT seq FROM blob_rows WHERE hash = ?)').run(digest);
  db.prepare('DELETE FROM blob_rows WHERE hash = ?').run(digest);
}
