/**
 * Replay stepper: a finished replay or what-if, execution by execution — recorded and replayed
 * outputs side by side with the differences highlighted. Buttons and keys as in the debugger:
 * n / → next, p / ← previous, c continue to the next divergence, g go to the first. For a
 * what-if, its summary (unchanged / changed / newly failing / fixed) as a table and a chart.
 */
import { getJson } from '../api.js';
import { empty, failure, h, link, loading, replace, s, short, shortId } from '../dom.js';
import { diffPaths, jsonTree } from '../json.js';
import { renderJob, type Job } from './timeline.js';

interface ValueView { hash: string | null; value?: unknown; omitted?: string }
interface Row {
  index: number; offset: number | null; stepId: string; versionHash: string | null; recordedExecutionId: string | null; replayExecutionId: string | null;
  recordedOutputHash: string | null; replayedOutputHash: string | null; recordedStatus: string | null; replayedStatus: string | null; verdict: string;
  recorded?: ValueView; replayed?: ValueView;
}
interface Page { total: number; executions: Row[]; next: number | null; truncated: boolean }

export async function replayView(root: HTMLElement, params: URLSearchParams): Promise<() => void> {
  const jobId = params.get('job') ?? '';
  const head = h('div', {}, loading('the job'));
  root.append(h('h1', {}, 'Replay ', h('code', {}, shortId(jobId))), head);
  let timer: number | undefined;
  const keys: { handler?: (ev: KeyboardEvent) => void } = {};
  const cleanup = (): void => {
    clearTimeout(timer);
    if (keys.handler !== undefined) document.removeEventListener('keydown', keys.handler);
  };
  let job: Job;
  for (;;) {
    try {
      job = await getJson<Job>(`/replays/${encodeURIComponent(jobId)}`);
    } catch (err) {
      replace(head, failure(err));
      return cleanup;
    }
    renderJob(head, job);
    if (job.status !== 'queued' && job.status !== 'running') break;
    await new Promise((r) => (timer = window.setTimeout(r, 400)));
    if (!document.body.contains(head)) return cleanup;
  }
  if (job.status !== 'completed') return cleanup;
  const r = job.result ?? {};
  head.querySelector('#open-stepper')?.remove();

  if (job.mode === 'whatif') root.append(whatIfSummary(r));
  else root.append(h('section', { class: 'card' }, h('h2', {}, 'Verify replay'), h('table', { class: 'list summary' }, h('tbody', {}, [['Records', r.records], ['Executions', r.executions], ['Matched', r.matched], ['Diverged', r.diverged]].map(([k, v]) => h('tr', {}, h('th', {}, String(k)), h('td', { class: 'num' }, String(v))))))));

  // ---- the stepper --------------------------------------------------------------------------
  const position = h('p', { class: 'position', 'aria-live': 'polite' });
  const panes = h('div', { class: 'panes' });
  const btn = (label: string, key: string, id: string, fn: () => void): HTMLButtonElement => h('button', { type: 'button', id, 'aria-keyshortcuts': key, onclick: fn }, label);
  const stepper = h(
    'section',
    { class: 'card stepper', 'aria-labelledby': 'stepper-title' },
    h('h2', { id: 'stepper-title' }, 'Step through'),
    h('div', { class: 'row', role: 'toolbar', 'aria-label': 'stepper' }, btn('⇤ First (g)', 'g', 'step-first', () => void go(0)), btn('← Previous (p)', 'p', 'step-prev', () => void go(current - 1)), btn('Next (n) →', 'n', 'step-next', () => void go(current + 1)), btn('Continue to divergence (c)', 'c', 'step-continue', () => void toDivergence())),
    position,
    panes,
  );
  root.append(stepper);
  let total = 0;
  let current = -1;
  const cache = new Map<number, Row>();
  async function fetchRow(after: number, diverged: boolean): Promise<{ row: Row | undefined; total: number }> {
    const page = await getJson<Page>(`/replays/${encodeURIComponent(jobId)}/executions?after=${after}&limit=1&values=true${diverged ? '&diverged=true' : ''}`);
    return { row: page.executions[0], total: page.total };
  }
  async function go(i: number): Promise<void> {
    if (i < 0 || (total > 0 && i >= total)) return;
    replace(panes, loading(`execution ${i + 1}`));
    try {
      let row = cache.get(i);
      if (row === undefined) {
        const res = await fetchRow(i - 1, false);
        row = res.row;
        if (total === 0) total = res.total;
      }
      if (row === undefined) {
        replace(panes, empty('No executions in this replay.'));
        return;
      }
      cache.set(row.index, row);
      current = row.index;
      show(row);
    } catch (err) {
      replace(panes, failure(err));
    }
  }
  async function toDivergence(): Promise<void> {
    replace(panes, loading('the next divergence'));
    try {
      const res = await fetchRow(current, true);
      if (res.row === undefined) {
        position.textContent = `No divergence after execution ${current + 1}.`;
        const row = cache.get(current);
        if (row !== undefined) show(row, 'No divergence after this execution.');
        return;
      }
      cache.set(res.row.index, res.row);
      current = res.row.index;
      show(res.row);
    } catch (err) {
      replace(panes, failure(err));
    }
  }
  function show(row: Row, note?: string): void {
    const same = row.verdict === 'matched';
    position.textContent = `Execution ${row.index + 1} of ${total} — step ${row.stepId}, offset ${row.offset ?? '—'}: ${same ? 'matched' : `diverged (${row.verdict})`}${note === undefined ? '' : `. ${note}`}`;
    position.className = `position ${same ? 'matched' : 'diverged'}`;
    const a = row.recorded?.value;
    const b = row.replayed?.value;
    const changed = same ? new Set<string>() : diffPaths(a, b);
    const pane = (title: string, v: ValueView | undefined, exec: string | null, hash: string | null, status: string | null): HTMLElement =>
      h(
        'section',
        { class: `pane ${same ? '' : 'differs'}`, 'aria-label': title },
        h('h3', {}, title, ' ', h('code', { class: 'hint' }, short(hash, 10)), status === 'failed' ? h('span', { class: 'status failed' }, ' failed') : null),
        v === undefined || v.hash === null ? h('p', { class: 'hint' }, 'no execution') : v.omitted !== undefined ? h('p', { class: 'hint' }, v.omitted) : jsonTree(v.value, { open: 3, changed }),
        exec === null ? null : link('execution', { id: exec }, 'Inspect execution'),
      );
    replace(panes, pane('Recorded', row.recorded, row.recordedExecutionId, row.recordedOutputHash, row.recordedStatus), pane(job.mode === 'verify' ? 'Replayed' : 'What-if', row.replayed, row.replayExecutionId ?? (same ? row.recordedExecutionId : null), row.replayedOutputHash, row.replayedStatus));
  }
  const onKey = (ev: KeyboardEvent): void => {
    const tag = (ev.target as HTMLElement).tagName;
    if (tag === 'INPUT' || tag === 'SELECT' || tag === 'TEXTAREA' || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === 'n' || ev.key === 'ArrowRight') void go(current + 1);
    else if (ev.key === 'p' || ev.key === 'ArrowLeft') void go(current - 1);
    else if (ev.key === 'c') void toDivergence();
    else if (ev.key === 'g') void go(0);
  };
  keys.handler = onKey;
  document.addEventListener('keydown', onKey);
  await go(0);
  return cleanup;
}

function whatIfSummary(r: Record<string, unknown>): HTMLElement {
  const o = (r.recordOutcomes ?? {}) as Record<string, number>;
  const rows: [string, number, string][] = [
    ['Unchanged', o.unchanged ?? 0, 'unchanged'],
    ['Changed', o.changed ?? 0, 'changed'],
    ['Newly failing', o.newlyFailing ?? 0, 'newly-failing'],
    ['Fixed', o.fixed ?? 0, 'fixed'],
  ];
  const max = Math.max(1, ...rows.map((x) => x[1]));
  const W = 420;
  const chart = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${rows.length * 28 + 8}`, role: 'img', 'aria-label': `records by outcome: ${rows.map(([k, v]) => `${k} ${v}`).join(', ')}` });
  rows.forEach(([label, v, cls], i) => {
    const w = Math.max(v === 0 ? 0 : 2, (v / max) * (W - 170));
    chart.append(s('text', { x: 0, y: i * 28 + 20, class: 'axis' }, label), s('rect', { x: 110, y: i * 28 + 6, width: w, height: 20, class: `bar ${cls}` }), s('text', { x: 116 + w, y: i * 28 + 20, class: 'axis' }, String(v)));
  });
  const steps = (r.steps ?? []) as { stepId: string; versionHash: string; substituted: boolean; executions: number; unchanged: number; changed: number; newlyFailing: number; fixed: number; added: number; notReached: number }[];
  return h(
    'section',
    { class: 'card whatif', 'aria-labelledby': 'whatif-title' },
    h('h2', { id: 'whatif-title' }, `What-if${r.label === null || r.label === undefined ? '' : ` “${String(r.label)}”`}: ${String(r.records)} records`),
    h(
      'div',
      { class: 'grid2' },
      h('table', { class: 'list summary outcomes' }, h('thead', {}, h('tr', {}, h('th', {}, 'Outcome'), h('th', { class: 'num' }, 'Records'))), h('tbody', {}, rows.map(([k, v, cls]) => h('tr', { class: cls }, h('th', {}, k), h('td', { class: 'num' }, v))))),
      chart,
    ),
    h(
      'table',
      { class: 'list' },
      h('thead', {}, h('tr', {}, ['Step', 'Version run', 'Substituted', 'Executions', 'Unchanged', 'Changed', 'Newly failing', 'Fixed', 'Added', 'Not reached'].map((x, i) => h('th', { class: i > 2 ? 'num' : '' }, x)))),
      h('tbody', {}, steps.map((st) => h('tr', {}, h('td', {}, st.stepId), h('td', {}, h('code', {}, short(st.versionHash, 10))), h('td', {}, st.substituted ? 'yes' : ''), [st.executions, st.unchanged, st.changed, st.newlyFailing, st.fixed, st.added, st.notReached].map((n) => h('td', { class: 'num' }, n))))),
    ),
  );
}
