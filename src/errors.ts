/**
 * Every error Provenant raises is a {@link ProvenantError}: it carries a stable `code` from a
 * closed set, the context a user needs to act (which value path, blob, step, execution, store),
 * a `hint` that says what to do, and whether retrying can help.
 *
 * The CLI maps these codes to messages and exit codes in one place (`src/cli/errors.ts`).
 */

/** The closed set of reasons an operation can fail. */
export type ErrorCode =
  | 'UNHASHABLE_VALUE'
  | 'BLOB_CORRUPT'
  | 'BLOB_MISSING'
  | 'STORE_NOT_FOUND'
  | 'STORE_TOO_NEW'
  | 'STORE_BUSY'
  | 'APPEND_ONLY'
  | 'STEP_BUILD_FAILED'
  | 'STEP_NOT_FOUND'
  | 'ARTIFACT_MISSING'
  | 'ARTIFACT_CORRUPT'
  | 'STEP_FAILED'
  | 'PIPELINE_INVALID'
  | 'INPUT_INVALID'
  | 'NOT_FOUND'
  | 'RUN_CLOSED'
  | 'DETERMINISM_VIOLATION'
  | 'SOURCE_UNAVAILABLE'
  | 'CHECKPOINT_INVALID'
  /** An as-of time after now. */
  | 'AS_OF_IN_FUTURE'
  /** A recomputation produced bytes whose hash differs from the recorded one. */
  | 'RECOMPUTE_DIVERGED'
  /** Work stopped at its time or memory budget. */
  | 'BUDGET_EXCEEDED'
  /** Missing, expired or revoked credentials, or rights that do not cover the request. */
  | 'UNAUTHORIZED'
  /** The store's history does not match its records, tree heads or signatures. */
  | 'TAMPERED';

/** Options shared by every {@link ProvenantError}. */
export interface ProvenantErrorOptions {
  /** What the user can do about it. */
  hint?: string;
  /** Structured context: ids, paths, hashes. Printed by the CLI and returned by `--json`. */
  context?: Record<string, unknown>;
  /** Whether the same call may succeed if retried unchanged. Default: false. */
  retryable?: boolean;
  cause?: unknown;
}

/** Base class of every error Provenant raises on purpose. */
export class ProvenantError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly context: Readonly<Record<string, unknown>>;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: ProvenantErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ProvenantError';
    this.code = code;
    this.hint = options.hint;
    this.context = Object.freeze({ ...(options.context ?? {}) });
    this.retryable = options.retryable ?? false;
  }
}

/** A value that cannot be canonicalized; `path` names where in the value (`$.legs[3].delay`). */
export class UnhashableValueError extends ProvenantError {
  readonly path: string;
  readonly reason: string;

  constructor(path: string, reason: string, hint?: string) {
    super('UNHASHABLE_VALUE', `${path}: ${reason}`, {
      hint: hint ?? 'Convert the value to JSON-compatible data (objects, arrays, strings, finite numbers, booleans, null) or pass a Uint8Array.',
      context: { path },
    });
    this.name = 'UnhashableValueError';
    this.path = path;
    this.reason = reason;
  }
}

/** Stored bytes whose SHA-256 does not match their address. The bytes are never returned. */
export class BlobCorruptError extends ProvenantError {
  readonly hash: string;
  constructor(hash: string, actual: string, where: string) {
    super('BLOB_CORRUPT', `blob ${hash} is corrupt: its bytes hash to ${actual} (${where})`, {
      hint: 'The stored bytes were altered or damaged and are refused. Restore the store from a backup; storing the original bytes again (store.putBlob) repairs the copy.',
      context: { hash, actual, where },
    });
    this.name = 'BlobCorruptError';
    this.hash = hash;
  }
}

/** A blob that a record refers to but the store does not hold. */
export class BlobMissingError extends ProvenantError {
  readonly hash: string;
  constructor(hash: string, where: string) {
    super('BLOB_MISSING', `blob ${hash} is not in the store (${where})`, {
      hint: 'The value was never stored here or was removed by hand. Restore it from a backup.',
      context: { hash, where },
    });
    this.name = 'BlobMissingError';
    this.hash = hash;
  }
}

/** Narrow an unknown thrown value to a message. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
