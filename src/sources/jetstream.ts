/**
 * NATS JetStream sources: a JetStream stream (optionally filtered to one subject) read as an
 * ordered, offset-addressed sequence of records, where a record's offset is its stream sequence
 * (from 1). Reading uses an ordered consumer that starts at the asked sequence, so any range is
 * read without scanning what comes before it. Messages are JSON; one that is not becomes a
 * malformed record (its raw text, and why) instead of stopping the read.
 *
 * JetStream may discard old messages (stream limits: `max_msgs`, `max_bytes`, `max_age`), so these
 * sources say {@link RecordSource.mayForget}: asking for a sequence that is gone is refused with
 * `SOURCE_UNAVAILABLE` rather than silently starting later. Messages deleted one by one inside a
 * range are skipped (offsets then skip numbers).
 *
 * {@link publishRecords} is the other direction: JSON values published to a stream, one message
 * each, with the server's acknowledgements awaited a window at a time.
 */
import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import type { Consumer, ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg, StreamInfo } from '@nats-io/jetstream';
import { errorMessage, ProvenantError, UnhashableValueError } from '../errors.js';
import { canonicalize, type JsonValue } from '../hash/canonical.js';
import type { IdleTick, RecordSource, SourceReadOptions, SourceRecord, SourceSpec } from './source.js';

/** Where a JetStream source or publish target is. */
export interface JetStreamLocation {
  /** NATS server URL(s), comma-separated: `nats://127.0.0.1:4222`. */
  readonly servers: string;
  /** The JetStream stream's name. */
  readonly stream: string;
  /** Only this subject's messages (reading), or the subject to publish on. */
  readonly subject?: string;
  /** How long to wait for the server to answer when connecting, in ms. Default: 3000. */
  readonly connectTimeoutMs?: number;
}

/** Options of {@link openJetStreamSource}. */
export type JetStreamSourceOptions = JetStreamLocation;

/** The bounds of a JetStream stream, as the server reports them. */
export interface JetStreamBounds {
  /** The first sequence still held (last + 1 when the stream holds no message). */
  readonly firstSeq: number;
  /** The last sequence ever assigned (0 for a stream never written to). */
  readonly lastSeq: number;
  /** How many messages the stream holds (fewer than last − first + 1 when some were deleted). */
  readonly messages: number;
}

/** A JetStream stream opened as a {@link RecordSource}: offsets are stream sequences (from 1). */
export interface JetStreamSource extends RecordSource {
  readonly spec: Extract<SourceSpec, { kind: 'jetstream' }> & JsonValue;
  /** The stream's current bounds. */
  bounds(): Promise<JetStreamBounds>;
}

/** Options of {@link publishRecords}. */
export interface PublishTarget extends JetStreamLocation {
  /**
   * Create the stream (capturing `subject`, or a subject named like the stream) when it does not
   * exist. Default: false (a missing stream is refused with NOT_FOUND).
   */
  readonly create?: boolean;
}

/** Options of {@link publishRecords}. */
export interface PublishRecordsOptions {
  /** Called after each acknowledged window with the number of records published so far. */
  readonly onProgress?: (published: number) => void;
  /** Messages in flight before their acknowledgements are awaited. Default: 1000. */
  readonly window?: number;
}

/** What {@link publishRecords} published: sequences `[first, next)` (other publishers' messages may be interleaved). */
export interface PublishResult {
  /** Stream sequence of the first record published (equals `next` when none was). */
  readonly first: number;
  /** One past the stream sequence of the last record published. */
  readonly next: number;
  /** How many records were published. */
  readonly published: number;
}

/** The NATS client, loaded on first use (importing Provenant does not load it). */
interface NatsClient {
  readonly transport: typeof import('@nats-io/transport-node');
  readonly jetstream: typeof import('@nats-io/jetstream');
}
let natsClient: NatsClient | undefined;

async function loadNats(): Promise<NatsClient> {
  if (natsClient === undefined) {
    const [transport, js] = await Promise.all([import('@nats-io/transport-node'), import('@nats-io/jetstream')]);
    natsClient = { transport, jetstream: js };
  }
  return natsClient;
}

/** The NATS client, once {@link loadNats} has loaded it (every entry point does, before connecting). */
function nats(): NatsClient {
  if (natsClient === undefined) throw new Error('the NATS client is not loaded');
  return natsClient;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 3000;
/** Longest wait for the next publish acknowledgement. */
const ACK_TIMEOUT_MS = 10_000;
/** Messages the ordered consumer asks the server for at a time. */
const PULL_BATCH = 1000;

/**
 * Open a JetStream stream as a record source (`streamId` = `jetstream:<stream>` or
 * `jetstream:<stream>/<subject>`). Connects and checks that the stream exists.
 * @throws ProvenantError SOURCE_UNAVAILABLE when the server cannot be reached (or has no JetStream);
 *   NOT_FOUND when the stream does not exist; INPUT_INVALID for a bad stream name or subject.
 */
export async function openJetStreamSource(options: JetStreamSourceOptions): Promise<JetStreamSource> {
  const { servers, stream, subject } = checkLocation(options);
  const nc = await connectTo(servers, options.connectTimeoutMs);
  try {
    const jsm = await managerOf(nc, servers);
    await streamInfo(jsm, servers, stream);
    return new JetStreamSourceImpl(nc, jsm, servers, stream, subject);
  } catch (err) {
    await closeConnection(nc);
    throw err;
  }
}

/**
 * Publish values to a JetStream stream, one message each (canonical JSON text), in order. The
 * server's acknowledgements are awaited a window at a time, so throughput does not hang on one
 * round trip per message. Without `subject`, publishes on the stream's only literal subject.
 * @throws ProvenantError NOT_FOUND for a missing stream (unless `create`); INPUT_INVALID for a value
 *   that is not JSON (after the records before it were published) or a subject the stream does not
 *   capture; SOURCE_UNAVAILABLE when the server cannot be reached or stops acknowledging.
 */
export async function publishRecords(
  target: PublishTarget,
  values: AsyncIterable<unknown> | Iterable<unknown>,
  options: PublishRecordsOptions = {},
): Promise<PublishResult> {
  const { servers, stream, subject: asked } = checkLocation(target);
  if (asked !== undefined && /[*>]/.test(asked)) {
    throw new ProvenantError('INPUT_INVALID', `cannot publish on the wildcard subject ${asked}`, {
      hint: 'Give a literal subject (orders.created), one that the stream captures.',
      context: { stream, subject: asked },
    });
  }
  const window = options.window ?? 1000;
  if (!Number.isInteger(window) || window < 1) {
    throw new ProvenantError('INPUT_INVALID', `publish window must be a positive integer, not ${window}`, { context: { window } });
  }
  const nc = await connectTo(servers, target.connectTimeoutMs);
  try {
    const jsm = await managerOf(nc, servers);
    const { subject, lastSeq } = await publishSubject(jsm, servers, stream, asked, target.create === true);
    return await publishAll(nc, servers, stream, subject, lastSeq, values, window, options.onProgress);
  } finally {
    await closeConnection(nc);
  }
}

/**
 * Publish with one reply subscription for all acknowledgements (`<inbox>.<index>`) rather than
 * `js.publish`, whose per-message request (a timer, an inbox entry and a promise each) made
 * publishing 100,000 small records take 2–4 times as long; at most `window` messages are unacknowledged at a time. The
 * `Nats-Expected-Stream` header makes the server refuse a message that would land in another stream.
 */
async function publishAll(
  nc: NatsConnection,
  servers: string,
  stream: string,
  subject: string,
  lastSeq: number,
  values: AsyncIterable<unknown> | Iterable<unknown>,
  window: number,
  onProgress: ((published: number) => void) | undefined,
): Promise<PublishResult> {
  const inbox = nats().transport.createInbox();
  const hdrs = nats().transport.headers();
  hdrs.set('Nats-Expected-Stream', stream);
  let sent = 0;
  let published = 0;
  let first = Number.POSITIVE_INFINITY;
  let last = lastSeq;
  let failure: string | undefined;
  let reported = 0;
  // Resolved when at most `waitTarget` messages are unacknowledged (or on a failure).
  let waitTarget = 0;
  let wake: (() => void) | undefined;
  const sub = nc.subscribe(`${inbox}.*`, {
    callback: (err, msg) => {
      if (err !== null) {
        failure ??= errorMessage(err);
      } else {
        const problem = ackProblem(msg.data, msg.headers);
        if (typeof problem === 'string') {
          failure ??= problem;
        } else {
          published++;
          if (problem.seq < first) first = problem.seq;
          if (problem.seq > last) last = problem.seq;
        }
      }
      if (wake !== undefined && (failure !== undefined || sent - published <= waitTarget)) wake();
    },
  });
  const result = (): PublishResult => (published === 0 ? { first: last + 1, next: last + 1, published } : { first, next: last + 1, published });
  const failed = (reason: string): ProvenantError =>
    new ProvenantError('SOURCE_UNAVAILABLE', `publishing to stream ${stream} at ${servers} failed after ${published} record(s): ${reason}`, {
      hint: 'Check that the NATS server is running with JetStream and that the stream accepts the subject; the records acknowledged so far are in the stream.',
      context: { servers, stream, subject, ...result() },
      retryable: true,
    });
  /** Wait until at most `outstanding` messages are unacknowledged. */
  const settle = async (outstanding: number): Promise<void> => {
    while (failure === undefined && sent - published > outstanding) {
      const before = published;
      waitTarget = outstanding;
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, ACK_TIMEOUT_MS);
      });
      clearTimeout(timer);
      wake = undefined;
      if (failure === undefined && published === before) {
        failure = `no acknowledgement from the server for ${ACK_TIMEOUT_MS / 1000} s (${sent - published} message(s) unacknowledged)`;
      }
    }
    if (failure !== undefined) throw failed(failure);
    if (published !== reported) {
      reported = published;
      onProgress?.(published);
    }
  };
  try {
    let index = 0;
    for await (const value of values) {
      let text: string;
      try {
        text = canonicalize(value);
      } catch (err) {
        await settle(0);
        if (!(err instanceof UnhashableValueError)) throw err;
        throw new ProvenantError('INPUT_INVALID', `record ${index} cannot be published as JSON: ${err.message}`, {
          hint: 'Records must be JSON-compatible values; the records before it were published.',
          context: { stream, record: index, path: err.path, ...result() },
          cause: err,
        });
      }
      nc.publish(subject, text, { reply: `${inbox}.${index}`, headers: hdrs });
      sent++;
      index++;
      if (sent - published >= window) await settle(window >> 1);
      else if (failure !== undefined) throw failed(failure);
    }
    await settle(0);
    return result();
  } finally {
    sub.unsubscribe();
  }
}

/** A publish acknowledgement's stream sequence, or what is wrong with it. */
const utf8 = new TextDecoder();

function ackProblem(data: Uint8Array, hdrs: MsgHdrs | undefined): { seq: number } | string {
  if (hdrs?.hasError === true) {
    return hdrs.code === 503 ? 'no stream captures the subject (no responders)' : `${hdrs.code} ${hdrs.description}`;
  }
  let ack: { seq?: unknown; error?: { code?: number; err_code?: number; description?: string } };
  try {
    ack = JSON.parse(utf8.decode(data)) as typeof ack;
  } catch {
    return 'the server answered with something that is not a publish acknowledgement';
  }
  if (ack.error !== undefined) return `${ack.error.description ?? 'refused'} (${ack.error.err_code ?? ack.error.code ?? '?'})`;
  if (typeof ack.seq !== 'number') return 'the acknowledgement has no sequence';
  return { seq: ack.seq };
}

/** The subject to publish on and the stream's last sequence; creates the stream when asked to and it is missing. */
async function publishSubject(
  jsm: JetStreamManager,
  servers: string,
  stream: string,
  subject: string | undefined,
  create: boolean,
): Promise<{ subject: string; lastSeq: number }> {
  let info: StreamInfo;
  try {
    info = await streamInfo(jsm, servers, stream);
  } catch (err) {
    if (!(err instanceof ProvenantError && err.code === 'NOT_FOUND' && create)) throw err;
    const subjects = [subject ?? stream];
    try {
      await jsm.streams.add({ name: stream, subjects });
    } catch (addErr) {
      throw new ProvenantError('SOURCE_UNAVAILABLE', `cannot create stream ${stream} (subjects ${subjects.join(', ')}) at ${servers}: ${errorMessage(addErr)}`, {
        hint: 'Another stream may already capture that subject: choose another subject, or publish to that stream.',
        context: { servers, stream, subjects },
        cause: addErr,
      });
    }
    return { subject: subjects[0] as string, lastSeq: 0 };
  }
  if (subject === undefined) {
    const literal = (info.config.subjects ?? []).filter((s) => !s.includes('*') && !s.includes('>'));
    if (literal.length !== 1 || literal[0] === undefined) {
      throw new ProvenantError('INPUT_INVALID', `stream ${stream} has subjects ${JSON.stringify(info.config.subjects ?? [])}: say which subject to publish on`, {
        hint: 'Give a subject the stream captures.',
        context: { servers, stream, subjects: info.config.subjects ?? [] },
      });
    }
    return { subject: literal[0], lastSeq: info.state.last_seq };
  }
  let owner: string | undefined;
  try {
    owner = await jsm.streams.find(subject);
  } catch {
    owner = undefined;
  }
  if (owner !== stream) {
    throw new ProvenantError('INPUT_INVALID', `stream ${stream} does not capture subject ${subject}${owner === undefined ? '' : ` (stream ${owner} does)`}`, {
      hint: `Publish on one of the stream's subjects: ${(info.config.subjects ?? []).join(', ') || '(none)'}.`,
      context: { servers, stream, subject, subjects: info.config.subjects ?? [] },
    });
  }
  return { subject, lastSeq: info.state.last_seq };
}

class JetStreamSourceImpl implements JetStreamSource {
  readonly streamId: string;
  readonly spec: Extract<SourceSpec, { kind: 'jetstream' }> & JsonValue;
  readonly mayForget = true;
  readonly #nc: NatsConnection;
  readonly #jsm: JetStreamManager;
  readonly #js: JetStreamClient;
  readonly #servers: string;
  readonly #stream: string;
  readonly #subject: string | undefined;
  readonly #reading = new Set<ConsumerMessages>();
  #closed = false;

  constructor(nc: NatsConnection, jsm: JetStreamManager, servers: string, stream: string, subject: string | undefined) {
    this.#nc = nc;
    this.#jsm = jsm;
    this.#js = nats().jetstream.jetstream(nc);
    this.#servers = servers;
    this.#stream = stream;
    this.#subject = subject;
    this.streamId = subject === undefined ? `jetstream:${stream}` : `jetstream:${stream}/${subject}`;
    this.spec = subject === undefined ? { kind: 'jetstream', servers, stream } : { kind: 'jetstream', servers, stream, subject };
  }

  async firstOffset(): Promise<number> {
    return (await this.bounds()).firstSeq;
  }

  async bounds(): Promise<JetStreamBounds> {
    this.#checkOpen();
    const { state } = await streamInfo(this.#jsm, this.#servers, this.#stream);
    // A stream never written to reports first_seq 0; normalize to "last + 1 when empty".
    const firstSeq = state.messages === 0 ? state.last_seq + 1 : state.first_seq;
    return { firstSeq, lastSeq: state.last_seq, messages: state.messages };
  }

  async *read(options: SourceReadOptions = {}): AsyncGenerator<SourceRecord | IdleTick> {
    this.#checkOpen();
    const follow = options.follow === true;
    const idleMs = options.idleMs ?? 1000;
    const { signal } = options;
    for (const [name, v] of [['from', options.from], ['to', options.to]] as const) {
      if (v !== undefined && (!Number.isInteger(v) || v < 0)) {
        throw new ProvenantError('INPUT_INVALID', `${name} must be a stream sequence (an integer ≥ 0), not ${v}`, { context: { stream: this.#stream, [name]: v } });
      }
    }
    if (!(idleMs > 0) || !Number.isFinite(idleMs)) {
      throw new ProvenantError('INPUT_INVALID', `idleMs must be a positive number of milliseconds, not ${idleMs}`, { context: { idleMs } });
    }
    if (isAborted(signal)) return;

    const bounds = await this.bounds();
    const from = Math.max(options.from ?? bounds.firstSeq, 1);
    const to = options.to ?? (follow ? Number.POSITIVE_INFINITY : bounds.lastSeq + 1);
    if (options.from !== undefined && options.to !== undefined && options.from > options.to) {
      throw new ProvenantError('INPUT_INVALID', `sequences ${options.from}..${options.to} are not a range of stream ${this.#stream}`, {
        context: { stream: this.#stream, from: options.from, to: options.to },
      });
    }
    if (from < bounds.firstSeq) throw this.#forgotten(from, bounds.firstSeq);
    if (!follow && from > bounds.lastSeq + 1) {
      throw new ProvenantError('SOURCE_UNAVAILABLE', `stream ${this.#stream} at ${this.#servers} ends at sequence ${bounds.lastSeq}: sequence ${from} is not in it yet`, {
        hint: 'Was the stream deleted and created again? Its sequences then start over; read it from its first sequence, or follow it to wait for new messages.',
        context: { servers: this.#servers, stream: this.#stream, from, lastSeq: bounds.lastSeq },
      });
    }
    // Reading without following stops at the end as it was when reading started.
    const end = follow ? to : Math.min(to, bounds.lastSeq + 1);
    if (from >= end) return;

    let consumer: Consumer;
    let messages: ConsumerMessages;
    try {
      consumer = await this.#js.consumers.get(this.#stream, {
        deliver_policy: nats().jetstream.DeliverPolicy.StartSequence,
        opt_start_seq: from,
        ...(this.#subject === undefined ? {} : { filter_subjects: this.#subject }),
      });
      messages = await consumer.consume({ max_messages: PULL_BATCH });
    } catch (err) {
      throw this.#failure(err, 'starting to read');
    }
    this.#reading.add(messages);
    const iterator = messages[Symbol.asyncIterator]();
    let pending: Promise<IteratorResult<JsMsg>> | undefined;
    // Stopping the consumer's messages ends a pending iterator.next() (with done) and unsubscribes.
    // (Not messages.close(): it waits until the iterator has consumed every buffered message.)
    const onAbort = (): void => messages.stop();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (!follow && (await consumer.info(true)).num_pending === 0) return;
      let expected = from;
      for (;;) {
        pending ??= iterator.next();
        let got: IteratorResult<JsMsg> | 'idle';
        try {
          got = await raceIdle(pending, idleMs);
        } catch (err) {
          pending = undefined;
          if (isAborted(signal) || this.#closed) return;
          throw this.#failure(err, 'reading');
        }
        if (isAborted(signal)) return;
        if (got === 'idle') {
          if (await this.#nothingMoreBefore(consumer, end, follow)) return;
          if (follow) yield { idle: true };
          continue;
        }
        pending = undefined;
        if (got.done === true) {
          if (this.#closed) return;
          throw new ProvenantError('SOURCE_UNAVAILABLE', `reading stream ${this.#stream} at ${this.#servers} stopped: the connection was closed`, {
            hint: 'Check that the NATS server is running, then read again from the last offset processed.',
            context: { servers: this.#servers, stream: this.#stream, next: expected },
            retryable: true,
          });
        }
        const msg = got.value;
        const seq = msg.seq;
        if (seq >= end) return;
        if (seq > expected && (expected === from || this.#subject === undefined)) {
          // A gap: deleted messages are skipped, but messages discarded by the stream's limits are lost input.
          const { firstSeq } = await this.bounds();
          if (firstSeq > expected) throw this.#forgotten(expected, firstSeq);
        }
        yield decode(msg);
        expected = seq + 1;
        if (expected >= end || (!follow && msg.info.pending === 0)) return;
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      pending?.then(ignore, ignore);
      this.#reading.delete(messages);
      messages.stop();
      await consumer.delete().catch(ignore);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const messages of this.#reading) messages.stop();
    this.#reading.clear();
    await closeConnection(this.#nc);
  }

  /** While waiting: whether no record below `end` can still come. */
  async #nothingMoreBefore(consumer: Consumer, end: number, follow: boolean): Promise<boolean> {
    if (follow && !Number.isFinite(end)) return false;
    try {
      const info = await consumer.info();
      if (info.num_pending > 0) return false;
      if (!follow) return true;
      return (await this.bounds()).lastSeq + 1 >= end;
    } catch (err) {
      if (err instanceof ProvenantError) throw err;
      // The ordered consumer may be being recreated; ask again at the next tick.
      return false;
    }
  }

  #forgotten(asked: number, firstSeq: number): ProvenantError {
    return new ProvenantError(
      'SOURCE_UNAVAILABLE',
      `stream ${this.#stream} at ${this.#servers} no longer holds sequence ${asked}: its first available sequence is ${firstSeq} (older messages were discarded by the stream's limits or deleted)`,
      {
        hint: `Read from sequence ${firstSeq} or later, knowing the records before it are lost; to be able to replay, keep checkpoints' input slices (JetStream streams may forget), or raise the stream's retention limits.`,
        context: { servers: this.#servers, stream: this.#stream, asked, firstAvailable: firstSeq },
      },
    );
  }

  #failure(err: unknown, doing: string): ProvenantError {
    if (err instanceof ProvenantError) return err;
    if (isStreamNotFound(err)) return notFound(this.#servers, this.#stream);
    return new ProvenantError('SOURCE_UNAVAILABLE', `${doing} stream ${this.#stream} at ${this.#servers} failed: ${errorMessage(err)}`, {
      hint: 'Check that the NATS server is running with JetStream (nats-server -js).',
      context: { servers: this.#servers, stream: this.#stream },
      retryable: true,
      cause: err,
    });
  }

  #checkOpen(): void {
    if (this.#closed) {
      throw new ProvenantError('SOURCE_UNAVAILABLE', `the JetStream source ${this.streamId} is closed`, { context: { stream: this.#stream } });
    }
  }
}

function decode(msg: JsMsg): SourceRecord {
  const text = msg.string();
  try {
    return { offset: msg.seq, value: JSON.parse(text) as unknown };
  } catch (err) {
    return { offset: msg.seq, value: text, malformed: { format: 'jetstream', reason: `not valid JSON: ${errorMessage(err)}` } };
  }
}

/** The next iterator result, or `'idle'` after `ms` without one. */
async function raceIdle<T>(next: Promise<T>, ms: number): Promise<T | 'idle'> {
  let timer: NodeJS.Timeout | undefined;
  const idle = new Promise<'idle'>((resolve) => {
    timer = setTimeout(() => resolve('idle'), ms);
  });
  try {
    return await Promise.race([next, idle]);
  } finally {
    clearTimeout(timer);
  }
}

function ignore(): void {}

/** Whether `signal` has aborted (a function, so that the check is made again after each await). */
function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

const STREAM_NAME = /^[^\s.*>/\\]+$/;

function checkLocation(options: JetStreamLocation): { servers: string; stream: string; subject: string | undefined } {
  const { servers, stream, subject } = options;
  if (typeof servers !== 'string' || servers.split(',').every((s) => s.trim() === '')) {
    throw new ProvenantError('INPUT_INVALID', 'no NATS server given', { hint: 'Give a server URL, e.g. --nats nats://127.0.0.1:4222.' });
  }
  if (typeof stream !== 'string' || !STREAM_NAME.test(stream)) {
    throw new ProvenantError('INPUT_INVALID', `"${String(stream)}" is not a JetStream stream name`, {
      hint: 'Stream names are non-empty and contain no whitespace, ".", "*", ">", "/" or "\\".',
      context: { stream },
    });
  }
  if (subject !== undefined && (typeof subject !== 'string' || subject === '' || /\s/.test(subject))) {
    throw new ProvenantError('INPUT_INVALID', `"${String(subject)}" is not a NATS subject`, { hint: 'Subjects are non-empty, without whitespace: orders.created.', context: { subject } });
  }
  return { servers, stream, subject };
}

async function connectTo(servers: string, timeoutMs = DEFAULT_CONNECT_TIMEOUT_MS): Promise<NatsConnection> {
  const list = servers.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const { connect } = (await loadNats()).transport;
  try {
    return await connect({ servers: list, timeout: timeoutMs, name: 'provenant' });
  } catch (err) {
    throw new ProvenantError('SOURCE_UNAVAILABLE', `cannot connect to NATS at ${servers}: ${errorMessage(err)}`, {
      hint: 'Start a NATS server with JetStream (nats-server -js), or fix the server URL (--nats nats://host:4222).',
      context: { servers },
      retryable: true,
      cause: err,
    });
  }
}

async function managerOf(nc: NatsConnection, servers: string): Promise<JetStreamManager> {
  try {
    return await nats().jetstream.jetstreamManager(nc);
  } catch (err) {
    throw new ProvenantError('SOURCE_UNAVAILABLE', `the NATS server at ${servers} does not offer JetStream: ${errorMessage(err)}`, {
      hint: 'Start the server with JetStream enabled (nats-server -js), or point --nats at one that has it.',
      context: { servers },
      cause: err,
    });
  }
}

async function streamInfo(jsm: JetStreamManager, servers: string, stream: string): Promise<StreamInfo> {
  try {
    return await jsm.streams.info(stream);
  } catch (err) {
    if (isStreamNotFound(err)) throw notFound(servers, stream);
    throw new ProvenantError('SOURCE_UNAVAILABLE', `cannot get the state of stream ${stream} at ${servers}: ${errorMessage(err)}`, {
      hint: 'Check that the NATS server is running with JetStream (nats-server -js).',
      context: { servers, stream },
      retryable: true,
      cause: err,
    });
  }
}

function isStreamNotFound(err: unknown): boolean {
  const { JetStreamApiError, JetStreamApiCodes } = nats().jetstream;
  return err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound;
}

function notFound(servers: string, stream: string): ProvenantError {
  return new ProvenantError('NOT_FOUND', `JetStream stream ${stream} does not exist at ${servers}`, {
    hint: 'Check the stream name and --nats; create the stream by publishing to it with `provenant stream publish --create`.',
    context: { servers, stream },
  });
}

async function closeConnection(nc: NatsConnection): Promise<void> {
  if (nc.isClosed()) return;
  try {
    await nc.drain();
  } catch {
    await nc.close().catch(ignore);
  }
}
