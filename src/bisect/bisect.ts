/**
 * Root-cause bisect: given a predicate that says whether an output is good, find the first
 * checkpoint of a stream whose outputs went bad, then the first bad execution in it — its step, the
 * code version that ran (and when that version first ran), its input, params and output — and, for
 * comparison, the last good execution of the same step.
 *
 * The search is a binary search over the stream's timeline of COMPLETE checkpoints (across the
 * capture runs that processed it: see `streamTimeline`). Probing a checkpoint replays it with the
 * recorded code (state restored from the snapshot before it, recorded reads fed back) and applies
 * the predicate to each record's final output; the checkpoint is bad when one is rejected. It
 * assumes the outputs are **monotone**: good up to some point in the stream and bad after it (a
 * bad deploy, a data source that broke). Then ⌈log2(n + 1)⌉ checkpoint replays find the first bad
 * one among n, and the probe of that checkpoint (stopped at its first bad record) also gives the
 * first bad execution, so nothing more is replayed. Outputs that go bad and good again in places
 * may make it name a later checkpoint than the first bad one.
 *
 * Inside the first bad record, the predicate is applied to each step's output in path order; the
 * first execution whose output it rejects is the first bad execution (a predicate that throws on an
 * intermediate output it cannot judge counts that output as good; one that throws on a final
 * output counts it as bad).
 */
import { ProvenantError } from '../errors.js';
import { decodeValue, type ContentHash, type JsonValue } from '../hash/canonical.js';
import { streamTimeline, findCheckpoint, type CheckpointRange } from '../checkpoint/chain.js';
import { readRecordedPipeline } from '../checkpoint/recorded-pipeline.js';
import type { CheckpointRecord, ExecutionContext } from '../store/records.js';
import type { Store } from '../store/store.js';
import type { RecordSource } from '../sources/source.js';
import { ReplaySession, type ReplayedStep } from '../replay/range.js';
import type { OutputPredicate, PredicateInfo } from '../replay/predicate.js';
import { isThenable } from '../step/call.js';

/** Options of {@link bisect}. */
export interface BisectOptions {
  readonly streamId: string;
  /** Says whether an output is good: `(output, record, info) => boolean` (see `replay/predicate.ts`). */
  readonly good: OutputPredicate;
  /** First checkpoint to search (id or unique prefix). Default: the timeline's first. */
  readonly from?: string;
  /** Last checkpoint to search, inclusive. Default: the timeline's last. */
  readonly to?: string;
  /** Search only this run's chain of checkpoints. Default: the stream's timeline across runs. */
  readonly runId?: string;
  /** Read records from this source instead of each run's recorded one. */
  readonly source?: RecordSource;
  readonly context?: ExecutionContext;
  /** Called after each checkpoint replay. */
  readonly onProbe?: (probe: BisectProbe, replays: number, maxReplays: number) => void;
}

/** One checkpoint replay of the search. */
export interface BisectProbe {
  /** Position of the checkpoint in the searched timeline. */
  readonly index: number;
  readonly checkpointId: string;
  readonly runId: string;
  readonly startOffset: number;
  readonly endOffset: number;
  readonly good: boolean;
  /** Records replayed (a bad checkpoint's replay stops at its first bad record). */
  readonly records: number;
  readonly firstBadOffset: number | null;
  /** Executions whose replay did not reproduce the recorded output (judged as replayed). */
  readonly diverged: number;
}

/** A checkpoint, briefly, with the code it ran. */
export interface BisectCheckpoint {
  readonly checkpointId: string;
  readonly runId: string;
  readonly startOffset: number;
  readonly endOffset: number;
  /** Step id → code version hash the checkpoint recorded. */
  readonly versions: Readonly<Record<string, ContentHash>>;
}

/** An execution, with what a person needs to see why it is good or bad. */
export interface BisectExecution {
  /** The recorded execution (`provenant show` it), or null. */
  readonly executionId: string | null;
  readonly checkpointId: string;
  readonly runId: string;
  readonly offset: number;
  readonly stepId: string;
  readonly versionHash: ContentHash;
  /** When this version first ran, and the module it was built from. */
  readonly version: { readonly firstSeenUs: number; readonly firstRunId: string | null; readonly module: string; readonly export: string } | null;
  readonly input: unknown;
  readonly params: unknown;
  /** Its output (replayed, or recorded for an execution read from the store), or null when it failed. */
  readonly output: unknown;
  readonly error: string | null;
  readonly outputHash: ContentHash | null;
}

/** What bisect found. */
export interface BisectResult {
  readonly streamId: string;
  /** Checkpoints searched. */
  readonly checkpoints: number;
  /** Checkpoints replayed to find the answer. */
  readonly checkpointReplays: number;
  /** ⌈log2(checkpoints + 1)⌉: the most replays the search can need. */
  readonly maxCheckpointReplays: number;
  readonly probes: readonly BisectProbe[];
  /** The first checkpoint with a bad output, or null when every output is good. */
  readonly firstBadCheckpoint: BisectCheckpoint | null;
  /** The checkpoint before it in the timeline (good, by the monotone assumption), or null. */
  readonly lastGoodCheckpoint: BisectCheckpoint | null;
  /** The first record whose final output the predicate rejects: its offset, the source record and that output. */
  readonly firstBadRecord: { readonly offset: number; readonly record: unknown; readonly output: unknown } | null;
  readonly firstBadExecution: BisectExecution | null;
  /** The last execution of the same step in a good record before it. */
  readonly lastGoodExecution: BisectExecution | null;
  /** True when the last good execution ran another code version than the first bad one. */
  readonly versionChanged: boolean;
  /**
   * When the first bad checkpoint ran another version of the first bad execution's step than the
   * last good checkpoint did: that change (the version responsible is `to`). Null otherwise.
   */
  readonly versionIntroduced: { readonly stepId: string; readonly from: ContentHash | null; readonly to: ContentHash } | null;
  readonly assumption: string;
  readonly durationMs: number;
}

/** What a probe learned, kept for the answer. */
interface ProbeResult {
  readonly probe: BisectProbe;
  readonly firstBad?: { readonly events: readonly ReplayedStep[]; readonly bad: ReplayedStep; readonly record: unknown; readonly output: unknown };
  /** Per step, the last execution in a good record (and that record). */
  readonly lastGoodByStep: Map<string, ReplayedStep>;
}

const ASSUMPTION = 'outputs are good up to a point in the stream and bad after it (monotone); the first bad checkpoint is found by binary search';

/**
 * Find the first checkpoint (and execution) whose output a predicate rejects.
 * @example
 * const r = await bisect(store, { streamId: 'flights', good: (out) => (out as { delayMinutes: number }).delayMinutes >= 0 });
 * console.log(r.firstBadExecution?.stepId, r.firstBadExecution?.versionHash, r.checkpointReplays);
 * @throws ProvenantError NOT_FOUND (stream or checkpoint), CHECKPOINT_INVALID (a range in the wrong
 * order, or a checkpoint that is not in the stream's timeline)
 */
export async function bisect(store: Store, options: BisectOptions): Promise<BisectResult> {
  const started = Date.now();
  const { streamId } = options;
  let timeline = await streamTimeline(store, streamId, options.runId === undefined ? {} : { runId: options.runId });
  const indexOf = async (ref: string, which: string): Promise<number> => {
    const cp = await findCheckpoint(store, ref, { streamId, ...(options.runId === undefined ? {} : { runId: options.runId }) });
    const i = timeline.findIndex((c) => c.checkpointId === cp.checkpointId);
    if (i < 0) {
      throw new ProvenantError('CHECKPOINT_INVALID', `${which} checkpoint ${cp.checkpointId} is not in stream ${streamId}'s timeline (it is not COMPLETE, or a later run processed its offsets again)`, {
        hint: `List the checkpoints with \`provenant checkpoints --stream ${streamId}\`.`,
        context: { checkpointId: cp.checkpointId, streamId },
      });
    }
    return i;
  };
  const start = options.from === undefined ? 0 : await indexOf(options.from, '--from');
  const stop = options.to === undefined ? timeline.length - 1 : await indexOf(options.to, '--to');
  if (stop < start) {
    throw new ProvenantError('CHECKPOINT_INVALID', `the range is in the wrong order: ${timeline[stop]?.checkpointId} comes before ${timeline[start]?.checkpointId}`, {
      hint: 'Give --from the earlier checkpoint and --to the later one.',
      context: { from: timeline[start]?.checkpointId, to: timeline[stop]?.checkpointId },
    });
  }
  timeline = timeline.slice(start, stop + 1);
  const n = timeline.length;
  const maxReplays = Math.ceil(Math.log2(n + 1));
  const probes = new Map<number, ProbeResult>();
  const order: BisectProbe[] = [];

  const probe = async (index: number): Promise<ProbeResult> => {
    const result = await probeCheckpoint(store, timeline[index] as CheckpointRecord, index, options);
    probes.set(index, result);
    order.push(result.probe);
    options.onProbe?.(result.probe, order.length, maxReplays);
    return result;
  };

  // The first bad index in [0, n], n meaning "none": ⌈log2(n + 1)⌉ probes at most.
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((await probe(mid)).probe.good) lo = mid + 1;
    else hi = mid;
  }

  const summary = async (cp: CheckpointRecord | undefined): Promise<BisectCheckpoint | null> => {
    if (cp === undefined) return null;
    const pipeline = await readRecordedPipeline(store, cp.pipelineHash);
    return {
      checkpointId: cp.checkpointId,
      runId: cp.runId,
      startOffset: cp.startOffset,
      endOffset: cp.end?.endOffset ?? cp.startOffset,
      versions: Object.fromEntries(pipeline.steps.map((s) => [s.id, s.versionHash])),
    };
  };
  const bad = lo < n ? probes.get(lo) : undefined;
  let firstBadExecution: BisectExecution | null = null;
  let lastGoodExecution: BisectExecution | null = null;
  if (bad?.firstBad !== undefined) {
    const ev = bad.firstBad.bad;
    firstBadExecution = await fromEvent(store, ev);
    const goodEv = bad.lastGoodByStep.get(ev.stepId) ?? (lo > 0 ? probes.get(lo - 1)?.lastGoodByStep.get(ev.stepId) : undefined);
    if (goodEv !== undefined) lastGoodExecution = await fromEvent(store, goodEv);
    else if (lo > 0) lastGoodExecution = await lastRecordedExecution(store, timeline[lo - 1] as CheckpointRecord, ev.stepId);
  }
  const firstBadCheckpoint = bad === undefined ? null : await summary(timeline[lo]);
  const lastGoodCheckpoint = bad === undefined ? null : await summary(timeline[lo - 1]);
  let versionIntroduced: BisectResult['versionIntroduced'] = null;
  if (firstBadExecution !== null && firstBadCheckpoint !== null && lastGoodCheckpoint !== null) {
    const stepId = firstBadExecution.stepId;
    const before = lastGoodCheckpoint.versions[stepId] ?? null;
    if (before !== firstBadExecution.versionHash) versionIntroduced = { stepId, from: before, to: firstBadExecution.versionHash };
  }
  return {
    streamId,
    checkpoints: n,
    checkpointReplays: order.length,
    maxCheckpointReplays: maxReplays,
    probes: order,
    firstBadCheckpoint,
    lastGoodCheckpoint,
    firstBadRecord: bad?.firstBad === undefined ? null : { offset: bad.firstBad.bad.offset, record: bad.firstBad.record, output: bad.firstBad.output ?? null },
    firstBadExecution,
    lastGoodExecution,
    versionChanged: firstBadExecution !== null && lastGoodExecution !== null && firstBadExecution.versionHash !== lastGoodExecution.versionHash,
    versionIntroduced,
    assumption: ASSUMPTION,
    durationMs: Date.now() - started,
  };
}

/** Apply the predicate; `undefined` when it threw. */
async function judge(good: OutputPredicate, output: unknown, record: unknown, info: PredicateInfo): Promise<boolean | undefined> {
  try {
    const r = good(output, record, info);
    return Boolean(isThenable(r) ? await r : r);
  } catch {
    return undefined;
  }
}

function infoOf(ev: ReplayedStep, final: boolean): PredicateInfo {
  return {
    offset: ev.offset,
    stepId: ev.stepId,
    versionHash: ev.versionHash,
    checkpointId: ev.checkpoint.checkpointId,
    final,
    ...(ev.error === undefined ? {} : { error: ev.error }),
  };
}

function outputOf(ev: ReplayedStep): unknown {
  return ev.ran && ev.error === undefined ? ev.outputValue : undefined;
}

/** Replay one checkpoint with the recorded code, judging each record's final output; stop at the first bad one. */
async function probeCheckpoint(store: Store, cp: CheckpointRecord, index: number, options: BisectOptions): Promise<ProbeResult> {
  const before = cp.previousId === null ? null : ((await store.getCheckpoint(cp.previousId)) ?? null);
  const range: CheckpointRange = { runId: cp.runId, streamId: cp.streamId, checkpoints: [cp], before };
  const session = new ReplaySession(store, {
    streamId: cp.streamId,
    range,
    ...(options.source === undefined ? {} : { source: options.source }),
    ...(options.context === undefined ? {} : { context: options.context }),
  });
  const lastGoodByStep = new Map<string, ReplayedStep>();
  let events: ReplayedStep[] = [];
  let offset = -1;
  let record: unknown;
  let records = 0;
  let firstBad: ProbeResult['firstBad'];

  /** Judge the record whose events are collected; true when it is bad (and firstBad is set). */
  const judgeRecord = async (): Promise<boolean> => {
    const final = events[events.length - 1];
    if (final === undefined) return false;
    records++;
    const output = outputOf(final);
    const ok = await judge(options.good, output, record, infoOf(final, true));
    if (ok === true) {
      for (const ev of events) lastGoodByStep.set(ev.stepId, ev);
      events = [];
      return false;
    }
    // The first execution of the path whose output the predicate rejects.
    let culprit = final;
    for (const ev of events) {
      if (ev === final) break;
      if ((await judge(options.good, outputOf(ev), record, infoOf(ev, false))) === false) {
        culprit = ev;
        break;
      }
    }
    firstBad = { events, bad: culprit, record, output };
    return true;
  };

  for await (const ev of session) {
    if (ev.offset !== offset) {
      if (events.length > 0 && (await judgeRecord())) break;
      events = [];
      offset = ev.offset;
    }
    if (ev.position === 0) record = ev.inputValue;
    events.push(ev);
    if (ev.last) {
      if (await judgeRecord()) break;
      events = [];
    }
  }
  if (firstBad === undefined && events.length > 0) await judgeRecord();
  const fb = firstBad as ProbeResult['firstBad'];
  return {
    probe: {
      index,
      checkpointId: cp.checkpointId,
      runId: cp.runId,
      startOffset: cp.startOffset,
      endOffset: cp.end?.endOffset ?? cp.startOffset,
      good: fb === undefined,
      records,
      firstBadOffset: fb?.bad.offset ?? null,
      diverged: session.stats.diverged,
    },
    ...(fb === undefined ? {} : { firstBad: fb }),
    lastGoodByStep,
  };
}

async function versionInfo(store: Store, stepId: string, versionHash: ContentHash): Promise<BisectExecution['version']> {
  const v = await store.getStepVersion(stepId, versionHash);
  return v === undefined ? null : { firstSeenUs: v.firstSeenUs, firstRunId: v.firstRunId, module: v.manifest.module, export: v.manifest.export };
}

async function fromEvent(store: Store, ev: ReplayedStep): Promise<BisectExecution> {
  const output = outputOf(ev);
  return {
    executionId: ev.recorded?.id ?? null,
    checkpointId: ev.checkpoint.checkpointId,
    runId: ev.checkpoint.runId,
    offset: ev.offset,
    stepId: ev.stepId,
    versionHash: ev.versionHash,
    version: await versionInfo(store, ev.stepId, ev.versionHash),
    input: ev.inputValue ?? null,
    params: ev.params ?? null,
    output: output === undefined ? null : output,
    error: ev.error ?? (ev.ran ? null : ev.detail),
    outputHash: ev.output?.hash ?? null,
  };
}

/** The last successful recorded execution of a step in a checkpoint, read from the store. */
async function lastRecordedExecution(store: Store, cp: CheckpointRecord, stepId: string): Promise<BisectExecution | null> {
  const end = cp.end;
  if (end === null || end.firstExecutionId === null || end.lastExecutionId === null) return null;
  const sketches = await store.listExecutionSketches(cp.runId, end.firstExecutionId, end.lastExecutionId);
  for (let i = sketches.length - 1; i >= 0; i--) {
    const s = sketches[i];
    if (s === undefined || s.functionId !== stepId || s.status !== 'ok') continue;
    const e = await store.getExecution(s.id);
    if (e === undefined) return null;
    const value = async (hash: ContentHash | null, encoding: 'json' | 'bytes'): Promise<unknown> => (hash === null ? null : decodeValue(await store.getBlob(hash), encoding));
    return {
      executionId: e.id,
      checkpointId: cp.checkpointId,
      runId: cp.runId,
      offset: e.offset ?? -1,
      stepId,
      versionHash: e.functionVersionHash,
      version: await versionInfo(store, stepId, e.functionVersionHash),
      input: await value(e.inputHashes[0] ?? null, e.inputEncodings[0] ?? 'json'),
      params: (await value(e.paramsHash, 'json')) as JsonValue,
      output: await value(e.outputHash, e.outputEncoding),
      error: null,
      outputHash: e.outputHash,
    };
  }
  return null;
}
