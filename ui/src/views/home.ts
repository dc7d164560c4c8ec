import { getJson } from '../api.js';
import { empty, failure, h, href, link, loading, replace, when } from '../dom.js';

interface Obj { objectId: string; versions: number; latest: string | null }
interface Stream { streamId: string; checkpoints: number; records: number | null }

/** What the caller may open: objects (lineage, as-of) and streams (checkpoints). */
export async function homeView(root: HTMLElement): Promise<void> {
  const objects = h('section', { class: 'card', 'aria-labelledby': 'objects-title' });
  const streams = h('section', { class: 'card', 'aria-labelledby': 'streams-title' });
  const open = h('section', { class: 'card', 'aria-labelledby': 'open-title' });
  const ref = h('input', { id: 'ref', placeholder: 'customers/42, a version id, an execution id or sha256:…', 'aria-label': 'lineage reference' });
  const form = h('form', { class: 'row' }, ref, h('button', { type: 'submit' }, 'Trace lineage'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (ref.value.trim() !== '') location.hash = href('lineage', { ref: ref.value.trim() });
  });
  replace(open, h('h2', { id: 'open-title' }, 'Trace anything'), form);
  root.append(h('h1', {}, 'Objects & streams'), h('div', { class: 'grid2' }, streams, objects), open);

  replace(streams, h('h2', { id: 'streams-title' }, 'Streams'), loading('streams'));
  replace(objects, h('h2', { id: 'objects-title' }, 'Objects'), loading('objects'));
  const filter = h('input', { type: 'search', placeholder: 'Filter objects by id prefix', 'aria-label': 'filter objects' });

  await Promise.all([
    getJson<{ streams: Stream[] }>('/streams').then(
      ({ streams: list }) =>
        replace(
          streams,
          h('h2', { id: 'streams-title' }, 'Streams'),
          list.length === 0
            ? empty('No streams you may see.', 'Run a pipeline with checkpoints, or ask for a stream:<pattern> grant.')
            : h('table', { class: 'list' }, h('thead', {}, h('tr', {}, h('th', {}, 'Stream'), h('th', { class: 'num' }, 'Checkpoints'), h('th', { class: 'num' }, 'Records'))), h('tbody', {}, list.map((s) => h('tr', {}, h('td', {}, link('stream', { id: s.streamId }, s.streamId)), h('td', { class: 'num' }, s.checkpoints), h('td', { class: 'num' }, s.records ?? '—'))))),
        ),
      (err: unknown) => replace(streams, h('h2', { id: 'streams-title' }, 'Streams'), failure(err)),
    ),
    (async () => {
      const body = h('div');
      replace(objects, h('h2', { id: 'objects-title' }, 'Objects'), filter, body);
      const load = async (): Promise<void> => {
        replace(body, loading('objects'));
        try {
          const q = new URLSearchParams({ limit: '200', ...(filter.value === '' ? {} : { prefix: filter.value }) });
          const { objects: list } = await getJson<{ objects: Obj[] }>(`/objects?${q.toString()}`);
          replace(
            body,
            list.length === 0
              ? empty('No objects you may read.', 'Put one with `provenant put`, or ask for a read:<pattern> grant.')
              : h('table', { class: 'list' }, h('thead', {}, h('tr', {}, h('th', {}, 'Object'), h('th', { class: 'num' }, 'Versions'), h('th', {}, 'Latest'), h('th', {}, ''))), h('tbody', {}, list.map((o) => h('tr', {}, h('td', {}, link('lineage', { ref: o.objectId }, o.objectId)), h('td', { class: 'num' }, o.versions), h('td', {}, when(o.latest)), h('td', {}, link('asof', { object: o.objectId }, 'as of…')))))),
          );
        } catch (err) {
          replace(body, failure(err));
        }
      };
      let timer: number | undefined;
      filter.addEventListener('input', () => {
        clearTimeout(timer);
        timer = window.setTimeout(() => void load(), 250);
      });
      await load();
    })(),
  ]);
}
