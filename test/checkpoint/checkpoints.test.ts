/**
 * Temporal checkpoints over real data: each checkpoint covers a contiguous offset range, records
 * the exact pipeline (step versions, params), commits together with exactly its executions,
 * snapshots stateful steps, and the chain links them. Bad input is dead-lettered and counted;
 * a stopped run ends its checkpoint FAILED with the reason; the store refuses to rewrite them.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeValue, hashValue } from '../../src/hash/canonical.js';
import { runPipeline, resumePipeline } from '../../src/pipeline/execute.js';
import { readRecordedPipeline } from '../../src/checkpoint/recorded-pipeline.js';
import { runChain } from '../../src/checkpoint/chain.js';
import { reexecute } from '../../src/replay/execution.js';
import { DECODE_STEP_ID } from '../../src/sources/decode-step.js';
import { FileSource, readRecords } from '../../src/sources/files.js';
import { vegaDatasetPath } from '../../src/sources/datasets.js';
import type { IdleTick, SourceRecord } from '../../src/sources/source.js';
import { appendRecords, LogSource } from '../../src/stream/log.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/store.js';
import { ensureDist } from '../helpers/dist.js';
import { writeProject } from '../helpers/project.js';
import { withRawDb } from '../helpers/raw-db.js';
import { expectRejection } from '../helpers/rejection.js';
import { makeTempDir } from '../helpers/temp.js';
import type { PipelineDefinition } from '../../src/pipeline/define.js';

const project = makeTempDir();
let store: Store;
let storeDir: string;
const N = 1000;

const pipeline: PipelineDefinition = {
  name: 'routes',
  failurePolicy: 'dead-letter',
  steps: [
    { id: 'parse', module: './steps/parse.ts' },
    { id: 'count', module: './steps/count.ts', stateful: true, params: { label: 'n' } },
  ],
};

beforeAll(async () => {
  await ensureDist();
  writeProject(project, {
    'steps/parse.ts': `export default function parse(r: { origin: string; destination: string; delay: number }) {
      if (typeof r.delay !== 'number') throw new Error('delay is not a number');
      return { route: r.origin + '-' + r.destination, delay: r.delay };
    }`,
    'steps/count.ts': `export default function count(r: { route: string }, p: { label: string }, ctx: { state?: Record<string, number> }) {
      const s = ctx.state as Record<string, number>;
      s[r.route] = (s[r.route] ?? 0) + 1;
      return { ...r, [p.label]: s[r.route] };
    }`,
    'steps/fails.ts': `export default function fails(r: { delay: number }) {
      if (r.delay > 100) throw new Error('delay over 100: ' + r.delay);
      return r;
    }`,
  });
  storeDir = join(project, '.provenant');
  store = await openStore(storeDir);
  const flights: unknown[] = [];
  for await (const r of readRecords(vegaDatasetPath('flights-2k.json'), { limit: N })) flights.push(r.value);
  await appendRecords(store, 'flights', flights);
}, 180_000);

afterAll(async () => {
  await store.close();
});

describe('checkpoints over an embedded stream', () => {
  let runId: string;

  it('cover contiguous offset ranges, every N records, chained, all COMPLETE', async () => {
    const result = await runPipeline(store, pipeline, new LogSource(store, 'flights'), { baseDir: project, checkpoint: { everyRecords: 300 } });
    runId = result.runId;
    expect(result).toMatchObject({ records: N, executions: 2 * N, failed: 0, checkpoints: 4, status: 'completed' });
    const chain = await runChain(store, runId);
    expect(chain.map((c) => [c.startOffset, c.end?.endOffset, c.status, c.end?.records])).toEqual([
      [0, 300, 'COMPLETE', 300],
      [300, 600, 'COMPLETE', 300],
      [600, 900, 'COMPLETE', 300],
      [900, 1000, 'COMPLETE', 100],
    ]);
    expect(chain[0]?.previousId).toBeNull();
    for (let i = 1; i < chain.length; i++) expect(chain[i]?.previousId).toBe(chain[i - 1]?.checkpointId);
    expect(new Set(chain.map((c) => c.streamId))).toEqual(new Set(['flights']));
    for (const c of chain) expect(c.recordHash).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it("each checkpoint's executions are exactly its records' executions, and all of the run's", async () => {
    const chain = await runChain(store, runId);
    let total = 0;
    for (const c of chain) {
      const end = c.end as NonNullable<typeof c.end>;
      const sketches = await store.listExecutionSketches(runId, end.firstExecutionId as string, end.lastExecutionId as string);
      expect(sketches.length).toBe(end.executions);
      expect(end.executions).toBe(2 * end.records);
      const offsets = [...new Set(sketches.map((s) => s.offset))];
      expect(offsets).toEqual(Array.from({ length: end.records }, (_, i) => c.startOffset + i));
      total += sketches.length;
    }
    expect(total).toBe(await store.countExecutions({ runId }));
  });

  it('records the pipeline: step ids, exact versions, params and which steps keep state', async () => {
    const [first] = await runChain(store, runId);
    const recorded = await readRecordedPipeline(store, first!.pipelineHash);
    const versions = await store.listSteps();
    expect(recorded.steps.map((s) => [s.id, s.stateful, s.params])).toEqual([
      ['parse', false, {}],
      ['count', true, { label: 'n' }],
    ]);
    for (const s of recorded.steps) {
      expect(versions.find((v) => v.stepId === s.id)?.versions.map((v) => v.versionHash)).toContain(s.versionHash);
    }
  });

  it("snapshots the stateful step's state at each checkpoint: per-route counts so far", async () => {
    const chain = await runChain(store, runId);
    const expected: Record<string, number> = {};
    let offset = 0;
    for await (const r of new LogSource(store, 'flights').read()) {
      const f = r.value as { origin: string; destination: string };
      const route = `${f.origin}-${f.destination}`;
      expected[route] = (expected[route] ?? 0) + 1;
      offset++;
      const c = chain.find((x) => x.end?.endOffset === offset);
      if (c !== undefined) {
        const snapshot = decodeValue(await store.getBlob(c.end!.stateHash!), 'json') as { steps: { count: Record<string, number> } };
        expect(snapshot.steps.count).toEqual(expected);
        expect(c.end!.stateHash).toBe(hashValue({ v: 1, steps: { count: expected } }));
      }
    }
  });

  it('closes a checkpoint after an interval even when few records arrive (idle ticks of a live source)', async () => {
    async function* slow(): AsyncGenerator<SourceRecord | IdleTick> {
      for (let i = 0; i < 6; i++) {
        yield { offset: i, value: { origin: 'SFO', destination: 'LAX', delay: i } };
        await new Promise((r) => setTimeout(r, 40));
        yield { idle: true };
      }
    }
    const result = await runPipeline(store, pipeline, slow(), { baseDir: project, streamId: 'slow', checkpoint: { everyRecords: 1000, intervalMs: 60 } });
    expect(result.checkpoints).toBeGreaterThanOrEqual(3);
    const chain = await runChain(store, result.runId);
    expect(chain.reduce((n, c) => n + (c.end?.records ?? 0), 0)).toBe(6);
    expect(chain.every((c) => c.status === 'COMPLETE')).toBe(true);
  });

  it('the store never rewrites a checkpoint: a second end is refused, UPDATE and DELETE are refused', async () => {
    const [first] = await runChain(store, runId);
    await expectRejection(
      store.applyCheckpoint({ end: { ...first!.end!, status: 'FAILED', reason: 'rewrite' } }),
      'CHECKPOINT_INVALID',
      /already ended/,
    );
    await expectRejection(store.applyCheckpoint({ end: { ...first!.end!, checkpointId: '01a2287c-0000-7000-8000-000000000000' } }), 'NOT_FOUND', /does not exist/);
    await store.close();
    withRawDb(storeDir, (db) => {
      expect(() => db.prepare("UPDATE checkpoint_ends SET status = 'FAILED'").run()).toThrow(/append-only/);
      expect(() => db.prepare('DELETE FROM checkpoints').run()).toThrow(/append-only/);
    });
    store = await openStore(storeDir);
  });
});

describe('bad input', () => {
  it('a line that is not JSON becomes a failed, dead-lettered execution at its offset; the run goes on and the checkpoint counts it', async () => {
    const file = join(project, 'bad.ndjson');
    writeFileSync(file, ['{"origin":"SFO","destination":"LAX","delay":5}', '{"origin": "SFO", oops', '{"origin":"JFK","destination":"BOS","delay":-3}', ''].join('\n'));
    const result = await runPipeline(store, { ...pipeline, failurePolicy: 'stop' }, new FileSource(file), { baseDir: project });
    expect(result).toMatchObject({ records: 3, outputs: 2, failed: 1, deadLettered: 1, status: 'completed' });
    const failed = await store.listExecutions({ runId: result.runId, status: 'failed' });
    expect(failed).toHaveLength(1);
    const e = failed[0]!;
    expect(e).toMatchObject({ functionId: DECODE_STEP_ID, offset: 1, streamId: `file:${file}` });
    expect(decodeValue(await store.getBlob(e.inputHashes[0]!), 'json')).toBe('{"origin": "SFO", oops');
    const error = decodeValue(await store.getBlob(e.errorHash!), 'json') as { message: string };
    expect(error.message).toMatch(/^not valid JSON: /);
    expect((await store.listDeadLetters(result.runId)).map((d) => d.executionId)).toEqual([e.id]);
    const [checkpoint] = await runChain(store, result.runId);
    expect(checkpoint?.end).toMatchObject({ records: 3, failed: 1, deadLettered: 1, executions: 5 });
    // The failure is an execution like any other: re-executing its stored code fails the same way.
    expect(await reexecute(store, e.id)).toMatchObject({ matches: true, cause: null });
  });

  it('a CSV row with the wrong number of fields is dead-lettered with its cells and the reason', async () => {
    const file = join(project, 'bad.csv');
    writeFileSync(file, 'origin,destination,delay\nSFO,LAX,5\nSFO,LAX\nJFK,BOS,-3\n');
    const result = await runPipeline(store, pipeline, new FileSource(file), { baseDir: project });
    expect(result).toMatchObject({ records: 3, outputs: 2, failed: 1, deadLettered: 1 });
    const [e] = await store.listExecutions({ runId: result.runId, status: 'failed' });
    expect(e).toMatchObject({ functionId: DECODE_STEP_ID, offset: 1 });
    expect(decodeValue(await store.getBlob(e!.inputHashes[0]!), 'json')).toEqual(['SFO', 'LAX']);
    expect((decodeValue(await store.getBlob(e!.errorHash!), 'json') as { message: string }).message).toBe('CSV row has 2 fields; the header has 3');
  });

  it('with the stop policy, a failing step ends the checkpoint FAILED with the reason, its executions committed with it', async () => {
    const stopping: PipelineDefinition = { name: 'stops', failurePolicy: 'stop', steps: [{ id: 'fails', module: './steps/fails.ts' }] };
    const err = await runPipeline(store, stopping, new LogSource(store, 'flights'), { baseDir: project, checkpoint: { everyRecords: 100 } }).catch(
      (e: unknown) => e as Error & { code?: string; context?: Record<string, unknown> },
    );
    expect(err).toMatchObject({ code: 'STEP_FAILED' });
    const runId = (await store.listRuns(1))[0]!.id;
    const chain = await runChain(store, runId);
    const last = chain[chain.length - 1]!;
    expect(last.status).toBe('FAILED');
    expect(last.end?.reason).toMatch(/delay over 100/);
    expect(chain.slice(0, -1).every((c) => c.status === 'COMPLETE')).toBe(true);
    const failed = await store.listExecutions({ runId, status: 'failed' });
    expect(failed).toHaveLength(1);
    expect(failed[0]!.offset).toBe((err as { context?: { offset?: number } }).context?.offset);
    expect(last.end?.lastExecutionId).toBe(failed[0]!.id);
    expect((await store.getRun(runId))?.end?.status).toBe('stopped');
    await expectRejection(resumePipeline(store, runId), 'RUN_CLOSED', /has already ended/);
  });
});

describe('one writer per run', () => {
  it('resume refuses a run whose lock is held by a live process, naming it; a dead holder is taken over', async () => {
    const { spawn } = await import('node:child_process');
    const { mkdirSync } = await import('node:fs');
    const result = await runPipeline(store, pipeline, new LogSource(store, 'flights'), { baseDir: project, to: 50, checkpoint: { everyRecords: 10 } });
    // A live process holds the run's lock (as a running capture would).
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
    try {
      mkdirSync(join(storeDir, 'locks'), { recursive: true });
      writeFileSync(join(storeDir, 'locks', `${result.runId}.lock`), String(holder.pid));
      const err = await expectRejection(resumePipeline(store, result.runId), 'STORE_BUSY', new RegExp(`being written by process ${holder.pid}`));
      expect(err.context).toMatchObject({ runId: result.runId, pid: holder.pid });
    } finally {
      holder.kill('SIGKILL');
    }
    await new Promise((r) => setTimeout(r, 100));
    // The holder is gone: the lock is taken over, and the run (which ended) is refused for that reason instead.
    await expectRejection(resumePipeline(store, result.runId), 'RUN_CLOSED', /has already ended/);
  });
});
