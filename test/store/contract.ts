/**
 * The store contract: what every store backend must do, whatever it is built on. A backend's test
 * file calls {@link describeStoreContract} with a function that opens a fresh, empty store; the
 * suite runs unchanged against it. Backends differ only in the capabilities they declare.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { uuidv7 } from 'uuidv7';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  BlobMissingError,
  ProvenantError,
  decodeValue,
  encodeValue,
  executionRecordHash,
  hashValue,
  type ContentHash,
  type ExecutionContext,
  type ExecutionQuery,
  type ExecutionRecord,
  type ObjectVersionRecord,
  type RecordedError,
  type RunRecord,
  type StepManifest,
  type StepVersion,
  type Store,
  type ValueEncoding,
  type ValueWrite,
  type TokenRecord,
  type AccessLogEntry,
} from '../../src/index.js';
import { expectRejection, rejection } from '../helpers/rejection.js';
import { objectVersionRecordHash } from '../../src/hash/record-hash.js';

/** A freshly opened empty store and how to dispose of it. */
export interface OpenedStore {
  readonly store: Store;
  readonly cleanup: () => Promise<void>;
}

// ---- fixtures ------------------------------------------------------------------------------

let clock = Date.now() * 1000;
/** Strictly increasing microsecond times, so "oldest first" orders are well defined. */
export function tick(): number {
  clock += 1000;
  return clock;
}

export function manifestFor(module: string): StepManifest {
  return {
    format: 'provenant-step/1',
    module,
    export: 'default',
    files: [{ path: module, bytes: 42 }],
    packages: [{ name: 'left-pad', version: '1.3.0' }],
    bundler: 'esbuild@0.0.0-test',
  };
}

/** Store an artifact and register it as a version of `stepId`. */
export async function registerStep(store: Store, stepId: string, code = `/* ${stepId} */ ${uuidv7()}`, firstRunId: string | null = null): Promise<StepVersion> {
  const bytes = Buffer.from(code, 'utf8');
  const versionHash = await store.putBlob(bytes);
  return store.registerStepVersion({ stepId, versionHash, manifest: manifestFor(`steps/${stepId}.ts`), firstSeenUs: tick(), firstRunId });
}

export function runRecord(overrides: Partial<RunRecord> = {}): RunRecord {
  return {
    id: uuidv7(),
    kind: 'capture',
    name: 'contract',
    startedUs: tick(),
    environment: { node: 'v20.0.0', platform: 'linux', arch: 'x64', provenant: '0.1.0', lockfileHash: hashValue('lockfile') },
    failurePolicy: 'dead-letter',
    context: { source: 'test', principal: 'ci' },
    options: { input: 'flights.json', limit: 10, nested: { list: [1, 'two', null, true] } },
    ...overrides,
  };
}

export async function createRun(store: Store, overrides: Partial<RunRecord> = {}): Promise<RunRecord> {
  const run = runRecord(overrides);
  await store.createRun(run);
  return run;
}

export interface ExecutionSpec {
  readonly runId: string;
  readonly step: Pick<StepVersion, 'stepId' | 'versionHash'>;
  readonly inputs?: readonly unknown[];
  /** The output; ignored when `error` is given. */
  readonly output?: unknown;
  readonly error?: RecordedError;
  readonly params?: unknown;
  readonly context?: ExecutionContext;
  readonly streamId?: string | null;
  readonly offset?: number | null;
}

/** A built execution record with the values it refers to. */
export interface BuiltExecution {
  readonly record: ExecutionRecord;
  readonly values: ValueWrite[];
}

/** An execution record as capture would write it, with its record hash, and the values it refers to. */
export function buildExecution(spec: ExecutionSpec): BuiltExecution {
  const inputs = (spec.inputs ?? [{ n: Math.random() }]).map((v) => encodeValue(v));
  const params = encodeValue(spec.params ?? {});
  const context = spec.context ?? { source: 'test' };
  const contextValue = encodeValue(context);
  const output = spec.error === undefined ? encodeValue(spec.output ?? { ok: true }) : undefined;
  const error = spec.error === undefined ? undefined : encodeValue(spec.error);
  const startedUs = tick();
  const fields = {
    id: uuidv7(),
    runId: spec.runId,
    functionId: spec.step.stepId,
    functionVersionHash: spec.step.versionHash,
    inputHashes: inputs.map((v) => v.hash),
    inputEncodings: inputs.map((v) => v.encoding),
    outputHash: output?.hash ?? null,
    outputEncoding: output?.encoding ?? ('json' as ValueEncoding),
    paramsHash: params.hash,
    contextHash: contextValue.hash,
    startedUs,
    endedUs: startedUs + 250,
    status: spec.error === undefined ? ('ok' as const) : ('failed' as const),
    errorHash: error?.hash ?? null,
    nondeterminismHash: null,
    streamId: spec.streamId ?? null,
    offset: spec.offset ?? null,
  };
  const record: ExecutionRecord = { ...fields, context, recordHash: executionRecordHash(fields) };
  const values = [...inputs, params, contextValue, ...(output ? [output] : []), ...(error ? [error] : [])].map((v) => ({ hash: v.hash, bytes: v.bytes }));
  return { record, values };
}

/** Append built executions in one batch. */
export async function append(store: Store, built: readonly BuiltExecution[], deadLetters: { executionId: string; reason: string }[] = []): Promise<void> {
  await store.appendExecutions({ executions: built.map((b) => b.record), values: built.flatMap((b) => b.values), deadLetters });
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}


const ids = (records: readonly { id: string }[]): string[] => records.map((r) => r.id);
const byId = (a: { id: string }, b: { id: string }): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);


/** Ingest a value as a new version of an object through the store interface. */
export async function ingest(store: Store, objectId: string, value: unknown, validFromUs?: number): Promise<ObjectVersionRecord> {
  const v = encodeValue(value);
  const [record] = await store.commitObjectVersions({
    versions: [{ versionId: uuidv7(), objectId, contentHash: v.hash, encoding: v.encoding, contentType: 'application/json', size: v.bytes.byteLength, executionId: null, inputVersionIds: [], ...(validFromUs === undefined ? {} : { validFromUs }) }],
    executions: [],
    values: [{ hash: v.hash, bytes: v.bytes }],
  });
  return record as ObjectVersionRecord;
}

/** Record an execution that made a new version of `objectId` from `inputs`. */
export async function derive(store: Store, runId: string, step: Pick<StepVersion, 'stepId' | 'versionHash'>, inputs: readonly ObjectVersionRecord[], objectId: string, output: unknown): Promise<ObjectVersionRecord> {
  const inputValues = await Promise.all(inputs.map(async (i) => JSON.parse(Buffer.from(await store.getBlob(i.contentHash)).toString('utf8')) as unknown));
  const built = buildExecution({ runId, step, inputs: inputValues, output });
  const out = encodeValue(output);
  const [record] = await store.commitObjectVersions({
    versions: [{ versionId: uuidv7(), objectId, contentHash: out.hash, encoding: 'json', contentType: 'application/json', size: out.bytes.byteLength, executionId: built.record.id, inputVersionIds: inputs.map((i) => i.versionId) }],
    executions: [built.record],
    values: built.values,
  });
  return record as ObjectVersionRecord;
}

// ---- the suite -----------------------------------------------------------------------------

/** Register the contract suite for one store backend. `open` must return a fresh, empty store. */
export function describeStoreContract(name: string, open: () => Promise<OpenedStore>): void {
  describe(`store contract: ${name}`, () => {
    let store: Store;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await open());
    });

    afterEach(async () => {
      await cleanup();
    });

    describe('blobs', () => {
      it('putBlob returns the SHA-256 of the bytes and getBlob returns the same bytes', async () => {
        const bytes = randomBytes(1000);
        const hash = await store.putBlob(bytes);
        expect(hash).toBe(`sha256:${sha256Hex(bytes)}`);
        expect(Buffer.from(await store.getBlob(hash)).equals(bytes)).toBe(true);
      });

      it('storing the same bytes twice keeps one copy', async () => {
        const bytes = randomBytes(500);
        const first = await store.putBlob(bytes);
        const before = await store.stats();
        const second = await store.putBlob(Buffer.from(bytes));
        const after = await store.stats();
        expect(second).toBe(first);
        expect(after.blobs).toBe(before.blobs);
        expect(after.blobBytes).toBe(before.blobBytes);
        await store.putBlob(randomBytes(500));
        expect((await store.stats()).blobs).toBe(before.blobs + 1);
      });

      it('hasBlob and statBlob report presence and size', async () => {
        const bytes = randomBytes(8);
        const hash = `sha256:${sha256Hex(bytes)}` as ContentHash;
        expect(await store.hasBlob(hash)).toBe(false);
        expect(await store.statBlob(hash)).toBeUndefined();
        await store.putBlob(bytes);
        expect(await store.hasBlob(hash)).toBe(true);
        expect(await store.statBlob(hash)).toEqual({ size: 8, location: 'inline' });
      });

      it('an empty blob round-trips', async () => {
        const hash = await store.putBlob(new Uint8Array(0));
        expect(hash).toBe(`sha256:${sha256Hex(new Uint8Array(0))}`);
        expect((await store.getBlob(hash)).byteLength).toBe(0);
        expect(await store.statBlob(hash)).toMatchObject({ size: 0 });
      });

      it('a 1 MiB blob round-trips (kept as a file when the backend has file blobs)', async () => {
        const bytes = randomBytes(1024 * 1024);
        const hash = await store.putBlob(bytes);
        expect(hash).toBe(`sha256:${sha256Hex(bytes)}`);
        expect(Buffer.from(await store.getBlob(hash)).equals(bytes)).toBe(true);
        expect(await store.statBlob(hash)).toEqual({ size: bytes.length, location: store.capabilities.fileBlobs ? 'file' : 'inline' });
        expect((await readAll(await store.openBlobStream(hash))).equals(bytes)).toBe(true);
      });

      it('putBlobStream stores a 5 MiB stream without knowing its hash; openBlobStream returns the same bytes', async () => {
        const chunk = 64 * 1024;
        const data = randomBytes(80 * chunk + 123);
        async function* source(): AsyncGenerator<Uint8Array> {
          for (let at = 0; at < data.length; at += chunk) {
            await Promise.resolve();
            yield data.subarray(at, Math.min(at + chunk, data.length));
          }
        }
        const { hash, size } = await store.putBlobStream(source());
        expect(hash).toBe(`sha256:${sha256Hex(data)}`);
        expect(size).toBe(data.length);
        expect(await store.hasBlob(hash)).toBe(true);
        expect(await store.statBlob(hash)).toMatchObject({ size: data.length });
        expect((await readAll(await store.openBlobStream(hash))).equals(data)).toBe(true);
        expect(Buffer.from(await store.getBlob(hash)).equals(data)).toBe(true);

        // The same content again, from a Node Readable: same hash, still one blob.
        const before = (await store.stats()).blobs;
        const again = await store.putBlobStream(Readable.from([data.subarray(0, 1000), data.subarray(1000)]));
        expect(again).toEqual({ hash, size: data.length });
        expect((await store.stats()).blobs).toBe(before);
      });

      it('openBlobStream streams a small blob too', async () => {
        const bytes = Buffer.from('small value');
        const hash = await store.putBlob(bytes);
        expect((await readAll(await store.openBlobStream(hash))).toString()).toBe('small value');
      });

      it('getBlob and openBlobStream of an unknown hash fail with BlobMissingError naming it', async () => {
        const unknown = hashValue('never stored');
        const err = await rejection(store.getBlob(unknown));
        expect(err).toBeInstanceOf(BlobMissingError);
        expect((err as BlobMissingError).hash).toBe(unknown);
        expect((err as BlobMissingError).code).toBe('BLOB_MISSING');
        expect((err as Error).message).toContain(unknown);
        await expect(store.openBlobStream(unknown)).rejects.toBeInstanceOf(BlobMissingError);
      });
    });

    describe('step versions', () => {
      it('registerStepVersion refuses a version whose artifact is not stored (ARTIFACT_MISSING)', async () => {
        const versionHash = hashValue('artifact that was never stored');
        const err = await rejection(
          store.registerStepVersion({ stepId: 'a', versionHash, manifest: manifestFor('steps/a.ts'), firstSeenUs: tick(), firstRunId: null }),
        );
        expect(err).toBeInstanceOf(ProvenantError);
        expect((err as ProvenantError).code).toBe('ARTIFACT_MISSING');
        expect(await store.getStepVersion('a', versionHash)).toBeUndefined();
        expect(await store.listSteps()).toEqual([]);
      });

      it('registerStepVersion is idempotent: the first registration is kept and returned', async () => {
        const run = await createRun(store);
        const first = await registerStep(store, 'a', 'export default 1', run.id);
        expect(await store.getStepVersion('a', first.versionHash)).toEqual(first);
        const again = await store.registerStepVersion({ ...first, firstSeenUs: tick(), firstRunId: null, manifest: manifestFor('elsewhere.ts') });
        expect(again).toEqual(first);
        expect(await store.getStepVersion('a', first.versionHash)).toEqual(first);
        expect((await store.stats()).stepVersions).toBe(1);
      });

      it('the same artifact may be a version of two steps', async () => {
        const a = await registerStep(store, 'a', 'shared code');
        const b = await registerStep(store, 'b', 'shared code');
        expect(b.versionHash).toBe(a.versionHash);
        expect(await store.getStepVersion('b', a.versionHash)).toEqual(b);
        expect((await store.stats()).stepVersions).toBe(2);
      });

      it('listSteps groups versions by step, oldest first, with execution counts', async () => {
        const run = await createRun(store);
        const a1 = await registerStep(store, 'a', 'a version 1');
        const b1 = await registerStep(store, 'b', 'b version 1');
        const a2 = await registerStep(store, 'a', 'a version 2');
        await append(store, [
          buildExecution({ runId: run.id, step: a2 }),
          buildExecution({ runId: run.id, step: a2 }),
          buildExecution({ runId: run.id, step: a2, error: { name: 'Error', message: 'boom' } }),
          buildExecution({ runId: run.id, step: b1 }),
        ]);
        const steps = await store.listSteps();
        expect(steps.map((s) => s.stepId).sort()).toEqual(['a', 'b']);
        const a = steps.find((s) => s.stepId === 'a');
        const b = steps.find((s) => s.stepId === 'b');
        expect(a?.versions).toEqual([
          { ...a1, executions: 0, failed: 0 },
          { ...a2, executions: 3, failed: 1 },
        ]);
        expect(b?.versions).toEqual([{ ...b1, executions: 1, failed: 0 }]);
      });
    });

    describe('runs', () => {
      it('createRun then getRun returns the run, not yet ended', async () => {
        const run = await createRun(store, { context: { source: 'cli', principal: 'alice', rights: ['read:a', 'write:b'], traceId: 'abc', location: 'eu' } });
        expect(await store.getRun(run.id)).toEqual({ ...run, end: null });
        expect(await store.getRun(uuidv7())).toBeUndefined();
      });

      it('endRun appends the end, which getRun returns', async () => {
        const run = await createRun(store);
        const end = { runId: run.id, endedUs: tick(), status: 'completed' as const, summary: { executions: 3, steps: { a: { executions: 3 } } } };
        await store.endRun(end);
        expect(await store.getRun(run.id)).toEqual({ ...run, end });
      });

      it('ending a run twice is refused with RUN_CLOSED and the first end is kept', async () => {
        const run = await createRun(store);
        const end = { runId: run.id, endedUs: tick(), status: 'stopped' as const, summary: { reason: 'first' } };
        await store.endRun(end);
        const err = await rejection(store.endRun({ runId: run.id, endedUs: tick(), status: 'completed', summary: { reason: 'second' } }));
        expect(err).toBeInstanceOf(ProvenantError);
        expect((err as ProvenantError).code).toBe('RUN_CLOSED');
        expect((await store.getRun(run.id))?.end).toEqual(end);
      });

      it('ending an unknown run is refused', async () => {
        await expect(store.endRun({ runId: uuidv7(), endedUs: tick(), status: 'completed', summary: {} })).rejects.toBeInstanceOf(ProvenantError);
      });

      it('a run id is recorded once: creating it again is refused and the original kept', async () => {
        const run = await createRun(store, { name: 'original' });
        await expect(store.createRun({ ...run, name: 'impostor' })).rejects.toThrow();
        expect((await store.getRun(run.id))?.name).toBe('original');
        expect((await store.stats()).runs).toBe(1);
      });

      it('listRuns lists newest first and honours the limit', async () => {
        const runs = [];
        for (let i = 0; i < 4; i++) runs.push(await createRun(store, { name: `run ${i}` }));
        const listed = await store.listRuns();
        expect(listed.map((r) => r.name)).toEqual(['run 3', 'run 2', 'run 1', 'run 0']);
        expect(listed[0]).toEqual({ ...runs[3], end: null });
        expect((await store.listRuns(2)).map((r) => r.id)).toEqual([runs[3]?.id, runs[2]?.id]);
      });
    });

    describe('executions', () => {
      it('getExecution returns exactly the appended record', async () => {
        const run = await createRun(store);
        const step = await registerStep(store, 'parse');
        const ok = buildExecution({
          runId: run.id,
          step,
          inputs: [{ line: 'a,b' }, new Uint8Array([0, 1, 2, 255]), 'third'],
          output: ['a', 'b'],
          params: { sep: ',' },
          context: { source: 'http', principal: 'alice', location: '10.0.0.1', rights: ['read:x'], traceId: '4bf92f3577b34da6a3ce929d0e0e4736' },
          streamId: 'file:input.csv',
          offset: 0,
        });
        const bytesOut = buildExecution({ runId: run.id, step, inputs: ['to bytes'], output: new Uint8Array([7, 7]), streamId: 'file:input.csv', offset: 1 });
        const failed = buildExecution({
          runId: run.id,
          step,
          error: { name: 'TypeError', message: 'bad input', stack: 'TypeError: bad input\n    at step', code: 'E_BAD' },
        });
        await append(store, [ok, bytesOut, failed]);

        expect(await store.getExecution(ok.record.id)).toEqual(ok.record);
        expect(await store.getExecution(bytesOut.record.id)).toEqual(bytesOut.record);
        expect(await store.getExecution(failed.record.id)).toEqual(failed.record);

        // The values the records refer to are there, byte for byte.
        const got = await store.getExecution(ok.record.id);
        expect(got?.inputEncodings).toEqual(['json', 'bytes', 'json']);
        expect(decodeValue(await store.getBlob(got?.inputHashes[0] as ContentHash), 'json')).toEqual({ line: 'a,b' });
        expect(Buffer.from(await store.getBlob(got?.inputHashes[1] as ContentHash))).toEqual(Buffer.from([0, 1, 2, 255]));
        expect(decodeValue(await store.getBlob(got?.outputHash as ContentHash), 'json')).toEqual(['a', 'b']);
        expect(decodeValue(await store.getBlob(got?.paramsHash as ContentHash), 'json')).toEqual({ sep: ',' });
        expect(decodeValue(await store.getBlob(got?.contextHash as ContentHash), 'json')).toEqual(ok.record.context);
        expect((await store.getExecution(bytesOut.record.id))?.outputEncoding).toBe('bytes');
        const error = decodeValue(await store.getBlob(failed.record.errorHash as ContentHash), 'json');
        expect(error).toEqual({ name: 'TypeError', message: 'bad input', stack: 'TypeError: bad input\n    at step', code: 'E_BAD' });
        expect((await store.stats()).executions).toBe(3);
        expect((await store.stats()).failedExecutions).toBe(1);
      });

      it('an execution with many inputs keeps each input\'s encoding', async () => {
        const run = await createRun(store);
        const step = await registerStep(store, 'many');
        const inputs = Array.from({ length: 20 }, (_, i) => (i % 3 === 0 ? new Uint8Array([i]) : { i }));
        const e = buildExecution({ runId: run.id, step, inputs, output: 'json out' });
        await append(store, [e]);
        const got = await store.getExecution(e.record.id);
        expect(got).toEqual(e.record);
        expect(got?.inputEncodings.filter((x) => x === 'bytes')).toHaveLength(7);
      });

      it('getExecution of an unknown or malformed id returns undefined', async () => {
        expect(await store.getExecution(uuidv7())).toBeUndefined();
        expect(await store.getExecution('not-an-id')).toBeUndefined();
      });

      describe('listing and counting', () => {
        let r1: RunRecord;
        let r2: RunRecord;
        let all: ExecutionRecord[];

        beforeEach(async () => {
          r1 = await createRun(store);
          r2 = await createRun(store);
          const a = await registerStep(store, 'a');
          const b = await registerStep(store, 'b');
          const built: BuiltExecution[] = [];
          for (let i = 0; i < 12; i++) {
            built.push(
              buildExecution({
                runId: i % 2 === 0 ? r1.id : r2.id,
                step: i % 3 === 0 ? b : a,
                inputs: [{ i }],
                ...(i % 4 === 1 ? { error: { name: 'Error', message: `failed ${i}` } } : { output: { i } }),
              }),
            );
          }
          // Two batches, to show listing spans commits.
          await append(store, built.slice(0, 5));
          await append(store, built.slice(5));
          all = built.map((b) => b.record).sort(byId);
        });

        it('listExecutions returns all in id (time) order', async () => {
          expect(await store.listExecutions()).toEqual(all);
        });

        interface Filter {
          stepId?: string;
          run?: 'r1' | 'r2';
          status?: 'ok' | 'failed';
        }
        it.each<[string, Filter, boolean]>([
          ['stepId', { stepId: 'a' }, true],
          ['runId', { run: 'r1' }, true],
          ['status failed', { status: 'failed' }, true],
          ['status ok', { status: 'ok' }, true],
          ['all three', { stepId: 'a', run: 'r2', status: 'ok' }, true],
          ['an unknown step', { stepId: 'nope' }, false],
        ])('filters by %s', async (_label, f, nonEmpty) => {
          const query: ExecutionQuery = {
            ...(f.stepId === undefined ? {} : { stepId: f.stepId }),
            ...(f.run === undefined ? {} : { runId: f.run === 'r1' ? r1.id : r2.id }),
            ...(f.status === undefined ? {} : { status: f.status }),
          };
          const expected = all.filter(
            (e) =>
              (query.stepId === undefined || e.functionId === query.stepId) &&
              (query.runId === undefined || e.runId === query.runId) &&
              (query.status === undefined || e.status === query.status),
          );
          expect(expected.length > 0).toBe(nonEmpty);
          expect(await store.listExecutions(query)).toEqual(expected);
          expect(await store.countExecutions(query)).toBe(expected.length);
        });

        it('countExecutions counts everything without filters', async () => {
          expect(await store.countExecutions()).toBe(12);
        });

        it('pages with afterId and limit', async () => {
          const pages: string[][] = [];
          let after: string | undefined;
          for (;;) {
            const page = await store.listExecutions({ limit: 5, ...(after === undefined ? {} : { afterId: after }) });
            if (page.length === 0) break;
            expect(page.length).toBeLessThanOrEqual(5);
            pages.push(ids(page));
            after = page[page.length - 1]?.id;
          }
          expect(pages.map((p) => p.length)).toEqual([5, 5, 2]);
          expect(pages.flat()).toEqual(ids(all));
          // Paging combines with filters.
          const failed = all.filter((e) => e.status === 'failed');
          const firstFailed = failed[0]?.id as string;
          expect(ids(await store.listExecutions({ status: 'failed', afterId: firstFailed }))).toEqual(ids(failed.slice(1)));
        });

        it('lists at most 100 by default', async () => {
          const step = await registerStep(store, 'bulk');
          const more = Array.from({ length: 120 }, () => buildExecution({ runId: r1.id, step }));
          await append(store, more);
          expect(await store.listExecutions()).toHaveLength(100);
          expect(await store.listExecutions({ stepId: 'bulk', limit: 1000 })).toHaveLength(120);
          expect(await store.countExecutions()).toBe(132);
        });
      });

      it('dead letters are listed by run', async () => {
        const r1 = await createRun(store);
        const r2 = await createRun(store);
        const step = await registerStep(store, 's');
        const fail = (runId: string, message: string): BuiltExecution => buildExecution({ runId, step, error: { name: 'Error', message } });
        const f1 = fail(r1.id, 'one');
        const f2 = fail(r1.id, 'two');
        const f3 = fail(r2.id, 'three');
        const okOne = buildExecution({ runId: r1.id, step });
        await append(store, [f1, okOne, f2], [
          { executionId: f1.record.id, reason: 'one' },
          { executionId: f2.record.id, reason: 'two' },
        ]);
        await append(store, [f3], [{ executionId: f3.record.id, reason: 'three' }]);

        const sorted = <T extends { executionId: string }>(list: T[]): T[] => [...list].sort((a, b) => (a.executionId < b.executionId ? -1 : 1));
        expect(sorted(await store.listDeadLetters(r1.id))).toEqual(
          sorted([
            { executionId: f1.record.id, runId: r1.id, reason: 'one' },
            { executionId: f2.record.id, runId: r1.id, reason: 'two' },
          ]),
        );
        expect(await store.listDeadLetters(r2.id)).toEqual([{ executionId: f3.record.id, runId: r2.id, reason: 'three' }]);
        expect(await store.listDeadLetters()).toHaveLength(3);
        expect(await store.listDeadLetters(uuidv7())).toEqual([]);
      });

      describe('atomicity', () => {
        /** A batch with one valid execution whose values (one of them large), context and stream are new. */
        async function batchWithBad(bad: (run: RunRecord, step: StepVersion) => BuiltExecution) {
          const run = await createRun(store);
          const step = await registerStep(store, 's');
          const good = buildExecution({
            runId: run.id,
            step,
            inputs: [{ unique: uuidv7() }],
            output: { big: 'x'.repeat(100 * 1024), id: uuidv7() },
            context: { source: 'atomicity', traceId: uuidv7() },
            streamId: `stream-${uuidv7()}`,
            offset: 7,
          });
          return { run, step, good, bad: bad(run, step) };
        }

        async function expectNothingWritten(good: BuiltExecution, before: Awaited<ReturnType<Store['stats']>>) {
          expect(await store.getExecution(good.record.id)).toBeUndefined();
          const fresh = good.values.filter((v) => v.hash !== hashValue({}));
          for (const v of fresh) expect(await store.hasBlob(v.hash)).toBe(false);
          expect(await store.stats()).toEqual(before);
          expect(await store.listDeadLetters()).toEqual([]);
        }

        it('a batch with an execution of an unknown run is refused and nothing from it is written', async () => {
          const { good, bad } = await batchWithBad((_run, step) => buildExecution({ runId: uuidv7(), step, inputs: [{ other: uuidv7() }] }));
          const before = await store.stats();
          await expect(append(store, [good, bad], [{ executionId: good.record.id, reason: 'x' }])).rejects.toBeInstanceOf(ProvenantError);
          await expectNothingWritten(good, before);

          // The valid part alone then commits, in full (nothing cached from the refused batch lingers).
          await append(store, [good]);
          expect(await store.getExecution(good.record.id)).toEqual(good.record);
          for (const v of good.values) expect(Buffer.from(await store.getBlob(v.hash)).equals(Buffer.from(v.bytes))).toBe(true);
        });

        it('a batch with an execution of an unregistered step version is refused and nothing from it is written', async () => {
          const { good, bad } = await batchWithBad((run) =>
            buildExecution({ runId: run.id, step: { stepId: 's', versionHash: hashValue('unregistered code') }, inputs: [{ other: uuidv7() }] }),
          );
          const before = await store.stats();
          const err = await rejection(append(store, [good, bad]));
          expect(err).toBeInstanceOf(ProvenantError);
          await expectNothingWritten(good, before);
          await append(store, [good]);
          expect(await store.getExecution(good.record.id)).toEqual(good.record);
        });

        it('an execution id is recorded once: appending it again is refused and the original kept', async () => {
          const run = await createRun(store);
          const step = await registerStep(store, 's');
          const original = buildExecution({ runId: run.id, step, output: 'original' });
          await append(store, [original]);
          const forged = buildExecution({ runId: run.id, step, output: 'forged' });
          const replay = { record: { ...forged.record, id: original.record.id }, values: forged.values };
          const fresh = buildExecution({ runId: run.id, step, output: 'fresh' });
          await expect(append(store, [fresh, replay])).rejects.toThrow();
          expect(await store.getExecution(original.record.id)).toEqual(original.record);
          expect(await store.getExecution(fresh.record.id)).toBeUndefined();
          expect(await store.countExecutions()).toBe(1);
        });
      });

      describe('batches built with newBatch', () => {
        it('commitBatch commits executions, values and dead letters together', async () => {
          const run = await createRun(store);
          const step = await registerStep(store, 's');
          const ok = buildExecution({ runId: run.id, step, inputs: [{ a: 1 }, new Uint8Array([1, 2])], output: 'out', streamId: 'mem', offset: 3 });
          const failed = buildExecution({ runId: run.id, step, error: { name: 'Error', message: 'nope' } });
          const batch = store.newBatch();
          for (const v of [...ok.values, ...failed.values]) batch.addValue(v);
          batch.addExecution(ok.record);
          batch.addExecution(failed.record);
          batch.addDeadLetter(failed.record.id, 'nope');
          expect(batch.executionCount).toBe(2);
          await store.commitBatch(batch);
          expect(await store.getExecution(ok.record.id)).toEqual(ok.record);
          expect(await store.getExecution(failed.record.id)).toEqual(failed.record);
          expect(await store.listDeadLetters(run.id)).toEqual([{ executionId: failed.record.id, runId: run.id, reason: 'nope' }]);
          for (const v of ok.values) expect(await store.hasBlob(v.hash)).toBe(true);
        });

        it('the store computes each record hash itself: a wrong one handed in is not kept', async () => {
          const run = await createRun(store);
          const step = await registerStep(store, 's');
          const e = buildExecution({ runId: run.id, step });
          const forged: ExecutionRecord = { ...e.record, recordHash: hashValue('forged') };
          await store.appendExecutions({ executions: [forged], values: e.values });
          expect((await store.getExecution(e.record.id))?.recordHash).toBe(e.record.recordHash);
        });

        it.each([
          ['a malformed execution id', (r: ExecutionRecord): ExecutionRecord => ({ ...r, id: 'zzzzzzzz-zzzz-7zzz-8zzz-zzzzzzzzzzzz' })],
          ['a malformed input hash', (r: ExecutionRecord): ExecutionRecord => ({ ...r, inputHashes: [`sha256:${'g'.repeat(64)}`] })],
          ['a truncated params hash', (r: ExecutionRecord): ExecutionRecord => ({ ...r, paramsHash: 'sha256:abc' })],
        ])('a batch with %s is refused whole with INPUT_INVALID', async (_label, spoil) => {
          const run = await createRun(store);
          const step = await registerStep(store, 's');
          const good = buildExecution({ runId: run.id, step, inputs: [{ unique: uuidv7() }] });
          const bad = buildExecution({ runId: run.id, step });
          const before = await store.stats();
          const batch = store.newBatch();
          for (const v of good.values) batch.addValue(v);
          batch.addExecution(good.record);
          let err: unknown;
          try {
            batch.addExecution(spoil(bad.record));
            await store.commitBatch(batch);
          } catch (e) {
            err = e;
          }
          expect(err).toBeInstanceOf(ProvenantError);
          expect((err as ProvenantError).code).toBe('INPUT_INVALID');
          expect(await store.getExecution(good.record.id)).toBeUndefined();
          expect(await store.stats()).toEqual(before);
        });

        it('a batch with an execution of an unknown run is refused whole', async () => {
          const run = await createRun(store);
          const step = await registerStep(store, 's');
          const good = buildExecution({ runId: run.id, step, inputs: [{ unique: uuidv7() }] });
          const bad = buildExecution({ runId: uuidv7(), step });
          const before = await store.stats();
          const batch = store.newBatch();
          for (const v of [...good.values, ...bad.values]) batch.addValue(v);
          batch.addExecution(good.record);
          batch.addExecution(bad.record);
          await expect(store.commitBatch(batch)).rejects.toBeInstanceOf(ProvenantError);
          expect(await store.getExecution(good.record.id)).toBeUndefined();
          expect(await store.stats()).toEqual(before);
        });

        it('an empty batch commits nothing', async () => {
          const before = await store.stats();
          await store.commitBatch(store.newBatch());
          expect(await store.stats()).toEqual(before);
        });
      });

      it('values of a batch are stored once, also when the store already has them', async () => {
        const run = await createRun(store);
        const step = await registerStep(store, 's');
        const shared = { same: 'input' };
        const e1 = buildExecution({ runId: run.id, step, inputs: [shared], output: 1 });
        const e2 = buildExecution({ runId: run.id, step, inputs: [shared], output: 1 });
        const distinct = new Set([...e1.values, ...e2.values].map((v) => v.hash));
        const before = (await store.stats()).blobs;
        await append(store, [e1, e2]);
        expect((await store.stats()).blobs).toBe(before + distinct.size);
        const e3 = buildExecution({ runId: run.id, step, inputs: [shared], output: 1 });
        await append(store, [e3]);
        expect((await store.stats()).blobs).toBe(before + distinct.size);
        expect(await store.countExecutions({ runId: run.id })).toBe(3);
      });
    });

    describe('objects', () => {
      it('gives versions ordinals, increasing transaction times and record hashes, and finds the one current at a time', async () => {
        const v1 = await ingest(store, 'customers/1', { balance: 1 });
        const v2 = await ingest(store, 'customers/1', { balance: 2 });
        const other = await ingest(store, 'orders/1', { total: 5 });
        expect([v1.ordinal, v2.ordinal, other.ordinal]).toEqual([1, 2, 1]);
        expect(v2.validFromUs).toBeGreaterThan(v1.validFromUs);
        const { recordHash, pinned, ...hashed } = v1;
        expect(pinned).toBe(false);
        expect(recordHash).toBe(objectVersionRecordHash(hashed));
        expect(await store.getObjectVersion(v1.versionId)).toEqual(v1);
        expect((await store.objectVersionAt('customers/1', v1.validFromUs))?.versionId).toBe(v1.versionId);
        expect((await store.objectVersionAt('customers/1', v2.validFromUs + 10))?.versionId).toBe(v2.versionId);
        expect(await store.objectVersionAt('customers/1', v1.validFromUs - 1)).toBeUndefined();
        expect((await store.listObjectVersions('customers/1')).map((v) => v.versionId)).toEqual([v1.versionId, v2.versionId]);
        expect((await store.listObjectVersions('customers/1', { untilUs: v1.validFromUs })).map((v) => v.versionId)).toEqual([v1.versionId]);
        expect((await store.findObjectVersions({ contentHash: other.contentHash })).map((v) => v.versionId)).toEqual([other.versionId]);
        expect((await store.listObjects({ prefix: 'cust' })).map((o) => [o.objectId, o.versions])).toEqual([['customers/1', 2]]);
        await expectRejection(ingest(store, 'customers/1', { balance: 3 }, v1.validFromUs), 'INPUT_INVALID');
      });

      it('commits a derived version with its execution atomically, and refuses one whose inputs or content are missing', async () => {
        const run = await createRun(store);
        const step = await registerStep(store, 'join');
        const a = await ingest(store, 'a/1', { a: 1 });
        const b = await ingest(store, 'b/1', { b: 2 });
        const joined = await derive(store, run.id, step, [a, b], 'ab/1', { a: 1, b: 2 });
        expect(joined.inputVersionIds).toEqual([a.versionId, b.versionId]);
        expect((await store.findObjectVersions({ executionId: joined.executionId as string })).map((v) => v.versionId)).toEqual([joined.versionId]);
        const e = await store.getExecution(joined.executionId as string);
        expect(e?.inputHashes).toEqual([a.contentHash, b.contentHash]);

        const built = buildExecution({ runId: run.id, step, inputs: [{ a: 1 }], output: { x: 1 } });
        const out = encodeValue({ x: 1 });
        await expectRejection(
          store.commitObjectVersions({
            versions: [{ versionId: uuidv7(), objectId: 'x/1', contentHash: out.hash, encoding: 'json', contentType: 'application/json', size: out.bytes.byteLength, executionId: built.record.id, inputVersionIds: [uuidv7()] }],
            executions: [built.record],
            values: built.values,
          }),
          'NOT_FOUND',
        );
        expect(await store.getExecution(built.record.id)).toBeUndefined();
        expect(await store.listObjectVersions('x/1')).toEqual([]);
        const missing = encodeValue({ never: 'stored' });
        await expectRejection(
          store.commitObjectVersions({
            versions: [{ versionId: uuidv7(), objectId: 'x/1', contentHash: missing.hash, encoding: 'json', contentType: 'application/json', size: 3, executionId: null, inputVersionIds: [] }],
            executions: [],
            values: [],
          }),
          'BLOB_MISSING',
        );
      });

      it('walks ancestors and descendants with depth, time and size limits', async () => {
        const run = await createRun(store);
        const step = await registerStep(store, 'next');
        const root = await ingest(store, 'chain/0', { n: 0 });
        const side = await ingest(store, 'side/0', { s: 1 });
        const chain = [root];
        for (let i = 1; i <= 5; i++) chain.push(await derive(store, run.id, step, i === 3 ? [chain[i - 1] as ObjectVersionRecord, side] : [chain[i - 1] as ObjectVersionRecord], `chain/${i}`, { n: i }));
        const last = chain[5] as ObjectVersionRecord;
        const up = await store.walkLineage({ from: [last.versionId], direction: 'up' });
        expect(up.truncated).toBe(false);
        expect(new Map(up.versions.map((r) => [r.version.objectId, r.depth]))).toEqual(new Map([['chain/5', 0], ['chain/4', 1], ['chain/3', 2], ['chain/2', 3], ['side/0', 3], ['chain/1', 4], ['chain/0', 5]]));
        const near = await store.walkLineage({ from: [last.versionId], direction: 'up', depth: 2 });
        expect(near.versions.map((r) => r.version.objectId).sort()).toEqual(['chain/3', 'chain/4', 'chain/5']);
        const down = await store.walkLineage({ from: [side.versionId], direction: 'down' });
        expect(down.versions.map((r) => [r.version.objectId, r.depth]).sort()).toEqual([['chain/3', 1], ['chain/4', 2], ['chain/5', 3], ['side/0', 0]]);
        const downThen = await store.walkLineage({ from: [side.versionId], direction: 'down', untilUs: (chain[3] as ObjectVersionRecord).validFromUs });
        expect(downThen.versions.map((r) => r.version.objectId).sort()).toEqual(['chain/3', 'side/0']);
        const cut = await store.walkLineage({ from: [last.versionId], direction: 'up', limit: 3 });
        expect(cut.truncated).toBe(true);
        expect(cut.versions).toHaveLength(3);
      });

      it('plans a recomputation back to the nearest kept versions, inputs first', async () => {
        const run = await createRun(store);
        const step = await registerStep(store, 'next');
        const v0 = await ingest(store, 'p/x', { n: 0 });
        const v1 = await derive(store, run.id, step, [v0], 'p/x', { n: 1 });
        const v2 = await derive(store, run.id, step, [v1], 'p/x', { n: 2 });
        const v3 = await derive(store, run.id, step, [v2], 'p/x', { n: 3 });
        expect((await store.recomputePlan(v3.versionId)).map((r) => [r.version.ordinal, r.kept])).toEqual([[4, true]]);
        const dropped = await store.dropBlobs([v3.contentHash, v2.contentHash]);
        expect(dropped.dropped.sort()).toEqual([v2.contentHash, v3.contentHash].sort());
        expect(dropped.bytes).toBe(v2.size + v3.size);
        expect((await store.recomputePlan(v3.versionId)).map((r) => [r.version.ordinal, r.kept])).toEqual([[2, true], [3, false], [4, false]]);
      });

      it('never drops the bytes of an original, a pinned version, or a value anything else refers to', async () => {
        const run = await createRun(store);
        const step = await registerStep(store, 'copy');
        const original = await ingest(store, 'o/1', { same: true });
        const copy = await derive(store, run.id, step, [original], 'o/2', { same: true });
        const pinned = await derive(store, run.id, step, [original], 'o/3', { pinned: 1 });
        await store.setPinned(pinned.versionId, true);
        expect((await store.getObjectVersion(pinned.versionId))?.pinned).toBe(true);
        const streamed = encodeValue({ in: 'stream' });
        await store.appendToStream('s', [{ hash: streamed.hash, bytes: streamed.bytes, encoding: 'json' }]);
        const alsoStream = await derive(store, run.id, step, [original], 'o/4', { in: 'stream' });
        const free = await derive(store, run.id, step, [original], 'o/5', { free: 1 });
        const r = await store.dropBlobs([copy.contentHash, pinned.contentHash, alsoStream.contentHash, free.contentHash, step.versionHash]);
        expect(r.dropped).toEqual([free.contentHash]);
        expect(await store.hasBlob(original.contentHash)).toBe(true);
        expect(await store.hasBlob(pinned.contentHash)).toBe(true);
        expect(await store.hasBlob(streamed.hash)).toBe(true);
        expect(await store.hasBlob(step.versionHash)).toBe(true);
        await store.setPinned(pinned.versionId, false);
        expect((await store.dropBlobs([pinned.contentHash])).dropped).toEqual([pinned.contentHash]);
      });

      it('keeps the latest materialization setting per scope, and counts reads per version', async () => {
        await store.setMaterialization({ scope: 'store', policy: 'none', setUs: tick() });
        await store.setMaterialization({ scope: 'step:a', policy: 'every:3', setUs: tick() });
        await store.setMaterialization({ scope: 'store', policy: 'all', setUs: tick() });
        expect((await store.listMaterialization()).map((s) => [s.scope, s.policy])).toEqual([['step:a', 'every:3'], ['store', 'all']]);
        const run = await createRun(store);
        const step = await registerStep(store, 'a');
        const v0 = await ingest(store, 'r/1', { n: 0 });
        const v1 = await derive(store, run.id, step, [v0], 'r/1', { n: 1 });
        await store.recordObjectReads([{ versionId: v1.versionId, atUs: tick(), recomputed: false, costUs: 10 }, { versionId: v1.versionId, atUs: tick(), recomputed: true, costUs: 900 }]);
        const usage = await store.listVersionUsage();
        expect(usage.map((u) => [u.version.versionId, u.stepId, u.reads, u.kept, u.durationUs])).toEqual([[v1.versionId, 'a', 2, true, 250]]);
        await expectRejection(store.setPinned(uuidv7(), true), 'NOT_FOUND');
      });
    });

    describe('replay jobs of the HTTP API', () => {
      it('keeps every snapshot of a job and answers with the latest; an unknown job has none', async () => {
        const jobId = uuidv7();
        const other = uuidv7();
        const at = tick();
        await store.appendReplayJobSnapshot({ jobId, atUs: at, view: { id: jobId, status: 'queued', progress: null } });
        await store.appendReplayJobSnapshot({ jobId: other, atUs: at + 1, view: { id: other, status: 'running' } });
        await store.appendReplayJobSnapshot({ jobId, atUs: at + 2, view: { id: jobId, status: 'running', progress: { records: 10 } } });
        await store.appendReplayJobSnapshot({ jobId, atUs: at + 3, view: { id: jobId, status: 'completed', result: { matched: 20, label: 'é "q"' } } });
        expect(await store.latestReplayJobSnapshot(jobId)).toEqual({ jobId, atUs: at + 3, view: { id: jobId, status: 'completed', result: { matched: 20, label: 'é "q"' } } });
        expect(await store.latestReplayJobSnapshot(other)).toEqual({ jobId: other, atUs: at + 1, view: { id: other, status: 'running' } });
        expect(await store.latestReplayJobSnapshot(uuidv7())).toBeUndefined();
      });

      it('refuses a snapshot with an empty job id, a fractional time or a view that is not JSON, and records nothing', async () => {
        const jobId = uuidv7();
        for (const bad of [
          { jobId: '', atUs: tick(), view: {} },
          { jobId, atUs: 1.5, view: {} },
          { jobId, atUs: tick(), view: { n: Number.NaN } as never },
        ]) {
          const err = await rejection(store.appendReplayJobSnapshot(bad));
          expect(err).toBeInstanceOf(ProvenantError);
        }
        expect(await store.latestReplayJobSnapshot(jobId)).toBeUndefined();
      });
    });

    describe('tokens and the access log', () => {
      const token = (principal: string, overrides: Partial<TokenRecord> = {}): TokenRecord => ({
        id: uuidv7(),
        hash: `sha256:${sha256Hex(randomBytes(32))}` as ContentHash,
        principal,
        grants: ['read:customers/*', 'replay:orders'],
        createdUs: tick(),
        expiresUs: null,
        label: null,
        ...overrides,
      });

      it('finds a token by its hash, with its grants and expiry; lists tokens oldest first', async () => {
        const a = token('alice', { expiresUs: tick() + 1_000_000, label: 'ci' });
        const b = token('bob');
        await store.createToken(a);
        await store.createToken(b);
        expect(await store.findToken(a.hash)).toEqual({ ...a, revokedUs: null });
        expect(await store.findToken(`sha256:${'0'.repeat(64)}` as ContentHash)).toBeUndefined();
        expect((await store.listTokens()).map((t) => t.id)).toEqual([a.id, b.id]);
      });

      it('refuses a second token with the same hash', async () => {
        const a = token('alice');
        await store.createToken(a);
        const err = await rejection(store.createToken({ ...token('mallory'), hash: a.hash }));
        expect((err as ProvenantError).code).toBe('INPUT_INVALID');
        expect((await store.findToken(a.hash))?.principal).toBe('alice');
      });

      it('revokes by appending: the first revocation time is kept; unknown ids are NOT_FOUND', async () => {
        const a = token('alice');
        await store.createToken(a);
        const at = tick();
        expect((await store.revokeToken(a.id, at)).revokedUs).toBe(at);
        expect((await store.revokeToken(a.id, tick())).revokedUs).toBe(at);
        expect((await store.findToken(a.hash))?.revokedUs).toBe(at);
        const err = await rejection(store.revokeToken(uuidv7(), tick()));
        expect((err as ProvenantError).code).toBe('NOT_FOUND');
      });

      it('appends access log entries and lists them oldest first, by principal and time, paged', async () => {
        const entry = (principal: string | null, timeUs: number): AccessLogEntry => ({
          id: uuidv7(),
          timeUs,
          principal,
          tokenId: principal === null ? null : uuidv7(),
          address: '127.0.0.1',
          method: 'GET',
          target: `/data/customers/${timeUs}`,
          route: '/data/*',
          status: principal === null ? 401 : 200,
          rights: principal === null ? [] : ['read:customers/*'],
          traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
          durationUs: 120,
          detail: { objectId: 'customers/1', executionsRun: 0 },
        });
        const t0 = tick();
        const entries = [entry('alice', t0), entry(null, tick()), entry('bob', tick()), entry('alice', tick())];
        await store.appendAccessLog(entries.slice(0, 2));
        await store.appendAccessLog(entries.slice(2));
        await store.appendAccessLog([]);
        expect(await store.listAccessLog()).toEqual(entries);
        expect((await store.listAccessLog({ principal: 'alice' })).map((e) => e.id)).toEqual([entries[0]!.id, entries[3]!.id]);
        expect((await store.listAccessLog({ sinceUs: entries[2]!.timeUs })).map((e) => e.id)).toEqual([entries[2]!.id, entries[3]!.id]);
        expect((await store.listAccessLog({ limit: 2, afterId: entries[0]!.id })).map((e) => e.id)).toEqual([entries[1]!.id, entries[2]!.id]);
      });
    });
  });
}
