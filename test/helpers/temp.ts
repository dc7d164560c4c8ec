/** Temporary folders for tests: real directories, removed when the test file ends. */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { REPO_ROOT } from './paths.js';

const made: string[] = [];

afterAll(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A new empty folder under the OS temp dir (`provenant-test-*`), removed after the test file. */
export function makeTempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'provenant-test-'));
  made.push(dir);
  return dir;
}

/**
 * A new empty folder inside the repository's gitignored `test-artifacts/`, for projects that must
 * resolve packages from the repository's node_modules. Removed after the test file.
 */
export function makeRepoTempDir(): string {
  const parent = join(REPO_ROOT, 'test-artifacts');
  mkdirSync(parent, { recursive: true });
  const dir = mkdtempSync(join(parent, 'provenant-test-'));
  made.push(dir);
  return dir;
}

/** Remove a folder now (and forget it). */
export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
