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
import { build } from 'esbuild';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ProvenantError } from '../errors.js';
import type { ContentHash } from '../hash/canonical.js';
import { sha256 } from '../hash/canonical.js';

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
  let code = '';
  try {
    const result = await build({
      entryPoints: [file],
      bundle: true,
      write: false,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      logLevel: 'silent',
    });
    code = result.outputFiles[0]?.text ?? '';
  } catch (err) {
    const errors = (err as { errors?: { text: string; location?: { file: string; line: number } | null }[] }).errors ?? [];
    fail(`cannot be built\n${errors.map((e) => (e.location ? `${e.location.file}:${e.location.line}: ${e.text}` : e.text)).join('\n') || String(err)}`, err);
  }
  // The bundle holds what the module imports (npm packages too); it is imported from a temp file.
  const dir = join(tmpdir(), 'provenant-predicates');
  await mkdir(dir, { recursive: true });
  const temp = join(dir, `${sha256(code).slice(7, 23)}-${process.pid}.mjs`);
  await writeFile(temp, code);
  let mod: Record<string, unknown> = {};
  try {
    mod = (await import(pathToFileURL(temp).href)) as Record<string, unknown>;
  } catch (err) {
    fail(`throws when loaded: ${String(err)}`, err);
  } finally {
    await rm(temp, { force: true });
  }
  const fn = mod[exportName];
  if (typeof fn !== 'function') return fail(`has no function export "${exportName}"`);
  return fn as OutputPredicate;
}
