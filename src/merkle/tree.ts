/**
 * Merkle tree hashing, proofs and their verification, per RFC 9162 §2.1 (Certificate Transparency
 * 2.0): leaf hash = SHA-256(0x00 ‖ entry), node hash = SHA-256(0x01 ‖ left ‖ right), the root of
 * the empty tree is SHA-256 of the empty string. A tree of n leaves splits at k, the largest power
 * of two below n. Hashes are 32-byte Buffers here; `sha256:<hex>` text only at the edges.
 *
 * Pure functions, no store: the log (`log.ts`) and the proof commands build on them, and third
 * parties can check a proof with only these few functions.
 */
import { createHash } from 'node:crypto';
import { sha256Bytes } from '../hash/canonical.js';

const LEAF = Buffer.from([0]);

/** SHA-256 of the empty string: the root of the empty tree. */
export const EMPTY_ROOT: Buffer = createHash('sha256').digest();

// One-shot hashing over a reused scratch buffer: about twice as fast as a Hash object per call.
const leafScratch = Buffer.alloc(33);
const nodeScratch = Buffer.alloc(65, 1);

/** The leaf hash of an entry: SHA-256(0x00 ‖ entry). */
export function leafHash(entry: Uint8Array): Buffer {
  if (entry.byteLength === 32) {
    leafScratch.set(entry, 1);
    return sha256Bytes(leafScratch);
  }
  return createHash('sha256').update(LEAF).update(entry).digest();
}

/** The hash of an interior node: SHA-256(0x01 ‖ left ‖ right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  if (left.byteLength === 32 && right.byteLength === 32) {
    nodeScratch.set(left, 1);
    nodeScratch.set(right, 33);
    return sha256Bytes(nodeScratch);
  }
  return createHash('sha256').update(Buffer.from([1])).update(left).update(right).digest();
}

/** The largest power of two strictly below n (n ≥ 2). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * Roots of perfect subtrees already computed, per array of leaves: they never change as leaves are
 * appended, so proofs over the same leaves reuse them (leaves already in an array must not be edited).
 */
const perfect = new WeakMap<readonly Uint8Array[], Map<number, Buffer>>();

/** The root hash of leaves [from, to) given their leaf hashes (RFC 9162 MTH). */
export function rootOf(leaves: readonly Uint8Array[], from = 0, to = leaves.length): Buffer {
  const n = to - from;
  if (n === 0) return EMPTY_ROOT;
  if (n === 1) return Buffer.from(leaves[from] as Uint8Array);
  const isPerfect = (n & (n - 1)) === 0 && n >= 4;
  let memo: Map<number, Buffer> | undefined;
  if (isPerfect) {
    memo = perfect.get(leaves);
    if (memo === undefined) perfect.set(leaves, (memo = new Map()));
    const hit = memo.get(from * 64 + Math.log2(n));
    if (hit !== undefined) return hit;
  }
  const k = split(n);
  const r = nodeHash(rootOf(leaves, from, from + k), rootOf(leaves, from + k, to));
  memo?.set(from * 64 + Math.log2(n), r);
  return r;
}

/** The inclusion proof of leaf `index` in the tree of the first `size` leaves (RFC 9162 PATH). */
export function inclusionProof(leaves: readonly Uint8Array[], index: number, size = leaves.length): Buffer[] {
  if (!Number.isSafeInteger(index) || index < 0 || index >= size || size > leaves.length) {
    throw new RangeError(`leaf ${index} is not in a tree of ${size} leaves`);
  }
  const path: Buffer[] = [];
  const walk = (m: number, from: number, to: number): void => {
    const n = to - from;
    if (n <= 1) return;
    const k = split(n);
    if (m < k) {
      walk(m, from, from + k);
      path.push(rootOf(leaves, from + k, to));
    } else {
      walk(m - k, from + k, to);
      path.push(rootOf(leaves, from, from + k));
    }
  };
  walk(index, 0, size);
  return path;
}

/** The consistency proof between the trees of the first `oldSize` and `newSize` leaves (RFC 9162 PROOF). */
export function consistencyProof(leaves: readonly Uint8Array[], oldSize: number, newSize = leaves.length): Buffer[] {
  if (!Number.isSafeInteger(oldSize) || oldSize < 0 || oldSize > newSize || newSize > leaves.length) {
    throw new RangeError(`no consistency proof from size ${oldSize} to size ${newSize}`);
  }
  if (oldSize === 0 || oldSize === newSize) return [];
  const proof: Buffer[] = [];
  const sub = (m: number, from: number, to: number, complete: boolean): void => {
    const n = to - from;
    if (m === n) {
      if (!complete) proof.push(rootOf(leaves, from, to));
      return;
    }
    const k = split(n);
    if (m <= k) {
      sub(m, from, from + k, complete);
      proof.push(rootOf(leaves, from + k, to));
    } else {
      sub(m - k, from + k, to, false);
      proof.push(rootOf(leaves, from, from + k));
    }
  };
  sub(oldSize, 0, newSize, true);
  return proof;
}

/**
 * The root an inclusion proof leads to from a leaf hash (RFC 9162 §2.1.3.2), or undefined when
 * the proof has the wrong shape for `index` and `size`.
 */
export function rootFromInclusionProof(index: number, size: number, leaf: Uint8Array, proof: readonly Uint8Array[]): Buffer | undefined {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return undefined;
  let fn = index;
  let sn = size - 1;
  let r: Buffer = Buffer.from(leaf);
  for (const p of proof) {
    if (p.byteLength !== 32 || sn === 0) return undefined;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : undefined;
}

/** True when `proof` proves the leaf hash at `index` in the tree of `size` leaves with root `root`. */
export function verifyInclusion(index: number, size: number, leaf: Uint8Array, proof: readonly Uint8Array[], root: Uint8Array): boolean {
  const r = rootFromInclusionProof(index, size, leaf, proof);
  return r !== undefined && r.equals(root);
}

/**
 * True when `proof` proves the tree of `oldSize` leaves with root `oldRoot` is a prefix of the tree
 * of `newSize` leaves with root `newRoot` (RFC 9162 §2.1.4.2).
 */
export function verifyConsistency(
  oldSize: number,
  newSize: number,
  oldRoot: Uint8Array,
  newRoot: Uint8Array,
  proof: readonly Uint8Array[],
): boolean {
  if (!Number.isSafeInteger(oldSize) || !Number.isSafeInteger(newSize) || oldSize < 0 || oldSize > newSize) return false;
  if (proof.some((p) => p.byteLength !== 32)) return false;
  if (oldSize === newSize) return proof.length === 0 && Buffer.from(oldRoot).equals(newRoot);
  if (oldSize === 0) return proof.length === 0 && Buffer.from(oldRoot).equals(EMPTY_ROOT);
  let path = [...proof];
  // When the old size is a power of two, the old root is the first node of the path.
  if ((oldSize & (oldSize - 1)) === 0) path = [Buffer.from(oldRoot), ...path];
  if (path.length === 0) return false;
  let fn = oldSize - 1;
  let sn = newSize - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr: Buffer = Buffer.from(path[0] as Uint8Array);
  let sr: Buffer = Buffer.from(path[0] as Uint8Array);
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && fr.equals(oldRoot) && sr.equals(newRoot);
}

/**
 * The compact range of a tree: the roots of its perfect subtrees, largest first (one per set bit
 * of its size). Enough to append leaves and compute the root without any earlier leaf.
 */
export class Frontier {
  #size: number;
  readonly #nodes: Buffer[];

  constructor(size = 0, nodes: readonly Buffer[] = []) {
    if (popcount(size) !== nodes.length) throw new RangeError(`a frontier of a tree of ${size} leaves has ${popcount(size)} nodes, not ${nodes.length}`);
    this.#size = size;
    this.#nodes = [...nodes];
  }

  /** Decode {@link Frontier.encode}'s bytes. */
  static decode(size: number, bytes: Uint8Array): Frontier {
    const nodes: Buffer[] = [];
    for (let o = 0; o < bytes.byteLength; o += 32) nodes.push(Buffer.from(bytes.subarray(o, o + 32)));
    return new Frontier(size, nodes);
  }

  get size(): number {
    return this.#size;
  }

  /** Append one leaf hash. */
  push(leaf: Buffer): void {
    let h = leaf;
    let s = this.#size;
    while (s % 2 === 1) {
      h = nodeHash(this.#nodes.pop() as Buffer, h);
      s = Math.floor(s / 2);
    }
    this.#nodes.push(h);
    this.#size++;
  }

  /** The root hash of the tree so far. */
  root(): Buffer {
    if (this.#nodes.length === 0) return EMPTY_ROOT;
    let h = this.#nodes[this.#nodes.length - 1] as Buffer;
    for (let i = this.#nodes.length - 2; i >= 0; i--) h = nodeHash(this.#nodes[i] as Buffer, h);
    return h;
  }

  /** The nodes, concatenated (32 bytes each). */
  encode(): Buffer {
    return Buffer.concat(this.#nodes);
  }

  clone(): Frontier {
    return new Frontier(this.#size, this.#nodes);
  }
}

function popcount(n: number): number {
  let c = 0;
  while (n > 0) {
    c += n % 2;
    n = Math.floor(n / 2);
  }
  return c;
}
