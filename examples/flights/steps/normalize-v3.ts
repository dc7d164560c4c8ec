import { parseFlightTime } from './lib/time.js';
import type { Flight, RawFlight } from './normalize.js';

/** A record of the partner feed says its delay unit. */
interface FeedFlight extends RawFlight {
  delayUnit?: 'seconds' | 'minutes';
}

/**
 * normalize, version 3: the fix of version 2's unit slip — a delay is converted from seconds only
 * when the record says it is in seconds (`delayUnit: 'seconds'`, the partner feed), whatever its size.
 */
export default function normalize(raw: FeedFlight): Flight {
  if (typeof raw.origin !== 'string' || typeof raw.destination !== 'string') throw new Error('origin and destination are required');
  if (!Number.isFinite(raw.delay) || !Number.isFinite(raw.distance)) throw new Error('delay and distance must be numbers');
  const departure = parseFlightTime(raw.date);
  return {
    departure,
    hour: Number(departure.slice(11, 13)),
    route: `${raw.origin}-${raw.destination}`,
    origin: raw.origin,
    destination: raw.destination,
    delayMinutes: raw.delayUnit === 'seconds' ? Math.round(raw.delay / 60) : raw.delay,
    distanceMiles: raw.distance,
  };
}
