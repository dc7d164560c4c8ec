/**
 * What the web UI needs beyond the core routes, and the UI itself.
 *
 * - The built UI (`dist/ui`, made by `npm run build`) is served at `/` without credentials: it is
 *   static code; everything it shows comes from the API behind bearer tokens. Hashed assets
 *   (`/assets/*`) are cached as immutable; `index.html` is revalidated.
 * - `GET /objects` and `GET /streams`: what the caller may open (filtered by grants).
 * - `GET /executions/{id}/detail`: an execution with its decoded input, output, params and error,
 *   its step version (when it first ran) and the executions before and after it in its run.
 * - `GET /steps/{stepId}/versions/{hash}/source`: the stored artifact of a step version (the bundled
 *   code that runs), as text.
 * - `GET /replays/{id}/executions?after&limit`: a finished replay or what-if, execution by
 *   execution: the recorded output beside the replayed one, with the verdict.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { decodeValue } from '../hash/canonical.js';
import type { ContentHash, ValueEncoding } from '../hash/canonical.js';
import type { ExecutionRecord } from '../store/records.js';
import type { Store } from '../store/store.js';
import { findJob } from './jobs.js';
import { HttpProblem } from './problem.js';
import { mayReadExecution } from './object-routes.js';
import { allow, type ServerParts } from './server.js';

const UUID = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
const HASH = '^sha256:[0-9a-f]{64}$';
const problemResponse = { description: 'Problem details (RFC 9457), as application/problem+json', type: 'object', additionalProperties: true } as const;
const errors = { 400: problemResponse, 401: problemResponse, 404: problemResponse, 429: problemResponse } as const;
const iso = (us: number | null): string | null => (us === null ? null : new Date(Math.floor(us / 1000)).toISOString());

/** Values larger than this are not inlined in UI answers (the hash is given instead). */
const MAX_INLINE_BYTES = 256 * 1024;

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.map': 'application/json',
  '.woff2': 'font/woff2',
};

/** Where the built UI is: `dist/ui` beside the compiled server, or (running from sources) the repository's `dist/ui`. */
export function uiDirectory(): string | undefined {
  for (const rel of ['../ui/', '../../dist/ui/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(join(dir, 'index.html'))) return dir;
  }
  return undefined;
}

/** A decoded value for the UI: the value itself, or why it is not inlined. */
interface ValueView {
  readonly hash: ContentHash | null;
  readonly value?: unknown;
  readonly omitted?: string;
}

async function valueView(store: Store, hash: ContentHash | null, encoding: ValueEncoding = 'json'): Promise<ValueView> {
  if (hash === null) return { hash: null };
  try {
    const stat = await store.statBlob(hash);
    if (stat === undefined) return { hash, omitted: 'not stored (dropped or never kept)' };
    if (stat.size > MAX_INLINE_BYTES) return { hash, omitted: `${stat.size} bytes: too large to show` };
    const bytes = await store.getBlob(hash);
    const value = decodeValue(bytes, encoding);
    return { hash, value: value instanceof Uint8Array ? `<${value.byteLength} bytes>` : value };
  } catch (err) {
    return { hash, omitted: err instanceof Error ? err.message : String(err) };
  }
}

/** The lowest UUIDv7 of a millisecond: a paging bound (`afterId`) for ids made from that time on. */
function uuidFloor(ms: number): string {
  const hex = Math.max(0, Math.floor(ms)).toString(16).padStart(12, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-7000-8000-000000000000`;
}

/** Milliseconds of a UUIDv7. */
function uuidMs(id: string): number {
  return parseInt(id.replaceAll('-', '').slice(0, 12), 16);
}

/** The execution recorded just before `e` in its run (by id, i.e. recording order), or undefined. */
async function previousExecution(store: Store, e: ExecutionRecord): Promise<ExecutionRecord | undefined> {
  for (const windowMs of [2_000, 600_000, Number.POSITIVE_INFINITY]) {
    let cursor = Number.isFinite(windowMs) ? uuidFloor(uuidMs(e.id) - windowMs) : undefined;
    let last: ExecutionRecord | undefined;
    scan: for (;;) {
      const page = await store.listExecutions({ runId: e.runId, limit: 1000, ...(cursor === undefined ? {} : { afterId: cursor }) });
      for (const x of page) {
        if (x.id >= e.id) break scan;
        last = x;
      }
      if (page.length < 1000) break;
      cursor = page[page.length - 1]?.id;
    }
    if (last !== undefined || !Number.isFinite(windowMs)) return last;
  }
  return undefined;
}

function brief(e: ExecutionRecord | undefined): Record<string, unknown> | null {
  return e === undefined ? null : { id: e.id, stepId: e.functionId, offset: e.offset, status: e.status };
}

/** One row of a replay, as the stepper shows it. */
interface ReplayRow {
  readonly index: number;
  readonly offset: number | null;
  readonly stepId: string;
  readonly versionHash: string | null;
  readonly recordedExecutionId: string | null;
  readonly replayExecutionId: string | null;
  readonly recordedOutputHash: string | null;
  readonly replayedOutputHash: string | null;
  readonly recordedStatus: string | null;
  readonly replayedStatus: string | null;
  /** `matched` (same output as recorded), or why not (a replay cause, or `added` / `not-reached` in a what-if). */
  readonly verdict: string;
}

interface ReplayIndex {
  readonly rows: readonly ReplayRow[];
  readonly truncated: boolean;
}

const MAX_ROWS = 200_000;

/**
 * The executions of a finished job in order: every recorded execution of the replayed range,
 * paired (by stream offset and step) with the job run's execution when one was recorded for it
 * (replays record the executions that diverged; what-ifs those whose outcome changed).
 */
async function buildReplayIndex(store: Store, result: Record<string, unknown>, mode: 'verify' | 'whatif'): Promise<ReplayIndex> {
  const runId = String(result.runId);
  const jobRunId = String(mode === 'verify' ? result.replayRunId : result.whatIfRunId);
  const streamId = String(result.streamId);
  const checkpoints = await store.listCheckpoints({ streamId, runId, limit: 100_000 });
  const fromIdx = checkpoints.findIndex((c) => c.checkpointId === result.from);
  const toIdx = checkpoints.findIndex((c) => c.checkpointId === result.to);
  const first = checkpoints[fromIdx < 0 ? 0 : fromIdx];
  const last = checkpoints[toIdx < 0 ? checkpoints.length - 1 : toIdx];
  const lo = first?.startOffset ?? 0;
  const hi = last?.end?.endOffset ?? Number.POSITIVE_INFINITY;

  const jobExecutions = new Map<string, ExecutionRecord>();
  for (let cursor: string | undefined; ; ) {
    const page = await store.listExecutions({ runId: jobRunId, limit: 1000, ...(cursor === undefined ? {} : { afterId: cursor }) });
    for (const x of page) jobExecutions.set(`${x.offset}\u0000${x.functionId}`, x);
    if (page.length < 1000) break;
    cursor = page[page.length - 1]?.id;
  }
  const causes = new Map<string, string>();
  for (const d of (result.divergences as { offset: number | null; stepId: string; cause: string }[] | undefined) ?? []) causes.set(`${d.offset}\u0000${d.stepId}`, d.cause);
  const substituted = new Set(((result.steps as { stepId: string; substituted: boolean }[] | undefined) ?? []).filter((s) => s.substituted).map((s) => s.stepId));

  const rows: ReplayRow[] = [];
  const seen = new Set<string>();
  let truncated = false;
  for (let cursor: string | undefined; ; ) {
    const page = await store.listExecutions({ runId, limit: 1000, ...(cursor === undefined ? {} : { afterId: cursor }) });
    for (const r of page) {
      if (r.streamId !== streamId || r.offset === null || r.offset < lo || r.offset >= hi) continue;
      if (rows.length >= MAX_ROWS) {
        truncated = true;
        break;
      }
      const key = `${r.offset}\u0000${r.functionId}`;
      seen.add(key);
      const j = jobExecutions.get(key);
      const same = j === undefined || (j.outputHash === r.outputHash && j.status === r.status);
      const verdict = same ? 'matched' : (causes.get(key) ?? (mode === 'whatif' ? (substituted.has(r.functionId) ? 'substituted' : 'input-changed') : 'diverged'));
      rows.push({
        index: rows.length,
        offset: r.offset,
        stepId: r.functionId,
        versionHash: j?.functionVersionHash ?? r.functionVersionHash,
        recordedExecutionId: r.id,
        replayExecutionId: j?.id ?? null,
        recordedOutputHash: r.outputHash,
        replayedOutputHash: j === undefined ? r.outputHash : j.outputHash,
        recordedStatus: r.status,
        replayedStatus: j === undefined ? r.status : j.status,
        verdict,
      });
    }
    if (truncated || page.length < 1000) break;
    cursor = page[page.length - 1]?.id;
  }
  // What-if executions with no recorded counterpart (the record's path now goes further).
  for (const [key, j] of jobExecutions) {
    if (seen.has(key) || rows.length >= MAX_ROWS) continue;
    rows.push({
      index: rows.length,
      offset: j.offset,
      stepId: j.functionId,
      versionHash: j.functionVersionHash,
      recordedExecutionId: null,
      replayExecutionId: j.id,
      recordedOutputHash: null,
      replayedOutputHash: j.outputHash,
      recordedStatus: null,
      replayedStatus: j.status,
      verdict: 'added',
    });
  }
  return { rows, truncated };
}

/** Add the UI's routes and static files. */
export function registerUiRoutes(app: FastifyInstance, parts: ServerParts): void {
  const { store, jobs } = parts;
  const replayIndexes = new Map<string, Promise<ReplayIndex>>();

  // ---- the UI itself ------------------------------------------------------------------------
  const dir = uiDirectory();
  const sendFile = async (file: string, immutable: boolean, reply: FastifyReply): Promise<unknown> => {
    const type = CONTENT_TYPES[extname(file)] ?? 'application/octet-stream';
    return reply
      .type(type)
      .header('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .send(readFileSync(file));
  };
  const noUi = (): HttpProblem => new HttpProblem(404, 'NOT_FOUND', 'the web UI is not built', { hint: 'Run `npm run build` (it builds dist/ui with Vite), then restart `provenant serve`.' });
  app.get('/', { config: { public: true }, schema: { hide: true } }, async (_request, reply) => {
    if (dir === undefined) throw noUi();
    return sendFile(join(dir, 'index.html'), false, reply);
  });
  app.get<{ Params: { '*': string } }>('/assets/*', { config: { public: true }, schema: { hide: true } }, async (request, reply) => {
    if (dir === undefined) throw noUi();
    const root = join(dir, 'assets');
    const file = normalize(join(root, request.params['*']));
    if (!file.startsWith(root + sep) || !existsSync(file) || !statSync(file).isFile()) throw new HttpProblem(404, 'NOT_FOUND', `no UI asset ${request.params['*']}`);
    return sendFile(file, true, reply);
  });

  // ---- lists --------------------------------------------------------------------------------
  app.get<{ Querystring: { prefix?: string; limit?: number } }>(
    '/objects',
    {
      schema: {
        summary: 'Objects the caller may read, by id, with their version counts',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { prefix: { type: 'string', maxLength: 1024 }, limit: { type: 'integer', minimum: 1, maximum: 10_000, default: 500 } },
        },
        response: { 200: { type: 'object', additionalProperties: true }, ...errors },
      },
    },
    async (request) => {
      const limit = request.query.limit ?? 500;
      const all = await store.listObjects({ ...(request.query.prefix === undefined ? {} : { prefix: request.query.prefix }), limit: Math.min(100_000, limit * 20) });
      const objects = all.filter((o) => allow(request, 'read', o.objectId) !== undefined).slice(0, limit);
      return { objects: objects.map((o) => ({ objectId: o.objectId, versions: o.versions, latest: iso(o.latestUs) })) };
    },
  );

  app.get(
    '/streams',
    {
      schema: {
        summary: 'Streams the caller may see, with their checkpoint counts and embedded log lengths',
        response: { 200: { type: 'object', additionalProperties: true }, ...errors },
      },
    },
    async (request) => {
      const found = new Map<string, { streamId: string; checkpoints: number; records: number | null }>();
      for (let cursor: string | undefined, pages = 0; pages < 100; pages++) {
        const page = await store.listCheckpoints({ limit: 1000, ...(cursor === undefined ? {} : { afterId: cursor }) });
        for (const c of page) {
          const s = found.get(c.streamId) ?? found.set(c.streamId, { streamId: c.streamId, checkpoints: 0, records: null }).get(c.streamId)!;
          s.checkpoints++;
        }
        if (page.length < 1000) break;
        cursor = page[page.length - 1]?.checkpointId;
      }
      for (const s of await store.listStreams()) {
        const x = found.get(s.streamId) ?? found.set(s.streamId, { streamId: s.streamId, checkpoints: 0, records: null }).get(s.streamId)!;
        x.records = s.length;
      }
      const streams = [...found.values()].filter((s) => allow(request, 'stream', s.streamId) !== undefined).sort((a, b) => a.streamId.localeCompare(b.streamId));
      return { streams };
    },
  );

  // ---- execution detail ---------------------------------------------------------------------
  app.get<{ Params: { id: string } }>(
    '/executions/:id/detail',
    {
      schema: {
        summary: 'One execution with its decoded input, output, params and error, its step version, and the executions before and after it in its run',
        description: 'Same grants as `GET /executions/{id}`. Values over 256 KiB are given by hash only.',
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: UUID } } },
        response: { 200: { type: 'object', additionalProperties: true }, ...errors },
      },
    },
    async (request) => {
      const { id } = request.params;
      const e = await store.getExecution(id);
      if (e === undefined || !mayReadExecution(request, e)) throw new HttpProblem(404, 'NOT_FOUND', `no execution ${id}`, { context: { executionId: id } });
      request.provenant.detail = { executionId: id };
      const [inputs, output, params, error, version, next, previous, run] = await Promise.all([
        Promise.all(e.inputHashes.map((h, i) => valueView(store, h, e.inputEncodings[i] ?? 'json'))),
        valueView(store, e.outputHash, e.outputEncoding ?? 'json'),
        valueView(store, e.paramsHash),
        valueView(store, e.errorHash),
        store.getStepVersion(e.functionId, e.functionVersionHash),
        store.listExecutions({ runId: e.runId, afterId: e.id, limit: 1 }),
        previousExecution(store, e),
        store.getRun(e.runId),
      ]);
      const made = await Promise.all(
        (await store.findObjectVersions({ executionId: e.id })).filter((v) => allow(request, 'read', v.objectId) !== undefined).map(async (v) => ({ ...v, kept: await store.hasBlob(v.contentHash) })),
      );
      return {
        id: e.id,
        runId: e.runId,
        run: run === undefined ? null : { id: run.id, kind: run.kind, name: run.name, started: iso(run.startedUs) },
        stepId: e.functionId,
        versionHash: e.functionVersionHash,
        status: e.status,
        streamId: e.streamId,
        offset: e.offset,
        started: iso(e.startedUs),
        ended: iso(e.endedUs),
        durationUs: e.endedUs - e.startedUs,
        recordHash: e.recordHash,
        inputs,
        output,
        params,
        error,
        context: e.context,
        version:
          version === undefined
            ? null
            : { module: version.manifest.module, export: version.manifest.export, files: version.manifest.files, packages: version.manifest.packages, bundler: version.manifest.bundler, firstSeen: iso(version.firstSeenUs), firstRunId: version.firstRunId },
        previous: brief(previous),
        next: brief(next[0]),
        made: made.map((v) => ({ objectId: v.objectId, versionId: v.versionId, ordinal: v.ordinal, validFrom: iso(v.validFromUs), kept: v.kept })),
      };
    },
  );

  // ---- step source --------------------------------------------------------------------------
  app.get<{ Params: { stepId: string; hash: string } }>(
    '/steps/:stepId/versions/:hash/source',
    {
      schema: {
        summary: 'The stored code of a step version (the bundled artifact that runs), as text',
        description: 'Needs `steps:<pattern>` for the step.',
        params: { type: 'object', required: ['stepId', 'hash'], properties: { stepId: { type: 'string', minLength: 1, maxLength: 300 }, hash: { type: 'string', pattern: HASH } } },
        response: { 200: { type: 'string' }, ...errors },
      },
    },
    async (request, reply) => {
      const { stepId, hash } = request.params;
      const missing = new HttpProblem(404, 'NOT_FOUND', `no version ${hash} of step ${stepId}`, { hint: 'List step versions with GET /steps.', context: { stepId, versionHash: hash } });
      if (allow(request, 'steps', stepId) === undefined) throw missing;
      const version = await store.getStepVersion(stepId, hash as ContentHash);
      if (version === undefined) throw missing;
      request.provenant.detail = { stepId, versionHash: hash };
      const bytes = await store.getBlob(version.versionHash);
      return reply.type('text/javascript; charset=utf-8').header('etag', `"${hash}"`).header('cache-control', 'private, max-age=31536000, immutable').send(Buffer.from(bytes));
    },
  );

  // ---- replay executions --------------------------------------------------------------------
  app.get<{ Params: { id: string }; Querystring: { after?: number; limit?: number; values?: boolean; diverged?: boolean } }>(
    '/replays/:id/executions',
    {
      schema: {
        summary: 'A finished replay or what-if, execution by execution: recorded and replayed output hashes, and the verdict; with `values`, the outputs themselves',
        description:
          'Rows are in recording order; `after` is the last index of the previous page. `diverged=true` lists only rows whose verdict is not `matched`. Same grants as `GET /replays/{id}`. A matched row replayed to the recorded output hash (the replay compared them), so its replayed output is the recorded one.',
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: UUID } } },
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            after: { type: 'integer', minimum: -1, default: -1 },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
            values: { type: 'boolean', default: false },
            diverged: { type: 'boolean', default: false },
          },
        },
        response: { 200: { type: 'object', additionalProperties: true }, ...errors, 409: problemResponse },
      },
    },
    async (request) => {
      const job = await findJob(jobs, store, request.params.id);
      if (job === undefined || allow(request, 'replay', job.streamId) === undefined) {
        throw new HttpProblem(404, 'NOT_FOUND', `no replay job ${request.params.id}`, { hint: 'Check the job id: POST /replays answered it in `id` and in the Location header.' });
      }
      if (job.status !== 'completed') {
        throw new HttpProblem(409, 'INPUT_INVALID', `replay job ${job.id} is ${job.status}: its executions are listed once it has completed`, { hint: 'Poll GET /replays/{id} until status is completed.', context: { jobId: job.id, status: job.status } });
      }
      request.provenant.detail = { jobId: job.id };
      let index = replayIndexes.get(job.id);
      if (index === undefined) {
        index = buildReplayIndex(store, job.result as Record<string, unknown>, job.mode);
        replayIndexes.set(job.id, index);
        if (replayIndexes.size > 16) replayIndexes.delete(replayIndexes.keys().next().value as string);
        index.catch(() => replayIndexes.delete(job.id));
      }
      const { rows, truncated } = await index;
      const after = request.query.after ?? -1;
      const limit = request.query.limit ?? 100;
      const pool = request.query.diverged === true ? rows.filter((r) => r.verdict !== 'matched') : rows;
      const start = pool.findIndex((r) => r.index > after);
      const page = start < 0 ? [] : pool.slice(start, start + limit);
      const withValues =
        request.query.values === true
          ? await Promise.all(
              page.map(async (r) => {
                const recorded = r.recordedExecutionId === null ? null : await store.getExecution(r.recordedExecutionId);
                const replayed = r.replayExecutionId === null ? null : await store.getExecution(r.replayExecutionId);
                const out = (e: ExecutionRecord | null | undefined, fallback: ExecutionRecord | null | undefined): Promise<ValueView> => {
                  const x = e ?? fallback;
                  if (x === null || x === undefined) return Promise.resolve({ hash: null });
                  return x.status === 'failed' ? valueView(store, x.errorHash) : valueView(store, x.outputHash, x.outputEncoding ?? 'json');
                };
                return { ...r, recorded: await out(recorded, null), replayed: await out(replayed, r.verdict === 'matched' ? recorded : null) };
              }),
            )
          : page;
      const lastRow = page[page.length - 1];
      return {
        jobId: job.id,
        mode: job.mode,
        total: pool.length,
        executions: withValues,
        next: lastRow !== undefined && pool.indexOf(lastRow) < pool.length - 1 ? lastRow.index : null,
        truncated,
      };
    },
  );
}
