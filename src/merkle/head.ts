/**
 * Signed tree heads and the store's signing key. A tree head says "the log had `treeSize` leaves
 * with root `rootHash` at `timestampUs`"; its signature is Ed25519 (node:crypto) over the RFC 8785
 * canonical JSON of {@link canonicalHead}. The private key lives in the store folder
 * (`keys/tree-head-ed25519.pem`, mode 0600); its public key is recorded in the store and exported
 * (PEM or JWK) so that anyone can verify heads and proofs offline.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProvenantError } from '../errors.js';
import { canonicalize, type ContentHash } from '../hash/canonical.js';

/** Format version of signed tree heads. */
export const TREE_HEAD_FORMAT = 1;

/** A tree head as exported and checked: hashes as `sha256:<hex>`, the signature in base64. */
export interface SignedTreeHead {
  readonly treeSize: number;
  readonly rootHash: ContentHash;
  readonly timestampUs: number;
  /** SHA-256 of the signing public key (SubjectPublicKeyInfo DER), null when unsigned. */
  readonly keyId: ContentHash | null;
  /** Ed25519 signature over {@link canonicalHead}, base64; null when unsigned. */
  readonly signature: string | null;
  /** The checkpoint whose end carried the head, when it came from the store. */
  readonly checkpointId?: string;
}

/** The bytes that are signed: the canonical JSON of the head's fields. */
export function canonicalHead(head: Pick<SignedTreeHead, 'treeSize' | 'rootHash' | 'timestampUs'>): Buffer {
  return Buffer.from(
    canonicalize({ kind: 'provenant-tree-head', v: TREE_HEAD_FORMAT, treeSize: head.treeSize, rootHash: head.rootHash, timestampUs: head.timestampUs }),
  );
}

/** Where a store keeps its private signing key. */
export function signingKeyPath(storeDir: string): string {
  return join(storeDir, 'keys', 'tree-head-ed25519.pem');
}

/** The key id of a public key: SHA-256 of its SubjectPublicKeyInfo DER. */
export function keyId(publicKey: KeyObject): ContentHash {
  return `sha256:${createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex')}`;
}

/**
 * Create the store's Ed25519 signing key (private key file mode 0600, folder 0700).
 * @returns false when the store already has one (it is kept).
 */
export function createSigningKey(storeDir: string): boolean {
  const path = signingKeyPath(storeDir);
  if (existsSync(path)) return false;
  mkdirSync(join(storeDir, 'keys'), { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync('ed25519');
  try {
    writeFileSync(path, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as { code?: string }).code === 'EEXIST') return false; // another process made it first
    throw err;
  }
  chmodSync(path, 0o600);
  return true;
}

/** The store's private signing key, or undefined when it has none. */
export function loadSigningKey(storeDir: string): KeyObject | undefined {
  const path = signingKeyPath(storeDir);
  if (!existsSync(path)) return undefined;
  return createPrivateKey(readFileSync(path));
}

/** Sign a tree head. */
export function signHead(head: Pick<SignedTreeHead, 'treeSize' | 'rootHash' | 'timestampUs'>, privateKey: KeyObject): SignedTreeHead {
  const publicKey = createPublicKey(privateKey);
  return {
    treeSize: head.treeSize,
    rootHash: head.rootHash,
    timestampUs: head.timestampUs,
    keyId: keyId(publicKey),
    signature: sign(null, canonicalHead(head), privateKey).toString('base64'),
  };
}

/** True when the head carries a valid signature by `publicKey`. */
export function verifyHeadSignature(head: SignedTreeHead, publicKey: KeyObject): boolean {
  if (head.signature === null || head.keyId !== keyId(publicKey)) return false;
  try {
    return verify(null, canonicalHead(head), publicKey, Buffer.from(head.signature, 'base64'));
  } catch {
    return false;
  }
}

/**
 * A public key from PEM text or a JWK (JSON text or object).
 * @throws ProvenantError INPUT_INVALID when it is neither, or not Ed25519.
 */
export function parsePublicKey(text: string | object): KeyObject {
  let key: KeyObject;
  try {
    if (typeof text === 'object') key = createPublicKey({ key: text as never, format: 'jwk' });
    else if (text.trimStart().startsWith('{')) key = createPublicKey({ key: JSON.parse(text) as never, format: 'jwk' });
    else key = createPublicKey(text);
  } catch (err) {
    throw new ProvenantError('INPUT_INVALID', `not a public key (PEM or JWK): ${(err as Error).message}`, {
      hint: 'Export it with `provenant keys show --public` (PEM) or `provenant keys show --public --jwk`.',
    });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new ProvenantError('INPUT_INVALID', `the public key is ${key.asymmetricKeyType ?? 'of an unknown type'}, not Ed25519`, {
      hint: 'Tree heads are signed with Ed25519: use the key `provenant keys show --public` exports.',
    });
  }
  return key;
}
