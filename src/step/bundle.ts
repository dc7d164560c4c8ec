/**
 * A step's code identity: the step's module export is bundled with esbuild — its own source, the
 * local modules it imports and the npm packages it uses, tree-shaken down to what the export
 * reaches — into one self-contained script (the artifact). The SHA-256 of the artifact's bytes is
 * the step's version hash.
 *
 * Consequences, by design:
 * - Editing a helper that step A imports changes A's version and not B's, unless B reaches it too.
 * - Editing code the export does not reach (another export in the same file) changes nothing.
 * - npm packages are covered by their code, not their version number; the manifest lists them
 *   with their exact versions for people to read.
 * - Paths inside the artifact are relative to the project root (the nearest folder with a
 *   package.json), so moving a checkout does not change versions. A different esbuild release may
 *   print the same source differently and so yield a new version: the code that runs did change.
 * - Node built-ins stay external (`require('node:…')` inside the step realm).
 * - Step code may import only types from `provenant`; importing its runtime would bundle the
 *   engine into every step and is refused.
 */
import { build, version as esbuildVersion, type Plugin } from 'esbuild';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { ProvenantError } from '../errors.js';
import type { StepManifest } from '../store/records.js';

/** The global name the artifact assigns its exports to. */
export const ARTIFACT_GLOBAL = '__provenant_step';

/** Where a step's code is: a module file and one of its exports. */
export interface StepSource {
  /** Absolute path of the module (TypeScript or JavaScript). */
  readonly module: string;
  /** The export that is the step function. Default: `default`. */
  readonly export?: string;
}

/** A built artifact and what it was made of. */
export interface BuiltArtifact {
  readonly code: string;
  readonly manifest: StepManifest;
}

/** The nearest folder at or above `start` that holds a package.json (else `start` itself). */
export function findProjectRoot(start: string): string {
  let dir = resolve(start);
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return resolve(start);
    dir = parent;
  }
}

const refuseProvenantRuntime: Plugin = {
  name: 'provenant-refuse-runtime',
  setup(b) {
    b.onResolve({ filter: /^provenant(\/.*)?$/ }, (args) => ({
      errors: [
        {
          text: `step code imports the Provenant runtime ('${args.path}' in ${args.importer}); steps may import only types from 'provenant' (use \`import type\`)`,
        },
      ],
    }));
  },
};

/**
 * Bundle a step's module export into an artifact.
 * @throws ProvenantError STEP_BUILD_FAILED with esbuild's messages (file, line) when it cannot be built.
 */
export async function buildStepArtifact(stepId: string, source: StepSource): Promise<BuiltArtifact> {
  const modulePath = resolve(source.module);
  const exportName = source.export ?? 'default';
  if (!existsSync(modulePath)) {
    throw new ProvenantError('STEP_BUILD_FAILED', `step ${stepId}: module ${modulePath} does not exist`, {
      hint: 'Check the module path in the step definition; relative paths are resolved from the pipeline file.',
      context: { stepId, module: modulePath },
    });
  }
  if (!/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(exportName)) {
    throw new ProvenantError('STEP_BUILD_FAILED', `step ${stepId}: "${exportName}" is not a valid export name`, {
      context: { stepId, module: modulePath },
    });
  }
  const root = findProjectRoot(dirname(modulePath));
  const rel = toPosix(relative(root, modulePath));
  const specifier = rel.startsWith('.') || isAbsolute(rel) ? rel : `./${rel}`;
  const entry = exportName === 'default' ? `export { default } from ${JSON.stringify(specifier)};` : `export { ${exportName} as default } from ${JSON.stringify(specifier)};`;

  let result;
  try {
    result = await build({
      stdin: { contents: entry, resolveDir: root, sourcefile: 'provenant-step-entry.js', loader: 'js' },
      absWorkingDir: root,
      bundle: true,
      write: false,
      format: 'iife',
      globalName: ARTIFACT_GLOBAL,
      platform: 'node',
      target: 'node20',
      treeShaking: true,
      metafile: true,
      charset: 'utf8',
      logLevel: 'silent',
      plugins: [refuseProvenantRuntime],
    });
  } catch (err) {
    const errors = (err as { errors?: { text: string; location?: { file: string; line: number; column: number } | null }[] }).errors ?? [];
    const detail = errors.map((e) => (e.location ? `${e.location.file}:${e.location.line}:${e.location.column}: ${e.text}` : e.text)).join('\n');
    throw new ProvenantError('STEP_BUILD_FAILED', `step ${stepId}: cannot bundle ${rel}#${exportName}\n${detail || String(err)}`, {
      hint: 'Fix the error in the step module (or what it imports) and run again.',
      context: { stepId, module: modulePath, export: exportName },
      cause: err,
    });
  }
  const output = result.outputFiles[0];
  if (output === undefined) throw new ProvenantError('STEP_BUILD_FAILED', `step ${stepId}: esbuild produced no output`, { context: { stepId } });
  const code = output.text;
  const exported = result.metafile.outputs[Object.keys(result.metafile.outputs)[0] ?? '']?.exports ?? [];
  if (!code.includes(ARTIFACT_GLOBAL) || (exported.length > 0 && !exported.includes('default'))) {
    throw new ProvenantError('STEP_BUILD_FAILED', `step ${stepId}: ${rel} has no export "${exportName}"`, { context: { stepId, module: modulePath } });
  }

  const files: { path: string; bytes: number }[] = [];
  const packages = new Map<string, string>();
  for (const [path, info] of Object.entries(result.metafile.inputs)) {
    if (path.startsWith('<stdin>') || path === 'provenant-step-entry.js') continue;
    const pkg = packageOf(path);
    if (pkg === undefined) files.push({ path: toPosix(path), bytes: info.bytes });
    else if (!packages.has(pkg.name)) packages.set(pkg.name, readPackageVersion(join(root, pkg.dir)));
  }
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return {
    code,
    manifest: {
      format: 'provenant-step/1',
      module: rel,
      export: exportName,
      files,
      packages: [...packages].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, version]) => ({ name, version })),
      bundler: `esbuild@${esbuildVersion}`,
    },
  };
}

function toPosix(p: string): string {
  return sep === '/' ? p : p.split(sep).join('/');
}

function packageOf(path: string): { name: string; dir: string } | undefined {
  const parts = toPosix(path).split('/');
  const i = parts.lastIndexOf('node_modules');
  if (i < 0) return undefined;
  const scoped = parts[i + 1]?.startsWith('@') === true;
  const name = scoped ? `${parts[i + 1]}/${parts[i + 2]}` : (parts[i + 1] ?? '');
  return { name, dir: parts.slice(0, i + (scoped ? 3 : 2)).join('/') };
}

function readPackageVersion(dir: string): string {
  try {
    return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}
