/**
 * Object versions are leaves of the Merkle log too (committed with their derivations): a store of
 * ingested and derived objects verifies intact, an object version has an inclusion proof against
 * the signed head of a later checkpoint, and a version edited underneath is named by verify.
 */
import Database from 'better-sqlite3';
import { revertToBlobsTable } from '../helpers/raw-db.js';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startRun } from '../../src/capture/run.js';
import { keyId } from '../../src/merkle/head.js';
import { proveInclusion, verifyProofFile } from '../../src/merkle/proof.js';
import { verifyStore } from '../../src/merkle/verify.js';
import { deriveObject, putObject } from '../../src/objects/versions.js';
import { runPipeline } from '../../src/pipeline/execute.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { appendRecords, LogSource } from '../../src/stream/log.js';
import { createPublicKey, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { signingKeyPath } from '../../src/merkle/head.js';
import { writeProject } from '../helpers/project.js';
import { makeTempDir } from '../helpers/temp.js';

describe('object versions in the Merkle log', () => {
  it('verify, prove and detect a changed version', async () => {
    const project = makeTempDir();
    writeProject(project, {
      'steps/enrich.ts': `export default (c: { name: string }, o: { total: number }) => ({ ...c, lifetimeValue: o.total });`,
      'steps/double.ts': `export default (r: { n: number }) => ({ n: r.n * 2 });`,
    });
    const dir = join(project, 'store');
    const store = SqliteStore.open(dir, { writerThread: false });
    await putObject(store, 'customers/7', { name: 'Grace' });
    await putObject(store, 'orders/7', { total: 250 });
    const run = await startRun(store, { name: 'enrich' });
    const enrich = await run.step('enrich', { module: join(project, 'steps/enrich.ts') });
    const made = await deriveObject(run, enrich, { inputs: ['customers/7', 'orders/7'], output: 'customers/7/enriched' });
    await run.finish();
    // A checkpointed run afterwards signs a head that covers the versions.
    await appendRecords(store, 'nums', [{ n: 1 }, { n: 2 }, { n: 3 }]);
    await runPipeline(store, { name: 'double', steps: [{ id: 'double', module: './steps/double.ts' }] }, new LogSource(store, 'nums'), { baseDir: project, checkpoint: { everyRecords: 3 } });
    const report = await verifyStore(store);
    expect(report.findings).toEqual([]);
    expect(report.objectVersions).toBe(3);
    expect(report.treeSize).toBe(3 + 1 + 3 + 1); // versions, derivation, pipeline executions, checkpoint

    const proof = await proveInclusion(store, made.version.versionId);
    expect(proof.record.type).toBe('object version');
    const pub = createPublicKey(createPrivateKey(readFileSync(signingKeyPath(dir))));
    expect(proof.head.keyId).toBe(keyId(pub));
    expect(verifyProofFile(proof, pub)).toMatchObject({ valid: true });
    expect(verifyProofFile(proof, pub, { ...(proof.record.canonical as object), ordinal: 2 })).toMatchObject({ valid: false });
    await store.close();

    const db = new Database(join(dir, 'provenant.db'));
    db.exec('DROP TRIGGER object_versions_no_update');
    db.prepare("UPDATE object_versions SET content_type = 'text/plain' WHERE id = ?").run(Buffer.from(made.version.versionId.replaceAll('-', ''), 'hex'));
    db.close();
    const again = SqliteStore.open(dir, { writerThread: false });
    const bad = await verifyStore(again);
    await again.close();
    expect(bad.findings.some((f) => f.kind === 'record-changed' && f.record?.type === 'object version' && f.record.id === made.version.versionId)).toBe(true);
  });
});

describe('a store made before the Merkle log', () => {
  it('migration 5 puts its existing records into the log: it verifies, and the next COMPLETE checkpoint signs a head over them', async () => {
    const project = makeTempDir();
    writeProject(project, { 'steps/double.ts': `export default (r: { n: number }) => ({ n: r.n * 2 });` });
    const dir = join(project, 'store');
    const pipeline = { name: 'double', steps: [{ id: 'double', module: './steps/double.ts' }] };
    let store = SqliteStore.open(dir, { writerThread: false });
    await appendRecords(store, 'nums', Array.from({ length: 10 }, (_, n) => ({ n })));
    await runPipeline(store, pipeline, new LogSource(store, 'nums'), { baseDir: project, to: 6, checkpoint: { everyRecords: 3 } });
    await putObject(store, 'a/1', { x: 1 });
    await store.close();
    // Make it a version-4 store, as an older Provenant left it (the tables of migrations 5 and later gone).
    const db = new Database(join(dir, 'provenant.db'));
    revertToBlobsTable(db);
    db.exec('DROP TABLE merkle_segments; DROP TABLE tree_heads; DROP TABLE signing_keys; DROP TABLE access_log; DROP TABLE token_revocations; DROP TABLE tokens; DROP TABLE replay_job_snapshots; DELETE FROM schema_migrations WHERE version >= 5');
    db.close();
    store = SqliteStore.open(dir, { writerThread: false });
    const migrated = await verifyStore(store);
    expect(migrated.findings).toEqual([]);
    expect(migrated.treeSize).toBe(6 + 2 + 1);
    expect(migrated.heads).toBe(0);
    await runPipeline(store, pipeline, new LogSource(store, 'nums'), { baseDir: project, from: 6, checkpoint: { everyRecords: 4 } });
    const later = await verifyStore(store);
    expect(later.findings).toEqual([]);
    expect(later.heads).toBe(1);
    expect(later.latestHead?.treeSize).toBe(6 + 2 + 1 + 4 + 1);
    await store.close();
  });
});
