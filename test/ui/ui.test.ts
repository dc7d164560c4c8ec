/**
 * The web UI end to end, in real headless Chromium (Debian's /usr/bin/chromium, driven by
 * playwright-core) against `provenant serve` in a child process, over a store with real data: the
 * flights example pipeline over 3,000 vega-datasets flights with checkpoints (a first deploy, then
 * normalize v2 over the rest), and objects with derivations (a report derived from a customer and
 * its orders, not kept, so reading it recomputes). Each test drives the page as a person would and
 * asserts on what it shows; a screenshot of each view goes to test-artifacts/screenshots/.
 *
 * Skipped loudly when /usr/bin/chromium is missing; under CI=true that fails instead.
 */
import type { ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken, deriveObject, gc, openStore, putObject, setPolicy, startRun } from '../../src/index.js';
import { cliJson } from '../helpers/cli.js';
import { ensureDist } from '../helpers/dist.js';
import { REPO_ROOT } from '../helpers/paths.js';
import { IN_CI } from '../helpers/services.js';
import { serve, stop } from '../helpers/serve.js';
import { makeTempDir } from '../helpers/temp.js';

const CHROMIUM = '/usr/bin/chromium';
const FLIGHTS = join(REPO_ROOT, 'node_modules', 'vega-datasets', 'data', 'flights-20k.json');
const SHOTS = join(REPO_ROOT, 'test-artifacts', 'screenshots');
const DOCS_SHOTS = join(REPO_ROOT, 'docs', 'screenshots');
const haveChromium = existsSync(CHROMIUM);

if (!haveChromium) {
  const message = `UI browser tests: ${CHROMIUM} is missing (apt-get install chromium)`;
  if (IN_CI) throw new Error(`${message}; CI must run them`);
  process.stderr.write(`\n*** SKIPPED: ${message} ***\n\n`);
}

let dir: string;
let child: ChildProcess | undefined;
let url: string;
let token: string;
let narrowToken: string;
let browser: Browser | undefined;
let page: Page;

async function shot(name: string, docs = false): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  const file = join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  if (docs) {
    mkdirSync(DOCS_SHOTS, { recursive: true });
    copyFileSync(file, join(DOCS_SHOTS, `${name}.png`));
  }
}

let loads = 0;
/** Load the app afresh at a view (a new document each time, so no state carries over). */
async function open(hash: string): Promise<void> {
  await page.goto(`${url}/?load=${++loads}${hash}`);
}

async function signIn(t = token): Promise<void> {
  await open(`#/signin`);
  await page.fill('#token', t);
  await page.click('button[type=submit]');
  await page.waitForSelector('#streams-title');
}

/** A store holding a large lineage: 300 ingested objects merged two by two up to one root (898 nodes). */
async function buildTree(storeDir: string): Promise<{ root: string; token: string }> {
  const store = await openStore(storeDir);
  try {
    const project = makeTempDir();
    writeFileSync(join(project, 'merge.ts'), 'export default function merge([a, b]: [{ sum: number }, { sum: number }]) {\n  return { sum: a.sum + b.sum };\n}\n');
    const tree = await startRun(store, { name: 'merge tree' });
    const merge = await tree.step('merge', { module: join(project, 'merge.ts') });
    let level: string[] = [];
    for (let i = 0; i < 300; i++) {
      await putObject(store, `tree/leaf/${i}`, { sum: i });
      level.push(`tree/leaf/${i}`);
    }
    for (let depth = 1, n = 0; level.length > 1; depth++) {
      const next: string[] = [];
      for (let i = 0; i < level.length; i += 2) {
        const [a, b] = [level[i] as string, level[i + 1]];
        if (b === undefined) {
          next.push(a);
          continue;
        }
        const out = `tree/sum/${depth}/${n++}`;
        await deriveObject(tree, merge, { inputs: [a, b], output: out });
        next.push(out);
      }
      level = next;
    }
    await tree.finish();
    return { root: level[0] as string, token: (await createToken(store, { principal: 'ui-tester', grants: ['read:*', 'lineage:*'] })).token };
  } finally {
    await store.close();
  }
}

describe.skipIf(!haveChromium)('web UI in headless Chromium', () => {
  beforeAll(async () => {
    await ensureDist();
    dir = join(makeTempDir(), 'store');
    await cliJson(['stream', 'append', 'flights', FLIGHTS, '--limit', '3000', '--store', dir, '--json']);
    await cliJson(['run', 'examples/flights/pipeline.ts', '--stream', 'flights', '--limit', '2000', '--checkpoint-every', '500', '--store', dir, '--json']);
    await cliJson(['run', 'examples/flights/pipeline-v2.ts', '--stream', 'flights', '--from-offset', '2000', '--checkpoint-every', '500', '--store', dir, '--json']);
    const store = await openStore(dir);
    await putObject(store, 'customers/42', { id: 42, name: 'Ada Lovelace', balance: 10 });
    await new Promise((r) => setTimeout(r, 1100));
    await putObject(store, 'customers/42', { id: 42, name: 'Ada Lovelace', balance: 20 });
    await putObject(store, 'orders/42', { items: [{ sku: 'notebook', amount: 40 }, { sku: 'engine', amount: 75 }] });
    const run = await startRun(store, { name: 'derive reports' });
    const enrich = await run.step('enrich', { module: join(REPO_ROOT, 'examples/objects/enrich.ts') });
    await deriveObject(run, enrich, { inputs: ['customers/42', 'orders/42'], output: 'reports/42' });
    await run.finish();
    await setPolicy(store, 'none');
    await gc(store);
    token = (await createToken(store, { principal: 'ui-tester', grants: ['read:*', 'lineage:*', 'stream:*', 'replay:*', 'steps:*'] })).token;
    narrowToken = (await createToken(store, { principal: 'auditor', grants: ['read:customers/*', 'lineage:customers/*'] })).token;
    await store.close();
    ({ child, url } = await serve(dir));
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
    page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    if (child !== undefined) await stop(child);
  });

  it('serves the UI at / with hashed assets cached as immutable', async () => {
    const index = await fetch(`${url}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(index.headers.get('cache-control')).toBe('no-cache');
    const html = await index.text();
    const js = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(js).toBeDefined();
    const asset = await fetch(`${url}${js}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect((await fetch(`${url}/assets/..%2F..%2Fpackage.json`)).status).toBe(404);
    // The data behind it still needs a token.
    expect((await fetch(`${url}/objects`)).status).toBe(401);
  });

  it('signs in with a pasted token, refuses a wrong one, and goes back to sign-in on 401', async () => {
    await page.goto(`${url}/`);
    await page.waitForSelector('#token');
    expect(page.url()).toContain('#/signin');
    await shot('signin');
    await page.fill('#token', `pvt_${'x'.repeat(43)}`);
    await page.click('button[type=submit]');
    await expect.poll(() => page.textContent('.state.error')).toContain('not known to this server');
    expect(await page.evaluate('sessionStorage.getItem("provenant.token")')).toBeNull();
    await signIn();
    expect(await page.evaluate('sessionStorage.getItem("provenant.token")')).toBe(token);
    await expect.poll(() => page.textContent('table.list')).toContain('flights');
    const objects = await page.locator('section:has(#objects-title) tbody tr').allTextContents();
    expect(objects.join('\n')).toContain('customers/42');
    expect(objects.join('\n')).toContain('reports/42');
    await shot('home', true);
    // A token revoked or replaced behind the page's back: the next call answers 401 → sign-in.
    await page.evaluate('sessionStorage.setItem("provenant.token", "pvt_revoked-meanwhile")');
    await open(`#/stream?id=flights`);
    await page.waitForSelector('#token');
    expect(page.url()).toContain('#/signin');
    // Signing in again goes back to where the user was.
    await page.fill('#token', token);
    await page.click('button[type=submit]');
    await page.waitForSelector('svg.timeline');
    expect(page.url()).toContain('#/stream?id=flights');
  });

  it('shows only what the token grants', async () => {
    await signIn(narrowToken);
    const objects = await page.locator('section:has(#objects-title) tbody tr').allTextContents();
    expect(objects.join('\n')).toContain('customers/42');
    expect(objects.join('\n')).not.toContain('reports/42');
    expect(await page.textContent('section:has(#streams-title)')).toContain('No streams you may see');
    await open(`#/lineage?ref=${encodeURIComponent('reports/42')}`);
    await expect.poll(() => page.textContent('.state.error')).toContain('Error 404');
    await signIn();
  });

  it('draws the lineage of a derived object; click a node to inspect it, collapse and search', async () => {
    await open(`#/lineage?ref=${encodeURIComponent('reports/42')}`);
    await page.waitForSelector('svg.graph[data-nodes]');
    expect(await page.getAttribute('svg.graph', 'data-nodes')).toBe('4');
    const titles = await page.locator('svg.graph .node text.title').allTextContents();
    expect(titles.sort()).toEqual(['customers/42', 'enrich', 'orders/42', 'reports/42']);
    const exec = page.locator('svg.graph .node.execution');
    expect(await exec.count()).toBe(1);
    expect(await exec.locator('text.sub').textContent()).toMatch(/^@[0-9a-f]{8}$/);
    expect(await page.locator('svg.graph .node.version').count()).toBe(3);
    expect(await page.locator('svg.graph .node.root text.title').textContent()).toBe('reports/42');
    await exec.click();
    await expect.poll(() => page.textContent('.inspector')).toContain('Stepenrich');
    await shot('lineage', true);
    await page.click('.inspector button:has-text("Collapse beyond")');
    expect(await page.getAttribute('svg.graph', 'data-nodes')).toBe('2');
    expect(await page.textContent('p.hint')).toContain('showing 2');
    await page.click('svg.graph .node.execution');
    await page.click('.inspector button:has-text("Expand beyond")');
    expect(await page.getAttribute('svg.graph', 'data-nodes')).toBe('4');
    await page.fill('#lineage-search', 'orders');
    await page.press('#lineage-search', 'Enter');
    await expect.poll(() => page.locator('svg.graph .node.match').count()).toBe(1);
    await expect.poll(() => page.textContent('.inspector h2')).toBe('orders/42');
    // Group by step: the execution becomes its step's group; expanding the group brings it back.
    await page.check('#group-by-step');
    await expect.poll(() => page.locator('svg.graph .node.group').count()).toBe(1);
    expect(await page.textContent('svg.graph .node.group text.title')).toBe('enrich ×1');
    expect(await page.locator('svg.graph .node.execution').count()).toBe(0);
    await page.click('svg.graph .node.group');
    await page.click('.inspector button:has-text("Expand enrich")');
    await expect.poll(() => page.locator('svg.graph .node.execution').count()).toBe(1);
    // Keyboard: focus a node and press Enter.
    await page.focus('svg.graph .node.version >> nth=0');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('svg.graph .node.selected').count()).toBe(1);
  });

  it('lays out a large lineage graph (898 nodes) with the fast layout (d3-dag): every node placed, none overlapping, text once zoomed in', async () => {
    // Its own store and server, so that the other views' screenshots stay as they are.
    const treeStore = join(makeTempDir(), 'store');
    const tree = await buildTree(treeStore);
    const server = await serve(treeStore);
    try {
      await page.goto(`${server.url}/#/signin`);
      await page.fill('#token', tree.token);
      await page.click('button[type=submit]');
      await page.waitForSelector('#streams-title');
      await page.goto(`${server.url}/?load=${++loads}#/lineage?ref=${encodeURIComponent(tree.root)}`);
      await page.waitForSelector('body[data-lineage-rendered-ms]', { timeout: 60_000 });
      expect(await page.getAttribute('svg.graph', 'data-nodes')).toBe('898');
      expect(await page.getAttribute('body', 'data-lineage-phases')).toContain('(d3-dag)');
      expect(await page.textContent('p.hint')).toContain('898 nodes, 897 edges.');
      // Every node has a place, and no two boxes overlap.
      const boxes = await page.$$eval('svg.graph .node', (els) =>
        els.map((el) => {
          const m = /translate\(([-\d.]+),([-\d.]+)\)/.exec(el.getAttribute('transform') ?? '');
          const r = el.querySelector('rect');
          return { placed: m !== null, x: Number(m?.[1]), y: Number(m?.[2]), w: Number(r?.getAttribute('width')), h: Number(r?.getAttribute('height')) };
        }),
      );
      expect(boxes).toHaveLength(898);
      expect(boxes.every((b) => b.placed && Number.isFinite(b.x) && Number.isFinite(b.y))).toBe(true);
      const sorted = [...boxes].sort((a, b) => a.x - b.x);
      let overlaps = 0;
      for (let i = 0; i < sorted.length; i++) {
        const a = sorted[i] as (typeof sorted)[number];
        for (let j = i + 1; j < sorted.length && (sorted[j] as (typeof sorted)[number]).x < a.x + a.w; j++) {
          const b = sorted[j] as (typeof sorted)[number];
          if (b.y < a.y + a.h && a.y < b.y + b.h) overlaps++;
        }
      }
      expect(overlaps).toBe(0);
      // The whole graph fits the view: too small for text, which is not drawn; finding a node zooms
      // in on it and the text is back.
      expect(await page.getAttribute('svg.graph', 'class')).toContain('far');
      expect(await page.locator('svg.graph .node.root text.title').isVisible()).toBe(false);
      await page.fill('#lineage-search', 'tree/leaf/299');
      await page.press('#lineage-search', 'Enter');
      await expect.poll(() => page.textContent('.inspector h2')).toBe('tree/leaf/299');
      expect(await page.getAttribute('svg.graph', 'class')).not.toContain('far');
      expect(await page.locator('svg.graph .node.match text.title').isVisible()).toBe(true);
      await shot('lineage-large');
    } finally {
      await stop(server.child);
    }
  });

  it('inspects an execution: foldable input, output and params, the stored source, when its version first ran', async () => {
    await open(`#/lineage?ref=${encodeURIComponent('reports/42')}`);
    await page.waitForSelector('svg.graph[data-nodes]');
    await page.click('svg.graph .node.execution');
    await page.click('.inspector a:has-text("Inspect execution")');
    await page.waitForSelector('pre.code');
    expect(await page.textContent('dd.step')).toBe('enrich');
    // The report's bytes were dropped by gc (policy none): the inspector says so, with the hash.
    expect(await page.textContent('section[aria-label="Output"]')).toMatch(/Output [0-9a-f]{12}not stored \(dropped or never kept\)/);
    expect(await page.textContent('section[aria-label="Input 1"]')).toContain('"Ada Lovelace"');
    expect(await page.textContent('section[aria-label="Input 2"]')).toContain('"engine"');
    expect(await page.textContent('pre.code')).toContain('lifetimeValue');
    expect(await page.locator('pre.code .c-keyword').count()).toBeGreaterThan(3);
    expect(await page.textContent('dd.first-ran')).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ in run …[0-9a-f]{8}$/);
    expect(await page.textContent('code.version-hash')).toMatch(/^sha256:[0-9a-f]{64}$/);
    // Fold an input.
    const details = page.locator('section[aria-label="Input 2"] details').first();
    await details.locator('summary').first().click();
    expect(await details.evaluate((d) => (d as unknown as { open: boolean }).open)).toBe(false);
    await details.locator('summary').first().click();
    expect(await page.textContent('section[aria-label="Made"]')).toContain('reports/42 v1 (not kept: reading it recomputes)');
    await shot('execution', true);
    await page.click('section[aria-label="Made"] a:has-text("read as of then")');
    await expect.poll(() => page.textContent('dd.obtained-how')).toBe('recomputed');
    expect(await page.textContent('section[aria-label="object content"]')).toContain('"gold"');
  });

  it('shows the checkpoint timeline, selects a range and runs a verify replay, then steps through it', async () => {
    await open(`#/stream?id=flights`);
    await page.waitForSelector('svg.timeline rect.cp');
    expect(await page.locator('svg.timeline rect.cp').count()).toBe(6);
    expect(await page.locator('svg.timeline rect.cp.COMPLETE').count()).toBe(6);
    expect(await page.textContent('main')).toContain('6 checkpoints in 2 runs');
    const first = page.locator('svg.timeline rect.cp').nth(0);
    await first.hover();
    await expect.poll(() => page.textContent('.cp-detail dd.offsets')).toBe('0 – 500');
    expect(await page.textContent('.cp-detail dd.executions')).toBe('1500');
    await first.click();
    await page.locator('svg.timeline rect.cp').nth(1).click({ modifiers: ['Shift'] });
    await expect.poll(() => page.textContent('p.range')).toContain('2 checkpoints selected: offsets 0–1000, 1000 records');
    await shot('timeline', true);
    await page.click('#start-verify');
    await page.waitForSelector('#open-stepper', { timeout: 60_000 });
    expect(await page.textContent('p.job')).toContain('Verify replay completed');
    expect(await page.textContent('main')).toContain('3000 executions: 3000 matched, 0 diverged');
    await page.click('#open-stepper');
    await page.waitForSelector('.pane');
    await expect.poll(() => page.textContent('p.position')).toBe('Execution 1 of 3000 — step normalize, offset 0: matched');
    await page.keyboard.press('n');
    await expect.poll(() => page.textContent('p.position')).toBe('Execution 2 of 3000 — step classify, offset 0: matched');
    await page.click('#step-next');
    await expect.poll(() => page.textContent('p.position')).toBe('Execution 3 of 3000 — step routeStats, offset 0: matched');
    await page.keyboard.press('p');
    await expect.poll(() => page.textContent('p.position')).toContain('Execution 2 of 3000');
    const [recorded, replayed] = await page.locator('.pane').allTextContents();
    expect(recorded).toContain('delayClass');
    expect(replayed?.replace('Replayed', 'Recorded')).toBe(recorded);
    await page.keyboard.press('c');
    await expect.poll(() => page.textContent('p.position')).toBe('Execution 2 of 3000 — step classify, offset 0: matched. No divergence after this execution.');
    // Into the recorded execution, then to the executions before and after it in its run.
    await page.click('.pane >> nth=0 >> a:has-text("Inspect execution")');
    await page.waitForSelector('dd.step');
    expect(await page.textContent('dd.step')).toBe('classify');
    expect(await page.textContent('#exec-prev')).toBe('← Previous: normalize @0 (ok)');
    expect(await page.textContent('#exec-next')).toBe('Next →: routeStats @0 (ok)');
    expect(await page.textContent('section[aria-label="Params"]')).toContain('lateAfterMinutes');
    expect(await page.textContent('section[aria-label="Output"]')).toContain('delayClass');
    await page.keyboard.press('ArrowRight');
    await expect.poll(() => page.textContent('dd.step')).toBe('routeStats');
    await page.click('#exec-prev');
    await expect.poll(() => page.textContent('dd.step')).toBe('classify');
    await page.waitForSelector('pre.code');
  });

  it('runs a what-if naming a recorded step version: summary table and chart, and the stepper stops at divergences with the diff highlighted', async () => {
    await open(`#/stream?id=flights`);
    await page.waitForSelector('svg.timeline rect.cp');
    await page.locator('svg.timeline rect.cp').nth(0).click();
    await page.locator('svg.timeline rect.cp').nth(1).click({ modifiers: ['Shift'] });
    await page.waitForSelector('#whatif-step option[value="normalize"]', { state: 'attached' });
    await page.selectOption('#whatif-step', 'normalize');
    const versions = await page.locator('#whatif-version option').allTextContents();
    const v2 = versions.findIndex((t) => t.includes('normalize-v2.ts'));
    expect(v2).toBeGreaterThan(0);
    await page.selectOption('#whatif-version', { index: v2 });
    await page.click('#start-whatif');
    await page.waitForSelector('#open-stepper', { timeout: 60_000 });
    await page.click('#open-stepper');
    await page.waitForSelector('table.outcomes');
    const cells = await page.locator('table.outcomes tbody tr').allTextContents();
    const counts = Object.fromEntries(cells.map((c) => [c.replace(/\d+$/, ''), Number(/\d+$/.exec(c)?.[0])]));
    expect(counts.Unchanged! + counts.Changed! + counts['Newly failing']! + counts.Fixed!).toBe(1000);
    expect(counts.Changed).toBeGreaterThan(0);
    expect(await page.locator('svg.chart rect.bar').count()).toBe(4);
    await page.waitForSelector('.pane');
    await expect.poll(() => page.textContent('p.position')).toMatch(/^Execution 1 of 3000 — step normalize, offset 0: /);
    const before = await page.textContent('p.position');
    await page.keyboard.press('c');
    await expect.poll(() => page.textContent('p.position')).not.toBe(before);
    expect(await page.textContent('p.position')).toMatch(/^Execution \d+ of 3000 — step (normalize|classify|routeStats), offset \d+: diverged \((substituted|input-changed)\)$/);
    expect(await page.locator('.pane').nth(1).locator('.changed').count()).toBeGreaterThan(0);
    expect(await page.textContent('.pane >> nth=1')).toContain('What-if');
    await shot('whatif-stepper', true);
  });

  it('drags the as-of slider: the object as it was, how it was obtained, version marks', async () => {
    await open(`#/asof?object=${encodeURIComponent('customers/42')}`);
    await page.waitForSelector('dd.version');
    expect(await page.locator('.marks .mark').allTextContents()).toEqual(['v1', 'v2']);
    await expect.poll(() => page.textContent('dd.version')).toBe('v2');
    expect(await page.textContent('section[aria-label="object content"]')).toContain('20');
    const box = await page.locator('#asof-slider').boundingBox();
    if (box === null) throw new Error('no slider');
    // Drag from the right end to just right of the v1 mark (before v2).
    const mark1 = await page.locator('.marks .mark').nth(0).boundingBox();
    const mark2 = await page.locator('.marks .mark').nth(1).boundingBox();
    if (mark1 === null || mark2 === null) throw new Error('no marks');
    const y = box.y + box.height / 2;
    await page.mouse.move(box.x + box.width - 4, y);
    await page.mouse.down();
    await page.mouse.move((mark1.x + mark2.x) / 2 + 2, y, { steps: 8 });
    await page.mouse.up();
    await expect.poll(() => page.textContent('dd.version')).toBe('v1');
    expect(await page.textContent('section[aria-label="object content"]')).toContain('10');
    expect(await page.textContent('dd.obtained-how')).toBe('read');
    // Before the first version: the API's reason, as an error state.
    await page.mouse.move(box.x + box.width - 4, y);
    await page.mouse.down();
    await page.mouse.move(box.x + 2, y, { steps: 4 });
    await page.mouse.up();
    await expect.poll(() => page.textContent('section[aria-label="object content"]')).toContain('Error 404');
    await page.keyboard.press(']');
    await expect.poll(() => page.textContent('dd.version')).toBe('v1');
    await shot('asof-customer');
    // A derived object whose bytes were dropped: reading it recomputes.
    await open(`#/asof?object=${encodeURIComponent('reports/42')}`);
    await expect.poll(() => page.textContent('dd.obtained-how')).toBe('recomputed');
    // Recomputed by running enrich again, or from the server's cache of an earlier recomputation (the execution test read it).
    expect(Number(await page.textContent('dd.executions-run')) + Number(await page.textContent('dd.cache-hits'))).toBeGreaterThanOrEqual(1);
    expect(await page.textContent('section[aria-label="object content"]')).toContain('"gold"');
    await shot('asof', true);
  });
});
