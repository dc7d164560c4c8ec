/**
 * Several `provenant worker` processes sharing one JetStream stream through one PostgreSQL store,
 * against the real servers: three workers, one killed with SIGKILL mid-stream (its lease expires,
 * another takes its segment over); PostgreSQL restarted while two workers run (they reconnect and
 * go on). Each time, at the end, the executions of the COMPLETE checkpoints hold every record
 * exactly once — per key, the sequence numbers 1..n with no gap and no duplicate. Then a replay job
 * queued with `provenant jobs submit` is taken by a worker and verifies.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { canonicalize, sha256 } from '../../src/hash/canonical.js';
import { publishRecords } from '../../src/sources/jetstream.js';
import { cliJson } from '../helpers/cli.js';
import { ensureDist } from '../helpers/dist.js';
import { DIST_CLI, REPO_ROOT } from '../helpers/paths.js';
import { freshPgUrl, rawPg } from '../helpers/pg.js';
import { writeProject } from '../helpers/project.js';
import { NATS, POSTGRES, describeWithService, natsAvailable, postgresAvailable } from '../helpers/services.js';
import { makeRepoTempDir } from '../helpers/temp.js';

const up = (await postgresAvailable()) && (await natsAvailable());
const KEYS = 7;

/** Records `{ key, seq }`: per key, seq runs 1, 2, 3… in stream order. */
function records(n: number): { key: string; seq: number }[] {
  const next = new Map<string, number>();
  return Array.from({ length: n }, (_, i) => {
    const key = `k${(i * 7919) % KEYS}`;
    const seq = (next.get(key) ?? 0) + 1;
    next.set(key, seq);
    return { key, seq };
  });
}

interface Worker {
  readonly child: ChildProcess;
  readonly events: { kind: string; start?: number }[];
  readonly exit: Promise<number | null>;
  stderr: string;
}

function startWorker(pipeline: string, store: string, stream: string, extra: string[] = [], options: { drain?: boolean } = {}): Worker {
  const drain = options.drain === false ? [] : ['--drain'];
  const child = spawn(process.execPath, [DIST_CLI, 'worker', pipeline, '--store', store, '--stream', stream, '--nats', NATS.url, '--segment-size', '150', '--lease', '3000', ...drain, '--json', ...extra], {
    cwd: REPO_ROOT,
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const w: Worker = { child, events: [], exit: new Promise((resolve) => child.on('exit', (code) => resolve(code))), stderr: '' };
  let buffer = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    w.stderr += chunk.toString();
    buffer += chunk.toString();
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      try {
        w.events.push(JSON.parse(line) as { kind: string });
      } catch {
        // not an event line
      }
    }
  });
  child.stdout?.resume();
  return w;
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * Per key, the seq numbers in the outputs of the `tag` step's executions that belong to COMPLETE
 * checkpoints (a checkpoint's executions: its run's, with ids from its first to its last).
 */
async function completeOutputs(store: string, streamId: string): Promise<{ perKey: Map<string, number[]>; checkpoints: number; offsets: number[] }> {
  const schema = new URL(store).searchParams.get('schema') as string;
  return rawPg(async (c) => {
    const rows = await c.query<{ bytes: Buffer; offset: string }>(
      `SELECT b.bytes, x."offset"
       FROM ${schema}.checkpoints cp
       JOIN ${schema}.checkpoint_ends e ON e.checkpoint = cp.seq AND e.status = 'COMPLETE'
       JOIN ${schema}.executions x ON x.run = cp.run AND x.id BETWEEN e.first_execution AND e.last_execution
       JOIN ${schema}.step_versions sv ON sv.seq = x.step_version AND sv.step_id = 'tag'
       JOIN ${schema}.blobs b ON b.hash = x.output
       WHERE cp.stream = $1`,
      [streamId],
    );
    const checkpoints = await c.query(`SELECT 1 FROM ${schema}.checkpoints cp JOIN ${schema}.checkpoint_ends e ON e.checkpoint = cp.seq AND e.status = 'COMPLETE' WHERE cp.stream = $1`, [streamId]);
    const perKey = new Map<string, number[]>();
    for (const r of rows.rows) {
      const o = JSON.parse(r.bytes.toString('utf8')) as { key: string; seq: number };
      perKey.set(o.key, [...(perKey.get(o.key) ?? []), o.seq]);
    }
    return { perKey, checkpoints: checkpoints.rowCount ?? 0, offsets: rows.rows.map((r) => Number(r.offset)).sort((a, b) => a - b) };
  });
}

/** A project whose pipeline `name` tags each `{ key, seq }` record after `work` loop iterations; returns the pipeline file. */
function writeKeyedProject(name: string, work: number): string {
  const dir = makeRepoTempDir();
  writeProject(dir, {
    'pipeline.ts': `import { definePipeline } from 'provenant';
export default definePipeline({ name: '${name}', failurePolicy: 'dead-letter', steps: [{ id: 'tag', module: './tag.ts' }] });`,
    'tag.ts': `export default function tag(r: { key: string; seq: number }) {
  let x = 0;
  for (let i = 0; i < ${work}; i++) x = (x * 31 + i) % 1000003;
  return { key: r.key, seq: r.seq, work: x };
}`,
  });
  return join(dir, 'pipeline.ts');
}

/** Checkpoints without an end and runs without an end in a store's schema. */
async function leftOpen(schema: string): Promise<{ checkpoints: number; runs: number } | undefined> {
  const open = await rawPg((c) =>
    c.query<{ checkpoints: number; runs: number }>(
      `SELECT (SELECT count(*)::int FROM ${schema}.checkpoints c WHERE NOT EXISTS (SELECT 1 FROM ${schema}.checkpoint_ends e WHERE e.checkpoint = c.seq)) AS checkpoints,
              (SELECT count(*)::int FROM ${schema}.runs r WHERE NOT EXISTS (SELECT 1 FROM ${schema}.run_ends e WHERE e.run = r.seq)) AS runs`,
    ),
  );
  return open.rows[0];
}

function expectExactlyOnce(result: Awaited<ReturnType<typeof completeOutputs>>, total: number): void {
  const expected = new Map<string, number>();
  for (const r of records(total)) expected.set(r.key, r.seq);
  expect([...result.perKey.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [key, last] of expected) {
    const seqs = [...(result.perKey.get(key) ?? [])].sort((a, b) => a - b);
    // No gap, no duplicate: exactly 1, 2, …, last.
    expect(seqs, `key ${key}`).toEqual(Array.from({ length: last }, (_, i) => i + 1));
  }
  expect(result.offsets).toEqual(Array.from({ length: total }, (_, i) => i + 1));
}

describeWithService(POSTGRES, up, 'several workers on one stream (PostgreSQL + JetStream)', () => {
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let pipeline: string;
  let projectDir: string;
  const streams: string[] = [];

  beforeAll(async () => {
    await ensureDist();
    nc = await connect({ servers: NATS.url });
    jsm = await jetstreamManager(nc);
    // A little work per record, so that a segment takes long enough to be cut in the middle.
    pipeline = writeKeyedProject('keyed', 40_000);
    projectDir = dirname(pipeline);
  }, 180_000);

  afterAll(async () => {
    for (const s of streams) await jsm.streams.delete(s).catch(() => undefined);
    await nc.close();
  });

  async function publish(total: number): Promise<string> {
    const name = `PROVENANT_WORKERS_${process.pid}_${Date.now().toString(36)}`;
    streams.push(name);
    const r = await publishRecords({ servers: NATS.url, stream: name, create: true }, records(total));
    expect(r.published).toBe(total);
    return name;
  }

  /** `total` records published, a pipeline that takes a few ms per record, and a migrated store. */
  async function slowSetup(label: string, total: number): Promise<{ slowPipeline: string; name: string; store: string; schema: string }> {
    const slowPipeline = writeKeyedProject(`keyed-${label}`, 1_500_000);
    const name = await publish(total);
    const store = freshPgUrl(label);
    await cliJson(['migrate', '--store', store, '--json']);
    return { slowPipeline, name, store, schema: new URL(store).searchParams.get('schema') as string };
  }

  it('three workers, one killed with SIGKILL mid-stream: its segment is taken over and every record is processed exactly once', async () => {
    const total = 3000;
    const name = await publish(total);
    const store = freshPgUrl('workers');
    await cliJson(['migrate', '--store', store, '--json']);
    const workers = [0, 1, 2].map(() => startWorker(pipeline, store, name));
    const victim = workers[0] as Worker;
    await waitFor(() => victim.events.some((e) => e.kind === 'segment'), 60_000, 'the first worker to finish a segment');
    await sleep(60); // into its next segment
    victim.child.kill('SIGKILL');
    expect(await victim.exit).toBe(null);
    const codes = await Promise.all(workers.slice(1).map((w) => w.exit));
    expect(codes, workers.map((w) => w.stderr).join('\n')).toEqual([0, 0]);

    const schema = new URL(store).searchParams.get('schema') as string;
    const segs = await rawPg((c) => c.query<{ status: string; attempts: number }>(`SELECT status, attempts FROM ${schema}.work_segments`));
    expect(segs.rows.every((s) => s.status === 'done')).toBe(true);
    // The killed worker's segment was taken over by another (a second attempt).
    expect(segs.rows.some((s) => s.attempts >= 2)).toBe(true);
    const result = await completeOutputs(store, `jetstream:${name}`);
    expect(result.checkpoints).toBe(segs.rowCount);
    expectExactlyOnce(result, total);
    // Nothing is left open: the killed worker's run and checkpoint were ended by the worker that
    // took its segment over (FAILED, "abandoned", no executions).
    expect(await leftOpen(schema)).toEqual({ checkpoints: 0, runs: 0 });
    const failedEnds = await rawPg((c) => c.query<{ reason: string; executions: number }>(`SELECT reason, executions FROM ${schema}.checkpoint_ends WHERE status = 'FAILED'`));
    for (const e of failedEnds.rows) {
      expect(e.reason).toMatch(/^abandoned: the worker's lease on segment \d+ of jetstream:\S+ passed/);
      expect(Number(e.executions)).toBe(0);
    }
    // Three workers appended to one Merkle log at once: it is whole, every COMPLETE checkpoint has
    // a signed head, and the tree rebuilt from the records has each head's root.
    const verified = await cliJson<{ intact: boolean; executions: number; checkpoints: number; heads: number; treeSize: number; findings: unknown[] }>(['verify', '--store', store, '--json']);
    expect(verified.findings).toEqual([]);
    expect(verified).toMatchObject({ intact: true, heads: result.checkpoints });
    expect(verified.treeSize).toBe(verified.executions + verified.checkpoints - (await leftOpen(schema))!.checkpoints);

    // A replay job, queued and taken by a free worker, verifies one of the runs.
    const job = await cliJson<{ id: string; status: string }>(['jobs', 'submit', '--stream', `jetstream:${name}`, '--store', store, '--json']);
    expect(job.status).toBe('queued');
    const w = startWorker(pipeline, store, name);
    expect(await w.exit, w.stderr).toBe(0);
    const done = await cliJson<{ status: string; attempts: number; result: { diverged: number; matched: number; executions: number } }>(['jobs', 'show', job.id, '--store', store, '--json']);
    expect(done).toMatchObject({ status: 'done', attempts: 1 });
    expect(done.result.diverged).toBe(0);
    expect(done.result.matched).toBe(done.result.executions);
    expect(done.result.executions).toBeGreaterThan(0);

    // A what-if (another version of `tag`, a module stored and registered at submit) and an as-of
    // read, queued together and taken by a free worker.
    writeFileSync(join(projectDir, 'tag-v2.ts'), 'export default function tag(r: { key: string; seq: number }) {\n  return { key: r.key, seq: r.seq, work: -1 };\n}\n');
    const whatif = await cliJson<{ id: string; kind: string; spec: { substitutions: Record<string, { versionHash: string }> } }>(['jobs', 'submit', '--stream', `jetstream:${name}`, '--replace', `tag=${join(projectDir, 'tag-v2.ts')}`, '--label', 'work off', '--store', store, '--json']);
    expect(whatif.kind).toBe('whatif');
    expect(whatif.spec.substitutions.tag?.versionHash).toMatch(/^sha256:[0-9a-f]{64}$/);
    const objectFile = join(projectDir, 'customer.json');
    writeFileSync(objectFile, JSON.stringify({ id: 42, name: 'Ada' }));
    await cliJson(['put', 'customers/42', objectFile, '--store', store, '--json']);
    const asof = await cliJson<{ id: string; kind: string }>(['jobs', 'submit', '--object', 'customers/42', '--store', store, '--json']);
    expect(asof.kind).toBe('asof');
    const w2 = startWorker(pipeline, store, name);
    expect(await w2.exit, w2.stderr).toBe(0);
    const whatifDone = await cliJson<{ status: string; result: { label: string; records: number; recordOutcomes: { changed: number; unchanged: number }; substitutions: Record<string, { versionHash: string }> } }>(['jobs', 'show', whatif.id, '--store', store, '--json']);
    expect(whatifDone.status).toBe('done');
    expect(whatifDone.result.label).toBe('work off');
    expect(whatifDone.result.records).toBeGreaterThan(0);
    // Every record's output changed (work is now -1).
    expect(whatifDone.result.recordOutcomes.changed).toBe(whatifDone.result.records);
    expect(whatifDone.result.substitutions.tag?.versionHash).toBe(whatif.spec.substitutions.tag?.versionHash);
    const asofDone = await cliJson<{ status: string; result: { objectId: string; obtained: string; contentHash: string; executionsRun: number } }>(['jobs', 'show', asof.id, '--store', store, '--json']);
    expect(asofDone.status).toBe('done');
    expect(asofDone.result).toMatchObject({ objectId: 'customers/42', obtained: 'read', executionsRun: 0 });
    expect(asofDone.result.contentHash).toBe(sha256(canonicalize({ id: 42, name: 'Ada' })));
  }, 240_000);

  it('PostgreSQL restarted during a run: the workers reconnect and go on; no COMPLETE checkpoint is lost and every record is processed exactly once', async () => {
    const total = 2400;
    const name = await publish(total);
    const store = freshPgUrl('restart');
    await cliJson(['migrate', '--store', store, '--json']);
    const workers = [0, 1].map(() => startWorker(pipeline, store, name));
    await waitFor(() => workers.some((w) => w.events.filter((e) => e.kind === 'segment').length >= 2), 60_000, 'two segments done');
    const schema = new URL(store).searchParams.get('schema') as string;
    const before = await rawPg((c) => c.query<{ id: string }>(`SELECT cp.id::text AS id FROM ${schema}.checkpoints cp JOIN ${schema}.checkpoint_ends e ON e.checkpoint = cp.seq WHERE e.status = 'COMPLETE'`));
    expect(before.rowCount).toBeGreaterThan(0);
    execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', '15', 'main', 'restart'], { stdio: 'ignore' });
    const codes = await Promise.all(workers.map((w) => w.exit));
    expect(codes, workers.map((w) => w.stderr).join('\n')).toEqual([0, 0]);
    const after = await rawPg((c) => c.query<{ id: string }>(`SELECT cp.id::text AS id FROM ${schema}.checkpoints cp JOIN ${schema}.checkpoint_ends e ON e.checkpoint = cp.seq WHERE e.status = 'COMPLETE'`));
    const ids = new Set(after.rows.map((r) => r.id));
    for (const r of before.rows) expect(ids.has(r.id)).toBe(true);
    expectExactlyOnce(await completeOutputs(store, `jetstream:${name}`), total);
    // An attempt cut by the restart was ended by the worker that did its segment again: nothing open.
    expect(await leftOpen(schema)).toEqual({ checkpoints: 0, runs: 0 });
    const cut = await rawPg((c) => c.query<{ reason: string; executions: number }>(`SELECT reason, executions FROM ${schema}.checkpoint_ends WHERE status = 'FAILED'`));
    for (const e of cut.rows) {
      expect(e.reason).toMatch(/^abandoned: the connection to the store was lost during this attempt at segment \d+ of jetstream:\S+; worker \S+ did the segment again$/);
      expect(Number(e.executions)).toBe(0);
    }
    // A commit cut by the restart left nothing in the Merkle log: it verifies whole.
    const verified = await cliJson<{ intact: boolean; findings: unknown[] }>(['verify', '--store', store, '--json']);
    expect(verified.findings).toEqual([]);
    expect(verified.intact).toBe(true);
  }, 240_000);
  it("a stateful step's state runs through the whole stream: segments in order, each from the one before; replay restores it; --state segment trades that for parallel segments", async () => {
    const total = 900;
    const name = await publish(total);
    const dir = makeRepoTempDir();
    writeProject(dir, {
      'pipeline.ts': `import { definePipeline } from 'provenant';
export default definePipeline({ name: 'counting', steps: [{ id: 'tag', module: './count.ts', stateful: true }] });`,
      'count.ts': `export default function count(r: { key: string; seq: number }, _p: unknown, ctx: { state: unknown }) {
  const seen = ctx.state as Record<string, number>;
  seen[r.key] = (seen[r.key] ?? 0) + 1;
  return { key: r.key, seq: r.seq, count: seen[r.key] };
}`,
    });
    const counting = join(dir, 'pipeline.ts');
    /** Per output of a COMPLETE checkpoint: the record's seq within its key, and the running count the step gave it. */
    const counts = (store: string) => {
      const schema = new URL(store).searchParams.get('schema') as string;
      return rawPg(async (c) =>
        (
          await c.query<{ bytes: Buffer }>(
            `SELECT b.bytes FROM ${schema}.checkpoints cp
             JOIN ${schema}.checkpoint_ends e ON e.checkpoint = cp.seq AND e.status = 'COMPLETE'
             JOIN ${schema}.executions x ON x.run = cp.run AND x.id BETWEEN e.first_execution AND e.last_execution
             JOIN ${schema}.blobs b ON b.hash = x.output`,
          )
        ).rows.map((r) => JSON.parse(r.bytes.toString('utf8')) as { seq: number; count: number }),
      );
    };

    const store = freshPgUrl('stateful');
    await cliJson(['migrate', '--store', store, '--json']);
    const workers = [0, 1].map(() => startWorker(counting, store, name));
    expect(await Promise.all(workers.map((w) => w.exit)), workers.map((w) => w.stderr).join('\n')).toEqual([0, 0]);
    const outputs = await counts(store);
    expect(outputs).toHaveLength(total);
    // As in one run over the whole stream: each key's running count is its seq.
    expect(outputs.filter((o) => o.count !== o.seq)).toEqual([]);
    // One chain across the runs: only the first segment's checkpoint has no previous one.
    const schema = new URL(store).searchParams.get('schema') as string;
    const roots = await rawPg((c) => c.query(`SELECT 1 FROM ${schema}.checkpoints WHERE previous IS NULL`));
    expect(roots.rowCount).toBe(1);
    // The last segment's run replays with the state its first checkpoint continued from.
    const replayed = await cliJson<{ checkpoints: number; records: number; diverged: number }>(['replay', '--stream', `jetstream:${name}`, '--verify', '--store', store, '--json']);
    expect(replayed).toMatchObject({ checkpoints: 1, records: 150, diverged: 0 });

    // Per segment: in parallel, and each segment's counts start again.
    const parallel = freshPgUrl('stateful');
    await cliJson(['migrate', '--store', parallel, '--json']);
    const loose = [0, 1].map(() => startWorker(counting, parallel, name, ['--state', 'segment']));
    expect(await Promise.all(loose.map((w) => w.exit)), loose.map((w) => w.stderr).join('\n')).toEqual([0, 0]);
    const perSegment = await counts(parallel);
    expect(perSegment).toHaveLength(total);
    expect(perSegment.filter((o) => o.count !== o.seq).length).toBeGreaterThan(0);
  }, 240_000);

  it('idle workers are woken by the others, not at their next poll: when the last segment is done (--drain) and when a job is queued', async () => {
    // One segment of slow records: worker A takes it; worker B, with a minute between polls, has
    // nothing to take and waits. Without a wake-up B would exit up to a minute after A's segment.
    const total = 1000;
    const { slowPipeline, name, store, schema } = await slowSetup('wake', total);
    const poll = ['--segment-size', String(total), '--poll', '60000'];
    const a = startWorker(slowPipeline, store, name, poll);
    const running = async (): Promise<boolean> => ((await rawPg((c) => c.query(`SELECT 1 FROM ${schema}.work_segments WHERE status = 'running'`))).rowCount ?? 0) > 0;
    for (const until = Date.now() + 60_000; !(await running()); await sleep(50)) {
      if (Date.now() > until) throw new Error(`worker A took no segment: ${a.stderr}`);
    }
    const b = startWorker(slowPipeline, store, name, poll);
    await waitFor(() => b.events.some((e) => e.kind === 'idle'), 60_000, 'worker B to find nothing to take');
    expect(a.events.filter((e) => e.kind === 'segment'), 'A finished its segment before B waited: make the segment slower').toEqual([]);
    await waitFor(() => a.events.some((e) => e.kind === 'segment'), 120_000, "A's segment");
    const segmentDone = Date.now();
    expect(await a.exit, a.stderr).toBe(0);
    expect(await b.exit, b.stderr).toBe(0);
    expect(Date.now() - segmentDone).toBeLessThan(15_000);
    expect(b.events.filter((e) => e.kind === 'segment')).toEqual([]);
    expectExactlyOnce(await completeOutputs(store, `jetstream:${name}`), total);

    // A worker without --drain, idle with a minute between polls, takes a job as soon as it is queued.
    const c = startWorker(slowPipeline, store, name, poll, { drain: false });
    await waitFor(() => c.events.some((e) => e.kind === 'idle'), 60_000, 'worker C to go idle');
    const job = await cliJson<{ id: string }>(['jobs', 'submit', '--stream', `jetstream:${name}`, '--store', store, '--json']);
    const queued = Date.now();
    await waitFor(() => c.events.some((e) => e.kind === 'job'), 30_000, 'worker C to take the job');
    expect(Date.now() - queued).toBeLessThan(30_000);
    c.child.kill('SIGTERM');
    expect(await c.exit, c.stderr).toBe(0);
    const done = await cliJson<{ status: string; worker: string; result: { diverged: number; matched: number } }>(['jobs', 'show', job.id, '--store', store, '--json']);
    expect(done).toMatchObject({ status: 'done', result: { diverged: 0, matched: total } });
  }, 240_000);

  it('the last open segment is halved while another worker is busy, down to an eighth of --segment-size; alone, a worker never splits', async () => {
    const total = 1000;
    const name = await publish(total);
    const streamId = `jetstream:${name}`;
    // Alone: segments of exactly --segment-size (the last one cut at the stream's end).
    const alone = freshPgUrl('alone');
    await cliJson(['migrate', '--store', alone, '--json']);
    const a = startWorker(pipeline, alone, name, ['--segment-size', '400']);
    expect(await a.exit, a.stderr).toBe(0);
    const aloneSchema = new URL(alone).searchParams.get('schema') as string;
    const aloneSegs = await rawPg((c) => c.query<{ s: string; e: string }>(`SELECT start_offset AS s, end_offset AS e FROM ${aloneSchema}.work_segments ORDER BY start_offset`));
    expect(aloneSegs.rows.map((r) => [Number(r.s), Number(r.e)])).toEqual([[1, 401], [401, 801], [801, 1001]]);

    // Busy elsewhere: another worker (alive, its lease far ahead) holds [1, 201); this worker takes
    // the rest, [201, 1001), the last open segment — and halves it each time it takes the last one.
    const store = freshPgUrl('split');
    await cliJson(['migrate', '--store', store, '--json']);
    const schema = new URL(store).searchParams.get('schema') as string;
    await rawPg((c) =>
      c.query(`INSERT INTO ${schema}.work_segments (grp, stream, start_offset, end_offset, status, attempts, worker, lease_until)
               VALUES ('keyed', $1, 1, 201, 'running', 1, 'elsewhere:1', (extract(epoch from clock_timestamp()) * 1000000)::bigint + 600000000)`, [streamId]),
    );
    const w = startWorker(pipeline, store, name, ['--segment-size', '800'], { drain: false });
    await waitFor(() => w.events.some((e) => e.kind === 'idle'), 120_000, 'the worker to run out of segments');
    w.child.kill('SIGTERM');
    expect(await w.exit, w.stderr).toBe(0);
    const segs = await rawPg((c) =>
      c.query<{ s: string; e: string; status: string; worker: string }>(`SELECT start_offset AS s, end_offset AS e, status, worker FROM ${schema}.work_segments ORDER BY start_offset`),
    );
    // 800 → 400 | 400 → 200 | 200 → 100 | 100 (an eighth of 800: not split again).
    expect(segs.rows.map((r) => [Number(r.s), Number(r.e), r.status])).toEqual([
      [1, 201, 'running'],
      [201, 601, 'done'],
      [601, 801, 'done'],
      [801, 901, 'done'],
      [901, 1001, 'done'],
    ]);
    // Each piece is one COMPLETE checkpoint over exactly its range.
    const cps = await rawPg((c) =>
      c.query<{ s: string; e: string }>(
        `SELECT cp.start_offset AS s, e.end_offset AS e FROM ${schema}.checkpoints cp JOIN ${schema}.checkpoint_ends e ON e.checkpoint = cp.seq AND e.status = 'COMPLETE' WHERE cp.stream = $1 ORDER BY cp.start_offset`,
        [streamId],
      ),
    );
    expect(cps.rows.map((r) => [Number(r.s), Number(r.e)])).toEqual([
      [201, 601],
      [601, 801],
      [801, 901],
      [901, 1001],
    ]);
    const outputs = await completeOutputs(store, streamId);
    expect(outputs.offsets).toEqual(Array.from({ length: 800 }, (_, i) => i + 201));
  }, 240_000);

  it('PostgreSQL away for longer than the store retries: the cut attempt is ended, the segment done again by a new run, and the worker goes on', async () => {
    // Each record takes a few ms, so the outage finds the worker in the middle of a segment and its
    // checkpoint's commit fails for good (the store gives up after retry_ms).
    const total = 900;
    const { slowPipeline, name, store, schema } = await slowSetup('outage', total);
    const impatient = new URL(store);
    impatient.searchParams.set('retry_ms', '300');
    const worker = startWorker(slowPipeline, impatient.toString(), name);
    await waitFor(() => worker.events.filter((e) => e.kind === 'segment').length >= 1, 120_000, 'a segment done');
    execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', '15', 'main', 'stop'], { stdio: 'ignore' });
    await sleep(2000);
    execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', '15', 'main', 'start'], { stdio: 'ignore' });
    expect(await worker.exit, worker.stderr).toBe(0);
    expectExactlyOnce(await completeOutputs(store, `jetstream:${name}`), total);
    expect(await leftOpen(schema)).toEqual({ checkpoints: 0, runs: 0 });
    // The cut attempt: its checkpoint FAILED with no executions, its run failed, both saying why.
    const cut = await rawPg((c) =>
      c.query<{ reason: string; executions: number; run_status: string }>(
        `SELECT e.reason, e.executions, re.status AS run_status FROM ${schema}.checkpoint_ends e
         JOIN ${schema}.checkpoints cp ON cp.seq = e.checkpoint JOIN ${schema}.run_ends re ON re.run = cp.run WHERE e.status = 'FAILED'`,
      ),
    );
    expect(cut.rowCount, worker.stderr).toBeGreaterThan(0);
    for (const e of cut.rows) {
      expect(e.reason).toMatch(/^abandoned: (the connection to the store was lost during this attempt at segment \d+ of jetstream:\S+; worker \S+ did the segment again|the worker's lease on segment \d+ of jetstream:\S+ passed)/);
      expect(Number(e.executions)).toBe(0);
      expect(e.run_status).toBe('failed');
    }
  }, 240_000);
});
