/**
 * The batch columns travel to PostgreSQL as binary arrays (array_recv's format). Each encoder is
 * checked against the real server: what it sends comes back element for element, NULLs and
 * extremes included, and a value the type cannot hold is refused here rather than sent.
 */
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { int2Array, int4Array, int8Array, textArray, uuidArray } from '../../src/store/postgres/binary-arrays.js';
import { newId } from '../../src/ids.js';
import { POSTGRES, describeWithService, postgresAvailable } from '../helpers/services.js';

const available = await postgresAvailable();

describeWithService(POSTGRES, available, 'binary arrays against PostgreSQL', () => {
  let client: pg.Client;
  beforeAll(async () => {
    client = new pg.Client({ connectionString: POSTGRES.url });
    await client.connect();
  });
  afterAll(async () => {
    await client.end();
  });

  /** The elements PostgreSQL received, as its text. */
  const roundTrip = async (type: string, param: Buffer): Promise<(string | null)[]> =>
    (await client.query<{ v: string | null }>(`SELECT v::text FROM unnest($1::${type}) WITH ORDINALITY AS t(v, n) ORDER BY n`, [param])).rows.map((r) => r.v);

  it('bigint[]: safe integers of either sign, NULLs, and an empty array', async () => {
    const values = [0, 1, -1, 4294967295, 4294967296, -4294967297, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 1_700_000_000_123_456, null, 7];
    expect(await roundTrip('bigint[]', int8Array(values))).toEqual(values.map((v) => (v === null ? null : String(v))));
    expect(await roundTrip('bigint[]', int8Array([]))).toEqual([]);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.option(fc.maxSafeInteger(), { nil: null }), { maxLength: 20 }), async (xs) => {
        expect(await roundTrip('bigint[]', int8Array(xs))).toEqual(xs.map((v) => (v === null ? null : String(v))));
      }),
      { numRuns: 50 },
    );
  });

  it('int[] and smallint[] at their limits; out of range or fractional values are refused', async () => {
    expect(await roundTrip('int[]', int4Array([0, -1, 2147483647, -2147483648]))).toEqual(['0', '-1', '2147483647', '-2147483648']);
    expect(await roundTrip('smallint[]', int2Array([0, 1, -32768, 32767]))).toEqual(['0', '1', '-32768', '32767']);
    expect(() => int4Array([2147483648])).toThrow(RangeError);
    expect(() => int2Array([1.5])).toThrow(RangeError);
    expect(() => int8Array([2 ** 53])).toThrow(RangeError);
  });

  it('uuid[] and text[]: ids as written, any UTF-8, repeated strings and NULLs', async () => {
    const ids = [newId(), newId(), '00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff'];
    expect(await roundTrip('uuid[]', uuidArray(ids))).toEqual(ids);
    const texts = ['stream-1', 'stream-1', null, '', 'naïve ✓ 😀', 'a"b\\c,{}', 'stream-1'];
    expect(await roundTrip('text[]', textArray(texts))).toEqual(texts);
    expect(await roundTrip('text[]', textArray([]))).toEqual([]);
  });
});
