/**
 * Tamper evidence on a PostgreSQL store, as on the embedded one: the Merkle log is appended in the
 * same transactions as the records, every COMPLETE checkpoint gets a signed head, proofs check
 * offline with the exported public key, and `verifyStore` names changes made underneath by someone
 * with the database's superuser rights (append-only triggers disabled): a changed field, a value
 * swapped for another stored one, a deleted record, a forged insert, a changed checkpoint, a
 * changed object version, a changed blob, a forged head, and a log cut back behind a saved head.
 *
 * Each change is made, verified, and undone; the store must verify intact again after each undo.
 */
import { createPublicKey } from 'node:crypto';
import { join } from 'node:path';
import { uuidv7 } from 'uuidv7';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startRun } from '../../src/capture/run.js';
import { loadSigningKey, type SignedTreeHead } from '../../src/merkle/head.js';
import { proveConsistency, proveInclusion, verifyProofFile } from '../../src/merkle/proof.js';
import { verifyStore, type Finding } from '../../src/merkle/verify.js';
import { deriveObject, putObject } from '../../src/objects/versions.js';
import { runPipeline } from '../../src/pipeline/execute.js';
import { readRecords } from '../../src/sources/files.js';
import { vegaDatasetPath } from '../../src/sources/datasets.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { appendRecords, LogSource } from '../../src/stream/log.js';
import { freshPgUrl, rawPg } from '../helpers/pg.js';
import { FLIGHT_STEPS, writeProject } from '../helpers/project.js';
import { POSTGRES, describeWithService, postgresAvailable } from '../helpers/services.js';
import { makeTempDir } from '../helpers/temp.js';

const N = 600;
const available = await postgresAvailable();

describeWithService(POSTGRES, available, 'the Merkle log on PostgreSQL', () => {
  const project = makeTempDir();
  let url: string;
  let schema: string;
  let store: PostgresStore;
  let versionId: string;

  beforeAll(async () => {
    writeProject(project, {
      ...FLIGHT_STEPS,
      'steps/enrich.ts': `export default (c: { name: string }, o: { total: number }) => ({ ...c, lifetimeValue: o.total });`,
    });
    url = freshPgUrl('tamper');
    schema = new URL(url).searchParams.get('schema') as string;
    store = await PostgresStore.open(url);
    const flights: unknown[] = [];
    for await (const r of readRecords(vegaDatasetPath('flights-2k.json'), { limit: N })) flights.push(r.value);
    await appendRecords(store, 'flights', flights);
    const pipeline = {
      name: 'tamper',
      steps: [
        { id: 'parse', module: './steps/parse.ts' },
        { id: 'classify', module: './steps/classify.ts', params: { lateAfter: 15 } },
      ],
    };
    await runPipeline(store, pipeline, new LogSource(store, 'flights'), { baseDir: project, to: N / 2, checkpoint: { everyRecords: 100 } });
    await putObject(store, 'customers/7', { name: 'Grace' });
    await putObject(store, 'orders/7', { total: 250 });
    const run = await startRun(store, { name: 'enrich' });
    const enrich = await run.step('enrich', { module: join(project, 'steps/enrich.ts') });
    versionId = (await deriveObject(run, enrich, { inputs: ['customers/7', 'orders/7'], output: 'customers/7/enriched' })).version.versionId;
    await run.finish();
    // A later checkpointed run signs heads that cover the versions.
    await runPipeline(store, pipeline, new LogSource(store, 'flights'), { baseDir: project, from: N / 2, checkpoint: { everyRecords: 100 } });
  }, 180_000);

  afterAll(async () => {
    await store.close();
  });

  /** Run SQL on the store's schema with the append-only triggers off (committed). */
  function underneath(sql: string, values: unknown[] = []): Promise<number> {
    return rawPg(async (c) => {
      await c.query(`SET search_path TO ${schema}`);
      await c.query('BEGIN');
      const table = /(?:UPDATE|INTO|FROM)\s+(\w+)/i.exec(sql)?.[1] as string;
      await c.query(`ALTER TABLE ${table} DISABLE TRIGGER USER`);
      const r = await c.query(sql, values);
      await c.query(`ALTER TABLE ${table} ENABLE TRIGGER USER`);
      await c.query('COMMIT');
      return r.rowCount ?? 0;
    });
  }

  async function one<T extends object>(sql: string, values: unknown[] = []): Promise<T> {
    return rawPg(async (c) => {
      await c.query(`SET search_path TO ${schema}`);
      return (await c.query(sql, values)).rows[0] as T;
    });
  }

  async function findings(head?: SignedTreeHead): Promise<readonly Finding[]> {
    return (await verifyStore(store, head === undefined ? {} : { head })).findings;
  }

  it('verifies intact: every record is a leaf, every COMPLETE checkpoint has a signed head', async () => {
    const report = await verifyStore(store);
    expect(report.findings).toEqual([]);
    expect(report.executions).toBe(2 * N + 1);
    expect(report.objectVersions).toBe(3);
    expect(report.treeSize).toBe(report.executions + report.checkpoints + report.objectVersions);
    expect(report.heads).toBe(report.checkpoints);
    expect(report.latestHead?.treeSize).toBe(report.treeSize);
  });

  it('proves an execution, a checkpoint and an object version, and consistency, offline with the public key', async () => {
    const key = createPublicKey(loadSigningKey(store.keyHome)!);
    const execution = (await store.listExecutions({ limit: 7 }))[6]!;
    const checkpoint = (await store.listCheckpoints({ streamId: 'flights' }))[2]!;
    for (const id of [execution.id, checkpoint.checkpointId, versionId]) {
      const proof = await proveInclusion(store, id);
      expect(verifyProofFile(proof, key), id).toMatchObject({ valid: true });
      expect(verifyProofFile(proof, key, { ...(proof.record.canonical as object), forged: true })).toMatchObject({ valid: false });
    }
    const heads = (await verifyStore(store)).latestHead!;
    const consistency = await proveConsistency(store, 50, heads.treeSize);
    expect(verifyProofFile(consistency, key)).toMatchObject({ valid: true });
  });

  it('names a changed field, a swapped value, a deleted and a forged execution; intact again once undone', async () => {
    const ex = await one<{ id: string; started: number; output: Buffer; record_hash: Buffer }>('SELECT id::text AS id, started, output, record_hash FROM executions ORDER BY id OFFSET 100 LIMIT 1');

    await underneath('UPDATE executions SET started = started # 1024 WHERE id = $1', [ex.id]);
    expect(await findings()).toEqual([expect.objectContaining({ kind: 'record-changed', record: { type: 'execution', id: ex.id }, field: 'startedUs', recorded: Number(ex.started) })]);
    await underneath('UPDATE executions SET started = $2 WHERE id = $1', [ex.id, ex.started]);
    expect(await findings()).toEqual([]);

    const other = await one<{ output: Buffer }>('SELECT output FROM executions WHERE output <> $1 ORDER BY id DESC LIMIT 1', [ex.output]);
    await underneath('UPDATE executions SET output = $2 WHERE id = $1', [ex.id, other.output]);
    expect(await findings()).toEqual([expect.objectContaining({ kind: 'record-changed', record: { type: 'execution', id: ex.id }, field: 'outputHash' })]);
    await underneath('UPDATE executions SET output = $2 WHERE id = $1', [ex.id, ex.output]);

    // Deleted, then put back.
    const columns = ['id', 'run', 'step_version', 'inputs', 'output', 'params', 'context', 'started', 'duration', 'status', 'error', 'nondeterminism', 'encodings', 'stream', '"offset"', 'record_hash'];
    const row = await one<Record<string, unknown>>(`SELECT ${columns.join(', ')} FROM executions WHERE id = $1`, [ex.id]);
    const values = columns.map((c) => row[c.replaceAll('"', '')]);
    const insert = `INSERT INTO executions (${columns.join(', ')}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')})`;
    await underneath('DELETE FROM executions WHERE id = $1', [ex.id]);
    // A record gone from a logged range: the range is named with its count, and every head since no longer matches.
    const gone = await findings();
    expect(gone[0]).toMatchObject({ kind: 'record-deleted', message: expect.stringMatching(/^1 record of run \S+'s executions \S+ was deleted \(the log has \d+, the store \d+\)$/) });
    expect(new Set(gone.slice(1).map((f) => f.kind))).toEqual(new Set(['head-mismatch']));
    await underneath(insert, values);
    expect(await findings()).toEqual([]);

    // A forged execution (a copy under a new id) is in no part of the log.
    const forgedId = uuidv7();
    await underneath(insert, [forgedId, ...values.slice(1)]);
    // … and, as its fields are another record's, named as a copy of that one.
    const forged = await findings();
    expect(forged).toHaveLength(2);
    expect(forged).toContainEqual(expect.objectContaining({ kind: 'record-inserted', record: { type: 'execution', id: forgedId } }));
    expect(forged).toContainEqual(expect.objectContaining({ kind: 'record-changed', record: { type: 'execution', id: forgedId }, field: 'id', recorded: ex.id }));
    await underneath('DELETE FROM executions WHERE id = $1', [forgedId]);
    expect(await findings()).toEqual([]);
  });

  it('names a changed checkpoint, object version and blob, and a forged head', async () => {
    const cp = await one<{ checkpoint: number; records: number; id: string }>(
      "SELECT e.checkpoint, e.records, c.id::text AS id FROM checkpoint_ends e JOIN checkpoints c ON c.seq = e.checkpoint WHERE e.status = 'COMPLETE' ORDER BY e.checkpoint LIMIT 1",
    );
    await underneath('UPDATE checkpoint_ends SET records = records + 1 WHERE checkpoint = $1', [cp.checkpoint]);
    expect((await findings()).map((f) => [f.kind, f.record?.id])).toContainEqual(['record-changed', cp.id]);
    await underneath('UPDATE checkpoint_ends SET records = $2 WHERE checkpoint = $1', [cp.checkpoint, cp.records]);

    await underneath("UPDATE object_versions SET content_type = 'text/plain' WHERE id = $1", [versionId]);
    expect(await findings()).toContainEqual(expect.objectContaining({ kind: 'record-changed', record: { type: 'object version', id: versionId } }));
    await underneath("UPDATE object_versions SET content_type = 'application/json' WHERE id = $1", [versionId]);
    expect(await findings()).toEqual([]);

    const blob = await one<{ hash: Buffer; bytes: Buffer }>('SELECT hash, bytes FROM blobs WHERE location = 0 AND size > 20 ORDER BY hash LIMIT 1');
    const changed = Buffer.from(blob.bytes);
    changed[5] = (changed[5] as number) ^ 1;
    await underneath('UPDATE blobs SET bytes = $2 WHERE hash = $1', [blob.hash, changed]);
    expect(await findings()).toContainEqual(expect.objectContaining({ kind: expect.stringMatching(/^(blob|artifact)-corrupt$/), hash: `sha256:${blob.hash.toString('hex')}` }));
    await underneath('UPDATE blobs SET bytes = $2 WHERE hash = $1', [blob.hash, blob.bytes]);

    const head = await one<{ seq: number; root: Buffer }>('SELECT seq, root FROM tree_heads ORDER BY seq LIMIT 1');
    const forged = Buffer.from(head.root);
    forged[0] = (forged[0] as number) ^ 0xff;
    await underneath('UPDATE tree_heads SET root = $2 WHERE seq = $1', [head.seq, forged]);
    const kinds = (await findings()).map((f) => f.kind).sort();
    expect(kinds).toEqual(['head-invalid', 'head-mismatch']);
    await underneath('UPDATE tree_heads SET root = $2 WHERE seq = $1', [head.seq, head.root]);
    expect(await findings()).toEqual([]);
  });

  it('migration 7 puts the records of an older store into a new log; the next COMPLETE checkpoint signs a head over them', async () => {
    const older = freshPgUrl('backfill');
    const olderSchema = new URL(older).searchParams.get('schema') as string;
    const s1 = await PostgresStore.open(older);
    const flights: unknown[] = [];
    for await (const r of readRecords(vegaDatasetPath('flights-2k.json'), { limit: 200 })) flights.push(r.value);
    await appendRecords(s1, 'flights', flights);
    await runPipeline(s1, { name: 'old', steps: [{ id: 'parse', module: './steps/parse.ts' }] }, new LogSource(s1, 'flights'), { baseDir: project, to: 100, checkpoint: { everyRecords: 50 } });
    await s1.close();
    // As the store was before migration 7: no log tables (and none of the later migrations).
    await rawPg(async (c) => {
      await c.query(`SET search_path TO ${olderSchema}`);
      await c.query('DROP TABLE tree_heads, signing_keys, merkle_segments');
      await c.query('DELETE FROM schema_migrations WHERE version >= 7');
    });
    const s2 = await PostgresStore.open(older);
    try {
      const migrated = await verifyStore(s2);
      expect(migrated.findings).toEqual([]);
      expect(migrated).toMatchObject({ executions: 100, checkpoints: 2, heads: 0, treeSize: 102 });
      await runPipeline(s2, { name: 'old', steps: [{ id: 'parse', module: './steps/parse.ts' }] }, new LogSource(s2, 'flights'), { baseDir: project, from: 100, to: 150, checkpoint: { everyRecords: 50 } });
      const later = await verifyStore(s2);
      expect(later.findings).toEqual([]);
      expect(later).toMatchObject({ executions: 150, heads: 1, treeSize: 153 });
    } finally {
      await s2.close();
    }
  });

  // Last: it leaves the store cut back.
  it('catches a log cut back behind a head saved elsewhere', async () => {
    const saved = (await verifyStore(store)).latestHead!;
    // More history, then the newest head and segments removed (as restoring an older backup would).
    await runPipeline(store, { name: 'more', steps: [{ id: 'parse', module: './steps/parse.ts' }] }, new LogSource(store, 'flights'), { baseDir: project, to: 50, checkpoint: { everyRecords: 50 } });
    expect(await findings(saved)).toEqual([]);
    const last = await one<{ tree_size: number }>('SELECT tree_size FROM tree_heads ORDER BY seq DESC LIMIT 1');
    expect(Number(last.tree_size)).toBeGreaterThan(saved.treeSize);
    await underneath('DELETE FROM tree_heads WHERE tree_size >= $1', [saved.treeSize]);
    await underneath('DELETE FROM merkle_segments WHERE tree_size > $1', [saved.treeSize - 10]);
    const kinds = new Set((await findings(saved)).map((f) => f.kind));
    expect(kinds.has('rolled-back')).toBe(true);
  });
});
