/**
 * Lineage graph: ancestors (left) and descendants (right) of an object, version, value or
 * execution, laid out left to right by dagre, or d3-dag's faster layout for large graphs. Executions are boxes with the step id and short
 * version hash; versions are rounded with object id and ordinal; values are pills. Click (or
 * Enter) a node to inspect it; collapse what lies beyond a node; group executions and the
 * versions they made by step; search. Pan by dragging, zoom with the wheel or + / −.
 */
import { getJson, seg } from '../api.js';
import { empty, failure, h, link, loading, replace, s, short, when } from '../dom.js';
import { layoutGraph, type LayoutUnit } from '../layout/graph-layout.js';

interface LNode {
  id: string;
  kind: 'execution' | 'value' | 'version';
  depth: number;
  label: string;
  stepId?: string;
  versionHash?: string;
  objectId?: string;
  versionId?: string;
  ordinal?: number;
  contentHash?: string;
  executionId?: string;
  status?: 'ok' | 'failed';
  time?: string;
}
interface LEdge { from: string; to: string; kind: string }
interface LGraph { root: LNode; direction: 'up' | 'down'; nodes: LNode[]; edges: LEdge[]; truncated: boolean; cut?: number }

/** A node as drawn: one lineage node, or a group of them. */
interface DNode {
  id: string;
  kind: 'execution' | 'value' | 'version' | 'group';
  title: string;
  sub: string;
  members: LNode[];
  failed: boolean;
  root: boolean;
}

/** Above this many nodes, executions are grouped by step at first. */
const AUTO_GROUP = 2500;
/** Text for SVG markup. */
const esc = (t: string): string => t.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');

/** Above this many drawn nodes, the faster layout (see draw). */
const LARGE = 600;

export async function lineageView(root: HTMLElement, params: URLSearchParams): Promise<() => void> {
  const ref = params.get('ref') ?? '';
  const asOf = params.get('as_of');
  const title = h('h1', {}, 'Lineage of ', h('code', {}, ref));
  root.append(title);
  if (ref === '') {
    root.append(empty('Nothing to trace.', 'Open an object from the home page, or give ?ref=<object id | version id | execution id | sha256:…>.'));
    return () => undefined;
  }
  const status = h('div', {}, loading('lineage'));
  root.append(status);
  const q = (dir: string): string => `/lineage/${seg(ref)}?direction=${dir}${asOf === null ? '' : `&as_of=${encodeURIComponent(asOf)}`}`;
  let up: LGraph;
  let down: LGraph;
  try {
    const tf = performance.now();
    [up, down] = await Promise.all([getJson<LGraph>(q('up')), getJson<LGraph>(q('down'))]);
    document.body.dataset.lineageFetchMs = String(Math.round(performance.now() - tf));
  } catch (err) {
    replace(status, failure(err));
    return () => undefined;
  }
  status.remove();

  // ---- model --------------------------------------------------------------------------------
  const nodes = new Map<string, LNode>();
  for (const n of [...up.nodes, ...down.nodes]) if (!nodes.has(n.id)) nodes.set(n.id, n);
  const edgeKeys = new Set<string>();
  const edges: LEdge[] = [];
  for (const e of [...up.edges, ...down.edges]) {
    const k = `${e.from}\u0000${e.to}`;
    if (edgeKeys.has(k) || !nodes.has(e.from) || !nodes.has(e.to)) continue;
    edgeKeys.add(k);
    edges.push(e);
  }
  const rootId = up.root.id;
  const cut = (up.cut ?? 0) + (down.cut ?? 0);
  const truncated = up.truncated || down.truncated;

  const state = {
    group: params.get('group') === null ? nodes.size > AUTO_GROUP : params.get('group') === '1',
    expandedSteps: new Set<string>(),
    collapsed: new Set<string>(),
    selected: undefined as string | undefined,
    matches: [] as string[],
    match: -1,
  };

  // ---- chrome -------------------------------------------------------------------------------
  const summary = h('p', { class: 'hint', 'aria-live': 'polite' });
  const search = h('input', { type: 'search', id: 'lineage-search', placeholder: 'Search step, object, hash… (/ to focus)', 'aria-label': 'search nodes' });
  const searchStatus = h('span', { class: 'hint', 'aria-live': 'polite' });
  const groupBox = h('input', { type: 'checkbox', id: 'group-by-step' });
  groupBox.checked = state.group;
  const toolbar = h(
    'div',
    { class: 'toolbar', role: 'toolbar', 'aria-label': 'graph tools' },
    h('form', { class: 'row', onsubmit: (ev: Event) => { ev.preventDefault(); nextMatch(); } }, search, h('button', { type: 'submit' }, 'Find next'), searchStatus),
    h('label', { class: 'check' }, groupBox, ' Group by step'),
    h('button', { type: 'button', onclick: () => zoomBy(1.25), 'aria-label': 'zoom in' }, '+'),
    h('button', { type: 'button', onclick: () => zoomBy(0.8), 'aria-label': 'zoom out' }, '−'),
    h('button', { type: 'button', onclick: () => fit() }, 'Fit'),
    h('button', { type: 'button', onclick: () => { state.collapsed.clear(); state.expandedSteps.clear(); draw(); } }, 'Expand all'),
  );
  const svg = s('svg', { class: 'graph', role: 'group', 'aria-label': 'lineage graph', tabindex: 0 });
  const viewport = s('g');
  svg.append(viewport);
  const inspector = h('aside', { class: 'inspector card', 'aria-label': 'selected node', 'aria-live': 'polite' });
  const legend = h(
    'div',
    { class: 'legend' },
    h('span', { class: 'key execution' }, 'execution'),
    h('span', { class: 'key version' }, 'version'),
    h('span', { class: 'key value' }, 'value'),
    h('span', { class: 'key group' }, 'group'),
    h('span', { class: 'key failed' }, 'failed'),
    h('span', { class: 'key root' }, 'traced'),
  );
  root.append(summary, toolbar, h('div', { class: 'graph-wrap' }, h('div', { class: 'graph-box' }, svg, legend), inspector));
  groupBox.addEventListener('change', () => {
    state.group = groupBox.checked;
    state.expandedSteps.clear();
    draw();
  });
  replace(inspector, h('p', { class: 'hint' }, 'Select a node (click, or Tab then Enter) to inspect it.'));

  // ---- display graph ------------------------------------------------------------------------
  let drawn = new Map<string, DNode>();
  let boxes = new Map<string, { x: number; y: number; w: number; h: number }>();
  let memberOf = new Map<string, string>();

  function displayId(n: LNode): string {
    if (!state.group || n.id === rootId) return n.id;
    if (n.kind === 'execution' && n.stepId !== undefined && !state.expandedSteps.has(n.stepId)) return `group:step:${n.stepId}`;
    if (n.kind === 'version' && n.executionId !== undefined) {
      const e = nodes.get(`execution:${n.executionId}`);
      if (e?.stepId !== undefined && !state.expandedSteps.has(e.stepId)) return `group:step:${e.stepId}`;
    }
    return n.id;
  }

  function build(): { dnodes: Map<string, DNode>; dedges: [string, string][] } {
    const dnodes = new Map<string, DNode>();
    memberOf = new Map();
    for (const n of nodes.values()) {
      const id = displayId(n);
      memberOf.set(n.id, id);
      let d = dnodes.get(id);
      if (d === undefined) {
        d = id.startsWith('group:') ? { id, kind: 'group', title: '', sub: '', members: [], failed: false, root: false } : { ...describe(n), members: [] };
        dnodes.set(id, d);
      }
      d.members.push(n);
      if (n.status === 'failed') d.failed = true;
      if (n.id === rootId) d.root = true;
    }
    for (const d of dnodes.values()) {
      if (d.kind !== 'group') continue;
      const execs = d.members.filter((m) => m.kind === 'execution');
      d.title = `${d.id.slice('group:step:'.length)} ×${execs.length}`;
      d.sub = `${execs.length} executions, ${d.members.length - execs.length} versions`;
    }
    const seen = new Set<string>();
    const dedges: [string, string][] = [];
    for (const e of edges) {
      const a = memberOf.get(e.from) as string;
      const b = memberOf.get(e.to) as string;
      if (a === b) continue;
      const k = `${a}\u0000${b}`;
      if (seen.has(k)) continue;
      seen.add(k);
      dedges.push([a, b]);
    }
    // Collapsed nodes: what is reachable from the root only through them is hidden.
    const adj = new Map<string, string[]>();
    for (const [a, b] of dedges) {
      (adj.get(a) ?? adj.set(a, []).get(a)!).push(b);
      (adj.get(b) ?? adj.set(b, []).get(b)!).push(a);
    }
    const start = memberOf.get(rootId) as string;
    const visible = new Set<string>([start]);
    const queue = [start];
    while (queue.length > 0) {
      const id = queue.pop() as string;
      if (state.collapsed.has(id) && id !== start) continue;
      for (const next of adj.get(id) ?? []) {
        if (visible.has(next)) continue;
        visible.add(next);
        queue.push(next);
      }
    }
    for (const id of [...dnodes.keys()]) if (!visible.has(id)) dnodes.delete(id);
    return { dnodes, dedges: dedges.filter(([a, b]) => visible.has(a) && visible.has(b)) };
  }

  function describe(n: LNode): Omit<DNode, 'members'> {
    if (n.kind === 'execution') return { id: n.id, kind: 'execution', title: n.stepId ?? 'execution', sub: `@${short(n.versionHash, 8)}`, failed: n.status === 'failed', root: n.id === rootId };
    if (n.kind === 'version') return { id: n.id, kind: 'version', title: n.objectId ?? n.label, sub: `v${n.ordinal ?? '?'} · ${short(n.contentHash, 8)}`, failed: false, root: n.id === rootId };
    return { id: n.id, kind: 'value', title: 'value', sub: short(n.contentHash ?? n.id.replace(/^value:/, ''), 12), failed: false, root: n.id === rootId };
  }

  // ---- drawing ------------------------------------------------------------------------------
  let view = { x: 0, y: 0, k: 1 };
  let graphSize = { w: 1, h: 1 };
  // Below this zoom a node's text is under 3 px tall: not drawn (level of detail), which keeps a
  // graph of thousands of nodes quick to paint; zooming in brings it back.
  const TEXT_MIN_ZOOM = 0.25;
  const applyView = (): void => {
    viewport.setAttribute('transform', `translate(${view.x},${view.y}) scale(${view.k})`);
    svg.classList.toggle('far', view.k < TEXT_MIN_ZOOM);
  };

  function draw(): void {
    const t0 = performance.now();
    const { dnodes, dedges } = build();
    const tb = performance.now();
    drawn = dnodes;
    // Large graphs: an execution and the one version it made are laid out as one unit (drawn side
    // by side, still styled apart), ranks by longest path and no crossing-reduction sweeps.
    const large = dnodes.size > LARGE;
    const widthOf = (d: DNode): number => Math.min(230, Math.max(96, 7.2 * Math.max(d.title.length, d.sub.length) + 20));
    const outs = new Map<string, string[]>();
    const ins = new Map<string, number>();
    for (const [a, b] of dedges) {
      (outs.get(a) ?? outs.set(a, []).get(a)!).push(b);
      ins.set(b, (ins.get(b) ?? 0) + 1);
    }
    const pairedWith = new Map<string, string>(); // version id -> execution id
    if (large) {
      for (const d of dnodes.values()) {
        if (d.kind !== 'execution') continue;
        const o = outs.get(d.id) ?? [];
        const v = o.length === 1 ? dnodes.get(o[0] as string) : undefined;
        if (v !== undefined && v.kind === 'version' && ins.get(v.id) === 1) pairedWith.set(v.id, d.id);
      }
    }
    const unit = (id: string): string => pairedWith.get(id) ?? id;
    const GAP = 26;
    const HEIGHT = 38;
    const partner = new Map<string, string>(); // execution id -> version id
    for (const [v, e] of pairedWith) partner.set(e, v);
    const units: LayoutUnit[] = [];
    for (const d of dnodes.values()) {
      if (pairedWith.has(d.id)) continue;
      const p = partner.get(d.id);
      units.push({ id: d.id, width: widthOf(d) + (p === undefined ? 0 : GAP + widthOf(dnodes.get(p) as DNode)), height: HEIGHT });
    }
    const unitEdges: [string, string][] = [];
    for (const [a, b] of dedges) {
      const ua = unit(a);
      const ub = unit(b);
      if (ua !== ub) unitEdges.push([ua, ub]);
    }

    // Nodes: markup built as text (escaped) and parsed once — far faster than thousands of
    // createElementNS calls — and placed when the layout is known.
    const order = [...dnodes.values()];
    const markup: string[] = [];
    for (const d of order) {
      const w = widthOf(d);
      const collapsed = state.collapsed.has(d.id);
      const cls = ['node', d.kind, d.failed ? 'failed' : '', d.root ? 'root' : '', collapsed ? 'collapsed' : '', d.id === state.selected ? 'selected' : ''].filter(Boolean).join(' ');
      const rx = d.kind === 'execution' ? 2 : d.kind === 'value' ? 19 : 8;
      const title = d.title.length > 30 ? `${d.title.slice(0, 29)}…` : d.title;
      markup.push(
        `<g class="${cls}" tabindex="0" role="button" data-id="${esc(d.id)}" aria-label="${esc(`${d.kind} ${d.title} ${d.sub}`)}">` +
          `<rect width="${w}" height="${HEIGHT}" rx="${rx}"></rect><text x="8" y="15" class="title">${esc(title)}</text><text x="8" y="30" class="sub">${esc(d.sub)}</text>` +
          (collapsed ? `<text x="${w - 14}" y="15" class="badge">+</text>` : '') +
          '</g>',
      );
    }
    const frame = svg.getBoundingClientRect();
    const edgeLayer = s('g', { class: 'edges' });
    const nodeLayer = s('g', { class: 'nodes' });
    nodeLayer.innerHTML = markup.join('');
    const tm = performance.now();
    svg.setAttribute('data-nodes', String(dnodes.size));
    const total = nodes.size;
    const text = `${total} nodes, ${edges.length} edges${dnodes.size === total ? '' : ` — showing ${dnodes.size} (${state.group ? 'grouped by step' : 'collapsed'})`}${cut > 0 ? ` — ${cut} nodes you may not see were cut` : ''}${truncated ? ' — truncated by the server’s limit' : ''}.`;

    const out = layoutGraph({ units, edges: unitEdges, fast: large });
    const tp = performance.now();
    boxes = new Map();
    // All edges as one path, and all arrowheads as another: two elements, not thousands.
    const lines: string[] = [];
    const heads: string[] = [];
    const arrow = (from: { x: number; y: number }, to: { x: number; y: number }): void => {
      const dx = to.x - from.x;
      const dy = to.y - from.y;
      const len = Math.hypot(dx, dy) || 1;
      const ux = dx / len;
      const uy = dy / len;
      const bx = to.x - ux * 7;
      const by = to.y - uy * 7;
      heads.push(`M${to.x.toFixed(1)},${to.y.toFixed(1)}L${(bx - uy * 3.5).toFixed(1)},${(by + ux * 3.5).toFixed(1)}L${(bx + uy * 3.5).toFixed(1)},${(by - ux * 3.5).toFixed(1)}Z`);
    };
    for (const e of out.edges) {
      const pts = e.points;
      if (pts.length < 2) continue;
      lines.push(`M${pts.map((p) => `${p.x.toFixed(1)},${p.y.toFixed(1)}`).join('L')}`);
      arrow(pts[pts.length - 2] as { x: number; y: number }, pts[pts.length - 1] as { x: number; y: number });
    }
    const els = nodeLayer.children;
    order.forEach((d, i) => {
      const u = out.units[unit(d.id)];
      if (u === undefined) return;
      let x = u.x - u.width / 2;
      const y = u.y - u.height / 2;
      const w = widthOf(d);
      if (pairedWith.has(d.id)) {
        x = u.x + u.width / 2 - w;
        lines.push(`M${(x - GAP).toFixed(1)},${u.y.toFixed(1)}L${x.toFixed(1)},${u.y.toFixed(1)}`);
        arrow({ x: x - GAP, y: u.y }, { x, y: u.y });
      }
      boxes.set(d.id, { x, y, w, h: u.height });
      els[i]?.setAttribute('transform', `translate(${x.toFixed(1)},${y.toFixed(1)})`);
    });
    edgeLayer.innerHTML = `<path class="edge" d="${lines.join('')}"></path><path class="arrowhead" d="${heads.join('')}"></path>`;
    viewport.replaceChildren(edgeLayer, nodeLayer);
    graphSize = { w: out.width, h: out.height };
    summary.textContent = text;
    const tr = performance.now();
    fit(frame);
    const tf = performance.now();
    applyMatches();
    document.body.dataset.lineageLayoutMs = String(Math.round(out.ms));
    document.body.dataset.lineagePhases = `build ${Math.round(tb - t0)} markup ${Math.round(tm - tb)} layout ${Math.round(tp - tm)} place ${Math.round(tr - tp)} fit ${Math.round(tf - tr)} (${out.engine})`;
    document.body.dataset.lineageDrawMs = String(Math.round(performance.now() - t0));
    // Rendered = the frame holding the graph has been painted: the next animation frame runs
    // before that paint, and a task queued from it runs after.
    requestAnimationFrame(() => {
      setTimeout(() => {
        document.body.dataset.lineageRenderedMs = String(Math.round(performance.now()));
      }, 0);
    });
  }

  /** Fit the graph to the view; `frame` = the svg's box when already known (measuring it after
   * the nodes went in would force a layout of all of them, text included, before the zoom level
   * decides whether text is drawn at all). */
  function fit(frame?: DOMRect): void {
    const r = frame ?? svg.getBoundingClientRect();
    const k = Math.min(1.4, Math.max(0.02, Math.min(r.width / graphSize.w, r.height / graphSize.h)));
    view = { k, x: (r.width - graphSize.w * k) / 2, y: (r.height - graphSize.h * k) / 2 };
    applyView();
  }

  function zoomBy(f: number, cx?: number, cy?: number): void {
    const r = svg.getBoundingClientRect();
    const px = cx ?? r.width / 2;
    const py = cy ?? r.height / 2;
    const k = Math.min(4, Math.max(0.02, view.k * f));
    view = { k, x: px - ((px - view.x) * k) / view.k, y: py - ((py - view.y) * k) / view.k };
    applyView();
  }

  function centerOn(id: string): void {
    const b = boxes.get(id);
    if (b === undefined) return;
    const r = svg.getBoundingClientRect();
    const k = Math.max(view.k, 0.8);
    view = { k, x: r.width / 2 - (b.x + b.w / 2) * k, y: r.height / 2 - (b.y + b.h / 2) * k };
    applyView();
  }

  // ---- selection and inspector --------------------------------------------------------------
  function select(id: string): void {
    state.selected = id;
    for (const el of viewport.querySelectorAll('.node.selected')) el.classList.remove('selected');
    viewport.querySelector(`[data-id="${CSS.escape(id)}"]`)?.classList.add('selected');
    const d = drawn.get(id);
    if (d === undefined) return;
    const actions = h('div', { class: 'row' });
    if (d.kind === 'group') {
      const stepId = d.id.slice('group:step:'.length);
      actions.append(h('button', { type: 'button', onclick: () => { state.expandedSteps.add(stepId); draw(); } }, `Expand ${stepId}`));
    } else if (!d.root) {
      const collapsed = state.collapsed.has(d.id);
      actions.append(h('button', { type: 'button', onclick: () => { if (collapsed) state.collapsed.delete(d.id); else state.collapsed.add(d.id); draw(); select(d.id); } }, collapsed ? 'Expand beyond' : 'Collapse beyond'));
    }
    const n = d.members[0];
    if (d.kind !== 'group' && n !== undefined) {
      if (n.kind === 'execution' && n.executionId !== undefined) actions.append(link('execution', { id: n.executionId }, 'Inspect execution', { class: 'button' }));
      else if (n.kind === 'execution') actions.append(link('execution', { id: n.id.replace(/^execution:/, '') }, 'Inspect execution', { class: 'button' }));
      if (n.kind === 'version' && n.objectId !== undefined) actions.append(link('asof', { object: n.objectId }, 'As-of slider', { class: 'button' }));
      if (!d.root) actions.append(link('lineage', { ref: n.kind === 'version' ? `${n.objectId ?? ''}@${n.versionId ?? ''}` : n.kind === 'execution' ? n.id.replace(/^execution:/, '') : n.id.replace(/^value:/, '') }, 'Trace from here', { class: 'button' }));
    }
    const rows: [string, string | HTMLElement][] = [];
    if (d.kind === 'group') {
      rows.push(['Members', d.sub]);
    } else if (n !== undefined) {
      rows.push(['Kind', n.kind]);
      if (n.stepId !== undefined) rows.push(['Step', n.stepId]);
      if (n.versionHash !== undefined) rows.push(['Code version', h('code', { title: n.versionHash }, short(n.versionHash, 16))]);
      if (n.objectId !== undefined) rows.push(['Object', n.objectId]);
      if (n.ordinal !== undefined) rows.push(['Version', `v${n.ordinal} (${n.versionId ?? ''})`]);
      if (n.contentHash !== undefined) rows.push(['Content', h('code', { title: n.contentHash }, short(n.contentHash, 16))]);
      if (n.status !== undefined) rows.push(['Status', n.status]);
      if (n.time !== undefined) rows.push(['Time', when(n.time)]);
      rows.push(['Distance', `${n.depth} execution${n.depth === 1 ? '' : 's'} from the traced node`]);
    }
    replace(inspector, h('h2', {}, d.title), h('dl', {}, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])), actions);
  }

  svg.addEventListener('click', (ev) => {
    const g = (ev.target as Element).closest('.node');
    if (g !== null) select(g.getAttribute('data-id') as string);
  });
  svg.addEventListener('keydown', (ev) => {
    const g = (ev.target as Element).closest('.node');
    if (g !== null && (ev.key === 'Enter' || ev.key === ' ')) {
      ev.preventDefault();
      select(g.getAttribute('data-id') as string);
    } else if (ev.key === '+' || ev.key === '=') zoomBy(1.25);
    else if (ev.key === '-') zoomBy(0.8);
    else if (ev.key === '0') fit();
    else if (ev.key.startsWith('Arrow') && g === null) {
      const step = 60;
      view = { ...view, x: view.x + (ev.key === 'ArrowLeft' ? step : ev.key === 'ArrowRight' ? -step : 0), y: view.y + (ev.key === 'ArrowUp' ? step : ev.key === 'ArrowDown' ? -step : 0) };
      applyView();
    }
  });
  svg.addEventListener('wheel', (ev) => {
    ev.preventDefault();
    const r = svg.getBoundingClientRect();
    zoomBy(ev.deltaY < 0 ? 1.15 : 1 / 1.15, ev.clientX - r.left, ev.clientY - r.top);
  }, { passive: false });
  let drag: { x: number; y: number; vx: number; vy: number } | undefined;
  svg.addEventListener('pointerdown', (ev) => {
    if ((ev.target as Element).closest('.node') !== null) return;
    drag = { x: ev.clientX, y: ev.clientY, vx: view.x, vy: view.y };
    svg.setPointerCapture(ev.pointerId);
  });
  svg.addEventListener('pointermove', (ev) => {
    if (drag === undefined) return;
    view = { ...view, x: drag.vx + ev.clientX - drag.x, y: drag.vy + ev.clientY - drag.y };
    applyView();
  });
  svg.addEventListener('pointerup', () => (drag = undefined));

  // ---- search -------------------------------------------------------------------------------
  function applyMatches(): void {
    const q = search.value.trim().toLowerCase();
    for (const el of viewport.querySelectorAll('.node.match')) el.classList.remove('match');
    if (q === '') {
      state.matches = [];
      searchStatus.textContent = '';
      return;
    }
    const hit = (n: LNode): boolean => [n.label, n.stepId, n.objectId, n.versionHash, n.contentHash, n.id].some((x) => x !== undefined && x.toLowerCase().includes(q));
    const ids = new Set<string>();
    let hiddenHits = 0;
    for (const n of nodes.values()) {
      if (!hit(n)) continue;
      const id = memberOf.get(n.id);
      if (id !== undefined && drawn.has(id)) ids.add(id);
      else hiddenHits++;
    }
    state.matches = [...ids];
    for (const id of ids) viewport.querySelector(`[data-id="${CSS.escape(id)}"]`)?.classList.add('match');
    searchStatus.textContent = `${ids.size} match${ids.size === 1 ? '' : 'es'}${hiddenHits > 0 ? ` (+${hiddenHits} in collapsed parts)` : ''}`;
  }
  function nextMatch(): void {
    applyMatches();
    if (state.matches.length === 0) return;
    state.match = (state.match + 1) % state.matches.length;
    const id = state.matches[state.match] as string;
    centerOn(id);
    select(id);
    searchStatus.textContent = `${state.match + 1} of ${state.matches.length}`;
  }
  let searchTimer: number | undefined;
  search.addEventListener('input', () => {
    clearTimeout(searchTimer);
    state.match = -1;
    searchTimer = window.setTimeout(applyMatches, 150);
  });
  const onKey = (ev: KeyboardEvent): void => {
    if (ev.key === '/' && document.activeElement?.tagName !== 'INPUT') {
      ev.preventDefault();
      search.focus();
    }
  };
  document.addEventListener('keydown', onKey);

  if (nodes.size === 0) {
    root.append(empty('Nothing to show.'));
    return () => document.removeEventListener('keydown', onKey);
  }
  draw();
  select(memberOf.get(rootId) ?? rootId);
  return () => document.removeEventListener('keydown', onKey);
}
