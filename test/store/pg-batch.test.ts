/**
 * The PostgreSQL batch keeps each execution's digests as offsets into one byte heap, reusing the
 * previous execution's output digest for a chained input and a params or context digest for every
 * execution that shares it. Whatever is reused, each row must point at its own hashes, and a
 * malformed hash must be refused before anything of the execution is appended.
 */
import { describe, expect, it } from 'vitest';
import { hashValue, type ContentHash } from '../../src/hash/canonical.js';
import { executionRecordHash } from '../../src/hash/record-hash.js';
import { newId } from '../../src/ids.js';
import { ProvenantError } from '../../src/errors.js';
import { PgBatch } from '../../src/store/postgres/batch.js';
import type { ExecutionWrite } from '../../src/store/records.js';

const h = (v: unknown): ContentHash => hashValue(v);
const digestAt = (batch: PgBatch, at: number): string => `sha256:${batch.heap.bytes().subarray(at, at + 32).toString('hex')}`;

function execution(input: ContentHash | ContentHash[], output: ContentHash | null, params = h({ p: 1 })): ExecutionWrite {
  const inputs = Array.isArray(input) ? input : [input];
  return {
    id: newId(),
    runId: newId(),
    functionId: 'step',
    functionVersionHash: h('code'),
    inputHashes: inputs,
    inputEncodings: inputs.map(() => 'json' as const),
    outputHash: output,
    outputEncoding: 'json',
    paramsHash: params,
    contextHash: h({ source: 'test' }),
    context: { source: 'test' },
    startedUs: 1_700_000_000_000_000,
    endedUs: 1_700_000_000_000_100,
    status: output === null ? 'failed' : 'ok',
    errorHash: output === null ? h({ message: 'no' }) : null,
    nondeterminismHash: null,
    streamId: 's',
    offset: 1,
  };
}

describe('PgBatch digests', () => {
  it('points every row at its own input, output, params, context and record hashes', () => {
    const batch = new PgBatch();
    const [a, b, c, d] = [h('a'), h('b'), h('c'), h('d')];
    const executions = [
      execution(a, b), // fresh input
      execution(b, c), // chained: the previous output
      execution(b, d, h({ p: 2 })), // an earlier output, not the last one; other params
      execution([c, a], null), // several inputs, failed
      execution(d, a), // chained again
    ];
    for (const e of executions) batch.addExecution(e);
    const col = batch.columns;
    executions.forEach((e, i) => {
      const inputs = batch.heap.bytes().subarray(col.inputsAt[i] as number, (col.inputsAt[i] as number) + (col.inputsLength[i] as number));
      expect(inputs.toString('hex')).toBe(e.inputHashes.map((x) => x.slice(7)).join(''));
      expect(col.outputAt[i] === -1 ? null : digestAt(batch, col.outputAt[i] as number)).toBe(e.outputHash);
      expect(digestAt(batch, col.paramsAt[i] as number)).toBe(e.paramsHash);
      expect(digestAt(batch, col.contextAt[i] as number)).toBe(e.contextHash);
      expect(digestAt(batch, col.recordHashAt[i] as number)).toBe(executionRecordHash(e));
    });
    // The chained inputs and the shared params and context were not copied again.
    expect(col.inputsAt[1]).toBe(col.outputAt[0]);
    expect(col.inputsAt[4]).toBe(col.outputAt[2]);
    expect(col.paramsAt[1]).toBe(col.paramsAt[0]);
    expect(col.contextAt[4]).toBe(col.contextAt[0]);
  });

  it('refuses a malformed hash without appending anything of the execution', () => {
    const batch = new PgBatch();
    batch.addExecution(execution(h('a'), h('b')));
    const before = batch.heap.bytes().byteLength;
    for (const bad of [
      { ...execution(h('b'), h('c')), outputHash: 'sha256:XYZ' as ContentHash },
      { ...execution(`sha256:${'G'.repeat(64)}` as ContentHash, h('c')) },
      { ...execution(h('b'), h('c')), paramsHash: `sha256:${'0'.repeat(63)}` as ContentHash },
      { ...execution(h('b'), h('c')), id: 'not-a-uuid' },
    ]) {
      expect(() => batch.addExecution(bad)).toThrow(ProvenantError);
    }
    expect(batch.executionCount).toBe(1);
    expect(batch.heap.bytes().byteLength).toBe(before);
  });
});
