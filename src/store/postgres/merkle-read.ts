/**
 * Reading the PostgreSQL backend's records and Merkle log back for `verify` and proofs
 * (the {@link MerkleSource} of src/merkle/source.ts). Rows are brought to the SQLite shape:
 * ids and hashes as bytes; contexts (stored as digests here) and streams (stored as text here)
 * numbered in {@link Lookups} as they are met. Large tables are read in pages by key.
 */
import { hashFromBytes } from '../../hash/canonical.js';
import { uuidFromBytes } from '../../ids.js';
import type { HeadRow, LeafRecord, Lookups, MerkleSource, RawBlob, RawCheckpoint, RawExecution, SegmentRow } from '../../merkle/source.js';
import { LEAF_CHECKPOINT, LEAF_EXECUTIONS, LEAF_OBJECT_VERSIONS } from '../../merkle/segments.js';
import { PG_CHECKPOINT_SELECT, toPgCheckpoint, type PgCheckpointRow } from './checkpoints.js';
import type { PostgresStore } from './postgres-store.js';

const PAGE = 5000;

interface PgExecutionRow extends Omit<RawExecution, 'context' | 'stream'> {
  context: Buffer;
  stream: string | null;
}

/** The PostgreSQL store's records and log. */
export class PgMerkleSource implements MerkleSource {
  readonly #store: PostgresStore;
  readonly #contexts = new Map<string, number>();
  readonly #streams = new Map<string, number>();
  #lookups: Lookups | undefined;
  #explicit: Set<string> | undefined;

  constructor(store: PostgresStore) {
    this.#store = store;
  }

  #query<R extends object>(text: string, values: unknown[] = []): Promise<R[]> {
    return this.#store.withClient(async (c) => (await c.query(text, values)).rows as R[]);
  }

  #contextNumber(hash: Buffer): number {
    const hex = hash.toString('hex');
    let n = this.#contexts.get(hex);
    if (n === undefined) {
      n = this.#contexts.size + 1;
      this.#contexts.set(hex, n);
      if (hash.length === 32) this.#lookups?.contexts.set(n, hashFromBytes(hash));
    }
    return n;
  }

  #streamNumber(id: string): number {
    let n = this.#streams.get(id);
    if (n === undefined) {
      n = this.#streams.size + 1;
      this.#streams.set(id, n);
      this.#lookups?.streams.set(n, id);
    }
    return n;
  }

  async lookups(): Promise<Lookups> {
    if (this.#lookups !== undefined) return this.#lookups;
    const l: Lookups = { runs: new Map(), steps: new Map(), contexts: new Map(), streams: new Map() };
    this.#lookups = l;
    for (const r of await this.#query<{ seq: number; id: string }>('SELECT seq, id FROM runs')) l.runs.set(r.seq, r.id);
    for (const r of await this.#query<{ seq: number; step_id: string; version_hash: Buffer }>('SELECT seq, step_id, version_hash FROM step_versions')) {
      l.steps.set(r.seq, { stepId: r.step_id, version: hashFromBytes(r.version_hash) });
    }
    for (const r of await this.#query<{ hash: Buffer }>('SELECT hash FROM contexts ORDER BY hash')) this.#contextNumber(r.hash);
    const streams = await this.#query<{ id: string }>('SELECT DISTINCT stream AS id FROM executions WHERE stream IS NOT NULL UNION SELECT stream FROM checkpoints ORDER BY 1');
    for (const r of streams) this.#streamNumber(r.id);
    return l;
  }

  async *executions(): AsyncIterable<RawExecution> {
    await this.lookups();
    let after: string | null = null;
    for (;;) {
      const rows: (PgExecutionRow & { key: string })[] = await this.#query(
        `SELECT id::text AS key, uuid_send(id) AS id, run, step_version, inputs, output, params, context, started, duration, status,
                error, nondeterminism, encodings, stream, "offset", record_hash
         FROM executions ${after === null ? '' : 'WHERE id > $1::uuid'} ORDER BY id LIMIT ${PAGE}`,
        after === null ? [] : [after],
      );
      for (const { key: _key, ...r } of rows) yield { ...r, context: this.#contextNumber(r.context), stream: r.stream === null ? null : this.#streamNumber(r.stream) };
      if (rows.length < PAGE) return;
      after = (rows[rows.length - 1] as { key: string }).key;
    }
  }

  async *checkpoints(): AsyncIterable<RawCheckpoint> {
    let after = 0;
    for (;;) {
      const rows = await this.#query<PgCheckpointRow>(`${PG_CHECKPOINT_SELECT} WHERE c.seq > $1 ORDER BY c.seq LIMIT ${PAGE}`, [after]);
      for (const row of rows) yield { seq: row.seq, id: row.id, values: [row.pipeline, row.state, row.input_slice], record: toPgCheckpoint(row), recordHash: row.record_hash };
      if (rows.length < PAGE) return;
      after = (rows[rows.length - 1] as PgCheckpointRow).seq;
    }
  }

  async objectVersionIds(): Promise<string[]> {
    return (await this.#query<{ id: string }>('SELECT id::text AS id FROM object_versions ORDER BY seq')).map((r) => r.id);
  }

  async segments(): Promise<SegmentRow[]> {
    return this.#query<SegmentRow>('SELECT seq, kind, scope, first, last, ids, leaves, tree_size, frontier FROM merkle_segments ORDER BY seq');
  }

  async heads(): Promise<HeadRow[]> {
    return this.#query<HeadRow>(`
      SELECT h.seq, c.id::text AS checkpoint_id, h.tree_size, h.root, h.timestamp, k.key_id, k.public_key, h.signature
      FROM tree_heads h LEFT JOIN checkpoints c ON c.seq = h.checkpoint LEFT JOIN signing_keys k ON k.seq = h.key ORDER BY h.seq`);
  }

  /** Ids (hex) listed by execution segments that are not clean ranges: skipped when reading ranges. */
  async #explicitIds(): Promise<Set<string>> {
    if (this.#explicit === undefined) {
      const explicit = new Set<string>();
      for (const { ids } of await this.#query<{ ids: Buffer }>('SELECT ids FROM merkle_segments WHERE ids IS NOT NULL AND kind = $1', [LEAF_EXECUTIONS])) {
        for (let o = 0; o < ids.length; o += 16) explicit.add(ids.toString('hex', o, o + 16));
      }
      this.#explicit = explicit;
    }
    return this.#explicit;
  }

  /** Record hashes of listed ids (16 bytes each) in one table, in list order (null: the row is gone). */
  async #listed(table: 'executions' | 'object_versions', ids: Buffer): Promise<{ key: Buffer; recordHash: Buffer | null }[]> {
    const keys: Buffer[] = [];
    for (let o = 0; o < ids.length; o += 16) keys.push(ids.subarray(o, o + 16));
    const found = new Map<string, Buffer>();
    for (let i = 0; i < keys.length; i += PAGE) {
      const page = keys.slice(i, i + PAGE).map(uuidFromBytes);
      const rows = await this.#query<{ id: Buffer; record_hash: Buffer }>(`SELECT uuid_send(id) AS id, record_hash FROM ${table} WHERE id = ANY($1::uuid[])`, [page]);
      for (const r of rows) found.set(r.id.toString('hex'), r.record_hash);
    }
    return keys.map((key) => ({ key, recordHash: found.get(key.toString('hex')) ?? null }));
  }

  async records(s: SegmentRow): Promise<LeafRecord[]> {
    if (s.kind === LEAF_CHECKPOINT) {
      const rows = await this.#query<{ id: string; record_hash: Buffer | null }>(
        'SELECT c.id::text AS id, e.record_hash FROM checkpoints c LEFT JOIN checkpoint_ends e ON e.checkpoint = c.seq WHERE c.seq = $1',
        [s.scope],
      );
      return [{ type: 'checkpoint', id: rows[0]?.id ?? `#${s.scope}`, key: s.scope, recordHash: rows[0]?.record_hash ?? null }];
    }
    if (s.kind === LEAF_OBJECT_VERSIONS) {
      if (s.ids === null) {
        const rows = await this.#query<{ seq: number; id: Buffer; record_hash: Buffer }>(
          'SELECT seq, uuid_send(id) AS id, record_hash FROM object_versions WHERE seq BETWEEN $1 AND $2 ORDER BY seq',
          [s.scope, s.scope + s.leaves - 1],
        );
        return rows.map((r) => ({ type: 'object version', id: uuidFromBytes(r.id), key: r.id, recordHash: r.record_hash }));
      }
      return (await this.#listed('object_versions', s.ids)).map((r) => ({ type: 'object version', id: uuidFromBytes(r.key), key: r.key, recordHash: r.recordHash }));
    }
    if (s.kind !== LEAF_EXECUTIONS) throw new TypeError(`unknown Merkle segment kind ${s.kind}`);
    if (s.ids !== null) return (await this.#listed('executions', s.ids)).map((r) => ({ type: 'execution', id: uuidFromBytes(r.key), key: r.key, recordHash: r.recordHash }));
    if (s.first === null || s.last === null) return [];
    const explicit = await this.#explicitIds();
    const rows = await this.#query<{ id: Buffer; record_hash: Buffer }>(
      `SELECT uuid_send(id) AS id, record_hash FROM executions WHERE run = $1 AND id BETWEEN encode($2, 'hex')::uuid AND encode($3, 'hex')::uuid ORDER BY id`,
      [s.scope, s.first, s.last],
    );
    const out: LeafRecord[] = [];
    for (const r of rows) {
      if (explicit.size > 0 && explicit.has(r.id.toString('hex'))) continue;
      out.push({ type: 'execution', id: uuidFromBytes(r.id), key: r.id, recordHash: r.record_hash });
    }
    return out;
  }

  async blobHashes(): Promise<Buffer[]> {
    return (await this.#query<{ hash: Buffer }>('SELECT hash FROM blobs')).map((r) => r.hash);
  }

  async *blobs(): AsyncIterable<RawBlob> {
    let after: Buffer = Buffer.alloc(0);
    for (;;) {
      const rows = await this.#query<{ hash: Buffer; location: number; bytes: Buffer | null }>(
        `SELECT hash, location, bytes FROM blobs WHERE hash > $1 ORDER BY hash LIMIT ${PAGE}`,
        [after],
      );
      for (const r of rows) yield { hash: r.hash, inline: r.location === 0 ? (r.bytes ?? Buffer.alloc(0)) : null };
      if (rows.length < PAGE) return;
      after = (rows[rows.length - 1] as { hash: Buffer }).hash;
    }
  }

  async runExecutionIds(run: number): Promise<Buffer[]> {
    return (await this.#query<{ id: Buffer }>('SELECT uuid_send(id) AS id FROM executions WHERE run = $1', [run])).map((r) => r.id);
  }

  async *executionIds(): AsyncIterable<Buffer> {
    let after: string | null = null;
    for (;;) {
      const rows: { key: string; id: Buffer }[] = await this.#query(
        `SELECT id::text AS key, uuid_send(id) AS id FROM executions ${after === null ? '' : 'WHERE id > $1::uuid'} ORDER BY id LIMIT ${PAGE}`,
        after === null ? [] : [after],
      );
      for (const r of rows) yield r.id;
      if (rows.length < PAGE) return;
      after = (rows[rows.length - 1] as { key: string }).key;
    }
  }

  async versionValues(): Promise<Set<string>> {
    return new Set((await this.#query<{ value: Buffer }>('SELECT DISTINCT value FROM object_versions')).map((r) => r.value.toString('hex')));
  }

  async checkpointSeq(id: string): Promise<number | undefined> {
    if (!/^[0-9a-f-]{36}$/i.test(id)) return undefined;
    return (await this.#query<{ seq: number }>('SELECT seq FROM checkpoints WHERE id = $1::uuid', [id]))[0]?.seq;
  }
}
