/**
 * Lineage: the ancestors or descendants of an object version, a value or an execution, as a graph
 * of versions and the executions between them. The walk itself is a recursive query in the store;
 * this module resolves the reference and names the nodes.
 */
import { ProvenantError } from '../errors.js';
import { isContentHash, type ContentHash } from '../hash/canonical.js';
import { isUuid } from '../ids.js';
import type { ExecutionRecord, LineageMaker, LineageVersion, ObjectVersionRecord } from '../store/records.js';
import type { Store } from '../store/store.js';
import { asOfMicros, isoFromMicros, parseTime, type TimeInput } from './refs.js';
import { resolveVersion } from './versions.js';

/** A node of a lineage graph. */
export interface LineageNode {
  /** `execution:<uuid>`, `value:sha256:<hex>` or `version:<objectId>@<versionId>`. */
  readonly id: string;
  readonly kind: 'execution' | 'value' | 'version';
  /** Distance from the root in executions. */
  readonly depth: number;
  /** A short human-readable name. */
  readonly label: string;
  readonly stepId?: string;
  readonly versionHash?: ContentHash;
  readonly objectId?: string;
  readonly versionId?: string;
  readonly ordinal?: number;
  readonly contentHash?: ContentHash;
  readonly executionId?: string;
  readonly status?: 'ok' | 'failed';
  /** ISO 8601: when the version became current, or when the execution started. */
  readonly time?: string;
}

/** An edge: `used` (version → execution), `generated` (execution → version), `version-of` (value → version). */
export interface LineageEdge {
  readonly from: string;
  readonly to: string;
  readonly kind: 'used' | 'generated' | 'version-of';
}

/** A lineage answer. */
export interface LineageGraph {
  readonly root: LineageNode;
  readonly direction: 'up' | 'down';
  readonly nodes: readonly LineageNode[];
  readonly edges: readonly LineageEdge[];
  /** True when a limit cut the walk. */
  readonly truncated: boolean;
}

/** Options of {@link lineage}. */
export interface LineageOptions {
  /** `up` (ancestors, default) or `down` (descendants). */
  readonly direction?: 'up' | 'down';
  /** Executions to walk through at most. Default: no limit. */
  readonly depth?: number;
  /** Only what existed at this time. */
  readonly asOf?: TimeInput;
  /** At most this many versions (default 100,000). */
  readonly limit?: number;
}

const versionNodeId = (v: ObjectVersionRecord): string => `version:${v.objectId}@${v.versionId}`;
const executionNodeId = (id: string): string => `execution:${id}`;

function versionNode(v: ObjectVersionRecord, depth: number): LineageNode {
  return {
    id: versionNodeId(v),
    kind: 'version',
    depth,
    label: `${v.objectId} v${v.ordinal}`,
    objectId: v.objectId,
    versionId: v.versionId,
    ordinal: v.ordinal,
    contentHash: v.contentHash,
    ...(v.executionId === null ? {} : { executionId: v.executionId }),
    time: isoFromMicros(v.validFromUs),
  };
}

/** The brief of an execution, for a backend whose walk does not return it. */
async function makerOf(store: Store, executionId: string): Promise<LineageMaker | undefined> {
  const e = await store.getExecution(executionId);
  return e === undefined ? undefined : briefOf(e);
}

function briefOf(e: ExecutionRecord): LineageMaker {
  return { executionId: e.id, stepId: e.functionId, versionHash: e.functionVersionHash, startedUs: e.startedUs, status: e.status };
}

function executionNode(e: LineageMaker, depth: number): LineageNode {
  return {
    id: executionNodeId(e.executionId),
    kind: 'execution',
    depth,
    label: `${e.stepId}@${e.versionHash.slice(7, 19)}`,
    stepId: e.stepId,
    versionHash: e.versionHash,
    executionId: e.executionId,
    status: e.status,
    time: isoFromMicros(e.startedUs),
  };
}

/**
 * The ancestors (`up`) or descendants (`down`) of a reference: an object id (its current version,
 * or the one current at `asOf`), `objectId@versionId`, a version id, a value hash (`sha256:…`,
 * every version with that content), or an execution id.
 * @throws ProvenantError INPUT_INVALID (malformed reference, depth or time), NOT_FOUND
 */
export async function lineage(store: Store, ref: string, options: LineageOptions = {}): Promise<LineageGraph> {
  const direction = options.direction ?? 'up';
  if (options.depth !== undefined && (!Number.isInteger(options.depth) || options.depth < 0)) {
    throw new ProvenantError('INPUT_INVALID', `depth ${String(options.depth)} is not a whole number ≥ 0`, { context: { depth: options.depth } });
  }
  const untilUs = options.asOf === undefined ? undefined : asOfMicros(parseTime(options.asOf));
  const start = await resolveStart(store, ref, untilUs);
  const rows = await store.walkLineage({
    from: start.versions.map((v) => v.versionId),
    direction,
    ...(options.depth === undefined ? {} : { depth: options.depth }),
    ...(untilUs === undefined ? {} : { untilUs }),
    ...(options.limit === undefined ? {} : { limit: options.limit }),
  });
  const nodes = new Map<string, LineageNode>();
  const edges: LineageEdge[] = [];
  const edgeKeys = new Set<string>();
  const addEdge = (from: string, to: string, kind: LineageEdge['kind']): void => {
    const key = `${from}\u0000${to}\u0000${kind}`;
    if (!edgeKeys.has(key)) {
      edgeKeys.add(key);
      edges.push({ from, to, kind });
    }
  };
  const inSet = new Map<string, LineageVersion>(rows.versions.map((r) => [r.version.versionId, r]));
  for (const r of rows.versions) nodes.set(versionNodeId(r.version), versionNode(r.version, r.depth));
  for (const r of rows.versions) {
    const v = r.version;
    if (v.executionId === null) continue;
    // Up: the execution that made a reached version is shown when the depth allows one more step.
    // Down: when the version was reached from one of its inputs.
    const inputs = v.inputVersionIds.map((id) => inSet.get(id)).filter((x): x is LineageVersion => x !== undefined);
    const show = direction === 'up' ? options.depth === undefined || r.depth < options.depth : r.depth > 0 && inputs.length > 0;
    if (!show) continue;
    const e = r.maker ?? (await makerOf(store, v.executionId));
    if (e === undefined) continue;
    const node = executionNode(e, direction === 'up' ? r.depth + 1 : r.depth);
    if (!nodes.has(node.id)) nodes.set(node.id, node);
    addEdge(node.id, versionNodeId(v), 'generated');
    for (const input of inputs) addEdge(versionNodeId(input.version), node.id, 'used');
  }
  let root = start.root;
  let shift = 0;
  if (root.kind === 'version') root = nodes.get(root.id) ?? root;
  else if (root.kind === 'value') {
    shift = 1;
    for (const v of start.versions) addEdge(root.id, versionNodeId(v), 'version-of');
  } else if (start.versions.length === 0 && start.execution !== undefined) {
    // An execution outside the object DAG (a stream pipeline's): its input and output values.
    const e = start.execution;
    nodes.set(root.id, root);
    if (direction === 'up') {
      for (const hash of e.inputHashes) {
        nodes.set(`value:${hash}`, { id: `value:${hash}`, kind: 'value', depth: 1, label: hash.slice(0, 19), contentHash: hash });
        addEdge(`value:${hash}`, root.id, 'used');
      }
    } else if (e.outputHash !== null) {
      nodes.set(`value:${e.outputHash}`, { id: `value:${e.outputHash}`, kind: 'value', depth: 1, label: e.outputHash.slice(0, 19), contentHash: e.outputHash });
      addEdge(root.id, `value:${e.outputHash}`, 'generated');
    }
  } else if (direction === 'down') {
    shift = 1;
    for (const v of start.versions) addEdge(root.id, versionNodeId(v), 'generated');
  } else {
    // Ancestors of an execution: those of the version it made, without that version.
    shift = -1;
    for (const v of start.versions) {
      nodes.delete(versionNodeId(v));
      for (let i = edges.length - 1; i >= 0; i--) if ((edges[i] as LineageEdge).to === versionNodeId(v)) edges.splice(i, 1);
    }
    nodes.delete(root.id);
  }
  if (shift !== 0) {
    for (const [id, n] of nodes) nodes.set(id, { ...n, depth: n.depth + shift });
    root = { ...root, depth: 0 };
    nodes.set(root.id, root);
  }
  const ordered = [...nodes.values()].sort((a, b) => a.depth - b.depth || (a.time ?? '').localeCompare(b.time ?? ''));
  return { root, direction, nodes: ordered, edges, truncated: rows.truncated };
}

interface Start {
  readonly root: LineageNode;
  readonly versions: readonly ObjectVersionRecord[];
  readonly execution?: ExecutionRecord;
}

async function resolveStart(store: Store, ref: string, untilUs: number | undefined): Promise<Start> {
  if (ref.startsWith('sha256:')) {
    if (!isContentHash(ref)) throw new ProvenantError('INPUT_INVALID', `${ref} is not a well-formed value hash (sha256: and 64 hex digits)`, { context: { ref } });
    const versions = (await store.findObjectVersions({ contentHash: ref })).filter((v) => untilUs === undefined || v.validFromUs <= untilUs);
    if (versions.length === 0) {
      throw new ProvenantError('NOT_FOUND', `no object version has the value ${ref}`, { hint: 'Lineage of a value covers the objects whose content it is.', context: { ref } });
    }
    return { root: { id: `value:${ref}`, kind: 'value', depth: 0, label: ref.slice(0, 19), contentHash: ref }, versions };
  }
  if (isUuid(ref)) {
    const version = await store.getObjectVersion(ref);
    if (version !== undefined) return { root: versionNode(version, 0), versions: [version] };
    const e = await store.getExecution(ref);
    if (e === undefined) {
      throw new ProvenantError('NOT_FOUND', `no execution or object version ${ref} in ${store.location}`, { context: { ref } });
    }
    const made = await store.findObjectVersions({ executionId: ref });
    return { root: executionNode(briefOf(e), 0), versions: made, execution: e };
  }
  const version = await resolveVersion(store, ref, untilUs);
  return { root: versionNode(version, 0), versions: [version] };
}

/** A lineage graph as an indented tree for a terminal (shared nodes are printed once, then referred to). */
export function renderLineageTree(graph: LineageGraph): string {
  const children = new Map<string, string[]>();
  const add = (from: string, to: string): void => {
    let list = children.get(from);
    if (list === undefined) children.set(from, (list = []));
    list.push(to);
  };
  for (const e of graph.edges) {
    if (graph.direction === 'up' && e.kind !== 'version-of') add(e.to, e.from);
    else add(e.from, e.to);
  }
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const describe = (n: LineageNode): string => {
    if (n.kind === 'version') return `${n.objectId ?? ''} v${n.ordinal ?? '?'}  @${n.versionId ?? ''}  ${n.time ?? ''}  ${(n.contentHash ?? '').slice(0, 19)}${n.executionId === undefined ? '  (original)' : ''}`;
    if (n.kind === 'execution') {
      const verb = graph.direction === 'up' ? 'made by' : 'used by';
      return `${verb} ${n.label}  execution ${n.executionId ?? ''}${n.status === 'failed' ? '  FAILED' : ''}`;
    }
    return `value ${n.contentHash ?? ''}`;
  };
  const lines: string[] = [describe(graph.root)];
  const seen = new Set<string>([graph.root.id]);
  const walk = (id: string, prefix: string): void => {
    const kids = children.get(id) ?? [];
    kids.forEach((kid, i) => {
      const last = i === kids.length - 1;
      const node = byId.get(kid);
      if (node === undefined) return;
      const again = seen.has(kid);
      lines.push(`${prefix}${last ? '└─ ' : '├─ '}${describe(node)}${again ? '  (shown above)' : ''}`);
      if (!again) {
        seen.add(kid);
        walk(kid, `${prefix}${last ? '   ' : '│  '}`);
      }
    });
  };
  walk(graph.root.id, '');
  if (graph.truncated) lines.push('… (cut at the limit; narrow with --depth)');
  return lines.join('\n');
}
