/**
 * The PostgreSQL store: the contract every backend passes (run unchanged, each test on a fresh
 * schema), and what this backend adds — append-only history enforced by triggers, chunked large
 * blobs verified on read, migrations, and several processes writing at once.
 */
import { uuidv7 } from 'uuidv7';
import { describe, expect, it } from 'vitest';
import { ProvenantError, encodeValue, openStore, type ContentHash, type Store } from '../../src/index.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { migrateStore } from '../../src/store/open.js';
import { PG_MIGRATIONS } from '../../src/store/postgres/migrations.js';
import { freshPgUrl, rawPg } from '../helpers/pg.js';
import { rejection } from '../helpers/rejection.js';
import { POSTGRES, describeWithService, postgresAvailable } from '../helpers/services.js';
import { append, buildExecution, createRun, describeStoreContract, registerStep, tick } from './contract.js';

const available = await postgresAvailable();

describeWithService(POSTGRES, available, 'PostgresStore', () => {
  describeStoreContract('PostgresStore', async () => {
    const store = await openStore(freshPgUrl());
    return { store, cleanup: async () => store.close() };
  });

  async function populate(store: Store) {
    const run = await createRun(store);
    const step = await registerStep(store, 'step', 'the code', run.id);
    const ok = buildExecution({ runId: run.id, step, output: { fine: true }, streamId: 'file:in.ndjson', offset: 0 });
    const failed = buildExecution({ runId: run.id, step, error: { name: 'Error', message: 'bad' }, streamId: 'file:in.ndjson', offset: 1 });
    await append(store, [ok, failed], [{ executionId: failed.record.id, reason: 'bad' }]);
    const v = encodeValue({ n: 1 });
    await store.appendToStream('in', [v]);
    const pipeline = encodeValue({ steps: ['step'] });
    const checkpointId = uuidv7();
    await store.applyCheckpoint(
      { begin: { checkpointId, runId: run.id, streamId: 'in', previousId: null, startOffset: 0, startedUs: tick(), pipelineHash: pipeline.hash } },
      [pipeline],
    );
    await store.applyCheckpoint({
      end: {
        checkpointId, status: 'COMPLETE', endOffset: 1, endedUs: tick(), records: 1, executions: 2, failed: 1, deadLettered: 1,
        firstExecutionId: ok.record.id, lastExecutionId: failed.record.id, stateHash: null, sinkPosition: null, inputSliceHash: null, reason: null,
      },
    });
    await store.endRun({ runId: run.id, endedUs: tick(), status: 'completed', summary: {} });
    return { run, step, ok, failed };
  }

  describe('what only this backend does', () => {
    it('keeps a stream id with quotes, backslashes, commas and braces exactly, through the batch path', async () => {
      const store = await openStore(freshPgUrl());
      try {
        const run = await createRun(store);
        const step = await registerStep(store, 'step', 'the code', run.id);
        const odd = 'in "quoted" \\back\\slash, {braced} NULL';
        const e = buildExecution({ runId: run.id, step, output: { ok: 1 }, streamId: odd, offset: 7 });
        const plain = buildExecution({ runId: run.id, step, output: { ok: 2 }, streamId: null, offset: null });
        await append(store, [e, plain]);
        expect(await store.getExecution(e.record.id)).toEqual(e.record);
        expect((await store.getExecution(plain.record.id))?.streamId).toBeNull();
      } finally {
        await store.close();
      }
    });

    it('keeps everything across close and reopen, and a second process sees it at once', async () => {
      const url = freshPgUrl();
      const a = await openStore(url);
      const b = await openStore(url);
      const { run, ok } = await populate(a);
      expect(await b.getExecution(ok.record.id)).toEqual(ok.record);
      await a.close();
      await b.close();
      const c = await openStore(url, { create: false });
      expect((await c.getRun(run.id))?.end?.status).toBe('completed');
      expect(await c.countExecutions()).toBe(2);
      await c.close();
    });

    it.each(['executions', 'runs', 'run_ends', 'dead_letters', 'step_versions', 'checkpoints', 'checkpoint_ends', 'stream_log', 'contexts'])(
      'history is append-only in the database itself: UPDATE, DELETE and TRUNCATE of %s are refused',
      async (table) => {
        const url = freshPgUrl();
        const store = await openStore(url);
        await populate(store);
        await store.close();
        const schema = new URL(url).searchParams.get('schema') as string;
        await rawPg(async (c) => {
          const before = await c.query(`SELECT count(*)::int AS n FROM ${schema}.${table}`);
          expect(before.rows[0].n).toBeGreaterThan(0);
          // Set a column to itself: any UPDATE at all is refused.
          const column = (await c.query(`SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 LIMIT 1`, [schema, table])).rows[0].column_name as string;
          for (const sql of [`UPDATE ${schema}.${table} SET ${column} = ${column}`, `DELETE FROM ${schema}.${table}`, `TRUNCATE ${schema}.${table} CASCADE`]) {
            const err = await rejection(c.query(sql));
            expect(String((err as Error).message), sql).toContain('append-only');
          }
          const after = await c.query(`SELECT count(*)::int AS n FROM ${schema}.${table}`);
          expect(after.rows[0].n).toBe(before.rows[0].n);
        });
      },
    );

    it('a large blob is kept in chunks, read back verified; altered chunk bytes are refused', async () => {
      const url = freshPgUrl();
      const store = await openStore(url);
      const bytes = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
      const hash = await store.putBlob(bytes);
      const schema = new URL(url).searchParams.get('schema') as string;
      const chunks = await rawPg((c) => c.query(`SELECT count(*)::int AS n FROM ${schema}.blob_chunks`));
      expect(chunks.rows[0].n).toBe(13);
      expect(Buffer.from(await store.getBlob(hash)).equals(bytes)).toBe(true);
      // Tamper by hand (blob_chunks refuses UPDATE: insert a forged copy under a trigger-free path).
      await rawPg(async (c) => {
        await c.query(`ALTER TABLE ${schema}.blob_chunks DISABLE TRIGGER blob_chunks_immutable`);
        await c.query(`UPDATE ${schema}.blob_chunks SET bytes = '\\x00' || substr(bytes, 2) WHERE n = 5`);
      });
      const err = await rejection(store.getBlob(hash));
      expect((err as ProvenantError).code).toBe('BLOB_CORRUPT');
      const stream = await store.openBlobStream(hash);
      const streamErr = await new Promise((resolve) => {
        stream.on('data', () => undefined);
        stream.on('error', resolve);
        stream.on('end', () => resolve(undefined));
      });
      expect((streamErr as ProvenantError).code).toBe('BLOB_CORRUPT');
      // Storing the right bytes again repairs the copy.
      await store.putBlob(bytes);
      expect(Buffer.from(await store.getBlob(hash)).equals(bytes)).toBe(true);
      await store.close();
    });

    it('large values are compressed with lz4 (when the server has it) and read back exactly, inline and in chunks', async () => {
      const url = freshPgUrl();
      const store = await openStore(url);
      const schema = new URL(url).searchParams.get('schema') as string;
      // A server built without lz4 refuses a column that asks for it; the store then keeps pglz.
      const lz4 = await rawPg((c) => c.query('CREATE TEMP TABLE lz4_probe (b bytea COMPRESSION lz4)').then(() => true, () => false));
      // Compressible JSON, as a pipeline's aggregates are: one inline (under 256 KiB), one in chunks.
      const rows = (n: number) => encodeValue(Array.from({ length: n }, (_, i) => ({ route: `R${i % 97}`, flights: i, delay: (i * 7) % 60 })));
      const inline = rows(2_000);
      const chunked = rows(30_000);
      expect(inline.bytes.byteLength).toBeLessThan(256 * 1024);
      expect(chunked.bytes.byteLength).toBeGreaterThan(256 * 1024);
      const hashes = [await store.putBlob(inline.bytes), await store.putBlob(chunked.bytes)];
      const methods = await rawPg((c) =>
        c.query<{ m: string | null }>(
          `SELECT pg_column_compression(bytes) AS m FROM ${schema}.blobs WHERE bytes IS NOT NULL AND length(bytes) > 4096
           UNION ALL SELECT pg_column_compression(bytes) FROM ${schema}.blob_chunks`,
        ),
      );
      expect(methods.rows.length).toBeGreaterThan(1);
      for (const r of methods.rows) expect(r.m).toBe(lz4 ? 'lz4' : 'pglz');
      expect(Buffer.from(await store.getBlob(hashes[0] as ContentHash)).equals(inline.bytes)).toBe(true);
      expect(Buffer.from(await store.getBlob(hashes[1] as ContentHash)).equals(chunked.bytes)).toBe(true);
      await store.close();
    });

    it('provenant migrate: a new store goes from 0 to the newest version, once; a newer store is refused untouched', async () => {
      const url = freshPgUrl();
      expect(await migrateStore(url)).toMatchObject({ backend: 'postgres', from: 0 });
      const again = await migrateStore(url);
      expect(again.from).toBe(again.to);
      const schema = new URL(url).searchParams.get('schema') as string;
      await rawPg((c) => c.query(`INSERT INTO ${schema}.schema_migrations VALUES (999, 'future', 0)`));
      const err = await rejection(openStore(url));
      expect((err as ProvenantError).code).toBe('STORE_TOO_NEW');
    });

    it('opening with create: false where there is no store fails with STORE_NOT_FOUND', async () => {
      const err = await rejection(PostgresStore.open(freshPgUrl(), { create: false }));
      expect((err as ProvenantError).code).toBe('STORE_NOT_FOUND');
    });

    it('several stores opening a new schema at once migrate it once', async () => {
      const url = freshPgUrl();
      const stores = await Promise.all([1, 2, 3, 4].map(() => openStore(url)));
      const schema = new URL(url).searchParams.get('schema') as string;
      const rows = await rawPg((c) => c.query(`SELECT version FROM ${schema}.schema_migrations ORDER BY version`));
      expect(rows.rows.map((r) => r.version)).toEqual(PG_MIGRATIONS.map((m) => m.version));
      await Promise.all(stores.map((s) => s.close()));
    });
  });
});
