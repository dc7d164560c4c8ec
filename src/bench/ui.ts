/**
 * Web UI bench: `ui.lineage_2000_render_ms`, the time from navigating to the lineage view until a
 * 2,000-node lineage graph is laid out (d3-dag) and painted, in headless Chromium against the HTTP
 * API over a real store. The DAG is a reduction tree of derived objects: 667 ingested originals,
 * merged two by two by recorded executions up to one root object (667 + 666 + 666 = 1,999 nodes
 * plus the root's own version counted once: 1,999 lineage nodes, all ancestors of the root).
 *
 * Run alone: `npm run build && node dist/bench/ui.js`; `npm run bench` includes it. Needs
 * /usr/bin/chromium (skipped with a message otherwise).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createToken } from '../auth/tokens.js';
import { startRun } from '../capture/run.js';
import { createServer } from '../http/lazy.js';
import { deriveObject, putObject } from '../objects/versions.js';
import { openStore } from '../store/open.js';
import type { BenchResult } from './run.js';

const CHROMIUM = '/usr/bin/chromium';
const LEAVES = 667;
const RUNS = 5;

/** Build the store: a reduction tree whose root has ~2,000 lineage nodes. Returns the root object id. */
async function buildDag(dir: string): Promise<{ rootId: string; token: string }> {
  const project = join(dir, 'project');
  mkdirSync(join(project, 'steps'), { recursive: true });
  writeFileSync(join(project, 'steps', 'merge.ts'), 'export default function merge([a, b]: [{ sum: number }, { sum: number }]) {\n  return { sum: a.sum + b.sum };\n}\n');
  const store = await openStore(join(dir, 'store'));
  try {
    let level: string[] = [];
    for (let i = 0; i < LEAVES; i++) {
      const id = `leaf/${i}`;
      await putObject(store, id, { sum: i });
      level.push(id);
    }
    const run = await startRun(store, { name: 'bench lineage dag' });
    const merge = await run.step('merge', { module: join(project, 'steps', 'merge.ts') });
    let depth = 0;
    let n = 0;
    while (level.length > 1) {
      depth++;
      const next: string[] = [];
      for (let i = 0; i < level.length; i += 2) {
        const a = level[i] as string;
        const b = level[i + 1];
        if (b === undefined) {
          next.push(a);
          continue;
        }
        const out = `sum/${depth}/${n++}`;
        await deriveObject(run, merge, { inputs: [a, b], output: out });
        next.push(out);
      }
      level = next;
    }
    await run.finish();
    const token = (await createToken(store, { principal: 'bench', grants: ['read:*', 'lineage:*'] })).token;
    return { rootId: level[0] as string, token };
  } finally {
    await store.close();
  }
}

/** Measure `ui.lineage_2000_render_ms` (median of several navigations). */
export async function benchUi(): Promise<BenchResult[]> {
  if (!existsSync(CHROMIUM)) {
    process.stderr.write(`ui bench skipped: ${CHROMIUM} is missing (apt-get install chromium)\n`);
    return [];
  }
  const { chromium } = await import('playwright-core');
  const dir = mkdtempSync(join(tmpdir(), 'provenant-bench-ui-'));
  const { rootId, token } = await buildDag(dir);
  const store = await openStore(join(dir, 'store'), { create: false });
  const server = await createServer(store, { rateLimit: false });
  const url = await server.listen({ port: 0, host: '127.0.0.1' });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  try {
    const times: number[] = [];
    let nodes = 0;
    let drawMs: number[] = [];
    const tasks: number[] = [];
    for (let i = 0; i < RUNS + 1; i++) {
      const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
      await context.addInitScript(`sessionStorage.setItem('provenant.token', ${JSON.stringify(token)})`);
      const page = await context.newPage();
      const cdp = await context.newCDPSession(page);
      await cdp.send('Performance.enable');
      await page.goto(`${url}/#/lineage?ref=${encodeURIComponent(rootId)}&group=0`);
      await page.waitForSelector('body[data-lineage-rendered-ms]', { timeout: 60_000 });
      // performance.now() at the end of drawing: milliseconds since the navigation started.
      const ms = Number(await page.getAttribute('body', 'data-lineage-rendered-ms'));
      nodes = Number(await page.getAttribute('svg.graph', 'data-nodes'));
      // CPU time of the page's main thread (CDP ThreadTime), from navigation to the graph drawn: what
      // contention from other processes inflates far less than wall time.
      const metrics = (await cdp.send('Performance.getMetrics')).metrics;
      const metric = (name: string): number => Math.round((metrics.find((m) => m.name === name)?.value ?? Number.NaN) * 1000);
      const taskMs = metric('ThreadTime');
      if (i > 0) {
        times.push(ms);
        tasks.push(taskMs);
        drawMs.push(Number(await page.getAttribute('body', 'data-lineage-draw-ms')));
        process.stderr.write(`render ${Math.round(ms)} ms (main thread CPU ${taskMs} ms): fetch ${await page.getAttribute('body', 'data-lineage-fetch-ms')} ms, layout ${await page.getAttribute('body', 'data-lineage-layout-ms')} ms, build+layout+draw ${await page.getAttribute('body', 'data-lineage-draw-ms')} ms (${await page.getAttribute('body', 'data-lineage-phases')})\n`);
      }
      if (i === RUNS && process.env.PROVENANT_BENCH_UI_SCREENSHOT !== undefined) {
        // For a look at the large layout: the fitted graph, then zoomed in on the traced node.
        await page.screenshot({ path: `${process.env.PROVENANT_BENCH_UI_SCREENSHOT}-fit.png` });
        await page.fill('#lineage-search', rootId);
        await page.press('#lineage-search', 'Enter');
        await page.waitForTimeout(300);
        await page.screenshot({ path: `${process.env.PROVENANT_BENCH_UI_SCREENSHOT}-zoomed.png` });
      }
      await context.close();
    }
    times.sort((a, b) => a - b);
    drawMs = drawMs.sort((a, b) => a - b);
    const median = times[Math.floor(times.length / 2)] as number;
    return [
      {
        name: 'ui.lineage_2000_render_ms',
        unit: 'ms',
        value: Math.round(median),
        extra: `headless Chromium (${browser.version()}), 1440x900: navigation start to a ${nodes}-node lineage graph (${LEAVES} ingested objects merged pairwise by recorded executions) fetched through the HTTP API (up and down), laid out by d3-dag's Sugiyama layout, drawn as SVG and painted; median of ${RUNS} navigations after one warm-up (${times.map((t) => Math.round(t)).join(', ')} ms); layout+draw alone ${drawMs[Math.floor(drawMs.length / 2)]} ms; the page's main thread used ${[...tasks].sort((a, b) => a - b)[Math.floor(tasks.length / 2)]} ms of CPU (CDP ThreadTime, median); 1-minute load average ${loadavg()[0]?.toFixed(1)} on ${cpus().length} cores (target < 2000 ms)`,
      },
    ];
  } finally {
    await browser.close();
    await server.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const results = await benchUi();
  process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
}
