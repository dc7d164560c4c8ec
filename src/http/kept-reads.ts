/**
 * The fast path of as-of reads whose bytes are kept, for a server under load: the version current
 * at the time is looked up and its bytes read (verified against their hash by the store), exactly
 * as `getAsOf` reads a kept version, without planning a recomputation. Answers for times at least a
 * second in the past never change (history is append-only and a version's transaction time is
 * its commit time), so they are kept in a bounded LRU cache; reads are recorded for the cost
 * policy in batches rather than one write per request. Anything else — a version not kept, an
 * unknown object, a transform — goes through `getAsOf`.
 */
import type { ContentHash } from '../hash/canonical.js';
import { nowUs } from '../ids.js';
import { asOfMicros, isoFromMicros } from '../objects/refs.js';
import type { ObjectRead } from '../store/records.js';
import type { Store } from '../store/store.js';

/** A kept read's answer. */
export interface KeptAnswer {
  readonly versionId: string;
  readonly validFrom: string;
  readonly contentType: string;
  readonly contentHash: ContentHash;
  readonly bytes: Uint8Array;
}

const STABLE_AFTER_MS = 1000;

/** Kept reads of one server: an answer cache and batched read records. */
export class KeptReads {
  readonly #store: Store;
  readonly #cache = new Map<string, KeptAnswer>();
  readonly #maxBytes: number;
  #bytes = 0;
  #reads: ObjectRead[] = [];
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> = Promise.resolve();

  constructor(store: Store, maxBytes = 32 * 1024 * 1024) {
    this.#store = store;
    this.#maxBytes = maxBytes;
  }

  /** The kept bytes of the version current at `asOfMs`, or undefined when the object has no version then or its bytes are not kept. */
  async read(objectId: string, asOfMs: number): Promise<KeptAnswer | undefined> {
    const started = nowUs();
    const atUs = asOfMicros(asOfMs);
    const key = `${objectId}\u0000${atUs}`;
    let answer = this.#cache.get(key);
    if (answer !== undefined) {
      this.#cache.delete(key);
      this.#cache.set(key, answer);
    } else {
      const version = await this.#store.objectVersionAt(objectId, atUs);
      if (version === undefined || !(await this.#store.hasBlob(version.contentHash))) return undefined;
      const bytes = await this.#store.getBlob(version.contentHash);
      answer = { versionId: version.versionId, validFrom: isoFromMicros(version.validFromUs), contentType: version.contentType, contentHash: version.contentHash, bytes };
      if (asOfMs < Date.now() - STABLE_AFTER_MS && bytes.byteLength <= this.#maxBytes / 16) this.#remember(key, answer);
    }
    this.#record({ versionId: answer.versionId, atUs: started, recomputed: false, costUs: nowUs() - started });
    return answer;
  }

  #remember(key: string, answer: KeptAnswer): void {
    this.#cache.set(key, answer);
    this.#bytes += answer.bytes.byteLength;
    for (const [k, v] of this.#cache) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#cache.delete(k);
      this.#bytes -= v.bytes.byteLength;
    }
  }

  #record(read: ObjectRead): void {
    this.#reads.push(read);
    if (this.#reads.length >= 1000) this.#flush();
    else this.#timer ??= setTimeout(() => this.#flush(), 200);
  }

  #flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const reads = this.#reads;
    if (reads.length === 0) return;
    this.#reads = [];
    this.#writing = this.#writing.then(() =>
      this.#store.recordObjectReads(reads).catch((err: unknown) => {
        process.stderr.write(`provenant serve: ${reads.length} object reads could not be recorded: ${err instanceof Error ? err.message : String(err)}\n`);
      }),
    );
  }

  /** Write the reads not yet recorded. */
  async close(): Promise<void> {
    this.#flush();
    await this.#writing;
  }
}
