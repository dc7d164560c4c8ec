/**
 * A real store for the HTTP tests: two embedded streams (`orders`, `payments/eu`) each run through a
 * small two-step pipeline with checkpoints, a second recorded version of one step, and tokens for
 * principals with different grants. The server listens on a random loopback port; tests use fetch.
 */
import { join } from 'node:path';
import { createToken } from '../../src/auth/tokens.js';
import { sha256 } from '../../src/hash/canonical.js';
import { createServer, type ProvenantServer, type ServerOptions } from '../../src/http/server.js';
import { newId, nowUs } from '../../src/ids.js';
import type { PipelineDefinition } from '../../src/pipeline/define.js';
import { runPipeline } from '../../src/pipeline/execute.js';
import { prepareStep } from '../../src/step/register.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/store.js';
import { appendRecords, LogSource } from '../../src/stream/log.js';
import { writeProject } from '../helpers/project.js';
import { makeTempDir } from '../helpers/temp.js';

export const MODULES = {
  'steps/parse.ts': `export default function parse(r: { id: number; amount: number }) {
    return { id: r.id, cents: Math.round(r.amount * 100) };
  }`,
  'steps/parse-v2.ts': `export default function parse(r: { id: number; amount: number }) {
    return { id: r.id, cents: Math.floor(r.amount * 100) };
  }`,
  'steps/flag.ts': `export default function flag(r: { id: number; cents: number }, p: { above: number }) {
    return { ...r, large: r.cents > p.above };
  }`,
};

const pipeline: PipelineDefinition = {
  name: 'http-fixture',
  failurePolicy: 'dead-letter',
  steps: [
    { id: 'parse', module: './steps/parse.ts' },
    { id: 'flag', module: './steps/flag.ts', params: { above: 5000 } },
  ],
};

/** The store, its runs and tokens. */
export interface Fixture {
  readonly dir: string;
  readonly project: string;
  readonly store: Store;
  readonly runs: Record<'orders' | 'payments/eu', string>;
  /** A recorded version of `parse` other than the one the runs used. */
  readonly parseV2: `sha256:${string}`;
  /** Bearer tokens by principal. */
  readonly tokens: Record<'alice' | 'bob' | 'carol' | 'dave' | 'expired' | 'revoked', string>;
}

/** Records for a stream: amounts with cents, some above 50.00. */
function records(n: number, seed: number): { id: number; amount: number }[] {
  return Array.from({ length: n }, (_, i) => ({ id: i, amount: ((i * 37 + seed * 11) % 10_000) / 100 + 0.005 }));
}

/** Build the fixture store. */
export async function makeFixture(): Promise<Fixture> {
  const project = makeTempDir();
  writeProject(project, MODULES);
  const dir = join(project, 'store');
  const store = await openStore(dir);
  const runs = {} as Record<'orders' | 'payments/eu', string>;
  for (const [streamId, seed] of [['orders', 1], ['payments/eu', 2]] as const) {
    await appendRecords(store, streamId, records(400, seed));
    const run = await runPipeline(store, pipeline, new LogSource(store, streamId), { baseDir: project, checkpoint: { everyRecords: 100 } });
    runs[streamId] = run.runId;
  }
  const v2 = await prepareStep(store, 'parse', { module: join(project, 'steps/parse-v2.ts') });
  const token = async (principal: string, grants: string[]): Promise<string> => (await createToken(store, { principal, grants })).token;
  const tokens = {
    alice: await token('alice', ['stream:orders', 'replay:orders', 'steps:*']),
    bob: await token('bob', ['stream:payments/*', 'replay:payments/*', 'steps:flag']),
    carol: await token('carol', ['read:*']),
    dave: await token('dave', ['read:customers/*', 'lineage:customers/*']),
    expired: 'pvt_' + 'e'.repeat(43),
    revoked: await token('mallory', ['stream:*', 'replay:*']),
  };
  await store.createToken({ id: newId(), hash: sha256(tokens.expired), principal: 'eve', grants: ['stream:*'], createdUs: nowUs() - 10_000_000, expiresUs: nowUs() - 1_000_000, label: null });
  const all = await store.listTokens();
  const mallory = all.find((t) => t.principal === 'mallory');
  if (mallory === undefined) throw new Error('fixture: mallory token missing');
  await store.revokeToken(mallory.id, nowUs());
  return { dir, project, store, runs, parseV2: v2.versionHash, tokens };
}

/** A server over the fixture's store, listening on a random port. */
export async function startServer(store: Store, options: ServerOptions = {}): Promise<{ server: ProvenantServer; url: string }> {
  const server = await createServer(store, options);
  const url = await server.listen({ port: 0, host: '127.0.0.1' });
  return { server, url };
}

/** Fetch with a bearer token (or none). */
export function get(url: string, token?: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { headers: { ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...headers } });
}

/** POST JSON with a bearer token. */
export function post(url: string, body: unknown, token?: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** Poll a replay job until it ends. */
export async function waitForJob(url: string, id: string, token: string, timeoutMs = 60_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await get(`${url}/replays/${id}`, token);
    const job = (await res.json()) as Record<string, unknown>;
    if (res.status !== 200) throw new Error(`GET /replays/${id}: ${res.status} ${JSON.stringify(job)}`);
    if (job.status === 'completed' || job.status === 'failed') return job;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${String(job.status)} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
