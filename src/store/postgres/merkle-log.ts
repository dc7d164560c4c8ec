/**
 * The Merkle log of the PostgreSQL backend: the same log as the SQLite backend's
 * (src/store/sqlite/merkle-log.ts, src/merkle/), in tables of migration 7.
 *
 * Several workers commit at once here, and a log needs one total order: every transaction that
 * appends takes one transaction-level advisory lock ({@link PgMerkleLog.lock}) just before its
 * commit — after its inserts, so workers still insert in parallel — reads the last segment's
 * frontier, appends, and commits, which releases the lock. A segment row is therefore always
 * appended on top of the previous commit's.
 *
 * Signing: heads are signed with an Ed25519 key kept OUTSIDE the database, in
 * `$PROVENANT_KEYS_DIR` (default `~/.provenant/keys`) under a folder named after the store
 * (`pg-<host>-<port>-<database>-<schema>/keys/tree-head-ed25519.pem`), created at the first head a
 * process signs. Workers on other machines sign with their own keys; each public key is recorded in
 * `signing_keys` and each head names its key.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { hashFromBytes, type ContentHash } from '../../hash/canonical.js';
import { nowUs } from '../../ids.js';
import { createSigningKey, keyId, loadSigningKey, signHead } from '../../merkle/head.js';
import { Frontier, leafHash } from '../../merkle/tree.js';
import { LEAF_CHECKPOINT, LEAF_OBJECT_VERSIONS, executionsSegment, executionsSegmentOfText, type LogSegment } from '../../merkle/segments.js';

/** Where the signing key of the PostgreSQL store at this server/database/schema lives (see the module comment). */
export function pgKeyHome(where: { host: string; port: string; database: string; schema: string }): string {
  const root = process.env.PROVENANT_KEYS_DIR ?? join(homedir(), '.provenant', 'keys');
  const name = `pg-${where.host}-${where.port}-${where.database}-${where.schema}`.replace(/[^A-Za-z0-9._-]/g, '_');
  return join(root, name);
}

/** The lock every log append of one schema takes (held until the transaction ends). */
function lockKey(schema: string): string {
  return `provenant.merkle.${schema}`;
}

/** One run's executions of a batch, in insertion order, to append as one segment. */
export interface RunLeaves {
  readonly runSeq: number;
  /** The run's largest execution id before this batch (null: none), to tell a clean range. */
  readonly previousMax: Buffer | null;
  /** The executions' ids, as canonical UUID text. */
  readonly ids: readonly string[];
  readonly recordHashes: readonly Buffer[];
}

/**
 * One {@link RunLeaves} per run of a batch's executions (columns as the batch holds them: ids as
 * text, record hashes at offsets in `heap`), with each run's largest execution id so far.
 * Call before inserting the batch's executions.
 */
export async function runLeavesOf(
  client: pg.ClientBase,
  columns: { readonly id: readonly string[]; readonly runId: readonly string[]; readonly recordHashAt: readonly number[] },
  heap: Uint8Array,
  runs: ReadonlyMap<string, number>,
): Promise<RunLeaves[]> {
  const max = await client.query<{ run: number; max: Buffer | null }>({
    name: 'provenant_runs_max_id',
    text: 'SELECT r AS run, (SELECT uuid_send(id) FROM executions WHERE run = r ORDER BY id DESC LIMIT 1) AS max FROM unnest($1::bigint[]) AS r',
    values: [[...runs.values()]],
  });
  const maxOf = new Map(max.rows.map((r) => [r.run, r.max]));
  const byRun = new Map<number, RunLeaves & { ids: string[]; recordHashes: Buffer[] }>();
  for (let i = 0; i < columns.id.length; i++) {
    const runSeq = runs.get(columns.runId[i] as string) as number;
    let leaves = byRun.get(runSeq);
    if (leaves === undefined) byRun.set(runSeq, (leaves = { runSeq, previousMax: maxOf.get(runSeq) ?? null, ids: [], recordHashes: [] }));
    leaves.ids.push(columns.id[i] as string);
    leaves.recordHashes.push(Buffer.from(heap.buffer, heap.byteOffset + (columns.recordHashAt[i] as number), 32));
  }
  return [...byRun.values()];
}

/** Appends to the log inside the caller's transaction. */
export class PgMerkleLog {
  readonly #schema: string;
  readonly #keyHome: string | undefined;
  #key: KeyObject | undefined;

  /** `keyHome`: where the signing key is (undefined: heads are recorded unsigned, for backfill only). */
  constructor(schema: string, keyHome: string | undefined) {
    this.#schema = schema;
    this.#keyHome = keyHome;
  }

  /** Take the log's lock for the rest of the transaction. Call after the transaction's inserts. */
  async lock(client: pg.ClientBase): Promise<void> {
    await client.query({ name: 'provenant_merkle_lock', text: 'SELECT pg_advisory_xact_lock(hashtext($1))', values: [lockKey(this.#schema)] });
  }

  async #frontier(client: pg.ClientBase): Promise<Frontier> {
    const r = await client.query<{ tree_size: number; frontier: Buffer }>({
      name: 'provenant_merkle_last',
      text: 'SELECT tree_size, frontier FROM merkle_segments ORDER BY seq DESC LIMIT 1',
    });
    const row = r.rows[0];
    return row === undefined ? new Frontier() : Frontier.decode(row.tree_size, row.frontier);
  }

  /** Append segments of leaves, in order. Call holding the lock. */
  async append(client: pg.ClientBase, segments: readonly LogSegment[]): Promise<void> {
    const todo = segments.filter((s) => s.entries.length > 0);
    if (todo.length === 0) return;
    const frontier = await this.#frontier(client);
    const cols = { kind: [] as number[], scope: [] as number[], first: [] as (string | null)[], last: [] as (string | null)[], ids: [] as (string | null)[], leaves: [] as number[], size: [] as number[], frontier: [] as string[] };
    const hex = (b: Buffer | null | undefined): string | null => (b === null || b === undefined ? null : b.toString('hex'));
    for (const s of todo) {
      for (const entry of s.entries) frontier.push(leafHash(entry));
      cols.kind.push(s.kind);
      cols.scope.push(s.scope);
      cols.first.push(hex(s.first));
      cols.last.push(hex(s.last));
      cols.ids.push(hex(s.ids));
      cols.leaves.push(s.entries.length);
      cols.size.push(frontier.size);
      cols.frontier.push(frontier.encode().toString('hex'));
    }
    await client.query({
      name: 'provenant_merkle_append',
      text: `INSERT INTO merkle_segments (kind, scope, first, last, ids, leaves, tree_size, frontier)
             SELECT k, s, decode(f, 'hex'), decode(l, 'hex'), decode(i, 'hex'), n, z, decode(fr, 'hex')
             FROM unnest($1::smallint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::text[])
               WITH ORDINALITY AS t(k, s, f, l, i, n, z, fr, o) ORDER BY o`,
      values: [cols.kind, cols.scope, cols.first, cols.last, cols.ids, cols.leaves, cols.size, cols.frontier],
    });
  }

  /** The segments of a batch's executions, one per run (a clean id range when it can be one). */
  static executionSegments(runs: readonly RunLeaves[]): LogSegment[] {
    return runs.map((r) => executionsSegmentOfText(r.runSeq, r.previousMax, r.ids, r.recordHashes));
  }

  /** The segment of one ended checkpoint. */
  static checkpointSegment(checkpointSeq: number, recordHash: Buffer): LogSegment {
    return { kind: LEAF_CHECKPOINT, scope: checkpointSeq, entries: [recordHash] };
  }

  /** The segment of object versions committed together (their ids listed: seqs may have gaps here). */
  static objectVersionSegment(versions: readonly { seq: number; id: Buffer; recordHash: Buffer }[]): LogSegment {
    return { kind: LEAF_OBJECT_VERSIONS, scope: versions[0]?.seq ?? 0, ids: Buffer.concat(versions.map((v) => v.id)), entries: versions.map((v) => v.recordHash) };
  }

  /** The tree's size and root now (holding the lock). */
  async head(client: pg.ClientBase): Promise<{ size: number; root: ContentHash }> {
    const f = await this.#frontier(client);
    return { size: f.size, root: hashFromBytes(f.root()) };
  }

  /** Record a signed tree head for a COMPLETE checkpoint. Call holding the lock, after its leaf. */
  async recordHead(client: pg.ClientBase, checkpointSeq: number): Promise<void> {
    const { size, root } = await this.head(client);
    const timestampUs = nowUs();
    const key = await this.#signingKey(client);
    const rootBytes = Buffer.from(root.slice(7), 'hex');
    if (key === undefined) {
      await client.query('INSERT INTO tree_heads (checkpoint, tree_size, root, timestamp, key, signature) VALUES ($1, $2, $3, $4, NULL, NULL)', [checkpointSeq, size, rootBytes, timestampUs]);
      return;
    }
    const signed = signHead({ treeSize: size, rootHash: root, timestampUs }, key.key);
    await client.query({
      name: 'provenant_merkle_head',
      text: 'INSERT INTO tree_heads (checkpoint, tree_size, root, timestamp, key, signature) VALUES ($1, $2, $3, $4, $5, $6)',
      values: [checkpointSeq, size, rootBytes, timestampUs, key.seq, Buffer.from(signed.signature as string, 'base64')],
    });
  }

  /** This process's signing key and its row (recorded in this transaction if it is new: nothing is cached across a rollback). */
  async #signingKey(client: pg.ClientBase): Promise<{ key: KeyObject; seq: number } | undefined> {
    if (this.#keyHome === undefined) return undefined;
    if (this.#key === undefined) {
      createSigningKey(this.#keyHome);
      this.#key = loadSigningKey(this.#keyHome);
      if (this.#key === undefined) return undefined;
    }
    const pub = createPublicKey(this.#key);
    const id = Buffer.from(keyId(pub).slice(7), 'hex');
    const r = await client.query<{ seq: number }>({
      name: 'provenant_signing_key',
      text: `WITH ins AS (INSERT INTO signing_keys (key_id, public_key, created) VALUES ($1, $2, $3) ON CONFLICT (key_id) DO NOTHING RETURNING seq)
             SELECT seq FROM ins UNION ALL SELECT seq FROM signing_keys WHERE key_id = $1 LIMIT 1`,
      values: [id, pub.export({ type: 'spki', format: 'pem' }), nowUs()],
    });
    return { key: this.#key, seq: (r.rows[0] as { seq: number }).seq };
  }
}

/**
 * Migration 7 on a store that already has records: append them to the new log (runs in order,
 * each run's executions in id order, then its ended checkpoints; then object versions in seq
 * order). Heads are not back-signed: the next COMPLETE checkpoint signs a head covering them all.
 */
export async function backfillPgMerkleLog(client: pg.ClientBase): Promise<void> {
  const log = new PgMerkleLog('', undefined);
  const runs = await client.query<{ seq: number }>('SELECT seq FROM runs ORDER BY seq');
  for (const { seq } of runs.rows) {
    const rows = (await client.query<{ id: Buffer; record_hash: Buffer }>('SELECT uuid_send(id) AS id, record_hash FROM executions WHERE run = $1 ORDER BY id', [seq])).rows;
    const segments: LogSegment[] = [executionsSegment(seq, null, rows.map((r) => r.id), rows.map((r) => r.record_hash))];
    const ended = await client.query<{ seq: number; record_hash: Buffer }>(
      'SELECT c.seq, e.record_hash FROM checkpoints c JOIN checkpoint_ends e ON e.checkpoint = c.seq WHERE c.run = $1 ORDER BY c.seq',
      [seq],
    );
    for (const c of ended.rows) segments.push(PgMerkleLog.checkpointSegment(c.seq, c.record_hash));
    await log.append(client, segments);
  }
  const versions = await client.query<{ seq: number; id: Buffer; record_hash: Buffer }>('SELECT seq, uuid_send(id) AS id, record_hash FROM object_versions ORDER BY seq');
  for (let i = 0; i < versions.rows.length; i += 1000) {
    const chunk = versions.rows.slice(i, i + 1000);
    await log.append(client, [PgMerkleLog.objectVersionSegment(chunk.map((v) => ({ seq: v.seq, id: v.id, recordHash: v.record_hash })))]);
  }
}
