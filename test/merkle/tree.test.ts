/**
 * The Merkle tree against RFC 9162 in the style of the transparency-dev test suites: known-answer
 * roots (RFC 6962 test vectors), and for every leaf of every tree size from 1 to 256 the honest
 * inclusion proof verifies while every corruption of it is rejected; the same for consistency
 * proofs between every pair of sizes up to 64 (and from every size to 256).
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  EMPTY_ROOT,
  Frontier,
  consistencyProof,
  inclusionProof,
  leafHash,
  nodeHash,
  rootOf,
  verifyConsistency,
  verifyInclusion,
} from '../../src/merkle/tree.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

// The RFC 6962 reference inputs and the roots of their first 1..8 leaves (certificate-transparency test vectors).
const INPUTS = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map((h) => Buffer.from(h, 'hex'));
const ROOTS = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];

const leaves = Array.from({ length: 256 }, (_, i) => leafHash(Buffer.from(`leaf ${i}`)));

function flipBit(b: Uint8Array, bit: number): Buffer {
  const c = Buffer.from(b);
  c[bit >> 3] = (c[bit >> 3] as number) ^ (1 << (bit & 7));
  return c;
}

describe('Merkle tree hashes (RFC 9162)', () => {
  it('the empty tree is SHA-256 of the empty string; leaves and nodes are domain-separated', () => {
    expect(hex(EMPTY_ROOT)).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(hex(rootOf([]))).toBe(hex(EMPTY_ROOT));
    expect(hex(leafHash(Buffer.alloc(0)))).toBe(createHash('sha256').update(Buffer.from([0])).digest('hex'));
    const a = leafHash(Buffer.from('a'));
    const b = leafHash(Buffer.from('b'));
    expect(hex(nodeHash(a, b))).toBe(createHash('sha256').update(Buffer.from([1])).update(a).update(b).digest('hex'));
  });

  it('known-answer roots for the RFC 6962 test inputs, by recursion and by the frontier', () => {
    const hashed = INPUTS.map(leafHash);
    const f = new Frontier();
    for (let n = 1; n <= 8; n++) {
      expect(hex(rootOf(hashed.slice(0, n)))).toBe(ROOTS[n - 1]);
      f.push(hashed[n - 1] as Buffer);
      expect(hex(f.root())).toBe(ROOTS[n - 1]);
    }
  });

  it('the frontier gives the recursive root for every size to 256, and survives encode/decode', () => {
    let f = new Frontier();
    for (let n = 1; n <= 256; n++) {
      f.push(leaves[n - 1] as Buffer);
      expect(f.root().equals(rootOf(leaves, 0, n))).toBe(true);
      f = Frontier.decode(f.size, f.encode());
    }
  });
});

describe('inclusion proofs, every leaf of every size 1..256', () => {
  it('verify, and every corruption is rejected', () => {
    let checked = 0;
    for (let size = 1; size <= 256; size++) {
      const root = rootOf(leaves, 0, size);
      for (let i = 0; i < size; i++) {
        const leaf = leaves[i] as Buffer;
        const proof = inclusionProof(leaves, i, size);
        expect(verifyInclusion(i, size, leaf, proof, root)).toBe(true);
        const bad: [string, number, number, Buffer, Buffer[], Buffer][] = [
          ['index - 1', i - 1, size, leaf, proof, root],
          ['index + 1', i + 1, size, leaf, proof, root],
          ['size × 2', i, size * 2, leaf, proof, root],
          ['size ÷ 2', i, Math.floor(size / 2), leaf, proof, root],
          ['wrong leaf', i, size, leaves[(i + 1) % 256] as Buffer, proof, root],
          ['wrong root', i, size, leaf, proof, rootOf(leaves, 0, size === 256 ? 255 : size + 1)],
          ['flipped bit in the root', i, size, leaf, proof, flipBit(root, (i * 7) % 256)],
          ['flipped bit in the leaf', i, size, leaf.length === 32 ? flipBit(leaf, 3) : leaf, proof, root],
          ['extra element', i, size, leaf, [...proof, leaf], root],
          ['extra element first', i, size, leaf, [leaf, ...proof], root],
        ];
        if (proof.length > 0) {
          bad.push(['missing last element', i, size, leaf, proof.slice(0, -1), root]);
          bad.push(['missing first element', i, size, leaf, proof.slice(1), root]);
          const k = (i * 31 + size) % proof.length;
          const flipped = proof.map((p, j) => (j === k ? flipBit(p, (i + k) % 256) : p));
          bad.push([`flipped bit in element ${k}`, i, size, leaf, flipped, root]);
          bad.push(['truncated element', i, size, leaf, proof.map((p, j) => (j === 0 ? p.subarray(0, 31) : p)), root]);
        }
        if (proof.length > 1) bad.push(['elements swapped', i, size, leaf, [proof[1] as Buffer, proof[0] as Buffer, ...proof.slice(2)], root]);
        for (const [what, idx, sz, l, p, r] of bad) {
          // A changed size is only a corruption when it changes the tree (size ÷ 2 of 1 is 0: no tree).
          if (verifyInclusion(idx, sz, l, p, r)) throw new Error(`accepted a proof with ${what} (leaf ${i}, size ${size})`);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(32_896 * 9);
  });
});

describe('consistency proofs', () => {
  const pairs: [number, number][] = [];
  for (let n = 1; n <= 64; n++) for (let m = 1; m <= n; m++) pairs.push([m, n]);
  for (let m = 1; m <= 256; m++) pairs.push([m, 256]);

  it('verify between every pair of sizes up to 64 and from every size to 256; every corruption is rejected', () => {
    for (const [m, n] of pairs) {
      const oldRoot = rootOf(leaves, 0, m);
      const newRoot = rootOf(leaves, 0, n);
      const proof = consistencyProof(leaves, m, n);
      expect(verifyConsistency(m, n, oldRoot, newRoot, proof)).toBe(true);
      const bad: [string, number, number, Buffer, Buffer, Buffer[]][] = [
        ['wrong old root', m, n, flipBit(oldRoot, 5), newRoot, proof],
        ['wrong new root', m, n, oldRoot, flipBit(newRoot, 9), proof],
        ['old size + 1', m + 1, n, oldRoot, newRoot, proof],
        ['extra element', m, n, oldRoot, newRoot, [...proof, oldRoot]],
      ];
      if (m < n) bad.push(['new size × 2', m, n * 2, oldRoot, newRoot, proof]);
      if (m * 2 <= n && m * 2 !== n) bad.push(['old size × 2', m * 2, n, oldRoot, newRoot, proof]);
      if (m > 1) bad.push(['old size - 1', m - 1, n, oldRoot, newRoot, proof]);
      if (m < n) {
        bad.push(['new size + 1', m, n + 1, oldRoot, newRoot, proof]);
        bad.push(['new size ÷ 2', m, Math.max(m, Math.floor(n / 2)), oldRoot, newRoot, proof]);
        bad.push(['missing last element', m, n, oldRoot, newRoot, proof.slice(0, -1)]);
        bad.push(['missing first element', m, n, oldRoot, newRoot, proof.slice(1)]);
        for (let k = 0; k < proof.length; k++) bad.push([`flipped bit in element ${k}`, m, n, oldRoot, newRoot, proof.map((p, j) => (j === k ? flipBit(p, k) : p))]);
      }
      for (const [what, a, b, r1, r2, p] of bad) {
        // Hashes are opaque: a changed size whose proof has the same shape (length) states something
        // true about these hash values (a subtree root stands in for a leaf), so only sizes that
        // change the proof's shape count as corruptions.
        if ((a !== m || b !== n) && a >= 0 && a <= b && b <= 256 && consistencyProof(leaves, a, b).length === p.length) continue;
        if (verifyConsistency(a, b, r1, r2, p)) throw new Error(`accepted a consistency proof with ${what} (${m} → ${n})`);
      }
    }
  });

  it('the same size needs an empty proof and equal roots; from the empty tree, the empty root', () => {
    const r = rootOf(leaves, 0, 10);
    expect(verifyConsistency(10, 10, r, r, [])).toBe(true);
    expect(verifyConsistency(10, 10, r, r, [r])).toBe(false);
    expect(verifyConsistency(0, 10, EMPTY_ROOT, r, [])).toBe(true);
    expect(verifyConsistency(0, 10, r, r, [])).toBe(false);
  });
});
