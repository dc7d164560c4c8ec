/**
 * A step cache lets several runs share steps built, stored and loaded once (what a worker does
 * with its segments): later runs neither build nor load the step again — they run the very code
 * the first run loaded from the store, and record the same version.
 */
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { runPipeline } from '../../src/pipeline/execute.js';
import type { LoadedStep } from '../../src/step/runtime.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { writeProject } from '../helpers/project.js';
import { makeTempDir } from '../helpers/temp.js';

it('runs sharing a step cache reuse the loaded step: not rebuilt after its source changed, same version recorded', async () => {
  const project = makeTempDir();
  writeProject(project, { 'steps/tag.ts': `export default (r: { n: number }) => ({ n: r.n, tag: 'a' });` });
  const store = SqliteStore.open(join(project, 'store'));
  const pipeline = { name: 'cached', steps: [{ id: 'tag', module: './steps/tag.ts' }] };
  const cache = new Map<string, LoadedStep>();
  const first = await runPipeline(store, pipeline, [{ offset: 0, value: { n: 1 } }], { baseDir: project, checkpoint: false, stepCache: cache });
  const loaded = cache.get('tag');
  expect(loaded?.versionHash).toMatch(/^sha256:/);
  // The source changes; a run with the cache still runs what the first one loaded.
  writeFileSync(join(project, 'steps/tag.ts'), `export default (r: { n: number }) => ({ n: r.n, tag: 'b' });`);
  const second = await runPipeline(store, pipeline, [{ offset: 1, value: { n: 2 } }], { baseDir: project, checkpoint: false, stepCache: cache });
  expect(cache.get('tag')).toBe(loaded);
  // Without the cache, the edited source is built: a new version.
  const third = await runPipeline(store, pipeline, [{ offset: 2, value: { n: 3 } }], { baseDir: project, checkpoint: false });
  const versions = async (runId: string) => new Set((await store.listExecutions({ runId })).map((e) => e.functionVersionHash));
  expect(await versions(first.runId)).toEqual(new Set([loaded?.versionHash]));
  expect(await versions(second.runId)).toEqual(new Set([loaded?.versionHash]));
  expect(await versions(third.runId)).not.toEqual(new Set([loaded?.versionHash]));
  await store.close();
});
