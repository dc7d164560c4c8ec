/** Tiny DOM helpers: elements from tag, attributes and children. */

type Child = Node | string | number | null | undefined | false;
type Kids = (Child | Child[] | Child[][])[];
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

/** An HTML element with attributes (`on*` become listeners) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Kids): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An SVG element. */
export function s<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Kids): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el: Element, attrs: Attrs): void {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(el: Element, children: Kids): void {
  for (const c of children.flat(2) as Child[]) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace an element's children. */
export function replace(el: Element, ...children: Kids): void {
  el.replaceChildren();
  append(el, children);
}

/** A loading indicator (announced to screen readers). */
export function loading(what: string): HTMLElement {
  return h('p', { class: 'state loading', role: 'status', 'aria-live': 'polite' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), `Loading ${what}…`);
}

/** An empty state with a hint. */
export function empty(text: string, hint?: string): HTMLElement {
  return h('div', { class: 'state empty', role: 'status' }, h('p', {}, text), hint === undefined ? null : h('p', { class: 'hint' }, hint));
}

/** An error state: what went wrong and what to do. */
export function failure(err: unknown): HTMLElement {
  const e = err as { status?: number; detail?: string; hint?: string; message?: string };
  return h(
    'div',
    { class: 'state error', role: 'alert' },
    h('p', {}, h('strong', {}, e.status === undefined ? 'Error' : `Error ${e.status}`), ': ', e.detail ?? e.message ?? String(err)),
    e.hint === undefined ? null : h('p', { class: 'hint' }, e.hint),
  );
}

/** `sha256:abcdef…` shortened for display. */
export function short(hash: string | null | undefined, n = 10): string {
  if (hash === null || hash === undefined) return '—';
  return hash.startsWith('sha256:') ? hash.slice(7, 7 + n) : hash.slice(0, n);
}

/** A link to a view of the app. */
export function link(route: string, params: Record<string, string>, text: string, attrs: Attrs = {}): HTMLAnchorElement {
  return h('a', { href: href(route, params), ...attrs }, text);
}

/** The hash URL of a view. */
export function href(route: string, params: Record<string, string> = {}): string {
  const q = new URLSearchParams(params).toString();
  return `#/${route}${q === '' ? '' : `?${q}`}`;
}

/** A date for people (local time, seconds). */
export function when(iso: string | null | undefined): string {
  if (iso === null || iso === undefined) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** A short form of a UUIDv7 for display: its random tail (its head is a timestamp, the same for ids made together). */
export function shortId(id: string | null | undefined): string {
  return id === null || id === undefined ? '—' : `…${id.slice(-8)}`;
}
