/**
 * Replay of checkpoint ranges over real data: the recorded code versions run again, stateful
 * steps start from the snapshot before the range, recorded clock reads and random draws are fed
 * back, and verification names the first divergence with its cause — unrecorded nondeterminism,
 * a changed or missing source record, a missing blob or artifact. A replay is a run of its own and
 * never changes recorded history; bad ranges are refused before anything is written.
 */
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { hashToBytes } from '../../src/hash/canonical.js';
import { runPipeline } from '../../src/pipeline/execute.js';
import type { PipelineDefinition } from '../../src/pipeline/define.js';
import { runChain } from '../../src/checkpoint/chain.js';
import { replay } from '../../src/replay/range.js';
import { FileSource, readRecords } from '../../src/sources/files.js';
import { vegaDatasetPath } from '../../src/sources/datasets.js';
import { appendRecords, LogSource } from '../../src/stream/log.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/store.js';
import { ensureDist } from '../helpers/dist.js';
import { writeProject } from '../helpers/project.js';
import { deleteBlobRow, withRawDb } from '../helpers/raw-db.js';
import { expectRejection } from '../helpers/rejection.js';
import { makeTempDir } from '../helpers/temp.js';

const project = makeTempDir();
const N = 1000;
const flights: unknown[] = [];

const pipeline: PipelineDefinition = {
  name: 'replayable',
  failurePolicy: 'dead-letter',
  steps: [
    { id: 'parse', module: './steps/parse.ts' },
    { id: 'stamp', module: './steps/stamp.ts' },
    { id: 'count', module: './steps/count.ts', stateful: true, params: { label: 'n' } },
  ],
};

beforeAll(async () => {
  await ensureDist();
  writeProject(project, {
    'steps/parse.ts': `export default function parse(r: { origin: string; destination: string; delay: number }) {
      if (r.delay > 400) return null; // a filter: the record's path ends here
      return { route: r.origin + '-' + r.destination, delay: r.delay };
    }`,
    // Reads the clock and randomness: recorded at capture, fed back at replay.
    'steps/stamp.ts': `export default function stamp(r: object) {
      return { ...r, at: Date.now(), draw: Math.random(), id: crypto.randomUUID() };
    }`,
    'steps/count.ts': `export default function count(r: { route: string }, p: { label: string }, ctx: { state?: Record<string, number> }) {
      const s = ctx.state as Record<string, number>;
      s[r.route] = (s[r.route] ?? 0) + 1;
      return { ...r, [p.label]: s[r.route] };
    }`,
    // Calls an HTTP service: recorded at capture, answered from the recording at replay.
    'steps/enrich.ts': `export default async function enrich(r: { route: string }, p: { url: string }) {
      const res = await fetch(p.url + '?route=' + encodeURIComponent(r.route));
      return { ...r, ...(await res.json()) };
    }`,
    // Hidden state in the module: nothing records it, so a replay from the middle differs.
    'steps/leaky.ts': `let calls = 0;
      export default function leaky(r: object) { calls += 1; return { ...r, calls }; }`,
  });
  for await (const r of readRecords(vegaDatasetPath('flights-2k.json'), { limit: N })) flights.push(r.value);
}, 180_000);

async function freshStore(name: string): Promise<{ store: Store; dir: string }> {
  const dir = join(project, name);
  const store = await openStore(dir);
  await appendRecords(store, 'flights', flights);
  return { store, dir };
}

describe('verified replay over an embedded stream', () => {
  let store: Store;
  let runId: string;

  beforeAll(async () => {
    ({ store } = await freshStore('store-main'));
    const result = await runPipeline(store, pipeline, new LogSource(store, 'flights'), { baseDir: project, checkpoint: { everyRecords: 200 } });
    runId = result.runId;
    expect(result.checkpoints).toBe(5);
  });

  it('reproduces every recorded output hash over the whole range, clock reads and random draws included', async () => {
    const executionsBefore = await store.countExecutions();
    const r = await replay(store, { streamId: 'flights' });
    expect(r).toMatchObject({ runId, checkpoints: 5, records: N, diverged: 0, firstDivergence: null, inputFrom: { source: N, slice: 0 } });
    expect(r.matched).toBe(r.executions);
    expect(r.executions).toBe(await store.countExecutions({ runId }));
    // A replay is a run of its own; recorded history is unchanged.
    expect((await store.getRun(r.replayRunId))?.kind).toBe('replay');
    expect((await store.getRun(r.replayRunId))?.end?.status).toBe('completed');
    expect(await store.countExecutions()).toBe(executionsBefore);
  });

  it('from a middle checkpoint: the stateful step starts from the snapshot before it', async () => {
    const chain = await runChain(store, runId);
    const r = await replay(store, { streamId: 'flights', from: chain[2]!.checkpointId.slice(0, 13), to: chain[3]!.checkpointId });
    expect(r).toMatchObject({ checkpoints: 2, records: 400, diverged: 0 });
    expect(r.from).toBe(chain[2]!.checkpointId);
  });

  it('refuses a range in the wrong order, an unknown checkpoint or stream — writing nothing', async () => {
    const chain = await runChain(store, runId);
    const runsBefore = (await store.listRuns(1000)).length;
    await expectRejection(replay(store, { streamId: 'flights', from: chain[3]!.checkpointId, to: chain[1]!.checkpointId }), 'CHECKPOINT_INVALID', /wrong order/);
    await expectRejection(replay(store, { streamId: 'flights', from: '01a2287c-0000-7000-8000-000000000000' }), 'NOT_FOUND', /no checkpoint/);
    await expectRejection(replay(store, { streamId: 'nope' }), 'NOT_FOUND', /no checkpoints/);
    await expectRejection(replay(store, { streamId: 'flights', from: 'zz' }), 'NOT_FOUND', /no checkpoint zz/);
    expect((await store.listRuns(1000)).length).toBe(runsBefore);
  });
});

describe('recorded external calls in a range replay', () => {
  it('a step that fetches from an HTTP service replays bit-exactly after the service is gone, without calling it', async () => {
    const { createServer } = await import('node:http');
    let calls = 0;
    const server = createServer((req, res) => {
      calls++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ weather: calls % 2 === 0 ? 'rain' : 'sun', asked: req.url }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/weather`;
    const { store } = await freshStore('store-fetch');
    const enriching: PipelineDefinition = {
      name: 'enrich',
      steps: [{ id: 'parse', module: './steps/parse.ts' }, { id: 'enrich', module: './steps/enrich.ts', params: { url } }],
    };
    const captured = await runPipeline(store, enriching, new LogSource(store, 'flights'), { baseDir: project, to: 60, checkpoint: { everyRecords: 20 } });
    expect(captured.records).toBe(60);
    const answered = calls;
    expect(answered).toBeGreaterThan(50);
    await new Promise<void>((r) => server.close(() => r()));
    const r = await replay(store, { streamId: 'flights', runId: captured.runId });
    expect(r).toMatchObject({ checkpoints: 3, records: 60, diverged: 0 });
    expect(r.matched).toBe(r.executions);
    expect(calls).toBe(answered);
    await store.close();
  });
});

describe('divergences are found and named', () => {
  it('unrecorded nondeterminism: the first divergent execution, its step, version, input, expected and actual hash', async () => {
    const { store } = await freshStore('store-leaky');
    const leaky: PipelineDefinition = { name: 'leaky', steps: [{ id: 'parse', module: './steps/parse.ts' }, { id: 'leaky', module: './steps/leaky.ts' }] };
    const captured = await runPipeline(store, leaky, new LogSource(store, 'flights'), { baseDir: project, checkpoint: { everyRecords: 250 } });
    const chain = await runChain(store, captured.runId);
    // From the start the hidden counter counts the same way; from the second checkpoint it does not.
    expect((await replay(store, { streamId: 'flights', to: chain[0]!.checkpointId })).diverged).toBe(0);
    const r = await replay(store, { streamId: 'flights', from: chain[1]!.checkpointId });
    expect(r.diverged).toBeGreaterThan(0);
    const d = r.firstDivergence!;
    const recorded = await store.getExecution(d.executionId!);
    expect(d).toMatchObject({ cause: 'unrecorded-nondeterminism', stepId: 'leaky', checkpointId: chain[1]!.checkpointId, offset: 250 });
    expect(recorded).toMatchObject({ functionId: 'leaky', offset: 250, functionVersionHash: d.versionHash, outputHash: d.expectedHash });
    expect(recorded?.inputHashes[0]).toBe(d.inputHash);
    expect(d.actualHash).not.toBe(d.expectedHash);
    // What the replay produced is kept in the replay run, for inspection.
    const replayed = await store.getExecution(d.replayExecutionId!);
    expect(replayed).toMatchObject({ runId: r.replayRunId, outputHash: d.actualHash, offset: 250 });
    await store.close();
  });

  it('a record changed in the source file since capture → changed-record at its offset; a record gone → missing-record', async () => {
    const { store } = await freshStore('store-file');
    const file = join(project, 'flights.ndjson');
    writeFileSync(file, flights.slice(0, 300).map((f) => JSON.stringify(f)).join('\n') + '\n');
    const captured = await runPipeline(store, pipeline, new FileSource(file), { baseDir: project, checkpoint: { everyRecords: 100 } });
    const streamId = `file:${file}`;
    expect((await replay(store, { streamId })).diverged).toBe(0);
    const lines = readFileSync(file, 'utf8').split('\n');
    lines[120] = JSON.stringify({ ...(flights[120] as object), delay: 999 });
    writeFileSync(file, lines.slice(0, 290).join('\n') + '\n');
    const r = await replay(store, { streamId });
    expect(r.firstDivergence).toMatchObject({ cause: 'changed-record', offset: 120, stepId: 'parse' });
    expect(r.divergences.filter((d) => d.cause === 'missing-record').map((d) => d.offset)).toEqual(Array.from({ length: 10 }, (_, i) => 290 + i));
    expect(captured.records).toBe(300);
    await store.close();
  });

  it('a source that is gone: replay reads kept input slices; without them it says what to do', async () => {
    const { store } = await freshStore('store-slice');
    const file = join(project, 'kept.ndjson');
    writeFileSync(file, flights.slice(0, 250).map((f) => JSON.stringify(f)).join('\n') + '\n');
    await runPipeline(store, pipeline, new FileSource(file), { baseDir: project, checkpoint: { everyRecords: 100 }, keepInput: true });
    const other = join(project, 'not-kept.ndjson');
    copyFileSync(file, other);
    await runPipeline(store, pipeline, new FileSource(other), { baseDir: project, checkpoint: { everyRecords: 100 } });
    rmSync(file);
    rmSync(other);
    const r = await replay(store, { streamId: `file:${file}` });
    expect(r).toMatchObject({ records: 250, diverged: 0, inputFrom: { source: 0, slice: 250 } });
    const err = await expectRejection(replay(store, { streamId: `file:${other}` }), 'SOURCE_UNAVAILABLE', /cannot be read/);
    expect((err as { hint?: string }).hint).toMatch(/--keep-input/);
    await store.close();
  });

  it('a missing params blob → missing-blob; a missing or altered artifact → missing-artifact / corrupt-artifact, never run', async () => {
    const { store, dir } = await freshStore('store-damaged');
    const captured = await runPipeline(store, pipeline, new LogSource(store, 'flights'), { baseDir: project, checkpoint: { everyRecords: 500 } });
    const [countExec] = await store.listExecutions({ runId: captured.runId, stepId: 'count', limit: 1 });
    const [parseExec] = await store.listExecutions({ runId: captured.runId, stepId: 'parse', limit: 1 });
    const [stampExec] = await store.listExecutions({ runId: captured.runId, stepId: 'stamp', limit: 1 });
    await store.close();
    withRawDb(dir, (db) => deleteBlobRow(db, hashToBytes(countExec!.paramsHash)));
    let s = await openStore(dir);
    expect((await replay(s, { streamId: 'flights' })).firstDivergence).toMatchObject({ cause: 'missing-blob', stepId: 'count', offset: 0 });
    await s.close();
    withRawDb(dir, (db) => {
      db.exec('DROP TRIGGER blob_rows_no_update');
      const changed = db
        .prepare(`UPDATE blob_rows SET bytes = CAST(replace(CAST(bytes AS TEXT), 'Math.random', 'Math.cos') AS BLOB) WHERE hash = ?`)
        .run(hashToBytes(stampExec!.functionVersionHash));
      expect(changed.changes).toBe(1);
    });
    s = await openStore(dir);
    const corrupt = await replay(s, { streamId: 'flights' });
    expect(corrupt.firstDivergence).toMatchObject({ cause: 'corrupt-artifact', stepId: 'stamp', offset: 0 });
    expect(corrupt.firstDivergence?.detail).toMatch(/does not match its hash/);
    await s.close();
    withRawDb(dir, (db) => deleteBlobRow(db, hashToBytes(parseExec!.functionVersionHash)));
    s = await openStore(dir);
    const missing = await replay(s, { streamId: 'flights' });
    expect(missing.firstDivergence).toMatchObject({ cause: 'missing-artifact', stepId: 'parse', offset: 0 });
    // Every record diverges at parse; and at each checkpoint's end, the stateful step's state (never reached) too.
    expect(missing.diverged).toBe(N + missing.checkpoints);
    expect(missing.divergences.filter((d) => d.cause === 'state-diverged')).toHaveLength(0); // the first 100 are all parse
    expect(missing.matched).toBe(0);
    await s.close();
  });
});
