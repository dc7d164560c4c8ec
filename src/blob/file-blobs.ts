/**
 * A content-addressed folder of blobs, for values too large to keep inside the metadata store.
 *
 * Layout: `<root>/sha256/ab/cd/<remaining hex>`. A write goes to a temp file in `<tmp>`, is
 * fsynced, renamed into place and the folder fsynced — so a blob is either whole at its address
 * or absent, and callers write it before committing any record that refers to it. Reads verify
 * the bytes against the address and never hand out bytes that do not match.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BlobCorruptError, BlobMissingError } from '../errors.js';
import { sha256, type ContentHash } from '../hash/canonical.js';

/** A folder of content-addressed files. */
export class FileBlobs {
  readonly #root: string;
  readonly #tmp: string;

  /** @param root folder for blobs; @param tmp folder on the same file system for partial writes */
  constructor(root: string, tmp: string) {
    this.#root = root;
    this.#tmp = tmp;
  }

  /** The file a hash lives at. */
  pathOf(hash: ContentHash): string {
    const hex = hash.slice('sha256:'.length);
    return join(this.#root, 'sha256', hex.slice(0, 2), hex.slice(2, 4), hex.slice(4));
  }

  /**
   * Write bytes whose hash is already known. Durable when the promise resolves. An existing file
   * is kept unless `replace` (used to repair a damaged copy).
   */
  async write(hash: ContentHash, bytes: Uint8Array, options: { replace?: boolean } = {}): Promise<void> {
    const target = this.pathOf(hash);
    if (options.replace !== true && (await exists(target))) return;
    const temp = await this.#tempPath();
    const handle = await open(temp, 'w');
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await this.#commit(temp, target);
  }

  /** Stream a source into the folder, hashing as it goes; returns the hash and size. */
  async writeStream(source: Readable | AsyncIterable<Uint8Array>): Promise<{ hash: ContentHash; size: number }> {
    const temp = await this.#tempPath();
    const digest = createHash('sha256');
    let size = 0;
    const hasher = new Transform({
      transform(chunk: Buffer, _enc, done) {
        digest.update(chunk);
        size += chunk.length;
        done(null, chunk);
      },
    });
    const out = createWriteStream(temp);
    try {
      await pipeline(source, hasher, out);
      const handle = await open(temp, 'r+');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    const hash = `sha256:${digest.digest('hex')}` as ContentHash;
    const target = this.pathOf(hash);
    if (await exists(target)) await rm(temp, { force: true });
    else await this.#commit(temp, target);
    return { hash, size };
  }

  /** The verified bytes of a blob. */
  async read(hash: ContentHash): Promise<Uint8Array> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.pathOf(hash));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new BlobMissingError(hash, `file ${this.pathOf(hash)}`);
      throw err;
    }
    const actual = sha256(bytes);
    if (actual !== hash) throw new BlobCorruptError(hash, actual, `file ${this.pathOf(hash)}`);
    return bytes;
  }

  /**
   * A stream of the blob's bytes. The hash is checked as the bytes pass; if it does not match,
   * the stream is destroyed with {@link BlobCorruptError} instead of ending normally, so a
   * consumer that waits for the end never accepts wrong bytes.
   */
  async openStream(hash: ContentHash): Promise<Readable> {
    const path = this.pathOf(hash);
    if (!(await exists(path))) throw new BlobMissingError(hash, `file ${path}`);
    const digest = createHash('sha256');
    const verify = new Transform({
      transform(chunk: Buffer, _enc, done) {
        digest.update(chunk);
        done(null, chunk);
      },
      flush(done) {
        const actual = `sha256:${digest.digest('hex')}`;
        done(actual === hash ? null : new BlobCorruptError(hash, actual, `file ${path}`));
      },
    });
    const source = createReadStream(path);
    source.on('error', (err) => verify.destroy(err));
    return source.pipe(verify);
  }

  /** Delete a blob's file (garbage collection); absent files are ignored. */
  async remove(hash: ContentHash): Promise<void> {
    await rm(this.pathOf(hash), { force: true });
  }

  async has(hash: ContentHash): Promise<boolean> {
    return exists(this.pathOf(hash));
  }

  async #tempPath(): Promise<string> {
    await mkdir(this.#tmp, { recursive: true });
    return join(this.#tmp, `blob-${process.pid}-${randomBytes(8).toString('hex')}.part`);
  }

  async #commit(temp: string, target: string): Promise<void> {
    const dir = join(target, '..');
    await mkdir(dir, { recursive: true });
    await rename(temp, target);
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
