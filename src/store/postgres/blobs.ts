/**
 * Blobs in PostgreSQL. Up to {@link CHUNKED_ABOVE} bytes a blob's bytes are a `bytea` in its
 * `blobs` row; larger ones are split into {@link CHUNK_BYTES} rows of `blob_chunks`, written and
 * read one chunk at a time so a large blob is never held whole in memory by a stream. Every read
 * is verified against the blob's hash.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type pg from 'pg';
import { BlobCorruptError, BlobMissingError } from '../../errors.js';
import { writeDigest, type ContentHash } from '../../hash/canonical.js';
import { ByteHeap, type BatchValue } from './batch.js';
import { int4Array } from './binary-arrays.js';

/** Blobs larger than this are stored in chunks. */
export const CHUNKED_ABOVE = 256 * 1024;
/** Size of one chunk. */
export const CHUNK_BYTES = 256 * 1024;

export const LOCATION_INLINE = 0;
export const LOCATION_CHUNKED = 2;

/** A blob row. */
export interface BlobRow {
  location: number;
  size: number;
  bytes: Buffer | null;
  chunks: number | null;
}

const digestOf = (hash: string): Buffer => Buffer.from(hash.slice(7), 'hex');

/**
 * Insert blobs, given by validated content hash (within the caller's transaction); ones already
 * stored are skipped. Large ones go in chunks. The digests and the bytes each travel as one binary parameter, cut by offset in SQL.
 */
export async function insertBlobs(client: pg.ClientBase, values: Iterable<{ hash: string; bytes: Buffer }>): Promise<void> {
  const heap = new ByteHeap();
  const placed = new Map<string, BatchValue>();
  for (const v of values) {
    if (v.bytes.byteLength > CHUNKED_ABOVE) await insertChunked(client, digestOf(v.hash), v.bytes);
    else placed.set(v.hash, { hash: v.hash, at: heap.addBytes(v.bytes), size: v.bytes.byteLength });
  }
  await insertBlobHeap(client, heap.bytes(), placed);
}

/**
 * Insert blobs whose bytes lie in one buffer (a batch's value heap), keyed by content hash, within
 * the caller's transaction; ones already stored are skipped, large ones go in chunks.
 */
export async function insertBlobHeap(client: pg.ClientBase, data: Buffer, values: ReadonlyMap<string, BatchValue>): Promise<void> {
  const order: string[] = [];
  for (const [hash, v] of values) {
    if (v.size > CHUNKED_ABOVE) await insertChunked(client, digestOf(hash), data.subarray(v.at, v.at + v.size));
    else order.push(hash);
  }
  if (order.length === 0) return;
  // In hash order: two transactions inserting overlapping sets then take their row locks in the
  // same order and cannot deadlock. (`sha256:` and lowercase hex digits sort as the digests do;
  // the default sort compares natively, without a JavaScript callback per comparison.)
  order.sort();
  const digests = Buffer.allocUnsafe(order.length * 32);
  const at = new Array<number>(order.length);
  const sizes = new Array<number>(order.length);
  for (let i = 0; i < order.length; i++) {
    const v = values.get(order[i] as string) as BatchValue;
    writeDigest(v.hash, digests, i * 32);
    at[i] = v.at;
    sizes[i] = v.size;
  }
  await client.query({
    name: 'provenant_insert_blobs_v2',
    text: `INSERT INTO blobs (hash, size, location, bytes)
           SELECT substring($1::bytea from (n - 1)::int * 32 + 1 for 32), s, 0, substring($2::bytea from a + 1 for s)
           FROM unnest($3::int[], $4::int[]) WITH ORDINALITY AS t(a, s, n)
           ON CONFLICT (hash) DO NOTHING`,
    values: [digests, data, int4Array(at), int4Array(sizes)],
  });
}

async function insertChunked(client: pg.ClientBase, digest: Buffer, bytes: Buffer): Promise<void> {
  const exists = await client.query('SELECT 1 FROM blobs WHERE hash = $1', [digest]);
  if (exists.rowCount !== 0) return;
  const set = await nextChunkSet(client);
  for (let n = 0, at = 0; at < bytes.byteLength; n++, at += CHUNK_BYTES) {
    await client.query({ name: 'provenant_insert_chunk', text: 'INSERT INTO blob_chunks (chunks, n, bytes) VALUES ($1, $2, $3)', values: [set, n, bytes.subarray(at, at + CHUNK_BYTES)] });
  }
  await client.query('INSERT INTO blobs (hash, size, location, chunks) VALUES ($1, $2, 2, $3) ON CONFLICT (hash) DO NOTHING', [digest, bytes.byteLength, set]);
}

async function nextChunkSet(client: pg.ClientBase): Promise<number> {
  const r = await client.query<{ set: number }>("SELECT nextval('blob_chunk_sets') AS set");
  return (r.rows[0] as { set: number }).set;
}

/**
 * Write a stream as a chunked blob inside the caller's transaction, hashing as it goes. Returns
 * its hash and size, and whether it was new (when not, the caller rolls back: the chunks written
 * are discarded).
 */
export async function writeStream(client: pg.ClientBase, source: Readable | AsyncIterable<Uint8Array>): Promise<{ hash: ContentHash; size: number; isNew: boolean }> {
  const set = await nextChunkSet(client);
  const hasher = createHash('sha256');
  let size = 0;
  let n = 0;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const flush = async (all: boolean): Promise<void> => {
    while (pendingBytes >= CHUNK_BYTES || (all && pendingBytes > 0)) {
      const joined = Buffer.concat(pending, pendingBytes);
      const chunk = joined.subarray(0, Math.min(CHUNK_BYTES, joined.byteLength));
      await client.query({ name: 'provenant_insert_chunk', text: 'INSERT INTO blob_chunks (chunks, n, bytes) VALUES ($1, $2, $3)', values: [set, n++, chunk] });
      const rest = joined.subarray(chunk.byteLength);
      pending = rest.byteLength > 0 ? [Buffer.from(rest)] : [];
      pendingBytes = rest.byteLength;
    }
  };
  for await (const piece of source as AsyncIterable<Uint8Array | string>) {
    const buf = typeof piece === 'string' ? Buffer.from(piece) : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    hasher.update(buf);
    size += buf.byteLength;
    pending.push(Buffer.from(buf));
    pendingBytes += buf.byteLength;
    await flush(false);
  }
  await flush(true);
  const hash = `sha256:${hasher.digest('hex')}` as ContentHash;
  const inserted = await client.query('INSERT INTO blobs (hash, size, location, chunks) VALUES ($1, $2, 2, $3) ON CONFLICT (hash) DO NOTHING', [digestOf(hash), size, set]);
  return { hash, size, isNew: inserted.rowCount === 1 };
}

/** A blob's row, or undefined. */
export async function blobRow(client: pg.ClientBase | pg.Pool, hash: ContentHash, withBytes: boolean): Promise<BlobRow | undefined> {
  const r = await client.query<BlobRow>({
    name: withBytes ? 'provenant_get_blob' : 'provenant_stat_blob',
    text: `SELECT location, size, ${withBytes ? 'bytes' : 'NULL::bytea AS bytes'}, chunks FROM blobs WHERE hash = $1`,
    values: [digestOf(hash)],
  });
  return r.rows[0];
}

/** The verified bytes of a blob. */
export async function readBlob(client: pg.ClientBase | pg.Pool, hash: ContentHash, where: string): Promise<Buffer> {
  const row = await blobRow(client, hash, true);
  if (row === undefined) throw new BlobMissingError(hash, where);
  let bytes: Buffer;
  if (row.location === LOCATION_CHUNKED) {
    const chunks = await client.query<{ bytes: Buffer }>('SELECT bytes FROM blob_chunks WHERE chunks = $1 ORDER BY n', [row.chunks]);
    bytes = Buffer.concat(chunks.rows.map((c) => c.bytes));
  } else {
    bytes = row.bytes ?? Buffer.alloc(0);
  }
  const actual = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  if (actual !== hash || bytes.byteLength !== row.size) throw new BlobCorruptError(hash, actual, where);
  return bytes;
}

/**
 * A stream of a blob's bytes, read a chunk at a time (one query per chunk); it errors with
 * BlobCorruptError at the end when the bytes do not hash to `hash`.
 */
export function chunkStream(pool: pg.Pool, hash: ContentHash, row: BlobRow, where: string): Readable {
  const hasher = createHash('sha256');
  let n = 0;
  let size = 0;
  const readChunk = async (stream: Readable): Promise<void> => {
    {
      try {
        const r = await pool.query<{ bytes: Buffer }>({
          name: 'provenant_get_chunk',
          text: 'SELECT bytes FROM blob_chunks WHERE chunks = $1 AND n = $2',
          values: [row.chunks, n++],
        });
        const chunk = r.rows[0]?.bytes;
        if (chunk === undefined) {
          const actual = `sha256:${hasher.digest('hex')}`;
          if (actual !== hash || size !== row.size) stream.destroy(new BlobCorruptError(hash, actual, where));
          else stream.push(null);
          return;
        }
        hasher.update(chunk);
        size += chunk.byteLength;
        stream.push(chunk);
      } catch (err) {
        stream.destroy(err as Error);
      }
    }
  };
  return new Readable({
    read() {
      void readChunk(this);
    },
  });
}
