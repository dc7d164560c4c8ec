/**
 * The embedded stream log: records appended in order get offsets 0, 1, 2… with no gaps across
 * appends; reading gives them back by offset; a pipeline runs over a stream with each execution
 * carrying the stream and offset; bad ids, ranges and records are refused with a reason.
 */
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SCHEMA_VERSION } from '../../src/store/sqlite/migrations.js';
import { UnhashableValueError } from '../../src/errors.js';
import { hashValue } from '../../src/hash/canonical.js';
import { loadPipelineFile } from '../../src/pipeline/load.js';
import { runPipeline } from '../../src/pipeline/execute.js';
import { readRecords } from '../../src/sources/files.js';
import { vegaDatasetPath } from '../../src/sources/datasets.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/store.js';
import { appendRecords, readLog } from '../../src/stream/log.js';
import { ensureDist } from '../helpers/dist.js';
import { REPO_ROOT } from '../helpers/paths.js';
import { rejection } from '../helpers/rejection.js';
import { revertToBlobsTable, withRawDb } from '../helpers/raw-db.js';
import { makeTempDir } from '../helpers/temp.js';

let dir: string;
let store: Store;

beforeAll(async () => {
  await ensureDist();
}, 180_000);

beforeEach(async () => {
  dir = makeTempDir();
  store = await openStore(dir);
});

afterEach(async () => {
  await store.close();
});

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('embedded stream log', () => {
  it('assigns offsets in order with no gaps across appends, and reads them back by offset', async () => {
    const flights = await collect(readRecords(vegaDatasetPath('flights-2k.json'), { limit: 1500 }));
    const first = await appendRecords(store, 'flights', flights.slice(0, 1200).map((r) => r.value), { batchSize: 500 });
    expect(first).toEqual({ first: 0, next: 1200, appended: 1200 });
    const second = await appendRecords(store, 'flights', flights.slice(1200).map((r) => r.value));
    expect(second).toEqual({ first: 1200, next: 1500, appended: 300 });
    expect(await store.getStream('flights')).toMatchObject({ streamId: 'flights', length: 1500 });

    const all = await collect(readLog(store, 'flights'));
    expect(all.map((r) => r.offset)).toEqual(Array.from({ length: 1500 }, (_, i) => i));
    expect(all.map((r) => r.value)).toEqual(flights.map((r) => r.value));

    const slice = await collect(readLog(store, 'flights', { from: 998, to: 1003 }));
    expect(slice.map((r) => r.offset)).toEqual([998, 999, 1000, 1001, 1002]);
    expect(slice[0]?.value).toEqual(flights[998]?.value);
    const entries = await store.readStream('flights', { from: 10, limit: 2 });
    expect(entries.map((e) => [e.offset, e.hash])).toEqual([
      [10, hashValue(flights[10]?.value)],
      [11, hashValue(flights[11]?.value)],
    ]);
  });

  it('keeps raw bytes and large values (stored as files) exactly', async () => {
    const big = { text: 'x'.repeat(100_000) };
    const bytes = new Uint8Array([0, 255, 7]);
    await appendRecords(store, 'mixed', [big, bytes, { small: true }]);
    const back = await collect(readLog(store, 'mixed'));
    expect(back[0]?.value).toEqual(big);
    expect(Buffer.from(back[1]?.value as Uint8Array).equals(Buffer.from(bytes))).toBe(true);
    expect(await store.statBlob(hashValue(big))).toMatchObject({ location: 'file' });
  });

  it('is history: log rows cannot be changed or removed', async () => {
    await appendRecords(store, 's', [{ a: 1 }]);
    await store.close();
    withRawDb(dir, (db) => {
      expect(() => db.exec('UPDATE stream_log SET "offset" = 5')).toThrow(/append-only/);
      expect(() => db.exec('DELETE FROM stream_log')).toThrow(/append-only/);
    });
    store = await openStore(dir);
  });

  it('a record that cannot be hashed is refused, naming its path, and nothing of its batch is appended', async () => {
    await appendRecords(store, 'bad', [{ ok: 1 }]);
    const err = await rejection(appendRecords(store, 'bad', [{ ok: 2 }, { legs: [{ delay: Number.NaN }] }]));
    expect(err).toBeInstanceOf(UnhashableValueError);
    expect((err as Error).message).toBe('$.legs[0].delay: NaN cannot be hashed');
    expect((await store.getStream('bad'))?.length).toBe(1);
  });

  it('refuses malformed stream ids, unknown streams and ranges in the wrong order', async () => {
    for (const id of ['', 'a\u0000b', 'x'.repeat(201)]) {
      expect(await rejection(store.appendToStream(id, []))).toMatchObject({ code: 'INPUT_INVALID' });
    }
    expect(await rejection(collect(readLog(store, 'nope')))).toMatchObject({ code: 'NOT_FOUND' });
    await appendRecords(store, 'r', [1, 2, 3]);
    expect(await rejection(collect(readLog(store, 'r', { from: 2, to: 1 })))).toMatchObject({ code: 'INPUT_INVALID' });
  });

  it('appends values as they are, even ones shaped like { offset, value }', async () => {
    const record = { offset: 7, value: 'payload' };
    await appendRecords(store, 'shapes', [record]);
    expect(await collect(readLog(store, 'shapes'))).toEqual([{ offset: 0, value: record }]);
  });

  it('a pipeline runs over a stream; each execution carries the stream and the record offset', async () => {
    const flights = await collect(readRecords(vegaDatasetPath('flights-2k.json'), { limit: 50 }));
    await appendRecords(store, 'flights', flights.map((r) => r.value));
    const pipeline = await loadPipelineFile(join(REPO_ROOT, 'examples', 'flights', 'pipeline.ts'));
    const result = await runPipeline(store, pipeline.definition, readLog(store, 'flights', { from: 10, to: 30 }), {
      baseDir: pipeline.baseDir,
      streamId: 'flights',
    });
    expect(result).toMatchObject({ records: 20, executions: 60, failed: 0 });
    const executions = await store.listExecutions({ runId: result.runId, stepId: 'normalize', limit: 100 });
    expect(executions.map((e) => [e.streamId, e.offset])).toEqual(Array.from({ length: 20 }, (_, i) => ['flights', 10 + i]));
    expect(executions[0]?.inputHashes[0]).toBe(hashValue(flights[10]?.value));
  });

  it('a store made before the stream log existed is migrated when opened', async () => {
    await store.close();
    // Take the store back to schema 1: no stream_log or checkpoint tables, migrations 2 and up not applied.
    withRawDb(dir, (db) => {
      // Every table the later migrations made (stream log, checkpoints, objects, access…) goes.
      const schema1 = new Set(['blobs', 'step_versions', 'contexts', 'runs', 'run_ends', 'streams', 'executions', 'dead_letters', 'schema_migrations']);
      const later = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as { name: string }[]).filter((t) => !schema1.has(t.name));
      expect(later.map((t) => t.name)).toContain('stream_log');
      db.pragma('foreign_keys = OFF');
      revertToBlobsTable(db);
      for (const t of later.filter((t) => !t.name.startsWith('blob_'))) db.exec(`DROP TABLE ${t.name}`);
      db.exec('DELETE FROM schema_migrations WHERE version >= 2');
    });
    store = await openStore(dir);
    await appendRecords(store, 'later', [{ n: 1 }]);
    expect((await store.getStream('later'))?.length).toBe(1);
    withRawDb(dir, (db) => {
      expect((db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as { v: number }).v).toBe(SCHEMA_VERSION);
    });
  });
});
