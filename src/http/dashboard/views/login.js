// Sign-in: the operator pastes an API token; it is checked against the API before it is kept.
import { call, describeError, session } from '../api.js';
import { h } from '../dom.js';
import { field, messageArea, whileBusy } from '../ui/form.js';

export function renderLogin({ main, notice, onSignedIn }) {
  document.title = 'Sign in · mqota';
  const token = h('input', { type: 'password', name: 'token', required: true, autocomplete: 'off', spellcheck: 'false', class: 'wide' });
  const messages = messageArea();
  if (notice) messages.show('info', notice);
  const form = h('form', { class: 'login', novalidate: true },
    h('h1', { tabindex: -1 }, 'Sign in to mqota'),
    h('p', {}, 'Paste an API token. It is kept in this browser tab only and sent with every request.'),
    field('API token', token),
    messages.el,
    h('button', { type: 'submit', class: 'button-primary' }, 'Sign in'));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const value = token.value.trim();
    if (!value) {
      messages.show('error', 'Enter a token.');
      token.focus();
      return;
    }
    await whileBusy(form, async () => {
      let who;
      try {
        // Tells whether the token is valid, and its role: the views offer only what it may do.
        who = await call('GET', '/api/whoami', { token: value });
      } catch (err) {
        messages.show('error', describeError(err));
        return;
      }
      session.signIn(value, who);
      onSignedIn();
    });
    // whileBusy re-enabled the form; put the caret back for another try.
    if (!session.token) { token.focus(); token.select(); }
  });

  main.replaceChildren(form);
  token.focus();
}
