/**
 * Running a pipeline over records: each record passes through the steps in order, every call
 * recorded by a capture {@link Run}. A step returning `null` ends that record's path (a filter).
 *
 * Over a stream (a {@link RecordSource}, or records with a `streamId`), the run writes temporal
 * checkpoints (see `checkpoint/checkpointer.ts`): each commits with all of its executions in one
 * transaction, records the pipeline's exact code versions, the stateful steps' state and the
 * sink's position, and a crashed run resumes from its last COMPLETE one ({@link resumePipeline}).
 */
import { isAbsolute, resolve } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { inspect } from 'node:util';
import { ProvenantError, errorMessage } from '../errors.js';
import { encodeValue, hashValue, type EncodedValue, type JsonValue } from '../hash/canonical.js';
import type { CheckpointEnd, CheckpointRecord, ExecutionContext, FailurePolicy, RunStatus } from '../store/records.js';
import type { Store } from '../store/store.js';
import { CanonicalValue, continueRun, startRun, type Run, type RunSummary } from '../capture/run.js';
import { loadStep, type LoadedStep } from '../step/runtime.js';
import { Checkpointer, DEFAULT_CHECKPOINT_POLICY, type CheckpointPolicy } from '../checkpoint/checkpointer.js';
import { allCheckpoints, chainOf, continuedFrom, endAbandoned, isAbandoned } from '../checkpoint/chain.js';
import { encodeRecordedPipeline, readRecordedPipeline, type RecordedPipeline } from '../checkpoint/recorded-pipeline.js';
import { functionSink, NdjsonFileSink, type Sink } from '../checkpoint/sink.js';
import { FileSource, type FileFormat } from '../sources/files.js';
import { LogSource } from '../stream/log.js';
import { emptyStates, restoreStates, type StepStates } from '../checkpoint/state.js';
import { acquireRunLock, type RunLock } from '../checkpoint/run-lock.js';
import { prepareDecodeStep } from '../sources/decode-step.js';
import { isIdleTick, type IdleTick, type RecordSource, type SourceRecord, type SourceSpec } from '../sources/source.js';
import type { PipelineDefinition } from './define.js';

export type { SourceRecord } from '../sources/source.js';

const NULL_HASH = hashValue(null);

/** Progress of a pipeline run, reported every `progressEvery` records. */
export interface PipelineProgress {
  readonly records: number;
  readonly executions: number;
  readonly failed: number;
  readonly checkpoints: number;
  readonly elapsedMs: number;
}

/** Options of {@link runPipeline}. */
export interface RunPipelineOptions {
  /** Folder that relative step module paths resolve from. Default: cwd. */
  readonly baseDir?: string;
  /** Stream id recorded with each execution (for plain iterables; a RecordSource has its own). */
  readonly streamId?: string;
  /** Overrides the pipeline's failure policy. */
  readonly failurePolicy?: FailurePolicy;
  readonly context?: ExecutionContext;
  /** Recorded with the run (e.g. the pipeline file). */
  readonly runOptions?: { readonly [key: string]: JsonValue };
  /**
   * Steps already built, stored, registered and loaded from the store, by step id: used as they are
   * (same stored artifact, same loaded code, already optimized by the JIT); steps not in it are
   * prepared and added. A worker runs many segments, each a run of its own, with one of these.
   */
  readonly stepCache?: Map<string, LoadedStep>;
  /**
   * A COMPLETE checkpoint (of another run, over the same stream) that this run goes on from: the
   * stateful steps start from its state snapshot, and this run's first checkpoint names it as its
   * previous one (so that replay restores that state too). A worker's segment continues the one
   * before it this way.
   */
  readonly continueFrom?: CheckpointRecord;
  /**
   * Receives each record's final output (not filtered or failed records). A {@link Sink} takes
   * part in checkpoints, so that after a crash and a resume it holds every output exactly once.
   */
  readonly sink?: Sink | ((output: unknown, offset: number) => void | Promise<void>);
  readonly onProgress?: (progress: PipelineProgress) => void;
  /** Default: 1000. */
  readonly progressEvery?: number;
  /**
   * When to write checkpoints (over a stream), or `false` for none. Default: every 10,000 records
   * or 10 s, for a RecordSource or records with a `streamId`.
   */
  readonly checkpoint?: CheckpointPolicy | false;
  /** Keep each checkpoint's input slice so the range stays replayable when the source forgets. Default: the source's `mayForget`. */
  readonly keepInput?: boolean;
  /** First offset to read (RecordSource). Default: the source's first. */
  readonly from?: number;
  /** Offset to stop before (RecordSource). Default: the source's end when the run starts. */
  readonly to?: number;
  /** At most this many records from `from` (RecordSource; ignored when `to` is given). */
  readonly limit?: number;
  /** Keep waiting for new records at the end of a live source, until `signal` aborts. */
  readonly follow?: boolean;
  readonly signal?: AbortSignal;
  /** Called after each checkpoint is committed (handed to the store). */
  readonly onCheckpoint?: (end: CheckpointEnd) => void;
}

/** What a pipeline run did. */
export interface PipelineResult extends RunSummary {
  readonly records: number;
  readonly outputs: number;
  /** Step id → version hash used. */
  readonly versions: Readonly<Record<string, string>>;
  /** Checkpoints ended by this run (or resume attempt). */
  readonly checkpoints: number;
  /** The last checkpoint ended, or null. */
  readonly lastCheckpointId: string | null;
  /** For a resume: the COMPLETE checkpoint it went on from (null when it started over from the first). */
  readonly resumedFrom?: string | null;
}

/** A pipeline step ready to run. */
interface ReadyStep {
  readonly loaded: LoadedStep;
  readonly params: JsonValue;
  readonly stateful: boolean;
}

/** What a run records in its options so that resume can go on (under `provenant`). */
interface ResumeInfo {
  readonly source: SourceSpec | null;
  readonly streamId: string | null;
  readonly from: number | null;
  readonly to: number | null;
  readonly checkpoint: CheckpointPolicy | false;
  readonly keepInput: boolean;
  readonly sink: JsonValue;
  readonly sinkStart: JsonValue;
}

function isRecordSource(input: unknown): input is RecordSource {
  return typeof input === 'object' && input !== null && typeof (input as RecordSource).read === 'function' && 'spec' in input;
}

function toSink(sink: RunPipelineOptions['sink']): Sink | undefined {
  if (sink === undefined) return undefined;
  return typeof sink === 'function' ? functionSink(sink) : sink;
}

/**
 * Run a pipeline over records, recording every execution in the store.
 * @example
 * const result = await runPipeline(store, pipeline, new FileSource('flights.ndjson'), { baseDir: here });
 */
export async function runPipeline(
  store: Store,
  pipeline: PipelineDefinition,
  input: RecordSource | AsyncIterable<SourceRecord | IdleTick> | Iterable<SourceRecord>,
  options: RunPipelineOptions = {},
): Promise<PipelineResult> {
  const baseDir = options.baseDir ?? process.cwd();
  const source = isRecordSource(input) ? input : undefined;
  const streamId = source?.streamId ?? options.streamId;
  const checkpointing = options.checkpoint !== false && streamId !== undefined;
  const policy = options.checkpoint === false ? false : { ...DEFAULT_CHECKPOINT_POLICY, ...(options.checkpoint ?? {}) };
  const sink = toSink(options.sink);
  const keepInput = options.keepInput ?? source?.mayForget ?? false;
  const failurePolicy = options.failurePolicy ?? pipeline.failurePolicy ?? 'stop';
  const from = options.from ?? (source?.firstOffset === undefined ? undefined : await source.firstOffset());
  let to = options.to ?? (options.limit === undefined ? undefined : (from ?? 0) + options.limit);
  if (to === undefined && source?.spec.kind === 'log') to = (await store.getStream(source.streamId))?.length;
  const resumeInfo: ResumeInfo = {
    source: source?.spec ?? null,
    streamId: streamId ?? null,
    from: from ?? null,
    to: to ?? null,
    checkpoint: checkpointing ? policy : false,
    keepInput,
    sink: sink?.spec ?? null,
    sinkStart: sink === undefined ? null : await sink.commit(),
  };
  const run = await startRun(store, {
    name: pipeline.name,
    failurePolicy,
    context: { source: 'library', ...(options.context ?? {}) },
    options: { ...(options.runOptions ?? {}), provenant: resumeInfo as unknown as JsonValue },
    projectDir: baseDir,
    checkpointed: checkpointing,
  });
  const steps: ReadyStep[] = [];
  try {
    for (const s of pipeline.steps) {
      const module = isAbsolute(s.module) ? s.module : resolve(baseDir, s.module);
      let loaded = options.stepCache?.get(s.id);
      if (loaded === undefined) {
        loaded = await run.step(s.id, s.export === undefined ? { module } : { module, export: s.export });
        options.stepCache?.set(s.id, loaded);
      }
      steps.push({ loaded, params: s.params ?? {}, stateful: s.stateful === true });
    }
  } catch (err) {
    await finishQuietly(run, 'failed');
    throw err;
  }
  const records = source === undefined ? (input as AsyncIterable<SourceRecord> | Iterable<SourceRecord>) : source.read(readOptions(from, to, options));
  const statefulIds = steps.filter((s) => s.stateful).map((s) => s.loaded.stepId);
  const continueFrom = options.continueFrom;
  if (continueFrom !== undefined && (continueFrom.end === null || continueFrom.status !== 'COMPLETE' || continueFrom.streamId !== streamId)) {
    await finishQuietly(run, 'failed');
    throw new ProvenantError('CHECKPOINT_INVALID', `checkpoint ${continueFrom.checkpointId} cannot be continued: it is ${continueFrom.status} over ${continueFrom.streamId}`, {
      hint: 'Continue from a COMPLETE checkpoint over the same stream.',
      context: { checkpointId: continueFrom.checkpointId, streamId: streamId ?? null },
    });
  }
  const states = continueFrom === undefined ? emptyStates(statefulIds) : await restoreStates(store, continueFrom.end?.stateHash ?? null, statefulIds);
  let checkpointer: Checkpointer | undefined;
  let lock: RunLock | undefined;
  if (checkpointing) {
    lock = acquireRunLock(store, run.id);
    const recorded = recordPipeline(pipeline.name, failurePolicy, steps);
    const begin = Checkpointer.begin(run.id, streamId, continueFrom?.checkpointId ?? null, from ?? 0, recorded.hash);
    try {
      await store.applyCheckpoint({ begin }, [recorded]);
    } catch (err) {
      lock.release();
      await finishQuietly(run, 'failed');
      throw err;
    }
    checkpointer = new Checkpointer(
      { run, streamId, pipelineHash: recorded.hash, policy: policy as CheckpointPolicy, states, sink, keepInput, onCheckpoint: options.onCheckpoint },
      begin,
    );
  }
  try {
    return await drive({ store, run, steps, states, streamId, sink, checkpointer, records, options, resumedFrom: undefined });
  } finally {
    lock?.release();
  }
}

function readOptions(from: number | undefined, to: number | undefined, options: { follow?: boolean; signal?: AbortSignal }) {
  return {
    ...(from === undefined ? {} : { from }),
    ...(to === undefined ? {} : { to }),
    ...(options.follow === undefined ? {} : { follow: options.follow }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  };
}

function recordPipeline(name: string, failurePolicy: FailurePolicy, steps: readonly ReadyStep[]): EncodedValue {
  const recorded: RecordedPipeline = {
    v: 1,
    name,
    failurePolicy,
    steps: steps.map((s) => ({ id: s.loaded.stepId, versionHash: s.loaded.versionHash, params: s.params, stateful: s.stateful })),
  };
  return encodeRecordedPipeline(recorded);
}

/** Options of {@link resumePipeline}. */
export interface ResumePipelineOptions {
  /** The source to read (default: the run's recorded source, opened again with {@link openSource}). */
  readonly source?: RecordSource;
  /** Where outputs go (default: the run's recorded sink, reopened and cut back; `false`: none). */
  readonly sink?: Sink | false;
  readonly onProgress?: (progress: PipelineProgress) => void;
  readonly progressEvery?: number;
  readonly follow?: boolean;
  readonly signal?: AbortSignal;
  readonly onCheckpoint?: (end: CheckpointEnd) => void;
  /** Opens a recorded source spec (default: {@link openSource}). */
  readonly openSource?: (spec: SourceSpec) => Promise<RecordSource>;
  /** Opens a recorded sink spec (default: NDJSON files). */
  readonly openSink?: (spec: JsonValue) => Sink | undefined;
}

/**
 * Go on with a run that stopped before it finished (its process was killed, the machine went
 * down): from its last COMPLETE checkpoint, with the exact step versions that checkpoint recorded
 * (loaded from their stored artifacts, not from the current source files), the stateful steps'
 * state restored from its snapshot, and the sink cut back to its recorded position. Checkpoints
 * the crash left IN_PROGRESS are ended FAILED ("abandoned"). Afterwards every record's output is
 * in the sink exactly once.
 * @throws ProvenantError NOT_FOUND (run), RUN_CLOSED (it ended), CHECKPOINT_INVALID (it was not
 * checkpointed), STORE_BUSY (it is still running in another process)
 */
export async function resumePipeline(store: Store, runId: string, options: ResumePipelineOptions = {}): Promise<PipelineResult> {
  const info = await store.getRun(runId);
  if (info === undefined) {
    throw new ProvenantError('NOT_FOUND', `no run ${runId} in ${store.location}`, { hint: 'List runs with `provenant runs`.', context: { runId } });
  }
  const resumeInfo = (info.options as { provenant?: ResumeInfo } | null)?.provenant;
  const lock = acquireRunLock(store, runId);
  try {
    const all = await allCheckpoints(store, { runId });
    if (resumeInfo === undefined || resumeInfo.checkpoint === false || all.length === 0 || resumeInfo.streamId === null) {
      throw new ProvenantError('CHECKPOINT_INVALID', `run ${runId} wrote no checkpoints, so it cannot be resumed`, {
        hint: 'Only runs over a stream with checkpoints can be resumed; run the pipeline again.',
        context: { runId },
      });
    }
    const run = await continueRun(store, runId, { checkpointed: true });
    const chain = chainOf(all);
    const first = chain[0] as CheckpointRecord;
    const lastComplete = [...chain].reverse().find((c) => c.status === 'COMPLETE');
    // A run that continued another run's checkpoint (continueFrom) and crashed before its own first
    // COMPLETE checkpoint starts over from that checkpoint's state, still naming it as previous.
    const continued = lastComplete === undefined ? await continuedFrom(store, chain) : null;
    const failed = chain.find((c) => c.status === 'FAILED' && !isAbandoned(c));
    if (failed !== undefined) {
      throw new ProvenantError('RUN_CLOSED', `run ${runId} stopped at a failure in checkpoint ${failed.checkpointId}: ${failed.end?.reason ?? ''}`, {
        hint: 'A run stopped by a failing step is not resumed; fix the step and start a new run.',
        context: { runId, checkpointId: failed.checkpointId },
      });
    }
    // End what the crash left open: abandoned, no executions.
    for (const c of all) {
      if (c.status === 'IN_PROGRESS') await endAbandoned(store, c, `the run's process stopped before this checkpoint completed; resumed from ${lastComplete?.checkpointId ?? 'the start of the run'}`);
    }
    const recorded = await readRecordedPipeline(store, (lastComplete ?? first).pipelineHash);
    const steps: ReadyStep[] = [];
    for (const s of recorded.steps) {
      steps.push({ loaded: await loadStep(store, s.id, s.versionHash), params: s.params, stateful: s.stateful });
    }
    const states: StepStates = await restoreStates(
      store,
      (lastComplete ?? continued)?.end?.stateHash ?? null,
      recorded.steps.filter((s) => s.stateful).map((s) => s.id),
    );
    const source = options.source ?? (resumeInfo.source === null ? undefined : await (options.openSource ?? ((spec) => openSource(store, spec)))(resumeInfo.source));
    if (source === undefined) {
      throw new ProvenantError('SOURCE_UNAVAILABLE', `run ${runId} read from records given in code; give the source to resume from`, { context: { runId } });
    }
    let sink: Sink | undefined;
    if (options.sink !== false) sink = options.sink ?? (resumeInfo.sink === null ? undefined : (options.openSink ?? openRecordedSink)(resumeInfo.sink));
    if (sink !== undefined) await sink.restore(lastComplete?.end?.sinkPosition ?? resumeInfo.sinkStart);
    const startOffset = lastComplete?.end?.endOffset ?? first.startOffset;
    const begin = Checkpointer.begin(runId, resumeInfo.streamId, (lastComplete ?? continued)?.checkpointId ?? null, startOffset, (lastComplete ?? first).pipelineHash);
    await store.applyCheckpoint({ begin });
    const checkpointer = new Checkpointer(
      {
        run,
        streamId: resumeInfo.streamId,
        pipelineHash: begin.pipelineHash,
        policy: resumeInfo.checkpoint,
        states,
        sink,
        keepInput: resumeInfo.keepInput,
        onCheckpoint: options.onCheckpoint,
      },
      begin,
    );
    const records = source.read(readOptions(startOffset, resumeInfo.to ?? undefined, options));
    return await drive({
      store,
      run,
      steps,
      states,
      streamId: resumeInfo.streamId,
      sink,
      checkpointer,
      records,
      options,
      resumedFrom: lastComplete?.checkpointId ?? null,
    });
  } finally {
    lock.release();
  }
}


/** Reopen a recorded NDJSON sink. */
function openRecordedSink(spec: JsonValue): Sink | undefined {
  const s = spec as { kind?: string; path?: string } | null;
  if (s?.kind === 'ndjson' && typeof s.path === 'string') return new NdjsonFileSink(s.path);
  return undefined;
}

/**
 * Open a recorded source spec again: the embedded log of this store, a file, or a JetStream stream.
 * @throws ProvenantError SOURCE_UNAVAILABLE when it cannot be opened
 */
export async function openSource(store: Store, spec: SourceSpec): Promise<RecordSource> {
  switch (spec.kind) {
    case 'log':
      return new LogSource(store, spec.streamId);
    case 'file':
      return new FileSource(spec.path, spec.format as FileFormat);
    case 'jetstream': {
      const { openJetStreamSource } = await import('../sources/jetstream.js');
      return openJetStreamSource({ servers: spec.servers, stream: spec.stream, ...(spec.subject === undefined ? {} : { subject: spec.subject }) });
    }
  }
}

interface DriveContext {
  readonly store: Store;
  readonly run: Run;
  readonly steps: readonly ReadyStep[];
  readonly states: StepStates;
  readonly streamId: string | undefined;
  readonly sink: Sink | undefined;
  readonly checkpointer: Checkpointer | undefined;
  readonly records: AsyncIterable<SourceRecord | IdleTick> | Iterable<SourceRecord>;
  readonly options: { onProgress?: (p: PipelineProgress) => void; progressEvery?: number };
  readonly resumedFrom: string | null | undefined;
}

/** How long capture runs before it lets the event loop take a turn (store I/O, timers). */
const EVENT_LOOP_TURN_MS = 2;

/** The record loop shared by fresh and resumed runs. */
async function drive(c: DriveContext): Promise<PipelineResult> {
  const { run, steps, states, streamId, sink, checkpointer: cp, options } = c;
  const started = Date.now();
  const every = options.progressEvery ?? 1000;
  const stateOf = steps.map((s) => (s.stateful ? { state: states.get(s.loaded.stepId) as Record<string, unknown> } : undefined));
  let decode: LoadedStep | undefined;
  let count = 0;
  let outputs = 0;
  let executions = 0;
  let failed = 0;
  const progress = (): PipelineProgress => ({ records: count, executions, failed, checkpoints: cp?.closed ?? 0, elapsedMs: Date.now() - started });
  let lastTurn = performance.now();
  try {
    for await (const item of c.records) {
      // Synchronous steps over an in-memory or buffered source never leave the microtask queue, so
      // the store's I/O (PostgreSQL replies, the writer thread's acknowledgements) would wait for
      // the next backpressure stall: a batch's commit then advanced one round trip per stall.
      if ((count & 63) === 0 && performance.now() - lastTurn >= EVENT_LOOP_TURN_MS) {
        await nextTurn();
        lastTurn = performance.now();
      }
      if (isIdleTick(item)) {
        if (cp?.due() === true) await cp.close('COMPLETE', null, true);
        continue;
      }
      // A due checkpoint closes when the next record arrives (or the source ends, or idles), so
      // that the last one of a finite source is never left empty.
      if (cp?.due() === true) await cp.close('COMPLETE', null, true);
      const record = item;
      count++;
      const origin = streamId === undefined ? undefined : { streamId, offset: record.offset };
      let encoded: EncodedValue | undefined = record.encoded;
      let malformed = record.malformed;
      if (encoded === undefined && malformed === undefined) {
        try {
          encoded = encodeValue(record.value);
        } catch (err) {
          malformed = { format: 'unhashable', reason: `record ${record.offset} cannot be hashed: ${errorMessage(err)}` };
        }
      }
      let value: unknown;
      let reached = true;
      if (malformed !== undefined) {
        decode ??= await prepareDecodeStep(c.store, run.id);
        const raw = malformed.format === 'unhashable' ? inspect(record.value, { depth: 4 }) : record.value;
        encoded = encodeValue(raw);
        const params: JsonValue = { format: malformed.format, reason: malformed.reason };
        const pending = run.attemptNow(decode, new CanonicalValue(encoded), params, origin, { failurePolicy: 'dead-letter' });
        const outcome = pending instanceof Promise ? await pending : pending;
        executions++;
        if (outcome.ok) value = outcome.canonical;
        else {
          failed++;
          reached = false;
        }
      } else value = new CanonicalValue(encoded as EncodedValue);
      if (reached) {
        for (let i = 0; i < steps.length; i++) {
          const step = steps[i] as ReadyStep;
          const pending = run.attemptNow(step.loaded, value, step.params, origin, stateOf[i]);
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
      }
      if (reached) {
        outputs++;
        if (sink !== undefined) await sink.write((value as CanonicalValue).value, record.offset);
      }
      cp?.noteRecord(record.offset, encoded);
      if (options.onProgress && count % every === 0) options.onProgress(progress());
    }
    if (cp !== undefined) await cp.close('COMPLETE', null, false);
  } catch (err) {
    const stopped = run.stoppedBy !== undefined;
    if (cp !== undefined) {
      try {
        await cp.close('FAILED', stopped ? errorMessage(err) : `the run failed: ${errorMessage(err)}`, false);
      } catch {
        // The store may be what failed; the original error is what the caller needs.
      }
    }
    await finishQuietly(run, stopped ? 'stopped' : 'failed');
    await sink?.close().catch(() => undefined);
    throw err;
  }
  const summary = await run.finish();
  await sink?.close();
  options.onProgress?.(progress());
  return {
    ...summary,
    records: count,
    outputs,
    versions: Object.fromEntries(steps.map((s) => [s.loaded.stepId, s.loaded.versionHash])),
    checkpoints: cp?.closed ?? 0,
    lastCheckpointId: cp?.lastEndedId ?? null,
    ...(c.resumedFrom === undefined ? {} : { resumedFrom: c.resumedFrom }),
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
