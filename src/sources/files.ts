/**
 * File sources: records read from NDJSON, JSON arrays, CSV and Parquet files, each with its
 * offset (the record's index in the file, from 0).
 *
 * Values are made JSON-compatible as they are read: Parquet timestamps (Date) become ISO 8601
 * strings; int64 columns (BigInt) become numbers when they fit exactly (|n| ≤ 2^53 − 1) and
 * strings otherwise. CSV cells that look like numbers or booleans become numbers or booleans.
 */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parse as parseCsv } from 'csv-parse';
import { ProvenantError } from '../errors.js';
import type { RecordSource, SourceReadOptions, SourceRecord, SourceSpec } from './source.js';
import type { JsonValue } from '../hash/canonical.js';

/** File formats Provenant reads. */
export type FileFormat = 'json' | 'ndjson' | 'csv' | 'parquet';

/** Options of {@link readRecords}. */
export interface ReadRecordsOptions {
  /** Default: from the extension (`.json`, `.ndjson`/`.jsonl`, `.csv`, `.parquet`). */
  readonly format?: FileFormat;
  /** Stop after this many records. */
  readonly limit?: number;
}

/** The format of a file from its extension. */
export function formatOf(path: string): FileFormat {
  const ext = extname(path).toLowerCase();
  switch (ext) {
    case '.json':
      return 'json';
    case '.ndjson':
    case '.jsonl':
      return 'ndjson';
    case '.csv':
      return 'csv';
    case '.parquet':
      return 'parquet';
    default:
      throw new ProvenantError('INPUT_INVALID', `cannot tell the format of ${path} from its extension "${ext}"`, {
        hint: 'Use a .json, .ndjson, .jsonl, .csv or .parquet file.',
        context: { file: path },
      });
  }
}

/**
 * Read a file's records in order, with their offsets. A record that cannot be decoded (an NDJSON
 * line that is not JSON, a CSV row with the wrong number of fields) is yielded with `malformed`
 * set and its raw text (or cells) as the value, at its offset.
 * @throws ProvenantError INPUT_INVALID for a missing file or a JSON file that does not parse.
 */
export async function* readRecords(path: string, options: ReadRecordsOptions & { readonly from?: number } = {}): AsyncGenerator<SourceRecord> {
  const file = resolve(path);
  try {
    await stat(file);
  } catch {
    throw new ProvenantError('INPUT_INVALID', `input file ${file} does not exist`, { context: { file } });
  }
  const from = options.from ?? 0;
  const end = from + (options.limit ?? Number.POSITIVE_INFINITY);
  if (end <= from) return;
  const format = options.format ?? formatOf(file);
  for await (const record of readFileRecords(file, format, from)) {
    if (record.offset < from) continue;
    if (record.offset >= end) return;
    yield record;
  }
}

/** A file as a {@link RecordSource}: offset = the record's index in the file, from 0. */
export class FileSource implements RecordSource {
  readonly path: string;
  readonly format: FileFormat;
  readonly streamId: string;
  readonly spec: SourceSpec & JsonValue;
  readonly mayForget = false;

  /** @throws ProvenantError INPUT_INVALID for an unknown extension */
  constructor(path: string, format?: FileFormat) {
    this.path = resolve(path);
    this.format = format ?? formatOf(path);
    this.streamId = `file:${this.path}`;
    this.spec = { kind: 'file', path: this.path, format: this.format };
  }

  async *read(options: SourceReadOptions = {}): AsyncGenerator<SourceRecord> {
    const from = options.from ?? 0;
    const to = options.to ?? Number.POSITIVE_INFINITY;
    if (to <= from) return;
    try {
      await stat(this.path);
    } catch {
      throw new ProvenantError('SOURCE_UNAVAILABLE', `input file ${this.path} does not exist (any more)`, {
        hint: 'Restore the file, or give another copy of it (e.g. `--input <file>`).',
        context: { file: this.path },
      });
    }
    yield* readRecords(this.path, { format: this.format, from, ...(Number.isFinite(to) ? { limit: to - from } : {}) });
  }

  async close(): Promise<void> {}
}

async function* readFileRecords(file: string, format: FileFormat, from: number): AsyncGenerator<SourceRecord> {
  switch (format) {
    case 'json': {
      const text = await readFile(file, 'utf8');
      if (!text.trimStart().startsWith('[')) {
        yield* readNdjson(file);
        return;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (err) {
        throw new ProvenantError('INPUT_INVALID', `${file} is not valid JSON: ${(err as Error).message}`, {
          hint: 'A .json input is one JSON array of records (or NDJSON: one value per line).',
          context: { file },
        });
      }
      if (!Array.isArray(parsed)) {
        throw new ProvenantError('INPUT_INVALID', `${file} is JSON but not an array of records`, { context: { file } });
      }
      for (let i = from; i < parsed.length; i++) yield { offset: i, value: parsed[i] as unknown };
      return;
    }
    case 'ndjson':
      yield* readNdjson(file);
      return;
    case 'csv':
      yield* readCsv(file);
      return;
    case 'parquet':
      yield* readParquet(file, from);
      return;
  }
}

async function* readNdjson(file: string): AsyncGenerator<SourceRecord> {
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  let offset = 0;
  for await (const line of lines) {
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line) as unknown;
    } catch (err) {
      yield { offset: offset++, value: line, malformed: { format: 'ndjson', reason: `not valid JSON: ${(err as Error).message}` } };
      continue;
    }
    yield { offset: offset++, value };
  }
}

async function* readCsv(file: string): AsyncGenerator<SourceRecord> {
  const rows = createReadStream(file).pipe(parseCsv({ cast: true, skip_empty_lines: true, relax_column_count: true })) as AsyncIterable<unknown[]>;
  let header: string[] | undefined;
  let offset = 0;
  for await (const row of rows) {
    if (header === undefined) {
      header = row.map(String);
      continue;
    }
    if (row.length !== header.length) {
      yield { offset: offset++, value: row, malformed: { format: 'csv', reason: `CSV row has ${row.length} fields; the header has ${header.length}` } };
      continue;
    }
    const value: Record<string, unknown> = {};
    header.forEach((c, i) => (value[c] = row[i]));
    yield { offset: offset++, value };
  }
}

async function* readParquet(file: string, from: number): AsyncGenerator<SourceRecord> {
  const { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } = await import('hyparquet');
  const { compressors } = await import('hyparquet-compressors');
  const buffer = await asyncBufferFromFile(file);
  const metadata = await parquetMetadataAsync(buffer);
  let rowStart = 0;
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows);
    if (rowEnd > from) {
      // Row groups before `from` are skipped without being read.
      const first = Math.max(rowStart, from);
      const rows = await parquetReadObjects({ file: buffer, metadata, compressors, rowStart: first, rowEnd });
      let offset = first;
      for (const row of rows) yield { offset: offset++, value: toJsonRow(row) };
    }
    rowStart = rowEnd;
  }
}

/**
 * Just the values of records, in order (offsets dropped).
 * @throws ProvenantError INPUT_INVALID at a malformed record, naming its offset and what is wrong
 */
export async function* valuesOf(records: AsyncIterable<SourceRecord> | Iterable<SourceRecord>): AsyncGenerator<unknown> {
  for await (const record of records) {
    if (record.malformed !== undefined) {
      throw new ProvenantError('INPUT_INVALID', `record ${record.offset} (${record.malformed.format}): ${record.malformed.reason}`, {
        hint: 'Fix or remove the record; a pipeline run (`provenant run --input`) would dead-letter it instead.',
        context: { offset: record.offset },
      });
    }
    yield record.value;
  }
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function toJsonRow(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(row)) out[key] = toJson(row[key]);
  return out;
}

function toJson(v: unknown): unknown {
  if (typeof v === 'bigint') return v <= MAX_SAFE && v >= -MAX_SAFE ? Number(v) : v.toString();
  if (v instanceof Date) return v.toISOString();
  if (Array.isArray(v)) return v.map(toJson);
  if (typeof v === 'object' && v !== null && !(v instanceof Uint8Array)) return toJsonRow(v as Record<string, unknown>);
  return v;
}
