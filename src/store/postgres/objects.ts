/**
 * Objects, their versions and the provenance DAG in PostgreSQL (migration 3): the SQLite
 * backend's rules (`sqlite/objects.ts`), with the same errors, as SQL. Lineage walks and
 * recomputation plans are recursive queries (`WITH RECURSIVE`) over `version_inputs`, run in the
 * server; only the versions a walk reaches come back. Versions of one object are committed one
 * writer at a time (a transaction-level advisory lock per object), so ordinals and transaction
 * times stay increasing with several workers.
 */
import { assignDepths } from '../shared-rows.js';
import type pg from 'pg';
import { ProvenantError } from '../../errors.js';
import { hashFromBytes, hashToBytes, type ContentHash } from '../../hash/canonical.js';
import { objectVersionRecordHash } from '../../hash/record-hash.js';
import { isUuid, nowUs } from '../../ids.js';
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

/** Columns of a version, its object id, its inputs (ids in order) and whether it is pinned. */
const VERSION_COLUMNS = `
  v.seq, v.id::text AS id, o.id AS object_id, v.ordinal, v.valid_from, v.value, v.encoding, v.content_type, v.size,
  v.execution::text AS execution, v.record_hash,
  (SELECT string_agg(iv.id::text, ',' ORDER BY vi.position) FROM version_inputs vi
     JOIN object_versions iv ON iv.seq = vi.version WHERE vi.execution = v.execution) AS inputs,
  coalesce((SELECT p.pinned FROM version_pins p WHERE p.version = v.seq ORDER BY p.seq DESC LIMIT 1), 0) AS pinned`;

const VERSION_FROM = 'object_versions v JOIN objects o ON o.seq = v.object';

const MAKER_COLUMNS = 'sv.step_id AS maker_step, sv.version_hash AS maker_version, e.started AS maker_started, e.status AS maker_status';
const MAKER_JOIN = 'LEFT JOIN executions e ON e.id = v.execution LEFT JOIN step_versions sv ON sv.seq = e.step_version';

interface VersionRow {
  seq: number;
  id: string;
  object_id: string;
  ordinal: number;
  valid_from: number;
  value: Buffer;
  encoding: number;
  content_type: string;
  size: number;
  execution: string | null;
  record_hash: Buffer;
  inputs: string | null;
  pinned: number;
}

interface MakerRow {
  maker_step: string | null;
  maker_version: Buffer | null;
  maker_started: number | null;
  maker_status: number | null;
}

function toVersion(r: VersionRow): ObjectVersionRecord {
  return {
    versionId: r.id,
    objectId: r.object_id,
    ordinal: r.ordinal,
    validFromUs: r.valid_from,
    contentHash: hashFromBytes(r.value),
    encoding: r.encoding === 1 ? 'bytes' : 'json',
    contentType: r.content_type,
    size: r.size,
    executionId: r.execution,
    inputVersionIds: r.inputs === null || r.inputs === '' ? [] : r.inputs.split(','),
    recordHash: hashFromBytes(r.record_hash),
    pinned: r.pinned === 1,
  };
}

function requireUuid(id: string, what: string): string {
  if (!isUuid(id)) {
    throw new ProvenantError('INPUT_INVALID', `${what} ${JSON.stringify(id)} is not a UUID`, { context: { [what.replace(/ /g, '')]: id } });
  }
  return id;
}

async function versionSeq(c: pg.ClientBase, id: string): Promise<number | undefined> {
  const r = await c.query<{ seq: number }>({ name: 'provenant_version_seq', text: 'SELECT seq FROM object_versions WHERE id = $1', values: [id] });
  return r.rows[0]?.seq;
}

/**
 * Insert versions inside the caller's transaction, after the executions and values they refer
 * to. Each gets the next ordinal of its object and a transaction time later than the last one's.
 */
export async function insertVersions(c: pg.ClientBase, writes: readonly ObjectVersionWrite[], location: string): Promise<ObjectVersionRecord[]> {
  const out: ObjectVersionRecord[] = [];
  const now = nowUs();
  for (const w of writes) {
    requireUuid(w.versionId, 'version id');
    await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`provenant.object.${w.objectId}`]);
    await c.query('INSERT INTO objects (id) VALUES ($1) ON CONFLICT (id) DO NOTHING', [w.objectId]);
    const objectSeq = ((await c.query<{ seq: number }>('SELECT seq FROM objects WHERE id = $1', [w.objectId])).rows[0] as { seq: number }).seq;
    const last = (await c.query<{ ordinal: number; valid_from: number }>('SELECT ordinal, valid_from FROM object_versions WHERE object = $1 ORDER BY ordinal DESC LIMIT 1', [objectSeq])).rows[0];
    let validFromUs = w.validFromUs ?? Math.max(now, (last?.valid_from ?? 0) + 1);
    if (w.validFromUs !== undefined && last !== undefined && w.validFromUs <= last.valid_from) {
      throw new ProvenantError('INPUT_INVALID', `object ${w.objectId}: a new version must be later than its last one (${last.valid_from} µs)`, {
        context: { objectId: w.objectId, versionId: w.versionId, validFromUs: w.validFromUs },
      });
    }
    validFromUs = Math.trunc(validFromUs);
    const value = hashToBytes(w.contentHash);
    if ((await c.query('SELECT 1 FROM blobs WHERE hash = $1', [value])).rowCount === 0) {
      throw new ProvenantError('BLOB_MISSING', `object ${w.objectId}: the content ${w.contentHash} of the new version is not stored`, {
        hint: 'Pass the content among the batch values.',
        context: { objectId: w.objectId, versionId: w.versionId, contentHash: w.contentHash },
      });
    }
    const inputSeqs: number[] = [];
    if (w.executionId !== null) {
      requireUuid(w.executionId, 'execution id');
      if ((await c.query('SELECT 1 FROM executions WHERE id = $1', [w.executionId])).rowCount === 0) {
        throw new ProvenantError('NOT_FOUND', `object ${w.objectId}: execution ${w.executionId} that made the version is not recorded`, {
          context: { objectId: w.objectId, executionId: w.executionId },
        });
      }
      if ((await c.query('SELECT 1 FROM object_versions WHERE execution = $1', [w.executionId])).rowCount !== 0) {
        throw new ProvenantError('INPUT_INVALID', `execution ${w.executionId} already made a version; an execution makes at most one`, {
          context: { executionId: w.executionId },
        });
      }
      for (const inputId of w.inputVersionIds) {
        const seq = await versionSeq(c, requireUuid(inputId, 'version id'));
        if (seq === undefined) {
          throw new ProvenantError('NOT_FOUND', `object ${w.objectId}: input version ${inputId} does not exist in ${location}`, {
            context: { objectId: w.objectId, inputVersionId: inputId },
          });
        }
        inputSeqs.push(seq);
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
    try {
      await c.query(
        `INSERT INTO object_versions (id, object, ordinal, valid_from, value, encoding, content_type, size, execution, record_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
        [w.versionId, objectSeq, record.ordinal, validFromUs, value, w.encoding === 'bytes' ? 1 : 0, w.contentType, w.size, w.executionId, hashToBytes(recordHash)],
      );
    } catch (err) {
      if ((err as { code?: string }).code === '23505') {
        throw new ProvenantError('INPUT_INVALID', `object version ${w.versionId} already exists in ${location}`, { context: { versionId: w.versionId } });
      }
      throw err;
    }
    for (const [position, seq] of inputSeqs.entries()) {
      await c.query('INSERT INTO version_inputs (execution, position, version) VALUES ($1, $2, $3)', [w.executionId, position, seq]);
    }
    out.push({ ...record, recordHash, pinned: false });
  }
  return out;
}

export async function getVersion(c: pg.ClientBase, versionId: string): Promise<ObjectVersionRecord | undefined> {
  if (!isUuid(versionId)) return undefined;
  const row = (await c.query<VersionRow>(`SELECT ${VERSION_COLUMNS} FROM ${VERSION_FROM} WHERE v.id = $1`, [versionId])).rows[0];
  return row === undefined ? undefined : toVersion(row);
}

export async function versionAt(c: pg.ClientBase, objectId: string, atUs: number): Promise<ObjectVersionRecord | undefined> {
  const row = (
    await c.query<VersionRow>(`SELECT ${VERSION_COLUMNS} FROM ${VERSION_FROM} WHERE o.id = $1 AND v.valid_from <= $2 ORDER BY v.valid_from DESC LIMIT 1`, [
      objectId,
      Math.trunc(atUs),
    ])
  ).rows[0];
  return row === undefined ? undefined : toVersion(row);
}

export async function listVersions(c: pg.ClientBase, objectId: string, untilUs = Number.MAX_SAFE_INTEGER, limit = 10_000): Promise<ObjectVersionRecord[]> {
  const r = await c.query<VersionRow>(`SELECT ${VERSION_COLUMNS} FROM ${VERSION_FROM} WHERE o.id = $1 AND v.valid_from <= $2 ORDER BY v.ordinal LIMIT $3`, [
    objectId,
    Math.trunc(untilUs),
    limit,
  ]);
  return r.rows.map(toVersion);
}

export async function findVersions(c: pg.ClientBase, by: { contentHash?: ContentHash; executionId?: string }): Promise<ObjectVersionRecord[]> {
  if (by.contentHash !== undefined) {
    return (await c.query<VersionRow>(`SELECT ${VERSION_COLUMNS} FROM ${VERSION_FROM} WHERE v.value = $1 ORDER BY v.seq LIMIT 1000`, [hashToBytes(by.contentHash)])).rows.map(toVersion);
  }
  if (by.executionId !== undefined && isUuid(by.executionId)) {
    return (await c.query<VersionRow>(`SELECT ${VERSION_COLUMNS} FROM ${VERSION_FROM} WHERE v.execution = $1`, [by.executionId])).rows.map(toVersion);
  }
  return [];
}

export async function listObjects(c: pg.ClientBase, prefix: string, limit: number): Promise<{ objectId: string; versions: number; latestUs: number }[]> {
  // Prefix by range in the C collation, as SQLite compares: ids sort by code point.
  const r = await c.query<{ id: string; versions: number; latest: number }>(
    `SELECT o.id, count(*) AS versions, max(v.valid_from) AS latest
     FROM objects o JOIN object_versions v ON v.object = o.seq
     WHERE o.id COLLATE "C" >= $1 AND o.id COLLATE "C" < $2 GROUP BY o.seq, o.id ORDER BY o.id COLLATE "C" LIMIT $3`,
    [prefix, `${prefix}\u{10ffff}`, limit],
  );
  return r.rows.map((row) => ({ objectId: row.id, versions: row.versions, latestUs: row.latest }));
}

/** Walk the DAG from `query.from`, in the server: a recursive query bounded by depth and limit. */
export async function walk(c: pg.ClientBase, query: LineageQuery): Promise<LineageRows> {
  const limit = query.limit ?? 100_000;
  const starts: number[] = [];
  for (const id of query.from) {
    const seq = isUuid(id) ? await versionSeq(c, id) : undefined;
    if (seq !== undefined) starts.push(seq);
  }
  if (starts.length === 0) return { versions: [], truncated: false };
  const until = Math.trunc(query.untilUs ?? Number.MAX_SAFE_INTEGER);
  const up = query.direction === 'up';
  const join = up
    ? `FROM walk w JOIN object_versions wv ON wv.seq = w.seq
         JOIN version_inputs vi ON vi.execution = wv.execution
         JOIN object_versions nv ON nv.seq = vi.version`
    : `FROM walk w JOIN version_inputs vi ON vi.version = w.seq
         JOIN object_versions nv ON nv.execution = vi.execution`;
  const bounded = query.depth !== undefined;
  const sql = bounded
    ? `WITH RECURSIVE walk(seq, depth) AS (
         SELECT s, 0 FROM unnest($1::bigint[]) AS s
         UNION
         SELECT nv.seq, w.depth + 1 ${join} WHERE w.depth < $2 AND nv.valid_from <= $3
       ), found AS (SELECT seq, min(depth) AS depth FROM walk GROUP BY seq ORDER BY seq LIMIT $4)
       SELECT ${VERSION_COLUMNS}, found.depth, ${MAKER_COLUMNS} FROM found JOIN object_versions v ON v.seq = found.seq JOIN objects o ON o.seq = v.object ${MAKER_JOIN}
       ORDER BY v.seq`
    : `WITH RECURSIVE walk(seq) AS (
         SELECT s FROM unnest($1::bigint[]) AS s
         UNION
         SELECT nv.seq ${join} WHERE nv.valid_from <= $2
       ), found AS (SELECT seq FROM walk LIMIT $3)
       SELECT ${VERSION_COLUMNS}, NULL::integer AS depth, ${MAKER_COLUMNS} FROM found JOIN object_versions v ON v.seq = found.seq JOIN objects o ON o.seq = v.object ${MAKER_JOIN}
       ORDER BY v.seq`;
  const args = bounded ? [starts, query.depth, until, limit + 1] : [starts, until, limit + 1];
  const rows = (await c.query<VersionRow & MakerRow & { depth: number | null }>(sql, args)).rows;
  const truncated = rows.length > limit;
  const kept = truncated ? rows.slice(0, limit) : rows;
  const versions: LineageVersion[] = kept.map((r) => {
    const version = toVersion(r);
    const maker =
      r.maker_step === null || version.executionId === null
        ? undefined
        : {
            executionId: version.executionId,
            stepId: r.maker_step,
            versionHash: hashFromBytes(r.maker_version as Buffer),
            startedUs: r.maker_started as number,
            status: r.maker_status === 1 ? ('failed' as const) : ('ok' as const),
          };
    return maker === undefined ? { version, depth: r.depth ?? -1 } : { version, depth: r.depth ?? -1, maker };
  });
  if (!bounded) assignDepths(versions, new Set(query.from), up);
  return { versions, truncated };
}

/** The versions needed to make `versionId`: the closure of its inputs, stopping at kept ones; inputs first. */
export async function plan(c: pg.ClientBase, versionId: string): Promise<RecomputeRow[]> {
  requireUuid(versionId, 'version id');
  const r = await c.query<VersionRow & { kept: boolean }>(
    `WITH RECURSIVE need(seq) AS (
       SELECT seq FROM object_versions WHERE id = $1
       UNION
       SELECT vi.version FROM need n
         JOIN object_versions nv ON nv.seq = n.seq
         JOIN version_inputs vi ON vi.execution = nv.execution
       WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.hash = nv.value)
     )
     SELECT ${VERSION_COLUMNS}, EXISTS (SELECT 1 FROM blobs b WHERE b.hash = v.value) AS kept
     FROM need JOIN object_versions v ON v.seq = need.seq JOIN objects o ON o.seq = v.object
     ORDER BY v.seq`,
    [versionId],
  );
  return r.rows.map((row) => ({ version: toVersion(row), kept: row.kept }));
}

export async function setMaterialization(c: pg.ClientBase, setting: MaterializationSetting): Promise<void> {
  await c.query('INSERT INTO materialization_settings (scope, policy, set_at) VALUES ($1, $2, $3)', [setting.scope, setting.policy, Math.trunc(setting.setUs)]);
}

export async function listMaterialization(c: pg.ClientBase): Promise<MaterializationSetting[]> {
  const r = await c.query<{ scope: string; policy: string; set_at: number }>(
    `SELECT scope, policy, set_at FROM materialization_settings m
     WHERE seq = (SELECT max(seq) FROM materialization_settings WHERE scope = m.scope) ORDER BY scope COLLATE "C"`,
  );
  return r.rows.map((row) => ({ scope: row.scope, policy: row.policy, setUs: row.set_at }));
}

export async function setPinned(c: pg.ClientBase, versionId: string, pinned: boolean, location: string): Promise<void> {
  const seq = await versionSeq(c, requireUuid(versionId, 'version id'));
  if (seq === undefined) throw new ProvenantError('NOT_FOUND', `no object version ${versionId} in ${location}`, { context: { versionId } });
  await c.query('INSERT INTO version_pins (version, pinned, set_at) VALUES ($1, $2, $3)', [seq, pinned ? 1 : 0, nowUs()]);
}

export async function recordReads(c: pg.ClientBase, reads: readonly ObjectRead[]): Promise<void> {
  const valid = reads.filter((r) => isUuid(r.versionId));
  if (valid.length === 0) return;
  await c.query(
    `INSERT INTO version_reads (version, at, recomputed, cost_us)
     SELECT v.seq, t.at, t.recomputed, t.cost FROM unnest($1::uuid[], $2::bigint[], $3::smallint[], $4::bigint[]) AS t(id, at, recomputed, cost)
     JOIN object_versions v ON v.id = t.id`,
    [valid.map((r) => r.versionId), valid.map((r) => Math.trunc(r.atUs)), valid.map((r) => (r.recomputed ? 1 : 0)), valid.map((r) => Math.max(0, Math.trunc(r.costUs)))],
  );
}

export async function usage(c: pg.ClientBase): Promise<VersionUsage[]> {
  const r = await c.query<VersionRow & { step_id: string; duration: number; reads: number; kept: boolean }>(
    `SELECT ${VERSION_COLUMNS}, sv.step_id, e.duration,
            (SELECT count(*) FROM version_reads r WHERE r.version = v.seq) AS reads,
            EXISTS (SELECT 1 FROM blobs b WHERE b.hash = v.value) AS kept
     FROM ${VERSION_FROM}
     JOIN executions e ON e.id = v.execution
     JOIN step_versions sv ON sv.seq = e.step_version
     WHERE v.execution IS NOT NULL
     ORDER BY v.seq`,
  );
  return r.rows.map((row) => ({ version: toVersion(row), stepId: row.step_id, durationUs: row.duration, reads: row.reads, kept: row.kept }));
}

/**
 * Of `hashes`, the ones that are only the content of derived, unpinned versions (and the
 * inputs/outputs of the executions that made or used them): nothing else refers to them, so their
 * bytes can go. Decided by queries in the server (call inside the deleting transaction).
 */
export async function droppable(c: pg.ClientBase, hashes: readonly ContentHash[]): Promise<Set<ContentHash>> {
  const candidates = new Set<ContentHash>(hashes);
  if (candidates.size === 0) return candidates;
  const keys = [...candidates].map((h) => hashToBytes(h));
  const probe = async (sql: string): Promise<void> => {
    for (const row of (await c.query<{ h: Buffer | null }>(sql, [keys])).rows) if (row.h !== null && row.h.length === 32) candidates.delete(hashFromBytes(row.h));
  };
  await probe(`SELECT v.value AS h FROM object_versions v WHERE v.value = ANY($1::bytea[]) AND (v.execution IS NULL OR
                 coalesce((SELECT p.pinned FROM version_pins p WHERE p.version = v.seq ORDER BY p.seq DESC LIMIT 1), 0) = 1)`);
  await probe('SELECT version_hash AS h FROM step_versions WHERE version_hash = ANY($1::bytea[])');
  await probe('SELECT hash AS h FROM contexts WHERE hash = ANY($1::bytea[])');
  await probe('SELECT value AS h FROM stream_log WHERE value = ANY($1::bytea[])');
  await probe('SELECT pipeline AS h FROM checkpoints WHERE pipeline = ANY($1::bytea[])');
  await probe('SELECT state AS h FROM checkpoint_ends WHERE state = ANY($1::bytea[])');
  await probe('SELECT input_slice AS h FROM checkpoint_ends WHERE input_slice = ANY($1::bytea[])');
  // Every execution's params, error and nondeterminism; the inputs and output of executions that
  // are not part of the object DAG (stream pipelines).
  await probe(`SELECT x AS h FROM executions e, LATERAL (VALUES (e.params), (e.error), (e.nondeterminism)) AS t(x) WHERE x = ANY($1::bytea[])`);
  await probe(`SELECT e.output AS h FROM executions e WHERE e.output = ANY($1::bytea[]) AND NOT EXISTS (SELECT 1 FROM object_versions v WHERE v.execution = e.id)`);
  await probe(`SELECT substring(e.inputs FROM i * 32 + 1 FOR 32) AS h
               FROM executions e, generate_series(0, length(e.inputs) / 32 - 1) AS i
               WHERE NOT EXISTS (SELECT 1 FROM object_versions v WHERE v.execution = e.id)
                 AND substring(e.inputs FROM i * 32 + 1 FOR 32) = ANY($1::bytea[])`);
  return candidates;
}

