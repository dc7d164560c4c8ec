/**
 * The one place where errors become what the user sees: a message, the hint, the context, and an
 * exit code. Exit codes: 0 ok; 1 unexpected failure (a bug: please report); 2 bad usage or input;
 * 3 integrity problem (corrupt or missing data or code); 4 a step failed and stopped the run;
 * 5 the store cannot be used (missing, too new, busy).
 */
import { CommanderError } from 'commander';
import { ProvenantError, type ErrorCode } from '../errors.js';
import { paint } from './format.js';

/** The exit code for each error code. The switch is exhaustive: a new code must be placed here. */
export function exitCodeOf(code: ErrorCode): number {
  switch (code) {
    case 'UNHASHABLE_VALUE':
    case 'PIPELINE_INVALID':
    case 'INPUT_INVALID':
    case 'NOT_FOUND':
    case 'STEP_BUILD_FAILED':
    case 'STEP_NOT_FOUND':
    case 'RUN_CLOSED':
    case 'CHECKPOINT_INVALID':
    case 'AS_OF_IN_FUTURE':
    case 'UNAUTHORIZED':
      return 2;
    case 'BLOB_CORRUPT':
    case 'BLOB_MISSING':
    case 'ARTIFACT_MISSING':
    case 'ARTIFACT_CORRUPT':
    case 'APPEND_ONLY':
    case 'DETERMINISM_VIOLATION':
    case 'RECOMPUTE_DIVERGED':
    case 'TAMPERED':
      return 3;
    case 'STEP_FAILED':
      return 4;
    case 'STORE_NOT_FOUND':
    case 'STORE_TOO_NEW':
    case 'STORE_BUSY':
    case 'SOURCE_UNAVAILABLE':
    case 'BUDGET_EXCEEDED':
      return 5;
  }
}

/** Print an error for a person (and as JSON on stdout with `--json`), then exit. */
export function exitWith(err: unknown, json: boolean): never {
  if (err instanceof CommanderError) {
    // Commander already printed usage errors; help and version exit 0.
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  if (err instanceof ProvenantError) {
    const lines = [`${paint('red', 'error', process.stderr)}: ${err.message}`];
    if (err.hint !== undefined) lines.push(`${paint('yellow', 'hint', process.stderr)}: ${err.hint}`);
    process.stderr.write(`${lines.join('\n')}\n`);
    if (json) {
      process.stdout.write(`${JSON.stringify({ error: { code: err.code, message: err.message, hint: err.hint ?? null, context: err.context } }, null, 2)}\n`);
    }
    process.exit(exitCodeOf(err.code));
  }
  const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
  process.stderr.write(`${paint('red', 'unexpected error', process.stderr)}: ${message}\nThis is a bug in Provenant; please report it with the command you ran.\n`);
  if (json) process.stdout.write(`${JSON.stringify({ error: { code: 'INTERNAL', message: String(err) } })}\n`);
  process.exit(1);
}
