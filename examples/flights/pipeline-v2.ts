/**
 * The example pipeline after a deploy: the same steps, with normalize version 2 (which has a subtle
 * unit slip, see steps/normalize-v2.ts). `provenant demo` runs the first half of the flights with
 * pipeline.ts and the second half with this file, then bisects and runs a what-if with the fix.
 */
import { definePipeline } from 'provenant';

export default definePipeline({
  name: 'flights',
  failurePolicy: 'dead-letter',
  steps: [
    { id: 'normalize', module: './steps/normalize-v2.ts' },
    { id: 'classify', module: './steps/classify.ts', params: { lateAfterMinutes: 15, severeAfterMinutes: 60 } },
    { id: 'routeStats', module: './steps/route-stats.ts', stateful: true },
  ],
});
