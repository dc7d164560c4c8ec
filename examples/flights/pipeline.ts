/**
 * The example pipeline: US domestic flights (vega-datasets) → normalized records → delay classes →
 * running figures per route (a stateful step: its state is snapshot at every checkpoint).
 * Run it with `npx provenant demo`, or `npx provenant run examples/flights/pipeline.ts --input <file>`.
 */
import { definePipeline } from 'provenant';

export default definePipeline({
  name: 'flights',
  failurePolicy: 'dead-letter',
  steps: [
    { id: 'normalize', module: './steps/normalize.ts' },
    { id: 'classify', module: './steps/classify.ts', params: { lateAfterMinutes: 15, severeAfterMinutes: 60 } },
    { id: 'routeStats', module: './steps/route-stats.ts', stateful: true },
  ],
});
