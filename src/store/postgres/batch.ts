/**
 * Batches of executions for PostgreSQL, kept as columns: each execution added appends one entry to
 * each column (ids, digests as hex text, times…), validated and with its record hash computed as it
 * is added. On commit each table gets ONE multi-row statement (`INSERT … SELECT FROM unnest($1,
 * $2, …)` over the column arrays, prepared once per connection): a batch of 10,000 executions is
 * a handful of round trips, not one per execution.
 */
import { ProvenantError } from '../../errors.js';
import { canonicalize, type ContentHash } from '../../hash/canonical.js';
import { executionRecordHash } from '../../hash/record-hash.js';
import type { AddValueOptions, ExecutionBatchBuilder } from '../store.js';
import type { ExecutionContext, ExecutionWrite, ValueWrite } from '../records.js';
import { encodeEncodings } from '../sqlite/packed-batch.js';

const HASH_RE = /^sha256:[0-9a-f]{64}$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The hex digest of a content hash, validated. */
export function hexOf(hash: string, what: string): string {
  if (!HASH_RE.test(hash)) {
    throw new ProvenantError('INPUT_INVALID', `${what} is not a content hash: ${hash.slice(0, 80)}`, {
      hint: 'A content hash is sha256: followed by 64 lowercase hex digits.',
      context: { hash: hash.slice(0, 80) },
    });
  }
  return hash.slice(7);
}

function checkUuid(id: string): void {
  if (!UUID_RE.test(id)) {
    throw new ProvenantError('INPUT_INVALID', `execution id is not a UUID: ${id.slice(0, 80)}`, { context: { executionId: id.slice(0, 80) } });
  }
}

/** A value in a batch: its digest and bytes. */
export interface BatchValue {
  readonly hex: string;
  readonly bytes: Buffer;
}

/** Columns of the executions in a batch, in the order they were added. */
export interface ExecutionColumns {
  readonly id: string[];
  readonly runId: string[];
  readonly stepKey: string[];
  readonly inputs: string[];
  readonly output: (string | null)[];
  readonly params: string[];
  readonly context: string[];
  readonly started: number[];
  readonly duration: number[];
  readonly status: number[];
  readonly error: (string | null)[];
  readonly nondeterminism: (string | null)[];
  readonly encodings: (Buffer | null)[];
  readonly stream: (string | null)[];
  readonly offset: (number | null)[];
  readonly recordHash: string[];
}

/** Key of a step version in {@link ExecutionColumns.stepKey}. */
export const stepKey = (stepId: string, versionHash: string): string => `${stepId}\u0000${versionHash}`;

/** A batch being filled for a {@link PostgresStore}. */
export class PgBatch implements ExecutionBatchBuilder {
  readonly values = new Map<string, BatchValue>();
  /** Context digests (hex) to their canonical JSON. */
  readonly contexts = new Map<string, string>();
  readonly columns: ExecutionColumns = {
    id: [],
    runId: [],
    stepKey: [],
    inputs: [],
    output: [],
    params: [],
    context: [],
    started: [],
    duration: [],
    status: [],
    error: [],
    nondeterminism: [],
    encodings: [],
    stream: [],
    offset: [],
    recordHash: [],
  };
  readonly deadLetters: { executionId: string; reason: string }[] = [];
  #lastContext: ExecutionContext | undefined;
  #lastContextHex = '';
  #valueCount = 0;

  get executionCount(): number {
    return this.columns.id.length;
  }

  get valueCount(): number {
    return this.#valueCount;
  }

  addValue(value: ValueWrite, _options?: AddValueOptions): void {
    // Every value of a batch commits in its transaction (large ones in chunks), whatever its size.
    const hex = hexOf(value.hash, 'value hash');
    this.#valueCount++;
    if (this.values.has(hex)) return;
    const bytes = value.text !== undefined ? Buffer.from(value.text, 'utf8') : Buffer.from(value.bytes.buffer, value.bytes.byteOffset, value.bytes.byteLength);
    // A copy of caller-owned bytes: the caller may reuse its buffer before the commit.
    this.values.set(hex, { hex, bytes: value.text !== undefined ? bytes : Buffer.from(bytes) });
  }

  addExecution(e: ExecutionWrite): void {
    checkUuid(e.id);
    let inputs = '';
    for (const h of e.inputHashes) inputs += hexOf(h, 'input hash');
    const output = e.outputHash === null ? null : hexOf(e.outputHash, 'output hash');
    const params = hexOf(e.paramsHash, 'params hash');
    if (e.context !== this.#lastContext) {
      const hex = hexOf(e.contextHash, 'context hash');
      if (!this.contexts.has(hex)) this.contexts.set(hex, canonicalize(e.context));
      this.#lastContext = e.context;
      this.#lastContextHex = hex;
    }
    const error = e.errorHash === null ? null : hexOf(e.errorHash, 'error hash');
    const nondeterminism = e.nondeterminismHash === null ? null : hexOf(e.nondeterminismHash, 'nondeterminism hash');
    if (!Number.isSafeInteger(e.startedUs) || !Number.isSafeInteger(e.endedUs) || (e.offset !== null && !Number.isSafeInteger(e.offset))) {
      throw new ProvenantError('INPUT_INVALID', `execution ${e.id}: its times and offset must be whole numbers`, { context: { executionId: e.id } });
    }
    if (!e.runId.isWellFormed() || !e.functionId.isWellFormed() || (e.streamId !== null && !e.streamId.isWellFormed())) {
      throw new ProvenantError('INPUT_INVALID', `execution ${e.id}: an id has a lone surrogate`, { context: { executionId: e.id } });
    }
    const recordHash = hexOf(executionRecordHash(e), 'record hash');
    const c = this.columns;
    c.id.push(e.id);
    c.runId.push(e.runId);
    c.stepKey.push(stepKey(e.functionId, e.functionVersionHash));
    c.inputs.push(inputs);
    c.output.push(output);
    c.params.push(params);
    c.context.push(this.#lastContextHex);
    c.started.push(e.startedUs);
    c.duration.push(e.endedUs - e.startedUs);
    c.status.push(e.status === 'ok' ? 0 : 1);
    c.error.push(error);
    c.nondeterminism.push(nondeterminism);
    c.encodings.push(encodeEncodings(e.outputEncoding, e.inputEncodings));
    c.stream.push(e.streamId);
    c.offset.push(e.offset);
    c.recordHash.push(recordHash);
  }

  addDeadLetter(executionId: string, reason: string): void {
    if (!this.columns.id.includes(executionId)) throw new TypeError(`dead letter ${executionId} is not in its batch`);
    this.deadLetters.push({ executionId, reason });
  }
}

/** A content hash from a hex digest. */
export const hashOfHex = (hex: string): ContentHash => `sha256:${hex}`;
