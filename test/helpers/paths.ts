/** Paths of the repository under test. */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (the folder with Provenant's package.json). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The compiled library entry point. */
export const DIST_INDEX = join(REPO_ROOT, 'dist', 'index.js');

/** The compiled CLI. */
export const DIST_CLI = join(REPO_ROOT, 'dist', 'cli', 'main.js');
