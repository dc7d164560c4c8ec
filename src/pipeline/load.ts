/**
 * Loading a pipeline file (TypeScript or JavaScript) from the CLI: bundled into one self-contained
 * ES module (with `provenant` resolved to a tiny shim that provides `definePipeline`) and imported
 * (see import-bundled.ts). Step modules are not loaded here: each
 * step is bundled and versioned on its own when a run registers it.
 */
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { importBundled } from './import-bundled.js';
import { ProvenantError } from '../errors.js';
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
  const mod = await importBundled(file, {
    tempFolder: 'provenant-pipelines',
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
    fail: (stage, message, cause) => {
      throw new ProvenantError('PIPELINE_INVALID', stage === 'build' ? `cannot build pipeline file ${file}\n${message}` : `pipeline file ${file} throws when loaded: ${message}`, {
        hint: stage === 'build' ? 'Fix the error in the pipeline file.' : 'Fix the top-level code of the pipeline file.',
        context: { pipeline: file },
        cause,
      });
    },
  });
  return { definition: validatePipeline(mod.default, file), file, baseDir: dirname(file) };
}
