/**
 * Loading a pipeline file (TypeScript or JavaScript) from the CLI: esbuild bundles it into one
 * self-contained ES module (with `provenant` resolved to a tiny shim that provides
 * `definePipeline`), which is imported from a temp file. Step modules are not loaded here: each
 * step is bundled and versioned on its own when a run registers it.
 */
import { build } from 'esbuild';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ProvenantError } from '../errors.js';
import { sha256 } from '../hash/canonical.js';
import { validatePipeline, type PipelineDefinition } from './define.js';

/** A pipeline loaded from a file, with the folder its relative step paths resolve from. */
export interface LoadedPipeline {
  readonly definition: PipelineDefinition;
  readonly file: string;
  readonly baseDir: string;
}

/**
 * Load and validate a pipeline file.
 * @throws ProvenantError PIPELINE_INVALID when it cannot be read, built, or has the wrong shape.
 */
export async function loadPipelineFile(path: string): Promise<LoadedPipeline> {
  const file = resolve(path);
  if (!existsSync(file)) {
    throw new ProvenantError('PIPELINE_INVALID', `pipeline file ${file} does not exist`, {
      hint: 'Pass the path of a .ts or .js file whose default export is definePipeline({...}).',
      context: { pipeline: file },
    });
  }
  let code: string;
  try {
    const result = await build({
      entryPoints: [file],
      bundle: true,
      write: false,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      logLevel: 'silent',
      plugins: [
        {
          name: 'provenant-shim',
          setup(b) {
            b.onResolve({ filter: /^provenant$/ }, () => ({ path: 'provenant', namespace: 'provenant-shim' }));
            b.onLoad({ filter: /.*/, namespace: 'provenant-shim' }, () => ({
              contents: 'export function definePipeline(p) { return p; }',
              loader: 'js',
            }));
          },
        },
      ],
    });
    code = result.outputFiles[0]?.text ?? '';
  } catch (err) {
    const errors = (err as { errors?: { text: string; location?: { file: string; line: number } | null }[] }).errors ?? [];
    const detail = errors.map((e) => (e.location ? `${e.location.file}:${e.location.line}: ${e.text}` : e.text)).join('\n');
    throw new ProvenantError('PIPELINE_INVALID', `cannot build pipeline file ${file}\n${detail || String(err)}`, {
      hint: 'Fix the error in the pipeline file.',
      context: { pipeline: file },
      cause: err,
    });
  }
  const dir = join(tmpdir(), 'provenant-pipelines');
  await mkdir(dir, { recursive: true });
  const temp = join(dir, `${sha256(code).slice(7, 23)}-${process.pid}.mjs`);
  await writeFile(temp, code);
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(temp).href)) as { default?: unknown };
  } catch (err) {
    throw new ProvenantError('PIPELINE_INVALID', `pipeline file ${file} throws when loaded: ${String(err)}`, {
      context: { pipeline: file },
      cause: err,
    });
  } finally {
    await rm(temp, { force: true });
  }
  return { definition: validatePipeline(mod.default, file), file, baseDir: dirname(file) };
}
