/**
 * As-of reads, versions and lineage through real HTTP, with grants: read where kept, recomputed
 * (and verified) where not, on-read transforms recorded with the request's context; every bad
 * input class with its status; a matrix of principals × objects × times proving that no route
 * answers 200 for what a principal may not see; a fuzz test over ids, times and query strings with
 * no 5xx.
 */
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalize } from '../../src/hash/canonical.js';
import type { ProvenantServer } from '../../src/http/server.js';
import { ensureDist } from '../helpers/dist.js';
import { get, makeFixture, post, startServer, waitForJob, type Fixture } from './fixture.js';

let fx: Fixture;
let server: ProvenantServer;
let url: string;

beforeAll(async () => {
  await ensureDist();
  fx = await makeFixture();
  ({ server, url } = await startServer(fx.store, { rateLimit: false }));
}, 180_000);

afterAll(async () => {
  await server?.close();
  await fx?.store.close();
});

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const enc = encodeURIComponent;
const sha = (bytes: ArrayBuffer): string => `sha256:${createHash('sha256').update(Buffer.from(bytes)).digest('hex')}`;

async function problem(res: Response): Promise<Record<string, unknown>> {
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = (await res.json()) as Record<string, unknown>;
  expect(body.status).toBe(res.status);
  expect((body.detail as string).length).toBeGreaterThan(10);
  return body;
}

describe('GET /data/{objectId}', () => {
  it('reads the current version: bytes as stored, ETag = content hash, obtained by reading', async () => {
    const res = await get(`${url}/data/customers/42`, fx.tokens.dave);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const body = await res.arrayBuffer();
    expect(Buffer.from(body).toString()).toBe(canonicalize({ balance: 20 }));
    expect(res.headers.get('etag')).toBe(`"${fx.objects.customer42[1]!.contentHash}"`);
    expect(sha(body)).toBe(fx.objects.customer42[1]!.contentHash);
    expect(res.headers.get('provenant-obtained')).toBe('read');
    expect(res.headers.get('provenant-executions-run')).toBe('0');
    expect(res.headers.get('provenant-version-id')).toBe(fx.objects.customer42[1]!.versionId);
    expect(res.headers.get('cache-control')).toBe('private, no-cache');
  });

  it('reads the version current at a past time, immutable; the id may be URL-encoded', async () => {
    for (const path of ['customers/42', enc('customers/42')]) {
      const res = await get(`${url}/data/${path}?as_of=${enc(new Date(fx.objects.between).toISOString())}`, fx.tokens.dave);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe(canonicalize({ balance: 10 }));
      expect(res.headers.get('cache-control')).toContain('immutable');
      expect(res.headers.get('provenant-version-id')).toBe(fx.objects.customer42[0]!.versionId);
    }
    const ms = await get(`${url}/data/customers/42?as_of=${fx.objects.between}`, fx.tokens.dave);
    expect(await ms.text()).toBe(canonicalize({ balance: 10 }));
  });

  it('answers 304 to If-None-Match with the current ETag', async () => {
    const first = await get(`${url}/data/customers/42`, fx.tokens.dave);
    await first.arrayBuffer();
    const again = await get(`${url}/data/customers/42`, fx.tokens.dave, { 'if-none-match': first.headers.get('etag')! });
    expect(again.status).toBe(304);
  });

  it('recomputes a version whose bytes were dropped, through its kept ancestors, and verifies it', async () => {
    const res = await get(`${url}/data/reports/42/summary`, fx.tokens.frank);
    expect(res.status).toBe(200);
    const body = await res.arrayBuffer();
    expect(res.headers.get('provenant-obtained')).toBe('recomputed');
    expect(Number(res.headers.get('provenant-executions-run')) + Number(res.headers.get('provenant-cache-hits'))).toBe(2);
    expect(sha(body)).toBe(fx.objects.summary.contentHash);
    expect(JSON.parse(Buffer.from(body).toString())).toEqual({ text: 'balance 20, ratio 0.050' });
    const metrics = await (await get(`${url}/metrics`)).text();
    expect(metrics).toMatch(/provenant_recomputations_total\{outcome="ok"\} [1-9]/);
  });

  it('fails cleanly past the recomputation budget (503 with the reason), and keeps serving', async () => {
    const tight = await startServer(fx.store, { recompute: { maxExecutions: 1 }, rateLimit: false });
    try {
      // A fresh server shares the store's memo cache; a version with no cached path needs 2 executions.
      const res = await get(`${tight.url}/data/reports/42/summary?as_of=${enc(fx.objects.summary.validFrom)}`, fx.tokens.frank);
      if (res.status === 200) {
        expect(Number(res.headers.get('provenant-executions-run'))).toBeLessThanOrEqual(1);
      } else {
        expect(res.status).toBe(503);
        const body = await problem(res);
        expect(body.code).toBe('BUDGET_EXCEEDED');
        expect(body.detail).toMatch(/more than 1 executions/);
      }
      expect((await get(`${tight.url}/healthz`)).status).toBe(200);
    } finally {
      await tight.server.close();
    }
  });

  it('stops a transform that never returns at its time budget, and one that takes memory without end at its heap limit: 503, the server unharmed', async () => {
    const tight = await startServer(fx.store, { recompute: { timeoutMs: 1500, workerMemoryMb: 64 }, rateLimit: false });
    try {
      const started = Date.now();
      const spin = await get(`${tight.url}/data/customers/42?transform=spin`, fx.tokens.dave);
      expect(spin.status).toBe(503);
      expect(Date.now() - started).toBeLessThan(10_000);
      const spinBody = await problem(spin);
      expect(spinBody.code).toBe('BUDGET_EXCEEDED');
      expect(spinBody.detail).toMatch(/time budget of 1500 ms/);
      expect(spin.headers.get('retry-after')).not.toBeNull();
      const roomy = await startServer(fx.store, { recompute: { timeoutMs: 30_000, workerMemoryMb: 64 }, rateLimit: false });
      try {
        const hog = await get(`${roomy.url}/data/customers/42?transform=hog`, fx.tokens.dave);
        expect(hog.status).toBe(503);
        expect((await problem(hog)).detail).toMatch(/memory budget of 64 MiB/);
        expect((await get(`${roomy.url}/healthz`)).status).toBe(200);
      } finally {
        await roomy.server.close();
      }
      // The server goes on: its own routes, kept reads, and transforms on the replaced thread.
      expect((await get(`${tight.url}/healthz`)).status).toBe(200);
      expect(await (await get(`${tight.url}/data/customers/42`, fx.tokens.dave)).text()).toBe(canonicalize({ balance: 20 }));
      const doubled = await get(`${tight.url}/data/customers/42?transform=double`, fx.tokens.dave);
      expect(doubled.status).toBe(200);
      expect(await doubled.json()).toEqual({ balance: 40 });
    } finally {
      await tight.server.close();
    }
  }, 60_000);

  it('applies an on-read transform, recorded with the request context', async () => {
    const res = await get(`${url}/data/customers/42?transform=double&params=${enc('{"factor":3}')}`, fx.tokens.dave, { traceparent: `00-${TRACE}-b7ad6b7169203331-01` });
    expect(res.status).toBe(200);
    expect(JSON.parse(await res.text())).toEqual({ balance: 60 });
    const executionId = res.headers.get('provenant-transform-execution')!;
    const execution = await fx.store.getExecution(executionId);
    expect(execution?.functionId).toBe('double');
    expect(execution?.context).toMatchObject({ source: 'http', principal: 'dave', location: '127.0.0.1', traceId: TRACE, rights: ['read:customers/*'] });
  });

  it('answers each bad input class with its status and a reason', async () => {
    const cases: [string, number, RegExp][] = [
      [`/data/customers/42?as_of=yesterday`, 400, /not ISO 8601/],
      [`/data/customers/42?as_of=2024-10-27T10:00:00`, 400, /no time zone offset/],
      [`/data/customers/42?as_of=${enc(new Date(Date.now() + 3_600_000).toISOString())}`, 422, /in the future/],
      [`/data/customers/42?as_of=${enc(new Date(fx.objects.before).toISOString())}`, 404, /did not exist yet/],
      [`/data/customers/${'x'.repeat(600)}`, 400, /at most 512/],
      [`/data/customers%01/42`, 400, /control character/],
      [`/data/customers%2F%2F42`, 400, /empty segment/],
      [`/data/customers/42?params=%7B%7D`, 400, /without transform/],
      [`/data/customers/42?transform=double&params=%7Bnope`, 400, /not JSON/],
      [`/data/customers/42?transform=nosuchstep`, 404, /no registered step/],
      [`/data/customers/42?colour=blue`, 400, /additional properties/],
      [`/objects/${enc('customers/42')}/versions?as_of=soon`, 400, /not ISO 8601/],
      [`/lineage/${enc('customers/42')}?direction=sideways`, 400, /must be equal to one of the allowed values/],
      [`/lineage/${enc('customers/42')}?depth=-1`, 400, /must be >= 0/],
      [`/lineage/sha256:1234`, 400, /not a well-formed value hash/],
    ];
    for (const [path, status, reason] of cases) {
      const res = await get(`${url}${path}`, fx.tokens.dave);
      expect(res.status, path).toBe(status);
      expect((await problem(res)).detail, path).toMatch(reason);
    }
  });

  it('answers an object the caller may not read exactly as a missing one', async () => {
    const hidden = await get(`${url}/data/secret/1`, fx.tokens.dave);
    const missing = await get(`${url}/data/customers/999`, fx.tokens.dave);
    expect(hidden.status).toBe(404);
    expect(missing.status).toBe(404);
    expect(await hidden.text()).toBe((await missing.text()).replaceAll('customers/999', 'secret/1'));
    // With a time, a transform, or a time in the future: still the same answer as for nothing at all.
    for (const q of [`?as_of=${fx.objects.between}`, '?transform=double', `?as_of=${Date.now() + 3_600_000}`]) {
      const h = await get(`${url}/data/secret/1${q}`, fx.tokens.dave);
      const m = await get(`${url}/data/nobody/1${q}`, fx.tokens.dave);
      expect(h.status).toBe(404);
      expect(await h.text()).toBe((await m.text()).replaceAll('nobody/1', 'secret/1'));
    }
  });
});

describe('GET /objects/{objectId}/versions', () => {
  it("lists an object's versions, oldest first, up to as_of", async () => {
    const all = (await (await get(`${url}/objects/${enc('customers/42')}/versions`, fx.tokens.dave)).json()) as { versions: { versionId: string; kept: boolean }[] };
    expect(all.versions.map((v) => v.versionId)).toEqual(fx.objects.customer42.map((v) => v.versionId));
    expect(all.versions.every((v) => v.kept)).toBe(true);
    const then = (await (await get(`${url}/objects/${enc('customers/42')}/versions?as_of=${fx.objects.between}`, fx.tokens.dave)).json()) as { versions: unknown[] };
    expect(then.versions).toHaveLength(1);
    const derived = (await (await get(`${url}/objects/${enc('reports/42')}/versions`, fx.tokens.frank)).json()) as { versions: { kept: boolean; executionId: string }[] };
    expect(derived.versions[0]).toMatchObject({ kept: false, executionId: fx.objects.report.executionId });
  });

  it('answers an object the caller may not read exactly as a missing one', async () => {
    const hidden = await get(`${url}/objects/${enc('customers/42')}/versions`, fx.tokens.frank);
    const missing = await get(`${url}/objects/${enc('reports/999')}/versions`, fx.tokens.frank);
    expect(hidden.status).toBe(404);
    expect(await hidden.text()).toBe((await missing.text()).replaceAll('reports/999', 'customers/42'));
  });
});

describe('GET /lineage/{ref}', () => {
  interface Graph {
    root: { id: string };
    nodes: { id: string; kind: string; objectId?: string }[];
    edges: { from: string; to: string; kind: string }[];
    cut: number;
  }

  it('walks ancestors, cutting the objects the caller may not trace, and says so', async () => {
    const res = await get(`${url}/lineage/${enc('reports/42/summary')}`, fx.tokens.frank);
    expect(res.status).toBe(200);
    const g = (await res.json()) as Graph;
    const objects = g.nodes.filter((n) => n.kind === 'version').map((n) => n.objectId).sort();
    expect(objects).toEqual(['customers/42', 'reports/42', 'reports/42/summary']);
    expect(g.nodes.filter((n) => n.kind === 'execution')).toHaveLength(2);
    expect(g.cut).toBe(1);
    const ids = new Set(g.nodes.map((n) => n.id));
    expect(g.edges.every((e) => ids.has(e.from) && ids.has(e.to))).toBe(true);
    expect(JSON.stringify(g)).not.toContain('secret');
  });

  it('without cuts for a caller who may trace everything reached', async () => {
    const g = (await (await get(`${url}/lineage/${enc('customers/42')}?direction=down`, fx.tokens.frank)).json()) as Graph;
    expect(g.cut).toBe(0);
    expect(g.nodes.filter((n) => n.kind === 'version').map((n) => n.objectId).sort()).toEqual(['customers/42', 'reports/42', 'reports/42/summary']);
    const d = (await (await get(`${url}/lineage/${enc('customers/42')}?direction=down`, fx.tokens.dave)).json()) as Graph;
    expect(d.nodes.filter((n) => n.kind === 'version').map((n) => n.objectId)).toEqual(['customers/42']);
    expect(d.cut).toBeGreaterThanOrEqual(2);
  });

  it('starts at an execution the caller may see through what it made, and hides it otherwise', async () => {
    const id = fx.objects.summaryExecutionId;
    const seen = await get(`${url}/lineage/${id}`, fx.tokens.frank);
    expect(seen.status).toBe(200);
    const hidden = await get(`${url}/lineage/${id}`, fx.tokens.dave);
    const other = '01890a5d-ac96-774b-bcce-b302099a8057';
    const missing = await get(`${url}/lineage/${other}`, fx.tokens.dave);
    expect(hidden.status).toBe(404);
    expect(await hidden.text()).toBe((await missing.text()).replaceAll(other, id));
  });

  it('answers a root the caller may not trace exactly as a missing one (object, version, value)', async () => {
    const pairs: [string, string][] = [
      ['secret/1', 'customers/999'],
      [`reports/42@${fx.objects.report.versionId}`, `customers/42@${fx.objects.report.versionId}`],
      [fx.objects.report.versionId, '01890a5d-ac96-774b-bcce-b302099a8057'],
      [fx.objects.report.contentHash, `sha256:${'0'.repeat(64)}`],
    ];
    for (const [secret, nothing] of pairs) {
      const h = await get(`${url}/lineage/${enc(secret)}`, fx.tokens.dave);
      const m = await get(`${url}/lineage/${enc(nothing)}`, fx.tokens.dave);
      expect(h.status, secret).toBe(404);
      expect(m.status, nothing).toBe(404);
      expect(await h.text()).toBe((await m.text()).replaceAll(nothing, secret));
    }
  });
});

describe('a matrix of principals × objects × times', () => {
  const principals = ['alice', 'bob', 'carol', 'dave', 'frank', 'grace', 'heidi'] as const;
  const objectIds = ['customers/42', 'customers/7', 'secret/1', 'reports/42', 'reports/42/summary', 'missing/1'];
  // What each principal may do, written out here independently of the server's grant matcher.
  const may: Record<(typeof principals)[number], { read: RegExp; lineage: RegExp; export: RegExp }> = {
    alice: { read: /^$/, lineage: /^$/, export: /^$/ },
    bob: { read: /^$/, lineage: /^$/, export: /^$/ },
    carol: { read: /.*/, lineage: /^$/, export: /^$/ },
    dave: { read: /^customers\/.+$/, lineage: /^customers\/.+$/, export: /^$/ },
    frank: { read: /^reports\/.+$/, lineage: /^(reports|customers)\/.+$/, export: /^$/ },
    grace: { read: /^$/, lineage: /^$/, export: /^(reports|customers)\/.+$/ },
    heidi: { read: /^$/, lineage: /^$/, export: /^(reports|customers|secret)\/.+$/ },
  };
  // The objects each object's export shows (its lineage both ways, and what those executions used).
  const shows: Record<string, string[]> = {
    'customers/42': ['customers/42', 'secret/1', 'reports/42', 'reports/42/summary'],
    'customers/7': ['customers/7'],
    'secret/1': ['secret/1', 'customers/42', 'reports/42', 'reports/42/summary'],
    'reports/42': ['customers/42', 'secret/1', 'reports/42', 'reports/42/summary'],
    'reports/42/summary': ['customers/42', 'secret/1', 'reports/42', 'reports/42/summary'],
  };
  const exists = (id: string): boolean => id !== 'missing/1';

  it('answers 200 exactly where a grant allows it, on data, versions, lineage, exports and replay jobs', async () => {
    const times = [undefined, String(fx.objects.between), new Date().toISOString()];
    let oks = 0;
    let checked = 0;
    for (const p of principals) {
      const token = fx.tokens[p];
      for (const id of objectIds) {
        for (const t of times) {
          const q = t === undefined ? '' : `?as_of=${enc(t)}`;
          const existedThen = exists(id) && !(t === String(fx.objects.between) && !id.startsWith('customers/42'));
          const data = await get(`${url}/data/${id}${q}`, token);
          await data.arrayBuffer();
          checked++;
          if (data.status === 200) {
            oks++;
            expect(may[p].read.test(id) && existedThen, `${p} read ${id}${q}`).toBe(true);
          } else expect(data.status, `${p} ${id}${q}`).toBe(404);
          const versions = await get(`${url}/objects/${enc(id)}/versions${q}`, token);
          await versions.arrayBuffer();
          checked++;
          if (versions.status === 200) expect(may[p].read.test(id) && exists(id)).toBe(true);
          const trace = await get(`${url}/lineage/${enc(id)}${q}`, token);
          checked++;
          if (trace.status === 200) {
            expect(may[p].lineage.test(id) && existedThen, `${p} lineage ${id}${q}`).toBe(true);
            const g = (await trace.json()) as { nodes: { kind: string; objectId?: string }[] };
            for (const n of g.nodes) if (n.kind === 'version') expect(may[p].lineage.test(n.objectId!), `${p} sees ${n.objectId} via ${id}`).toBe(true);
          } else {
            expect([400, 404], `${p} lineage ${id}${q}`).toContain(trace.status);
            await trace.arrayBuffer();
          }
          const exported = await get(`${url}/export/${enc(id)}${q}`, token);
          const text = await exported.text();
          checked++;
          if (exported.status === 200) {
            // Before the reports were derived, customers/42 had no lineage but itself.
            const shown = t === String(fx.objects.between) ? [id] : (shows[id] ?? []);
            expect(existedThen && shown.every((o) => may[p].export.test(o)), `${p} export ${id}${q}`).toBe(true);
          } else if (exported.status === 403) {
            expect(may[p].export.test(id) && existedThen, `${p} export ${id}${q}: 403 only where the object itself may be exported`).toBe(true);
            expect(text).not.toContain('secret/');
          } else expect(exported.status, `${p} export ${id}${q}`).toBe(404);
        }
      }
    }
    expect(checked).toBe(principals.length * objectIds.length * times.length * 4);
    expect(oks).toBeGreaterThan(10);
  }, 120_000);

  it('shows a replay job and its result only to principals with replay rights on its stream', async () => {
    const started = await post(`${url}/replays`, { mode: 'verify', streamId: 'orders' }, fx.tokens.alice);
    const { id } = (await started.json()) as { id: string };
    await waitForJob(url, id, fx.tokens.alice);
    for (const p of principals) {
      const res = await get(`${url}/replays/${id}`, fx.tokens[p]);
      await res.arrayBuffer();
      expect(res.status, p).toBe(p === 'alice' ? 200 : 404);
    }
  }, 60_000);
});

describe('fuzz', () => {
  it('answers arbitrary ids, times and query strings without a 5xx', async () => {
    const segment = fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.constantFrom('customers', '42', '..', '.', '', '%', '%2F', '%00', '@', 'sha256:', '\u00e9', '\ud83d\ude00', '*'),
    );
    const id = fc.array(segment, { minLength: 1, maxLength: 6 }).map((parts) => parts.join('/'));
    const time = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.integer({ min: -9e15, max: 9e15 }).map(String),
      fc.date({ min: new Date(-1e14), max: new Date(1e14), noInvalidDate: true }).map((d) => d.toISOString()),
      fc.constantFrom('2024-10-27T10:00:00Z', '2024-13-45T99:99:99Z', 'NaN', 'Infinity', '1e400', '-0', ''),
    );
    const query = fc.dictionary(fc.constantFrom('as_of', 'transform', 'params', 'direction', 'depth', 'limit', 'after', 'x'), fc.oneof(time, fc.string({ maxLength: 30 })), { maxKeys: 3 });
    const route = fc.constantFrom('data', 'versions', 'lineage', 'executions', 'checkpoints', 'replays');
    const token = fc.constantFrom(fx.tokens.dave, fx.tokens.frank, fx.tokens.carol, fx.tokens.alice);
    let requests = 0;
    await fc.assert(
      fc.asyncProperty(route, id, query, token, async (r, objectId, q, t) => {
        const qs = new URLSearchParams(q).toString();
        const path = {
          data: `/data/${objectId.split('/').map((s) => (Math.random() < 0.5 ? s : enc(s))).join('/')}`,
          versions: `/objects/${enc(objectId)}/versions`,
          lineage: `/lineage/${enc(objectId)}`,
          executions: `/executions/${enc(objectId)}`,
          checkpoints: `/streams/${enc(objectId)}/checkpoints`,
          replays: `/replays/${enc(objectId)}`,
        }[r];
        const res = await get(`${url}${path}${qs === '' ? '' : `?${qs}`}`, t);
        const text = await res.text();
        requests++;
        if (res.status >= 500) throw new Error(`${res.status} for ${path}?${qs}: ${text}`);
        if (res.status >= 400) expect(res.headers.get('content-type'), `${res.status} ${path}?${qs}: ${text}`).toMatch(/^application\/problem\+json/);
      }),
      { numRuns: 400 },
    );
    expect(requests).toBeGreaterThanOrEqual(400);
    const bodies = fc.oneof(fc.json(), fc.string(), fc.object().map((o) => JSON.stringify({ mode: 'whatif', streamId: 'orders', ...o })));
    await fc.assert(
      fc.asyncProperty(bodies, async (body) => {
        const res = await post(`${url}/replays`, body, fx.tokens.bob);
        const text = await res.text();
        if (res.status >= 500) throw new Error(`${res.status} for POST /replays ${body}: ${text}`);
      }),
      { numRuns: 150 },
    );
  }, 180_000);
});

describe('GET /export/{objectId}', () => {
  it("exports an object's lineage as PROV-JSON when every object it shows is covered by export grants", async () => {
    const res = await get(`${url}/export/${enc('reports/42')}?format=prov-json`, fx.tokens.heidi);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.headers.get('content-disposition')).toBe('attachment; filename="reports_42.json"');
    const doc = (await res.json()) as { activity?: Record<string, unknown>; entity?: Record<string, unknown> };
    // The two executions of the lineage (enrich made reports/42, summary made reports/42/summary).
    expect(Object.keys(doc.activity ?? {})).toHaveLength(2);
    expect(res.headers.get('provenant-executions')).toBe('2');
    expect(JSON.stringify(doc.entity)).toContain(fx.objects.report.versionId);
    const cypher = await get(`${url}/export/${enc('reports/42')}?format=cypher`, fx.tokens.heidi);
    expect(cypher.status).toBe(200);
    expect(await cypher.text()).toMatch(/CREATE|MERGE/);
  });

  it('refuses (403, counting, not naming) an export whose lineage shows an object the token may not export', async () => {
    // grace may export customers/* and reports/*, but reports/42 was made from secret/1.
    const res = await get(`${url}/export/${enc('reports/42')}`, fx.tokens.grace);
    expect(res.status).toBe(403);
    const body = await problem(res);
    expect(body.detail).toContain('1 object or stream');
    expect(JSON.stringify(body)).not.toContain('secret');
    // customers/42 alone: its lineage (down) reaches reports/42, whose execution used secret/1.
    expect((await get(`${url}/export/${enc('customers/42')}`, fx.tokens.grace)).status).toBe(403);
  });

  it('answers an object the token may not export exactly as a missing one (404); bad format 400', async () => {
    const hidden = await get(`${url}/export/${enc('secret/1')}`, fx.tokens.grace);
    const missing = await get(`${url}/export/${enc('customers/999')}`, fx.tokens.grace);
    expect([hidden.status, missing.status]).toEqual([404, 404]);
    const [a, b] = [await problem(hidden), await problem(missing)];
    expect(a.code).toBe(b.code);
    expect((await get(`${url}/export/${enc('customers/42')}`, fx.tokens.dave)).status).toBe(404); // read and lineage, no export
    const bad = await get(`${url}/export/${enc('reports/42')}?format=xml`, fx.tokens.heidi);
    expect(bad.status).toBe(400);
    expect((await problem(bad)).detail).toContain('format');
  });
});

