/**
 * The one place where errors become HTTP answers: RFC 9457 problem details
 * (`application/problem+json`) with a status, a title, a detail a person can act on, the
 * Provenant error code, a hint and the context (ids, paths). Every error a route, hook, the
 * framework or a client connection raises goes through {@link problemOf}.
 */
import { ProvenantError, type ErrorCode } from '../errors.js';

/** Media type of problem details. */
export const PROBLEM_TYPE = 'application/problem+json';

/** An RFC 9457 problem details object as Provenant writes it. */
export interface Problem {
  /** `https://provenant.dev/problems/<kind>`: a stable identifier of the kind of problem. */
  readonly type: string;
  readonly title: string;
  readonly status: number;
  /** What happened, for a person, with the id or value concerned. */
  readonly detail: string;
  /** The Provenant error code (`NOT_FOUND`, `AS_OF_IN_FUTURE`…) or an HTTP-level one (`BODY_TOO_LARGE`…). */
  readonly code: string;
  /** What to do about it, when there is something to do. */
  readonly hint?: string;
  /** Ids, paths, limits. */
  readonly context?: Readonly<Record<string, unknown>>;
}

/** An error that is already an HTTP answer (with extra headers to send). */
export class HttpProblem extends Error {
  readonly problem: Problem;
  readonly headers: Readonly<Record<string, string>>;
  constructor(status: number, code: string, detail: string, options: { hint?: string; context?: Record<string, unknown>; headers?: Record<string, string> } = {}) {
    super(detail);
    this.name = 'HttpProblem';
    this.problem = {
      type: typeUri(code),
      title: titleOf(status),
      status,
      detail,
      code,
      ...(options.hint === undefined ? {} : { hint: options.hint }),
      ...(options.context === undefined ? {} : { context: options.context }),
    };
    this.headers = Object.freeze({ ...(options.headers ?? {}) });
  }
}

/** The HTTP status of each Provenant error code. The switch is exhaustive: a new code must be placed here. */
export function statusOf(code: ErrorCode): number {
  switch (code) {
    case 'INPUT_INVALID':
    case 'UNHASHABLE_VALUE':
    case 'PIPELINE_INVALID':
    case 'CHECKPOINT_INVALID':
      return 400;
    case 'UNAUTHORIZED':
      return 401;
    case 'NOT_FOUND':
    case 'STEP_NOT_FOUND':
      return 404;
    case 'RUN_CLOSED':
    case 'APPEND_ONLY':
      return 409;
    case 'AS_OF_IN_FUTURE':
    case 'STEP_FAILED':
    case 'STEP_BUILD_FAILED':
      return 422;
    case 'BLOB_CORRUPT':
    case 'BLOB_MISSING':
    case 'ARTIFACT_MISSING':
    case 'ARTIFACT_CORRUPT':
    case 'DETERMINISM_VIOLATION':
    case 'RECOMPUTE_DIVERGED':
    case 'TAMPERED':
      return 500;
    case 'BUDGET_EXCEEDED':
    case 'STORE_BUSY':
    case 'STORE_NOT_FOUND':
    case 'STORE_TOO_NEW':
    case 'SOURCE_UNAVAILABLE':
      return 503;
  }
}

const TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Content Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

function titleOf(status: number): string {
  return TITLES[status] ?? (status >= 500 ? 'Server Error' : 'Client Error');
}

function typeUri(code: string): string {
  return `https://provenant.dev/problems/${code.toLowerCase().replaceAll('_', '-')}`;
}

/** A problem for a ProvenantError. */
export function problemFromError(err: ProvenantError): Problem {
  const status = statusOf(err.code);
  const context = Object.keys(err.context).length === 0 ? undefined : err.context;
  return {
    type: typeUri(err.code),
    title: titleOf(status),
    status,
    detail: err.message,
    code: err.code,
    ...(err.hint === undefined ? {} : { hint: err.hint }),
    ...(context === undefined ? {} : { context }),
  };
}

interface FrameworkError {
  code?: string;
  statusCode?: number;
  message?: string;
  validation?: readonly { instancePath?: string; message?: string; params?: Record<string, unknown> }[];
  validationContext?: string;
}

/**
 * The problem for anything thrown while handling a request: Provenant errors by their code,
 * framework errors (validation, body limits, content types) by their status, anything else as a
 * 500 that names no internals.
 */
export function problemOf(err: unknown): { problem: Problem; headers: Readonly<Record<string, string>> } {
  if (err instanceof HttpProblem) return { problem: err.problem, headers: err.headers };
  if (err instanceof ProvenantError) {
    const problem = problemFromError(err);
    const headers: Record<string, string> = problem.status === 503 ? { 'retry-after': '1' } : {};
    return { problem, headers };
  }
  const e = (typeof err === 'object' && err !== null ? err : {}) as FrameworkError;
  if (e.validation !== undefined) {
    const where = e.validationContext ?? 'request';
    const first = e.validation[0];
    const path = first?.instancePath !== undefined && first.instancePath !== '' ? `${where}${first.instancePath.replaceAll('/', '.')}` : where;
    const detail = `${path} ${first?.message ?? 'is invalid'}${first?.params?.additionalProperty === undefined ? '' : ` (${String(first.params.additionalProperty)})`}`;
    return {
      problem: new HttpProblem(400, 'INPUT_INVALID', detail, { hint: 'See /openapi.json for what this route accepts.', context: { in: where, errors: e.validation.map((v) => `${v.instancePath ?? ''} ${v.message ?? ''}`.trim()) } }).problem,
      headers: {},
    };
  }
  const status = typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 600 ? e.statusCode : 500;
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { problem: new HttpProblem(413, 'BODY_TOO_LARGE', 'the request body is larger than this server accepts', { hint: 'Send a smaller body; the limit is set with `provenant serve --body-limit`.' }).problem, headers: {} };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { problem: new HttpProblem(415, 'UNSUPPORTED_MEDIA_TYPE', e.message ?? 'unsupported content type', { hint: 'Send application/json.' }).problem, headers: {} };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { problem: new HttpProblem(400, 'INPUT_INVALID', `the body is not valid JSON: ${e.message ?? ''}`, {}).problem, headers: {} };
    default:
      break;
  }
  if (status === 429) {
    return {
      problem: new HttpProblem(429, 'TOO_MANY_REQUESTS', e.message ?? 'too many requests', { hint: 'Wait for the number of seconds in Retry-After, then try again.' }).problem,
      headers: {},
    };
  }
  if (status < 500) {
    return { problem: new HttpProblem(status, e.code ?? 'BAD_REQUEST', e.message ?? titleOf(status)).problem, headers: {} };
  }
  return {
    problem: new HttpProblem(500, 'INTERNAL', 'the server failed to handle this request (a bug in Provenant)', { hint: 'Report it with the request and the Provenant-Trace-Id header of the answer.' }).problem,
    headers: {},
  };
}
