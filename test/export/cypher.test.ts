/**
 * The Cypher export loads into a real embedded Cypher database (Kùzu, from npm) and the graph it
 * builds there answers lineage questions the same way Provenant does.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRun } from '../../src/capture/run.js';
import { exportCypher } from '../../src/export/cypher.js';
import { exportFormat, provJson, selectExecutions } from '../../src/export/index.js';
import { lineage } from '../../src/objects/lineage.js';
import { deriveObject, putObject } from '../../src/objects/versions.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/store.js';
import { writeProject } from '../helpers/project.js';
import { makeTempDir } from '../helpers/temp.js';

const project = makeTempDir();
let store: Store;

async function collect(gen: AsyncGenerator<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const line of gen) out.push(line);
  return out;
}

beforeAll(async () => {
  writeProject(project, {
    'join.ts': `export default function join(input: [{ name: string }, { total: number }]) { return { name: input[0].name, total: input[1].total }; }`,
    'bump.ts': `export default function bump(input: { total: number }) { return { total: input.total + 1 }; }`,
  });
  store = await openStore(join(makeTempDir(), 'store'));
  await putObject(store, "customers/o'brien", { name: "O'Brien\\ \n" });
  await putObject(store, 'orders/1', { total: 10 });
  const run = await startRun(store, { name: 'cypher', projectDir: project });
  const joinStep = await run.step('join', { module: join(project, 'join.ts') });
  const bump = await run.step('bump', { module: join(project, 'bump.ts') });
  await deriveObject(run, joinStep, { inputs: ["customers/o'brien", 'orders/1'], output: 'reports/1' });
  await deriveObject(run, bump, { inputs: ['orders/1'], output: 'orders/1' });
  await deriveObject(run, bump, { inputs: ['orders/1'], output: 'orders/1' });
  await run.finish();
});

afterAll(async () => store.close());

describe('Cypher export', () => {
  it('loads into Kùzu with every execution, value, object and edge', async () => {
    const statements = await collect(exportCypher(store, { dialect: 'kuzu' }));
    const ours = await lineage(store, 'orders/1');
    const queries = [
      'MATCH (e:Execution) RETURN count(e) AS n',
      'MATCH (o:Object) RETURN o.id AS id ORDER BY id',
      'MATCH (v:Value)-[r:VERSION_OF]->(o:Object) RETURN o.id AS id, count(r) AS n ORDER BY id',
      // The join used both inputs, in order.
      "MATCH (e:Execution)-[u:USED]->(v:Value)-[:VERSION_OF]->(o:Object) WHERE e.step = 'join' RETURN u.position AS p, o.id AS id ORDER BY p",
      // Ancestors of the latest orders/1 version, walked in the graph database.
      "MATCH (v3:Value)-[r:VERSION_OF]->(:Object {id: 'orders/1'}) WHERE r.ordinal = 3 " +
        'MATCH (e2:Execution)-[:GENERATED]->(v3) MATCH (e2)-[:USED]->(v2:Value) ' +
        'MATCH (e1:Execution)-[:GENERATED]->(v2) MATCH (e1)-[:USED]->(v1:Value) RETURN v2.hash AS h2, v1.hash AS h1',
      'MATCH (e:Execution)-[:RAN]->(s:Step) RETURN s.id AS id, count(e) AS n ORDER BY id',
    ];
    const dir = makeTempDir();
    writeFileSync(join(dir, 'export.cypher'), statements.join('\n'));
    writeFileSync(join(dir, 'queries.json'), JSON.stringify(queries));
    const child = spawnSync(process.execPath, [join(import.meta.dirname, 'kuzu-load.mjs'), join(dir, 'graph.kuzu'), join(dir, 'export.cypher'), join(dir, 'queries.json')], { encoding: 'utf8', timeout: 120_000 });
    expect(child.stderr).toBe('');
    const [executions, objects, versions, joinRows, chain, steps] = JSON.parse(child.stdout) as Record<string, unknown>[][];
    expect(executions).toEqual([{ n: 3 }]);
    expect(objects).toEqual([{ id: "customers/o'brien" }, { id: 'orders/1' }, { id: 'reports/1' }]);
    expect(versions).toEqual([
      { id: "customers/o'brien", n: 1 },
      { id: 'orders/1', n: 3 },
      { id: 'reports/1', n: 1 },
    ]);
    expect(joinRows).toEqual([{ p: 0, id: "customers/o'brien" }, { p: 1, id: 'orders/1' }]);
    const byOrdinal = new Map(ours.nodes.filter((n) => n.kind === 'version').map((n) => [n.ordinal, n.contentHash]));
    expect(chain).toEqual([{ h2: byOrdinal.get(2), h1: byOrdinal.get(1) }]);
    expect(ours.nodes.filter((n) => n.kind === 'execution')).toHaveLength(2);
    expect(steps).toEqual([{ id: 'bump', n: 2 }, { id: 'join', n: 1 }]);
  });

  it('writes the same data statements for Neo4j, with constraints instead of tables', async () => {
    const neo = await collect(exportCypher(store, { dialect: 'neo4j' }));
    const kz = await collect(exportCypher(store, { dialect: 'kuzu' }));
    const data = (lines: string[]): string[] => lines.filter((l) => !l.startsWith('//') && !l.startsWith('CREATE CONSTRAINT') && !l.startsWith('CREATE NODE') && !l.startsWith('CREATE REL'));
    expect(data(neo)).toEqual(data(kz));
    expect(neo.filter((l) => l.startsWith('CREATE CONSTRAINT'))).toHaveLength(4);
    expect(neo.every((l) => l.startsWith('//') || l.endsWith(';'))).toBe(true);
  });

  it('limits the export to the lineage of one object', async () => {
    const lines = await collect(exportCypher(store, { dialect: 'kuzu', objectId: 'reports/1' }));
    const objects = lines.filter((l) => l.startsWith('MERGE (:Object'));
    expect(objects).toHaveLength(3);
    expect(lines.filter((l) => l.startsWith('MERGE (e:Execution'))).toHaveLength(1);
  });

  it('is a format of `provenant export`, and --object scopes the other formats to the object\'s lineage', async () => {
    let text = '';
    await exportFormat('cypher-kuzu').export(store, { objectId: 'reports/1' }, (t) => {
      text += t;
    });
    expect(text.split('\n').filter((l) => l.startsWith('MERGE (:Object'))).toHaveLength(3);
    const inScope: string[] = [];
    for await (const e of selectExecutions(store, { objectId: 'reports/1' })) inScope.push(e.functionId);
    expect(inScope).toEqual(['join']);
    const orders: string[] = [];
    for await (const e of selectExecutions(store, { objectId: 'orders/1' })) orders.push(e.functionId);
    expect(orders.sort()).toEqual(['bump', 'bump', 'join']);
  });

  it('PROV-JSON has object versions as entities, read by python3-prov: generated by their execution, derived from the versions it used', async () => {
    const file = join(makeTempDir(), 'objects.prov.json');
    writeFileSync(file, JSON.stringify(await provJson(store, { objectId: 'reports/1' })));
    const script = `
import json, sys
import prov.model as pm
doc = pm.ProvDocument.deserialize(sys.argv[1], format='json')
out = {'entities': [], 'generated': [], 'derived': [], 'specializations': []}
for r in doc.get_records():
    if isinstance(r, pm.ProvEntity): out['entities'].append(str(r.identifier))
    elif isinstance(r, pm.ProvGeneration): out['generated'].append([str(r.get_attribute('prov:entity').pop()), str(r.get_attribute('prov:activity').pop())])
    elif isinstance(r, pm.ProvDerivation): out['derived'].append([str(r.get_attribute('prov:generatedEntity').pop()), str(r.get_attribute('prov:usedEntity').pop())])
    elif isinstance(r, pm.ProvSpecialization): out['specializations'].append([str(r.get_attribute('prov:specificEntity').pop()), str(r.get_attribute('prov:generalEntity').pop())])
print(json.dumps(out))`;
    const read = JSON.parse(execFileSync('/usr/bin/python3', ['-c', script, file], { encoding: 'utf8' })) as { entities: string[]; generated: string[][]; derived: string[][]; specializations: string[][] };
    const [report] = await store.listObjectVersions('reports/1');
    const [customer] = await store.listObjectVersions("customers/o'brien");
    const [firstOrders] = await store.listObjectVersions('orders/1');
    expect(read.entities).toContain(`version:${report!.versionId}`);
    expect(read.generated).toContainEqual([`version:${report!.versionId}`, `exec:${report!.executionId}`]);
    expect(read.derived).toContainEqual([`version:${report!.versionId}`, `version:${customer!.versionId}`]);
    expect(read.derived).toContainEqual([`version:${report!.versionId}`, `version:${firstOrders!.versionId}`]);
    expect(read.specializations).toContainEqual([`version:${report!.versionId}`, 'object:reports%2F1']);
  });
});
