/**
 * What both backends share when turning rows into records: tokens, the access log, and the depths
 * of a lineage walk done without them. Integer columns may arrive as numbers (SQLite) or as
 * strings (PostgreSQL `bigint`), so they go through `Number`.
 */
import { ProvenantError } from '../errors.js';
import { hashFromBytes } from '../hash/canonical.js';
import type { AccessLogEntry, LineageVersion, StreamSummary, TokenInfo } from './records.js';

type Int = number | string;

/** The token columns, with the revocation if any. */
export const TOKEN_SELECT = `
SELECT t.id, t.hash, t.principal, t.grants, t.created, t.expires, t.label, r.revoked
FROM tokens t LEFT JOIN token_revocations r ON r.token = t.seq`;

/** A row of {@link TOKEN_SELECT}. */
export interface TokenRow {
  id: string;
  hash: Buffer;
  principal: string;
  grants: string;
  created: Int;
  expires: Int | null;
  label: string | null;
  revoked: Int | null;
}

export function toToken(row: TokenRow): TokenInfo {
  return {
    id: row.id,
    hash: hashFromBytes(row.hash),
    principal: row.principal,
    grants: JSON.parse(row.grants) as string[],
    createdUs: Number(row.created),
    expiresUs: row.expires === null ? null : Number(row.expires),
    label: row.label,
    revokedUs: row.revoked === null ? null : Number(row.revoked),
  };
}

/** A row of the access log table. */
export interface AccessRow {
  id: string;
  time: Int;
  principal: string | null;
  token: string | null;
  address: string;
  method: string;
  target: string;
  route: string | null;
  status: number;
  rights: string;
  trace_id: string;
  duration: Int;
  detail: string;
}

export function toAccess(row: AccessRow): AccessLogEntry {
  return {
    id: row.id,
    timeUs: Number(row.time),
    principal: row.principal,
    tokenId: row.token,
    address: row.address,
    method: row.method,
    target: row.target,
    route: row.route,
    status: row.status,
    rights: JSON.parse(row.rights) as string[],
    traceId: row.trace_id,
    durationUs: Number(row.duration),
    detail: JSON.parse(row.detail) as AccessLogEntry['detail'],
  };
}

/** Depths (in executions) for a lineage walk done without them: breadth-first over the versions' input edges. */
export function assignDepths(versions: LineageVersion[], starts: Set<string>, up: boolean): void {
  const byId = new Map(versions.map((v, i) => [v.version.versionId, i]));
  const next = new Map<string, string[]>();
  for (const { version } of versions) {
    for (const input of version.inputVersionIds) {
      if (!byId.has(input)) continue;
      const [from, to] = up ? [version.versionId, input] : [input, version.versionId];
      let list = next.get(from);
      if (list === undefined) next.set(from, (list = []));
      list.push(to);
    }
  }
  const depth = new Map<string, number>();
  let frontier = [...starts].filter((id) => byId.has(id));
  for (const id of frontier) depth.set(id, 0);
  for (let d = 1; frontier.length > 0; d++) {
    const following: string[] = [];
    for (const id of frontier) {
      for (const n of next.get(id) ?? []) {
        if (!depth.has(n)) {
          depth.set(n, d);
          following.push(n);
        }
      }
    }
    frontier = following;
  }
  for (let i = 0; i < versions.length; i++) {
    const v = versions[i] as LineageVersion;
    versions[i] = { ...v, depth: depth.get(v.version.versionId) ?? 0 };
  }
}

/** A stream's extent as both backends select it. */
export interface StreamSummaryRow {
  id: string;
  length: number;
  first: number | null;
  last: number | null;
}

export function toStreamSummary(row: StreamSummaryRow): StreamSummary {
  return { streamId: row.id, length: row.length, firstAppendedUs: row.first, lastAppendedUs: row.last };
}

/** Stream ids: 1–200 characters, no control characters, well-formed. @throws ProvenantError INPUT_INVALID */
export function checkStreamId(streamId: string): void {
  // eslint-disable-next-line no-control-regex
  if (streamId.length === 0 || streamId.length > 200 || /[\u0000-\u001f\u007f]/.test(streamId) || !streamId.isWellFormed()) {
    throw new ProvenantError('INPUT_INVALID', `"${streamId.slice(0, 60)}" is not a valid stream id`, {
      hint: 'A stream id is 1 to 200 characters without control characters, e.g. flights or orders/eu.',
      context: { streamId: streamId.slice(0, 200) },
    });
  }
}
