/**
 * `provenant serve`, `provenant token` and `provenant audit` as users run them: the server in a
 * child process, tokens created, listed and revoked by other processes against the same store,
 * and the access log read back by `audit` after the server stopped.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, putObject } from '../../src/index.js';
import { cli, cliJson } from '../helpers/cli.js';
import { ensureDist } from '../helpers/dist.js';
import { serve, stop } from '../helpers/serve.js';
import { makeTempDir } from '../helpers/temp.js';

let dir: string;
let child: ChildProcess | undefined;
let url: string;

interface TokenJson {
  token: string;
  id: string;
  principal: string;
  grants: string[];
  state: string;
  expires: string | null;
}

beforeAll(async () => {
  await ensureDist();
  dir = join(makeTempDir(), 'store');
  const store = await openStore(dir);
  await putObject(store, 'customers/1', { name: 'Ada', balance: 12 });
  await putObject(store, 'secret/1', { note: 'no' });
  await store.close();
  ({ child, url } = await serve(dir));
}, 120_000);

afterAll(async () => {
  if (child !== undefined && child.exitCode === null) await stop(child);
});

describe('provenant token, serve and audit', () => {
  it('creates a token that reads what its grants cover, shown once and stored as a hash only', async () => {
    const t = await cliJson<TokenJson>(['token', 'create', '--store', dir, '--principal', 'alice', '--grant', 'read:customers/*', '--label', 'test', '--json']);
    expect(t.token).toMatch(/^pvt_[A-Za-z0-9_-]{43}$/);
    expect(t).toMatchObject({ principal: 'alice', grants: ['read:customers/*'], state: 'active', expires: null });
    const ok = await fetch(`${url}/data/customers/1`, { headers: { authorization: `Bearer ${t.token}` } });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ balance: 12, name: 'Ada' });
    expect((await fetch(`${url}/data/secret/1`, { headers: { authorization: `Bearer ${t.token}` } })).status).toBe(404);
    const list = await cliJson<TokenJson[]>(['token', 'list', '--store', dir, '--json']);
    expect(list.find((x) => x.id === t.id)).toMatchObject({ principal: 'alice', state: 'active' });
    expect(JSON.stringify(list)).not.toContain(t.token);
    const human = await cli(['token', 'list', '--store', dir]);
    expect(human.stdout).toMatch(/alice\s+read:customers\/\*/);
    expect(human.stdout).not.toContain(t.token);
  });

  it('revokes a token from another process: the running server refuses it at once', async () => {
    const t = await cliJson<TokenJson>(['token', 'create', '--store', dir, '--principal', 'bob', '--grant', 'read:*', '--json']);
    expect((await fetch(`${url}/data/secret/1`, { headers: { authorization: `Bearer ${t.token}` } })).status).toBe(200);
    const revoked = await cliJson<TokenJson>(['token', 'revoke', t.id.slice(0, 13), '--store', dir, '--json']);
    expect(revoked).toMatchObject({ id: t.id, state: 'revoked' });
    const res = await fetch(`${url}/data/secret/1`, { headers: { authorization: `Bearer ${t.token}` } });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { context: { reason: string } }).context.reason).toBe('revoked');
  });

  it('expires a token after its --expires duration', async () => {
    const t = await cliJson<TokenJson>(['token', 'create', '--store', dir, '--principal', 'carol', '--grant', 'read:*', '--expires', '2s', '--json']);
    expect(Date.parse(t.expires!) - Date.now()).toBeGreaterThan(500);
    expect((await fetch(`${url}/data/customers/1`, { headers: { authorization: `Bearer ${t.token}` } })).status).toBe(200);
    await new Promise((r) => setTimeout(r, Date.parse(t.expires!) - Date.now() + 100));
    const res = await fetch(`${url}/data/customers/1`, { headers: { authorization: `Bearer ${t.token}` } });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { context: { reason: string } }).context.reason).toBe('expired');
  });

  it('refuses malformed grants, durations and unknown tokens with exit 2 and a reason', async () => {
    const bad = await cli(['token', 'create', '--store', dir, '--principal', 'x', '--grant', 'write:everything']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/grant "write:everything" has no known right/);
    const none = await cli(['token', 'create', '--store', dir, '--principal', 'x']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/needs at least one grant/);
    const duration = await cli(['token', 'create', '--store', dir, '--principal', 'x', '--grant', 'read:*', '--expires', 'soon']);
    expect(duration.code).toBe(2);
    expect(duration.stderr).toMatch(/not a duration/);
    const unknown = await cli(['token', 'revoke', '01890a5d-ac96-774b-bcce-b302099a8057', '--store', dir]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no token with id/);
  });

  it('audits what was asked, by whom, with which rights, after the server stopped', async () => {
    const t = await cliJson<TokenJson>(['token', 'create', '--store', dir, '--principal', 'dave', '--grant', 'read:customers/*', '--json']);
    const trace = 'a3ce929d0e0e47364bf92f3577b34da6';
    await (await fetch(`${url}/data/customers/1?as_of=${Date.now()}`, { headers: { authorization: `Bearer ${t.token}`, traceparent: `00-${trace}-00f067aa0ba902b7-01` } })).arrayBuffer();
    await (await fetch(`${url}/data/secret/1`, { headers: { authorization: `Bearer ${t.token}` } })).arrayBuffer();
    await stop(child!);
    const entries = await cliJson<{ principal: string; target: string; status: number; rights: string[]; traceId: string; address: string; time: string }[]>(['audit', '--store', dir, '--principal', 'dave', '--json']);
    expect(entries.map((e) => [e.target.split('?')[0], e.status, e.rights])).toEqual([
      ['/data/customers/1', 200, ['read:customers/*']],
      ['/data/secret/1', 404, []],
    ]);
    expect(entries[0]).toMatchObject({ traceId: trace, address: '127.0.0.1' });
    const since = await cliJson<unknown[]>(['audit', '--store', dir, '--since', new Date(Date.now() + 60_000).toISOString(), '--json']);
    expect(since).toEqual([]);
    const human = await cli(['audit', '--store', dir, '--since', '1h']);
    expect(human.stdout).toMatch(/dave\s+127\.0\.0\.1\s+GET \/data\/secret\/1\s+404/);
    const badSince = await cli(['audit', '--store', dir, '--since', 'yesterday']);
    expect(badSince.code).toBe(2);
  });
});
