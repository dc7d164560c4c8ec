/**
 * Commands for growing past one process: `provenant migrate` (bring a store's schema up to date),
 * `provenant copy` (move a whole store between backends), `provenant worker` (one of several
 * processes sharing a JetStream stream and queued jobs through a PostgreSQL store) and
 * `provenant jobs` (queue replay jobs for the workers, and follow them).
 */
import type { Command } from 'commander';
import { ProvenantError } from '../errors.js';
import { copyStore, type CopyReport } from '../store/copy.js';
import { DEFAULT_STORE, migrateStore, openStore } from '../store/open.js';
import { count } from './format.js';
import { print, printList, storeOption, type StoreOpts } from './common.js';
import { Progress } from './progress.js';

/** Add `migrate`, `copy`, `worker` and `jobs` to the program. */
export function addScaleCommands(program: Command): void {
  program
    .command('migrate')
    .description('bring a store (folder or postgres:// URL) to the newest schema, creating it when absent')
    .addOption(storeOption())
    .option('--json', 'machine-readable output')
    .action(async (opts: StoreOpts & { json?: boolean }) => {
      const r = await migrateStore(opts.store);
      print(opts.json === true, r, () =>
        r.from === r.to ? `${r.store} (${r.backend}) is up to date at schema version ${r.to}` : `${r.store} (${r.backend}): schema version ${r.from} → ${r.to}`,
      );
    });

  program
    .command('copy')
    .description('copy a whole store to another (either backend), keeping ids, times and record hashes; verified at the end; safe to run again')
    .requiredOption('--from <store>', 'the store to copy (a folder or postgres:// URL)')
    .requiredOption('--to <store>', 'the store to copy into (created when absent)')
    .option('--quiet', 'no progress output')
    .option('--json', 'machine-readable report')
    .action(async (opts: { from: string; to: string; quiet?: boolean; json?: boolean }) => {
      if (opts.from === opts.to) {
        throw new ProvenantError('INPUT_INVALID', '--from and --to name the same store', { hint: 'Give two different stores.', context: { store: opts.from } });
      }
      const from = await openStore(opts.from ?? DEFAULT_STORE, { create: false });
      try {
        const to = await openStore(opts.to);
        try {
          const progress = new Progress('copy', opts.quiet === true || opts.json === true, 'items');
          const report = await copyStore(from, to, { onProgress: (phase, done) => progress.update(done, phase) });
          progress.done();
          print(opts.json === true, report, () => copyText(report));
        } finally {
          await to.close();
        }
      } finally {
        await from.close();
      }
    });

  void printList;
}

function copyText(r: CopyReport): string {
  const rows = Object.entries(r.counts).map(([kind, c]) => `  ${kind.padEnd(14)} ${count(c.source).padStart(10)} in source, ${count(c.copied)} copied now`);
  const v = r.verification;
  return [
    `Copied ${r.from} → ${r.to}`,
    ...rows,
    `Verified on the target: ${count(v.executions)} execution record hashes, ${count(v.checkpoints)} checkpoint record hashes, ${count(v.blobs)} blobs read back, ${count(v.streamEntries)} stream entries — ${v.ok ? 'all equal' : 'DIFFERENCES'}`,
  ].join('\n');
}
