/**
 * A capture killed with SIGKILL at a random moment leaves a store that opens, passes
 * `PRAGMA integrity_check`, and in which every committed execution's values are present and
 * every record hash still matches its record.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executionRecordHash } from '../../src/hash/record-hash.js';
import { blobStoredSql } from '../../src/store/sqlite/blob-table.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { ensureDist } from '../helpers/dist.js';
import { DIST_INDEX, REPO_ROOT } from '../helpers/paths.js';

const temp = mkdtempSync(join(tmpdir(), 'provenant-crash-'));
const child = join(temp, 'capture.mjs');

beforeAll(async () => {
  await ensureDist();
  writeFileSync(
    child,
    `import { openStore, loadPipelineFile, readRecords, runPipeline } from ${JSON.stringify(DIST_INDEX)};
const [storeDir, pipelineFile, input] = process.argv.slice(2);
const store = await openStore(storeDir);
const pipeline = await loadPipelineFile(pipelineFile);
let told = false;
// 'capturing' once steps are built and records flow (the kill delay counts from there, whatever the machine's load).
const onProgress = () => { if (!told) { told = true; process.stdout.write('capturing\\n'); } };
for (;;) {
  await runPipeline(store, pipeline.definition, readRecords(input), { baseDir: pipeline.baseDir, streamId: 'crash', checkpoint: { everyRecords: 500 }, onProgress, progressEvery: 500 });
}
`,
  );
}, 180_000);

afterAll(() => rmSync(temp, { recursive: true, force: true }));

async function captureAndKill(storeDir: string, killAfterMs: number): Promise<void> {
  const proc = spawn(
    process.execPath,
    [child, storeDir, join(REPO_ROOT, 'examples', 'flights', 'pipeline.ts'), join(REPO_ROOT, 'node_modules', 'vega-datasets', 'data', 'flights-20k.json')],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    proc.stdout.once('data', () => resolve());
    proc.once('exit', (code) => reject(new Error(`capture child exited early with ${code}`)));
  });
  await sleep(killAfterMs);
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  proc.kill('SIGKILL');
  await exited;
}

describe('a capture killed with SIGKILL', () => {
  for (const [trial, delay] of [
    [1, 600],
    [2, 700],
    [3, 1600],
  ] as const) {
    it(`trial ${trial}: killed after ${delay} ms, the store is intact`, async () => {
      const dir = join(temp, `store-${trial}`);
      await captureAndKill(dir, delay);
      const store = SqliteStore.open(dir, { create: false });
      try {
        const db = store.database;
        expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
        const executions = (db.prepare('SELECT count(*) AS n FROM executions').get() as { n: number }).n;
        expect(executions).toBeGreaterThan(0);
        // Every value a committed execution refers to is present.
        const missing = db
          .prepare(
            `SELECT count(*) AS n FROM executions e WHERE
               NOT ${blobStoredSql('e.inputs')} OR
               NOT ${blobStoredSql('e.params')} OR
               (e.output IS NOT NULL AND NOT ${blobStoredSql('e.output')})`,
          )
          .get() as { n: number };
        expect(missing.n).toBe(0);
        // Every record is whole: its stored record hash matches its fields.
        let checked = 0;
        let after: string | undefined;
        for (;;) {
          const page = await store.listExecutions({ limit: 5000, ...(after === undefined ? {} : { afterId: after }) });
          for (const e of page) expect(executionRecordHash(e)).toBe(e.recordHash);
          checked += page.length;
          if (page.length < 5000) break;
          after = page[page.length - 1]?.id;
        }
        expect(checked).toBe(executions);
        // And the values read back verify.
        const [first] = await store.listExecutions({ limit: 1 });
        if (first?.outputHash) await expect(store.getBlob(first.outputHash)).resolves.toBeInstanceOf(Uint8Array);
      } finally {
        await store.close();
      }
    }, 60_000);
  }
});
