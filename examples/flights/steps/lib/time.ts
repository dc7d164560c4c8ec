/** Parse the flights data's local times ("2001/01/14 21:55") into ISO 8601 (no zone: local time at origin). */
export function parseFlightTime(text: string): string {
  const m = /^(\d{4})\/(\d{2})\/(\d{2}) (\d{2}):(\d{2})$/.exec(text);
  if (m === null) {
    // Already ISO (the Parquet file) or something else: accept ISO, refuse the rest.
    if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(text)) return text.slice(0, 16);
    throw new Error(`unrecognized time "${text}"`);
  }
  return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}`;
}
