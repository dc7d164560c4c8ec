/**
 * Fresh PostgreSQL stores for tests: each is a new schema (`t_<random>`) in the test database, so
 * tests are isolated from each other and from other people's stores; the schemas a test file made
 * are dropped when it ends.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll } from 'vitest';
import { POSTGRES } from './services.js';

const made: string[] = [];

afterAll(async () => {
  if (made.length === 0) return;
  const client = new pg.Client({ connectionString: POSTGRES.url });
  try {
    await client.connect();
    for (const schema of made.splice(0)) await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } catch {
    // The server may be gone (a test stopped it); the schemas are left for the next cleanup.
  } finally {
    await client.end().catch(() => undefined);
  }
});

/** A store URL naming a new, empty schema (created by the store when it opens). */
export function freshPgUrl(label = 't'): string {
  const schema = `${label}_${randomBytes(6).toString('hex')}`;
  made.push(schema);
  const url = new URL(POSTGRES.url);
  url.searchParams.set('schema', schema);
  return url.toString();
}

/** Run SQL against the test database (outside any store), e.g. to try to tamper with history. */
export async function rawPg<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: POSTGRES.url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}
