/**
 * The execution context (who asked, from where, with which rights, trace id) travels with async
 * calls through AsyncLocalStorage: set it once around a request or job, and every execution
 * recorded inside — however deep in awaits — carries it.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { ExecutionContext } from '../store/records.js';

const storage = new AsyncLocalStorage<ExecutionContext>();

/**
 * Run `fn` with `context` merged over the current one; executions recorded inside carry it.
 * @example
 * await withContext({ principal: 'alice', source: 'http', traceId }, () => run.call(step, input));
 */
export function withContext<T>(context: ExecutionContext, fn: () => T): T {
  const outer = storage.getStore();
  return storage.run(outer === undefined ? Object.freeze({ ...context }) : Object.freeze({ ...outer, ...context }), fn);
}

/** The context set by the innermost {@link withContext}, if any. */
export function currentContext(): ExecutionContext | undefined {
  return storage.getStore();
}
