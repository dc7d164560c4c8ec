/**
 * The object commands as a user runs them: real child processes of the built CLI on a real store,
 * with the README's example files.
 */
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, cliJson } from '../helpers/cli.js';
import { ensureDist } from '../helpers/dist.js';
import { REPO_ROOT } from '../helpers/paths.js';
import { makeTempDir } from '../helpers/temp.js';
import { freshPgUrl } from '../helpers/pg.js';
import { POSTGRES, describeWithService, postgresAvailable } from '../helpers/services.js';

const ex = (f: string): string => join(REPO_ROOT, 'examples', 'objects', f);
const pgUp = await postgresAvailable();

interface Version {
  versionId: string;
  ordinal: number;
  validFrom: string;
  contentHash: string;
  kept: boolean;
  pinned: boolean;
  executionId: string | null;
}

beforeAll(async () => {
  await ensureDist();
}, 180_000);

/** The same story on a store of each backend: a user cannot tell them apart. */
function objectCommands(backend: string, store: () => string): void {
describe(`provenant put / derive / versions / lineage / asof / policy / gc / materialize (${backend})`, () => {
  const s = ['--store', ''];
  beforeAll(() => {
    s[1] = store();
  });
  let customer: Version;
  let enriched: { version: Version; executionId: string };

  it('ingests files and derives a joined version', async () => {
    customer = await cliJson<Version>(['put', 'customers/42', ex('customer-42.json'), ...s, '--json']);
    expect(customer.ordinal).toBe(1);
    expect(customer.executionId).toBeNull();
    await cliJson(['put', 'orders/42', ex('orders-42.json'), ...s, '--json']);
    enriched = await cliJson(['derive', 'enrich', ex('enrich.ts'), '--input', 'customers/42', '--input', 'orders/42', '--output', 'customers/42/enriched', ...s, '--json']);
    expect(enriched.version.executionId).toBe(enriched.executionId);
    const human = await cli(['versions', 'customers/42/enriched', ...s]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/v1\s+\S+\s+\S+\s+sha256:\w+\s+\d+\s+made by/);
    const objects = await cliJson<{ objectId: string }[]>(['objects', ...s, '--json']);
    expect(objects.map((o) => o.objectId)).toEqual(['customers/42', 'customers/42/enriched', 'orders/42']);
  });

  it('prints lineage as a tree and as JSON', async () => {
    const tree = await cli(['lineage', 'customers/42/enriched', ...s]);
    expect(tree.code).toBe(0);
    expect(tree.stdout).toMatch(/^customers\/42\/enriched v1/);
    expect(tree.stdout).toMatch(/└─ made by enrich@[0-9a-f]{12}/);
    expect(tree.stdout).toMatch(/customers\/42 v1 .*\(original\)/);
    expect(tree.stdout).toMatch(/orders\/42 v1 .*\(original\)/);
    const down = await cliJson<{ nodes: { kind: string; objectId?: string }[] }>(['lineage', 'orders/42', '--down', ...s, '--json']);
    expect(down.nodes.filter((n) => n.kind === 'version').map((n) => n.objectId).sort()).toEqual(['customers/42/enriched', 'orders/42']);
  });

  it('reads as of a time, recomputes after gc, and pins', async () => {
    const read = await cli(['asof', 'customers/42/enriched', 'now', ...s]);
    expect(read.code).toBe(0);
    expect(JSON.parse(read.stdout)).toEqual({ id: 42, lifetimeValue: 115, name: 'Ada Lovelace', orders: 2, tier: 'gold' });
    expect(read.stderr).toMatch(/^read customers\/42\/enriched v1/);
    expect((await cli(['policy', 'set', 'none', ...s])).code).toBe(0);
    const dry = await cliJson<{ dropped: number; bytesFreed: number; dryRun: boolean }>(['gc', '--dry-run', ...s, '--json']);
    expect(dry).toMatchObject({ dropped: 1, dryRun: true });
    const freed = await cliJson<{ dropped: number; bytesFreed: number }>(['gc', ...s, '--json']);
    expect(freed.dropped).toBe(1);
    expect(freed.bytesFreed).toBeGreaterThan(50);
    const again = await cliJson<{ obtained: string; executionsRun: number; contentHash: string; content: unknown }>(['asof', 'customers/42/enriched', 'now', ...s, '--json']);
    expect(again).toMatchObject({ obtained: 'recomputed', executionsRun: 1, contentHash: enriched.version.contentHash });
    expect(again.content).toMatchObject({ tier: 'gold' });
    const out = join(makeTempDir(), 'out.json');
    const toFile = await cli(['asof', 'customers/42', customer.validFrom, '--out', out, ...s]);
    expect(toFile.code).toBe(0);
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual({ id: 42, name: 'Ada Lovelace' });
    const pinned = await cliJson<Version>(['materialize', `customers/42/enriched@${new Date().toISOString()}`, ...s, '--json']);
    expect(pinned).toMatchObject({ pinned: true, kept: true });
    expect((await cliJson<{ dropped: number }>(['gc', ...s, '--json'])).dropped).toBe(0);
    const policies = await cliJson<{ store: string }>(['policy', 'show', ...s, '--json']);
    expect(policies.store).toBe('none');
  });

  it('applies a registered transform on read and records it', async () => {
    await cliJson(['register', 'tier-only', writeTierOnly(), ...s, '--json']);
    const r = await cliJson<{ content: unknown; transformExecutionId: string }>(['asof', 'customers/42/enriched', 'now', '--transform', 'tier-only', '--params', '{"prefix":"T:"}', ...s, '--json']);
    expect(r.content).toEqual({ tier: 'T:gold' });
    const shown = await cliJson<{ execution: { functionId: string; context: { source: string } } }>(['show', r.transformExecutionId, ...s, '--json']);
    expect(shown.execution.functionId).toBe('tier-only');
    expect(shown.execution.context.source).toBe('cli');
  });

  it('refuses bad input with exit 2 and a reason', async () => {
    const badId = await cli(['asof', 'customers/../x', 'now', ...s]);
    expect(badId.code).toBe(2);
    expect(badId.stderr).toMatch(/object id .* is invalid: it has a "\.\." segment/);
    const badTime = await cli(['asof', 'customers/42', '2024-10-27T10:00:00', ...s]);
    expect(badTime.code).toBe(2);
    expect(badTime.stderr).toMatch(/no time zone offset/);
    const future = await cli(['asof', 'customers/42', String(Date.now() + 3_600_000), ...s, '--json']);
    expect(future.code).toBe(2);
    expect(JSON.parse(future.stdout).error.code).toBe('AS_OF_IN_FUTURE');
    const before = await cli(['asof', 'customers/42', '2001-01-01T00:00:00Z', ...s]);
    expect(before.code).toBe(2);
    expect(before.stderr).toMatch(/did not exist yet/);
    const badPolicy = await cli(['policy', 'set', 'sometimes', ...s]);
    expect(badPolicy.code).toBe(2);
    expect(badPolicy.stderr).toMatch(/not one of all, none, every:<k>, cost/);
  });
});
}

objectCommands('embedded', () => join(makeTempDir(), 'store'));
describeWithService(POSTGRES, pgUp, 'object commands on PostgreSQL', () => {
  objectCommands('PostgreSQL', () => freshPgUrl('objects'));
});

function writeTierOnly(): string {
  const dir = makeTempDir();
  const file = join(dir, 'tier-only.mjs');
  writeFileSync(file, 'export default function tierOnly(c, p) { return { tier: (p.prefix ?? "") + c.tier }; }\n');
  return file;
}
