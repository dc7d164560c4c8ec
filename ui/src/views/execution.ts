/** Execution inspector: input, output, params, context as foldable JSON; the step's stored code; neighbours. */
import { call, getJson, seg } from '../api.js';
import { failure, h, link, loading, replace, short, when, shortId } from '../dom.js';
import { highlight, jsonTree } from '../json.js';

interface ValueView { hash: string | null; value?: unknown; omitted?: string }
interface Brief { id: string; stepId: string; offset: number | null; status: string }
interface Detail {
  id: string; runId: string; run: { kind: string; name: string } | null; stepId: string; versionHash: string; status: string; streamId: string | null; offset: number | null;
  started: string; ended: string; durationUs: number; recordHash: string; inputs: ValueView[]; output: ValueView; params: ValueView; error: ValueView; context: unknown;
  version: { module: string; export: string; files: { path: string; bytes: number }[]; bundler: string; firstSeen: string | null; firstRunId: string | null } | null;
  previous: Brief | null; next: Brief | null; made: { objectId: string; versionId: string; ordinal: number; validFrom: string; kept: boolean }[];
}

function valueBlock(title: string, v: ValueView, open = 2): HTMLElement {
  return h('section', { class: 'card value-block', 'aria-label': title }, h('h2', {}, title, ' ', h('code', { class: 'hint', title: v.hash ?? '' }, short(v.hash, 12))), v.hash === null ? h('p', { class: 'hint' }, 'none') : v.omitted !== undefined ? h('p', { class: 'hint' }, v.omitted) : jsonTree(v.value, { open }));
}

/** The object versions this execution made, with a way to read them (recomputed when not kept). */
function made(d: Detail): HTMLElement | null {
  if (d.made.length === 0) return null;
  return h(
    'section',
    { class: 'card made', 'aria-label': 'Made' },
    h('h2', {}, 'Made'),
    h('ul', {}, d.made.map((v) => h('li', {}, `${v.objectId} v${v.ordinal} `, h('span', { class: 'hint' }, v.kept ? '(kept) ' : '(not kept: reading it recomputes) '), link('asof', { object: v.objectId, at: v.validFrom }, 'read as of then'), ' · ', link('lineage', { ref: `${v.objectId}@${v.versionId}` }, 'lineage')))),
  );
}

export async function executionView(root: HTMLElement, params: URLSearchParams): Promise<() => void> {
  const id = params.get('id') ?? '';
  const body = h('div', {}, loading('the execution'));
  root.append(h('h1', {}, 'Execution ', h('code', {}, shortId(id))), body);
  let d: Detail;
  try {
    d = await getJson<Detail>(`/executions/${seg(id)}/detail`);
  } catch (err) {
    replace(body, failure(err));
    return () => undefined;
  }
  const nav = (b: Brief | null, label: string, key: string): HTMLElement =>
    b === null ? h('span', { class: 'hint' }, `${label}: none`) : link('execution', { id: b.id }, `${label}: ${b.stepId}${b.offset === null ? '' : ` @${b.offset}`} (${b.status})`, { class: 'button', 'aria-keyshortcuts': key, id: `exec-${key === 'ArrowLeft' ? 'prev' : 'next'}` });
  const code = h('section', { class: 'card', 'aria-labelledby': 'code-title' }, h('h2', { id: 'code-title' }, 'Code version'), loading('the step source'));
  replace(
    body,
    h(
      'div',
      { class: 'row' },
      nav(d.previous, '← Previous', 'ArrowLeft'),
      nav(d.next, 'Next →', 'ArrowRight'),
      link('lineage', { ref: d.id }, 'Lineage', { class: 'button' }),
      d.streamId === null ? null : link('stream', { id: d.streamId }, 'Stream checkpoints', { class: 'button' }),
    ),
    h(
      'dl',
      { class: 'inline card facts' },
      h('dt', {}, 'Step'), h('dd', { class: 'step' }, d.stepId),
      h('dt', {}, 'Status'), h('dd', {}, h('span', { class: `status ${d.status}` }, d.status)),
      h('dt', {}, 'Run'), h('dd', {}, h('code', {}, shortId(d.runId)), d.run === null ? '' : ` ${d.run.kind} “${d.run.name}”`),
      h('dt', {}, 'Record'), h('dd', {}, d.streamId === null ? '—' : `${d.streamId} @ offset ${d.offset ?? '—'}`),
      h('dt', {}, 'Time'), h('dd', {}, `${when(d.started)} (${(d.durationUs / 1000).toFixed(2)} ms)`),
      h('dt', {}, 'Record hash'), h('dd', {}, h('code', {}, short(d.recordHash, 16))),
    ),
    h('div', { class: 'grid2' }, h('div', {}, d.inputs.map((v, i) => valueBlock(d.inputs.length === 1 ? 'Input' : `Input ${i + 1}`, v)), valueBlock('Params', d.params)), h('div', {}, d.status === 'failed' ? valueBlock('Error', d.error) : valueBlock('Output', d.output), made(d), h('section', { class: 'card' }, h('h2', {}, 'Context'), jsonTree(d.context, { open: 1 })))),
    code,
  );
  const onKey = (ev: KeyboardEvent): void => {
    if ((ev.target as HTMLElement).tagName === 'INPUT') return;
    if (ev.key === 'ArrowLeft' && d.previous !== null) location.hash = `#/execution?id=${d.previous.id}`;
    if (ev.key === 'ArrowRight' && d.next !== null) location.hash = `#/execution?id=${d.next.id}`;
  };
  document.addEventListener('keydown', onKey);
  const cleanup = (): void => document.removeEventListener('keydown', onKey);
  const v = d.version;
  const facts = h(
    'dl',
    { class: 'inline' },
    h('dt', {}, 'Version'), h('dd', {}, h('code', { class: 'version-hash' }, d.versionHash)),
    h('dt', {}, 'Module'), h('dd', {}, v === null ? '—' : `${v.module} (export ${v.export})`),
    h('dt', {}, 'First ran'), h('dd', { class: 'first-ran' }, v === null ? '—' : `${when(v.firstSeen)}${v.firstRunId === null ? '' : ` in run ${shortId(v.firstRunId)}`}`),
    h('dt', {}, 'Bundled'), h('dd', {}, v === null ? '—' : `${v.files.map((f) => f.path).join(', ')} (${v.bundler})`),
  );
  try {
    const text = await (await call(`/steps/${seg(d.stepId)}/versions/${seg(d.versionHash)}/source`)).text();
    replace(code, h('h2', { id: 'code-title' }, 'Code version'), facts, h('details', { open: true }, h('summary', {}, 'Stored source (the bundled artifact that runs)'), highlight(text)));
  } catch (err) {
    replace(code, h('h2', { id: 'code-title' }, 'Code version'), facts, failure(err));
  }
  return cleanup;
}
