/**
 * One-dimensional arrays in PostgreSQL's binary format (what `array_recv` reads), for the columns
 * of a batch: node-postgres sends a `Buffer` parameter in binary format, so a statement's
 * `$n::bigint[]` receives the numbers as they are, without each being written as text on this side
 * and parsed on the server's. A segment of 37,500 executions has 17 such columns; as text they
 * were about 13 MB of strings made and parsed per commit.
 *
 * Layout: ndim (int32, 1), has-nulls flag (int32), element type oid, then the length (int32) and
 * lower bound (int32, 1) of the one dimension, then per element its byte length (int32; -1 for
 * NULL) and its bytes, all big-endian.
 */

import { writeUuid } from '../../ids.js';

/** Element types (their `pg_type` oids). */
const INT2_OID = 21;
const INT4_OID = 23;
const INT8_OID = 20;
const TEXT_OID = 25;
const UUID_OID = 2950;

const HEADER_BYTES = 20;

function header(n: number, elementBytes: number, oid: number, hasNulls: boolean): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_BYTES + n * (4 + elementBytes));
  buf.writeInt32BE(1, 0);
  buf.writeInt32BE(hasNulls ? 1 : 0, 4);
  buf.writeUInt32BE(oid, 8);
  buf.writeInt32BE(n, 12);
  buf.writeInt32BE(1, 16);
  return buf;
}

function hasNull(values: readonly (number | string | null | undefined)[]): boolean {
  for (const v of values) if (v === null || v === undefined) return true;
  return false;
}

function checkInteger(v: number, min: number, max: number, what: string): void {
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`${what} element ${String(v)} is out of range`);
}

/** A `bigint[]` (int8) of safe integers; null or undefined elements are NULL. */
export function int8Array(values: readonly (number | null | undefined)[]): Buffer {
  const buf = header(values.length, 8, INT8_OID, hasNull(values));
  let p = HEADER_BYTES;
  let end = buf.length;
  for (const v of values) {
    if (v === null || v === undefined) {
      buf.writeInt32BE(-1, p);
      p += 4;
      end -= 8;
      continue;
    }
    checkInteger(v, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 'int8');
    buf.writeInt32BE(8, p);
    const high = Math.floor(v / 4294967296);
    buf.writeInt32BE(high, p + 4);
    buf.writeUInt32BE(v - high * 4294967296, p + 8);
    p += 12;
  }
  return end === buf.length ? buf : buf.subarray(0, end);
}

/** An `int[]` (int4). */
export function int4Array(values: readonly number[]): Buffer {
  return smallIntArray(values, 4, INT4_OID, 'int4');
}

/** A `smallint[]` (int2). */
export function int2Array(values: readonly number[]): Buffer {
  return smallIntArray(values, 2, INT2_OID, 'int2');
}

function smallIntArray(values: readonly number[], size: 2 | 4, oid: number, what: string): Buffer {
  const limit = size === 4 ? 2147483648 : 32768;
  const buf = header(values.length, size, oid, false);
  let p = HEADER_BYTES;
  for (const v of values) {
    checkInteger(v, -limit, limit - 1, what);
    buf.writeInt32BE(size, p);
    if (size === 4) buf.writeInt32BE(v, p + 4);
    else buf.writeInt16BE(v, p + 4);
    p += 4 + size;
  }
  return buf;
}

/** A `uuid[]` of canonical lowercase UUID strings (validated by the caller). */
export function uuidArray(ids: readonly string[]): Buffer {
  const buf = header(ids.length, 16, UUID_OID, false);
  let p = HEADER_BYTES;
  for (const id of ids) {
    buf.writeInt32BE(16, p);
    writeUuid(id, buf, p + 4);
    p += 20;
  }
  return buf;
}

/** A `text[]`; null elements are NULL. Repeated strings (the same stream id on every row) are encoded once. */
export function textArray(values: readonly (string | null)[]): Buffer {
  const encoded = new Map<string, Buffer>();
  let bytes = HEADER_BYTES;
  const parts: (Buffer | null)[] = new Array<Buffer | null>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as string | null;
    if (v === null) {
      parts[i] = null;
      bytes += 4;
      continue;
    }
    let b = encoded.get(v);
    if (b === undefined) encoded.set(v, (b = Buffer.from(v, 'utf8')));
    parts[i] = b;
    bytes += 4 + b.length;
  }
  const buf = header(0, 0, TEXT_OID, parts.includes(null));
  const out = Buffer.allocUnsafe(bytes);
  buf.copy(out, 0, 0, HEADER_BYTES);
  out.writeInt32BE(values.length, 12);
  let p = HEADER_BYTES;
  for (const b of parts) {
    if (b === null) {
      out.writeInt32BE(-1, p);
      p += 4;
      continue;
    }
    out.writeInt32BE(b.length, p);
    b.copy(out, p + 4);
    p += 4 + b.length;
  }
  return out;
}
