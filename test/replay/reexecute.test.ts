/**
 * Deterministic re-execution: the clock and randomness a step consumed at capture are recorded
 * with its execution and fed back at replay, so the step reproduces its output bit for bit;
 * sources that cannot be recorded fail loudly; nondeterminism that was not recorded is detected.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeValue, type ContentHash } from '../../src/hash/canonical.js';
import { reexecute } from '../../src/replay/execution.js';
import { DeterminismViolationError, ReplayTape, withTape, type NondeterminismRecord } from '../../src/step/determinism.js';
import { startRun } from '../../src/capture/run.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/store.js';
import { ensureDist } from '../helpers/dist.js';
import { writeProject } from '../helpers/project.js';
import { makeTempDir } from '../helpers/temp.js';

const project = makeTempDir();
let store: Store;

beforeAll(async () => {
  await ensureDist();
  writeProject(project, {
    'steps/clocky.ts': `
      import { randomBytes, randomInt } from 'node:crypto';
      export default function clocky(input: { n: number }) {
        const started = Date.now();
        return {
          n: input.n,
          at: new Date().toISOString(),
          asString: typeof Date(),
          elapsed: performance.now() >= 0,
          started,
          draw: Math.random(),
          id: crypto.randomUUID(),
          salt: randomBytes(8).toString('hex'),
          dice: randomInt(1, 7),
          filled: Array.from(crypto.getRandomValues(new Uint8Array(4))),
          fixed: new Date(0).toISOString(),
        };
      }`,
    'steps/pure.ts': `export default function pure(input: { n: number }) { return { doubled: input.n * 2 }; }`,
    'steps/timer.ts': `export default function timer() { setTimeout(() => undefined, 1); return 1; }`,
    'steps/weak.ts': `export default function weak(input: object) { return { alive: new WeakRef(input).deref() !== undefined }; }`,
    'steps/leaky.ts': `
      // perf_hooks is not one of the recorded sources: its clock differs at replay.
      export default function leaky() { return { t: require('node:perf_hooks').performance.now() }; }`,
  });
  store = await openStore(join(project, '.provenant'));
}, 180_000);

afterAll(async () => {
  await store.close();
});

async function capture(stepFile: string, inputs: unknown[]) {
  const run = await startRun(store, { name: stepFile, failurePolicy: 'dead-letter' });
  const step = await run.step(stepFile, { module: join(project, 'steps', `${stepFile}.ts`) });
  const outcomes = [];
  for (const input of inputs) outcomes.push(await run.attempt(step, input));
  await run.finish();
  return { run, outcomes };
}

describe('deterministic re-execution', () => {
  it('records the clock and random reads of a call and replays them bit for bit', async () => {
    const { outcomes } = await capture('clocky', [{ n: 1 }, { n: 2 }, { n: 3 }]);
    for (const outcome of outcomes) {
      expect(outcome.ok).toBe(true);
      const e = await store.getExecution(outcome.executionId);
      expect(e?.nondeterminismHash).not.toBeNull();
      const record = decodeValue(await store.getBlob(e?.nondeterminismHash as ContentHash), 'json') as NondeterminismRecord;
      expect(record.reads.map(([kind]) => kind)).toEqual(['now', 'now', 'now', 'perf', 'random', 'uuid', 'bytes', 'int', 'bytes']);
      // Wait so that the real clock has moved on: only the recording can give the same output.
      await new Promise((resolve) => setTimeout(resolve, 5));
      const replay = await reexecute(store, outcome.executionId);
      expect(replay).toMatchObject({ matches: true, cause: null, error: null });
      expect(replay.replayedOutputHash).toBe(e?.outputHash);
      expect(replay.output).toEqual(outcome.ok ? outcome.output : undefined);
    }
  });

  it('a pure step records no nondeterminism and replays', async () => {
    const { outcomes } = await capture('pure', [{ n: 21 }]);
    const [outcome] = outcomes;
    const e = await store.getExecution(outcome?.executionId ?? '');
    expect(e?.nondeterminismHash).toBeNull();
    expect(await reexecute(store, outcome?.executionId ?? '')).toMatchObject({ matches: true, output: { doubled: 42 } });
  });

  it('timers and weak references fail loudly at capture, with a named error, and replay the same way', async () => {
    for (const [file, used] of [
      ['timer', 'setTimeout()'],
      ['weak', 'WeakRef'],
    ] as const) {
      const { outcomes } = await capture(file, [{ n: 1 }]);
      const [outcome] = outcomes;
      if (outcome === undefined || outcome.ok) throw new Error(`${file} should have failed`);
      expect(outcome.error.name).toBe('DeterminismViolationError');
      expect(outcome.error.message).toBe(`a step used ${used}, which cannot be recorded or replayed`);
      expect(await reexecute(store, outcome.executionId)).toMatchObject({ matches: true, cause: null });
    }
  });

  it('nondeterminism that was not recorded is detected and named, not hidden', async () => {
    const { outcomes } = await capture('leaky', [{}]);
    await new Promise((resolve) => setTimeout(resolve, 5));
    const replay = await reexecute(store, outcomes[0]?.executionId ?? '');
    expect(replay.matches).toBe(false);
    expect(replay.cause).toBe('unrecorded-nondeterminism');
    expect(replay.replayedOutputHash).not.toBe(replay.recordedOutputHash);
  });

  it('a replay that asks for other values than were recorded stops with what was asked and what was recorded', async () => {
    const { run } = await capture('clocky', [{ n: 9 }]);
    const step = await run.step('clocky', { module: join(project, 'steps', 'clocky.ts') });
    const ctx = { stepId: 'clocky', versionHash: step.versionHash, executionId: 'x', runId: run.id, context: {} };
    const wrongKind = new ReplayTape({ v: 1, reads: [['random', 0.5]] }, 'execution x');
    let thrown: unknown;
    try {
      withTape(wrongKind, () => step.fn({ n: 1 }, {}, ctx));
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(DeterminismViolationError);
    expect((thrown as Error).message).toBe('execution x: at replay the step read the clock (read 1), but at capture it read Math.random() there');
    expect(wrongKind.diverged).toBe(true);
    const tooFew = new ReplayTape(null, 'execution y');
    expect(() => withTape(tooFew, () => step.fn({ n: 1 }, {}, ctx))).toThrow(/execution y: at replay the step read the clock \(read 1\), but at capture it read nothing more/);
  });
});
