/**
 * The HTTP API (`provenant serve`): Fastify 5, JSON Schemas on every route that both validate
 * requests and make the OpenAPI document (`/openapi.json`), bearer-token authentication, grants
 * checked on every read path, RFC 9457 problem details for every error, a per-principal rate
 * limit, Prometheus metrics and an access log in the store.
 *
 * Request lifecycle: `onRequest` authenticates (the token is looked up by its hash) and makes the
 * request's context (principal, address, trace id); the rate limit counts per principal (per
 * address without a valid token); `preParsing` refuses requests without valid credentials (401)
 * before a body is read; routes check grants; `onResponse` appends the access log entry (written
 * in batches) and counts metrics. An object the caller may not read is answered exactly as a
 * missing one.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import fastifySwagger from '@fastify/swagger';
import fastifyRateLimit from '@fastify/rate-limit';
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { cachedAuthenticator, type Authentication } from '../auth/tokens.js';
import type { Grant, Right } from '../auth/grants.js';
import { newId, nowUs } from '../ids.js';
import type { JsonValue } from '../hash/canonical.js';
import type { AccessLogEntry, ExecutionContext } from '../store/records.js';
import type { Store } from '../store/store.js';
import { PROVENANT_VERSION } from '../version.js';
import { JobRunner, type JobLimits, type JobView } from './jobs.js';
import { KeptReads } from './kept-reads.js';
import { RecomputePool } from './recompute-pool.js';
import { ServerMetrics } from './metrics.js';
import { HttpProblem, PROBLEM_TYPE, problemOf, type Problem } from './problem.js';
import { registerRoutes } from './routes.js';
import { registerUiRoutes } from './ui-routes.js';

/** Options of {@link createServer}. Every limit has a default suited to one machine. */
export interface ServerOptions {
  /** Largest request body, in bytes. Default 1 MiB. */
  readonly bodyLimit?: number;
  /** Largest request head (request line and headers), in bytes. Default 16 KiB. */
  readonly maxHeaderSize?: number;
  /** Time a client has to send a whole request, in ms. Default 30 s. */
  readonly requestTimeoutMs?: number;
  /** Time a client has to send the request headers, in ms. Default 10 s. */
  readonly headersTimeoutMs?: number;
  /** Idle time before a kept-alive connection is closed, in ms. Default 5 s. */
  readonly keepAliveTimeoutMs?: number;
  /** Requests per principal (per address without a valid token) per window; `false`: no limit. Default 6,000 per minute. */
  readonly rateLimit?: { readonly max: number; readonly windowMs: number } | false;
  /** Time and memory budget of a request's recomputation (as-of reads, on-read transforms). Default 10 s, at most 1,000 executions and 256 MiB of intermediate values; no recomputation starts while the server's heap is over `maxHeapMb` (default 1,024). */
  readonly recompute?: {
    readonly timeoutMs?: number;
    readonly maxExecutions?: number;
    readonly maxBytes?: number;
    readonly maxHeapMb?: number;
    /** Threads that run recomputations and transforms (default 1), each with this heap limit in MiB (default 256), and how many requests may wait for one (default 64). */
    readonly workers?: number;
    readonly workerMemoryMb?: number;
    readonly queue?: number;
  };
  /** Replay and what-if jobs. Default: one at a time, 16 queued, 10 minutes and 512 MiB each. */
  readonly jobs?: Partial<JobLimits>;
  /** Answer `/metrics` without a token. Default true. */
  readonly publicMetrics?: boolean;
  /** Trust `X-Forwarded-For` from these proxies (Fastify's `trustProxy`). Default: none. */
  readonly trustProxy?: boolean | string | string[];
  /** Where worker threads open the store (default `store.location`; give it when that is redacted, e.g. a connection string). */
  readonly storeLocation?: string;
  /** Milliseconds between access log writes. Default 100. */
  readonly accessLogFlushMs?: number;
}

/** What each request carries through its lifecycle. */
export interface RequestState {
  readonly startedNs: bigint;
  readonly traceId: string;
  readonly address: string;
  auth: Authentication | undefined;
  /** Grants used to allow what this request did, as written. */
  readonly rights: Set<string>;
  /** What the access log should say about this request. */
  detail: Record<string, JsonValue>;
}

declare module 'fastify' {
  interface FastifyRequest {
    provenant: RequestState;
  }
  interface FastifyContextConfig {
    /** Answered without credentials. */
    public?: boolean;
  }
}

/** A server made by {@link createServer}. */
export interface ProvenantServer {
  /** The Fastify instance (to `inject` requests, or add routes such as the web UI). */
  readonly app: FastifyInstance;
  readonly metrics: ServerMetrics;
  /** Start listening; resolves with the address (`http://127.0.0.1:7410`). */
  listen(options?: { port?: number; host?: string }): Promise<string>;
  /** Stop listening, stop jobs, write the last access log entries. The store stays open. */
  close(): Promise<void>;
}

/** Everything routes need. */
export interface ServerParts {
  readonly store: Store;
  readonly metrics: ServerMetrics;
  readonly jobs: JobRunner;
  readonly recompute: { readonly timeoutMs: number; readonly maxExecutions: number; readonly maxBytes: number; readonly maxHeapMb: number };
  readonly jobLimits: JobLimits;
  readonly keptReads: KeptReads;
  /** Threads that run what as-of reads must compute (versions not kept, transforms). */
  readonly recomputePool: RecomputePool;
}

const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;

/**
 * Make the HTTP API over an open store (it is not closed by the server).
 * @example
 * const server = await createServer(await openStore('./.provenant'));
 * const url = await server.listen({ port: 7410 });
 */
export async function createServer(store: Store, options: ServerOptions = {}): Promise<ProvenantServer> {
  const metrics = new ServerMetrics();
  const accessLog = new AccessLogWriter(store, options.accessLogFlushMs ?? 100);
  const jobLimits: JobLimits = { concurrency: 1, queue: 16, timeoutMs: 600_000, memoryMb: 512, ...(options.jobs ?? {}) };
  const jobSnapshots = new JobSnapshotWriter(store);
  const jobs = new JobRunner(jobLimits, (view) => metrics.jobs.inc({ kind: view.mode, outcome: view.status }), (view) => jobSnapshots.push(view));
  const app = Fastify({
    logger: false,
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    requestTimeout: options.requestTimeoutMs ?? 30_000,
    // An idle socket is closed after this; longer than a request may take to arrive plus its recomputation.
    connectionTimeout: (options.requestTimeoutMs ?? 30_000) + (options.recompute?.timeoutMs ?? 10_000) + 5_000,
    keepAliveTimeout: options.keepAliveTimeoutMs ?? 5_000,
    trustProxy: options.trustProxy ?? false,
    return503OnClosing: true,
    routerOptions: { maxParamLength: 2048, ignoreTrailingSlash: true },
    http: {
      maxHeaderSize: options.maxHeaderSize ?? 16 * 1024,
      headersTimeout: Math.min(options.headersTimeoutMs ?? 10_000, options.requestTimeoutMs ?? 30_000),
      // How often Node checks connections against those timeouts (its default, 30 s, would let a slow client linger).
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(Math.min(options.headersTimeoutMs ?? 10_000, options.requestTimeoutMs ?? 30_000) / 2))),
    },
    clientErrorHandler: clientError,
    // A URL that cannot be decoded (`/data/%`) never reaches a route: answered here, as a problem.
    frameworkErrors: (err: Error, _request: FastifyRequest, reply: FastifyReply) => {
      void sendProblem(reply, new HttpProblem(400, 'INPUT_INVALID', `the request URL cannot be decoded: ${err.message}`, { hint: 'Percent-encode reserved characters (% as %25).' }).problem);
    },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false } },
  } as FastifyServerOptions) as unknown as FastifyInstance;

  app.decorateRequest('provenant', null as unknown as RequestState);

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Provenant',
        version: PROVENANT_VERSION,
        description:
          'How every piece of data was made: as-of reads, lineage, executions, checkpoints, replays. Every route but /healthz, /openapi.json and /metrics needs `Authorization: Bearer <token>` (`provenant token create`). Errors are RFC 9457 problem details.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  const authenticateToken = cachedAuthenticator(store);
  app.addHook('onRequest', async (request, reply) => {
    const header = request.headers.traceparent;
    const match = typeof header === 'string' ? TRACEPARENT.exec(header.trim().toLowerCase()) : null;
    const traceId = match !== null && !/^0+$/.test(match[1] as string) ? (match[1] as string) : randomUUID().replaceAll('-', ''); // Node keeps a cache of random UUIDs: no syscall per request
    request.provenant = { startedNs: process.hrtime.bigint(), traceId, address: request.ip, auth: undefined, rights: new Set(), detail: {} };
    reply.header('provenant-trace-id', traceId);
    if (request.routeOptions.config.public === true) return;
    const authz = request.headers.authorization;
    const token = typeof authz === 'string' && /^bearer /i.test(authz) ? authz.slice(7).trim() : undefined;
    request.provenant.auth = authz === undefined ? { ok: false, reason: 'missing' } : token === undefined ? { ok: false, reason: 'malformed' } : await authenticateToken(token);
  });

  if (options.rateLimit !== false) {
    const limit = options.rateLimit ?? { max: 6000, windowMs: 60_000 };
    await app.register(fastifyRateLimit, {
      global: true,
      max: limit.max,
      timeWindow: limit.windowMs,
      hook: 'onRequest',
      keyGenerator: (request: FastifyRequest) => {
        const auth = request.provenant?.auth;
        return auth?.ok === true ? `principal:${auth.token.principal}` : `address:${request.ip}`;
      },
      allowList: (request: FastifyRequest) => request.routeOptions.config.public === true,
      errorResponseBuilder: (_request: FastifyRequest, context: { after: string; max: number }) =>
        new HttpProblem(429, 'TOO_MANY_REQUESTS', `more than ${context.max} requests in ${Math.round(limit.windowMs / 1000)} s; retry in ${context.after}`, {
          hint: 'Wait for the number of seconds in Retry-After, then try again.',
          context: { limit: context.max, windowMs: limit.windowMs },
        }),
    });
  }

  // The hooks below run on every request: callback style (no promise per hook and request).
  app.addHook('preParsing', (request, _reply, _payload, done) => {
    const auth = request.provenant.auth;
    if (request.routeOptions.config.public === true || auth === undefined || auth.ok) return done();
    request.provenant.detail = { refused: auth.reason };
    done(unauthorized(auth.reason));
  });

  app.addHook('onResponse', (request, reply, done) => {
    done();
    const state = request.provenant;
    if (state === undefined || state === null) return;
    const route = request.routeOptions.url ?? null;
    const seconds = Number(process.hrtime.bigint() - state.startedNs) / 1e9;
    metrics.requests.inc({ method: request.method, route: route ?? 'unmatched', status: String(reply.statusCode) });
    metrics.duration.observe({ method: request.method, route: route ?? 'unmatched' }, seconds);
    if (request.routeOptions.config.public === true) return;
    const auth = state.auth;
    accessLog.push({
      id: newId(),
      timeUs: nowUs(),
      principal: auth?.ok === true ? auth.token.principal : null,
      tokenId: auth?.ok === true ? auth.token.id : (auth?.ok === false ? (auth.tokenId ?? null) : null),
      address: state.address,
      method: request.method,
      target: request.url.slice(0, 2048),
      route,
      status: reply.statusCode,
      rights: [...state.rights],
      traceId: state.traceId,
      durationUs: Math.round(seconds * 1e6),
      detail: state.detail,
    });
  });

  app.setErrorHandler(async (err, request, reply) => {
    const { problem, headers } = problemOf(err);
    if (problem.status >= 500 && problem.code === 'INTERNAL') process.stderr.write(`provenant serve: ${request.method} ${request.url}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    if (request.provenant !== null && request.provenant !== undefined && request.provenant.detail.refused === undefined && problem.status >= 400) {
      request.provenant.detail = { ...request.provenant.detail, problem: problem.code };
    }
    return sendProblem(reply.headers(headers), problem);
  });

  app.setNotFoundHandler(async (request, reply) => {
    return sendProblem(reply, new HttpProblem(404, 'NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0] ?? ''}`, { hint: 'See /openapi.json for the routes.' }).problem);
  });

  const parts: ServerParts = {
    store,
    metrics,
    jobs,
    recompute: { timeoutMs: 10_000, maxExecutions: 1000, maxBytes: 256 * 1024 * 1024, maxHeapMb: 1024, ...(options.recompute ?? {}) },
    jobLimits,
    keptReads: new KeptReads(store),
    recomputePool: new RecomputePool(options.storeLocation ?? store.location, {
      workers: options.recompute?.workers ?? 1,
      queue: options.recompute?.queue ?? 64,
      timeoutMs: options.recompute?.timeoutMs ?? 10_000,
      memoryMb: options.recompute?.workerMemoryMb ?? 256,
    }),
  };
  registerRoutes(app, parts, { publicMetrics: options.publicMetrics ?? true });
  registerUiRoutes(app, parts);
  await app.ready();

  return {
    app,
    metrics,
    async listen(listenOptions = {}) {
      return app.listen({ port: listenOptions.port ?? 7410, host: listenOptions.host ?? '127.0.0.1' });
    },
    async close() {
      await jobs.close();
      await jobSnapshots.close();
      await app.close();
      await parts.keptReads.close();
      await parts.recomputePool.close();
      await accessLog.close();
    },
  };
}

/** Send a problem details answer. */
export function sendProblem(reply: FastifyReply, problem: Problem): FastifyReply {
  return reply.code(problem.status).type(PROBLEM_TYPE).send(JSON.stringify(problem));
}

function unauthorized(reason: Exclude<Authentication, { ok: true }>['reason']): HttpProblem {
  const detail = {
    missing: 'this route needs a bearer token (Authorization: Bearer <token>)',
    malformed: 'the Authorization header is not a Provenant bearer token',
    unknown: 'the bearer token is not known to this server',
    expired: 'the bearer token has expired',
    revoked: 'the bearer token has been revoked',
  }[reason];
  const challenge = reason === 'missing' ? 'Bearer realm="provenant"' : `Bearer realm="provenant", error="invalid_token", error_description="${detail.replaceAll('"', "'")}"`;
  return new HttpProblem(401, 'UNAUTHORIZED', detail, {
    hint: 'Ask an operator for a token (`provenant token create --principal <you> --grant <right>:<pattern>`) and send it as Authorization: Bearer <token>.',
    context: { reason },
    headers: { 'www-authenticate': challenge },
  });
}

/**
 * The grant that allows `right` on `id` for this request, recorded as a right used; undefined when
 * none does (the route then answers as if the thing did not exist).
 */
export function allow(request: FastifyRequest, right: Right, id: string): Grant | undefined {
  const auth = request.provenant.auth;
  if (auth?.ok !== true) return undefined;
  const grant = auth.grants.covering(right, id);
  if (grant !== undefined) request.provenant.rights.add(grant.text);
  return grant;
}

/** The context of executions a request causes: who, from where, with which rights, which trace. */
export function requestContext(request: FastifyRequest): ExecutionContext {
  const auth = request.provenant.auth;
  return {
    source: 'http',
    ...(auth?.ok === true ? { principal: auth.token.principal } : {}),
    location: request.provenant.address,
    rights: [...request.provenant.rights].sort(),
    traceId: request.provenant.traceId,
  };
}

/** Errors of client connections (header overflow, request timeout, garbage) answered as problems, then the socket closed. */
function clientError(err: Error & { code?: string }, socket: Socket): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  let problem: Problem;
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    problem = new HttpProblem(431, 'HEADERS_TOO_LARGE', 'the request line and headers are larger than this server accepts', { hint: 'Send fewer or shorter headers (the limit is set with `provenant serve --max-header-size`).' }).problem;
  } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'ERR_HTTP_HEADERS_TIMEOUT') {
    problem = new HttpProblem(408, 'REQUEST_TIMEOUT', 'the request was not received in time', { hint: 'Send the whole request promptly.' }).problem;
  } else {
    problem = new HttpProblem(400, 'BAD_REQUEST', `the request is not valid HTTP (${err.code ?? err.message})`).problem;
  }
  const body = JSON.stringify(problem);
  socket.end(`HTTP/1.1 ${problem.status} ${problem.title}\r\nContent-Type: ${PROBLEM_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/** Access log entries written in batches (one transaction every `flushMs`), and the rest at close. */
class AccessLogWriter {
  readonly #store: Store;
  #pending: AccessLogEntry[] = [];
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> = Promise.resolve();
  readonly #flushMs: number;

  constructor(store: Store, flushMs: number) {
    this.#store = store;
    this.#flushMs = flushMs;
  }

  push(entry: AccessLogEntry): void {
    this.#pending.push(entry);
    if (this.#pending.length >= 1000) this.#flush();
    else this.#timer ??= setTimeout(() => this.#flush(), this.#flushMs);
  }

  #flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const entries = this.#pending;
    if (entries.length === 0) return;
    this.#pending = [];
    this.#writing = this.#writing.then(() =>
      this.#store.appendAccessLog(entries).catch((err: unknown) => {
        process.stderr.write(`provenant serve: ${entries.length} access log entries could not be written: ${err instanceof Error ? err.message : String(err)}\n`);
      }),
    );
  }

  async close(): Promise<void> {
    this.#flush();
    await this.#writing;
  }
}

/** Appends replay jobs' snapshots to the store one after another, in the order they were taken. */
class JobSnapshotWriter {
  readonly #store: Store;
  #writing: Promise<void> = Promise.resolve();

  constructor(store: Store) {
    this.#store = store;
  }

  push(view: JobView): void {
    const atUs = nowUs();
    this.#writing = this.#writing.then(() =>
      this.#store.appendReplayJobSnapshot({ jobId: view.id, atUs, view: view as unknown as JsonValue }).catch((err: unknown) => {
        process.stderr.write(`provenant serve: replay job ${view.id} (${view.status}) could not be recorded: ${err instanceof Error ? err.message : String(err)}\n`);
      }),
    );
  }

  close(): Promise<void> {
    return this.#writing;
  }
}
