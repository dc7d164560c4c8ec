/**
 * Checkpoint rows of the SQLite backend. A checkpoint's beginning goes into `checkpoints`
 * (IN_PROGRESS); its end is appended to `checkpoint_ends` in the same transaction as the
 * checkpoint's executions (see apply-batch.ts). Neither table is ever updated.
 */
import { blobStoredSql } from './blob-table.js';
import type Database from 'better-sqlite3';
import { ProvenantError } from '../../errors.js';
import { canonicalize, hashFromBytes, hashToBytes, type ContentHash, type JsonValue } from '../../hash/canonical.js';
import { checkpointRecordHash } from '../../hash/record-hash.js';
import { uuidFromBytes, uuidToBytes, isUuid } from '../../ids.js';
import type { CheckpointBegin, CheckpointEnd, CheckpointRecord, CheckpointTransition } from '../records.js';
import { LEAF_CHECKPOINT } from '../../merkle/segments.js';
import type { MerkleLogWriter } from './merkle-log.js';

/** Columns selected for a {@link CheckpointRecord}. */
export const CHECKPOINT_SELECT = `
SELECT c.seq, c.id, r.id AS run_id, s.id AS stream_id, c.previous, c.start_offset, c.started, c.pipeline,
       e.status, e.end_offset, e.ended, e.records, e.executions, e.failed, e.dead_lettered,
       e.first_execution, e.last_execution, e.state, e.sink, e.input_slice, e.reason, e.record_hash
FROM checkpoints c
JOIN runs r ON r.seq = c.run
JOIN streams s ON s.seq = c.stream
LEFT JOIN checkpoint_ends e ON e.checkpoint = c.seq`;

/** A row of {@link CHECKPOINT_SELECT}. */
export interface CheckpointRow {
  seq: number;
  id: string;
  run_id: string;
  stream_id: string;
  previous: string | null;
  start_offset: number;
  started: number;
  pipeline: Buffer;
  status: string | null;
  end_offset: number | null;
  ended: number | null;
  records: number | null;
  executions: number | null;
  failed: number | null;
  dead_lettered: number | null;
  first_execution: Buffer | null;
  last_execution: Buffer | null;
  state: Buffer | null;
  sink: string | null;
  input_slice: Buffer | null;
  reason: string | null;
  record_hash: Buffer | null;
}

const optHash = (b: Buffer | null): ContentHash | null => (b === null ? null : hashFromBytes(b));

/** A stored row as a {@link CheckpointRecord}. */
export function toCheckpoint(row: CheckpointRow): CheckpointRecord {
  const begin: CheckpointBegin = {
    checkpointId: row.id,
    runId: row.run_id,
    streamId: row.stream_id,
    previousId: row.previous,
    startOffset: row.start_offset,
    startedUs: row.started,
    pipelineHash: hashFromBytes(row.pipeline),
  };
  if (row.status === null) return { ...begin, status: 'IN_PROGRESS', end: null, recordHash: null };
  const end: CheckpointEnd = {
    checkpointId: row.id,
    status: row.status as CheckpointEnd['status'],
    endOffset: row.end_offset ?? 0,
    endedUs: row.ended ?? 0,
    records: row.records ?? 0,
    executions: row.executions ?? 0,
    failed: row.failed ?? 0,
    deadLettered: row.dead_lettered ?? 0,
    firstExecutionId: row.first_execution === null ? null : uuidFromBytes(row.first_execution),
    lastExecutionId: row.last_execution === null ? null : uuidFromBytes(row.last_execution),
    stateHash: optHash(row.state),
    sinkPosition: JSON.parse(row.sink ?? 'null') as JsonValue,
    inputSliceHash: optHash(row.input_slice),
    reason: row.reason,
  };
  return { ...begin, status: end.status, end, recordHash: optHash(row.record_hash) };
}

/** Writes checkpoint beginnings and ends through one connection (inside the caller's transaction). */
export class CheckpointWriter {
  readonly #location: string;
  readonly #stmt;
  readonly #log: MerkleLogWriter;

  /** `log`: where the ended checkpoints' leaves (and the COMPLETE ones' tree heads) are appended. */
  constructor(db: Database.Database, location: string, log: MerkleLogWriter) {
    this.#location = location;
    this.#log = log;
    this.#stmt = {
      insertBegin: db.prepare(
        'INSERT INTO checkpoints (id, run, stream, previous, start_offset, started, pipeline) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      get: db.prepare(`${CHECKPOINT_SELECT} WHERE c.id = ?`),
      insertEnd: db.prepare(`
        INSERT INTO checkpoint_ends (checkpoint, status, end_offset, ended, records, executions, failed, dead_lettered,
                                     first_execution, last_execution, state, sink, input_slice, reason, record_hash)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      hasBlob: db.prepare(`SELECT ${blobStoredSql('@hash')}`).pluck(),
    };
  }

  /**
   * Apply a transition: end the current checkpoint, then open the next. Call inside a transaction.
   * `runSeq`/`streamSeq` intern ids to row numbers.
   */
  apply(t: CheckpointTransition, runSeq: (id: string) => number, streamSeq: (id: string) => number): void {
    if (t.end !== undefined) this.end(t.end);
    if (t.begin !== undefined) this.begin(t.begin, runSeq, streamSeq);
  }

  begin(b: CheckpointBegin, runSeq: (id: string) => number, streamSeq: (id: string) => number): void {
    checkId(b.checkpointId, 'checkpoint id');
    if (b.previousId !== null) checkId(b.previousId, 'previous checkpoint id');
    if (!Number.isSafeInteger(b.startOffset) || b.startOffset < 0) {
      throw new ProvenantError('CHECKPOINT_INVALID', `checkpoint ${b.checkpointId}: start offset ${b.startOffset} is not a whole number ≥ 0`, {
        context: { checkpointId: b.checkpointId },
      });
    }
    this.#requireBlob(b.pipelineHash, b.checkpointId, 'pipeline');
    try {
      this.#stmt.insertBegin.run(b.checkpointId, runSeq(b.runId), streamSeq(b.streamId), b.previousId, b.startOffset, b.startedUs, hashToBytes(b.pipelineHash));
    } catch (err) {
      if (String((err as { code?: unknown }).code).startsWith('SQLITE_CONSTRAINT')) {
        throw new ProvenantError('CHECKPOINT_INVALID', `checkpoint ${b.checkpointId} already exists in ${this.#location}`, {
          context: { checkpointId: b.checkpointId },
        });
      }
      throw err;
    }
  }

  end(e: CheckpointEnd): void {
    const row = this.#stmt.get.get(e.checkpointId) as CheckpointRow | undefined;
    if (row === undefined) {
      throw new ProvenantError('NOT_FOUND', `checkpoint ${e.checkpointId} does not exist in ${this.#location}`, {
        context: { checkpointId: e.checkpointId },
      });
    }
    const current = toCheckpoint(row);
    if (current.end !== null) {
      throw new ProvenantError('CHECKPOINT_INVALID', `checkpoint ${e.checkpointId} has already ended (${current.status})`, {
        hint: 'A checkpoint ends once; history is append-only.',
        context: { checkpointId: e.checkpointId, status: current.status },
      });
    }
    if (!Number.isSafeInteger(e.endOffset) || e.endOffset < current.startOffset) {
      throw new ProvenantError('CHECKPOINT_INVALID', `checkpoint ${e.checkpointId}: end offset ${e.endOffset} is before its start ${current.startOffset}`, {
        context: { checkpointId: e.checkpointId, startOffset: current.startOffset, endOffset: e.endOffset },
      });
    }
    if (e.stateHash !== null) this.#requireBlob(e.stateHash, e.checkpointId, 'state snapshot');
    if (e.inputSliceHash !== null) this.#requireBlob(e.inputSliceHash, e.checkpointId, 'input slice');
    const recordHash = checkpointRecordHash(current, e);
    this.#stmt.insertEnd.run(
      row.seq,
      e.status,
      e.endOffset,
      e.endedUs,
      e.records,
      e.executions,
      e.failed,
      e.deadLettered,
      e.firstExecutionId === null ? null : uuidToBytes(e.firstExecutionId),
      e.lastExecutionId === null ? null : uuidToBytes(e.lastExecutionId),
      e.stateHash === null ? null : hashToBytes(e.stateHash),
      canonicalize(e.sinkPosition),
      e.inputSliceHash === null ? null : hashToBytes(e.inputSliceHash),
      e.reason,
      hashToBytes(recordHash),
    );
    this.#log.append({ kind: LEAF_CHECKPOINT, scope: row.seq, entries: [hashToBytes(recordHash)] });
    if (e.status === 'COMPLETE') this.#log.recordHead(row.seq);
  }

  #requireBlob(hash: ContentHash, checkpointId: string, what: string): void {
    if (this.#stmt.hasBlob.get({ hash: hashToBytes(hash) }) !== 1) {
      throw new ProvenantError('BLOB_MISSING', `checkpoint ${checkpointId}: its ${what} ${hash} is not stored`, {
        hint: 'Store the value in the same batch as the checkpoint (or before it).',
        context: { checkpointId, hash },
      });
    }
  }
}

function checkId(id: string, what: string): void {
  if (!isUuid(id)) throw new ProvenantError('CHECKPOINT_INVALID', `${what} is not a UUID: ${id}`, { context: { checkpointId: id } });
}
