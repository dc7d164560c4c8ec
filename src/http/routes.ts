/**
 * The routes of the HTTP API, each with the JSON Schemas that validate it and document it in
 * `/openapi.json`. Every route that reads checks the caller's grants and answers a thing the
 * caller may not see exactly as a missing one (same status, same body).
 */
import type { FastifyInstance } from 'fastify';
import type { JsonValue } from '../hash/canonical.js';
import type { CheckpointRecord, ExecutionRecord } from '../store/records.js';
import { HttpProblem } from './problem.js';
import { findJob } from './jobs.js';
import { registerExportRoutes } from './export-routes.js';
import { mayReadExecution, registerObjectRoutes } from './object-routes.js';
import { allow, requestContext, type ServerParts } from './server.js';

const UUID = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
const HASH = '^sha256:[0-9a-f]{64}$';

const problemResponse = { description: 'Problem details (RFC 9457), as application/problem+json', type: 'object', additionalProperties: true } as const;
const errors = { 400: problemResponse, 401: problemResponse, 404: problemResponse, 429: problemResponse } as const;

const iso = (us: number | null): string | null => (us === null ? null : new Date(Math.floor(us / 1000)).toISOString());

/** Add every route to `app`. */
export function registerRoutes(app: FastifyInstance, parts: ServerParts, options: { publicMetrics: boolean }): void {
  const { store, metrics, jobs } = parts;

  app.get('/healthz', { config: { public: true }, schema: { summary: 'Liveness: the server answers', security: [], response: { 200: { type: 'object', properties: { status: { type: 'string' } } } } } }, async () => ({ status: 'ok' }));

  app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());

  app.get(
    '/metrics',
    { config: { public: options.publicMetrics }, schema: { summary: 'Prometheus metrics: requests, latencies, recomputations, cache hits, jobs', ...(options.publicMetrics ? { security: [] } : {}), produces: ['text/plain'] } },
    async (_request, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
  );

  // ---- steps --------------------------------------------------------------------------------

  app.get(
    '/steps',
    {
      schema: {
        summary: 'Recorded steps and their versions (those the caller holds `steps:<pattern>` for)',
        response: { 200: { type: 'array', items: { type: 'object', additionalProperties: true } }, ...errors },
      },
    },
    async (request) => {
      const steps = await store.listSteps();
      return steps
        .filter((s) => allow(request, 'steps', s.stepId) !== undefined)
        .map((s) => ({
          stepId: s.stepId,
          versions: s.versions.map((v) => ({
            versionHash: v.versionHash,
            module: v.manifest.module,
            export: v.manifest.export,
            firstSeen: iso(v.firstSeenUs),
            firstRunId: v.firstRunId,
            executions: v.executions,
            failed: v.failed,
          })),
        }));
    },
  );

  // ---- executions ---------------------------------------------------------------------------

  app.get<{ Params: { id: string } }>(
    '/executions/:id',
    {
      schema: {
        summary: 'One execution (provenance record): step, version, input and output hashes, params hash, context, times',
        description: 'Visible to callers holding `stream:<pattern>` for the stream it was recorded over; an execution outside any stream needs `read:*`.',
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: UUID, description: 'execution id (UUIDv7)' } } },
        response: { 200: { type: 'object', additionalProperties: true }, ...errors },
      },
    },
    async (request) => {
      const { id } = request.params;
      const execution = await store.getExecution(id);
      if (execution === undefined || !mayReadExecution(request, execution)) throw executionNotFound(id);
      request.provenant.detail = { executionId: id };
      return executionView(execution);
    },
  );

  // ---- streams ------------------------------------------------------------------------------

  app.get<{ Params: { streamId: string }; Querystring: { limit?: number; after?: string } }>(
    '/streams/:streamId/checkpoints',
    {
      schema: {
        summary: "A stream's checkpoints, in the order they were opened",
        description: 'The stream id is one path segment: URL-encode `/` and `:` in it (`file%3A%2Fdata%2Fflights.json`). Needs `stream:<pattern>`.',
        params: { type: 'object', required: ['streamId'], properties: { streamId: { type: 'string', minLength: 1, maxLength: 1024 } } },
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
            after: { type: 'string', pattern: UUID, description: 'the last checkpoint id of the previous page' },
          },
        },
        response: { 200: { type: 'object', additionalProperties: true }, ...errors },
      },
    },
    async (request) => {
      const { streamId } = request.params;
      const known = (await store.getStream(streamId)) !== undefined || (await store.listCheckpoints({ streamId, limit: 1 })).length > 0;
      if (!known || allow(request, 'stream', streamId) === undefined) throw streamNotFound(streamId);
      const limit = request.query.limit ?? 100;
      const page = await store.listCheckpoints({ streamId, limit, ...(request.query.after === undefined ? {} : { afterId: request.query.after }) });
      request.provenant.detail = { streamId };
      return { streamId, checkpoints: page.map(checkpointView), next: page.length === limit ? (page[page.length - 1]?.checkpointId ?? null) : null };
    },
  );

  registerObjectRoutes(app, parts);
  registerExportRoutes(app, parts);

  // ---- replay jobs --------------------------------------------------------------------------

  app.post<{ Body: ReplayBody }>(
    '/replays',
    {
      schema: {
        summary: 'Start a verifying replay or a what-if over a range of checkpoints; answers at once with the job',
        description:
          'Needs `replay:<pattern>` for the stream. A what-if may substitute only recorded step versions (by version hash) and params: the API never accepts code. Poll `GET /replays/{id}`.',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['mode', 'streamId'],
          properties: {
            mode: { type: 'string', enum: ['verify', 'whatif'] },
            streamId: { type: 'string', minLength: 1, maxLength: 1024 },
            from: { type: 'string', minLength: 8, maxLength: 64, description: 'first checkpoint (id or unique prefix); default: the run’s first' },
            to: { type: 'string', minLength: 8, maxLength: 64, description: 'last checkpoint, inclusive; default: the run’s last' },
            runId: { type: 'string', pattern: UUID },
            substitutions: {
              type: 'object',
              maxProperties: 64,
              additionalProperties: {
                type: 'object',
                additionalProperties: false,
                minProperties: 1,
                properties: {
                  versionHash: { type: 'string', pattern: HASH, description: 'a recorded version of the step' },
                  params: { type: 'object', description: 'params set on top of the recorded ones' },
                },
              },
            },
            label: { type: 'string', maxLength: 200 },
            maxRecordDiffs: { type: 'integer', minimum: 0, maximum: 100_000, default: 1000 },
          },
        },
        response: { 202: { type: 'object', additionalProperties: true }, ...errors, 503: problemResponse },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const streamId = body.streamId;
      const known = (await store.listCheckpoints({ streamId, limit: 1 })).length > 0;
      if (!known || allow(request, 'replay', streamId) === undefined) throw streamNotFound(streamId);
      const substitutions = body.substitutions ?? {};
      if (body.mode === 'whatif' && Object.keys(substitutions).length === 0) {
        throw new HttpProblem(400, 'INPUT_INVALID', 'a what-if needs at least one substitution: { "<stepId>": { "versionHash": "sha256:…" } } or { "params": { … } }', {
          hint: 'List recorded versions with GET /steps.',
        });
      }
      if (body.mode === 'verify' && Object.keys(substitutions).length > 0) {
        throw new HttpProblem(400, 'INPUT_INVALID', 'a verifying replay runs the recorded code: give substitutions only with mode "whatif"');
      }
      if (jobs.full) {
        throw new HttpProblem(503, 'BUDGET_EXCEEDED', 'too many replay jobs are waiting; none was started', { hint: 'Retry after a while.', headers: { 'retry-after': '5' } });
      }
      const view = jobs.submit(
        {
          storeDir: store.location,
          mode: body.mode,
          streamId,
          ...(body.from === undefined ? {} : { from: body.from }),
          ...(body.to === undefined ? {} : { to: body.to }),
          ...(body.runId === undefined ? {} : { runId: body.runId }),
          ...(body.mode === 'whatif' ? { substitutions } : {}),
          ...(body.label === undefined ? {} : { label: body.label }),
          context: requestContext(request),
          maxRecordDiffs: body.maxRecordDiffs ?? 1000,
        },
        request.provenant.auth?.ok === true ? request.provenant.auth.token.principal : '',
      );
      request.provenant.detail = { jobId: view.id, streamId, mode: body.mode };
      return reply.code(202).header('location', `/replays/${view.id}`).send(view);
    },
  );

  app.get<{ Params: { id: string } }>(
    '/replays/:id',
    {
      schema: {
        summary: 'A replay or what-if job: status, progress, and its result once completed',
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: UUID } } },
        response: { 200: { type: 'object', additionalProperties: true }, ...errors },
      },
    },
    async (request) => {
      const job = await findJob(jobs, store, request.params.id);
      if (job === undefined || allow(request, 'replay', job.streamId) === undefined) {
        throw new HttpProblem(404, 'NOT_FOUND', `no replay job ${request.params.id}`, { hint: 'Check the job id: POST /replays answered it in `id` and in the Location header.' });
      }
      request.provenant.detail = { jobId: job.id };
      return job;
    },
  );
}

interface ReplayBody {
  mode: 'verify' | 'whatif';
  streamId: string;
  from?: string;
  to?: string;
  runId?: string;
  substitutions?: Record<string, { versionHash?: `sha256:${string}`; params?: Record<string, JsonValue> }>;
  label?: string;
  maxRecordDiffs?: number;
}

function executionNotFound(id: string): HttpProblem {
  return new HttpProblem(404, 'NOT_FOUND', `no execution ${id}`, { context: { executionId: id } });
}

function streamNotFound(streamId: string): HttpProblem {
  return new HttpProblem(404, 'NOT_FOUND', `no stream ${streamId} with checkpoints`, { hint: 'Check the stream id (URL-encoded in paths).', context: { streamId } });
}

function executionView(e: ExecutionRecord): Record<string, unknown> {
  return {
    id: e.id,
    runId: e.runId,
    stepId: e.functionId,
    versionHash: e.functionVersionHash,
    inputHashes: e.inputHashes,
    inputEncodings: e.inputEncodings,
    outputHash: e.outputHash,
    outputEncoding: e.outputEncoding,
    paramsHash: e.paramsHash,
    contextHash: e.contextHash,
    context: e.context,
    status: e.status,
    errorHash: e.errorHash,
    nondeterminismHash: e.nondeterminismHash,
    streamId: e.streamId,
    offset: e.offset,
    started: iso(e.startedUs),
    ended: iso(e.endedUs),
    startedUs: e.startedUs,
    endedUs: e.endedUs,
    recordHash: e.recordHash,
  };
}

function checkpointView(c: CheckpointRecord): Record<string, unknown> {
  return {
    checkpointId: c.checkpointId,
    runId: c.runId,
    streamId: c.streamId,
    previousId: c.previousId,
    status: c.status,
    startOffset: c.startOffset,
    endOffset: c.end?.endOffset ?? null,
    started: iso(c.startedUs),
    ended: iso(c.end?.endedUs ?? null),
    records: c.end?.records ?? null,
    executions: c.end?.executions ?? null,
    failed: c.end?.failed ?? null,
    stateHash: c.end?.stateHash ?? null,
    pipelineHash: c.pipelineHash,
    reason: c.end?.reason ?? null,
    recordHash: c.recordHash,
  };
}

