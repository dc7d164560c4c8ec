/**
 * The writer thread of the embedded store: owns its own connection and applies packed batches
 * in the order they arrive, each in its own transaction, answering each with `{ id }` or
 * `{ id, error }`. Capture hashes on the main thread while this thread writes, using both cores.
 * (Applying several queued batches in one transaction was measured slower: larger transactions
 * cost more at commit than they save.)
 */
import Database from 'better-sqlite3';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { ProvenantError } from '../../errors.js';
import { BatchApplier, configureConnection } from './apply-batch.js';
import type { PackedBatch } from './packed-batch.js';

interface WriterData {
  readonly databasePath: string;
  readonly location: string;
  readonly tamperEvidence: boolean;
  readonly cacheMiB: number;
}

interface Request {
  readonly id: number;
  readonly batch?: PackedBatch;
  readonly close?: true;
}

const port = parentPort as MessagePort;
const data = workerData as WriterData;
const db = new Database(data.databasePath);
configureConnection(db, data.cacheMiB);
const applier = new BatchApplier(db, data.location, data.tamperEvidence);

function describe(err: unknown): { code?: string; message: string; hint?: string; context?: Record<string, unknown> } {
  if (err instanceof ProvenantError) {
    return { code: err.code, message: err.message, ...(err.hint === undefined ? {} : { hint: err.hint }), context: { ...err.context } };
  }
  return { message: err instanceof Error ? err.message : String(err) };
}

port.on('message', (msg: Request) => {
  if (msg.close === true) {
    db.close();
    port.postMessage({ id: msg.id });
    return;
  }
  try {
    if (msg.batch !== undefined) applier.apply(msg.batch);
    port.postMessage({ id: msg.id });
  } catch (err) {
    port.postMessage({ id: msg.id, error: describe(err) });
  }
});
