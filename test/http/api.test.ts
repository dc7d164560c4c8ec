/**
 * The HTTP API through real HTTP: a server on a random loopback port over a real store, real fetch.
 * Each route; authentication (missing, malformed, unknown, expired, revoked tokens); grants on
 * every read path, a thing the caller may not see answering exactly as a missing one; replay and
 * what-if jobs in worker threads carrying the request's context; the access log; metrics; the
 * OpenAPI document.
 */
import Ajv2020 from 'ajv/dist/2020.js';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken, revokeToken } from '../../src/auth/tokens.js';
import { allCheckpoints } from '../../src/checkpoint/chain.js';
import type { ProvenantServer } from '../../src/http/server.js';
import { ensureDist } from '../helpers/dist.js';
import { get, makeFixture, post, startServer, waitForJob, type Fixture } from './fixture.js';

let fx: Fixture;
let server: ProvenantServer;
let url: string;

beforeAll(async () => {
  await ensureDist(); // replay jobs run the built worker script
  fx = await makeFixture();
  ({ server, url } = await startServer(fx.store));
}, 180_000);

afterAll(async () => {
  await server?.close();
  await fx?.store.close();
});

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const traceparent = `00-${TRACE}-00f067aa0ba902b7-01`;

async function problem(res: Response): Promise<Record<string, unknown>> {
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = (await res.json()) as Record<string, unknown>;
  expect(body.status).toBe(res.status);
  expect(typeof body.detail).toBe('string');
  expect((body.detail as string).length).toBeGreaterThan(10);
  expect(body.type).toMatch(/^https:\/\/provenant\.dev\/problems\//);
  return body;
}

describe('public routes and the OpenAPI document', () => {
  it('answers /healthz without a token', async () => {
    const res = await get(`${url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('serves an OpenAPI 3.1 document listing every route, each with schemas that compile', async () => {
    const res = await get(`${url}/openapi.json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, { responses?: Record<string, { content?: Record<string, { schema: unknown }> }>; parameters?: { schema: unknown; in: string; name: string }[]; requestBody?: { content: Record<string, { schema: unknown }> } }>> };
    expect(doc.openapi).toBe('3.1.0');
    const routes = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    expect(routes.sort()).toEqual(
      [
        'GET /healthz',
        'GET /metrics',
        'GET /steps',
        'GET /executions/{id}',
        'GET /streams/{streamId}/checkpoints',
        'POST /replays',
        'GET /replays/{id}',
        'GET /data/{objectId}',
        'GET /objects/{objectId}/versions',
        'GET /lineage/{ref}',
        'GET /objects',
        'GET /streams',
        'GET /executions/{id}/detail',
        'GET /export/{objectId}',
        'GET /steps/{stepId}/versions/{hash}/source',
        'GET /replays/{id}/executions',
      ].sort(),
    );
    // Every schema in it is a valid JSON Schema (2020-12, the dialect of OpenAPI 3.1).
    const ajv = new Ajv2020.default({ strict: false, allErrors: true });
    let schemas = 0;
    for (const ops of Object.values(doc.paths)) {
      for (const op of Object.values(ops)) {
        expect(Object.keys(op.responses ?? {}).length).toBeGreaterThan(0);
        const all = [
          ...(op.parameters ?? []).map((p) => p.schema),
          ...Object.values(op.requestBody?.content ?? {}).map((c) => c.schema),
          ...Object.values(op.responses ?? {}).flatMap((r) => Object.values(r.content ?? {}).map((c) => c.schema)),
        ];
        for (const schema of all) {
          ajv.compile(schema as object);
          schemas++;
        }
      }
    }
    expect(schemas).toBeGreaterThan(10);
  });

  it('serves Prometheus metrics with request counts and latencies by route', async () => {
    await get(`${url}/steps`, fx.tokens.alice);
    const text = await (await get(`${url}/metrics`)).text();
    expect(text).toMatch(/provenant_http_requests_total\{method="GET",route="\/steps",status="200"\} \d+/);
    expect(text).toMatch(/provenant_http_request_duration_seconds_bucket\{le="0.005",method="GET",route="\/steps"\}/);
    expect(text).toContain('provenant_recomputations_total');
    expect(text).toContain('provenant_recompute_cache_hits_total');
  });

  it('answers an unknown route with a 404 problem', async () => {
    const res = await get(`${url}/nothing/here`, fx.tokens.alice);
    expect(res.status).toBe(404);
    await problem(res);
  });
});

describe('authentication', () => {
  const cases: [string, Record<string, string>, string][] = [
    ['no token', {}, 'missing'],
    ['a Basic header', { authorization: 'Basic YWxpY2U6cGFzc3dvcmQ=' }, 'malformed'],
    ['a malformed bearer token', { authorization: 'Bearer not-a-token' }, 'malformed'],
    ['an unknown token', { authorization: `Bearer pvt_${'A'.repeat(43)}` }, 'unknown'],
  ];
  for (const [name, headers, reason] of cases) {
    it(`refuses ${name} with 401, WWW-Authenticate: Bearer and a problem`, async () => {
      const res = await fetch(`${url}/steps`, { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm="provenant"/);
      const body = await problem(res);
      expect(body.code).toBe('UNAUTHORIZED');
      expect((body.context as { reason: string }).reason).toBe(reason);
    });
  }

  it('refuses an expired token and a revoked one, saying which', async () => {
    for (const [token, reason] of [[fx.tokens.expired, 'expired'], [fx.tokens.revoked, 'revoked']] as const) {
      const res = await get(`${url}/streams/orders/checkpoints`, token);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
      expect(((await problem(res)).context as { reason: string }).reason).toBe(reason);
    }
  });

  it('stops accepting a token revoked while the server runs at the next request, though the server remembers tokens', async () => {
    const { token } = await createToken(fx.store, { principal: 'temp', grants: ['steps:*'] });
    expect((await get(`${url}/steps`, token)).status).toBe(200);
    expect((await get(`${url}/steps`, token)).status).toBe(200); // now remembered by the server
    await revokeToken(fx.store, (await fx.store.listTokens()).find((t) => t.principal === 'temp')!.id);
    const res = await get(`${url}/steps`, token);
    expect(res.status).toBe(401);
    expect(((await problem(res)).context as { reason: string }).reason).toBe('revoked');
  });

  it('refuses before reading a body: an unauthenticated POST gets 401 even with a malformed body', async () => {
    const res = await post(`${url}/replays`, '{not json');
    expect(res.status).toBe(401);
  });
});

describe('executions, checkpoints and steps, with grants', () => {
  it('shows an execution of a stream the caller may read, as recorded', async () => {
    const [execution] = await fx.store.listExecutions({ runId: fx.runs.orders, limit: 1 });
    const res = await get(`${url}/executions/${execution!.id}`, fx.tokens.alice);
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      id: execution!.id,
      runId: fx.runs.orders,
      stepId: execution!.functionId,
      versionHash: execution!.functionVersionHash,
      inputHashes: execution!.inputHashes,
      outputHash: execution!.outputHash,
      paramsHash: execution!.paramsHash,
      recordHash: execution!.recordHash,
      streamId: 'orders',
      offset: 0,
    });
  });

  it('answers an execution the caller may not read exactly as a missing one', async () => {
    const [execution] = await fx.store.listExecutions({ runId: fx.runs.orders, limit: 1 });
    const id = execution!.id;
    const missing = randomUUID().replace(/^(.{14})./, '$17');
    for (const token of [fx.tokens.bob, fx.tokens.carol, fx.tokens.dave]) {
      const hidden = await get(`${url}/executions/${id}`, token);
      const absent = await get(`${url}/executions/${missing}`, token);
      expect(hidden.status).toBe(404);
      expect(absent.status).toBe(404);
      const hiddenText = await hidden.text();
      expect(hiddenText).toBe((await absent.text()).replaceAll(missing, id));
      expect(hidden.headers.get('content-type')).toBe(absent.headers.get('content-type'));
    }
  });

  it("lists a stream's checkpoints as stored, stream ids with '/' URL-encoded", async () => {
    const res = await get(`${url}/streams/${encodeURIComponent('payments/eu')}/checkpoints`, fx.tokens.bob);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { streamId: string; checkpoints: { checkpointId: string; status: string; startOffset: number; endOffset: number | null }[] };
    const stored = await allCheckpoints(fx.store, { streamId: 'payments/eu' });
    expect(body.streamId).toBe('payments/eu');
    expect(body.checkpoints.map((c) => c.checkpointId)).toEqual(stored.map((c) => c.checkpointId));
    expect(body.checkpoints.filter((c) => c.status === 'COMPLETE').map((c) => [c.startOffset, c.endOffset])).toEqual([
      [0, 100],
      [100, 200],
      [200, 300],
      [300, 400],
    ]);
  });

  it('pages checkpoints with limit and after', async () => {
    const first = (await (await get(`${url}/streams/orders/checkpoints?limit=2`, fx.tokens.alice)).json()) as { checkpoints: { checkpointId: string }[]; next: string };
    expect(first.checkpoints).toHaveLength(2);
    const second = (await (await get(`${url}/streams/orders/checkpoints?limit=2&after=${first.next}`, fx.tokens.alice)).json()) as { checkpoints: { checkpointId: string }[] };
    const stored = await allCheckpoints(fx.store, { streamId: 'orders' });
    expect([...first.checkpoints, ...second.checkpoints].map((c) => c.checkpointId)).toEqual(stored.slice(0, 4).map((c) => c.checkpointId));
  });

  it("answers a stream the caller may not read exactly as a missing one", async () => {
    const hidden = await get(`${url}/streams/orders/checkpoints`, fx.tokens.bob);
    const absent = await get(`${url}/streams/nowhere/checkpoints`, fx.tokens.bob);
    expect(hidden.status).toBe(404);
    expect(await hidden.text()).toBe((await absent.text()).replaceAll('nowhere', 'orders'));
  });

  it('lists only the steps the caller holds a steps grant for', async () => {
    const all = (await (await get(`${url}/steps`, fx.tokens.alice)).json()) as { stepId: string; versions: { versionHash: string; executions: number }[] }[];
    expect(all.map((s) => s.stepId).sort()).toEqual(['double', 'enrich', 'flag', 'hog', 'parse', 'spin', 'summary']);
    const parse = all.find((s) => s.stepId === 'parse')!;
    expect(parse.versions.map((v) => v.versionHash)).toContain(fx.parseV2);
    expect(parse.versions.reduce((n, v) => n + v.executions, 0)).toBe(800);
    const bobs = (await (await get(`${url}/steps`, fx.tokens.bob)).json()) as { stepId: string }[];
    expect(bobs.map((s) => s.stepId)).toEqual(['flag']);
    expect(await (await get(`${url}/steps`, fx.tokens.carol)).json()).toEqual([]);
  });
});

describe('replay and what-if jobs', () => {
  it('runs a verifying replay as a job that answers at once, with the request context recorded in its run', async () => {
    const started = Date.now();
    const res = await post(`${url}/replays`, { mode: 'verify', streamId: 'orders' }, fx.tokens.alice, { traceparent });
    expect(res.status).toBe(202);
    expect(Date.now() - started).toBeLessThan(2000);
    const job = (await res.json()) as { id: string; status: string };
    expect(res.headers.get('location')).toBe(`/replays/${job.id}`);
    expect(['queued', 'running']).toContain(job.status);
    const done = await waitForJob(url, job.id, fx.tokens.alice);
    expect(done.status).toBe('completed');
    const result = done.result as { replayRunId: string; executions: number; matched: number; diverged: number; records: number; checkpoints: number };
    expect(result).toMatchObject({ records: 400, executions: 800, matched: 800, diverged: 0, checkpoints: 4 });
    const run = await fx.store.getRun(result.replayRunId);
    expect(run?.kind).toBe('replay');
    expect(run?.context).toMatchObject({ source: 'http', principal: 'alice', traceId: TRACE, rights: ['replay:orders'], location: '127.0.0.1' });
  }, 90_000);

  it("hides a job from callers without replay rights on its stream, and refuses to start one on a stream they may not replay", async () => {
    const res = await post(`${url}/replays`, { mode: 'verify', streamId: 'orders' }, fx.tokens.alice);
    const job = (await res.json()) as { id: string };
    for (const token of [fx.tokens.bob, fx.tokens.carol]) {
      const hidden = await get(`${url}/replays/${job.id}`, token);
      expect(hidden.status).toBe(404);
      const other = randomUUID();
      expect(await hidden.text()).toBe((await (await get(`${url}/replays/${other}`, token)).text()).replaceAll(other, job.id));
    }
    const refused = await post(`${url}/replays`, { mode: 'verify', streamId: 'orders' }, fx.tokens.bob);
    const absent = await post(`${url}/replays`, { mode: 'verify', streamId: 'nowhere' }, fx.tokens.bob);
    expect(refused.status).toBe(404);
    expect(await refused.text()).toBe((await absent.text()).replaceAll('nowhere', 'orders'));
    await waitForJob(url, job.id, fx.tokens.alice);
  }, 90_000);

  it('runs a what-if with a recorded version and params, and reports the changes', async () => {
    const res = await post(
      `${url}/replays`,
      { mode: 'whatif', streamId: 'orders', substitutions: { parse: { versionHash: fx.parseV2 }, flag: { params: { above: 1000 } } }, label: 'floor and lower threshold' },
      fx.tokens.alice,
    );
    expect(res.status).toBe(202);
    const done = await waitForJob(url, ((await res.json()) as { id: string }).id, fx.tokens.alice);
    expect(done.status).toBe('completed');
    const result = done.result as { whatIfRunId: string; records: number; recordOutcomes: { changed: number; unchanged: number }; diffs: { offset: number; patch: { path: string }[] }[] };
    // Independent count: a record changes when flooring changes its cents, or the lower threshold changes its flag.
    const amounts = Array.from({ length: 400 }, (_, i) => ((i * 37 + 11) % 10_000) / 100 + 0.005);
    const changed = amounts.filter((a) => Math.round(a * 100) !== Math.floor(a * 100) || (Math.round(a * 100) > 5000) !== (Math.floor(a * 100) > 1000)).length;
    expect(result.records).toBe(400);
    expect(result.recordOutcomes.changed).toBe(changed);
    expect(result.recordOutcomes.unchanged).toBe(400 - changed);
    const run = await fx.store.getRun(result.whatIfRunId);
    expect(run?.kind).toBe('whatif');
    expect(run?.context.principal).toBe('alice');
  }, 90_000);

  it('never accepts code: a what-if naming a module is refused with 400 before anything runs', async () => {
    const runsBefore = (await fx.store.listRuns(1000)).length;
    for (const substitutions of [{ parse: { module: './steps/parse-v2.ts' } }, { parse: { code: 'export default () => 1' } }, {}]) {
      const res = await post(`${url}/replays`, { mode: 'whatif', streamId: 'orders', substitutions }, fx.tokens.alice);
      expect(res.status).toBe(400);
      await problem(res);
    }
    expect((await fx.store.listRuns(1000)).length).toBe(runsBefore);
  });

  it('fails a job cleanly at its time budget, and the server keeps serving', async () => {
    const tight = await startServer(fx.store, { jobs: { timeoutMs: 1 } });
    try {
      const res = await post(`${tight.url}/replays`, { mode: 'verify', streamId: 'orders' }, fx.tokens.alice);
      expect(res.status).toBe(202);
      const done = await waitForJob(tight.url, ((await res.json()) as { id: string }).id, fx.tokens.alice);
      expect(done.status).toBe('failed');
      expect(done.error).toMatchObject({ code: 'BUDGET_EXCEEDED' });
      expect((done.error as { message: string }).message).toMatch(/time budget of 1 ms/);
      expect((await get(`${tight.url}/healthz`)).status).toBe(200);
    } finally {
      await tight.server.close();
    }
  }, 60_000);

  it('answers for a job after its server stopped, from the store: a finished job as it ended, an unfinished one as interrupted', async () => {
    const first = await startServer(fx.store);
    let finished: Record<string, unknown>;
    let cutId: string;
    try {
      const res = await post(`${first.url}/replays`, { mode: 'verify', streamId: 'orders' }, fx.tokens.alice);
      const id = ((await res.json()) as { id: string }).id;
      finished = await waitForJob(first.url, id, fx.tokens.alice);
      expect(finished.status).toBe('completed');
      // Three more, one at a time: the last still waits when the server stops.
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push(((await (await post(`${first.url}/replays`, { mode: 'verify', streamId: 'orders' }, fx.tokens.alice)).json()) as { id: string }).id);
      cutId = ids[2] as string;
      expect(((await (await get(`${first.url}/replays/${cutId}`, fx.tokens.alice)).json()) as { status: string }).status).toBe('queued');
    } finally {
      await first.server.close();
    }
    const second = await startServer(fx.store);
    try {
      const again = await get(`${second.url}/replays/${finished.id as string}`, fx.tokens.alice);
      expect(again.status).toBe(200);
      expect(await again.json()).toEqual(finished);
      const page = await get(`${second.url}/replays/${finished.id as string}/executions?limit=5`, fx.tokens.alice);
      expect(page.status).toBe(200);
      expect(((await page.json()) as { executions: unknown[] }).executions).toHaveLength(5);
      const cut = (await (await get(`${second.url}/replays/${cutId}`, fx.tokens.alice)).json()) as { status: string; error: { code: string; message: string } };
      expect(cut.status).toBe('failed');
      expect(cut.error).toMatchObject({ code: 'INTERRUPTED', message: 'the server stopped before the job ended' });
      // A job whose server died while it ran: its last snapshot is two minutes old.
      const dead = randomUUID();
      await fx.store.appendReplayJobSnapshot({ jobId: dead, atUs: (Date.now() - 120_000) * 1000, view: { ...(finished as Record<string, never>), id: dead, status: 'running', endedAt: null, result: null } });
      const lost = (await (await get(`${second.url}/replays/${dead}`, fx.tokens.alice)).json()) as { status: string; error: { code: string; message: string } };
      expect(lost.status).toBe('failed');
      expect(lost.error.code).toBe('INTERRUPTED');
      expect(lost.error.message).toMatch(/^the server running this job stopped before it ended: nothing was recorded about it since \S+Z, when it was running$/);
      // Stored jobs keep their grants: hidden exactly as a missing one.
      const hidden = await get(`${second.url}/replays/${finished.id as string}`, fx.tokens.bob);
      const other = randomUUID();
      expect(hidden.status).toBe(404);
      expect(await hidden.text()).toBe((await (await get(`${second.url}/replays/${other}`, fx.tokens.bob)).text()).replaceAll(other, finished.id as string));
    } finally {
      await second.server.close();
    }
  }, 120_000);

  it('reports a job over an unknown checkpoint as failed with the library’s reason', async () => {
    const res = await post(`${url}/replays`, { mode: 'verify', streamId: 'orders', from: '00000000-0000-7000-8000-000000000000' }, fx.tokens.alice);
    expect(res.status).toBe(202);
    const done = await waitForJob(url, ((await res.json()) as { id: string }).id, fx.tokens.alice);
    expect(done.status).toBe('failed');
    expect(done.error).toMatchObject({ code: 'NOT_FOUND' });
  }, 60_000);
});

describe('bad requests', () => {
  it('answers a malformed execution id with 400 and a reason', async () => {
    const res = await get(`${url}/executions/not-a-uuid`, fx.tokens.alice);
    expect(res.status).toBe(400);
    const body = await problem(res);
    expect(body.code).toBe('INPUT_INVALID');
    expect(body.detail).toMatch(/params\.id must match pattern/);
  });

  it('answers an unknown query parameter and a limit out of range with 400', async () => {
    for (const q of ['?limit=0', '?limit=5000', '?limit=ten', '?after=xyz', '?bogus=1']) {
      const res = await get(`${url}/streams/orders/checkpoints${q}`, fx.tokens.alice);
      expect(res.status, q).toBe(400);
      await problem(res);
    }
  });

  it('answers a body over the limit with 413', async () => {
    const small = await startServer(fx.store, { bodyLimit: 1024 });
    try {
      const res = await post(`${small.url}/replays`, { mode: 'verify', streamId: 'orders', label: 'x'.repeat(5000) }, fx.tokens.alice);
      expect(res.status).toBe(413);
      expect((await problem(res)).code).toBe('BODY_TOO_LARGE');
    } finally {
      await small.server.close();
    }
  });

  it('answers headers over the limit with 431', async () => {
    const res = await get(`${url}/steps`, fx.tokens.alice, { 'x-padding': 'p'.repeat(20_000) });
    expect(res.status).toBe(431);
    expect((await problem(res)).code).toBe('HEADERS_TOO_LARGE');
  });

  it('answers malformed JSON and a wrong content type with 4xx problems', async () => {
    const bad = await post(`${url}/replays`, '{"mode": ', fx.tokens.alice);
    expect(bad.status).toBe(400);
    await problem(bad);
    const text = await fetch(`${url}/replays`, { method: 'POST', headers: { authorization: `Bearer ${fx.tokens.alice}`, 'content-type': 'application/xml' }, body: '<replay/>' });
    expect(text.status).toBe(415);
    await problem(text);
  });

  it('times out a client that sends its request too slowly (408), and keeps serving others', async () => {
    const slow = await startServer(fx.store, { requestTimeoutMs: 500, headersTimeoutMs: 500 });
    try {
      const { connect } = await import('node:net');
      const port = Number(new URL(slow.url).port);
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1', () => socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n'));
        let data = '';
        socket.on('data', (d) => (data += d.toString()));
        socket.on('close', () => resolve(data));
        socket.on('error', reject);
        setTimeout(() => reject(new Error('the server kept the slow connection open')), 5000);
      });
      expect(answer).toMatch(/^HTTP\/1\.1 408/);
      expect(answer).toContain('application/problem+json');
      expect((await get(`${slow.url}/healthz`)).status).toBe(200);
    } finally {
      await slow.server.close();
    }
  });

  it('limits requests per principal: 429 with Retry-After, other principals unaffected', async () => {
    const limited = await startServer(fx.store, { rateLimit: { max: 3, windowMs: 60_000 } });
    try {
      const statuses: number[] = [];
      let last: Response | undefined;
      for (let i = 0; i < 5; i++) {
        last = await get(`${limited.url}/steps`, fx.tokens.alice);
        statuses.push(last.status);
        if (last.status !== 429) await last.arrayBuffer();
      }
      expect(statuses).toEqual([200, 200, 200, 429, 429]);
      expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0);
      expect((await problem(last!)).code).toBe('TOO_MANY_REQUESTS');
      expect((await get(`${limited.url}/steps`, fx.tokens.bob)).status).toBe(200);
    } finally {
      await limited.server.close();
    }
  });
});

describe('the access log', () => {
  it('records each request: principal, address, rights used, trace id, status', async () => {
    const [execution] = await fx.store.listExecutions({ runId: fx.runs.orders, limit: 1 });
    const since = Date.now() * 1000;
    const answers = [
      await get(`${url}/executions/${execution!.id}`, fx.tokens.alice, { traceparent }),
      await get(`${url}/executions/${execution!.id}`, fx.tokens.bob),
      await get(`${url}/steps`),
    ];
    await new Promise((r) => setTimeout(r, 300)); // written in batches every 100 ms
    const entries = await fx.store.listAccessLog({ sinceUs: since });
    const mine = entries.filter((e) => e.target === `/executions/${execution!.id}` || e.target === '/steps');
    expect(mine.map((e) => [e.principal, e.status, e.rights])).toEqual([
      ['alice', 200, ['stream:orders']],
      ['bob', 404, []],
      [null, 401, []],
    ]);
    expect(mine[0]).toMatchObject({ address: '127.0.0.1', method: 'GET', route: '/executions/:id', traceId: TRACE, detail: { executionId: execution!.id } });
    expect(mine[2]!.detail).toEqual({ refused: 'missing' });
    // Each answer, errors included, names the trace it was logged under.
    expect(answers.map((r) => r.headers.get('provenant-trace-id'))).toEqual(mine.map((e) => e.traceId));
  });
});
