/**
 * The routes the web UI reads besides the core API, through real HTTP over the fixture store:
 * lists of objects and streams (filtered by grants), an execution with its decoded values and
 * neighbours, a step version's stored code, and a finished replay or what-if execution by
 * execution. Each answers a thing the caller may not see exactly as a missing one.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProvenantServer } from '../../src/http/server.js';
import { ensureDist } from '../helpers/dist.js';
import { get, makeFixture, post, startServer, waitForJob, type Fixture } from './fixture.js';

let fx: Fixture;
let server: ProvenantServer;
let url: string;

beforeAll(async () => {
  await ensureDist();
  fx = await makeFixture();
  ({ server, url } = await startServer(fx.store));
}, 180_000);

afterAll(async () => {
  await server?.close();
  await fx?.store.close();
});

interface Detail {
  stepId: string;
  inputs: unknown[];
  output: { hash: string | null; value?: unknown; omitted?: string };
  params: { value?: unknown };
  error: unknown;
  version: unknown;
  previous: { id: string } | null;
  next: { id: string } | null;
  made: unknown[];
}

const json = async <T>(res: Response): Promise<T> => {
  expect(res.status).toBe(200);
  return (await res.json()) as T;
};

/** The fixture's records (see fixture.ts), seed 1 for orders. */
const amount = (i: number, seed = 1): number => ((i * 37 + seed * 11) % 10_000) / 100 + 0.005;

describe('lists for the UI', () => {
  it('lists the objects a caller may read, by prefix', async () => {
    const all = await json<{ objects: { objectId: string; versions: number }[] }>(await get(`${url}/objects`, fx.tokens.carol));
    expect(all.objects.map((o) => [o.objectId, o.versions])).toEqual([
      ['customers/42', 2],
      ['customers/7', 1],
      ['reports/42', 1],
      ['reports/42/summary', 1],
      ['secret/1', 1],
    ]);
    const dave = await json<{ objects: { objectId: string }[] }>(await get(`${url}/objects`, fx.tokens.dave));
    expect(dave.objects.map((o) => o.objectId)).toEqual(['customers/42', 'customers/7']);
    const prefixed = await json<{ objects: { objectId: string }[] }>(await get(`${url}/objects?prefix=reports`, fx.tokens.carol));
    expect(prefixed.objects.map((o) => o.objectId)).toEqual(['reports/42', 'reports/42/summary']);
    expect((await get(`${url}/objects`)).status).toBe(401);
  });

  it('lists the streams a caller may see, with checkpoint counts and log lengths', async () => {
    const alice = await json<{ streams: unknown[] }>(await get(`${url}/streams`, fx.tokens.alice));
    expect(alice.streams).toEqual([{ streamId: 'orders', checkpoints: 4, records: 400 }]);
    const bob = await json<{ streams: { streamId: string }[] }>(await get(`${url}/streams`, fx.tokens.bob));
    expect(bob.streams.map((s) => s.streamId)).toEqual(['payments/eu']);
    expect((await json<{ streams: unknown[] }>(await get(`${url}/streams`, fx.tokens.dave))).streams).toEqual([]);
  });
});

describe('execution detail', () => {
  it('decodes input, output and params, names the step version, and links the executions before and after in the run', async () => {
    const executions = await fx.store.listExecutions({ runId: fx.runs.orders, limit: 6 });
    const flag = executions[3]!; // offset 1: parse, flag, parse, flag…
    expect(flag.functionId).toBe('flag');
    const d = await json<Detail>(await get(`${url}/executions/${flag.id}/detail`, fx.tokens.alice));
    const cents = Math.round(amount(1) * 100);
    expect(d).toMatchObject({ id: flag.id, stepId: 'flag', status: 'ok', streamId: 'orders', offset: 1, versionHash: flag.functionVersionHash });
    expect(d.inputs).toEqual([{ hash: flag.inputHashes[0], value: { id: 1, cents } }]);
    expect(d.output).toEqual({ hash: flag.outputHash, value: { id: 1, cents, large: cents > 5000 } });
    expect(d.params.value).toEqual({ above: 5000 });
    expect(d.error).toEqual({ hash: null });
    expect(d.version).toMatchObject({ module: 'steps/flag.ts', export: 'default', firstRunId: fx.runs.orders });
    expect(d.previous).toEqual({ id: executions[2]!.id, stepId: 'parse', offset: 1, status: 'ok' });
    expect(d.next).toEqual({ id: executions[4]!.id, stepId: 'parse', offset: 2, status: 'ok' });
    const first = await json<Detail>(await get(`${url}/executions/${executions[0]!.id}/detail`, fx.tokens.alice));
    expect(first.previous).toBeNull();
    expect(first.next?.id).toBe(executions[1]!.id);
    expect(first.made).toEqual([]);
  });

  it('names the versions an execution made (kept or not) and answers an execution the caller may not read as a missing one', async () => {
    const d = await json<{ made: unknown[]; output: { omitted?: string } }>(await get(`${url}/executions/${fx.objects.summaryExecutionId}/detail`, fx.tokens.carol));
    expect(d.made).toEqual([{ objectId: 'reports/42/summary', versionId: fx.objects.summary.versionId, ordinal: 1, validFrom: fx.objects.summary.validFrom, kept: false }]);
    expect(d.output.omitted).toBe('not stored (dropped or never kept)');
    const [e] = await fx.store.listExecutions({ runId: fx.runs.orders, limit: 1 });
    const hidden = await get(`${url}/executions/${e!.id}/detail`, fx.tokens.bob);
    const other = randomUUID();
    const missing = await get(`${url}/executions/${other}/detail`, fx.tokens.bob);
    expect(hidden.status).toBe(404);
    expect(await hidden.text()).toBe((await missing.text()).replaceAll(other, e!.id));
  });
});

describe('step source', () => {
  it("serves a step version's stored code to callers with a steps grant; others get the same 404 as for an unknown version", async () => {
    const steps = await fx.store.listSteps();
    const parse = steps.find((s) => s.stepId === 'parse')!;
    const v1 = parse.versions.find((v) => v.versionHash !== fx.parseV2)!;
    const res = await get(`${url}/steps/parse/versions/${v1.versionHash}/source`, fx.tokens.alice);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(await res.text()).toContain('Math.round(r.amount * 100)');
    expect(await (await get(`${url}/steps/parse/versions/${fx.parseV2}/source`, fx.tokens.alice)).text()).toContain('Math.floor(r.amount * 100)');
    const hidden = await get(`${url}/steps/parse/versions/${v1.versionHash}/source`, fx.tokens.bob);
    const unknown = `sha256:${'a'.repeat(64)}`;
    const missing = await get(`${url}/steps/parse/versions/${unknown}/source`, fx.tokens.bob);
    expect(hidden.status).toBe(404);
    expect(await hidden.text()).toBe((await missing.text()).replaceAll(unknown, v1.versionHash));
    expect((await get(`${url}/steps/parse/versions/not-a-hash/source`, fx.tokens.alice)).status).toBe(400);
  });
});

describe('replay executions', () => {
  interface Row { index: number; offset: number; stepId: string; verdict: string; recordedExecutionId: string; replayExecutionId: string | null; recorded?: { value?: unknown }; replayed?: { value?: unknown } }
  interface Page { total: number; executions: Row[]; next: number | null }

  it('pages a verify replay execution by execution, every one matched, with recorded and replayed outputs', async () => {
    const res = await post(`${url}/replays`, { mode: 'verify', streamId: 'orders' }, fx.tokens.alice);
    const job = (await res.json()) as { id: string };
    await waitForJob(url, job.id, fx.tokens.alice);
    const rows: Row[] = [];
    for (let after = -1; ; ) {
      const page = await json<Page>(await get(`${url}/replays/${job.id}/executions?after=${after}&limit=300`, fx.tokens.alice));
      expect(page.total).toBe(800);
      rows.push(...page.executions);
      if (page.next === null) break;
      after = page.next;
    }
    expect(rows.length).toBe(800);
    expect(rows.map((r) => r.index)).toEqual(Array.from({ length: 800 }, (_, i) => i));
    expect(rows.slice(0, 4).map((r) => [r.offset, r.stepId])).toEqual([[0, 'parse'], [0, 'flag'], [1, 'parse'], [1, 'flag']]);
    expect(rows.every((r) => r.verdict === 'matched')).toBe(true);
    const withValues = await json<Page>(await get(`${url}/replays/${job.id}/executions?after=1&limit=2&values=true`, fx.tokens.alice));
    expect(withValues.executions.map((r) => [r.index, r.recorded?.value, r.replayed?.value])).toEqual([
      [2, { id: 1, cents: Math.round(amount(1) * 100) }, { id: 1, cents: Math.round(amount(1) * 100) }],
      [3, { id: 1, cents: Math.round(amount(1) * 100), large: Math.round(amount(1) * 100) > 5000 }, { id: 1, cents: Math.round(amount(1) * 100), large: Math.round(amount(1) * 100) > 5000 }],
    ]);
    expect((await json<Page>(await get(`${url}/replays/${job.id}/executions?diverged=true`, fx.tokens.alice))).total).toBe(0);
    // Same grants as the job itself.
    const hidden = await get(`${url}/replays/${job.id}/executions`, fx.tokens.bob);
    expect(hidden.status).toBe(404);
    const other = randomUUID();
    expect(await hidden.text()).toBe((await (await get(`${url}/replays/${other}/executions`, fx.tokens.bob)).text()).replaceAll(other, job.id));
  }, 90_000);

  it('lists the executions a what-if changed, with the new output beside the recorded one', async () => {
    const res = await post(`${url}/replays`, { mode: 'whatif', streamId: 'orders', substitutions: { parse: { versionHash: fx.parseV2 } } }, fx.tokens.alice);
    const job = (await res.json()) as { id: string };
    const done = await waitForJob(url, job.id, fx.tokens.alice);
    expect(done.status).toBe('completed');
    const page = await json<Page>(await get(`${url}/replays/${job.id}/executions?diverged=true&limit=1000&values=true`, fx.tokens.alice));
    // Independently: flooring changes parse's output where rounding differs; flag's output follows its input.
    const changedOffsets = Array.from({ length: 400 }, (_, i) => i).filter((i) => Math.round(amount(i) * 100) !== Math.floor(amount(i) * 100));
    expect(changedOffsets.length).toBeGreaterThan(0);
    const parseRows = page.executions.filter((r) => r.stepId === 'parse');
    expect(parseRows.map((r) => r.offset)).toEqual(changedOffsets);
    expect(parseRows.every((r) => r.verdict === 'substituted' && r.replayExecutionId !== null)).toBe(true);
    const flagRows = page.executions.filter((r) => r.stepId === 'flag');
    expect(flagRows.map((r) => r.offset)).toEqual(changedOffsets);
    expect(flagRows.every((r) => r.verdict === 'input-changed')).toBe(true);
    const row = parseRows[0]!;
    expect(row.recorded?.value).toEqual({ id: row.offset, cents: Math.round(amount(row.offset) * 100) });
    expect(row.replayed?.value).toEqual({ id: row.offset, cents: Math.floor(amount(row.offset) * 100) });
    expect(page.total).toBe(changedOffsets.length * 2);
    const all = await json<Page>(await get(`${url}/replays/${job.id}/executions?limit=1`, fx.tokens.alice));
    expect(all.total).toBe(800);
  }, 90_000);
});
