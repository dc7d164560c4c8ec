/**
 * The embedded stream log: an append-only, offset-addressed sequence of records kept in the
 * store (values content-addressed like every other value). Appending assigns offsets 0, 1, 2…
 * with no gaps; reading gives records back in offset order with their offsets.
 */
import { encodeValue } from '../hash/canonical.js';
import type { RecordSource, SourceReadOptions, SourceRecord, SourceSpec } from '../sources/source.js';
import type { JsonValue } from '../hash/canonical.js';
import type { StreamValue } from '../store/records.js';
import type { Store } from '../store/store.js';
import { ProvenantError } from '../errors.js';

/** Options of {@link appendRecords}. */
export interface AppendRecordsOptions {
  /** Records per transaction. Default: 1000. */
  readonly batchSize?: number;
  /** Called after each committed batch with the number of records appended so far. */
  readonly onProgress?: (appended: number) => void;
}

/**
 * Append values to a stream, in order, in batches; each batch commits atomically. Returns the
 * offsets given: `[first, next)`. (From a file: `appendRecords(store, id, valuesOf(readRecords(path)))`.)
 * @throws UnhashableValueError for a record that cannot be hashed (nothing of its batch is appended)
 */
export async function appendRecords(
  store: Store,
  streamId: string,
  records: AsyncIterable<unknown> | Iterable<unknown>,
  options: AppendRecordsOptions = {},
): Promise<{ first: number; next: number; appended: number }> {
  const batchSize = options.batchSize ?? 1000;
  let batch: StreamValue[] = [];
  let first: number | undefined;
  let next = (await store.getStream(streamId))?.length ?? 0;
  let appended = 0;
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const r = await store.appendToStream(streamId, batch);
    first ??= r.first;
    next = r.next;
    appended += batch.length;
    batch = [];
    options.onProgress?.(appended);
  };
  for await (const record of records) {
    const encoded = encodeValue(record);
    batch.push({ hash: encoded.hash, bytes: encoded.bytes, encoding: encoded.encoding });
    if (batch.length >= batchSize) await flush();
  }
  await flush();
  return { first: first ?? next, next, appended };
}

/** Options of {@link readLog}. */
export interface ReadLogOptions {
  /** First offset (inclusive). Default: 0. */
  readonly from?: number;
  /** Last offset (exclusive). Default: the end of the stream as it is when reading starts. */
  readonly to?: number;
}

/**
 * Read a stream's records in offset order, decoded, with their offsets.
 * @throws ProvenantError NOT_FOUND for a stream with no log; INPUT_INVALID for a range in the wrong order.
 */
export async function* readLog(store: Store, streamId: string, options: ReadLogOptions = {}): AsyncGenerator<SourceRecord> {
  const info = await store.getStream(streamId);
  if (info === undefined) {
    throw new ProvenantError('NOT_FOUND', `stream ${streamId} has no records in ${store.location}`, {
      hint: 'Append records with `provenant stream append <stream> <file>`; list streams with `provenant stream list`.',
      context: { streamId },
    });
  }
  const from = options.from ?? 0;
  const to = Math.min(options.to ?? info.length, info.length);
  if (!Number.isInteger(from) || from < 0 || !Number.isInteger(to) || from > to) {
    throw new ProvenantError('INPUT_INVALID', `offsets ${from}..${to} are not a range of stream ${streamId} (0..${info.length})`, {
      context: { streamId, from, to },
    });
  }
  for await (const r of new LogSource(store, streamId).read({ from, to })) yield { offset: r.offset, value: r.value };
}

/**
 * An embedded stream log as a {@link RecordSource}: offset = position in the log, from 0. Records
 * come with their stored canonical encoding (verified against its hash as it is read).
 */
export class LogSource implements RecordSource {
  readonly store: Store;
  readonly streamId: string;
  readonly spec: SourceSpec & JsonValue;
  readonly mayForget = false;

  constructor(store: Store, streamId: string) {
    this.store = store;
    this.streamId = streamId;
    this.spec = { kind: 'log', streamId };
  }

  async *read(options: SourceReadOptions = {}): AsyncGenerator<SourceRecord> {
    const store = this.store;
    const info = await store.getStream(this.streamId);
    if (info === undefined) {
      throw new ProvenantError('NOT_FOUND', `stream ${this.streamId} has no records in ${store.location}`, {
        hint: 'Append records with `provenant stream append <stream> <file>`; list streams with `provenant stream list`.',
        context: { streamId: this.streamId },
      });
    }
    const from = options.from ?? 0;
    const to = Math.min(options.to ?? info.length, info.length);
    for (let at = from; at < to; ) {
      const entries = await store.readStream(this.streamId, { from: at, to, limit: 1000 });
      if (entries.length === 0) break;
      const blobs = await Promise.all(entries.map((e) => store.getBlob(e.hash)));
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i] as (typeof entries)[number];
        const bytes = blobs[i] as Uint8Array;
        const text = e.encoding === 'json' ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8') : undefined;
        const encoded = { hash: e.hash, bytes, encoding: e.encoding, ...(text === undefined ? {} : { text }) };
        let value: unknown = text === undefined ? bytes : undefined;
        // Decoded only if asked for: a pipeline run feeds steps from the encoding.
        yield {
          offset: e.offset,
          get value(): unknown {
            return (value ??= JSON.parse(text as string) as unknown);
          },
          encoded,
        };
      }
      at = (entries[entries.length - 1]?.offset ?? at) + 1;
    }
  }

  async close(): Promise<void> {}
}
