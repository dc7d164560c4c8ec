/** Running the built `provenant` CLI in a child process, as users run it. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { DIST_CLI, REPO_ROOT } from './paths.js';

const execFileAsync = promisify(execFile);

/** What a CLI run printed and how it exited. */
export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Run the CLI from the repository root (no colours; PROVENANT_STORE unset unless `env` sets it);
 * never throws for a non-zero exit.
 */
export async function cli(args: readonly string[], env: Readonly<Record<string, string>> = {}, timeout = 120_000): Promise<CliResult> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', ...env };
  if (env.PROVENANT_STORE === undefined) delete childEnv.PROVENANT_STORE;
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [DIST_CLI, ...args], { cwd: REPO_ROOT, env: childEnv, timeout });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** Run the CLI and parse its stdout as JSON, failing with its stderr when it exits non-zero. */
export async function cliJson<T>(args: readonly string[], env: Readonly<Record<string, string>> = {}): Promise<T> {
  const r = await cli(args, env);
  if (r.code !== 0) throw new Error(`provenant ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
