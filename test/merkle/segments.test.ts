/**
 * A run's executions as a log segment: the PostgreSQL backend builds it from ids as UUID text,
 * the SQLite backend from their 16 bytes. Both must describe the same leaves the same way — a
 * clean id range when the ids rise above the run's previous largest, else every id listed —
 * since a verifier reads the records back by what the segment names.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { executionsSegment, executionsSegmentOfText } from '../../src/merkle/segments.js';
import { uuidFromBytes } from '../../src/ids.js';

const idBytes = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b));

describe('executionsSegmentOfText', () => {
  it('names the same leaves as executionsSegment, for sorted, unsorted and repeated ids', () => {
    fc.assert(
      fc.property(fc.array(idBytes, { minLength: 1, maxLength: 12 }), fc.option(idBytes, { nil: null }), fc.boolean(), (ids, previousMax, sort) => {
        const list = sort ? [...ids].sort(Buffer.compare) : ids;
        const hashes = list.map((_, i) => Buffer.alloc(32, i));
        const fromBytes = executionsSegment(9, previousMax, list, hashes);
        const fromText = executionsSegmentOfText(9, previousMax, list.map(uuidFromBytes), hashes);
        expect(fromText).toEqual(fromBytes);
      }),
      { numRuns: 500 },
    );
  });

  it('is a clean range exactly when the ids rise above the previous largest', () => {
    const ids = ['01000000-0000-7000-8000-000000000001', '01000000-0000-7000-8000-00000000000a', '01000000-0000-7000-8000-0000000000a0'];
    const hashes = ids.map(() => Buffer.alloc(32));
    const clean = executionsSegmentOfText(1, null, ids, hashes);
    expect(clean.ids).toBeNull();
    expect(uuidFromBytes(clean.first as Buffer)).toBe(ids[0]);
    expect(uuidFromBytes(clean.last as Buffer)).toBe(ids[2]);
    const below = executionsSegmentOfText(1, Buffer.from('01000000000070008000000000000005', 'hex'), ids, hashes);
    expect(below.first).toBeNull();
    expect((below.ids as Buffer).byteLength).toBe(48);
  });
});
