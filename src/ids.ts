/**
 * Ids: UUIDv7 (RFC 9562), time-ordered, written as canonical lowercase strings and stored as
 * 16 bytes where the backend allows.
 */
import { randomFillSync } from 'node:crypto';
import { V7Generator } from 'uuidv7';
import { hexDigit } from './hash/canonical.js';

/**
 * Random bits for ids, drawn from the OS CSPRNG 16 KiB at a time rather than one syscall per id
 * (capture makes an id per execution).
 */
class BufferedRandom {
  readonly #pool = new Uint32Array(4096);
  #next = this.#pool.length;
  nextUint32(): number {
    if (this.#next === this.#pool.length) {
      randomFillSync(this.#pool);
      this.#next = 0;
    }
    return this.#pool[this.#next++] as number;
  }
}

const generator = new V7Generator(new BufferedRandom());

const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');
const idText = Buffer.alloc(36);

/**
 * The canonical text of 16 UUID bytes as ONE flat string. (The library's `toString` appends 36
 * characters one at a time: a tree of 36 string pieces, which a batch that keeps its executions'
 * ids until commit — PostgreSQL workers keep a segment's — holds for every execution.)
 */
function uuidText(bytes: Uint8Array): string {
  let p = 0;
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) idText[p++] = 0x2d; // '-'
    const v = bytes[i] as number;
    idText[p++] = HEX_DIGITS[v >> 4] as number;
    idText[p++] = HEX_DIGITS[v & 15] as number;
  }
  return idText.toString('latin1', 0, 36);
}

/** A new UUIDv7 as a string. */
export function newId(): string {
  return uuidText(generator.generate().bytes);
}

/** A new UUIDv7 as both its string and its 16 bytes. */
export function newIdWithBytes(): { id: string; bytes: Uint8Array } {
  const u = generator.generate();
  return { id: uuidText(u.bytes), bytes: u.bytes };
}

/** True for a canonical lowercase UUID string (a loop, not a RegExp: batches check every execution id). */
export function isUuid(s: string): boolean {
  if (typeof s !== 'string' || s.length !== 36) return false;
  for (let i = 0; i < 36; i++) {
    const c = s.charCodeAt(i);
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 45) return false;
    } else if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) {
      return false;
    }
  }
  return true;
}

/** Write the 16 bytes of a UUID string the caller has validated ({@link isUuid}) into `out` at `at`. */
export function writeUuid(id: string, out: Uint8Array, at: number): void {
  let p = at;
  for (let i = 0; i < 36; i += 2) {
    if (i === 8 || i === 13 || i === 18 || i === 23) i++;
    out[p++] = (hexDigit(id.charCodeAt(i)) << 4) | hexDigit(id.charCodeAt(i + 1));
  }
}

/** The 16 bytes of a UUID string. */
export function uuidToBytes(id: string): Buffer {
  if (!isUuid(id)) throw new TypeError(`not a UUID: ${id}`);
  const bytes = Buffer.allocUnsafe(16);
  writeUuid(id, bytes, 0);
  return bytes;
}

/** The UUID string of 16 bytes. */
export function uuidFromBytes(bytes: Uint8Array): string {
  return uuidText(bytes);
}

/** Microseconds since the Unix epoch, from the high-resolution clock. */
export function nowUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}
