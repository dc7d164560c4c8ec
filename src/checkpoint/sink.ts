/**
 * Sinks: where a pipeline's final outputs go. A sink takes part in checkpoints so that, after a
 * crash and a resume, it holds every record's output exactly once: at each checkpoint the sink
 * makes what it holds durable and reports its position, which commits with the checkpoint; on
 * resume it is cut back to the position of the last COMPLETE checkpoint before going on.
 */
import { closeSync, fstatSync, fsyncSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';
import { ProvenantError } from '../errors.js';
import type { JsonValue } from '../hash/canonical.js';

/** A destination for a pipeline's final outputs that can be checkpointed and cut back. */
export interface Sink {
  /** How to open this sink again at resume (recorded with the run), e.g. `{ kind: 'ndjson', path }`; null when it cannot be. */
  readonly spec: JsonValue;
  /** Take one record's final output. */
  write(output: unknown, offset: number): void | Promise<void>;
  /** Make everything written so far durable; return the position to record with the checkpoint. */
  commit(): Promise<JsonValue>;
  /** Before resuming: discard whatever was written after `position` (null: after nothing). */
  restore(position: JsonValue): Promise<void>;
  close(): Promise<void>;
}

/** A sink that calls a function per output (not cut back on resume: the function's side effects are its own). */
export function functionSink(fn: (output: unknown, offset: number) => void | Promise<void>): Sink {
  return {
    spec: null,
    write: fn,
    commit: async () => null,
    restore: async () => undefined,
    close: async () => undefined,
  };
}

const FLUSH_AT = 1 << 20;

/**
 * An NDJSON file: one output per line. Lines are buffered and written in large chunks; a commit
 * writes the buffer and fsyncs the file, and its position is the file's length in bytes. Restore
 * truncates the file to a recorded length, so lines from a checkpoint that never completed go.
 */
export class NdjsonFileSink implements Sink {
  readonly path: string;
  readonly spec: JsonValue;
  #fd: number;
  #buffer: string[] = [];
  #buffered = 0;
  #bytes: number;

  /** Open (or create) the file; new lines go at its end. */
  constructor(path: string) {
    this.path = resolve(path);
    this.spec = { kind: 'ndjson', path: this.path };
    try {
      this.#fd = openSync(this.path, 'a+');
    } catch (err) {
      throw new ProvenantError('INPUT_INVALID', `cannot open output file ${this.path}: ${(err as Error).message}`, {
        hint: 'Check that the folder exists and is writable.',
        context: { file: this.path },
        cause: err,
      });
    }
    this.#bytes = fstatSync(this.#fd).size;
  }

  write(output: unknown): void {
    const line = `${JSON.stringify(output)}\n`;
    this.#buffer.push(line);
    this.#buffered += line.length;
    if (this.#buffered >= FLUSH_AT) this.#flush();
  }

  async commit(): Promise<JsonValue> {
    this.#flush();
    fsyncSync(this.#fd);
    return { bytes: this.#bytes };
  }

  async restore(position: JsonValue): Promise<void> {
    this.#buffer = [];
    this.#buffered = 0;
    const bytes = position === null ? 0 : (position as { bytes?: unknown }).bytes;
    if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 0) {
      throw new ProvenantError('CHECKPOINT_INVALID', `the recorded position of output file ${this.path} is not a byte count: ${JSON.stringify(position)}`, {
        context: { file: this.path },
      });
    }
    const size = fstatSync(this.#fd).size;
    if (size < bytes) {
      throw new ProvenantError('INPUT_INVALID', `output file ${this.path} holds ${size} bytes, fewer than the ${bytes} its last checkpoint recorded`, {
        hint: 'The file was changed or replaced since the run wrote it; restore it, or resume with another --output.',
        context: { file: this.path, size, recorded: bytes },
      });
    }
    ftruncateSync(this.#fd, bytes);
    fsyncSync(this.#fd);
    this.#bytes = bytes;
  }

  async close(): Promise<void> {
    this.#flush();
    fsyncSync(this.#fd);
    closeSync(this.#fd);
  }

  #flush(): void {
    if (this.#buffer.length === 0) return;
    const chunk = Buffer.from(this.#buffer.join(''), 'utf8');
    this.#buffer = [];
    this.#buffered = 0;
    let at = 0;
    while (at < chunk.length) at += writeSync(this.#fd, chunk, at);
    this.#bytes += chunk.length;
  }
}
