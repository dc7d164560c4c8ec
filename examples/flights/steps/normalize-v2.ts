import { parseFlightTime } from './lib/time.js';
import type { Flight, RawFlight } from './normalize.js';

/**
 * normalize, version 2: also reads a new partner feed, which reports delays in seconds.
 *
 * It has a subtle unit slip, planted for `provenant demo`: it takes any delay of an hour or more
 * for seconds, so a flight 75 minutes late becomes 1 minute late (and "on time"). Flights delayed
 * by less than an hour are normalized exactly as version 1 does. `provenant bisect` finds it;
 * `normalize-v3.ts` is the fix.
 */
export default function normalize(raw: RawFlight): Flight {
  if (typeof raw.origin !== 'string' || typeof raw.destination !== 'string') throw new Error('origin and destination are required');
  if (!Number.isFinite(raw.delay) || !Number.isFinite(raw.distance)) throw new Error('delay and distance must be numbers');
  const departure = parseFlightTime(raw.date);
  return {
    departure,
    hour: Number(departure.slice(11, 13)),
    route: `${raw.origin}-${raw.destination}`,
    origin: raw.origin,
    destination: raw.destination,
    delayMinutes: toMinutes(raw.delay),
    distanceMiles: raw.distance,
  };
}

/** The partner feed's delays are in seconds; ours in minutes. (The slip: a large value is not a unit.) */
function toMinutes(delay: number): number {
  return Math.abs(delay) >= 60 ? Math.round(delay / 60) : delay;
}
