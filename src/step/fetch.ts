/**
 * Recorded HTTP calls: the record format of a `fetch` a step made, and how a recording is turned
 * back into what the step receives (a `Response`, or the rejection of a failed call). The tapes
 * in `determinism.ts` decide when a call is real (capture) and when it is answered from a
 * recording (replay); both hand the step what this module builds from the record, so what a step
 * saw at capture is exactly what is recorded.
 *
 * A fetch entry of a nondeterminism record is `['fetch', FetchRecord]`, `FetchRecord` being a
 * JSON object (keys are sorted by canonical JSON when it is hashed):
 *
 * ```text
 * { request:  { method, url, headers: [[name, value], …], body?: base64 },
 *   response: { status, statusText, url, redirected, headers: [[name, value], …], body: base64 } }
 * { request, error: { name, message, cause?: { name, message, code?, errno?, syscall?, address?, port?, hostname? } } }
 * { request: { method, url, headers }, pending: true }
 * ```
 *
 * `response`: the call was answered (any status); `error`: it was rejected (network failure:
 * connection refused, DNS, reset while reading the body); `pending`: the step's call ended before
 * the answer arrived, so nothing was answered (such an execution is recorded as failed).
 */
import { sha256 } from '../hash/canonical.js';

/** A request as recorded: method, absolute URL, the request's headers, body bytes (base64; absent: no body). */
export type FetchRequestRecord = {
  readonly method: string;
  readonly url: string;
  /**
   * `[name, value]` pairs as the request holds them (names lower-case): the headers the step set,
   * and the `content-type` its body implies when it set none.
   */
  readonly headers: readonly (readonly [string, string])[];
  readonly body?: string;
};

/** An answer as recorded; `body` holds every byte of the (decoded) body, base64. */
export type FetchResponseRecord = {
  readonly status: number;
  readonly statusText: string;
  /** The final URL (after redirects). */
  readonly url: string;
  readonly redirected: boolean;
  readonly headers: readonly (readonly [string, string])[];
  readonly body: string;
};

/** Details of the cause of a network failure (`err.cause`), as far as they are strings and numbers. */
export type FetchErrorCauseRecord = {
  readonly name: string;
  readonly message: string;
  readonly code?: string;
  readonly errno?: number;
  readonly syscall?: string;
  readonly address?: string;
  readonly port?: number;
  readonly hostname?: string;
};

/** A rejected call as recorded (Node's fetch rejects with `TypeError('fetch failed')` and a cause). */
export type FetchErrorRecord = {
  readonly name: string;
  readonly message: string;
  readonly cause?: FetchErrorCauseRecord;
};

/** How a call ended: answered, or rejected. */
export type FetchOutcome = { readonly response: FetchResponseRecord } | { readonly error: FetchErrorRecord };

/** One recorded fetch: the request and its outcome, or `pending` when the step's call ended first. */
export type FetchRecord =
  | { readonly request: FetchRequestRecord; readonly response: FetchResponseRecord }
  | { readonly request: FetchRequestRecord; readonly error: FetchErrorRecord }
  | { readonly request: FetchRequestRecord; readonly pending: true };

/** The error constructors of the realm the step runs in, so that the failures it receives are its own. */
export interface RealmErrors {
  readonly TypeError: TypeErrorConstructor;
  readonly Error: ErrorConstructor;
}

/** What is known of a request when the step makes the call (its body is read afterwards). */
export function requestHead(request: Request): FetchRequestRecord {
  return { method: request.method, url: request.url, headers: [...request.headers] };
}

/** `fetch(METHOD url)`, with the body's size and hash when it has one: how errors name a call. */
export function describeFetch(request: FetchRequestRecord): string {
  if (request.body === undefined) return `fetch(${request.method} ${request.url})`;
  const bytes = Buffer.from(request.body, 'base64');
  return `fetch(${request.method} ${request.url}, ${bytes.length}-byte body ${sha256(bytes).slice(0, 19)}…)`;
}

/** The request's body, read to the end, as base64 (undefined: no body). */
export async function readRequestBody(request: Request): Promise<string | undefined> {
  if (request.body === null) return undefined;
  return Buffer.from(await request.arrayBuffer()).toString('base64');
}

/** Perform the call for real and record its outcome; the response body is read to its end. */
export async function performFetch(request: Request, signal: AbortSignal): Promise<FetchOutcome> {
  try {
    const response = await fetch(request, { signal });
    const body = Buffer.from(await response.arrayBuffer()).toString('base64');
    return {
      response: {
        status: response.status,
        statusText: response.statusText,
        url: response.url,
        redirected: response.redirected,
        headers: [...response.headers],
        body,
      },
    };
  } catch (err) {
    return { error: fetchErrorRecord(err) };
  }
}

const CAUSE_STRINGS = ['code', 'syscall', 'address', 'hostname'] as const;
const CAUSE_NUMBERS = ['errno', 'port'] as const;

/** A rejection as recorded: name, message, and the cause's details. */
export function fetchErrorRecord(err: unknown): FetchErrorRecord {
  const e = err as { name?: unknown; message?: unknown; cause?: unknown } | null;
  const name = typeof e?.name === 'string' ? e.name : 'TypeError';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  const c = e?.cause;
  if (typeof c !== 'object' || c === null) return { name, message };
  const source = c as Record<string, unknown>;
  const cause: Record<string, string | number> = {
    name: typeof source['name'] === 'string' ? source['name'] : 'Error',
    message: typeof source['message'] === 'string' ? source['message'] : '',
  };
  for (const key of CAUSE_STRINGS) if (typeof source[key] === 'string') cause[key] = source[key];
  for (const key of CAUSE_NUMBERS) if (typeof source[key] === 'number' && Number.isFinite(source[key])) cause[key] = source[key];
  return { name, message, cause: cause as FetchErrorCauseRecord };
}

/** Statuses whose responses have no body (a Response cannot be made with one). */
const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

/** The `Response` a step receives for a recorded answer (a new one at each call). */
export function responseFrom(record: FetchResponseRecord): Response {
  const bytes = Buffer.from(record.body, 'base64');
  const response = new Response(NULL_BODY_STATUS.has(record.status) ? null : new Uint8Array(bytes), {
    status: record.status,
    statusText: record.statusText,
    headers: record.headers.map(([name, value]) => [name, value]),
  });
  // What `fetch` itself would report, rather than what a constructed Response does.
  Object.defineProperties(response, {
    url: { value: record.url, enumerable: true },
    redirected: { value: record.redirected, enumerable: true },
    type: { value: 'basic', enumerable: true },
    clone: {
      value: function clone(): Response {
        if (response.bodyUsed || response.body?.locked === true) throw new TypeError('Response.clone: Body has already been consumed.');
        return responseFrom(record);
      },
    },
  });
  return response;
}

/** The rejection a step receives for a recorded failure, made with the realm's own error classes. */
export function errorFrom(record: FetchErrorRecord, realm: RealmErrors): Error {
  let cause: Error | undefined;
  if (record.cause !== undefined) {
    const { name, message, ...details } = record.cause;
    cause = Object.assign(new realm.Error(message), details);
    if (name !== 'Error') Object.defineProperty(cause, 'name', { value: name, writable: true, configurable: true });
  }
  const options = cause === undefined ? undefined : { cause };
  const error = record.name === 'TypeError' ? new realm.TypeError(record.message, options) : new realm.Error(record.message, options);
  if (record.name !== 'TypeError' && record.name !== 'Error') {
    Object.defineProperty(error, 'name', { value: record.name, writable: true, configurable: true });
  }
  return error;
}

/** A fetch record as JSON (no undefined: absent fields are left out). */
export function fetchRecordJson(record: FetchRecord): Record<string, unknown> {
  const r = record.request;
  const request: Record<string, unknown> = { method: r.method, url: r.url, headers: r.headers.map(([n, v]) => [n, v]) };
  if (r.body !== undefined) request['body'] = r.body;
  if ('pending' in record) return { request, pending: true };
  if ('error' in record) return { request, error: { ...record.error, ...(record.error.cause ? { cause: { ...record.error.cause } } : {}) } };
  const s = record.response;
  return {
    request,
    response: { status: s.status, statusText: s.statusText, url: s.url, redirected: s.redirected, headers: s.headers.map(([n, v]) => [n, v]), body: s.body },
  };
}
