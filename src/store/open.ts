/** Opening a store by location. */
import { ProvenantError } from '../errors.js';
import { SqliteStore, type SqliteStoreOptions } from './sqlite/sqlite-store.js';
import type { Store } from './store.js';

/** The default store folder, relative to the working directory. */
export const DEFAULT_STORE = './.provenant';

/**
 * Open the store at `location` (a folder: the embedded SQLite store), creating it unless
 * `create: false`.
 * @throws ProvenantError STORE_NOT_FOUND, STORE_TOO_NEW
 */
export async function openStore(location: string = DEFAULT_STORE, options: SqliteStoreOptions = {}): Promise<Store> {
  if (/^postgres(ql)?:\/\//.test(location)) {
    throw new ProvenantError('STORE_NOT_FOUND', `PostgreSQL stores are not available in this version of Provenant (${redact(location)})`, {
      hint: 'Use a folder for the embedded store (the default is ./.provenant).',
      context: { store: redact(location) },
    });
  }
  return SqliteStore.open(location, options);
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}
