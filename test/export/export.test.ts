/**
 * Exports read back by real readers: PROV-JSON by the W3C PROV reference library (Debian's
 * python3-prov), PROV-O Turtle and JSON-LD by rdflib; OpenLineage events validated with ajv against
 * the OpenLineage 2-0-2 schema and each standard facet's schema, and posted with `--emit` to a
 * local HTTP receiver (with a retry after a 503, and a clear error when it refuses). Every
 * execution must appear with its inputs, its output, its step and its principal.
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- OpenLineage events are read as plain JSON and checked field by field (and against the schema) */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PipelineDefinition } from '../../src/pipeline/define.js';
import { runPipeline } from '../../src/pipeline/execute.js';
import { readRecords } from '../../src/sources/files.js';
import { vegaDatasetPath } from '../../src/sources/datasets.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { ExecutionRecord } from '../../src/store/records.js';
import { appendRecords, LogSource } from '../../src/stream/log.js';
import { cli } from '../helpers/cli.js';
import { ensureDist } from '../helpers/dist.js';
import { writeProject } from '../helpers/project.js';
import { makeTempDir } from '../helpers/temp.js';

const PY = '/usr/bin/python3';
const N = 150;
const project = makeTempDir();
const store = join(project, 'store');
let executions: ExecutionRecord[] = [];
let runId: string;
const VALUE = 'urn:provenant:value:sha256:';
const EXEC = 'urn:provenant:execution:';

const pipeline: PipelineDefinition = {
  name: 'flights',
  steps: [
    { id: 'parse', module: './steps/parse.ts' },
    { id: 'classify', module: './steps/classify.ts', params: { lateAfter: 15 } },
  ],
};

beforeAll(async () => {
  await ensureDist();
  writeProject(project, {
    'steps/parse.ts': `export default function parse(r: { origin: string; destination: string; delay: number }) {
      return { route: r.origin + '-' + r.destination, delay: r.delay };
    }`,
    'steps/classify.ts': `export default function classify(r: { delay: number }, p: { lateAfter: number }) {
      if (r.delay > 300) throw new Error('implausible delay ' + r.delay);
      return { ...r, late: r.delay > p.lateAfter };
    }`,
  });
  const flights: unknown[] = [];
  for await (const r of readRecords(vegaDatasetPath('flights-2k.json'), { limit: N })) flights.push(r.value);
  const s = SqliteStore.open(store);
  await appendRecords(s, 'flights', flights);
  const result = await runPipeline(s, pipeline, new LogSource(s, 'flights'), {
    baseDir: project,
    checkpoint: { everyRecords: 50 },
    failurePolicy: 'dead-letter',
    context: { principal: 'alice@example.org' },
  });
  runId = result.runId;
  executions = await s.listExecutions({ limit: 10_000 });
  await s.close();
  expect(executions.length).toBeGreaterThan(2 * N - 10);
}, 120_000);

async function exportTo(format: string, extra: string[] = []): Promise<string> {
  const out = join(project, `export-${format}-${extra.join('_').replace(/[^a-z0-9]/gi, '')}`);
  const r = await cli(['export', '--format', format, '--out', out, '--store', store, ...extra]);
  expect(r.code, r.stderr).toBe(0);
  return out;
}

function python(script: string, file: string): Record<string, unknown> {
  return JSON.parse(execFileSync(PY, ['-c', script, file], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })) as Record<string, unknown>;
}

interface Graph {
  activities: Record<string, { start: string | null; end: string | null; attrs: Record<string, string> }>;
  used: [string, string][];
  generated: [string, string][];
  associated: [string, string][];
  derived: [string, string][];
  agents: string[];
}

/** Every execution with its inputs, output, step and principal. */
function checkGraph(g: Graph, list: ExecutionRecord[]): void {
  const used = new Set(g.used.map(([a, e]) => `${a} ${e}`));
  const generated = new Set(g.generated.map(([e, a]) => `${e} ${a}`));
  const associated = new Set(g.associated.map(([a, ag]) => `${a} ${ag}`));
  const derived = new Set(g.derived.map(([o, i]) => `${o} ${i}`));
  expect(Object.keys(g.activities)).toHaveLength(list.length);
  for (const e of list) {
    const act = EXEC + e.id;
    const a = g.activities[act];
    expect(a, act).toBeDefined();
    expect(a!.start).toMatch(/^\d{4}-\d\d-\d\d[T ]\d\d:/);
    expect(Object.values(a!.attrs)).toContain(e.functionVersionHash);
    expect(Object.values(a!.attrs)).toContain(e.paramsHash);
    expect(Object.values(a!.attrs)).toContain(e.recordHash);
    for (const h of e.inputHashes) expect(used.has(`${act} ${VALUE}${h.slice(7)}`), `${e.id} used ${h}`).toBe(true);
    if (e.outputHash !== null) {
      expect(generated.has(`${VALUE}${e.outputHash.slice(7)} ${act}`), `${e.id} generated`).toBe(true);
      for (const h of e.inputHashes) expect(derived.has(`${VALUE}${e.outputHash.slice(7)} ${VALUE}${h.slice(7)}`)).toBe(true);
    }
    expect(associated.has(`${act} urn:provenant:step:${e.functionId}.${e.functionVersionHash.slice(7)}`)).toBe(true);
    expect(associated.has(`${act} urn:provenant:principal:alice%40example.org`)).toBe(true);
  }
}

const PROV_READER = `
import sys, json
from prov.model import ProvDocument, ProvActivity, ProvUsage, ProvGeneration, ProvAssociation, ProvDerivation, ProvAgent
doc = ProvDocument.deserialize(sys.argv[1], format='json')
def f(r):
    return {str(k): (v.uri if hasattr(v, 'uri') else str(v)) for k, v in r.formal_attributes}
out = {'activities': {}, 'used': [], 'generated': [], 'associated': [], 'derived': [], 'agents': []}
for r in doc.get_records(ProvActivity):
    fa = f(r)
    out['activities'][r.identifier.uri] = {'start': fa.get('prov:startTime'), 'end': fa.get('prov:endTime'),
        'attrs': {str(k): str(v) for k, v in r.extra_attributes}}
for r in doc.get_records(ProvUsage):
    fa = f(r); out['used'].append([fa['prov:activity'], fa['prov:entity']])
for r in doc.get_records(ProvGeneration):
    fa = f(r); out['generated'].append([fa['prov:entity'], fa['prov:activity']])
for r in doc.get_records(ProvAssociation):
    fa = f(r); out['associated'].append([fa['prov:activity'], fa['prov:agent']])
for r in doc.get_records(ProvDerivation):
    fa = f(r); out['derived'].append([fa['prov:generatedEntity'], fa['prov:usedEntity']])
for r in doc.get_records(ProvAgent):
    out['agents'].append(r.identifier.uri)
print(json.dumps(out))
`;

const RDF_READER = (format: string) => `
import sys, json, rdflib
from rdflib.namespace import RDF
P = rdflib.Namespace('http://www.w3.org/ns/prov#')
g = rdflib.Graph(); g.parse(sys.argv[1], format='${format}')
out = {'activities': {}, 'used': [], 'generated': [], 'associated': [], 'derived': [], 'agents': []}
for a in g.subjects(RDF.type, P.Activity):
    out['activities'][str(a)] = {'start': str(g.value(a, P.startedAtTime)), 'end': str(g.value(a, P.endedAtTime)),
        'attrs': {str(p): str(o) for p, o in g.predicate_objects(a) if str(p).startswith('https://provenant.dev/')}}
out['used'] = [[str(s), str(o)] for s, o in g.subject_objects(P.used)]
out['generated'] = [[str(s), str(o)] for s, o in g.subject_objects(P.wasGeneratedBy)]
out['associated'] = [[str(s), str(o)] for s, o in g.subject_objects(P.wasAssociatedWith)]
out['derived'] = [[str(s), str(o)] for s, o in g.subject_objects(P.wasDerivedFrom)]
out['agents'] = [str(s) for s in g.subjects(RDF.type, P.Agent)]
print(json.dumps(out))
`;

describe('W3C PROV', () => {
  it('PROV-JSON, read by python3-prov: every execution with its inputs, output, step and principal', async () => {
    const g = python(PROV_READER, await exportTo('prov-json')) as unknown as Graph;
    checkGraph(g, executions);
    expect(g.agents).toContain('urn:provenant:principal:alice%40example.org');
  });

  it('PROV-O Turtle and JSON-LD, read by rdflib: the same graph', async () => {
    checkGraph(python(RDF_READER('turtle'), await exportTo('prov-o')) as unknown as Graph, executions);
    checkGraph(python(RDF_READER('json-ld'), await exportTo('prov-jsonld')) as unknown as Graph, executions);
  });

  it('scopes: --stream with --from/--to, --run, --as-of', async () => {
    const ranged = python(PROV_READER, await exportTo('prov-json', ['--stream', 'flights', '--from', '10', '--to', '20'])) as unknown as Graph;
    checkGraph(ranged, executions.filter((e) => e.offset !== null && e.offset >= 10 && e.offset < 20));
    const byRun = python(PROV_READER, await exportTo('prov-json', ['--run', runId])) as unknown as Graph;
    checkGraph(byRun, executions);
    const mid = executions[100]!.endedUs;
    const asOf = new Date(Math.ceil(mid / 1000)).toISOString();
    const early = python(PROV_READER, await exportTo('prov-json', ['--as-of', asOf])) as unknown as Graph;
    checkGraph(early, executions.filter((e) => e.endedUs <= Date.parse(asOf) * 1000));
    const future = await cli(['export', '--format', 'prov-json', '--as-of', '2999-01-01T00:00:00Z', '--store', store]);
    expect(future.code).toBe(2);
    expect(future.stderr).toMatch(/in the future/);
    const unknown = await cli(['export', '--format', 'cypherish', '--store', store]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown export format "cypherish"[\s\S]*Formats: cypher, cypher-kuzu, openlineage, prov-json, prov-jsonld, prov-o/);
  });
});

describe('OpenLineage', () => {
  const dir = '/work/shared/interop/openlineage';
  const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => void;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  const facetKeys = new Map<string, string>(); // facet key → schema $id
  for (const f of readdirSync(join(dir, 'facets'))) {
    const schema = JSON.parse(readFileSync(join(dir, 'facets', f), 'utf8')) as { $id: string; properties?: Record<string, unknown> };
    ajv.addSchema(schema);
    for (const key of Object.keys(schema.properties ?? {})) facetKeys.set(key, schema.$id);
  }
  const validateEvent = ajv.compile(JSON.parse(readFileSync(join(dir, 'OpenLineage.json'), 'utf8')) as object);

  let events: Record<string, any>[] = [];
  it('every event validates against the 2-0-2 schema, and every standard facet against its own schema; custom facets are prefixed', async () => {
    const file = await exportTo('openlineage');
    events = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    for (const e of events) {
      if (!validateEvent(e)) throw new Error(`invalid event: ${ajv.errorsText(validateEvent.errors)}\n${JSON.stringify(e).slice(0, 500)}`);
      const facetGroups = [e.run.facets, e.job.facets, ...[...(e.inputs ?? []), ...(e.outputs ?? [])].flatMap((d: any) => [d.facets, d.inputFacets, d.outputFacets])];
      for (const group of facetGroups) {
        for (const [key, value] of Object.entries((group ?? {}) as Record<string, unknown>)) {
          const id = facetKeys.get(key);
          if (id === undefined) {
            expect(key, 'a custom facet is named with the producer prefix').toMatch(/^provenant_[A-Za-z]+$/);
            expect((value as { _schemaURL: string })._schemaURL).toMatch(/^https:\/\/provenant\.dev\/spec\/openlineage\/facets\/.+#\/\$defs\/Provenant\w+Facet$/);
            continue;
          }
          const check = ajv.getSchema(id)!;
          if (!check({ [key]: value })) throw new Error(`facet ${key} invalid: ${ajv.errorsText(check.errors)}`);
        }
      }
    }
  });

  it('START and COMPLETE/FAIL per run and per step; code version and source location in job facets; hashes and checkpoints in ours', () => {
    const parent = events.filter((e) => e.run.runId === runId);
    expect(parent.map((e) => e.eventType)).toEqual(['START', 'COMPLETE']);
    expect(parent[0]!.inputs).toEqual([{ namespace: 'provenant', name: 'flights' }]);
    expect(parent[0]!.run.facets.provenant_run.checkpoints).toHaveLength(3);
    for (const step of ['parse', 'classify']) {
      const mine = executions.filter((e) => e.functionId === step);
      const evs = events.filter((e) => e.job.name === `flights.${step}`);
      expect(evs.map((e) => e.eventType)).toEqual(['START', 'COMPLETE']);
      expect(evs[0]!.run.facets.parent.run.runId).toBe(runId);
      expect(evs[0]!.job.facets.provenant_codeVersion.versionHash).toBe(mine[0]!.functionVersionHash);
      expect(evs[0]!.job.facets.sourceCodeLocation).toMatchObject({ type: 'file', path: `steps/${step}.ts`, version: mine[0]!.functionVersionHash });
      const done = evs[1]!;
      expect(done.outputs[0].outputFacets.provenant_valueHashes.hashes).toEqual(mine.map((e) => e.outputHash));
      expect(done.inputs[0].inputFacets.provenant_valueHashes.hashes).toEqual(mine.map((e) => e.inputHashes));
      expect(done.inputs[0].name).toBe(step === 'parse' ? 'flights' : 'flights.parse');
    }
  });

  let server: Server;
  let received: unknown[] = [];
  let mode: 'flaky' | 'refuse' = 'flaky';
  let calls = 0;
  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        calls++;
        if (req.url !== '/api/v1/lineage' || req.method !== 'POST') {
          res.writeHead(404).end();
          return;
        }
        if (mode === 'refuse') {
          res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"bad event"}');
          return;
        }
        if (calls === 2) {
          res.writeHead(503).end('busy'); // the second request fails once: it is retried
          return;
        }
        received.push(JSON.parse(body));
        res.writeHead(201).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('--emit posts every event, in order, retrying after a 503; a refusal is a clear error', async () => {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const r = await cli(['export', '--format', 'openlineage', '--emit', url, '--store', store, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ sent: events.length, url: `${url}/api/v1/lineage` });
    expect(received).toEqual(events);
    mode = 'refuse';
    received = [];
    const refused = await cli(['export', '--format', 'openlineage', '--emit', url, '--store', store]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/refused event 1 of \d+ \(START flights\): HTTP 400 \{"error":"bad event"\}/);
    const down = await cli(['export', '--format', 'openlineage', '--emit', 'http://127.0.0.1:9', '--store', store]);
    expect(down.code).toBe(5);
    expect(down.stderr).toMatch(/could not post OpenLineage events to http:\/\/127\.0\.0\.1:9\/api\/v1\/lineage: .* \(after 4 tries; 0 of \d+ sent\)/);
  });
});
