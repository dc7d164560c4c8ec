/**
 * The canonical record hash of an execution: SHA-256 over the RFC 8785 form of
 * {@link canonicalRecord}, computed by the store as the execution is committed at capture and
 * stored with it. Any later change to a stored record changes this hash; the tamper-evident log
 * (a later part) chains these hashes.
 *
 * Format version 1. If the recorded fields ever change, add version 2 beside it and keep
 * verifying version-1 records with this function: old stores must still verify.
 */
import { canonicalize, sha256, type ContentHash, type JsonValue } from './canonical.js';
import type { ExecutionRecord } from '../store/records.js';

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
    streamId: e.streamId,
    offset: e.offset,
  };
}

const q = (s: string | null): string => (s === null ? 'null' : JSON.stringify(s));
/** Quote a string known to need no escaping (hex hashes, UUIDs, fixed words). */
const raw = (s: string | null): string => (s === null ? 'null' : `"${s}"`);
const SAFE_RE = /^[0-9a-z:-]*$/;
const num = (n: number | null): string => (n === null ? 'null' : Object.is(n, -0) ? '0' : String(n));

/**
 * The canonical record hash of an execution. It is computed once per execution, so it writes
 * the canonical text directly (keys in RFC 8785 order) instead of walking an object; a test holds
 * it equal to `sha256(canonicalize(canonicalRecord(e)))`. Falls back to that form for any field
 * the fast path cannot vouch for.
 */
export function executionRecordHash(e: HashedExecution): ContentHash {
  if (
    !e.functionId.isWellFormed() ||
    (e.streamId !== null && !e.streamId.isWellFormed()) ||
    !Number.isFinite(e.startedUs) ||
    !Number.isFinite(e.endedUs) ||
    (e.offset !== null && !Number.isFinite(e.offset)) ||
    !SAFE_RE.test(e.id) ||
    !SAFE_RE.test(e.runId)
  ) {
    return sha256(canonicalize(canonicalRecord(e)));
  }
  // Hashes, ids, encodings and status are hex, UUIDs or fixed words: quoted without escaping.
  const text =
    `{"contextHash":${raw(e.contextHash)},"endedUs":${num(e.endedUs)},"errorHash":${raw(e.errorHash)},` +
    `"functionId":${q(e.functionId)},"functionVersionHash":${raw(e.functionVersionHash)},"id":${raw(e.id)},` +
    `"inputEncodings":[${e.inputEncodings.map(raw).join(',')}],"inputHashes":[${e.inputHashes.map(raw).join(',')}],` +
    `"offset":${num(e.offset)},"outputEncoding":${raw(e.outputEncoding)},"outputHash":${raw(e.outputHash)},` +
    `"paramsHash":${raw(e.paramsHash)},"runId":${raw(e.runId)},"startedUs":${num(e.startedUs)},"status":${raw(e.status)},` +
    `"streamId":${q(e.streamId)},"v":${RECORD_FORMAT}}`;
  return sha256(text);
}
