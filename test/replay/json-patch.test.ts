/**
 * RFC 6902 JSON Patch: the diff between two JSON values, applied to the first, gives the second —
 * for hand-picked cases (RFC 6901 escaping, arrays growing and shrinking, type changes, the whole
 * document) and for arbitrary JSON values (fast-check); apply follows RFC 6902 (test, move, copy,
 * errors naming the path).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyPatch, diffJson, escapePointerToken, jsonEqual, parsePointer, valueAt, type JsonPatchOperation } from '../../src/replay/json-patch.js';
import { expectRejection } from '../helpers/rejection.js';

describe('diffJson', () => {
  it('objects key by key, in sorted key order: add, remove, replace, nested', () => {
    const a = { b: 1, a: { x: 1, y: [1, 2] }, gone: true };
    const b = { b: 2, a: { x: 1, y: [1, 2, 3] }, added: null };
    expect(diffJson(a, b)).toEqual([
      { op: 'add', path: '/a/y/2', value: 3 },
      { op: 'add', path: '/added', value: null },
      { op: 'replace', path: '/b', value: 2 },
      { op: 'remove', path: '/gone' },
    ]);
    expect(applyPatch(a, diffJson(a, b))).toEqual(b);
  });

  it('equal values give an empty patch; different types and scalars are replaced; the root is path ""', () => {
    expect(diffJson({ a: [1, { b: 'x' }] }, { a: [1, { b: 'x' }] })).toEqual([]);
    expect(diffJson(1, '1')).toEqual([{ op: 'replace', path: '', value: '1' }]);
    expect(diffJson({ a: [1] }, { a: { 0: 1 } })).toEqual([{ op: 'replace', path: '/a', value: { 0: 1 } }]);
    expect(diffJson({ a: 1 }, null)).toEqual([{ op: 'replace', path: '', value: null }]);
    expect(diffJson(0, -0)).toEqual([]);
  });

  it('arrays shrink from the end, so every index is valid when applied', () => {
    const ops = diffJson([1, 2, 3, 4], [1, 9]);
    expect(ops).toEqual([
      { op: 'replace', path: '/1', value: 9 },
      { op: 'remove', path: '/3' },
      { op: 'remove', path: '/2' },
    ]);
    expect(applyPatch([1, 2, 3, 4], ops)).toEqual([1, 9]);
  });

  it('escapes "~" and "/" in keys (RFC 6901)', () => {
    const ops = diffJson({ 'a/b': 1, 'm~n': 1 }, { 'a/b': 2, 'm~n': 3 });
    expect(ops.map((o) => o.path)).toEqual(['/a~1b', '/m~0n']);
    expect(parsePointer('/a~1b/m~0n/~01')).toEqual(['a/b', 'm~n', '~1']);
    expect(escapePointerToken('~/')).toBe('~0~1');
    expect(applyPatch({ 'a/b': 1, 'm~n': 1 }, ops)).toEqual({ 'a/b': 2, 'm~n': 3 });
  });

  it('byte arrays compare by content and are replaced whole', () => {
    expect(diffJson({ b: new Uint8Array([1, 2]) }, { b: new Uint8Array([1, 2]) })).toEqual([]);
    expect(diffJson({ b: new Uint8Array([1, 2]) }, { b: new Uint8Array([1, 3]) })).toEqual([{ op: 'replace', path: '/b', value: new Uint8Array([1, 3]) }]);
  });

  it('applying the diff gives the target, for any two JSON values (and leaves the source unchanged)', () => {
    const json = fc.jsonValue({ maxDepth: 4 });
    fc.assert(
      fc.property(json, json, (a, b) => {
        const before = structuredClone(a);
        const ops = diffJson(a, b);
        expect(jsonEqual(applyPatch(a, ops), b)).toBe(true);
        expect(a).toEqual(before);
        if (jsonEqual(a, b)) expect(ops).toEqual([]);
      }),
      { numRuns: 500 },
    );
  });

  it('a small change deep in a large value is a small patch', () => {
    const big = { rows: Array.from({ length: 1000 }, (_, i) => ({ id: i, tags: ['a', 'b'] })) };
    const changed = structuredClone(big);
    changed.rows[500]!.tags[1] = 'c';
    expect(diffJson(big, changed)).toEqual([{ op: 'replace', path: '/rows/500/tags/1', value: 'c' }]);
  });
});

describe('applyPatch', () => {
  const doc = { foo: ['bar', 'baz'], obj: { a: 1 } };

  it('applies the RFC 6902 operations, including test, move, copy and "-" (the end of an array)', () => {
    const ops: JsonPatchOperation[] = [
      { op: 'test', path: '/foo/0', value: 'bar' },
      { op: 'add', path: '/foo/-', value: 'qux' },
      { op: 'add', path: '/foo/1', value: 'ins' },
      { op: 'copy', from: '/obj', path: '/copy' },
      { op: 'move', from: '/obj/a', path: '/moved' },
      { op: 'replace', path: '/copy/a', value: 2 },
    ];
    expect(applyPatch(doc, ops)).toEqual({ foo: ['bar', 'ins', 'baz', 'qux'], obj: {}, copy: { a: 2 }, moved: 1 });
    expect(doc).toEqual({ foo: ['bar', 'baz'], obj: { a: 1 } });
  });

  it('refuses what cannot be applied, naming the path', async () => {
    const fail = (ops: JsonPatchOperation[]): Promise<unknown> => Promise.resolve().then(() => applyPatch(doc, ops));
    await expectRejection(fail([{ op: 'remove', path: '/nope' }]), 'INPUT_INVALID', /\/nope does not exist/);
    await expectRejection(fail([{ op: 'replace', path: '/foo/2', value: 1 }]), 'INPUT_INVALID', /out of bounds/);
    await expectRejection(fail([{ op: 'test', path: '/obj/a', value: 2 }]), 'INPUT_INVALID', /test failed at \/obj\/a/);
    await expectRejection(fail([{ op: 'add', path: '/foo/x', value: 1 }]), 'INPUT_INVALID', /not an array index/);
    await expectRejection(fail([{ op: 'add', path: 'foo', value: 1 }]), 'INPUT_INVALID', /not a JSON Pointer/);
  });

  it('a "__proto__" key is data, never the prototype', () => {
    const target = JSON.parse('{"__proto__": {"polluted": true}}') as unknown;
    const out = applyPatch({}, diffJson({}, target)) as Record<string, unknown>;
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(Object.prototype.hasOwnProperty.call(out, '__proto__')).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('valueAt reads a pointer, undefined when absent', () => {
    expect(valueAt(doc, '/foo/1')).toBe('baz');
    expect(valueAt(doc, '')).toBe(doc);
    expect(valueAt(doc, '/obj/zz')).toBeUndefined();
    expect(valueAt(doc, '/foo/x')).toBeUndefined();
  });
});
