/**
 * Objects, their versions and the provenance DAG in SQLite (migration 4). Lineage walks and
 * recomputation plans are recursive queries (`WITH RECURSIVE`) over `version_inputs`, so no walk
 * loads the graph into memory; only the versions it reaches come back.
 *
 * Versions are committed on the main connection, in one transaction with the executions that made
 * them and the values both refer to (`BatchApplier.apply` with an extra step).
 */
import { blobStoredSql } from './blob-table.js';
import type Database from 'better-sqlite3';
import { ProvenantError } from '../../errors.js';
import { hashFromBytes, hashToBytes, type ContentHash } from '../../hash/canonical.js';
import { objectVersionRecordHash } from '../../hash/record-hash.js';
import { isUuid, nowUs, uuidFromBytes, uuidToBytes } from '../../ids.js';
import { assignDepths } from '../shared-rows.js';
import type {
  LineageQuery,
  LineageRows,
  LineageVersion,
  MaterializationSetting,
  ObjectRead,
  ObjectVersionRecord,
  ObjectVersionWrite,
  RecomputeRow,
  VersionUsage,
} from '../records.js';

/** Columns of a version, its object id, its inputs (hex ids in order) and whether it is pinned. */
const VERSION_COLUMNS = `
  v.seq, v.id, o.id AS object_id, v.ordinal, v.valid_from, v.value, v.encoding, v.content_type, v.size,
  v.execution, v.record_hash,
  (SELECT group_concat(hex(iv.id), ',' ORDER BY vi.position) FROM version_inputs vi
     JOIN object_versions iv ON iv.seq = vi.version WHERE vi.execution = v.execution) AS inputs,
  coalesce((SELECT p.pinned FROM version_pins p WHERE p.version = v.seq ORDER BY p.seq DESC LIMIT 1), 0) AS pinned`;

const VERSION_FROM = 'object_versions v JOIN objects o ON o.seq = v.object';

/** The execution that made a version, in brief (lineage names it without another query). */
const MAKER_COLUMNS = 'sv.step_id AS maker_step, sv.version_hash AS maker_version, e.started AS maker_started, e.status AS maker_status';
const MAKER_JOIN = 'LEFT JOIN executions e ON e.id = v.execution LEFT JOIN step_versions sv ON sv.seq = e.step_version';

interface MakerRow {
  maker_step: string | null;
  maker_version: Buffer | null;
  maker_started: number | null;
  maker_status: number | null;
}

interface VersionRow {
  seq: number;
  id: Buffer;
  object_id: string;
  ordinal: number;
  valid_from: number;
  value: Buffer;
  encoding: number;
  content_type: string;
  size: number;
  execution: Buffer | null;
  record_hash: Buffer;
  inputs: string | null;
  pinned: number;
}

function uuidFromHex(hex: string): string {
  const h = hex.toLowerCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function toVersion(r: VersionRow): ObjectVersionRecord {
  return {
    versionId: uuidFromBytes(r.id),
    objectId: r.object_id,
    ordinal: r.ordinal,
    validFromUs: r.valid_from,
    contentHash: hashFromBytes(r.value),
    encoding: r.encoding === 1 ? 'bytes' : 'json',
    contentType: r.content_type,
    size: r.size,
    executionId: r.execution === null ? null : uuidFromBytes(r.execution),
    inputVersionIds: r.inputs === null || r.inputs === '' ? [] : r.inputs.split(',').map(uuidFromHex),
    recordHash: hashFromBytes(r.record_hash),
    pinned: r.pinned === 1,
  };
}

function requireUuid(id: string, what: string): Buffer {
  if (!isUuid(id)) {
    throw new ProvenantError('INPUT_INVALID', `${what} ${JSON.stringify(id)} is not a UUID`, { context: { [what.replace(/ /g, '')]: id } });
  }
  return uuidToBytes(id);
}

/** The objects part of the SQLite store. */
export class SqliteObjects {
  readonly #db: Database.Database;
  readonly #location: string;
  readonly #stmt;

  constructor(db: Database.Database, location: string) {
    this.#db = db;
    this.#location = location;
    this.#stmt = {
      insertObject: db.prepare('INSERT OR IGNORE INTO objects (id) VALUES (?)'),
      objectSeq: db.prepare('SELECT seq FROM objects WHERE id = ?'),
      lastVersion: db.prepare('SELECT ordinal, valid_from FROM object_versions WHERE object = ? ORDER BY ordinal DESC LIMIT 1'),
      versionSeq: db.prepare('SELECT seq FROM object_versions WHERE id = ?'),
      versionByExecution: db.prepare('SELECT 1 FROM object_versions WHERE execution = ?'),
      executionExists: db.prepare('SELECT 1 FROM executions WHERE id = ?'),
      blobExists: db.prepare(`SELECT ${blobStoredSql('@hash')}`).pluck(),
      insertVersion: db.prepare(`
        INSERT INTO object_versions (id, object, ordinal, valid_from, value, encoding, content_type, size, execution, record_hash)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      insertInput: db.prepare('INSERT INTO version_inputs (execution, position, version) VALUES (?, ?, ?)'),
      getVersion: db.prepare(`SELECT ${VERSION_COLUMNS} FROM ${VERSION_FROM} WHERE v.id = ?`),
      versionAt: db.prepare(`SELECT ${VERSION_COLUMNS} FROM ${VERSION_FROM} WHERE o.id = ? AND v.valid_from <= ? ORDER BY v.valid_from DESC LIMIT 1`),
      listVersions: db.prepare(`SELECT ${VERSION_COLUMNS} FROM ${VERSION_FROM} WHERE o.id = ? AND v.valid_from <= ? ORDER BY v.ordinal LIMIT ?`),
      byContent: db.prepare(`SELECT ${VERSION_COLUMNS} FROM ${VERSION_FROM} WHERE v.value = ? ORDER BY v.seq LIMIT 1000`),
      byExecution: db.prepare(`SELECT ${VERSION_COLUMNS} FROM ${VERSION_FROM} WHERE v.execution = ?`),
      listObjects: db.prepare(`
        SELECT o.id, count(*) AS versions, max(v.valid_from) AS latest
        FROM objects o JOIN object_versions v ON v.object = o.seq
        WHERE o.id >= ? AND o.id < ? GROUP BY o.seq ORDER BY o.id LIMIT ?`),
      insertSetting: db.prepare('INSERT INTO materialization_settings (scope, policy, set_at) VALUES (?, ?, ?)'),
      listSettings: db.prepare(`
        SELECT scope, policy, set_at FROM materialization_settings m
        WHERE seq = (SELECT max(seq) FROM materialization_settings WHERE scope = m.scope) ORDER BY scope`),
      insertPin: db.prepare('INSERT INTO version_pins (version, pinned, set_at) VALUES (?, ?, ?)'),
      insertRead: db.prepare('INSERT INTO version_reads (version, at, recomputed, cost_us) VALUES (?, ?, ?, ?)'),
      plan: db.prepare(`
        WITH RECURSIVE need(seq) AS (
          SELECT seq FROM object_versions WHERE id = ?
          UNION
          SELECT vi.version FROM need n
            JOIN object_versions nv ON nv.seq = n.seq
            JOIN version_inputs vi ON vi.execution = nv.execution
          WHERE NOT ${blobStoredSql('nv.value')}
        )
        SELECT ${VERSION_COLUMNS}, ${blobStoredSql('v.value')} AS kept
        FROM need JOIN object_versions v ON v.seq = need.seq JOIN objects o ON o.seq = v.object
        ORDER BY v.seq`),
      usage: db.prepare(`
        SELECT ${VERSION_COLUMNS}, sv.step_id, e.duration,
               (SELECT count(*) FROM version_reads r WHERE r.version = v.seq) AS reads,
               ${blobStoredSql('v.value')} AS kept
        FROM ${VERSION_FROM}
        JOIN executions e ON e.id = v.execution
        JOIN step_versions sv ON sv.seq = e.step_version
        WHERE v.execution IS NOT NULL
        ORDER BY v.seq`),
    };
  }

  /**
   * Insert versions (inside the caller's transaction, after the executions and values they refer
   * to). Each gets the next ordinal of its object and a transaction time later than the last one's.
   */
  insertVersions(writes: readonly ObjectVersionWrite[]): ObjectVersionRecord[] {
    const s = this.#stmt;
    const out: ObjectVersionRecord[] = [];
    const now = nowUs();
    for (const w of writes) {
      const id = requireUuid(w.versionId, 'version id');
      s.insertObject.run(w.objectId);
      const objectSeq = (s.objectSeq.get(w.objectId) as { seq: number }).seq;
      const last = s.lastVersion.get(objectSeq) as { ordinal: number; valid_from: number } | undefined;
      let validFromUs = w.validFromUs ?? Math.max(now, (last?.valid_from ?? 0) + 1);
      if (w.validFromUs !== undefined && last !== undefined && w.validFromUs <= last.valid_from) {
        throw new ProvenantError('INPUT_INVALID', `object ${w.objectId}: a new version must be later than its last one (${last.valid_from} µs)`, {
          context: { objectId: w.objectId, versionId: w.versionId, validFromUs: w.validFromUs },
        });
      }
      validFromUs = Math.trunc(validFromUs);
      const value = hashToBytes(w.contentHash);
      if (s.blobExists.get({ hash: value }) !== 1) {
        throw new ProvenantError('BLOB_MISSING', `object ${w.objectId}: the content ${w.contentHash} of the new version is not stored`, {
          hint: 'Pass the content among the batch values.',
          context: { objectId: w.objectId, versionId: w.versionId, contentHash: w.contentHash },
        });
      }
      let execution: Buffer | null = null;
      const inputSeqs: number[] = [];
      if (w.executionId !== null) {
        execution = requireUuid(w.executionId, 'execution id');
        if (s.executionExists.get(execution) === undefined) {
          throw new ProvenantError('NOT_FOUND', `object ${w.objectId}: execution ${w.executionId} that made the version is not recorded`, {
            context: { objectId: w.objectId, executionId: w.executionId },
          });
        }
        if (s.versionByExecution.get(execution) !== undefined) {
          throw new ProvenantError('INPUT_INVALID', `execution ${w.executionId} already made a version; an execution makes at most one`, {
            context: { executionId: w.executionId },
          });
        }
        for (const inputId of w.inputVersionIds) {
          const row = s.versionSeq.get(requireUuid(inputId, 'version id')) as { seq: number } | undefined;
          if (row === undefined) {
            throw new ProvenantError('NOT_FOUND', `object ${w.objectId}: input version ${inputId} does not exist in ${this.#location}`, {
              context: { objectId: w.objectId, inputVersionId: inputId },
            });
          }
          inputSeqs.push(row.seq);
        }
      } else if (w.inputVersionIds.length > 0) {
        throw new ProvenantError('INPUT_INVALID', `object ${w.objectId}: an ingested version has no inputs`, { context: { objectId: w.objectId } });
      }
      const record = {
        versionId: w.versionId,
        objectId: w.objectId,
        ordinal: (last?.ordinal ?? 0) + 1,
        validFromUs,
        contentHash: w.contentHash,
        encoding: w.encoding,
        contentType: w.contentType,
        size: w.size,
        executionId: w.executionId,
        inputVersionIds: [...w.inputVersionIds],
      };
      const recordHash = objectVersionRecordHash(record);
      s.insertVersion.run(id, objectSeq, record.ordinal, validFromUs, value, w.encoding === 'bytes' ? 1 : 0, w.contentType, w.size, execution, hashToBytes(recordHash));
      inputSeqs.forEach((seq, position) => s.insertInput.run(execution, position, seq));
      out.push({ ...record, recordHash, pinned: false });
    }
    return out;
  }

  getVersion(versionId: string): ObjectVersionRecord | undefined {
    if (!isUuid(versionId)) return undefined;
    const row = this.#stmt.getVersion.get(uuidToBytes(versionId)) as VersionRow | undefined;
    return row === undefined ? undefined : toVersion(row);
  }

  versionAt(objectId: string, atUs: number): ObjectVersionRecord | undefined {
    const row = this.#stmt.versionAt.get(objectId, Math.trunc(atUs)) as VersionRow | undefined;
    return row === undefined ? undefined : toVersion(row);
  }

  listVersions(objectId: string, untilUs = Number.MAX_SAFE_INTEGER, limit = 10_000): ObjectVersionRecord[] {
    return (this.#stmt.listVersions.all(objectId, Math.trunc(untilUs), limit) as VersionRow[]).map(toVersion);
  }

  findVersions(by: { contentHash?: ContentHash; executionId?: string }): ObjectVersionRecord[] {
    if (by.contentHash !== undefined) return (this.#stmt.byContent.all(hashToBytes(by.contentHash)) as VersionRow[]).map(toVersion);
    if (by.executionId !== undefined && isUuid(by.executionId)) return (this.#stmt.byExecution.all(uuidToBytes(by.executionId)) as VersionRow[]).map(toVersion);
    return [];
  }

  listObjects(prefix: string, limit: number): { objectId: string; versions: number; latestUs: number }[] {
    const rows = this.#stmt.listObjects.all(prefix, `${prefix}\u{10ffff}`, limit) as { id: string; versions: number; latest: number }[];
    return rows.map((r) => ({ objectId: r.id, versions: r.versions, latestUs: r.latest }));
  }

  /** Walk the DAG from `from`, in the store: a recursive query bounded by depth and limit. */
  walk(query: LineageQuery): LineageRows {
    const limit = query.limit ?? 100_000;
    const starts: number[] = [];
    for (const id of query.from) {
      const row = isUuid(id) ? (this.#stmt.versionSeq.get(uuidToBytes(id)) as { seq: number } | undefined) : undefined;
      if (row !== undefined) starts.push(row.seq);
    }
    if (starts.length === 0) return { versions: [], truncated: false };
    const until = Math.trunc(query.untilUs ?? Number.MAX_SAFE_INTEGER);
    const up = query.direction === 'up';
    // Each step of the walk: from a version to the inputs of the execution that made it (up), or
    // to the versions made by executions that used it (down).
    const join = up
      ? `FROM walk w JOIN object_versions wv ON wv.seq = w.seq
           JOIN version_inputs vi ON vi.execution = wv.execution
           JOIN object_versions nv ON nv.seq = vi.version`
      : `FROM walk w JOIN version_inputs vi ON vi.version = w.seq
           JOIN object_versions nv ON nv.execution = vi.execution`;
    const bounded = query.depth !== undefined;
    // With a depth limit the walk carries depths (bounded by it); without one, only the set of
    // versions (each visited once) and depths are worked out below from the edges.
    const sql = bounded
      ? `WITH RECURSIVE walk(seq, depth) AS (
           SELECT value, 0 FROM json_each(?)
           UNION
           SELECT nv.seq, w.depth + 1 ${join} WHERE w.depth < ? AND nv.valid_from <= ?
         ), found AS (SELECT seq, min(depth) AS depth FROM walk GROUP BY seq LIMIT ?)
         SELECT ${VERSION_COLUMNS}, found.depth, ${MAKER_COLUMNS} FROM found JOIN object_versions v ON v.seq = found.seq JOIN objects o ON o.seq = v.object ${MAKER_JOIN}`
      : `WITH RECURSIVE walk(seq) AS (
           SELECT value FROM json_each(?)
           UNION
           SELECT nv.seq ${join} WHERE nv.valid_from <= ?
         ), found AS (SELECT seq FROM walk LIMIT ?)
         SELECT ${VERSION_COLUMNS}, NULL AS depth, ${MAKER_COLUMNS} FROM found JOIN object_versions v ON v.seq = found.seq JOIN objects o ON o.seq = v.object ${MAKER_JOIN}`;
    const args = bounded ? [JSON.stringify(starts), query.depth, until, limit + 1] : [JSON.stringify(starts), until, limit + 1];
    const rows = this.#db.prepare(sql).all(...args) as (VersionRow & MakerRow & { depth: number | null })[];
    const truncated = rows.length > limit;
    const kept = truncated ? rows.slice(0, limit) : rows;
    const versions: LineageVersion[] = kept.map((r) => {
      const version = toVersion(r);
      const maker =
        r.maker_step === null || version.executionId === null
          ? undefined
          : { executionId: version.executionId, stepId: r.maker_step, versionHash: hashFromBytes(r.maker_version as Buffer), startedUs: r.maker_started as number, status: r.maker_status === 1 ? ('failed' as const) : ('ok' as const) };
      return maker === undefined ? { version, depth: r.depth ?? -1 } : { version, depth: r.depth ?? -1, maker };
    });
    if (!bounded) assignDepths(versions, new Set(query.from), up);
    return { versions, truncated };
  }

  /** The versions needed to make `versionId`: the closure of its inputs, stopping at kept ones; inputs first. */
  plan(versionId: string): RecomputeRow[] {
    const rows = this.#stmt.plan.all(requireUuid(versionId, 'version id')) as (VersionRow & { kept: number })[];
    return rows.map((r) => ({ version: toVersion(r), kept: r.kept === 1 }));
  }

  setMaterialization(setting: MaterializationSetting): void {
    this.#stmt.insertSetting.run(setting.scope, setting.policy, Math.trunc(setting.setUs));
  }

  listMaterialization(): MaterializationSetting[] {
    return (this.#stmt.listSettings.all() as { scope: string; policy: string; set_at: number }[]).map((r) => ({ scope: r.scope, policy: r.policy, setUs: r.set_at }));
  }

  setPinned(versionId: string, pinned: boolean): void {
    const row = this.#stmt.versionSeq.get(requireUuid(versionId, 'version id')) as { seq: number } | undefined;
    if (row === undefined) throw new ProvenantError('NOT_FOUND', `no object version ${versionId} in ${this.#location}`, { context: { versionId } });
    this.#stmt.insertPin.run(row.seq, pinned ? 1 : 0, nowUs());
  }

  recordReads(reads: readonly ObjectRead[]): void {
    this.#db
      .transaction(() => {
        for (const r of reads) {
          const row = this.#stmt.versionSeq.get(uuidToBytes(r.versionId)) as { seq: number } | undefined;
          if (row !== undefined) this.#stmt.insertRead.run(row.seq, Math.trunc(r.atUs), r.recomputed ? 1 : 0, Math.max(0, Math.trunc(r.costUs)));
        }
      })
      .immediate();
  }

  usage(): VersionUsage[] {
    const rows = this.#stmt.usage.all() as (VersionRow & { step_id: string; duration: number; reads: number; kept: number })[];
    return rows.map((r) => ({ version: toVersion(r), stepId: r.step_id, durationUs: r.duration, reads: r.reads, kept: r.kept === 1 }));
  }

  /**
   * Of `hashes`, the ones that are only the content of derived, unpinned versions (and the
   * inputs/outputs of the executions that made or used them): nothing else refers to them, so
   * their bytes can go. Originals, pinned versions, step artifacts, stream records, checkpoint
   * values, contexts, params, errors and recorded nondeterminism are never among them.
   */
  droppable(hashes: readonly ContentHash[]): Set<ContentHash> {
    const candidates = new Set<ContentHash>(hashes);
    if (candidates.size === 0) return candidates;
    const db = this.#db;
    const drop = (rows: Iterable<{ h: Buffer | null }>): void => {
      for (const r of rows) if (r.h !== null && r.h.length === 32) candidates.delete(hashFromBytes(r.h));
    };
    const candidateJson = JSON.stringify([...candidates].map((h) => h.slice(7)));
    const probe = (sql: string): void => drop(db.prepare(sql).iterate(candidateJson) as Iterable<{ h: Buffer }>);
    const inCandidates = `(SELECT unhex(value) FROM json_each(?))`;
    // Versions that must keep their bytes: originals and pinned ones.
    probe(`SELECT v.value AS h FROM object_versions v WHERE v.value IN ${inCandidates} AND (v.execution IS NULL OR
             coalesce((SELECT p.pinned FROM version_pins p WHERE p.version = v.seq ORDER BY p.seq DESC LIMIT 1), 0) = 1)`);
    probe(`SELECT version_hash AS h FROM step_versions WHERE version_hash IN ${inCandidates}`);
    probe(`SELECT hash AS h FROM contexts WHERE hash IN ${inCandidates}`);
    probe(`SELECT value AS h FROM stream_log WHERE value IN ${inCandidates}`);
    probe(`SELECT pipeline AS h FROM checkpoints WHERE pipeline IN ${inCandidates}`);
    probe(`SELECT state AS h FROM checkpoint_ends WHERE state IN ${inCandidates}`);
    probe(`SELECT input_slice AS h FROM checkpoint_ends WHERE input_slice IN ${inCandidates}`);
    if (candidates.size === 0) return candidates;
    // Every execution's params, error and nondeterminism; the inputs and output of executions that
    // are not part of the object DAG (stream pipelines). One pass over the executions.
    const rows = db
      .prepare(
        `SELECT e.inputs, e.output, e.params, e.error, e.nondeterminism,
                EXISTS (SELECT 1 FROM object_versions v WHERE v.execution = e.id) AS derived
         FROM executions e`,
      )
      .iterate() as Iterable<{ inputs: Buffer; output: Buffer | null; params: Buffer; error: Buffer | null; nondeterminism: Buffer | null; derived: number }>;
    const remove = (b: Buffer | null): void => {
      if (b !== null) candidates.delete(hashFromBytes(b));
    };
    for (const r of rows) {
      remove(r.params);
      remove(r.error);
      remove(r.nondeterminism);
      if (r.derived === 1) continue;
      remove(r.output);
      for (let i = 0; i + 32 <= r.inputs.length; i += 32) remove(r.inputs.subarray(i, i + 32));
    }
    return candidates;
  }
}

