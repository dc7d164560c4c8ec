/**
 * Capture: a {@link Run} calls step versions loaded from their stored artifacts and records every
 * call — inputs, output, params, context, timing, status and error — as an execution.
 *
 * Hot path: per call, the input and output are canonicalized and hashed once, the execution's
 * record hash computed, and the record buffered; buffers are committed to the store in batches
 * (one transaction each), so the cost per execution stays near the floor of the work itself.
 * `finish()` commits what is buffered; records are also committed every `flushIntervalMs`.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ProvenantError, errorMessage } from '../errors.js';
import { decodeValue, encodeValue, sha256, canonicalize, type ContentHash, type EncodedValue, type JsonValue } from '../hash/canonical.js';
import { newId, nowUs } from '../ids.js';
import type {
  CheckpointTransition,
  EnvironmentFingerprint,
  ExecutionContext,
  FailurePolicy,
  RecordedError,
  RunStatus,
  ValueWrite,
} from '../store/records.js';
import { CHECKPOINT_INLINE_MAX, type ExecutionBatchBuilder, type Store } from '../store/store.js';
import type { StepSource } from '../step/bundle.js';
import { nondeterminismJson, RecordingTape, withTape } from '../step/determinism.js';
import { prepareStep } from '../step/register.js';
import type { LoadedStep, StepContext } from '../step/runtime.js';
import { currentContext } from './context.js';
import { deepFreeze, isThenable } from '../step/call.js';
import { PROVENANT_VERSION } from '../version.js';

/** Options of {@link startRun}. */
export interface StartRunOptions {
  /** The pipeline or job name, shown in listings. */
  readonly name: string;
  /** On a step failure: `stop` the run (default) or `dead-letter` the record and go on. */
  readonly failurePolicy?: FailurePolicy;
  /** The run's context; merged under the context set with `withContext` at each call. */
  readonly context?: ExecutionContext;
  /** What the run processes and how (recorded with the run). Default: `{}`. */
  readonly options?: JsonValue;
  /** Folder from which to find the project's package-lock.json for the environment fingerprint. Default: cwd. */
  readonly projectDir?: string;
  /** Executions buffered before a commit. Default: 5000. */
  readonly batchSize?: number;
  /** Longest time an execution waits in the buffer, in ms. Default: 200. */
  readonly flushIntervalMs?: number;
  /**
   * Commit executions only with checkpoints ({@link Run.commitCheckpoint}): a checkpoint and all
   * of its executions then commit in one transaction. Default: false (commit by size and time).
   */
  readonly checkpointed?: boolean;
}

/** The executions buffered since the last commit (a checkpoint's, in checkpointed runs). */
export interface PendingExecutions {
  readonly executions: number;
  readonly failed: number;
  readonly deadLettered: number;
  readonly firstExecutionId: string | null;
  readonly lastExecutionId: string | null;
}

/** Where a call's input came from, for stream sources. */
export interface CallOrigin {
  readonly streamId: string;
  readonly offset: number;
}

/**
 * A value together with its canonical encoding: what a step produced, ready to be the next
 * step's input without being canonicalized and hashed again.
 */
export class CanonicalValue {
  readonly encoded: EncodedValue;
  #value: unknown;
  #decoded: boolean;

  /** @param encoded canonical bytes and hash; @param value the decoded value, when already at hand */
  constructor(encoded: EncodedValue, ...value: [unknown?]) {
    this.encoded = encoded;
    this.#decoded = value.length > 0;
    this.#value = value[0];
  }

  /** The decoded canonical value (decoded on first use). */
  get value(): unknown {
    if (!this.#decoded) {
      this.#value = decodeCanonical(this.encoded);
      this.#decoded = true;
    }
    return this.#value;
  }
}

/** The outcome of one call: the output, or the recorded failure. */
export type CallOutcome =
  | {
      readonly ok: true;
      readonly executionId: string;
      /** The output in canonical form (as the next step or a replay would receive it), decoded on first use. */
      readonly output: unknown;
      readonly outputHash: ContentHash;
      /** The output with its encoding; pass it as the next call's input to skip re-hashing. */
      readonly canonical: CanonicalValue;
    }
  | { readonly ok: false; readonly executionId: string; readonly error: RecordedError; readonly deadLettered: boolean };

/**
 * A successful call's outcome. A class, not an object literal with a getter: V8 keeps accessors in
 * an object's hidden class, which lives in the old generation, so each evaluation of such a
 * literal made a hidden class of its own holding a new getter closure. That old-to-young link kept
 * the closure and all it reaches (the output's canonical text and hash) alive through two young
 * collections: 1.1 KB per execution was promoted to the old generation, and the young collections
 * cost capture about 10 % of its CPU (measured with --trace-gc-nvp).
 */
class Succeeded {
  readonly ok = true;
  constructor(
    readonly executionId: string,
    readonly outputHash: ContentHash,
    readonly canonical: CanonicalValue,
  ) {}

  /** The output in canonical form, decoded on first use. */
  get output(): unknown {
    return this.canonical.value;
  }
}

/** Counts of what a run recorded. */
export interface RunSummary {
  readonly runId: string;
  readonly status: RunStatus;
  readonly executions: number;
  readonly failed: number;
  readonly deadLettered: number;
  readonly steps: Readonly<Record<string, { readonly executions: number; readonly failed: number; readonly versionHash: string }>>;
  readonly durationMs: number;
}

/** A step failed inside a run; the failed execution is recorded before this is thrown. */
export class StepFailedError extends ProvenantError {
  readonly executionId: string;
  readonly stepId: string;
  constructor(stepId: string, executionId: string, error: RecordedError, deadLettered: boolean, origin?: CallOrigin) {
    super('STEP_FAILED', `step ${stepId} failed${origin ? ` at ${origin.streamId} offset ${origin.offset}` : ''}: ${error.message}`, {
      hint: deadLettered
        ? 'The record was dead-lettered and the run went on; see `provenant executions --status failed`.'
        : `Inspect it with \`provenant show ${executionId}\`; use the dead-letter policy to go on past bad records.`,
      context: { stepId, executionId, ...(origin ?? {}) },
    });
    this.name = 'StepFailedError';
    this.executionId = executionId;
    this.stepId = stepId;
  }
}

const EMPTY_PARAMS = Object.freeze({});

interface ParamsEntry {
  readonly value: EncodedValue;
  batch: number;
  /** Params as steps receive them: decoded once and deep-frozen. */
  decoded: unknown;
}

/** What is known about a call between invoking the step and recording it. */
interface PendingCall {
  readonly step: LoadedStep;
  readonly id: string;
  readonly inputValue: EncodedValue;
  readonly paramsValue: EncodedValue;
  readonly context: { context: ExecutionContext; hash: ContentHash };
  readonly origin: CallOrigin | undefined;
  readonly tape: RecordingTape;
  readonly startedUs: number;
  readonly policy: FailurePolicy;
}

/** Per-call options of {@link Run.attemptNow}. */
export interface AttemptOptions {
  /** The step's state object (stateful steps): passed as `ctx.state`. */
  readonly state?: Record<string, unknown>;
  /** Overrides the run's failure policy for this call (malformed records are always dead-lettered). */
  readonly failurePolicy?: FailurePolicy;
}


/** Batches handed to the store and not yet committed, before capture waits. */
const MAX_BATCHES_IN_FLIGHT = 3;

/**
 * Start a capture run in a store.
 * @example
 * const run = await startRun(store, { name: 'flights' });
 * const normalize = await run.step('normalize', { module: './steps/normalize.ts' });
 * const out = await run.call(normalize, record);
 * await run.finish();
 */
export async function startRun(store: Store, options: StartRunOptions): Promise<Run> {
  const id = newId();
  const run = new Run(store, id, options);
  await store.createRun({
    id,
    kind: 'capture',
    name: options.name,
    startedUs: nowUs(),
    environment: environmentFingerprint(options.projectDir ?? process.cwd()),
    failurePolicy: options.failurePolicy ?? 'stop',
    context: options.context ?? {},
    options: options.options ?? {},
  });
  return run;
}

/**
 * Go on recording into a run that a stopped process left unfinished (resume). The run must exist
 * and have no end.
 * @throws ProvenantError NOT_FOUND, RUN_CLOSED
 */
export async function continueRun(store: Store, runId: string, options: Omit<StartRunOptions, 'name' | 'options' | 'projectDir'>): Promise<Run> {
  const info = await store.getRun(runId);
  if (info === undefined) {
    throw new ProvenantError('NOT_FOUND', `no run ${runId} in ${store.location}`, { hint: 'List runs with `provenant runs`.', context: { runId } });
  }
  if (info.end !== null) {
    throw new ProvenantError('RUN_CLOSED', `run ${runId} has already ended (${info.end.status}); there is nothing to resume`, {
      hint: 'Start a new run; replay its checkpoints with `provenant replay`.',
      context: { runId, status: info.end.status },
    });
  }
  return new Run(store, runId, { ...options, name: info.name, failurePolicy: options.failurePolicy ?? info.failurePolicy, context: options.context ?? info.context });
}

/** A capture run. Create with {@link startRun}. */
export class Run {
  readonly id: string;
  readonly store: Store;
  readonly failurePolicy: FailurePolicy;

  readonly #context: ExecutionContext;
  readonly #batchSize: number;
  readonly #startedMs = Date.now();
  #batch: ExecutionBatchBuilder;
  /** The last output added to the current batch: a chained step's input is that same value. */
  #lastOutput: ValueWrite | undefined;
  #commits: Promise<void> = Promise.resolve();
  #inFlight: Promise<void>[] = [];
  #commitError: unknown = undefined;
  #timer: NodeJS.Timeout | undefined;
  #ended = false;
  #stopped: StepFailedError | undefined;
  readonly #counts = new Map<string, { executions: number; failed: number; versionHash: string }>();
  #deadLettered = 0;
  /** Per distinct params text: its encoding, the batch it was last added to, its decoded frozen copy. */
  readonly #paramsCache = new Map<string, ParamsEntry>();
  #batchNumber = 0;
  #lastContext: { key: ExecutionContext | undefined; context: ExecutionContext; hash: ContentHash; bytes: Uint8Array } | undefined;
  readonly #checkpointed: boolean;
  #pending = { executions: 0, failed: 0, deadLettered: 0, firstExecutionId: null as string | null, lastExecutionId: null as string | null };

  /** @internal use {@link startRun} */
  constructor(store: Store, id: string, options: StartRunOptions) {
    this.store = store;
    this.id = id;
    this.failurePolicy = options.failurePolicy ?? 'stop';
    this.#context = Object.freeze({ ...(options.context ?? {}) });
    this.#batchSize = options.batchSize ?? 5000;
    this.#batch = store.newBatch();
    this.#checkpointed = options.checkpointed ?? false;
    if (!this.#checkpointed) {
      const interval = options.flushIntervalMs ?? 200;
      this.#timer = setInterval(() => void this.#commit(), interval);
      this.#timer.unref();
    }
  }

  /** The run's context (merged under the one set with `withContext` at each call). */
  get context(): ExecutionContext {
    return this.#context;
  }

  /** What is buffered since the last commit: in a checkpointed run, the open checkpoint's executions. */
  get pending(): PendingExecutions {
    return { ...this.#pending };
  }

  /** Executions buffered since the last commit (cheap; for per-record checks). */
  get pendingExecutions(): number {
    return this.#pending.executions;
  }

  /**
   * Commit everything buffered together with a checkpoint transition (and the values it refers
   * to: state snapshot, pipeline, input slice) in one transaction. Returns once the batch is handed
   * to the store (waiting only for backpressure), with `durable`, which resolves when it is committed.
   */
  async commitCheckpoint(transition: CheckpointTransition, values: readonly ValueWrite[] = []): Promise<{ durable: Promise<void> }> {
    if (this.#ended) throw new ProvenantError('RUN_CLOSED', `run ${this.id} has finished`, { context: { runId: this.id } });
    if (this.#commitError !== undefined) throw this.#commitError;
    for (const v of values) this.#batch.addValue(v, { inlineUpTo: CHECKPOINT_INLINE_MAX });
    const durable = this.#commit(transition, true);
    durable.catch(() => undefined);
    while (this.#inFlight.length > MAX_BATCHES_IN_FLIGHT) await this.#inFlight.shift();
    if (this.#commitError !== undefined) throw this.#commitError;
    return { durable };
  }

  /** Build, store and register the current code of a step, and load that stored artifact to run. */
  async step(stepId: string, source: StepSource): Promise<LoadedStep> {
    return prepareStep(this.store, stepId, source, this.id);
  }

  /**
   * Call a step and record the execution. Returns the output.
   * @throws StepFailedError when the step throws or returns something that cannot be hashed
   * (the failed execution is recorded first; with the `stop` policy the run stops).
   */
  async call(step: LoadedStep, input: unknown, params?: JsonValue, origin?: CallOrigin): Promise<unknown> {
    const outcome = await this.attempt(step, input, params, origin);
    if (outcome.ok) return outcome.output;
    throw new StepFailedError(step.stepId, outcome.executionId, outcome.error, outcome.deadLettered, origin);
  }

  /**
   * Call a step and record the execution; a failure is returned as data, not thrown (unless the
   * run's policy is `stop`, which stops the run and throws).
   * The step receives the canonical form of its input — exactly the value whose hash is recorded.
   * `input` may be a previous outcome's {@link CanonicalValue}.
   */
  async attempt(step: LoadedStep, input: unknown, params: JsonValue = EMPTY_PARAMS, origin?: CallOrigin): Promise<CallOutcome> {
    return this.attemptNow(step, input, params, origin);
  }

  /**
   * {@link attempt} for hot loops: returns the outcome itself when the step is synchronous (and
   * no commit has to be waited for), a promise of it otherwise. Saves a promise per call.
   */
  attemptNow(
    step: LoadedStep,
    input: unknown,
    params: JsonValue = EMPTY_PARAMS,
    origin?: CallOrigin,
    options?: AttemptOptions,
  ): CallOutcome | Promise<CallOutcome> {
    this.#checkOpen();
    const inputValue = input instanceof CanonicalValue ? input.encoded : encodeValue(input);
    // Into the batch before the call: the batch copies the bytes, so a step (or the caller)
    // changing them afterwards cannot change what is recorded under this hash.
    this.#pushValue(inputValue);
    const paramsEntry = this.#encodeParams(params);
    const paramsValue = paramsEntry.value;
    const context = this.#currentContext();
    const id = newId();
    const stepInput = input instanceof CanonicalValue ? input.value : decodeCanonical(inputValue);
    const stepParams = (paramsEntry.decoded ??= deepFreeze(decodeCanonical(paramsValue)));
    const stepCtx: StepContext = { stepId: step.stepId, versionHash: step.versionHash, executionId: id, runId: this.id, context: context.context };
    if (options?.state !== undefined) (stepCtx as { state?: Record<string, unknown> }).state = options.state;
    const tape = new RecordingTape();
    const call: PendingCall = { step, id, inputValue, paramsValue, context, origin, tape, startedUs: nowUs(), policy: options?.failurePolicy ?? this.failurePolicy };
    let result: unknown;
    try {
      result = withTape(tape, () => step.fn(stepInput, stepParams, stepCtx));
    } catch (err) {
      return this.#settle(call, undefined, err, true);
    }
    if (isThenable(result)) {
      return Promise.resolve(result).then(
        (value) => this.#settle(call, value, undefined, false),
        (err: unknown) => this.#settle(call, undefined, err, true),
      );
    }
    return this.#settle(call, result, undefined, false);
  }

  /** Record a finished call and decide what happens next (the run's policy, backpressure). */
  #settle(call: PendingCall, result: unknown, thrown: unknown, threw: boolean): CallOutcome | Promise<CallOutcome> {
    const { step, id } = call;
    let output: EncodedValue | undefined;
    let failure: RecordedError | undefined;
    // The call is over: a fetch it left pending fails it (nothing half-answered is recorded).
    const unawaited = call.tape.close();
    if (threw) failure = toRecordedError(thrown, step.stepId);
    else if (unawaited !== undefined) failure = toRecordedError(unawaited, step.stepId);
    else {
      try {
        output = encodeValue(result);
      } catch (err) {
        failure = toRecordedError(err, step.stepId);
      }
    }
    const endedUs = nowUs();

    const errorValue = failure === undefined ? undefined : encodeValue(failure);
    const reads = call.tape.toRecord();
    const nondeterminismValue = reads === null ? undefined : encodeValue(nondeterminismJson(reads));
    if (nondeterminismValue !== undefined) this.#pushValue(nondeterminismValue);
    if (output !== undefined) {
      this.#pushValue(output);
      this.#lastOutput = output;
    }
    if (errorValue !== undefined) this.#pushValue(errorValue);
    this.#batch.addExecution({
      id,
      runId: this.id,
      functionId: step.stepId,
      functionVersionHash: step.versionHash,
      inputHashes: [call.inputValue.hash],
      inputEncodings: [call.inputValue.encoding],
      outputHash: output?.hash ?? null,
      outputEncoding: output?.encoding ?? 'json',
      paramsHash: call.paramsValue.hash,
      contextHash: call.context.hash,
      startedUs: call.startedUs,
      endedUs,
      status: failure === undefined ? 'ok' : 'failed',
      errorHash: errorValue?.hash ?? null,
      nondeterminismHash: nondeterminismValue?.hash ?? null,
      streamId: call.origin?.streamId ?? null,
      offset: call.origin?.offset ?? null,
      context: call.context.context,
    });
    this.#count(step, failure !== undefined);
    const pending = this.#pending;
    pending.executions++;
    if (failure !== undefined) pending.failed++;
    pending.firstExecutionId ??= id;
    pending.lastExecutionId = id;

    let outcome: CallOutcome;
    if (output !== undefined) {
      outcome = new Succeeded(id, output.hash, new CanonicalValue(output));
    } else if (call.policy === 'dead-letter') {
      const error = failure as RecordedError;
      this.#batch.addDeadLetter(id, error.message);
      this.#deadLettered++;
      pending.deadLettered++;
      outcome = { ok: false, executionId: id, error, deadLettered: true };
    } else {
      const error = failure as RecordedError;
      this.#stopped = new StepFailedError(step.stepId, id, error, false, call.origin);
      // A checkpointed run commits the failed execution with its checkpoint (ended FAILED by the caller).
      if (this.#checkpointed) return { ok: false, executionId: id, error, deadLettered: false };
      return this.#commitAndWait().then(() => ({ ok: false, executionId: id, error, deadLettered: false }));
    }
    if (!this.#checkpointed && this.#batch.executionCount >= this.#batchSize) return this.#commitWithBackpressure().then(() => outcome);
    return outcome;
  }

  /** Commit everything buffered so far and wait until it is durable. */
  async flush(): Promise<void> {
    await this.#commitAndWait();
  }

  /**
   * Commit what is buffered and append the run's end. Status defaults to `stopped` when a step
   * failed under the `stop` policy, else `completed`.
   */
  async finish(status?: RunStatus): Promise<RunSummary> {
    if (this.#ended) throw new ProvenantError('RUN_CLOSED', `run ${this.id} has already finished`, { context: { runId: this.id } });
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#commitAndWait();
    this.#ended = true;
    const summary: RunSummary = {
      runId: this.id,
      status: status ?? (this.#stopped ? 'stopped' : 'completed'),
      executions: [...this.#counts.values()].reduce((n, c) => n + c.executions, 0),
      failed: [...this.#counts.values()].reduce((n, c) => n + c.failed, 0),
      deadLettered: this.#deadLettered,
      steps: Object.fromEntries(this.#counts),
      durationMs: Date.now() - this.#startedMs,
    };
    await this.store.endRun({
      runId: this.id,
      endedUs: nowUs(),
      status: summary.status,
      summary: { executions: summary.executions, failed: summary.failed, deadLettered: summary.deadLettered, steps: summary.steps },
    });
    return summary;
  }

  /** The failure that stopped the run (stop policy), if any. */
  get stoppedBy(): StepFailedError | undefined {
    return this.#stopped;
  }

  #checkOpen(): void {
    if (this.#ended) throw new ProvenantError('RUN_CLOSED', `run ${this.id} has finished; start a new run`, { context: { runId: this.id } });
    if (this.#stopped) throw this.#stopped;
    if (this.#commitError !== undefined) throw this.#commitError;
  }

  /**
   * Params are canonicalized at every call (a caller may change its params object between calls);
   * the encoded value, its batch membership and its decoded, frozen copy are reused per distinct text.
   */
  #encodeParams(params: JsonValue): ParamsEntry {
    const text = canonicalize(params);
    let cached = this.#paramsCache.get(text);
    if (cached === undefined) {
      if (this.#paramsCache.size >= 1000) this.#paramsCache.clear();
      cached = { value: encodeValue(params), batch: -1, decoded: undefined };
      this.#paramsCache.set(text, cached);
    }
    // Params ride along once per batch; the store skips values it already holds.
    if (cached.batch !== this.#batchNumber) {
      cached.batch = this.#batchNumber;
      this.#pushValue(cached.value);
    }
    return cached;
  }

  #currentContext(): { context: ExecutionContext; hash: ContentHash } {
    const key = currentContext();
    const last = this.#lastContext;
    if (last !== undefined && last.key === key) {
      return last;
    }
    const context: ExecutionContext = key === undefined ? this.#context : Object.freeze({ ...this.#context, ...key });
    const text = canonicalize(context);
    const bytes = Buffer.from(text, 'utf8');
    const entry = { key, context, hash: sha256(bytes), bytes };
    this.#lastContext = entry;
    this.#pushValue(entry);
    return entry;
  }

  #pushValue(value: ValueWrite): void {
    if (value === this.#lastOutput) return;
    this.#batch.addValue(value);
  }

  #count(step: LoadedStep, failed: boolean): void {
    const key = step.stepId;
    let c = this.#counts.get(key);
    if (c === undefined) {
      c = { executions: 0, failed: 0, versionHash: step.versionHash };
      this.#counts.set(key, c);
    }
    c.executions++;
    if (failed) c.failed++;
  }

  /**
   * Commit the buffer without waiting for it, so capture goes on while the store writes; wait
   * only when more than {@link MAX_BATCHES_IN_FLIGHT} batches are still being committed.
   */
  async #commitWithBackpressure(): Promise<void> {
    void this.#commit();
    while (this.#inFlight.length > MAX_BATCHES_IN_FLIGHT) await this.#inFlight.shift();
    if (this.#commitError !== undefined) throw this.#commitError;
  }

  /** Hand the buffers to the store; commits run one after another. */
  #commit(checkpoint?: CheckpointTransition, always = false): Promise<void> {
    if (this.#batch.executionCount === 0 && !always) return this.#commits;
    const batch = this.#batch;
    this.#pending = { executions: 0, failed: 0, deadLettered: 0, firstExecutionId: null, lastExecutionId: null };
    this.#batch = this.store.newBatch(batch);
    this.#lastOutput = undefined;
    // Context and params values ride along with the first batch that needs them after a commit.
    this.#lastContext = undefined;
    this.#batchNumber++;
    // After a failed commit nothing more is committed (no gap in history): the failure propagates.
    const committed = this.#commits.then(() => this.store.commitBatch(batch, checkpoint));
    this.#commits = committed;
    this.#inFlight.push(this.#commits.catch(() => undefined));
    this.#commits.catch((err: unknown) => {
      // A store that could not be reached stays retryable: the caller may do the work again later.
      const retryable = err instanceof ProvenantError && err.retryable;
      this.#commitError ??= new ProvenantError('STORE_BUSY', `run ${this.id}: recording executions failed: ${errorMessage(err)}`, {
        hint: retryable
          ? 'Nothing after the last committed batch was recorded; the store could not be reached: run again (or resume) once it is back.'
          : 'Nothing after the last committed batch was recorded; check the store (disk space, permissions) and run again.',
        context: { runId: this.id, store: this.store.location },
        cause: err,
        retryable,
      });
    });
    return committed;
  }

  async #commitAndWait(): Promise<void> {
    void this.#commit();
    await this.#commits.catch(() => undefined);
    this.#inFlight = [];
    if (this.#commitError !== undefined) throw this.#commitError;
  }
}

/** The value a step receives: a fresh decode of the canonical form (bytes: a copy of them). */
function decodeCanonical(value: EncodedValue): unknown {
  if (value.text !== undefined) return JSON.parse(value.text) as unknown;
  if (value.encoding === 'bytes') return Buffer.from(value.bytes);
  return decodeValue(value.bytes, 'json');
}


/** A thrown value as the error recorded with a failed execution. */
export function toRecordedError(err: unknown, stepId: string): RecordedError {
  if (err instanceof Error || (typeof err === 'object' && err !== null && 'message' in err)) {
    const e = err as Error & { code?: unknown };
    const recorded: { name: string; message: string; stack?: string; code?: string } = {
      name: typeof e.name === 'string' ? e.name : 'Error',
      message: typeof e.message === 'string' ? e.message : String(e.message),
    };
    if (typeof e.stack === 'string') recorded.stack = e.stack;
    if (typeof e.code === 'string') recorded.code = e.code;
    return recorded;
  }
  return { name: 'Error', message: `step ${stepId} threw a non-error value: ${safeString(err)}` };
}

function safeString(v: unknown): string {
  try {
    return typeof v === 'string' ? v : JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** Node version, platform, Provenant version and the hash of the nearest package-lock.json. */
export function environmentFingerprint(projectDir: string): EnvironmentFingerprint {
  let lockfileHash: ContentHash | null = null;
  let dir = resolve(projectDir);
  for (;;) {
    try {
      lockfileHash = sha256(readFileSync(join(dir, 'package-lock.json')));
      break;
    } catch {
      const parent = dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  }
  return { node: process.version, platform: process.platform, arch: process.arch, provenant: PROVENANT_VERSION, lockfileHash };
}

