/**
 * A batch of executions and values packed into one binary buffer, so that it can be handed to the
 * writer thread by transfer (no copy, no structured clone of thousands of small objects).
 *
 * The capture thread copies: hashes and ids go in as their text (Latin-1 bytes). The writer thread
 * decodes and validates them, computes each execution's record hash from those same bytes
 * ({@link RecordHasher}), and inserts. That splits the per-execution work between the two cores:
 * the record hash, built as a JavaScript string on the capture thread, cost it a quarter of its
 * time (5.5 of 21 µs per execution); from the packed bytes it costs the writer much less.
 *
 * Layout (little endian). Strings that repeat (run ids, step keys, contexts, stream ids) go in a
 * small dictionary sent beside it; three buffers hold the sections (their counts beside them):
 *   values:      hash(71) u8 location u32 size [bytes(size) if inline]
 *   executions:  id(36) u16 run u16 step u32 nInputs hash(71)·n u8 hasOutput [hash] hash(params)
 *                u16 context f64 startedUs f64 endedUs u8 status u8 hasError [hash]
 *                u8 hasNondeterminism [hash]
 *                u8 anyBytes [u8·(1+n): output, inputs; 1 = raw bytes] i32 stream
 *                f64 offset (NaN = none)
 *   deadLetters: u32 executionIndex u16 reasonIndex
 */
import { ProvenantError } from '../../errors.js';
import { RECORD_FORMAT, RecordText } from '../../hash/record-hash.js';
import { sha256Bytes, type ValueEncoding } from '../../hash/canonical.js';
import type { AddValueOptions } from '../store.js';
import type { CheckpointTransition, ExecutionBatch, ExecutionContext, ExecutionWrite, ValueWrite } from '../records.js';

/** The dictionary of strings a packed batch refers to by index. */
export interface PackedDictionary {
  readonly runs: string[];
  /** `[stepId, versionHash]` pairs. */
  readonly steps: [string, string][];
  /** `[contextHash, canonical context JSON]` pairs. */
  readonly contexts: [string, string][];
  readonly streams: string[];
  readonly reasons: string[];
}

/**
 * A packed batch: the dictionary plus the three sections, each in its own buffer (transferred to
 * the writer thread without a copy) with its item count and byte length.
 */
export interface PackedBatch {
  readonly dictionary: PackedDictionary;
  /** A checkpoint ended and/or opened in the same transaction as the batch. */
  readonly checkpoint?: CheckpointTransition;
  readonly sections: readonly [values: PackedSection, executions: PackedSection, deadLetters: PackedSection];
}

/** One section of a packed batch. */
export interface PackedSection {
  readonly buffer: ArrayBuffer;
  readonly length: number;
  readonly count: number;
}

/** Byte sizes to start a batch's buffers at (the store passes the last batch's sizes). */
export interface PackedSizeHint {
  readonly values: number;
  readonly executions: number;
}

/** Where a value's bytes go. */
export const LOCATION_INLINE = 0;
export const LOCATION_FILE = 1;

class Writer {
  buf: Buffer;
  off = 0;
  constructor(size: number) {
    // Each writer owns its ArrayBuffer (never a slice of the shared pool), so it can be transferred.
    this.buf = Buffer.allocUnsafeSlow(Math.max(size, 1024));
  }
  ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const next = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.off + n));
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf[this.off++] = v;
  }
  u16(v: number): void {
    this.ensure(2);
    this.off = this.buf.writeUInt16LE(v, this.off);
  }
  u32(v: number): void {
    this.ensure(4);
    this.off = this.buf.writeUInt32LE(v, this.off);
  }
  i32(v: number): void {
    this.ensure(4);
    this.off = this.buf.writeInt32LE(v, this.off);
  }
  f64(v: number): void {
    this.ensure(8);
    this.off = this.buf.writeDoubleLE(v, this.off);
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.byteLength);
    this.buf.set(b, this.off);
    this.off += b.byteLength;
  }
  /** A content hash as its 71 characters of text. */
  hash(hash: string, what: string): void {
    if (hash.length !== HASH_TEXT) {
      throw new ProvenantError('INPUT_INVALID', `${what} is not a content hash: ${hash}`, { context: { hash } });
    }
    this.ensure(HASH_TEXT);
    this.off += this.buf.write(hash, this.off, HASH_TEXT, 'latin1');
  }
  /** A UUID as its 36 characters of text. */
  uuid(id: string): void {
    if (id.length !== UUID_TEXT) {
      throw new ProvenantError('INPUT_INVALID', `execution id is not a UUID: ${id}`, { context: { executionId: id } });
    }
    this.ensure(UUID_TEXT);
    this.off += this.buf.write(id, this.off, UUID_TEXT, 'latin1');
  }
}

const HASH_TEXT = 71;
const UUID_TEXT = 36;

/**
 * Numbers the distinct entries of a dictionary list. Each string is checked once, when first
 * seen: the record hash is RFC 8785 text, which has no form for a lone surrogate.
 */
function indexer<K>(list: K[], keyOf: (k: K) => string, what: string, strings: (k: K) => readonly string[]): (k: K) => number {
  const map = new Map<string, number>();
  return (k: K) => {
    const key = keyOf(k);
    let i = map.get(key);
    if (i === undefined) {
      for (const text of strings(k)) {
        if (!text.isWellFormed()) throw new ProvenantError('INPUT_INVALID', `${what} has a lone surrogate: ${JSON.stringify(text)}`, { context: { value: text } });
      }
      i = list.length;
      list.push(k);
      map.set(key, i);
    }
    return i;
  };
}

/**
 * Builds a packed batch incrementally: each execution and value is written into the buffer as it
 * is added, so capture holds no per-execution objects until commit (they die young).
 * `isFile(size)` says which values live as files (their bytes are kept aside for the store to
 * write before the batch is applied); `canonicalContext` turns a context into JSON.
 */
export class PackedBatchBuilder {
  readonly #dictionary: PackedDictionary = { runs: [], steps: [], contexts: [], streams: [], reasons: [] };
  readonly #runIndex = indexer(this.#dictionary.runs, (r) => r, 'a run id', (r) => [r]);
  readonly #stepIndex = indexer(this.#dictionary.steps, ([s, v]) => `${s}\u0000${v}`, 'a step id or version', (sv) => sv);
  readonly #contextIndex = indexer(this.#dictionary.contexts, ([h]) => h, 'a context hash', ([h]) => [h]);
  readonly #streamIndex = indexer(this.#dictionary.streams, (s) => s, 'a stream id', (s) => [s]);
  readonly #reasonIndex = indexer(this.#dictionary.reasons, (r) => r, 'a dead-letter reason', () => []);
  readonly #values: Writer;
  readonly #executions: Writer;
  readonly #dead = new Writer(64);
  /** Where each execution starts in the buffer (its id comes first), for dead letters. */
  readonly #starts: number[] = [];
  #lastId: string | undefined;
  readonly #isFile: (size: number) => boolean;
  readonly #canonicalContext: (c: ExecutionContext) => string;
  readonly #files: ValueWrite[] = [];
  #valueCount = 0;
  #executionCount = 0;
  #deadCount = 0;
  #lastContext: ExecutionContext | undefined;
  #lastContextIndex = 0;

  readonly #startWrite: ((v: ValueWrite) => Promise<void>) | undefined;
  readonly #writes: Promise<void>[] = [];

  /**
   * @param startWrite when given, each file value is handed to it as soon as it is added, so that
   * its (fsynced) write overlaps with capture instead of delaying the commit; {@link fileWrites}
   * waits for them.
   */
  constructor(
    isFile: (size: number) => boolean,
    canonicalContext: (c: ExecutionContext) => string,
    hint?: PackedSizeHint,
    startWrite?: (v: ValueWrite) => Promise<void>,
  ) {
    this.#startWrite = startWrite;
    this.#isFile = isFile;
    this.#canonicalContext = canonicalContext;
    this.#values = new Writer(hint?.values ?? 64 * 1024);
    this.#executions = new Writer(hint?.executions ?? 64 * 1024);
  }

  /** Executions added so far. */
  get executionCount(): number {
    return this.#executionCount;
  }

  /** Values added so far. */
  get valueCount(): number {
    return this.#valueCount;
  }

  /** The file writes started as values were added (see the constructor); all must succeed before the batch is applied. */
  async fileWrites(): Promise<void> {
    if (this.#startWrite === undefined) throw new TypeError('this batch was built without a file writer');
    await Promise.all(this.#writes);
  }

  /** Values to be written as files before the batch is applied. */
  get fileValues(): readonly ValueWrite[] {
    return this.#files;
  }

  addValue(v: ValueWrite, options?: AddValueOptions): void {
    const w = this.#values;
    const inlineUpTo = options?.inlineUpTo;
    const isFile = inlineUpTo === undefined ? this.#isFile : (size: number) => size > inlineUpTo;
    if (v.text !== undefined && !isFile(v.text.length * 3)) {
      // Inline JSON text: write its UTF-8 straight into the batch, then the size before it.
      w.hash(v.hash, 'value hash');
      w.u8(LOCATION_INLINE);
      const sizeAt = w.off;
      w.u32(0);
      w.ensure(v.text.length * 3);
      const size = w.buf.write(v.text, w.off, 'utf8');
      w.off += size;
      w.buf.writeUInt32LE(size, sizeAt);
      this.#valueCount++;
      return;
    }
    w.hash(v.hash, 'value hash');
    const size = v.bytes.byteLength;
    if (isFile(size)) {
      w.u8(LOCATION_FILE);
      w.u32(size);
      // A copy: the caller may reuse its buffer before the batch is committed.
      const copy = { hash: v.hash, bytes: Buffer.from(v.bytes) };
      this.#files.push(copy);
      if (this.#startWrite !== undefined) {
        const write = this.#startWrite(copy);
        write.catch(() => undefined); // awaited (and its failure reported) by fileWrites()
        this.#writes.push(write);
      }
    } else {
      w.u8(LOCATION_INLINE);
      w.u32(size);
      w.bytes(v.bytes);
    }
    this.#valueCount++;
  }

  addExecution(e: ExecutionWrite): void {
    const w = this.#executions;
    const start = w.off;
    // What the packed form cannot carry exactly, the record hash could not cover: refuse it.
    if (e.inputEncodings.length !== e.inputHashes.length || !isEncoding(e.outputEncoding) || !e.inputEncodings.every(isEncoding)) {
      throw new ProvenantError('INPUT_INVALID', `execution ${e.id}: one encoding per input, each 'json' or 'bytes', is required`, { context: { executionId: e.id } });
    }
    if (e.status !== 'ok' && e.status !== 'failed') {
      throw new ProvenantError('INPUT_INVALID', `execution ${e.id}: status must be 'ok' or 'failed', not ${String(e.status)}`, { context: { executionId: e.id } });
    }
    try {
      w.uuid(e.id);
      w.u16(this.#runIndex(e.runId));
      w.u16(this.#stepIndex([e.functionId, e.functionVersionHash]));
      w.u32(e.inputHashes.length);
      for (const h of e.inputHashes) w.hash(h, 'input hash');
      w.u8(e.outputHash === null ? 0 : 1);
      if (e.outputHash !== null) w.hash(e.outputHash, 'output hash');
      w.hash(e.paramsHash, 'params hash');
      if (e.context !== this.#lastContext) {
        this.#lastContextIndex = this.#contextIndex([e.contextHash, this.#canonicalContext(e.context)]);
        this.#lastContext = e.context;
      }
      w.u16(this.#lastContextIndex);
      w.f64(e.startedUs);
      w.f64(e.endedUs);
      w.u8(e.status === 'ok' ? 0 : 1);
      w.u8(e.errorHash === null ? 0 : 1);
      if (e.errorHash !== null) w.hash(e.errorHash, 'error hash');
      w.u8(e.nondeterminismHash === null ? 0 : 1);
      if (e.nondeterminismHash !== null) w.hash(e.nondeterminismHash, 'nondeterminism hash');
      const encodings = encodeEncodings(e.outputEncoding, e.inputEncodings);
      w.u8(encodings === null ? 0 : 1);
      if (encodings !== null) w.bytes(encodings);
      w.i32(e.streamId === null ? -1 : this.#streamIndex(e.streamId));
      w.f64(e.offset === null ? Number.NaN : e.offset);
    } catch (err) {
      w.off = start; // a refused execution leaves nothing behind
      throw err;
    }
    this.#lastId = e.id;
    this.#starts.push(start);
    this.#executionCount++;
  }

  /** Mark an execution already added to this batch as dead-lettered. */
  addDeadLetter(executionId: string, reason: string): void {
    let i: number | undefined;
    if (executionId === this.#lastId) i = this.#executionCount - 1;
    else {
      const w = this.#executions;
      const k = this.#starts.findIndex((at) => w.buf.toString('latin1', at, at + UUID_TEXT) === executionId);
      i = k < 0 ? undefined : k;
    }
    if (i === undefined) throw new TypeError(`dead letter ${executionId} is not in its batch`);
    this.#dead.u32(i);
    this.#dead.u16(this.#reasonIndex(reason));
    this.#deadCount++;
  }

  /** The finished batch, its buffers ready to transfer (the builder must not be used after). */
  finish(checkpoint?: CheckpointTransition): PackedBatch {
    const d = this.#dictionary;
    if (d.runs.length > 0xffff || d.steps.length > 0xffff || d.contexts.length > 0xffff) {
      throw new RangeError('too many distinct runs, steps or contexts in one batch');
    }
    const section = (w: Writer, count: number): PackedSection => ({ buffer: w.buf.buffer as ArrayBuffer, length: w.off, count });
    return {
      dictionary: d,
      ...(checkpoint === undefined ? {} : { checkpoint }),
      sections: [section(this.#values, this.#valueCount), section(this.#executions, this.#executionCount), section(this.#dead, this.#deadCount)],
    };
  }

  /** Bytes used so far by values and executions (to size the next batch). */
  get sizes(): PackedSizeHint {
    return { values: this.#values.off, executions: this.#executions.off };
  }
}

function isEncoding(e: string): e is ValueEncoding {
  return e === 'json' || e === 'bytes';
}

/** Pack a whole batch at once (see {@link PackedBatchBuilder}). */
export function packBatch(
  batch: ExecutionBatch,
  isFile: (size: number) => boolean,
  canonicalContext: (c: ExecutionContext) => string,
  startWrite?: (v: ValueWrite) => Promise<void>,
): PackedBatchBuilder {
  const builder = new PackedBatchBuilder(isFile, canonicalContext, undefined, startWrite);
  for (const v of batch.values) builder.addValue(v);
  for (const e of batch.executions) builder.addExecution(e);
  for (const d of batch.deadLetters ?? []) builder.addDeadLetter(d.executionId, d.reason);
  return builder;
}

/**
 * Which values of an execution are raw bytes rather than JSON: null when none (the usual case,
 * stored as NULL), else one byte per value — the output, then each input — 1 for raw bytes.
 */
export function encodeEncodings(output: ValueEncoding, inputs: readonly ValueEncoding[]): Buffer | null {
  if (output !== 'bytes' && !inputs.includes('bytes')) return null;
  const out = Buffer.alloc(1 + inputs.length);
  out[0] = output === 'bytes' ? 1 : 0;
  inputs.forEach((enc, i) => (out[i + 1] = enc === 'bytes' ? 1 : 0));
  return out;
}

/** The output's and inputs' encodings from {@link encodeEncodings}' form. */
export function decodeEncodings(encodings: Uint8Array | null, inputCount: number): { output: ValueEncoding; inputs: ValueEncoding[] } {
  const at = (i: number): ValueEncoding => (encodings !== null && encodings[i] === 1 ? 'bytes' : 'json');
  return { output: at(0), inputs: Array.from({ length: inputCount }, (_, i) => at(i + 1)) };
}

/** A value read back from a packed batch. */
export interface PackedValue {
  readonly digest: Buffer;
  readonly location: number;
  readonly size: number;
  readonly bytes: Buffer | null;
}

/** An execution row read back from a packed batch, validated, with its record hash computed. */
export interface PackedExecution {
  readonly id: Buffer;
  readonly run: number;
  readonly step: number;
  readonly inputs: Buffer;
  readonly output: Buffer | null;
  readonly params: Buffer;
  readonly context: number;
  readonly started: number;
  readonly duration: number;
  readonly status: number;
  readonly error: Buffer | null;
  readonly nondeterminism: Buffer | null;
  readonly encodings: Buffer | null;
  readonly stream: number;
  readonly offset: number | null;
  readonly recordHash: Buffer;
}

/** Bytes of ASCII text. */
const ascii = (text: string): Buffer => Buffer.from(text, 'latin1');

const SHA_PREFIX = ascii('sha256:');


/** Value of each byte as a lowercase hex digit, or -1. */
const HEX = new Int8Array(256).fill(-1);
for (let c = 48; c <= 57; c++) HEX[c] = c - 48;
for (let c = 97; c <= 102; c++) HEX[c] = c - 87;

function hexNibble(c: number): number {
  return HEX[c] as number;
}

/** Where the fields of one packed execution are (text offsets in the section, or -1), and its numbers. */
interface PackedFields {
  readonly idAt: number;
  readonly run: number;
  readonly step: number;
  readonly nInputs: number;
  readonly inputsAt: number;
  readonly outputAt: number;
  readonly paramsAt: number;
  readonly context: number;
  readonly startedUs: number;
  readonly endedUs: number;
  readonly status: number;
  readonly errorAt: number;
  readonly nondeterminismAt: number;
  readonly encodings: Buffer | null;
  readonly stream: number;
  readonly offset: number | null;
}

const utf8 = (text: string): Buffer => Buffer.from(text, 'utf8');
const NULL = ascii('null');
const QUOTE = ascii('"');
const COMMA = ascii(',');
const COMMA_QUOTE = ascii(',"');
const JSON_ENC = ascii('"json"');
const BYTES_ENC = ascii('"bytes"');
const OK = ascii('"ok"');
const FAILED = ascii('"failed"');
const K_ERROR = ascii(',"errorHash":');
const K_INPUT_ENCODINGS = ascii('","inputEncodings":[');
const K_INPUT_HASHES = ascii('],"inputHashes":[');
const K_NONDETERMINISM = ascii('],"nondeterminismHash":');
const K_OFFSET = ascii(',"offset":');
const K_OUTPUT_ENCODING = ascii(',"outputEncoding":');
const K_OUTPUT = ascii(',"outputHash":');
const K_PARAMS = ascii(',"paramsHash":"');
const K_STATUS = ascii(',"status":');

/**
 * The record hash of packed executions (record-hash.ts, format 1): SHA-256 of the RFC 8785 text
 * of `canonicalRecord`, written as bytes straight from the packed batch — hashes and ids are
 * already their JSON text there, and the strings of the dictionary are quoted once per batch.
 * Keys in RFC 8785 order: contextHash endedUs errorHash functionId functionVersionHash id
 * inputEncodings inputHashes nondeterminismHash offset outputEncoding outputHash paramsHash runId
 * startedUs status streamId v. A test holds it equal to `executionRecordHash` (the definition).
 */
class RecordHasher {
  readonly #t = new RecordText();
  /** `{"contextHash":"…","endedUs":` per context. */
  readonly #contexts: Buffer[];
  /** `,"functionId":…,"functionVersionHash":"…","id":"` per step. */
  readonly #steps: Buffer[];
  /** `,"runId":"…","startedUs":` per run. */
  readonly #runs: Buffer[];
  /** `,"streamId":…,"v":1}` per stream, then for none. */
  readonly #streams: Buffer[];
  readonly #noStream = utf8(`,"streamId":null,"v":${RECORD_FORMAT}}`);

  constructor(d: PackedDictionary) {
    const q = (text: string): string => JSON.stringify(text);
    this.#contexts = d.contexts.map(([hash]) => utf8(`{"contextHash":${q(hash)},"endedUs":`));
    this.#steps = d.steps.map(([step, version]) => utf8(`,"functionId":${q(step)},"functionVersionHash":${q(version)},"id":"`));
    this.#runs = d.runs.map((run) => utf8(`,"runId":${q(run)},"startedUs":`));
    this.#streams = d.streams.map((stream) => utf8(`,"streamId":${q(stream)},"v":${RECORD_FORMAT}}`));
  }

  /** The 32-byte record hash of the execution whose fields are at `f` in `b`. */
  hash(b: Buffer, f: PackedFields): Buffer {
    const t = this.#t;
    t.reset();
    t.put(this.#contexts[f.context] as Buffer);
    t.number(f.endedUs);
    t.put(K_ERROR);
    this.#quotedHashOrNull(b, f.errorAt);
    t.put(this.#steps[f.step] as Buffer);
    t.copyFrom(b, f.idAt, UUID_TEXT);
    t.put(K_INPUT_ENCODINGS);
    for (let k = 0; k < f.nInputs; k++) {
      if (k > 0) t.put(COMMA);
      t.put(f.encodings !== null && f.encodings[k + 1] === 1 ? BYTES_ENC : JSON_ENC);
    }
    t.put(K_INPUT_HASHES);
    for (let k = 0; k < f.nInputs; k++) {
      t.put(k === 0 ? QUOTE : COMMA_QUOTE);
      t.copyFrom(b, f.inputsAt + k * HASH_TEXT, HASH_TEXT);
      t.put(QUOTE);
    }
    t.put(K_NONDETERMINISM);
    this.#quotedHashOrNull(b, f.nondeterminismAt);
    t.put(K_OFFSET);
    if (f.offset === null) t.put(NULL);
    else t.number(f.offset);
    t.put(K_OUTPUT_ENCODING);
    t.put(f.encodings !== null && f.encodings[0] === 1 ? BYTES_ENC : JSON_ENC);
    t.put(K_OUTPUT);
    this.#quotedHashOrNull(b, f.outputAt);
    t.put(K_PARAMS);
    t.copyFrom(b, f.paramsAt, HASH_TEXT);
    t.put(QUOTE);
    t.put(this.#runs[f.run] as Buffer);
    t.number(f.startedUs);
    t.put(K_STATUS);
    t.put(f.status === 0 ? OK : FAILED);
    t.put(f.stream < 0 ? this.#noStream : (this.#streams[f.stream] as Buffer));
    return sha256Bytes(t.text());
  }

  #quotedHashOrNull(b: Buffer, at: number): void {
    if (at < 0) {
      this.#t.put(NULL);
      return;
    }
    this.#t.put(QUOTE);
    this.#t.copyFrom(b, at, HASH_TEXT);
    this.#t.put(QUOTE);
  }
}

/**
 * Read a packed batch back: every id and hash is validated as it is decoded.
 * @throws ProvenantError INPUT_INVALID naming the malformed id, hash or string.
 */
export function unpackBatch(batch: PackedBatch): {
  values: PackedValue[];
  executions: PackedExecution[];
  deadLetters: { execution: number; reason: number }[];
} {
  const d = batch.dictionary;
  const [valueSection, executionSection, deadSection] = batch.sections;
  const view = (section: PackedSection): Buffer => Buffer.from(section.buffer, 0, section.length);
  let b = view(valueSection);
  let o = 0;
  const invalid = (what: string, start: number, length: number): never => {
    const text = b.toString('latin1', start, start + length);
    throw new ProvenantError('INPUT_INVALID', `${what} is not valid: ${text}`, { context: { value: text } });
  };
  // Digests are decoded into one slab per batch instead of one allocation each.
  let slab = Buffer.allocUnsafe(64 * 1024);
  let slabUsed = 0;
  const digestAt = (start: number, what: string): Buffer => {
    if (b.compare(SHA_PREFIX, 0, 7, start, start + 7) !== 0) invalid(what, start, HASH_TEXT);
    if (slabUsed + 32 > slab.length) {
      slab = Buffer.allocUnsafe(64 * 1024);
      slabUsed = 0;
    }
    const out = slab.subarray(slabUsed, slabUsed + 32);
    slabUsed += 32;
    let bad = 0;
    for (let i = 0, p = start + 7; i < 32; i++, p += 2) {
      const hi = HEX[b[p] as number] as number;
      const lo = HEX[b[p + 1] as number] as number;
      bad |= hi | lo; // any -1 sets the sign bit
      out[i] = (hi << 4) | lo;
    }
    if (bad < 0) invalid(what, start, HASH_TEXT);
    return out;
  };
  const uuidAt = (start: number): Buffer => {
    const out = Buffer.allocUnsafe(16);
    let k = 0;
    for (let p = start; p < start + UUID_TEXT; ) {
      const c = b[p] as number;
      if (c === 45 /* - */) {
        if (p - start !== 8 && p - start !== 13 && p - start !== 18 && p - start !== 23) invalid('execution id', start, UUID_TEXT);
        p++;
        continue;
      }
      const hi = hexNibble(c);
      const lo = hexNibble(b[p + 1] as number);
      if (hi < 0 || lo < 0 || k >= 16) invalid('execution id', start, UUID_TEXT);
      out[k++] = (hi << 4) | lo;
      p += 2;
    }
    if (k !== 16) invalid('execution id', start, UUID_TEXT);
    return out;
  };
  for (const text of [...d.runs, ...d.steps.flat(), ...d.streams, ...d.contexts.map(([h]) => h)]) {
    if (!text.isWellFormed()) throw new ProvenantError('INPUT_INVALID', 'an id has a lone surrogate', { context: { value: text } });
  }
  const values: PackedValue[] = [];
  const nValues = valueSection.count;
  for (let i = 0; i < nValues; i++) {
    const digest = digestAt(o, 'value hash');
    o += HASH_TEXT;
    const location = b[o++] as number;
    const size = b.readUInt32LE(o);
    o += 4;
    let bytes: Buffer | null = null;
    if (location === LOCATION_INLINE) {
      bytes = b.subarray(o, o + size);
      o += size;
    }
    values.push({ digest, location, size, bytes });
  }

  const executions: PackedExecution[] = [];
  b = view(executionSection);
  o = 0;
  const hasher = new RecordHasher(d);
  const nExec = executionSection.count;
  for (let i = 0; i < nExec; i++) {
    const idAt = o;
    const id = uuidAt(o);
    o += UUID_TEXT;
    const run = b.readUInt16LE(o);
    const step = b.readUInt16LE(o + 2);
    const nInputs = b.readUInt32LE(o + 4);
    o += 8;
    const inputsAt = o;
    const inputs = Buffer.allocUnsafe(32 * nInputs);
    for (let k = 0; k < nInputs; k++) {
      digestAt(o, 'input hash').copy(inputs, 32 * k);
      o += HASH_TEXT;
    }
    const hasOutput = b[o++] === 1;
    const outputAt = hasOutput ? o : -1;
    const output = hasOutput ? digestAt(o, 'output hash') : null;
    if (hasOutput) o += HASH_TEXT;
    const paramsAt = o;
    const params = digestAt(o, 'params hash');
    o += HASH_TEXT;
    const context = b.readUInt16LE(o);
    const startedUs = b.readDoubleLE(o + 2);
    const endedUs = b.readDoubleLE(o + 10);
    const status = b[o + 18] as number;
    const hasError = b[o + 19] === 1;
    o += 20;
    const errorAt = hasError ? o : -1;
    const error = hasError ? digestAt(o, 'error hash') : null;
    if (hasError) o += HASH_TEXT;
    const hasNondeterminism = b[o++] === 1;
    const nondeterminismAt = hasNondeterminism ? o : -1;
    const nondeterminism = hasNondeterminism ? digestAt(o, 'nondeterminism hash') : null;
    if (hasNondeterminism) o += HASH_TEXT;
    const anyBytes = b[o++] === 1;
    const encodings = anyBytes ? Buffer.from(b.subarray(o, o + 1 + nInputs)) : null;
    if (anyBytes) o += 1 + nInputs;
    const stream = b.readInt32LE(o);
    const rawOffset = b.readDoubleLE(o + 4);
    o += 12;
    const offset = Number.isNaN(rawOffset) ? null : rawOffset;
    if (step >= d.steps.length || run >= d.runs.length || context >= d.contexts.length || stream >= d.streams.length || stream < -1) {
      throw new ProvenantError('INPUT_INVALID', 'a packed execution refers outside its dictionary', {});
    }
    if (!Number.isFinite(startedUs) || !Number.isFinite(endedUs) || (offset !== null && !Number.isFinite(offset))) {
      throw new ProvenantError('INPUT_INVALID', 'an execution time or offset is not a finite number', {});
    }
    if (status > 1) throw new ProvenantError('INPUT_INVALID', `an execution status is ${status}, not 0 (ok) or 1 (failed)`, {});
    const recordHash = hasher.hash(b, {
      idAt,
      run,
      step,
      nInputs,
      inputsAt,
      outputAt,
      paramsAt,
      context,
      startedUs,
      endedUs,
      status,
      errorAt,
      nondeterminismAt,
      encodings,
      stream,
      offset,
    });

    executions.push({
      id,
      run,
      step,
      inputs,
      output,
      params,
      context,
      started: startedUs,
      duration: endedUs - startedUs,
      status,
      error,
      nondeterminism,
      encodings,
      stream,
      offset,
      recordHash,
    });
  }
  const deadLetters: { execution: number; reason: number }[] = [];
  b = view(deadSection);
  o = 0;
  const nDead = deadSection.count;
  for (let i = 0; i < nDead; i++) {
    deadLetters.push({ execution: b.readUInt32LE(o), reason: b.readUInt16LE(o + 4) });
    o += 6;
  }
  return { values, executions, deadLetters };
}
