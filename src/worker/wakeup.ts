/**
 * Waking idle workers as soon as there may be work for them, rather than at their next poll.
 *
 * Workers that find nothing to take wait `pollMs` before looking again. While they wait they
 * LISTEN on the PostgreSQL channel {@link WORK_CHANNEL}; a worker that changes what there is to do
 * — cuts new segments, finishes one (the last one ends a `--drain`), queues or ends a job — sends
 * `pg_notify(WORK_CHANNEL, schema)`, and every worker of that store (the payload: its schema; one
 * database may hold several stores) looks again at once. Notifications are best effort: a lost
 * listening connection only means waiting for the next poll, and it is opened again on the next
 * wait (at most every few seconds while the server is away).
 */
import pg from 'pg';

/** The channel workers listen on; the payload is the store's schema. */
export const WORK_CHANNEL = 'provenant_work';

/** Tell the store's idle workers to look for work now (delivered when the current transaction, if any, commits). */
export async function notifyWork(client: pg.ClientBase, schema: string): Promise<void> {
  await client.query('SELECT pg_notify($1, $2)', [WORK_CHANNEL, schema]);
}

/** How long to wait before opening the listening connection again after it failed. */
const RELISTEN_MS = 3_000;

/** One worker's listening connection, and the waits it cuts short. */
export class WorkWakeup {
  readonly #connectionString: string;
  readonly #schema: string;
  #client: pg.Client | undefined;
  #opening: Promise<void> | undefined;
  #nextAttempt = 0;
  #closed = false;
  #waiters = new Set<() => void>();
  /** Notifications seen so far: a wait started after a check returns at once if one came since. */
  #generation = 0;

  constructor(connectionString: string, schema: string) {
    this.#connectionString = connectionString;
    this.#schema = schema;
  }

  /** The count of notifications so far; pass it to {@link wait} to catch one that came in between. */
  get generation(): number {
    return this.#generation;
  }

  /** Start listening (in the background, best effort). Waits call it too. */
  listen(): void {
    if (this.#closed || this.#client !== undefined || this.#opening !== undefined || Date.now() < this.#nextAttempt) return;
    const client = new pg.Client({ connectionString: this.#connectionString, connectionTimeoutMillis: 10_000 });
    const lost = (): void => {
      if (this.#client === client) this.#client = undefined;
      this.#nextAttempt = Date.now() + RELISTEN_MS;
      client.end().catch(() => undefined);
    };
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', (n) => {
      if (n.channel === WORK_CHANNEL && n.payload === this.#schema) this.#wake();
    });
    this.#opening = (async () => {
      try {
        await client.connect();
        await client.query(`LISTEN ${WORK_CHANNEL}`);
        if (this.#closed) {
          await client.end();
          return;
        }
        this.#client = client;
        // Work may have appeared while the connection was opening: look again.
        this.#wake();
      } catch {
        lost();
      } finally {
        this.#opening = undefined;
      }
    })();
  }

  /**
   * Wait `ms`, or less: until a notification for this store, or `signal` aborts. Returns at once
   * when a notification came after `since` (a {@link generation} read before the last check).
   */
  wait(ms: number, since: number, signal?: AbortSignal): Promise<void> {
    this.listen();
    if (this.#generation !== since || signal?.aborted === true) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
      this.#waiters.add(done);
    });
  }

  #wake(): void {
    this.#generation++;
    for (const w of [...this.#waiters]) w();
  }

  /** Stop listening and end every wait. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#wake();
    await this.#opening;
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => undefined);
  }
}
