/**
 * The library's entry to the HTTP server, loading Fastify and its plugins only when a server is
 * made: importing `provenant` for capture must not pay for the web stack.
 */
import type { Store } from '../store/store.js';
import type { ProvenantServer, ServerOptions } from './server.js';

/**
 * Make the HTTP API over an open store (see `http/server.ts`; the store is not closed by the server).
 * @example
 * const server = await createServer(await openStore('./.provenant'));
 * const url = await server.listen({ port: 7410 });
 */
export async function createServer(store: Store, options: ServerOptions = {}): Promise<ProvenantServer> {
  const { createServer: create } = await import('./server.js');
  return create(store, options);
}
