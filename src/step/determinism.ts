/**
 * Deterministic step execution, in the manner of Temporal's workflow sandbox: inside the step
 * realm, the clock (`Date.now()`, `new Date()`, `Date()`, `performance.now()`) and randomness
 * (`Math.random()`, `crypto.randomUUID()`, `crypto.getRandomValues()`, and `randomUUID`,
 * `randomBytes`, `randomInt`, `getRandomValues` of `require('node:crypto')`) go through a
 * {@link Tape}. At capture the tape records every value a call consumed, in order; at replay a
 * tape made from that recording hands the same values back, so the step computes the same output.
 *
 * What cannot be recorded fails loudly instead of diverging silently: timers (`setTimeout`,
 * `setInterval`, `setImmediate`, `queueMicrotask` is allowed) and `WeakRef` /
 * `FinalizationRegistry` throw {@link DeterminismViolationError} when a step uses them. At
 * replay, a step that asks for a value the recording does not have at that point (another kind,
 * or none left) also throws it, naming what was asked and what was recorded.
 *
 * Outside any execution (a module's top-level code, while it loads) the realm sees real values,
 * unrecorded.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import * as nodeCrypto from 'node:crypto';
import { ProvenantError } from '../errors.js';
import type { JsonValue } from '../hash/canonical.js';

/** The kinds of nondeterministic reads a tape records. */
export type NondeterminismKind = 'now' | 'perf' | 'random' | 'uuid' | 'bytes' | 'int';

/** One recorded read: its kind and the value it returned (bytes as base64). */
export type TapeEntry = readonly [kind: NondeterminismKind, value: number | string];

/** The recorded nondeterminism of one execution, stored as a value (format 1). */
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
  next(kind: NondeterminismKind, real: () => number | string): number | string;
}

/** Records every value handed to the step. */
export class RecordingTape implements Tape {
  #reads: TapeEntry[] | undefined;
  next(kind: NondeterminismKind, real: () => number | string): number | string {
    const value = real();
    (this.#reads ??= []).push([kind, value]);
    return value;
  }
  /** The recording, or null when the call consumed nothing (the common case: nothing stored). */
  toRecord(): NondeterminismRecord | null {
    return this.#reads === undefined ? null : { v: 1, reads: this.#reads };
  }
}

/** Hands back recorded values, in order; anything else is a {@link DeterminismViolationError}. */
export class ReplayTape implements Tape {
  readonly #reads: readonly TapeEntry[];
  #at = 0;
  #diverged = false;
  readonly #where: string;

  /** @param record the execution's recording (null: it consumed nothing); @param where names the execution in errors */
  constructor(record: NondeterminismRecord | null, where: string) {
    this.#reads = record?.reads ?? [];
    this.#where = where;
  }

  next(kind: NondeterminismKind): number | string {
    const entry = this.#reads[this.#at];
    if (entry === undefined || entry[0] !== kind) this.#diverged = true;
    if (entry === undefined) {
      throw new DeterminismViolationError(
        `${this.#where}: at replay the step read ${describe(kind)} (read ${this.#at + 1}), but at capture it read nothing more`,
        'The step behaves differently at replay: its code, input or params differ, or it reads a source of nondeterminism that was not recorded.',
      );
    }
    if (entry[0] !== kind) {
      throw new DeterminismViolationError(
        `${this.#where}: at replay the step read ${describe(kind)} (read ${this.#at + 1}), but at capture it read ${describe(entry[0])} there`,
        'The step takes a different path at replay than at capture.',
      );
    }
    this.#at++;
    return entry[1];
  }

  /** True once the step asked for a value the recording does not have at that point. */
  get diverged(): boolean {
    return this.#diverged;
  }

  /** Reads recorded at capture that the replay did not consume. */
  get unread(): number {
    return this.#reads.length - this.#at;
  }
}

function describe(kind: NondeterminismKind): string {
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

function read(kind: NondeterminismKind, real: () => number | string): number | string {
  const tape = current.getStore();
  return tape === undefined ? real() : tape.next(kind, real);
}

const readNumber = (kind: NondeterminismKind, real: () => number): number => Number(read(kind, real));

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
}

/** Hooks bound to the current tape. */
export const realmHooks: RealmHooks = Object.freeze({
  now: () => readNumber('now', Date.now),
  perf: () => readNumber('perf', () => performance.now()),
  random: () => readNumber('random', Math.random),
  violation: (what: string): never => violation(what)(),
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
 * `Math.random`, timers and weak references with versions that go through the hooks.
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
})
`;

/** A nondeterminism record as JSON (for hashing and storage). */
export function nondeterminismJson(record: NondeterminismRecord): JsonValue {
  return { v: record.v, reads: record.reads.map(([k, v]) => [k, v]) };
}
