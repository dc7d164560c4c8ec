/** The error a promise rejects with; fails the test if it resolves instead. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected the promise to reject');
}

/** Expect a promise to reject with a ProvenantError of this code whose message matches. */
export async function expectRejection(promise: Promise<unknown>, code: string, message?: RegExp): Promise<Error & { code?: string; context?: Record<string, unknown> }> {
  const err = (await rejection(promise)) as Error & { code?: string; context?: Record<string, unknown> };
  if (err.code !== code) throw new Error(`expected a ${code} error, got ${err.code ?? 'no code'}: ${err.message}`);
  if (message !== undefined && !message.test(err.message)) throw new Error(`expected the message to match ${String(message)}: ${err.message}`);
  return err;
}
