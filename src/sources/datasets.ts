/** Paths of the real public data sets shipped by the npm package `vega-datasets`. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProvenantError } from '../errors.js';

/**
 * The path of a file in vega-datasets' `data/` folder (e.g. `flights-20k.json`, `flights-3m.parquet`).
 * @throws ProvenantError INPUT_INVALID when the package or file is not installed.
 */
export function vegaDatasetPath(file: string): string {
  let entry: string;
  try {
    entry = fileURLToPath(import.meta.resolve('vega-datasets'));
  } catch {
    throw new ProvenantError('INPUT_INVALID', 'the npm package vega-datasets is not installed', {
      hint: 'Run `npm install` in the Provenant folder (it is a dependency).',
    });
  }
  const path = join(dirname(entry), '..', 'data', file);
  if (!existsSync(path)) {
    throw new ProvenantError('INPUT_INVALID', `vega-datasets has no data file ${file}`, { context: { file: path } });
  }
  return path;
}
