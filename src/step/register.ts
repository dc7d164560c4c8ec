/**
 * Turning a step's source into a recorded, runnable version: bundle it, store the artifact,
 * register the version, then load it back from the store. What runs at capture is therefore the
 * stored artifact, the same bytes replay will load later.
 */
import { sha256 } from '../hash/canonical.js';
import { nowUs } from '../ids.js';
import type { Store } from '../store/store.js';
import { buildStepArtifact, type StepSource } from './bundle.js';
import { loadStep, type LoadedStep } from './runtime.js';

/**
 * Build, store and register the current code of a step, and load it from the store.
 * @param runId the run that first uses this version (recorded when the version is new)
 */
export async function prepareStep(store: Store, stepId: string, source: StepSource, runId: string | null = null): Promise<LoadedStep> {
  const artifact = await buildStepArtifact(stepId, source);
  const bytes = Buffer.from(artifact.code, 'utf8');
  const versionHash = sha256(bytes);
  await store.putBlob(bytes);
  await store.registerStepVersion({ stepId, versionHash, manifest: artifact.manifest, firstSeenUs: nowUs(), firstRunId: runId });
  return loadStep(store, stepId, versionHash);
}
