/** Terminal output helpers: tables, colours (only on a TTY), times, and folded JSON. */
import { styleText } from 'node:util';

type Style = Parameters<typeof styleText>[0];

/** Colour text when standard output is a terminal and NO_COLOR is unset. */
export function paint(style: Style, text: string, stream: NodeJS.WriteStream = process.stdout): string {
  return stream.isTTY && process.env.NO_COLOR === undefined ? styleText(style, text) : text;
}

/** A plain text table with a header row; columns padded to their widest cell. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [paint('bold', line(header)), ...rows.map(line)].join('\n');
}

/** Epoch microseconds as an ISO 8601 time with milliseconds. */
export function isoUs(us: number): string {
  return new Date(Math.floor(us / 1000)).toISOString();
}

/** A duration in microseconds, human-readable. */
export function durationUs(us: number): string {
  if (us < 1000) return `${us} µs`;
  if (us < 1_000_000) return `${(us / 1000).toFixed(1)} ms`;
  return `${(us / 1_000_000).toFixed(2)} s`;
}

/** A short form of a content hash for tables: `sha256:1a2b3c4d5e6f`. */
export function shortHash(hash: string | null): string {
  return hash === null ? '-' : hash.slice(0, 19);
}

/** A number with thousands separators. */
export function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** Pretty JSON, with long strings and long arrays folded so one value fits a screen. */
export function foldedJson(value: unknown, maxLines = 60): string {
  const fold = (v: unknown): unknown => {
    if (typeof v === 'string' && v.length > 200) return `${v.slice(0, 200)}… (${v.length} chars)`;
    if (Array.isArray(v)) return v.length > 20 ? [...v.slice(0, 20).map(fold), `… ${v.length - 20} more items`] : v.map(fold);
    if (v instanceof Uint8Array) return `<${v.byteLength} bytes>`;
    if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fold(x)]));
    return v;
  };
  const lines = JSON.stringify(fold(value), null, 2).split('\n');
  return lines.length > maxLines ? [...lines.slice(0, maxLines), `… ${lines.length - maxLines} more lines`].join('\n') : lines.join('\n');
}
