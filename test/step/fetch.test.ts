/**
 * Recorded HTTP calls: a step's `fetch` is performed and recorded at capture, and answered from
 * the recording at replay — against a real local HTTP server that is closed (or answers
 * differently) by the time of the replay.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startRun } from '../../src/capture/run.js';
import { decodeValue, type ContentHash } from '../../src/hash/canonical.js';
import { reexecute } from '../../src/replay/execution.js';
import { DeterminismViolationError, ReplayTape, withTape, type NondeterminismRecord } from '../../src/step/determinism.js';
import type { FetchRecord } from '../../src/step/fetch.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/store.js';
import { writeFiles, writeProject } from '../helpers/project.js';
import { makeTempDir } from '../helpers/temp.js';

const project = makeTempDir();
let store: Store;

/** A real HTTP server on 127.0.0.1 whose answers change with every request it serves. */
interface TestServer {
  readonly base: string;
  /** Requests served so far: method, URL and body. */
  readonly seen: { method: string; url: string; body: string }[];
  /** URLs in the order they were answered. */
  readonly answered: string[];
  close(): Promise<void>;
}

async function startServer(): Promise<TestServer> {
  const seen: { method: string; url: string; body: string }[] = [];
  const answered: string[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    res.on('finish', () => answered.push(req.url ?? ''));
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method ?? '', url: req.url ?? '', body });
      const served = seen.length;
      if (req.url === '/missing') {
        res.writeHead(404, 'Not Here', { 'content-type': 'text/plain' }).end('no such thing');
        return;
      }
      if (req.method === 'POST') {
        const digest = createHash('sha256').update(body).digest('hex');
        res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ received: body, digest, served }));
        return;
      }
      // The answer differs at every request (served, a random token): only a recording reproduces it.
      const answer = () =>
        res
          .writeHead(200, { 'content-type': 'application/json', 'x-served': String(served) })
          .end(JSON.stringify({ path: req.url, served, token: Math.random().toString(36).slice(2) }));
      // /a answers late, so that a call made after it is answered first.
      if (req.url === '/a') setTimeout(answer, 50);
      else answer();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    seen,
    answered,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

/** A port nothing listens on (it was just closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

beforeAll(async () => {
  writeProject(project, {
    'steps/getjson.ts': `
      export default async function getjson(input: { url: string }) {
        const res = await fetch(input.url);
        const body = await res.json();
        return { ok: res.ok, status: res.status, type: res.headers.get('content-type'), served: res.headers.get('x-served'), url: res.url, body, at: Date.now() };
      }`,
    'steps/pair.ts': `
      export default async function pair(input: { base: string }) {
        const [a, b] = await Promise.all([fetch(input.base + '/a'), fetch(input.base + '/b')]);
        return { a: await a.json(), b: await b.text(), missing: await fetch(input.base + '/missing').then((r) => [r.status, r.statusText]) };
      }`,
    'steps/counter.ts': `
      // State kept across calls is not recorded: a replay in a fresh realm asks for another URL.
      let calls = 0;
      export default async function counter(input: { base: string }) {
        calls++;
        const res = await fetch(input.base + '/item/' + calls);
        return res.json();
      }`,
    'steps/offline.ts': `
      export default async function offline(input: { url: string; rethrow?: boolean }) {
        try {
          const res = await fetch(input.url);
          return { reached: res.status };
        } catch (err) {
          if (input.rethrow) throw err;
          const e = err as TypeError & { cause?: { code?: string; name?: string } };
          return { isTypeError: e instanceof TypeError, name: e.name, message: e.message, code: e.cause?.code ?? null, causeName: e.cause?.name ?? null };
        }
      }`,
    'steps/post.ts': `
      export default async function post(input: { url: string; payload: unknown }) {
        const res = await fetch(input.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(input.payload) });
        return { status: res.status, answer: await res.json() };
      }`,
    'steps/postdrift.ts': `
      // The body depends on state kept across calls: at replay it differs from what was recorded.
      let calls = 0;
      export default async function postdrift(input: { url: string }) {
        calls++;
        const res = await fetch(input.url, { method: 'POST', body: 'call ' + calls });
        return res.json();
      }`,
    'steps/leave.ts': `
      export default function leave(input: { url: string }) {
        void fetch(input.url);
        return { left: true };
      }`,
  });
  store = await openStore(join(project, '.provenant'));
}, 180_000);

afterAll(async () => {
  await store.close();
});

async function capture(stepFile: string, inputs: unknown[]) {
  const run = await startRun(store, { name: stepFile, failurePolicy: 'dead-letter' });
  const step = await run.step(stepFile, { module: join(project, 'steps', `${stepFile}.ts`) });
  const outcomes = [];
  for (const input of inputs) outcomes.push(await run.attempt(step, input));
  await run.finish();
  return { run, step, outcomes };
}

async function recordOf(executionId: string): Promise<NondeterminismRecord> {
  const e = await store.getExecution(executionId);
  expect(e?.nondeterminismHash).not.toBeNull();
  return decodeValue(await store.getBlob(e?.nondeterminismHash as ContentHash), 'json') as NondeterminismRecord;
}

function fetchEntries(record: NondeterminismRecord): FetchRecord[] {
  return record.reads.flatMap((entry) => (entry[0] === 'fetch' ? [entry[1]] : []));
}

describe('recorded fetch', () => {
  let server: TestServer;
  beforeEach(async () => {
    server = await startServer();
    return async () => {
      await server.close().catch(() => undefined);
    };
  });

  it('records a JSON fetch and replays it bit for bit with the server closed', async () => {
    const { outcomes } = await capture('getjson', [{ url: `${server.base}/data?x=1` }]);
    const [outcome] = outcomes;
    if (outcome === undefined || !outcome.ok) throw new Error(`capture failed: ${JSON.stringify(outcome)}`);
    expect(outcome.output).toMatchObject({ ok: true, status: 200, type: 'application/json', served: '1', url: `${server.base}/data?x=1`, body: { path: '/data?x=1', served: 1 } });
    expect(server.seen).toHaveLength(1);

    const record = await recordOf(outcome.executionId);
    expect(record.reads.map(([kind]) => kind)).toEqual(['fetch', 'now']);
    const [entry] = fetchEntries(record);
    if (entry === undefined || !('response' in entry)) throw new Error('expected an answered fetch');
    expect(entry.request).toEqual({ method: 'GET', url: `${server.base}/data?x=1`, headers: [] });
    expect(entry.response).toMatchObject({ status: 200, statusText: 'OK', url: `${server.base}/data?x=1`, redirected: false });
    expect(entry.response.headers).toContainEqual(['x-served', '1']);
    // What the step saw is exactly what is recorded.
    expect(JSON.parse(Buffer.from(entry.response.body, 'base64').toString('utf8'))).toEqual((outcome.output as { body: unknown }).body);

    await server.close();
    const replay = await reexecute(store, outcome.executionId);
    expect(replay).toMatchObject({ matches: true, cause: null, error: null });
    expect(replay.replayedOutputHash).toBe(outcome.outputHash);
    expect(replay.output).toEqual(outcome.output);
  });

  it('replays concurrent fetches (Promise.all) in the order they were made, without contacting the server', async () => {
    const { outcomes } = await capture('pair', [{ base: server.base }]);
    const [outcome] = outcomes;
    if (outcome === undefined || !outcome.ok) throw new Error(`capture failed: ${JSON.stringify(outcome)}`);
    expect(outcome.output).toMatchObject({ a: { path: '/a' }, missing: [404, 'Not Here'] });
    // /b was answered before /a; the entries are in the order the calls were made.
    expect(server.answered).toEqual(['/b', '/a', '/missing']);
    const entries = fetchEntries(await recordOf(outcome.executionId));
    expect(entries.map((e) => e.request.url)).toEqual([`${server.base}/a`, `${server.base}/b`, `${server.base}/missing`]);

    // The server is still up, and would now answer differently: replay does not ask it.
    const before = server.seen.length;
    const replay = await reexecute(store, outcome.executionId);
    expect(server.seen).toHaveLength(before);
    expect(replay).toMatchObject({ matches: true, cause: null });
    expect(replay.output).toEqual(outcome.output);
  });

  it('a replay that asks for another URL than was recorded stops with a DeterminismViolationError (cause nondeterminism)', async () => {
    const { outcomes } = await capture('counter', [{ base: server.base }, { base: server.base }]);
    const second = outcomes[1];
    if (second === undefined || !second.ok) throw new Error('capture failed');
    const before = server.seen.length;
    const replay = await reexecute(store, second.executionId);
    expect(server.seen).toHaveLength(before);
    expect(replay.matches).toBe(false);
    expect(replay.cause).toBe('nondeterminism');
    expect(replay.error).toBe(
      `execution ${second.executionId} (step counter): at replay the step called fetch(GET ${server.base}/item/1) (read 1), but at capture it called fetch(GET ${server.base}/item/2) there`,
    );
    // The first call asks what it asked at capture.
    expect(await reexecute(store, outcomes[0]?.executionId ?? '')).toMatchObject({ matches: true });
  });

  it('a replay that fetches where the recording has nothing more gets a DeterminismViolationError', async () => {
    const { step, run } = await capture('getjson', [{ url: `${server.base}/once` }]);
    const ctx = { stepId: 'getjson', versionHash: step.versionHash, executionId: 'x', runId: run.id, context: {} };
    const before = server.seen.length;
    const tape = new ReplayTape(null, 'execution y');
    const replayed = withTape(tape, () => step.fn({ url: `${server.base}/once` }, {}, ctx)) as Promise<unknown>;
    await expect(replayed).rejects.toBeInstanceOf(DeterminismViolationError);
    await expect(replayed).rejects.toThrow(`execution y: at replay the step called fetch(GET ${server.base}/once) (read 1), but at capture it read nothing more`);
    expect(tape.diverged).toBe(true);
    expect(server.seen).toHaveLength(before);
  });

  it('records a fetch to a closed port as a failure and replays the same failure', async () => {
    const url = `http://127.0.0.1:${await closedPort()}/nothing`;
    const { outcomes } = await capture('offline', [{ url }, { url, rethrow: true }]);
    const [caught, thrown] = outcomes;
    if (caught === undefined || !caught.ok) throw new Error('the step catches the failure');
    expect(caught.output).toEqual({ isTypeError: true, name: 'TypeError', message: 'fetch failed', code: 'ECONNREFUSED', causeName: 'Error' });
    const [entry] = fetchEntries(await recordOf(caught.executionId));
    if (entry === undefined || !('error' in entry)) throw new Error('expected a failed fetch entry');
    expect(entry.error).toMatchObject({ name: 'TypeError', message: 'fetch failed', cause: { code: 'ECONNREFUSED' } });

    const replay = await reexecute(store, caught.executionId);
    expect(replay).toMatchObject({ matches: true, cause: null });
    expect(replay.output).toEqual(caught.output);

    if (thrown === undefined || thrown.ok) throw new Error('the step rethrows the failure');
    expect(thrown.error).toMatchObject({ name: 'TypeError', message: 'fetch failed' });
    expect(await reexecute(store, thrown.executionId)).toMatchObject({ matches: true, cause: null, error: 'fetch failed' });
  });

  it('a POST body is recorded and part of the match', async () => {
    const url = `${server.base}/submit`;
    const { outcomes } = await capture('post', [{ url, payload: { flight: 'LH400', delay: 12 } }]);
    const [outcome] = outcomes;
    if (outcome === undefined || !outcome.ok) throw new Error(`capture failed: ${JSON.stringify(outcome)}`);
    // The step receives its input's canonical form (keys sorted).
    const sent = JSON.stringify({ delay: 12, flight: 'LH400' });
    expect(server.seen.at(-1)).toEqual({ method: 'POST', url: '/submit', body: sent });
    const [entry] = fetchEntries(await recordOf(outcome.executionId));
    expect(entry?.request).toEqual({ method: 'POST', url, headers: [['content-type', 'application/json']], body: Buffer.from(sent).toString('base64') });
    expect(entry && 'response' in entry ? entry.response.status : null).toBe(201);

    await server.close();
    expect(await reexecute(store, outcome.executionId)).toMatchObject({ matches: true, output: outcome.output });

    // Same method and URL, another body: not what was recorded.
    const drift = await startServer();
    try {
      const { outcomes: drifted } = await capture('postdrift', [{ url: `${drift.base}/submit` }, { url: `${drift.base}/submit` }]);
      const replay = await reexecute(store, drifted[1]?.executionId ?? '');
      expect(replay).toMatchObject({ matches: false, cause: 'nondeterminism' });
      expect(replay.error).toMatch(
        new RegExp(
          `at replay the step called fetch\\(POST ${drift.base}/submit, 6-byte body sha256:[0-9a-f]{12}…\\) \\(read 1\\), but at capture it called fetch\\(POST ${drift.base}/submit, 6-byte body sha256:[0-9a-f]{12}…\\) there`,
        ),
      );
      expect(drift.seen).toHaveLength(2);
    } finally {
      await drift.close();
    }
  });

  it('a call that returns while its fetch is pending fails with a DeterminismViolationError, and replays the same way', async () => {
    const url = `${server.base}/slow`;
    const { outcomes } = await capture('leave', [{ url }]);
    const [outcome] = outcomes;
    if (outcome === undefined || outcome.ok) throw new Error('the call should have failed');
    expect(outcome.error.name).toBe('DeterminismViolationError');
    expect(outcome.error.message).toBe(`a step returned while a fetch it started was still pending (left unawaited): fetch(GET ${url})`);
    const [entry] = fetchEntries(await recordOf(outcome.executionId));
    expect(entry).toEqual({ request: { method: 'GET', url, headers: [] }, pending: true });

    await server.close();
    expect(await reexecute(store, outcome.executionId)).toMatchObject({ matches: true, cause: null, error: outcome.error.message });
  });

  it('a call that does not fetch still records nothing', async () => {
    writeFiles(project, { 'steps/plain.ts': `export default async function plain(input: { n: number }) { return { n: input.n + 1 }; }` });
    const { outcomes } = await capture('plain', [{ n: 1 }]);
    const e = await store.getExecution(outcomes[0]?.executionId ?? '');
    expect(e?.nondeterminismHash).toBeNull();
  });
});
