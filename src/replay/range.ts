/**
 * Replaying a range of checkpoints: rewind a stream to a checkpoint and run it again to another
 * with the recorded code. Each checkpoint names the exact pipeline it applied (step versions and
 * params); those versions are loaded from their stored artifacts, stateful steps start from the
 * snapshot of the checkpoint before the range, records are read again from the source (or from
 * the checkpoint's kept input slice when the source no longer has them), and every execution's
 * recorded clock reads, random draws and fetches are fed back. Verification compares every
 * replayed output hash (and every state snapshot) to what was recorded and names the first
 * divergence with its cause.
 *
 * The replay loop is one engine with two faces:
 * - {@link replaySteps}: an async iterator of {@link ReplayedStep}s, one per execution, with its
 *   input, params, context, the recorded execution, what the replay produced and the verdict —
 *   what the step debugger, what-if and bisect are built on. With `substitutions` it runs other
 *   code (another recorded version, or a module file built and registered) or other params for
 *   chosen steps, and the steps after them receive the new outputs (a what-if).
 * - {@link replay}: the same iteration, counted, recorded as a run of its own (kind `replay`).
 *
 * A replay never changes recorded history. The executions that diverged are recorded in the
 * replay's own run, so they can be inspected like any other (`provenant show`).
 */
import { isAbsolute, resolve } from 'node:path';
import { ProvenantError, errorMessage } from '../errors.js';
import { decodeValue, encodeValue, type ContentHash, type EncodedValue, type JsonValue } from '../hash/canonical.js';
import { newId, nowUs } from '../ids.js';
import { CanonicalValue, environmentFingerprint } from '../capture/run.js';
import { checkpointRange, type CheckpointRange } from '../checkpoint/chain.js';
import { readRecordedPipeline, type RecordedPipeline, type RecordedStep } from '../checkpoint/recorded-pipeline.js';
import { restoreStates, snapshotStates, type StepStates } from '../checkpoint/state.js';
import { DECODE_STEP_ID } from '../sources/decode-step.js';
import type { RecordSource, SourceRecord } from '../sources/source.js';
import { isIdleTick } from '../sources/source.js';
import type { CheckpointRecord, ExecutionContext, ExecutionSketch, ExecutionWrite, ValueWrite } from '../store/records.js';
import type { Store } from '../store/store.js';
import { ReplayTape, withTape, type NondeterminismRecord } from '../step/determinism.js';
import { prepareStep } from '../step/register.js';
import { loadStep, type LoadedStep, type StepContext } from '../step/runtime.js';
import { deepFreeze, isThenable, thrownMessage } from '../step/call.js';

/** Why a replayed execution did not reproduce what was recorded. */
export type ReplayCause =
  /** The step read the clock, randomness or a fetch differently than at capture. */
  | 'nondeterminism'
  /** The output differs although every recorded read was fed back. */
  | 'unrecorded-nondeterminism'
  /** It failed at replay where it succeeded at capture, or the other way round (or with another error). */
  | 'outcome-changed'
  /** The source's record at this offset is not the one recorded. */
  | 'changed-record'
  /** The record is no longer in the source, and the checkpoint kept no input slice. */
  | 'missing-record'
  /** A value the replay needs (params, recorded reads, kept input) is missing from the store. */
  | 'missing-blob'
  /** A value the replay needs does not match its hash. */
  | 'corrupt-blob'
  /** The step version's code artifact is missing (or its version is not registered). */
  | 'missing-artifact'
  /** The step version's code artifact does not match its hash: it is refused, never run. */
  | 'corrupt-artifact'
  /** The recorded executions of a record do not follow the checkpoint's pipeline. */
  | 'changed-history'
  /** A stateful step's state at the end of a checkpoint differs from the recorded snapshot. */
  | 'state-diverged'
  /** What-if: this step's code or params were substituted, and its outcome differs. */
  | 'substituted'
  /** What-if: a substitution upstream changed this step's input (or whether it ran at all). */
  | 'input-changed';

/** One divergence, with what a person needs to look into it. */
export interface ReplayDivergence {
  readonly cause: ReplayCause;
  readonly checkpointId: string;
  readonly offset: number | null;
  readonly stepId: string;
  readonly versionHash: ContentHash | null;
  /** The recorded execution (null when none was recorded for this step and record). */
  readonly executionId: string | null;
  /** The replay run's execution holding what the replay produced (recorded for the first 1000 divergences), or null. */
  readonly replayExecutionId: string | null;
  readonly inputHash: ContentHash | null;
  readonly expectedHash: ContentHash | null;
  readonly actualHash: ContentHash | null;
  /** The error the replay (or the recorded execution) raised, or what was missing. */
  readonly detail: string | null;
}

/** Progress of a replay. */
export interface ReplayProgress {
  readonly checkpoints: number;
  readonly totalCheckpoints: number;
  readonly records: number;
  readonly totalRecords: number;
  readonly executions: number;
  readonly diverged: number;
}

/** What a capture run recorded about its source (see pipeline/execute.ts). */
export interface RunSourceInfo {
  readonly source: import('../sources/source.js').SourceSpec | null;
}

/**
 * What-if: what to run instead of a recorded step. Give `code`, `params`, or both.
 */
export interface StepSubstitution {
  /**
   * Other code for the step: another recorded version (`{ versionHash }`), or a module file
   * (`{ module, export? }`) that is bundled, stored and registered as a version of the step first
   * (what runs is that stored artifact, as at capture).
   */
  readonly code?: { readonly versionHash: ContentHash } | { readonly module: string; readonly export?: string };
  /** Params set on top of the recorded ones, by name (a shallow merge into the recorded params object). */
  readonly params?: Readonly<Record<string, JsonValue>>;
}

/** Options of {@link replaySteps}. */
export interface ReplayStepsOptions {
  readonly streamId: string;
  /** First checkpoint (id or unique prefix). Default: the run's first. */
  readonly from?: string;
  /** Last checkpoint, inclusive. Default: the run's last ended one. */
  readonly to?: string;
  /** The run whose checkpoints to replay. Default: `from`'s run, else the latest run over the stream. */
  readonly runId?: string;
  /** Replay exactly these checkpoints (already resolved, e.g. one checkpoint of a stream's timeline) instead of `from`/`to`/`runId`. */
  readonly range?: CheckpointRange;
  /** Read records from this source instead of the run's recorded one (e.g. another copy of a file). */
  readonly source?: RecordSource;
  /** Opens the run's recorded source (default: {@link openSource} of the pipeline module). */
  readonly openSource?: (store: Store, spec: NonNullable<RunSourceInfo['source']>) => Promise<RecordSource>;
  /** The context steps see in `ctx.context` (and replay runs record). Default: `{ source: 'library' }`. */
  readonly context?: ExecutionContext;
  /**
   * What-if: other code or params for chosen steps, by step id. The steps after a substituted one
   * receive its new outputs; stateful steps' state follows the new inputs. Verdicts then say what
   * changed (cause `substituted` / `input-changed`), and recorded executions that the new path no
   * longer reaches are yielded with `ran: false`.
   */
  readonly substitutions?: Readonly<Record<string, StepSubstitution>>;
  readonly onProgress?: (progress: ReplayProgress) => void;
  /** Default: 1000 records. */
  readonly progressEvery?: number;
  /** Receives each record's final replayed output. */
  readonly sink?: (output: unknown, offset: number) => void | Promise<void>;
}

/** Options of {@link replay}. */
export interface ReplayOptions extends Omit<ReplayStepsOptions, 'range' | 'substitutions'> {
  /** Compare every output hash to the recorded one (the result says either way). Default: true. */
  readonly verify?: boolean;
}

/** The result of a replay: data, not a log. */
export interface ReplayResult {
  /** The replay's own run. */
  readonly replayRunId: string;
  /** The run replayed. */
  readonly runId: string;
  readonly streamId: string;
  readonly from: string;
  readonly to: string;
  readonly verify: boolean;
  readonly checkpoints: number;
  readonly records: number;
  readonly executions: number;
  readonly matched: number;
  readonly diverged: number;
  /** Records read from the source, and from kept input slices. */
  readonly inputFrom: { readonly source: number; readonly slice: number };
  readonly firstDivergence: ReplayDivergence | null;
  /** The first 100 divergences. */
  readonly divergences: readonly ReplayDivergence[];
  readonly durationMs: number;
}

/** Running counts of a {@link ReplaySession}. */
export interface ReplayStats {
  readonly records: number;
  readonly executions: number;
  readonly matched: number;
  readonly diverged: number;
  readonly inputFrom: { readonly source: number; readonly slice: number };
  /** The first 100 divergences (executions, and checkpoint-level ones: missing records, state). */
  readonly divergences: readonly ReplayDivergence[];
  /** Checkpoints finished. */
  readonly checkpoints: number;
}

const RECORD_DIVERGENT = 1000;
const KEEP_DIVERGENCES = 100;
const NO_EXECUTIONS: readonly ExecutionSketch[] = Object.freeze([]);

/** A step as the replay runs it. */
interface ReplayStep {
  readonly stepId: string;
  readonly versionHash: ContentHash;
  readonly loaded: LoadedStep | undefined;
  /** Why it cannot run. */
  readonly unavailable: { cause: ReplayCause; detail: string } | undefined;
  readonly stateful: boolean;
}

/** A step of the replayed pipeline: the recorded one, and what runs in its place (the same unless substituted). */
interface PipelinePosition {
  readonly recorded: ReplayStep;
  readonly runs: ReplayStep;
  readonly substitution: StepSubstitution | undefined;
  /** The recorded pipeline's params for this step (used when no recorded execution gives them). */
  readonly pipelineParams: JsonValue;
}

/** Params as a step receives them, with their stored value. */
interface ParamsEntry {
  readonly value: unknown;
  readonly hash: ContentHash;
  /** Set for params a substitution made (stored with the executions that used them). */
  readonly encoded: EncodedValue | undefined;
}

/**
 * One execution of a replay (or what-if): where it is, what went in, what the capture recorded,
 * what the replay produced, and the verdict. Yielded by {@link replaySteps}. Values decode
 * lazily: reading `inputValue` or `outputValue` costs nothing until asked.
 */
export class ReplayedStep {
  /** The checkpoint this execution belongs to. */
  readonly checkpoint: CheckpointRecord;
  /** The record's stream offset. */
  readonly offset: number;
  /** Position in the record's path: 0 for its first step. */
  readonly position: number;
  readonly stepId: string;
  /** The code version that ran (a substituted one in a what-if); the recorded one is `recorded.functionVersionHash`. */
  readonly versionHash: ContentHash;
  /** True when this step's code or params were substituted (what-if). */
  readonly substituted: boolean;
  /** The step's input, canonical (undefined when the record could not be read). */
  readonly input: CanonicalValue | undefined;
  /** The params the step received (deep-frozen), or undefined when they could not be read. */
  readonly params: unknown;
  readonly paramsHash: ContentHash | null;
  /** The context the step saw in `ctx.context`. */
  readonly context: ExecutionContext;
  /** The recorded execution (null when the capture recorded none here: a what-if path that goes further). */
  readonly recorded: ExecutionSketch | null;
  /** False when the step did not run (its code or a value was unavailable, or a what-if path ended before it). */
  readonly ran: boolean;
  /** What the replay produced (undefined when it failed or did not run). */
  readonly output: EncodedValue | undefined;
  /** The error the replay raised. */
  readonly error: string | undefined;
  /** `match`: the recorded outcome was reproduced (same output hash, or the same failure). */
  readonly verdict: 'match' | 'diverged';
  readonly cause: ReplayCause | null;
  readonly detail: string | null;
  /** The replay run's execution that holds what this one produced, when it was recorded. */
  readonly replayExecutionId: string | null;
  /** The record's path ends with this execution at replay (last step, a filter's null, a failure). */
  readonly last: boolean;
  readonly #store: Store;
  #outputValue: unknown;
  #outputDecoded = false;

  /** @internal Made by the replay engine. */
  constructor(
    store: Store,
    checkpoint: CheckpointRecord,
    offset: number,
    position: number,
    step: ReplayStep,
    substituted: boolean,
    input: CanonicalValue | undefined,
    params: ParamsEntry | undefined,
    context: ExecutionContext,
    recorded: ExecutionSketch | null,
    ran: boolean,
    output: EncodedValue | undefined,
    error: string | undefined,
    cause: ReplayCause | null,
    detail: string | null,
    replayExecutionId: string | null,
    last: boolean,
  ) {
    this.#store = store;
    this.checkpoint = checkpoint;
    this.offset = offset;
    this.position = position;
    this.stepId = step.stepId;
    this.versionHash = step.versionHash;
    this.substituted = substituted;
    this.input = input;
    this.params = params?.value;
    this.paramsHash = params?.hash ?? null;
    this.context = context;
    this.recorded = recorded;
    this.ran = ran;
    this.output = output;
    this.error = error;
    this.verdict = cause === null ? 'match' : 'diverged';
    this.cause = cause;
    this.detail = detail;
    this.replayExecutionId = replayExecutionId;
    this.last = last;
  }

  /** The input value (decoded canonical form), or undefined. */
  get inputValue(): unknown {
    return this.input?.value;
  }

  /** What the replay produced, decoded (undefined when it failed or did not run). */
  get outputValue(): unknown {
    if (!this.#outputDecoded) {
      this.#outputValue = this.output === undefined ? undefined : decodeValue(this.output.bytes, this.output.encoding);
      this.#outputDecoded = true;
    }
    return this.#outputValue;
  }

  /** The output the capture recorded, read from the store (undefined when it failed or none was recorded). */
  async recordedOutput(): Promise<unknown> {
    const r = this.recorded;
    if (r === null || r.outputHash === null) return undefined;
    return decodeValue(await this.#store.getBlob(r.outputHash), r.outputEncoding);
  }

  /** The error message the capture recorded, or null. */
  async recordedError(): Promise<string | null> {
    const r = this.recorded;
    if (r === null || r.errorHash === null) return null;
    return errorMessageOf(this.#store, r.errorHash);
  }

  /** This execution as a divergence record. */
  toDivergence(): ReplayDivergence {
    return {
      cause: this.cause ?? 'changed-history',
      checkpointId: this.checkpoint.checkpointId,
      offset: this.offset,
      stepId: this.stepId,
      versionHash: this.versionHash,
      executionId: this.recorded?.id ?? null,
      replayExecutionId: this.replayExecutionId,
      inputHash: this.input?.encoded.hash ?? null,
      expectedHash: this.recorded?.outputHash ?? null,
      actualHash: this.output?.hash ?? null,
      detail: this.detail,
    };
  }
}

async function errorMessageOf(store: Store, hash: ContentHash): Promise<string | null> {
  try {
    const e = decodeValue(await store.getBlob(hash), 'json') as { message?: unknown };
    return typeof e.message === 'string' ? e.message : null;
  } catch {
    return null;
  }
}

/**
 * Replay a range of checkpoints execution by execution. Iterate it once; breaking out of the loop
 * stops the replay and releases the source. Nothing is written to the store (except, with
 * `substitutions` naming a module file, that module's new step version).
 * @example
 * for await (const step of replaySteps(store, { streamId: 'flights', from: cp })) {
 *   if (step.verdict === 'diverged') console.log(step.offset, step.stepId, step.cause);
 * }
 * @throws (while iterating) ProvenantError NOT_FOUND / CHECKPOINT_INVALID for an unknown stream or
 * checkpoint or a range in the wrong order; INPUT_INVALID for a substitution of a step the range
 * does not run; STEP_NOT_FOUND / STEP_BUILD_FAILED for substituted code that cannot be had;
 * SOURCE_UNAVAILABLE when records can be read neither from the source nor from kept slices
 */
export function replaySteps(store: Store, options: ReplayStepsOptions): ReplaySession {
  return new ReplaySession(store, options);
}

/** A replay in progress: iterate it for its executions; `stats` counts as it goes. See {@link replaySteps}. */
export class ReplaySession implements AsyncIterable<ReplayedStep> {
  readonly #engine: ReplayEngine;
  #opened: Promise<CheckpointRange> | undefined;
  #iterated = false;

  /** @internal Use {@link replaySteps}. */
  constructor(store: Store, options: ReplayStepsOptions, recordInto?: { runId: string; limit: number }) {
    this.#engine = new ReplayEngine(store, options, recordInto);
  }

  /**
   * Resolve the range and prepare substitutions (iteration does this first; call it to learn the
   * range, or to get its errors, before iterating).
   */
  open(): Promise<CheckpointRange> {
    this.#opened ??= this.#engine.open();
    return this.#opened;
  }

  /** The checkpoints being replayed (after {@link open}). */
  get range(): CheckpointRange | undefined {
    return this.#engine.range;
  }

  /** Counts so far. */
  get stats(): ReplayStats {
    return this.#engine;
  }

  /** Records the range holds. */
  get totalRecords(): number {
    return this.#engine.totalRecords;
  }

  /** The code each substituted step runs, by step id (after {@link open}). */
  get substitutedVersions(): Readonly<Record<string, ContentHash>> {
    return this.#engine.substitutedVersions;
  }

  [Symbol.asyncIterator](): AsyncGenerator<ReplayedStep, void, undefined> {
    if (this.#iterated) throw new ProvenantError('INPUT_INVALID', 'a replay session can be iterated once');
    this.#iterated = true;
    return this.#engine.run(() => this.open());
  }
}

/**
 * Replay a range of checkpoints with the recorded code and compare.
 * @example
 * const r = await replay(store, { streamId: 'flights', from: first, to: last });
 * if (r.firstDivergence) console.log(r.firstDivergence.cause);
 * @throws ProvenantError NOT_FOUND / CHECKPOINT_INVALID for an unknown stream or checkpoint or a
 * range in the wrong order (nothing is written then); SOURCE_UNAVAILABLE when records can be read
 * neither from the source nor from kept slices
 */
export async function replay(store: Store, options: ReplayOptions): Promise<ReplayResult> {
  const replayRunId = newId();
  const session = new ReplaySession(store, options, { runId: replayRunId, limit: RECORD_DIVERGENT });
  const range = await session.open();
  const capture = await store.getRun(range.runId);
  if (capture === undefined) throw new ProvenantError('NOT_FOUND', `run ${range.runId} is missing from ${store.location}`, { context: { runId: range.runId } });
  const verify = options.verify ?? true;
  const started = Date.now();
  const first = range.checkpoints[0] as CheckpointRecord;
  const last = range.checkpoints[range.checkpoints.length - 1] as CheckpointRecord;
  const context: ExecutionContext = { source: 'library', ...(options.context ?? {}) };
  await store.createRun({
    id: replayRunId,
    kind: 'replay',
    name: `replay of ${capture.name}`,
    startedUs: nowUs(),
    environment: environmentFingerprint(process.cwd()),
    failurePolicy: 'dead-letter',
    context,
    options: { replayOf: range.runId, streamId: range.streamId, from: first.checkpointId, to: last.checkpointId, verify },
  });

  let status: 'completed' | 'failed' = 'completed';
  try {
    for await (const _ of session) {
      // The engine counts; nothing per execution is needed here.
    }
  } catch (err) {
    status = 'failed';
    await store
      .endRun({ runId: replayRunId, endedUs: nowUs(), status, summary: { error: errorMessage(err) } })
      .catch(() => undefined);
    throw err;
  }
  const s = session.stats;
  const result: ReplayResult = {
    replayRunId,
    runId: range.runId,
    streamId: range.streamId,
    from: first.checkpointId,
    to: last.checkpointId,
    verify,
    checkpoints: range.checkpoints.length,
    records: s.records,
    executions: s.executions,
    matched: s.matched,
    diverged: s.diverged,
    inputFrom: s.inputFrom,
    firstDivergence: s.divergences[0] ?? null,
    divergences: s.divergences,
    durationMs: Date.now() - started,
  };
  await store.endRun({ runId: replayRunId, endedUs: nowUs(), status, summary: result as unknown as JsonValue });
  return result;
}

/** The replay of one range; counts and divergences accumulate on it. */
class ReplayEngine implements ReplayStats {
  records = 0;
  executions = 0;
  matched = 0;
  diverged = 0;
  checkpoints = 0;
  totalRecords = 0;
  readonly inputFrom = { source: 0, slice: 0 };
  readonly divergences: ReplayDivergence[] = [];
  range: CheckpointRange | undefined;
  substitutedVersions: Record<string, ContentHash> = {};

  readonly #store: Store;
  readonly #context: ExecutionContext;
  readonly #contextValue: EncodedValue;
  readonly #options: ReplayStepsOptions;
  readonly #whatIf: boolean;
  readonly #recordInto: { runId: string; limit: number } | undefined;
  readonly #steps = new Map<string, Promise<ReplayStep>>();
  /** Substituted code by step id (loaded in {@link open}). */
  readonly #substituted = new Map<string, ReplayStep>();
  readonly #params = new Map<ContentHash, ParamsEntry>();
  /** What-if params by step id and recorded params hash. */
  readonly #substitutedParams = new Map<string, ParamsEntry>();
  #recorded = 0;
  #pendingWrites: { executions: ExecutionWrite[]; values: ValueWrite[] } = { executions: [], values: [] };
  #source: RecordSource | undefined;
  #sourceOpened = false;

  constructor(store: Store, options: ReplayStepsOptions, recordInto: { runId: string; limit: number } | undefined) {
    this.#store = store;
    this.#options = options;
    this.#context = { source: 'library', ...(options.context ?? {}) };
    this.#contextValue = encodeValue(this.#context);
    this.#whatIf = options.substitutions !== undefined && Object.keys(options.substitutions).length > 0;
    this.#recordInto = recordInto;
  }

  /** Resolve the range; load or build substituted code. */
  async open(): Promise<CheckpointRange> {
    const range = this.#options.range ?? (await checkpointRange(this.#store, this.#options));
    this.range = range;
    this.totalRecords = range.checkpoints.reduce((n, c) => n + (c.end?.records ?? 0), 0);
    const subs = this.#options.substitutions ?? {};
    if (Object.keys(subs).length > 0) {
      const inRange = new Map<string, RecordedStep>();
      for (const cp of range.checkpoints) {
        for (const s of (await readRecordedPipeline(this.#store, cp.pipelineHash)).steps) inRange.set(s.id, s);
      }
      for (const [stepId, sub] of Object.entries(subs)) {
        const recorded = inRange.get(stepId);
        if (recorded === undefined) {
          throw new ProvenantError('INPUT_INVALID', `step ${stepId} is not a step of the replayed range (its steps: ${[...inRange.keys()].join(', ')})`, {
            hint: 'Substitute one of the steps the range ran; `provenant steps` lists them.',
            context: { stepId, steps: [...inRange.keys()] },
          });
        }
        if (sub.code === undefined) continue;
        let loaded: LoadedStep;
        if ('versionHash' in sub.code) loaded = await loadStep(this.#store, stepId, sub.code.versionHash);
        else {
          const module = isAbsolute(sub.code.module) ? sub.code.module : resolve(sub.code.module);
          loaded = await prepareStep(this.#store, stepId, sub.code.export === undefined ? { module } : { module, export: sub.code.export }, this.#recordInto?.runId ?? null);
        }
        this.#substituted.set(stepId, { stepId, versionHash: loaded.versionHash, loaded, unavailable: undefined, stateful: recorded.stateful });
        this.substitutedVersions[stepId] = loaded.versionHash;
      }
    }
    return range;
  }

  #progress(): ReplayProgress {
    const range = this.range as CheckpointRange;
    return {
      checkpoints: this.checkpoints,
      totalCheckpoints: range.checkpoints.length,
      records: this.records,
      totalRecords: this.totalRecords,
      executions: this.executions,
      diverged: this.diverged,
    };
  }

  /** The replay loop: one event per execution. */
  async *run(open: () => Promise<CheckpointRange>): AsyncGenerator<ReplayedStep, void, undefined> {
    const { checkpoints, before } = await open();
    const store = this.#store;
    const options = this.#options;
    const every = options.progressEvery ?? 1000;
    let states: StepStates | undefined;
    try {
      for (const cp of checkpoints) {
        const end = cp.end;
        if (end === null) continue;
        const pipeline: RecordedPipeline = await readRecordedPipeline(store, cp.pipelineHash);
        const positions: PipelinePosition[] = [];
        for (const s of pipeline.steps) {
          const recorded = await this.#step(s.id, s.versionHash, s.stateful);
          const substitution = options.substitutions?.[s.id];
          positions.push({ recorded, runs: this.#substituted.get(s.id) ?? recorded, substitution, pipelineParams: s.params });
        }
        // State at the start of the range: the snapshot of the checkpoint before it.
        states ??= await restoreStates(store, before?.end?.stateHash ?? null, pipeline.steps.filter((s) => s.stateful).map((s) => s.id));
        const recorded = await this.#recordedByOffset(cp);
        const seen = new Set<number>();
        for await (const record of this.#records(cp)) {
          seen.add(record.offset);
          const execs = recorded.get(record.offset) ?? NO_EXECUTIONS;
          // ---- one record through the steps (inlined: one generator, no nested awaits per step) ----
          let encoded = record.encoded;
          if (encoded === undefined && record.malformed === undefined) {
            try {
              encoded = encodeValue(record.value);
            } catch {
              encoded = undefined;
            }
          }
          let steps: readonly PipelinePosition[] = positions;
          // A record recorded as malformed went through the decode step first.
          const firstRecorded = execs[0];
          if (firstRecorded !== undefined && firstRecorded.functionId === DECODE_STEP_ID) {
            const decode = await this.#step(DECODE_STEP_ID, firstRecorded.functionVersionHash, false);
            steps = [{ recorded: decode, runs: decode, substitution: undefined, pipelineParams: null }, ...positions];
            if (encoded === undefined) encoded = encodeValue(record.value);
          }
          let input: CanonicalValue | undefined = encoded === undefined ? undefined : new CanonicalValue(encoded);
          let k = 0;
          let ev: ReplayedStep | undefined;
          for (; k < steps.length; k++) {
            const pending = this.#execute(cp, record.offset, k, steps[k] as PipelinePosition, execs[k], input, k === steps.length - 1, states, execs.length);
            ev = pending instanceof Promise ? await pending : pending;
            if (ev === undefined) break; // nothing recorded here and nothing to run (replay: changed-history counted)
            yield ev;
            if (ev.last) break;
            input = new CanonicalValue(ev.output as EncodedValue);
          }
          if (options.sink !== undefined && ev !== undefined && ev.position === steps.length - 1 && this.#lastOk) await options.sink(ev.outputValue, record.offset);
          // What-if: recorded executions the new path no longer reaches.
          if (this.#whatIf) {
            for (let j = k + 1; j < execs.length; j++) {
              const rec = execs[j] as ExecutionSketch;
              const pos = steps[j];
              const step = pos?.runs ?? (await this.#step(rec.functionId, rec.functionVersionHash, false));
              this.diverged++;
              yield new ReplayedStep(store, cp, record.offset, j, step, pos?.substitution !== undefined, undefined, undefined, this.#context, rec, false, undefined, undefined, 'input-changed', 'the record\'s path ended earlier at replay: this recorded execution was not reached', null, true);
            }
          }
          this.records++;
          if (this.#pendingWrites.executions.length >= 5000) await this.#flushWrites();
          if (options.onProgress && this.records % every === 0) options.onProgress(this.#progress());
        }
        // Records that were processed at capture but that the source no longer gives.
        for (const [offset, execs] of recorded) {
          if (seen.has(offset)) continue;
          const e = execs[0] as ExecutionSketch;
          this.#diverge({
            cause: 'missing-record',
            checkpointId: cp.checkpointId,
            offset,
            stepId: e.functionId,
            versionHash: e.functionVersionHash,
            executionId: e.id,
            replayExecutionId: null,
            inputHash: e.inputHashes[0] ?? null,
            expectedHash: e.outputHash,
            actualHash: null,
            detail: `the source gave no record at offset ${offset}`,
          });
        }
        // Stateful steps: the state at the end of the checkpoint must match the snapshot (not in a what-if: it follows the new inputs).
        if (!this.#whatIf && (end.stateHash !== null || states.size > 0)) {
          const snapshot = snapshotStates(states);
          if ((snapshot?.hash ?? null) !== end.stateHash) {
            this.#diverge({
              cause: 'state-diverged',
              checkpointId: cp.checkpointId,
              offset: end.endOffset,
              stepId: [...states.keys()].join(','),
              versionHash: null,
              executionId: null,
              replayExecutionId: null,
              inputHash: null,
              expectedHash: end.stateHash,
              actualHash: snapshot?.hash ?? null,
              detail: 'the state of the stateful steps at the end of the checkpoint differs from the recorded snapshot',
            });
          }
        }
        await this.#flushWrites();
        this.checkpoints++;
        options.onProgress?.(this.#progress());
      }
    } finally {
      if (this.#sourceOpened && options.source === undefined) await this.#source?.close().catch(() => undefined);
    }
  }

  /** Whether the last executed step of the current record ended with an output (for the sink). */
  #lastOk = false;

  /**
   * The execution being replayed. Executions are replayed one at a time, so one frame, reused,
   * carries them through the steps below (no objects made per execution but the event).
   */
  readonly #f = {
    cp: undefined as unknown as CheckpointRecord,
    offset: 0,
    k: 0,
    pos: undefined as unknown as PipelinePosition,
    rec: undefined as ExecutionSketch | undefined,
    input: undefined as unknown as CanonicalValue,
    lastStep: false,
    recordedCount: 0,
    params: undefined as unknown as ParamsEntry,
    tape: undefined as unknown as ReplayTape,
  };
  /** Recorded error messages by hash (a recorded failure is compared by its message). */
  readonly #errors = new Map<ContentHash, string | null>();

  /**
   * Replay one step of one record: check it against the recording, run it, judge it. Returns
   * undefined when there is nothing to yield (replay: no recorded execution here). Synchronous —
   * no promise — unless something must be read from the store or the step returns a promise.
   */
  #execute(
    cp: CheckpointRecord,
    offset: number,
    k: number,
    pos: PipelinePosition,
    rec: ExecutionSketch | undefined,
    input: CanonicalValue | undefined,
    lastStep: boolean,
    states: StepStates,
    recordedCount: number,
  ): ReplayedStep | undefined | Promise<ReplayedStep | undefined> {
    const step = pos.runs;
    this.#lastOk = false;
    if (rec === undefined) {
      if (!this.#whatIf) {
        // Nothing recorded for this step: capture stopped the record before it (a filter or a
        // failure) — replay must stop there too, which the previous step's comparison decides.
        this.#diverge({
          cause: 'changed-history',
          checkpointId: cp.checkpointId,
          offset,
          stepId: pos.recorded.stepId,
          versionHash: pos.recorded.versionHash,
          executionId: null,
          replayExecutionId: null,
          inputHash: input?.encoded.hash ?? null,
          expectedHash: null,
          actualHash: null,
          detail: `no execution of step ${pos.recorded.stepId} was recorded for offset ${offset}`,
        });
        return undefined;
      }
    } else if (rec.functionId !== pos.recorded.stepId || rec.functionVersionHash !== pos.recorded.versionHash) {
      return this.#notRun(cp, offset, k, pos, rec, input, 'changed-history', `recorded execution ${rec.id} is of ${rec.functionId}@${rec.functionVersionHash}, not of the checkpoint's ${pos.recorded.stepId}@${pos.recorded.versionHash}`);
    }
    if (input === undefined || (k === 0 && rec !== undefined && rec.inputHashes[0] !== input.encoded.hash)) {
      return this.#notRun(cp, offset, k, pos, rec, input, 'changed-record', `the source's record at offset ${offset} is not the one recorded (recorded ${rec?.inputHashes[0] ?? '?'})`);
    }
    if (step.unavailable !== undefined) return this.#notRun(cp, offset, k, pos, rec, input, step.unavailable.cause, step.unavailable.detail);
    const f = this.#f;
    f.cp = cp;
    f.offset = offset;
    f.k = k;
    f.pos = pos;
    f.rec = rec;
    f.input = input;
    f.lastStep = lastStep;
    f.recordedCount = recordedCount;
    const params = pos.substitution?.params === undefined && rec !== undefined ? this.#params.get(rec.paramsHash) : undefined;
    if (params === undefined || (rec !== undefined && rec.nondeterminismHash !== null)) return this.#load(states);
    f.params = params;
    return this.#call(null, states);
  }

  /** Read what the call needs from the store (params, recorded reads), then call. */
  async #load(states: StepStates): Promise<ReplayedStep> {
    const f = this.#f;
    const rec = f.rec;
    let reads: NondeterminismRecord | null = null;
    try {
      f.params = await this.#paramsFor(f.pos, rec);
      if (rec !== undefined && rec.nondeterminismHash !== null) reads = decodeValue(await this.#store.getBlob(rec.nondeterminismHash), 'json') as NondeterminismRecord;
    } catch (err) {
      const corrupt = err instanceof ProvenantError && err.code === 'BLOB_CORRUPT';
      return this.#notRun(f.cp, f.offset, f.k, f.pos, rec, f.input, corrupt ? 'corrupt-blob' : 'missing-blob', errorMessage(err));
    }
    return this.#call(reads, states);
  }

  /** Call the step with its recorded reads fed back: synchronous unless it returns a promise. */
  #call(reads: NondeterminismRecord | null, states: StepStates): ReplayedStep | Promise<ReplayedStep> {
    const f = this.#f;
    const step = f.pos.runs;
    const rec = f.rec;
    this.executions++;
    const tape = new ReplayTape(reads, `execution ${rec?.id ?? '(new)'} (step ${step.stepId})`);
    f.tape = tape;
    const state = step.stateful ? states.get(step.stepId) : undefined;
    const ctx: StepContext = {
      stepId: step.stepId,
      versionHash: step.versionHash,
      executionId: rec?.id ?? '',
      runId: (this.range as CheckpointRange).runId,
      context: this.#context,
      ...(state === undefined ? {} : { state }),
    };
    const fn = (step.loaded as LoadedStep).fn;
    const input = f.input;
    const params = f.params;
    let result: unknown;
    try {
      result = withTape(tape, () => fn(input.value, params.value, ctx));
    } catch (err) {
      tape.close();
      return this.#judge(undefined, thrownMessage(err));
    }
    if (isThenable(result)) return this.#settle(result);
    return this.#finish(result);
  }

  async #settle(pending: PromiseLike<unknown>): Promise<ReplayedStep> {
    let result: unknown;
    try {
      result = await pending;
    } catch (err) {
      this.#f.tape.close();
      return this.#judge(undefined, thrownMessage(err));
    }
    return this.#finish(result);
  }

  /** The call returned: close the tape (it may still fail the call), encode the output. */
  #finish(result: unknown): ReplayedStep | Promise<ReplayedStep> {
    let output: EncodedValue | undefined;
    let error: string | undefined;
    try {
      const violation = this.#f.tape.close();
      if (violation !== undefined) throw violation;
      output = encodeValue(result);
    } catch (err) {
      error = thrownMessage(err);
    }
    return this.#judge(output, error);
  }

  /** Compare with the recording (a recorded failure by its message, read once per error value). */
  #judge(output: EncodedValue | undefined, error: string | undefined): ReplayedStep | Promise<ReplayedStep> {
    const rec = this.#f.rec;
    if (rec?.status === 'failed' && rec.errorHash !== null) {
      const hash = rec.errorHash;
      const known = this.#errors.get(hash);
      if (known === undefined && !this.#errors.has(hash)) {
        return errorMessageOf(this.#store, hash).then((message) => {
          this.#errors.set(hash, message);
          return this.#verdict(output, error, message);
        });
      }
      return this.#verdict(output, error, known ?? null);
    }
    return this.#verdict(output, error, null);
  }

  #verdict(output: EncodedValue | undefined, error: string | undefined, recordedError: string | null): ReplayedStep {
    const { cp, offset, k, pos, rec, input, lastStep, recordedCount, params, tape } = this.#f;
    const step = pos.runs;
    const substituted = pos.substitution !== undefined;
    let matches: boolean;
    let detail: string | null = null;
    if (rec === undefined) {
      matches = false;
      detail = 'no execution was recorded here: the record\'s path goes further than at capture';
      if (error !== undefined) detail += `; failed with "${error}"`;
    } else if (rec.status === 'failed') {
      matches = error !== undefined && error === recordedError;
      if (!matches) detail = error === undefined ? `recorded failure "${recordedError ?? '?'}" did not happen at replay` : `failed with "${error}", recorded "${recordedError ?? '?'}"`;
    } else {
      matches = error === undefined && output?.hash === rec.outputHash;
      if (error !== undefined) detail = error;
    }
    let cause: ReplayCause | null = null;
    let replayExecutionId: string | null = null;
    if (matches) this.matched++;
    else {
      if (substituted) cause = 'substituted';
      else if (this.#whatIf && (rec === undefined || rec.inputHashes[0] !== input.encoded.hash)) cause = 'input-changed';
      else cause = tape.diverged ? 'nondeterminism' : error !== undefined || rec?.status === 'failed' ? 'outcome-changed' : 'unrecorded-nondeterminism';
      replayExecutionId = this.#recordDivergent(rec, step, input, output, error, params, offset, cp.streamId);
      this.diverged++;
    }
    // Replay follows the recording (a recorded failure ends the path); a what-if follows what ran now.
    const failedPath = error !== undefined || output === undefined || (!this.#whatIf && rec?.status === 'failed');
    const ended = failedPath || (output !== undefined && output.encoding === 'json' && output.text === 'null');
    const ev = new ReplayedStep(this.#store, cp, offset, k, step, substituted, input, params, this.#context, rec ?? null, true, output, error, cause, detail, replayExecutionId, ended || lastStep);
    if (!matches && this.divergences.length < KEEP_DIVERGENCES) this.divergences.push(ev.toDivergence());
    if (failedPath && !this.#whatIf && recordedCount > k + 1 && matches) {
      // The record's path ended here at replay; recorded steps after it did not run.
      this.#diverge({ ...ev.toDivergence(), cause: 'changed-history', replayExecutionId: null, actualHash: null, detail: 'executions were recorded after a failure' });
    }
    this.#lastOk = !ended;
    return ev;
  }

  /** A step that could not run: a divergence, and the end of the record's path. */
  #notRun(
    cp: CheckpointRecord,
    offset: number,
    k: number,
    pos: PipelinePosition,
    rec: ExecutionSketch | undefined,
    input: CanonicalValue | undefined,
    cause: ReplayCause,
    detail: string,
  ): ReplayedStep {
    this.executions++;
    this.diverged++;
    const ev = new ReplayedStep(this.#store, cp, offset, k, pos.runs, pos.substitution !== undefined, input, undefined, this.#context, rec ?? null, false, undefined, undefined, cause, detail, null, true);
    if (this.divergences.length < KEEP_DIVERGENCES) {
      // Divergences name the recorded step (the one the checkpoint says ran).
      this.divergences.push({ ...ev.toDivergence(), versionHash: pos.recorded.versionHash, actualHash: null });
    }
    return ev;
  }

  /** The params a step receives: the recorded ones (decoded once per hash), with a what-if's changes on top. */
  async #paramsFor(pos: PipelinePosition, rec: ExecutionSketch | undefined): Promise<ParamsEntry> {
    const changes = pos.substitution?.params;
    const key = rec?.paramsHash;
    if (changes === undefined && key !== undefined) {
      let entry = this.#params.get(key);
      if (entry === undefined) {
        entry = { value: deepFreeze(decodeValue(await this.#store.getBlob(key), 'json')), hash: key, encoded: undefined };
        this.#params.set(key, entry);
      }
      return entry;
    }
    const cacheKey = `${pos.runs.stepId}\u0000${key ?? ''}`;
    let entry = this.#substitutedParams.get(cacheKey);
    if (entry === undefined) {
      const base = key === undefined ? pos.pipelineParams : (decodeValue(await this.#store.getBlob(key), 'json') as JsonValue);
      const merged = changes === undefined ? base : { ...(typeof base === 'object' && base !== null && !Array.isArray(base) ? base : {}), ...changes };
      const encoded = encodeValue(merged);
      entry = { value: deepFreeze(decodeValue(encoded.bytes, 'json')), hash: encoded.hash, encoded };
      this.#substitutedParams.set(cacheKey, entry);
    }
    return entry;
  }

  /** A checkpoint's recorded executions, grouped by offset, each group in execution order. */
  async #recordedByOffset(cp: CheckpointRecord): Promise<Map<number, ExecutionSketch[]>> {
    const end = cp.end;
    const out = new Map<number, ExecutionSketch[]>();
    if (end === null || end.firstExecutionId === null || end.lastExecutionId === null) return out;
    const sketches = await this.#store.listExecutionSketches(cp.runId, end.firstExecutionId, end.lastExecutionId);
    for (const s of sketches) {
      const offset = s.offset ?? -1;
      let group = out.get(offset);
      if (group === undefined) out.set(offset, (group = []));
      group.push(s);
    }
    return out;
  }

  /** The records of a checkpoint: from the source, else from its kept input slice. */
  async *#records(cp: CheckpointRecord): AsyncGenerator<SourceRecord> {
    const end = cp.end as NonNullable<CheckpointRecord['end']>;
    if (end.records === 0) return;
    let fromSource: AsyncIterable<SourceRecord | { idle: true }> | undefined;
    let sourceError: unknown;
    try {
      const source = await this.#openSource();
      if (source !== undefined) fromSource = source.read({ from: cp.startOffset, to: end.endOffset });
    } catch (err) {
      sourceError = err;
    }
    if (fromSource !== undefined) {
      try {
        for await (const item of fromSource) {
          if (isIdleTick(item)) continue;
          this.inputFrom.source++;
          yield item;
        }
        return;
      } catch (err) {
        // Only "the source no longer has it" falls back to the slice; other errors are real.
        if (!(err instanceof ProvenantError && err.code === 'SOURCE_UNAVAILABLE')) throw err;
        sourceError = err;
        if (this.inputFrom.source > 0 && end.inputSliceHash === null) throw err;
      }
    }
    if (end.inputSliceHash === null) {
      throw new ProvenantError('SOURCE_UNAVAILABLE', `checkpoint ${cp.checkpointId}: its records (offsets ${cp.startOffset}..${end.endOffset}) cannot be read: ${errorMessage(sourceError)}`, {
        hint: 'Give the source again (e.g. --input <copy of the file>), or keep input slices at capture (--keep-input) for sources that forget.',
        context: { checkpointId: cp.checkpointId, streamId: cp.streamId },
        cause: sourceError,
      });
    }
    const slice = decodeValue(await this.#store.getBlob(end.inputSliceHash), 'json') as { records: [number, ContentHash, 'json' | 'bytes'][] };
    for (const [offset, hash, encoding] of slice.records) {
      const bytes = await this.#store.getBlob(hash);
      this.inputFrom.slice++;
      const text = encoding === 'json' ? Buffer.from(bytes).toString('utf8') : undefined;
      yield { offset, value: text === undefined ? bytes : (JSON.parse(text) as unknown), encoded: { hash, bytes, encoding, ...(text === undefined ? {} : { text }) } };
    }
  }

  async #openSource(): Promise<RecordSource | undefined> {
    if (this.#sourceOpened) return this.#source;
    this.#sourceOpened = true;
    if (this.#options.source !== undefined) return (this.#source = this.#options.source);
    const run = await this.#store.getRun((this.range as CheckpointRange).runId);
    const spec = (run?.options as { provenant?: RunSourceInfo } | null)?.provenant?.source ?? null;
    if (spec === null) return undefined;
    const open = this.#options.openSource ?? (async (s, spec2) => (await import('../pipeline/execute.js')).openSource(s, spec2));
    return (this.#source = await open(this.#store, spec));
  }

  /** Load a step version once; a version that cannot load is remembered as unavailable. */
  #step(stepId: string, versionHash: ContentHash, stateful: boolean): Promise<ReplayStep> {
    const key = `${stepId}@${versionHash}`;
    let p = this.#steps.get(key);
    if (p === undefined) {
      p = loadStep(this.#store, stepId, versionHash).then(
        (loaded) => ({ stepId, versionHash, loaded, unavailable: undefined, stateful }),
        (err: unknown) => {
          const code = err instanceof ProvenantError ? err.code : undefined;
          const cause: ReplayCause = code === 'ARTIFACT_CORRUPT' ? 'corrupt-artifact' : 'missing-artifact';
          if (code !== 'ARTIFACT_CORRUPT' && code !== 'ARTIFACT_MISSING' && code !== 'STEP_NOT_FOUND') throw err;
          return { stepId, versionHash, loaded: undefined, unavailable: { cause, detail: errorMessage(err) }, stateful };
        },
      );
      this.#steps.set(key, p);
    }
    return p;
  }

  /** Record what the replay produced for a divergent execution in the replay's own run (up to the limit), or null. */
  #recordDivergent(
    rec: ExecutionSketch | undefined,
    step: ReplayStep,
    input: CanonicalValue,
    output: EncodedValue | undefined,
    error: string | undefined,
    params: ParamsEntry,
    offset: number,
    streamId: string,
  ): string | null {
    const into = this.#recordInto;
    if (into === undefined || this.#recorded >= into.limit) return null;
    this.#recorded++;
    const w = this.#pendingWrites;
    const errorValue = error === undefined ? undefined : encodeValue({ name: 'Error', message: error });
    w.values.push(input.encoded, this.#contextValue);
    if (params.encoded !== undefined) w.values.push(params.encoded);
    if (output !== undefined) w.values.push(output);
    if (errorValue !== undefined) w.values.push(errorValue);
    const id = newId();
    const now = nowUs();
    w.executions.push({
      id,
      runId: into.runId,
      functionId: step.stepId,
      functionVersionHash: step.versionHash,
      inputHashes: [input.encoded.hash],
      inputEncodings: [input.encoded.encoding],
      outputHash: output?.hash ?? null,
      outputEncoding: output?.encoding ?? 'json',
      paramsHash: params.hash,
      contextHash: this.#contextValue.hash,
      context: this.#context,
      startedUs: now,
      endedUs: now,
      status: error === undefined ? 'ok' : 'failed',
      errorHash: errorValue?.hash ?? null,
      nondeterminismHash: rec?.nondeterminismHash ?? null,
      streamId,
      offset,
    });
    return id;
  }

  async #flushWrites(): Promise<void> {
    const w = this.#pendingWrites;
    if (w.executions.length === 0) return;
    this.#pendingWrites = { executions: [], values: [] };
    await this.#store.appendExecutions({ executions: w.executions, values: w.values });
  }

  #diverge(d: ReplayDivergence): void {
    this.diverged++;
    if (this.divergences.length < KEEP_DIVERGENCES) this.divergences.push(d);
  }
}
