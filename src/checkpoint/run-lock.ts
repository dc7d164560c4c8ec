/**
 * One process at a time per checkpointed run. A run being written holds a lock file in the store
 * folder (`locks/<runId>.lock`, holding its process id); resume refuses a run whose lock is held
 * by a live process, and takes over the lock of a dead one. Stores without a local folder (a
 * shared database) rely on the store's own leases instead, and get a no-op lock here.
 */
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProvenantError } from '../errors.js';
import type { Store } from '../store/store.js';

/** A held run lock. */
export interface RunLock {
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Take the lock of a run for this process.
 * @throws ProvenantError STORE_BUSY when another live process holds it
 */
export function acquireRunLock(store: Store, runId: string): RunLock {
  let dir: string;
  try {
    if (!store.capabilities.fileBlobs || !statSync(store.location).isDirectory()) return { release: () => undefined };
    dir = join(store.location, 'locks');
  } catch {
    return { release: () => undefined };
  }
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${runId}.lock`);
  let holder: number | undefined;
  try {
    holder = Number(readFileSync(file, 'utf8').trim());
  } catch {
    holder = undefined;
  }
  if (holder !== undefined && holder !== process.pid && Number.isInteger(holder) && holder > 0 && alive(holder)) {
    throw new ProvenantError('STORE_BUSY', `run ${runId} is being written by process ${holder}`, {
      hint: `Wait for it to finish, or stop that process first; then resume. (If process ${holder} is not a Provenant run, delete ${file}.)`,
      context: { runId, pid: holder },
    });
  }
  writeFileSync(file, String(process.pid));
  let released = false;
  return {
    release: () => {
      if (released) return;
      released = true;
      rmSync(file, { force: true });
    },
  };
}
