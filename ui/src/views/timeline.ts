/**
 * Checkpoint timeline of a stream: one lane per run, checkpoints placed on a time axis and
 * coloured by status; hover or focus shows offsets and execution counts. Select a range (click a
 * checkpoint, shift-click another; or the table's checkboxes) to start a verifying replay or a
 * what-if naming a recorded step version, and follow the job.
 */
import { getJson, postJson, seg } from '../api.js';
import { empty, failure, h, link, loading, replace, s, short, when, shortId } from '../dom.js';

interface Checkpoint {
  checkpointId: string;
  runId: string;
  status: 'IN_PROGRESS' | 'COMPLETE' | 'FAILED';
  startOffset: number;
  endOffset: number | null;
  started: string;
  ended: string | null;
  records: number | null;
  executions: number | null;
  failed: number | null;
  reason: string | null;
}
interface StepInfo { stepId: string; versions: { versionHash: string; module: string; firstSeen: string | null; executions: number }[] }
export interface Job { id: string; mode: 'verify' | 'whatif'; status: string; progress: Record<string, number> | null; result: Record<string, unknown> | null; error: { code: string; message: string; hint?: string } | null }

export async function timelineView(root: HTMLElement, params: URLSearchParams): Promise<() => void> {
  const streamId = params.get('id') ?? '';
  root.append(h('h1', {}, 'Checkpoints of ', h('code', {}, streamId)));
  const body = h('div', {}, loading('checkpoints'));
  root.append(body);
  const checkpoints: Checkpoint[] = [];
  try {
    for (let after: string | null = null, pages = 0; pages < 100; pages++) {
      const page: { checkpoints: Checkpoint[]; next: string | null } = await getJson(`/streams/${seg(streamId)}/checkpoints?limit=1000${after === null ? '' : `&after=${after}`}`);
      checkpoints.push(...page.checkpoints);
      after = page.next;
      if (after === null) break;
    }
  } catch (err) {
    replace(body, failure(err));
    return () => undefined;
  }
  if (checkpoints.length === 0) {
    replace(body, empty('This stream has no checkpoints yet.', 'Run a pipeline over it with checkpoints.'));
    return () => undefined;
  }
  let timer: number | undefined;
  const cleanup = (): void => clearTimeout(timer);

  // ---- the axis -----------------------------------------------------------------------------
  const runs = [...new Set(checkpoints.map((c) => c.runId))];
  const t = (iso: string | null): number => (iso === null ? Date.now() : new Date(iso).getTime());
  const t0 = Math.min(...checkpoints.map((c) => t(c.started)));
  const t1 = Math.max(...checkpoints.map((c) => t(c.ended)), t0 + 1);
  const W = 1100;
  const laneH = 34;
  const left = 110;
  const x = (ms: number): number => left + ((ms - t0) / (t1 - t0)) * (W - left - 20);
  const H = 40 + runs.length * laneH + 30;
  const svg = s('svg', { class: 'timeline', viewBox: `0 0 ${W} ${H}`, role: 'group', 'aria-label': `timeline of ${checkpoints.length} checkpoints` });
  for (let i = 0; i <= 5; i++) {
    const ms = t0 + ((t1 - t0) * i) / 5;
    svg.append(s('line', { x1: x(ms), x2: x(ms), y1: 20, y2: H - 24, class: 'tick' }), s('text', { x: x(ms), y: H - 8, class: 'axis', 'text-anchor': 'middle' }, new Date(ms).toISOString().slice(11, 23)));
  }
  svg.append(s('text', { x: left, y: 14, class: 'axis' }, `${when(new Date(t0).toISOString())} → ${when(new Date(t1).toISOString())}`));
  runs.forEach((runId, lane) => svg.append(s('text', { x: 4, y: 40 + lane * laneH + 20, class: 'axis' }, `run ${shortId(runId)}`)));
  const marks = new Map<string, SVGRectElement>();
  for (const c of checkpoints) {
    const lane = runs.indexOf(c.runId);
    const a = x(t(c.started));
    const w = Math.max(4, x(t(c.ended)) - a);
    const rect = s('rect', { x: a, y: 40 + lane * laneH, width: w, height: laneH - 8, rx: 2, class: `cp ${c.status}`, tabindex: 0, role: 'button', 'data-id': c.checkpointId, 'aria-label': `checkpoint ${shortId(c.checkpointId)} ${c.status} offsets ${c.startOffset} to ${c.endOffset ?? '…'}, ${c.executions ?? 0} executions` });
    rect.append(s('title', {}, `${c.checkpointId}\n${c.status}\noffsets ${c.startOffset}–${c.endOffset ?? '…'}\n${c.records ?? 0} records, ${c.executions ?? 0} executions, ${c.failed ?? 0} failed`));
    marks.set(c.checkpointId, rect);
    svg.append(rect);
  }
  const legend = h('div', { class: 'legend' }, h('span', { class: 'key COMPLETE' }, 'complete'), h('span', { class: 'key FAILED' }, 'failed'), h('span', { class: 'key IN_PROGRESS' }, 'in progress'), h('span', { class: 'key selectedcp' }, 'selected'));
  const detail = h('div', { class: 'card cp-detail', 'aria-live': 'polite' }, h('p', { class: 'hint' }, 'Hover or focus a checkpoint to see it; click one, then shift-click another to select a range.'));

  // ---- selection ----------------------------------------------------------------------------
  let anchor: Checkpoint | undefined;
  let range: Checkpoint[] = [];
  const boxes = new Map<string, HTMLInputElement>();
  const show = (c: Checkpoint): void =>
    replace(
      detail,
      h('h2', {}, `Checkpoint ${shortId(c.checkpointId)}`),
      h('dl', { class: 'inline' }, h('dt', {}, 'Status'), h('dd', {}, c.status), h('dt', {}, 'Offsets'), h('dd', { class: 'offsets' }, `${c.startOffset} – ${c.endOffset ?? '…'}`), h('dt', {}, 'Records'), h('dd', {}, c.records ?? '—'), h('dt', {}, 'Executions'), h('dd', { class: 'executions' }, c.executions ?? '—'), h('dt', {}, 'Failed'), h('dd', {}, c.failed ?? '—'), h('dt', {}, 'Time'), h('dd', {}, `${when(c.started)} → ${when(c.ended)}`), c.reason === null ? null : [h('dt', {}, 'Reason'), h('dd', {}, c.reason)]),
    );
  function choose(c: Checkpoint, extend: boolean): void {
    if (extend && anchor !== undefined && anchor.runId === c.runId) {
      const same = checkpoints.filter((x) => x.runId === c.runId);
      const [i, j] = [same.indexOf(anchor), same.indexOf(c)].sort((a, b) => a - b) as [number, number];
      range = same.slice(i, j + 1);
    } else {
      anchor = c;
      range = [c];
    }
    for (const [id, r] of marks) r.classList.toggle('selectedcp', range.some((x) => x.checkpointId === id));
    for (const [id, b] of boxes) b.checked = range.some((x) => x.checkpointId === id);
    show(c);
    renderActions();
  }
  svg.addEventListener('click', (ev) => {
    const id = (ev.target as Element).getAttribute('data-id');
    const c = checkpoints.find((x) => x.checkpointId === id);
    if (c !== undefined) choose(c, ev.shiftKey);
  });
  svg.addEventListener('keydown', (ev) => {
    const id = (ev.target as Element).getAttribute('data-id');
    const c = checkpoints.find((x) => x.checkpointId === id);
    if (c !== undefined && (ev.key === 'Enter' || ev.key === ' ')) {
      ev.preventDefault();
      choose(c, ev.shiftKey);
    }
  });
  svg.addEventListener('mouseover', (ev) => {
    const c = checkpoints.find((x) => x.checkpointId === (ev.target as Element).getAttribute('data-id'));
    if (c !== undefined) show(c);
  });
  svg.addEventListener('focusin', (ev) => {
    const c = checkpoints.find((x) => x.checkpointId === (ev.target as Element).getAttribute('data-id'));
    if (c !== undefined) show(c);
  });

  // ---- actions: verify / what-if ------------------------------------------------------------
  const actions = h('section', { class: 'card', 'aria-labelledby': 'replay-title' });
  const jobBox = h('div', { 'aria-live': 'polite' });
  let steps: StepInfo[] | undefined;
  const stepSelect = h('select', { id: 'whatif-step', 'aria-label': 'step to substitute' });
  const versionSelect = h('select', { id: 'whatif-version', 'aria-label': 'recorded version to run instead' });
  const paramsInput = h('input', { id: 'whatif-params', placeholder: '{"lateAfterMinutes": 30}', 'aria-label': 'params to set (JSON, optional)' });
  const fillVersions = (): void => {
    const st = steps?.find((x) => x.stepId === stepSelect.value);
    replace(versionSelect, h('option', { value: '' }, '(recorded version)'), (st?.versions ?? []).map((v) => h('option', { value: v.versionHash }, `${short(v.versionHash, 12)} · ${v.module} · first ${when(v.firstSeen)}`)));
  };
  stepSelect.addEventListener('change', fillVersions);
  function renderActions(): void {
    if (range.length === 0) {
      replace(actions, h('h2', { id: 'replay-title' }, 'Replay'), h('p', { class: 'hint' }, 'Select checkpoints to replay them.'), jobBox);
      return;
    }
    const from = range[0] as Checkpoint;
    const to = range[range.length - 1] as Checkpoint;
    const records = range.reduce((n, c) => n + (c.records ?? 0), 0);
    const start = async (mode: 'verify' | 'whatif'): Promise<void> => {
      const body: Record<string, unknown> = { mode, streamId, from: from.checkpointId, to: to.checkpointId, runId: from.runId };
      if (mode === 'whatif') {
        const sub: Record<string, unknown> = {};
        if (versionSelect.value !== '') sub.versionHash = versionSelect.value;
        if (paramsInput.value.trim() !== '') {
          try {
            sub.params = JSON.parse(paramsInput.value) as unknown;
          } catch (err) {
            replace(jobBox, failure({ detail: `params are not JSON: ${String(err)}` }));
            return;
          }
        }
        body.substitutions = { [stepSelect.value]: sub };
      }
      replace(jobBox, loading('the job'));
      try {
        const job = await postJson<Job>('/replays', body);
        follow(job.id);
      } catch (err) {
        replace(jobBox, failure(err));
      }
    };
    replace(
      actions,
      h('h2', { id: 'replay-title' }, 'Replay'),
      h('p', { class: 'range' }, `${range.length} checkpoint${range.length === 1 ? '' : 's'} selected: offsets ${from.startOffset}–${to.endOffset ?? '…'}, ${records} records (run ${shortId(from.runId)})`),
      h('div', { class: 'row' }, h('button', { type: 'button', class: 'primary', id: 'start-verify', onclick: () => void start('verify') }, 'Verify replay')),
      h('fieldset', {}, h('legend', {}, 'What-if (recorded step versions and params only)'), h('div', { class: 'row' }, stepSelect, versionSelect, paramsInput, h('button', { type: 'button', id: 'start-whatif', onclick: () => void start('whatif') }, 'Run what-if'))),
      jobBox,
    );
    if (steps === undefined) {
      getJson<StepInfo[]>('/steps').then(
        (list) => {
          steps = list;
          replace(stepSelect, list.map((st) => h('option', { value: st.stepId }, st.stepId)));
          fillVersions();
        },
        (err: unknown) => replace(stepSelect, h('option', { value: '' }, `steps unavailable (${(err as Error).message})`)),
      );
    }
  }
  function follow(id: string): void {
    const poll = async (): Promise<void> => {
      try {
        const job = await getJson<Job>(`/replays/${id}`);
        renderJob(jobBox, job);
        if (job.status === 'queued' || job.status === 'running') timer = window.setTimeout(() => void poll(), 300);
      } catch (err) {
        replace(jobBox, failure(err));
      }
    };
    void poll();
  }
  renderActions();

  // ---- the table (keyboard and screen readers) ----------------------------------------------
  const table = h(
    'table',
    { class: 'list' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Select'), h('th', {}, 'Checkpoint'), h('th', {}, 'Run'), h('th', {}, 'Status'), h('th', { class: 'num' }, 'Offsets'), h('th', { class: 'num' }, 'Records'), h('th', { class: 'num' }, 'Executions'), h('th', {}, 'Ended'))),
    h(
      'tbody',
      {},
      checkpoints.slice(0, 1000).map((c) => {
        const box = h('input', { type: 'checkbox', 'aria-label': `select checkpoint ${shortId(c.checkpointId)}` });
        box.addEventListener('click', (ev) => {
          ev.preventDefault();
          choose(c, range.length > 0);
        });
        boxes.set(c.checkpointId, box);
        return h('tr', {}, h('td', {}, box), h('td', {}, h('code', {}, shortId(c.checkpointId))), h('td', {}, h('code', {}, shortId(c.runId))), h('td', {}, h('span', { class: `status ${c.status}` }, c.status)), h('td', { class: 'num' }, `${c.startOffset}–${c.endOffset ?? '…'}`), h('td', { class: 'num' }, c.records ?? '—'), h('td', { class: 'num' }, c.executions ?? '—'), h('td', {}, when(c.ended)));
      }),
    ),
  );
  replace(body, h('p', { class: 'hint' }, `${checkpoints.length} checkpoints in ${runs.length} run${runs.length === 1 ? '' : 's'}.`), h('div', { class: 'card' }, svg, legend), h('div', { class: 'grid2' }, detail, actions), h('details', { class: 'card', open: checkpoints.length <= 50 }, h('summary', {}, 'All checkpoints'), table));
  return cleanup;
}

/** A job's progress or result, with a link to step through it. */
export function renderJob(box: HTMLElement, job: Job): void {
  const p = job.progress ?? {};
  const total = p.totalRecords ?? 0;
  const done = p.records ?? 0;
  const bar = h('progress', { max: Math.max(1, total), value: done, 'aria-label': 'job progress' });
  replace(
    box,
    h('p', { class: `job ${job.status}` }, h('strong', {}, `${job.mode === 'verify' ? 'Verify replay' : 'What-if'} ${job.status}`), ` — job ${shortId(job.id)}`),
    job.status === 'completed' || job.status === 'failed' ? null : h('div', {}, bar, ` ${done} / ${total} records, ${p.executions ?? 0} executions, ${p.diverged ?? 0} diverged`),
    job.error === null ? null : failure({ detail: `${job.error.code}: ${job.error.message}`, hint: job.error.hint }),
    job.status === 'completed' ? h('p', {}, summaryLine(job), ' ', link('replay', { job: job.id }, 'Step through it →', { class: 'button primary', id: 'open-stepper' })) : null,
  );
}

function summaryLine(job: Job): string {
  const r = job.result ?? {};
  if (job.mode === 'verify') return `${String(r.executions)} executions: ${String(r.matched)} matched, ${String(r.diverged)} diverged.`;
  const o = (r.recordOutcomes ?? {}) as Record<string, number>;
  return `${String(r.records)} records: ${o.unchanged ?? 0} unchanged, ${o.changed ?? 0} changed, ${o.newlyFailing ?? 0} newly failing, ${o.fixed ?? 0} fixed.`;
}
