/**
 * External services some tests need (a NATS server with JetStream; PostgreSQL later). A test file
 * checks once whether its service answers on its TCP port and wraps its tests in
 * {@link describeWithService}: when the service is down they are skipped, loudly (a console
 * warning that says why and how to start it), except in CI (`CI=true`), where a missing service
 * fails the file instead of hiding its tests.
 */
import { Socket } from 'node:net';
import { describe, it } from 'vitest';

/** A service reached over TCP. */
export interface Service {
  /** For people: `NATS JetStream`. */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** The URL tests should use (`nats://127.0.0.1:4222`). */
  readonly url: string;
  /** How to start it, for the skip warning. */
  readonly howToStart: string;
}

/** Whether something accepts TCP connections at `host:port` within `timeoutMs`. */
export function tcpReachable(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs);
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
    socket.connect(port, host);
  });
}

/** Whether `service` answers. */
export function serviceAvailable(service: Service): Promise<boolean> {
  return tcpReachable(service.host, service.port);
}

/** Whether tests run in CI, where a missing service is a failure rather than a skip. */
export const IN_CI = process.env.CI === 'true';

/**
 * `describe(title, fn)` when `available`; otherwise the suite is skipped with a console warning
 * (outside CI) or replaced by one failing test that says which service is missing (in CI).
 */
export function describeWithService(service: Service, available: boolean, title: string, fn: () => void): void {
  if (available) {
    describe(title, fn);
    return;
  }
  const why = `${service.name} is not reachable at ${service.host}:${service.port}`;
  if (IN_CI) {
    describe(title, () => {
      it(`needs ${service.name}`, () => {
        throw new Error(`${why}; CI must start it before the tests (${service.howToStart})`);
      });
    });
    return;
  }
  console.warn(`\n⚠ SKIPPED "${title}": ${why}. Start it with: ${service.howToStart}\n`);
  describe.skip(title, fn);
}

function serviceFromUrl(name: string, url: string, defaultPort: number, howToStart: (host: string, port: number) => string): Service {
  const parsed = new URL(url);
  const port = parsed.port === '' ? defaultPort : Number(parsed.port);
  return { name, host: parsed.hostname, port, url, howToStart: howToStart(parsed.hostname, port) };
}

/** The NATS server (with JetStream) tests use: `PROVENANT_TEST_NATS`, default `nats://127.0.0.1:4222`. */
export const NATS: Service = serviceFromUrl(
  'NATS JetStream',
  process.env.PROVENANT_TEST_NATS ?? 'nats://127.0.0.1:4222',
  4222,
  (host, port) =>
    `start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a ${host} -p ${port} -js -sd /var/lib/nats-server -l /var/log/nats-server.log (or: nats-server -js -a ${host} -p ${port})`,
);

/** Whether the tests' NATS server answers. */
export function natsAvailable(): Promise<boolean> {
  return serviceAvailable(NATS);
}

/** The PostgreSQL server tests use: `PROVENANT_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/test`. */
export const POSTGRES: Service = serviceFromUrl(
  'PostgreSQL',
  process.env.PROVENANT_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test',
  5432,
  (host, port) => `pg_ctlcluster 15 main start (a server on ${host}:${port} with a database "test" the user may create schemas in)`,
);

/** Whether the tests' PostgreSQL server answers. */
export function postgresAvailable(): Promise<boolean> {
  return serviceAvailable(POSTGRES);
}
