/**
 * What-if replay: replay a range of checkpoints with other code (a module file, or another recorded
 * version) or other params for chosen steps, and report what would have changed. The steps after a
 * substituted one receive its new outputs, stateful steps' state follows them, and every recorded
 * execution's clock reads, random draws and fetches are fed back (code that asks for other reads
 * than were recorded fails, with the reason).
 *
 * The report counts, per step, executions unchanged, changed, newly failing and fixed (failed at
 * capture, succeeds now) — and, when the new path of a record is longer or shorter than the
 * recorded one, executions added and no longer reached; per record, the RFC 6902 patch from the
 * recorded final output to the new one.
 *
 * A what-if is a run of its own (kind `whatif`), linked to the run and range it replayed, with its
 * label and substitutions in its options, every execution whose outcome changed recorded in it, and
 * the full report stored as a value (`summary.reportHash`), so that two what-ifs can be compared
 * later. Recorded history is never changed.
 */
import { ProvenantError, errorMessage } from '../errors.js';
import { decodeValue, encodeValue, type ContentHash, type JsonValue } from '../hash/canonical.js';
import { newId, nowUs } from '../ids.js';
import { environmentFingerprint } from '../capture/run.js';
import type { CheckpointRecord, ExecutionContext, ExecutionSketch } from '../store/records.js';
import type { Store } from '../store/store.js';
import type { RecordSource } from '../sources/source.js';
import { ReplaySession, type ReplayedStep, type ReplayProgress, type StepSubstitution } from '../replay/range.js';
import { diffJson, valueAt, type JsonPatchOperation } from '../replay/json-patch.js';

/** Options of {@link whatIf}. */
export interface WhatIfOptions {
  readonly streamId: string;
  /** First checkpoint (id or unique prefix). Default: the run's first. */
  readonly from?: string;
  /** Last checkpoint, inclusive. Default: the run's last ended one. */
  readonly to?: string;
  /** The run whose checkpoints to replay. Default: `from`'s run, else the latest run over the stream. */
  readonly runId?: string;
  /** Other code and/or params, by step id (at least one). */
  readonly substitutions: Readonly<Record<string, StepSubstitution>>;
  /** A name for this what-if (shown in listings; recorded with the run). */
  readonly label?: string;
  /** Read records from this source instead of the run's recorded one. */
  readonly source?: RecordSource;
  readonly context?: ExecutionContext;
  readonly onProgress?: (progress: ReplayProgress) => void;
  readonly progressEvery?: number;
  /** Keep at most this many per-record diffs in the result (all are counted). Default: 100,000. */
  readonly maxRecordDiffs?: number;
}

/** Per step: what the substitutions did to its executions. */
export interface WhatIfStepCounts {
  readonly stepId: string;
  /** The version that ran in the what-if (the substituted one, or the recorded one). */
  readonly versionHash: ContentHash;
  /** The version the capture ran (the last one seen in the range). */
  readonly recordedVersionHash: ContentHash | null;
  readonly substituted: boolean;
  /** Executions that ran in the what-if. */
  readonly executions: number;
  /** Same output hash as recorded (or the same failure). */
  readonly unchanged: number;
  /** Another output (or another error) than recorded. */
  readonly changed: number;
  /** Succeeded at capture, fails now (or cannot run). */
  readonly newlyFailing: number;
  /** Failed at capture, succeeds now. */
  readonly fixed: number;
  /** Ran now where the capture recorded no execution (the record's path goes further). */
  readonly added: number;
  /** Recorded, but no longer reached (the record's path ends earlier now). */
  readonly notReached: number;
}

/** How a record's final outcome compares with the recorded one. */
export type WhatIfRecordOutcome = 'unchanged' | 'changed' | 'newly-failing' | 'fixed';

/** One record whose final outcome changed. */
export interface WhatIfRecordDiff {
  readonly offset: number;
  readonly checkpointId: string;
  readonly outcome: Exclude<WhatIfRecordOutcome, 'unchanged'>;
  /** The first step of the record's path whose outcome changed. */
  readonly firstChangedStep: string | null;
  readonly recordedOutputHash: ContentHash | null;
  readonly newOutputHash: ContentHash | null;
  readonly recordedError: string | null;
  readonly newError: string | null;
  /** RFC 6902 operations from the recorded final output to the new one (empty when either failed). */
  readonly patch: readonly JsonPatchOperation[];
  /** The recorded values at the paths the patch replaces or removes, by path (what they were). */
  readonly was: Readonly<Record<string, unknown>>;
}

/** The result of a what-if: the report. */
export interface WhatIfResult {
  /** The what-if's own run (kind `whatif`). */
  readonly whatIfRunId: string;
  readonly label: string | null;
  /** The run replayed. */
  readonly runId: string;
  readonly streamId: string;
  readonly from: string;
  readonly to: string;
  /** What was substituted: per step the version that ran and the params set. */
  readonly substitutions: Readonly<Record<string, { readonly versionHash: ContentHash | null; readonly module: string | null; readonly params: JsonValue | null }>>;
  readonly checkpoints: number;
  readonly records: number;
  readonly executions: number;
  /** Records by final outcome. */
  readonly recordOutcomes: { readonly unchanged: number; readonly changed: number; readonly newlyFailing: number; readonly fixed: number };
  readonly steps: readonly WhatIfStepCounts[];
  /** Per record whose outcome changed, in offset order (at most `maxRecordDiffs`). */
  readonly diffs: readonly WhatIfRecordDiff[];
  /** True when more records changed than `diffs` holds. */
  readonly diffsTruncated: boolean;
  /** Executions of the what-if run: every one whose outcome changed. */
  readonly recordedExecutions: number;
  /** The full report (this result) stored as a value in the store, or null if it could not be. */
  readonly reportHash: ContentHash | null;
  readonly durationMs: number;
}

interface MutableCounts {
  stepId: string;
  versionHash: ContentHash;
  recordedVersionHash: ContentHash | null;
  substituted: boolean;
  executions: number;
  unchanged: number;
  changed: number;
  newlyFailing: number;
  fixed: number;
  added: number;
  notReached: number;
}

/**
 * Replay a range with substituted code or params and report what changes.
 * @example
 * const r = await whatIf(store, { streamId: 'flights', substitutions: { normalize: { code: { module: './steps/normalize-v3.ts' } } } });
 * console.log(r.recordOutcomes.changed, r.diffs[0]?.patch);
 * @throws ProvenantError INPUT_INVALID (no substitution, or a step the range does not run), NOT_FOUND /
 * CHECKPOINT_INVALID (stream, checkpoints), STEP_NOT_FOUND / STEP_BUILD_FAILED (substituted code) —
 * nothing is recorded then
 */
export async function whatIf(store: Store, options: WhatIfOptions): Promise<WhatIfResult> {
  if (Object.keys(options.substitutions).length === 0) {
    throw new ProvenantError('INPUT_INVALID', 'a what-if needs at least one substitution (other code or params for a step)', {
      hint: 'Give --replace <stepId>=<module.ts|versionHash> or --param <stepId>.<name>=<json>.',
    });
  }
  const started = Date.now();
  const whatIfRunId = newId();
  const session = new ReplaySession(
    store,
    {
      streamId: options.streamId,
      ...(options.from === undefined ? {} : { from: options.from }),
      ...(options.to === undefined ? {} : { to: options.to }),
      ...(options.runId === undefined ? {} : { runId: options.runId }),
      ...(options.source === undefined ? {} : { source: options.source }),
      ...(options.context === undefined ? {} : { context: options.context }),
      ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
      ...(options.progressEvery === undefined ? {} : { progressEvery: options.progressEvery }),
      substitutions: options.substitutions,
    },
    { runId: whatIfRunId, limit: Number.POSITIVE_INFINITY },
  );
  const range = await session.open();
  const capture = await store.getRun(range.runId);
  if (capture === undefined) throw new ProvenantError('NOT_FOUND', `run ${range.runId} is missing from ${store.location}`, { context: { runId: range.runId } });
  const first = range.checkpoints[0] as CheckpointRecord;
  const last = range.checkpoints[range.checkpoints.length - 1] as CheckpointRecord;
  const versions = session.substitutedVersions;
  const substitutions: Record<string, { versionHash: ContentHash | null; module: string | null; params: JsonValue | null }> = {};
  for (const [stepId, sub] of Object.entries(options.substitutions)) {
    substitutions[stepId] = {
      versionHash: versions[stepId] ?? null,
      module: sub.code !== undefined && 'module' in sub.code ? sub.code.module : null,
      params: sub.params === undefined ? null : (sub.params as JsonValue),
    };
  }
  const label = options.label ?? null;
  const context: ExecutionContext = { source: 'library', ...(options.context ?? {}) };
  await store.createRun({
    id: whatIfRunId,
    kind: 'whatif',
    name: `what-if of ${capture.name}${label === null ? '' : `: ${label}`}`,
    startedUs: nowUs(),
    environment: environmentFingerprint(process.cwd()),
    failurePolicy: 'dead-letter',
    context,
    options: { replayOf: range.runId, streamId: range.streamId, from: first.checkpointId, to: last.checkpointId, substitutions, label },
  });

  const maxDiffs = options.maxRecordDiffs ?? 100_000;
  const steps = new Map<string, MutableCounts>();
  const outcomes = { unchanged: 0, changed: 0, newlyFailing: 0, fixed: 0 };
  const diffs: WhatIfRecordDiff[] = [];
  let changedRecords = 0;
  let recordedExecutions = 0;
  // The current record: its last recorded execution, its last replayed one, the first step that changed.
  let offset = -1;
  let lastRecorded: ExecutionSketch | null = null;
  let lastRan: ReplayedStep | null = null;
  let lastEvent: ReplayedStep | null = null;
  let firstChanged: string | null = null;

  /** Judge the finished record; a promise only when its diff must be computed (reads the recorded output). */
  const finishRecord = (): Promise<void> | undefined => {
    const ev = lastEvent;
    if (ev === null) return undefined;
    const rec = lastRecorded;
    const ran = lastRan;
    const changedAt = firstChanged;
    lastRecorded = null;
    lastRan = null;
    lastEvent = null;
    firstChanged = null;
    const recOk = rec !== null && rec.status === 'ok';
    const newOk = ran !== null && ran.output !== undefined && ran.error === undefined;
    const recHash = recOk ? rec.outputHash : null;
    const newHash = newOk ? (ran.output?.hash ?? null) : null;
    let outcome: WhatIfRecordOutcome;
    if (recOk && newOk) outcome = recHash === newHash ? 'unchanged' : 'changed';
    else if (recOk) outcome = 'newly-failing';
    else if (newOk) outcome = 'fixed';
    else outcome = 'unchanged';
    if (outcome === 'unchanged') {
      outcomes.unchanged++;
      return undefined;
    }
    if (outcome === 'changed') outcomes.changed++;
    else if (outcome === 'newly-failing') outcomes.newlyFailing++;
    else outcomes.fixed++;
    changedRecords++;
    if (diffs.length >= maxDiffs) return undefined;
    const at = ev.offset;
    const slot = diffs.length;
    diffs.push(undefined as unknown as WhatIfRecordDiff); // keeps offset order; filled below
    return (async () => {
      let patch: JsonPatchOperation[] = [];
      const was: Record<string, unknown> = {};
      if (outcome === 'changed' && rec !== null && ran !== null) {
        const before = decodeValue(await store.getBlob(rec.outputHash as ContentHash), rec.outputEncoding);
        patch = diffJson(before, ran.outputValue);
        for (const op of patch) if (op.op === 'replace' || op.op === 'remove') was[op.path] = valueAt(before, op.path);
      }
      diffs[slot] = {
        offset: at,
        checkpointId: ev.checkpoint.checkpointId,
        outcome,
        firstChangedStep: changedAt,
        recordedOutputHash: recHash,
        newOutputHash: newHash,
        recordedError: rec !== null && !recOk ? await errorOf(store, rec) : null,
        newError: newOk ? null : (ran?.error ?? ev.detail ?? 'did not run'),
        patch,
        was,
      };
    })();
  };

  let status: 'completed' | 'failed' = 'completed';
  try {
    for await (const ev of session) {
      if (ev.offset !== offset) {
        const pending = finishRecord();
        if (pending !== undefined) await pending;
        offset = ev.offset;
      }
      lastEvent = ev;
      if (ev.recorded !== null) lastRecorded = ev.recorded;
      if (ev.ran) lastRan = ev;
      let counts = steps.get(ev.stepId);
      if (counts === undefined) {
        counts = { stepId: ev.stepId, versionHash: ev.versionHash, recordedVersionHash: null, substituted: ev.substituted, executions: 0, unchanged: 0, changed: 0, newlyFailing: 0, fixed: 0, added: 0, notReached: 0 };
        steps.set(ev.stepId, counts);
      }
      if (ev.recorded !== null) counts.recordedVersionHash = ev.recorded.functionVersionHash;
      if (ev.ran) {
        counts.versionHash = ev.versionHash;
        counts.executions++;
      }
      if (ev.replayExecutionId !== null) recordedExecutions++;
      const kind = classify(ev);
      counts[kind]++;
      if (kind !== 'unchanged' && firstChanged === null) firstChanged = ev.stepId;
    }
    await finishRecord();
  } catch (err) {
    status = 'failed';
    await store.endRun({ runId: whatIfRunId, endedUs: nowUs(), status, summary: { error: errorMessage(err) } }).catch(() => undefined);
    throw err;
  }
  const stats = session.stats;
  const base = {
    whatIfRunId,
    label,
    runId: range.runId,
    streamId: range.streamId,
    from: first.checkpointId,
    to: last.checkpointId,
    substitutions,
    checkpoints: range.checkpoints.length,
    records: stats.records,
    executions: stats.executions,
    recordOutcomes: outcomes,
    steps: [...steps.values()],
    diffsTruncated: changedRecords > diffs.length,
    recordedExecutions,
  };
  let reportHash: ContentHash | null = null;
  try {
    const report = encodeValue({ ...base, diffs });
    reportHash = await store.putBlob(report.bytes);
  } catch {
    // An output that is not JSON (bytes inside a patch) cannot be stored in the report value; the result still has it.
  }
  const result: WhatIfResult = { ...base, diffs, reportHash, durationMs: Date.now() - started };
  await store.endRun({ runId: whatIfRunId, endedUs: nowUs(), status, summary: { ...base, reportHash, durationMs: result.durationMs } as unknown as JsonValue });
  return result;
}

/** Which per-step count an execution of a what-if adds to. */
function classify(ev: ReplayedStep): 'unchanged' | 'changed' | 'newlyFailing' | 'fixed' | 'added' | 'notReached' {
  const rec = ev.recorded;
  if (!ev.ran) {
    if (rec === null) return 'newlyFailing';
    return ev.cause === 'input-changed' ? 'notReached' : rec.status === 'ok' ? 'newlyFailing' : 'unchanged';
  }
  if (rec === null) return 'added';
  if (ev.verdict === 'match') return 'unchanged';
  const nowOk = ev.error === undefined && ev.output !== undefined;
  if (rec.status === 'ok') return nowOk ? 'changed' : 'newlyFailing';
  return nowOk ? 'fixed' : 'changed';
}

async function errorOf(store: Store, e: ExecutionSketch): Promise<string | null> {
  if (e.errorHash === null) return null;
  try {
    const v = decodeValue(await store.getBlob(e.errorHash), 'json') as { message?: unknown };
    return typeof v.message === 'string' ? v.message : null;
  } catch {
    return null;
  }
}
