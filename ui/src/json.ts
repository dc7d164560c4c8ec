/** Foldable JSON (native <details>: keyboard usable) and a side-by-side diff. */
import { h } from './dom.js';

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A JSON value as a foldable tree; `changed` marks JSON Pointer paths to highlight. */
export function jsonTree(value: unknown, options: { open?: number; changed?: Set<string>; path?: string; label?: string } = {}): HTMLElement {
  const path = options.path ?? '';
  const open = options.open ?? 2;
  const changed = options.changed;
  const mark = changed !== undefined && changed.has(path) ? ' changed' : '';
  const label = options.label === undefined ? null : h('span', { class: 'j-key' }, `${options.label}: `);
  if (Array.isArray(value) || isObj(value)) {
    const entries: [string, unknown][] = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
    const brackets = Array.isArray(value) ? ['[', ']'] : ['{', '}'];
    const details = h('details', { class: `j-node${mark}` });
    if (open > 0) details.open = true;
    details.append(h('summary', {}, label, brackets[0], h('span', { class: 'j-count' }, ` ${entries.length} ${Array.isArray(value) ? 'items' : 'keys'} `), brackets[1]));
    const body = h('div', { class: 'j-body' });
    for (const [k, v] of entries.slice(0, 500)) {
      body.append(jsonTree(v, { open: open - 1, ...(changed === undefined ? {} : { changed }), path: `${path}/${k.replaceAll('~', '~0').replaceAll('/', '~1')}`, label: k }));
    }
    if (entries.length > 500) body.append(h('div', { class: 'hint' }, `… ${entries.length - 500} more`));
    details.append(body);
    return details;
  }
  const cls = value === null ? 'j-null' : `j-${typeof value}`;
  return h('div', { class: `j-leaf${mark}` }, label, h('span', { class: cls }, JSON.stringify(value)));
}

/** JSON Pointer paths where `a` and `b` differ (containers included when a child differs). */
export function diffPaths(a: unknown, b: unknown, path = '', out = new Set<string>()): Set<string> {
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.max(a.length, b.length); i++) diffPaths(a[i], b[i], `${path}/${i}`, out);
  } else if (isObj(a) && isObj(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) diffPaths(a[k], b[k], `${path}/${k.replaceAll('~', '~0').replaceAll('/', '~1')}`, out);
  } else if (JSON.stringify(a) !== JSON.stringify(b)) {
    out.add(path);
  } else {
    return out;
  }
  if (out.size > 0) {
    // Mark ancestors of changed paths so folded nodes show a change inside.
    for (const p of [...out]) {
      let q = p;
      while (q.length > 0) {
        q = q.slice(0, q.lastIndexOf('/'));
        out.add(q);
      }
    }
  }
  return out;
}

/** Very small JavaScript highlighter: comments, strings, keywords, numbers. */
export function highlight(code: string): HTMLElement {
  const pre = h('pre', { class: 'code', tabindex: 0, 'aria-label': 'step source' });
  const re = /(\/\/[^\n]*|\/\*[\s\S]*?\*\/)|("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`)|\b(const|let|var|function|return|if|else|for|while|of|in|new|class|export|import|from|default|async|await|throw|try|catch|typeof|null|undefined|true|false|this)\b|\b(\d+(?:\.\d+)?)\b/g;
  let last = 0;
  for (const m of code.matchAll(re)) {
    const at = m.index ?? 0;
    if (at > last) pre.append(code.slice(last, at));
    const cls = m[1] !== undefined ? 'c-comment' : m[2] !== undefined ? 'c-string' : m[3] !== undefined ? 'c-keyword' : 'c-number';
    pre.append(h('span', { class: cls }, m[0]));
    last = at + m[0].length;
  }
  pre.append(code.slice(last));
  return pre;
}
