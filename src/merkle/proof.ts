/**
 * Proof files: an inclusion proof of one record (execution, object version or checkpoint) against a signed tree
 * head, and a consistency proof between two tree sizes. A proof file holds everything a third
 * party needs except the public key: the record in its canonical form, the leaf index, the audit
 * path and the signed head. {@link verifyProofFile} checks one offline with only `node:crypto`.
 *
 * Format (`format: "provenant-proof"`, `v: 1`), hashes as `sha256:<hex>`:
 *   inclusion:   { type: "inclusion", record: { type, id, canonical }, leafIndex, treeSize, path, head }
 *   consistency: { type: "consistency", oldSize, newSize, oldRoot, newRoot, path, oldHead?, newHead? }
 */
import type { KeyObject } from 'node:crypto';
import { ProvenantError } from '../errors.js';
import { canonicalize, hashFromBytes, hashToBytes, sha256, type ContentHash, type JsonValue } from '../hash/canonical.js';
import { canonicalCheckpoint, canonicalObjectVersion, canonicalRecord } from '../hash/record-hash.js';
import { isUuid, uuidToBytes } from '../ids.js';
import type { Store } from '../store/store.js';
import { merkleSource, type HeadRow, type MerkleSource } from './source.js';
import { verifyHeadSignature, type SignedTreeHead } from './head.js';
import { consistencyProof, inclusionProof, leafHash, rootOf, verifyConsistency, verifyInclusion } from './tree.js';

/** An inclusion proof file. */
export interface InclusionProofFile {
  readonly format: 'provenant-proof';
  readonly v: 1;
  readonly type: 'inclusion';
  readonly record: { readonly type: 'execution' | 'checkpoint' | 'object version'; readonly id: string; readonly canonical: JsonValue };
  readonly leafIndex: number;
  readonly treeSize: number;
  readonly path: readonly ContentHash[];
  readonly head: SignedTreeHead;
}

/** A consistency proof file. */
export interface ConsistencyProofFile {
  readonly format: 'provenant-proof';
  readonly v: 1;
  readonly type: 'consistency';
  readonly oldSize: number;
  readonly newSize: number;
  readonly oldRoot: ContentHash;
  readonly newRoot: ContentHash;
  readonly path: readonly ContentHash[];
  /** The signed heads of those sizes, when the store has them. */
  readonly oldHead?: SignedTreeHead;
  readonly newHead?: SignedTreeHead;
}

/** Either proof file. */
export type ProofFile = InclusionProofFile | ConsistencyProofFile;

function toHead(h: HeadRow): SignedTreeHead {
  return {
    treeSize: h.tree_size,
    rootHash: hashFromBytes(h.root),
    timestampUs: h.timestamp,
    keyId: h.key_id === null ? null : hashFromBytes(h.key_id),
    signature: h.signature === null ? null : h.signature.toString('base64'),
    ...(h.checkpoint_id === null ? {} : { checkpointId: h.checkpoint_id }),
  };
}

/** Every leaf hash of the log in order, and where a record sits in it. */
async function readLeaves(source: MerkleSource, find?: (type: string, key: Buffer | number) => boolean): Promise<{ leaves: Buffer[]; index: number }> {
  const leaves: Buffer[] = [];
  let index = -1;
  for (const s of await source.segments()) {
    for (const r of await source.records(s)) {
      if (r.recordHash === null) continue;
      if (index < 0 && find?.(r.type, r.key) === true) index = leaves.length;
      leaves.push(leafHash(r.recordHash));
    }
  }
  return { leaves, index };
}

/** The latest signed tree head of a store, or undefined before its first COMPLETE checkpoint. */
export async function latestHead(store: Store): Promise<SignedTreeHead | undefined> {
  const heads = await merkleSource(store).heads();
  const last = heads[heads.length - 1];
  return last === undefined ? undefined : toHead(last);
}

/**
 * The inclusion proof of an execution or checkpoint (by id) against the latest signed head.
 * @throws ProvenantError NOT_FOUND (no such record), INPUT_INVALID (not yet covered by a signed head)
 */
export async function proveInclusion(store: Store, recordId: string): Promise<InclusionProofFile> {
  const source = merkleSource(store);
  const heads = await source.heads();
  const head = heads[heads.length - 1];
  let canonical: JsonValue;
  let type: 'execution' | 'checkpoint' | 'object version';
  let match: (t: string, key: Buffer | number) => boolean;
  const execution = isUuid(recordId) ? await store.getExecution(recordId) : undefined;
  if (execution !== undefined) {
    type = 'execution';
    canonical = canonicalRecord(execution);
    const key = uuidToBytes(recordId);
    match = (t, k) => t === 'execution' && Buffer.isBuffer(k) && k.equals(key);
  } else if (isUuid(recordId) && (await store.getObjectVersion(recordId)) !== undefined) {
    const v = (await store.getObjectVersion(recordId))!;
    type = 'object version';
    canonical = canonicalObjectVersion(v);
    const key = uuidToBytes(recordId);
    match = (t, k) => t === 'object version' && Buffer.isBuffer(k) && k.equals(key);
  } else {
    const c = await store.getCheckpoint(recordId);
    if (c === undefined) {
      throw new ProvenantError('NOT_FOUND', `no execution, object version or checkpoint ${recordId} in ${store.location}`, {
        hint: 'List executions with `provenant executions`, checkpoints with `provenant checkpoints`.',
        context: { recordId },
      });
    }
    if (c.end === null) {
      throw new ProvenantError('INPUT_INVALID', `checkpoint ${recordId} has not ended: it is not in the log yet`, { context: { checkpointId: recordId } });
    }
    type = 'checkpoint';
    canonical = canonicalCheckpoint(c, c.end);
    const seq = await source.checkpointSeq(recordId);
    match = (t, k) => t === 'checkpoint' && k === seq;
  }
  const { leaves, index } = await readLeaves(source, match);
  if (index < 0) {
    throw new ProvenantError('NOT_FOUND', `${type} ${recordId} is not in the store's Merkle log`, {
      hint: 'Run `provenant verify`: a record missing from the log means the store was changed underneath.',
      context: { recordId },
    });
  }
  if (head === undefined || index >= head.tree_size) {
    throw new ProvenantError('INPUT_INVALID', `${type} ${recordId} (leaf ${index}) is not yet covered by a signed tree head`, {
      hint: 'A signed head is recorded with every COMPLETE checkpoint: prove it after the next one completes.',
      context: { recordId, leafIndex: index, latestHeadSize: head?.tree_size ?? 0 },
    });
  }
  return {
    format: 'provenant-proof',
    v: 1,
    type: 'inclusion',
    record: { type, id: recordId, canonical },
    leafIndex: index,
    treeSize: head.tree_size,
    path: inclusionProof(leaves, index, head.tree_size).map(hashFromBytes),
    head: toHead(head),
  };
}

/**
 * The consistency proof between tree sizes `oldSize` and `newSize` (default: the latest signed head).
 * @throws ProvenantError INPUT_INVALID when the sizes are out of order or beyond the log
 */
export async function proveConsistency(store: Store, oldSize: number, newSize?: number): Promise<ConsistencyProofFile> {
  const source = merkleSource(store);
  const heads = await source.heads();
  const { leaves } = await readLeaves(source);
  const to = newSize ?? heads[heads.length - 1]?.tree_size ?? leaves.length;
  if (!Number.isSafeInteger(oldSize) || !Number.isSafeInteger(to) || oldSize < 0 || oldSize > to || to > leaves.length) {
    throw new ProvenantError('INPUT_INVALID', `no consistency proof from size ${oldSize} to size ${to}: the log has ${leaves.length} leaves`, {
      hint: 'Give two tree sizes, the old one first, at most the log size (see `provenant verify` or a tree head).',
      context: { oldSize, newSize: to, treeSize: leaves.length },
    });
  }
  const oldHead = heads.find((h) => h.tree_size === oldSize);
  const newHead = [...heads].reverse().find((h) => h.tree_size === to);
  return {
    format: 'provenant-proof',
    v: 1,
    type: 'consistency',
    oldSize,
    newSize: to,
    oldRoot: hashFromBytes(rootOf(leaves, 0, oldSize)),
    newRoot: hashFromBytes(rootOf(leaves, 0, to)),
    path: consistencyProof(leaves, oldSize, to).map(hashFromBytes),
    ...(oldHead === undefined ? {} : { oldHead: toHead(oldHead) }),
    ...(newHead === undefined ? {} : { newHead: toHead(newHead) }),
  };
}

/** The outcome of {@link verifyProofFile}. */
export interface ProofCheck {
  readonly valid: boolean;
  /** Why it is not valid; or what was proven. */
  readonly reason: string;
}

const bytes = (h: string): Buffer => hashToBytes(h);

/**
 * Check a proof file offline. `record`: the record as the verifier has it (canonical JSON value);
 * by default the one inside the proof file. `publicKey`: the store's exported public key.
 */
export function verifyProofFile(proof: ProofFile, publicKey: KeyObject, record?: JsonValue): ProofCheck {
  try {
    if (proof.format !== 'provenant-proof' || proof.v !== 1) return { valid: false, reason: 'not a provenant proof file (format/version)' };
    if (proof.type === 'inclusion') {
      const rec = record ?? proof.record.canonical;
      const r = rec as { id?: unknown; checkpointId?: unknown; versionId?: unknown };
      const recordId = r.id ?? r.checkpointId ?? r.versionId;
      if (recordId !== proof.record.id) return { valid: false, reason: `the record is ${String(recordId)}, the proof is for ${proof.record.id}` };
      const entry = bytes(sha256(canonicalize(rec)));
      if (proof.head.treeSize !== proof.treeSize) return { valid: false, reason: 'the proof and its head are for different tree sizes' };
      if (!verifyHeadSignature(proof.head, publicKey)) return { valid: false, reason: 'the tree head is not signed by this public key' };
      if (!verifyInclusion(proof.leafIndex, proof.treeSize, leafHash(entry), proof.path.map(bytes), bytes(proof.head.rootHash))) {
        return { valid: false, reason: `the record does not hash to leaf ${proof.leafIndex} of the signed tree of ${proof.treeSize} (record or proof changed)` };
      }
      return { valid: true, reason: `${proof.record.type} ${proof.record.id} is leaf ${proof.leafIndex} of the tree of ${proof.treeSize} signed at ${new Date(proof.head.timestampUs / 1000).toISOString()}` };
    }
    if (proof.type === 'consistency') {
      for (const [head, size, root] of [
        [proof.oldHead, proof.oldSize, proof.oldRoot],
        [proof.newHead, proof.newSize, proof.newRoot],
      ] as const) {
        if (head === undefined) continue;
        if (head.treeSize !== size || head.rootHash !== root) return { valid: false, reason: `the head of size ${head.treeSize} does not match the proof's size ${size} and root` };
        if (!verifyHeadSignature(head, publicKey)) return { valid: false, reason: `the tree head of size ${size} is not signed by this public key` };
      }
      if (!verifyConsistency(proof.oldSize, proof.newSize, bytes(proof.oldRoot), bytes(proof.newRoot), proof.path.map(bytes))) {
        return { valid: false, reason: `the tree of ${proof.oldSize} is not proven a prefix of the tree of ${proof.newSize}` };
      }
      const signed = proof.oldHead !== undefined && proof.newHead !== undefined ? ' (both heads signed)' : ' (roots not both covered by a signed head)';
      return { valid: true, reason: `the tree of ${proof.oldSize} leaves is a prefix of the tree of ${proof.newSize}${signed}` };
    }
    return { valid: false, reason: 'unknown proof type' };
  } catch (err) {
    return { valid: false, reason: `malformed proof: ${(err as Error).message}` };
  }
}
