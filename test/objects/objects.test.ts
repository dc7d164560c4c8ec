/**
 * Objects, the provenance DAG and as-of recomputation against a real SQLite store and real step
 * artifacts: what a user relies on when they ask for an object as it was.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRun, type Run } from '../../src/capture/run.js';
import { ProvenantError } from '../../src/errors.js';
import { sha256 } from '../../src/hash/canonical.js';
import { getAsOf } from '../../src/objects/asof.js';
import { lineage, renderLineageTree } from '../../src/objects/lineage.js';
import { gc, materialize, setPolicy } from '../../src/objects/materialize.js';
import { parseTime, validateObjectId } from '../../src/objects/refs.js';
import { deriveObject, listObjectVersions, putObject, type ObjectVersion } from '../../src/objects/versions.js';
import type { LoadedStep } from '../../src/step/runtime.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/store.js';
import { rejection } from '../helpers/rejection.js';
import { writeFiles, writeProject } from '../helpers/project.js';
import { makeTempDir } from '../helpers/temp.js';

const project = makeTempDir();

beforeAll(() => {
  writeProject(project, {
    'steps/add.ts': `
      export default function add(input: unknown, params: { by?: number }) {
        const inputs = Array.isArray(input) ? input : [input];
        let total = 0;
        for (const v of inputs) total += (v as { n: number }).n;
        return { n: total + (params.by ?? 1) };
      }`,
    'steps/enrich.ts': `
      export default function enrich(input: [{ name: string }, { total: number }]) {
        const [customer, orders] = input;
        return { ...customer, lifetimeValue: orders.total, tier: orders.total > 100 ? 'gold' : 'standard' };
      }`,
    'steps/upper.ts': `export default function upper(input: { name: string }, params: { suffix?: string }) { return { name: input.name.toUpperCase() + (params.suffix ?? '') }; }`,
    'steps/drift.ts': `
      export default function drift(input: { n: number }) {
        const g = globalThis as { calls?: number };
        g.calls = (g.calls ?? 0) + 1;
        return { n: input.n, call: g.calls };
      }`,
    'steps/stamp.ts': `export default function stamp(input: { n: number }) { return { n: input.n, at: Date.now(), r: Math.random() }; }`,
  });
});

async function withRun<T>(store: Store, fn: (run: Run) => Promise<T>): Promise<T> {
  const run = await startRun(store, { name: 'objects-test', projectDir: project, context: { principal: 'tester' } });
  try {
    return await fn(run);
  } finally {
    await run.finish();
  }
}

function text(bytes: Uint8Array): unknown {
  return JSON.parse(Buffer.from(bytes).toString('utf8'));
}

describe('object ids and times', () => {
  it('refuses malformed object ids with the reason', () => {
    const cases: [string, RegExp][] = [
      ['', /empty/],
      ['a'.repeat(513), /513 characters/],
      ['customers/\u0007x', /control character U\+0007/],
      ['customers/../secrets', /"\.\." segment/],
      ['/customers', /starts or ends/],
      ['a//b', /empty segment/],
    ];
    for (const [id, reason] of cases) {
      expect(() => validateObjectId(id)).toThrow(reason);
      try {
        validateObjectId(id);
      } catch (err) {
        expect((err as ProvenantError).code).toBe('INPUT_INVALID');
      }
    }
    expect(validateObjectId('customers/42')).toBe('customers/42');
  });

  it('parses ISO 8601 with offsets and epoch milliseconds, and refuses the rest', () => {
    expect(parseTime('2024-10-27T10:00:00Z')).toBe(Date.UTC(2024, 9, 27, 10));
    expect(parseTime('2024-10-27T12:00:00+02:00')).toBe(Date.UTC(2024, 9, 27, 10));
    expect(parseTime(1730023200000)).toBe(1730023200000);
    expect(parseTime('1730023200000')).toBe(1730023200000);
    expect(() => parseTime('2024-10-27T10:00:00')).toThrow(/no time zone offset/);
    expect(() => parseTime('yesterday')).toThrow(/not ISO 8601/);
  });
});

describe('objects, versions and as-of reads', () => {
  let store: Store;
  beforeAll(async () => {
    store = await openStore(join(makeTempDir(), 'store'));
  });
  afterAll(async () => store.close());

  it('ingests versions and reads each as it was at any time', async () => {
    const v1 = await putObject(store, 'customers/42', { name: 'Ada', balance: 10 });
    await sleep(5);
    const between = Date.now();
    await sleep(5);
    const v2 = await putObject(store, 'customers/42', { name: 'Ada', balance: 25 });
    expect(v1.ordinal).toBe(1);
    expect(v2.ordinal).toBe(2);
    expect(v2.validFromUs).toBeGreaterThan(v1.validFromUs);
    expect(v1.executionId).toBeNull();
    expect(v1.kept).toBe(true);

    const then = await getAsOf(store, 'customers/42', between);
    expect(text(then.bytes)).toEqual({ name: 'Ada', balance: 10 });
    expect(then.obtained).toBe('read');
    expect(then.contentHash).toBe(v1.contentHash);
    expect(sha256(then.bytes)).toBe(v1.contentHash);
    // A version's own printed time finds it.
    expect((await getAsOf(store, 'customers/42', v2.validFrom)).version.versionId).toBe(v2.versionId);
    expect((await getAsOf(store, 'customers/42', new Date().toISOString())).version.versionId).toBe(v2.versionId);
    expect((await listObjectVersions(store, 'customers/42')).map((v) => v.versionId)).toEqual([v1.versionId, v2.versionId]);
    expect((await listObjectVersions(store, 'customers/42', { asOf: between })).map((v) => v.versionId)).toEqual([v1.versionId]);
  });

  it('keeps raw bytes with their content type', async () => {
    const bytes = Buffer.from('id,name\n42,Ada\n');
    const v = await putObject(store, 'files/customers.csv', bytes, { contentType: 'text/csv' });
    const read = await getAsOf(store, 'files/customers.csv', Date.now());
    expect(Buffer.from(read.bytes).equals(bytes)).toBe(true);
    expect(read.contentType).toBe('text/csv');
    expect(v.encoding).toBe('bytes');
  });

  it('says clearly when a time is in the future, before the object existed, or the object is unknown', async () => {
    await putObject(store, 'late/1', { x: 1 });
    const future = await rejection(getAsOf(store, 'late/1', Date.now() + 60_000));
    expect(future).toMatchObject({ code: 'AS_OF_IN_FUTURE' });
    const before = await rejection(getAsOf(store, 'late/1', '2020-01-01T00:00:00Z'));
    expect(before).toMatchObject({ code: 'NOT_FOUND', context: { reason: 'before-first-version' } });
    expect((before as Error).message).toMatch(/did not exist yet/);
    const unknown = await rejection(getAsOf(store, 'nobody/1', Date.now()));
    expect(unknown).toMatchObject({ code: 'NOT_FOUND', context: { reason: 'unknown-object' } });
    expect(await rejection(getAsOf(store, 'a/../b', Date.now()))).toMatchObject({ code: 'INPUT_INVALID' });
    expect(await rejection(getAsOf(store, 'late/1', 'noon'))).toMatchObject({ code: 'INPUT_INVALID' });
  });
});

describe('derivations make a DAG; lineage walks it', () => {
  let store: Store;
  let enrich: LoadedStep;
  let customer: ObjectVersion;
  let orders: ObjectVersion;
  let enriched: ObjectVersion;
  let enrichExecution: string;
  beforeAll(async () => {
    store = await openStore(join(makeTempDir(), 'store'));
    customer = await putObject(store, 'customers/7', { name: 'Grace' });
    orders = await putObject(store, 'orders/7', { total: 250 });
    await withRun(store, async (run) => {
      enrich = await run.step('enrich', { module: join(project, 'steps/enrich.ts') });
      const upper = await run.step('upper', { module: join(project, 'steps/upper.ts') });
      const made = await deriveObject(run, enrich, { inputs: ['customers/7', 'orders/7'], output: 'customers/7/enriched' });
      enriched = made.version;
      enrichExecution = made.executionId;
      expect(made.output).toEqual({ name: 'Grace', lifetimeValue: 250, tier: 'gold' });
      await deriveObject(run, upper, { inputs: [made.version], output: 'reports/7', params: { suffix: '!' } });
    });
  });
  afterAll(async () => store.close());

  it('records each version with its execution and inputs, and the execution with its inputs in order', async () => {
    expect(enriched.executionId).toBe(enrichExecution);
    expect(enriched.inputVersionIds).toEqual([customer.versionId, orders.versionId]);
    const e = await store.getExecution(enrichExecution);
    expect(e?.inputHashes).toEqual([customer.contentHash, orders.contentHash]);
    expect(e?.outputHash).toBe(enriched.contentHash);
    expect(e?.context.principal).toBe('tester');
  });

  it('finds ancestors and descendants, with depth limits', async () => {
    const up = await lineage(store, 'reports/7');
    const labels = up.nodes.map((n) => n.label).sort();
    expect(labels).toEqual(['customers/7 v1', 'customers/7/enriched v1', 'enrich@' + enrich.versionHash.slice(7, 19), 'orders/7 v1', 'reports/7 v1', expect.stringMatching(/^upper@/)]);
    expect(up.edges.filter((e) => e.kind === 'used')).toHaveLength(3);
    expect(up.edges.filter((e) => e.kind === 'generated')).toHaveLength(2);
    const shallow = await lineage(store, 'reports/7', { depth: 1 });
    expect(shallow.nodes.map((n) => n.label).sort()).toEqual(['customers/7/enriched v1', 'reports/7 v1', expect.stringMatching(/^upper@/)]);
    const down = await lineage(store, `customers/7@${customer.versionId}`, { direction: 'down' });
    expect(down.nodes.filter((n) => n.kind === 'version').map((n) => n.objectId).sort()).toEqual(['customers/7', 'customers/7/enriched', 'reports/7']);
    const fromExecution = await lineage(store, enrichExecution);
    expect(fromExecution.root.kind).toBe('execution');
    expect(fromExecution.nodes.filter((n) => n.kind === 'version').map((n) => n.objectId).sort()).toEqual(['customers/7', 'orders/7']);
    const fromValue = await lineage(store, orders.contentHash, { direction: 'down' });
    expect(fromValue.root.kind).toBe('value');
    expect(fromValue.nodes.some((n) => n.objectId === 'reports/7')).toBe(true);
    const tree = renderLineageTree(up);
    expect(tree).toMatch(/reports\/7 v1/);
    expect(tree).toMatch(/made by enrich@/);
  });

  it('shows the input and output values of an execution outside the object DAG', async () => {
    let executionId = '';
    await withRun(store, async (run) => {
      const upper = await run.step('upper', { module: join(project, 'steps/upper.ts') });
      const out = await run.attempt(upper, { name: 'plain' }, {});
      executionId = out.executionId;
    });
    const e = await store.getExecution(executionId);
    const up = await lineage(store, executionId);
    expect(up.root).toMatchObject({ kind: 'execution', stepId: 'upper' });
    expect(up.nodes.filter((n) => n.kind === 'value').map((n) => n.contentHash)).toEqual(e?.inputHashes);
    const down = await lineage(store, executionId, { direction: 'down' });
    expect(down.nodes.filter((n) => n.kind === 'value').map((n) => n.contentHash)).toEqual([e?.outputHash]);
    expect(down.edges).toEqual([{ from: `execution:${executionId}`, to: `value:${e?.outputHash}`, kind: 'generated' }]);
  });

  it('walks only what existed at an as-of time', async () => {
    const before = await lineage(store, `customers/7@${customer.versionId}`, { direction: 'down', asOf: customer.validFrom });
    expect(before.nodes.filter((n) => n.kind === 'version').map((n) => n.objectId)).toEqual(['customers/7']);
  });

  it('recomputes a derived version whose bytes were collected, with the old code even after its source changed', async () => {
    await setPolicy(store, 'none');
    const result = await gc(store);
    expect(result.dropped).toBe(2);
    expect(result.bytesFreed).toBe(enriched.size + (await listObjectVersions(store, 'reports/7'))[0]!.size);
    expect(await store.hasBlob(customer.contentHash)).toBe(true);
    expect(await store.hasBlob(enriched.contentHash)).toBe(false);
    // The step's source is edited after capture: the recorded artifact is what runs.
    writeFiles(project, { 'steps/enrich.ts': `export default function enrich() { return { edited: true }; }` });
    const fresh = await openStore(store.location);
    try {
      const read = await getAsOf(fresh, 'reports/7', Date.now());
      expect(read.obtained).toBe('recomputed');
      expect(read.executionsRun).toBe(2);
      expect(text(read.bytes)).toEqual({ name: 'GRACE!' });
      expect(sha256(read.bytes)).toBe(read.version.contentHash);
      const again = await getAsOf(fresh, 'reports/7', Date.now());
      expect(again.cacheHits).toBe(2);
      expect(again.executionsRun).toBe(0);
    } finally {
      await fresh.close();
    }
  });

  it('applies a registered step on read and records it with the reader context', async () => {
    const read = await getAsOf(store, 'customers/7', Date.now(), { transform: 'upper', params: { suffix: '?' }, context: { principal: 'auditor', source: 'http' } });
    expect(text(read.bytes)).toEqual({ name: 'GRACE?' });
    expect(read.transformExecutionId).toBeDefined();
    const e = await store.getExecution(read.transformExecutionId as string);
    expect(e?.functionId).toBe('upper');
    expect(e?.context).toMatchObject({ principal: 'auditor', source: 'http' });
    expect(e?.inputHashes).toEqual([customer.contentHash]);
    expect(await rejection(getAsOf(store, 'customers/7', Date.now(), { transform: 'nope' }))).toMatchObject({ code: 'STEP_NOT_FOUND' });
  });
});

describe('recomputation fails loudly when it cannot reproduce the recorded bytes', () => {
  it('names the execution where it diverged', async () => {
    const dir = join(makeTempDir(), 'store');
    const store = await openStore(dir);
    let second!: ObjectVersion;
    await withRun(store, async (run) => {
      const drift = await run.step('drift', { module: join(project, 'steps/drift.ts') });
      await putObject(store, 'd/in', { n: 1 });
      await deriveObject(run, drift, { inputs: ['d/in'], output: 'd/out' });
      second = (await deriveObject(run, drift, { inputs: ['d/in'], output: 'd/out' })).version;
    });
    await setPolicy(store, 'none');
    await gc(store);
    await store.close();
    const fresh = await openStore(dir);
    try {
      const err = await rejection(getAsOf(fresh, 'd/out', Date.now()));
      expect(err).toMatchObject({ code: 'RECOMPUTE_DIVERGED', context: { executionId: second.executionId, expected: second.contentHash } });
    } finally {
      await fresh.close();
    }
  });

  it('feeds recorded clock reads and random draws back, so such steps recompute exactly', async () => {
    const store = await openStore(join(makeTempDir(), 'store'));
    try {
      await withRun(store, async (run) => {
        const stamp = await run.step('stamp', { module: join(project, 'steps/stamp.ts') });
        await putObject(store, 's/in', { n: 3 });
        await deriveObject(run, stamp, { inputs: ['s/in'], output: 's/out' });
      });
      const kept = await getAsOf(store, 's/out', Date.now());
      await setPolicy(store, 'none');
      await gc(store);
      const recomputed = await getAsOf(store, 's/out', Date.now());
      expect(recomputed.obtained).toBe('recomputed');
      expect(Buffer.from(recomputed.bytes).equals(Buffer.from(kept.bytes))).toBe(true);
    } finally {
      await store.close();
    }
  });
});

describe('materialization policies and gc', () => {
  it('keeps every k-th version, pins by hand, and never collects originals', async () => {
    const store = await openStore(join(makeTempDir(), 'store'));
    try {
      const versions: ObjectVersion[] = [];
      await withRun(store, async (run) => {
        const add = await run.step('add', { module: join(project, 'steps/add.ts') });
        versions.push(await putObject(store, 'chain/x', { n: 0 }));
        for (let i = 0; i < 20; i++) versions.push((await deriveObject(run, add, { inputs: ['chain/x'], output: 'chain/x' })).version);
      });
      await setPolicy(store, 'every:5');
      const pinned = await materialize(store, `chain/x@${versions[7]!.versionId}`);
      expect(pinned.pinned).toBe(true);
      const result = await gc(store);
      // Ordinals 2..21 are derived; 5, 10, 15, 20 kept by policy, ordinal 8 pinned.
      expect(result.versions).toBe(20);
      expect(result.keptByPolicy).toBe(5);
      expect(result.dropped).toBe(15);
      const keptOrdinals = (await listObjectVersions(store, 'chain/x')).filter((v) => v.kept).map((v) => v.ordinal);
      expect(keptOrdinals).toEqual([1, 5, 8, 10, 15, 20]);
      // Version 14 is made from 10 (kept) by four executions.
      const read = await getAsOf(store, 'chain/x', versions[13]!.validFrom);
      expect(read.version.ordinal).toBe(14);
      expect(text(read.bytes)).toEqual({ n: 13 });
      expect(read.executionsRun + read.cacheHits).toBe(4);
      // Unpinning and collecting again drops the pinned bytes; they are still obtainable.
      await materialize(store, `chain/x@${versions[7]!.versionId}`, { pinned: false });
      expect((await gc(store)).dropped).toBe(1);
      expect(text((await getAsOf(store, 'chain/x', versions[7]!.validFrom)).bytes)).toEqual({ n: 7 });
      // Pinning a collected version stores its bytes again (recomputed and verified).
      const repinned = await materialize(store, `chain/x@${versions[12]!.validFrom}`);
      expect(repinned.kept).toBe(true);
      expect(repinned.ordinal).toBe(13);
    } finally {
      await store.close();
    }
  });

  it('applies a step\'s own policy over the store\'s, and the cost policy keeps what is read often', async () => {
    const store = await openStore(join(makeTempDir(), 'store'));
    try {
      let hot!: ObjectVersion;
      let cold!: ObjectVersion;
      let upperMade!: ObjectVersion;
      await withRun(store, async (run) => {
        const add = await run.step('add', { module: join(project, 'steps/add.ts') });
        const upper = await run.step('upper', { module: join(project, 'steps/upper.ts') });
        await putObject(store, 'c/hot', { n: 1 });
        await putObject(store, 'c/cold', { n: 2 });
        await putObject(store, 'c/name', { name: 'x' });
        hot = (await deriveObject(run, add, { inputs: ['c/hot'], output: 'c/hot' })).version;
        cold = (await deriveObject(run, add, { inputs: ['c/cold'], output: 'c/cold' })).version;
        upperMade = (await deriveObject(run, upper, { inputs: ['c/name'], output: 'c/name' })).version;
      });
      // Reads are counted as the system runs: the hot version is read 200 times.
      for (let i = 0; i < 200; i++) await getAsOf(store, 'c/hot', Date.now());
      const usage = await store.listVersionUsage();
      const hotUsage = usage.find((u) => u.version.versionId === hot.versionId)!;
      expect(hotUsage.reads).toBe(200);
      // A price at which one read of the cheap step is not worth its bytes, but 200 reads are.
      const perKiB = ((hotUsage.durationUs / 1000) * 20) / (hot.size / 1024);
      await setPolicy(store, `cost:${perKiB}`);
      await setPolicy(store, 'all', { step: 'upper' });
      await gc(store);
      expect(await store.hasBlob(hot.contentHash)).toBe(true);
      expect(await store.hasBlob(upperMade.contentHash)).toBe(true);
      const coldUsage = (await store.listVersionUsage()).find((u) => u.version.versionId === cold.versionId)!;
      const coldWorth = (coldUsage.durationUs / 1000) * Math.max(1, coldUsage.reads);
      expect(await store.hasBlob(cold.contentHash)).toBe(coldWorth > perKiB * (cold.size / 1024));
      await setPolicy(store, 'none', { step: 'upper' });
      await gc(store);
      expect(await store.hasBlob(upperMade.contentHash)).toBe(false);
      expect(text((await getAsOf(store, 'c/name', Date.now())).bytes)).toEqual({ name: 'X' });
    } finally {
      await store.close();
    }
  });

  it('property: as-of equals the bytes current at t, under every policy, before and after gc; the planner runs only what it needs', async () => {
    const stepDir = project;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ object: fc.integer({ min: 0, max: 3 }), inputs: fc.uniqueArray(fc.nat(), { maxLength: 3 }), by: fc.integer({ min: 1, max: 9 }) }), { minLength: 1, maxLength: 14 }),
        fc.constantFrom('all', 'none', 'every:2', 'every:3', 'cost:0.0001', 'cost:1000000'),
        fc.array(fc.nat(), { minLength: 1, maxLength: 6 }),
        async (plan, policy, probes) => {
          const store = await openStore(join(makeTempDir(), 'store'));
          try {
            // Model: every version with its time, bytes, inputs; originals for each object first.
            const model: { v: ObjectVersion; objectId: string; inputs: string[] }[] = [];
            for (let o = 0; o < 4; o++) {
              const v = await putObject(store, `p/${o}`, { n: o });
              model.push({ v, objectId: `p/${o}`, inputs: [] });
            }
            await withRun(store, async (run) => {
              const add = await run.step('add', { module: join(stepDir, 'steps/add.ts') });
              for (const p of plan) {
                const inputs = p.inputs.map((i) => model[i % model.length]!.v);
                const made = await deriveObject(run, add, { inputs: inputs.length === 0 ? [model[p.object]!.v] : inputs, output: `p/${p.object}`, params: { by: p.by } });
                model.push({ v: made.version, objectId: `p/${p.object}`, inputs: made.version.inputVersionIds.slice() });
              }
            });
            const times = model.map((m) => m.v.validFromUs);
            const check = async (label: string): Promise<void> => {
              for (const probe of probes) {
                const m = model[probe % model.length]!;
                // The version current at its own time: the last version of that object at or before it.
                const expected = model.filter((x) => x.objectId === m.objectId && x.v.validFromUs <= m.v.validFromUs).at(-1)!;
                const kept = new Set<string>();
                for (const x of model) if (await store.hasBlob(x.v.contentHash)) kept.add(x.v.versionId);
                // What must run: the closure of the target's inputs, stopping at kept versions.
                const needed = new Set<string>();
                const visit = (id: string): void => {
                  if (kept.has(id) || needed.has(id)) return;
                  needed.add(id);
                  for (const i of model.find((x) => x.v.versionId === id)!.inputs) visit(i);
                };
                visit(expected.v.versionId);
                const read = await getAsOf(store, m.objectId, m.v.validFrom);
                expect(read.version.versionId, label).toBe(expected.v.versionId);
                expect(sha256(read.bytes), label).toBe(expected.v.contentHash);
                expect(read.executionsRun + read.cacheHits, label).toBe(needed.size);
                expect(read.obtained, label).toBe(needed.size === 0 ? 'read' : 'recomputed');
              }
            };
            await check('before gc');
            await setPolicy(store, policy);
            await gc(store);
            for (const m of model.slice(0, 4)) expect(await store.hasBlob(m.v.contentHash)).toBe(true);
            await check(`after gc with ${policy}`);
            expect(times.every((t, i) => i === 0 || t > times[i - 1]!)).toBe(true);
          } finally {
            await store.close();
          }
        },
      ),
      { numRuns: 20 },
    );
  }, 300_000);
});
