/**
 * Bearer tokens (hashes only), their revocations and the access log in PostgreSQL (migration 4),
 * the same records and rules as the SQLite backend's.
 */
import type pg from 'pg';
import { ProvenantError } from '../../errors.js';
import { canonicalize, hashToBytes, type ContentHash } from '../../hash/canonical.js';
import type { AccessLogEntry, AccessLogQuery, TokenInfo, TokenRecord } from '../records.js';
import { inTransaction, sqlState } from './connection.js';
import { TOKEN_SELECT, toAccess, toToken, type AccessRow, type TokenRow } from '../shared-rows.js';

export async function createToken(c: pg.PoolClient, token: TokenRecord): Promise<void> {
  try {
    await c.query('INSERT INTO tokens (id, hash, principal, grants, created, expires, label) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
      token.id,
      hashToBytes(token.hash),
      token.principal,
      JSON.stringify(token.grants),
      token.createdUs,
      token.expiresUs,
      token.label,
    ]);
  } catch (err) {
    if (sqlState(err) === '23505') {
      throw new ProvenantError('INPUT_INVALID', `a token with id ${token.id} or the same secret already exists`, {
        hint: 'Create the token again: a new one gets a fresh id and secret.',
        context: { tokenId: token.id },
      });
    }
    throw err;
  }
}

export async function findToken(c: pg.PoolClient, hash: ContentHash): Promise<TokenInfo | undefined> {
  const r = await c.query<TokenRow>(`${TOKEN_SELECT} WHERE t.hash = $1`, [hashToBytes(hash)]);
  const row = r.rows[0];
  return row === undefined ? undefined : toToken(row);
}

export async function listTokens(c: pg.PoolClient): Promise<TokenInfo[]> {
  return (await c.query<TokenRow>(`${TOKEN_SELECT} ORDER BY t.seq`)).rows.map(toToken);
}

export async function revokeToken(c: pg.PoolClient, tokenId: string, revokedUs: number, location: string): Promise<TokenInfo> {
  return inTransaction(c, async () => {
    const found = await c.query<{ seq: string }>('SELECT seq FROM tokens WHERE id = $1 FOR UPDATE', [tokenId]);
    const seq = found.rows[0]?.seq;
    if (seq === undefined) {
      throw new ProvenantError('NOT_FOUND', `no token with id ${tokenId} in ${location}`, { hint: 'List tokens with `provenant token list`.', context: { tokenId } });
    }
    // Revoking twice keeps the first revocation (history is appended, never rewritten).
    await c.query('INSERT INTO token_revocations (token, revoked) VALUES ($1, $2) ON CONFLICT (token) DO NOTHING', [seq, revokedUs]);
    const r = await c.query<TokenRow>(`${TOKEN_SELECT} WHERE t.id = $1`, [tokenId]);
    return toToken(r.rows[0] as TokenRow);
  });
}

export async function appendAccessLog(c: pg.PoolClient, entries: readonly AccessLogEntry[]): Promise<void> {
  if (entries.length === 0) return;
  await c.query(
    `INSERT INTO access_log (id, time, principal, token, address, method, target, route, status, rights, trace_id, duration, detail)
     SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int[], $10::text[], $11::text[], $12::bigint[], $13::text[])`,
    [
      entries.map((e) => e.id),
      entries.map((e) => e.timeUs),
      entries.map((e) => e.principal),
      entries.map((e) => e.tokenId),
      entries.map((e) => e.address),
      entries.map((e) => e.method),
      entries.map((e) => e.target),
      entries.map((e) => e.route),
      entries.map((e) => e.status),
      entries.map((e) => JSON.stringify(e.rights)),
      entries.map((e) => e.traceId),
      entries.map((e) => e.durationUs),
      entries.map((e) => canonicalize(e.detail)),
    ],
  );
}

export async function listAccessLog(c: pg.PoolClient, query: AccessLogQuery): Promise<AccessLogEntry[]> {
  const where: string[] = [];
  const args: unknown[] = [];
  if (query.principal !== undefined) {
    args.push(query.principal);
    where.push(`principal = $${args.length}`);
  }
  if (query.sinceUs !== undefined) {
    args.push(query.sinceUs);
    where.push(`time >= $${args.length}`);
  }
  if (query.afterId !== undefined) {
    args.push(query.afterId);
    where.push(`seq > coalesce((SELECT seq FROM access_log WHERE id = $${args.length}), 0)`);
  }
  args.push(query.limit ?? 1000);
  const sql = `SELECT * FROM access_log ${where.length > 0 ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY seq LIMIT $${args.length}`;
  return (await c.query<AccessRow>(sql, args)).rows.map(toAccess);
}
