/**
 * Canonical bytes and content hashes for values (MISSION: Concepts / Value).
 *
 * - JSON-compatible values are serialized per RFC 8785 (JSON Canonicalization Scheme): object
 *   keys sorted by UTF-16 code units, numbers in ECMAScript shortest form, strings escaped as
 *   ECMAScript `JSON.stringify` does, no insignificant white space. The UTF-8 bytes of that text
 *   are hashed.
 * - A `Uint8Array` (including `Buffer`) as the whole value is hashed raw.
 * - Hashes are written `sha256:<64 lowercase hex digits>`.
 *
 * Refused, with the path of the offending part (`$.legs[3].delay: NaN cannot be hashed`):
 * NaN and ±Infinity, functions, symbols, `undefined` at the top level or inside an array,
 * strings with lone surrogates (not I-JSON), cycles, nesting deeper than {@link MAX_DEPTH},
 * and objects that are not plain (Date, Map, Set, class instances, nested typed arrays).
 * An object property whose value is `undefined` is omitted, as `JSON.stringify` does.
 *
 * BigInt policy: a BigInt within ±(2^53 − 1) is canonicalized as the JSON number with the same
 * value, so `42n` and `42` hash equal (they are the same JSON value; Parquet int64 columns arrive
 * as BigInt). A BigInt outside that range is refused: JSON numbers are IEEE doubles and cannot
 * hold it exactly; convert it to a string first.
 */
import { hash as nodeHash } from 'node:crypto';
import { UnhashableValueError } from '../errors.js';

/** A content hash: `sha256:` followed by 64 lowercase hex digits. */
export type ContentHash = `sha256:${string}`;

/** The JSON data model Provenant records. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Nesting deeper than this is refused (and is how cycles are detected without per-node cost). */
export const MAX_DEPTH = 512;

const HASH_PREFIX = 'sha256:';
const IDENT_RE = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** How a value is encoded into its canonical bytes. */
export type ValueEncoding = 'json' | 'bytes';

/** A value's canonical bytes and their hash. */
export interface EncodedValue {
  readonly hash: ContentHash;
  readonly bytes: Uint8Array;
  readonly encoding: ValueEncoding;
  /** For JSON values, the canonical text whose UTF-8 bytes are `bytes`. */
  readonly text?: string;
}

/** A JSON value's canonical text; its UTF-8 bytes are made only when asked for. */
class CanonicalJson implements EncodedValue {
  readonly hash: ContentHash;
  readonly text: string;
  #bytes: Uint8Array | undefined;
  constructor(text: string) {
    this.text = text;
    this.hash = sha256(text);
  }
  get encoding(): ValueEncoding {
    return 'json';
  }
  get bytes(): Uint8Array {
    return (this.#bytes ??= Buffer.from(this.text, 'utf8'));
  }
}

/** True for `Uint8Array` and `Buffer`, from this realm or another (step code runs in its own realm). */
export function isBytes(value: unknown): value is Uint8Array {
  return (
    typeof value === 'object' &&
    value !== null &&
    ArrayBuffer.isView(value) &&
    Object.prototype.toString.call(value) === '[object Uint8Array]'
  );
}

/**
 * The RFC 8785 canonical JSON text of a JSON-compatible value.
 * @throws {UnhashableValueError} naming the path of the first part that cannot be canonicalized.
 */
export function canonicalize(value: unknown): string {
  if (value === undefined) throw new UnhashableValueError('$', 'undefined cannot be hashed');
  return serialize(value, 0, value);
}

/** SHA-256 of raw bytes or a UTF-8 string, as `sha256:<hex>`. */
export function sha256(data: Uint8Array | string): ContentHash {
  return `${HASH_PREFIX}${nodeHash('sha256', data, 'hex')}` as ContentHash;
}

/**
 * SHA-256 of raw bytes or a UTF-8 string, as its 32 raw bytes, made from the digest's Latin-1
 * (`'binary'`) text: Node's `'buffer'` output gives each digest its own off-heap memory, about
 * three times slower (1.3 µs against 0.4 µs for a small input) and more work for the garbage collector.
 */
export function sha256Bytes(data: Uint8Array | string): Buffer {
  return Buffer.from(nodeHash('sha256', data, 'binary'), 'latin1');
}

/**
 * Canonical bytes and hash of a value: raw for a `Uint8Array`, RFC 8785 JSON otherwise.
 * @throws {UnhashableValueError} naming the path of the first part that cannot be canonicalized.
 */
export function encodeValue(value: unknown): EncodedValue {
  if (isBytes(value)) {
    return { hash: sha256(value), bytes: value, encoding: 'bytes' };
  }
  return new CanonicalJson(canonicalize(value));
}

/** The content hash of a value (see {@link encodeValue}). */
export function hashValue(value: unknown): ContentHash {
  if (isBytes(value)) return sha256(value);
  return sha256(canonicalize(value));
}

/** Turn stored canonical bytes back into the value they encode. */
export function decodeValue(bytes: Uint8Array, encoding: ValueEncoding): unknown {
  if (encoding === 'bytes') return bytes;
  return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) as unknown;
}

/** True when `s` is a well-formed content hash string. */
export function isContentHash(s: string): s is ContentHash {
  // A loop, not a RegExp: store batches check every hash of every execution with it.
  if (typeof s !== 'string' || s.length !== 71 || !s.startsWith(HASH_PREFIX)) return false;
  for (let i = 7; i < 71; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

/** The value of a lowercase hex digit, given its character code (the caller has validated it). */
export const hexDigit = (c: number): number => (c <= 57 ? c - 48 : c - 87);

/**
 * Write the 32 digest bytes of a content hash the caller has validated into `out` at `at`:
 * decoded from the string in place, without slicing it or calling into C++ per hash.
 */
export function writeDigest(hash: string, out: Uint8Array, at: number): void {
  for (let i = 0, c = 7; i < 32; i++, c += 2) out[at + i] = (hexDigit(hash.charCodeAt(c)) << 4) | hexDigit(hash.charCodeAt(c + 1));
}

/** The 32 raw digest bytes of a content hash (for compact storage). */
export function hashToBytes(hash: string): Buffer {
  if (!isContentHash(hash)) throw new TypeError(`not a content hash: ${hash}`);
  return Buffer.from(hash.slice(HASH_PREFIX.length), 'hex');
}

/** A content hash from its 32 raw digest bytes. */
export function hashFromBytes(bytes: Uint8Array): ContentHash {
  return `${HASH_PREFIX}${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}` as ContentHash;
}

function serialize(value: unknown, depth: number, root: unknown): string {
  switch (typeof value) {
    case 'string':
      if (!value.isWellFormed()) throw unhashable(root, value, 'a string with a lone surrogate cannot be hashed (not I-JSON)');
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw unhashable(root, value, `${String(value)} cannot be hashed`);
      // ECMAScript Number#toString is RFC 8785's number serialization; -0 becomes "0".
      return Object.is(value, -0) ? '0' : String(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      if (value > MAX_SAFE || value < -MAX_SAFE) {
        throw unhashable(root, value, `BigInt ${value} is outside the exact JSON number range`, 'Convert it to a string before recording it.');
      }
      return value.toString();
    case 'object':
      if (value === null) return 'null';
      if (depth >= MAX_DEPTH) throw unhashable(root, value, depthReason(root));
      if (Array.isArray(value)) return serializeArray(value, depth, root);
      return serializeObject(value, depth, root);
    case 'undefined':
      throw unhashable(root, value, 'undefined cannot be hashed');
    case 'function':
      throw unhashable(root, value, 'a function cannot be hashed');
    case 'symbol':
      throw unhashable(root, value, 'a symbol cannot be hashed');
  }
}

function serializeArray(value: readonly unknown[], depth: number, root: unknown): string {
  let out = '[';
  for (let i = 0; i < value.length; i++) {
    if (i > 0) out += ',';
    out += serialize(value[i], depth + 1, root);
  }
  return out + ']';
}

function serializeObject(value: object, depth: number, root: unknown): string {
  if (!isPlain(value)) {
    if (isBytes(value)) {
      throw unhashable(root, value, 'a Uint8Array inside a JSON value cannot be hashed', 'Byte arrays are hashed raw only as a whole value; encode nested bytes as base64 strings.');
    }
    throw unhashable(root, value, `${describeObject(value)} cannot be hashed`, hintFor(value));
  }
  const record = value as Record<string, unknown>;
  const keys = sortedKeys(Object.keys(record));
  let out = '{';
  let first = true;
  for (const key of keys) {
    const v = record[key];
    if (v === undefined) continue;
    if (!first) out += ',';
    first = false;
    out += quotedKey(key, root, value) + serialize(v, depth + 1, root);
  }
  return out + '}';
}

function isSorted(keys: readonly string[]): boolean {
  for (let i = 1; i < keys.length; i++) if ((keys[i - 1] as string) > (keys[i] as string)) return false;
  return true;
}

/** A key order seen before: the keys as `Object.keys` gave them, and sorted. */
interface KeyOrder {
  readonly keys: readonly string[];
  readonly sorted: readonly string[];
}

// Records of one kind have the same keys in the same order: their sorted order is remembered (by
// first key, a few orders each) instead of sorting again — a sort allocates, and the collector's
// work is a large part of capture. Keys that are data (ids, names) fill a slot list and are then
// simply sorted each time.
const keyOrders = new Map<string, KeyOrder[]>();
const KEY_ORDERS_PER_FIRST_KEY = 8;
const KEY_ORDER_MAX_KEYS = 64;

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** `keys` in RFC 8785 order (UTF-16 code units): `keys` itself when already sorted. */
function sortedKeys(keys: string[]): readonly string[] {
  if (isSorted(keys)) return keys;
  if (keys.length > KEY_ORDER_MAX_KEYS) return keys.sort();
  const first = keys[0] as string;
  let orders = keyOrders.get(first);
  if (orders !== undefined) {
    for (const o of orders) if (sameKeys(o.keys, keys)) return o.sorted;
  }
  const sorted = [...keys].sort();
  if (orders === undefined) {
    if (keyOrders.size >= 4096) keyOrders.clear();
    keyOrders.set(first, (orders = []));
  }
  if (orders.length < KEY_ORDERS_PER_FIRST_KEY) orders.push({ keys, sorted });
  return sorted;
}

// Keys repeat across records: keep their quoted form (with the colon) instead of re-escaping.
const quotedKeys = new Map<string, string>();

function quotedKey(key: string, root: unknown, owner: object): string {
  let quoted = quotedKeys.get(key);
  if (quoted === undefined) {
    if (!key.isWellFormed()) throw unhashable(root, owner, 'an object key with a lone surrogate cannot be hashed (not I-JSON)');
    quoted = `${JSON.stringify(key)}:`;
    if (quotedKeys.size < 10_000) quotedKeys.set(key, quoted);
  }
  return quoted;
}

function describeObject(value: object): string {
  const tag = Object.prototype.toString.call(value).slice(8, -1);
  const ctor = (value as { constructor?: { name?: unknown } }).constructor?.name;
  if (tag !== 'Object') return `a ${tag}`;
  return typeof ctor === 'string' && ctor !== '' ? `an instance of class ${ctor}` : 'a non-plain object';
}

function hintFor(value: object): string | undefined {
  const tag = Object.prototype.toString.call(value).slice(8, -1);
  if (tag === 'Date') return 'Convert the Date to an ISO 8601 string (date.toISOString()) before recording it.';
  if (tag === 'Map') return 'Convert the Map to a plain object (Object.fromEntries(map)) before recording it.';
  if (tag === 'Set') return 'Convert the Set to an array ([...set]) before recording it.';
  return undefined;
}

function depthReason(root: unknown): string {
  return findCycle(root) ? 'a cycle cannot be hashed (the value refers back to itself here)' : `nesting deeper than ${MAX_DEPTH} levels cannot be hashed`;
}

/**
 * Errors are the rare path: the serializer does not track where it is. When it refuses a part,
 * this finds that part's path by searching the root for it (first match in key order).
 */
function unhashable(root: unknown, part: unknown, reason: string, hint?: string): UnhashableValueError {
  return new UnhashableValueError(pathTo(root, part, reason) ?? '$', reason, hint);
}

function pathTo(root: unknown, part: unknown, reason: string): string | undefined {
  const cyclic = reason.startsWith('a cycle');
  const onPath = new Set<unknown>();
  const visit = (v: unknown, path: string, depth: number): string | undefined => {
    if (cyclic ? onPath.has(v) : matches(v, part)) return path;
    if (typeof v !== 'object' || v === null || isBytes(v) && v !== root) return undefined;
    if (!cyclic && depth >= MAX_DEPTH) return path;
    onPath.add(v);
    try {
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) {
          const found = visit(v[i], `${path}[${i}]`, depth + 1);
          if (found !== undefined) return found;
        }
      } else if (isPlain(v)) {
        const record = v as Record<string, unknown>;
        for (const key of Object.keys(record).sort()) {
          if (record[key] === undefined) continue;
          const found = visit(record[key], path + formatKey(key), depth + 1);
          if (found !== undefined) return found;
        }
      }
    } finally {
      onPath.delete(v);
    }
    return undefined;
  };
  return visit(root, '$', 0);
}

function matches(v: unknown, part: unknown): boolean {
  if (typeof part === 'number' && Number.isNaN(part)) return typeof v === 'number' && Number.isNaN(v);
  return v === part;
}

/** A plain object: null prototype, or some realm's Object.prototype (whose own prototype is null). */
function isPlain(v: object): boolean {
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === null || proto === Object.prototype || Object.getPrototypeOf(proto) === null;
}

function findCycle(root: unknown): boolean {
  const onPath = new Set<unknown>();
  const visit = (v: unknown): boolean => {
    if (typeof v !== 'object' || v === null) return false;
    if (onPath.has(v)) return true;
    onPath.add(v);
    const children = Array.isArray(v) ? v : isPlain(v) ? Object.values(v as Record<string, unknown>) : [];
    for (const child of children) if (visit(child)) return true;
    onPath.delete(v);
    return false;
  };
  return visit(root);
}

/** `$.name` for identifier keys, `$["odd key"]` otherwise. */
export function formatKey(key: string): string {
  return IDENT_RE.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}
