/**
 * Golden values: hashes that stored records already carry. If one of these changes, stores
 * written before the change stop verifying — bump the record format (hash/record-hash.ts) instead
 * of editing these. The expected values were computed independently (Python's json.dumps with
 * sorted keys and compact separators, which equals RFC 8785 for these ASCII, integer-only values,
 * and hashlib.sha256).
 */
import { describe, expect, it } from 'vitest';
import { canonicalize, hashValue, sha256 } from '../../src/hash/canonical.js';
import { canonicalRecord, executionRecordHash, RECORD_FORMAT } from '../../src/hash/record-hash.js';
import type { ExecutionWrite } from '../../src/store/records.js';

const record: ExecutionWrite = {
  id: '01a20d92-ea96-7ae1-a940-b63463dfe4b3',
  runId: '01a20d92-ea7e-7b6d-a4ae-722d1a7e82c3',
  functionId: 'normalize',
  functionVersionHash: hashValue('code'),
  inputHashes: [hashValue({ a: 1 })],
  inputEncodings: ['json'],
  outputHash: hashValue({ b: 2 }),
  outputEncoding: 'json',
  paramsHash: hashValue({}),
  contextHash: hashValue({ source: 'cli' }),
  context: { source: 'cli' },
  startedUs: 1795000000000000,
  endedUs: 1795000000000203,
  status: 'ok',
  errorHash: null,
  nondeterminismHash: null,
  streamId: 'file:flights.json',
  offset: 0,
};

describe('golden hashes', () => {
  it('values hash as they always have', () => {
    expect(hashValue({ a: 1 })).toBe('sha256:015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862');
    expect(hashValue('code')).toBe('sha256:4a1933b06cf695fcff4acaba1fdbaa7f10ce109d3c7f57bbf62f6bb572658de8');
  });

  it('an execution record of format 1 hashes as it always has', () => {
    expect(RECORD_FORMAT).toBe(1);
    const expected = 'sha256:cf671747a43cc310f0990cb8465533b43a5344195a8538b82eb6d5314a0dca65';
    expect(executionRecordHash(record)).toBe(expected);
    expect(sha256(canonicalize(canonicalRecord(record)))).toBe(expected);
  });
});
