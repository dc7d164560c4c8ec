/**
 * W3C PROV exports: PROV-JSON (`prov-json`), PROV-O in Turtle (`prov-o`, written with n3) and
 * PROV-O in JSON-LD (`prov-jsonld`). Executions are activities (with start and end times); values
 * are entities named by their content hash; step versions are software agents and principals
 * (from the execution context) agents; `used` (with the input's position), `wasGeneratedBy`,
 * `wasAssociatedWith` (the step version, and the principal who asked), `wasDerivedFrom` (output
 * from each input, via the execution). Our hashes, params and context are attributes in the
 * `provenant:` namespace.
 */
import { Writer, DataFactory } from 'n3';
import type { ContentHash } from '../hash/canonical.js';
import type { ExecutionRecord } from '../store/records.js';
import type { Store } from '../store/store.js';
import { registerExportFormat, selectExecutions, type ExportScope } from './registry.js';

/** The Provenant vocabulary namespace of exported attributes. */
export const PROVENANT_NS = 'https://provenant.dev/ns/prov#';
const PROV = 'http://www.w3.org/ns/prov#';
const XSD = 'http://www.w3.org/2001/XMLSchema#';
const RDF = 'http://www.w3.org/1999/02/22-rdf-syntax-ns#';
const EXEC = 'urn:provenant:execution:';
const VALUE = 'urn:provenant:value:sha256:';
const STEP = 'urn:provenant:step:';
const PRINCIPAL = 'urn:provenant:principal:';

const hex = (h: ContentHash): string => h.slice('sha256:'.length);
const iso = (us: number): string => new Date(Math.floor(us / 1000)).toISOString();
const stepLocal = (e: ExecutionRecord): string => `${encodeURIComponent(e.functionId)}.${hex(e.functionVersionHash)}`;

/** A PROV view of a set of executions. */
interface ProvModel {
  executions: ExecutionRecord[];
  values: Map<string, ContentHash>;
  steps: Map<string, ExecutionRecord>;
  principals: Set<string>;
  params: Map<string, unknown>;
}

async function model(store: Store, scope: ExportScope): Promise<ProvModel> {
  const m: ProvModel = { executions: [], values: new Map(), steps: new Map(), principals: new Set(), params: new Map() };
  for await (const e of selectExecutions(store, scope)) {
    m.executions.push(e);
    for (const h of e.inputHashes) m.values.set(hex(h), h);
    if (e.outputHash !== null) m.values.set(hex(e.outputHash), e.outputHash);
    m.steps.set(stepLocal(e), e);
    if (e.context.principal !== undefined) m.principals.add(e.context.principal);
    if (!m.params.has(e.paramsHash)) {
      try {
        m.params.set(e.paramsHash, JSON.parse(Buffer.from(await store.getBlob(e.paramsHash)).toString('utf8')));
      } catch {
        m.params.set(e.paramsHash, null);
      }
    }
  }
  return m;
}

function execAttributes(e: ExecutionRecord, params: unknown): Record<string, string | number> {
  const a: Record<string, string | number> = {
    functionId: e.functionId,
    functionVersionHash: e.functionVersionHash,
    paramsHash: e.paramsHash,
    params: JSON.stringify(params),
    contextHash: e.contextHash,
    context: JSON.stringify(e.context),
    recordHash: e.recordHash,
    runId: e.runId,
    status: e.status,
  };
  if (e.errorHash !== null) a.errorHash = e.errorHash;
  if (e.nondeterminismHash !== null) a.nondeterminismHash = e.nondeterminismHash;
  if (e.streamId !== null) a.streamId = e.streamId;
  if (e.offset !== null) a.offset = e.offset;
  return a;
}

/** PROV-JSON (https://www.w3.org/submissions/prov-json/). */
export async function provJson(store: Store, scope: ExportScope): Promise<Record<string, unknown>> {
  const m = await model(store, scope);
  const doc: Record<string, Record<string, unknown>> = {
    prefix: { provenant: PROVENANT_NS, exec: EXEC, value: VALUE, step: STEP, principal: PRINCIPAL },
    entity: {},
    activity: {},
    agent: {},
    used: {},
    wasGeneratedBy: {},
    wasAssociatedWith: {},
    wasDerivedFrom: {},
  };
  const attrs = (o: Record<string, string | number>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [`provenant:${k}`, v]));
  for (const [h, full] of m.values) doc.entity![`value:${h}`] = { 'prov:type': 'provenant:Value', 'provenant:hash': full };
  for (const [local, e] of m.steps) {
    doc.agent![`step:${local}`] = { 'prov:type': { $: 'prov:SoftwareAgent', type: 'prov:QUALIFIED_NAME' }, 'provenant:functionId': e.functionId, 'provenant:functionVersionHash': e.functionVersionHash };
  }
  for (const p of m.principals) doc.agent![`principal:${encodeURIComponent(p)}`] = { 'prov:type': { $: 'prov:Person', type: 'prov:QUALIFIED_NAME' }, 'provenant:principal': p };
  let n = 0;
  for (const e of m.executions) {
    const act = `exec:${e.id}`;
    doc.activity![act] = { 'prov:startTime': iso(e.startedUs), 'prov:endTime': iso(e.endedUs), ...attrs(execAttributes(e, m.params.get(e.paramsHash))) };
    e.inputHashes.forEach((h, i) => {
      doc.used![`_:u${++n}`] = { 'prov:activity': act, 'prov:entity': `value:${hex(h)}`, 'prov:time': iso(e.startedUs), 'provenant:position': i };
    });
    doc.wasAssociatedWith![`_:a${++n}`] = { 'prov:activity': act, 'prov:agent': `step:${stepLocal(e)}` };
    if (e.context.principal !== undefined) {
      doc.wasAssociatedWith![`_:a${++n}`] = { 'prov:activity': act, 'prov:agent': `principal:${encodeURIComponent(e.context.principal)}`, 'prov:role': 'provenant:requester' };
    }
    if (e.outputHash !== null) {
      const out = `value:${hex(e.outputHash)}`;
      doc.wasGeneratedBy![`_:g${++n}`] = { 'prov:entity': out, 'prov:activity': act, 'prov:time': iso(e.endedUs) };
      for (const h of e.inputHashes) doc.wasDerivedFrom![`_:d${++n}`] = { 'prov:generatedEntity': out, 'prov:usedEntity': `value:${hex(h)}`, 'prov:activity': act };
    }
  }
  for (const k of Object.keys(doc)) if (Object.keys(doc[k]!).length === 0) delete doc[k];
  return doc;
}

/** The PROV-O triples of a scope, as n3 quads. */
async function provQuads(store: Store, scope: ExportScope) {
  const { namedNode, literal, quad } = DataFactory;
  const m = await model(store, scope);
  const p = (local: string) => namedNode(PROV + local);
  const pv = (local: string) => namedNode(PROVENANT_NS + local);
  const a = namedNode(`${RDF}type`);
  const dt = (v: string) => literal(v, namedNode(`${XSD}dateTime`));
  const lit = (v: string | number) => (typeof v === 'number' ? literal(String(v), namedNode(`${XSD}long`)) : literal(v));
  const quads = [];
  for (const [h, full] of m.values) {
    const v = namedNode(VALUE + h);
    quads.push(quad(v, a, p('Entity')), quad(v, pv('hash'), literal(full)));
  }
  for (const [local, e] of m.steps) {
    const s = namedNode(STEP + local);
    quads.push(quad(s, a, p('SoftwareAgent')), quad(s, a, p('Agent')), quad(s, pv('functionId'), literal(e.functionId)), quad(s, pv('functionVersionHash'), literal(e.functionVersionHash)));
  }
  for (const who of m.principals) {
    const s = namedNode(PRINCIPAL + encodeURIComponent(who));
    quads.push(quad(s, a, p('Person')), quad(s, a, p('Agent')), quad(s, pv('principal'), literal(who)));
  }
  for (const e of m.executions) {
    const x = namedNode(EXEC + e.id);
    quads.push(quad(x, a, p('Activity')), quad(x, p('startedAtTime'), dt(iso(e.startedUs))), quad(x, p('endedAtTime'), dt(iso(e.endedUs))));
    for (const [k, v] of Object.entries(execAttributes(e, m.params.get(e.paramsHash)))) quads.push(quad(x, pv(k), lit(v)));
    for (const h of e.inputHashes) quads.push(quad(x, p('used'), namedNode(VALUE + hex(h))));
    quads.push(quad(x, p('wasAssociatedWith'), namedNode(STEP + stepLocal(e))));
    if (e.context.principal !== undefined) quads.push(quad(x, p('wasAssociatedWith'), namedNode(PRINCIPAL + encodeURIComponent(e.context.principal))));
    if (e.outputHash !== null) {
      const out = namedNode(VALUE + hex(e.outputHash));
      quads.push(quad(out, p('wasGeneratedBy'), x));
      for (const h of e.inputHashes) quads.push(quad(out, p('wasDerivedFrom'), namedNode(VALUE + hex(h))));
    }
  }
  return quads;
}

/** PROV-O as Turtle. */
export async function provTurtle(store: Store, scope: ExportScope): Promise<string> {
  const quads = await provQuads(store, scope);
  const writer = new Writer({ prefixes: { prov: PROV, xsd: XSD, provenant: PROVENANT_NS } });
  writer.addQuads(quads);
  return new Promise((resolve, reject) => writer.end((err: Error | null, text: string) => (err ? reject(err) : resolve(text))));
}

/** PROV-O as JSON-LD (expanded node objects in one @graph, with a context for prov: and provenant:). */
export async function provJsonLd(store: Store, scope: ExportScope): Promise<Record<string, unknown>> {
  const quads = await provQuads(store, scope);
  const nodes = new Map<string, Record<string, unknown[]>>();
  for (const q of quads) {
    const id = q.subject.value;
    let node = nodes.get(id);
    if (node === undefined) nodes.set(id, (node = {}));
    const key = q.predicate.value === `${RDF}type` ? '@type' : q.predicate.value;
    const value =
      key === '@type'
        ? q.object.value
        : q.object.termType === 'NamedNode'
          ? { '@id': q.object.value }
          : 'datatype' in q.object && q.object.datatype.value !== `${XSD}string`
            ? { '@value': q.object.value, '@type': q.object.datatype.value }
            : { '@value': q.object.value };
    (node[key] ??= []).push(value);
  }
  return {
    '@context': { prov: PROV, provenant: PROVENANT_NS, xsd: XSD },
    '@graph': [...nodes].map(([id, props]) => ({ '@id': id, ...props })),
  };
}

registerExportFormat({
  name: 'prov-json',
  description: 'W3C PROV-JSON',
  extension: 'json',
  export: async (store, scope, write) => write(`${JSON.stringify(await provJson(store, scope), null, 1)}\n`),
});
registerExportFormat({
  name: 'prov-o',
  description: 'W3C PROV-O, Turtle',
  extension: 'ttl',
  export: async (store, scope, write) => write(await provTurtle(store, scope)),
});
registerExportFormat({
  name: 'prov-jsonld',
  description: 'W3C PROV-O, JSON-LD',
  extension: 'jsonld',
  export: async (store, scope, write) => write(`${JSON.stringify(await provJsonLd(store, scope), null, 1)}\n`),
});
