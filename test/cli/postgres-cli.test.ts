/**
 * PostgreSQL from the command line, as users run it: a checkpointed pipeline run straight into
 * PostgreSQL (`--store postgres://…` and PROVENANT_STORE) and a verified replay; `provenant
 * migrate`; `provenant copy` from an embedded store to PostgreSQL and back, each copy replayed with
 * --verify, re-running the copy copies nothing, and the record hashes stay the same end to end.
 */
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { openStore, type CheckpointRecord, type ExecutionRecord, type ReplayResult } from '../../src/index.js';
import type { CopyReport } from '../../src/store/copy.js';
import { cli, cliJson } from '../helpers/cli.js';
import { ensureDist } from '../helpers/dist.js';
import { REPO_ROOT } from '../helpers/paths.js';
import { freshPgUrl } from '../helpers/pg.js';
import { POSTGRES, describeWithService, postgresAvailable } from '../helpers/services.js';
import { makeTempDir } from '../helpers/temp.js';

const PIPELINE = 'examples/flights/pipeline.ts';
const FLIGHTS = join(REPO_ROOT, 'node_modules', 'vega-datasets', 'data', 'flights-20k.json');
const available = await postgresAvailable();

beforeAll(async () => {
  await ensureDist();
});

/** Every execution of a store, read through the library. */
async function allExecutions(location: string): Promise<ExecutionRecord[]> {
  const store = await openStore(location, { create: false });
  try {
    return await store.listExecutions({ limit: 1_000_000 });
  } finally {
    await store.close();
  }
}

describeWithService(POSTGRES, available, 'PostgreSQL from the CLI', () => {
  it('migrate creates the store; a checkpointed run into PostgreSQL replays with --verify', async () => {
    const pg = freshPgUrl('cli');
    const m = await cliJson<{ from: number; to: number; backend: string }>(['migrate', '--store', pg, '--json']);
    expect(m).toMatchObject({ backend: 'postgres', from: 0 });
    expect((await cliJson<{ from: number; to: number }>(['migrate', '--store', pg, '--json'])).from).toBe(m.to);

    // The store given by the environment variable, as a team would set it.
    const env = { PROVENANT_STORE: pg };
    await cliJson(['stream', 'append', 'flights', FLIGHTS, '--limit', '600', '--json'], env);
    const run = await cliJson<{ checkpoints: number; records: number; executions: number }>(
      ['run', PIPELINE, '--stream', 'flights', '--checkpoint-every', '200', '--quiet', '--json'],
      env,
    );
    expect(run).toMatchObject({ checkpoints: 3, records: 600 });
    const checkpoints = await cliJson<CheckpointRecord[]>(['checkpoints', '--stream', 'flights', '--json'], env);
    expect(checkpoints.map((c) => [c.startOffset, c.end?.endOffset, c.status])).toEqual([
      [0, 200, 'COMPLETE'],
      [200, 400, 'COMPLETE'],
      [400, 600, 'COMPLETE'],
    ]);
    const r = await cliJson<ReplayResult>(['replay', '--stream', 'flights', '--verify', '--store', pg, '--json']);
    expect(r).toMatchObject({ checkpoints: 3, records: 600, diverged: 0 });
    expect(r.matched).toBe(r.executions);
  }, 180_000);

  it('copy: embedded → PostgreSQL → embedded keeps every record hash; each copy replays with --verify; copying again copies nothing', async () => {
    const dir = makeTempDir();
    const local = join(dir, 'local');
    const back = join(dir, 'back');
    const pg = freshPgUrl('copy');
    await cliJson(['stream', 'append', 'flights', FLIGHTS, '--limit', '500', '--store', local, '--json']);
    await cliJson(['run', PIPELINE, '--stream', 'flights', '--checkpoint-every', '100', '--quiet', '--store', local, '--json']);
    // Objects too: two originals and a version derived from both (a join), pinned.
    const ex = (f: string): string => join(REPO_ROOT, 'examples', 'objects', f);
    await cliJson(['put', 'customers/42', ex('customer-42.json'), '--store', local, '--json']);
    await cliJson(['put', 'orders/42', ex('orders-42.json'), '--store', local, '--json']);
    await cliJson(['derive', 'enrich', ex('enrich.ts'), '--input', 'customers/42', '--input', 'orders/42', '--output', 'customers/42/enriched', '--store', local, '--json']);
    await cliJson(['materialize', 'customers/42/enriched', '--store', local, '--json']);
    await cliJson(['policy', 'set', 'every:2', '--store', local, '--json']);
    const original = await allExecutions(local);
    expect(original.length).toBeGreaterThan(1000);

    const there = await cliJson<CopyReport>(['copy', '--from', local, '--to', pg, '--json']);
    expect(there.verification).toMatchObject({ ok: true, executions: original.length, checkpoints: 5, streamEntries: 500, objectVersions: 3 });
    expect(there.counts.materializationSettings).toEqual({ source: 1, copied: 1 });
    expect(there.counts.executions).toEqual({ source: original.length, copied: original.length });
    expect(there.counts.checkpoints).toEqual({ source: 5, copied: 5 });
    expect(there.verification.blobs).toBe(there.counts.blobs.source);

    const again = await cliJson<CopyReport>(['copy', '--from', local, '--to', pg, '--json']);
    expect(Object.values(again.counts).map((c) => c.copied)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(again.verification.ok).toBe(true);

    const home = await cliJson<CopyReport>(['copy', '--from', pg, '--to', back, '--json']);
    expect(home.verification).toMatchObject({ ok: true, executions: original.length, objectVersions: 3 });
    // The derived object reads the same, as of now, from the copy of the copy; its lineage is there.
    for (const store of [pg, back]) {
      const read = await cliJson<{ content: unknown; contentHash: string }>(['asof', 'customers/42/enriched', 'now', '--store', store, '--json']);
      expect(read.content).toEqual({ id: 42, lifetimeValue: 115, name: 'Ada Lovelace', orders: 2, tier: 'gold' });
      const lineage = await cli(['lineage', 'customers/42/enriched', '--store', store]);
      expect(lineage.stdout).toMatch(/orders\/42 v1 .*\(original\)/);
    }

    // Same records (ids, times, record hashes) on all three stores.
    expect(await allExecutions(pg)).toEqual(original);
    expect(await allExecutions(back)).toEqual(original);
    expect(await cliJson(['checkpoints', '--stream', 'flights', '--store', back, '--json'])).toEqual(
      await cliJson(['checkpoints', '--stream', 'flights', '--store', local, '--json']),
    );
    for (const store of [pg, back]) {
      const r = await cliJson<ReplayResult>(['replay', '--stream', 'flights', '--verify', '--store', store, '--json']);
      expect(r).toMatchObject({ checkpoints: 5, records: 500, diverged: 0 });
    }
    // Each copy keeps a Merkle log of its own, built as the records are written: each verifies intact.
    for (const store of [local, pg, back]) {
      const v = await cliJson<{ intact: boolean; executions: number; objectVersions: number; heads: number; findings: unknown[] }>(['verify', '--store', store, '--json']);
      expect(v.findings, store).toEqual([]);
      expect(v).toMatchObject({ intact: true, executions: original.length, objectVersions: 3 });
      expect(v.heads).toBeGreaterThanOrEqual(5);
    }
    const human = await cli(['copy', '--from', local, '--to', back]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('all equal');
  }, 300_000);
});
