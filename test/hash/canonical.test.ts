/**
 * Canonical bytes and hashes (RFC 8785 JSON Canonicalization Scheme): the identity of every value
 * Provenant records. If two equal values ever hashed differently — across key orders, realms or
 * processes — recorded provenance could not be matched up; if a value that cannot be represented
 * exactly were hashed anyway, two different values could share a record.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify, isDeepStrictEqual } from 'node:util';
import * as vm from 'node:vm';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  MAX_DEPTH,
  ProvenantError,
  UnhashableValueError,
  canonicalize,
  decodeValue,
  encodeValue,
  hashValue,
  isContentHash,
  sha256,
} from '../../src/index.js';
import { ensureDist } from '../helpers/dist.js';
import { DIST_INDEX } from '../helpers/paths.js';
import { makeTempDir } from '../helpers/temp.js';

const execFileAsync = promisify(execFile);

/** The IEEE 754 double with the given 64-bit pattern (as RFC 8785 Appendix B lists them). */
function double(hex: string): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt(`0x${hex}`));
  return view.getFloat64(0);
}

function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The error hashValue throws for `value`; fails the test when it does not throw one. */
function refusal(value: unknown): UnhashableValueError {
  try {
    hashValue(value);
  } catch (err) {
    expect(err).toBeInstanceOf(UnhashableValueError);
    return err as UnhashableValueError;
  }
  throw new Error(`hashValue accepted ${String(value)}`);
}

/** A JSON value as it comes back from JSON text (-0 becomes 0). */
function viaJson(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value)) as unknown;
}

/** A deep copy of a JSON value with every object's keys inserted in a shuffled order. */
function shuffleKeys(value: unknown, seed: number): unknown {
  let state = seed >>> 0 || 1;
  const next = (): number => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x1_0000_0000;
  };
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (typeof v !== 'object' || v === null) return v;
    const entries = Object.entries(v as Record<string, unknown>);
    for (let i = entries.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [entries[i], entries[j]] = [entries[j] as [string, unknown], entries[i] as [string, unknown]];
    }
    // fromEntries defines own properties, so a "__proto__" key stays a key.
    return Object.fromEntries(entries.map(([k, x]) => [k, walk(x)]));
  };
  return walk(value);
}

describe('RFC 8785 number serialization (Appendix B)', () => {
  const cases: [hex: string, expected: string][] = [
    ['0000000000000000', '0'],
    ['8000000000000000', '0'],
    ['0000000000000001', '5e-324'],
    ['8000000000000001', '-5e-324'],
    ['7fefffffffffffff', '1.7976931348623157e+308'],
    ['ffefffffffffffff', '-1.7976931348623157e+308'],
    ['4340000000000000', '9007199254740992'],
    ['c340000000000000', '-9007199254740992'],
    ['4430000000000000', '295147905179352830000'],
    ['44b52d02c7e14af5', '9.999999999999997e+22'],
    ['44b52d02c7e14af6', '1e+23'],
    ['44b52d02c7e14af7', '1.0000000000000001e+23'],
    ['444b1ae4d6e2ef4e', '999999999999999700000'],
    ['444b1ae4d6e2ef4f', '999999999999999900000'],
    ['444b1ae4d6e2ef50', '1e+21'],
    ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
    ['3eb0c6f7a0b5ed8d', '0.000001'],
    ['41b3de4355555553', '333333333.3333332'],
    ['41b3de4355555554', '333333333.33333325'],
    ['41b3de4355555555', '333333333.3333333'],
    ['41b3de4355555556', '333333333.3333334'],
    ['41b3de4355555557', '333333333.33333343'],
    ['becbf647612f3696', '-0.0000033333333333333333'],
    ['43143ff3c1cb0959', '1424953923781206.2'],
  ];

  it.each(cases)('IEEE %s serializes as %s', (hex, expected) => {
    expect(canonicalize(double(hex))).toBe(expected);
    expect(canonicalize([double(hex)])).toBe(`[${expected}]`);
  });

  it('serializes the literal examples the same way', () => {
    expect(canonicalize(0)).toBe('0');
    expect(canonicalize(-0)).toBe('0');
    expect(canonicalize(1e21)).toBe('1e+21');
    expect(canonicalize(1e-7)).toBe('1e-7');
    expect(canonicalize(Number('333333333.33333329'))).toBe('333333333.3333333');
    expect(canonicalize(5e-324)).toBe('5e-324');
    expect(canonicalize(-5e-324)).toBe('-5e-324');
    expect(canonicalize(1.7976931348623157e308)).toBe('1.7976931348623157e+308');
    expect(canonicalize(9007199254740992)).toBe('9007199254740992');
    expect(canonicalize(295147905179352830000)).toBe('295147905179352830000');
    expect(canonicalize(0.000001)).toBe('0.000001');
    expect(canonicalize(1e23)).toBe('1e+23');
  });

  it('hashes -0 and 0 equal, and 0 and 5e-324 different', () => {
    expect(hashValue({ x: -0 })).toBe(hashValue({ x: 0 }));
    expect(hashValue(5e-324)).not.toBe(hashValue(0));
  });

  it.each([
    ['7fffffffffffffff', 'NaN'],
    ['7ff0000000000000', 'Infinity'],
    ['fff0000000000000', '-Infinity'],
  ])('refuses IEEE %s (%s)', (hex, name) => {
    const err = refusal(double(hex));
    expect(err.path).toBe('$');
    expect(err.message).toBe(`$: ${name} cannot be hashed`);
  });
});

describe('RFC 8785 structure', () => {
  it('sorts object keys by UTF-16 code units (section 3.2.3 example)', () => {
    const value = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    };
    expect(canonicalize(value)).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis",' +
        '"\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  it('sorts integer-like keys as strings, not as numbers', () => {
    expect(canonicalize({ 2: 'b', 10: 'a', b: 1, a: 2, '': 0 })).toBe('{"":0,"10":"a","2":"b","a":2,"b":1}');
  });

  it('produces the canonical example of section 3.2.2', () => {
    const input = String.raw`{
      "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    }`;
    const expected = String.raw`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`;
    const text = canonicalize(JSON.parse(input));
    expect(text).toBe(expected);
    // The hash is SHA-256 over the UTF-8 bytes of exactly that text.
    expect(hashValue(JSON.parse(input))).toBe(`sha256:${sha256Hex(Buffer.from(expected, 'utf8'))}`);
    expect(Buffer.from(encodeValue(JSON.parse(input)).bytes).toString('utf8')).toBe(expected);
  });

  it('writes strings as JSON.stringify escapes them and leaves other characters as UTF-8', () => {
    expect(canonicalize('a"b\\c\n\u0001\u001f\u007f\u2028é😀')).toBe('"a\\"b\\\\c\\n\\u0001\\u001f\u007f\u2028é😀"');
    expect(canonicalize({ a: [true, false, null, 'x'], b: {} })).toBe('{"a":[true,false,null,"x"],"b":{}}');
  });

  it('writes hashes as sha256: and 64 lowercase hex digits', () => {
    const h = hashValue({ any: 'value' });
    expect(h).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(isContentHash(h)).toBe(true);
    expect(isContentHash(h.toUpperCase())).toBe(false);
    expect(isContentHash(h.slice(0, -1))).toBe(false);
  });
});

describe('bytes', () => {
  it('hashes a Uint8Array as its raw bytes', () => {
    const bytes = new Uint8Array([1, 2, 3]);
    expect(hashValue(bytes)).toBe(`sha256:${sha256Hex(bytes)}`);
    expect(sha256(bytes)).toBe(`sha256:${sha256Hex(bytes)}`);
    const encoded = encodeValue(bytes);
    expect(encoded.encoding).toBe('bytes');
    expect(encoded.hash).toBe(hashValue(bytes));
    expect(decodeValue(encoded.bytes, 'bytes')).toEqual(bytes);
  });

  it('hashes a Buffer and a Uint8Array view of the same bytes equal, and unlike the JSON array', () => {
    const backing = new Uint8Array([9, 9, 1, 2, 3, 9]);
    const view = backing.subarray(2, 5);
    expect(hashValue(view)).toBe(`sha256:${sha256Hex(new Uint8Array([1, 2, 3]))}`);
    expect(hashValue(Buffer.from([1, 2, 3]))).toBe(hashValue(view));
    expect(hashValue([1, 2, 3])).not.toBe(hashValue(view));
  });

  it('hashes the empty byte string as SHA-256 of nothing', () => {
    expect(hashValue(new Uint8Array(0))).toBe(`sha256:${sha256Hex(new Uint8Array(0))}`);
  });
});

describe('refusals name the path of the offending part', () => {
  it('NaN deep in a value', () => {
    const value = { legs: [{}, {}, {}, { delay: NaN }] };
    const err = refusal(value);
    expect(err.message).toBe('$.legs[3].delay: NaN cannot be hashed');
    expect(err.path).toBe('$.legs[3].delay');
    expect(err).toBeInstanceOf(ProvenantError);
    expect(err.code).toBe('UNHASHABLE_VALUE');
    expect(err.context).toEqual({ path: '$.legs[3].delay' });
    expect(() => canonicalize(value)).toThrow('$.legs[3].delay: NaN cannot be hashed');
    expect(() => encodeValue(value)).toThrow(UnhashableValueError);
  });

  it('the first offending part in canonical (sorted-key) order', () => {
    expect(refusal({ z: NaN, a: { b: [1, Infinity] } }).path).toBe('$.a.b[1]');
  });

  it('Infinity and -Infinity', () => {
    expect(refusal({ t: { max: Infinity } }).message).toBe('$.t.max: Infinity cannot be hashed');
    expect(refusal([0, -Infinity]).message).toBe('$[1]: -Infinity cannot be hashed');
  });

  it('a function', () => {
    const err = refusal({ fn: () => 1 });
    expect(err.path).toBe('$.fn');
    expect(err.message).toBe('$.fn: a function cannot be hashed');
  });

  it('a symbol', () => {
    const err = refusal({ list: ['a', Symbol('s')] });
    expect(err.path).toBe('$.list[1]');
    expect(err.message).toMatch(/symbol/);
  });

  it('undefined at the top level and inside an array', () => {
    expect(refusal(undefined).message).toBe('$: undefined cannot be hashed');
    expect(() => canonicalize(undefined)).toThrow(UnhashableValueError);
    const err = refusal({ a: [1, undefined] });
    expect(err.path).toBe('$.a[1]');
    expect(err.message).toBe('$.a[1]: undefined cannot be hashed');
    // A hole in a sparse array reads as undefined.
    // eslint-disable-next-line no-sparse-arrays
    expect(refusal([1, , 3]).path).toBe('$[1]');
  });

  it('omits an object property whose value is undefined, as JSON.stringify does', () => {
    expect(hashValue({ a: 1, b: undefined })).toBe(hashValue({ a: 1 }));
    expect(canonicalize({ b: undefined, a: 1, c: { d: undefined } })).toBe('{"a":1,"c":{}}');
  });

  it('a Date, with a hint to use toISOString', () => {
    const err = refusal({ when: new Date(0) });
    expect(err.path).toBe('$.when');
    expect(err.message).toBe('$.when: a Date cannot be hashed');
    expect(err.hint).toMatch(/toISOString/);
  });

  it('a Map and a Set, with hints', () => {
    const map = refusal({ m: new Map([['k', 1]]) });
    expect(map.path).toBe('$.m');
    expect(map.message).toMatch(/Map/);
    expect(map.hint).toMatch(/Object\.fromEntries/);
    const set = refusal([new Set([1])]);
    expect(set.path).toBe('$[0]');
    expect(set.hint).toMatch(/\[\.\.\.set\]/);
  });

  it('a class instance, naming the class', () => {
    class Point {
      constructor(
        readonly x: number,
        readonly y: number,
      ) {}
    }
    const err = refusal({ at: new Point(1, 2) });
    expect(err.path).toBe('$.at');
    expect(err.message).toBe('$.at: an instance of class Point cannot be hashed');
  });

  it('a Uint8Array nested inside a JSON value', () => {
    const err = refusal({ payload: { bytes: new Uint8Array([1]) } });
    expect(err.path).toBe('$.payload.bytes');
    expect(err.message).toMatch(/Uint8Array/);
    expect(err.hint).toMatch(/base64/);
  });

  it('a cycle, naming where the value loops back', () => {
    const root: { name: string; child: { items: unknown[] } } = { name: 'r', child: { items: [] } };
    root.child.items.push(1, root);
    const err = refusal(root);
    expect(err.path).toBe('$.child.items[1]');
    expect(err.message).toMatch(/cycle/);
    const self: Record<string, unknown> = {};
    self.me = self;
    expect(refusal(self).path).toBe('$.me');
  });

  it('the same object twice (not a cycle) is fine', () => {
    const shared = { x: 1 };
    expect(canonicalize({ a: shared, b: [shared, shared] })).toBe('{"a":{"x":1},"b":[{"x":1},{"x":1}]}');
  });

  it(`nesting deeper than MAX_DEPTH (${MAX_DEPTH})`, () => {
    const nest = (levels: number): unknown[] => {
      let v: unknown[] = [];
      for (let i = 1; i < levels; i++) v = [v];
      return v;
    };
    expect(canonicalize(nest(MAX_DEPTH))).toBe('['.repeat(MAX_DEPTH) + ']'.repeat(MAX_DEPTH));
    const err = refusal(nest(MAX_DEPTH + 1));
    expect(err.message).toMatch(/nesting deeper than/);
    expect(err.path).toBe('$' + '[0]'.repeat(MAX_DEPTH));
  });

  it('a string with a lone surrogate, in a value or a key', () => {
    const err = refusal({ name: 'ab\ud800' });
    expect(err.path).toBe('$.name');
    expect(err.message).toMatch(/lone surrogate/);
    expect(refusal('\udc00').path).toBe('$');
    expect(refusal({ inner: { ['k\ud800']: 1 } }).message).toMatch(/key with a lone surrogate/);
    // A well-formed surrogate pair is fine.
    expect(canonicalize('\ud83d\ude00')).toBe('"😀"');
  });

  it('BigInt: equal to the number within ±(2^53 − 1), refused beyond', () => {
    expect(hashValue({ n: 42n })).toBe(hashValue({ n: 42 }));
    expect(canonicalize([2n ** 53n - 1n, -(2n ** 53n - 1n)])).toBe('[9007199254740991,-9007199254740991]');
    const err = refusal({ id: { n: 2n ** 60n } });
    expect(err.path).toBe('$.id.n');
    expect(err.message).toMatch(/BigInt 1152921504606846976/);
    expect(err.hint).toMatch(/string/);
    expect(refusal([2n ** 53n]).path).toBe('$[0]');
    expect(refusal(-(2n ** 53n)).path).toBe('$');
  });

  it('uses bracket form for keys that are not identifiers', () => {
    expect(refusal({ 'a b': NaN }).path).toBe('$["a b"]');
    expect(refusal({ 'a b': { ok: [NaN] } }).path).toBe('$["a b"].ok[0]');
    expect(refusal({ '1st': NaN }).path).toBe('$["1st"]');
    expect(refusal({ 'q"': NaN }).path).toBe('$["q\\""]');
    expect(refusal({ $ok_1: NaN }).path).toBe('$.$ok_1');
  });
});

describe('values from another realm', () => {
  it('hash the same as local ones', () => {
    const foreign = vm.runInNewContext('({a:[1,{b:2}]})') as unknown;
    expect(foreign instanceof Object).toBe(false);
    expect(hashValue(foreign)).toBe(hashValue({ a: [1, { b: 2 }] }));
    expect(canonicalize(vm.runInNewContext('Object.create(null, { k: { value: "v", enumerable: true } })'))).toBe('{"k":"v"}');
  });

  it('foreign byte arrays hash raw; foreign Dates are refused', () => {
    expect(hashValue(vm.runInNewContext('new Uint8Array([1,2,3])'))).toBe(hashValue(new Uint8Array([1, 2, 3])));
    expect(refusal(vm.runInNewContext('({ at: new Date(0) })')).path).toBe('$.at');
  });
});

describe('properties', () => {
  it('key order never matters', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.integer(), (value, seed) => {
        const shuffled = shuffleKeys(value, seed);
        expect(canonicalize(shuffled)).toBe(canonicalize(value));
        expect(hashValue(shuffled)).toBe(hashValue(value));
      }),
      { numRuns: 300 },
    );
  });

  it('key order never matters for objects with many keys', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 2 }), { minKeys: 2, maxKeys: 30 }), fc.integer(), (value, seed) => {
        expect(hashValue(shuffleKeys(value, seed))).toBe(hashValue(value));
      }),
    );
  });

  it('the canonical text is JSON that parses back to the value', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = canonicalize(value);
        expect(JSON.parse(text)).toEqual(viaJson(value));
        // Canonicalizing is idempotent.
        expect(canonicalize(JSON.parse(text))).toBe(text);
        expect(decodeValue(encodeValue(value).bytes, 'json')).toEqual(viaJson(value));
      }),
      { numRuns: 300 },
    );
  });

  it('different values hash different', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.jsonValue(), (a, b) => {
        fc.pre(!isDeepStrictEqual(viaJson(a), viaJson(b)));
        expect(hashValue(a)).not.toBe(hashValue(b));
      }),
      { numRuns: 300 },
    );
  });

  it('near-identical values hash different', () => {
    const pairs: [unknown, unknown][] = [
      [1, '1'],
      [null, 'null'],
      [[], {}],
      [0, false],
      ['', []],
      [1, 1.0000000000000002],
      ['a', 'a\u0000'],
      ['é', 'e\u0301'],
      [{ a: 1 }, { a: 1, b: null }],
      [[1, 2], [2, 1]],
      [{ a: [1] }, { a: 1 }],
      [new Uint8Array([1]), new Uint8Array([1, 0])],
    ];
    for (const [a, b] of pairs) expect(hashValue(a)).not.toBe(hashValue(b));
  });

  it('a hash names bytes: raw bytes equal to a value\'s canonical text share its hash, the encoding tells them apart', () => {
    const text = encodeValue({ a: 'x' });
    const raw = encodeValue(new Uint8Array(Buffer.from('{"a":"x"}')));
    expect(raw.hash).toBe(text.hash);
    expect([raw.encoding, text.encoding]).toEqual(['bytes', 'json']);
  });

  it('equal values hash equal in another process', async () => {
    await ensureDist();
    const sample = fc.sample(fc.jsonValue(), { seed: 8785, numRuns: 200 });
    const dir = makeTempDir();
    const data = join(dir, 'values.json');
    const script = join(dir, 'hash.mjs');
    writeFileSync(data, JSON.stringify(sample));
    writeFileSync(
      script,
      `import { readFileSync } from 'node:fs';
const { hashValue } = await import(process.argv[2]);
const values = JSON.parse(readFileSync(process.argv[3], 'utf8'));
process.stdout.write(JSON.stringify(values.map((v) => hashValue(v))));
`,
    );
    const { stdout } = await execFileAsync(process.execPath, [script, pathToFileURL(DIST_INDEX).href, data]);
    const theirs = JSON.parse(stdout) as string[];
    expect(theirs).toHaveLength(200);
    expect(theirs).toEqual(sample.map((v) => hashValue(v)));
    // The sample is not degenerate: it holds many distinct values.
    expect(new Set(theirs).size).toBeGreaterThan(100);
  });
});
