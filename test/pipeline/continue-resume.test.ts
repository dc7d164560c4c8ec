/**
 * A run that continues another run's checkpoint (`continueFrom`, as a worker's segment does) and is
 * killed with SIGKILL before its own first checkpoint completes: resuming it starts over from the
 * continued checkpoint's state — not from empty state — and the resumed run replays and verifies.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, expect, it } from 'vitest';
import { runPipeline, resumePipeline } from '../../src/pipeline/execute.js';
import { replay } from '../../src/replay/range.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { appendRecords, LogSource } from '../../src/stream/log.js';
import { ensureDist } from '../helpers/dist.js';
import { DIST_INDEX } from '../helpers/paths.js';
import { writeProject } from '../helpers/project.js';
import { makeTempDir } from '../helpers/temp.js';

beforeAll(async () => {
  await ensureDist();
}, 180_000);

const KEYS = 7;
const records = Array.from({ length: 300 }, (_, i) => ({ key: `k${i % KEYS}`, seq: Math.floor(i / KEYS) + 1 }));

it('resuming a killed run that continued another run restores the continued state', async () => {
  const project = makeTempDir();
  writeProject(project, {
    'count.ts': `export default function count(r: { key: string; seq: number }, _p: unknown, ctx: { state: unknown }) {
  const seen = ctx.state as Record<string, number>;
  seen[r.key] = (seen[r.key] ?? 0) + 1;
  return { key: r.key, seq: r.seq, count: seen[r.key] };
}`,
  });
  const pipeline = { name: 'counting', steps: [{ id: 'count', module: './count.ts', stateful: true }] };
  const dir = join(project, 'store');
  let store = SqliteStore.open(dir);
  await appendRecords(store, 'nums', records);
  const first = await runPipeline(store, pipeline, new LogSource(store, 'nums'), { baseDir: project, to: 100, checkpoint: { everyRecords: 50 } });
  const continued = (await store.getCheckpoint(first.lastCheckpointId as string))!;
  await store.close();

  // A child continues it over offsets 100.., and is killed while the source stalls before its first checkpoint.
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const { SqliteStore, LogSource, runPipeline } = await import(${JSON.stringify(DIST_INDEX)});
       const store = SqliteStore.open(${JSON.stringify(dir)});
       const source = new LogSource(store, 'nums');
       const stalling = Object.create(source);
       stalling.read = async function* (o) { let n = 0; for await (const r of source.read(o)) { if (n++ === 40) { process.stdout.write('stalled\\n'); await new Promise(() => {}); } yield r; } };
       const from = await store.getCheckpoint(${JSON.stringify(continued.checkpointId)});
       await runPipeline(store, ${JSON.stringify(pipeline)}, stalling, { baseDir: ${JSON.stringify(project)}, from: 100, continueFrom: from, checkpoint: { everyRecords: 1000, intervalMs: 600000 } });`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise((resolve) => child.on('exit', resolve));
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  for (let i = 0; i < 300 && !out.includes('stalled'); i++) await sleep(50);
  child.kill('SIGKILL');
  await exited;
  expect(out, err).toContain('stalled');

  store = SqliteStore.open(dir);
  try {
    const runs = await store.listRuns();
    const killed = runs.find((r) => r.end === null);
    expect(killed).toBeDefined();
    const resumed = await resumePipeline(store, killed!.id, { source: new LogSource(store, 'nums') });
    expect(resumed.resumedFrom).toBeNull();
    // Counts go on from the continued state: each key's running count is its seq.
    const outputs = await Promise.all(
      (await store.listExecutions({ runId: killed!.id, limit: 1000 })).map(async (e) => JSON.parse(Buffer.from(await store.getBlob(e.outputHash!)).toString('utf8')) as { seq: number; count: number }),
    );
    expect(outputs.length).toBeGreaterThanOrEqual(200);
    expect(outputs.filter((o) => o.count !== o.seq)).toEqual([]);
    // And the resumed run replays with that state.
    const r = await replay(store, { streamId: 'nums', runId: killed!.id });
    expect(r.diverged).toBe(0);
    expect(r.records).toBe(200);
  } finally {
    await store.close();
  }
}, 120_000);
