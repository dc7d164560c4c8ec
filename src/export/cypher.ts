/**
 * The provenance DAG as Cypher statements, for Neo4j or another Cypher graph database:
 * nodes `(:Execution)`, `(:Value)`, `(:Object)`, `(:Step)`; edges `(:Execution)-[:USED {position}]->(:Value)`,
 * `(:Execution)-[:GENERATED]->(:Value)`, `(:Value)-[:VERSION_OF {versionId, ordinal, validFrom…}]->(:Object)`
 * and `(:Execution)-[:RAN]->(:Step)`.
 *
 * One statement per line, each ending with `;`. Nodes are `MERGE`d on their key, so loading the
 * same export twice, or two exports that share values, adds nothing twice. The `kuzu` dialect
 * starts with the node and relationship tables Kùzu needs before data; the `neo4j` dialect with
 * uniqueness constraints that make the `MERGE`s fast.
 */
import type { ExecutionRecord, ObjectVersionRecord } from '../store/records.js';
import type { Store } from '../store/store.js';
import { validateObjectId } from '../objects/refs.js';
import { registerExportFormat } from './registry.js';

/** Which database the statements are for. */
export type CypherDialect = 'neo4j' | 'kuzu';

/** Options of {@link exportCypher}. */
export interface CypherExportOptions {
  readonly dialect?: CypherDialect;
  /** Only the lineage (ancestors and descendants) of this object's versions. Default: every object. */
  readonly objectId?: string;
  /** Only versions made at or before this time (epoch microseconds). */
  readonly untilUs?: number;
}

/** A Cypher string literal. */
export function cypherString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n').replace(/\r/g, '\\r')}'`;
}

const SCHEMA: Readonly<Record<CypherDialect, readonly string[]>> = {
  kuzu: [
    'CREATE NODE TABLE IF NOT EXISTS Step(id STRING, PRIMARY KEY(id));',
    'CREATE NODE TABLE IF NOT EXISTS Execution(id STRING, step STRING, versionHash STRING, status STRING, startedUs INT64, endedUs INT64, paramsHash STRING, outputHash STRING, recordHash STRING, runId STRING, PRIMARY KEY(id));',
    'CREATE NODE TABLE IF NOT EXISTS Value(hash STRING, PRIMARY KEY(hash));',
    'CREATE NODE TABLE IF NOT EXISTS Object(id STRING, PRIMARY KEY(id));',
    'CREATE REL TABLE IF NOT EXISTS USED(FROM Execution TO Value, position INT64);',
    'CREATE REL TABLE IF NOT EXISTS GENERATED(FROM Execution TO Value);',
    'CREATE REL TABLE IF NOT EXISTS VERSION_OF(FROM Value TO Object, versionId STRING, ordinal INT64, validFromUs INT64, validFrom STRING, contentType STRING, recordHash STRING);',
    'CREATE REL TABLE IF NOT EXISTS RAN(FROM Execution TO Step);',
  ],
  neo4j: [
    'CREATE CONSTRAINT provenant_step IF NOT EXISTS FOR (n:Step) REQUIRE n.id IS UNIQUE;',
    'CREATE CONSTRAINT provenant_execution IF NOT EXISTS FOR (n:Execution) REQUIRE n.id IS UNIQUE;',
    'CREATE CONSTRAINT provenant_value IF NOT EXISTS FOR (n:Value) REQUIRE n.hash IS UNIQUE;',
    'CREATE CONSTRAINT provenant_object IF NOT EXISTS FOR (n:Object) REQUIRE n.id IS UNIQUE;',
  ],
};

/** The versions to export: every object's, or the lineage of one object's. */
async function versionsInScope(store: Store, options: CypherExportOptions): Promise<ObjectVersionRecord[]> {
  const until = options.untilUs;
  const within = (v: ObjectVersionRecord): boolean => until === undefined || v.validFromUs <= until;
  if (options.objectId !== undefined) {
    validateObjectId(options.objectId);
    const own = (await store.listObjectVersions(options.objectId, until === undefined ? {} : { untilUs: until })).map((v) => v.versionId);
    const found = new Map<string, ObjectVersionRecord>();
    for (const direction of ['up', 'down'] as const) {
      const rows = await store.walkLineage({ from: own, direction, ...(until === undefined ? {} : { untilUs: until }), limit: 1_000_000 });
      for (const r of rows.versions) found.set(r.version.versionId, r.version);
    }
    return [...found.values()].filter(within);
  }
  const out: ObjectVersionRecord[] = [];
  for (const o of await store.listObjects({ limit: Number.MAX_SAFE_INTEGER })) {
    out.push(...(await store.listObjectVersions(o.objectId, until === undefined ? {} : { untilUs: until })));
  }
  return out;
}

/**
 * Cypher statements for the object DAG, one per yielded line.
 * @throws ProvenantError INPUT_INVALID for a malformed object id
 */
export async function* exportCypher(store: Store, options: CypherExportOptions = {}): AsyncGenerator<string> {
  const dialect = options.dialect ?? 'neo4j';
  yield `// Provenant provenance graph from ${store.location} (${dialect} dialect)`;
  yield* SCHEMA[dialect];
  const versions = await versionsInScope(store, options);
  versions.sort((a, b) => a.validFromUs - b.validFromUs);
  const seenValues = new Set<string>();
  const seenObjects = new Set<string>();
  const seenSteps = new Set<string>();
  const value = (hash: string): string[] => {
    if (seenValues.has(hash)) return [];
    seenValues.add(hash);
    return [`MERGE (:Value {hash: ${cypherString(hash)}});`];
  };
  for (const v of versions) {
    if (!seenObjects.has(v.objectId)) {
      seenObjects.add(v.objectId);
      yield `MERGE (:Object {id: ${cypherString(v.objectId)}});`;
    }
    yield* value(v.contentHash);
    if (v.executionId !== null) {
      const e = await store.getExecution(v.executionId);
      if (e !== undefined) yield* executionStatements(e, value, seenSteps);
    }
    yield (
      `MATCH (v:Value {hash: ${cypherString(v.contentHash)}}), (o:Object {id: ${cypherString(v.objectId)}}) ` +
      `CREATE (v)-[:VERSION_OF {versionId: ${cypherString(v.versionId)}, ordinal: ${v.ordinal}, validFromUs: ${v.validFromUs}, ` +
      `validFrom: ${cypherString(new Date(Math.floor(v.validFromUs / 1000)).toISOString())}, contentType: ${cypherString(v.contentType)}, recordHash: ${cypherString(v.recordHash)}}]->(o);`
    );
  }
}

function* executionStatements(e: ExecutionRecord, value: (hash: string) => string[], seenSteps: Set<string>): Generator<string> {
  if (!seenSteps.has(e.functionId)) {
    seenSteps.add(e.functionId);
    yield `MERGE (:Step {id: ${cypherString(e.functionId)}});`;
  }
  const id = cypherString(e.id);
  yield (
    `MERGE (e:Execution {id: ${id}}) SET e.step = ${cypherString(e.functionId)}, e.versionHash = ${cypherString(e.functionVersionHash)}, ` +
    `e.status = ${cypherString(e.status)}, e.startedUs = ${e.startedUs}, e.endedUs = ${e.endedUs}, e.paramsHash = ${cypherString(e.paramsHash)}, ` +
    `e.outputHash = ${cypherString(e.outputHash ?? '')}, e.recordHash = ${cypherString(e.recordHash)}, e.runId = ${cypherString(e.runId)};`
  );
  yield `MATCH (e:Execution {id: ${id}}), (s:Step {id: ${cypherString(e.functionId)}}) CREATE (e)-[:RAN]->(s);`;
  for (const [position, hash] of e.inputHashes.entries()) {
    yield* value(hash);
    yield `MATCH (e:Execution {id: ${id}}), (v:Value {hash: ${cypherString(hash)}}) CREATE (e)-[:USED {position: ${position}}]->(v);`;
  }
  if (e.outputHash !== null) {
    yield* value(e.outputHash);
    yield `MATCH (e:Execution {id: ${id}}), (v:Value {hash: ${cypherString(e.outputHash)}}) CREATE (e)-[:GENERATED]->(v);`;
  }
}

for (const dialect of ['neo4j', 'kuzu'] as const) {
  registerExportFormat({
    name: dialect === 'neo4j' ? 'cypher' : 'cypher-kuzu',
    description:
      dialect === 'neo4j'
        ? 'Cypher statements of the object DAG for Neo4j (uniqueness constraints, then MERGE/CREATE)'
        : 'Cypher statements of the object DAG for Kùzu (node and relationship tables, then MERGE/CREATE)',
    extension: 'cypher',
    async export(store, scope, write) {
      for await (const line of exportCypher(store, {
        dialect,
        ...(scope.objectId === undefined ? {} : { objectId: scope.objectId }),
        ...(scope.asOfUs === undefined ? {} : { untilUs: scope.asOfUs }),
      })) {
        await write(`${line}\n`);
      }
    },
  });
}
