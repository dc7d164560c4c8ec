/**
 * A JetStream stream end to end from the command line, against the real NATS server: publish real
 * flights, run the example pipeline over the stream (offsets = stream sequences, checkpoints keep
 * their input slices by default), let retention discard the messages, and replay the checkpoints
 * with verification — from the kept slices. Then a live run with --follow, stopped by SIGTERM.
 *
 * Skipped (with a warning) when no NATS server answers, except in CI where that fails.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { CheckpointRecord, ReplayResult } from '../../src/index.js';
import { cli as runCli, cliJson as runCliJson } from '../helpers/cli.js';
import { ensureDist } from '../helpers/dist.js';
import { DIST_CLI, REPO_ROOT } from '../helpers/paths.js';
import { describeWithService, NATS, natsAvailable } from '../helpers/services.js';
import { makeTempDir } from '../helpers/temp.js';

const natsUp = await natsAvailable();
const cli = (args: readonly string[]) => runCli(args, { PROVENANT_NATS: NATS.url });
const cliJson = <T,>(args: readonly string[]) => runCliJson<T>(args, { PROVENANT_NATS: NATS.url });
const PIPELINE = 'examples/flights/pipeline.ts';
const FLIGHTS = join(REPO_ROOT, 'node_modules', 'vega-datasets', 'data', 'flights-2k.json');

describeWithService(NATS, natsUp, 'JetStream streams from the CLI', () => {
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  const name = `PROVENANT_CLI_${process.pid}_${Date.now().toString(36)}`;
  const live = `${name}_LIVE`;
  const dir = makeTempDir();
  const store = join(dir, 'store');

  beforeAll(async () => {
    await ensureDist();
    nc = await connect({ servers: NATS.url });
    jsm = await jetstreamManager(nc);
  }, 180_000);

  afterAll(async () => {
    for (const s of [name, live]) await jsm.streams.delete(s).catch(() => undefined);
    await nc.close();
  });

  it('publish, run with checkpoints (offsets = sequences), retention discards the input, replay --verify from kept slices', async () => {
    const published = await cliJson<{ first: number; next: number; published: number }>(['stream', 'publish', name, FLIGHTS, '--create', '--limit', '600', '--json']);
    expect(published).toMatchObject({ first: 1, next: 601, published: 600 });
    const run = await cliJson<{ records: number; checkpoints: number; executions: number }>([
      'run', PIPELINE, '--jetstream', name, '--checkpoint-every', '200', '--store', store, '--json',
    ]);
    expect(run).toMatchObject({ records: 600, checkpoints: 3, executions: 1800 });
    const checkpoints = await cliJson<CheckpointRecord[]>(['checkpoints', '--stream', `jetstream:${name}`, '--store', store, '--json']);
    expect(checkpoints.map((c) => [c.startOffset, c.end?.endOffset])).toEqual([
      [1, 201],
      [201, 401],
      [401, 601],
    ]);
    expect(checkpoints.every((c) => c.end?.inputSliceHash?.startsWith('sha256:'))).toBe(true);

    // Replay while the messages are still there: read from JetStream.
    const fromSource = await cliJson<ReplayResult>(['replay', '--stream', `jetstream:${name}`, '--verify', '--store', store, '--json']);
    expect(fromSource).toMatchObject({ records: 600, diverged: 0, inputFrom: { source: 600, slice: 0 } });

    // Retention discards them all; the range stays replayable from the checkpoints' kept slices.
    await jsm.streams.purge(name);
    const fromSlices = await cliJson<ReplayResult>(['replay', '--stream', `jetstream:${name}`, '--from', checkpoints[1]!.checkpointId, '--verify', '--store', store, '--json']);
    expect(fromSlices).toMatchObject({ records: 400, diverged: 0, inputFrom: { source: 0, slice: 400 } });
  }, 120_000);

  it('--follow keeps consuming new messages until SIGTERM, then commits its open checkpoint and ends cleanly', async () => {
    const first = join(dir, 'first.ndjson');
    writeFileSync(first, '{"date":"2001/01/14 21:55","delay":12,"distance":480,"origin":"SAN","destination":"SMF"}\n');
    await cliJson(['stream', 'publish', live, first, '--create', '--json']);
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
    delete env.PROVENANT_STORE;
    const child = spawn(
      process.execPath,
      [DIST_CLI, 'run', PIPELINE, '--jetstream', live, '--nats', NATS.url, '--follow', '--checkpoint-interval', '200ms', '--store', store, '--json'],
      { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    // Wait for the first record's checkpoint, then publish more while it follows.
    let cps: CheckpointRecord[] = [];
    for (let i = 0; i < 200 && cps.filter((c) => c.status === 'COMPLETE').length < 1; i++) {
      await sleep(100);
      const r = await cli(['checkpoints', '--stream', `jetstream:${live}`, '--store', store, '--json']);
      if (r.code === 0) cps = JSON.parse(r.stdout) as CheckpointRecord[];
    }
    await cliJson(['stream', 'publish', live, FLIGHTS, '--limit', '50', '--json']);
    for (let i = 0; i < 200; i++) {
      await sleep(100);
      cps = await cliJson<CheckpointRecord[]>(['checkpoints', '--stream', `jetstream:${live}`, '--store', store, '--json']);
      if (cps.reduce((n, c) => n + (c.end?.records ?? 0), 0) >= 51) break;
    }
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const result = JSON.parse(stdout) as { records: number; status: string };
    expect(result).toMatchObject({ records: 51, status: 'completed' });
    cps = await cliJson<CheckpointRecord[]>(['checkpoints', '--stream', `jetstream:${live}`, '--store', store, '--json']);
    expect(cps.every((c) => c.status === 'COMPLETE')).toBe(true);
    expect(cps.reduce((n, c) => n + (c.end?.records ?? 0), 0)).toBe(51);
  }, 120_000);
});
