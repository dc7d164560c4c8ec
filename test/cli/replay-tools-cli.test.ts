/**
 * The step debugger, what-if and bisect from the command line, as users run them: real child
 * processes over a real store and real flight data — the first 500 flights processed with the
 * example pipeline (normalize v1), the next 500 with pipeline-v2.ts (normalize v2, with its unit
 * slip). The debugger is driven through piped standard input and through a real terminal (tmux:
 * send-keys, capture-pane); what it prints is checked against the data.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import type { BisectResult, WhatIfResult } from '../../src/index.js';
import { cli, cliJson } from '../helpers/cli.js';
import { ensureDist } from '../helpers/dist.js';
import { DIST_CLI, REPO_ROOT } from '../helpers/paths.js';
import { makeTempDir } from '../helpers/temp.js';

const execFileAsync = promisify(execFile);
const FLIGHTS = join(REPO_ROOT, 'node_modules', 'vega-datasets', 'data', 'flights-20k.json');
const PREDICATE = 'examples/flights/predicates/delay-kept.ts';
const FIX = 'examples/flights/steps/normalize-v3.ts';
const dir = makeTempDir();
const store = join(dir, 'store');
let flights: { delay: number; origin: string; destination: string }[];
/** The first flight of the second half that normalize v2 gets wrong: delayed an hour or more. */
let firstBad: number;
let v2: string;

beforeAll(async () => {
  await ensureDist();
  flights = (JSON.parse(readFileSync(FLIGHTS, 'utf8')) as typeof flights).slice(0, 1000);
  firstBad = 500 + flights.slice(500).findIndex((f) => Math.abs(f.delay) >= 60);
  expect(firstBad).toBeGreaterThan(500);
  await cliJson(['stream', 'append', 'flights', FLIGHTS, '--limit', '1000', '--store', store, '--json']);
  await cliJson(['run', 'examples/flights/pipeline.ts', '--stream', 'flights', '--limit', '500', '--checkpoint-every', '100', '--store', store, '--json']);
  const r2 = await cliJson<{ versions: Record<string, string>; records: number }>([
    'run', 'examples/flights/pipeline-v2.ts', '--stream', 'flights', '--from-offset', '500', '--checkpoint-every', '100', '--store', store, '--json',
  ]);
  expect(r2.records).toBe(500);
  v2 = r2.versions.normalize!;
}, 180_000);

/** Run the CLI with `input` piped to its standard input. */
function cliWithInput(args: readonly string[], input: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
    delete env.PROVENANT_STORE;
    const child = spawn(process.execPath, [DIST_CLI, ...args], { cwd: REPO_ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input);
  });
}

describe('provenant debug, scripted through piped standard input', () => {
  it('steps, breaks on a predicate, inspects, diffs; the latest run is the default range', async () => {
    const script = [
      'where',
      'next',
      'where',
      'inspect input',
      'next 2',
      'inspect params',
      `break when=!${PREDICATE}`,
      'break step=routeStats',
      'break',
      'delete 2',
      'continue',
      'inspect record',
      'inspect output',
      'diff',
      'frobnicate',
      'quit',
      'next',
    ].join('\n');
    const r = await cliWithInput(['debug', '--stream', 'flights', '--store', store], script);
    expect(r.code).toBe(0);
    const out = r.stdout;
    expect(out).toMatch(/Debugging a replay of run \S+ over flights: 5 checkpoints, offsets 500\.\.1,000 \(500 records\)/);
    expect(out).toContain('(debug) where\nerror: no execution yet');
    expect(out).toMatch(/\(debug\) next\n→ offset 500 · step normalize \(#1\) @ sha256:[0-9a-f]{12} · match/);
    expect(out).toMatch(/checkpoint\s+\S+ \(1 of 5; offsets 500\.\.600\)/);
    expect(out).toContain(`version     ${v2}`);
    // inspect input: the source record, as readable JSON.
    expect(out).toContain(`"delay": ${flights[500]!.delay},`);
    expect(out).toMatch(/\(debug\) next 2\n→ offset 500 · step routeStats \(#3\)/);
    expect(out).toContain('params sha256:');
    expect(out).toContain('  1  when=!examples/flights/predicates/delay-kept.ts\n  2  step=routeStats');
    expect(out).toContain('Deleted breakpoint 2.');
    // The breakpoint stops at the first output that loses the delay: normalize of the first flight an hour late.
    expect(out).toContain(`Breakpoint 1 (when=!${PREDICATE})\n→ offset ${firstBad.toLocaleString('en-US')} · step normalize (#1)`);
    expect(out).toContain(`source record at offset ${firstBad.toLocaleString('en-US')}\n{`);
    expect(out).toContain(`"delay": ${flights[firstBad]!.delay},`);
    expect(out).toContain(`"delayMinutes": ${Math.round(flights[firstBad]!.delay / 60)},`);
    expect(out).toMatch(/No difference: the replayed output is the recorded one/);
    expect(out).toContain('error: unknown command "frobnicate"');
    // quit ends the session: what follows is not read.
    expect(out.trimEnd().endsWith('(debug) quit')).toBe(true);
  });

  it('debugging a what-if: break on the first divergence, diff shows the RFC 6902 change; EOF ends the session', async () => {
    const r = await cliWithInput(['debug', '--stream', 'flights', '--store', store, '--replace', `normalize=${FIX}`, '--json'], 'break diverged\ncontinue\ndiff\nwhere\n');
    expect(r.code).toBe(0);
    const f = flights[firstBad]!;
    expect(r.stdout).toContain('Debugging a what-if (normalize substituted)');
    expect(r.stdout).toContain(`→ offset ${firstBad.toLocaleString('en-US')} · step normalize (#1) @ sha256:`);
    expect(r.stdout).toContain('diverged (substituted)');
    expect(r.stdout).toContain('(1 operation, RFC 6902)');
    expect(r.stdout).toContain(`replace /delayMinutes  ${Math.round(f.delay / 60)} → ${f.delay}`);
    // --json: the session's summary at the end.
    const summary = JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{'))) as { executions: number; ended: boolean };
    expect(summary).toMatchObject({ ended: false });
    expect(summary.executions).toBeGreaterThan(0);
  });

  it('refuses an unknown stream or checkpoint before the session starts', async () => {
    const r = await cliWithInput(['debug', '--stream', 'nope', '--store', store, '--json'], 'next\n');
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ error: { code: 'NOT_FOUND' } });
    const r2 = await cliWithInput(['debug', '--stream', 'flights', '--from', 'ffffffff', '--store', store], 'next\n');
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/no checkpoint ffffffff in stream flights/);
  });
});

const tmuxAvailable = existsSync('/usr/bin/tmux') || existsSync('/usr/local/bin/tmux');
if (!tmuxAvailable && process.env.CI === 'true') throw new Error('tmux is not installed; CI must install it (apt-get install tmux) to test the debugger in a real terminal');
if (!tmuxAvailable) console.warn('\n⚠ SKIPPED "provenant debug in a real terminal": tmux is not installed (apt-get install tmux)\n');

describe.skipIf(!tmuxAvailable)('provenant debug in a real terminal (tmux)', () => {
  it('prompts, colours, repeats the last command on Enter, and ends on quit', async () => {
    const socket = `provenant-test-${process.pid}`;
    const tmux = (args: string[]): Promise<{ stdout: string }> => execFileAsync('tmux', ['-L', socket, ...args], { cwd: REPO_ROOT });
    const command = `cd ${REPO_ROOT} && env -u NO_COLOR -u PROVENANT_STORE TERM=xterm-256color ${process.execPath} ${DIST_CLI} debug --stream flights --store ${store}; echo "EXITED $?"; sleep 60`;
    const screen = async (escapes = false): Promise<string> => (await tmux(['capture-pane', '-p', '-J', ...(escapes ? ['-e'] : []), '-S', '-500', '-t', 'dbg'])).stdout;
    const waitFor = async (pattern: RegExp, escapes = false): Promise<string> => {
      for (let i = 0; i < 300; i++) {
        const s = await screen(escapes);
        if (pattern.test(s)) return s;
        await sleep(100);
      }
      throw new Error(`the terminal never showed ${String(pattern)}:\n${await screen()}`);
    };
    const type = async (keys: string): Promise<void> => {
      await tmux(['send-keys', '-t', 'dbg', '-l', keys]);
      await tmux(['send-keys', '-t', 'dbg', 'Enter']);
    };
    await tmux(['new-session', '-d', '-s', 'dbg', '-x', '200', '-y', '80', command]);
    try {
      await waitFor(/Paused before the first execution[\s\S]*\(debug\) $/m);
      await type('next');
      await waitFor(/→ offset 500 · step normalize \(#1\)/);
      // An empty line repeats the last command.
      await tmux(['send-keys', '-t', 'dbg', 'Enter']);
      await waitFor(/→ offset 500 · step classify \(#2\)/);
      await type('inspect input');
      const coloured = await waitFor(/"delayMinutes"/, true);
      expect(coloured).toMatch(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m"delayMinutes"`)); // keys are coloured on a terminal
      await type(`break when=!${PREDICATE}`);
      await type('continue');
      const s = await waitFor(/Breakpoint 1 \(when=![^)]*\)\n→ offset [0-9,]+ · step normalize/);
      expect(s).toContain(`→ offset ${firstBad.toLocaleString('en-US')} · step normalize (#1)`);
      await type('where');
      await waitFor(new RegExp(`offset\\s+${firstBad.toLocaleString('en-US')}\\n\\s+step\\s+normalize`));
      await type('quit');
      await waitFor(/EXITED 0/);
    } finally {
      await tmux(['kill-server']).catch(() => undefined);
    }
  }, 120_000);
});

describe('provenant whatif', () => {
  it('replaces a step with a module: counts checked against the data, a JSON report on stdout and in --out, a run of kind whatif', async () => {
    const out = join(dir, 'report.json');
    const r = await cliJson<WhatIfResult>(['whatif', '--stream', 'flights', '--replace', `normalize=${FIX}`, '--label', 'fix', '--out', out, '--store', store, '--json']);
    const hourLate = flights.slice(500).filter((f) => Math.abs(f.delay) >= 60).length;
    expect(r).toMatchObject({ records: 500, checkpoints: 5, label: 'fix' });
    const normalize = r.steps.find((s) => s.stepId === 'normalize')!;
    expect(normalize).toMatchObject({ substituted: true, changed: hourLate, unchanged: 500 - hourLate, newlyFailing: 0, fixed: 0, recordedVersionHash: v2 });
    expect(r.recordOutcomes.changed).toBeGreaterThanOrEqual(hourLate); // the running route figures change after them too
    expect(r.diffs[0]).toMatchObject({ offset: firstBad, firstChangedStep: 'normalize' });
    expect(r.diffs[0]!.patch).toContainEqual({ op: 'replace', path: '/delayMinutes', value: flights[firstBad]!.delay });
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(r);
    const runs = await cliJson<{ id: string; kind: string; name: string }[]>(['runs', '--store', store, '--json']);
    expect(runs.find((x) => x.id === r.whatIfRunId)).toMatchObject({ kind: 'whatif', name: 'what-if of flights: fix' });

    const human = await cli(['whatif', '--stream', 'flights', '--replace', `normalize=${FIX}`, '--param', 'classify.lateAfterMinutes=15', '--store', store]); // the recorded value: changes nothing
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/STEP\s+VERSION\s+RECORDED\s+EXECUTIONS\s+UNCHANGED\s+CHANGED\s+NEWLY FAILING\s+FIXED/);
    expect(human.stdout).toMatch(new RegExp(`normalize\\*\\s+sha256:[0-9a-f]{12}\\s+sha256:[0-9a-f]{12}\\s+500\\s+${500 - hourLate}\\s+${hourLate}\\s+0\\s+0`));
    expect(human.stdout).toContain('classify ← params {"lateAfterMinutes":15}');
    expect(human.stdout).toContain(`replace /delayMinutes  ${Math.round(flights[firstBad]!.delay / 60)} → ${flights[firstBad]!.delay}`);
  });

  it('a recorded version by hash prefix; bad arguments are refused naming them, before anything is recorded', async () => {
    const steps = await cliJson<{ stepId: string; versions: { versionHash: string }[] }[]>(['steps', '--store', store, '--json']);
    const v1 = steps.find((s) => s.stepId === 'normalize')!.versions.map((v) => v.versionHash).find((h) => h !== v2)!;
    const back = await cliJson<WhatIfResult>(['whatif', '--stream', 'flights', '--replace', `normalize=${v1.slice(0, 19)}`, '--store', store, '--json']);
    expect(back.substitutions.normalize?.versionHash).toBe(v1);
    expect(back.steps.find((s) => s.stepId === 'normalize')?.changed).toBe(flights.slice(500).filter((f) => Math.abs(f.delay) >= 60).length);

    const runsBefore = (await cliJson<unknown[]>(['runs', '--store', store, '--json', '--limit', '1000'])).length;
    const refused = async (args: string[], code: number, errorCode: string, message: RegExp): Promise<void> => {
      const r = await cli(['whatif', '--stream', 'flights', ...args, '--store', store, '--json']);
      expect(r.code, r.stderr).toBe(code);
      expect(JSON.parse(r.stdout)).toMatchObject({ error: { code: errorCode } });
      expect(r.stderr).toMatch(message);
    };
    await refused(['--replace', 'normalize'], 2, 'INPUT_INVALID', /--replace normalize: expected <stepId>=/);
    await refused(['--replace', 'normalize=nope.ts'], 2, 'INPUT_INVALID', /--replace normalize=nope\.ts: module .* does not exist/);
    await refused(['--param', 'classify.lateAfterMinutes=abc'], 2, 'INPUT_INVALID', /--param classify\.lateAfterMinutes=abc: the value "abc" is not JSON/);
    await refused(['--param', 'classify=3'], 2, 'INPUT_INVALID', /--param classify=3: expected <stepId>\.<name>/);
    await refused([], 2, 'INPUT_INVALID', /at least one --replace/);
    await refused(['--replace', 'normalize=sha256:00000000'], 2, 'STEP_NOT_FOUND', /no recorded version sha256:00000000/);
    await refused(['--replace', `nope=${FIX}`], 2, 'INPUT_INVALID', /step nope is not a step of the replayed range/);
    await refused(['--from', 'ffffffff', '--replace', `normalize=${FIX}`], 2, 'NOT_FOUND', /no checkpoint ffffffff/);
    const unknownStream = await cli(['whatif', '--stream', 'nope', '--replace', `normalize=${FIX}`, '--store', store, '--json']);
    expect(JSON.parse(unknownStream.stdout)).toMatchObject({ error: { code: 'NOT_FOUND' } });
    expect((await cliJson<unknown[]>(['runs', '--store', store, '--json', '--limit', '1000'])).length).toBe(runsBefore);
  });
});

describe('provenant bisect', () => {
  it('finds the first bad checkpoint across the two runs, the version responsible and the first bad flight', async () => {
    const r = await cliJson<BisectResult>(['bisect', '--stream', 'flights', '--good', PREDICATE, '--store', store, '--json']);
    expect(r.checkpoints).toBe(10);
    expect(r.checkpointReplays).toBeLessThanOrEqual(Math.ceil(Math.log2(10)) + 2);
    expect(r.firstBadCheckpoint).toMatchObject({ startOffset: 500 });
    expect(r.firstBadRecord?.offset).toBe(firstBad);
    expect(r.firstBadExecution).toMatchObject({ stepId: 'normalize', versionHash: v2, offset: firstBad, input: flights[firstBad] });
    expect(r.versionIntroduced).toMatchObject({ stepId: 'normalize', to: v2 });

    const human = await cli(['bisect', '--stream', 'flights', '--good', PREDICATE, '--store', store]);
    expect(human.stdout).toMatch(/First bad checkpoint: \S+ \(run \S+, offsets 500\.\.600\)/);
    expect(human.stdout).toContain(`First bad execution: normalize @ ${v2}`);
    expect(human.stdout).toMatch(new RegExp(`Verdict: normalize ${v2.slice(0, 19)} \\(examples/flights/steps/normalize-v2\\.ts, first ran [0-9T:.Z-]+\\) is the version responsible`));

    const missing = await cli(['bisect', '--stream', 'flights', '--good', 'nope.ts', '--store', store, '--json']);
    expect(missing.code).toBe(2);
    expect(JSON.parse(missing.stdout)).toMatchObject({ error: { code: 'INPUT_INVALID' } });
  });
});
