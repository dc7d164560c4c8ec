/**
 * The step realm: where stored step artifacts execute. Each loaded step version gets its own
 * `node:vm` context (its own globals and intrinsics: `Date`, `Math`, `Object`…), so what runs is
 * exactly the artifact's code and nothing the host process defined, and so the clock, randomness
 * and HTTP calls (`fetch`) inside the realm can be recorded and replayed (`determinism.ts`).
 *
 * This module is kept small and apart from the engine that hosts it (capture, replay).
 */
import { createRequire, isBuiltin } from 'node:module';
import * as vm from 'node:vm';
import { BlobCorruptError, BlobMissingError, ProvenantError } from '../errors.js';
import { sha256, type ContentHash } from '../hash/canonical.js';
import type { ExecutionContext, StepManifest } from '../store/records.js';
import type { Store } from '../store/store.js';
import { ARTIFACT_GLOBAL } from './bundle.js';
import { REALM_PRELUDE, realmHooks, realmNodeCrypto, realmWebCrypto, type RealmHooks } from './determinism.js';

/** What a step function receives besides its input and params. */
export interface StepContext {
  readonly stepId: string;
  readonly versionHash: ContentHash;
  readonly executionId: string;
  readonly runId: string;
  /** Who asked, from where, with which rights. */
  readonly context: ExecutionContext;
  /**
   * For steps declared `stateful: true` in their pipeline: the step's state, a plain object kept
   * across calls, snapshot at every checkpoint and restored at resume and replay. Keep it
   * JSON-compatible. Undefined for other steps.
   */
  readonly state?: Record<string, unknown>;
}

/**
 * A step function, as step authors write it: input and params in, output out (or a promise of it).
 * The output must be JSON-compatible or a Uint8Array.
 */
export type StepFunction<I = unknown, O = unknown, P = unknown> = (input: I, params: P, ctx: StepContext) => O | Promise<O>;

/** A step version loaded from its stored artifact, ready to call. */
export interface LoadedStep {
  readonly stepId: string;
  readonly versionHash: ContentHash;
  readonly manifest: StepManifest;
  /** The artifact's source text (what runs). */
  readonly code: string;
  readonly fn: StepFunction;
}

const hostRequire = createRequire(import.meta.url);

function builtinRequire(name: string): unknown {
  if (!isBuiltin(name)) {
    throw new Error(`step code may require only Node built-ins at run time, not '${name}' (bundle it instead)`);
  }
  // Randomness from node:crypto goes through the tape like Math.random (see determinism.ts).
  if (name === 'crypto' || name === 'node:crypto') return realmNodeCrypto;
  return hostRequire(name);
}

/**
 * Evaluate artifact code in a fresh realm and return its default export.
 * @throws ProvenantError ARTIFACT_CORRUPT when the code does not evaluate to a function.
 */
export function instantiateArtifact(code: string, stepId: string, versionHash: ContentHash): StepFunction {
  const sandbox = {
    console,
    TextEncoder,
    TextDecoder,
    URL,
    URLSearchParams,
    // fetch itself is defined by the prelude (recorded; see determinism.ts).
    Headers,
    Request,
    Response,
    FormData,
    Blob,
    Buffer,
    structuredClone,
    atob,
    btoa,
    queueMicrotask,
    crypto: realmWebCrypto,
    require: builtinRequire,
    process: Object.freeze({ env: Object.freeze({}), version: process.version, versions: process.versions, platform: process.platform }),
  };
  const context = vm.createContext(sandbox, { name: `provenant step ${stepId}` });
  // The realm's clock, randomness, timers, weak references and fetch, replaced before the step's code runs.
  (vm.runInContext(REALM_PRELUDE, context, { filename: 'provenant:realm-prelude.js' }) as (hooks: RealmHooks) => void)(realmHooks);
  let exported: unknown;
  try {
    const script = new vm.Script(`${code}\n;${ARTIFACT_GLOBAL}`, { filename: `provenant:step/${stepId}@${versionHash.slice(7, 19)}.js` });
    exported = script.runInContext(context);
  } catch (err) {
    throw new ProvenantError('ARTIFACT_CORRUPT', `step ${stepId} version ${versionHash}: the artifact failed to load: ${String(err)}`, {
      hint: 'The module throws while it is being loaded; fix its top-level code.',
      context: { stepId, versionHash },
      cause: err,
    });
  }
  const fn = (exported as { default?: unknown } | undefined)?.default;
  if (typeof fn !== 'function') {
    throw new ProvenantError('ARTIFACT_CORRUPT', `step ${stepId} version ${versionHash}: the export is not a function`, {
      hint: 'A step module must export the step as a function (default export or the named export in the definition).',
      context: { stepId, versionHash },
    });
  }
  return fn as StepFunction;
}

/**
 * Load the exact code of a recorded step version from its stored artifact. Works after the
 * step's source has been edited or deleted: only the store is read.
 * @throws ProvenantError STEP_NOT_FOUND, ARTIFACT_MISSING, ARTIFACT_CORRUPT
 */
export async function loadStep(store: Store, functionId: string, versionHash: ContentHash): Promise<LoadedStep> {
  const version = await store.getStepVersion(functionId, versionHash);
  if (version === undefined) {
    throw new ProvenantError('STEP_NOT_FOUND', `step ${functionId} has no recorded version ${versionHash} in ${store.location}`, {
      hint: 'List the recorded versions with `provenant steps`.',
      context: { stepId: functionId, versionHash },
    });
  }
  let bytes: Uint8Array;
  try {
    bytes = await store.getBlob(versionHash);
  } catch (err) {
    if (err instanceof BlobMissingError) {
      throw new ProvenantError('ARTIFACT_MISSING', `the code artifact of step ${functionId} version ${versionHash} is missing`, {
        hint: 'The store lost the artifact; restore it from a backup. The recorded version cannot run without it.',
        context: { stepId: functionId, versionHash },
        cause: err,
      });
    }
    if (err instanceof BlobCorruptError) {
      throw new ProvenantError('ARTIFACT_CORRUPT', `the code artifact of step ${functionId} version ${versionHash} does not match its hash`, {
        hint: 'The stored code was altered; it is refused rather than run. Restore the store from a backup.',
        context: { stepId: functionId, versionHash },
        cause: err,
      });
    }
    throw err;
  }
  // getBlob verifies; check again here so that no future store can hand over other code.
  if (sha256(bytes) !== versionHash) {
    throw new ProvenantError('ARTIFACT_CORRUPT', `the code artifact of step ${functionId} version ${versionHash} does not match its hash`, {
      context: { stepId: functionId, versionHash },
    });
  }
  const code = Buffer.from(bytes).toString('utf8');
  return { stepId: functionId, versionHash, manifest: version.manifest, code, fn: instantiateArtifact(code, functionId, versionHash) };
}
