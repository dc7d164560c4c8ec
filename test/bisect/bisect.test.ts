/**
 * Root-cause bisect on a 100,000-record stream with a planted bug: the stream is processed by one
 * run with `tax` version 1 up to offset 61,000 and by a second run with version 2 — whose bug
 * shows only on some records, the first at offset 61,017 — after it. Bisect must name that step,
 * that version and that offset, with at most ⌈log2(checkpoints)⌉ + 2 checkpoint replays (counted
 * by the replays themselves), and show the last good execution of the same step.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { bisect } from '../../src/bisect/bisect.js';
import { streamTimeline } from '../../src/checkpoint/chain.js';
import { runPipeline, type PipelineResult } from '../../src/pipeline/execute.js';
import type { PipelineDefinition } from '../../src/pipeline/define.js';
import { appendRecords, LogSource } from '../../src/stream/log.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/store.js';
import { writeProject } from '../helpers/project.js';
import { expectRejection } from '../helpers/rejection.js';
import { makeTempDir } from '../helpers/temp.js';

const project = makeTempDir();
const N = 100_000;
const DEPLOY = 61_000;
const EVERY = 2_000;
/** The planted bug: version 2 of `tax` miscomputes records whose n % 50 === 17 (the first after the deploy: 61,017). */
const FIRST_BAD = 61_017;

interface Sale {
  n: number;
  amount: number;
}
const amountOf = (n: number): number => ((n * 7919) % 1000) + 1;
/** The predicate: an output that has a tax must have 20% of the amount, in cents. */
const good = (output: unknown, record: unknown): boolean => {
  const o = output as { tax?: number } | null;
  if (o === null || o === undefined || o.tax === undefined) return true;
  return o.tax === Math.round((record as Sale).amount * 100 * 0.2);
};

const pipeline = (taxModule: string): PipelineDefinition => ({
  name: 'sales',
  steps: [
    { id: 'cents', module: './steps/cents.ts' },
    { id: 'tax', module: taxModule, params: { rate: 0.2 } },
  ],
});

let store: Store;
let run1: PipelineResult;
let run2: PipelineResult;

beforeAll(async () => {
  writeProject(project, {
    'steps/cents.ts': `export default function cents(r: { n: number; amount: number }) { return { n: r.n, cents: r.amount * 100 }; }`,
    'steps/tax-v1.ts': `export default function tax(r: { n: number; cents: number }, p: { rate: number }) {
      return { ...r, tax: Math.round(r.cents * p.rate) };
    }`,
    // The bug: a "discount" path that divides the rate by ten on some records.
    'steps/tax-v2.ts': `export default function tax(r: { n: number; cents: number }, p: { rate: number }) {
      const rate = r.n % 50 === 17 ? p.rate / 10 : p.rate;
      return { ...r, tax: Math.round(r.cents * rate) };
    }`,
  });
  store = await openStore(join(project, 'store'));
  const sales: Sale[] = Array.from({ length: N }, (_, n) => ({ n, amount: amountOf(n) }));
  await appendRecords(store, 'sales', sales, { batchSize: 10_000 });
  const checkpoint = { everyRecords: EVERY, intervalMs: 3_600_000 };
  run1 = await runPipeline(store, pipeline('./steps/tax-v1.ts'), new LogSource(store, 'sales'), { baseDir: project, to: DEPLOY, checkpoint });
  run2 = await runPipeline(store, pipeline('./steps/tax-v2.ts'), new LogSource(store, 'sales'), { baseDir: project, from: DEPLOY, checkpoint });
  expect(run1.records + run2.records).toBe(N);
  expect(run1.versions.tax).not.toBe(run2.versions.tax);
}, 300_000);

describe('bisect', () => {
  it('names the step, the version and the first affected offset, within ⌈log2(checkpoints)⌉ + 2 checkpoint replays', async () => {
    const timeline = await streamTimeline(store, 'sales');
    expect(timeline).toHaveLength(Math.ceil(DEPLOY / EVERY) + Math.ceil((N - DEPLOY) / EVERY)); // 31 + 20
    expect(timeline[0]?.startOffset).toBe(0);
    expect(timeline.at(-1)?.end?.endOffset).toBe(N);
    let replays = 0;
    const r = await bisect(store, { streamId: 'sales', good, onProbe: () => replays++ });
    expect(replays).toBe(r.checkpointReplays);
    expect(r.checkpointReplays).toBeLessThanOrEqual(Math.ceil(Math.log2(timeline.length)) + 2);
    expect(r.checkpointReplays).toBeLessThanOrEqual(r.maxCheckpointReplays);
    expect(r.checkpoints).toBe(timeline.length);

    expect(r.firstBadRecord?.offset).toBe(FIRST_BAD);
    expect(r.firstBadExecution).toMatchObject({ stepId: 'tax', versionHash: run2.versions.tax, offset: FIRST_BAD, runId: run2.runId, params: { rate: 0.2 } });
    expect(r.firstBadExecution?.input).toEqual({ n: FIRST_BAD, cents: amountOf(FIRST_BAD) * 100 });
    expect(r.firstBadExecution?.output).toEqual({ n: FIRST_BAD, cents: amountOf(FIRST_BAD) * 100, tax: Math.round(amountOf(FIRST_BAD) * 100 * 0.02) });
    // When that version first ran: registered by the second run.
    const version = await store.getStepVersion('tax', run2.versions.tax as `sha256:${string}`);
    expect(r.firstBadExecution?.version).toMatchObject({ firstSeenUs: version?.firstSeenUs, firstRunId: run2.runId, module: 'steps/tax-v2.ts' });
    expect(r.firstBadCheckpoint).toMatchObject({ startOffset: DEPLOY, runId: run2.runId, versions: { tax: run2.versions.tax } });
    expect(r.lastGoodCheckpoint).toMatchObject({ endOffset: DEPLOY, runId: run1.runId, versions: { tax: run1.versions.tax } });
    expect(r.versionIntroduced).toEqual({ stepId: 'tax', from: run1.versions.tax, to: run2.versions.tax });
    // The last good execution of the same step: the record just before, same (new) version.
    expect(r.lastGoodExecution).toMatchObject({ stepId: 'tax', offset: FIRST_BAD - 1, versionHash: run2.versions.tax });
    expect(r.versionChanged).toBe(false);
    // The probes: the bad one stopped at its first bad record; good ones replayed every record.
    for (const p of r.probes) {
      if (p.good) expect(p.records).toBe(p.endOffset - p.startOffset);
      else expect(p.firstBadOffset).toBeGreaterThanOrEqual(FIRST_BAD);
      expect(p.diverged).toBe(0);
    }
  }, 120_000);

  it('within a range, and in one run: the first bad checkpoint is the range\'s first; nothing bad is said when all is good', async () => {
    const timeline = await streamTimeline(store, 'sales');
    const inRun2 = await bisect(store, { streamId: 'sales', good, runId: run2.runId });
    expect(inRun2.checkpoints).toBe(20);
    expect(inRun2.firstBadRecord?.offset).toBe(FIRST_BAD);
    expect(inRun2.lastGoodCheckpoint).toBeNull();
    expect(inRun2.lastGoodExecution).toMatchObject({ offset: FIRST_BAD - 1 });

    const before = await bisect(store, { streamId: 'sales', good, to: timeline[30]!.checkpointId });
    expect(before).toMatchObject({ checkpoints: 31, firstBadCheckpoint: null, firstBadExecution: null });
    expect(before.checkpointReplays).toBe(Math.ceil(Math.log2(32)));

    // A predicate that rejects everything: the first checkpoint is bad; the first execution judged is the culprit.
    const none = await bisect(store, { streamId: 'sales', good: () => false, from: timeline[5]!.checkpointId, to: timeline[8]!.checkpointId });
    expect(none.firstBadCheckpoint?.checkpointId).toBe(timeline[5]!.checkpointId);
    expect(none.firstBadExecution).toMatchObject({ stepId: 'cents', offset: timeline[5]!.startOffset });
  }, 120_000);

  it('refuses an unknown stream, checkpoint or a range in the wrong order', async () => {
    const timeline = await streamTimeline(store, 'sales');
    await expectRejection(bisect(store, { streamId: 'nope', good }), 'NOT_FOUND', /no COMPLETE checkpoints/);
    await expectRejection(bisect(store, { streamId: 'sales', good, from: '01a2287c-0000-7000-8000-000000000000' }), 'NOT_FOUND');
    await expectRejection(bisect(store, { streamId: 'sales', good, from: timeline[9]!.checkpointId, to: timeline[2]!.checkpointId }), 'CHECKPOINT_INVALID', /wrong order/);
  });
});
