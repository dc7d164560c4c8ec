/**
 * Batches of executions for PostgreSQL, kept as columns: each execution added appends one entry to
 * each column (ids, times, offsets of its digests in one binary heap…), validated and with its
 * record hash computed as it is added. On commit each table gets ONE multi-row statement
 * (`INSERT … SELECT FROM unnest($1, $2, …)` over the column arrays, prepared once per connection):
 * a batch of 10,000 executions is a handful of round trips, not one per execution.
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

/**
 * Bytes of a batch's digests (and small byte strings) laid end to end: sent to PostgreSQL as ONE
 * binary parameter, each row picking its pieces out by offset (`substring`), rather than as
 * arrays of hex text that both sides would have to escape, parse and decode.
 */
export class ByteHeap {
  #buf = Buffer.allocUnsafe(64 * 1024);
  #len = 0;

  #room(n: number): void {
    if (this.#len + n <= this.#buf.byteLength) return;
    const next = Buffer.allocUnsafe(Math.max(this.#buf.byteLength * 2, this.#len + n));
    this.#buf.copy(next, 0, 0, this.#len);
    this.#buf = next;
  }

  /** Append a digest given as 64 hex digits; returns its offset. */
  addHex(hex: string): number {
    this.#room(32);
    const at = this.#len;
    this.#len += this.#buf.write(hex, at, 32, 'hex');
    return at;
  }

  /** Append bytes; returns their offset. */
  addBytes(bytes: Uint8Array): number {
    this.#room(bytes.byteLength);
    const at = this.#len;
    this.#buf.set(bytes, at);
    this.#len += bytes.byteLength;
    return at;
  }

  /** The bytes so far (a view, valid until the next append). */
  bytes(): Buffer {
    return this.#buf.subarray(0, this.#len);
  }
}

/**
 * Columns of the executions in a batch, in the order they were added. Digest columns hold offsets
 * into {@link PgBatch.heap} (-1: NULL); `inputs` and `encodings` an offset and a length.
 */
export interface ExecutionColumns {
  readonly id: string[];
  readonly runId: string[];
  readonly stepKey: string[];
  readonly inputsAt: number[];
  readonly inputsLength: number[];
  readonly outputAt: number[];
  readonly paramsAt: number[];
  readonly contextAt: number[];
  readonly started: number[];
  readonly duration: number[];
  readonly status: number[];
  readonly errorAt: number[];
  readonly nondeterminismAt: number[];
  readonly encodingsAt: number[];
  readonly encodingsLength: number[];
  readonly stream: (string | null)[];
  readonly offset: (number | null)[];
  readonly recordHashAt: number[];
}

/** Key of a step version in {@link ExecutionColumns.stepKey}. */
export const stepKey = (stepId: string, versionHash: string): string => `${stepId}\u0000${versionHash}`;

/** A batch being filled for a {@link PostgresStore}. */
export class PgBatch implements ExecutionBatchBuilder {
  readonly values = new Map<string, BatchValue>();
  /** Context digests (hex) to their canonical JSON. */
  readonly contexts = new Map<string, string>();
  /** The digests and encodings of the executions (see {@link ExecutionColumns}). */
  readonly heap = new ByteHeap();
  readonly columns: ExecutionColumns = {
    id: [],
    runId: [],
    stepKey: [],
    inputsAt: [],
    inputsLength: [],
    outputAt: [],
    paramsAt: [],
    contextAt: [],
    started: [],
    duration: [],
    status: [],
    errorAt: [],
    nondeterminismAt: [],
    encodingsAt: [],
    encodingsLength: [],
    stream: [],
    offset: [],
    recordHashAt: [],
  };
  readonly deadLetters: { executionId: string; reason: string }[] = [];
  #lastContext: ExecutionContext | undefined;
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
    // Everything is validated before anything is appended: a refused execution leaves no trace.
    const inputs = e.inputHashes.map((h) => hexOf(h, 'input hash'));
    const output = e.outputHash === null ? null : hexOf(e.outputHash, 'output hash');
    const params = hexOf(e.paramsHash, 'params hash');
    const contextHex = hexOf(e.contextHash, 'context hash');
    const error = e.errorHash === null ? null : hexOf(e.errorHash, 'error hash');
    const nondeterminism = e.nondeterminismHash === null ? null : hexOf(e.nondeterminismHash, 'nondeterminism hash');
    if (!Number.isSafeInteger(e.startedUs) || !Number.isSafeInteger(e.endedUs) || (e.offset !== null && !Number.isSafeInteger(e.offset))) {
      throw new ProvenantError('INPUT_INVALID', `execution ${e.id}: its times and offset must be whole numbers`, { context: { executionId: e.id } });
    }
    if (!e.runId.isWellFormed() || !e.functionId.isWellFormed() || (e.streamId !== null && !e.streamId.isWellFormed())) {
      throw new ProvenantError('INPUT_INVALID', `execution ${e.id}: an id has a lone surrogate`, { context: { executionId: e.id } });
    }
    const recordHash = hexOf(executionRecordHash(e), 'record hash');
    const encodings = encodeEncodings(e.outputEncoding, e.inputEncodings);
    if (e.context !== this.#lastContext) {
      if (!this.contexts.has(contextHex)) this.contexts.set(contextHex, canonicalize(e.context));
      this.#lastContext = e.context;
    }
    const c = this.columns;
    const heap = this.heap;
    c.id.push(e.id);
    c.runId.push(e.runId);
    c.stepKey.push(stepKey(e.functionId, e.functionVersionHash));
    c.recordHashAt.push(heap.addHex(recordHash));
    c.paramsAt.push(heap.addHex(params));
    c.contextAt.push(heap.addHex(contextHex));
    c.outputAt.push(output === null ? -1 : heap.addHex(output));
    c.errorAt.push(error === null ? -1 : heap.addHex(error));
    c.nondeterminismAt.push(nondeterminism === null ? -1 : heap.addHex(nondeterminism));
    let inputsAt = -1;
    for (const h of inputs) {
      const at = heap.addHex(h);
      if (inputsAt < 0) inputsAt = at;
    }
    c.inputsAt.push(inputsAt < 0 ? 0 : inputsAt);
    c.inputsLength.push(inputs.length * 32);
    c.encodingsAt.push(encodings === null ? -1 : heap.addBytes(encodings));
    c.encodingsLength.push(encodings === null ? 0 : encodings.byteLength);
    c.started.push(e.startedUs);
    c.duration.push(e.endedUs - e.startedUs);
    c.status.push(e.status === 'ok' ? 0 : 1);
    c.stream.push(e.streamId);
    c.offset.push(e.offset);
  }

  addDeadLetter(executionId: string, reason: string): void {
    if (!this.columns.id.includes(executionId)) throw new TypeError(`dead letter ${executionId} is not in its batch`);
    this.deadLetters.push({ executionId, reason });
  }
}

/** A content hash from a hex digest. */
export const hashOfHex = (hex: string): ContentHash => `sha256:${hex}`;
