/**
 * PostgreSQL figures for `npm run bench` (skipped, with a note, when PostgreSQL or NATS is not
 * reachable):
 * - `pg.vs_embedded_ratio`: capture of the same flights-3m records through the same two steps
 *   (runPipeline, no checkpoints) into PostgreSQL and into the embedded store, alternating, medians.
 * - `pg.capture_records_per_s_w1/_w2/_w4`: the records published to a JetStream stream and processed
 *   by 1, 2 and 4 `provenant worker` processes (the example flights pipeline, segments of
 *   `segmentSize` records, one checkpoint each) into a fresh PostgreSQL schema; wall time from the
 *   first worker's start to the last one's exit.
 *
 * Run alone: `npm run build && node dist/bench/pg.js` (40,000 records for capture, or BENCH_PG_RECORDS;
 * 300,000 for the workers, or BENCH_PG_WORKER_RECORDS; merges
 * its figures into bench/results/latest.json). `npm run bench` runs it with everything else.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { runPipeline, type SourceRecord } from '../pipeline/execute.js';
import { loadPipelineFile, type LoadedPipeline } from '../pipeline/load.js';
import { vegaDatasetPath } from '../sources/datasets.js';
import { readRecords } from '../sources/files.js';
import { publishRecords } from '../sources/jetstream.js';
import { PostgresStore } from '../store/postgres/postgres-store.js';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';
import type { Store } from '../store/store.js';
import type { BenchResult } from './run.js';

const PG_URL = process.env.BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const NATS_URL = process.env.BENCH_NATS ?? 'nats://127.0.0.1:4222';

function schemaUrl(schema: string): string {
  const u = new URL(PG_URL);
  u.searchParams.set('schema', schema);
  return u.toString();
}

async function dropSchemas(schemas: string[]): Promise<void> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    for (const s of schemas) await c.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  } finally {
    await c.end();
  }
}

/** Delete the bench's JetStream streams (each holds the published records). */
async function deleteStreams(streams: string[]): Promise<void> {
  if (streams.length === 0) return;
  const { connect } = await import('@nats-io/transport-node');
  const { jetstreamManager } = await import('@nats-io/jetstream');
  const nc = await connect({ servers: NATS_URL });
  try {
    const jsm = await jetstreamManager(nc);
    for (const s of streams) await jsm.streams.delete(s).catch(() => undefined);
  } finally {
    await nc.close();
  }
}

/**
 * The Node flags of the CLI's `#!/usr/bin/env -S node …` line: workers are started with them, as
 * `provenant worker` runs (without them, V8's smaller young generation costs a worker about 12 %
 * more CPU per record).
 */
function nodeFlagsOf(cli: string): string[] {
  const first = readFileSync(cli, 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!.*\bnode\b(.*)$/.exec(first);
  return m === null ? [] : (m[1] ?? '').trim().split(/\s+/).filter((f) => f.startsWith('--'));
}

/** The first `n` flights-3m records: `records` when it holds enough, else read again from the file. */
async function atLeast(records: SourceRecord[], n: number): Promise<SourceRecord[]> {
  if (records.length >= n) return records.slice(0, n);
  const out: SourceRecord[] = [];
  for await (const r of readRecords(vegaDatasetPath('flights-3m.parquet'), { limit: n })) out.push(r);
  return out;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

/** Run the PostgreSQL benchmarks; returns no figures (and says why) when a server is missing. */
export async function benchPostgres(allRecords: SourceRecord[], twoSteps: LoadedPipeline, fullPipelineFile: string, cli: string): Promise<BenchResult[]> {
  // Capture compares per-execution rates: 40,000 records are plenty. Workers get more (24 segments),
  // so that what is paid once per run weighs as it would in a long-running deployment rather than
  // a fifth of the run: each process's start, bundling and JIT warm-up (~0.4 s before the first
  // segment; two workers warm up side by side), and the end, where one worker may wait for the
  // other's last segment (up to a segment's time). Measured with 100,000 records (8 segments),
  // those took ~1.4 s of a 7.3 s two-worker run while the workers in full swing ran at 1.67x one.
  const records = allRecords.slice(0, Number(process.env.BENCH_PG_RECORDS ?? 40_000));
  const workerRecords = await atLeast(allRecords, Number(process.env.BENCH_PG_WORKER_RECORDS ?? 300_000));
  const schemas: string[] = [];
  const streams: string[] = [];
  // The bench's throwaway stores keep their signing keys in a throwaway folder (workers inherit it).
  process.env.PROVENANT_KEYS_DIR ??= mkdtempSync(join(tmpdir(), 'provenant-bench-keys-'));
  try {
    const probe = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 2000 });
    await probe.connect();
    await probe.end();
  } catch (err) {
    process.stderr.write(`PostgreSQL figures skipped: ${PG_URL} is not reachable (${(err as Error).message})\n`);
    return [];
  }
  try {
    // Capture into each backend, alternating, 3 rounds.
    const rates: { pg: number[]; embedded: number[] } = { pg: [], embedded: [] };
    for (let round = 0; round < 3; round++) {
      for (const backend of ['pg', 'embedded'] as const) {
        let store: Store;
        let dir: string | undefined;
        if (backend === 'pg') {
          const schema = `bench_${randomBytes(5).toString('hex')}`;
          schemas.push(schema);
          store = await PostgresStore.open(schemaUrl(schema));
        } else {
          dir = mkdtempSync(join(tmpdir(), 'provenant-bench-pgcmp-'));
          store = SqliteStore.open(dir);
        }
        const t0 = performance.now();
        const r = await runPipeline(store, twoSteps.definition, records, { baseDir: twoSteps.baseDir, streamId: 'bench', checkpoint: false });
        rates[backend].push(r.executions / ((performance.now() - t0) / 1000));
        await store.close();
        if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
      }
    }
    const pgRate = median(rates.pg);
    const embeddedRate = median(rates.embedded);
    const results: BenchResult[] = [
      {
        name: 'pg.capture_executions_per_s',
        unit: 'executions/s',
        value: Math.round(pgRate),
        extra: `${records.length} flights-3m.parquet records x 2 steps into PostgreSQL (runPipeline, no checkpoints); median of ${rates.pg.map(Math.round).join(', ')}`,
      },
      {
        name: 'pg.vs_embedded_ratio',
        unit: 'x',
        value: Math.round((pgRate / embeddedRate) * 100) / 100,
        extra: `PostgreSQL capture rate / embedded capture rate, same records and steps, alternating runs (embedded median ${Math.round(embeddedRate)}: ${rates.embedded.map(Math.round).join(', ')}); target >= 0.5`,
      },
    ];

    // Workers over a JetStream stream.
    const stream = `PROVENANT_BENCH_${process.pid}_${Date.now().toString(36)}`;
    try {
      await publishRecords({ servers: NATS_URL, stream, create: true }, workerRecords.map((r) => r.value as never));
    } catch (err) {
      process.stderr.write(`Worker figures skipped: NATS at ${NATS_URL} is not usable (${(err as Error).message})\n`);
      return results;
    }
    streams.push(stream);
    const segmentSize = Number(process.env.BENCH_PG_SEGMENT ?? 12_500);
    const spans = new Map<number, number[]>([[1, []], [2, []], [4, []]]);
    const runWorkers = async (n: number): Promise<number> => {
      const schema = `bench_w${n}_${randomBytes(4).toString('hex')}`;
      schemas.push(schema);
      const url = schemaUrl(schema);
      await (await PostgresStore.open(url)).close();
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: n }, () =>
          new Promise<void>((resolve, reject) => {
            const child = spawn(process.execPath, [...nodeFlagsOf(cli), cli, 'worker', fullPipelineFile, '--store', url, '--stream', stream, '--nats', NATS_URL, '--segment-size', String(segmentSize), '--state', 'segment', '--drain', '--quiet', '--json'], {
              stdio: ['ignore', 'ignore', 'pipe'],
            });
            let err = '';
            child.stderr.on('data', (d: Buffer) => (err += d.toString()));
            child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`worker exited ${code}: ${err}`))));
          }),
        ),
      );
      const seconds = (performance.now() - t0) / 1000;
      const store = await PostgresStore.open(url);
      const done = await store.withClient((c) => c.query<{ n: number }>(`SELECT coalesce(sum(end_offset - start_offset), 0)::bigint AS n FROM work_segments WHERE status = 'done'`));
      // The processing span, from the store: the first segment's run start to the last one's end.
      const span = await store.withClient((c) => c.query<{ first: number; last: number }>('SELECT min(r.started) AS first, max(e.ended) AS last FROM runs r JOIN run_ends e ON e.run = r.seq'));
      await store.close();
      const processed = done.rows[0]?.n ?? 0;
      if (processed !== workerRecords.length) throw new Error(`bench: ${n} workers processed ${processed} of ${workerRecords.length} records`);
      const row = span.rows[0];
      if (row !== undefined) spans.get(n)?.push(workerRecords.length / ((row.last - row.first) / 1e6));
      // Dropped now, not at the end: every run then starts from the same server state (each leaves
      // about a gigabyte of tables and WAL behind).
      await dropSchemas([schema]);
      return workerRecords.length / seconds;
    };
    // One and two workers alternate for five rounds (this machine's speed drifts from minute to
    // minute: single pairs gave 1.34x to 1.72x within one bench run); medians are reported.
    const rounds = Number(process.env.BENCH_PG_ROUNDS ?? 5);
    const workerRates = new Map<number, number[]>([[1, []], [2, []], [4, []]]);
    for (let round = 0; round < rounds; round++) {
      for (const n of [1, 2]) workerRates.get(n)?.push(await runWorkers(n));
    }
    workerRates.get(4)?.push(await runWorkers(4));
    const perWorkers = new Map([...workerRates].map(([n, xs]) => [n, median(xs)]));
    const common = `${workerRecords.length} flights-3m.parquet records published to JetStream, example flights pipeline (3 steps), segments of ${segmentSize} records (one checkpoint each, Merkle log and signed heads included; --state segment: routeStats per segment, segments in parallel), into PostgreSQL; workers run as \`provenant worker\` runs (node ${nodeFlagsOf(cli).join(' ')}); wall time incl. process start`;
    for (const n of [1, 2, 4]) {
      const xs = workerRates.get(n) ?? [];
      results.push({
        name: `pg.capture_records_per_s_w${n}`,
        unit: 'records/s',
        value: Math.round(perWorkers.get(n) ?? 0),
        extra: `${common}; ${n} worker process(es); ${xs.length > 1 ? `median of ${xs.map(Math.round).join(', ')}` : 'one run'}; while processing (first run start to last run end, from the store): ${(spans.get(n) ?? []).map(Math.round).join(', ')}`,
      });
    }
    results.push({
      name: 'pg.speedup_w2',
      unit: 'x',
      value: Math.round(((perWorkers.get(2) ?? 0) / (perWorkers.get(1) ?? 1)) * 100) / 100,
      extra: `median w2 / median w1 over ${rounds} alternating rounds (per round: ${(workerRates.get(1) ?? []).map((w1, i) => ((workerRates.get(2)?.[i] ?? 0) / w1).toFixed(2)).join(', ')}); target >= 1.5 on this 2-core machine, PostgreSQL sharing the cores`,
    });
    return results;
  } finally {
    await dropSchemas(schemas).catch(() => undefined);
    await deleteStreams(streams).catch(() => undefined);
  }
}

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const records: SourceRecord[] = [];
  for await (const r of readRecords(vegaDatasetPath('flights-3m.parquet'), { limit: Number(process.env.BENCH_PG_RECORDS ?? 40_000) })) records.push(r);
  const pipelineFile = join(repo, 'examples', 'flights', 'pipeline.ts');
  const loaded = await loadPipelineFile(pipelineFile);
  const twoSteps = { ...loaded, definition: { ...loaded.definition, steps: loaded.definition.steps.slice(0, 2) } };
  const results = await benchPostgres(records, twoSteps, pipelineFile, join(repo, 'dist', 'cli', 'main.js'));
  const outFile = resolve(process.env.BENCH_OUT ?? join(repo, 'bench', 'results', 'latest.json'));
  const previous = existsSync(outFile) ? (JSON.parse(readFileSync(outFile, 'utf8')) as { name: string }[]) : [];
  writeFileSync(outFile, `${JSON.stringify([...previous.filter((p) => !p.name.startsWith('pg.')), ...results], null, 2)}\n`);
  const width = Math.max(...results.map((r) => r.name.length));
  process.stdout.write(results.map((r) => `${r.name.padEnd(width)}  ${String(r.value).padStart(10)} ${r.unit}`).join('\n') + `\n\nMerged into ${outFile}\n`);
}
