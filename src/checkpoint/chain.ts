/**
 * Finding checkpoints: a run's chain, a checkpoint by id or prefix, and ranges `[from, to]` for
 * replay. A run's checkpoints form a chain through `previousId`. When a crashed run is resumed,
 * the checkpoint it left IN_PROGRESS is ended FAILED (abandoned, with no executions) and the
 * resumed one follows the last COMPLETE checkpoint instead: the chain takes, after each
 * checkpoint, the latest one opened after it.
 */
import { ProvenantError } from '../errors.js';
import { nowUs } from '../ids.js';
import type { CheckpointQuery, CheckpointRecord } from '../store/records.js';
import type { Store } from '../store/store.js';

/** Every checkpoint matching a query, in the order they were opened (paged through the store). */
export async function allCheckpoints(store: Store, query: Omit<CheckpointQuery, 'afterId' | 'limit'>): Promise<CheckpointRecord[]> {
  const out: CheckpointRecord[] = [];
  let afterId: string | undefined;
  for (;;) {
    const page = await store.listCheckpoints({ ...query, limit: 1000, ...(afterId === undefined ? {} : { afterId }) });
    out.push(...page);
    if (page.length < 1000) return out;
    afterId = page[page.length - 1]?.checkpointId;
  }
}

/** A run's checkpoints in chain order (abandoned attempts left out). */
export async function runChain(store: Store, runId: string): Promise<CheckpointRecord[]> {
  return chainOf(await allCheckpoints(store, { runId }));
}

/**
 * Chain order of one run's checkpoints (given in the order they were opened). The chain starts at
 * a checkpoint with no previous one, or whose previous one is another run's (a run that continues
 * another's state, as a worker's segment does).
 */
export function chainOf(checkpoints: readonly CheckpointRecord[]): CheckpointRecord[] {
  const ids = new Set(checkpoints.map((c) => c.checkpointId));
  const next = new Map<string | null, CheckpointRecord>();
  // The latest opened after each wins.
  for (const c of checkpoints) next.set(c.previousId !== null && ids.has(c.previousId) ? c.previousId : null, c);
  const chain: CheckpointRecord[] = [];
  const seen = new Set<string>();
  for (let c = next.get(null); c !== undefined && !seen.has(c.checkpointId); c = next.get(c.checkpointId)) {
    seen.add(c.checkpointId);
    chain.push(c);
  }
  return chain;
}

/**
 * A checkpoint by its id or a unique prefix of it (at least 8 characters), among a stream's or
 * run's checkpoints.
 * @throws ProvenantError NOT_FOUND (naming the stream), CHECKPOINT_INVALID for an ambiguous prefix
 */
export async function findCheckpoint(store: Store, ref: string, scope: { streamId?: string; runId?: string } = {}): Promise<CheckpointRecord> {
  const exact = await store.getCheckpoint(ref);
  const where = scope.streamId !== undefined ? `stream ${scope.streamId}` : scope.runId !== undefined ? `run ${scope.runId}` : store.location;
  const inScope = (c: CheckpointRecord): boolean =>
    (scope.streamId === undefined || c.streamId === scope.streamId) && (scope.runId === undefined || c.runId === scope.runId);
  if (exact !== undefined) {
    if (!inScope(exact)) {
      throw new ProvenantError('NOT_FOUND', `checkpoint ${ref} is not a checkpoint of ${where} (it belongs to stream ${exact.streamId}, run ${exact.runId})`, {
        context: { checkpointId: ref, ...scope },
      });
    }
    return exact;
  }
  const notFound = (): never => {
    throw new ProvenantError('NOT_FOUND', `no checkpoint ${ref} in ${where}`, {
      hint: `List them with \`provenant checkpoints${scope.streamId === undefined ? '' : ` --stream ${scope.streamId}`}\`.`,
      context: { checkpointId: ref, ...scope },
    });
  };
  if (ref.length < 8 || !/^[0-9a-f-]+$/.test(ref)) return notFound();
  const matches = (await allCheckpoints(store, scope)).filter((c) => c.checkpointId.startsWith(ref));
  if (matches.length === 0) return notFound();
  if (matches.length > 1) {
    throw new ProvenantError('CHECKPOINT_INVALID', `checkpoint prefix ${ref} matches ${matches.length} checkpoints in ${where}`, {
      hint: 'Give more characters of the checkpoint id.',
      context: { checkpointId: ref, matches: matches.slice(0, 5).map((c) => c.checkpointId) },
    });
  }
  return matches[0] as CheckpointRecord;
}

/** What {@link checkpointRange} resolved. */
export interface CheckpointRange {
  readonly runId: string;
  readonly streamId: string;
  /** The checkpoints from `from` to `to`, inclusive, in chain order. */
  readonly checkpoints: readonly CheckpointRecord[];
  /** The checkpoint before `from` in the chain (whose state snapshot `from` starts from), or null. */
  readonly before: CheckpointRecord | null;
}

/**
 * The checkpoints of one run's chain from `from` to `to` (inclusive). `from` defaults to the
 * chain's first checkpoint, `to` to its last ended one; the run defaults to `from`'s, else the
 * latest run over the stream.
 * @throws ProvenantError NOT_FOUND (unknown stream, run or checkpoint), CHECKPOINT_INVALID (range
 * in the wrong order, across runs, or reaching a checkpoint that has not ended)
 */
export async function checkpointRange(
  store: Store,
  options: { streamId: string; from?: string; to?: string; runId?: string },
): Promise<CheckpointRange> {
  const { streamId } = options;
  const scope = { streamId, ...(options.runId === undefined ? {} : { runId: options.runId }) };
  const from = options.from === undefined ? undefined : await findCheckpoint(store, options.from, scope);
  const to = options.to === undefined ? undefined : await findCheckpoint(store, options.to, scope);
  let runId = options.runId ?? from?.runId ?? to?.runId;
  if (runId === undefined) {
    const all = await allCheckpoints(store, { streamId });
    if (all.length === 0) {
      throw new ProvenantError('NOT_FOUND', `stream ${streamId} has no checkpoints in ${store.location}`, {
        hint: 'Run a pipeline over it first (`provenant run <pipeline> --stream <id>`); `provenant checkpoints --stream <id>` lists them.',
        context: { streamId },
      });
    }
    runId = (all[all.length - 1] as CheckpointRecord).runId;
  }
  if (from !== undefined && to !== undefined && from.runId !== to.runId) {
    throw new ProvenantError('CHECKPOINT_INVALID', `checkpoints ${from.checkpointId} and ${to.checkpointId} belong to different runs (${from.runId}, ${to.runId})`, {
      hint: 'A range is replayed within one run\'s chain of checkpoints; pick both ends from the same run.',
      context: { from: from.checkpointId, to: to.checkpointId },
    });
  }
  const chain = await runChain(store, runId);
  const indexOf = (c: CheckpointRecord): number => {
    const i = chain.findIndex((x) => x.checkpointId === c.checkpointId);
    if (i < 0) {
      throw new ProvenantError('CHECKPOINT_INVALID', `checkpoint ${c.checkpointId} was abandoned by a crash (its run resumed from an earlier one) and is not in the run's chain`, {
        hint: `List the run's checkpoints with \`provenant checkpoints --run ${runId}\`.`,
        context: { checkpointId: c.checkpointId, runId },
      });
    }
    return i;
  };
  const ended = chain.filter((c) => c.end !== null);
  if (ended.length === 0) {
    throw new ProvenantError('NOT_FOUND', `run ${runId} has no ended checkpoint over stream ${streamId} yet`, { context: { runId, streamId } });
  }
  const start = from === undefined ? 0 : indexOf(from);
  const stop = to === undefined ? indexOf(ended[ended.length - 1] as CheckpointRecord) : indexOf(to);
  if (stop < start) {
    throw new ProvenantError('CHECKPOINT_INVALID', `the range is in the wrong order: ${chain[stop]?.checkpointId} comes before ${chain[start]?.checkpointId}`, {
      hint: 'Give --from the earlier checkpoint and --to the later one.',
      context: { from: chain[start]?.checkpointId, to: chain[stop]?.checkpointId },
    });
  }
  const checkpoints = chain.slice(start, stop + 1);
  const open = checkpoints.find((c) => c.end === null);
  if (open !== undefined) {
    throw new ProvenantError('CHECKPOINT_INVALID', `checkpoint ${open.checkpointId} is still IN_PROGRESS; only ended checkpoints can be replayed`, {
      hint: 'Replay up to the last COMPLETE checkpoint, or resume the run first.',
      context: { checkpointId: open.checkpointId },
    });
  }
  // Before the run's first checkpoint: the other run's checkpoint it continued from, if any.
  return { runId, streamId, checkpoints, before: start === 0 ? await continuedFrom(store, chain) : (chain[start - 1] as CheckpointRecord) };
}

/** The ended checkpoint of another run that a run's chain continues (its first checkpoint's previous one), or null. */
export async function continuedFrom(store: Store, chain: readonly CheckpointRecord[]): Promise<CheckpointRecord | null> {
  const previousId = chain[0]?.previousId ?? null;
  if (previousId === null) return null;
  const c = await store.getCheckpoint(previousId);
  return c === undefined || c.end === null ? null : c;
}

/**
 * A stream's history as its COMPLETE checkpoints in offset order, across the capture runs that
 * processed it: a pipeline run over the first part of a stream and a later run (say, with new code)
 * over the rest make one timeline. Where runs processed the same offsets, the later run's
 * checkpoints stand and the earlier ones they overlap are left out. With `runId`, one run's chain.
 * @throws ProvenantError NOT_FOUND when the stream (or run) has no COMPLETE checkpoint
 */
export async function streamTimeline(store: Store, streamId: string, options: { runId?: string } = {}): Promise<CheckpointRecord[]> {
  const all = await allCheckpoints(store, { streamId, ...(options.runId === undefined ? {} : { runId: options.runId }) });
  const byRun = new Map<string, CheckpointRecord[]>();
  for (const c of all) {
    let list = byRun.get(c.runId);
    if (list === undefined) byRun.set(c.runId, (list = []));
    list.push(c);
  }
  let timeline: CheckpointRecord[] = [];
  // Run ids are UUIDv7: their order is the order the runs started.
  for (const runId of [...byRun.keys()].sort()) {
    const chain = chainOf(byRun.get(runId) as CheckpointRecord[]).filter((c) => c.status === 'COMPLETE' && c.end !== null && c.end.records > 0);
    if (chain.length === 0) continue;
    const start = Math.min(...chain.map((c) => c.startOffset));
    const end = Math.max(...chain.map((c) => (c.end as NonNullable<CheckpointRecord['end']>).endOffset));
    timeline = timeline.filter((c) => (c.end as NonNullable<CheckpointRecord['end']>).endOffset <= start || c.startOffset >= end);
    timeline.push(...chain);
  }
  if (timeline.length === 0) {
    throw new ProvenantError('NOT_FOUND', `${options.runId === undefined ? `stream ${streamId}` : `run ${options.runId} over stream ${streamId}`} has no COMPLETE checkpoints in ${store.location}`, {
      hint: 'Run a pipeline over it first (`provenant run <pipeline> --stream <id>`); `provenant checkpoints --stream <id>` lists them.',
      context: { streamId, ...(options.runId === undefined ? {} : { runId: options.runId }) },
    });
  }
  return timeline.sort((a, b) => a.startOffset - b.startOffset);
}

/**
 * End a checkpoint that a stopped process left IN_PROGRESS: FAILED, with no executions (none of
 * them committed), and `abandoned: <why>` as its reason — what {@link isAbandoned} recognizes.
 */
export async function endAbandoned(store: Store, checkpoint: CheckpointRecord, why: string): Promise<void> {
  await store.applyCheckpoint({
    end: {
      checkpointId: checkpoint.checkpointId,
      status: 'FAILED',
      endOffset: checkpoint.startOffset,
      endedUs: nowUs(),
      records: 0,
      executions: 0,
      failed: 0,
      deadLettered: 0,
      firstExecutionId: null,
      lastExecutionId: null,
      stateHash: null,
      sinkPosition: null,
      inputSliceHash: null,
      reason: `abandoned: ${why}`,
    },
  });
}

/** Whether a checkpoint was ended by {@link endAbandoned}: an attempt cut off, not a failure. */
export function isAbandoned(c: CheckpointRecord): boolean {
  return c.status === 'FAILED' && c.end?.executions === 0 && (c.end.reason ?? '').startsWith('abandoned:');
}
