/**
 * The embedded store's values: appended rows found through a small recent index that is merged in
 * bulk into the main one (src/store/sqlite/blob-table.ts). Tested on real SQLite databases made by
 * the store's own migrations: every value stays findable across merges, a value is stored once
 * whichever index holds its digest, paging runs in digest order across both, and a store made
 * before migration 8 keeps its values.
 */
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { hashFromBytes } from '../../src/hash/canonical.js';
import { BlobTable } from '../../src/store/sqlite/blob-table.js';
import { MIGRATIONS } from '../../src/store/sqlite/migrations.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { makeTempDir } from '../helpers/temp.js';

/** A new store's database with the store's own migrations applied up to `version`, as an older Provenant left it. */
function storeAtSchema(version: number): { dir: string; db: Database.Database } {
  const dir = makeTempDir();
  const db = new Database(join(dir, 'provenant.db'));
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied INTEGER NOT NULL)');
  for (const m of MIGRATIONS.filter((m) => m.version <= version)) {
    db.exec(m.sql);
    m.after?.(db);
    db.prepare('INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
  }
  return { dir, db };
}

const digest = (b: Buffer): Buffer => createHash('sha256').update(b).digest();
const value = (i: number): Buffer => Buffer.from(JSON.stringify({ n: i, text: `value ${i}` }));

it('values stay findable while their digests move from the recent index to the main one; each is stored once', async () => {
  const dir = makeTempDir();
  await SqliteStore.open(dir).close(); // a store with every migration
  const db = new Database(join(dir, 'provenant.db'));
  try {
    const blobs = new BlobTable(db, 10);
    const count = (table: string): number => (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
    const before = blobs.totals().n;
    const put = db.transaction((from: number, to: number) => {
      const added: boolean[] = [];
      for (let i = from; i < to; i++) added.push(blobs.insert(digest(value(i)), value(i).length, 0, value(i)));
      blobs.mergeIfDue();
      return added;
    });
    expect(put(0, 7)).toEqual(Array(7).fill(true));
    expect(count('blob_recent')).toBe(7 + before);
    expect(put(7, 14).every(Boolean)).toBe(true); // 14 + before >= 10: merged
    expect(count('blob_recent')).toBe(0);
    expect(count('blob_index')).toBe(14 + before);
    expect(put(14, 20).every(Boolean)).toBe(true);
    expect(count('blob_recent')).toBe(6);
    // Stored once: again, whichever index holds the digest.
    expect(put(0, 20)).toEqual(Array(20).fill(false));
    expect(blobs.totals().n).toBe(20 + before);
    for (let i = 0; i < 20; i++) {
      expect(blobs.get(digest(value(i)))?.bytes).toEqual(value(i));
      expect(blobs.stat(digest(value(i)))).toEqual({ size: value(i).length, location: 0 });
    }
    // Paging in digest order across both indexes, 3 at a time.
    const all: Buffer[] = [];
    for (let after: Buffer = Buffer.alloc(0); ; ) {
      const page = blobs.list(after, 3);
      if (page.length === 0) break;
      all.push(...page.map((p) => p.hash));
      after = page[page.length - 1]?.hash as Buffer;
    }
    const expected = (db.prepare('SELECT hash FROM blob_rows').all() as { hash: Buffer }[]).map((r) => r.hash).sort(Buffer.compare);
    expect(all).toEqual(expected);
    // Deleting works in either index; the value can then be stored again.
    const merged = digest(value(3));
    const recent = digest(value(17));
    db.transaction(() => {
      blobs.delete(merged);
      blobs.delete(recent);
    })();
    expect(blobs.get(merged)).toBeUndefined();
    expect(blobs.get(recent)).toBeUndefined();
    expect(db.transaction(() => blobs.insert(merged, value(3).length, 0, value(3)))()).toBe(true);
    expect(blobs.get(merged)?.bytes).toEqual(value(3));
    // The view shows every value once.
    expect((db.prepare('SELECT count(*) AS n FROM blobs').get() as { n: number }).n).toBe(blobs.totals().n);
  } finally {
    db.close();
  }
});

it('a store made before migration 8 keeps its values: readable, listed, not stored twice', async () => {
  const { dir, db } = storeAtSchema(7);
  const old = [0, 1, 2, 3, 4].map(value);
  for (const v of old) db.prepare('INSERT INTO blobs (hash, size, location, bytes) VALUES (?, ?, 0, ?)').run(digest(v), v.length, v);
  db.close();

  const store = SqliteStore.open(dir);
  try {
    for (const v of old) expect(Buffer.from(await store.getBlob(hashFromBytes(digest(v))))).toEqual(v);
    expect((await store.stats()).blobs).toBe(5);
    await store.putBlob(old[2] as Buffer);
    await store.putBlob(value(5));
    expect((await store.stats()).blobs).toBe(6);
    const listed = (await store.listBlobs()).map((b) => b.hash);
    expect(listed).toEqual([...old, value(5)].map((v) => hashFromBytes(digest(v))).sort());
  } finally {
    await store.close();
  }
});

it('digests that share their first 8 bytes (the index key) are stored, found, listed and deleted apart', async () => {
  const dir = makeTempDir();
  await SqliteStore.open(dir).close();
  const db = new Database(join(dir, 'provenant.db'));
  try {
    const blobs = new BlobTable(db, 3);
    // Not real SHA-256 digests: the table takes any 32 bytes, which lets the test force a shared prefix.
    const prefix = Buffer.from('0123456789abcdef', 'hex');
    const twins: Buffer[] = [1, 2, 3, 4, 5].map((i) => Buffer.concat([prefix, Buffer.alloc(24, i)]));
    const bytesOf = (i: number): Buffer => Buffer.from(`twin ${i}`);
    const put = db.transaction((list: Buffer[]) => {
      const added = list.map((d) => blobs.insert(d, bytesOf(twins.indexOf(d)).length, 0, bytesOf(twins.indexOf(d))));
      blobs.mergeIfDue();
      return added;
    });
    expect(put(twins.slice(0, 3))).toEqual([true, true, true]); // merged into blob_index
    expect(put(twins.slice(3))).toEqual([true, true]); // in blob_recent
    expect(put(twins)).toEqual([false, false, false, false, false]);
    twins.forEach((d, i) => expect(blobs.get(d)?.bytes).toEqual(bytesOf(i)));
    expect(blobs.list(Buffer.alloc(0), 10).filter((b) => b.hash.subarray(0, 8).equals(prefix)).map((b) => b.hash)).toEqual(twins);
    expect(blobs.list(twins[1] as Buffer, 2).map((b) => b.hash)).toEqual(twins.slice(2, 4));
    db.transaction(() => {
      blobs.delete(twins[1] as Buffer);
      blobs.delete(twins[3] as Buffer);
    })();
    twins.forEach((d, i) => expect(blobs.get(d)?.bytes).toEqual(i === 1 || i === 3 ? undefined : bytesOf(i)));
  } finally {
    db.close();
  }
});

it('a store made at schema 8 (indexes keyed by whole digests) keeps every value after migration 9', async () => {
  const { dir, db } = storeAtSchema(8);
  const old = [0, 1, 2, 3, 4, 5].map(value);
  old.forEach((v, i) => {
    const seq = db.prepare('INSERT INTO blob_rows (hash, size, location, bytes) VALUES (?, ?, 0, ?)').run(digest(v), v.length, v).lastInsertRowid;
    // Half merged into the main index, half still recent, as a running schema-8 store leaves them.
    db.prepare(`INSERT INTO ${i % 2 === 0 ? 'blob_index' : 'blob_recent'} (hash, seq) VALUES (?, ?)`).run(digest(v), seq);
  });
  db.close();

  const store = SqliteStore.open(dir);
  try {
    for (const v of old) expect(Buffer.from(await store.getBlob(hashFromBytes(digest(v))))).toEqual(v);
    await store.putBlob(old[3] as Buffer);
    await store.putBlob(value(6));
    expect((await store.stats()).blobs).toBe(7);
    expect((await store.listBlobs()).map((b) => b.hash)).toEqual([...old, value(6)].map((v) => hashFromBytes(digest(v))).sort());
  } finally {
    await store.close();
  }
});
