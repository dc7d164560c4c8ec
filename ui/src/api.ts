/**
 * The public HTTP API, with the bearer token the user signed in with (kept in sessionStorage).
 * A 401 from any call signs out and goes back to the sign-in screen.
 */

const KEY = 'provenant.token';

/** A problem answered by the API (RFC 9457). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
    readonly hint: string | undefined,
    readonly code: string | undefined,
  ) {
    super(detail);
  }
}

export function token(): string | null {
  return sessionStorage.getItem(KEY);
}

export function signIn(t: string): void {
  sessionStorage.setItem(KEY, t.trim());
}

export function signOut(): void {
  sessionStorage.removeItem(KEY);
}

/** Where to go after signing in again. */
let returnTo = '';
export function takeReturnTo(): string {
  const r = returnTo;
  returnTo = '';
  return r;
}

/** Fetch with the token; throws ApiError for problems (after sending the user to sign in on 401). */
export async function call(path: string, init: RequestInit = {}): Promise<Response> {
  const t = token();
  const headers = new Headers(init.headers);
  if (t !== null) headers.set('authorization', `Bearer ${t}`);
  let res: Response;
  try {
    res = await fetch(path, { ...init, headers });
  } catch (err) {
    throw new ApiError(0, `the server did not answer (${err instanceof Error ? err.message : String(err)})`, 'Check that `provenant serve` is running.', 'NETWORK');
  }
  if (res.ok) return res;
  let problem: { detail?: string; hint?: string; code?: string } = {};
  try {
    problem = (await res.json()) as typeof problem;
  } catch {
    // not JSON
  }
  if (res.status === 401) {
    signOut();
    if (!location.hash.startsWith('#/signin')) {
      returnTo = location.hash;
      location.hash = '#/signin';
    }
  }
  throw new ApiError(res.status, problem.detail ?? res.statusText, problem.hint, problem.code);
}

/** GET JSON. */
export async function getJson<T>(path: string): Promise<T> {
  return (await (await call(path)).json()) as T;
}

/** POST JSON, answer as JSON. */
export async function postJson<T>(path: string, body: unknown): Promise<T> {
  return (await (await call(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json()) as T;
}

/** One path segment (object ids hold `/`). */
export const seg = (s: string): string => encodeURIComponent(s);
