/**
 * Ids: UUIDv7 (RFC 9562), time-ordered, written as canonical lowercase strings and stored as
 * 16 bytes where the backend allows.
 */
import { randomFillSync } from 'node:crypto';
import { V7Generator } from 'uuidv7';

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

/** A new UUIDv7 as a string. */
export function newId(): string {
  return generator.generate().toString();
}

/** A new UUIDv7 as both its string and its 16 bytes. */
export function newIdWithBytes(): { id: string; bytes: Uint8Array } {
  const u = generator.generate();
  return { id: u.toString(), bytes: u.bytes };
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** True for a canonical lowercase UUID string. */
export function isUuid(s: string): boolean {
  return UUID_RE.test(s);
}

/** The 16 bytes of a UUID string. */
export function uuidToBytes(id: string): Buffer {
  if (!UUID_RE.test(id)) throw new TypeError(`not a UUID: ${id}`);
  return Buffer.from(id.replaceAll('-', ''), 'hex');
}

/** The UUID string of 16 bytes. */
export function uuidFromBytes(bytes: Uint8Array): string {
  const h = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Microseconds since the Unix epoch, from the high-resolution clock. */
export function nowUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}
