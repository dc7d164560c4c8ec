/**
 * The Merkle log of the SQLite backend (see migration 4 and src/merkle/). Leaves are appended in
 * segments inside the caller's transaction, so a record and its leaf commit together; each
 * segment row keeps the tree's frontier after it, so appending never reads earlier leaves. Both
 * connections of a store (main and writer thread) append: the frontier is read from the last
 * segment at each append (cached while no other connection has appended).
 *
 * Leaf kinds: {@link LEAF_EXECUTIONS} (a range of one run's executions), {@link LEAF_CHECKPOINT},
 * {@link LEAF_OBJECT_VERSIONS}; a new kind appends through the same {@link MerkleLogWriter.append}
 * and is read back by `MerkleLogReader.records`.
 */
import type Database from 'better-sqlite3';
import { hashFromBytes, type ContentHash } from '../../hash/canonical.js';
import { nowUs } from '../../ids.js';
import { Frontier, leafHash } from '../../merkle/tree.js';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { keyId, loadSigningKey, signHead } from '../../merkle/head.js';
import { LEAF_CHECKPOINT, LEAF_EXECUTIONS, LEAF_OBJECT_VERSIONS, executionsSegment, type LogSegment } from '../../merkle/segments.js';

/** Appends segments through one connection, inside the caller's transaction. */
export class MerkleLogWriter {
  readonly #stmt;
  readonly #storeDir: string | undefined;
  #cached: { seq: number; frontier: Frontier } | undefined;
  #key: { key: KeyObject; seq: number | undefined } | undefined;

  readonly #enabled: boolean;

  /** `storeDir`: where the signing key is (undefined: heads are not signed); `enabled`: false appends nothing (benchmarks only). */
  constructor(db: Database.Database, storeDir?: string, enabled = true) {
    this.#storeDir = storeDir;
    this.#enabled = enabled;
    this.#stmt = {
      last: db.prepare('SELECT seq, tree_size, frontier FROM merkle_segments ORDER BY seq DESC LIMIT 1'),
      insert: db.prepare(
        'INSERT INTO merkle_segments (kind, scope, first, last, ids, leaves, tree_size, frontier) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      maxId: db.prepare('SELECT max(id) AS id FROM executions WHERE run = ?'),
      version: db.prepare('SELECT seq, record_hash FROM object_versions WHERE id = ?'),
      insertKey: db.prepare('INSERT OR IGNORE INTO signing_keys (key_id, public_key, created) VALUES (?, ?, ?)'),
      keySeq: db.prepare('SELECT seq FROM signing_keys WHERE key_id = ?'),
      insertHead: db.prepare('INSERT INTO tree_heads (checkpoint, tree_size, root, timestamp, key, signature) VALUES (?, ?, ?, ?, ?, ?)'),
    };
  }

  /** The current frontier (read inside the transaction). */
  #frontier(): Frontier {
    const row = this.#stmt.last.get() as { seq: number; tree_size: number; frontier: Buffer } | undefined;
    if (row === undefined) return new Frontier();
    if (this.#cached?.seq === row.seq) return this.#cached.frontier;
    return Frontier.decode(row.tree_size, row.frontier);
  }

  /** Append a segment of leaves. Call inside a transaction. */
  append(segment: LogSegment): void {
    if (segment.entries.length === 0 || !this.#enabled) return;
    const frontier = this.#frontier().clone();
    for (const entry of segment.entries) frontier.push(leafHash(entry));
    const info = this.#stmt.insert.run(
      segment.kind,
      segment.scope,
      segment.first ?? null,
      segment.last ?? null,
      segment.ids ?? null,
      segment.entries.length,
      frontier.size,
      frontier.encode(),
    );
    this.#cached = { seq: Number(info.lastInsertRowid), frontier };
  }

  /**
   * Append a batch's executions of one run (ids 16 bytes, record hashes 32 bytes, as they will be
   * inserted). Call inside the transaction, BEFORE inserting them: a clean range needs every id
   * above the run's current largest.
   */
  appendExecutions(runSeq: number, executions: readonly { id: Buffer; recordHash: Buffer }[]): void {
    if (executions.length === 0 || !this.#enabled) return;
    const max = (this.#stmt.maxId.get(runSeq) as { id: Buffer | null }).id;
    this.append(executionsSegment(runSeq, max, executions.map((e) => e.id), executions.map((e) => e.recordHash)));
  }

  /** Append object versions just inserted (their 16-byte ids, in insertion order). Call inside the transaction. */
  appendObjectVersions(ids: readonly Buffer[]): void {
    if (ids.length === 0 || !this.#enabled) return;
    const rows = ids.map((id) => this.#stmt.version.get(id) as { seq: number; record_hash: Buffer });
    for (let i = 1; i < rows.length; i++) if (rows[i]!.seq !== rows[i - 1]!.seq + 1) throw new TypeError('object versions of one commit must have consecutive seqs');
    this.append({ kind: LEAF_OBJECT_VERSIONS, scope: rows[0]!.seq, entries: rows.map((r) => r.record_hash) });
  }

  /** The tree's size and root now (inside the transaction). */
  head(): { size: number; root: ContentHash } {
    const f = this.#frontier();
    return { size: f.size, root: hashFromBytes(f.root()) };
  }

  /** Record a tree head for a checkpoint, signed when the store has a key. Call inside a transaction. */
  recordHead(checkpointSeq: number): void {
    if (!this.#enabled) return;
    const { size, root } = this.head();
    const timestampUs = nowUs();
    const key = this.#signingKey();
    if (key === undefined) {
      this.#stmt.insertHead.run(checkpointSeq, size, Buffer.from(root.slice(7), 'hex'), timestampUs, null, null);
      return;
    }
    const signed = signHead({ treeSize: size, rootHash: root, timestampUs }, key.key);
    if (key.seq === undefined) {
      const pub = createPublicKey(key.key);
      const id = Buffer.from(keyId(pub).slice(7), 'hex');
      this.#stmt.insertKey.run(id, pub.export({ type: 'spki', format: 'pem' }), nowUs());
      key.seq = (this.#stmt.keySeq.get(id) as { seq: number }).seq;
    }
    this.#stmt.insertHead.run(checkpointSeq, size, Buffer.from(root.slice(7), 'hex'), timestampUs, key.seq, Buffer.from(signed.signature as string, 'base64'));
  }

  /** Forget what a rolled-back transaction may have left cached. */
  reset(): void {
    this.#cached = undefined;
    if (this.#key !== undefined) this.#key.seq = undefined;
  }

  #signingKey(): { key: KeyObject; seq: number | undefined } | undefined {
    if (this.#key === undefined && this.#storeDir !== undefined) {
      const key = loadSigningKey(this.#storeDir);
      if (key !== undefined) this.#key = { key, seq: undefined };
    }
    return this.#key;
  }
}

/**
 * Migration 4 on a store that already has records: append them to the new log, checkpoints and
 * executions in the order they were opened and committed as far as the store can tell (runs in
 * order; each run's executions in id order; each ended checkpoint after its run's executions).
 * Heads are not back-signed: the next COMPLETE checkpoint signs a head covering them all.
 */
export function backfillMerkleLog(db: Database.Database): void {
  const log = new MerkleLogWriter(db);
  const runs = db.prepare('SELECT seq FROM runs ORDER BY seq').all() as { seq: number }[];
  const executions = db.prepare('SELECT id, record_hash FROM executions WHERE run = ? ORDER BY id');
  const checkpoints = db.prepare(
    'SELECT c.seq, e.record_hash FROM checkpoints c JOIN checkpoint_ends e ON e.checkpoint = c.seq WHERE c.run = ? ORDER BY c.seq',
  );
  for (const { seq } of runs) {
    const rows = executions.all(seq) as { id: Buffer; record_hash: Buffer }[];
    log.append({
      kind: LEAF_EXECUTIONS,
      scope: seq,
      first: rows[0]?.id ?? null,
      last: rows[rows.length - 1]?.id ?? null,
      entries: rows.map((r) => r.record_hash),
    });
    for (const c of checkpoints.all(seq) as { seq: number; record_hash: Buffer }[]) {
      log.append({ kind: LEAF_CHECKPOINT, scope: c.seq, entries: [c.record_hash] });
    }
  }
  const versions = db.prepare('SELECT seq, record_hash FROM object_versions ORDER BY seq').all() as { seq: number; record_hash: Buffer }[];
  // One segment per run of consecutive seqs.
  for (let i = 0; i < versions.length; ) {
    let j = i + 1;
    while (j < versions.length && versions[j]!.seq === versions[j - 1]!.seq + 1) j++;
    log.append({ kind: LEAF_OBJECT_VERSIONS, scope: versions[i]!.seq, entries: versions.slice(i, j).map((v) => v.record_hash) });
    i = j;
  }
}
