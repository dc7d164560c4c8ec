import type { StepContext } from 'provenant';
import type { ClassifiedFlight } from './classify.js';

/** Running figures of one route, kept in the step's state. */
interface RouteFigures {
  flights: number;
  totalDelayMinutes: number;
  late: number;
}

/** A flight with its route's running figures up to and including it. */
export interface FlightWithRouteStats extends ClassifiedFlight {
  routeFlights: number;
  routeMeanDelayMinutes: number;
  routeLateShare: number;
}

/**
 * A stateful step: a running aggregate keyed by route, kept in `ctx.state` (declared
 * `stateful: true` in the pipeline). Provenant snapshots the state at every checkpoint and
 * restores it at resume and replay, so these running figures replay bit for bit.
 */
export default function routeStats(flight: ClassifiedFlight, _params: unknown, ctx: StepContext): FlightWithRouteStats {
  const state = ctx.state as Record<string, RouteFigures>;
  const figures = (state[flight.route] ??= { flights: 0, totalDelayMinutes: 0, late: 0 });
  figures.flights += 1;
  figures.totalDelayMinutes += flight.delayMinutes;
  if (flight.delayClass === 'late' || flight.delayClass === 'severe') figures.late += 1;
  return {
    ...flight,
    routeFlights: figures.flights,
    routeMeanDelayMinutes: Math.round((figures.totalDelayMinutes / figures.flights) * 10) / 10,
    routeLateShare: Math.round((figures.late / figures.flights) * 1000) / 1000,
  };
}
