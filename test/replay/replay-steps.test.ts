/**
 * The replay loop as an async iterator (replaySteps): one event per recorded execution, in order,
 * with its input, params, context, the recorded execution, what the replay produced and the
 * verdict; stopping early; substitutions (a module file, a recorded version, params) with the
 * steps after them seeing the new outputs. replay() is the same loop, counted.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { hashValue } from '../../src/hash/canonical.js';
import { runPipeline } from '../../src/pipeline/execute.js';
import type { PipelineDefinition } from '../../src/pipeline/define.js';
import { replay, replaySteps, type ReplayedStep } from '../../src/replay/range.js';
import { readRecords } from '../../src/sources/files.js';
import { vegaDatasetPath } from '../../src/sources/datasets.js';
import { appendRecords, LogSource } from '../../src/stream/log.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/store.js';
import { writeProject } from '../helpers/project.js';
import { expectRejection } from '../helpers/rejection.js';
import { makeTempDir } from '../helpers/temp.js';

const project = makeTempDir();
const N = 300;
const flights: { origin: string; destination: string; delay: number }[] = [];
let store: Store;
let runId: string;

const pipeline: PipelineDefinition = {
  name: 'steps',
  failurePolicy: 'dead-letter',
  steps: [
    { id: 'parse', module: './steps/parse.ts' },
    { id: 'stamp', module: './steps/stamp.ts', params: { unit: 'ms' } },
    { id: 'count', module: './steps/count.ts', stateful: true },
  ],
};

beforeAll(async () => {
  writeProject(project, {
    'steps/parse.ts': `export default function parse(r: { origin: string; destination: string; delay: number }) {
      if (r.delay > 100) return null;
      return { route: r.origin + '-' + r.destination, delay: r.delay };
    }`,
    'steps/parse-doubled.ts': `export default function parse(r: { origin: string; destination: string; delay: number }) {
      if (r.delay > 100) return null;
      return { route: r.origin + '-' + r.destination, delay: r.delay * 2 };
    }`,
    'steps/stamp.ts': `export default function stamp(r: object, p: { unit: string }) { return { ...r, at: Date.now(), unit: p.unit }; }`,
    'steps/count.ts': `export default function count(r: { route: string }, _p: unknown, ctx: { state?: Record<string, number> }) {
      const s = ctx.state as Record<string, number>;
      s[r.route] = (s[r.route] ?? 0) + 1;
      return { ...r, n: s[r.route] };
    }`,
  });
  for await (const r of readRecords(vegaDatasetPath('flights-2k.json'), { limit: N })) flights.push(r.value as (typeof flights)[number]);
  store = await openStore(join(project, 'store'));
  await appendRecords(store, 'flights', flights);
  runId = (await runPipeline(store, pipeline, new LogSource(store, 'flights'), { baseDir: project, checkpoint: { everyRecords: 100 } })).runId;
}, 120_000);

describe('replaySteps', () => {
  it('yields every recorded execution in order, with input, params, context, recorded execution, output and verdict', async () => {
    const recorded = await store.listExecutions({ runId, limit: 10_000 });
    const session = replaySteps(store, { streamId: 'flights', context: { principal: 'dev' } });
    const events: ReplayedStep[] = [];
    for await (const ev of session) events.push(ev);
    expect(events.map((e) => e.recorded?.id)).toEqual(recorded.map((e) => e.id));
    expect(events.every((e) => e.verdict === 'match' && e.cause === null && e.ran)).toBe(true);
    expect(session.stats).toMatchObject({ records: N, executions: recorded.length, matched: recorded.length, diverged: 0, checkpoints: 3 });
    for (const [i, ev] of events.entries()) {
      const rec = recorded[i]!;
      expect(ev).toMatchObject({ stepId: rec.functionId, versionHash: rec.functionVersionHash, offset: rec.offset, paramsHash: rec.paramsHash, substituted: false });
      expect(ev.input?.encoded.hash).toBe(rec.inputHashes[0]);
      expect(ev.output?.hash).toBe(rec.outputHash);
      expect(ev.context).toEqual({ source: 'library', principal: 'dev' });
    }
    // The first step's input is the source record; the stamp step's params; the path ends at a filter.
    const first = events[0]!;
    expect(first.inputValue).toEqual(flights[0]);
    expect(first.position).toBe(0);
    expect(await first.recordedOutput()).toEqual(first.outputValue);
    expect(events.find((e) => e.stepId === 'stamp')?.params).toEqual({ unit: 'ms' });
    const filtered = events.find((e) => e.stepId === 'parse' && e.outputValue === null)!;
    expect(filtered.last).toBe(true);
    expect(events.filter((e) => e.last)).toHaveLength(N);
    // replay() is the same loop, counted.
    const r = await replay(store, { streamId: 'flights' });
    expect(r).toMatchObject({ records: N, executions: recorded.length, matched: recorded.length, diverged: 0 });
  });

  it('can stop early; each session iterates once; a range error comes before any event', async () => {
    const session = replaySteps(store, { streamId: 'flights' });
    let n = 0;
    for await (const _ of session) if (++n === 10) break;
    expect(session.stats.executions).toBe(10);
    expect(() => session[Symbol.asyncIterator]()).toThrow(/iterated once/);
    const bad = replaySteps(store, { streamId: 'flights', from: 'ffffffff-nope' });
    await expectRejection(bad.open(), 'NOT_FOUND', /no checkpoint/);
  });

  it('substitutions: a module file and params; the steps after see the new outputs; verdicts say why', async () => {
    const session = replaySteps(store, {
      streamId: 'flights',
      substitutions: { parse: { code: { module: join(project, 'steps/parse-doubled.ts') } }, stamp: { params: { unit: 's' } } },
    });
    const events: ReplayedStep[] = [];
    for await (const ev of session) events.push(ev);
    const parse = events.filter((e) => e.stepId === 'parse');
    const v2 = session.substitutedVersions.parse!;
    expect(parse.every((e) => e.versionHash === v2 && e.substituted && e.recorded?.functionVersionHash !== v2)).toBe(true);
    // A delay of 0 doubles to 0: same output; any other changes.
    for (const e of parse) {
      const source = flights[e.offset]!;
      expect(e.verdict).toBe(source.delay === 0 || source.delay > 100 ? 'match' : 'diverged');
      if (e.verdict === 'diverged') expect(e.cause).toBe('substituted');
    }
    const stamp = events.filter((e) => e.stepId === 'stamp');
    expect(stamp.every((e) => e.substituted && e.cause === 'substituted' && (e.params as { unit: string }).unit === 's' && e.paramsHash === hashValue({ unit: 's' }))).toBe(true);
    // count sees stamp's new outputs: changed input, so changed output (cause input-changed), counts per route unchanged.
    const count = events.filter((e) => e.stepId === 'count');
    expect(count.every((e) => e.cause === 'input-changed' && (e.outputValue as { unit: string }).unit === 's')).toBe(true);
    // The clock reads were fed back from the recording.
    const recordedStamp = await stamp[0]!.recordedOutput() as { at: number };
    expect((stamp[0]!.outputValue as { at: number }).at).toBe(recordedStamp.at);
  });

  it('a recorded version by hash runs that stored code; a step not in the range is refused', async () => {
    const first = replaySteps(store, { streamId: 'flights', substitutions: { parse: { code: { module: join(project, 'steps/parse-doubled.ts') } } } });
    await first.open();
    const hash = first.substitutedVersions.parse!;
    const byHash = replaySteps(store, { streamId: 'flights', substitutions: { parse: { code: { versionHash: hash } } } });
    let diverged = 0;
    for await (const ev of byHash) if (ev.stepId === 'parse' && ev.verdict === 'diverged') diverged++;
    expect(diverged).toBe(flights.filter((f) => f.delay !== 0 && f.delay <= 100).length);
    await expectRejection(replaySteps(store, { streamId: 'flights', substitutions: { nope: { params: {} } } }).open(), 'INPUT_INVALID', /not a step of the replayed range/);
  });
});
