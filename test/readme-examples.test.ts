/**
 * The README's examples run as written: the quick-start demo command (through `npx`, against a
 * temporary store given by PROVENANT_STORE) and the library example (bundled with esbuild,
 * `provenant` resolved to the built package, run in a child process from the repository root).
 */
import { build } from 'esbuild';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDist } from './helpers/dist.js';
import { DIST_INDEX, REPO_ROOT } from './helpers/paths.js';

const run = promisify(execFile);
const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');

/** The code block that follows `<!-- readme-test: name -->`. */
function example(name: string): { lang: string; code: string } {
  const m = new RegExp(`<!-- readme-test: ${name} -->\\s*\`\`\`(\\w+)\\n([\\s\\S]*?)\`\`\``).exec(readme);
  if (m === null) throw new Error(`README has no example marked readme-test: ${name}`);
  return { lang: m[1] as string, code: m[2] as string };
}

const temp = mkdtempSync(join(tmpdir(), 'provenant-readme-'));

beforeAll(async () => {
  await ensureDist();
}, 180_000);

afterAll(() => {
  rmSync(temp, { recursive: true, force: true });
  rmSync(join(REPO_ROOT, '.provenant-readme'), { recursive: true, force: true });
  rmSync(join(REPO_ROOT, '.provenant-readme-stream'), { recursive: true, force: true });
});

describe('README', () => {
  it('quick start: `npx provenant demo` records the example pipeline over real flight data', async () => {
    const { lang, code } = example('demo');
    expect(lang).toBe('bash');
    const demo = code.split('\n').find((l) => l.startsWith('npx provenant demo'));
    expect(demo).toBeDefined();
    const command = (demo as string).split('#')[0]?.trim().split(/\s+/) ?? [];
    const store = join(temp, 'demo-store');
    const { stdout } = await run(command[0] as string, command.slice(1), {
      cwd: REPO_ROOT,
      env: { ...process.env, PROVENANT_STORE: store },
      timeout: 120_000,
    });
    expect(stdout).toContain('20,000 records → 20,000 outputs; 60,000 executions');
    expect(stdout).toContain('2 checkpoints');
    expect(stdout).toMatch(/Replayed its 2 checkpoints with the recorded code: 60,000 executions, 60,000 matched, 0 diverged/);
    expect(stdout).toMatch(/routeStats\s+sha256:[0-9a-f]{12}\s+20,000\s+0/);
    expect(stdout).toMatch(/normalize\s+sha256:[0-9a-f]{12}\s+20,000\s+0/);
    expect(stdout).toMatch(/classify\s+sha256:[0-9a-f]{12}\s+20,000\s+0/);
    // The summary is true: the store holds what it says.
    const { stdout: steps } = await run('node', [join(REPO_ROOT, 'dist', 'cli', 'main.js'), 'steps', '--json', '--store', store]);
    const list = JSON.parse(steps) as { stepId: string; versions: { executions: number }[] }[];
    expect(list.map((s) => [s.stepId, s.versions[0]?.executions])).toEqual([
      ['classify', 20000],
      ['normalize', 20000],
      ['routeStats', 20000],
    ]);
  }, 180_000);

  it('the library example runs and prints what it says', async () => {
    const stdout = await runExample('library');
    const lines = stdout.trim().split('\n');
    expect(lines.at(-1)).toBe('true');
    expect(stdout).toContain("route: 'SAN-SMF'");
    expect(stdout).toMatch(/} 1 alice$/m);
  }, 120_000);

  it('the streams example runs: checkpoints, a sink, a verified replay', async () => {
    rmSync(join(REPO_ROOT, '.provenant-readme-stream'), { recursive: true, force: true });
    const stdout = await runExample('library-stream');
    expect(stdout.trim().split('\n')).toEqual(['2000 4', 'true null']);
    expect(readFileSync(join(REPO_ROOT, '.provenant-readme-stream', 'out.ndjson'), 'utf8').trim().split('\n')).toHaveLength(2000);
  }, 120_000);
});

/** Bundle a README example with esbuild (`provenant` resolved to the built package) and run it from the repository root. */
async function runExample(name: string): Promise<string> {
    const { lang, code } = example(name);
    expect(lang).toBe('ts');
    const entry = join(temp, `${name}.ts`);
    writeFileSync(entry, code);
    const out = join(temp, `${name}.mjs`);
    await build({
      entryPoints: [entry],
      bundle: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      outfile: out,
      logLevel: 'silent',
      plugins: [
        {
          name: 'provenant-dist',
          setup(b) {
            b.onResolve({ filter: /^provenant$/ }, () => ({ path: DIST_INDEX, external: true }));
          },
        },
      ],
    });
    const { stdout } = await run('node', [out], { cwd: REPO_ROOT, timeout: 60_000 });
    return stdout;
}
