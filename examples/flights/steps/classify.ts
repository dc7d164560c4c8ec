import type { Flight } from './normalize.js';
import { delayClass, type DelayClass } from './lib/thresholds.js';

/** Parameters of the classify step. */
export interface ClassifyParams {
  lateAfterMinutes: number;
  severeAfterMinutes: number;
}

/** A flight with its delay class and average speed. */
export interface ClassifiedFlight extends Flight {
  delayClass: DelayClass;
  /** Distance per scheduled hour of delay budget: a simple derived figure for the demo. */
  longHaul: boolean;
}

/** Add the delay class (by the params' thresholds) and a long-haul flag. */
export default function classify(flight: Flight, params: ClassifyParams): ClassifiedFlight {
  return {
    ...flight,
    delayClass: delayClass(flight.delayMinutes, params.lateAfterMinutes, params.severeAfterMinutes),
    longHaul: flight.distanceMiles >= 1500,
  };
}
