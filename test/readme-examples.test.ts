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
import { canonicalize } from '../src/hash/canonical.js';
import type { StepContext } from '../src/step/runtime.js';
import classify from '../examples/flights/steps/classify.js';
import type { RawFlight } from '../examples/flights/steps/normalize.js';
import normalizeV2 from '../examples/flights/steps/normalize-v2.js';
import normalizeV3 from '../examples/flights/steps/normalize-v3.js';
import routeStats from '../examples/flights/steps/route-stats.js';

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
  rmSync(join(REPO_ROOT, '.provenant-readme-tools'), { recursive: true, force: true });
  rmSync(join(REPO_ROOT, '.provenant-readme-objects'), { recursive: true, force: true });
  rmSync(join(REPO_ROOT, '.provenant-readme-http'), { recursive: true, force: true });
});

describe('README', () => {
  it('quick start: `npx provenant demo` tells the story of a bad deploy on real flight data, every figure computed', async () => {
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
    // The figures it prints, computed here independently from the data and the example steps.
    const flights = (JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', 'vega-datasets', 'data', 'flights-20k.json'), 'utf8')) as RawFlight[]).slice(10_000);
    const firstBad = 10_000 + flights.findIndex((f) => Math.abs(f.delay) >= 60);
    const slipped = flights.filter((f) => Math.abs(f.delay) >= 60).length;
    const params = { lateAfterMinutes: 15, severeAfterMinutes: 60 };
    const states = { v2: {}, v3: {} };
    let changed = 0;
    for (const f of flights) {
      const out = (v: 'v2' | 'v3'): string =>
        canonicalize(routeStats(classify((v === 'v2' ? normalizeV2 : normalizeV3)(f), params), undefined, { state: states[v] } as unknown as StepContext));
      if (out('v2') !== out('v3')) changed++;
    }
    expect(slipped).toBeGreaterThan(100);
    expect(changed).toBeGreaterThan(slipped);

    expect(stdout).toContain('20,000 records → 20,000 outputs; 60,000 executions');
    expect(stdout).toMatch(/0\.\.10,000\s+sha256:[0-9a-f]{12} \(v1\)\s+sha256:[0-9a-f]{12}\s+sha256:[0-9a-f]{12}\s+30,000\s+0\s+5\n/);
    expect(stdout).toMatch(/10,000\.\.20,000\s+sha256:[0-9a-f]{12} \(v2\)\s+sha256:[0-9a-f]{12}\s+sha256:[0-9a-f]{12}\s+30,000\s+0\s+5\n/);
    expect(stdout).toMatch(/Replayed their 10 checkpoints with the recorded code: 60,000 executions, 60,000 matched, 0 diverged/);
    expect(stdout).toMatch(/First bad checkpoint: \S+ \(run \S+, offsets 10,000\.\.12,000\)/);
    const replays = Number(/found with (\d+) checkpoint replays among 10 checkpoints \(at most 4\)/.exec(stdout)?.[1]);
    expect(replays).toBeGreaterThan(0);
    expect(replays).toBeLessThanOrEqual(4);
    expect(stdout).toContain(`first bad record: offset ${firstBad.toLocaleString('en-US')},`);
    expect(stdout).toContain(`Records: ${(10_000 - changed).toLocaleString('en-US')} unchanged, ${changed.toLocaleString('en-US')} changed`);
    expect(stdout).toMatch(new RegExp(`normalize\\*\\s+sha256:[0-9a-f]{12}\\s+sha256:[0-9a-f]{12}\\s+10,000\\s+${(10_000 - slipped).toLocaleString('en-US')}\\s+${slipped}\\s+0\\s+0`));
    // The summary is true: the store holds what it says.
    const { stdout: steps } = await run('node', [join(REPO_ROOT, 'dist', 'cli', 'main.js'), 'steps', '--json', '--store', store]);
    const list = JSON.parse(steps) as { stepId: string; versions: { versionHash: string; executions: number; manifest: { module: string } }[] }[];
    const normalize = list.find((s) => s.stepId === 'normalize')!.versions;
    expect(normalize.map((v) => [v.manifest.module, v.executions])).toEqual([
      ['examples/flights/steps/normalize.ts', 10_000],
      ['examples/flights/steps/normalize-v2.ts', 10_000],
      ['examples/flights/steps/normalize-v3.ts', slipped], // the what-if's executions that changed
    ]);
    const v2 = normalize[1]!.versionHash;
    expect(stdout).toContain(`First bad execution: normalize @ ${v2}`);
    expect(stdout).toContain(`Verdict: normalize ${v2.slice(0, 19)} (examples/flights/steps/normalize-v2.ts, first ran`);
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

  it('the bisect / what-if / replaySteps example runs and prints what it says', async () => {
    rmSync(join(REPO_ROOT, '.provenant-readme-tools'), { recursive: true, force: true });
    const stdout = await runExample('library-tools');
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toBe('normalize true 3'); // deterministic: the same data, the same binary search (at most ceil(log2(8 + 1)) = 4)
    expect(lines.slice(1)).toEqual(['true true', 'true normalize substituted true']);
  }, 120_000);

  it('the objects example runs: derive, lineage, gc, as-of recomputed and read', async () => {
    rmSync(join(REPO_ROOT, '.provenant-readme-objects'), { recursive: true, force: true });
  rmSync(join(REPO_ROOT, '.provenant-readme-http'), { recursive: true, force: true });
    const stdout = await runExample('library-objects');
    const printed = /prints `([^`]+)` and `([^`]+)`/.exec(readme.slice(readme.indexOf('readme-test: library-objects')));
    expect(stdout.trim().split('\n')).toEqual([printed?.[1], printed?.[2]]);
  }, 120_000);

  it('HTTP example: a granted read, a hidden and a missing object answered alike, no token refused', async () => {
    const stdout = await runExample('library-http');
    const printed = /prints `([^`]+)` and `([^`]+)`/.exec(readme.slice(readme.indexOf('readme-test: library-http')));
    expect(stdout.trim().split('\n')).toEqual([printed?.[1], printed?.[2]]);
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
