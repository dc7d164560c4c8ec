/**
 * `npm run bench`: measures capture against the floor of its unavoidable work, on real data
 * (vega-datasets flights-3m.parquet), and writes `bench/results/latest.json` as
 * `[{ name, unit, value, extra }]` (github-action-benchmark's custom-tool format).
 *
 * Options (environment): BENCH_RECORDS (default 100000 records, each passing two steps),
 * BENCH_GROWTH_RECORDS (default 500000: capture into one growing store), BENCH_OUT (default
 * bench/results/latest.json), BENCH_ONLY (some parts: capture, growth, stream, merkle, …).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { canonicalize, hashToBytes, sha256 } from '../hash/canonical.js';
import { newIdWithBytes, nowUs } from '../ids.js';
import { runPipeline, type SourceRecord } from '../pipeline/execute.js';
import { loadPipelineFile, type LoadedPipeline } from '../pipeline/load.js';
import { readRecords } from '../sources/files.js';
import { vegaDatasetPath } from '../sources/datasets.js';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';
import { BlobTable } from '../store/sqlite/blob-table.js';
import { startRun } from '../capture/run.js';
import { replay } from '../replay/range.js';
import { appendRecords, LogSource } from '../stream/log.js';
import type { LoadedStep, StepContext } from '../step/runtime.js';
import type { JsonValue } from '../hash/canonical.js';
import { benchReplayTools } from './replay-tools.js';
import { benchPostgres } from './pg.js';
import { benchMerkle } from './merkle.js';
import { benchObjects } from './objects.js';
import { benchHttp } from './http.js';
import { benchUi } from './ui.js';

/** One benchmark figure. */
export interface BenchResult {
  name: string;
  unit: string;
  value: number;
  extra?: string;
}

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');

async function loadRecords(n: number): Promise<SourceRecord[]> {
  const out: SourceRecord[] = [];
  for await (const r of readRecords(vegaDatasetPath('flights-3m.parquet'), { limit: n })) out.push(r);
  return out;
}

function tempStore(label: string): { dir: string; store: SqliteStore } {
  const dir = mkdtempSync(join(tmpdir(), `provenant-bench-${label}-`));
  return { dir, store: SqliteStore.open(dir) };
}

function metadataBytes(store: SqliteStore): { metadata: number; blobs: number } {
  store.database.pragma('wal_checkpoint(TRUNCATE)');
  const rows = store.database.prepare('SELECT name, sum(pgsize) AS bytes FROM dbstat GROUP BY name').all() as { name: string; bytes: number }[];
  let metadata = 0;
  let blobs = 0;
  for (const r of rows) {
    if (r.name === 'blob_rows' || r.name === 'blob_index' || r.name === 'blob_recent') blobs += r.bytes;
    else metadata += r.bytes;
  }
  return { metadata, blobs };
}

/** The example flights pipeline cut to its first two (stateless) steps, normalize and classify. */
async function twoStepFlights(): Promise<LoadedPipeline> {
  const loaded = await loadPipelineFile(join(repo, 'examples', 'flights', 'pipeline.ts'));
  return { ...loaded, definition: { ...loaded.definition, steps: loaded.definition.steps.slice(0, 2) } };
}

/**
 * Capture through the real path: runPipeline with the example flights pipeline's first two
 * (stateless) steps, normalize and classify, as in every earlier figure; no checkpoints.
 */
async function benchCapture(records: SourceRecord[]) {
  const pipeline = await twoStepFlights();
  const { dir, store } = tempStore('capture');
  const before = metadataBytes(store);
  const fileBefore = statSync(store.databasePath).size;
  const t0 = performance.now();
  const result = await runPipeline(store, pipeline.definition, records, { baseDir: pipeline.baseDir, streamId: 'bench', checkpoint: false });
  const seconds = (performance.now() - t0) / 1000;
  const after = metadataBytes(store);
  const fileAfter = statSync(store.databasePath).size;
  const stats = await store.stats();
  // Load the same stored artifacts for the bare and floor loops: identical code, no capture.
  const run = await startRun(store, { name: 'bench-load' });
  const steps: LoadedStep[] = [];
  for (const s of pipeline.definition.steps) steps.push(await run.step(s.id, { module: resolve(pipeline.baseDir, s.module) }));
  const params = pipeline.definition.steps.map((s) => s.params ?? {});
  await run.finish();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return {
    executions: result.executions,
    seconds,
    metadataPerExecution: (after.metadata - before.metadata) / result.executions,
    filePerExecution: (fileAfter - fileBefore) / result.executions,
    meanValueBytes: stats.blobBytes / stats.blobs,
    values: stats.blobs,
    steps,
    params,
  };
}

const ctx: StepContext = { stepId: 'bench', versionHash: 'sha256:0', executionId: '', runId: '', context: {} };

/** The same steps called bare, in a chain, with no recording at all. */
async function benchBare(records: SourceRecord[], steps: LoadedStep[], params: JsonValue[]) {
  let executions = 0;
  let sink = 0;
  const t0 = performance.now();
  for (const r of records) {
    let v: unknown = r.value;
    for (let i = 0; i < steps.length; i++) {
      v = await (steps[i] as LoadedStep).fn(v, params[i], ctx);
      executions++;
    }
    sink += v === null ? 0 : 1;
  }
  const seconds = (performance.now() - t0) / 1000;
  if (sink < 0) throw new Error('unreachable');
  return { executions, seconds };
}

/**
 * The floor: only the unavoidable work per execution — canonicalize and SHA-256 the input and
 * the output, call the step, insert one execution row and one row per new value into the same
 * SQLite schema, in batched transactions.
 */
async function benchFloor(records: SourceRecord[], steps: LoadedStep[], params: JsonValue[]) {
  const { dir, store } = tempStore('floor');
  const run = await startRun(store, { name: 'floor' });
  const loaded: LoadedStep[] = [];
  for (const s of steps) {
    await store.putBlob(Buffer.from(s.code));
    await store.registerStepVersion({ stepId: s.stepId, versionHash: s.versionHash, manifest: s.manifest, firstSeenUs: nowUs(), firstRunId: null });
    loaded.push(s);
  }
  await run.finish();
  const db = store.database;
  const runSeq = (db.prepare('SELECT seq FROM runs WHERE id = ?').get(run.id) as { seq: number }).seq;
  const stepSeqs = loaded.map(
    (s) => (db.prepare('SELECT seq FROM step_versions WHERE step_id = ? AND version_hash = ?').get(s.stepId, hashToBytes(s.versionHash)) as { seq: number }).seq,
  );
  const contextSeq = (db.prepare('SELECT seq FROM contexts LIMIT 1').get() as { seq: number }).seq;
  const paramsHashes = params.map((p) => hashToBytes(sha256(canonicalize(p))));
  const values = new BlobTable(db);
  const insertExecution = db.prepare(`INSERT INTO executions (id, run, step_version, inputs, output, params, context, started, duration,
    status, error, encodings, stream, "offset", record_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, NULL, 0, NULL, ?, ?)`);
  type Row = [Uint8Array, number, Buffer, Buffer, Buffer, Buffer, Buffer, Buffer, number];
  const commit = db.transaction((rows: Row[]) => {
    for (const [id, step, inHash, inBytes, outHash, outBytes, pHash, recordHash, offset] of rows) {
      values.insert(inHash, inBytes.length, 0, inBytes);
      values.insert(outHash, outBytes.length, 0, outBytes);
      insertExecution.run(id, runSeq, step, inHash, outHash, pHash, contextSeq, 0, 0, offset, recordHash);
    }
    values.mergeIfDue();
  });
  let executions = 0;
  let rows: Row[] = [];
  const t0 = performance.now();
  for (const r of records) {
    let v: unknown = r.value;
    for (let i = 0; i < loaded.length; i++) {
      const inText = Buffer.from(canonicalize(v));
      const inHash = hashToBytes(sha256(inText));
      v = await (loaded[i] as LoadedStep).fn(v, params[i], ctx);
      const outText = Buffer.from(canonicalize(v));
      const outHash = hashToBytes(sha256(outText));
      rows.push([newIdWithBytes().bytes, stepSeqs[i] as number, inHash, inText, outHash, outText, paramsHashes[i] as Buffer, outHash, r.offset]);
      executions++;
      if (rows.length >= 2000) {
        commit.immediate(rows);
        rows = [];
      }
    }
  }
  commit.immediate(rows);
  const seconds = (performance.now() - t0) / 1000;
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return { executions, seconds };
}

/** A fresh store whose embedded stream `flights` holds the records (appended untimed). */
async function streamStore(label: string, records: SourceRecord[]): Promise<{ dir: string; store: SqliteStore }> {
  const t = tempStore(label);
  await appendRecords(t.store, 'flights', records.map((r) => r.value), { batchSize: 5000 });
  return t;
}

/**
 * Streams: the whole example pipeline (normalize, classify, and the stateful routeStats) over
 * an embedded stream, with checkpoints every 10,000 records and without; then a verified replay
 * of the checkpointed run. Capture runs alternate (with, without, with, without…), each in a
 * fresh store; medians are reported (this 2-core machine's speed drifts by ±10% from run to run),
 * with the process's CPU time per record beside them.
 */
async function benchStream(records: SourceRecord[], rounds: number) {
  const pipeline = await loadPipelineFile(join(repo, 'examples', 'flights', 'pipeline.ts'));
  const withCp: number[] = [];
  const withoutCp: number[] = [];
  const cpuWith: number[] = [];
  const cpuWithout: number[] = [];
  const replays: number[] = [];
  let checkpoints = 0;
  for (let round = 0; round < rounds; round++) {
    for (const checkpointed of [true, false]) {
      const { dir, store } = await streamStore(checkpointed ? 'stream-cp' : 'stream-nocp', records);
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const result = await runPipeline(store, pipeline.definition, new LogSource(store, 'flights'), {
        baseDir: pipeline.baseDir,
        checkpoint: checkpointed ? { everyRecords: 10_000, intervalMs: 3_600_000 } : false,
      });
      const rate = result.records / ((performance.now() - t0) / 1000);
      const cpu = process.cpuUsage(c0);
      (checkpointed ? withCp : withoutCp).push(rate);
      (checkpointed ? cpuWith : cpuWithout).push((cpu.user + cpu.system) / result.records);
      if (checkpointed) {
        checkpoints = result.checkpoints;
        const r0 = performance.now();
        const r = await replay(store, { streamId: 'flights', runId: result.runId });
        if (r.diverged !== 0) throw new Error(`bench replay diverged: ${JSON.stringify(r.firstDivergence)}`);
        replays.push(r.records / ((performance.now() - r0) / 1000));
      }
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    const mid = Math.floor(s.length / 2);
    return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
  };
  return {
    withCp: median(withCp),
    withoutCp: median(withoutCp),
    replay: median(replays),
    cpuWith: median(cpuWith),
    cpuWithout: median(cpuWithout),
    checkpoints,
    all: { withCp, withoutCp, replays },
  };
}

/** The parts of `npm run bench`, in the order they run (BENCH_ONLY picks some). */
const PARTS = ['capture', 'growth', 'stream', 'merkle', 'replay-tools', 'pg', 'objects', 'http', 'ui'];

/** Bytes this process has written (all files), from /proc (Linux); undefined elsewhere. */
function bytesWritten(): number | undefined {
  try {
    const m = /wchar: (\d+)/.exec(readFileSync('/proc/self/io', 'utf8'));
    return m === null ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

/**
 * Capture into a growing store: the same two steps over consecutive slices of 100,000 records of
 * flights-3m.parquet, all into one store. Each value is found by its random digest, so how fast
 * capture stays as the store fills up is a property of the value index (see blob-table.ts).
 */
async function growthFigures(total: number): Promise<BenchResult[]> {
  const slice = 100_000;
  process.stderr.write(`Measuring capture into one growing store (${total.toLocaleString('en-US')} records in slices of ${slice.toLocaleString('en-US')})…\n`);
  const records = await loadRecords(total);
  const { baseDir, definition } = await twoStepFlights();
  const { dir, store } = tempStore('growth');
  const rates: number[] = [];
  const written: number[] = [];
  try {
    for (let at = 0; at < records.length; at += slice) {
      const w0 = bytesWritten();
      const t0 = performance.now();
      const r = await runPipeline(store, definition, records.slice(at, at + slice), { baseDir, streamId: 'bench', checkpoint: false });
      rates.push(r.executions / ((performance.now() - t0) / 1000));
      const w1 = bytesWritten();
      if (w0 !== undefined && w1 !== undefined) written.push((w1 - w0) / r.executions);
    }
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const first = rates[0] ?? 0;
  const last = rates[rates.length - 1] ?? 0;
  const executions = records.length * definition.steps.length;
  const perSlice = rates.map((r, i) => `${Math.round(r)}${written[i] === undefined ? '' : ` (${Math.round(written[i] as number)} B written/execution)`}`).join(', ');
  return [
    {
      name: 'capture.large_store_executions_per_s',
      unit: 'executions/s',
      value: Math.round(last),
      extra: `the last of ${rates.length} slices of ${slice} records x 2 steps captured into one store (${executions} executions in all); per slice: ${perSlice}`,
    },
    { name: 'capture.large_store_vs_fresh_ratio', unit: 'x', value: round(last / first), extra: 'rate of the last slice / rate of the first, same store' },
  ];
}

async function captureFigures(records: SourceRecord[], n: number, meanBytes: number): Promise<BenchResult[]> {
  // Warm up the JIT and the file system on a small slice, then measure.
  const warm = records.slice(0, 5000);
  const w = await benchCapture(warm);
  await benchBare(warm, w.steps, w.params);
  await benchFloor(warm, w.steps, w.params);

  process.stderr.write('Measuring capture, bare calls and the floor…\n');
  const capture = await benchCapture(records);
  const bare = await benchBare(records, capture.steps, capture.params);
  const floor = await benchFloor(records, capture.steps, capture.params);

  const captureRate = capture.executions / capture.seconds;
  const bareRate = bare.executions / bare.seconds;
  const floorRate = floor.executions / floor.seconds;
  const flags = process.execArgv.length > 0 ? ` ${process.execArgv.join(' ')}` : '';
  const common =
    `${n} flights-3m.parquet records x 2 steps (example flights pipeline); source records ${meanBytes} B and ` +
    `stored values ${Math.round(capture.meanValueBytes)} B canonical JSON on average (${capture.values} values); node ${process.version}${flags}`;
  return [
    { name: 'capture.step_executions_per_s', unit: 'executions/s', value: Math.round(captureRate), extra: `${common}; every input and output stored` },
    { name: 'capture.uninstrumented_per_s', unit: 'executions/s', value: Math.round(bareRate), extra: `${common}; same stored step artifacts called bare` },
    { name: 'capture.overhead_ratio', unit: 'x', value: round(bareRate / captureRate), extra: 'uninstrumented rate / capture rate' },
    { name: 'floor.step_executions_per_s', unit: 'executions/s', value: Math.round(floorRate), extra: `${common}; canonicalize+SHA-256 input and output, one execution row and value rows per execution, batched` },
    { name: 'capture.vs_floor_ratio', unit: 'x', value: round(floorRate / captureRate), extra: 'floor rate / capture rate (target <= 2.0)' },
    {
      name: 'capture.metadata_bytes_per_execution',
      unit: 'bytes',
      value: Math.round(capture.metadataPerExecution),
      extra: `SQLite pages of every table and index except blobs (dbstat), per execution; whole file incl. inline blobs: ${Math.round(capture.filePerExecution)} B/execution`,
    },
  ];
}

async function streamFigures(records: SourceRecord[], n: number): Promise<BenchResult[]> {
  await benchStream(records.slice(0, 5000), 1);
  process.stderr.write('Measuring stream capture with and without checkpoints, and verified replay…\n');
  const stream = await benchStream(records, 3);
  const streamCommon = `${n} flights-3m.parquet records from an embedded stream through the example pipeline (normalize, classify, stateful routeStats)`;
  const runs = (xs: number[]): string => xs.map((x) => Math.round(x)).join(', ');
  return [
    {
      name: 'stream.capture_records_per_s',
      unit: 'records/s',
      value: Math.round(stream.withCp),
      extra: `${streamCommon}; checkpoints every 10,000 records (${stream.checkpoints} per run), state snapshots included; median of runs ${runs(stream.all.withCp)}`,
    },
    {
      name: 'stream.capture_no_checkpoint_records_per_s',
      unit: 'records/s',
      value: Math.round(stream.withoutCp),
      extra: `${streamCommon}; no checkpoints (batches committed by size and time); median of runs ${runs(stream.all.withoutCp)}`,
    },
    {
      name: 'checkpoint.overhead_pct',
      unit: '%',
      value: round((stream.withoutCp / stream.withCp - 1) * 100),
      extra:
        `time per record with checkpoints over without, minus 1 (target < 5%; negative: checkpointed runs were faster); ` +
        `CPU time per record (both threads) ${round(stream.cpuWith)} µs with checkpoints, ${round(stream.cpuWithout)} µs without (${round((stream.cpuWith / stream.cpuWithout - 1) * 100)}%)`,
    },
    {
      name: 'replay.verify_records_per_s',
      unit: 'records/s',
      value: Math.round(stream.replay),
      extra: `verified replay of the checkpointed run: recorded versions from stored artifacts, records read again from the stream, every output hash and state snapshot compared; median of runs ${runs(stream.all.replays)}`,
    },
    {
      name: 'replay.verify_vs_capture_ratio',
      unit: 'x',
      value: round(stream.replay / stream.withCp),
      extra: 'replay.verify_records_per_s / stream.capture_records_per_s (target >= 0.8)',
    },
  ];
}

async function main(): Promise<void> {
  const n = Number(process.env.BENCH_RECORDS ?? 100_000);
  const outFile = resolve(process.env.BENCH_OUT ?? join(repo, 'bench', 'results', 'latest.json'));
  const only = process.env.BENCH_ONLY === undefined ? undefined : new Set(process.env.BENCH_ONLY.split(',').map((p) => p.trim()));
  const unknown = only === undefined ? [] : [...only].filter((p) => !PARTS.includes(p));
  if (unknown.length > 0) throw new Error(`BENCH_ONLY: unknown part(s) ${unknown.join(', ')}; the parts are ${PARTS.join(', ')}`);
  const runs = (part: string): boolean => only === undefined || only.has(part);

  process.stderr.write(`Loading ${n.toLocaleString('en-US')} records from flights-3m.parquet…\n`);
  const records = await loadRecords(n);
  const meanBytes = Math.round(records.slice(0, 5000).reduce((s, r) => s + canonicalize(r.value).length, 0) / Math.min(5000, records.length));
  const flightsFile = join(repo, 'examples', 'flights', 'pipeline.ts');

  const results: BenchResult[] = [];
  if (runs('capture')) results.push(...(await captureFigures(records, n, meanBytes)));
  if (runs('growth')) results.push(...(await growthFigures(Number(process.env.BENCH_GROWTH_RECORDS ?? 500_000))));
  if (runs('stream')) results.push(...(await streamFigures(records, n)));
  if (runs('merkle')) {
    process.stderr.write('Measuring the Merkle log: appends, capture with and without it, verify…\n');
    const flightsPipeline = await loadPipelineFile(flightsFile);
    results.push(...(await benchMerkle(records, flightsPipeline.definition, flightsPipeline.baseDir)));
  }
  if (runs('replay-tools')) {
    process.stderr.write('Measuring what-if and bisect…\n');
    results.push(...(await benchReplayTools(records)));
  }
  if (runs('pg')) {
    process.stderr.write('Measuring PostgreSQL capture and several workers…\n');
    results.push(...(await benchPostgres(records, await twoStepFlights(), flightsFile, join(repo, 'dist', 'cli', 'main.js'))));
  }
  if (runs('objects')) results.push(...(await benchObjects()));
  if (runs('http')) {
    process.stderr.write('Measuring the HTTP API…\n');
    results.push(...(await benchHttp()));
  }
  if (runs('ui')) {
    process.stderr.write('Measuring the web UI (lineage graph in headless Chromium)…\n');
    results.push(...(await benchUi()));
  }
  // With BENCH_ONLY, the figures of the parts not run are kept from the existing file.
  const fresh = new Set(results.map((r) => r.name));
  const kept = only !== undefined && existsSync(outFile) ? (JSON.parse(readFileSync(outFile, 'utf8')) as BenchResult[]).filter((r) => !fresh.has(r.name)) : [];
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, `${JSON.stringify([...kept, ...results], null, 2)}\n`);
  const width = Math.max(...results.map((r) => r.name.length));
  process.stdout.write(results.map((r) => `${r.name.padEnd(width)}  ${String(r.value).padStart(10)} ${r.unit}`).join('\n') + `\n\n${only === undefined ? 'Written to' : 'Merged into'} ${outFile}\n`);
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

await main();
