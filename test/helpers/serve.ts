/** `provenant serve` in a child process, for tests that talk to it over real HTTP. */
import { spawn, type ChildProcess } from 'node:child_process';
import { DIST_CLI, REPO_ROOT } from './paths.js';

/** Start `provenant serve` on a free port; resolves with its URL once it listens. */
export function serve(store: string): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [DIST_CLI, 'serve', '--store', store, '--port', '0', '--json'], { cwd: REPO_ROOT, env: { ...process.env, NO_COLOR: '1' } });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      try {
        resolve({ child: c, url: (JSON.parse(out) as { url: string }).url });
      } catch {
        // not all of it yet
      }
    });
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('exit', (code) => reject(new Error(`provenant serve exited ${code}: ${err}`)));
  });
}

/** Stop a server started by {@link serve} (SIGTERM) and wait for it to exit. */
export function stop(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    c.once('exit', () => resolve());
    c.kill('SIGTERM');
  });
}
