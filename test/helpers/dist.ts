/**
 * Tests that run Provenant in child processes use the compiled `dist/`. `npm test` builds it first;
 * when a test file runs alone and `dist/` is missing or older than `src/`, it is built here once
 * (a lock folder keeps two test files from building at the same time).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { DIST_CLI, DIST_INDEX, REPO_ROOT } from './paths.js';

const execFileAsync = promisify(execFile);

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

function distIsFresh(): boolean {
  const outputs = [DIST_INDEX, DIST_CLI, join(REPO_ROOT, 'dist', 'ui', 'index.html')];
  if (!outputs.every((p) => existsSync(p))) return false;
  const built = Math.min(...outputs.map((p) => statSync(p).mtimeMs));
  return Math.max(newestMtime(join(REPO_ROOT, 'src')), newestMtime(join(REPO_ROOT, 'ui', 'src'))) <= built;
}

/** Make sure `dist/` holds a build of the current `src/`. */
export async function ensureDist(): Promise<void> {
  if (distIsFresh()) return;
  const lockParent = join(REPO_ROOT, 'test-artifacts');
  mkdirSync(lockParent, { recursive: true });
  const lock = join(lockParent, '.dist-build.lock');
  const deadline = Date.now() + 90_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // A lock left behind by a killed test process is taken over after two minutes.
      const since = statSync(lock, { throwIfNoEntry: false })?.mtimeMs;
      if (since !== undefined && Date.now() - since > 120_000) rmSync(lock, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock}`);
      await sleep(100);
    }
  }
  try {
    if (distIsFresh()) return;
    try {
      await execFileAsync('npm', ['run', 'build'], { cwd: REPO_ROOT, timeout: 120_000 });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      throw new Error(`npm run build failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
    }
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
