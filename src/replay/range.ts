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
 * A replay is a run of its own (kind `replay`): it never changes recorded history. The executions
 * that diverged are recorded in it, so they can be inspected like any other (`provenant show`).
 */
import { ProvenantError, errorMessage } from '../errors.js';
import { decodeValue, encodeValue, type ContentHash, type EncodedValue, type JsonValue } from '../hash/canonical.js';
import { newId, nowUs } from '../ids.js';
import { CanonicalValue, environmentFingerprint } from '../capture/run.js';
import { checkpointRange, type CheckpointRange } from '../checkpoint/chain.js';
import { readRecordedPipeline, type RecordedPipeline } from '../checkpoint/recorded-pipeline.js';
import { restoreStates, snapshotStates, type StepStates } from '../checkpoint/state.js';
import { DECODE_STEP_ID } from '../sources/decode-step.js';
import type { RecordSource, SourceRecord } from '../sources/source.js';
import { isIdleTick } from '../sources/source.js';
import type { CheckpointRecord, ExecutionContext, ExecutionSketch, ExecutionWrite, ValueWrite } from '../store/records.js';
import type { Store } from '../store/store.js';
import { ReplayTape, withTape, type NondeterminismRecord } from '../step/determinism.js';
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
  | 'state-diverged';

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

/** Options of {@link replay}. */
export interface ReplayOptions {
  readonly streamId: string;
  /** First checkpoint (id or unique prefix). Default: the run's first. */
  readonly from?: string;
  /** Last checkpoint, inclusive. Default: the run's last ended one. */
  readonly to?: string;
  /** The run whose checkpoints to replay. Default: `from`'s run, else the latest run over the stream. */
  readonly runId?: string;
  /** Compare every output hash to the recorded one (the result says either way). Default: true. */
  readonly verify?: boolean;
  /** Read records from this source instead of the run's recorded one (e.g. another copy of a file). */
  readonly source?: RecordSource;
  /** Opens the run's recorded source (default: {@link openSource} of the pipeline module). */
  readonly openSource?: (store: Store, spec: NonNullable<RunSourceInfo['source']>) => Promise<RecordSource>;
  readonly context?: ExecutionContext;
  readonly onProgress?: (progress: ReplayProgress) => void;
  /** Default: 1000 records. */
  readonly progressEvery?: number;
  /** Receives each record's final replayed output. */
  readonly sink?: (output: unknown, offset: number) => void | Promise<void>;
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

/** What a capture run recorded about its source (see pipeline/execute.ts). */
export interface RunSourceInfo {
  readonly source: import('../sources/source.js').SourceSpec | null;
}

const RECORD_DIVERGENT = 1000;
const KEEP_DIVERGENCES = 100;

/** A step as the replay runs it. */
interface ReplayStep {
  readonly stepId: string;
  readonly versionHash: ContentHash;
  readonly loaded: LoadedStep | undefined;
  /** Why it cannot run. */
  readonly unavailable: { cause: ReplayCause; detail: string } | undefined;
  readonly stateful: boolean;
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
  const range = await checkpointRange(store, options);
  const capture = await store.getRun(range.runId);
  if (capture === undefined) throw new ProvenantError('NOT_FOUND', `run ${range.runId} is missing from ${store.location}`, { context: { runId: range.runId } });
  const verify = options.verify ?? true;
  const started = Date.now();
  const first = range.checkpoints[0] as CheckpointRecord;
  const last = range.checkpoints[range.checkpoints.length - 1] as CheckpointRecord;
  const totalRecords = range.checkpoints.reduce((n, c) => n + (c.end?.records ?? 0), 0);

  const context: ExecutionContext = { source: 'library', ...(options.context ?? {}) };
  const replayRunId = newId();
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

  const runner = new RangeReplayer(store, range, replayRunId, context, options);
  let status: 'completed' | 'failed' = 'completed';
  try {
    await runner.run(totalRecords);
  } catch (err) {
    status = 'failed';
    await store
      .endRun({ runId: replayRunId, endedUs: nowUs(), status, summary: { error: errorMessage(err) } })
      .catch(() => undefined);
    throw err;
  }
  const result: ReplayResult = {
    replayRunId,
    runId: range.runId,
    streamId: range.streamId,
    from: first.checkpointId,
    to: last.checkpointId,
    verify,
    checkpoints: range.checkpoints.length,
    records: runner.records,
    executions: runner.executions,
    matched: runner.matched,
    diverged: runner.diverged,
    inputFrom: runner.inputFrom,
    firstDivergence: runner.divergences[0] ?? null,
    divergences: runner.divergences,
    durationMs: Date.now() - started,
  };
  await store.endRun({ runId: replayRunId, endedUs: nowUs(), status, summary: result as unknown as JsonValue });
  return result;
}

/** The replay of one range; counts and divergences accumulate on it. */
class RangeReplayer {
  records = 0;
  executions = 0;
  matched = 0;
  diverged = 0;
  readonly inputFrom = { source: 0, slice: 0 };
  readonly divergences: ReplayDivergence[] = [];

  readonly #store: Store;
  readonly #range: CheckpointRange;
  readonly #runId: string;
  readonly #context: ExecutionContext;
  readonly #contextValue: EncodedValue;
  readonly #options: ReplayOptions;
  readonly #steps = new Map<string, Promise<ReplayStep>>();
  readonly #params = new Map<ContentHash, unknown>();
  #recorded = 0;
  #pendingWrites: { executions: ExecutionWrite[]; values: ValueWrite[] } = { executions: [], values: [] };
  #source: RecordSource | undefined;
  #sourceOpened = false;

  constructor(store: Store, range: CheckpointRange, runId: string, context: ExecutionContext, options: ReplayOptions) {
    this.#store = store;
    this.#range = range;
    this.#runId = runId;
    this.#context = context;
    this.#contextValue = encodeValue(context);
    this.#options = options;
  }

  async run(totalRecords: number): Promise<void> {
    const { checkpoints, before } = this.#range;
    const store = this.#store;
    let states: StepStates | undefined;
    let pipeline: RecordedPipeline | undefined;
    let done = 0;
    const every = this.#options.progressEvery ?? 1000;
    const progress = (): ReplayProgress => ({
      checkpoints: done,
      totalCheckpoints: checkpoints.length,
      records: this.records,
      totalRecords,
      executions: this.executions,
      diverged: this.diverged,
    });
    try {
      for (const cp of checkpoints) {
        const end = cp.end;
        if (end === null) continue;
        pipeline = await readRecordedPipeline(store, cp.pipelineHash);
        const steps = await Promise.all(pipeline.steps.map((s) => this.#step(s.id, s.versionHash, s.stateful)));
        // State at the start of the range: the snapshot of the checkpoint before it.
        states ??= await restoreStates(store, before?.end?.stateHash ?? null, pipeline.steps.filter((s) => s.stateful).map((s) => s.id));
        const recorded = await this.#recordedByOffset(cp);
        const seen = new Set<number>();
        for await (const record of this.#records(cp)) {
          seen.add(record.offset);
          await this.#replayRecord(cp, record, recorded.get(record.offset) ?? [], steps, states);
          this.records++;
          if (this.#options.onProgress && this.records % every === 0) this.#options.onProgress(progress());
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
        // Stateful steps: the state at the end of the checkpoint must match the snapshot.
        if (end.stateHash !== null || states.size > 0) {
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
        done++;
        this.#options.onProgress?.(progress());
      }
    } finally {
      if (this.#sourceOpened && this.#options.source === undefined) await this.#source?.close().catch(() => undefined);
    }
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
    const run = await this.#store.getRun(this.#range.runId);
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

  async #replayRecord(
    cp: CheckpointRecord,
    record: SourceRecord,
    recorded: readonly ExecutionSketch[],
    pipelineSteps: readonly ReplayStep[],
    states: StepStates,
  ): Promise<void> {
    let encoded = record.encoded;
    if (encoded === undefined && record.malformed === undefined) {
      try {
        encoded = encodeValue(record.value);
      } catch {
        encoded = undefined;
      }
    }
    // A record recorded as malformed went through the decode step first.
    const steps: ReplayStep[] = [];
    const firstRecorded = recorded[0];
    if (firstRecorded !== undefined && firstRecorded.functionId === DECODE_STEP_ID) {
      steps.push(await this.#step(DECODE_STEP_ID, firstRecorded.functionVersionHash, false));
      if (encoded === undefined) encoded = encodeValue(record.value);
    }
    steps.push(...pipelineSteps);
    let input: CanonicalValue | undefined = encoded === undefined ? undefined : new CanonicalValue(encoded);
    for (let k = 0; k < steps.length; k++) {
      const step = steps[k] as ReplayStep;
      const rec = recorded[k];
      if (rec === undefined) {
        // Nothing recorded for this step: capture stopped the record before it (a filter or a
        // failure) — replay must stop there too, which the previous step's comparison decides.
        this.#diverge({
          cause: 'changed-history',
          checkpointId: cp.checkpointId,
          offset: record.offset,
          stepId: step.stepId,
          versionHash: step.versionHash,
          executionId: null,
          replayExecutionId: null,
          inputHash: input?.encoded.hash ?? null,
          expectedHash: null,
          actualHash: null,
          detail: `no execution of step ${step.stepId} was recorded for offset ${record.offset}`,
        });
        return;
      }
      this.executions++;
      const base = {
        checkpointId: cp.checkpointId,
        offset: record.offset,
        stepId: step.stepId,
        versionHash: step.versionHash,
        executionId: rec.id,
        inputHash: input?.encoded.hash ?? null,
        expectedHash: rec.outputHash,
      };
      if (rec.functionId !== step.stepId || rec.functionVersionHash !== step.versionHash) {
        this.#diverge({ ...base, cause: 'changed-history', replayExecutionId: null, actualHash: null, detail: `recorded execution ${rec.id} is of ${rec.functionId}@${rec.functionVersionHash}, not of the checkpoint's ${step.stepId}@${step.versionHash}` });
        return;
      }
      if (input === undefined || (k === 0 && rec.inputHashes[0] !== input.encoded.hash)) {
        this.#diverge({ ...base, cause: 'changed-record', replayExecutionId: null, actualHash: null, detail: `the source's record at offset ${record.offset} is not the one recorded (recorded ${rec.inputHashes[0] ?? '?'})` });
        return;
      }
      if (step.unavailable !== undefined) {
        this.#diverge({ ...base, cause: step.unavailable.cause, replayExecutionId: null, actualHash: null, detail: step.unavailable.detail });
        return;
      }
      const outcome = await this.#call(step, rec, input, step.stateful ? states.get(step.stepId) : undefined);
      if (outcome.missing !== undefined) {
        this.#diverge({ ...base, cause: outcome.missing.cause, replayExecutionId: null, actualHash: null, detail: outcome.missing.detail });
        return;
      }
      const { output, error, tapeDiverged } = outcome;
      let matches: boolean;
      let detail: string | null = null;
      if (rec.status === 'failed') {
        const recordedError = rec.errorHash === null ? null : await this.#errorMessage(rec.errorHash);
        matches = error !== undefined && error === recordedError;
        if (!matches) detail = error === undefined ? `recorded failure "${recordedError ?? '?'}" did not happen at replay` : `failed with "${error}", recorded "${recordedError ?? '?'}"`;
      } else {
        matches = error === undefined && output?.hash === rec.outputHash;
        if (error !== undefined) detail = error;
      }
      if (matches) this.matched++;
      else {
        const cause: ReplayCause = tapeDiverged ? 'nondeterminism' : error !== undefined || rec.status === 'failed' ? 'outcome-changed' : 'unrecorded-nondeterminism';
        const replayExecutionId = this.#recordDivergent(rec, step, input, output, error, record.offset, cp.streamId);
        this.#diverge({ ...base, cause, replayExecutionId, actualHash: output?.hash ?? null, detail });
      }
      if (error !== undefined || output === undefined || rec.status === 'failed') {
        // The record's path ended here at replay; recorded steps after it did not run.
        if (recorded.length > k + 1 && matches) {
          this.#diverge({ ...base, cause: 'changed-history', replayExecutionId: null, actualHash: null, detail: 'executions were recorded after a failure' });
        }
        return;
      }
      const isNull = output.encoding === 'json' && output.text === 'null';
      if (isNull) return;
      input = new CanonicalValue(output);
      if (k === steps.length - 1) await this.#options.sink?.(input.value, record.offset);
    }
  }

  async #errorMessage(hash: ContentHash): Promise<string | null> {
    try {
      const e = decodeValue(await this.#store.getBlob(hash), 'json') as { message?: unknown };
      return typeof e.message === 'string' ? e.message : null;
    } catch {
      return null;
    }
  }

  /** Run one step as recorded: its params, its recorded nondeterminism fed back. */
  async #call(
    step: ReplayStep,
    rec: ExecutionSketch,
    input: CanonicalValue,
    state: Record<string, unknown> | undefined,
  ): Promise<{ output?: EncodedValue; error?: string; tapeDiverged: boolean; missing?: { cause: ReplayCause; detail: string } }> {
    let params: unknown;
    let reads: NondeterminismRecord | null = null;
    try {
      params = this.#params.get(rec.paramsHash);
      if (params === undefined) {
        params = deepFreeze(decodeValue(await this.#store.getBlob(rec.paramsHash), 'json'));
        this.#params.set(rec.paramsHash, params);
      }
      if (rec.nondeterminismHash !== null) reads = decodeValue(await this.#store.getBlob(rec.nondeterminismHash), 'json') as NondeterminismRecord;
    } catch (err) {
      const corrupt = err instanceof ProvenantError && err.code === 'BLOB_CORRUPT';
      return { tapeDiverged: false, missing: { cause: corrupt ? 'corrupt-blob' : 'missing-blob', detail: errorMessage(err) } };
    }
    const tape = new ReplayTape(reads, `execution ${rec.id} (step ${rec.functionId})`);
    const ctx: StepContext = {
      stepId: step.stepId,
      versionHash: step.versionHash,
      executionId: rec.id,
      runId: this.#range.runId,
      context: this.#context,
      ...(state === undefined ? {} : { state }),
    };
    const fn = (step.loaded as LoadedStep).fn;
    try {
      let result = withTape(tape, () => fn(input.value, params, ctx));
      if (isThenable(result)) result = await result;
      const violation = tape.close();
      if (violation !== undefined) throw violation;
      return { output: encodeValue(result), tapeDiverged: tape.diverged };
    } catch (err) {
      tape.close();
      return { error: thrownMessage(err), tapeDiverged: tape.diverged };
    }
  }

  /** Record what the replay produced for a divergent execution in the replay run (the first 1000). */
  #recordDivergent(
    rec: ExecutionSketch,
    step: ReplayStep,
    input: CanonicalValue,
    output: EncodedValue | undefined,
    error: string | undefined,
    offset: number,
    streamId: string,
  ): string | null {
    if (this.#recorded >= RECORD_DIVERGENT) return null;
    this.#recorded++;
    const w = this.#pendingWrites;
    const errorValue = error === undefined ? undefined : encodeValue({ name: 'Error', message: error });
    w.values.push(input.encoded, this.#contextValue);
    if (output !== undefined) w.values.push(output);
    if (errorValue !== undefined) w.values.push(errorValue);
    const id = newId();
    const now = nowUs();
    w.executions.push({
      id,
      runId: this.#runId,
      functionId: step.stepId,
      functionVersionHash: step.versionHash,
      inputHashes: [input.encoded.hash],
      inputEncodings: [input.encoded.encoding],
      outputHash: output?.hash ?? null,
      outputEncoding: output?.encoding ?? 'json',
      paramsHash: rec.paramsHash,
      contextHash: this.#contextValue.hash,
      context: this.#context,
      startedUs: now,
      endedUs: now,
      status: error === undefined ? 'ok' : 'failed',
      errorHash: errorValue?.hash ?? null,
      nondeterminismHash: rec.nondeterminismHash,
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



