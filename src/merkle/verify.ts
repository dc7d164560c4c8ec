/**
 * `provenant verify`: proves a store intact or names what changed. It re-hashes every execution
 * and checkpoint record, rebuilds the Merkle tree from the records as they are now (segment by
 * segment, against the frontier each segment logged, so that a change is pinned to its records),
 * checks every tree head (its signature, and that the rebuilt tree has its root at its size),
 * checks every blob and code artifact a record names (present, bytes matching their hash), and,
 * given a tree head kept outside the store, detects a store rolled back or truncated.
 *
 * When a record's fields no longer match its stored record hash, the verifier searches for the
 * single change that explains it (another run, step version, context or stream; a flipped bit or
 * changed byte in a hash, a number or the encodings; another execution's id, i.e. two records
 * swapped; another stored value as output, params or an input) and names the field and its recorded value; a change outside that space is reported
 * as a changed record without the field.
 *
 * Trust: everything in the store folder, the signing key included, is in reach of whoever can
 * write the folder. A head saved or published elsewhere (`--head`) and the public key exported
 * beforehand (`--key`) are what make rewriting history detectable by a third party.
 */
import type { KeyObject } from 'node:crypto';
import { createPublicKey } from 'node:crypto';
import { hashFromBytes, sha256, type ContentHash } from '../hash/canonical.js';
import { checkpointRecordHash, executionRecordHash, objectVersionRecordHash, type HashedExecution } from '../hash/record-hash.js';
import { uuidFromBytes } from '../ids.js';
import { BlobCorruptError, BlobMissingError } from '../errors.js';
import { LEAF_CHECKPOINT, LEAF_EXECUTIONS } from './segments.js';
import { decodeEncodings } from '../store/sqlite/packed-batch.js';
import type { Store } from '../store/store.js';
import { merkleSource, type LeafRecord, type Lookups, type RawExecution, type SegmentRow } from './source.js';
import { keyId, verifyHeadSignature, type SignedTreeHead } from './head.js';
import { Frontier, leafHash } from './tree.js';

/** What kind of change a finding is. */
export type FindingKind =
  | 'record-changed'
  | 'record-deleted'
  | 'record-inserted'
  | 'log-changed'
  | 'head-invalid'
  | 'head-mismatch'
  | 'rolled-back'
  | 'blob-missing'
  | 'blob-corrupt'
  | 'artifact-missing'
  | 'artifact-corrupt';

/** One thing `verify` found changed. */
export interface Finding {
  readonly kind: FindingKind;
  readonly message: string;
  /** The record concerned, when one is known. */
  readonly record?: { readonly type: 'execution' | 'checkpoint' | 'object version'; readonly id: string };
  /** The changed field (record field name), when it could be told. */
  readonly field?: string;
  /** The field's recorded value, as found by the search, when it could be told. */
  readonly recorded?: string | number | null;
  /** The field's value now. */
  readonly now?: string | number | null;
  /** The blob or artifact concerned. */
  readonly hash?: ContentHash;
  /** The tree head concerned. */
  readonly treeSize?: number;
}

/** The result of {@link verifyStore}. */
export interface VerifyReport {
  readonly intact: boolean;
  readonly executions: number;
  readonly checkpoints: number;
  readonly objectVersions: number;
  /** Leaves of the tree rebuilt from the records as they are now. */
  readonly treeSize: number;
  readonly rootHash: ContentHash;
  readonly heads: number;
  readonly blobs: number;
  /** The latest head in the store, as it would be saved for a later `--head`. */
  readonly latestHead: SignedTreeHead | null;
  readonly findings: readonly Finding[];
}

/** Options of {@link verifyStore}. */
export interface VerifyOptions {
  /** A head kept outside the store: the store must still contain exactly that tree as a prefix. */
  readonly head?: SignedTreeHead;
  /** The public key heads must be signed with (default: the store's own recorded keys). */
  readonly publicKey?: KeyObject;
  /** Skip reading every blob (only check presence). Default: false. */
  readonly skipBlobBytes?: boolean;
}

/** The record hash a raw execution row hashes to now, or undefined when it cannot be read as a record. */
function rowRecordHash(r: RawExecution, l: Lookups): string | undefined {
  const e = rowRecord(r, l);
  if (e === undefined) return undefined;
  try {
    return executionRecordHash(e);
  } catch {
    return undefined;
  }
}

/** A raw execution row as the record its hash covers, or undefined when it cannot be read as one. */
function rowRecord(r: RawExecution, l: Lookups): HashedExecution | undefined {
  const runId = l.runs.get(r.run);
  const step = l.steps.get(r.step_version);
  const contextHash = l.contexts.get(r.context);
  const streamId = r.stream === null ? null : l.streams.get(r.stream);
  if (runId === undefined || step === undefined || contextHash === undefined || streamId === undefined) return undefined;
  if (r.id.length !== 16 || r.inputs.length % 32 !== 0 || (r.status !== 0 && r.status !== 1)) return undefined;
  for (const h of [r.output, r.params, r.error, r.nondeterminism]) if (h !== null && h.length !== 32) return undefined;
  const inputHashes: ContentHash[] = [];
  for (let o = 0; o < r.inputs.length; o += 32) inputHashes.push(hashFromBytes(r.inputs.subarray(o, o + 32)));
  const enc = decodeEncodings(r.encodings, inputHashes.length);
  const e: HashedExecution = {
    id: uuidFromBytes(r.id),
    runId,
    functionId: step.stepId,
    functionVersionHash: step.version,
    inputHashes,
    inputEncodings: enc.inputs,
    outputHash: r.output === null ? null : hashFromBytes(r.output),
    outputEncoding: enc.output,
    paramsHash: hashFromBytes(r.params),
    contextHash,
    startedUs: r.started,
    endedUs: r.started + r.duration,
    status: r.status === 0 ? 'ok' : 'failed',
    errorHash: r.error === null ? null : hashFromBytes(r.error),
    nondeterminismHash: r.nondeterminism === null ? null : hashFromBytes(r.nondeterminism),
    streamId,
    offset: r.offset,
  };
  return e;
}

/** Record field names of the execution columns. */
const FIELD: Record<string, string> = {
  id: 'id',
  run: 'runId',
  step_version: 'functionVersionHash',
  inputs: 'inputHashes',
  output: 'outputHash',
  params: 'paramsHash',
  context: 'contextHash',
  started: 'startedUs',
  duration: 'endedUs',
  status: 'status',
  error: 'errorHash',
  nondeterminism: 'nondeterminismHash',
  encodings: 'inputEncodings/outputEncoding',
  stream: 'streamId',
  offset: 'offset',
};

type Column = keyof RawExecution;

/** Single-byte changes of a 64-bit integer (other than single bits). */
function* intVariants(v: number): Generator<number> {
  const b = BigInt.asUintN(64, BigInt(v));
  for (let byte = 0n; byte < 8n; byte++) {
    for (let x = 1n; x < 256n; x++) {
      if ((x & (x - 1n)) === 0n) continue; // single bits done above
      yield Number(BigInt.asIntN(64, b ^ (x << (byte * 8n))));
    }
  }
}

/** Single-byte changes of a byte string. */
function* byteVariants(buf: Buffer): Generator<Buffer> {
  for (let i = 0; i < buf.length; i++) {
    const c = Buffer.from(buf);
    for (let x = 1; x < 256; x++) {
      c[i] = (buf[i] as number) ^ x;
      yield c;
    }
  }
}

/**
 * The single column change that explains why a row no longer hashes to its stored record hash:
 * the column and its recorded value, or undefined. Cheap and likely candidates first: status and
 * references; the id of another changed row (a swap); a hash field that names no stored blob
 * (a flipped byte in it); a flipped bit in a number; another stored value; then wider searches.
 */
function explainExecution(
  row: RawExecution,
  l: Lookups,
  hints: { changedIds: () => Buffer[]; runIds: () => Buffer[]; storedValues: () => Buffer[]; hasBlob: (b: Buffer) => boolean },
): { column: Column; recorded: unknown } | undefined {
  const target = hashFromBytes(row.record_hash);
  const base = rowRecord(row, l);
  // Patch one field of the record as read (fast); columns that need lookups go through the row.
  const tryValue = (column: Column, value: unknown): boolean => {
    if (base === undefined) return rowRecordHash({ ...row, [column]: value } as RawExecution, l) === target;
    let e: HashedExecution;
    switch (column) {
      case 'output':
        e = { ...base, outputHash: value === null ? null : hashFromBytes(value as Buffer) };
        break;
      case 'params':
        e = { ...base, paramsHash: hashFromBytes(value as Buffer) };
        break;
      case 'started':
        e = { ...base, startedUs: value as number, endedUs: (value as number) + row.duration };
        break;
      case 'duration':
        e = { ...base, endedUs: row.started + (value as number) };
        break;
      case 'offset':
        e = { ...base, offset: value as number | null };
        break;
      case 'id':
        e = { ...base, id: uuidFromBytes(value as Buffer) };
        break;
      default:
        return rowRecordHash({ ...row, [column]: value } as RawExecution, l) === target;
    }
    try {
      return executionRecordHash(e) === target;
    } catch {
      return false;
    }
  };
  if (tryValue('status', row.status === 0 ? 1 : 0)) return { column: 'status', recorded: row.status === 0 ? 1 : 0 };
  const refs: [Column, Iterable<number | null>][] = [
    ['run', l.runs.keys()],
    ['step_version', l.steps.keys()],
    ['context', l.contexts.keys()],
    ['stream', [...l.streams.keys(), null]],
  ];
  for (const [column, values] of refs) {
    for (const v of values) if (v !== row[column] && tryValue(column, v)) return { column, recorded: v };
  }
  for (const id of hints.changedIds()) if (!id.equals(row.id) && tryValue('id', id)) return { column: 'id', recorded: uuidFromBytes(id) };
  const hashColumns = ['output', 'params', 'error', 'nondeterminism'] as const;
  const dangling = (column: (typeof hashColumns)[number] | 'inputs'): boolean => {
    const v = row[column];
    if (v === null) return false;
    for (let o = 0; o < v.length; o += 32) if (!hints.hasBlob(v.subarray(o, o + 32))) return true;
    return false;
  };
  const bytesSearch = (column: (typeof hashColumns)[number] | 'inputs' | 'encodings'): { column: Column; recorded: unknown } | undefined => {
    const v = row[column];
    if (v === null) return undefined;
    for (const w of byteVariants(v)) if (tryValue(column, w)) return { column, recorded: Buffer.from(w).toString('hex') };
    return undefined;
  };
  const first = [...hashColumns, 'inputs' as const].filter(dangling);
  for (const column of first) {
    const found = bytesSearch(column);
    if (found !== undefined) return found;
  }
  for (const column of ['started', 'duration', 'offset'] as const) {
    const v = row[column];
    if (v === null) continue;
    const b = BigInt.asUintN(64, BigInt(v));
    for (let i = 0n; i < 64n; i++) {
      const w = Number(BigInt.asIntN(64, b ^ (1n << i)));
      if (tryValue(column, w)) return { column, recorded: w };
    }
  }
  // Another stored value in a value field (output, params, one of the inputs).
  const stored = hints.storedValues();
  for (const column of ['output', 'params'] as const) {
    for (const v of stored) if (tryValue(column, v)) return { column, recorded: v.toString('hex') };
  }
  for (let o = 0; o < row.inputs.length; o += 32) {
    const w = Buffer.from(row.inputs);
    for (const v of stored) {
      v.copy(w, o);
      if (tryValue('inputs', w)) return { column: 'inputs', recorded: w.toString('hex') };
    }
  }
  for (const column of ['started', 'duration', 'offset'] as const) {
    const v = row[column];
    if (v === null) continue;
    for (const w of intVariants(v)) if (tryValue(column, w)) return { column, recorded: w };
  }
  for (const column of [...hashColumns, 'inputs' as const, 'encodings' as const]) {
    if ((first as string[]).includes(column)) continue;
    const found = bytesSearch(column);
    if (found !== undefined) return found;
  }
  if (row.encodings !== null && tryValue('encodings', null)) return { column: 'encodings', recorded: null };
  for (const id of hints.runIds()) if (!id.equals(row.id) && tryValue('id', id)) return { column: 'id', recorded: uuidFromBytes(id) };
  return undefined;
}

function describeValue(column: Column, v: unknown, l: Lookups): string | number | null {
  if (v === null || v === undefined) return null;
  if (Buffer.isBuffer(v)) return column === 'id' ? uuidFromBytes(v) : v.length === 32 ? hashFromBytes(v) : v.toString('hex');
  if (typeof v === 'string') return v.length === 64 ? `sha256:${v}` : v;
  const n = v as number;
  switch (column) {
    case 'run':
      return l.runs.get(n) ?? n;
    case 'step_version': {
      const s = l.steps.get(n);
      return s === undefined ? n : `${s.stepId}@${s.version}`;
    }
    case 'context':
      return l.contexts.get(n) ?? n;
    case 'stream':
      return l.streams.get(n) ?? n;
    case 'status':
      return n === 0 ? 'ok' : n === 1 ? 'failed' : n;
    default:
      return n;
  }
}

/** Verify a store (SQLite or PostgreSQL). Never throws for tampering: findings say what changed. */
export async function verifyStore(store: Store, options: VerifyOptions = {}): Promise<VerifyReport> {
  const source = merkleSource(store);
  const findings: Finding[] = [];
  const l: Lookups = await source.lookups();
  const referenced = new Map<string, string>(); // blob hex → what refers to it (first seen)
  const refer = (b: Buffer | null, what: string): void => {
    if (b !== null && b.length === 32) {
      const k = b.toString('hex');
      if (!referenced.has(k)) referenced.set(k, what);
    }
  };

  // 1. Executions: each row against its own record hash.
  const changed = new Map<string, RawExecution>(); // id hex → row whose fields do not match its record hash
  let executions = 0;
  for await (const row of source.executions()) {
    executions++;
    const now = rowRecordHash(row, l);
    if (now === undefined || row.record_hash.length !== 32 || now !== hashFromBytes(row.record_hash)) changed.set(row.id.toString('hex'), row);
    const what = `execution ${row.id.length === 16 ? uuidFromBytes(row.id) : row.id.toString('hex')}`;
    for (let o = 0; o < row.inputs.length; o += 32) refer(row.inputs.subarray(o, o + 32), what);
    refer(row.output, what);
    refer(row.params, what);
    refer(row.error, what);
    refer(row.nondeterminism, what);
  }

  // 2. Checkpoints: each ended one against its record hash.
  let checkpoints = 0;
  for await (const row of source.checkpoints()) {
    checkpoints++;
    const what = `checkpoint ${row.id}`;
    for (const v of row.values) refer(v, what);
    const c = row.record;
    if (c.end === null) continue;
    let now: string | undefined;
    try {
      now = checkpointRecordHash(c, c.end);
    } catch {
      now = undefined;
    }
    if (row.recordHash === null || now !== hashFromBytes(row.recordHash)) {
      findings.push({
        kind: 'record-changed',
        record: { type: 'checkpoint', id: row.id },
        message: `checkpoint ${row.id}: its fields no longer match its record hash`,
      });
    }
  }

  // 2b. Object versions: each against its record hash; their content is a referenced blob only while kept (policy).
  let versions = 0;
  for (const versionId of await source.objectVersionIds()) {
    versions++;
    const v = await store.getObjectVersion(versionId);
    let now: string | undefined;
    try {
      now = v === undefined ? undefined : objectVersionRecordHash(v);
    } catch {
      now = undefined;
    }
    if (v === undefined || now !== v.recordHash) {
      findings.push({ kind: 'record-changed', record: { type: 'object version', id: versionId }, message: `object version ${versionId}${v === undefined ? '' : ` of ${v.objectId}`}: its fields no longer match its record hash` });
    }
  }

  // 3. The log, segment by segment; the tree rebuilt from the records as they are now.
  const headRows = await source.heads();
  const wanted = new Set<number>(headRows.map((h) => h.tree_size));
  if (options.head !== undefined) wanted.add(options.head.treeSize);
  const rootsAt = new Map<number, Buffer>();
  const actual = new Frontier();
  if (wanted.has(0)) rootsAt.set(0, actual.root());
  let logged = new Frontier();
  let covered = 0;
  const changedIds = (): Buffer[] => [...changed.values()].map((r) => r.id);
  let blobSet: Set<string> | undefined;
  const hasBlob = (b: Buffer): boolean => {
    blobSet ??= new Set(storedValues().map((h) => h.toString('hex')));
    return blobSet.has(b.toString('hex'));
  };
  const storedCache = changed.size > 0 ? await source.blobHashes() : [];
  const storedValues = (): Buffer[] => storedCache;
  const runIdsCache = new Map<number, Buffer[]>();
  for (const row of changed.values()) if (!runIdsCache.has(row.run)) runIdsCache.set(row.run, await source.runExecutionIds(row.run));
  const runIds = (run: number) => (): Buffer[] => runIdsCache.get(run) ?? [];
  const segments = await source.segments();
  for (const s of segments) {
    const records = await source.records(s);
    covered += s.kind === LEAF_EXECUTIONS ? records.filter((r) => r.recordHash !== null).length : 0;
    for (const r of records) {
      if (r.recordHash === null) continue;
      actual.push(leafHash(r.recordHash));
      if (wanted.has(actual.size)) rootsAt.set(actual.size, actual.root());
    }
    const expected = Frontier.decode(s.tree_size, s.frontier);
    const leavesOf = (hashes: (Buffer | null)[]): Frontier => {
      const f = logged.clone();
      for (const h of hashes) if (h !== null) f.push(leafHash(h));
      return f;
    };
    const matches = (f: Frontier): boolean => f.size === expected.size && f.encode().equals(expected.encode());
    const present = records.filter((r) => r.recordHash !== null);
    if (logged.size + s.leaves !== s.tree_size) {
      findings.push({ kind: 'log-changed', message: `log segment ${s.seq}: its sizes do not add up (a segment was removed or edited)`, treeSize: s.tree_size });
    } else if (!matches(leavesOf(present.map((r) => r.recordHash)))) {
      findings.push(...explainSegment(s, records, matches, leavesOf, changed, l));
    }
    // Report fields changed under an intact leaf too (the record hash column still matches the log).
    logged = expected;
  }
  for (const [, row] of changed) {
    // Rows explained above were removed from `changed`; the rest changed but their leaves are intact.
    findings.push(describeChanged(row, l, { changedIds, runIds: runIds(row.run), storedValues, hasBlob }));
  }
  if (covered !== executions) {
    // Executions no segment covers: inserted outside every logged range.
    const inLog = new Set<string>();
    for (const s of segments) for (const r of await source.records(s)) if (r.type === 'execution' && r.recordHash !== null) inLog.add((r.key as Buffer).toString('hex'));
    for await (const key of source.executionIds()) {
      if (!inLog.has(key.toString('hex'))) {
        const id = key.length === 16 ? uuidFromBytes(key) : key.toString('hex');
        findings.push({ kind: 'record-inserted', record: { type: 'execution', id }, message: `execution ${id} is in no part of the log: it was inserted after the fact` });
      }
    }
  }

  // 4. Tree heads: signatures, and the rebuilt tree's root at each head's size.
  const storeKeys = new Map<string, KeyObject>();
  let latestHead: SignedTreeHead | null = null;
  for (const h of headRows) {
    const head: SignedTreeHead = {
      treeSize: h.tree_size,
      rootHash: hashFromBytes(h.root),
      timestampUs: h.timestamp,
      keyId: h.key_id === null ? null : hashFromBytes(h.key_id),
      signature: h.signature === null ? null : h.signature.toString('base64'),
      ...(h.checkpoint_id === null ? {} : { checkpointId: h.checkpoint_id }),
    };
    latestHead = head;
    const where = `tree head ${h.seq} (size ${h.tree_size}${h.checkpoint_id === null ? '' : `, checkpoint ${h.checkpoint_id}`})`;
    let key = options.publicKey;
    if (key === undefined && h.public_key !== null) {
      key = storeKeys.get(h.public_key) ?? createPublicKey(h.public_key);
      storeKeys.set(h.public_key, key);
      if (h.key_id !== null && keyId(key) !== hashFromBytes(h.key_id)) key = undefined;
    }
    if (key === undefined || !verifyHeadSignature(head, key)) {
      findings.push({ kind: 'head-invalid', treeSize: h.tree_size, message: `${where}: its signature does not verify${options.publicKey === undefined ? '' : ' with the given public key'}` });
    }
    const root = rootsAt.get(h.tree_size);
    if (root === undefined || !root.equals(h.root)) {
      findings.push({
        kind: 'head-mismatch',
        treeSize: h.tree_size,
        message: root === undefined ? `${where}: the log has only ${actual.size} leaves now` : `${where}: the records no longer hash to its root`,
      });
    }
  }

  // 5. A head kept outside the store.
  if (options.head !== undefined) {
    const h = options.head;
    const key = options.publicKey ?? [...storeKeys.values()].find((k) => keyId(k) === h.keyId);
    if (key === undefined || !verifyHeadSignature(h, key)) {
      findings.push({ kind: 'head-invalid', treeSize: h.treeSize, message: `the given tree head (size ${h.treeSize}) is not validly signed${key === undefined ? ' by a key this store knows (pass --key)' : ''}` });
    }
    const root = rootsAt.get(h.treeSize);
    if (h.treeSize > actual.size) {
      findings.push({
        kind: 'rolled-back',
        treeSize: h.treeSize,
        message: `the store's log has ${actual.size} leaves, but the given head (signed ${new Date(h.timestampUs / 1000).toISOString()}) covers ${h.treeSize}: the store was rolled back or truncated`,
      });
    } else if (root === undefined || hashFromBytes(root) !== h.rootHash) {
      findings.push({ kind: 'head-mismatch', treeSize: h.treeSize, message: `the store's first ${h.treeSize} leaves no longer hash to the given head's root: history was rewritten` });
    }
  }

  // 6. Blobs and code artifacts.
  let blobs = 0;
  const present = new Set<string>();
  const artifacts = new Map<string, string>();
  for (const s of l.steps.values()) artifacts.set(s.version.slice(7), `${s.stepId} version ${s.version}`);
  for await (const row of source.blobs()) {
    blobs++;
    const hex = row.hash.toString('hex');
    present.add(hex);
    if (options.skipBlobBytes === true && !artifacts.has(hex)) continue;
    const hash = `sha256:${hex}` as ContentHash;
    let problem: 'missing' | 'corrupt' | undefined;
    if (row.inline !== null) {
      if (sha256(row.inline) !== hash) problem = 'corrupt';
    } else {
      try {
        await store.getBlob(hash);
      } catch (err) {
        if (err instanceof BlobMissingError) problem = 'missing';
        else if (err instanceof BlobCorruptError) problem = 'corrupt';
        else throw err;
      }
    }
    if (problem !== undefined) findings.push(blobFinding(hash, problem, artifacts.get(hex), referenced.get(hex)));
  }
  for (const [hex, what] of artifacts) if (!present.has(hex)) findings.push(blobFinding(`sha256:${hex}` as ContentHash, 'missing', what, undefined));
  // Object versions' contents may be absent by policy (materialization, gc: recomputed on demand).
  const recomputable = await source.versionValues();
  for (const [hex, what] of referenced) {
    if (!present.has(hex) && !artifacts.has(hex) && !recomputable.has(hex)) findings.push(blobFinding(`sha256:${hex}` as ContentHash, 'missing', undefined, what));
  }

  return {
    intact: findings.length === 0,
    executions,
    checkpoints,
    objectVersions: versions,
    treeSize: actual.size,
    rootHash: hashFromBytes(actual.root()),
    heads: headRows.length,
    blobs,
    latestHead,
    findings,
  };

  function describeChanged(row: RawExecution, lk: Lookups, hints: Parameters<typeof explainExecution>[2]): Finding {
    const id = row.id.length === 16 ? uuidFromBytes(row.id) : row.id.toString('hex');
    const why = explainExecution(row, lk, hints);
    if (why === undefined) {
      return { kind: 'record-changed', record: { type: 'execution', id }, message: `execution ${id}: its fields no longer match its record hash` };
    }
    const recorded = describeValue(why.column, why.recorded, lk);
    const now = describeValue(why.column, row[why.column], lk);
    const field = FIELD[why.column] ?? why.column;
    const swapped = why.column === 'id' ? ` (it holds execution ${String(recorded)}'s record: two records swapped?)` : '';
    return {
      kind: 'record-changed',
      record: { type: 'execution', id },
      field,
      recorded,
      now,
      message: `execution ${id}: ${field} changed from ${JSON.stringify(recorded)} to ${JSON.stringify(now)}${swapped}`,
    };
  }
}

/** Why a segment's records no longer give the frontier it logged. */
function explainSegment(
  s: SegmentRow,
  records: LeafRecord[],
  matches: (f: Frontier) => boolean,
  leavesOf: (hashes: (Buffer | null)[]) => Frontier,
  changed: Map<string, RawExecution>,
  l: Lookups,
): Finding[] {
  const where =
    s.kind === LEAF_CHECKPOINT
      ? `checkpoint ${records[0]?.id ?? s.scope}`
      : s.kind !== LEAF_EXECUTIONS
        ? `object versions #${s.scope}..#${s.scope + s.leaves - 1}`
        : `run ${l.runs.get(s.scope) ?? s.scope}'s executions ${s.first === null ? '(listed)' : `${uuidFromBytes(s.first)}..${uuidFromBytes(s.last as Buffer)}`}`;
  const present = records.filter((r) => r.recordHash !== null);
  const out: Finding[] = [];
  const missing = records.filter((r) => r.recordHash === null);
  for (const r of missing) {
    out.push({ kind: 'record-deleted', record: { type: r.type, id: r.id }, message: `${r.type} ${r.id} was deleted (it is a leaf of the log)` });
  }
  if (missing.length > 0) return out;
  if (present.length < s.leaves) {
    const n = s.leaves - present.length;
    return [{ kind: 'record-deleted', message: `${n} record${n === 1 ? '' : 's'} of ${where} ${n === 1 ? 'was' : 'were'} deleted (the log has ${s.leaves}, the store ${present.length})` }];
  }
  if (present.length > s.leaves) {
    // Which record is extra: the one whose removal gives back the logged frontier.
    if (present.length - s.leaves === 1 && present.length <= 5000) {
      const hashes = present.map((r) => leafHash(r.recordHash as Buffer));
      const prefix = leavesOf([]);
      for (let j = 0; j < present.length; j++) {
        const f = prefix.clone();
        for (let i = j + 1; i < hashes.length; i++) f.push(hashes[i] as Buffer);
        prefix.push(hashes[j] as Buffer);
        if (matches(f)) {
          const r = present[j]!;
          changed.delete((r.key as Buffer).toString('hex'));
          return [{ kind: 'record-inserted', record: { type: r.type, id: r.id }, message: `${r.type} ${r.id} was inserted into ${where} after the fact` }];
        }
      }
    }
    const n = present.length - s.leaves;
    return [{ kind: 'record-inserted', message: `${n} record${n === 1 ? '' : 's'} inserted into ${where} after the fact` }];
  }
  // As many records as leaves: which changed.
  const mine = present.filter((r) => r.type === 'execution' && changed.has((r.key as Buffer).toString('hex')));
  if (mine.length > 0) {
    // Fields intact, record hash column edited: putting the hash of the fields back restores the log.
    for (const r of mine) {
      const row = changed.get((r.key as Buffer).toString('hex'))!;
      const fields = rowRecordHash(row, l);
      if (fields !== undefined) {
        const trial = present.map((p) => (p === r ? Buffer.from(fields.slice(7), 'hex') : p.recordHash));
        if (matches(leavesOf(trial))) {
          changed.delete((r.key as Buffer).toString('hex'));
          out.push({
            kind: 'record-changed',
            record: { type: 'execution', id: r.id },
            field: 'recordHash',
            recorded: fields,
            now: hashFromBytes(row.record_hash),
            message: `execution ${r.id}: its stored record hash was changed (its fields are intact)`,
          });
        }
      }
    }
    return out; // the rest are described with their fields by the caller
  }
  if (s.kind === LEAF_CHECKPOINT) return []; // reported as a changed checkpoint record already, or below
  return [{ kind: 'record-changed', message: `${where}: a record was changed and its record hash recomputed (they no longer hash to the logged tree)` }];
}

function blobFinding(hash: ContentHash, problem: 'missing' | 'corrupt', artifact: string | undefined, referrer: string | undefined): Finding {
  if (artifact !== undefined) {
    return {
      kind: problem === 'missing' ? 'artifact-missing' : 'artifact-corrupt',
      hash,
      message: `the code artifact of step ${artifact} is ${problem === 'missing' ? 'missing' : 'changed: its bytes no longer match its hash'}`,
    };
  }
  return {
    kind: problem === 'missing' ? 'blob-missing' : 'blob-corrupt',
    hash,
    message: `blob ${hash}${referrer === undefined ? '' : ` (named by ${referrer})`} is ${problem === 'missing' ? 'missing' : 'changed: its bytes no longer match its hash'}`,
  };
}

