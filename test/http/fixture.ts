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
import { startRun } from '../../src/capture/run.js';
import { gc, setPolicy } from '../../src/objects/materialize.js';
import { deriveObject, putObject, type ObjectVersion } from '../../src/objects/versions.js';
import { makeTempDir } from '../helpers/temp.js';

export const MODULES = {
  'steps/parse.ts': `export default function parse(r: { id: number; amount: number }) {
    return { id: r.id, cents: Math.round(r.amount * 100) };
  }`,
  'steps/parse-v2.ts': `export default function parse(r: { id: number; amount: number }) {
    return { id: r.id, cents: Math.floor(r.amount * 100) };
  }`,
  'steps/enrich.ts': `export default function enrich(inputs: [{ balance: number }, { salary: number }]) {
    const [customer, secret] = inputs;
    return { balance: customer.balance, ratio: customer.balance / secret.salary };
  }`,
  'steps/summary.ts': `export default function summary(report: { balance: number; ratio: number }) {
    return { text: 'balance ' + report.balance + ', ratio ' + report.ratio.toFixed(3) };
  }`,
  'steps/double.ts': `export default function double(value: { balance: number }, params: { factor?: number }) {
    return { balance: value.balance * (params.factor ?? 2) };
  }`,
  'steps/spin.ts': `export default function spin(value: unknown) {
    for (;;) {
      if (value === Symbol.iterator) break; // never: a step that does not return
    }
    return value;
  }`,
  'steps/hog.ts': `export default function hog() {
    const kept: number[][] = [];
    for (;;) kept.push(new Array(1_000_000).fill(kept.length)); // memory without end
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
  readonly tokens: Record<'alice' | 'bob' | 'carol' | 'dave' | 'frank' | 'grace' | 'heidi' | 'expired' | 'revoked', string>;
  /** Objects: customers/42 (two versions), customers/7, secret/1 (originals); reports/42 (from customers/42 and secret/1) and reports/42/summary (from reports/42), derived and not kept. */
  readonly objects: {
    readonly before: number;
    readonly between: number;
    readonly customer42: readonly ObjectVersion[];
    readonly report: ObjectVersion;
    readonly summary: ObjectVersion;
    readonly summaryExecutionId: string;
  };
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
    frank: await token('frank', ['read:reports/*', 'lineage:reports/*', 'lineage:customers/*']),
    grace: await token('grace', ['export:customers/*', 'export:reports/*']),
    heidi: await token('heidi', ['export:customers/*', 'export:reports/*', 'export:secret/*']),
    expired: 'pvt_' + 'e'.repeat(43),
    revoked: await token('mallory', ['stream:*', 'replay:*']),
  };
  await store.createToken({ id: newId(), hash: sha256(tokens.expired), principal: 'eve', grants: ['stream:*'], createdUs: nowUs() - 10_000_000, expiresUs: nowUs() - 1_000_000, label: null });
  const all = await store.listTokens();
  const mallory = all.find((t) => t.principal === 'mallory');
  if (mallory === undefined) throw new Error('fixture: mallory token missing');
  await store.revokeToken(mallory.id, nowUs());
  const objects = await makeObjects(store, project);
  return { dir, project, store, runs, parseV2: v2.versionHash, tokens, objects };
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function makeObjects(store: Store, project: string): Promise<Fixture['objects']> {
  const before = Date.now();
  await pause(5);
  const c1 = await putObject(store, 'customers/42', { balance: 10 });
  await pause(5);
  const between = Date.now();
  await pause(5);
  const c2 = await putObject(store, 'customers/42', { balance: 20 });
  await putObject(store, 'customers/7', { balance: 7 });
  await putObject(store, 'secret/1', { salary: 400 });
  const run = await startRun(store, { name: 'derive reports' });
  const enrich = await run.step('enrich', { module: join(project, 'steps/enrich.ts') });
  const summaryStep = await run.step('summary', { module: join(project, 'steps/summary.ts') });
  const report = await deriveObject(run, enrich, { inputs: ['customers/42', 'secret/1'], output: 'reports/42' });
  const summary = await deriveObject(run, summaryStep, { inputs: ['reports/42'], output: 'reports/42/summary' });
  await run.finish();
  await prepareStep(store, 'double', { module: join(project, 'steps/double.ts') });
  await prepareStep(store, 'spin', { module: join(project, 'steps/spin.ts') });
  await prepareStep(store, 'hog', { module: join(project, 'steps/hog.ts') });
  await setPolicy(store, 'none');
  await gc(store); // derived bytes dropped: reading them recomputes
  return { before, between, customer42: [c1, c2], report: report.version, summary: summary.version, summaryExecutionId: summary.executionId };
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
