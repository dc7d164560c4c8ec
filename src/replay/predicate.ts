/**
 * Predicates over replayed outputs: "is this output good?" for bisect (`--good`), "stop here?" for
 * the step debugger (`break when=`). A predicate module's default export is a function
 * `(output, record, info) => boolean`: `output` is a step's output (undefined when the step
 * failed), `record` the source record the path started from, `info` where it is (offset, step,
 * version, checkpoint, whether it is the record's final output, the error if it failed).
 *
 * The module is bundled with esbuild (TypeScript or JavaScript, with what it imports) and loaded in
 * this process, like a pipeline file (`pipeline/load.ts`): it is code the user runs from the command
 * line, not recorded step code.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { importBundled } from '../pipeline/import-bundled.js';
import { ProvenantError } from '../errors.js';
import type { ContentHash } from '../hash/canonical.js';

/** Where the output a predicate judges comes from. */
export interface PredicateInfo {
  readonly offset: number;
  readonly stepId: string;
  readonly versionHash: ContentHash;
  readonly checkpointId: string;
  /** True for the record's final output (the last step its path reached). */
  readonly final: boolean;
  /** The step's error, when it failed (then `output` is undefined). */
  readonly error?: string;
}

/** A predicate over an output: `(output, record, info) => boolean` (or a promise of it). */
export type OutputPredicate = (output: unknown, record: unknown, info: PredicateInfo) => boolean | Promise<boolean>;

/**
 * Load a predicate module (its default export, or the named `export`).
 * @throws ProvenantError INPUT_INVALID when the file is missing, does not build, throws when
 * loaded, or does not export a function
 */
export async function loadPredicate(path: string, exportName = 'default'): Promise<OutputPredicate> {
  const file = resolve(path);
  const fail = (message: string, cause?: unknown): never => {
    throw new ProvenantError('INPUT_INVALID', `predicate module ${file}: ${message}`, {
      hint: 'A predicate module exports a function: export default function good(output, record, info) { return …; }',
      context: { module: file },
      ...(cause === undefined ? {} : { cause }),
    });
  };
  if (!existsSync(file)) fail('does not exist');
  const mod = await importBundled(file, {
    tempFolder: 'provenant-predicates',
    fail: (stage, message, cause) => fail(stage === 'build' ? `cannot be built\n${message}` : `throws when loaded: ${message}`, cause),
  });
  const fn = mod[exportName];
  if (typeof fn !== 'function') return fail(`has no function export "${exportName}"`);
  return fn as OutputPredicate;
}
