/**
 * Loading a TypeScript or JavaScript module given on the command line (a pipeline file, a bisect
 * predicate): esbuild bundles it with what it imports into one ES module, which is imported from
 * a temp file and the file removed. (Step code is not loaded this way: each step is bundled into
 * a stored artifact and runs in its own realm, see `step/`.)
 */
import { build, type Plugin } from 'esbuild';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { sha256 } from '../hash/canonical.js';

/** How {@link importBundled} reports a problem: `stage` says whether building or loading failed. */
export type ImportFailure = (stage: 'build' | 'load', message: string, cause: unknown) => never;

/** Bundle `file` and import it; its exports. */
export async function importBundled(
  file: string,
  options: { readonly tempFolder: string; readonly plugins?: Plugin[]; readonly fail: ImportFailure },
): Promise<Record<string, unknown>> {
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
      ...(options.plugins === undefined ? {} : { plugins: options.plugins }),
    });
    code = result.outputFiles[0]?.text ?? '';
  } catch (err) {
    const errors = (err as { errors?: { text: string; location?: { file: string; line: number } | null }[] }).errors ?? [];
    const detail = errors.map((e) => (e.location ? `${e.location.file}:${e.location.line}: ${e.text}` : e.text)).join('\n');
    options.fail('build', detail || String(err), err);
  }
  const dir = join(tmpdir(), options.tempFolder);
  await mkdir(dir, { recursive: true });
  const temp = join(dir, `${sha256(code).slice(7, 23)}-${process.pid}.mjs`);
  await writeFile(temp, code);
  try {
    return (await import(pathToFileURL(temp).href)) as Record<string, unknown>;
  } catch (err) {
    return options.fail('load', String(err), err);
  } finally {
    await rm(temp, { force: true });
  }
}
