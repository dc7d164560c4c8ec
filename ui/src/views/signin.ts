import { call, signIn, signOut, takeReturnTo, token } from '../api.js';
import { failure, h, replace } from '../dom.js';

/** Paste a bearer token; it is checked against the API before it is kept (sessionStorage). */
export function signInView(root: HTMLElement): void {
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', placeholder: 'pvt_…', required: true, 'aria-describedby': 'token-help' });
  const status = h('div', { 'aria-live': 'polite' });
  const form = h(
    'form',
    { class: 'card signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in to Provenant'),
    h('label', { for: 'token' }, 'Bearer token'),
    input,
    h('p', { id: 'token-help', class: 'hint' }, 'Ask an operator for one: ', h('code', {}, 'provenant token create --principal <you> --grant <right>:<pattern>'), '. It is kept in this tab only (sessionStorage).'),
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
    status,
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void (async () => {
      signIn(input.value);
      replace(status, h('p', { role: 'status' }, 'Checking the token…'));
      try {
        await call('/streams');
        location.hash = takeReturnTo() || '#/';
      } catch (err) {
        signOut();
        replace(status, failure(err));
        input.focus();
      }
    })();
  });
  root.append(form);
  if (token() === null) input.focus();
}
