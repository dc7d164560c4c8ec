/**
 * Reading the Merkle log of the SQLite backend back: its segments in log order and, for each,
 * the records whose stored record hashes are its leaves. Used by proofs and by `provenant verify`.
 */
import type Database from 'better-sqlite3';
import { uuidFromBytes } from '../../ids.js';
import { LEAF_CHECKPOINT, LEAF_EXECUTIONS, LEAF_OBJECT_VERSIONS } from '../../merkle/segments.js';

/** A row of `merkle_segments`. */
export interface SegmentRow {
  seq: number;
  kind: number;
  scope: number;
  first: Buffer | null;
  last: Buffer | null;
  ids: Buffer | null;
  leaves: number;
  tree_size: number;
  frontier: Buffer;
}

/** A record found for a segment: its kind, id, and the record hash stored with it (null: absent). */
export interface LeafRecord {
  readonly type: 'execution' | 'checkpoint' | 'object version';
  readonly id: string;
  /** The raw key (16-byte execution id, or checkpoint seq). */
  readonly key: Buffer | number;
  readonly recordHash: Buffer | null;
}

/** A row of `tree_heads` with its key. */
export interface HeadRow {
  seq: number;
  checkpoint_id: string | null;
  tree_size: number;
  root: Buffer;
  timestamp: number;
  key_id: Buffer | null;
  public_key: string | null;
  signature: Buffer | null;
}

/** Reads segments and their records through one connection. */
export class MerkleLogReader {
  readonly #stmt;
  #explicit: Set<string> | undefined;

  constructor(db: Database.Database) {
    this.#stmt = {
      segments: db.prepare('SELECT * FROM merkle_segments ORDER BY seq'),
      explicit: db.prepare('SELECT ids FROM merkle_segments WHERE ids IS NOT NULL'),
      range: db.prepare('SELECT id, record_hash FROM executions WHERE run = ? AND id BETWEEN ? AND ? ORDER BY id'),
      one: db.prepare('SELECT record_hash FROM executions WHERE id = ?'),
      versions: db.prepare('SELECT seq, id, record_hash FROM object_versions WHERE seq BETWEEN ? AND ? ORDER BY seq'),
      checkpoint: db.prepare('SELECT c.id, e.record_hash FROM checkpoints c LEFT JOIN checkpoint_ends e ON e.checkpoint = c.seq WHERE c.seq = ?'),
      heads: db.prepare(`
        SELECT h.seq, c.id AS checkpoint_id, h.tree_size, h.root, h.timestamp, k.key_id, k.public_key, h.signature
        FROM tree_heads h LEFT JOIN checkpoints c ON c.seq = h.checkpoint LEFT JOIN signing_keys k ON k.seq = h.key ORDER BY h.seq`),
    };
  }

  /** Every segment, in log order. */
  segments(): SegmentRow[] {
    return this.#stmt.segments.all() as SegmentRow[];
  }

  /** Every tree head, oldest first. */
  heads(): HeadRow[] {
    return this.#stmt.heads.all() as HeadRow[];
  }

  /** Ids (hex) listed by segments that are not clean ranges: they are skipped when reading ranges. */
  #explicitIds(): Set<string> {
    if (this.#explicit === undefined) {
      this.#explicit = new Set();
      for (const { ids } of this.#stmt.explicit.all() as { ids: Buffer }[]) {
        for (let o = 0; o < ids.length; o += 16) this.#explicit.add(ids.toString('hex', o, o + 16));
      }
    }
    return this.#explicit;
  }

  /**
   * The records of a segment, in leaf order, as the store has them now: for a range, every
   * execution of the run in it (which may be more or fewer than the segment's leaves, if rows were
   * added or deleted); for a list, each listed id (recordHash null when the row is gone).
   */
  records(s: SegmentRow): LeafRecord[] {
    if (s.kind === LEAF_CHECKPOINT) {
      const row = this.#stmt.checkpoint.get(s.scope) as { id: string; record_hash: Buffer | null } | undefined;
      return [{ type: 'checkpoint', id: row?.id ?? `#${s.scope}`, key: s.scope, recordHash: row?.record_hash ?? null }];
    }
    if (s.kind === LEAF_OBJECT_VERSIONS) {
      const rows = this.#stmt.versions.all(s.scope, s.scope + s.leaves - 1) as { seq: number; id: Buffer; record_hash: Buffer }[];
      const out: LeafRecord[] = [];
      for (let seq = s.scope, k = 0; seq < s.scope + s.leaves; seq++) {
        const r = rows[k];
        if (r !== undefined && r.seq === seq) {
          out.push({ type: 'object version', id: uuidFromBytes(r.id), key: r.id, recordHash: r.record_hash });
          k++;
        } else out.push({ type: 'object version', id: `#${seq}`, key: seq, recordHash: null });
      }
      return out;
    }
    if (s.kind !== LEAF_EXECUTIONS) throw new TypeError(`unknown Merkle segment kind ${s.kind}`);
    if (s.ids !== null) {
      const out: LeafRecord[] = [];
      for (let o = 0; o < s.ids.length; o += 16) {
        const key = s.ids.subarray(o, o + 16);
        const row = this.#stmt.one.get(key) as { record_hash: Buffer } | undefined;
        out.push({ type: 'execution', id: uuidFromBytes(key), key, recordHash: row?.record_hash ?? null });
      }
      return out;
    }
    if (s.first === null || s.last === null) return [];
    const explicit = this.#explicitIds();
    const rows = this.#stmt.range.all(s.scope, s.first, s.last) as { id: Buffer; record_hash: Buffer }[];
    const out: LeafRecord[] = [];
    for (const r of rows) {
      if (explicit.size > 0 && explicit.has(r.id.toString('hex'))) continue;
      out.push({ type: 'execution', id: uuidFromBytes(r.id), key: r.id, recordHash: r.record_hash });
    }
    return out;
  }
}
