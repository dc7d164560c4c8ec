/**
 * Code identity: a step's version is the hash of the bundled code its export reaches, stored as an
 * artifact. What users rely on: a version changes exactly when the code that runs changes, an old
 * version can still run after its source is gone, and the code that runs is the stored code.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import * as vm from 'node:vm';
import { uuidv7 } from 'uuidv7';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  ProvenantError,
  hashValue,
  loadStep,
  openStore,
  prepareStep,
  sha256,
  startRun,
  type ContentHash,
  type LoadedStep,
  type StepContext,
  type Store,
} from '../../src/index.js';
import { ensureDist } from '../helpers/dist.js';
import { REPO_ROOT } from '../helpers/paths.js';
import { writeFiles, writeProject } from '../helpers/project.js';
import { deleteBlobRow, digestBytes, overwriteInlineBlob, withRawDb } from '../helpers/raw-db.js';
import { makeRepoTempDir, makeTempDir } from '../helpers/temp.js';

const STEP_A = `import { greet } from './lib/helper-a.js';
export default function a(input: { name: string }): string {
  return greet(input.name);
}
export function unused(): string {
  return 'unused v1';
}
`;
const HELPER_A = `export function greet(name: string): string {
  return 'hello ' + name;
}
`;
const STEP_B = `import { shout } from './lib/helper-b.js';
export default function b(input: { name: string }): string {
  return shout(input.name);
}
`;
const HELPER_B = `export function shout(name: string): string {
  return name.toUpperCase() + '!';
}
`;

function ctxFor(step: LoadedStep): StepContext {
  return { stepId: step.stepId, versionHash: step.versionHash, executionId: uuidv7(), runId: uuidv7(), context: {} };
}

async function call(step: LoadedStep, input: unknown, params: unknown = {}): Promise<unknown> {
  return step.fn(input, params, ctxFor(step));
}

async function buildError(promise: Promise<unknown>): Promise<ProvenantError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ProvenantError);
    return err as ProvenantError;
  }
  throw new Error('expected the step build to fail');
}

// Runs commit through the store's writer thread, whose script is the built one (dist/).
beforeAll(async () => {
  await ensureDist();
});

describe('step versions', () => {
  let project: string;
  let storeDir: string;
  let store: Store;
  const module = (name: string): string => join(project, 'steps', name);

  beforeEach(async () => {
    project = join(makeTempDir(), 'proj');
    writeProject(project, { 'steps/a.ts': STEP_A, 'steps/lib/helper-a.ts': HELPER_A, 'steps/b.ts': STEP_B, 'steps/lib/helper-b.ts': HELPER_B });
    storeDir = makeTempDir();
    store = await openStore(storeDir);
  });

  afterEach(async () => {
    await store.close();
  });

  describe('change when, and only when, the code a step reaches changes', () => {
    it('editing a helper changes the version of the step that imports it, not of the other', async () => {
      const a1 = await prepareStep(store, 'a', { module: module('a.ts') });
      const b1 = await prepareStep(store, 'b', { module: module('b.ts') });
      expect(await call(a1, { name: 'ada' })).toBe('hello ada');
      expect(a1.manifest.files.map((f) => f.path)).toEqual(['steps/a.ts', 'steps/lib/helper-a.ts']);
      expect(b1.manifest.files.map((f) => f.path)).toEqual(['steps/b.ts', 'steps/lib/helper-b.ts']);
      expect(a1.manifest).toMatchObject({ format: 'provenant-step/1', module: 'steps/a.ts', export: 'default', packages: [] });
      expect(a1.manifest.bundler).toMatch(/^esbuild@\d+\.\d+\.\d+/);

      writeFiles(project, { 'steps/lib/helper-a.ts': HELPER_A.replace("'hello '", "'hi '") });
      const a2 = await prepareStep(store, 'a', { module: module('a.ts') });
      const b2 = await prepareStep(store, 'b', { module: module('b.ts') });
      expect(a2.versionHash).not.toBe(a1.versionHash);
      expect(b2.versionHash).toBe(b1.versionHash);
      expect(await call(a2, { name: 'ada' })).toBe('hi ada');

      const steps = await store.listSteps();
      expect(steps.find((s) => s.stepId === 'a')?.versions.map((v) => v.versionHash)).toEqual([a1.versionHash, a2.versionHash]);
      expect(steps.find((s) => s.stepId === 'b')?.versions.map((v) => v.versionHash)).toEqual([b1.versionHash]);
    });

    it('the version hash is the SHA-256 of the stored code, and rebuilding unchanged code gives the same version', async () => {
      const first = await prepareStep(store, 'a', { module: module('a.ts') });
      expect(sha256(Buffer.from(first.code, 'utf8'))).toBe(first.versionHash);
      expect(Buffer.from(await store.getBlob(first.versionHash)).toString('utf8')).toBe(first.code);
      const again = await prepareStep(store, 'a', { module: module('a.ts') });
      expect(again.versionHash).toBe(first.versionHash);
      expect((await store.stats()).stepVersions).toBe(1);
    });

    it('editing another export of the module, which the step does not reach, does not change its version', async () => {
      const before = await prepareStep(store, 'a', { module: module('a.ts') });
      writeFiles(project, { 'steps/a.ts': STEP_A.replace("'unused v1'", "'unused v2, much longer now'") });
      const after = await prepareStep(store, 'a', { module: module('a.ts') });
      expect(after.versionHash).toBe(before.versionHash);
      // …while that other export, as a step of its own, did change.
      const other = await prepareStep(store, 'other', { module: module('a.ts'), export: 'unused' });
      expect(await call(other, null)).toBe('unused v2, much longer now');
    });

    it('moving the whole project to another folder does not change versions', async () => {
      const a = await prepareStep(store, 'a', { module: module('a.ts') });
      const b = await prepareStep(store, 'b', { module: module('b.ts') });
      const parent = join(makeTempDir(), 'somewhere');
      mkdirSync(parent);
      const moved = join(parent, 'else');
      renameSync(project, moved);
      expect(existsSync(module('a.ts'))).toBe(false);
      const a2 = await prepareStep(store, 'a', { module: join(moved, 'steps', 'a.ts') });
      const b2 = await prepareStep(store, 'b', { module: join(moved, 'steps', 'b.ts') });
      expect(a2.versionHash).toBe(a.versionHash);
      expect(b2.versionHash).toBe(b.versionHash);
    });
  });

  describe('old versions keep running from the store', () => {
    it('after the source changed and was deleted, each version still runs its own code', async () => {
      const input = { name: 'grace' };
      const run1 = await startRun(store, { name: 'v1' });
      const v1 = await run1.step('a', { module: module('a.ts') });
      expect(await run1.call(v1, input)).toBe('hello grace');
      await run1.finish();

      writeFiles(project, { 'steps/lib/helper-a.ts': HELPER_A.replace("'hello ' + name", "'bonjour ' + name.toUpperCase()") });
      const run2 = await startRun(store, { name: 'v2' });
      const v2 = await run2.step('a', { module: module('a.ts') });
      expect(await run2.call(v2, input)).toBe('bonjour GRACE');
      await run2.finish();
      expect(v2.versionHash).not.toBe(v1.versionHash);

      rmSync(join(project, 'steps'), { recursive: true });
      await store.close();
      store = await openStore(storeDir, { create: false });

      const old = await loadStep(store, 'a', v1.versionHash);
      const current = await loadStep(store, 'a', v2.versionHash);
      expect(await call(old, { name: 'alan' })).toBe('hello alan');
      expect(await call(current, { name: 'alan' })).toBe('bonjour ALAN');
      expect(old.code).toBe(v1.code);

      // What was recorded matches what each version produces.
      const [e1] = await store.listExecutions({ runId: run1.id });
      const [e2] = await store.listExecutions({ runId: run2.id });
      expect(e1?.functionVersionHash).toBe(v1.versionHash);
      expect(e1?.outputHash).toBe(hashValue(await call(old, input)));
      expect(e2?.outputHash).toBe(hashValue(await call(current, input)));
    });

    it('an unknown version → STEP_NOT_FOUND', async () => {
      const err = await buildError(loadStep(store, 'a', hashValue('no such code')));
      expect(err.code).toBe('STEP_NOT_FOUND');
    });
  });

  describe('what runs is the stored artifact', () => {
    it('tampered stored code is refused (ARTIFACT_CORRUPT) and never runs', async () => {
      const step = await prepareStep(store, 'a', { module: module('a.ts') });
      const markerDir = makeTempDir();
      const payload = (marker: string): string =>
        `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'tampered code ran');\nvar __provenant_step = { default: () => 'evil' };\n`;

      // The payload does write its marker when it is run.
      const control = join(markerDir, 'control');
      vm.runInNewContext(payload(control), { require: createRequire(import.meta.url) });
      expect(readFileSync(control, 'utf8')).toBe('tampered code ran');

      const marker = join(markerDir, 'marker');
      await store.close();
      overwriteInlineBlob(storeDir, step.versionHash, Buffer.from(payload(marker)));
      store = await openStore(storeDir);

      const err = await buildError(loadStep(store, 'a', step.versionHash));
      expect(err.code).toBe('ARTIFACT_CORRUPT');
      expect(err.context).toMatchObject({ stepId: 'a', versionHash: step.versionHash });
      expect(existsSync(marker)).toBe(false);
    });

    it('a missing artifact → ARTIFACT_MISSING', async () => {
      const step = await prepareStep(store, 'a', { module: module('a.ts') });
      await store.close();
      withRawDb(storeDir, (db) => deleteBlobRow(db, digestBytes(step.versionHash)));
      store = await openStore(storeDir);
      const err = await buildError(loadStep(store, 'a', step.versionHash));
      expect(err.code).toBe('ARTIFACT_MISSING');
    });

    it('step code sees no environment variables of the host', async () => {
      writeFiles(project, { 'steps/env.ts': 'export default () => ({ keys: Object.keys(process.env), home: process.env.HOME ?? null });\n' });
      expect(Object.keys(process.env).length).toBeGreaterThan(0);
      const step = await prepareStep(store, 'env', { module: module('env.ts') });
      expect(await call(step, null)).toEqual({ keys: [], home: null });
    });
  });

  describe('build failures → STEP_BUILD_FAILED, and nothing is registered', () => {
    it('a step that imports a value from provenant', async () => {
      writeFiles(project, { 'steps/engine.ts': "import { hashValue } from 'provenant';\nexport default (x: unknown) => hashValue(x);\n" });
      const err = await buildError(prepareStep(store, 'engine', { module: module('engine.ts') }));
      expect(err.code).toBe('STEP_BUILD_FAILED');
      expect(err.message).toMatch(/imports the Provenant runtime/);
      expect(await store.listSteps()).toEqual([]);
    });

    it('importing only types from provenant is fine', async () => {
      writeFiles(project, {
        'steps/typed.ts': "import type { StepContext } from 'provenant';\nexport default (_x: unknown, _p: unknown, ctx: StepContext) => ctx.stepId;\n",
      });
      const step = await prepareStep(store, 'typed', { module: module('typed.ts') });
      expect(await call(step, null)).toBe('typed');
    });

    it('a module that does not exist, naming its path', async () => {
      const missing = module('missing.ts');
      const err = await buildError(prepareStep(store, 'missing', { module: missing }));
      expect(err.code).toBe('STEP_BUILD_FAILED');
      expect(err.message).toContain(missing);
      expect(err.context).toMatchObject({ module: missing });
    });

    it('a module importing a file that does not exist, naming the importer and the import', async () => {
      writeFiles(project, { 'steps/broken.ts': "import { gone } from './lib/gone.js';\nexport default () => gone();\n" });
      const err = await buildError(prepareStep(store, 'broken', { module: module('broken.ts') }));
      expect(err.code).toBe('STEP_BUILD_FAILED');
      expect(err.message).toContain('steps/broken.ts');
      expect(err.message).toContain('./lib/gone.js');
      expect(await store.listSteps()).toEqual([]);
    });

    it('an export name the module does not have', async () => {
      const err = await buildError(prepareStep(store, 'a', { module: module('a.ts'), export: 'nope' }));
      expect(err.code).toBe('STEP_BUILD_FAILED');
      expect(err.message).toContain('nope');
      expect(await store.listSteps()).toEqual([]);
    });

    it('a syntax error, naming file and line', async () => {
      writeFiles(project, { 'steps/syntax.ts': 'export default function (x: number) {\n  return x +;\n}\n' });
      const err = await buildError(prepareStep(store, 'syntax', { module: module('syntax.ts') }));
      expect(err.code).toBe('STEP_BUILD_FAILED');
      expect(err.message).toMatch(/steps\/syntax\.ts:2:/);
    });
  });

  it('Node built-ins stay outside the artifact and work at run time', async () => {
    writeFiles(project, {
      'steps/digest.ts': "import { createHash } from 'node:crypto';\nexport default (s: string) => createHash('sha256').update(s).digest('hex');\n",
    });
    const step = await prepareStep(store, 'digest', { module: module('digest.ts') });
    expect(step.manifest.packages).toEqual([]);
    expect(await call(step, 'abc')).toBe(sha256('abc').slice('sha256:'.length));
  });
});

describe('npm packages', () => {
  it('a package a step uses is bundled in and listed with its exact version', async () => {
    // Inside the repository so that the package resolves from its node_modules; the package.json
    // written here still makes this folder the project root.
    const project = makeRepoTempDir();
    writeProject(project, {
      'steps/ids.ts': "import { uuidv7 } from 'uuidv7';\nexport default () => uuidv7();\n",
    });
    const storeDir = makeTempDir();
    const store = await openStore(storeDir);
    try {
      const step = await prepareStep(store, 'ids', { module: join(project, 'steps', 'ids.ts') });
      const installed = (JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', 'uuidv7', 'package.json'), 'utf8')) as { version: string }).version;
      expect(step.manifest.packages).toEqual([{ name: 'uuidv7', version: installed }]);
      expect(step.manifest.files.map((f) => f.path)).toEqual(['steps/ids.ts']);

      // It runs from the artifact alone: step code cannot require packages at run time.
      const id = await call(step, null);
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      const reloaded = await loadStep(store, 'ids', step.versionHash as ContentHash);
      expect(await call(reloaded, null)).not.toBe(id);
    } finally {
      await store.close();
    }
  });
});
