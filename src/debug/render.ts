/**
 * Readable JSON for a terminal: indented, colourised (keys, strings, numbers, literals) when asked,
 * and folded — long strings cut, long arrays and objects shortened, deep nesting summarised, and
 * at most a screenful of lines — so that any value fits where a person looks at it. Also RFC 6902
 * patches, one operation a line, with the value before and after.
 */
import { styleText } from 'node:util';
import { valueAt, type JsonPatchOperation } from '../replay/json-patch.js';

type Style = Parameters<typeof styleText>[0];

/** How to render. */
export interface RenderOptions {
  /** Colour with ANSI escapes. */
  readonly color: boolean;
  /** At most this many lines (the rest is summarised). Default: 40. */
  readonly maxLines?: number;
  /** Strings longer than this are cut. Default: 160. */
  readonly maxString?: number;
  /** Arrays and objects show at most this many entries. Default: 20. */
  readonly maxItems?: number;
  /** Deeper nesting is summarised (`{…3 keys}`). Default: 8. */
  readonly maxDepth?: number;
}

/** A function that colours text, or leaves it when colour is off. */
export type Painter = (style: Style, text: string) => string;

/** A painter for the given setting. */
export function painter(color: boolean): Painter {
  return color ? (style, text) => styleText(style, text) : (_style, text) => text;
}

/**
 * Render a value as indented, folded (and, with `color`, colourised) JSON. `undefined` renders as
 * `undefined`; byte arrays as `<N bytes>`.
 */
export function renderJson(value: unknown, options: RenderOptions): string {
  const paint = painter(options.color);
  const maxString = options.maxString ?? 160;
  const maxItems = options.maxItems ?? 20;
  const maxDepth = options.maxDepth ?? 8;
  const maxLines = options.maxLines ?? 40;
  const lines: string[] = [];
  const dim = (t: string): string => paint('dim', t);

  const scalar = (v: unknown): string => {
    if (v === undefined) return dim('undefined');
    if (v === null) return paint('gray', 'null');
    if (typeof v === 'string') {
      const cut = v.length > maxString ? `${JSON.stringify(v.slice(0, maxString)).slice(0, -1)}…"` : JSON.stringify(v);
      return paint('green', cut) + (v.length > maxString ? dim(` (${v.length} chars)`) : '');
    }
    if (typeof v === 'number' || typeof v === 'bigint') return paint('yellow', String(v));
    if (typeof v === 'boolean') return paint('magenta', String(v));
    if (v instanceof Uint8Array) return dim(`<${v.byteLength} bytes>`);
    return paint('red', String(v));
  };

  const walk = (v: unknown, indent: string, prefix: string, suffix: string, depth: number): void => {
    if (typeof v !== 'object' || v === null || v instanceof Uint8Array) {
      lines.push(`${indent}${prefix}${scalar(v)}${suffix}`);
      return;
    }
    const isArray = Array.isArray(v);
    const entries: [string | null, unknown][] = isArray ? (v as unknown[]).map((x) => [null, x]) : Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
    const [open, close] = isArray ? ['[', ']'] : ['{', '}'];
    if (entries.length === 0) {
      lines.push(`${indent}${prefix}${open}${close}${suffix}`);
      return;
    }
    if (depth >= maxDepth) {
      lines.push(`${indent}${prefix}${dim(`${open}…${entries.length} ${isArray ? 'items' : 'keys'}${close}`)}${suffix}`);
      return;
    }
    lines.push(`${indent}${prefix}${open}`);
    const shown = entries.slice(0, maxItems);
    shown.forEach(([k, x], i) => {
      const comma = i < entries.length - 1 ? ',' : '';
      walk(x, `${indent}  `, k === null ? '' : `${paint('cyan', JSON.stringify(k))}: `, comma, depth + 1);
    });
    if (entries.length > shown.length) lines.push(`${indent}  ${dim(`… ${entries.length - shown.length} more ${isArray ? 'items' : 'keys'}`)}`);
    lines.push(`${indent}${close}${suffix}`);
  };

  walk(value, '', '', '', 0);
  if (lines.length > maxLines) return [...lines.slice(0, maxLines), dim(`… ${lines.length - maxLines} more lines`)].join('\n');
  return lines.join('\n');
}

/** A value on one line, cut to `max` characters. */
export function oneLine(value: unknown, max = 80): string {
  if (value === undefined) return 'undefined';
  const text = value instanceof Uint8Array ? `<${value.byteLength} bytes>` : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * An RFC 6902 patch for people: one operation a line, `replace /delayMinutes  75 → 1`, with the
 * value before taken from `before`.
 */
export function renderPatch(ops: readonly JsonPatchOperation[], before: unknown, options: RenderOptions): string {
  const paint = painter(options.color);
  if (ops.length === 0) return paint('dim', '(no difference)');
  const maxLines = options.maxLines ?? 40;
  const width = Math.min(40, Math.max(...ops.map((o) => o.path.length)));
  const lines = ops.slice(0, maxLines).map((o) => {
    const path = (o.path === '' ? '(whole value)' : o.path).padEnd(width);
    switch (o.op) {
      case 'replace':
        return `${paint('yellow', 'replace')} ${path}  ${paint('red', oneLine(valueAt(before, o.path)))} → ${paint('green', oneLine(o.value))}`;
      case 'add':
        return `${paint('green', 'add    ')} ${path}  ${paint('green', oneLine(o.value))}`;
      case 'remove':
        return `${paint('red', 'remove ')} ${path}  ${paint('red', oneLine(valueAt(before, o.path)))}`;
      default:
        return `${o.op.padEnd(7)} ${path}`;
    }
  });
  if (ops.length > maxLines) lines.push(paint('dim', `… ${ops.length - maxLines} more operations`));
  return lines.join('\n');
}
