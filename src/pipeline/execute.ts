/**
 * Running a pipeline over records: each record passes through the steps in order, every call
 * recorded by a capture {@link Run}. A step returning `null` ends that record's path (a filter).
 */
import { isAbsolute, resolve } from 'node:path';
import { hashValue, type JsonValue } from '../hash/canonical.js';
import type { ExecutionContext, FailurePolicy, RunStatus } from '../store/records.js';
import type { Store } from '../store/store.js';
import { CanonicalValue, startRun, type Run, type RunSummary } from '../capture/run.js';
import type { LoadedStep } from '../step/runtime.js';
import type { PipelineDefinition } from './define.js';
import type { SourceRecord } from '../sources/source.js';

const NULL_HASH = hashValue(null);

export type { SourceRecord } from '../sources/source.js';

/** Progress of a pipeline run, reported every `progressEvery` records. */
export interface PipelineProgress {
  readonly records: number;
  readonly executions: number;
  readonly failed: number;
  readonly elapsedMs: number;
}

/** Options of {@link runPipeline}. */
export interface RunPipelineOptions {
  /** Folder that relative step module paths resolve from. Default: cwd. */
  readonly baseDir?: string;
  /** Name of the input (file or stream) recorded with each execution's origin. */
  readonly streamId?: string;
  /** Overrides the pipeline's failure policy. */
  readonly failurePolicy?: FailurePolicy;
  readonly context?: ExecutionContext;
  /** Recorded with the run (e.g. the input file). */
  readonly runOptions?: JsonValue;
  /** Receives each record's final output (not called for filtered or failed records). */
  readonly sink?: (output: unknown, offset: number) => void | Promise<void>;
  readonly onProgress?: (progress: PipelineProgress) => void;
  /** Default: 1000. */
  readonly progressEvery?: number;
}

/** What a pipeline run did. */
export interface PipelineResult extends RunSummary {
  readonly records: number;
  readonly outputs: number;
  /** Step id → version hash used. */
  readonly versions: Readonly<Record<string, string>>;
}

/**
 * Run a pipeline over records, recording every execution in the store.
 * @example
 * const result = await runPipeline(store, pipeline, readRecords('flights.json'), { baseDir: here });
 */
export async function runPipeline(
  store: Store,
  pipeline: PipelineDefinition,
  records: AsyncIterable<SourceRecord> | Iterable<SourceRecord>,
  options: RunPipelineOptions = {},
): Promise<PipelineResult> {
  const baseDir = options.baseDir ?? process.cwd();
  const run = await startRun(store, {
    name: pipeline.name,
    failurePolicy: options.failurePolicy ?? pipeline.failurePolicy ?? 'stop',
    context: { source: 'library', ...(options.context ?? {}) },
    options: options.runOptions ?? {},
    projectDir: baseDir,
  });
  const steps: { loaded: LoadedStep; params: JsonValue }[] = [];
  try {
    for (const s of pipeline.steps) {
      const module = isAbsolute(s.module) ? s.module : resolve(baseDir, s.module);
      const loaded = await run.step(s.id, s.export === undefined ? { module } : { module, export: s.export });
      steps.push({ loaded, params: s.params ?? {} });
    }
  } catch (err) {
    await finishQuietly(run, 'failed');
    throw err;
  }

  const started = Date.now();
  const every = options.progressEvery ?? 1000;
  let count = 0;
  let outputs = 0;
  let executions = 0;
  let failed = 0;
  try {
    for await (const record of records) {
      count++;
      const origin = options.streamId === undefined ? undefined : { streamId: options.streamId, offset: record.offset };
      let value: unknown = record.value;
      let reached = true;
      for (const step of steps) {
        const pending = run.attemptNow(step.loaded, value, step.params, origin);
        const outcome = pending instanceof Promise ? await pending : pending;
        executions++;
        if (!outcome.ok) {
          failed++;
          if (!outcome.deadLettered) throw run.stoppedBy ?? new Error(outcome.error.message);
          reached = false;
          break;
        }
        value = outcome.canonical;
        if (outcome.outputHash === NULL_HASH) {
          reached = false;
          break;
        }
      }
      if (reached) {
        outputs++;
        if (options.sink) await options.sink((value as CanonicalValue).value, record.offset);
      }
      if (options.onProgress && count % every === 0) {
        options.onProgress({ records: count, executions, failed, elapsedMs: Date.now() - started });
      }
    }
  } catch (err) {
    await finishQuietly(run, run.stoppedBy ? 'stopped' : 'failed');
    throw err;
  }
  const summary = await run.finish();
  options.onProgress?.({ records: count, executions, failed, elapsedMs: Date.now() - started });
  return {
    ...summary,
    records: count,
    outputs,
    versions: Object.fromEntries(steps.map((s) => [s.loaded.stepId, s.loaded.versionHash])),
  };
}

/** End a run that is failing anyway; the original error is what the caller needs to see. */
async function finishQuietly(run: Run, status: RunStatus): Promise<void> {
  try {
    await run.finish(status);
  } catch {
    // The store could not record the end (it may be what failed); the run shows as not ended.
  }
}

