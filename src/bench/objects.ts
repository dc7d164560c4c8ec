/**
 * Benchmarks of objects: lineage in a store of 1,000,000 executions, kept as-of reads, and the
 * storage / latency trade-off of materialization policies on a 100-deep history.
 *
 * Run alone (prints only): `npm run build && node dist/bench/objects.js`. `npm run bench` runs it
 * with everything else and writes the figures to bench/results/latest.json.
 */
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRun } from '../capture/run.js';
import { encodeValue, type EncodedValue } from '../hash/canonical.js';
import { newId, nowUs } from '../ids.js';
import { getAsOf } from '../objects/asof.js';
import { lineage } from '../objects/lineage.js';
import { gc, setPolicy } from '../objects/materialize.js';
import { deriveObject, putObject } from '../objects/versions.js';
import type { ExecutionWrite, ObjectVersionWrite, ValueWrite } from '../store/records.js';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';
import { prepareStep } from '../step/register.js';
import type { BenchResult } from './run.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * q))] ?? Number.NaN;
}

function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** A tiny deterministic PRNG, so the DAG is the same in every run. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const STEP_SOURCE = `export default function next(input) { const xs = Array.isArray(input) ? input : [input]; return { n: xs.reduce((s, x) => s + x.n, 0) + 1 }; }\n`;

/** The step module the benchmarks record (a cheap one: add one). */
function stepModule(dir: string): string {
  const file = join(dir, 'next.mjs');
  writeFileSync(file, STEP_SOURCE);
  return file;
}

/**
 * A store of `objects × rounds` executions: each object has an original and `rounds` derived
 * versions, version k made from version k-1 and, with probability `joinP`, the latest version of
 * another object (a join). Cached under bench/.cache between runs (it takes a minute to build).
 */
async function lineageStore(objects: number, rounds: number, joinP: number): Promise<string> {
  const cache = join(repo, 'bench', '.cache', `lineage-${objects}x${rounds}-${joinP}-v1`);
  if (existsSync(join(cache, 'done'))) return cache;
  rmSync(cache, { recursive: true, force: true });
  const building = `${cache}.building`;
  rmSync(building, { recursive: true, force: true });
  mkdirSync(building, { recursive: true });
  const store = SqliteStore.open(building);
  const random = prng(42);
  try {
    const step = await prepareStep(store, 'next', { module: stepModule(building) });
    const run = await startRun(store, { name: 'lineage bench', projectDir: repo });
    await run.finish();
    const contextValue = encodeValue({});
    const params = encodeValue({});
    const latest: { versionId: string; value: EncodedValue }[] = [];
    const originals: ObjectVersionWrite[] = [];
    const originalValues: ValueWrite[] = [];
    for (let i = 0; i < objects; i++) {
      const value = encodeValue({ n: i });
      const versionId = newId();
      originals.push({ versionId, objectId: `accounts/${i}`, contentHash: value.hash, encoding: 'json', contentType: 'application/json', size: value.bytes.byteLength, executionId: null, inputVersionIds: [] });
      originalValues.push({ hash: value.hash, bytes: value.bytes });
      latest.push({ versionId, value });
    }
    await store.commitObjectVersions({ versions: originals, executions: [], values: originalValues });
    const batchSize = 5000;
    let made = 0;
    const started = Date.now();
    for (let round = 1; round <= rounds; round++) {
      for (let start = 0; start < objects; start += batchSize) {
        const versions: ObjectVersionWrite[] = [];
        const executions: ExecutionWrite[] = [];
        const values: ValueWrite[] = [{ hash: params.hash, bytes: params.bytes }, { hash: contextValue.hash, bytes: contextValue.bytes }];
        const next: { i: number; versionId: string; value: EncodedValue }[] = [];
        for (let i = start; i < Math.min(objects, start + batchSize); i++) {
          const own = latest[i] as { versionId: string; value: EncodedValue };
          const inputs = [own];
          if (random() < joinP) {
            const other = latest[Math.floor(random() * objects)] as { versionId: string; value: EncodedValue };
            if (other.versionId !== own.versionId) inputs.push(other);
          }
          const value = encodeValue({ n: round * objects + i, from: inputs.map((x) => x.value.hash.slice(7, 15)) });
          const id = newId();
          const t = nowUs();
          executions.push({
            id,
            runId: run.id,
            functionId: 'next',
            functionVersionHash: step.versionHash,
            inputHashes: inputs.map((x) => x.value.hash),
            inputEncodings: inputs.map(() => 'json'),
            outputHash: value.hash,
            outputEncoding: 'json',
            paramsHash: params.hash,
            contextHash: contextValue.hash,
            context: {},
            startedUs: t,
            endedUs: t + 5,
            status: 'ok',
            errorHash: null,
            nondeterminismHash: null,
            streamId: null,
            offset: null,
          });
          values.push({ hash: value.hash, bytes: value.bytes });
          const versionId = newId();
          versions.push({ versionId, objectId: `accounts/${i}`, contentHash: value.hash, encoding: 'json', contentType: 'application/json', size: value.bytes.byteLength, executionId: id, inputVersionIds: inputs.map((x) => x.versionId) });
          next.push({ i, versionId, value });
        }
        await store.commitObjectVersions({ versions, executions, values });
        for (const n of next) latest[n.i] = { versionId: n.versionId, value: n.value };
        made += executions.length;
      }
      if (round % 10 === 0) process.stderr.write(`  lineage store: ${made.toLocaleString('en-US')} executions (${Math.round(made / ((Date.now() - started) / 1000))}/s)\n`);
    }
  } finally {
    await store.close();
  }
  renameSync(building, cache);
  writeFileSync(join(cache, 'done'), new Date().toISOString());
  return cache;
}

async function benchLineage(): Promise<BenchResult[]> {
  const objects = Number(process.env.BENCH_LINEAGE_OBJECTS ?? 10_000);
  const rounds = 100;
  const joinP = 0.01;
  process.stderr.write(`Building (or reusing) a store of ${(objects * rounds).toLocaleString('en-US')} executions for lineage…\n`);
  const dir = await lineageStore(objects, rounds, joinP);
  const store = SqliteStore.open(dir);
  try {
    const executions = (await store.stats()).executions;
    const random = prng(7);
    const times: number[] = [];
    const storeTimes: number[] = [];
    const sizes: number[] = [];
    // Warm the page cache with one query, then ask for the ancestors of 50 random latest versions.
    await lineage(store, 'accounts/0');
    for (let i = 0; i < 50; i++) {
      const objectId = `accounts/${Math.floor(random() * objects)}`;
      const t0 = performance.now();
      const graph = await lineage(store, objectId);
      times.push(performance.now() - t0);
      sizes.push(graph.nodes.length);
      const head = graph.root.versionId as string;
      const t1 = performance.now();
      await store.walkLineage({ from: [head], direction: 'up' });
      storeTimes.push(performance.now() - t1);
    }
    return [
      {
        name: 'lineage.ancestors_1m_ms',
        unit: 'ms',
        value: round(median(times)),
        extra:
          `all ancestors (versions and executions, named) of the latest version of a random object, median of 50; store of ${executions.toLocaleString('en-US')} executions ` +
          `(${objects.toLocaleString('en-US')} objects x ${rounds} versions, 1% joins); graph sizes median ${median(sizes)} nodes, max ${Math.max(...sizes)}; ` +
          `p90 ${round(quantile(times, 0.9))} ms; the recursive query alone: median ${round(median(storeTimes))} ms (target < 50 ms)`,
      },
    ];
  } finally {
    await store.close();
  }
}

async function benchAsOf(): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'provenant-bench-asof-'));
  try {
    const store = SqliteStore.open(dir);
    try {
      // A realistic record (~1 KiB of JSON) as the object's content.
      const base = { account: 'accounts/42', owner: 'Ada Lovelace', history: Array.from({ length: 24 }, (_, i) => ({ month: i + 1, balance: 1000 + i * 17, flags: ['ok'] })) };
      await putObject(store, 'accounts/42', { ...base, n: 0 });
      const run = await startRun(store, { name: 'asof bench', projectDir: repo });
      const bump = await prepareStep(store, 'bump', { module: writeBump(dir) });
      for (let i = 0; i < 100; i++) await deriveObject(run, bump, { inputs: ['accounts/42'], output: 'accounts/42' });
      await run.finish();
      const versions = await store.listObjectVersions('accounts/42');
      const head = versions[versions.length - 1];
      if (head === undefined) throw new Error('no versions');

      // A kept read, in process: median of 2,000.
      const headTime = new Date(Math.floor(head.validFromUs / 1000)).toISOString();
      for (let i = 0; i < 200; i++) await getAsOf(store, 'accounts/42', headTime);
      const kept: number[] = [];
      for (let i = 0; i < 2000; i++) {
        const t0 = performance.now();
        await getAsOf(store, 'accounts/42', headTime);
        kept.push(performance.now() - t0);
      }
      results.push({
        name: 'asof.kept_read_ms',
        unit: 'ms',
        value: round(median(kept), 4),
        extra: `getAsOf of a kept version (${head.size} B JSON) in process, median of 2,000 (p99 ${round(quantile(kept, 0.99), 4)} ms), including the read being counted for the cost-based policy (target < 1 ms)`,
      });

      for (const [policy, label] of [['none', 'keep_none'], ['every:10', 'keep_every_10th'], ['all', 'keep_all']] as const) {
        // Start each policy from every version kept (an earlier, stricter policy collected some), then apply it.
        for (const v of versions) {
          if (!(await store.hasBlob(v.contentHash))) {
            const r = await getAsOf(store, 'accounts/42', new Date(Math.floor(v.validFromUs / 1000)).toISOString(), { cache: false });
            await store.putBlob(r.bytes);
          }
        }
        await setPolicy(store, policy);
        await gc(store);
        let bytes = 0;
        for (const v of versions) if (await store.hasBlob(v.contentHash)) bytes += v.size;
        // The deepest read: the head, 100 executions from the original under keep-none.
        const headTimes: number[] = [];
        let executionsRun = 0;
        for (let i = 0; i < 15; i++) {
          const t0 = performance.now();
          const r = await getAsOf(store, 'accounts/42', headTime, { cache: false });
          headTimes.push(performance.now() - t0);
          executionsRun = r.executionsRun;
        }
        // A read at a random time: mean over every version.
        const all: number[] = [];
        for (const v of versions) {
          const t0 = performance.now();
          await getAsOf(store, 'accounts/42', new Date(Math.floor(v.validFromUs / 1000)).toISOString(), { cache: false });
          all.push(performance.now() - t0);
        }
        const meanAll = all.reduce((a, b) => a + b, 0) / all.length;
        results.push(
          {
            name: `asof.depth100_${label}_ms`,
            unit: 'ms',
            value: round(median(headTimes)),
            extra: `policy ${policy}: as-of read of the newest of 101 versions (${executionsRun} executions recomputed, memo cache off), median of 15; mean over reads of every version ${round(meanAll)} ms, max ${round(Math.max(...all))} ms (target for 100 deep: < 100 ms)`,
          },
          {
            name: `asof.depth100_${label}_bytes`,
            unit: 'bytes',
            value: bytes,
            extra: `policy ${policy}: bytes of the 101 versions' contents kept (each ~${head.size} B; the original is always kept)`,
          },
        );
      }
    } finally {
      await store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

function writeBump(dir: string): string {
  const file = join(dir, 'bump.mjs');
  writeFileSync(file, 'export default function bump(input) { return { ...input, n: input.n + 1, history: input.history.map((h) => ({ ...h, balance: h.balance + 1 })) }; }\n');
  return file;
}

/** Every objects benchmark. */
export async function benchObjects(): Promise<BenchResult[]> {
  process.stderr.write('Measuring as-of reads and materialization policies…\n');
  const asof = await benchAsOf();
  process.stderr.write('Measuring lineage in a 1,000,000-execution store…\n');
  const lin = await benchLineage();
  return [...lin, ...asof];
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const results = await benchObjects();
  const width = Math.max(...results.map((r) => r.name.length));
  process.stdout.write(results.map((r) => `${r.name.padEnd(width)}  ${String(r.value).padStart(10)} ${r.unit}   ${r.extra ?? ''}`).join('\n') + '\n');
}
