/**
 * Checkpoint rows of the PostgreSQL backend: a checkpoint's beginning goes into `checkpoints`
 * (IN_PROGRESS), its end is appended to `checkpoint_ends` in the same transaction as the
 * checkpoint's executions. Neither table is ever updated (triggers refuse it). The rules are the
 * SQLite backend's (`sqlite/checkpoints.ts`), checked in the same order with the same errors.
 */
import type pg from 'pg';
import { ProvenantError } from '../../errors.js';
import { canonicalize, hashFromBytes, hashToBytes, type ContentHash, type JsonValue } from '../../hash/canonical.js';
import { checkpointRecordHash } from '../../hash/record-hash.js';
import { isUuid } from '../../ids.js';
import type { CheckpointBegin, CheckpointEnd, CheckpointRecord, CheckpointTransition } from '../records.js';
import { sqlState } from './connection.js';

/** Columns selected for a {@link CheckpointRecord}. */
export const PG_CHECKPOINT_SELECT = `
SELECT c.seq, c.id::text AS id, r.id AS run_id, c.stream AS stream_id, c.previous::text AS previous, c.start_offset, c.started, c.pipeline,
       e.status, e.end_offset, e.ended, e.records, e.executions, e.failed, e.dead_lettered,
       e.first_execution::text AS first_execution, e.last_execution::text AS last_execution, e.state, e.sink, e.input_slice, e.reason, e.record_hash
FROM checkpoints c
JOIN runs r ON r.seq = c.run
LEFT JOIN checkpoint_ends e ON e.checkpoint = c.seq`;

/** A row of {@link PG_CHECKPOINT_SELECT}. */
export interface PgCheckpointRow {
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
  first_execution: string | null;
  last_execution: string | null;
  state: Buffer | null;
  sink: string | null;
  input_slice: Buffer | null;
  reason: string | null;
  record_hash: Buffer | null;
}

const optHash = (b: Buffer | null): ContentHash | null => (b === null ? null : hashFromBytes(b));

/** A stored row as a {@link CheckpointRecord}. */
export function toPgCheckpoint(row: PgCheckpointRow): CheckpointRecord {
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
    firstExecutionId: row.first_execution,
    lastExecutionId: row.last_execution,
    stateHash: optHash(row.state),
    sinkPosition: JSON.parse(row.sink ?? 'null') as JsonValue,
    inputSliceHash: optHash(row.input_slice),
    reason: row.reason,
  };
  return { ...begin, status: end.status, end, recordHash: optHash(row.record_hash) };
}

/**
 * Apply a transition inside the caller's transaction: end the current checkpoint, then open the
 * next. `runSeq` turns a run id into its row number (throwing NOT_FOUND).
 */
export async function applyTransition(
  client: pg.ClientBase,
  t: CheckpointTransition,
  location: string,
  runSeq: (id: string) => Promise<number>,
  onEnded?: (ended: { seq: number; recordHash: Buffer; status: string }) => Promise<void>,
): Promise<void> {
  if (t.end !== undefined) {
    const ended = await endCheckpoint(client, t.end, location);
    await onEnded?.(ended);
  }
  if (t.begin !== undefined) await beginCheckpoint(client, t.begin, location, runSeq);
}

async function beginCheckpoint(client: pg.ClientBase, b: CheckpointBegin, location: string, runSeq: (id: string) => Promise<number>): Promise<void> {
  checkId(b.checkpointId, 'checkpoint id');
  if (b.previousId !== null) checkId(b.previousId, 'previous checkpoint id');
  if (!Number.isSafeInteger(b.startOffset) || b.startOffset < 0) {
    throw new ProvenantError('CHECKPOINT_INVALID', `checkpoint ${b.checkpointId}: start offset ${b.startOffset} is not a whole number ≥ 0`, {
      context: { checkpointId: b.checkpointId },
    });
  }
  await requireBlob(client, b.pipelineHash, b.checkpointId, 'pipeline');
  const run = await runSeq(b.runId);
  try {
    await client.query({
      name: 'provenant_checkpoint_begin',
      text: 'INSERT INTO checkpoints (id, run, stream, previous, start_offset, started, pipeline) VALUES ($1, $2, $3, $4, $5, $6, $7)',
      values: [b.checkpointId, run, b.streamId, b.previousId, b.startOffset, b.startedUs, hashToBytes(b.pipelineHash)],
    });
  } catch (err) {
    if (sqlState(err) === '23505') {
      throw new ProvenantError('CHECKPOINT_INVALID', `checkpoint ${b.checkpointId} already exists in ${location}`, { context: { checkpointId: b.checkpointId } });
    }
    throw err;
  }
}

async function endCheckpoint(client: pg.ClientBase, e: CheckpointEnd, location: string): Promise<{ seq: number; recordHash: Buffer; status: string }> {
  if (!isUuid(e.checkpointId)) {
    throw new ProvenantError('NOT_FOUND', `checkpoint ${e.checkpointId} does not exist in ${location}`, { context: { checkpointId: e.checkpointId } });
  }
  // FOR UPDATE OF c: two workers ending the same checkpoint at once are serialized; the second sees the end.
  const r = await client.query<PgCheckpointRow>({
    name: 'provenant_checkpoint_get_locked',
    text: `${PG_CHECKPOINT_SELECT} WHERE c.id = $1 FOR SHARE OF c`,
    values: [e.checkpointId],
  });
  const row = r.rows[0];
  if (row === undefined) {
    throw new ProvenantError('NOT_FOUND', `checkpoint ${e.checkpointId} does not exist in ${location}`, { context: { checkpointId: e.checkpointId } });
  }
  const current = toPgCheckpoint(row);
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
  if (e.stateHash !== null) await requireBlob(client, e.stateHash, e.checkpointId, 'state snapshot');
  if (e.inputSliceHash !== null) await requireBlob(client, e.inputSliceHash, e.checkpointId, 'input slice');
  for (const id of [e.firstExecutionId, e.lastExecutionId]) if (id !== null) checkId(id, 'execution id');
  const recordHash = checkpointRecordHash(current, e);
  try {
    await client.query({
      name: 'provenant_checkpoint_end',
      text: `INSERT INTO checkpoint_ends (checkpoint, status, end_offset, ended, records, executions, failed, dead_lettered,
                                         first_execution, last_execution, state, sink, input_slice, reason, record_hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
      values: [
        row.seq,
        e.status,
        e.endOffset,
        e.endedUs,
        e.records,
        e.executions,
        e.failed,
        e.deadLettered,
        e.firstExecutionId,
        e.lastExecutionId,
        e.stateHash === null ? null : hashToBytes(e.stateHash),
        canonicalize(e.sinkPosition),
        e.inputSliceHash === null ? null : hashToBytes(e.inputSliceHash),
        e.reason,
        hashToBytes(recordHash),
      ],
    });
    return { seq: row.seq, recordHash: hashToBytes(recordHash), status: e.status };
  } catch (err) {
    if (sqlState(err) === '23505') {
      throw new ProvenantError('CHECKPOINT_INVALID', `checkpoint ${e.checkpointId} has already ended`, {
        hint: 'A checkpoint ends once; history is append-only.',
        context: { checkpointId: e.checkpointId },
      });
    }
    throw err;
  }
}

async function requireBlob(client: pg.ClientBase, hash: ContentHash, checkpointId: string, what: string): Promise<void> {
  const r = await client.query({ name: 'provenant_has_blob', text: 'SELECT 1 FROM blobs WHERE hash = $1', values: [hashToBytes(hash)] });
  if (r.rowCount === 0) {
    throw new ProvenantError('BLOB_MISSING', `checkpoint ${checkpointId}: its ${what} ${hash} is not stored`, {
      hint: 'Store the value in the same batch as the checkpoint (or before it).',
      context: { checkpointId, hash },
    });
  }
}

function checkId(id: string, what: string): void {
  if (!isUuid(id)) throw new ProvenantError('CHECKPOINT_INVALID', `${what} is not a UUID: ${id}`, { context: { checkpointId: id } });
}
