/**
 * The writer thread of the embedded store: owns its own connection and applies packed batches
 * in the order they arrive, answering each with `{ id }` or `{ id, error }`. Capture hashes on
 * the main thread while this thread writes, using both cores.
 *
 * When several batches are already queued, they are applied together in one transaction (each
 * batch stays whole): fewer commits, and the random pages of the value index are written once
 * for many inserts. If that combined transaction fails, the batches are retried one by one so
 * that each gets its own answer.
 */
import Database from 'better-sqlite3';
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { ProvenantError } from '../../errors.js';
import { BatchApplier, configureConnection } from './apply-batch.js';
import type { PackedBatch } from './packed-batch.js';

interface WriterData {
  readonly databasePath: string;
  readonly location: string;
}

interface Request {
  readonly id: number;
  readonly batch?: PackedBatch;
  readonly close?: true;
}

const MAX_COALESCED = 1;
const port = parentPort as MessagePort;
const data = workerData as WriterData;
const db = new Database(data.databasePath);
configureConnection(db);
const applier = new BatchApplier(db, data.location);

function describe(err: unknown): { code?: string; message: string; hint?: string; context?: Record<string, unknown> } {
  if (err instanceof ProvenantError) {
    return { code: err.code, message: err.message, ...(err.hint === undefined ? {} : { hint: err.hint }), context: { ...err.context } };
  }
  return { message: err instanceof Error ? err.message : String(err) };
}

function applyAll(requests: Request[]): void {
  const batches = requests.flatMap((r) => (r.batch === undefined ? [] : [r.batch]));
  try {
    applier.apply(...batches);
    for (const r of requests) port.postMessage({ id: r.id });
  } catch (err) {
    if (requests.length === 1) {
      port.postMessage({ id: requests[0]?.id, error: describe(err) });
      return;
    }
    for (const r of requests) applyAll([r]);
  }
}

port.on('message', (first: Request) => {
  const queue: Request[] = [first];
  let close = first.close === true;
  while (!close && queue.length < MAX_COALESCED) {
    const next = receiveMessageOnPort(port);
    if (next === undefined) break;
    const msg = next.message as Request;
    if (msg.close) close = true;
    queue.push(msg);
  }
  const writes = queue.filter((r) => r.close !== true);
  if (writes.length > 0) applyAll(writes);
  for (const r of queue) {
    if (r.close === true) {
      db.close();
      port.postMessage({ id: r.id });
    }
  }
});
