import { parseFlightTime } from './lib/time.js';

/** A flight as the vega-datasets files hold it. */
export interface RawFlight {
  date: string;
  delay: number;
  distance: number;
  origin: string;
  destination: string;
}

/** A validated flight with its route and departure time split out. */
export interface Flight {
  departure: string;
  hour: number;
  route: string;
  origin: string;
  destination: string;
  delayMinutes: number;
  distanceMiles: number;
}

/** Validate a raw flight and give it a route key and a parsed departure time. */
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
    delayMinutes: raw.delay,
    distanceMiles: raw.distance,
  };
}
