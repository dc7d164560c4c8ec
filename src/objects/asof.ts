/**
 * As-of reads: the version of an object current at a time, read where its bytes are kept and
 * recomputed where not. Recomputation plans the minimal set of executions back to the nearest
 * kept ancestors (a recursive query in the store), runs them in topological order with the
 * recorded code, params and nondeterminism (the replay runtime), through a memo cache keyed by
 * (version hash, input hashes, params hash), and checks every result against its recorded hash.
 */
import { ProvenantError } from '../errors.js';
import { decodeValue, encodeValue, type ContentHash, type EncodedValue, type JsonValue } from '../hash/canonical.js';
import { nowUs } from '../ids.js';
import { ReplayTape, withTape, type NondeterminismRecord } from '../step/determinism.js';
import { loadStep, type LoadedStep, type StepContext } from '../step/runtime.js';
import { thrownMessage } from '../step/call.js';
import { startRun } from '../capture/run.js';
import type { ExecutionContext, ObjectVersionRecord } from '../store/records.js';
import type { Store } from '../store/store.js';
import { asOfMicros, parseTime, validateObjectId, type TimeInput } from './refs.js';
import { decodeForStep, describeVersion, notFoundAt, type ObjectVersion } from './versions.js';

/** Limits on one as-of read's recomputation. */
export interface RecomputeBudget {
  /** Give up after this long (checked between executions). */
  readonly timeoutMs?: number;
  /** Run at most this many executions. */
  readonly maxExecutions?: number;
  /** Hold at most this many bytes of intermediate values. */
  readonly maxBytes?: number;
}

/** Options of {@link getAsOf}. */
export interface AsOfOptions {
  /** Run this registered step on the data as it is read (`stepId`, or `stepId@sha256:…` for one version). */
  readonly transform?: string;
  /** Params of the transform. */
  readonly params?: JsonValue;
  /** Who is reading: recorded with the transform's execution. */
  readonly context?: ExecutionContext;
  readonly budget?: RecomputeBudget;
  readonly signal?: AbortSignal;
  /** Use and fill the memo cache of recomputed outputs. Default: true (benchmarks turn it off). */
  readonly cache?: boolean;
}

/** An as-of read's answer, saying how it was obtained. */
export interface AsOfResult {
  readonly objectId: string;
  /** The version current at the time asked for. */
  readonly version: ObjectVersion;
  /** The bytes (of the transform's output when one was applied). */
  readonly bytes: Uint8Array;
  readonly contentType: string;
  /** Hash of `bytes`: the version's content hash, or the transform output's. */
  readonly contentHash: ContentHash;
  /** `read`: the bytes were kept; `recomputed`: made again from kept ancestors. */
  readonly obtained: 'read' | 'recomputed';
  /** Executions run to recompute it (cache hits not included). */
  readonly executionsRun: number;
  /** Executions whose output came from the memo cache. */
  readonly cacheHits: number;
  /** The recorded execution of the transform, when one was applied. */
  readonly transformExecutionId?: string;
}

/** How a version's bytes were obtained. */
export interface ReadOutcome {
  readonly value: EncodedValue;
  readonly obtained: 'read' | 'recomputed';
  readonly executionsRun: number;
  readonly cacheHits: number;
}

/** Outputs recomputed recently, by (version hash, input hashes, params hash); per store. */
class MemoCache {
  readonly #entries = new Map<string, EncodedValue>();
  #bytes = 0;
  constructor(readonly maxBytes: number) {}
  get(key: string): EncodedValue | undefined {
    const hit = this.#entries.get(key);
    if (hit !== undefined) {
      this.#entries.delete(key);
      this.#entries.set(key, hit);
    }
    return hit;
  }
  set(key: string, value: EncodedValue): void {
    if (value.bytes.byteLength > this.maxBytes / 4 || this.#entries.has(key)) return;
    this.#entries.set(key, value);
    this.#bytes += value.bytes.byteLength;
    for (const [k, v] of this.#entries) {
      if (this.#bytes <= this.maxBytes) break;
      this.#entries.delete(k);
      this.#bytes -= v.bytes.byteLength;
    }
  }
}

const memos = new WeakMap<Store, MemoCache>();
const steps = new WeakMap<Store, Map<string, Promise<LoadedStep>>>();

function memoOf(store: Store): MemoCache {
  let memo = memos.get(store);
  if (memo === undefined) memos.set(store, (memo = new MemoCache(64 * 1024 * 1024)));
  return memo;
}

/** A recorded step version, loaded once per store (its artifact verified on load). */
function stepOf(store: Store, stepId: string, versionHash: ContentHash): Promise<LoadedStep> {
  let cache = steps.get(store);
  if (cache === undefined) steps.set(store, (cache = new Map()));
  const key = `${stepId}\u0000${versionHash}`;
  let loaded = cache.get(key);
  if (loaded === undefined) {
    loaded = loadStep(store, stepId, versionHash);
    loaded.catch(() => cache.delete(key));
    cache.set(key, loaded);
  }
  return loaded;
}

async function readKept(store: Store, v: ObjectVersionRecord): Promise<EncodedValue> {
  const bytes = await store.getBlob(v.contentHash);
  return { hash: v.contentHash, bytes, encoding: v.encoding };
}

/**
 * Obtain a version's bytes: read them when kept, else recompute them from the nearest kept
 * ancestors. Every recomputed value's hash is checked against the recorded one.
 * @throws ProvenantError RECOMPUTE_DIVERGED (naming the execution), BUDGET_EXCEEDED, BLOB_MISSING (an original lost)
 */
export async function readVersion(store: Store, target: ObjectVersionRecord, options: { budget?: RecomputeBudget; signal?: AbortSignal; cache?: boolean }): Promise<ReadOutcome> {
  const plan = await store.recomputePlan(target.versionId);
  const last = plan[plan.length - 1];
  if (last !== undefined && last.kept && last.version.versionId === target.versionId) {
    return { value: await readKept(store, target), obtained: 'read', executionsRun: 0, cacheHits: 0 };
  }
  const started = Date.now();
  const budget = options.budget ?? {};
  const memo = options.cache === false ? new MemoCache(0) : memoOf(store);
  const values = new Map<string, EncodedValue>();
  let held = 0;
  let executionsRun = 0;
  let cacheHits = 0;
  const check = (where: string): void => {
    if (options.signal?.aborted === true) {
      throw new ProvenantError('BUDGET_EXCEEDED', `recomputing ${target.objectId}@${target.versionId} was cancelled (${where})`, { context: { versionId: target.versionId } });
    }
    if (budget.timeoutMs !== undefined && Date.now() - started > budget.timeoutMs) {
      throw new ProvenantError('BUDGET_EXCEEDED', `recomputing ${target.objectId}@${target.versionId} took longer than ${budget.timeoutMs} ms (${where})`, {
        hint: 'Pin the version (`provenant materialize`) or keep more versions so that it is read rather than recomputed.',
        context: { versionId: target.versionId, executionsRun, timeoutMs: budget.timeoutMs },
        retryable: true,
      });
    }
    if (budget.maxBytes !== undefined && held > budget.maxBytes) {
      throw new ProvenantError('BUDGET_EXCEEDED', `recomputing ${target.objectId}@${target.versionId} needs more than ${budget.maxBytes} bytes of intermediate values`, {
        context: { versionId: target.versionId, maxBytes: budget.maxBytes },
      });
    }
  };
  for (const row of plan) {
    const v = row.version;
    check(`before version ${v.versionId}`);
    let value: EncodedValue;
    if (row.kept) value = await readKept(store, v);
    else {
      if (v.executionId === null) {
        throw new ProvenantError('BLOB_MISSING', `the original data of ${v.objectId} version ${v.versionId} (${v.contentHash}) is missing`, {
          hint: 'Originals are never collected; restore the store from a backup.',
          context: { objectId: v.objectId, versionId: v.versionId, contentHash: v.contentHash },
        });
      }
      const e = await store.getExecution(v.executionId);
      if (e === undefined) {
        throw new ProvenantError('NOT_FOUND', `execution ${v.executionId} that made ${v.objectId} version ${v.versionId} is not recorded`, { context: { executionId: v.executionId, versionId: v.versionId } });
      }
      const inputs = v.inputVersionIds.map((id) => values.get(id));
      if (inputs.some((x) => x === undefined)) throw new Error(`recompute plan of ${target.versionId} is missing an input of ${v.versionId}`);
      const key = `${e.functionVersionHash}|${e.inputHashes.join(',')}|${e.paramsHash}`;
      const hit = memo.get(key);
      if (hit !== undefined) {
        cacheHits++;
        value = hit;
      } else {
        if (budget.maxExecutions !== undefined && executionsRun >= budget.maxExecutions) {
          throw new ProvenantError('BUDGET_EXCEEDED', `recomputing ${target.objectId}@${target.versionId} needs more than ${budget.maxExecutions} executions`, {
            hint: 'Pin the version (`provenant materialize`) or keep more versions.',
            context: { versionId: target.versionId, maxExecutions: budget.maxExecutions },
          });
        }
        const step = await stepOf(store, e.functionId, e.functionVersionHash);
        const params = decodeValue(await store.getBlob(e.paramsHash), 'json');
        const recorded = e.nondeterminismHash === null ? null : (decodeValue(await store.getBlob(e.nondeterminismHash), 'json') as NondeterminismRecord);
        const tape = new ReplayTape(recorded, `execution ${e.id} (step ${e.functionId})`);
        const ctx: StepContext = { stepId: e.functionId, versionHash: e.functionVersionHash, executionId: e.id, runId: e.runId, context: e.context };
        const decoded = (inputs as EncodedValue[]).map(decodeForStep);
        let output: EncodedValue;
        try {
          const result = await withTape(tape, () => step.fn(decoded.length === 1 ? decoded[0] : decoded, params, ctx));
          const violation = tape.close();
          if (violation !== undefined) throw violation;
          output = encodeValue(result);
        } catch (err) {
          tape.close();
          throw diverged(v, e.id, e.functionId, e.functionVersionHash, `the step failed: ${thrownMessage(err)}`, null);
        }
        executionsRun++;
        if (output.hash !== v.contentHash) {
          throw diverged(v, e.id, e.functionId, e.functionVersionHash, tape.diverged ? 'it read the clock, randomness or the network differently' : 'its output differs from the recorded one', output.hash);
        }
        memo.set(key, output);
        value = output;
      }
    }
    values.set(v.versionId, value);
    held += value.bytes.byteLength;
  }
  const value = values.get(target.versionId);
  if (value === undefined) throw new Error(`recompute plan of ${target.versionId} does not end with it`);
  return { value, obtained: 'recomputed', executionsRun, cacheHits };
}

function diverged(v: ObjectVersionRecord, executionId: string, stepId: string, versionHash: ContentHash, why: string, actual: ContentHash | null): ProvenantError {
  return new ProvenantError('RECOMPUTE_DIVERGED', `recomputing ${v.objectId} version ${v.versionId} diverged at execution ${executionId} (step ${stepId}): ${why}`, {
    hint: `Re-execute it alone with \`provenant reexecute ${executionId}\` to see the cause; the recorded bytes cannot be reproduced, so nothing is returned.`,
    context: { objectId: v.objectId, versionId: v.versionId, executionId, stepId, versionHash, expected: v.contentHash, actual },
  });
}

/**
 * The object as it was at `asOf`: the bytes of the version current then, read if kept, else
 * recomputed (and verified). With `transform`, a registered step runs on them and its execution is
 * recorded with `context`.
 * @throws ProvenantError INPUT_INVALID (malformed id or time), AS_OF_IN_FUTURE, NOT_FOUND (unknown
 * object, or a time before its first version), RECOMPUTE_DIVERGED, BUDGET_EXCEEDED
 */
export async function getAsOf(store: Store, objectId: string, asOf: TimeInput, options: AsOfOptions = {}): Promise<AsOfResult> {
  validateObjectId(objectId);
  const ms = parseTime(asOf);
  const now = Date.now();
  if (ms > now) {
    throw new ProvenantError('AS_OF_IN_FUTURE', `as-of time ${new Date(ms).toISOString()} is in the future (now is ${new Date(now).toISOString()})`, {
      hint: 'History is only known up to now; ask for a time in the past, or now.',
      context: { objectId, asOf: new Date(ms).toISOString() },
    });
  }
  const atUs = asOfMicros(ms);
  const record = await store.objectVersionAt(objectId, atUs);
  if (record === undefined) throw await notFoundAt(store, objectId, atUs);
  const started = nowUs();
  const outcome = await readVersion(store, record, options);
  await store.recordObjectReads([{ versionId: record.versionId, atUs: started, recomputed: outcome.obtained === 'recomputed', costUs: nowUs() - started }]);
  const version = await describeVersion(store, record);
  const base = { objectId, version, obtained: outcome.obtained, executionsRun: outcome.executionsRun, cacheHits: outcome.cacheHits };
  if (options.transform === undefined) {
    return { ...base, bytes: outcome.value.bytes, contentType: record.contentType, contentHash: record.contentHash };
  }
  return { ...base, ...(await applyTransform(store, options.transform, outcome.value, options.params ?? {}, options.context ?? {}, objectId)) };
}

/** The registered step a transform names: `stepId` (its latest version) or `stepId@sha256:…`. */
async function transformStep(store: Store, ref: string): Promise<LoadedStep> {
  const at = ref.indexOf('@');
  const stepId = at < 0 ? ref : ref.slice(0, at);
  const wanted = at < 0 ? undefined : ref.slice(at + 1);
  const summary = (await store.listSteps()).find((s) => s.stepId === stepId);
  const version = wanted === undefined ? summary?.versions[summary.versions.length - 1] : summary?.versions.find((v) => v.versionHash === wanted);
  if (version === undefined) {
    throw new ProvenantError('STEP_NOT_FOUND', `no registered step ${ref} to transform with`, {
      hint: 'Register it first with `provenant register <stepId> <module>`; the API never accepts code, only registered steps.',
      context: { transform: ref },
    });
  }
  return stepOf(store, stepId, version.versionHash);
}

async function applyTransform(
  store: Store,
  ref: string,
  input: EncodedValue,
  params: JsonValue,
  context: ExecutionContext,
  objectId: string,
): Promise<{ bytes: Uint8Array; contentType: string; contentHash: ContentHash; transformExecutionId: string }> {
  const step = await transformStep(store, ref);
  const run = await startRun(store, { name: `transform ${step.stepId} on read of ${objectId}`, context: { source: 'library', ...context }, options: { transform: ref, objectId } });
  const outcome = await run.attempt(step, decodeForStep(input), params);
  await run.finish(outcome.ok ? 'completed' : 'failed');
  if (!outcome.ok) {
    throw new ProvenantError('STEP_FAILED', `transform ${step.stepId} failed on ${objectId}: ${outcome.error.message}`, {
      hint: `The failed execution ${outcome.executionId} is recorded; see \`provenant show ${outcome.executionId}\`.`,
      context: { stepId: step.stepId, executionId: outcome.executionId, objectId },
    });
  }
  const out = outcome.canonical.encoded;
  return {
    bytes: out.bytes,
    contentType: out.encoding === 'bytes' ? 'application/octet-stream' : 'application/json',
    contentHash: out.hash,
    transformExecutionId: outcome.executionId,
  };
}
