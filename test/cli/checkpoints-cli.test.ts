/**
 * Checkpoints, replay and resume from the command line, as users run them: real child processes,
 * real stores, real flights data; a run killed with SIGKILL and resumed with `run --resume`.
 */
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CheckpointRecord, ReplayResult } from '../../src/index.js';
import { cli, cliJson } from '../helpers/cli.js';
import { ensureDist } from '../helpers/dist.js';
import { DIST_CLI, REPO_ROOT } from '../helpers/paths.js';
import { makeTempDir } from '../helpers/temp.js';

const PIPELINE = 'examples/flights/pipeline.ts';
const FLIGHTS = join(REPO_ROOT, 'node_modules', 'vega-datasets', 'data', 'flights-20k.json');

/** Every output once, and per route the running count 1, 2, 3… (the stateful step restored exactly). */
function checkOutputs(file: string, expected: number): void {
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
  expect(lines).toHaveLength(expected);
  const perRoute = new Map<string, number>();
  for (const line of lines) {
    const o = JSON.parse(line) as { route: string; routeFlights: number };
    const next = (perRoute.get(o.route) ?? 0) + 1;
    expect(o.routeFlights, `route ${o.route}`).toBe(next);
    perRoute.set(o.route, next);
  }
}

beforeAll(async () => {
  await ensureDist();
});

describe('checkpoints and replay', () => {
  const dir = makeTempDir();
  const store = join(dir, 'store');
  let checkpoints: CheckpointRecord[];

  it('run --stream --checkpoint-every writes a checkpoint per n records; `checkpoints` lists them', async () => {
    await cliJson(['stream', 'append', 'flights', FLIGHTS, '--limit', '1000', '--store', store, '--json']);
    const run = await cliJson<{ checkpoints: number; records: number }>([
      'run', PIPELINE, '--stream', 'flights', '--checkpoint-every', '250', '--output', join(dir, 'out.ndjson'), '--store', store, '--json',
    ]);
    expect(run).toMatchObject({ checkpoints: 4, records: 1000 });
    checkOutputs(join(dir, 'out.ndjson'), 1000);
    checkpoints = await cliJson<CheckpointRecord[]>(['checkpoints', '--stream', 'flights', '--store', store, '--json']);
    expect(checkpoints.map((c) => [c.startOffset, c.end?.endOffset, c.status])).toEqual([
      [0, 250, 'COMPLETE'],
      [250, 500, 'COMPLETE'],
      [500, 750, 'COMPLETE'],
      [750, 1000, 'COMPLETE'],
    ]);
    const human = await cli(['checkpoints', '--stream', 'flights', '--store', store]);
    expect(human.stdout).toMatch(/CHECKPOINT\s+TIME\s+STREAM\s+OFFSETS\s+RECORDS\s+EXECUTIONS\s+FAILED\s+STATUS\s+STATE/);
    expect(human.stdout).toMatch(new RegExp(`${checkpoints[1]!.checkpointId}\\s+\\S+\\s+flights\\s+250\\.\\.500\\s+250\\s+750\\s+0\\s+COMPLETE\\s+sha256:`));
  });

  it('replay --verify from a checkpoint prefix reproduces every output (exit 0) and says so', async () => {
    const from = checkpoints[1]!.checkpointId.slice(0, 18);
    const r = await cliJson<ReplayResult>(['replay', '--stream', 'flights', '--from', from, '--verify', '--store', store, '--json']);
    expect(r).toMatchObject({ checkpoints: 3, records: 750, executions: 2250, matched: 2250, diverged: 0, from: checkpoints[1]!.checkpointId });
    const human = await cli(['replay', '--stream', 'flights', '--from', from, '--to', checkpoints[2]!.checkpointId, '--verify', '--store', store]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^reproduced {2}replayed 2 checkpoints/);
    expect(human.stdout).toContain('500 records');
  });

  it('clear errors with exit 2 and nothing replayed: wrong order, unknown checkpoint, unknown stream', async () => {
    const wrong = await cli(['replay', '--stream', 'flights', '--from', checkpoints[3]!.checkpointId, '--to', checkpoints[0]!.checkpointId, '--store', store]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('wrong order');
    const unknown = await cli(['replay', '--stream', 'flights', '--from', 'ffffffff-0000', '--store', store]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no checkpoint ffffffff-0000 in stream flights');
    const stream = await cli(['checkpoints', '--stream', 'nope', '--store', store, '--json']);
    expect(stream.code).toBe(2);
    expect(JSON.parse(stream.stdout)).toMatchObject({ error: { code: 'NOT_FOUND' } });
    const runs = await cliJson<{ kind: string }[]>(['runs', '--store', store, '--json']);
    expect(runs.filter((r) => r.kind === 'replay')).toHaveLength(2);
  });

  it('a source record changed since capture: replay --verify exits 4 and names the first divergence', async () => {
    const file = join(dir, 'few.ndjson');
    const flights = (JSON.parse(readFileSync(FLIGHTS, 'utf8')) as object[]).slice(0, 60);
    writeFileSync(file, flights.map((f) => JSON.stringify(f)).join('\n') + '\n');
    await cliJson(['run', PIPELINE, '--input', file, '--checkpoint-every', '20', '--store', store, '--json']);
    flights[33] = { ...flights[33], delay: 777 };
    writeFileSync(file, flights.map((f) => JSON.stringify(f)).join('\n') + '\n');
    const r = await cli(['replay', '--stream', `file:${file}`, '--verify', '--store', store]);
    expect(r.code).toBe(4);
    expect(r.stdout).toMatch(/^diverged/);
    expect(r.stdout).toMatch(/First divergence: changed-record\n\s+checkpoint \S+, offset 33\n\s+step\s+normalize @ sha256:/);
  });
});

describe('run --resume after SIGKILL', () => {
  it('goes on from the last COMPLETE checkpoint; the output file ends with every record exactly once', async () => {
    const dir = makeTempDir();
    const store = join(dir, 'store');
    const out = join(dir, 'out.ndjson');
    await cliJson(['stream', 'append', 'flights', FLIGHTS, '--store', store, '--json']);
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
    delete env.PROVENANT_STORE;
    const child = spawn(process.execPath, [DIST_CLI, 'run', PIPELINE, '--stream', 'flights', '--checkpoint-every', '1000', '--output', out, '--store', store, '--quiet'], {
      cwd: REPO_ROOT,
      env,
      stdio: 'ignore',
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    // Kill it once a few checkpoints have committed.
    let complete = 0;
    for (let i = 0; i < 400 && complete < 3; i++) {
      await sleep(25);
      try {
        const db = new Database(join(store, 'provenant.db'), { readonly: true, fileMustExist: true });
        try {
          complete = (db.prepare(`SELECT count(*) AS n FROM checkpoint_ends WHERE status = 'COMPLETE'`).get() as { n: number }).n;
        } finally {
          db.close();
        }
      } catch {
        // not created yet
      }
    }
    child.kill('SIGKILL');
    await exited;
    expect(complete).toBeGreaterThanOrEqual(3);
    expect(complete).toBeLessThan(20);

    const resumed = await cli(['run', PIPELINE, '--stream', 'flights', '--resume', '--store', store]);
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toMatch(/^Resumed run \S+ \(completed\)/);
    expect(resumed.stdout).toMatch(/went on from checkpoint [0-9a-f-]{36}/);
    checkOutputs(out, 20_000);
    const list = await cliJson<CheckpointRecord[]>(['checkpoints', '--stream', 'flights', '--store', store, '--json', '--limit', '100']);
    const abandoned = list.filter((c) => c.status === 'FAILED');
    expect(abandoned.length).toBeLessThanOrEqual(1);
    for (const c of abandoned) expect(c.end?.reason).toMatch(/^abandoned: /);
    // And the resumed run replays like any other.
    const r = await cliJson<ReplayResult>(['replay', '--stream', 'flights', '--verify', '--store', store, '--json']);
    expect(r).toMatchObject({ records: 20_000, diverged: 0 });

    const again = await cli(['run', PIPELINE, '--stream', 'flights', '--resume', '--store', store, '--quiet']);
    expect(again.stderr).toContain('Nothing to resume');
  }, 120_000);
});
