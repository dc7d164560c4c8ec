/**
 * What-if replay over real flight data: substituted code (a module file, a recorded version hash)
 * and params for chosen steps; the steps after them see the new outputs, the stateful step's state
 * follows them. The counts per step and per record and every record's RFC 6902 patch are checked
 * against an independent computation (the same steps written out here in plain TypeScript), and the
 * store's recorded history is byte-for-byte unchanged afterwards.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { canonicalize, hashValue } from '../../src/hash/canonical.js';
import { runPipeline } from '../../src/pipeline/execute.js';
import type { PipelineDefinition } from '../../src/pipeline/define.js';
import { runChain } from '../../src/checkpoint/chain.js';
import { applyPatch, valueAt } from '../../src/replay/json-patch.js';
import { readRecords } from '../../src/sources/files.js';
import { vegaDatasetPath } from '../../src/sources/datasets.js';
import { prepareStep } from '../../src/step/register.js';
import { appendRecords, LogSource } from '../../src/stream/log.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/store.js';
import { whatIf, type WhatIfResult } from '../../src/whatif/whatif.js';
import { writeProject } from '../helpers/project.js';
import { expectRejection } from '../helpers/rejection.js';
import { makeTempDir } from '../helpers/temp.js';

const project = makeTempDir();
const N = 1000;
interface Flight {
  origin: string;
  destination: string;
  delay: number;
}
const flights: Flight[] = [];

// The steps, as modules (what runs) …
const MODULES = {
  'steps/parse.ts': `export default function parse(r: { origin: string; destination: string; delay: number }) {
    if (r.delay > 400) return null;
    return { route: r.origin + '-' + r.destination, delay: r.delay };
  }`,
  'steps/parse-v2.ts': `export default function parse(r: { origin: string; destination: string; delay: number }) {
    if (r.delay > 200) return null; // filters more
    if (r.delay < -20) throw new Error('implausibly early: ' + r.delay); // fails where v1 did not
    return { route: r.origin + '-' + r.destination, delay: Math.round(r.delay / 5) * 5 }; // rounds
  }`,
  'steps/classify.ts': `export default function classify(r: { delay: number }, p: { lateAfter: number }) {
    if (r.delay === 0) throw new Error('nothing to classify');
    return { ...r, late: r.delay > p.lateAfter };
  }`,
  'steps/classify-v2.ts': `export default function classify(r: { delay: number }, p: { lateAfter: number }) {
    return { ...r, late: r.delay > p.lateAfter };
  }`,
  'steps/count.ts': `export default function count(r: { route: string }, _p: unknown, ctx: { state?: Record<string, number> }) {
    const s = ctx.state as Record<string, number>;
    s[r.route] = (s[r.route] ?? 0) + 1;
    return { ...r, n: s[r.route] };
  }`,
};

// … and the same steps written out here: the independent computation.
type Out = { ok: true; value: unknown } | { ok: false; error: string };
type Fn = (input: any, params: any, state: Record<string, number>) => unknown; // eslint-disable-line @typescript-eslint/no-explicit-any
const parse1: Fn = (r: Flight) => (r.delay > 400 ? null : { route: `${r.origin}-${r.destination}`, delay: r.delay });
const parse2: Fn = (r: Flight) => {
  if (r.delay > 200) return null;
  if (r.delay < -20) throw new Error(`implausibly early: ${r.delay}`);
  return { route: `${r.origin}-${r.destination}`, delay: Math.round(r.delay / 5) * 5 };
};
const classify1: Fn = (r: { delay: number }, p: { lateAfter: number }) => {
  if (r.delay === 0) throw new Error('nothing to classify');
  return { ...r, late: r.delay > p.lateAfter };
};
const classify2: Fn = (r: { delay: number }, p: { lateAfter: number }) => ({ ...r, late: r.delay > p.lateAfter });
const count: Fn = (r: { route: string }, _p, s) => {
  s[r.route] = (s[r.route] ?? 0) + 1;
  return { ...r, n: s[r.route] };
};

/** A record's path through steps: each step's outcome, until a failure or a null. */
function path(steps: readonly [string, Fn, unknown][], record: Flight, state: Record<string, number>): { stepId: string; out: Out }[] {
  const outs: { stepId: string; out: Out }[] = [];
  let value: unknown = record;
  for (const [stepId, fn, params] of steps) {
    let out: Out;
    try {
      out = { ok: true, value: fn(structuredClone(value), params, state) };
    } catch (err) {
      out = { ok: false, error: (err as Error).message };
    }
    outs.push({ stepId, out });
    if (!out.ok || out.value === null) break;
    value = out.value;
  }
  return outs;
}

interface Expected {
  steps: Record<string, { unchanged: number; changed: number; newlyFailing: number; fixed: number; added: number; notReached: number }>;
  records: { unchanged: number; changed: number; newlyFailing: number; fixed: number };
  /** offset → the record's new final output, for changed records. */
  finals: Map<number, unknown>;
}

function expectedWhatIf(records: readonly Flight[], oldSteps: readonly [string, Fn, unknown][], newSteps: readonly [string, Fn, unknown][]): Expected {
  const oldState: Record<string, number> = {};
  const newState: Record<string, number> = {};
  const steps: Expected['steps'] = {};
  const records2 = { unchanged: 0, changed: 0, newlyFailing: 0, fixed: 0 };
  const finals = new Map<number, unknown>();
  const same = (a: Out, b: Out): boolean => (a.ok && b.ok ? hashValue(a.value) === hashValue(b.value) : !a.ok && !b.ok && a.error === b.error);
  records.forEach((r, offset) => {
    const before = path(oldSteps, r, oldState);
    const after = path(newSteps, r, newState);
    for (let k = 0; k < Math.max(before.length, after.length); k++) {
      const id = (after[k] ?? before[k])!.stepId;
      const c = (steps[id] ??= { unchanged: 0, changed: 0, newlyFailing: 0, fixed: 0, added: 0, notReached: 0 });
      const b = before[k]?.out;
      const a = after[k]?.out;
      if (b === undefined) c.added++;
      else if (a === undefined) c.notReached++;
      else if (same(b, a)) c.unchanged++;
      else if (b.ok && a.ok) c.changed++;
      else if (b.ok) c.newlyFailing++;
      else if (a.ok) c.fixed++;
      else c.changed++;
    }
    const b = before[before.length - 1]!.out;
    const a = after[after.length - 1]!.out;
    if (b.ok && a.ok) {
      if (hashValue(b.value) === hashValue(a.value)) records2.unchanged++;
      else {
        records2.changed++;
        finals.set(offset, a.value);
      }
    } else if (b.ok) records2.newlyFailing++;
    else if (a.ok) records2.fixed++;
    else records2.unchanged++;
  });
  return { steps, records: records2, finals };
}

/** The recorded history — runs, their ends, executions, dead letters, checkpoints — as sorted row dumps, without the given runs' rows. */
function dumpHistory(dir: string, excludeRunIds: readonly string[] = []): Record<string, string[]> {
  const db = new Database(join(dir, 'provenant.db'), { readonly: true });
  try {
    const seqs = excludeRunIds.map((id) => (db.prepare('SELECT seq FROM runs WHERE id = ?').get(id) as { seq: number }).seq);
    const rows = (sql: string, skip: (row: Record<string, unknown>) => boolean = () => false): string[] =>
      (db.prepare(sql).all() as Record<string, unknown>[])
        .filter((r) => !skip(r))
        .map((r) => JSON.stringify(r, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('hex') : v)))
        .sort();
    return {
      runs: rows('SELECT * FROM runs', (r) => excludeRunIds.includes(r.id as string)),
      run_ends: rows('SELECT * FROM run_ends', (r) => seqs.includes(r.run as number)),
      executions: rows('SELECT * FROM executions', (r) => seqs.includes(r.run as number)),
      dead_letters: rows('SELECT * FROM dead_letters', (r) => seqs.includes(r.run as number)),
      checkpoints: rows('SELECT * FROM checkpoints'),
      checkpoint_ends: rows('SELECT * FROM checkpoint_ends'),
      stream_log: rows('SELECT * FROM stream_log'),
    };
  } finally {
    db.close();
  }
}

const pipeline: PipelineDefinition = {
  name: 'whatif-flights',
  failurePolicy: 'dead-letter',
  steps: [
    { id: 'parse', module: './steps/parse.ts' },
    { id: 'classify', module: './steps/classify.ts', params: { lateAfter: 15 } },
    { id: 'count', module: './steps/count.ts', stateful: true },
  ],
};
const OLD: [string, Fn, unknown][] = [
  ['parse', parse1, {}],
  ['classify', classify1, { lateAfter: 15 }],
  ['count', count, {}],
];

let store: Store;
let dir: string;
let runId: string;

beforeAll(async () => {
  writeProject(project, MODULES);
  for await (const r of readRecords(vegaDatasetPath('flights-2k.json'), { limit: N })) flights.push(r.value as Flight);
  dir = join(project, 'store');
  store = await openStore(dir);
  await appendRecords(store, 'flights', flights);
  const captured = await runPipeline(store, pipeline, new LogSource(store, 'flights'), { baseDir: project, checkpoint: { everyRecords: 250 } });
  runId = captured.runId;
  expect(captured.checkpoints).toBe(4);
}, 120_000);

function checkAgainst(r: WhatIfResult, expected: Expected): void {
  expect(r.records).toBe(N);
  const got = r.diffs.filter((d) => d.outcome === 'changed').map((d) => d.offset);
  const want = [...expected.finals.keys()];
  expect(got.filter((o) => !want.includes(o)).map((o) => [o, flights[o]])).toEqual(want.filter((o) => !got.includes(o)).map((o) => [o, flights[o]]));
  expect(r.recordOutcomes).toEqual(expected.records);
  const steps = Object.fromEntries(r.steps.map((s) => [s.stepId, { unchanged: s.unchanged, changed: s.changed, newlyFailing: s.newlyFailing, fixed: s.fixed, added: s.added, notReached: s.notReached }]));
  expect(steps).toEqual(expected.steps);
}

describe('what-if', () => {
  it('a module for one step, a recorded version and a param for another: counts and patches match an independent computation; history unchanged', async () => {
    // The planted failures exist in the data: the test means something.
    expect(flights.filter((f) => f.delay === 0).length).toBeGreaterThan(10);
    expect(flights.filter((f) => f.delay < -20).length).toBeGreaterThan(0);
    expect(flights.filter((f) => f.delay > 200 && f.delay <= 400).length).toBeGreaterThan(0);

    const classifyV2 = await prepareStep(store, 'classify', { module: join(project, 'steps/classify-v2.ts') });
    const before = dumpHistory(dir);
    const r = await whatIf(store, {
      streamId: 'flights',
      substitutions: {
        parse: { code: { module: join(project, 'steps/parse-v2.ts') } },
        classify: { code: { versionHash: classifyV2.versionHash }, params: { lateAfter: 30 } },
      },
      label: 'parse v2, classify v2 at 30 min',
    });
    const expected = expectedWhatIf(flights, OLD, [
      ['parse', parse2, {}],
      ['classify', classify2, { lateAfter: 30 }],
      ['count', count, {}],
    ]);
    checkAgainst(r, expected);
    // Every kind of outcome happened.
    const s = Object.fromEntries(r.steps.map((x) => [x.stepId, x]));
    expect(s.parse!.changed).toBeGreaterThan(0);
    expect(s.parse!.newlyFailing).toBeGreaterThan(0);
    expect(s.classify!.fixed).toBeGreaterThan(0);
    expect(s.count!.added).toBeGreaterThan(0);
    expect(s.count!.notReached).toBeGreaterThan(0);
    expect(s.classify).toMatchObject({ substituted: true, versionHash: classifyV2.versionHash });
    expect(s.count).toMatchObject({ substituted: false });

    // Per record: each patch turns the recorded final output into the independently computed one.
    const changed = r.diffs.filter((d) => d.outcome === 'changed');
    expect(changed).toHaveLength(expected.finals.size);
    expect(r.diffsTruncated).toBe(false);
    for (const d of changed) {
      const recorded = JSON.parse(Buffer.from(await store.getBlob(d.recordedOutputHash!)).toString('utf8')) as unknown;
      const patched = applyPatch(recorded, d.patch);
      expect(canonicalize(patched)).toBe(canonicalize(expected.finals.get(d.offset))); // (-0 is 0 in JSON)
      expect(hashValue(patched)).toBe(d.newOutputHash);
      for (const [path, was] of Object.entries(d.was)) expect(was).toEqual(valueAt(recorded, path));
    }
    expect(r.diffs.map((d) => d.offset)).toEqual([...r.diffs.map((d) => d.offset)].sort((a, b) => a - b));

    // A run of its own, linked to the range it replayed; its executions are the changed ones.
    const run = await store.getRun(r.whatIfRunId);
    expect(run).toMatchObject({ kind: 'whatif', end: { status: 'completed' } });
    expect(run?.options).toMatchObject({ replayOf: runId, streamId: 'flights', label: 'parse v2, classify v2 at 30 min', substitutions: { classify: { versionHash: classifyV2.versionHash, params: { lateAfter: 30 } } } });
    const recorded = await store.listExecutions({ runId: r.whatIfRunId, limit: 10_000 });
    const divergent = r.steps.reduce((n, x) => n + x.changed + x.newlyFailing + x.fixed + x.added, 0);
    expect(recorded).toHaveLength(divergent);
    expect(r.recordedExecutions).toBe(divergent);
    const classifyRecorded = recorded.filter((e) => e.functionId === 'classify');
    expect(classifyRecorded.every((e) => e.functionVersionHash === classifyV2.versionHash && e.paramsHash === hashValue({ lateAfter: 30 }))).toBe(true);
    // The full report is stored as a value.
    const report = JSON.parse(Buffer.from(await store.getBlob(r.reportHash!)).toString('utf8')) as WhatIfResult;
    expect(report.recordOutcomes).toEqual(r.recordOutcomes);
    expect(report.diffs).toHaveLength(r.diffs.length);

    // Recorded history: byte for byte what it was, plus the what-if run's own rows.
    expect(dumpHistory(dir, [r.whatIfRunId])).toEqual(before);
  });

  it('params alone, over a middle range: the stateful step starts from the snapshot before it', async () => {
    const chain = await runChain(store, runId);
    const r = await whatIf(store, { streamId: 'flights', from: chain[1]!.checkpointId, to: chain[2]!.checkpointId, substitutions: { classify: { params: { lateAfter: 0 } } } });
    expect(r).toMatchObject({ checkpoints: 2, records: 500, from: chain[1]!.checkpointId });
    // Only classify's output and what follows it change: parse is untouched.
    const s = Object.fromEntries(r.steps.map((x) => [x.stepId, x]));
    expect(s.parse).toMatchObject({ changed: 0, newlyFailing: 0, unchanged: s.parse!.executions });
    const lateNow = flights.slice(250, 750).filter((f) => f.delay > 0 && f.delay <= 15 && f.delay <= 400).length;
    expect(s.classify!.changed).toBe(lateNow);
    // The counts per route start from the snapshot, so records not reclassified keep their recorded output.
    expect(s.count!.changed).toBe(lateNow);
  });

  it('a substitution that changes nothing reports nothing changed', async () => {
    const r = await whatIf(store, { streamId: 'flights', substitutions: { parse: { code: { module: join(project, 'steps/parse.ts') } } } });
    expect(r.recordOutcomes).toEqual({ unchanged: N, changed: 0, newlyFailing: 0, fixed: 0 });
    expect(r.diffs).toEqual([]);
    expect(r.recordedExecutions).toBe(0);
  });

  it('refuses bad substitutions before recording anything', async () => {
    const runs = (await store.listRuns(1000)).length;
    await expectRejection(whatIf(store, { streamId: 'flights', substitutions: {} }), 'INPUT_INVALID', /at least one substitution/);
    await expectRejection(whatIf(store, { streamId: 'flights', substitutions: { nope: { params: { a: 1 } } } }), 'INPUT_INVALID', /step nope is not a step of the replayed range/);
    await expectRejection(whatIf(store, { streamId: 'flights', substitutions: { parse: { code: { versionHash: `sha256:${'0'.repeat(64)}` } } } }), 'STEP_NOT_FOUND');
    await expectRejection(whatIf(store, { streamId: 'flights', substitutions: { parse: { code: { module: join(project, 'steps/missing.ts') } } } }), 'STEP_BUILD_FAILED');
    await expectRejection(whatIf(store, { streamId: 'nope', substitutions: { parse: { params: {} } } }), 'NOT_FOUND');
    expect((await store.listRuns(1000)).length).toBe(runs);
  });
});
