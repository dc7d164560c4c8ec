/**
 * Capture: every call of a step becomes an execution record — inputs, output, params, context,
 * timing, status, error — linked by hashes to the stored values and the exact code version.
 * What users rely on: nothing is lost, failures are recorded rather than hidden, the context of
 * the caller travels with the call, and each record's hash pins down everything it says.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ProvenantError,
  StepFailedError,
  UnhashableValueError,
  canonicalRecord,
  canonicalize,
  decodeValue,
  executionRecordHash,
  hashValue,
  openStore,
  runPipeline,
  sha256,
  startRun,
  withContext,
  type ContentHash,
  type ExecutionRecord,
  type SourceRecord,
  type Store,
} from '../../src/index.js';
import { ensureDist } from '../helpers/dist.js';
import { DIST_INDEX, REPO_ROOT } from '../helpers/paths.js';
import { writeFiles, writeProject } from '../helpers/project.js';
import { makeTempDir } from '../helpers/temp.js';
import { rejection } from '../helpers/rejection.js';

const STEPS = {
  'steps/square.ts': 'export default (x: { n: number }) => ({ n: x.n, sq: x.n * x.n });\n',
  'steps/flaky.ts': "export default (x: { n: number }) => {\n  if (x.n % 7 === 0) throw new Error('bad ' + x.n);\n  return x.n;\n};\n",
  'steps/nan.ts': 'export default (x: number) => ({ legs: [{ delay: x }, { delay: NaN }] });\n',
  'steps/echo.ts': 'export default (input: unknown, params: unknown, ctx: { context: unknown }) => ({ input, params, context: ctx.context });\n',
  'steps/reverse.ts': 'export default (b: Uint8Array) => Buffer.from(b).reverse();\n',
  'steps/length.ts': 'export default (b: Uint8Array) => b.length;\n',
  'steps/reverse-in-place.ts': 'export default (b: Uint8Array) => {\n  b.reverse();\n  return b.length;\n};\n',
  'steps/big.ts': "export default (n: number) => 'x'.repeat(100000) + n;\n",
  'steps/label.ts':
    "export default (x: { n: number; sq: number }, p: { prefix: string }) => (x.n % 2 === 0 ? { label: p.prefix + x.sq, n: x.n } : null);\n",
  'steps/identity.ts': 'export default (x: unknown) => x;\n',
};

let project: string;
let store: Store;
type StepName = keyof typeof STEPS extends infer K ? (K extends `steps/${infer N}.ts` ? N : never) : never;
const step = (name: StepName): { module: string } => ({ module: join(project, 'steps', `${name}.ts`) });

beforeAll(async () => {
  // The store commits batches on a writer thread whose script is the built one (dist/).
  await ensureDist();
  project = join(makeTempDir(), 'proj');
  writeProject(project, STEPS);
  store = await openStore(makeTempDir());
});

afterAll(async () => {
  await store.close();
});

async function value(hash: ContentHash | null, encoding: 'json' | 'bytes' = 'json'): Promise<unknown> {
  if (hash === null) throw new Error('no value: hash is null');
  return decodeValue(await store.getBlob(hash), encoding);
}

async function allExecutions(runId: string): Promise<ExecutionRecord[]> {
  const out: ExecutionRecord[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await store.listExecutions({ runId, limit: 25_000, ...(after === undefined ? {} : { afterId: after }) });
    if (page.length === 0) return out;
    out.push(...page);
    after = page[page.length - 1]?.id;
  }
}


describe('nothing is lost', () => {
  it('100,000 calls are 100,000 executions, each with the right input and output', async () => {
    const N = 100_000;
    const run = await startRun(store, { name: 'bulk' });
    const square = await run.step('square', step('square'));
    for (let i = 0; i < N; i++) await run.call(square, { n: i }, undefined, { streamId: 'mem:bulk', offset: i });
    const summary = await run.finish();

    expect(summary).toMatchObject({ runId: run.id, status: 'completed', executions: N, failed: 0, deadLettered: 0 });
    expect(summary.steps.square).toEqual({ executions: N, failed: 0, versionHash: square.versionHash });
    expect(await store.countExecutions({ runId: run.id })).toBe(N);
    expect(await store.countExecutions({ runId: run.id, status: 'ok' })).toBe(N);
    expect((await store.getRun(run.id))?.end).toMatchObject({ status: 'completed', summary: { executions: N, failed: 0 } });

    const executions = await allExecutions(run.id);
    expect(executions).toHaveLength(N);
    const offsets = new Set(executions.map((e) => e.offset));
    expect(offsets.size).toBe(N);
    for (const e of executions) {
      const n = e.offset as number;
      expect(e.streamId).toBe('mem:bulk');
      if (n % 97 === 0) {
        expect(e.inputHashes).toEqual([hashValue({ n })]);
        expect(e.outputHash).toBe(hashValue({ n, sq: n * n }));
      } else if (e.outputHash !== hashValue({ n, sq: n * n })) {
        throw new Error(`execution ${e.id} at offset ${n} has the wrong output hash`);
      }
    }
    // The stored values behind the hashes are there.
    const sample = executions[12_345] as ExecutionRecord;
    expect(await value(sample.outputHash)).toEqual({ n: sample.offset, sq: (sample.offset as number) ** 2 });
  });

  it('buffered executions are committed within flushIntervalMs, without finish()', async () => {
    const run = await startRun(store, { name: 'interval', flushIntervalMs: 20 });
    const square = await run.step('square', step('square'));
    await run.call(square, { n: 3 });
    const reader = await openStore(store.location, { create: false });
    try {
      const deadline = Date.now() + 5_000;
      while ((await reader.countExecutions({ runId: run.id })) === 0 && Date.now() < deadline) await sleep(10);
      expect(await reader.countExecutions({ runId: run.id })).toBe(1);
    } finally {
      await reader.close();
      await run.finish();
    }
  });

  describe('after a crash', () => {
    beforeAll(async () => {
      await ensureDist();
    });

    it('executions flushed before the process is killed (SIGKILL) are all there', async () => {
      const storeDir = makeTempDir();
      const script = join(makeTempDir(), 'capture.mjs');
      writeFileSync(
        script,
        `const { openStore, startRun } = await import(process.argv[2]);
const store = await openStore(process.argv[3]);
const run = await startRun(store, { name: 'crash' });
const step = await run.step('square', { module: process.argv[4] });
for (let i = 0; i < 500; i++) await run.call(step, { n: i });
await run.flush();
process.stdout.write(JSON.stringify({ runId: run.id }) + '\\n');
setInterval(() => {}, 1000);
`,
      );
      const child = spawn(process.execPath, [script, pathToFileURL(DIST_INDEX).href, storeDir, step('square').module], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const line = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('\n')) resolve(out.trim());
        });
        child.on('exit', (code) => reject(new Error(`child exited (${code}) before flushing: ${stderr}`)));
      });
      const exited = new Promise((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');

      const { runId } = JSON.parse(line) as { runId: string };
      const reopened = await openStore(storeDir, { create: false });
      try {
        expect(await reopened.countExecutions({ runId })).toBe(500);
        const run = await reopened.getRun(runId);
        expect(run?.end).toBeNull();
        const [first] = await reopened.listExecutions({ runId, limit: 1 });
        expect(first?.outputHash).toBe(hashValue({ n: 0, sq: 0 }));
        expect(decodeValue(await reopened.getBlob(first?.outputHash as ContentHash), 'json')).toEqual({ n: 0, sq: 0 });
      } finally {
        await reopened.close();
      }
    });
  });
});

describe('failures are recorded', () => {
  it("with 'dead-letter' the run goes on; failed executions keep their error and are dead-lettered", async () => {
    const run = await startRun(store, { name: 'dead-letter', failurePolicy: 'dead-letter' });
    const flaky = await run.step('flaky', step('flaky'));
    for (let n = 0; n < 30; n++) {
      const outcome = await run.attempt(flaky, { n });
      if (n % 7 === 0) {
        expect(outcome).toMatchObject({ ok: false, deadLettered: true, error: { name: 'Error', message: `bad ${n}` } });
      } else {
        expect(outcome).toMatchObject({ ok: true, output: n });
      }
    }
    // call() reports the failure by throwing, but the run is not stopped.
    const err = await rejection(run.call(flaky, { n: 35 }));
    expect(err).toBeInstanceOf(StepFailedError);
    expect(await run.call(flaky, { n: 36 })).toBe(36);
    const summary = await run.finish();
    expect(summary).toMatchObject({ status: 'completed', executions: 32, failed: 6, deadLettered: 6 });

    const failed = await store.listExecutions({ runId: run.id, status: 'failed' });
    expect(failed).toHaveLength(6);
    for (const e of failed) {
      expect(e.outputHash).toBeNull();
      const input = (await value(e.inputHashes[0] as ContentHash)) as { n: number };
      expect(input.n % 7).toBe(0);
      const error = (await value(e.errorHash)) as { name: string; message: string; stack?: string };
      expect(error.name).toBe('Error');
      expect(error.message).toBe(`bad ${input.n}`);
      expect(error.stack).toContain(`bad ${input.n}`);
    }
    const deadLetters = await store.listDeadLetters(run.id);
    expect(deadLetters.map((d) => d.executionId).sort()).toEqual(failed.map((e) => e.id).sort());
    for (const d of deadLetters) {
      const e = failed.find((f) => f.id === d.executionId) as ExecutionRecord;
      expect(d.reason).toBe(((await value(e.errorHash)) as { message: string }).message);
    }
    expect(await store.countExecutions({ runId: run.id, status: 'ok' })).toBe(26);
  });

  it("with 'stop' the failing call throws StepFailedError after the failure is recorded, and the run takes no more calls", async () => {
    const run = await startRun(store, { name: 'stop' });
    expect(run.failurePolicy).toBe('stop');
    const flaky = await run.step('flaky', step('flaky'));
    for (const n of [1, 2, 3]) await run.call(flaky, { n });
    const err = await rejection(run.call(flaky, { n: 7 }, undefined, { streamId: 'file:x.ndjson', offset: 3 }));
    expect(err).toBeInstanceOf(StepFailedError);
    const failure = err as StepFailedError;
    expect(failure.code).toBe('STEP_FAILED');
    expect(failure.stepId).toBe('flaky');
    expect(failure.message).toContain('bad 7');
    expect(failure.message).toContain('file:x.ndjson offset 3');

    // Recorded before the error was thrown, without waiting for finish().
    const recorded = await store.getExecution(failure.executionId);
    expect(recorded).toMatchObject({ status: 'failed', outputHash: null, streamId: 'file:x.ndjson', offset: 3 });
    expect(await value(recorded?.errorHash ?? null)).toMatchObject({ message: 'bad 7' });

    await expect(run.call(flaky, { n: 8 })).rejects.toBeInstanceOf(StepFailedError);
    await expect(run.attempt(flaky, { n: 9 })).rejects.toBeInstanceOf(StepFailedError);
    const summary = await run.finish();
    expect(summary).toMatchObject({ status: 'stopped', executions: 4, failed: 1, deadLettered: 0 });
    expect(await store.countExecutions({ runId: run.id })).toBe(4);
    expect(await store.listDeadLetters(run.id)).toEqual([]);
    expect((await store.getRun(run.id))?.end?.status).toBe('stopped');
  });

  it('an output that cannot be hashed is a failed execution whose error names the path', async () => {
    const run = await startRun(store, { name: 'nan' });
    const nan = await run.step('nan', step('nan'));
    const err = await rejection(run.call(nan, 5));
    expect(err).toBeInstanceOf(StepFailedError);
    expect((err as Error).message).toContain('$.legs[1].delay: NaN cannot be hashed');
    const recorded = await store.getExecution((err as StepFailedError).executionId);
    expect(recorded).toMatchObject({ status: 'failed', outputHash: null });
    expect(await value(recorded?.errorHash ?? null)).toMatchObject({ name: 'UnhashableValueError', message: '$.legs[1].delay: NaN cannot be hashed' });
    await run.finish();
  });

  it('an input that cannot be hashed is refused before the step runs, naming the path', async () => {
    const run = await startRun(store, { name: 'bad input' });
    const square = await run.step('square', step('square'));
    const err = await rejection(run.call(square, { n: NaN }));
    expect(err).toBeInstanceOf(UnhashableValueError);
    expect((err as UnhashableValueError).path).toBe('$.n');
    expect(await run.call(square, { n: 2 })).toEqual({ n: 2, sq: 4 });
    await run.finish();
    expect(await store.countExecutions({ runId: run.id })).toBe(1);
  });

  it('a finished run takes no more calls and cannot finish again (RUN_CLOSED)', async () => {
    const run = await startRun(store, { name: 'closed' });
    const square = await run.step('square', step('square'));
    await run.finish();
    await expect(run.call(square, { n: 1 })).rejects.toMatchObject({ code: 'RUN_CLOSED' });
    const err = await rejection(run.finish());
    expect(err).toBeInstanceOf(ProvenantError);
    expect((err as ProvenantError).code).toBe('RUN_CLOSED');
  });
});

describe('context', () => {
  it('withContext travels across awaits and is merged over the run context; calls outside get the run context', async () => {
    const runContext = { source: 'job', principal: 'system', location: 'eu-1' };
    const run = await startRun(store, { name: 'ctx', context: runContext });
    const echo = await run.step('echo', step('echo'));
    const somethingAsync = async (): Promise<void> => {
      await sleep(5);
      await new Promise<void>((resolve) => setImmediate(resolve));
    };
    const inside = await withContext({ principal: 'alice', traceId: 't1' }, async () => {
      await somethingAsync();
      return run.attempt(echo, 'inside');
    });
    const outside = await run.attempt(echo, 'outside');
    const nested = await withContext({ principal: 'bob' }, () => withContext({ traceId: 't2', rights: ['read:x'] }, () => run.attempt(echo, 'nested')));
    await run.finish();

    const merged = { source: 'job', principal: 'alice', location: 'eu-1', traceId: 't1' };
    const recordedInside = await store.getExecution(inside.executionId);
    expect(recordedInside?.context).toEqual(merged);
    expect(recordedInside?.contextHash).toBe(hashValue(merged));
    expect(await value(recordedInside?.contextHash ?? null)).toEqual(merged);
    expect(inside.ok && (inside.output as { context: unknown }).context).toEqual(merged);

    const recordedOutside = await store.getExecution(outside.executionId);
    expect(recordedOutside?.context).toEqual(runContext);
    expect(recordedOutside?.contextHash).toBe(hashValue(runContext));

    expect((await store.getExecution(nested.executionId))?.context).toEqual({ ...runContext, principal: 'bob', traceId: 't2', rights: ['read:x'] });
  });

  it('concurrent calls under different contexts each record their own', async () => {
    const run = await startRun(store, { name: 'ctx-concurrent', context: { source: 'http' } });
    const echo = await run.step('echo', step('echo'));
    const outcomes = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        withContext({ principal: `user-${i % 5}`, traceId: `trace-${i}` }, async () => {
          await sleep((i * 7) % 11);
          const first = await run.attempt(echo, i);
          await sleep((i * 3) % 5);
          const second = await run.attempt(echo, i);
          return [i, first, second] as const;
        }),
      ),
    );
    await run.finish();
    for (const [i, ...pair] of outcomes) {
      for (const outcome of pair) {
        expect((await store.getExecution(outcome.executionId))?.context).toEqual({ source: 'http', principal: `user-${i % 5}`, traceId: `trace-${i}` });
      }
    }
  });
});

describe('what a record says', () => {
  it('params are recorded by hash, stored, and given to the step', async () => {
    const run = await startRun(store, { name: 'params' });
    const echo = await run.step('echo', step('echo'));
    const params = { threshold: 3, tags: ['x', 'y'], nested: { deep: null } };
    const withParams = await run.attempt(echo, 'in', params);
    const without = await run.attempt(echo, 'in');
    await run.finish();

    const e = await store.getExecution(withParams.executionId);
    expect(e?.paramsHash).toBe(hashValue(params));
    expect(await value(e?.paramsHash ?? null)).toEqual(params);
    expect(withParams.ok && (withParams.output as { params: unknown }).params).toEqual(params);
    expect((await store.getExecution(without.executionId))?.paramsHash).toBe(hashValue({}));
  });

  // Params are canonicalized at every call: a params object changed between calls is recorded and used as it is.
  it('params mutated between calls are recorded and used as they are at each call', async () => {
    const run = await startRun(store, { name: 'params-mutated' });
    const echo = await run.step('echo', step('echo'));
    const params = { threshold: 1 };
    await run.attempt(echo, 'a', params);
    params.threshold = 2;
    const second = await run.attempt(echo, 'a', params);
    await run.finish();
    expect(second.ok && (second.output as { params: unknown }).params).toEqual({ threshold: 2 });
    expect((await store.getExecution(second.executionId))?.paramsHash).toBe(hashValue({ threshold: 2 }));
  });

  it('byte inputs and outputs are recorded raw, with their encoding', async () => {
    const run = await startRun(store, { name: 'bytes' });
    const reverse = await run.step('reverse', step('reverse'));
    const input = Buffer.from([1, 2, 3, 250]);
    const out = await run.attempt(reverse, input);
    await run.finish();
    expect(out.ok && Buffer.from(out.output as Uint8Array)).toEqual(Buffer.from([250, 3, 2, 1]));
    const e = await store.getExecution(out.executionId);
    expect(e).toMatchObject({ inputEncodings: ['bytes'], outputEncoding: 'bytes', inputHashes: [sha256(input)], outputHash: sha256(Buffer.from([250, 3, 2, 1])) });
    expect(Buffer.from(await store.getBlob(e?.outputHash as ContentHash))).toEqual(Buffer.from([250, 3, 2, 1]));
    expect(Buffer.from(await store.getBlob(e?.inputHashes[0] as ContentHash))).toEqual(input);
  });

  it('a small byte input is recorded as it was at the call, even if the caller then reuses its buffer', async () => {
    const run = await startRun(store, { name: 'bytes-reused' });
    const length = await run.step('length', step('length'));
    const buffer = Buffer.from('first record');
    const first = await run.attempt(length, buffer);
    buffer.write('later record');
    await run.attempt(length, buffer);
    await run.finish();
    const e = await store.getExecution(first.executionId);
    expect(e?.inputHashes[0]).toBe(sha256('first record'));
    expect(Buffer.from(await store.getBlob(e?.inputHashes[0] as ContentHash)).toString()).toBe('first record');
  });

  // Large byte values are copied into the batch at the call: a caller reusing its buffer changes nothing recorded.
  it('a large (100 KiB) byte input is recorded as it was at the call, even if the caller then reuses its buffer', async () => {
    const run = await startRun(store, { name: 'big-bytes-reused' });
    const length = await run.step('length', step('length'));
    const buffer = Buffer.alloc(100 * 1024, 1);
    const expected = sha256(Buffer.from(buffer));
    const first = await run.attempt(length, buffer);
    buffer.fill(2);
    await run.attempt(length, buffer);
    await run.finish();
    const e = await store.getExecution(first.executionId);
    expect(e?.inputHashes[0]).toBe(expected);
    expect(sha256(await store.getBlob(expected))).toBe(expected);
  });

  // The input is in the batch before the step runs, and the step gets its own copy of byte inputs.
  it('a byte input is recorded as it was given, even if the step changes it in place', async () => {
    const run = await startRun(store, { name: 'bytes-mutated' });
    const inPlace = await run.step('reverse-in-place', step('reverse-in-place'));
    const out = await run.attempt(inPlace, Buffer.from('abc'));
    await run.finish();
    const e = await store.getExecution(out.executionId);
    expect(e?.inputHashes[0]).toBe(sha256('abc'));
    expect(Buffer.from(await store.getBlob(sha256('abc'))).toString()).toBe('abc');
  });

  it('a large output is stored as a file and reads back', async () => {
    const run = await startRun(store, { name: 'big' });
    const big = await run.step('big', step('big'));
    const out = await run.attempt(big, 7);
    await run.finish();
    const e = await store.getExecution(out.executionId);
    expect(await store.statBlob(e?.outputHash as ContentHash)).toMatchObject({ location: 'file' });
    expect(await value(e?.outputHash ?? null)).toBe('x'.repeat(100000) + '7');
  });

  it('the environment is recorded on the run', async () => {
    const inRepo = await startRun(store, { name: 'env', projectDir: join(REPO_ROOT, 'src', 'capture') });
    await inRepo.finish();
    const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    expect((await store.getRun(inRepo.id))?.environment).toEqual({
      node: process.version,
      platform: process.platform,
      arch: process.arch,
      provenant: version,
      lockfileHash: sha256(readFileSync(join(REPO_ROOT, 'package-lock.json'))),
    });

    const withLock = join(makeTempDir(), 'locked');
    writeFiles(withLock, { 'package-lock.json': '{"lockfileVersion":3}', 'sub/dir/file.txt': '' });
    const locked = await startRun(store, { name: 'env', projectDir: join(withLock, 'sub', 'dir') });
    await locked.finish();
    expect((await store.getRun(locked.id))?.environment.lockfileHash).toBe(sha256('{"lockfileVersion":3}'));

    const bare = await startRun(store, { name: 'env', projectDir: makeTempDir() });
    await bare.finish();
    expect((await store.getRun(bare.id))?.environment.lockfileHash).toBeNull();
  });

  it('the run records its name, policy, context and options', async () => {
    const run = await startRun(store, {
      name: 'described',
      failurePolicy: 'dead-letter',
      context: { source: 'library', principal: 'p' },
      options: { input: 'x.ndjson', limit: 5 },
    });
    await run.finish();
    expect(await store.getRun(run.id)).toMatchObject({
      id: run.id,
      kind: 'capture',
      name: 'described',
      failurePolicy: 'dead-letter',
      context: { source: 'library', principal: 'p' },
      options: { input: 'x.ndjson', limit: 5 },
      end: { status: 'completed' },
    });
  });
});

describe('record hash', () => {
  it('a stored execution hashes to its recordHash, by the fast path and by the canonical definition', async () => {
    const run = await startRun(store, { name: 'record-hash', failurePolicy: 'dead-letter' });
    const flaky = await run.step('flaky', step('flaky'));
    const ids: string[] = [];
    for (let n = 0; n < 10; n++) ids.push((await run.attempt(flaky, { n }, { p: n }, { streamId: 'mem:rh', offset: n })).executionId);
    ids.push((await withContext({ principal: 'x' }, () => run.attempt(flaky, { n: 1 }))).executionId);
    await run.finish();
    for (const id of ids) {
      const record = (await store.getExecution(id)) as ExecutionRecord;
      expect(executionRecordHash(record)).toBe(record.recordHash);
      expect(sha256(canonicalize(canonicalRecord(record)))).toBe(record.recordHash);
    }
  });

  it('covers every field of a record except the context, which its contextHash covers', async () => {
    const run = await startRun(store, { name: 'fields' });
    const square = await run.step('square', step('square'));
    const { executionId } = await run.attempt(square, { n: 1 });
    await run.finish();
    const record = await store.getExecution(executionId);
    if (record === undefined) throw new Error('execution not recorded');
    const hashed = Object.keys(canonicalRecord(record) as object).filter((k) => k !== 'v');
    expect(hashed.sort()).toEqual(
      Object.keys(record)
        .filter((k) => k !== 'recordHash' && k !== 'context')
        .sort(),
    );

    const other = hashValue('something else');
    const changes: Partial<ExecutionRecord>[] = [
      { id: '01890a5d-ac96-774b-bcce-b302099a8057' },
      { runId: '01890a5d-ac96-774b-bcce-b302099a8057' },
      { functionId: `${record.functionId}x` },
      { functionVersionHash: other },
      { inputHashes: [...record.inputHashes, other] },
      { inputEncodings: record.inputEncodings.map((e) => (e === 'json' ? 'bytes' : 'json')) },
      { outputHash: record.outputHash === null ? other : null },
      { outputEncoding: record.outputEncoding === 'json' ? 'bytes' : 'json' },
      { paramsHash: other },
      { contextHash: other },
      { startedUs: record.startedUs + 1 },
      { endedUs: record.endedUs + 1 },
      { status: record.status === 'ok' ? 'failed' : 'ok' },
      { errorHash: record.errorHash === null ? other : null },
      { nondeterminismHash: record.nondeterminismHash === null ? other : null },
      { streamId: record.streamId === null ? 's' : null },
      { offset: record.offset === null ? 0 : record.offset + 1 },
    ];
    expect(changes.map((c) => Object.keys(c)[0]).sort()).toEqual(hashed.sort());
    for (const change of changes) {
      expect(executionRecordHash({ ...record, ...change }), JSON.stringify(change)).not.toBe(record.recordHash);
    }
  });

  it('the fast path always equals SHA-256 of the canonical record', () => {
    const hash = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => sha256(b));
    const encoding = fc.constantFrom('json' as const, 'bytes' as const);
    const number = fc.oneof(fc.integer(), fc.double(), fc.constant(-0), fc.constant(2 ** 53 + 2), fc.constant(1e21));
    const record = fc.record({
      id: fc.uuid(),
      runId: fc.uuid(),
      functionId: fc.string({ unit: 'binary' }),
      functionVersionHash: hash,
      inputHashes: fc.array(hash, { maxLength: 4 }),
      inputEncodings: fc.array(encoding, { maxLength: 4 }),
      outputHash: fc.option(hash),
      outputEncoding: encoding,
      paramsHash: hash,
      contextHash: hash,
      startedUs: number,
      endedUs: number,
      status: fc.constantFrom('ok' as const, 'failed' as const),
      errorHash: fc.option(hash),
      nondeterminismHash: fc.option(hash),
      streamId: fc.option(fc.oneof(fc.string({ unit: 'binary' }), fc.constant('bad \ud800 surrogate'))),
      offset: fc.option(number),
    });
    fc.assert(
      fc.property(record, (e) => {
        let expected: string | undefined;
        try {
          expected = sha256(canonicalize(canonicalRecord(e)));
        } catch (err) {
          expect(err).toBeInstanceOf(UnhashableValueError);
        }
        if (expected === undefined) expect(() => executionRecordHash(e)).toThrow(UnhashableValueError);
        else expect(executionRecordHash(e)).toBe(expected);
      }),
      { numRuns: 500 },
    );
  });
});

describe('pipelines', () => {
  it("each step's input is the previous step's recorded output; a null output ends a record's path", async () => {
    async function* records(): AsyncGenerator<SourceRecord> {
      for (let n = 0; n < 10; n++) {
        await Promise.resolve();
        yield { offset: n, value: { n } };
      }
    }
    const sunk: [unknown, number][] = [];
    const result = await runPipeline(
      store,
      {
        name: 'chain',
        steps: [
          { id: 'square', module: './steps/square.ts' },
          { id: 'label', module: './steps/label.ts', params: { prefix: '#' } },
          { id: 'identity', module: step('identity').module },
        ],
      },
      records(),
      { baseDir: project, streamId: 'mem:chain', sink: (output, offset) => void sunk.push([output, offset]) },
    );
    expect(result).toMatchObject({ status: 'completed', records: 10, outputs: 5, executions: 25, failed: 0 });
    expect(sunk).toEqual([0, 2, 4, 6, 8].map((n) => [{ label: `#${n * n}`, n }, n]));

    const executions = await allExecutions(result.runId);
    expect(executions).toHaveLength(25);
    expect((await store.getRun(result.runId))?.context).toEqual({ source: 'library' });
    for (let n = 0; n < 10; n++) {
      const chain = executions.filter((e) => e.offset === n);
      const byStep = new Map(chain.map((e) => [e.functionId, e]));
      const square = byStep.get('square');
      const label = byStep.get('label');
      expect(square?.inputHashes).toEqual([hashValue({ n })]);
      expect(square?.streamId).toBe('mem:chain');
      expect(label?.inputHashes).toEqual([square?.outputHash]);
      expect(label?.paramsHash).toBe(hashValue({ prefix: '#' }));
      expect(square?.functionVersionHash).toBe(result.versions.square);
      if (n % 2 === 0) {
        const identity = byStep.get('identity');
        expect(identity?.inputHashes).toEqual([label?.outputHash]);
        expect(identity?.outputHash).toBe(hashValue({ label: `#${n * n}`, n }));
      } else {
        expect(label?.outputHash).toBe(hashValue(null));
        expect(byStep.has('identity')).toBe(false);
      }
    }
  });
});
