/**
 * The canonical record hash of an execution: SHA-256 over the RFC 8785 form of the fields below,
 * fixed at capture time. Any later change to a stored record changes this hash; the tamper-evident
 * log (a later part) chains these hashes.
 *
 * Format version 1. If the recorded fields ever change, add version 2 beside it and keep
 * verifying version-1 records with this function: old stores must still verify.
 */
import { canonicalize, sha256, type ContentHash } from '../hash/canonical.js';
import type { ExecutionRecord } from '../store/records.js';

/** The current record format version. */
export const RECORD_FORMAT = 1;

/** The fields of an execution that its record hash covers. */
export type HashedExecution = Omit<ExecutionRecord, 'recordHash' | 'context'>;

/** The canonical record hash of an execution (see module docs). */
export function executionRecordHash(e: HashedExecution): ContentHash {
  return sha256(
    canonicalize({
      v: RECORD_FORMAT,
      id: e.id,
      runId: e.runId,
      functionId: e.functionId,
      functionVersionHash: e.functionVersionHash,
      inputHashes: e.inputHashes,
      inputEncodings: e.inputEncodings,
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
    }),
  );
}
