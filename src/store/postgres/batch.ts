/**
 * Batches of executions for PostgreSQL, kept as columns: each execution added appends one entry to
 * each column (ids, times, offsets of its digests in one binary heap…), validated and with its
 * record hash computed as it is added. On commit each table gets ONE multi-row statement
 * (`INSERT … SELECT FROM unnest($1, $2, …)` over the column arrays, sent in PostgreSQL's binary
 * array format (./binary-arrays.ts), prepared once per connection): a batch of 10,000 executions
 * is a handful of round trips, not one per execution.
 */
import { ProvenantError } from '../../errors.js';
import { isUuid } from '../../ids.js';
import { canonicalize, isContentHash, writeDigest } from '../../hash/canonical.js';
import { executionRecordHash } from '../../hash/record-hash.js';
import type { AddValueOptions, ExecutionBatchBuilder } from '../store.js';
import type { ExecutionContext, ExecutionWrite, ValueWrite } from '../records.js';
import { encodeEncodings } from '../sqlite/packed-batch.js';

/** The hex digest of a content hash, validated. */
export function hexOf(hash: string, what: string): string {
  if (!isContentHash(hash)) {
    throw new ProvenantError('INPUT_INVALID', `${what} is not a content hash: ${String(hash).slice(0, 80)}`, {
      hint: 'A content hash is sha256: followed by 64 lowercase hex digits.',
      context: { hash: String(hash).slice(0, 80) },
    });
  }
  return hash.slice(7);
}

function checkUuid(id: string): void {
  if (!isUuid(id)) {
    throw new ProvenantError('INPUT_INVALID', `execution id is not a UUID: ${id.slice(0, 80)}`, { context: { executionId: id.slice(0, 80) } });
  }
}

/** A value in a batch: its content hash (`sha256:<hex>`), and where its bytes are in {@link PgBatch.valueHeap}. */
export interface BatchValue {
  readonly hash: string;
  readonly at: number;
  readonly size: number;
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

  /** Append the digest of a content hash already validated (`sha256:` and 64 lowercase hex digits); returns its offset. */
  addHash(hash: string): number {
    this.#room(32);
    const at = this.#len;
    writeDigest(hash, this.#buf, at);
    this.#len += 32;
    return at;
  }

  /** Append a string's UTF-8 bytes; returns their offset and length. */
  addUtf8(text: string): { at: number; size: number } {
    this.#room(text.length * 3);
    const at = this.#len;
    const size = this.#buf.write(text, at, 'utf8');
    this.#len += size;
    return { at, size };
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
  /**
   * The batch's distinct values by content hash; their bytes are in {@link valueHeap}. Keyed by the
   * hash string itself, not a slice of it: a slice keeps its parent alive and compares several
   * times slower when the values are sorted for the insert.
   */
  readonly values = new Map<string, BatchValue>();
  /** The bytes of the batch's values, end to end. */
  readonly valueHeap = new ByteHeap();
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
  /**
   * Where the digests of params and contexts already are in {@link heap}: they recur in every
   * execution of a step, and are then neither validated nor copied again. A handful per batch.
   */
  readonly #recurring = new Map<string, number>();
  /** The last output's hash and where its digest is: a chained step's input is that same value. */
  #lastOutput: string | undefined;
  #lastOutputAt = -1;
  readonly #stepKeys = new Map<string, Map<string, string>>();

  /** The heap offset of a params or context digest, validated and appended on first sight. */
  #recurringDigest(hash: string, what: string): number {
    let at = this.#recurring.get(hash);
    if (at === undefined) {
      hexOf(hash, what);
      at = this.heap.addHash(hash);
      this.#recurring.set(hash, at);
    }
    return at;
  }

  /**
   * The heap offset of an input's digest: the previous output's when it is that value, else
   * appended (a value's digest may then be in the heap twice; rows pick theirs by offset). Inputs
   * and outputs are unique per execution, so they are not looked up in a map that would grow with
   * the batch: at a segment's 37,500 executions that cost more than the copies.
   */
  #inputDigest(hash: string): number {
    return hash === this.#lastOutput ? this.#lastOutputAt : this.heap.addHash(hash);
  }

  get executionCount(): number {
    return this.columns.id.length;
  }

  get valueCount(): number {
    return this.#valueCount;
  }

  addValue(value: ValueWrite, _options?: AddValueOptions): void {
    // Every value of a batch commits in its transaction (large ones in chunks), whatever its size.
    // A hash already in the batch was validated when it was added.
    if (!this.values.has(value.hash)) {
      hexOf(value.hash, 'value hash');
      // Copied: the caller may reuse its buffer before the commit.
      const { at, size } =
        value.text !== undefined ? this.valueHeap.addUtf8(value.text) : { at: this.valueHeap.addBytes(value.bytes), size: value.bytes.byteLength };
      this.values.set(value.hash, { hash: value.hash, at, size });
    }
    this.#valueCount++;
  }

  addExecution(e: ExecutionWrite): void {
    checkUuid(e.id);
    // Everything is validated before anything is appended: a refused execution leaves no trace.
    const single = e.inputHashes.length === 1;
    if (!single) for (const h of e.inputHashes) hexOf(h, 'input hash');
    else if (e.inputHashes[0] !== this.#lastOutput) hexOf(e.inputHashes[0] as string, 'input hash');
    if (e.outputHash !== null) hexOf(e.outputHash, 'output hash');
    if (!this.#recurring.has(e.paramsHash)) hexOf(e.paramsHash, 'params hash');
    if (!this.#recurring.has(e.contextHash)) hexOf(e.contextHash, 'context hash');
    if (e.errorHash !== null) hexOf(e.errorHash, 'error hash');
    if (e.nondeterminismHash !== null) hexOf(e.nondeterminismHash, 'nondeterminism hash');
    if (!Number.isSafeInteger(e.startedUs) || !Number.isSafeInteger(e.endedUs) || (e.offset !== null && !Number.isSafeInteger(e.offset))) {
      throw new ProvenantError('INPUT_INVALID', `execution ${e.id}: its times and offset must be whole numbers`, { context: { executionId: e.id } });
    }
    if (!e.runId.isWellFormed() || !e.functionId.isWellFormed() || (e.streamId !== null && !e.streamId.isWellFormed())) {
      throw new ProvenantError('INPUT_INVALID', `execution ${e.id}: an id has a lone surrogate`, { context: { executionId: e.id } });
    }
    // Computed here from validated fields: a well-formed hash by construction.
    const recordHash = executionRecordHash(e);
    const encodings = encodeEncodings(e.outputEncoding, e.inputEncodings);
    const contextAt = this.#recurringDigest(e.contextHash, 'context hash');
    if (e.context !== this.#lastContext) {
      const contextHex = e.contextHash.slice(7);
      if (!this.contexts.has(contextHex)) this.contexts.set(contextHex, canonicalize(e.context));
      this.#lastContext = e.context;
    }
    const c = this.columns;
    const heap = this.heap;
    c.id.push(e.id);
    c.runId.push(e.runId);
    c.stepKey.push(this.#stepKeyOf(e.functionId, e.functionVersionHash));
    c.recordHashAt.push(heap.addHash(recordHash));
    c.paramsAt.push(this.#recurringDigest(e.paramsHash, 'params hash'));
    c.contextAt.push(contextAt);
    // The input before the output: the input may be the previous execution's output.
    let inputsAt = -1;
    if (single) {
      inputsAt = this.#inputDigest(e.inputHashes[0] as string);
    } else {
      // Several inputs lie side by side (one slice per execution).
      for (const h of e.inputHashes) {
        const at = heap.addHash(h);
        if (inputsAt < 0) inputsAt = at;
      }
    }
    if (e.outputHash === null) {
      c.outputAt.push(-1);
    } else {
      const at = heap.addHash(e.outputHash);
      c.outputAt.push(at);
      this.#lastOutput = e.outputHash;
      this.#lastOutputAt = at;
    }
    c.errorAt.push(e.errorHash === null ? -1 : heap.addHash(e.errorHash));
    c.nondeterminismAt.push(e.nondeterminismHash === null ? -1 : heap.addHash(e.nondeterminismHash));
    c.inputsAt.push(inputsAt < 0 ? 0 : inputsAt);
    c.inputsLength.push(e.inputHashes.length * 32);
    c.encodingsAt.push(encodings === null ? -1 : heap.addBytes(encodings));
    c.encodingsLength.push(encodings === null ? 0 : encodings.byteLength);
    c.started.push(e.startedUs);
    c.duration.push(e.endedUs - e.startedUs);
    c.status.push(e.status === 'ok' ? 0 : 1);
    c.stream.push(e.streamId);
    c.offset.push(e.offset);
  }

  /** The {@link stepKey} of a step version, made once per batch (not a new string per execution). */
  #stepKeyOf(stepId: string, versionHash: string): string {
    let versions = this.#stepKeys.get(stepId);
    if (versions === undefined) this.#stepKeys.set(stepId, (versions = new Map()));
    let key = versions.get(versionHash);
    if (key === undefined) versions.set(versionHash, (key = stepKey(stepId, versionHash)));
    return key;
  }

  addDeadLetter(executionId: string, reason: string): void {
    if (!this.columns.id.includes(executionId)) throw new TypeError(`dead letter ${executionId} is not in its batch`);
    this.deadLetters.push({ executionId, reason });
  }
}
