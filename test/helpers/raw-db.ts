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
    db.exec('DROP TRIGGER IF EXISTS blobs_no_update');
    const changed = db.prepare('UPDATE blobs SET bytes = ? WHERE hash = ?').run(Buffer.from(bytes), digestBytes(hash)).changes;
    if (changed !== 1) throw new Error(`no inline blob ${hash} to overwrite`);
  });
}
