import { SqliteStore, runPipeline, loadPipelineFile, readRecords } from '/work/main/dist/index.js';
import { vegaDatasetPath } from '/work/main/dist/sources/datasets.js';
import { mkdtempSync } from 'node:fs';
const recs=[]; for await (const r of readRecords(vegaDatasetPath('flights-3m.parquet'), {limit: 100000})) recs.push(r);
const p = await loadPipelineFile('/work/main/examples/flights/pipeline.ts');
const store = SqliteStore.open(mkdtempSync('/tmp/prof-'));
store.commitBatch = async () => {}; const t=performance.now();
const r = await runPipeline(store, p.definition, recs, { baseDir: p.baseDir, streamId: 'bench' });
console.log(r.executions / ((performance.now()-t)/1000));
