/**
 * The Provenant web UI: a hash router over views that use only the public HTTP API.
 * Views: sign-in, home (objects and streams), lineage graph, checkpoint timeline, execution
 * inspector, replay stepper, as-of slider.
 */
import './style.css';
import { token, signOut } from './api.js';
import { h, href, replace } from './dom.js';
import { signInView } from './views/signin.js';
import { homeView } from './views/home.js';
import { lineageView } from './views/lineage.js';
import { timelineView } from './views/timeline.js';
import { executionView } from './views/execution.js';
import { replayView } from './views/replay.js';
import { asOfView } from './views/asof.js';

/** A view renders into `root` and may return a cleanup (timers, key handlers). */
export type View = (root: HTMLElement, params: URLSearchParams) => void | (() => void) | Promise<void | (() => void)>;

const VIEWS: Record<string, { title: string; view: View; nav?: boolean }> = {
  '': { title: 'Home', view: homeView, nav: true },
  signin: { title: 'Sign in', view: signInView },
  lineage: { title: 'Lineage', view: lineageView },
  stream: { title: 'Checkpoints', view: timelineView },
  execution: { title: 'Execution', view: executionView },
  replay: { title: 'Replay', view: replayView },
  asof: { title: 'As of', view: asOfView },
};

let cleanup: (() => void) | undefined;
let generation = 0;

async function route(): Promise<void> {
  const hash = location.hash.replace(/^#\/?/, '');
  const [name = '', query = ''] = hash.split('?');
  const params = new URLSearchParams(query);
  if (token() === null && name !== 'signin') {
    location.hash = '#/signin';
    return;
  }
  cleanup?.();
  cleanup = undefined;
  const main = document.getElementById('main') as HTMLElement;
  const entry = VIEWS[name];
  renderChrome(name);
  const gen = ++generation;
  if (entry === undefined) {
    replace(main, h('div', { class: 'state empty' }, h('p', {}, `No view “${name}”.`), h('p', {}, h('a', { href: '#/' }, 'Go home'))));
    return;
  }
  document.title = `${entry.title} · Provenant`;
  main.replaceChildren();
  const c = await entry.view(main, params);
  if (gen !== generation) {
    if (typeof c === 'function') c();
    return;
  }
  if (typeof c === 'function') cleanup = c;
}

function renderChrome(current: string): void {
  const nav = document.getElementById('nav') as HTMLElement;
  const who = document.getElementById('who') as HTMLElement;
  const signedIn = token() !== null;
  replace(nav, signedIn ? h('a', { href: href(''), 'aria-current': current === '' ? 'page' : null }, 'Objects & streams') : null);
  replace(
    who,
    signedIn
      ? h(
          'button',
          {
            type: 'button',
            class: 'link',
            onclick: () => {
              signOut();
              location.hash = '#/signin';
            },
          },
          'Sign out',
        )
      : null,
  );
}

window.addEventListener('hashchange', () => void route());
void route();
