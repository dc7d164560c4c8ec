/**
 * Tamper evidence on a real store of 10,000 executions (5,000 flights through two steps, a
 * checkpoint every 250 records, each with a signed tree head): thousands of random single changes
 * made underneath Provenant, on the SQLite file as an attacker would (append-only triggers
 * dropped) — a flipped bit or byte in a record, an edited field, a deleted record, two records
 * swapped, a forged insert, a changed checkpoint, a changed blob, a changed code artifact, a
 * truncated tail, an older copy of the store restored — and `verifyStore` must catch every one and
 * name what changed (the record, and the field where one field changed).
 *
 * Rounds: each round applies many single changes to a fresh copy of the store, each to a different
 * log segment (so that each change is on its own), verifies once and checks that every change is
 * reported as itself. Whole-store changes (truncation, rollback) get rounds of their own.
 */
import Database from 'better-sqlite3';
import { overwriteBlobRow } from '../helpers/raw-db.js';
import { cpSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { hashFromBytes } from '../../src/hash/canonical.js';
import { executionRecordHash } from '../../src/hash/record-hash.js';
import { uuidFromBytes } from '../../src/ids.js';
import { verifyStore, type Finding, type VerifyReport } from '../../src/merkle/verify.js';
import type { SignedTreeHead } from '../../src/merkle/head.js';
import type { RawExecution } from '../../src/merkle/source.js';
import type { PipelineDefinition } from '../../src/pipeline/define.js';
import { runPipeline } from '../../src/pipeline/execute.js';
import { readRecords } from '../../src/sources/files.js';
import { vegaDatasetPath } from '../../src/sources/datasets.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { appendRecords, LogSource } from '../../src/stream/log.js';
import { FLIGHT_STEPS, writeProject } from '../helpers/project.js';
import { makeTempDir } from '../helpers/temp.js';

const N = 5000;
const project = makeTempDir();
const pristine = join(project, 'store');
const halfway = join(project, 'store-halfway');
let savedHead: SignedTreeHead;

const pipeline: PipelineDefinition = {
  name: 'tamper',
  steps: [
    { id: 'parse', module: './steps/parse.ts' },
    { id: 'classify', module: './steps/classify.ts', params: { lateAfter: 15 } },
  ],
};

beforeAll(async () => {
  writeProject(project, FLIGHT_STEPS);
  const flights: unknown[] = [];
  for await (const r of readRecords(vegaDatasetPath('flights-5k.json'), { limit: N })) flights.push(r.value);
  const store = SqliteStore.open(pristine);
  await appendRecords(store, 'flights', flights);
  await runPipeline(store, pipeline, new LogSource(store, 'flights'), { baseDir: project, to: N / 2, checkpoint: { everyRecords: 50 } });
  await store.close();
  cpSync(pristine, halfway, { recursive: true });
  const again = SqliteStore.open(pristine);
  await runPipeline(again, pipeline, new LogSource(again, 'flights'), { baseDir: project, from: N / 2, checkpoint: { everyRecords: 50 } });
  await again.close();
}, 120_000);

async function verifyDir(dir: string, head?: SignedTreeHead): Promise<VerifyReport> {
  const store = SqliteStore.open(dir, { writerThread: false });
  try {
    return await verifyStore(store, head === undefined ? {} : { head });
  } finally {
    await store.close();
  }
}

let copies = 0;
function copyOf(dir: string): string {
  const to = join(project, `copy-${copies++}`);
  cpSync(dir, to, { recursive: true });
  return to;
}

function raw<T>(dir: string, fn: (db: Database.Database) => T): T {
  const db = new Database(join(dir, 'provenant.db'));
  try {
    for (const { name } of db.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'").all() as { name: string }[]) db.exec(`DROP TRIGGER ${name}`);
    return fn(db);
  } finally {
    db.close();
  }
}

/** A small seeded PRNG: the same trials on every run. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Expected {
  what: string;
  kind: Finding['kind'];
  id?: string;
  field?: string;
  hash?: string;
  /** Text the finding's message must contain (when the record cannot be named, e.g. a deleted range member). */
  mentions?: string;
}

/** An execution row as stored (any column may be read by name). */
type Row = RawExecution & { [k: string]: unknown };

const KINDS = ['flip-blob', 'flip-int', 'edit-step', 'edit-status', 'edit-output', 'edit-record-hash', 'delete', 'swap', 'forge', 'checkpoint'] as const;

/** Apply one change of `kind` inside segment `seg`; return what verify must report. */
function tamper(db: Database.Database, kind: (typeof KINDS)[number], seg: { run: number; first: Buffer; last: Buffer }, rnd: () => number): Expected {
  const rows = db.prepare('SELECT * FROM executions WHERE run = ? AND id BETWEEN ? AND ? ORDER BY id').all(seg.run, seg.first, seg.last) as Row[];
  const pick = rows[Math.floor(rnd() * rows.length)] as Row;
  const id = uuidFromBytes(pick.id);
  const set = (column: string, value: unknown) => db.prepare(`UPDATE executions SET "${column}" = ? WHERE id = ?`).run(value, pick.id);
  switch (kind) {
    case 'flip-blob': {
      const column = (['output', 'params', 'inputs', 'record_hash'] as const)[Math.floor(rnd() * 4)] as 'output' | 'params' | 'inputs' | 'record_hash';
      const v = Buffer.from(pick[column] as Buffer);
      const at = Math.floor(rnd() * v.length);
      v[at] = (v[at] as number) ^ (1 + Math.floor(rnd() * 255));
      set(column, v);
      const field = { output: 'outputHash', params: 'paramsHash', inputs: 'inputHashes', record_hash: 'recordHash' }[column];
      return { what: `flipped byte in ${column}`, kind: 'record-changed', id, field };
    }
    case 'flip-int': {
      const column = (['started', 'duration', 'offset'] as const)[Math.floor(rnd() * 3)] as 'started' | 'duration' | 'offset';
      set(column, Number(BigInt(pick[column] as number) ^ (1n << BigInt(Math.floor(rnd() * 40)))));
      return { what: `flipped bit in ${column}`, kind: 'record-changed', id, field: { started: 'startedUs', duration: 'endedUs', offset: 'offset' }[column] };
    }
    case 'edit-step': {
      const other = db.prepare('SELECT seq FROM step_versions WHERE seq != ? LIMIT 1').get(pick.step_version) as { seq: number };
      set('step_version', other.seq);
      return { what: 'step version edited', kind: 'record-changed', id, field: 'functionVersionHash' };
    }
    case 'edit-status':
      set('status', 1 - pick.status);
      return { what: 'status edited', kind: 'record-changed', id, field: 'status' };
    case 'edit-output': {
      const other = rows.find((r) => r.output !== null && pick.output !== null && !r.output.equals(pick.output));
      if (other === undefined) return tamper(db, 'edit-status', seg, rnd);
      set('output', other.output);
      return { what: "output replaced by another execution's", kind: 'record-changed', id, field: 'outputHash' };
    }
    case 'edit-record-hash': {
      const v = Buffer.from(pick.record_hash);
      v[31] = (v[31] as number) ^ 0x80;
      set('record_hash', v);
      return { what: 'record hash edited', kind: 'record-changed', id, field: 'recordHash' };
    }
    case 'delete':
      db.prepare('DELETE FROM executions WHERE id = ?').run(pick.id);
      // Inside a range the log cannot name a record it no longer has: it names the range.
      return rows[0]!.id.equals(pick.id) || rows[rows.length - 1]!.id.equals(pick.id)
        ? { what: 'record deleted (end of a range)', kind: 'record-deleted', mentions: 'deleted' }
        : { what: 'record deleted', kind: 'record-deleted', mentions: `${uuidFromBytes(seg.first)}..${uuidFromBytes(seg.last)}` };
    case 'swap': {
      const other = rows[(rows.indexOf(pick) + 1 + Math.floor(rnd() * (rows.length - 1))) % rows.length] as Row;
      const tmp = Buffer.alloc(16, 0xff);
      db.prepare('UPDATE executions SET id = ? WHERE id = ?').run(tmp, pick.id);
      db.prepare('UPDATE executions SET id = ? WHERE id = ?').run(pick.id, other.id);
      db.prepare('UPDATE executions SET id = ? WHERE id = ?').run(other.id, tmp);
      return { what: 'two records swapped', kind: 'record-changed', id, field: 'id' };
    }
    case 'forge': {
      // A new record between two of the range, its record hash computed properly.
      const i = rows.indexOf(pick);
      const next = rows[i + 1];
      const forged = Buffer.from(pick.id);
      forged[15] = (forged[15] as number) + 1;
      if (next !== undefined && Buffer.compare(forged, next.id) >= 0) return tamper(db, 'edit-status', seg, rnd);
      if (next === undefined) return tamper(db, 'edit-status', seg, rnd);
      const names = db.prepare(`SELECT r.id AS run, sv.step_id, sv.version_hash, c.hash AS ctx, s.id AS stream FROM executions e
        JOIN runs r ON r.seq = e.run JOIN step_versions sv ON sv.seq = e.step_version JOIN contexts c ON c.seq = e.context
        LEFT JOIN streams s ON s.seq = e.stream WHERE e.id = ?`).get(pick.id) as { run: string; step_id: string; version_hash: Buffer; ctx: Buffer; stream: string | null };
      const fake = { ...pick, id: forged } as Row & Record<string, unknown>;
      const recordHash = executionRecordHash({
        id: uuidFromBytes(forged),
        runId: names.run,
        functionId: names.step_id,
        functionVersionHash: hashFromBytes(names.version_hash),
        inputHashes: [hashFromBytes(pick.inputs.subarray(0, 32))],
        inputEncodings: ['json'],
        outputHash: pick.output === null ? null : hashFromBytes(pick.output),
        outputEncoding: 'json',
        paramsHash: hashFromBytes(pick.params),
        contextHash: hashFromBytes(names.ctx),
        startedUs: pick.started,
        endedUs: pick.started + pick.duration,
        status: pick.status === 0 ? 'ok' : 'failed',
        errorHash: null,
        nondeterminismHash: null,
        streamId: names.stream,
        offset: pick.offset,
      });
      fake.record_hash = Buffer.from(recordHash.slice(7), 'hex');
      const cols = Object.keys(fake);
      db.prepare(`INSERT INTO executions (${cols.map((c) => `"${c}"`).join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`).run(...cols.map((c) => fake[c]));
      return { what: 'forged insert', kind: 'record-inserted', id: uuidFromBytes(forged) };
    }
    case 'checkpoint': {
      const c = db.prepare('SELECT c.id, e.checkpoint, e.records FROM checkpoint_ends e JOIN checkpoints c ON c.seq = e.checkpoint ORDER BY random() LIMIT 1').get() as { id: string; checkpoint: number; records: number };
      db.prepare('UPDATE checkpoint_ends SET records = ? WHERE checkpoint = ?').run(c.records + 1, c.checkpoint);
      return { what: 'checkpoint edited', kind: 'record-changed', id: c.id };
    }
  }
}

function matches(f: Finding, e: Expected): boolean {
  if (f.kind !== e.kind) return false;
  if (e.id !== undefined && f.record?.id !== e.id) return false;
  if (e.field !== undefined && f.field !== e.field) return false;
  if (e.hash !== undefined && f.hash !== e.hash) return false;
  if (e.mentions !== undefined && !f.message.includes(e.mentions)) return false;
  return true;
}

describe('provenant verify on a store of 10,000 executions', () => {
  it('the untouched store is intact: every record, the tree, every signed head and blob', async () => {
    const report = await verifyDir(pristine);
    expect(report.findings).toEqual([]);
    expect(report.intact).toBe(true);
    expect(report.executions).toBe(2 * N);
    expect(report.checkpoints).toBe(N / 50);
    expect(report.heads).toBe(N / 50);
    expect(report.treeSize).toBe(2 * N + N / 50);
    expect(report.latestHead?.treeSize).toBe(report.treeSize);
    savedHead = report.latestHead as SignedTreeHead;
  });

  it('catches every one of 2,000 random single changes to records and names what changed', async () => {
    const rnd = prng(8);
    const segs = raw(pristine, (db) => db.prepare('SELECT scope AS run, first, last FROM merkle_segments WHERE kind = 0 AND first IS NOT NULL').all()) as { run: number; first: Buffer; last: Buffer }[];
    expect(segs.length).toBeGreaterThan(40);
    let total = 0;
    const perKind = new Map<string, number>();
    const ROUNDS = 25;
    for (let round = 0; round < ROUNDS; round++) {
      const dir = copyOf(pristine);
      const order = segs.map((s, i) => [rnd(), i] as const).sort((a, b) => a[0] - b[0]).map(([, i]) => segs[i]!);
      const perRound = Math.min(order.length, 80);
      const expected = raw(dir, (db) =>
        order.slice(0, perRound).map((seg, i) => tamper(db, KINDS[(round * 7 + i) % KINDS.length] as (typeof KINDS)[number], seg, rnd)),
      );
      const report = await verifyDir(dir);
      expect(report.intact).toBe(false);
      for (const e of expected) {
        const found = report.findings.find((f) => matches(f, e));
        if (found === undefined) {
          throw new Error(`round ${round}: "${e.what}" (${JSON.stringify(e)}) not reported; about it: ${JSON.stringify(report.findings.filter((f) => f.record?.id === e.id))} findings:\n${report.findings.map((f) => JSON.stringify(f)).join("\n")}`);
        }
        perKind.set(e.what, (perKind.get(e.what) ?? 0) + 1);
      }
      total += expected.length;
    }
    expect(total).toBeGreaterThanOrEqual(2000);
    expect(perKind.size).toBeGreaterThanOrEqual(10);
  }, 120_000);

  it('catches a changed blob and a changed code artifact, naming each', async () => {
    const dir = copyOf(pristine);
    const { blob, artifact } = raw(dir, (db) => {
      const out = db.prepare('SELECT output FROM executions WHERE output IS NOT NULL LIMIT 1 OFFSET 777').get() as { output: Buffer };
      overwriteBlobRow(db, out.output, Buffer.from('{"route":"X-Y","delay":1}'));
      const art = db.prepare('SELECT version_hash, step_id FROM step_versions LIMIT 1').get() as { version_hash: Buffer; step_id: string };
      const row = db.prepare('SELECT location, bytes FROM blobs WHERE hash = ?').get(art.version_hash) as { location: number; bytes: Buffer | null };
      if (row.location === 0) overwriteBlobRow(db, art.version_hash, Buffer.concat([row.bytes as Buffer, Buffer.from('\n;globalThis.x=1')]));
      return { blob: hashFromBytes(out.output), artifact: { hash: hashFromBytes(art.version_hash), file: row.location === 1 } };
    });
    if (artifact.file) {
      const hex = artifact.hash.slice(7);
      const path = join(dir, 'blobs', 'sha256', hex.slice(0, 2), hex.slice(2, 4), hex.slice(4));
      writeFileSync(path, 'export default () => 1;');
    }
    const report = await verifyDir(dir);
    expect(report.findings.find((f) => f.kind === 'blob-corrupt' && f.hash === blob)?.message).toMatch(/named by execution/);
    expect(report.findings.find((f) => f.kind === 'artifact-corrupt' && f.hash === artifact.hash)?.message).toMatch(/code artifact of step/);
    expect(report.findings).toHaveLength(2);
  });

  it('a truncated tail: records deleted are caught; truncation covering its tracks is caught by a saved head', async () => {
    const dir = copyOf(pristine);
    raw(dir, (db) => db.prepare('DELETE FROM executions WHERE id IN (SELECT id FROM executions ORDER BY id DESC LIMIT 300)').run());
    const plain = await verifyDir(dir);
    expect(plain.findings.some((f) => f.kind === 'record-deleted')).toBe(true);
    expect(plain.findings.some((f) => f.kind === 'head-mismatch')).toBe(true);

    // The attacker also removes the log's tail and the heads and checkpoints after the cut: the store agrees with itself…
    const dir2 = copyOf(pristine);
    raw(dir2, (db) => {
      const cut = db.prepare('SELECT tree_size FROM merkle_segments ORDER BY seq LIMIT 1 OFFSET 30').get() as { tree_size: number };
      const lastSeg = db.prepare('SELECT max(seq) AS s FROM merkle_segments WHERE tree_size <= ?').get(cut.tree_size) as { s: number };
      for (const s of db.prepare('SELECT * FROM merkle_segments WHERE seq > ?').all(lastSeg.s) as { kind: number; scope: number; first: Buffer; last: Buffer }[]) {
        if (s.kind === 0) db.prepare('DELETE FROM executions WHERE run = ? AND id BETWEEN ? AND ?').run(s.scope, s.first, s.last);
        else {
          db.prepare('DELETE FROM tree_heads WHERE checkpoint = ?').run(s.scope);
          db.prepare('DELETE FROM checkpoint_ends WHERE checkpoint = ?').run(s.scope);
        }
      }
      db.prepare('DELETE FROM merkle_segments WHERE seq > ?').run(lastSeg.s);
    });
    const selfConsistent = await verifyDir(dir2);
    expect(selfConsistent.findings).toEqual([]);
    // … but not with the head an auditor saved.
    const audited = await verifyDir(dir2, savedHead);
    expect(audited.findings.map((f) => f.kind)).toEqual(['rolled-back']);
    expect(audited.findings[0]?.message).toMatch(new RegExp(`covers ${savedHead.treeSize}: the store was rolled back or truncated`));
  });

  it('an older copy of the store restored is caught given a saved head; the intact store passes the same head', async () => {
    const old = copyOf(halfway);
    const plain = await verifyDir(old);
    expect(plain.intact).toBe(true); // an older store is consistent in itself
    const audited = await verifyDir(old, savedHead);
    expect(audited.findings.map((f) => f.kind)).toEqual(['rolled-back']);
    expect((await verifyDir(pristine, savedHead)).intact).toBe(true);
    // A store rewritten from some point (another history of the same length) does not match the head either.
    const rewritten = copyOf(pristine);
    raw(rewritten, (db) => {
      const seg = db.prepare('SELECT * FROM merkle_segments WHERE kind = 0 ORDER BY seq LIMIT 1 OFFSET 3').get() as { scope: number; first: Buffer };
      const row = db.prepare('SELECT * FROM executions WHERE id = ?').get(seg.first) as Row;
      db.prepare('UPDATE executions SET status = 1 - status, record_hash = ? WHERE id = ?').run(Buffer.alloc(32, 7), row.id);
      void statSync;
      void readdirSync;
    });
    const r = await verifyDir(rewritten, savedHead);
    expect(r.findings.some((f) => f.kind === 'head-mismatch' && f.message.includes('given head'))).toBe(true);
  });
});
