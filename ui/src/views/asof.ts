/**
 * As-of slider: drag through time and see the object as it was then (GET /data/{id}?as_of=),
 * how it was obtained (read or recomputed, executions run) and which version it was; version
 * boundaries are marked on the slider. Keys: arrows move the slider, [ and ] jump between versions.
 */
import { call, getJson, seg } from '../api.js';
import { empty, failure, h, link, loading, replace, short, when, shortId } from '../dom.js';
import { jsonTree } from '../json.js';

interface Version { versionId: string; ordinal: number; validFrom: string; contentHash: string; executionId: string | null; kept: boolean }

export async function asOfView(root: HTMLElement, params: URLSearchParams): Promise<() => void> {
  const objectId = params.get('object') ?? '';
  const body = h('div', {}, loading('versions'));
  root.append(h('h1', {}, h('code', {}, objectId), ' as of…'), body);
  let versions: Version[];
  try {
    versions = (await getJson<{ versions: Version[] }>(`/objects/${seg(objectId)}/versions`)).versions;
  } catch (err) {
    replace(body, failure(err));
    return () => undefined;
  }
  if (versions.length === 0) {
    replace(body, empty('This object has no versions.'));
    return () => undefined;
  }
  const times = versions.map((v) => new Date(v.validFrom).getTime());
  const first = times[0] as number;
  const last = Math.max(times[times.length - 1] as number, first + 1000);
  const span = last - first;
  const min = first - Math.max(1000, Math.round(span * 0.05));
  const max = Math.min(Date.now(), last + Math.max(1000, Math.round(span * 0.1)));
  const initial = params.get('at') === null ? max : Math.max(min, Math.min(max, new Date(params.get('at') as string).getTime()));
  const slider = h('input', { type: 'range', id: 'asof-slider', min, max, step: 1, value: initial, 'aria-label': 'as-of time', list: 'version-marks' });
  const marks = h('div', { class: 'marks', 'aria-hidden': 'true' });
  for (const [i, v] of versions.entries()) {
    const pct = (((times[i] as number) - min) / (max - min)) * 100;
    marks.append(h('span', { class: 'mark', style: `left:${pct}%`, title: `v${v.ordinal} from ${when(v.validFrom)}` }, `v${v.ordinal}`));
  }
  const datalist = h('datalist', { id: 'version-marks' }, times.map((t) => h('option', { value: t })));
  const label = h('output', { for: 'asof-slider', class: 'asof-time' });
  const info = h('dl', { class: 'inline card obtained', 'aria-live': 'polite' });
  const content = h('section', { class: 'card', 'aria-label': 'object content' });
  const jump = (dir: 1 | -1): void => {
    const t = Number(slider.value);
    const target = dir > 0 ? times.find((x) => x > t) : [...times].reverse().find((x) => x < t - 0 && x !== t) ?? undefined;
    if (target !== undefined) {
      slider.value = String(target);
      schedule();
    }
  };
  replace(
    body,
    h('div', { class: 'card slider-card' }, h('div', { class: 'row' }, h('button', { type: 'button', id: 'asof-prev', onclick: () => jump(-1), 'aria-keyshortcuts': '[' }, '← Previous version'), label, h('button', { type: 'button', id: 'asof-next', onclick: () => jump(1), 'aria-keyshortcuts': ']' }, 'Next version →')), h('div', { class: 'slider-wrap' }, slider, marks), datalist, h('p', { class: 'hint' }, `${versions.length} version${versions.length === 1 ? '' : 's'}; drag, or use the arrow keys, [ and ].`)),
    h('div', { class: 'grid2' }, info, content),
    h('p', {}, link('lineage', { ref: objectId }, 'Lineage of this object', { class: 'button' })),
  );
  let timer: number | undefined;
  let seq = 0;
  async function load(): Promise<void> {
    const at = new Date(Number(slider.value)).toISOString();
    label.textContent = when(at);
    const mine = ++seq;
    replace(content, loading(`${objectId} as of ${when(at)}`));
    try {
      const res = await call(`/data/${objectId.split('/').map(encodeURIComponent).join('/')}?as_of=${encodeURIComponent(at)}`);
      const type = res.headers.get('content-type') ?? '';
      const text = await res.text();
      if (mine !== seq) return;
      const hdr = (k: string): string => res.headers.get(k) ?? '—';
      const version = versions.find((v) => v.versionId === res.headers.get('provenant-version-id'));
      replace(
        info,
        h('dt', {}, 'As of'), h('dd', {}, when(at)),
        h('dt', {}, 'Version'), h('dd', { class: 'version' }, version === undefined ? hdr('provenant-version-id') : `v${version.ordinal}`),
        h('dt', {}, 'Valid from'), h('dd', {}, when(hdr('provenant-valid-from'))),
        h('dt', {}, 'Obtained'), h('dd', { class: 'obtained-how' }, hdr('provenant-obtained')),
        h('dt', {}, 'Executions run'), h('dd', { class: 'executions-run' }, hdr('provenant-executions-run')),
        h('dt', {}, 'Cache hits'), h('dd', { class: 'cache-hits' }, hdr('provenant-cache-hits')),
        h('dt', {}, 'Content hash'), h('dd', {}, h('code', {}, short((res.headers.get('etag') ?? '').replaceAll('"', ''), 16))),
        version?.executionId ? [h('dt', {}, 'Made by'), h('dd', {}, link('execution', { id: version.executionId }, `execution ${shortId(version.executionId)}`))] : [h('dt', {}, 'Made by'), h('dd', {}, 'ingested (original data)')],
      );
      let shown: HTMLElement;
      if (type.includes('json')) {
        try {
          shown = jsonTree(JSON.parse(text), { open: 3 });
        } catch {
          shown = h('pre', {}, text);
        }
      } else shown = h('pre', {}, text.length > 20000 ? `${text.slice(0, 20000)}…` : text);
      replace(content, h('h2', {}, 'Content'), shown);
    } catch (err) {
      if (mine !== seq) return;
      replace(info, h('dt', {}, 'As of'), h('dd', {}, when(at)));
      replace(content, failure(err));
    }
  }
  function schedule(): void {
    clearTimeout(timer);
    label.textContent = when(new Date(Number(slider.value)).toISOString());
    timer = window.setTimeout(() => void load(), 120);
  }
  slider.addEventListener('input', schedule);
  const onKey = (ev: KeyboardEvent): void => {
    if (ev.key === '[') jump(-1);
    if (ev.key === ']') jump(1);
  };
  document.addEventListener('keydown', onKey);
  await load();
  return () => {
    clearTimeout(timer);
    document.removeEventListener('keydown', onKey);
  };
}
