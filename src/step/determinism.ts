/**
 * Deterministic step execution, in the manner of Temporal's workflow sandbox: inside the step
 * realm, the clock (`Date.now()`, `new Date()`, `Date()`, `performance.now()`) and randomness
 * (`Math.random()`, `crypto.randomUUID()`, `crypto.getRandomValues()`, and `randomUUID`,
 * `randomBytes`, `randomInt`, `getRandomValues` of `require('node:crypto')`) go through a
 * {@link Tape}. At capture the tape records every value a call consumed, in order; at replay a
 * tape made from that recording hands the same values back, so the step computes the same output.
 *
 * HTTP calls go through the tape too: the realm's `fetch` is performed for real at capture, and
 * the request and its outcome recorded (at the position where the step made the call, so that
 * concurrent calls keep their order); at replay it is answered from the recording, without
 * network, when the step asks for the same method, URL and body (see `fetch.ts` for the format).
 *
 * What cannot be recorded fails loudly instead of diverging silently: timers (`setTimeout`,
 * `setInterval`, `setImmediate`, `queueMicrotask` is allowed) and `WeakRef` /
 * `FinalizationRegistry` throw {@link DeterminismViolationError} when a step uses them, and a
 * call that ends while a fetch it started is still pending fails with it. At replay, a step that
 * asks for a value the recording does not have at that point (another kind, another request, or
 * none left) also gets it, naming what was asked and what was recorded.
 *
 * Outside any execution (a module's top-level code, while it loads) the realm sees real values,
 * unrecorded.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import * as nodeCrypto from 'node:crypto';
import { ProvenantError } from '../errors.js';
import type { JsonValue } from '../hash/canonical.js';
import {
  describeFetch,
  errorFrom,
  fetchErrorRecord,
  fetchRecordJson,
  performFetch,
  readRequestBody,
  requestHead,
  responseFrom,
  type FetchOutcome,
  type FetchRecord,
  type FetchRequestRecord,
  type RealmErrors,
} from './fetch.js';

/** The kinds of reads that return a value at once (clock and randomness). */
export type ValueKind = 'now' | 'perf' | 'random' | 'uuid' | 'bytes' | 'int';

/** The kinds of nondeterministic reads a tape records: values, and HTTP calls (`fetch`). */
export type NondeterminismKind = ValueKind | 'fetch';

/**
 * One recorded read: its kind and what it returned — a number or string (bytes as base64) for
 * the clock and randomness, a {@link FetchRecord} (a JSON object: request, and response, error
 * or `pending`) for a `fetch`.
 */
export type TapeEntry = readonly [kind: ValueKind, value: number | string] | readonly [kind: 'fetch', value: FetchRecord];

/**
 * The recorded nondeterminism of one execution, stored as a value (format 1): the reads in the
 * order the step made them. Records without `fetch` entries are as before fetch was recorded.
 */
export interface NondeterminismRecord {
  readonly v: 1;
  readonly reads: readonly TapeEntry[];
}

/** A step used a source of nondeterminism that cannot be recorded, or replay asked for other values than were recorded. */
export class DeterminismViolationError extends ProvenantError {
  constructor(message: string, hint: string) {
    super('DETERMINISM_VIOLATION', message, { hint });
    this.name = 'DeterminismViolationError';
  }
}

/** Where a call's nondeterministic values come from: the real world (recording) or a recording. */
export interface Tape {
  /** Produce the next value of this kind: `real` supplies it when recording. */
  next(kind: ValueKind, real: () => number | string): number | string;
  /**
   * A `fetch` the step makes. Called when the step makes the call, which takes the next position;
   * settles with the call's outcome (performed and recorded, or taken from a recording). A call
   * the step leaves pending past its end never settles.
   */
  fetch(request: Request): Promise<FetchOutcome>;
  /**
   * The step's call has ended: nothing more is recorded or answered. Returns the error the call
   * must fail with although the step returned (a fetch left pending; at replay, a divergence the
   * step caught), or undefined.
   */
  close(): DeterminismViolationError | undefined;
}

/** A promise that never settles: the answer to a call made or left pending past the end of the step's call. */
function never<T>(): Promise<T> {
  return new Promise<T>(() => undefined);
}

/** A fetch recorded at the position of its call, filled in when it is answered. */
class FetchSlot {
  readonly head: FetchRequestRecord;
  record: FetchRecord | undefined;
  readonly abort = new AbortController();
  constructor(head: FetchRequestRecord) {
    this.head = head;
  }
}

/** Records every value handed to the step, and every fetch it made. */
export class RecordingTape implements Tape {
  #reads: (TapeEntry | FetchSlot)[] | undefined;
  /** Fetches not yet answered; only ever set when the step fetched. */
  #pending: Set<FetchSlot> | undefined;
  #closed = false;

  next(kind: ValueKind, real: () => number | string): number | string {
    const value = real();
    (this.#reads ??= []).push([kind, value]);
    return value;
  }

  fetch(request: Request): Promise<FetchOutcome> {
    if (this.#closed) return never();
    const slot = new FetchSlot(requestHead(request));
    (this.#reads ??= []).push(slot);
    (this.#pending ??= new Set()).add(slot);
    return this.#perform(slot, request);
  }

  async #perform(slot: FetchSlot, request: Request): Promise<FetchOutcome> {
    let body: string | undefined;
    let outcome: FetchOutcome;
    try {
      const sent = request.clone();
      body = await readRequestBody(request);
      outcome = await performFetch(sent, AbortSignal.any([request.signal, slot.abort.signal]));
    } catch (err) {
      // The step's request body could not be read (fetch itself would have rejected with this).
      outcome = { error: fetchErrorRecord(err) };
    }
    if (this.#closed) return never();
    this.#pending?.delete(slot);
    const asked = body === undefined ? slot.head : { ...slot.head, body };
    slot.record = 'response' in outcome ? { request: asked, response: outcome.response } : { request: asked, error: outcome.error };
    return outcome;
  }

  close(): DeterminismViolationError | undefined {
    this.#closed = true;
    if (this.#pending === undefined || this.#pending.size === 0) return undefined;
    for (const slot of this.#pending) slot.abort.abort();
    return unawaited([...this.#pending].map((slot) => slot.head));
  }

  /** The recording, or null when the call consumed nothing (the common case: nothing stored). */
  toRecord(): NondeterminismRecord | null {
    const reads = this.#reads;
    if (reads === undefined) return null;
    if (this.#pending === undefined) return { v: 1, reads: reads as TapeEntry[] };
    return {
      v: 1,
      reads: reads.map((entry): TapeEntry => (entry instanceof FetchSlot ? ['fetch', entry.record ?? { request: entry.head, pending: true }] : entry)),
    };
  }
}

function unawaited(requests: readonly FetchRequestRecord[]): DeterminismViolationError {
  const calls = requests.map((r) => describeFetch(r)).join(', ');
  return new DeterminismViolationError(
    requests.length === 1
      ? `a step returned while a fetch it started was still pending (left unawaited): ${calls}`
      : `a step returned while ${requests.length} fetches it started were still pending (left unawaited): ${calls}`,
    'Await every fetch the step starts before it returns: the answer to a call left pending is not part of the execution, so it cannot be recorded or replayed.',
  );
}

/** Hands back recorded values and answers, in order; anything else is a {@link DeterminismViolationError}. */
export class ReplayTape implements Tape {
  readonly #reads: readonly TapeEntry[];
  #at = 0;
  #violation: DeterminismViolationError | undefined;
  /** Calls the recording has as left pending, answered with a promise that never settles. */
  #unsettled: FetchRequestRecord[] | undefined;
  #closed = false;
  readonly #where: string;

  /** @param record the execution's recording (null: it consumed nothing); @param where names the execution in errors */
  constructor(record: NondeterminismRecord | null, where: string) {
    this.#reads = record?.reads ?? [];
    this.#where = where;
  }

  next(kind: ValueKind): number | string {
    const entry = this.#reads[this.#at];
    if (entry === undefined || entry[0] !== kind) throw this.#diverge(`read ${describe(kind)}`, entry);
    this.#at++;
    return entry[1];
  }

  fetch(request: Request): Promise<FetchOutcome> {
    if (this.#closed) return never();
    const head = requestHead(request);
    const entry = this.#reads[this.#at];
    if (entry === undefined || entry[0] !== 'fetch') return Promise.reject(this.#diverge(`called ${describeFetch(head)}`, entry));
    const position = this.#at++;
    const recorded = entry[1];
    if ('pending' in recorded) {
      if (head.method !== recorded.request.method || head.url !== recorded.request.url) {
        return Promise.reject(this.#diverge(`called ${describeFetch(head)}`, entry, position));
      }
      (this.#unsettled ??= []).push(recorded.request);
      return never();
    }
    return this.#answer(request, head, recorded, position);
  }

  async #answer(request: Request, head: FetchRequestRecord, recorded: FetchRecord, position: number): Promise<FetchOutcome> {
    // A body that cannot be read was not recorded at capture either (the call failed with that).
    const body = await readRequestBody(request).catch(() => undefined);
    const asked = body === undefined ? head : { ...head, body };
    const was = recorded.request;
    if (asked.method !== was.method || asked.url !== was.url || asked.body !== was.body) {
      throw this.#diverge(`called ${describeFetch(asked)}`, ['fetch', recorded], position);
    }
    if (this.#closed) return never();
    return 'response' in recorded ? { response: recorded.response } : 'error' in recorded ? { error: recorded.error } : never();
  }

  /** The error for asking `asked` where the recording has `entry` (or nothing more); remembered for {@link close}. */
  #diverge(asked: string, entry: TapeEntry | undefined, position = this.#at): DeterminismViolationError {
    const error =
      entry === undefined
        ? new DeterminismViolationError(
            `${this.#where}: at replay the step ${asked} (read ${position + 1}), but at capture it read nothing more`,
            'The step behaves differently at replay: its code, input or params differ, or it reads a source of nondeterminism that was not recorded.',
          )
        : new DeterminismViolationError(
            `${this.#where}: at replay the step ${asked} (read ${position + 1}), but at capture it ${did(entry)} there`,
            'The step takes a different path at replay than at capture.',
          );
    this.#violation ??= error;
    return error;
  }

  close(): DeterminismViolationError | undefined {
    this.#closed = true;
    if (this.#violation !== undefined) return this.#violation;
    return this.#unsettled === undefined ? undefined : unawaited(this.#unsettled);
  }

  /** True once the step asked for a value the recording does not have at that point. */
  get diverged(): boolean {
    return this.#violation !== undefined;
  }

  /** Reads recorded at capture that the replay did not consume. */
  get unread(): number {
    return this.#reads.length - this.#at;
  }
}

/** What a recorded entry says the step did at capture. */
function did(entry: TapeEntry): string {
  return entry[0] === 'fetch' ? `called ${describeFetch(entry[1].request)}` : `read ${describe(entry[0])}`;
}

function describe(kind: ValueKind): string {
  switch (kind) {
    case 'now':
      return 'the clock';
    case 'perf':
      return 'performance.now()';
    case 'random':
      return 'Math.random()';
    case 'uuid':
      return 'a random UUID';
    case 'bytes':
      return 'random bytes';
    case 'int':
      return 'a random integer';
  }
}

const current = new AsyncLocalStorage<Tape>();

/** Run `fn` (a step call) with `tape` as the source of its nondeterministic values. */
export function withTape<T>(tape: Tape, fn: () => T): T {
  return current.run(tape, fn);
}

function read(kind: ValueKind, real: () => number | string): number | string {
  const tape = current.getStore();
  return tape === undefined ? real() : tape.next(kind, real);
}

const readNumber = (kind: ValueKind, real: () => number): number => Number(read(kind, real));

function randomBytesBase64(length: number): string {
  return nodeCrypto.randomBytes(length).toString('base64');
}

/** Fill a typed array with recorded (or recorded-now) random bytes. */
function fillRandom<T extends ArrayBufferView>(array: T): T {
  const bytes = Buffer.from(String(read('bytes', () => randomBytesBase64(array.byteLength))), 'base64');
  new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(bytes.subarray(0, array.byteLength));
  return array;
}

function violation(what: string): () => never {
  return () => {
    throw new DeterminismViolationError(
      `a step used ${what}, which cannot be recorded or replayed`,
      'Steps must compute their output from their input and params; schedule work outside the step, or record it as a value.',
    );
  };
}

/** The host functions the realm's replacements call. */
export interface RealmHooks {
  readonly now: () => number;
  readonly perf: () => number;
  readonly random: () => number;
  readonly violation: (what: string) => never;
  /** The realm's `fetch`; `errors` are the realm's error classes, for the failures the step receives. */
  readonly fetch: (input: unknown, init: unknown, errors: RealmErrors) => Promise<Response>;
}

type FetchArguments = ConstructorParameters<typeof Request>;

/**
 * `fetch` as the realm sees it: inside a step's call it goes through the tape (recorded at
 * capture, answered from the recording at replay); outside of one it is the real, unrecorded call.
 * The step always receives a Response built from the recorded bytes.
 */
async function realmFetch(input: unknown, init: unknown, errors: RealmErrors): Promise<Response> {
  const tape = current.getStore();
  if (tape === undefined) return fetch(input as FetchArguments[0], init as FetchArguments[1]);
  // Invalid arguments reject here, as fetch rejects them, without taking a position on the tape.
  const request = new Request(input as FetchArguments[0], init as FetchArguments[1]);
  const outcome = await tape.fetch(request);
  if ('response' in outcome) return responseFrom(outcome.response);
  throw errorFrom(outcome.error, errors);
}

/** Hooks bound to the current tape. */
export const realmHooks: RealmHooks = Object.freeze({
  now: () => readNumber('now', Date.now),
  perf: () => readNumber('perf', () => performance.now()),
  random: () => readNumber('random', Math.random),
  violation: (what: string): never => violation(what)(),
  fetch: realmFetch,
});

/** `crypto` as the realm sees it (the Web Crypto subset steps use, recorded). */
export const realmWebCrypto = Object.freeze({
  randomUUID: (): `${string}-${string}-${string}-${string}-${string}` =>
    String(read('uuid', () => nodeCrypto.randomUUID())) as `${string}-${string}-${string}-${string}-${string}`,
  getRandomValues: <T extends ArrayBufferView>(array: T): T => fillRandom(array),
});

/** `require('node:crypto')` as the realm sees it: the real module with its random functions recorded. */
export const realmNodeCrypto: Readonly<Record<string, unknown>> = Object.freeze({
  ...nodeCrypto,
  randomUUID: realmWebCrypto.randomUUID,
  getRandomValues: realmWebCrypto.getRandomValues,
  randomBytes: ((size: number, callback?: unknown) => {
    if (callback !== undefined) return violation('crypto.randomBytes with a callback (asynchronous)')();
    return Buffer.from(String(read('bytes', () => randomBytesBase64(size))), 'base64');
  }) as typeof nodeCrypto.randomBytes,
  randomInt: ((min: number, max?: number, callback?: unknown) => {
    if (typeof max === 'function' || callback !== undefined) return violation('crypto.randomInt with a callback (asynchronous)')();
    return readNumber('int', () => (max === undefined ? nodeCrypto.randomInt(min) : nodeCrypto.randomInt(min, max)));
  }) as typeof nodeCrypto.randomInt,
  webcrypto: { subtle: nodeCrypto.webcrypto.subtle, randomUUID: realmWebCrypto.randomUUID, getRandomValues: realmWebCrypto.getRandomValues },
});

/**
 * Code evaluated inside each step realm before the artifact: replaces the realm's own `Date`,
 * `Math.random`, timers and weak references with versions that go through the hooks, and
 * defines its `fetch`.
 */
export const REALM_PRELUDE = `
(function (hooks) {
  'use strict';
  const RealDate = Date;
  function ProvenantDate(...args) {
    if (!new.target) return new RealDate(hooks.now()).toString();
    return args.length === 0 ? new RealDate(hooks.now()) : new RealDate(...args);
  }
  ProvenantDate.prototype = RealDate.prototype;
  Object.defineProperty(RealDate.prototype, 'constructor', { value: ProvenantDate, writable: true, configurable: true });
  ProvenantDate.now = function now() { return hooks.now(); };
  ProvenantDate.parse = RealDate.parse;
  ProvenantDate.UTC = RealDate.UTC;
  globalThis.Date = ProvenantDate;
  Math.random = function random() { return hooks.random(); };
  globalThis.performance = Object.freeze({ now: function now() { return hooks.perf(); } });
  for (const name of ['setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval', 'clearImmediate']) {
    globalThis[name] = function () { return hooks.violation(name + '()'); };
  }
  globalThis.WeakRef = function WeakRef() { return hooks.violation('WeakRef'); };
  globalThis.FinalizationRegistry = function FinalizationRegistry() { return hooks.violation('FinalizationRegistry'); };
  const errors = Object.freeze({ TypeError, Error });
  globalThis.fetch = async function fetch(input, init) { return hooks.fetch(input, init, errors); };
})
`;

/** A nondeterminism record as JSON (for hashing and storage; a fetch entry's value is a JSON object, see `fetch.ts`). */
export function nondeterminismJson(record: NondeterminismRecord): JsonValue {
  return { v: record.v, reads: record.reads.map((entry) => [entry[0], entry[0] === 'fetch' ? (fetchRecordJson(entry[1]) as JsonValue) : entry[1]]) };
}
