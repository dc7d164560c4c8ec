/**
 * Bearer tokens for the HTTP API. A token is `pvt_` followed by 43 characters of base64url (32
 * random bytes); it is shown once, when created. The store keeps only its SHA-256 (a token has
 * 256 bits of entropy, so a fast hash is as good as a slow one here), its principal, grants,
 * expiry and revocation. Tokens and revocations are appended, never updated.
 */
import { randomBytes } from 'node:crypto';
import { ProvenantError } from '../errors.js';
import { sha256 } from '../hash/canonical.js';
import { newId, nowUs } from '../ids.js';
import type { TokenInfo } from '../store/records.js';
import type { Store } from '../store/store.js';
import { Grants } from './grants.js';

/** What every token starts with (lets secret scanners recognise a leaked one). */
export const TOKEN_PREFIX = 'pvt_';

const TOKEN_RE = /^pvt_[A-Za-z0-9_-]{43}$/;

/** Options of {@link createToken}. */
export interface CreateTokenOptions {
  /** Who the token speaks for: 1 to 200 characters without control characters. */
  readonly principal: string;
  /** `<right>:<pattern>` grants (see `auth/grants.ts`); at least one. */
  readonly grants: readonly string[];
  /** When it stops working (epoch milliseconds), or undefined for never. */
  readonly expiresAtMs?: number;
  /** A note for people. */
  readonly label?: string;
}

/** A token just created: the secret (shown once) and what the store keeps. */
export interface CreatedToken {
  /** The bearer token to hand over; it cannot be shown again. */
  readonly token: string;
  readonly info: TokenInfo;
}

/**
 * Create a bearer token for `principal` with `grants`.
 * @example
 * const { token } = await createToken(store, { principal: 'alice', grants: ['read:customers/*'] });
 * // curl -H "Authorization: Bearer $token" http://127.0.0.1:7410/data/customers/42
 * @throws ProvenantError INPUT_INVALID for a malformed principal or grant, no grant, or an expiry in the past
 */
export async function createToken(store: Store, options: CreateTokenOptions): Promise<CreatedToken> {
  const principal = options.principal;
  // eslint-disable-next-line no-control-regex
  if (principal.length === 0 || principal.length > 200 || /[\u0000-\u001f\u007f]/.test(principal)) {
    throw new ProvenantError('INPUT_INVALID', `"${principal.slice(0, 60)}" is not a principal: 1 to 200 characters without control characters`, {
      hint: 'Name the user or service the token is for, e.g. --principal alice.',
      context: { principal: principal.slice(0, 200) },
    });
  }
  if (options.grants.length === 0) {
    throw new ProvenantError('INPUT_INVALID', `a token for ${principal} needs at least one grant`, {
      hint: "Give --grant '<right>:<pattern>', e.g. --grant 'read:customers/*'.",
      context: { principal },
    });
  }
  const grants = Grants.parse(options.grants).texts;
  const createdUs = nowUs();
  if (options.expiresAtMs !== undefined && options.expiresAtMs * 1000 <= createdUs) {
    throw new ProvenantError('INPUT_INVALID', `the expiry ${new Date(options.expiresAtMs).toISOString()} is in the past`, {
      hint: 'Give a duration such as --expires 30d.',
      context: { expires: options.expiresAtMs },
    });
  }
  const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
  const info: TokenInfo = {
    id: newId(),
    hash: sha256(token),
    principal,
    grants,
    createdUs,
    expiresUs: options.expiresAtMs === undefined ? null : Math.round(options.expiresAtMs * 1000),
    label: options.label ?? null,
    revokedUs: null,
  };
  await store.createToken(info);
  return { token, info };
}

/** Why a request's credentials were refused. */
export type TokenRefusal = 'missing' | 'malformed' | 'unknown' | 'expired' | 'revoked';

/** The outcome of {@link authenticate}: the caller, or why not. */
export type Authentication =
  | { readonly ok: true; readonly token: TokenInfo; readonly grants: Grants }
  | { readonly ok: false; readonly reason: TokenRefusal; readonly tokenId?: string };

/** Check a bearer token (the part after `Bearer `) against the store: revoked at all, or expired at `nowMs`. */
export async function authenticate(store: Store, token: string | undefined, nowMs = Date.now()): Promise<Authentication> {
  if (token === undefined || token.length === 0) return { ok: false, reason: 'missing' };
  if (!TOKEN_RE.test(token)) return { ok: false, reason: 'malformed' };
  const info = await store.findToken(sha256(token));
  if (info === undefined) return { ok: false, reason: 'unknown' };
  // A revocation takes effect once it is recorded, whatever time it carries: it was stamped by the
  // clock of the process that revoked (microseconds; this check's clock may be behind it).
  if (info.revokedUs !== null) return { ok: false, reason: 'revoked', tokenId: info.id };
  if (info.expiresUs !== null && info.expiresUs <= nowMs * 1000) return { ok: false, reason: 'expired', tokenId: info.id };
  return { ok: true, token: info, grants: Grants.parse(info.grants) };
}

/**
 * An {@link authenticate} for a server: a token that authenticated is remembered, so that a
 * server under load does not look every request's token up in the store, until any token is
 * revoked — every request first asks the store how many revocations it holds (a cheap local read
 * on the embedded store) and forgets every remembered token when that number changed. So a
 * revocation, from this process or another, takes effect on the next request. Expiry is checked
 * on every request. Unknown, malformed and refused tokens are never remembered; at most `max`
 * tokens are (oldest out). A store that cannot count revocations cheaply gets no cache.
 */
export function cachedAuthenticator(store: Store, options: { max?: number } = {}): (token: string | undefined) => Promise<Authentication> {
  const count = store.revocationCount;
  if (count === undefined) return (token) => authenticate(store, token);
  const max = options.max ?? 10_000;
  const cache = new Map<string, Authentication & { ok: true }>();
  let revocations = -1;
  return async (token) => {
    const now = Date.now();
    const n = await count();
    if (n !== revocations) {
      cache.clear();
      revocations = n;
    }
    if (token !== undefined) {
      const hit = cache.get(token);
      if (hit !== undefined) {
        const expires = hit.token.expiresUs;
        if (expires === null || expires > now * 1000) return hit;
        cache.delete(token);
      }
    }
    const auth = await authenticate(store, token, now);
    if (auth.ok && token !== undefined) {
      if (cache.size >= max) cache.delete(cache.keys().next().value as string);
      cache.set(token, auth);
    }
    return auth;
  };
}

/**
 * Revoke a token by id or unique id prefix (8 characters or more).
 * @throws ProvenantError NOT_FOUND (unknown), INPUT_INVALID (prefix too short or ambiguous)
 */
export async function revokeToken(store: Store, ref: string): Promise<TokenInfo> {
  const all = await store.listTokens();
  const exact = all.find((t) => t.id === ref);
  if (exact !== undefined) return store.revokeToken(exact.id, nowUs());
  if (ref.length < 8) {
    throw new ProvenantError('INPUT_INVALID', `"${ref}" is too short to name a token: give its id or 8 characters or more of it`, { context: { tokenId: ref } });
  }
  const matches = all.filter((t) => t.id.startsWith(ref));
  if (matches.length === 0) {
    throw new ProvenantError('NOT_FOUND', `no token with id ${ref} in ${store.location}`, { hint: 'List tokens with `provenant token list`.', context: { tokenId: ref } });
  }
  if (matches.length > 1) {
    throw new ProvenantError('INPUT_INVALID', `"${ref}" names ${matches.length} tokens; give more of the id`, { context: { tokenId: ref, matches: matches.map((t) => t.id) } });
  }
  return store.revokeToken((matches[0] as TokenInfo).id, nowUs());
}

/** A duration such as `30d`, `12h`, `15m`, `90s` or `2w`, in milliseconds. @throws ProvenantError INPUT_INVALID */
export function parseTokenDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$/.exec(text.trim());
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;
  const ms = m === null ? Number.NaN : Number(m[1]) * unit[m[2] as keyof typeof unit];
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new ProvenantError('INPUT_INVALID', `"${text}" is not a duration; write e.g. 90s, 15m, 12h, 30d or 2w`, { context: { value: text } });
  }
  return ms;
}
