/**
 * A bisect predicate (`provenant bisect --good examples/flights/predicates/delay-kept.ts`): a flight's
 * output is good when it keeps the delay the source record reports, in minutes. It judges any step's
 * output that carries `delayMinutes`; outputs without it are not its business (good).
 */
export default function delayKept(output: unknown, record: unknown): boolean {
  if (typeof output !== 'object' || output === null || !('delayMinutes' in output)) return true;
  const source = record as { delay?: unknown };
  return (output as { delayMinutes: unknown }).delayMinutes === source.delay;
}
