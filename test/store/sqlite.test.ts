/**
 * The embedded SQLite store: the contract every backend passes, and what only this backend does —
 * verified reads of bytes damaged on disk, append-only history enforced in the database itself,
 * and refusing stores it does not understand without touching them.
 */
import { randomBytes } from 'node:crypto';
import { uuidv7 } from 'uuidv7';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  BlobCorruptError,
  BlobMissingError,
  ProvenantError,
  SqliteStore,
  executionRecordHash,
  openStore,
  sha256,
  type Store,
} from '../../src/index.js';
import { ensureDist } from '../helpers/dist.js';
import { blobFilePath, digestBytes, overwriteInlineBlob, withRawDb } from '../helpers/raw-db.js';
import { makeTempDir } from '../helpers/temp.js';
import { append, buildExecution, createRun, describeStoreContract, registerStep, tick } from './contract.js';
import { rejection } from '../helpers/rejection.js';

// The store commits batches on a writer thread whose script is the built one (dist/).
beforeAll(async () => {
  await ensureDist();
});

describeStoreContract('SqliteStore', async () => {
  const dir = makeTempDir();
  const store = await openStore(dir);
  return { store, cleanup: async () => store.close() };
});

describeStoreContract('SqliteStore without a writer thread, with a 64-byte inline limit (most values as files)', async () => {
  const dir = makeTempDir();
  const store = await openStore(dir, { inlineBlobMaxBytes: 64, writerThread: false });
  return { store, cleanup: async () => store.close() };
});


/** Read a stream to its end or its error, counting the bytes that passed. */
function drain(stream: Readable): Promise<{ received: number; ended: boolean; error: unknown }> {
  return new Promise((resolve) => {
    let received = 0;
    stream.on('data', (chunk: Buffer) => {
      received += chunk.length;
    });
    stream.on('end', () => resolve({ received, ended: true, error: undefined }));
    stream.on('error', (error) => resolve({ received, ended: false, error }));
  });
}

/** A store holding one of everything: an ended run, a step version, executions on a stream, a dead letter. */
async function populate(store: Store) {
  const run = await createRun(store);
  const step = await registerStep(store, 'step', 'the code', run.id);
  const ok = buildExecution({ runId: run.id, step, output: { fine: true }, streamId: 'file:in.ndjson', offset: 0, context: { source: 'test', principal: 'p' } });
  const failed = buildExecution({ runId: run.id, step, error: { name: 'Error', message: 'bad record' }, streamId: 'file:in.ndjson', offset: 1 });
  await append(store, [ok, failed], [{ executionId: failed.record.id, reason: 'bad record' }]);
  await store.endRun({ runId: run.id, endedUs: tick(), status: 'completed', summary: { executions: 2 } });
  return { run, step, ok, failed };
}

function snapshot(dir: string) {
  const file = join(dir, 'provenant.db');
  return { bytes: readFileSync(file), mtimeMs: statSync(file).mtimeMs, entries: readdirSync(dir).sort() };
}

describe('SqliteStore', () => {
  let dir: string;

  beforeEach(() => {
    dir = makeTempDir();
  });

  it('keeps everything across close and reopen', async () => {
    let store = await openStore(dir);
    const { run, step, ok, failed } = await populate(store);
    const big = randomBytes(200 * 1024);
    const bigHash = await store.putBlob(big);
    const statsBefore = await store.stats();
    await store.close();

    store = await openStore(dir, { create: false });
    try {
      expect(await store.getExecution(ok.record.id)).toEqual(ok.record);
      expect(await store.getExecution(failed.record.id)).toEqual(failed.record);
      expect((await store.getRun(run.id))?.end?.status).toBe('completed');
      expect(await store.getStepVersion('step', step.versionHash)).toEqual(step);
      expect(Buffer.from(await store.getBlob(bigHash)).equals(big)).toBe(true);
      expect(await store.listDeadLetters(run.id)).toHaveLength(1);
      expect(await store.stats()).toEqual(statsBefore);
    } finally {
      await store.close();
    }
  });

  it('sizes every connection\'s page cache as asked (64 MiB by default; a server asks for less)', async () => {
    for (const [options, kib] of [[{}, 65536], [{ cacheMiB: 8 }, 8192]] as const) {
      const store = SqliteStore.open(join(dir, String(kib)), options);
      try {
        expect(store.database.pragma('cache_size', { simple: true })).toBe(-kib);
      } finally {
        await store.close();
      }
    }
  });

  it('a second connection to the same folder sees what the first commits', async () => {
    const writer = await openStore(dir);
    const reader = await openStore(dir, { create: false });
    try {
      const { ok } = await populate(writer);
      expect(await reader.getExecution(ok.record.id)).toEqual(ok.record);
      const run = await createRun(writer);
      expect((await reader.listRuns(1))[0]?.id).toBe(run.id);
    } finally {
      await reader.close();
      await writer.close();
    }
  });

  it('counts revocations made through this connection and through another one (a server forgets remembered tokens by this count)', async () => {
    const server = await openStore(dir);
    const other = await openStore(dir, { create: false });
    const token = (principal: string) => ({
      id: uuidv7(),
      hash: sha256(randomBytes(16)),
      principal,
      grants: ['read:*'],
      createdUs: tick(),
      expiresUs: null,
      label: null,
    });
    try {
      const count = server.revocationCount as () => Promise<number>;
      const a = token('a');
      const b = token('b');
      await server.createToken(a);
      await server.createToken(b);
      expect(await count()).toBe(0);
      expect(await count()).toBe(0);
      await server.revokeToken(a.id, tick());
      expect(await count()).toBe(1);
      await other.revokeToken(b.id, tick());
      expect(await count()).toBe(2);
      await createRun(other); // other commits that are not revocations leave the count as it is
      expect(await count()).toBe(2);
    } finally {
      await other.close();
      await server.close();
    }
  });

  describe('blob placement', () => {
    it('keeps blobs up to 64 KiB inline and larger ones as files, by default', async () => {
      const store = await openStore(dir);
      try {
        const atLimit = await store.putBlob(randomBytes(64 * 1024));
        const over = await store.putBlob(randomBytes(64 * 1024 + 1));
        expect(await store.statBlob(atLimit)).toEqual({ size: 64 * 1024, location: 'inline' });
        expect(await store.statBlob(over)).toEqual({ size: 64 * 1024 + 1, location: 'file' });
        expect(existsSync(blobFilePath(dir, atLimit))).toBe(false);
        expect(sha256(readFileSync(blobFilePath(dir, over)))).toBe(over);
        expect(store.capabilities.fileBlobs).toBe(true);
      } finally {
        await store.close();
      }
    });

    it('honours inlineBlobMaxBytes', async () => {
      const store = await openStore(dir, { inlineBlobMaxBytes: 10 });
      try {
        expect(await store.statBlob(await store.putBlob(randomBytes(10)))).toMatchObject({ location: 'inline' });
        const over = await store.putBlob(randomBytes(11));
        expect(await store.statBlob(over)).toMatchObject({ location: 'file' });
        expect(existsSync(blobFilePath(dir, over))).toBe(true);
      } finally {
        await store.close();
      }
    });
  });

  describe('damaged bytes are refused, never returned', () => {
    it('an altered inline blob → BlobCorruptError naming the hash', async () => {
      let store = await openStore(dir);
      const hash = await store.putBlob(Buffer.from('the original value'));
      await store.close();
      const altered = Buffer.from('the altered value!');
      overwriteInlineBlob(dir, hash, altered);

      store = await openStore(dir);
      try {
        const err = await rejection(store.getBlob(hash));
        expect(err).toBeInstanceOf(BlobCorruptError);
        expect((err as BlobCorruptError).hash).toBe(hash);
        expect((err as BlobCorruptError).code).toBe('BLOB_CORRUPT');
        expect((err as BlobCorruptError).message).toContain(hash);
        expect((err as BlobCorruptError).context.actual).toBe(sha256(altered));
        await expect(store.openBlobStream(hash)).rejects.toBeInstanceOf(BlobCorruptError);
      } finally {
        await store.close();
      }
    });

    it('an altered blob file → BlobCorruptError; its stream errors at the end instead of ending', async () => {
      const store = await openStore(dir);
      try {
        const bytes = randomBytes(1024 * 1024);
        const hash = await store.putBlob(bytes);
        const file = blobFilePath(dir, hash);
        const onDisk = readFileSync(file);
        onDisk[700_000] = (onDisk[700_000] ?? 0) ^ 0x01;
        writeFileSync(file, onDisk);

        const err = await rejection(store.getBlob(hash));
        expect(err).toBeInstanceOf(BlobCorruptError);
        expect((err as BlobCorruptError).hash).toBe(hash);

        const result = await drain(await store.openBlobStream(hash));
        expect(result.error).toBeInstanceOf(BlobCorruptError);
        expect((result.error as BlobCorruptError).hash).toBe(hash);
        expect(result.ended).toBe(false);
        // The error comes at the end: a consumer that waits for 'end' never accepts the bytes.
        expect(result.received).toBe(bytes.length);
      } finally {
        await store.close();
      }
    });

    it('a blob file that went missing → BlobMissingError', async () => {
      const store = await openStore(dir);
      try {
        const hash = await store.putBlob(randomBytes(100 * 1024));
        rmSync(blobFilePath(dir, hash));
        await expect(store.getBlob(hash)).rejects.toBeInstanceOf(BlobMissingError);
        await expect(store.openBlobStream(hash)).rejects.toBeInstanceOf(BlobMissingError);
      } finally {
        await store.close();
      }
    });

    // Storing the original bytes again (putBlob) repairs a damaged copy, as the BlobCorruptError hint says.
    it('storing the same bytes again repairs a damaged blob, as the BlobCorruptError hint promises', async () => {
      let store = await openStore(dir);
      const original = Buffer.from('value to be repaired');
      const hash = await store.putBlob(original);
      await store.close();
      overwriteInlineBlob(dir, hash, Buffer.from('value damaged on disk'));
      store = await openStore(dir);
      try {
        await expect(store.getBlob(hash)).rejects.toBeInstanceOf(BlobCorruptError);
        await store.putBlob(original);
        expect(Buffer.from(await store.getBlob(hash)).equals(original)).toBe(true);
      } finally {
        await store.close();
      }
    });
  });

  describe('history is append-only in the database itself', () => {
    const tables: [table: string, update: string][] = [
      ['executions', 'UPDATE executions SET status = 1 - status'],
      ['runs', "UPDATE runs SET name = 'rewritten'"],
      ['run_ends', "UPDATE run_ends SET status = 'failed'"],
      ['step_versions', "UPDATE step_versions SET manifest = '{}'"],
      ['contexts', "UPDATE contexts SET context = '{}'"],
      ['streams', "UPDATE streams SET id = 'elsewhere'"],
      ['dead_letters', "UPDATE dead_letters SET reason = 'nothing happened'"],
    ];

    it.each(tables)('%s rows can be neither updated nor deleted', async (table, update) => {
      const store = await openStore(dir);
      await populate(store);
      await store.close();
      withRawDb(dir, (db) => {
        const count = (): number => (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
        const before = count();
        expect(before).toBeGreaterThan(0);
        expect(() => db.exec(update)).toThrow(/append-only/);
        expect(() => db.exec(`DELETE FROM ${table}`)).toThrow(/append-only/);
        expect(count()).toBe(before);
      });
    });

    it('blob rows cannot be rewritten', async () => {
      const store = await openStore(dir);
      const hash = await store.putBlob(Buffer.from('immutable'));
      await store.close();
      withRawDb(dir, (db) => {
        expect(() => db.prepare('UPDATE blob_rows SET bytes = ? WHERE hash = ?').run(Buffer.from('mutable!!'), digestBytes(hash))).toThrow(/immutable/);
      });
      const reopened = await openStore(dir);
      try {
        expect(Buffer.from(await reopened.getBlob(hash)).toString()).toBe('immutable');
      } finally {
        await reopened.close();
      }
    });
  });

  describe('opening', () => {
    it('refuses a store written by a newer Provenant (STORE_TOO_NEW) without modifying it', async () => {
      const store = await openStore(dir);
      await populate(store);
      await store.close();
      withRawDb(dir, (db) => {
        db.prepare('INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)').run(99, 'from the future', Date.now());
      });
      const before = snapshot(dir);

      for (const options of [{}, { create: false }]) {
        const err = await rejection(openStore(dir, options));
        expect(err).toBeInstanceOf(ProvenantError);
        expect((err as ProvenantError).code).toBe('STORE_TOO_NEW');
        expect((err as ProvenantError).message).toMatch(/schema version 99/);
        expect((err as ProvenantError).context).toMatchObject({ storeSchema: 99 });
      }
      const after = snapshot(dir);
      expect(after.entries).toEqual(before.entries);
      expect(after.mtimeMs).toBe(before.mtimeMs);
      expect(after.bytes.equals(before.bytes)).toBe(true);
    });

    // The version check reads only: even the journal mode of a newer store is left as it was.
    it('refuses a newer store in rollback-journal mode without modifying it either', async () => {
      const store = await openStore(dir);
      await populate(store);
      await store.close();
      withRawDb(dir, (db) => {
        db.pragma('journal_mode = DELETE');
        db.prepare('INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)').run(99, 'from the future', Date.now());
      });
      const before = snapshot(dir);
      await expect(openStore(dir)).rejects.toMatchObject({ code: 'STORE_TOO_NEW' });
      expect(snapshot(dir).bytes.equals(before.bytes)).toBe(true);
    });

    it('create: false on a missing folder → STORE_NOT_FOUND, and creates nothing', async () => {
      const missing = join(dir, 'no', 'store', 'here');
      const err = await rejection(openStore(missing, { create: false }));
      expect(err).toBeInstanceOf(ProvenantError);
      expect((err as ProvenantError).code).toBe('STORE_NOT_FOUND');
      expect((err as ProvenantError).message).toContain(missing);
      expect(existsSync(join(dir, 'no'))).toBe(false);
    });

    it('create: false on an existing folder without a store → STORE_NOT_FOUND, and creates nothing', async () => {
      const empty = join(dir, 'empty');
      mkdirSync(empty);
      await expect(openStore(empty, { create: false })).rejects.toMatchObject({ code: 'STORE_NOT_FOUND' });
      expect(readdirSync(empty)).toEqual([]);
    });

    it('creates the folder and database by default', async () => {
      const fresh = join(dir, 'a', 'b');
      const store = await openStore(fresh);
      try {
        expect(store).toBeInstanceOf(SqliteStore);
        expect(store.location).toBe(fresh);
        expect(existsSync(join(fresh, 'provenant.db'))).toBe(true);
        expect(await store.stats()).toEqual({ executions: 0, failedExecutions: 0, runs: 0, stepVersions: 0, blobs: 0, blobBytes: 0 });
      } finally {
        await store.close();
      }
    });

    it('an unreachable PostgreSQL URL is refused (STORE_BUSY, retryable) within seconds, without echoing its password', async () => {
      const t0 = Date.now();
      const err = await rejection(openStore('postgres://bob:s3cret-pw@db.example.invalid:5432/prov'));
      expect(Date.now() - t0).toBeLessThan(15_000);
      expect((err as ProvenantError).code).toBe('STORE_BUSY');
      expect((err as ProvenantError).retryable).toBe(true);
      expect((err as Error).message).not.toContain('s3cret-pw');
      expect(JSON.stringify((err as ProvenantError).context)).not.toContain('s3cret-pw');
      expect((err as Error).message).toContain('bob:***@db.example.invalid');
    });
  });

  // Encodings are kept per value, so any number of inputs reads back exactly.
  it('an execution with 40 inputs reads back exactly (input encodings beyond 31 bits)', async () => {
    const store = await openStore(dir);
    try {
      const run = await createRun(store);
      const step = await registerStep(store, 'wide');
      const inputs = Array.from({ length: 40 }, (_, i) => (i === 31 || i === 35 ? new Uint8Array([i]) : { i }));
      const e = buildExecution({ runId: run.id, step, inputs, output: { json: true } });
      await append(store, [e]);
      expect(await store.getExecution(e.record.id)).toEqual(e.record);
    } finally {
      await store.close();
    }
  });

  // Hundreds of inputs are stored (or refused naming the inputs), never misread.
  it('an execution with 300 inputs is stored, or refused with an error about its inputs', async () => {
    const store = await openStore(dir);
    try {
      const run = await createRun(store);
      const step = await registerStep(store, 'very-wide');
      const e = buildExecution({ runId: run.id, step, inputs: Array.from({ length: 300 }, (_, i) => i) });
      let stored = false;
      try {
        await append(store, [e]);
        stored = true;
      } catch (err) {
        expect((err as Error).message).toMatch(/input/i);
      }
      if (stored) expect(await store.getExecution(e.record.id)).toEqual(e.record);
    } finally {
      await store.close();
    }
  });

  it('records keep their record hash as written (a tampered row no longer matches it)', async () => {
    const store = await openStore(dir);
    const { ok } = await populate(store);
    await store.close();
    withRawDb(dir, (db) => {
      db.exec('DROP TRIGGER executions_no_update');
      db.prepare('UPDATE executions SET started = started + 1 WHERE id = ?').run(Buffer.from(ok.record.id.replaceAll('-', ''), 'hex'));
    });
    const reopened = await openStore(dir);
    try {
      const tampered = await reopened.getExecution(ok.record.id);
      expect(tampered?.recordHash).toBe(ok.record.recordHash);
      expect(tampered && executionRecordHash(tampered)).not.toBe(ok.record.recordHash);
    } finally {
      await reopened.close();
    }
  });
});
