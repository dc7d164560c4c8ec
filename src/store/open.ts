/** Opening a store by location: a folder (embedded SQLite) or a `postgres://` URL (PostgreSQL). */
import { SqliteStore, sqliteSchemaVersion, type SqliteStoreOptions } from './sqlite/sqlite-store.js';
import { SCHEMA_VERSION } from './sqlite/migrations.js';
import type { Store } from './store.js';

/** Whether a store location names a PostgreSQL database (`postgres://` or `postgresql://`). */
const isPostgresLocation = (location: string): boolean => /^postgres(ql)?:\/\//.test(location);

/** The default store folder, relative to the working directory. */
export const DEFAULT_STORE = './.provenant';

/** Options of {@link openStore}; backend-specific ones are ignored by the other backend. */
export interface OpenStoreOptions extends SqliteStoreOptions {
  /** PostgreSQL: connections in the pool. Default: 4. */
  readonly poolSize?: number;
}

/**
 * Open the store at `location`, creating it unless `create: false`: a folder is the embedded
 * SQLite store; `postgres://user@host:5432/db[?schema=name]` is a PostgreSQL store (its tables in
 * that schema, default `public`).
 * @throws ProvenantError STORE_NOT_FOUND, STORE_TOO_NEW, STORE_BUSY (PostgreSQL unreachable)
 */
export async function openStore(location: string = DEFAULT_STORE, options: OpenStoreOptions = {}): Promise<Store> {
  if (isPostgresLocation(location)) {
    // Loaded on demand: the embedded store does not load the PostgreSQL client.
    const { PostgresStore } = await import('./postgres/postgres-store.js');
    return PostgresStore.open(location, {
      ...(options.create === undefined ? {} : { create: options.create }),
      ...(options.poolSize === undefined ? {} : { poolSize: options.poolSize }),
    });
  }
  return SqliteStore.open(location, options);
}

/** What {@link migrateStore} did. */
export interface MigrationReport {
  readonly store: string;
  readonly backend: 'sqlite' | 'postgres';
  /** Schema version before (0: the store did not exist). */
  readonly from: number;
  /** Schema version after: the newest this Provenant knows. */
  readonly to: number;
}

/**
 * Bring the store at `location` to the newest schema this Provenant knows (creating it when
 * absent), and say from which version. Opening a store migrates it too; this does it explicitly.
 * @throws ProvenantError STORE_TOO_NEW
 */
export async function migrateStore(location: string = DEFAULT_STORE): Promise<MigrationReport> {
  if (isPostgresLocation(location)) {
    const { PostgresStore } = await import('./postgres/postgres-store.js');
    const { from, to } = await PostgresStore.migrate(location);
    return { store: location.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@'), backend: 'postgres', from, to };
  }
  const from = sqliteSchemaVersion(location);
  const store = SqliteStore.open(location);
  await store.close();
  return { store: store.location, backend: 'sqlite', from, to: SCHEMA_VERSION };
}
