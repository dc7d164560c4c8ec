/**
 * The packed batch that capture hands to the writer thread: what goes in comes out, the record
 * hash the writer computes from the packed bytes is the canonical one (its definition:
 * SHA-256 of the RFC 8785 text of canonicalRecord), and malformed ids, hashes, encodings or
 * statuses are refused.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalize, hashToBytes, sha256, type ContentHash } from '../../src/hash/canonical.js';
import { canonicalRecord, executionRecordHash } from '../../src/hash/record-hash.js';
import { PackedBatchBuilder, unpackBatch } from '../../src/store/sqlite/packed-batch.js';
import type { ExecutionWrite } from '../../src/store/records.js';

const hashArb = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => `sha256:${Buffer.from(b).toString('hex')}` as ContentHash);
const idArb = fc.uuid({ version: 7 });
const timeArb = fc.integer({ min: 0, max: 2 ** 52 });
/** Any finite number: the writer writes numbers into the record hash's text itself (-0, 1e21, 0.1, -7…). */
const numberArb = fc.oneof(fc.integer({ min: -(2 ** 53), max: 2 ** 53 }), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom(-0, 1e21, 2 ** 53 + 2, 5e-324));

const executionArb: fc.Arbitrary<ExecutionWrite> = fc
  .record({
    id: idArb,
    runId: idArb,
    functionId: fc.string({ minLength: 1, maxLength: 40 }).filter((s) => s.isWellFormed()),
    functionVersionHash: hashArb,
    inputs: fc.array(fc.tuple(hashArb, fc.constantFrom('json' as const, 'bytes' as const)), { minLength: 1, maxLength: 4 }),
    outputHash: fc.option(hashArb, { nil: null }),
    outputEncoding: fc.constantFrom('json' as const, 'bytes' as const),
    paramsHash: hashArb,
    contextHash: hashArb,
    startedUs: fc.oneof(timeArb, numberArb),
    durationUs: fc.oneof(fc.integer({ min: 0, max: 10 ** 9 }), numberArb),
    errorHash: fc.option(hashArb, { nil: null }),
    nondeterminismHash: fc.option(hashArb, { nil: null }),
    streamId: fc.option(fc.string({ maxLength: 60 }).filter((s) => s.isWellFormed()), { nil: null }),
    offset: fc.option(fc.oneof(fc.integer({ min: 0, max: 2 ** 50 }), numberArb), { nil: null }),
  })
  .map((r) => ({
    id: r.id,
    runId: r.runId,
    functionId: r.functionId,
    functionVersionHash: r.functionVersionHash,
    inputHashes: r.inputs.map(([h]) => h),
    inputEncodings: r.inputs.map(([, e]) => e),
    outputHash: r.outputHash,
    outputEncoding: r.outputEncoding,
    paramsHash: r.paramsHash,
    contextHash: r.contextHash,
    context: { principal: 'p' },
    startedUs: r.startedUs,
    endedUs: Number.isFinite(r.startedUs + r.durationUs) ? r.startedUs + r.durationUs : r.startedUs,
    status: r.errorHash === null ? ('ok' as const) : ('failed' as const),
    errorHash: r.errorHash,
    nondeterminismHash: r.nondeterminismHash,
    streamId: r.streamId,
    offset: r.offset,
  }));

function pack(executions: ExecutionWrite[]) {
  const builder = new PackedBatchBuilder(() => false, (c) => canonicalize(c));
  for (const e of executions) builder.addExecution(e);
  return builder.finish();
}

describe('packed batches', () => {
  it('carry every field through, with the canonical record hash computed from the packed bytes', () => {
    fc.assert(
      fc.property(fc.array(executionArb, { minLength: 1, maxLength: 5 }), (executions) => {
        const batch = pack(executions);
        const { executions: out } = unpackBatch(batch);
        expect(out).toHaveLength(executions.length);
        executions.forEach((e, i) => {
          const o = out[i];
          if (o === undefined) throw new Error('missing');
          // The fast record hash equals the definition: SHA-256 of the JCS form of canonicalRecord.
          const definition = sha256(canonicalize(canonicalRecord(e)));
          expect(executionRecordHash(e)).toBe(definition);
          expect(o.recordHash.equals(hashToBytes(definition))).toBe(true);
          expect(o.inputs.equals(Buffer.concat(e.inputHashes.map(hashToBytes)))).toBe(true);
          expect(o.output?.equals(hashToBytes(e.outputHash ?? '')) ?? e.outputHash === null).toBe(true);
          expect(o.params.equals(hashToBytes(e.paramsHash))).toBe(true);
          expect(o.started).toBe(e.startedUs);
          expect(o.duration).toBe(e.endedUs - e.startedUs);
          expect(o.offset).toBe(e.offset);
          expect(batch.dictionary.runs[o.run]).toBe(e.runId);
          expect(batch.dictionary.steps[o.step]).toEqual([e.functionId, e.functionVersionHash]);
          expect(batch.dictionary.streams[o.stream] ?? null).toBe(e.streamId);
        });
      }),
      { numRuns: 200 },
    );
  });

  it('the record hash equals its definition even for fields the fast path does not vouch for', () => {
    const [e] = fc.sample(executionArb, { numRuns: 1, seed: 11 });
    if (e === undefined) throw new Error('no sample');
    const odd: ExecutionWrite[] = [
      { ...e, paramsHash: 'sha256:"quoted"' as ContentHash },
      { ...e, id: 'NOT-A-UUID "x"' },
      { ...e, functionId: 'step "quoted" \\ é' },
      { ...e, streamId: 'file:/tmp/a "b".csv' },
      { ...e, offset: 1.5, startedUs: -0 },
    ];
    for (const x of odd) expect(executionRecordHash(x)).toBe(sha256(canonicalize(canonicalRecord(x))));
    // Alternating between values (as two steps in a pipeline do) never reuses the wrong quoted form.
    const a = { ...e, functionId: 'a', paramsHash: e.contextHash };
    const b = { ...e, functionId: 'b' };
    for (const x of [a, b, a, b]) expect(executionRecordHash(x)).toBe(sha256(canonicalize(canonicalRecord(x))));
  });

  it('carries values, inline JSON text and bytes alike', () => {
    const builder = new PackedBatchBuilder((size) => size > 100, (c) => canonicalize(c));
    const text = canonicalize({ é: 'ü', n: 1 });
    builder.addValue({ hash: sha256(text), bytes: Buffer.from(text), text });
    const bytes = Buffer.from([0, 1, 2, 255]);
    builder.addValue({ hash: sha256(bytes), bytes });
    const big = Buffer.alloc(500, 7);
    builder.addValue({ hash: sha256(big), bytes: big });
    expect(builder.fileValues.map((v) => v.hash)).toEqual([sha256(big)]);
    const { values } = unpackBatch(builder.finish());
    expect(values.map((v) => [v.location, v.size, v.bytes?.toString('hex') ?? null])).toEqual([
      [0, Buffer.byteLength(text), Buffer.from(text).toString('hex')],
      [0, 4, '000102ff'],
      [1, 500, null],
    ]);
    expect(values[0]?.digest.equals(hashToBytes(sha256(text)))).toBe(true);
  });

  it('refuses a malformed hash or id, naming it', () => {
    const [e] = fc.sample(executionArb, { numRuns: 1, seed: 7 });
    if (e === undefined) throw new Error('no sample');
    const badHash = `sha256:${'g'.repeat(64)}` as ContentHash;
    expect(() => unpackBatch(pack([{ ...e, paramsHash: badHash }]))).toThrow(/params hash is not valid: sha256:ggg/);
    const upper = `sha256:${'A'.repeat(64)}` as ContentHash;
    expect(() => unpackBatch(pack([{ ...e, outputHash: upper }]))).toThrow(/output hash is not valid/);
    expect(() => pack([{ ...e, paramsHash: 'sha256:abc' as ContentHash }])).toThrow(/params hash is not a content hash/);
    // What the packed form could not carry exactly is refused when added, before any hash is made.
    expect(() => pack([{ ...e, inputEncodings: [] }])).toThrow(/one encoding per input/);
    expect(() => pack([{ ...e, outputEncoding: 'text' as 'json' }])).toThrow(/one encoding per input, each 'json' or 'bytes'/);
    expect(() => pack([{ ...e, status: 'maybe' as 'ok' }])).toThrow(/status must be 'ok' or 'failed'/);
    // RFC 8785 text has no form for a lone surrogate: refused at capture, not when the batch commits.
    expect(() => pack([{ ...e, streamId: 'bad \ud800 stream' }])).toThrow(/a stream id has a lone surrogate/);
    expect(() => pack([{ ...e, functionId: '\udc00' }])).toThrow(/a step id or version has a lone surrogate/);
    const badId = `${e.id.slice(0, 35)}x`;
    expect(() => unpackBatch(pack([{ ...e, id: badId }]))).toThrow(/execution id is not valid/);
  });
});
