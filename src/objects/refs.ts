/**
 * Object ids and times as users write them: validated once, with errors that say what is wrong.
 */
import { ProvenantError } from '../errors.js';

/** Longest object id accepted. */
export const MAX_OBJECT_ID_LENGTH = 512;

/** A time as a user gives it: ISO 8601 with an offset (`2024-10-27T10:00:00Z`), epoch milliseconds, or a Date. */
export type TimeInput = string | number | Date;

/**
 * Check an object id (`customers/42`): non-empty, at most {@link MAX_OBJECT_ID_LENGTH} characters,
 * no control characters, no empty, `.` or `..` segments, no leading or trailing `/`.
 * @returns the id unchanged
 * @throws ProvenantError INPUT_INVALID naming the problem
 */
export function validateObjectId(id: string): string {
  const bad = (reason: string): never => {
    throw new ProvenantError('INPUT_INVALID', `object id ${JSON.stringify(id.length > 80 ? `${id.slice(0, 80)}…` : id)} is invalid: ${reason}`, {
      hint: 'Object ids are path-like names such as customers/42: segments of printable characters separated by single slashes.',
      context: { objectId: id },
    });
  };
  if (typeof id !== 'string' || id.length === 0) return bad('it is empty');
  if (id.length > MAX_OBJECT_ID_LENGTH) return bad(`it is ${id.length} characters long (at most ${MAX_OBJECT_ID_LENGTH})`);
  // eslint-disable-next-line no-control-regex
  const control = /[\u0000-\u001f\u007f-\u009f]/.exec(id);
  if (control !== null) return bad(`it contains the control character U+${control[0].charCodeAt(0).toString(16).padStart(4, '0').toUpperCase()} at position ${control.index}`);
  if (id.startsWith('/') || id.endsWith('/')) return bad('it starts or ends with "/"');
  for (const segment of id.split('/')) {
    if (segment === '') return bad('it has an empty segment ("//")');
    if (segment === '..' || segment === '.') return bad(`it has a "${segment}" segment`);
  }
  if (id.includes('@')) return bad('it contains "@" (reserved for objectId@versionId references)');
  return id;
}

const ISO_WITH_OFFSET = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/i;

/**
 * A time as epoch milliseconds. Accepts ISO 8601 with an offset or `Z` (a time without one would
 * depend on the machine's zone, so it is refused), epoch milliseconds (number or digits), or a Date.
 * @throws ProvenantError INPUT_INVALID
 */
export function parseTime(input: TimeInput): number {
  const bad = (reason: string): never => {
    throw new ProvenantError('INPUT_INVALID', `time ${JSON.stringify(String(input))} is invalid: ${reason}`, {
      hint: 'Give an ISO 8601 time with an offset, e.g. 2024-10-27T10:00:00Z or 2024-10-27T12:00:00+02:00, or epoch milliseconds.',
      context: { time: String(input) },
    });
  };
  let ms: number;
  if (input instanceof Date) ms = input.getTime();
  else if (typeof input === 'number') ms = input;
  else if (typeof input === 'string' && /^-?\d+$/.test(input.trim())) ms = Number(input.trim());
  else if (typeof input === 'string') {
    const text = input.trim();
    if (!ISO_WITH_OFFSET.test(text)) {
      return /^\d{4}-\d{2}-\d{2}(T[\d:.]+)?$/.test(text) ? bad('it has no time zone offset (add Z or +hh:mm)') : bad('it is not ISO 8601 or epoch milliseconds');
    }
    ms = Date.parse(text);
  } else return bad('it is not a time');
  if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15) return bad('it is out of range');
  return Math.trunc(ms);
}

/**
 * The instant (epoch microseconds) an as-of time stands for: a time names a whole millisecond, so
 * `10:00:00.000` includes versions made during that millisecond (and a version's own printed
 * `validFrom` finds it).
 */
export function asOfMicros(ms: number): number {
  return ms * 1000 + 999;
}

/** Epoch microseconds as ISO 8601 (millisecond precision). */
export function isoFromMicros(us: number): string {
  return new Date(Math.floor(us / 1000)).toISOString();
}
