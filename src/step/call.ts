/**
 * Small rules for calling step functions that capture and replay share: what counts as a
 * promise, how params are handed over, and what message a thrown value records.
 */

/** True for a promise or any thenable a step may return. */
export function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (typeof v === 'object' || typeof v === 'function') && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/** Freeze a value and everything in it (params are handed to steps frozen). */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** The message of what a step threw, as capture records it (errors made in the step's realm are not `instanceof Error` here). */
export function thrownMessage(err: unknown): string {
  const message = typeof err === 'object' && err !== null ? (err as { message?: unknown }).message : undefined;
  return typeof message === 'string' ? message : String(err);
}
