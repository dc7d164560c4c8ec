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

/**
 * ECMAScript's shortest form of a number. Epoch microseconds (about 1.8e15) are not small
 * integers, and turning such a double into text is slow; split in two small integers it is
 * several times faster and gives the same digits.
 */
function num(n: number | null): string {
  if (n === null) return 'null';
  if (Number.isSafeInteger(n) && n >= 1e9 && n < 2e15) {
    const high = Math.floor(n / 1e6);
    return `${high}${String(n - high * 1e6).padStart(6, '0')}`;
  }
  return Object.is(n, -0) ? '0' : String(n);
}

/** True when every character is one of `0-9 a-z : -` (hex hashes, UUIDs): JSON needs no escaping. */
function isSafeToken(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 58) || (c >= 97 && c <= 122) || c === 45)) return false;
  }
  return true;
}

/** The JSON text of a string that needs no escaping (hex hashes, UUIDs, fixed words), else undefined. */
function safeQuoted(s: string | null): string | undefined {
  if (s === null) return 'null';
  return isSafeToken(s) ? `"${s}"` : undefined;
}

/** The JSON text of any well-formed string, else undefined. */
function quoted(s: string | null): string | undefined {
  if (s === null) return 'null';
  return s.isWellFormed() ? JSON.stringify(s) : undefined;
}

/**
 * Quoted forms of the fields that repeat from one execution to the next (run, step, params,
 * context, stream): a pipeline's steps take turns, so the forms of the last few values seen are
 * remembered (forgotten all at once past {@link RecentQuoted.max} distinct values).
 */
class RecentQuoted {
  static readonly max = 256;
  readonly #texts = new Map<string | null, string | undefined>();
  constructor(private readonly quote: (s: string | null) => string | undefined) {}
  get(value: string | null): string | undefined {
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

/**
 * The canonical record hash of an execution. It is computed once per execution, so it writes
 * the canonical text directly (keys in RFC 8785 order) instead of walking an object; a test holds
 * it equal to `sha256(canonicalize(canonicalRecord(e)))`. Falls back to that form (which names
 * what is wrong) for any field the fast path cannot vouch for.
 */
export function executionRecordHash(e: HashedExecution): ContentHash {
  const id = safeQuoted(e.id);
  const runId = runQuotes.get(e.runId);
  const functionId = functionQuotes.get(e.functionId);
  const version = versionQuotes.get(e.functionVersionHash);
  const params = paramsQuotes.get(e.paramsHash);
  const context = contextQuotes.get(e.contextHash);
  const stream = streamQuotes.get(e.streamId);
  const output = safeQuoted(e.outputHash);
  const error = safeQuoted(e.errorHash);
  const nondeterminism = safeQuoted(e.nondeterminismHash);
  let inputs = '';
  let encodings = '';
  let inputsOk = true;
  for (let i = 0; i < e.inputHashes.length; i++) {
    const h = safeQuoted(e.inputHashes[i] as string);
    const enc = e.inputEncodings[i];
    if (h === undefined || (enc !== 'json' && enc !== 'bytes')) {
      inputsOk = false;
      break;
    }
    inputs += i === 0 ? h : `,${h}`;
    encodings += i === 0 ? `"${enc}"` : `,"${enc}"`;
  }
  if (
    id === undefined ||
    runId === undefined ||
    functionId === undefined ||
    version === undefined ||
    params === undefined ||
    context === undefined ||
    stream === undefined ||
    output === undefined ||
    error === undefined ||
    nondeterminism === undefined ||
    !inputsOk ||
    e.inputHashes.length !== e.inputEncodings.length ||
    (e.outputEncoding !== 'json' && e.outputEncoding !== 'bytes') ||
    (e.status !== 'ok' && e.status !== 'failed') ||
    !Number.isFinite(e.startedUs) ||
    !Number.isFinite(e.endedUs) ||
    (e.offset !== null && !Number.isFinite(e.offset))
  ) {
    return sha256(canonicalize(canonicalRecord(e)));
  }
  return sha256(
    `{"contextHash":${context},"endedUs":${num(e.endedUs)},"errorHash":${error},"functionId":${functionId},` +
      `"functionVersionHash":${version},"id":${id},"inputEncodings":[${encodings}],"inputHashes":[${inputs}],` +
      `"nondeterminismHash":${nondeterminism},"offset":${num(e.offset)},"outputEncoding":"${e.outputEncoding}","outputHash":${output},"paramsHash":${params},` +
      `"runId":${runId},"startedUs":${num(e.startedUs)},"status":"${e.status}","streamId":${stream},"v":${RECORD_FORMAT}}`,
  );
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
