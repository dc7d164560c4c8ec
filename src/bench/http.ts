/**
 * HTTP load on loopback: `provenant serve` in a child process over a store of real data (the
 * 2,000 flights of vega-datasets' flights-2k.json as objects `flights/<i>`, and 500 derived objects
 * `flights/<i>/normalized` made by the example `normalize` step, whose bytes are then dropped so
 * they are recomputed on read), and autocannon in this process as the load generator: `concurrency`
 * keep-alive connections, closed loop (each sends its next request when the last one is answered).
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
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
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

const autocannonVersion = (JSON.parse(readFileSync(join(repo, 'node_modules', 'autocannon', 'package.json'), 'utf8')) as { version: string }).version;

const OBJECTS = 2000;
const DERIVED = 500;

interface LoadResult {
  readonly requests: number;
  readonly errors: number;
  readonly seconds: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** CPU time of the load generator per answered request (µs). */
  readonly generatorCpuUs: number;
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

/**
 * Closed-loop load with autocannon: `concurrency` keep-alive connections, each sending its next
 * request when the last one is answered, cycling through the given paths. The requests are built
 * once (no per-request `setupRequest`, no body kept), so that the load generator, which shares
 * the 2 cores with the server, spends as little CPU as it can.
 */
async function load(url: string, token: string, paths: readonly string[], seconds: number, concurrency: number): Promise<LoadResult> {
  const cpu0 = process.cpuUsage();
  const result = await autocannon({
    url,
    connections: concurrency,
    duration: seconds,
    headers: { authorization: `Bearer ${token}` },
    requests: paths.map((path) => ({ path })),
  });
  const cpu = process.cpuUsage(cpu0);
  const answered = result.requests.total;
  return {
    requests: answered,
    errors: result.non2xx + result.errors + result.timeouts,
    seconds: result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    generatorCpuUs: (cpu.user + cpu.system) / Math.max(1, answered),
  };
}

/** Sum of each `provenant_*` counter in the server's /metrics (Prometheus text), over its labels. */
async function counters(url: string, token: string): Promise<Map<string, number>> {
  const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`GET /metrics answered ${res.status}`);
  const sums = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    const m = /^(provenant_[a-z_]+_total)(?:\{[^}]*\})? ([0-9.e+]+)$/.exec(line);
    if (m !== null) sums.set(m[1] as string, (sums.get(m[1] as string) ?? 0) + Number(m[2]));
  }
  return sums;
}

/** The HTTP figures. */
export async function benchHttp(options: { seconds?: number; concurrency?: number } = {}): Promise<BenchResult[]> {
  const seconds = options.seconds ?? 10; // autocannon's own default duration
  const concurrency = options.concurrency ?? Number(process.env.BENCH_HTTP_CONNECTIONS ?? 10); // autocannon's own default
  const dir = mkdtempSync(join(tmpdir(), 'provenant-bench-http-'));
  let child: ChildProcess | undefined;
  try {
    process.stderr.write(`HTTP: building a store of ${OBJECTS} flights and ${DERIVED} derived objects…\n`);
    const token = await buildStore(dir);
    const server = await serve(dir);
    child = server.child;
    const url = server.url;
    const asOf = encodeURIComponent(new Date().toISOString());
    const kept = Array.from({ length: OBJECTS }, (_, i) => `/data/flights/${i}?as_of=${asOf}`);
    const derived = Array.from({ length: DERIVED }, (_, i) => `/data/flights/${i}/normalized?as_of=${asOf}`);
    // BENCH_HTTP_RSS_TRACE=1: the server's RSS, heap and external memory each second, to stderr.
    const rssTrace: string[] = [];
    const tracer =
      process.env.BENCH_HTTP_RSS_TRACE === undefined
        ? undefined
        : setInterval(() => {
            const rss = (rssOf(server.child.pid as number) / 1048576).toFixed(0);
            void fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } })
              .then((res) => res.text())
              .then((text) => {
                const heap = /^provenant_nodejs_heap_size_used_bytes ([0-9.e+]+)$/m.exec(text)?.[1];
                const ext = /^provenant_nodejs_external_memory_bytes ([0-9.e+]+)$/m.exec(text)?.[1];
                rssTrace.push(`${rss}/${(Number(heap) / 1048576).toFixed(0)}/${(Number(ext) / 1048576).toFixed(0)}`);
              });
          }, 1000);
    process.stderr.write('HTTP: warming up…\n');
    // Both kinds of reads, in the order measured below, until the server's memory settles (JIT,
    // caches, the recompute workers' heaps). Growth is measured from here, like for like: from
    // the end of one kept-then-recomputed round to the end of the next.
    await load(url, token, kept, 5, concurrency);
    await load(url, token, derived, 5, concurrency);
    await load(url, token, kept, 3, concurrency);
    await load(url, token, derived, 3, concurrency);
    const rssBefore = rssOf(child.pid as number);
    process.stderr.write(`HTTP: kept as-of reads for ${seconds} s…\n`);
    const pid = child.pid as number;
    const cpu0 = cpuUsOf(pid);
    const k = await load(url, token, kept, seconds, concurrency);
    const keptCpuUs = (cpuUsOf(pid) - cpu0) / k.requests;
    const cpu1 = cpuUsOf(pid);
    const before = await counters(url, token);
    process.stderr.write(`HTTP: recomputed as-of reads for ${seconds} s…\n`);
    const r = await load(url, token, derived, seconds, concurrency);
    const recomputeCpuUs = (cpuUsOf(pid) - cpu1) / r.requests;
    const after = await counters(url, token);
    const delta = (name: string): number => (after.get(name) ?? 0) - (before.get(name) ?? 0);
    const load1 = (await import('node:os')).loadavg()[0] ?? 0;
    const rssAfter = rssOf(child.pid as number);
    clearInterval(tracer);
    if (tracer !== undefined) process.stderr.write(`server RSS/heap used/external each second (MiB): ${rssTrace.join(' ')}\n`);
    const setup = `autocannon ${autocannonVersion}, ${concurrency} keep-alive connections, closed loop, ${seconds} s, loopback; server and load generator share this machine's 2 cores (the generator used ${Math.round(k.generatorCpuUs)} µs of CPU per request; 1-minute load average ${round(load1, 1)} at the end)`;
    return [
      { name: 'http.asof_kept_rps', unit: 'requests/s', value: Math.round(k.requests / k.seconds), extra: `GET /data/flights/<i>?as_of=<now> over ${OBJECTS} kept originals, bearer token, access log on; ${setup}; target >= 5000` },
      {
        name: 'http.asof_kept_server_cpu_us',
        unit: 'µs/request',
        value: Math.round(keptCpuUs),
        extra: `server process CPU time (user + system) per kept read: ${Math.round(1e6 / keptCpuUs)} requests/s per core the server has to itself, whatever else the machine runs; recomputed reads: ${Math.round(recomputeCpuUs)} µs/request`,
      },
      { name: 'http.asof_kept_p50_ms', unit: 'ms', value: round(k.p50Ms), extra: 'median latency of the kept reads' },
      { name: 'http.asof_kept_p99_ms', unit: 'ms', value: round(k.p99Ms), extra: 'p99 latency of the kept reads (target < 20 ms)' },
      {
        name: 'http.asof_recompute_rps',
        unit: 'requests/s',
        value: Math.round(r.requests / r.seconds),
        extra: `GET /data/flights/<i>/normalized over ${DERIVED} derived objects whose bytes were dropped: ${r.requests} answered, ${delta('provenant_recomputations_total')} recomputations, ${delta('provenant_recomputed_executions_total')} executions run and ${delta('provenant_recompute_cache_hits_total')} memo cache hits (from the server's /metrics; repeats are answered from the cache)`,
      },
      { name: 'http.asof_recompute_p99_ms', unit: 'ms', value: round(r.p99Ms), extra: `p50 ${round(r.p50Ms)} ms` },
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
  const results = await benchHttp(process.env.BENCH_HTTP_SECONDS === undefined ? {} : { seconds: Number(process.env.BENCH_HTTP_SECONDS) });
  const outFile = resolve(process.env.BENCH_OUT ?? join(repo, 'bench', 'results', 'latest.json'));
  const previous = existsSync(outFile) ? (JSON.parse(readFileSync(outFile, 'utf8')) as BenchResult[]) : [];
  const merged = [...previous.filter((p) => !p.name.startsWith('http.')), ...results];
  writeFileSync(outFile, `${JSON.stringify(merged, null, 2)}\n`);
  const width = Math.max(...results.map((r) => r.name.length));
  process.stdout.write(results.map((r) => `${r.name.padEnd(width)}  ${String(r.value).padStart(10)} ${r.unit}`).join('\n') + `\n\nMerged into ${outFile}\n`);
}
