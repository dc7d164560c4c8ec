/**
 * Crash-safe resume, for real: a child process running a checkpointed pipeline over real flights
 * data is killed with SIGKILL at random moments (and its resumed run perhaps killed again). After
 * every kill the store opens, passes `PRAGMA integrity_check`, keeps every checkpoint the child saw
 * committed, and holds no execution outside an ended checkpoint; after resuming to the end, the
 * NDJSON sink holds every record's output exactly once, and per route the stateful step's running
 * count goes 1, 2, 3… with no gap and no duplicate. (`npm run crash-trials -- 500` runs hundreds.)
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { crashTrial } from '../../src/bench/crash-trials.js';
import { ensureDist } from '../helpers/dist.js';
import { DIST_INDEX } from '../helpers/paths.js';

const TRIALS = 20;
/** The kill window: most of how long an unkilled run takes on this machine (measured first). */
let killWindowMs: [number, number] = [0, 1100];

beforeAll(async () => {
  await ensureDist();
  // Kills at random moments must land while the run is running: a faster machine (or a faster
  // build) finishes 10,000 records sooner, so the window follows a run measured here and now.
  const calibration = await crashTrial({ records: 10_000, checkpointEvery: 250, maxKills: 0, distIndex: DIST_INDEX });
  expect(calibration.outputs).toBe(10_000);
  killWindowMs = [0, Math.max(200, Math.round(calibration.lastRunMs * 0.9))];
}, 180_000);

describe('SIGKILL at random moments, then resume', () => {
  const reports: Awaited<ReturnType<typeof crashTrial>>[] = [];

  for (let i = 1; i <= TRIALS; i++) {
    it(`trial ${i}: every COMPLETE checkpoint survives, and the sink ends with each output exactly once`, async () => {
      const report = await crashTrial({ records: 10_000, checkpointEvery: 250, maxKills: 1 + (i % 3), killWindowMs, distIndex: DIST_INDEX });
      reports.push(report);
      expect(report.outputs).toBe(10_000);
    }, 60_000);
  }

  it('the kills landed: most trials were killed at least once, some after checkpoints had committed', () => {
    const killed = reports.filter((r) => r.kills > 0).length;
    expect(killed).toBeGreaterThanOrEqual(TRIALS / 2);
    expect(reports.some((r) => r.committedBeforeKills > 0)).toBe(true);
    expect(reports.reduce((n, r) => n + r.resumes, 0)).toBeGreaterThan(0);
  });
});
