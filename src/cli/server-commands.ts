/** `provenant serve`, `provenant token create|list|revoke`, `provenant audit`. */
import type { Command } from 'commander';
import { ProvenantError } from '../errors.js';
import { createToken, parseTokenDuration, revokeToken } from '../auth/tokens.js';
import { SERVER_CACHE_MIB } from '../http/memory.js';
import { openStore } from '../store/open.js';
import type { TokenInfo } from '../store/records.js';
import { print, printList, storeOption, withStore, type StoreOpts } from './common.js';
import { isoUs, table } from './format.js';

function intOption(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v.replace(/_/g, ''));
    if (!Number.isInteger(n) || n < min) throw new ProvenantError('INPUT_INVALID', `${name} must be a whole number of at least ${min}, not "${v}"`, { context: { value: v } });
    return n;
  };
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** A time: ISO 8601, or a duration back from now (`1h`, `30d`). */
function parseSince(v: string): number {
  if (/^\d+(\.\d+)?\s*[smhdw]$/.test(v.trim())) return (Date.now() - parseTokenDuration(v)) * 1000;
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) {
    throw new ProvenantError('INPUT_INVALID', `--since "${v}" is neither an ISO 8601 time nor a duration`, { hint: 'Write e.g. 2026-11-29T10:00:00Z or 24h.', context: { value: v } });
  }
  return ms * 1000;
}

function tokenView(t: TokenInfo, nowMs = Date.now()): Record<string, unknown> {
  const state = t.revokedUs !== null ? 'revoked' : t.expiresUs !== null && t.expiresUs <= nowMs * 1000 ? 'expired' : 'active';
  return {
    id: t.id,
    principal: t.principal,
    grants: t.grants,
    created: isoUs(t.createdUs),
    expires: t.expiresUs === null ? null : isoUs(t.expiresUs),
    revoked: t.revokedUs === null ? null : isoUs(t.revokedUs),
    state,
    label: t.label,
  };
}

/** Add the server's commands to the program. */
export function addServerCommands(program: Command): void {
  program
    .command('serve')
    .description('serve the HTTP API (as-of reads, lineage, executions, checkpoints, replay jobs) with bearer-token access control')
    .addOption(storeOption())
    .option('--port <n>', 'TCP port (default 7410; 0 picks a free one)', intOption('--port', 0))
    .option('--host <address>', 'address to listen on (default 127.0.0.1)')
    .option('--body-limit <bytes>', 'largest request body (default 1048576)', intOption('--body-limit', 1))
    .option('--max-header-size <bytes>', 'largest request head (default 16384)', intOption('--max-header-size', 1024))
    .option('--request-timeout <ms>', 'time a client has to send a request (default 30000)', intOption('--request-timeout', 1))
    .option('--rate-limit <n>', 'requests per principal per minute; 0 for no limit (default 6000)', intOption('--rate-limit', 0))
    .option('--recompute-timeout <ms>', 'time budget of one request\'s recomputation (default 10000)', intOption('--recompute-timeout', 1))
    .option('--recompute-max-executions <n>', 'executions one request may recompute (default 1000)', intOption('--recompute-max-executions', 1))
    .option('--recompute-workers <n>', 'threads running recomputations and transforms (default 1)', intOption('--recompute-workers', 1))
    .option('--recompute-memory <MiB>', 'heap limit of each of those threads (default 256)', intOption('--recompute-memory', 16))
    .option('--job-timeout <ms>', 'time budget of a replay or what-if job (default 600000)', intOption('--job-timeout', 1))
    .option('--job-memory <MiB>', 'heap budget of a replay or what-if job (default 512)', intOption('--job-memory', 16))
    .option('--jobs <n>', 'replay jobs running at once (default 1)', intOption('--jobs', 1))
    .option('--json', 'print the address as JSON once listening')
    .action(
      async (
        opts: StoreOpts & {
          port?: number;
          host?: string;
          bodyLimit?: number;
          maxHeaderSize?: number;
          requestTimeout?: number;
          rateLimit?: number;
          recomputeTimeout?: number;
          recomputeMaxExecutions?: number;
          recomputeWorkers?: number;
          recomputeMemory?: number;
          jobTimeout?: number;
          jobMemory?: number;
          jobs?: number;
          json?: boolean;
        },
      ) => {
        // Loaded here, not at the top: Fastify and its plugins would slow every other command's start.
        const { createServer } = await import('../http/server.js');
        const store = await openStore(opts.store, { create: false, cacheMiB: SERVER_CACHE_MIB });
        const server = await createServer(store, {
          ...(opts.bodyLimit === undefined ? {} : { bodyLimit: opts.bodyLimit }),
          ...(opts.maxHeaderSize === undefined ? {} : { maxHeaderSize: opts.maxHeaderSize }),
          ...(opts.requestTimeout === undefined ? {} : { requestTimeoutMs: opts.requestTimeout }),
          ...(opts.rateLimit === undefined ? {} : { rateLimit: opts.rateLimit === 0 ? false : { max: opts.rateLimit, windowMs: 60_000 } }),
          recompute: {
            ...(opts.recomputeTimeout === undefined ? {} : { timeoutMs: opts.recomputeTimeout }),
            ...(opts.recomputeMaxExecutions === undefined ? {} : { maxExecutions: opts.recomputeMaxExecutions }),
            ...(opts.recomputeWorkers === undefined ? {} : { workers: opts.recomputeWorkers }),
            ...(opts.recomputeMemory === undefined ? {} : { workerMemoryMb: opts.recomputeMemory }),
          },
          jobs: {
            ...(opts.jobTimeout === undefined ? {} : { timeoutMs: opts.jobTimeout }),
            ...(opts.jobMemory === undefined ? {} : { memoryMb: opts.jobMemory }),
            ...(opts.jobs === undefined ? {} : { concurrency: opts.jobs }),
          },
        });
        const url = await server.listen({ port: opts.port ?? 7410, host: opts.host ?? '127.0.0.1' });
        print(opts.json === true, { url, store: store.location }, () => `Provenant serving ${store.location} at ${url} (OpenAPI: ${url}/openapi.json). Ctrl-C stops.`);
        await new Promise<void>((resolve) => {
          const stop = (): void => resolve();
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
        await server.close();
        await store.close();
      },
    );

  const token = program.command('token').description('bearer tokens of the HTTP API: only their hashes are stored');
  token
    .command('create')
    .description("create a token for a principal with grants '<right>:<pattern>' (rights: read, lineage, stream, replay, export, steps); printed once")
    .addOption(storeOption())
    .requiredOption('--principal <name>', 'who the token speaks for')
    .option('--grant <right:pattern>', "a grant, e.g. 'read:customers/*' (repeatable)", collect, [])
    .option('--expires <duration>', 'expire after e.g. 12h, 30d, 2w (default: never)')
    .option('--label <text>', 'a note for people')
    .option('--json', 'machine-readable output')
    .action(async (opts: StoreOpts & { principal: string; grant: string[]; expires?: string; label?: string; json?: boolean }) => {
      const expiresAtMs = opts.expires === undefined ? undefined : Date.now() + parseTokenDuration(opts.expires);
      await withStore(opts, false, async (store) => {
        const created = await createToken(store, {
          principal: opts.principal,
          grants: opts.grant,
          ...(expiresAtMs === undefined ? {} : { expiresAtMs }),
          ...(opts.label === undefined ? {} : { label: opts.label }),
        });
        print(opts.json === true, { token: created.token, ...tokenView(created.info) }, () =>
          [
            `Token ${created.info.id} for ${created.info.principal} (${created.info.grants.join(', ')})${created.info.expiresUs === null ? '' : `, expires ${isoUs(created.info.expiresUs)}`}:`,
            '',
            `  ${created.token}`,
            '',
            'It is shown only now (the store keeps its hash). Send it as: Authorization: Bearer <token>',
          ].join('\n'),
        );
      });
    });
  token
    .command('list')
    .description('tokens: id, principal, grants, created, expires, state (never the secrets)')
    .addOption(storeOption())
    .option('--json', 'machine-readable output')
    .action(async (opts: StoreOpts & { json?: boolean }) => {
      await withStore(opts, false, async (store) => {
        const tokens = (await store.listTokens()).map((t) => tokenView(t));
        printList(opts.json === true, tokens, 'No tokens yet; create one with `provenant token create --principal <name> --grant <right:pattern>`.', (list) =>
          table(
            ['ID', 'PRINCIPAL', 'GRANTS', 'CREATED', 'EXPIRES', 'STATE', 'LABEL'],
            list.map((t) => [String(t.id), String(t.principal), (t.grants as string[]).join(' '), String(t.created), String(t.expires ?? 'never'), String(t.state), String(t.label ?? '')]),
          ),
        );
      });
    });
  token
    .command('revoke')
    .description('revoke a token (by id or unique prefix): it stops working at once')
    .argument('<id>', 'token id or a unique prefix (8 characters or more)')
    .addOption(storeOption())
    .option('--json', 'machine-readable output')
    .action(async (id: string, opts: StoreOpts & { json?: boolean }) => {
      await withStore(opts, false, async (store) => {
        const t = await revokeToken(store, id);
        print(opts.json === true, tokenView(t), () => `Revoked token ${t.id} of ${t.principal} at ${isoUs(t.revokedUs ?? 0)}`);
      });
    });

  program
    .command('audit')
    .description('the access log of the HTTP API: who asked what, from where, with which rights, and the answer')
    .addOption(storeOption())
    .option('--principal <name>', 'only this principal\'s requests')
    .option('--since <time>', 'only requests at or after this time: ISO 8601, or a duration back from now (24h, 7d)')
    .option('--limit <n>', 'at most n entries (default 1000)', intOption('--limit', 1))
    .option('--json', 'machine-readable output')
    .action(async (opts: StoreOpts & { principal?: string; since?: string; limit?: number; json?: boolean }) => {
      const sinceUs = opts.since === undefined ? undefined : parseSince(opts.since);
      await withStore(opts, false, async (store) => {
        const entries = await store.listAccessLog({
          ...(opts.principal === undefined ? {} : { principal: opts.principal }),
          ...(sinceUs === undefined ? {} : { sinceUs }),
          limit: opts.limit ?? 1000,
        });
        const rows = entries.map((e) => ({ ...e, time: isoUs(e.timeUs) }));
        printList(opts.json === true, rows, 'No requests recorded.', (list) =>
          table(
            ['TIME', 'PRINCIPAL', 'ADDRESS', 'REQUEST', 'STATUS', 'RIGHTS USED', 'TRACE'],
            list.map((e) => [e.time, e.principal ?? '-', e.address, `${e.method} ${e.target.length > 80 ? `${e.target.slice(0, 79)}…` : e.target}`, String(e.status), e.rights.join(' ') || '-', e.traceId]),
          ),
        );
      });
    });
}
