/**
 * The `provenant` command line, run as users run it: `node dist/cli/main.js` in a child process,
 * against real stores in temp folders. What users rely on: the commands record and show what they
 * say, `--json` is machine-readable, and errors come with a message and a documented exit code
 * (2 bad usage or input, 4 a step stopped the run, 5 the store cannot be used).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { uuidv7 } from 'uuidv7';
import { beforeAll, describe, expect, it } from 'vitest';
import { hashValue, type ExecutionRecord, type RunInfo, type StepSummary } from '../../src/index.js';
import { cli, cliJson } from '../helpers/cli.js';
import { ensureDist } from '../helpers/dist.js';
import { REPO_ROOT } from '../helpers/paths.js';
import { makeTempDir } from '../helpers/temp.js';



const PIPELINE = 'examples/flights/pipeline.ts';

/** Flights as vega-datasets holds them; the fourth lacks an origin (normalize refuses it). */
const FLIGHTS = [
  { date: '2001/01/14 21:55', delay: -5, distance: 407, origin: 'LAS', destination: 'OAK' },
  { date: '2001/02/03 07:05', delay: 10, distance: 1750, origin: 'DTW', destination: 'LAS' },
  { date: '2001/03/20 13:40', delay: 30, distance: 2399, origin: 'HNL', destination: 'SFO' },
  { date: '2001/03/21 09:00', delay: 12, distance: 300, destination: 'SFO' },
  { date: '2001/03/22 18:30', delay: 120, distance: 1500, origin: 'SEA', destination: 'BOS' },
];
const VALID = FLIGHTS.filter((f) => 'origin' in f);
const EXPECTED_CLASSES = ['early', 'on-time', 'late', 'severe'];

interface RunJson {
  runId: string;
  status: string;
  records: number;
  outputs: number;
  executions: number;
  failed: number;
  deadLettered: number;
  steps: Record<string, { executions: number; failed: number; versionHash: string }>;
  versions: Record<string, string>;
  storeStats: { executions: number };
}

interface ShowJson {
  execution: ExecutionRecord;
  inputs: unknown[];
  output: unknown;
  params: unknown;
  error: { name: string; message: string } | null;
  stepVersion: { manifest: { module: string } } | null;
}

beforeAll(async () => {
  await ensureDist();
});

const FLIGHTS_20K = join(REPO_ROOT, 'node_modules', 'vega-datasets', 'data', 'flights-20k.json');

describe('a store: init, a run and its verifying replay, and the listing commands', () => {
  const store = join(makeTempDir(), 'store');
  let normalizeIds: string[] = [];
  let demo: RunJson;

  it('init creates an empty store', async () => {
    expect(await cliJson(['init', '--store', store, '--json'])).toEqual({ store, created: true });
    expect(existsSync(join(store, 'provenant.db'))).toBe(true);
    const again = await cli(['init', '--store', store]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`Store ready at ${store}`);
  });

  it('run --limit 300 records 300 flights through the three steps; replay --verify reproduces them', async () => {
    demo = await cliJson<RunJson>(['run', PIPELINE, '--input', FLIGHTS_20K, '--store', store, '--limit', '300', '--json']);
    expect(demo).toMatchObject({ status: 'completed', records: 300, outputs: 300, executions: 900, failed: 0, deadLettered: 0 });
    expect(demo.steps.normalize?.executions).toBe(300);
    expect(demo.steps.classify?.executions).toBe(300);
    expect(demo.steps.routeStats?.executions).toBe(300);
    expect(demo.storeStats.executions).toBe(900);
    const replayed = await cliJson<{ executions: number; diverged: number }>(['replay', '--stream', `file:${FLIGHTS_20K}`, '--verify', '--store', store, '--json']);
    expect(replayed).toMatchObject({ executions: 900, diverged: 0 });
  });

  it('executions --step normalize lists them (50 by default, with the total)', async () => {
    const page = await cliJson<{ total: number; executions: ExecutionRecord[] }>(['executions', '--store', store, '--step', 'normalize', '--json']);
    expect(page.total).toBe(300);
    expect(page.executions).toHaveLength(50);
    const all = await cliJson<{ total: number; executions: ExecutionRecord[] }>(['executions', '--store', store, '--step', 'normalize', '--limit', '300', '--json']);
    expect(all.executions).toHaveLength(300);
    expect(new Set(all.executions.map((e) => e.functionId))).toEqual(new Set(['normalize']));
    expect(all.executions.map((e) => e.offset)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(all.executions.every((e) => e.runId === demo.runId && e.functionVersionHash === demo.versions.normalize)).toBe(true);
    normalizeIds = all.executions.map((e) => e.id);

    const next = await cliJson<{ executions: ExecutionRecord[] }>(['executions', '--store', store, '--step', 'normalize', '--after', normalizeIds[49] as string, '--limit', '10', '--json']);
    expect(next.executions.map((e) => e.id)).toEqual(normalizeIds.slice(50, 60));
    expect(await cliJson(['executions', '--store', store, '--status', 'failed', '--json'])).toEqual({ total: 0, executions: [] });

    const human = await cli(['executions', '--store', store, '--step', 'classify', '--limit', '5']);
    expect(human.stdout).toContain('5 of 300 shown; next page: --after');
  });

  it('show returns an execution with its input and output, which hash to the recorded hashes', async () => {
    const id = normalizeIds[7] as string;
    const shown = await cliJson<ShowJson>(['show', id, '--store', store, '--json']);
    expect(shown.execution.id).toBe(id);
    expect(shown.execution.context).toEqual({ source: 'cli' });
    const input = shown.inputs[0] as { origin: string; destination: string; delay: number };
    const output = shown.output as { route: string; delayMinutes: number };
    expect(output.route).toBe(`${input.origin}-${input.destination}`);
    expect(output.delayMinutes).toBe(input.delay);
    expect(hashValue(input)).toBe(shown.execution.inputHashes[0]);
    expect(hashValue(output)).toBe(shown.execution.outputHash);
    expect(hashValue(shown.params)).toBe(shown.execution.paramsHash);
    expect(shown.error).toBeNull();
    expect(shown.stepVersion?.manifest.module).toMatch(/steps\/normalize\.ts$/);

    const human = await cli(['show', id, '--store', store]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`Execution ${id}`);
    expect(human.stdout).toContain(`record     ${shown.execution.recordHash}`);
  });

  it('reexecute runs a recorded execution again from the stored artifact and reproduces its output hash', async () => {
    const id = normalizeIds[3] as string;
    const r = await cliJson<{ matches: boolean; recordedOutputHash: string; replayedOutputHash: string; cause: string | null }>([
      'reexecute',
      id,
      '--store',
      store,
      '--json',
    ]);
    expect(r.matches).toBe(true);
    expect(r.cause).toBeNull();
    expect(r.replayedOutputHash).toBe(r.recordedOutputHash);
    const human = await cli(['reexecute', id, '--store', store]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`reproduced  execution ${id}`);
  });

  it('steps lists normalize, classify and routeStats, each with one version and 300 executions', async () => {
    const steps = await cliJson<StepSummary[]>(['steps', '--store', store, '--json']);
    expect(steps.map((s) => s.stepId).sort()).toEqual(['classify', 'normalize', 'routeStats']);
    for (const s of steps) {
      expect(s.versions).toHaveLength(1);
      expect(s.versions[0]).toMatchObject({ versionHash: demo.versions[s.stepId], executions: 300, failed: 0, firstRunId: demo.runId });
    }
  });

  it('runs lists the run and its verifying replay, newest first, both ended', async () => {
    const runs = await cliJson<RunInfo[]>(['runs', '--store', store, '--json']);
    expect(runs).toHaveLength(2);
    expect(runs[1]).toMatchObject({ id: demo.runId, kind: 'capture', name: 'flights', failurePolicy: 'dead-letter', context: { source: 'cli' } });
    expect(runs[1]?.end).toMatchObject({ status: 'completed', summary: { executions: 900, failed: 0 } });
    expect(runs[0]).toMatchObject({ kind: 'replay', name: 'replay of flights', context: { source: 'cli' }, options: { replayOf: demo.runId, verify: true } });
    expect(runs[0]?.end).toMatchObject({ status: 'completed', summary: { executions: 900, matched: 900, diverged: 0 } });
    const human = await cli(['runs', '--store', store]);
    expect(human.stdout).toMatch(new RegExp(`${demo.runId}\\s+capture\\s+flights\\s+\\S+\\s+completed\\s+900`));
  });

  it('PROVENANT_STORE names the store when --store is not given', async () => {
    const list = await cliJson<{ total: number }>(['executions', '--json'], { PROVENANT_STORE: store });
    expect(list.total).toBe(900);
  });
});

describe('demo', () => {
  it('demo --limit 300 tells the bad-deploy story: two runs, a verified replay, bisect to the version responsible, a what-if with the fix', async () => {
    const store = join(makeTempDir(), 'store');
    const r = await cliJson<{
      runs: RunJson[];
      replays: { executions: number; matched: number; diverged: number }[];
      bisect: { firstBadRecord: { offset: number } | null; firstBadExecution: { stepId: string; versionHash: string } | null; checkpointReplays: number };
      whatIf: { records: number; steps: { stepId: string; changed: number }[]; recordedExecutions: number };
      storeStats: { executions: number };
    }>(['demo', '--store', store, '--limit', '300', '--json']);
    const flights = (JSON.parse(readFileSync(FLIGHTS_20K, 'utf8')) as { delay: number }[]).slice(0, 300);
    expect(r.runs.map((x) => [x.status, x.records, x.outputs, x.executions])).toEqual([
      ['completed', 150, 150, 450],
      ['completed', 150, 150, 450],
    ]);
    expect(r.runs[0]!.versions.normalize).not.toBe(r.runs[1]!.versions.normalize);
    expect(r.runs[0]!.versions.classify).toBe(r.runs[1]!.versions.classify);
    expect(r.replays.map((x) => [x.executions, x.matched, x.diverged])).toEqual([
      [450, 450, 0],
      [450, 450, 0],
    ]);
    const firstBad = 150 + flights.slice(150).findIndex((f) => Math.abs(f.delay) >= 60);
    expect(r.bisect.firstBadRecord?.offset).toBe(firstBad);
    expect(r.bisect.firstBadExecution).toMatchObject({ stepId: 'normalize', versionHash: r.runs[1]!.versions.normalize });
    expect(r.whatIf.records).toBe(150);
    expect(r.whatIf.steps.find((x) => x.stepId === 'normalize')?.changed).toBe(flights.slice(150).filter((f) => Math.abs(f.delay) >= 60).length);
    expect(r.storeStats.executions).toBe(900 + r.whatIf.recordedExecutions);
  });
});

describe('run', () => {
  const dir = makeTempDir();
  const ndjson = join(dir, 'flights.ndjson');
  const csv = join(dir, 'flights.csv');
  writeFileSync(ndjson, FLIGHTS.map((f) => JSON.stringify(f)).join('\n') + '\n');
  writeFileSync(
    csv,
    ['date,delay,distance,origin,destination', ...VALID.map((f) => [f.date, f.delay, f.distance, f.origin, f.destination].join(','))].join('\n') + '\n',
  );
  const store = join(dir, 'store');
  let fromNdjson: RunJson;

  it('records an NDJSON input; a bad record is dead-lettered (the pipeline says so) and the rest go on', async () => {
    const out = join(dir, 'out.ndjson');
    fromNdjson = await cliJson<RunJson>(['run', PIPELINE, '--input', ndjson, '--store', store, '--output', out, '--principal', 'alice', '--json']);
    expect(fromNdjson).toMatchObject({ status: 'completed', records: 5, outputs: 4, executions: 13, failed: 1, deadLettered: 1 });
    const outputs = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { route: string; delayClass: string; longHaul: boolean });
    expect(outputs.map((o) => o.delayClass)).toEqual(EXPECTED_CLASSES);
    expect(outputs.map((o) => o.route)).toEqual(VALID.map((f) => `${f.origin}-${f.destination}`));
    expect(outputs.map((o) => o.longHaul)).toEqual(VALID.map((f) => f.distance >= 1500));

    const failed = await cliJson<{ total: number; executions: ExecutionRecord[] }>(['executions', '--store', store, '--status', 'failed', '--json']);
    expect(failed.total).toBe(1);
    const bad = failed.executions[0] as ExecutionRecord;
    expect(bad).toMatchObject({ functionId: 'normalize', offset: 3, streamId: `file:${ndjson}`, context: { source: 'cli', principal: 'alice' } });
    const shown = await cliJson<ShowJson>(['show', bad.id, '--store', store, '--json']);
    expect(shown.error?.message).toBe('origin and destination are required');
    expect(shown.inputs[0]).toEqual(FLIGHTS[3]);
    expect(shown.output).toBeNull();
  });

  it('records a CSV input; the same records give the same recorded values and the same step versions', async () => {
    const fromCsv = await cliJson<RunJson>(['run', PIPELINE, '--input', csv, '--store', store, '--json']);
    expect(fromCsv).toMatchObject({ status: 'completed', records: 4, outputs: 4, executions: 12, failed: 0 });
    expect(fromCsv.versions).toEqual(fromNdjson.versions);

    const outputsOf = async (runId: string): Promise<string[]> => {
      const list = await cliJson<{ executions: ExecutionRecord[] }>(['executions', '--store', store, '--run', runId, '--step', 'classify', '--json']);
      return list.executions.map((e) => e.outputHash as string);
    };
    expect(await outputsOf(fromCsv.runId)).toEqual(await outputsOf(fromNdjson.runId));

    const steps = await cliJson<StepSummary[]>(['steps', '--store', store, '--json']);
    expect(steps.find((s) => s.stepId === 'normalize')?.versions).toMatchObject([{ executions: 9, failed: 1 }]);
  });

  it('--on-error stop stops at the bad record with exit code 4', async () => {
    const r = await cli(['run', PIPELINE, '--input', ndjson, '--store', join(dir, 'stop-store'), '--on-error', 'stop']);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('step normalize failed');
    expect(r.stderr).toContain('offset 3');
    const runs = await cliJson<RunInfo[]>(['runs', '--store', join(dir, 'stop-store'), '--json']);
    expect(runs[0]?.end?.status).toBe('stopped');
  });

  it('stream append gives records the next offsets; run --stream records each execution at its offset', async () => {
    const streamStore = join(dir, 'stream-store');
    const first = await cliJson<{ first: number; next: number; appended: number }>(['stream', 'append', 'flights', csv, '--store', streamStore, '--json']);
    expect(first).toEqual({ streamId: 'flights', first: 0, next: VALID.length, appended: VALID.length });
    const second = await cliJson<{ first: number; next: number }>(['stream', 'append', 'flights', csv, '--store', streamStore, '--json']);
    expect(second).toMatchObject({ first: VALID.length, next: 2 * VALID.length });
    const streams = await cliJson<{ streamId: string; length: number }[]>(['stream', 'list', '--store', streamStore, '--json']);
    expect(streams.map((s) => [s.streamId, s.length])).toEqual([['flights', 2 * VALID.length]]);

    const run = await cliJson<RunJson>(['run', PIPELINE, '--stream', 'flights', '--store', streamStore, '--json']);
    expect(run.records).toBe(2 * VALID.length);
    const listed = await cliJson<{ executions: ExecutionRecord[] }>(['executions', '--run', run.runId, '--step', 'normalize', '--store', streamStore, '--json']);
    expect(listed.executions.map((e) => [e.streamId, e.offset])).toEqual(Array.from({ length: 2 * VALID.length }, (_, i) => ['flights', i]));

    const unknown = await cli(['run', PIPELINE, '--stream', 'nope', '--store', streamStore]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('stream nope has no records');
    const runs = await cliJson<RunInfo[]>(['runs', '--store', streamStore, '--json']);
    expect(runs).toHaveLength(1); // the typo recorded no run
  });

  it('run needs exactly one of --input and --stream', async () => {
    const r = await cli(['run', PIPELINE, '--store', join(dir, 'neither-store')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('exactly one of --input <file>, --stream <id> or --jetstream <stream>');
  });

  it('a missing input file → exit 2, and no store or run is created for the typo', async () => {
    const store = join(dir, 'typo-store');
    const r = await cli(['run', PIPELINE, '--input', join(dir, 'nope.ndjson'), '--store', store]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/nope\.ndjson does not exist/);
    expect(existsSync(store)).toBe(false);
  });

  it('a missing argument is a usage error → exit 2', async () => {
    const r = await cli(['stream', 'append', 'only-a-stream-id', '--store', join(dir, 'usage-store')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("missing required argument 'file'");
  });

  it('a missing pipeline file → exit 2', async () => {
    const r = await cli(['run', join(dir, 'no-pipeline.ts'), '--input', ndjson, '--store', join(dir, 'other-store')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no-pipeline\.ts does not exist/);
  });

  it('an invalid --limit → exit 2 with the reason', async () => {
    const r = await cli(['run', PIPELINE, '--input', ndjson, '--store', join(dir, 'other-store'), '--limit', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--limit must be a positive whole number');
  });
});

describe('errors and help', () => {
  const dir = makeTempDir();

  it('an unknown execution → exit 2, "no execution" on stderr, and a JSON error with --json', async () => {
    const store = join(dir, 'store');
    await cliJson(['init', '--store', store, '--json']);
    const id = uuidv7();
    const r = await cli(['show', id, '--store', store]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`no execution ${id}`);
    expect(r.stderr).toContain('hint:');
    const json = await cli(['show', id, '--store', store, '--json']);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: 'NOT_FOUND', context: { executionId: id } } });
    expect((await cli(['show', 'not-an-id', '--store', store])).code).toBe(2);
  });

  // A malformed --after is a usage error (exit 2) naming the value, not an internal error.
  it('a malformed --after id → exit 2 naming it', async () => {
    const store = join(dir, 'after-store');
    await cliJson(['init', '--store', store, '--json']);
    const r = await cli(['executions', '--store', store, '--after', 'not-an-id']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('not-an-id');
    expect(r.stderr).not.toContain('This is a bug');
  });

  it('a missing store → exit 5, and nothing is created', async () => {
    const missing = join(dir, 'missing-store');
    for (const command of ['executions', 'steps', 'runs']) {
      const r = await cli([command, '--store', missing]);
      expect(r.code, command).toBe(5);
      expect(r.stderr).toContain(`no Provenant store at ${missing}`);
    }
    expect(existsSync(missing)).toBe(false);
  });

  it('--help works for every command and mentions --store', async () => {
    const commands = ['init', 'run', 'demo', 'executions', 'show', 'steps', 'runs', 'checkpoints', 'replay', 'reexecute'];
    const results = await Promise.all(commands.map((c) => cli([c, '--help'])));
    results.forEach((r, i) => {
      expect(r.code, commands[i]).toBe(0);
      expect(r.stdout, commands[i]).toContain('--store');
    });
    const top = await cli(['--help']);
    expect(top.code).toBe(0);
    for (const c of commands) expect(top.stdout).toContain(c);
  });

  it('--version prints the package version; an unknown command → exit 2', async () => {
    const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    const r = await cli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(version);
    expect((await cli(['frobnicate'])).code).toBe(2);
  });
});
