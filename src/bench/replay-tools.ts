/**
 * Benchmarks of the tools built on replay (called from `npm run bench`, `src/bench/run.ts`):
 *
 * - `whatif.records_per_s`: a what-if over a recorded run of the example flights pipeline with one
 *   step replaced by another module (normalize → normalize v2), every changed record's RFC 6902
 *   patch computed and every changed execution recorded in the what-if run.
 * - `bisect.checkpoint_replays`: the planted-bug case — the stream processed by normalize v1 up to
 *   60% of the records and by normalize v2 (its unit slip: delays of an hour or more taken for
 *   seconds) after that; bisect with the "delay kept" predicate must find the first flight v2 gets
 *   wrong, and the figure is how many checkpoint replays it took (with the bound ⌈log2(n + 1)⌉).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bisect } from '../bisect/bisect.js';
import { runPipeline, type SourceRecord } from '../pipeline/execute.js';
import { loadPipelineFile } from '../pipeline/load.js';
import { loadPredicate } from '../replay/predicate.js';
import { replay } from '../replay/range.js';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';
import { appendRecords, LogSource } from '../stream/log.js';
import { whatIf } from '../whatif/whatif.js';
import type { BenchResult } from './run.js';

const examples = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'flights');

/** Measure what-if and bisect on the given records (flights-3m.parquet, as `run.ts` loads them). */
export async function benchReplayTools(records: readonly SourceRecord[]): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'provenant-bench-replay-tools-'));
  const store = SqliteStore.open(dir);
  try {
    await appendRecords(store, 'flights', records.map((r) => r.value), { batchSize: 5000 });
    const v1 = await loadPipelineFile(join(examples, 'pipeline.ts'));
    const v2 = await loadPipelineFile(join(examples, 'pipeline-v2.ts'));
    const deploy = Math.floor(records.length * 0.6);
    const checkpoint = { everyRecords: 2_000, intervalMs: 3_600_000 };
    const run1 = await runPipeline(store, v1.definition, new LogSource(store, 'flights'), { baseDir: v1.baseDir, to: deploy, checkpoint });
    const run2 = await runPipeline(store, v2.definition, new LogSource(store, 'flights'), { baseDir: v2.baseDir, from: deploy, checkpoint });

    // What-if: last week's stream (run 1) with the new normalize; patches computed, changes recorded.
    const r0 = performance.now();
    const verified = await replay(store, { streamId: 'flights', runId: run1.runId });
    const replayRate = verified.records / ((performance.now() - r0) / 1000);
    const t0 = performance.now();
    const w = await whatIf(store, { streamId: 'flights', runId: run1.runId, substitutions: { normalize: { code: { module: join(examples, 'steps', 'normalize-v2.ts') } } }, label: 'bench' });
    const whatIfRate = w.records / ((performance.now() - t0) / 1000);

    // Bisect: the first flight normalize v2 gets wrong.
    const values = records.map((r) => r.value as { delay: number });
    const expected = deploy + values.slice(deploy).findIndex((f) => Math.abs(f.delay) >= 60);
    const b0 = performance.now();
    const b = await bisect(store, { streamId: 'flights', good: await loadPredicate(join(examples, 'predicates', 'delay-kept.ts')) });
    const bisectMs = performance.now() - b0;
    const found = b.firstBadRecord?.offset ?? null;
    if (found !== expected || b.firstBadExecution?.stepId !== 'normalize' || b.firstBadExecution.versionHash !== run2.versions.normalize) {
      throw new Error(`bench bisect found ${JSON.stringify({ offset: found, step: b.firstBadExecution?.stepId, version: b.firstBadExecution?.versionHash })}, expected offset ${expected}, normalize ${run2.versions.normalize ?? '?'}`);
    }
    const common = `${records.length} flights-3m.parquet records in an embedded stream, example pipeline (normalize, classify, stateful routeStats), checkpoints every 2,000 records`;
    return [
      {
        name: 'whatif.records_per_s',
        unit: 'records/s',
        value: Math.round(whatIfRate),
        extra:
          `${common}; what-if over the first run (${w.records} records, ${w.checkpoints} checkpoints) with normalize replaced by normalize-v2.ts: ` +
          `${w.recordOutcomes.changed} records changed (${w.diffs.length} RFC 6902 patches computed), ${w.recordedExecutions} changed executions recorded; ` +
          `verified replay of the same range ${Math.round(replayRate)} records/s`,
      },
      {
        name: 'bisect.checkpoint_replays',
        unit: 'replays',
        value: b.checkpointReplays,
        extra:
          `planted bug: normalize v2 from offset ${deploy} (delays of an hour or more taken for seconds); ${b.checkpoints} checkpoints across 2 runs, ` +
          `bound ceil(log2(n + 1)) = ${b.maxCheckpointReplays}; found step normalize, version ${run2.versions.normalize?.slice(0, 19) ?? '?'}, first bad offset ${found} (expected ${expected}) in ${Math.round(bisectMs)} ms`,
      },
    ];
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
