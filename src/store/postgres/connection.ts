/**
 * Connecting to PostgreSQL: parsing a store location (`postgres://user@host:port/db?schema=name`),
 * the connection pool, and retrying work that failed because the connection was lost (a server
 * restart, a failover) with exponential backoff. Errors are classified once here: connection
 * losses are retryable; constraint violations and append-only refusals are not.
 */
import pg from 'pg';
import { ProvenantError } from '../../errors.js';

/** A parsed PostgreSQL store location. */
export interface PgLocation {
  /** The connection string handed to `pg`, without Provenant's own parameters. */
  readonly connectionString: string;
  /** The schema the store's tables live in (default `public`). */
  readonly schema: string;
  /** The location with any password hidden, for messages. */
  readonly display: string;
  /** How long work is retried after a lost connection (`?retry_ms=`), when not the default. */
  readonly retryMs?: number;
}

const SCHEMA_RE = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Whether a store location names a PostgreSQL database. */
export function isPostgresLocation(location: string): boolean {
  return /^postgres(ql)?:\/\//.test(location);
}

/** A location with its password replaced by `***`. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

/**
 * Parse `postgres://…[?schema=name]`. `schema` is Provenant's: the store's tables live in that
 * schema (created when absent), so that one database can hold several stores.
 * @throws ProvenantError INPUT_INVALID for a malformed URL or schema name
 */
export function parsePgLocation(location: string): PgLocation {
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    throw new ProvenantError('INPUT_INVALID', `not a PostgreSQL URL: ${redactUrl(location)}`, {
      hint: 'Write it as postgres://user@host:5432/database, optionally with ?schema=name.',
      context: { store: redactUrl(location) },
    });
  }
  const schema = url.searchParams.get('schema') ?? 'public';
  if (!SCHEMA_RE.test(schema)) {
    throw new ProvenantError('INPUT_INVALID', `"${schema}" is not a valid schema name for a store`, {
      hint: 'A schema name is a letter or _ followed by up to 62 letters, digits or _.',
      context: { store: redactUrl(location), schema },
    });
  }
  url.searchParams.delete('schema');
  const retry = url.searchParams.get('retry_ms');
  url.searchParams.delete('retry_ms');
  if (retry !== null && !/^[1-9][0-9]{0,8}$/.test(retry)) {
    throw new ProvenantError('INPUT_INVALID', `retry_ms=${retry} is not a number of milliseconds`, {
      hint: 'retry_ms is how long work is retried after a lost connection, e.g. ?retry_ms=120000 (default 60000).',
      context: { store: redactUrl(location) },
    });
  }
  return { connectionString: url.toString(), schema, display: redactUrl(location), ...(retry === null ? {} : { retryMs: Number(retry) }) };
}

// bigint (int8) columns hold microsecond times, offsets and counts: all within 2^53, read as numbers.
const INT8_OID = 20;
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID && format !== 'binary') return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format as 'text');
  },
};

/** A pool of connections to one store, each with its schema on the search path. */
export function createPool(location: PgLocation, max = 4): pg.Pool {
  const pool = new pg.Pool({
    connectionString: location.connectionString,
    max,
    // Generic plans for the prepared statements: a custom plan is made per execution with the
    // parameters as constants, and a batch's parameters are arrays and a binary heap of thousands of
    // values, copied into each custom plan. Measured (perf, 100,000 records, one worker): planning
    // was 11 % of PostgreSQL's CPU, 20 % with two workers; with generic plans it is gone.
    options: `-c search_path=${location.schema} -c plan_cache_mode=force_generic_plan`,
    types: types as unknown as pg.CustomTypesConfig,
    idleTimeoutMillis: 10_000,
    connectionTimeoutMillis: 10_000,
  });
  // An idle connection the server closed (a restart) errors here; the pool drops it and the next
  // query opens a new one. Without a listener the error would end the process.
  pool.on('error', () => undefined);
  // A server restart ends every connection with an 'error' event; a client checked out at that
  // moment has no listener of its own, and an unheard 'error' would end the process. Its query
  // still rejects, and withClient retries on a new connection.
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
  });
  return pool;
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', '57P01', '57P02', '57P03', '08000', '08001', '08003', '08004', '08006', '53300']);

/** Whether an error means the connection was lost or refused (retrying later may succeed). */
export function isConnectionError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && CONNECTION_CODES.has(code)) return true;
  const message = String((err as { message?: unknown }).message ?? '');
  return /Connection terminated|connection timeout|Client has encountered a connection error|Connection ended|not queryable|the database system is (starting up|shutting down|in recovery)/i.test(message);
}

/** The PostgreSQL error code (SQLSTATE) of an error, if it has one. */
export function sqlState(err: unknown): string | undefined {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** How long work is retried after connection errors before giving up. */
export interface RetryPolicy {
  /** Total time to keep retrying, in milliseconds. Default: 60 s. */
  readonly budgetMs: number;
  /** First wait; doubles up to `maxDelayMs`. */
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = Object.freeze({ budgetMs: 60_000, initialDelayMs: 100, maxDelayMs: 2_000 });

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Run `fn` with a client from the pool; when it fails with a connection error, wait and run it
 * again (with a new connection) until the retry budget is spent. `beforeRetry` is called before
 * each retry and may return a value to resolve with instead (work whose commit may have landed).
 * @throws ProvenantError STORE_BUSY (retryable) when the server stayed unreachable
 */
export async function withClient<T>(
  pool: pg.Pool,
  display: string,
  fn: (client: pg.PoolClient) => Promise<T>,
  options: { retry?: RetryPolicy; beforeRetry?: () => Promise<{ done: true; value: T } | undefined> } = {},
): Promise<T> {
  const policy = options.retry ?? DEFAULT_RETRY;
  const deadline = Date.now() + policy.budgetMs;
  let delay = policy.initialDelayMs;
  for (let attempt = 1; ; attempt++) {
    let client: pg.PoolClient | undefined;
    try {
      client = await pool.connect();
      const value = await fn(client);
      client.release();
      return value;
    } catch (err) {
      // A connection that failed is destroyed rather than returned to the pool.
      client?.release(isConnectionError(err) ? (err as Error) : undefined);
      if (!isConnectionError(err)) throw err;
      if (Date.now() + delay > deadline) {
        throw new ProvenantError('STORE_BUSY', `PostgreSQL at ${display} is unreachable (${(err as Error).message}); gave up after ${attempt} attempts`, {
          hint: 'Check that the server is running and reachable; committed records are intact, run again once it is.',
          context: { store: display, attempts: attempt },
          retryable: true,
          cause: err,
        });
      }
      await sleep(delay);
      delay = Math.min(delay * 2, policy.maxDelayMs);
      if (options.beforeRetry !== undefined) {
        try {
          const settled = await options.beforeRetry();
          if (settled !== undefined) return settled.value;
        } catch (checkErr) {
          if (!isConnectionError(checkErr)) throw checkErr;
        }
      }
    }
  }
}

/** Run `fn` in a transaction (BEGIN … COMMIT), rolling back on any error. */
export async function inTransaction<T>(client: pg.PoolClient, fn: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const value = await fn();
    await client.query('COMMIT');
    return value;
  } catch (err) {
    if (!isConnectionError(err)) await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
