/**
 * HTTP load on loopback: `provenant serve` in a child process over a store of real data (the
 * 2,000 flights of vega-datasets' flights-2k.json as objects `flights/<i>`, and 500 derived objects
 * `flights/<i>/normalized` made by the example `normalize` step, whose bytes are then dropped so
 * they are recomputed on read), and a closed-loop load generator in this process: `concurrency`
 * keep-alive connections, each sending its next request when the last one is answered.
 *
 * Figures: kept as-of reads (requests/s, p50, p99), recomputed as-of reads (requests/s, p99; the
 * memo cache answers repeats, as in the server's normal life), errors (any answer but 200, or a
 * failed connection), and the server's RSS growth from after warm-up to the end.
 *
 * Run alone: `npm run build && node dist/bench/http.js` (merges its figures into
 * bench/results/latest.json). `npm run bench` runs it with everything else.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createToken } from '../auth/tokens.js';
import { startRun } from '../capture/run.js';
import { gc, setPolicy } from '../objects/materialize.js';
import { deriveObject, putObject } from '../objects/versions.js';
import { vegaDatasetPath } from '../sources/datasets.js';
import { readRecords } from '../sources/files.js';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';
import type { BenchResult } from './run.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');

const OBJECTS = 2000;
const DERIVED = 500;

interface LoadResult {
  readonly requests: number;
  readonly errors: number;
  readonly seconds: number;
  readonly latenciesMs: Float64Array;
  readonly executionsRun: number;
  readonly cacheHits: number;
  readonly recomputed: number;
}

function quantile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? Number.NaN;
}

function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Build the store: originals, derived versions, then drop the derived bytes. */
async function buildStore(dir: string): Promise<string> {
  const store = SqliteStore.open(dir);
  try {
    let i = 0;
    for await (const r of readRecords(vegaDatasetPath('flights-2k.json'), { limit: OBJECTS })) {
      await putObject(store, `flights/${i++}`, r.value as Parameters<typeof putObject>[2]);
    }
    const run = await startRun(store, { name: 'bench http: normalize flights' });
    const normalize = await run.step('normalize', { module: join(repo, 'examples/flights/steps/normalize.ts') });
    for (let k = 0; k < DERIVED; k++) await deriveObject(run, normalize, { inputs: [`flights/${k}`], output: `flights/${k}/normalized` });
    await run.finish();
    await setPolicy(store, 'none');
    await gc(store);
    return (await createToken(store, { principal: 'bench', grants: ['read:flights/*'] })).token;
  } finally {
    await store.close();
  }
}

function serve(dir: string): Promise<{ child: ChildProcess; url: string }> {
  const cli = join(repo, 'dist', 'cli', 'main.js');
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [...(process.env.BENCH_SERVER_NODE_OPTIONS ?? '').split(' ').filter(Boolean), cli, 'serve', '--store', dir, '--port', '0', '--rate-limit', '0', '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      try {
        resolvePromise({ child, url: (JSON.parse(out) as { url: string }).url });
      } catch {
        // not all of it yet
      }
    });
    child.on('exit', (code) => reject(new Error(`provenant serve exited with ${code}`)));
  });
}

/** Resident set size of a process, in bytes (Linux). */
function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? Number.NaN : Number(m[1]) * 1024;
}

/** CPU time (user + system) a process has used, in microseconds (Linux; clock ticks of 10 ms). */
function cpuUsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

/** Closed-loop load: `concurrency` loops, each sending the next path as soon as the last answer is read. */
async function load(url: string, token: string, paths: (i: number) => string, seconds: number, concurrency: number): Promise<LoadResult> {
  const { hostname, port } = new URL(url);
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  let errors = 0;
  let executionsRun = 0;
  let cacheHits = 0;
  let recomputed = 0;
  let next = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const one = (path: string): Promise<void> =>
    new Promise((done) => {
      const t0 = performance.now();
      const req = request({ hostname, port, path, agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
        res.on('data', () => undefined);
        res.on('end', () => {
          latencies.push(performance.now() - t0);
          if (res.statusCode !== 200) errors++;
          executionsRun += Number(res.headers['provenant-executions-run'] ?? 0);
          cacheHits += Number(res.headers['provenant-cache-hits'] ?? 0);
          if (res.headers['provenant-obtained'] === 'recomputed') recomputed++;
          done();
        });
      });
      req.on('error', () => {
        errors++;
        done();
      });
      req.end();
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) await one(paths(next++));
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  const sorted = Float64Array.from(latencies).sort();
  return { requests: latencies.length, errors, seconds: elapsed, latenciesMs: sorted, executionsRun, cacheHits, recomputed };
}

/** The HTTP figures. */
export async function benchHttp(options: { seconds?: number; concurrency?: number } = {}): Promise<BenchResult[]> {
  const seconds = options.seconds ?? 5;
  const concurrency = options.concurrency ?? 16;
  const dir = mkdtempSync(join(tmpdir(), 'provenant-bench-http-'));
  let child: ChildProcess | undefined;
  try {
    process.stderr.write(`HTTP: building a store of ${OBJECTS} flights and ${DERIVED} derived objects…\n`);
    const token = await buildStore(dir);
    const server = await serve(dir);
    child = server.child;
    const url = server.url;
    const asOf = encodeURIComponent(new Date().toISOString());
    const kept = (i: number): string => `/data/flights/${i % OBJECTS}?as_of=${asOf}`;
    const derived = (i: number): string => `/data/flights/${i % DERIVED}/normalized?as_of=${asOf}`;
    process.stderr.write('HTTP: warming up…\n');
    await load(url, token, kept, 3, concurrency);
    await load(url, token, derived, 3, concurrency);
    await load(url, token, kept, 1, concurrency);
    const rssBefore = rssOf(child.pid as number);
    process.stderr.write(`HTTP: kept as-of reads for ${seconds} s…\n`);
    const pid = child.pid as number;
    const cpu0 = cpuUsOf(pid);
    const k = await load(url, token, kept, seconds, concurrency);
    const keptCpuUs = (cpuUsOf(pid) - cpu0) / k.requests;
    const cpu1 = cpuUsOf(pid);
    process.stderr.write(`HTTP: recomputed as-of reads for ${seconds} s…\n`);
    const r = await load(url, token, derived, seconds, concurrency);
    const recomputeCpuUs = (cpuUsOf(pid) - cpu1) / r.requests;
    const load1 = (await import('node:os')).loadavg()[0] ?? 0;
    const rssAfter = rssOf(child.pid as number);
    const setup = `${concurrency} keep-alive connections, closed loop, ${seconds} s, loopback; server and load generator share this machine's 2 cores (1-minute load average ${round(load1, 1)} at the end)`;
    return [
      { name: 'http.asof_kept_rps', unit: 'requests/s', value: Math.round(k.requests / k.seconds), extra: `GET /data/flights/<i>?as_of=<now> over ${OBJECTS} kept originals, bearer token, access log on; ${setup}; target >= 5000` },
      {
        name: 'http.asof_kept_server_cpu_us',
        unit: 'µs/request',
        value: Math.round(keptCpuUs),
        extra: `server process CPU time (user + system) per kept read: ${Math.round(1e6 / keptCpuUs)} requests/s per core the server has to itself, whatever else the machine runs; recomputed reads: ${Math.round(recomputeCpuUs)} µs/request`,
      },
      { name: 'http.asof_kept_p50_ms', unit: 'ms', value: round(quantile(k.latenciesMs, 0.5)), extra: 'median latency of the kept reads' },
      { name: 'http.asof_kept_p99_ms', unit: 'ms', value: round(quantile(k.latenciesMs, 0.99)), extra: 'p99 latency of the kept reads (target < 20 ms)' },
      {
        name: 'http.asof_recompute_rps',
        unit: 'requests/s',
        value: Math.round(r.requests / r.seconds),
        extra: `GET /data/flights/<i>/normalized over ${DERIVED} derived objects whose bytes were dropped: ${r.recomputed} of ${r.requests} answered recomputed, ${r.executionsRun} executions run, ${r.cacheHits} memo cache hits (repeats are answered from the cache)`,
      },
      { name: 'http.asof_recompute_p99_ms', unit: 'ms', value: round(quantile(r.latenciesMs, 0.99)), extra: `p50 ${round(quantile(r.latenciesMs, 0.5))} ms` },
      { name: 'http.errors', unit: 'requests', value: k.errors + r.errors, extra: `answers other than 200, or failed connections, among ${k.requests + r.requests} requests (target 0)` },
      {
        name: 'http.rss_growth_pct',
        unit: '%',
        value: round((rssAfter / rssBefore - 1) * 100),
        extra: `server RSS ${round(rssBefore / 1048576, 1)} MiB after warm-up, ${round(rssAfter / 1048576, 1)} MiB after both runs (target < 10%)`,
      },
    ];
  } finally {
    if (child !== undefined && child.exitCode === null) {
      const exited = new Promise((r) => child?.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const results = await benchHttp();
  const outFile = resolve(process.env.BENCH_OUT ?? join(repo, 'bench', 'results', 'latest.json'));
  const previous = existsSync(outFile) ? (JSON.parse(readFileSync(outFile, 'utf8')) as BenchResult[]) : [];
  const merged = [...previous.filter((p) => !p.name.startsWith('http.')), ...results];
  writeFileSync(outFile, `${JSON.stringify(merged, null, 2)}\n`);
  const width = Math.max(...results.map((r) => r.name.length));
  process.stdout.write(results.map((r) => `${r.name.padEnd(width)}  ${String(r.value).padStart(10)} ${r.unit}`).join('\n') + `\n\nMerged into ${outFile}\n`);
}
