/**
 * Object routes: as-of reads (`GET /data/{objectId}`), versions, lineage. Object ids contain `/`
 * (`customers/42`): `/data/` takes the rest of the path as the id (slashes as they are, or
 * URL-encoded); the other routes take it as one URL-encoded path segment (`customers%2F42`).
 *
 * Grants: `read:<pattern>` for data and versions; `lineage:<pattern>` for each object in a lineage
 * answer. An object the caller may not read answers exactly as a missing one (same status, same
 * body); in lineage, the versions of objects the caller may not see are cut, with what is reached
 * only through them, and the answer counts what was cut.
 */
import { getHeapStatistics } from 'node:v8';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ProvenantError } from '../errors.js';
import type { JsonValue } from '../hash/canonical.js';
import { isUuid } from '../ids.js';
import { lineage, type LineageEdge, type LineageGraph, type LineageNode } from '../objects/lineage.js';
import { parseTime, validateObjectId } from '../objects/refs.js';
import { listObjectVersions } from '../objects/versions.js';
import type { ExecutionRecord } from '../store/records.js';
import { HttpProblem } from './problem.js';
import { allow, requestContext, type ServerParts } from './server.js';

export const problemResponse = { description: 'Problem details (RFC 9457), as application/problem+json', type: 'object', additionalProperties: true } as const;
const errors = { 400: problemResponse, 401: problemResponse, 404: problemResponse, 422: problemResponse, 429: problemResponse } as const;

export const TIME_DOC = 'ISO 8601 with an offset (2024-10-27T10:00:00Z) or epoch milliseconds';

/** The one answer for an object that is missing or that the caller may not read: identical either way. */
export function objectNotFound(objectId: string): HttpProblem {
  return new HttpProblem(404, 'NOT_FOUND', `no object ${objectId}`, { hint: 'Check the object id; list what exists with `provenant objects`.', context: { objectId } });
}

/** The heap in use, in MiB: read at most every 50 ms (a read costs microseconds; requests come faster). */
const usedHeapMb = (() => {
  let at = 0;
  let mb = 0;
  return (): number => {
    const now = performance.now();
    if (now - at >= 50) {
      mb = getHeapStatistics().used_heap_size / 1024 / 1024;
      at = now;
    }
    return mb;
  };
})();

/** Add the object routes. */
export function registerObjectRoutes(app: FastifyInstance, parts: ServerParts): void {
  const { store, metrics, recompute, keptReads, recomputePool } = parts;

  app.get<{ Params: { '*': string }; Querystring: { as_of?: string; transform?: string; params?: string } }>(
    '/data/*',
    {
      config: {
        // In the OpenAPI document the wildcard is the path parameter objectId (slashes and all).
        swaggerTransform: ({ schema, url }: { schema: object; url: string }) => ({
          schema: { ...schema, params: { type: 'object', required: ['objectId'], properties: { objectId: { type: 'string', description: 'object id, e.g. customers/42: the rest of the path, slashes included' } } } },
          url: url.replace('*', ':objectId'),
        }),
      },
      schema: {
        summary: 'The object as it was at a time: its bytes, read where kept or recomputed (and verified) where not',
        description:
          'The object id is the rest of the path (`/data/customers/42`). Needs `read:<pattern>`. Headers: `ETag` (content hash), `Provenant-Obtained: read|recomputed`, `Provenant-Executions-Run`, `Provenant-Cache-Hits`, `Provenant-Version-Id`, `Provenant-Valid-From`; `Cache-Control: immutable` when `as_of` is given (a past time never changes). With `transform`, a registered step runs on the data and its execution is recorded with the request’s context (`Provenant-Transform-Execution`).',
        params: { type: 'object', properties: { '*': { type: 'string', description: 'object id, e.g. customers/42' } } },
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            as_of: { type: 'string', maxLength: 64, description: `${TIME_DOC}; default: now` },
            transform: { type: 'string', minLength: 1, maxLength: 300, description: 'a registered step id (`stepId` or `stepId@sha256:…`)' },
            params: { type: 'string', maxLength: 16384, description: 'the transform’s params, as JSON' },
          },
        },
        response: {
          200: { description: 'The bytes, with Content-Type as stored', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
          ...errors,
          503: problemResponse,
        },
      },
    },
    async (request, reply) => {
      const objectId = validObjectId(request.params['*']);
      const asOfText = request.query.as_of;
      const asOfMs = asOfText === undefined ? Date.now() : parseTime(asOfText);
      let params: JsonValue | undefined;
      if (request.query.params !== undefined) {
        if (request.query.transform === undefined) throw new HttpProblem(400, 'INPUT_INVALID', 'params is given without transform: params are the transform’s');
        try {
          params = JSON.parse(request.query.params) as JsonValue;
        } catch (err) {
          throw new HttpProblem(400, 'INPUT_INVALID', `params is not JSON: ${err instanceof Error ? err.message : String(err)}`, { hint: 'URL-encode a JSON value, e.g. params=%7B%22currency%22%3A%22EUR%22%7D.' });
        }
      }
      if (allow(request, 'read', objectId) === undefined) throw objectNotFound(objectId);
      request.provenant.detail = { objectId, asOf: new Date(asOfMs).toISOString() };
      const heapMb = usedHeapMb();
      if (heapMb > recompute.maxHeapMb) {
        throw new HttpProblem(503, 'BUDGET_EXCEEDED', `the server is using ${Math.round(heapMb)} MiB of memory, over its limit of ${recompute.maxHeapMb} MiB; no read was started`, {
          hint: 'Retry in a moment.',
          headers: { 'retry-after': '2' },
        });
      }
      if (request.query.transform === undefined && asOfMs <= Date.now()) {
        const kept = await keptReads.read(objectId, asOfMs);
        if (kept !== undefined) {
          request.provenant.detail = { objectId, asOf: new Date(asOfMs).toISOString(), versionId: kept.versionId, obtained: 'read', executionsRun: 0 };
          const etag = `"${kept.contentHash}"`;
          reply
            .header('etag', etag)
            .header('provenant-obtained', 'read')
            .header('provenant-executions-run', '0')
            .header('provenant-cache-hits', '0')
            .header('provenant-version-id', kept.versionId)
            .header('provenant-valid-from', kept.validFrom)
            .header('cache-control', asOfText === undefined ? 'private, no-cache' : 'private, max-age=31536000, immutable');
          if (request.headers['if-none-match'] === etag) return reply.code(304).send();
          return reply.type(kept.contentType).send(Buffer.from(kept.bytes.buffer, kept.bytes.byteOffset, kept.bytes.byteLength));
        }
      }
      // What must run code runs in a worker thread, under the request's time and memory budget.
      let result: Awaited<ReturnType<typeof recomputePool.run>>;
      try {
        result = await recomputePool.run({
          objectId,
          asOfMs,
          timeoutMs: recompute.timeoutMs,
          maxExecutions: recompute.maxExecutions,
          maxBytes: recompute.maxBytes,
          ...(request.query.transform === undefined ? {} : { transform: request.query.transform, params: params ?? {}, context: requestContext(request) }),
        });
      } catch (err) {
        if (err instanceof ProvenantError) {
          if (err.code === 'NOT_FOUND' && err.context.reason !== 'before-first-version' && err.context.transform === undefined) throw objectNotFound(objectId);
          if (err.code === 'BUDGET_EXCEEDED') metrics.recomputations.inc({ outcome: 'budget-exceeded' });
          if (err.code === 'RECOMPUTE_DIVERGED') metrics.recomputations.inc({ outcome: 'diverged' });
        }
        throw err;
      }
      if (result.obtained === 'recomputed' || result.transformExecutionId !== undefined) metrics.recomputations.inc({ outcome: 'ok' });
      metrics.recomputedExecutions.inc(result.executionsRun);
      metrics.cacheHits.inc(result.cacheHits);
      request.provenant.detail = {
        objectId,
        asOf: new Date(asOfMs).toISOString(),
        versionId: result.versionId,
        obtained: result.obtained,
        executionsRun: result.executionsRun,
        ...(result.transformExecutionId === undefined ? {} : { transform: request.query.transform ?? null, transformExecutionId: result.transformExecutionId }),
      };
      const etag = `"${result.contentHash}"`;
      reply
        .header('etag', etag)
        .header('provenant-obtained', result.obtained)
        .header('provenant-executions-run', String(result.executionsRun))
        .header('provenant-cache-hits', String(result.cacheHits))
        .header('provenant-version-id', result.versionId)
        .header('provenant-valid-from', result.validFrom)
        .header('cache-control', asOfText === undefined ? 'private, no-cache' : 'private, max-age=31536000, immutable');
      if (result.transformExecutionId !== undefined) reply.header('provenant-transform-execution', result.transformExecutionId);
      if (request.headers['if-none-match'] === etag) return reply.code(304).send();
      return reply.type(result.contentType).send(Buffer.from(result.bytes.buffer, result.bytes.byteOffset, result.bytes.byteLength));
    },
  );

  app.get<{ Params: { objectId: string }; Querystring: { as_of?: string } }>(
    '/objects/:objectId/versions',
    {
      schema: {
        summary: "An object's versions, oldest first (those made up to `as_of`)",
        description: 'The object id is one URL-encoded path segment (`/objects/customers%2F42/versions`). Needs `read:<pattern>`.',
        params: { type: 'object', required: ['objectId'], properties: { objectId: { type: 'string', minLength: 1, maxLength: 2048 } } },
        querystring: { type: 'object', additionalProperties: false, properties: { as_of: { type: 'string', maxLength: 64, description: TIME_DOC } } },
        response: { 200: { type: 'object', additionalProperties: true }, ...errors },
      },
    },
    async (request) => {
      const objectId = validObjectId(request.params.objectId);
      const asOf = request.query.as_of === undefined ? undefined : parseTime(request.query.as_of);
      if (allow(request, 'read', objectId) === undefined) throw objectNotFound(objectId);
      const all = await listObjectVersions(store, objectId);
      if (all.length === 0) throw objectNotFound(objectId);
      request.provenant.detail = { objectId };
      const versions = asOf === undefined ? all : await listObjectVersions(store, objectId, { asOf });
      return { objectId, versions };
    },
  );

  app.get<{ Params: { ref: string }; Querystring: { direction?: 'up' | 'down'; depth?: number; as_of?: string } }>(
    '/lineage/:ref',
    {
      schema: {
        summary: 'Ancestors (up) or descendants (down) of an object, a version, a value or an execution, as a graph',
        description:
          'The reference is one URL-encoded path segment: an object id (`customers%2F42`, its version current now or at `as_of`), `objectId@versionId`, a version id, a value hash (`sha256:…`) or an execution id. Versions of objects the caller holds no `lineage:<pattern>` grant for are cut, with what is reached only through them; `cut` counts them.',
        params: { type: 'object', required: ['ref'], properties: { ref: { type: 'string', minLength: 1, maxLength: 2048 } } },
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            direction: { type: 'string', enum: ['up', 'down'], default: 'up' },
            depth: { type: 'integer', minimum: 0, maximum: 10_000 },
            as_of: { type: 'string', maxLength: 64, description: TIME_DOC },
          },
        },
        response: { 200: { type: 'object', additionalProperties: true }, ...errors },
      },
    },
    async (request) => {
      const ref = request.params.ref;
      const asOf = request.query.as_of === undefined ? undefined : parseTime(request.query.as_of);
      const hidden = await checkLineageRoot(request, parts, ref);
      if (hidden !== undefined) throw hidden;
      let graph: LineageGraph;
      try {
        graph = await lineage(store, ref, {
          direction: request.query.direction ?? 'up',
          ...(request.query.depth === undefined ? {} : { depth: request.query.depth }),
          ...(asOf === undefined ? {} : { asOf }),
          limit: 10_000,
        });
      } catch (err) {
        if (err instanceof ProvenantError && err.code === 'NOT_FOUND') throw lineageNotFound(ref);
        throw err;
      }
      const cut = cutLineage(request, graph);
      request.provenant.detail = { ref, nodes: cut.nodes.length, cut: cut.cut };
      return cut;
    },
  );
}

export function validObjectId(id: string): string {
  try {
    return validateObjectId(id);
  } catch (err) {
    if (err instanceof ProvenantError) throw new HttpProblem(400, 'INPUT_INVALID', err.message, { ...(err.hint === undefined ? {} : { hint: err.hint }), context: { ...err.context } });
    throw err;
  }
}

/** The one answer for a lineage reference that names nothing, or nothing the caller may see. */
function lineageNotFound(ref: string): HttpProblem {
  return new HttpProblem(404, 'NOT_FOUND', `nothing to trace for ${ref}`, { hint: 'Give an object id, objectId@versionId, a version id, a value hash or an execution id.', context: { ref } });
}

/**
 * Whether the caller may start a lineage walk at `ref`; the 404 to answer otherwise (the same as
 * for a reference that names nothing). Malformed references are left to the library (400).
 */
async function checkLineageRoot(request: FastifyRequest, parts: ServerParts, ref: string): Promise<HttpProblem | undefined> {
  const { store } = parts;
  const mayTrace = (objectId: string): boolean => allow(request, 'lineage', objectId) !== undefined;
  if (ref.startsWith('sha256:')) {
    const versions = /^sha256:[0-9a-f]{64}$/.test(ref) ? await store.findObjectVersions({ contentHash: ref as `sha256:${string}` }) : [];
    return versions.length > 0 && !versions.some((v) => mayTrace(v.objectId)) ? lineageNotFound(ref) : undefined;
  }
  if (isUuid(ref)) {
    const version = await store.getObjectVersion(ref);
    if (version !== undefined) return mayTrace(version.objectId) ? undefined : lineageNotFound(ref);
    const e = await store.getExecution(ref);
    if (e === undefined) return undefined;
    if (mayReadExecution(request, e)) return undefined;
    const made = await store.findObjectVersions({ executionId: ref });
    return made.some((v) => mayTrace(v.objectId)) ? undefined : lineageNotFound(ref);
  }
  const at = ref.lastIndexOf('@');
  const objectId = at >= 0 ? ref.slice(0, at) : ref;
  try {
    validateObjectId(objectId);
  } catch {
    return undefined; // malformed: the library answers 400
  }
  return mayTrace(objectId) ? undefined : lineageNotFound(ref);
}

/** Whether the caller may see an execution: by its stream's grant, or `read:*` for one outside any stream. */
export function mayReadExecution(request: FastifyRequest, execution: ExecutionRecord): boolean {
  if (execution.streamId !== null) return allow(request, 'stream', execution.streamId) !== undefined;
  const auth = request.provenant.auth;
  if (auth?.ok === true && auth.grants.allowsAll('read')) {
    request.provenant.rights.add('read:*');
    return true;
  }
  return false;
}

/** A lineage graph as the caller may see it. */
interface CutGraph extends LineageGraph {
  /** Nodes removed: versions of objects the caller may not trace, and what was reached only through them. */
  readonly cut: number;
}

/**
 * Cut a graph to what the caller may see: version nodes of objects without a `lineage` grant are
 * removed, and so is every node that is connected to the root only through removed ones.
 */
function cutLineage(request: FastifyRequest, graph: LineageGraph): CutGraph {
  const visible = (n: LineageNode): boolean => n.kind !== 'version' || (n.objectId !== undefined && allow(request, 'lineage', n.objectId) !== undefined);
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const neighbours = new Map<string, string[]>();
  for (const e of graph.edges) {
    (neighbours.get(e.from) ?? neighbours.set(e.from, []).get(e.from)!).push(e.to);
    (neighbours.get(e.to) ?? neighbours.set(e.to, []).get(e.to)!).push(e.from);
  }
  const kept = new Set<string>();
  if (visible(graph.root)) {
    const queue = [graph.root.id];
    kept.add(graph.root.id);
    while (queue.length > 0) {
      const id = queue.shift() as string;
      for (const next of neighbours.get(id) ?? []) {
        const node = byId.get(next);
        if (kept.has(next) || node === undefined || !visible(node)) continue;
        kept.add(next);
        queue.push(next);
      }
    }
  }
  const nodes = graph.nodes.filter((n) => kept.has(n.id));
  const edges: LineageEdge[] = graph.edges.filter((e) => kept.has(e.from) && kept.has(e.to));
  const cut = graph.nodes.length - nodes.length;
  return { ...graph, nodes, edges, cut };
}
