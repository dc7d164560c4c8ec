/**
 * The lineage graph's layout, left to right, by two maintained layered-layout libraries:
 * - dagre for graphs of up to a few hundred nodes (network-simplex ranks, crossing reduction:
 *   the neatest result, and it tolerates the cycles that grouping by step can make);
 * - d3-dag's Sugiyama layout for large graphs (ranks by longest path to the traced node,
 *   depth-first ordering, greedy coordinates), about five times faster than dagre at 2,000
 *   nodes. A large graph with a cycle falls back to dagre.
 * Pure and synchronous (a Web Worker was tried: starting one cost more than it saved).
 */
import dagre from '@dagrejs/dagre';
import { coordGreedy, decrossDfs, graphStratify, layeringLongestPath, sugiyama } from 'd3-dag';

/** A box to place: one drawn node, or an execution and the one version it made, side by side. */
export interface LayoutUnit { id: string; width: number; height: number }
export interface LayoutInput {
  units: LayoutUnit[];
  edges: [string, string][];
  /** Large graphs: the fast layout. */
  fast: boolean;
}
export interface Point { x: number; y: number }
export interface LayoutOutput {
  /** Centre and size of each unit, by id. */
  units: Record<string, { x: number; y: number; width: number; height: number }>;
  /** Polyline of each edge, from the source's border to the target's. */
  edges: { from: string; to: string; points: Point[] }[];
  width: number;
  height: number;
  ms: number;
  /** Which library placed the graph. */
  engine: 'dagre' | 'd3-dag';
}

const NODE_SEP = 10;
const RANK_SEP = 46;
const MARGIN = 16;

export function layoutGraph(input: LayoutInput): LayoutOutput {
  const t0 = performance.now();
  if (input.fast) {
    try {
      return { ...layoutSugiyama(input), ms: performance.now() - t0 };
    } catch {
      // A cycle (possible once executions are grouped by step): dagre breaks cycles itself.
    }
  }
  return { ...layoutDagre(input), ms: performance.now() - t0 };
}

function layoutDagre(input: LayoutInput): Omit<LayoutOutput, 'ms'> {
  const g = new dagre.graphlib.Graph({ multigraph: false });
  g.setGraph({ rankdir: 'LR', nodesep: NODE_SEP, ranksep: RANK_SEP, marginx: MARGIN, marginy: MARGIN, ...(input.fast ? { ranker: 'longest-path' } : {}) });
  g.setDefaultEdgeLabel(() => ({}));
  for (const u of input.units) g.setNode(u.id, { width: u.width, height: u.height });
  for (const [a, b] of input.edges) if (a !== b) g.setEdge(a, b);
  dagre.layout(g, input.fast ? { disableOptimalOrderHeuristic: true } : {});
  const units: LayoutOutput['units'] = {};
  for (const id of g.nodes()) {
    const n = g.node(id);
    units[id] = { x: n.x, y: n.y, width: n.width, height: n.height };
  }
  const edges: LayoutOutput['edges'] = [];
  for (const e of g.edges()) edges.push({ from: e.v, to: e.w, points: (g.edge(e).points ?? []).map((p: Point) => ({ x: p.x, y: p.y })) });
  const gg = g.graph();
  return { units, edges, width: gg.width ?? 1, height: gg.height ?? 1, engine: 'dagre' };
}

/** d3-dag lays layers out top to bottom: sizes go in as (height, width) and coordinates come out swapped. */
function layoutSugiyama(input: LayoutInput): Omit<LayoutOutput, 'ms'> {
  const parents = new Map<string, string[]>();
  for (const u of input.units) parents.set(u.id, []);
  const seen = new Set<string>();
  for (const [a, b] of input.edges) {
    const k = `${a}\u0000${b}`;
    if (a === b || seen.has(k) || !parents.has(a)) continue;
    seen.add(k);
    parents.get(b)?.push(a);
  }
  const size = new Map(input.units.map((u) => [u.id, u]));
  const dag = graphStratify()(input.units.map((u) => ({ id: u.id, parentIds: parents.get(u.id) ?? [] })));
  const layout = sugiyama()
    .layering(layeringLongestPath().topDown(false))
    .decross(decrossDfs().topDown(false))
    .coord(coordGreedy())
    .nodeSize((n: { data: { id: string } }) => {
      const u = size.get(n.data.id) as LayoutUnit;
      return [u.height, u.width] as const;
    })
    .gap([NODE_SEP, RANK_SEP]);
  const { width, height } = layout(dag);
  const units: LayoutOutput['units'] = {};
  for (const n of dag.nodes()) {
    const u = size.get(n.data.id) as LayoutUnit;
    units[u.id] = { x: n.y + MARGIN, y: n.x + MARGIN, width: u.width, height: u.height };
  }
  const edges: LayoutOutput['edges'] = [];
  for (const l of dag.links()) {
    const from = units[l.source.data.id];
    const to = units[l.target.data.id];
    if (from === undefined || to === undefined) continue;
    const pts = l.points.map(([x, y]) => ({ x: y + MARGIN, y: x + MARGIN }));
    if (pts.length < 2) continue;
    // The points run centre to centre: end them on the boxes' borders.
    pts[0] = border(from, pts[1] as Point);
    pts[pts.length - 1] = border(to, pts[pts.length - 2] as Point);
    edges.push({ from: l.source.data.id, to: l.target.data.id, points: pts });
  }
  return { units, edges, width: height + 2 * MARGIN, height: width + 2 * MARGIN, engine: 'd3-dag' };
}

/** Where the segment from a box's centre towards `p` leaves the box. */
function border(box: { x: number; y: number; width: number; height: number }, p: Point): Point {
  const dx = p.x - box.x;
  const dy = p.y - box.y;
  if (dx === 0 && dy === 0) return { x: box.x, y: box.y };
  const w = box.width / 2;
  const h = box.height / 2;
  const s = Math.abs(dy) * w > Math.abs(dx) * h ? h / Math.abs(dy) : w / Math.abs(dx);
  return { x: box.x + dx * s, y: box.y + dy * s };
}
