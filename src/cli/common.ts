/** What every `provenant` command shares: the --store option, opening the store, printing results. */
import { Option } from 'commander';
import { DEFAULT_STORE, openStore } from '../store/open.js';
import type { Store } from '../store/store.js';

/** Options of every command that uses a store. */
export interface StoreOpts {
  store: string;
}

/** `--store <dir|url>`: default `./.provenant`, or PROVENANT_STORE. */
export const storeOption = (): Option =>
  new Option('--store <dir|url>', 'store: a folder (embedded SQLite) or postgres://user@host:5432/db[?schema=name]').default(process.env.PROVENANT_STORE ?? DEFAULT_STORE).env('PROVENANT_STORE');

/** Open the store, run `fn`, close the store. */
export async function withStore<T>(opts: StoreOpts, create: boolean, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore(opts.store, { create });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** Print a result: JSON for scripts, or its human rendering. */
export function print(json: boolean, value: unknown, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
}

/** Print a list: as JSON, or `empty` when there is nothing, or the human rendering. */
export function printList<T>(json: boolean, list: readonly T[], empty: string, human: (items: readonly T[]) => string): void {
  print(json, list, () => (list.length === 0 ? empty : human(list)));
}

/** A repeatable commander option's parser: each value appended, in order. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
