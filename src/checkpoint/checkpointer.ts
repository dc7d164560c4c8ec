/**
 * Temporal checkpoints during a run. A checkpoint covers the offsets `[start, end)` of one stream
 * and ties them to the provenance of what was done there: the exact pipeline (code versions,
 * params), the executions, the state of stateful steps and the sink's position.
 *
 * Protocol (one transaction per checkpoint, on the store's writer):
 *   open:  the first checkpoint is written IN_PROGRESS when the run starts;
 *   close: the sink is made durable and reports its position, the states are snapshot, and then
 *          the checkpoint's end (COMPLETE or FAILED) commits in ONE transaction with all of its
 *          execution records, its values, and the next checkpoint's beginning (IN_PROGRESS).
 * A crash therefore loses at most the open checkpoint, which holds no committed execution; resume
 * ends it FAILED (abandoned) and goes on from the last COMPLETE one.
 */
import { encodeValue, type ContentHash, type EncodedValue, type JsonValue } from '../hash/canonical.js';
import { newId, nowUs } from '../ids.js';
import type { Run } from '../capture/run.js';
import type { CheckpointBegin, CheckpointEnd, ValueWrite } from '../store/records.js';
import type { Sink } from './sink.js';
import { snapshotStates, type StepStates } from './state.js';

/** When a run closes a checkpoint: whichever comes first. */
export interface CheckpointPolicy {
  /** After this many source records. Default: 10,000. */
  readonly everyRecords?: number;
  /** After this many milliseconds since the checkpoint opened (and at least one record). Default: 10,000. */
  readonly intervalMs?: number;
  /** When its executions reach this many (they are held until the checkpoint commits). Default: 50,000. */
  readonly maxExecutions?: number;
}

/** The defaults of {@link CheckpointPolicy}. */
export const DEFAULT_CHECKPOINT_POLICY: Required<CheckpointPolicy> = Object.freeze({ everyRecords: 10_000, intervalMs: 10_000, maxExecutions: 50_000 });

/** What a {@link Checkpointer} needs. */
export interface CheckpointerOptions {
  readonly run: Run;
  readonly streamId: string;
  readonly pipelineHash: ContentHash;
  readonly policy: CheckpointPolicy;
  readonly states: StepStates;
  readonly sink: Sink | undefined;
  /** Keep each checkpoint's input slice (offsets and record hashes) as a value. */
  readonly keepInput: boolean;
  /** Called once each checkpoint is committed (durable). */
  readonly onCheckpoint?: ((end: CheckpointEnd) => void) | undefined;
}

/** Opens, fills and closes the checkpoints of one run attempt. */
export class Checkpointer {
  readonly #o: CheckpointerOptions;
  readonly #every: number;
  readonly #interval: number;
  readonly #maxExecutions: number;
  #id: string;
  #start: number;
  #next: number;
  #openedMs = Date.now();
  #records = 0;
  #slice: JsonValue[] = [];
  #closed = 0;
  #lastEnded: string | null = null;

  /**
   * @param begin the checkpoint already opened (IN_PROGRESS) that this attempt fills first
   */
  constructor(options: CheckpointerOptions, begin: CheckpointBegin) {
    this.#o = options;
    this.#every = options.policy.everyRecords ?? DEFAULT_CHECKPOINT_POLICY.everyRecords;
    this.#interval = options.policy.intervalMs ?? DEFAULT_CHECKPOINT_POLICY.intervalMs;
    this.#maxExecutions = options.policy.maxExecutions ?? DEFAULT_CHECKPOINT_POLICY.maxExecutions;
    this.#id = begin.checkpointId;
    this.#start = begin.startOffset;
    this.#next = begin.startOffset;
  }

  /** A new checkpoint's beginning. */
  static begin(runId: string, streamId: string, previousId: string | null, startOffset: number, pipelineHash: ContentHash): CheckpointBegin {
    return { checkpointId: newId(), runId, streamId, previousId, startOffset, startedUs: nowUs(), pipelineHash };
  }

  /** The open checkpoint's id. */
  get currentId(): string {
    return this.#id;
  }

  /** Checkpoints ended by this attempt. */
  get closed(): number {
    return this.#closed;
  }

  /** The last checkpoint this attempt ended, or null. */
  get lastEndedId(): string | null {
    return this.#lastEnded;
  }

  /** A record at `offset` was processed (its executions are in the run's buffer). */
  noteRecord(offset: number, input: EncodedValue | undefined): void {
    this.#records++;
    this.#next = offset + 1;
    if (this.#o.keepInput && input !== undefined) this.#slice.push([offset, input.hash, input.encoding]);
  }

  /** True when the policy says the open checkpoint should close now. */
  due(): boolean {
    if (this.#records === 0) return false;
    return (
      this.#records >= this.#every || this.#o.run.pendingExecutions >= this.#maxExecutions || Date.now() - this.#openedMs >= this.#interval
    );
  }

  /**
   * Close the open checkpoint: sink durable, states snapshot, end committed with its executions
   * (and, when `continuing`, the next checkpoint opened in the same transaction).
   */
  async close(status: 'COMPLETE' | 'FAILED', reason: string | null, continuing: boolean): Promise<CheckpointEnd> {
    const o = this.#o;
    const values: ValueWrite[] = [];
    const sinkPosition = o.sink === undefined ? null : await o.sink.commit();
    const state = snapshotStates(o.states);
    if (state !== null) values.push(state);
    let inputSliceHash: ContentHash | null = null;
    if (o.keepInput) {
      const slice = encodeValue({ v: 1, streamId: o.streamId, records: this.#slice });
      values.push(slice);
      inputSliceHash = slice.hash;
    }
    const pending = o.run.pending;
    const end: CheckpointEnd = {
      checkpointId: this.#id,
      status,
      endOffset: Math.max(this.#next, this.#start),
      endedUs: nowUs(),
      records: this.#records,
      executions: pending.executions,
      failed: pending.failed,
      deadLettered: pending.deadLettered,
      firstExecutionId: pending.firstExecutionId,
      lastExecutionId: pending.lastExecutionId,
      stateHash: state?.hash ?? null,
      sinkPosition,
      inputSliceHash,
      reason,
    };
    const begin = continuing ? Checkpointer.begin(o.run.id, o.streamId, this.#id, end.endOffset, o.pipelineHash) : undefined;
    const { durable } = await o.run.commitCheckpoint(begin === undefined ? { end } : { end, begin }, values);
    this.#closed++;
    this.#lastEnded = this.#id;
    const notify = o.onCheckpoint;
    if (notify !== undefined) void durable.then(() => notify(end), () => undefined);
    if (begin !== undefined) {
      this.#id = begin.checkpointId;
      this.#start = begin.startOffset;
      this.#next = begin.startOffset;
    }
    this.#records = 0;
    this.#slice = [];
    this.#openedMs = Date.now();
    return end;
  }
}
