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
import type { SourceRecord } from '../pipeline/execute.js';

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
 * Read a file's records in order, with their offsets.
 * @throws ProvenantError INPUT_INVALID for a missing file or malformed content (naming the line or offset).
 */
export async function* readRecords(path: string, options: ReadRecordsOptions = {}): AsyncGenerator<SourceRecord> {
  const file = resolve(path);
  try {
    await stat(file);
  } catch {
    throw new ProvenantError('INPUT_INVALID', `input file ${file} does not exist`, { context: { file } });
  }
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  if (limit <= 0) return;
  const format = options.format ?? formatOf(file);
  let offset = 0;
  for await (const value of readValues(file, format)) {
    yield { offset, value };
    offset++;
    if (offset >= limit) return;
  }
}

async function* readValues(file: string, format: FileFormat): AsyncGenerator<unknown> {
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
        throw new ProvenantError('INPUT_INVALID', `${file} is not valid JSON: ${(err as Error).message}`, { context: { file } });
      }
      yield* parsed as unknown[];
      return;
    }
    case 'ndjson':
      yield* readNdjson(file);
      return;
    case 'csv':
      yield* createReadStream(file).pipe(parseCsv({ columns: true, cast: true, skip_empty_lines: true })) as AsyncIterable<unknown>;
      return;
    case 'parquet':
      yield* readParquet(file);
      return;
  }
}

async function* readNdjson(file: string): AsyncGenerator<unknown> {
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  let lineNo = 0;
  for await (const line of lines) {
    lineNo++;
    if (line.trim() === '') continue;
    try {
      yield JSON.parse(line) as unknown;
    } catch (err) {
      throw new ProvenantError('INPUT_INVALID', `${file}:${lineNo}: not valid JSON: ${(err as Error).message}`, {
        hint: 'Each line of an NDJSON file must be one JSON value.',
        context: { file, line: lineNo },
      });
    }
  }
}

async function* readParquet(file: string): AsyncGenerator<unknown> {
  const { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } = await import('hyparquet');
  const { compressors } = await import('hyparquet-compressors');
  const buffer = await asyncBufferFromFile(file);
  const metadata = await parquetMetadataAsync(buffer);
  let rowStart = 0;
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows);
    const rows = await parquetReadObjects({ file: buffer, metadata, compressors, rowStart, rowEnd });
    for (const row of rows) yield toJsonRow(row);
    rowStart = rowEnd;
  }
}

/** Just the values of records, in order (offsets dropped). */
export async function* valuesOf(records: AsyncIterable<SourceRecord> | Iterable<SourceRecord>): AsyncGenerator<unknown> {
  for await (const record of records) yield record.value;
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
