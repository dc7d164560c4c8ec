/**
 * Tamper evidence from the command line, as an auditor uses it: real child processes on a real
 * store made by `provenant run` over real flights. The public key is exported, a proof made for an
 * execution, and checked offline with only the key, the proof and the record; a changed record or
 * proof is refused. `verify` proves the store intact, saves a head, and names a change made
 * underneath it; a consistency proof links two signed heads.
 */
import Database from 'better-sqlite3';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, cliJson } from '../helpers/cli.js';
import { ensureDist } from '../helpers/dist.js';
import { REPO_ROOT } from '../helpers/paths.js';
import { makeTempDir } from '../helpers/temp.js';

const PIPELINE = 'examples/flights/pipeline.ts';
const FLIGHTS = join(REPO_ROOT, 'node_modules', 'vega-datasets', 'data', 'flights-20k.json');
const dir = makeTempDir();
const store = join(dir, 'store');

beforeAll(async () => {
  await ensureDist();
  await cliJson(['stream', 'append', 'flights', FLIGHTS, '--limit', '600', '--store', store, '--json']);
  await cliJson(['run', PIPELINE, '--stream', 'flights', '--checkpoint-every', '200', '--store', store, '--json']);
}, 180_000);

describe('keys, proofs and verify', () => {
  it('keys show: the private key is 0600 in the store folder; the public key exports as PEM and JWK', async () => {
    const info = await cliJson<{ keyId: string; path: string; mode: string; publicKeyPem: string }>(['keys', 'show', '--store', store, '--json']);
    expect(info.mode).toBe('0600');
    expect(statSync(info.path).mode & 0o777).toBe(0o600);
    expect(info.path.startsWith(store)).toBe(true);
    const pem = await cli(['keys', 'show', '--public', '--store', store]);
    expect(pem.stdout).toBe(info.publicKeyPem);
    expect(pem.stdout).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    writeFileSync(join(dir, 'key.pem'), pem.stdout);
    const jwk = JSON.parse((await cli(['keys', 'show', '--public', '--jwk', '--store', store])).stdout) as { kty: string; crv: string; d?: string };
    expect(jwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519' });
    expect(jwk.d).toBeUndefined();
    writeFileSync(join(dir, 'key.jwk'), JSON.stringify(jwk));
    const again = await cliJson<{ created: boolean; keyId: string }>(['keys', 'create', '--store', store, '--json']);
    expect(again).toEqual({ created: false, keyId: info.keyId, path: info.path });
  });

  it('proof <executionId> is checked offline by verify-proof with the key alone; a changed record or proof is refused', async () => {
    const { executions: [e] } = await cliJson<{ executions: { id: string }[] }>(['executions', '--step', 'classify', '--limit', '1', '--store', store, '--json']);
    const out = join(dir, 'proof.json');
    expect((await cli(['proof', e!.id, '--out', out, '--store', store])).code).toBe(0);
    const proof = JSON.parse(readFileSync(out, 'utf8')) as { record: { canonical: Record<string, unknown> }; treeSize: number; leafIndex: number };
    expect(proof.treeSize).toBe(600 * 3 + 3);
    for (const key of ['key.pem', 'key.jwk']) {
      const ok = await cliJson<{ valid: boolean; reason: string }>(['verify-proof', out, '--key', join(dir, key), '--json']);
      expect(ok).toMatchObject({ valid: true });
    }
    // The record as the auditor has it, separately from the proof.
    writeFileSync(join(dir, 'record.json'), JSON.stringify(proof.record.canonical));
    expect((await cli(['verify-proof', out, '--key', join(dir, 'key.pem'), '--record', join(dir, 'record.json')])).code).toBe(0);
    writeFileSync(join(dir, 'record-changed.json'), JSON.stringify({ ...proof.record.canonical, startedUs: (proof.record.canonical.startedUs as number) + 1 }));
    const bad = await cli(['verify-proof', out, '--key', join(dir, 'key.pem'), '--record', join(dir, 'record-changed.json')]);
    expect(bad.code).toBe(3);
    expect(bad.stdout).toMatch(/INVALID: the record does not hash to leaf/);
    writeFileSync(join(dir, 'proof-moved.json'), JSON.stringify({ ...proof, leafIndex: proof.leafIndex + 1 }));
    expect((await cli(['verify-proof', join(dir, 'proof-moved.json'), '--key', join(dir, 'key.pem')])).code).toBe(3);
    // Another key: the head's signature does not verify.
    const other = join(dir, 'other');
    await cliJson(['init', '--store', other, '--json']);
    writeFileSync(join(dir, 'other.pem'), (await cli(['keys', 'show', '--public', '--store', other])).stdout);
    const wrongKey = await cli(['verify-proof', out, '--key', join(dir, 'other.pem')]);
    expect(wrongKey.code).toBe(3);
    expect(wrongKey.stdout).toMatch(/not signed by this public key/);
  });

  it('proof --consistency links the first signed head to the last', async () => {
    const out = join(dir, 'consistency.json');
    expect((await cli(['proof', '--consistency', String(200 * 3 + 1), String(600 * 3 + 3), '--out', out, '--store', store])).code).toBe(0);
    const ok = await cliJson<{ valid: boolean; reason: string }>(['verify-proof', out, '--key', join(dir, 'key.pem'), '--json']);
    expect(ok.valid).toBe(true);
    expect(ok.reason).toMatch(/both heads signed/);
    const p = JSON.parse(readFileSync(out, 'utf8')) as { path: string[] };
    writeFileSync(join(dir, 'consistency-bad.json'), JSON.stringify({ ...p, path: p.path.slice(1) }));
    expect((await cli(['verify-proof', join(dir, 'consistency-bad.json'), '--key', join(dir, 'key.pem')])).code).toBe(3);
  });

  it('verify: intact, saves a head; then names a record changed underneath (exit 3)', async () => {
    const head = join(dir, 'head.json');
    const ok = await cli(['verify', '--save-head', head, '--key', join(dir, 'key.pem'), '--store', store]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^intact: 1,800 executions, 3 checkpoints, 3 signed heads/);
    const db = new Database(join(store, 'provenant.db'));
    const row = db.prepare('SELECT id FROM executions ORDER BY id LIMIT 1 OFFSET 100').get() as { id: Buffer };
    db.exec('DROP TRIGGER executions_no_update');
    db.prepare('UPDATE executions SET status = 1 WHERE id = ?').run(row.id);
    db.close();
    const bad = await cliJson<{ intact: boolean; findings: { kind: string; field?: string; record?: { id: string } }[] }>(['verify', '--head', head, '--store', store, '--json']).catch(
      async () => JSON.parse((await cli(['verify', '--head', head, '--store', store, '--json'])).stdout) as never,
    );
    expect(bad.intact).toBe(false);
    expect(bad.findings[0]).toMatchObject({ kind: 'record-changed', field: 'status' });
    const human = await cli(['verify', '--store', store]);
    expect(human.code).toBe(3);
    expect(human.stdout).toMatch(/TAMPERED/);
    expect(human.stdout).toMatch(/status changed from "ok" to "failed"/);
  });
});
