/** Delay classes, by minutes late. */
export type DelayClass = 'early' | 'on-time' | 'late' | 'severe';

/** Classify a delay given the two thresholds. */
export function delayClass(minutes: number, lateAfter: number, severeAfter: number): DelayClass {
  if (minutes < 0) return 'early';
  if (minutes <= lateAfter) return 'on-time';
  if (minutes <= severeAfter) return 'late';
  return 'severe';
}
