/**
 * The canonical record hash of an execution: SHA-256 over the RFC 8785 form of
 * {@link canonicalRecord}, computed by the store as the execution is committed at capture and
 * stored with it. Any later change to a stored record changes this hash; the tamper-evident log
 * (a later part) chains these hashes.
 *
 * Format version 1. If the recorded fields ever change, add version 2 beside it and keep
 * verifying version-1 records with this function: old stores must still verify. The embedded
 * store's writer thread writes the same text from its packed batches (`RecordHasher` in
 * src/store/sqlite/packed-batch.ts; test/store/packed-batch.test.ts holds the two equal): a new
 * format needs it there too.
 */
import { canonicalize, sha256, type ContentHash, type JsonValue } from './canonical.js';
import type { CheckpointBegin, CheckpointEnd, ExecutionRecord, ObjectVersionRecord } from '../store/records.js';

/** The current record format version. */
export const RECORD_FORMAT = 1;

/** The fields of an execution that its record hash covers (the context by its hash). */
export type HashedExecution = Omit<ExecutionRecord, 'recordHash' | 'context'>;

/** The object whose canonical form is hashed: the definition of the record hash. */
export function canonicalRecord(e: HashedExecution): JsonValue {
  return {
    v: RECORD_FORMAT,
    id: e.id,
    runId: e.runId,
    functionId: e.functionId,
    functionVersionHash: e.functionVersionHash,
    inputHashes: [...e.inputHashes],
    inputEncodings: [...e.inputEncodings],
    outputHash: e.outputHash,
    outputEncoding: e.outputEncoding,
    paramsHash: e.paramsHash,
    contextHash: e.contextHash,
    startedUs: e.startedUs,
    endedUs: e.endedUs,
    status: e.status,
    errorHash: e.errorHash,
    nondeterminismHash: e.nondeterminismHash,
    streamId: e.streamId,
    offset: e.offset,
  };
}

/** True when every character is one of `0-9 a-z : -` (hex hashes, UUIDs): JSON needs no escaping. */
function isSafeToken(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 58) || (c >= 97 && c <= 122) || c === 45)) return false;
  }
  return true;
}

/** The JSON text of a string that needs no escaping (hex hashes, UUIDs, fixed words), as bytes, else undefined. */
function safeQuoted(s: string | null): Buffer | undefined {
  if (s === null) return NULL_TEXT;
  return isSafeToken(s) ? Buffer.from(`"${s}"`, 'latin1') : undefined;
}

/** The JSON text of any well-formed string, as UTF-8 bytes, else undefined. */
function quoted(s: string | null): Buffer | undefined {
  if (s === null) return NULL_TEXT;
  return s.isWellFormed() ? Buffer.from(JSON.stringify(s), 'utf8') : undefined;
}

const NULL_TEXT = Buffer.from('null', 'latin1');

/**
 * Quoted forms of the fields that repeat from one execution to the next (run, step, params,
 * context, stream): a pipeline's steps take turns, so the forms of the last few values seen are
 * remembered (forgotten all at once past {@link RecentQuoted.max} distinct values).
 */
class RecentQuoted {
  static readonly max = 256;
  readonly #texts = new Map<string | null, Buffer>();
  constructor(private readonly quote: (s: string | null) => Buffer | undefined) {}
  get(value: string | null): Buffer | undefined {
    let text = this.#texts.get(value);
    if (text === undefined) {
      text = this.quote(value);
      if (text === undefined) return undefined;
      if (this.#texts.size >= RecentQuoted.max) this.#texts.clear();
      this.#texts.set(value, text);
    }
    return text;
  }
}

const runQuotes = new RecentQuoted(safeQuoted);
const functionQuotes = new RecentQuoted(quoted);
const versionQuotes = new RecentQuoted(safeQuoted);
const paramsQuotes = new RecentQuoted(safeQuoted);
const contextQuotes = new RecentQuoted(safeQuoted);
const streamQuotes = new RecentQuoted(quoted);

const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1');
const K_CONTEXT = latin1('{"contextHash":');
const K_ENDED = latin1(',"endedUs":');
const K_ERROR = latin1(',"errorHash":');
const K_FUNCTION = latin1(',"functionId":');
const K_VERSION = latin1(',"functionVersionHash":');
const K_ID = latin1(',"id":');
const K_INPUT_ENCODINGS = latin1(',"inputEncodings":[');
const K_INPUT_HASHES = latin1('],"inputHashes":[');
const K_NONDETERMINISM = latin1('],"nondeterminismHash":');
const K_OFFSET = latin1(',"offset":');
const K_OUTPUT_ENCODING = latin1(',"outputEncoding":');
const K_OUTPUT = latin1(',"outputHash":');
const K_PARAMS = latin1(',"paramsHash":');
const K_RUN = latin1(',"runId":');
const K_STARTED = latin1(',"startedUs":');
const K_STATUS = latin1(',"status":');
const K_STREAM = latin1(',"streamId":');
const K_END = latin1(`,"v":${RECORD_FORMAT}}`);
const ENCODING_TEXT = { json: latin1('"json"'), bytes: latin1('"bytes"') } as const;
const STATUS_TEXT = { ok: latin1('"ok"'), failed: latin1('"failed"') } as const;

/**
 * Record text written as bytes into one reused buffer: the text of every execution is hashed once,
 * at capture, so it is built as bytes rather than as a string of ~700 characters made of a few
 * dozen pieces (which the collector then has to clear away). Used here and by the embedded
 * store's writer thread (`RecordHasher` in src/store/sqlite/packed-batch.ts).
 */
export class RecordText {
  #out = Buffer.allocUnsafe(2048);
  #p = 0;

  /** Start a new text. */
  reset(): void {
    this.#p = 0;
  }

  /** The text so far (a view, valid until the next write). */
  text(): Buffer {
    return this.#out.subarray(0, this.#p);
  }

  #ensure(n: number): void {
    if (this.#p + n <= this.#out.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.#out.length * 2, this.#p + n));
    this.#out.copy(next, 0, 0, this.#p);
    this.#out = next;
  }

  /** Append bytes. */
  put(bytes: Buffer): void {
    this.#ensure(bytes.length);
    this.#out.set(bytes, this.#p);
    this.#p += bytes.length;
  }

  /** Append `length` bytes of `b` from `at` (a short loop: no view allocated per copy). */
  copyFrom(b: Uint8Array, at: number, length: number): void {
    this.#ensure(length);
    const out = this.#out;
    let p = this.#p;
    for (let i = at, end = at + length; i < end; i++) out[p++] = b[i] as number;
    this.#p = p;
  }

  /** `"s"` when `s` needs no escaping (see {@link isSafeToken}), or `null`; false (nothing kept) otherwise. */
  quotedSafe(s: string | null): boolean {
    if (s === null) {
      this.put(NULL_TEXT);
      return true;
    }
    this.#ensure(s.length + 2);
    const out = this.#out;
    let p = this.#p;
    out[p++] = 34;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (!((c >= 48 && c <= 58) || (c >= 97 && c <= 122) || c === 45)) return false;
      out[p++] = c;
    }
    out[p++] = 34;
    this.#p = p;
    return true;
  }

  /** ECMAScript's shortest form of a finite number (RFC 8785): digits written directly for safe integers. */
  number(n: number): void {
    if (!Number.isSafeInteger(n)) {
      const text = Object.is(n, -0) ? '0' : String(n);
      this.#ensure(text.length);
      this.#p += this.#out.write(text, this.#p, 'latin1');
      return;
    }
    this.#ensure(17);
    const out = this.#out;
    if (n < 0) {
      out[this.#p++] = 45; // -
      n = -n;
    }
    let digits = 1;
    for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
    let p = this.#p + digits;
    this.#p = p;
    do {
      const q = Math.floor(n / 10);
      out[--p] = 48 + (n - q * 10);
      n = q;
    } while (n > 0);
  }
}

const recordText = new RecordText();

/**
 * The canonical record hash of an execution. It is computed once per execution, so it writes
 * the canonical text directly (keys in RFC 8785 order) instead of walking an object; a test holds
 * it equal to `sha256(canonicalize(canonicalRecord(e)))`. Falls back to that form (which names
 * what is wrong) for any field the fast path cannot vouch for.
 */
export function executionRecordHash(e: HashedExecution): ContentHash {
  const runId = runQuotes.get(e.runId);
  const functionId = functionQuotes.get(e.functionId);
  const version = versionQuotes.get(e.functionVersionHash);
  const params = paramsQuotes.get(e.paramsHash);
  const context = contextQuotes.get(e.contextHash);
  const stream = streamQuotes.get(e.streamId);
  const n = e.inputHashes.length;
  if (
    runId === undefined ||
    functionId === undefined ||
    version === undefined ||
    params === undefined ||
    context === undefined ||
    stream === undefined ||
    n !== e.inputEncodings.length ||
    (e.outputEncoding !== 'json' && e.outputEncoding !== 'bytes') ||
    (e.status !== 'ok' && e.status !== 'failed') ||
    !Number.isFinite(e.startedUs) ||
    !Number.isFinite(e.endedUs) ||
    (e.offset !== null && !Number.isFinite(e.offset))
  ) {
    return slowRecordHash(e);
  }
  const t = recordText;
  t.reset();
  t.put(K_CONTEXT);
  t.put(context);
  t.put(K_ENDED);
  t.number(e.endedUs);
  t.put(K_ERROR);
  if (!t.quotedSafe(e.errorHash)) return slowRecordHash(e);
  t.put(K_FUNCTION);
  t.put(functionId);
  t.put(K_VERSION);
  t.put(version);
  t.put(K_ID);
  if (!t.quotedSafe(e.id)) return slowRecordHash(e);
  t.put(K_INPUT_ENCODINGS);
  for (let i = 0; i < n; i++) {
    const enc = e.inputEncodings[i];
    if (enc !== 'json' && enc !== 'bytes') return slowRecordHash(e);
    if (i > 0) t.put(COMMA);
    t.put(ENCODING_TEXT[enc]);
  }
  t.put(K_INPUT_HASHES);
  for (let i = 0; i < n; i++) {
    if (i > 0) t.put(COMMA);
    if (!t.quotedSafe(e.inputHashes[i] as string)) return slowRecordHash(e);
  }
  t.put(K_NONDETERMINISM);
  if (!t.quotedSafe(e.nondeterminismHash)) return slowRecordHash(e);
  t.put(K_OFFSET);
  if (e.offset === null) t.put(NULL_TEXT);
  else t.number(e.offset);
  t.put(K_OUTPUT_ENCODING);
  t.put(ENCODING_TEXT[e.outputEncoding]);
  t.put(K_OUTPUT);
  if (!t.quotedSafe(e.outputHash)) return slowRecordHash(e);
  t.put(K_PARAMS);
  t.put(params);
  t.put(K_RUN);
  t.put(runId);
  t.put(K_STARTED);
  t.number(e.startedUs);
  t.put(K_STATUS);
  t.put(STATUS_TEXT[e.status]);
  t.put(K_STREAM);
  t.put(stream);
  t.put(K_END);
  return sha256(t.text());
}

const COMMA = latin1(',');

/** The definition, for what the fast path cannot vouch for (it names what is wrong). */
function slowRecordHash(e: HashedExecution): ContentHash {
  return sha256(canonicalize(canonicalRecord(e)));
}

/**
 * The object whose canonical form is a checkpoint's record hash: its beginning and its end
 * (format 1). Computed by the store when the checkpoint ends.
 */
export function canonicalCheckpoint(begin: CheckpointBegin, end: CheckpointEnd): JsonValue {
  return {
    v: RECORD_FORMAT,
    kind: 'checkpoint',
    checkpointId: begin.checkpointId,
    runId: begin.runId,
    streamId: begin.streamId,
    previousId: begin.previousId,
    startOffset: begin.startOffset,
    startedUs: begin.startedUs,
    pipelineHash: begin.pipelineHash,
    status: end.status,
    endOffset: end.endOffset,
    endedUs: end.endedUs,
    records: end.records,
    executions: end.executions,
    failed: end.failed,
    deadLettered: end.deadLettered,
    firstExecutionId: end.firstExecutionId,
    lastExecutionId: end.lastExecutionId,
    stateHash: end.stateHash,
    sinkPosition: end.sinkPosition,
    inputSliceHash: end.inputSliceHash,
    reason: end.reason,
  };
}

/** The record hash of an ended checkpoint: SHA-256 of the RFC 8785 form of {@link canonicalCheckpoint}. */
export function checkpointRecordHash(begin: CheckpointBegin, end: CheckpointEnd): ContentHash {
  return sha256(canonicalize(canonicalCheckpoint(begin, end)));
}

/** The fields of an object version that its record hash covers. */
export type HashedObjectVersion = Omit<ObjectVersionRecord, 'recordHash' | 'pinned'>;

/** The object whose canonical form is an object version's record hash (format 1). */
export function canonicalObjectVersion(v: HashedObjectVersion): JsonValue {
  return {
    v: RECORD_FORMAT,
    kind: 'object-version',
    versionId: v.versionId,
    objectId: v.objectId,
    ordinal: v.ordinal,
    validFromUs: v.validFromUs,
    contentHash: v.contentHash,
    encoding: v.encoding,
    contentType: v.contentType,
    size: v.size,
    executionId: v.executionId,
    inputVersionIds: [...v.inputVersionIds],
  };
}

/** The record hash of an object version: SHA-256 of the RFC 8785 form of {@link canonicalObjectVersion}. */
export function objectVersionRecordHash(v: HashedObjectVersion): ContentHash {
  return sha256(canonicalize(canonicalObjectVersion(v)));
}
