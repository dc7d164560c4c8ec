/**
 * OpenLineage run events (spec 2-0-2). Each Provenant run is an OpenLineage run of the job named
 * after its pipeline; each step in it is a child run (job `<pipeline>.<step>`, a ParentRunFacet
 * pointing at the pipeline run) with a START and a COMPLETE or FAIL event. Datasets: the stream a
 * run read, and each step's output (`<stream>.<step>`), the input of the next step.
 *
 * Facets: standard `sourceCodeLocation` (the step's module and export) and `jobType`; Provenant's
 * own facets, named with the `provenant_` prefix and each with its own `_schemaURL`, as the spec
 * asks of custom facets: job `provenant_codeVersion` (version hash, bundled files and packages),
 * run `provenant_run` (run id, kind, counts, checkpoints with their state hashes), and dataset
 * `provenant_valueHashes` (the input and output value hashes, in execution order).
 */
import { createHash } from 'node:crypto';
import type { ExecutionRecord, RunInfo } from '../store/records.js';
import type { Store } from '../store/store.js';
import { PROVENANT_VERSION } from '../version.js';
import { registerExportFormat, selectExecutions, type ExportScope } from './registry.js';

/** The `producer` of our events and facets. */
export const OPENLINEAGE_PRODUCER = `https://provenant.dev/producer/${PROVENANT_VERSION}`;
const SCHEMA = 'https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent';
/** Where our custom facets' schemas live (one `$defs` entry per facet). */
export const PROVENANT_FACETS_SCHEMA = 'https://provenant.dev/spec/openlineage/facets/1-0-0/ProvenantFacets.json';
/** The job and dataset namespace. */
export const OPENLINEAGE_NAMESPACE = 'provenant';

/** A RunEvent. */
export type RunEvent = Record<string, unknown> & { eventType: string; eventTime: string; run: { runId: string; facets?: Record<string, unknown> }; job: { namespace: string; name: string } };

const iso = (us: number): string => new Date(Math.floor(us / 1000)).toISOString();
const facet = (schema: string, body: Record<string, unknown>) => ({ _producer: OPENLINEAGE_PRODUCER, _schemaURL: schema, ...body });
const custom = (name: string, body: Record<string, unknown>) => facet(`${PROVENANT_FACETS_SCHEMA}#/$defs/${name}`, body);

/** A stable UUID (v5-like, from SHA-256) for a child run: the same export gives the same ids. */
function childRunId(runId: string, stepId: string): string {
  const h = createHash('sha256').update(`${runId}\u0000${stepId}`).digest();
  h[6] = ((h[6] as number) & 0x0f) | 0x50;
  h[8] = ((h[8] as number) & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

interface StepGroup {
  stepId: string;
  executions: ExecutionRecord[];
}

/** The OpenLineage events of a scope, run by run. */
export async function openLineageEvents(store: Store, scope: ExportScope): Promise<RunEvent[]> {
  const byRun = new Map<string, ExecutionRecord[]>();
  for await (const e of selectExecutions(store, scope)) {
    const list = byRun.get(e.runId) ?? [];
    list.push(e);
    byRun.set(e.runId, list);
  }
  const events: RunEvent[] = [];
  for (const [runId, executions] of byRun) {
    const run = await store.getRun(runId);
    if (run === undefined) continue;
    events.push(...(await runEvents(store, run, executions)));
  }
  return events;
}

async function runEvents(store: Store, run: RunInfo, executions: ExecutionRecord[]): Promise<RunEvent[]> {
  const stream = executions.find((e) => e.streamId !== null)?.streamId ?? null;
  // Steps in pipeline order: the order they first ran for the first record.
  const groups = new Map<string, StepGroup>();
  for (const e of executions) {
    let g = groups.get(e.functionId);
    if (g === undefined) groups.set(e.functionId, (g = { stepId: e.functionId, executions: [] }));
    g.executions.push(e);
  }
  const checkpoints = stream === null ? [] : await store.listCheckpoints({ runId: run.id });
  const endUs = run.end?.endedUs ?? Math.max(...executions.map((e) => e.endedUs));
  const ended = run.end === null ? null : run.end.status === 'failed' ? 'FAIL' : 'COMPLETE';
  const parentJob = { namespace: OPENLINEAGE_NAMESPACE, name: run.name };
  const runFacets = {
    provenant_run: custom('ProvenantRunFacet', {
      runId: run.id,
      kind: run.kind,
      executions: executions.length,
      failed: executions.filter((e) => e.status === 'failed').length,
      checkpoints: checkpoints.map((c) => ({
        checkpointId: c.checkpointId,
        status: c.status,
        startOffset: c.startOffset,
        endOffset: c.end?.endOffset ?? null,
        stateHash: c.end?.stateHash ?? null,
        recordHash: c.recordHash,
      })),
    }),
  };
  const base = (eventType: string, timeUs: number) => ({ eventType, eventTime: iso(timeUs), producer: OPENLINEAGE_PRODUCER, schemaURL: SCHEMA });
  const dataset = (name: string) => ({ namespace: OPENLINEAGE_NAMESPACE, name });
  const events: RunEvent[] = [{ ...base('START', run.startedUs), run: { runId: run.id, facets: runFacets }, job: parentJob, inputs: stream === null ? [] : [dataset(stream)], outputs: [] }];
  let previous = stream;

  for (const g of groups.values()) {
    const first = g.executions[0] as ExecutionRecord;
    const version = await store.getStepVersion(first.functionId, first.functionVersionHash);
    const versions = [...new Set(g.executions.map((e) => e.functionVersionHash))];
    const job = {
      namespace: OPENLINEAGE_NAMESPACE,
      name: `${run.name}.${g.stepId}`,
      facets: {
        jobType: facet('https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet', {
          processingType: stream === null ? 'BATCH' : 'STREAMING',
          integration: 'PROVENANT',
          jobType: 'STEP',
        }),
        ...(version === undefined
          ? {}
          : {
              sourceCodeLocation: facet('https://openlineage.io/spec/facets/1-1-0/SourceCodeLocationJobFacet.json#/$defs/SourceCodeLocationJobFacet', {
                type: 'file',
                url: `file:${encodeURI(version.manifest.module)}#${encodeURIComponent(version.manifest.export)}`,
                path: version.manifest.module,
                version: first.functionVersionHash,
              }),
            }),
        provenant_codeVersion: custom('ProvenantCodeVersionJobFacet', {
          versionHash: first.functionVersionHash,
          versions,
          module: version?.manifest.module ?? null,
          export: version?.manifest.export ?? null,
          files: version?.manifest.files ?? [],
          packages: version?.manifest.packages ?? [],
        }),
      },
    };
    const runId = childRunId(run.id, g.stepId);
    const failed = g.executions.filter((e) => e.status === 'failed');
    const output = stream === null ? `${run.name}.${g.stepId}` : `${stream}.${g.stepId}`;
    const inputs = previous === null ? [] : [dataset(previous)];
    const childFacets = {
      parent: facet('https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet', {
        run: { runId: run.id },
        job: { namespace: parentJob.namespace, name: parentJob.name },
      }),
      ...runFacets,
    };
    events.push({ ...base('START', Math.min(...g.executions.map((e) => e.startedUs))), run: { runId, facets: childFacets }, job, inputs, outputs: [dataset(output)] });
    const stepEnd = run.end === null ? null : run.end.status === 'failed' && failed.length > 0 ? 'FAIL' : 'COMPLETE';
    if (stepEnd !== null) {
      const endFacets: Record<string, unknown> = { ...childFacets };
      if (stepEnd === 'FAIL') {
        endFacets.errorMessage = facet('https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet', {
          message: `${failed.length} execution(s) of ${g.stepId} failed; first: ${failed[0]?.id ?? '?'}`,
          programmingLanguage: 'TypeScript',
        });
      }
      events.push({
        ...base(stepEnd, Math.max(...g.executions.map((e) => e.endedUs))),
        run: { runId, facets: endFacets },
        job,
        inputs: inputs.map((d) => ({
          ...d,
          inputFacets: { provenant_valueHashes: custom('ProvenantValueHashesDatasetFacet', { executions: g.executions.map((e) => e.id), hashes: g.executions.map((e) => e.inputHashes) }) },
        })),
        outputs: [
          {
            ...dataset(output),
            outputFacets: { provenant_valueHashes: custom('ProvenantValueHashesDatasetFacet', { executions: g.executions.map((e) => e.id), hashes: g.executions.map((e) => e.outputHash) }) },
          },
        ],
      });
    }
    previous = output;

  }
  if (ended !== null) {
    const facets: Record<string, unknown> = { ...runFacets };
    if (ended === 'FAIL') {
      facets.errorMessage = facet('https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet', {
        message: `run ${run.id} ended ${run.end?.status ?? '?'}`,
        programmingLanguage: 'TypeScript',
      });
    }
    events.push({ ...base(ended, endUs), run: { runId: run.id, facets }, job: parentJob, inputs: stream === null ? [] : [dataset(stream)], outputs: previous === null || previous === stream ? [] : [dataset(previous)] });
  }

  return events;
}

registerExportFormat({
  name: 'openlineage',
  description: 'OpenLineage 2-0-2 run events, one JSON object per line',
  extension: 'ndjson',
  export: async (store, scope, write) => {
    for (const e of await openLineageEvents(store, scope)) await write(`${JSON.stringify(e)}\n`);
  },
});
