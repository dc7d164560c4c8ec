/**
 * Crash trials: a child process runs a pipeline over real data (vega-datasets flights, appended
 * to an embedded stream with a sequence number per record) with checkpoints and an NDJSON sink,
 * and is killed with SIGKILL at random moments; after every kill the store must open, pass
 * `PRAGMA integrity_check`, and still hold every checkpoint the child saw committed; then the
 * run is resumed (and perhaps killed again) until it finishes, and the sink must hold every
 * record's output exactly once: each sequence number once, and per route a running count
 * 1, 2, 3… with no gap and no duplicate (the stateful step's state was restored exactly).
 *
 * Used by the test suite (a few dozen trials) and by `npm run crash-trials -- <n>` (hundreds).
 */
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { appendRecords } from '../stream/log.js';
import { readRecords } from '../sources/files.js';
import { vegaDatasetPath } from '../sources/datasets.js';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The built library the child imports (dist/index.js). */
const DIST_INDEX = resolve(here, '..', 'index.js');

/** Options of one {@link crashTrial}. */
export interface CrashTrialOptions {
  /** Records in the stream. Default 6000. */
  readonly records?: number;
  /** Checkpoint every n records. Default 250. */
  readonly checkpointEvery?: number;
  /** At most this many kills before the run is let finish. Default 2. */
  readonly maxKills?: number;
  /** Kill within this many ms after the child is ready. Default [0, 1200]. */
  readonly killWindowMs?: readonly [number, number];
  /** Path of the built library to use (default: next to this module). */
  readonly distIndex?: string;
  /** Random source (default Math.random). */
  readonly random?: () => number;
}

/** What a trial saw. */
export interface CrashTrialReport {
  readonly kills: number;
  readonly killDelaysMs: readonly number[];
  readonly committedBeforeKills: number;
  readonly resumes: number;
  readonly outputs: number;
  readonly checkpoints: number;
  /** How long the last (unkilled) run took from its `ready` line to its exit: what a kill window should span. */
  readonly lastRunMs: number;
}

/** A problem found by a trial, with what is needed to look into it. */
export class CrashTrialError extends Error {
  constructor(message: string, readonly dir: string) {
    super(`${message} (store kept at ${dir})`);
  }
}

const STEPS = {
  'steps/parse.ts': `export default function parse(r: { seq: number; origin: string; destination: string; delay: number }) {
  return { seq: r.seq, route: r.origin + '-' + r.destination, delay: r.delay };
}
`,
  'steps/count.ts': `export default function count(r: { seq: number; route: string; delay: number }, _p: unknown, ctx: { state?: Record<string, number> }) {
  const state = ctx.state as Record<string, number>;
  state[r.route] = (state[r.route] ?? 0) + 1;
  return { ...r, routeCount: state[r.route] };
}
`,
};

function childScript(distIndex: string): string {
  return `import { openStore, runPipeline, resumePipeline, LogSource, NdjsonFileSink } from ${JSON.stringify(distIndex)};
const [mode, storeDir, projectDir, out, every, runId] = process.argv.slice(2);
const store = await openStore(storeDir);
const pipeline = {
  name: 'crash-trial',
  failurePolicy: 'stop',
  steps: [
    { id: 'parse', module: projectDir + '/steps/parse.ts' },
    { id: 'count', module: projectDir + '/steps/count.ts', stateful: true },
  ],
};
const onCheckpoint = (end) => process.stdout.write('committed ' + end.checkpointId + '\\n');
process.stdout.write('ready\\n');
let result;
if (mode === 'start') {
  const sink = new NdjsonFileSink(out);
  await sink.restore(null);
  result = await runPipeline(store, pipeline, new LogSource(store, 'flights'), {
    baseDir: projectDir, checkpoint: { everyRecords: Number(every), intervalMs: 60000 }, sink, onCheckpoint,
    onProgress: (p) => { if (p.records === 1) process.stdout.write('running ' + JSON.stringify(p) + '\\n'); }, progressEvery: 1,
  });
} else {
  result = await resumePipeline(store, runId, { onCheckpoint });
}
await store.close();
process.stdout.write('done ' + result.runId + '\\n');
`;
}

interface ChildOutcome {
  readonly killed: boolean;
  readonly committed: string[];
  readonly runId: string | undefined;
  /** From the child's `ready` line to its exit (0 when it never got ready). */
  readonly runMs: number;
}

async function runChild(script: string, args: string[], killAfterMs: number | undefined): Promise<ChildOutcome> {
  const proc = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const committed: string[] = [];
  let runId: string | undefined;
  let stderr = '';
  let buffer = '';
  let readyAt = 0;
  let ready!: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (chunk: string) => {
    buffer += chunk;
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line === 'ready') {
        readyAt = performance.now();
        ready();
      }
      else if (line.startsWith('committed ')) committed.push(line.slice(10));
      else if (line.startsWith('done ')) runId = line.slice(5);
    }
  });
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (c: string) => (stderr += c));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  let killed = false;
  if (killAfterMs !== undefined) {
    const raced = await Promise.race([isReady.then(() => 'ready' as const), exited.then(() => 'exited' as const)]);
    if (raced === 'ready') {
      await Promise.race([sleep(killAfterMs), exited]);
      killed = proc.kill('SIGKILL');
    }
  }
  const { code, signal } = await exited;
  const runMs = readyAt === 0 ? 0 : performance.now() - readyAt;
  if (signal !== null && killed) return { killed: true, committed, runId, runMs };
  if (code !== 0) throw new Error(`child ${args[0]} exited with ${code}: ${stderr.slice(-2000)}`);
  return { killed: killed && signal === 'SIGKILL', committed, runId, runMs };
}

/** Prepare a trial folder: the step modules and a store with the flights stream. */
async function prepare(dir: string, records: number): Promise<void> {
  for (const [path, code] of Object.entries(STEPS)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), code);
  }
  const store = SqliteStore.open(join(dir, 'store'));
  try {
    let seq = 0;
    async function* flights() {
      for await (const r of readRecords(vegaDatasetPath('flights-20k.json'), { limit: records })) {
        const f = r.value as { origin: string; destination: string; delay: number };
        yield { seq: seq++, origin: f.origin, destination: f.destination, delay: f.delay };
      }
    }
    await appendRecords(store, 'flights', flights(), { batchSize: 5000 });
  } finally {
    await store.close();
  }
}

/** Check the store right after a kill. */
function checkAfterKill(storeDir: string, committed: readonly string[], dir: string): number {
  const db = new Database(join(storeDir, 'provenant.db'), { readonly: true });
  try {
    const integrity = db.pragma('integrity_check', { simple: true });
    if (integrity !== 'ok') throw new CrashTrialError(`integrity_check after a kill: ${String(integrity)}`, dir);
    const complete = new Set(
      (db.prepare(`SELECT c.id FROM checkpoints c JOIN checkpoint_ends e ON e.checkpoint = c.seq WHERE e.status = 'COMPLETE'`).all() as { id: string }[]).map((r) => r.id),
    );
    for (const id of committed) {
      if (!complete.has(id)) throw new CrashTrialError(`checkpoint ${id} was committed before the kill but is not COMPLETE after it`, dir);
    }
    // Every execution belongs to an ended checkpoint: nothing of the open one was committed.
    const orphans = (
      db
        .prepare(
          `SELECT count(*) AS n FROM executions x WHERE NOT EXISTS (
             SELECT 1 FROM checkpoints c JOIN checkpoint_ends e ON e.checkpoint = c.seq
             WHERE c.run = x.run AND x.id BETWEEN e.first_execution AND e.last_execution)`,
        )
        .get() as { n: number }
    ).n;
    if (orphans > 0) throw new CrashTrialError(`${orphans} executions are outside every ended checkpoint`, dir);
    return complete.size;
  } finally {
    db.close();
  }
}

/** Check the sink once the run finished: every record exactly once; per route 1, 2, 3… */
function checkSink(out: string, records: number, dir: string): number {
  const lines = readFileSync(out, 'utf8').split('\n').filter((l) => l !== '');
  const seen = new Uint8Array(records);
  const perRoute = new Map<string, number>();
  for (const line of lines) {
    const o = JSON.parse(line) as { seq: number; route: string; routeCount: number };
    if (seen[o.seq] === 1) throw new CrashTrialError(`record ${o.seq} is in the sink twice`, dir);
    seen[o.seq] = 1;
    const expected = (perRoute.get(o.route) ?? 0) + 1;
    if (o.routeCount !== expected) throw new CrashTrialError(`route ${o.route}: count ${o.routeCount} where ${expected} was due (record ${o.seq})`, dir);
    perRoute.set(o.route, expected);
  }
  const missing = seen.indexOf(0);
  if (missing >= 0) throw new CrashTrialError(`record ${missing} is missing from the sink (${lines.length} of ${records} there)`, dir);
  return lines.length;
}

/**
 * One trial in a fresh folder (removed when it passes; kept and named in the error when not).
 * @throws CrashTrialError naming what broke
 */
export async function crashTrial(options: CrashTrialOptions = {}): Promise<CrashTrialReport> {
  const records = options.records ?? 6000;
  const every = options.checkpointEvery ?? 250;
  const maxKills = options.maxKills ?? 2;
  const [lo, hi] = options.killWindowMs ?? [0, 1200];
  const random = options.random ?? Math.random;
  const dir = mkdtempSync(join(tmpdir(), 'provenant-crash-'));
  const storeDir = join(dir, 'store');
  const out = join(dir, 'out.ndjson');
  const script = join(dir, 'child.mjs');
  writeFileSync(script, childScript(options.distIndex ?? DIST_INDEX));
  await prepare(dir, records);
  const delays: number[] = [];
  let committedBeforeKills = 0;
  let resumes = 0;
  let runId: string | undefined;
  let checkpoints = 0;
  let mode: 'start' | 'resume' = 'start';
  let lastRunMs = 0;
  for (;;) {
    const kill = delays.length < maxKills ? Math.round(lo + random() * (hi - lo)) : undefined;
    if (mode === 'resume') resumes++;
    const outcome = await runChild(script, [mode, storeDir, dir, out, String(every), runId ?? ''], kill);
    if (!outcome.killed) {
      runId = outcome.runId;
      lastRunMs = outcome.runMs;
      break;
    }
    delays.push(kill ?? 0);
    committedBeforeKills += outcome.committed.length;
    checkpoints = checkAfterKill(storeDir, outcome.committed, dir);
    const found = findRun(storeDir);
    runId = found?.id;
    // Killed after the run had ended: nothing left to do.
    if (found?.ended === true) break;
    // Killed before the run's first checkpoint was opened: start again.
    mode = runId === undefined ? 'start' : 'resume';
  }
  const outputs = checkSink(out, records, dir);
  rmSync(dir, { recursive: true, force: true });
  return { kills: delays.length, killDelaysMs: delays, committedBeforeKills, resumes, outputs, checkpoints, lastRunMs };
}

function findRun(storeDir: string): { id: string; ended: boolean } | undefined {
  const db = new Database(join(storeDir, 'provenant.db'), { readonly: true });
  try {
    // A run killed before its first checkpoint was opened cannot be resumed: it is started again.
    const row = db
      .prepare(
        `SELECT r.id, EXISTS (SELECT 1 FROM run_ends e WHERE e.run = r.seq) AS ended FROM runs r
         WHERE r.kind = 'capture' AND EXISTS (SELECT 1 FROM checkpoints c WHERE c.run = r.seq) ORDER BY r.seq DESC LIMIT 1`,
      )
      .get() as { id: string; ended: number } | undefined;
    return row === undefined ? undefined : { id: row.id, ended: row.ended === 1 };
  } finally {
    db.close();
  }
}

/** `node dist/bench/crash-trials.js [trials]`: run many trials and print a summary. */
async function main(): Promise<void> {
  const trials = Number(process.argv[2] ?? 500);
  const started = Date.now();
  let kills = 0;
  let committed = 0;
  for (let i = 1; i <= trials; i++) {
    const r = await crashTrial({ records: 10_000, checkpointEvery: 250, maxKills: 1 + (i % 3), killWindowMs: [0, 1100] });
    kills += r.kills;
    committed += r.committedBeforeKills;
    if (i % 10 === 0 || i === trials) {
      process.stdout.write(`${i}/${trials} trials passed: ${kills} kills, ${committed} checkpoints committed before kills all kept (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
    }
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main();
}
