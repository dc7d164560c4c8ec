/**
 * Posting OpenLineage events to a consumer (Marquez: `POST <base>/api/v1/lineage`), one event per
 * request, in order, with retries on network errors and 5xx/429 answers; a 4xx refusal stops at
 * once with the consumer's answer in the error.
 */
import { ProvenantError } from '../errors.js';
import type { RunEvent } from './openlineage.js';

/** Options of {@link emitOpenLineage}. */
export interface EmitOptions {
  /** Tries per event. Default: 4. */
  readonly attempts?: number;
  /** First wait between tries, doubling. Default: 250 ms. */
  readonly backoffMs?: number;
}

/** The endpoint for a URL: a bare origin gets Marquez's `/api/v1/lineage`. */
export function lineageEndpoint(url: string): string {
  const u = new URL(url);
  if (u.pathname === '/' || u.pathname === '') u.pathname = '/api/v1/lineage';
  return u.href;
}

/**
 * Post every event; resolves with how many were accepted.
 * @throws ProvenantError INPUT_INVALID when the consumer refuses an event (4xx);
 *   SOURCE_UNAVAILABLE when it cannot be reached or keeps failing after the retries
 */
export async function emitOpenLineage(url: string, events: readonly RunEvent[], options: EmitOptions = {}): Promise<number> {
  const endpoint = lineageEndpoint(url);
  const attempts = options.attempts ?? 4;
  let sent = 0;
  for (const event of events) {
    let wait = options.backoffMs ?? 250;
    for (let attempt = 1; ; attempt++) {
      let problem: string;
      try {
        const res = await fetch(endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(event) });
        if (res.ok) break;
        const body = (await res.text()).slice(0, 500);
        if (res.status >= 400 && res.status < 500 && res.status !== 429) {
          throw new ProvenantError('INPUT_INVALID', `${endpoint} refused event ${sent + 1} of ${events.length} (${event.eventType} ${event.job.name}): HTTP ${res.status} ${body}`, {
            hint: 'The consumer rejected the event itself: check its version and logs; nothing after this event was sent.',
            context: { url: endpoint, status: res.status, eventType: event.eventType, runId: event.run.runId, sent },
          });
        }
        problem = `HTTP ${res.status} ${body}`;
      } catch (err) {
        if (err instanceof ProvenantError) throw err;
        problem = (err as Error).message;
      }
      if (attempt >= attempts) {
        throw new ProvenantError('SOURCE_UNAVAILABLE', `could not post OpenLineage events to ${endpoint}: ${problem} (after ${attempts} tries; ${sent} of ${events.length} sent)`, {
          hint: 'Check that the consumer (e.g. Marquez) is running and reachable, then export again: events are idempotent per run.',
          context: { url: endpoint, sent, total: events.length },
          retryable: true,
        });
      }
      await new Promise((r) => setTimeout(r, wait));
      wait *= 2;
    }
    sent++;
  }
  return sent;
}
