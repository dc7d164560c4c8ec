/**
 * Pipelines: an ordered chain of steps that each input record passes through. A pipeline file is
 * a TypeScript module whose default export is `definePipeline({...})`; each step names a module
 * and export, so that each step's code can be bundled and versioned on its own.
 */
import { ProvenantError } from '../errors.js';
import type { JsonValue } from '../hash/canonical.js';
import type { FailurePolicy } from '../store/records.js';

/** One step of a pipeline. */
export interface PipelineStep {
  /** Stable id of the step (`normalize`); versions are tracked per id. Letters, digits, `.`, `_`, `-`. */
  readonly id: string;
  /** The step's module, relative to the pipeline file (or absolute). */
  readonly module: string;
  /** The export that is the step function. Default: `default`. */
  readonly export?: string;
  /** Parameters passed to every call (canonical JSON, recorded with each execution). Default: `{}`. */
  readonly params?: JsonValue;
  /**
   * The step keeps state across records in `ctx.state` (e.g. a running aggregate): the state is
   * snapshot at every checkpoint and restored at resume and replay. Default: false.
   */
  readonly stateful?: boolean;
}

/** A pipeline: a name and the chain of steps a record goes through. */
export interface PipelineDefinition {
  readonly name: string;
  readonly steps: readonly PipelineStep[];
  /** What to do when a step fails on a record. Default: `stop`. */
  readonly failurePolicy?: FailurePolicy;
}

/**
 * Declare a pipeline (identity function that gives types).
 * @example
 * export default definePipeline({
 *   name: 'flights',
 *   steps: [
 *     { id: 'normalize', module: './steps/normalize.ts' },
 *     { id: 'classify', module: './steps/classify.ts', params: { lateAfterMinutes: 15 } },
 *   ],
 * });
 */
export function definePipeline(definition: PipelineDefinition): PipelineDefinition {
  return definition;
}

const STEP_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Check a pipeline definition's shape.
 * @throws ProvenantError PIPELINE_INVALID naming the offending field.
 */
export function validatePipeline(value: unknown, where: string): PipelineDefinition {
  const fail = (path: string, message: string): never => {
    throw new ProvenantError('PIPELINE_INVALID', `${where}: ${path}: ${message}`, {
      hint: "A pipeline file's default export is definePipeline({ name, steps: [{ id, module, export?, params? }] }).",
      context: { pipeline: where, path },
    });
  };
  if (typeof value !== 'object' || value === null) return fail('default export', 'is not a pipeline definition');
  const p = value as Record<string, unknown>;
  if (typeof p.name !== 'string' || p.name.trim() === '') fail('name', 'must be a non-empty string');
  if (!Array.isArray(p.steps) || p.steps.length === 0) fail('steps', 'must be a non-empty array');
  if (p.failurePolicy !== undefined && p.failurePolicy !== 'stop' && p.failurePolicy !== 'dead-letter') {
    fail('failurePolicy', "must be 'stop' or 'dead-letter'");
  }
  const seen = new Set<string>();
  (p.steps as unknown[]).forEach((s, i) => {
    if (typeof s !== 'object' || s === null) return fail(`steps[${i}]`, 'must be an object');
    const step = s as Record<string, unknown>;
    if (typeof step.id !== 'string' || !STEP_ID_RE.test(step.id)) {
      fail(`steps[${i}].id`, 'must be 1-128 letters, digits, ".", "_" or "-", starting with a letter or digit');
    }
    if (seen.has(step.id as string)) fail(`steps[${i}].id`, `"${String(step.id)}" is used twice`);
    seen.add(step.id as string);
    if (typeof step.module !== 'string' || step.module === '') fail(`steps[${i}].module`, 'must be a module path');
    if (step.export !== undefined && typeof step.export !== 'string') fail(`steps[${i}].export`, 'must be a string');
    if (step.stateful !== undefined && typeof step.stateful !== 'boolean') fail(`steps[${i}].stateful`, 'must be true or false');
  });
  return value as PipelineDefinition;
}
