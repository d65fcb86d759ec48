// Sign-in with a token. The token is checked with one API call (GET /me, which also says what it may use),
// then kept in sessionStorage.
import { api } from '../api.js';
import { h, notice } from '../dom.js';
import { busy, messageOf } from '../ui.js';

export function render(root, { signIn, takeSignInMessage }) {
  const message = takeSignInMessage();
  const feedback = h('div', { class: 'feedback' },
    message ? notice(message.kind, message.text) : null);
  const input = h('input', {
    id: 'token', name: 'token', type: 'password', required: true, autocomplete: 'off', spellcheck: 'false',
    'aria-describedby': 'token-hint',
  });
  const submit = h('button', { type: 'submit', class: 'primary wide', text: 'Sign in' });
  const form = h('form', { class: 'stack', novalidate: true },
    h('div', { class: 'field' },
      h('label', { for: 'token', text: 'Access token' }),
      input,
      h('p', { class: 'hint', id: 'token-hint' },
        'The admin token is in ', h('code', { text: '$(cargohold where)/admin.token' }), '; ',
        h('code', { text: 'cargohold token create --name NAME' }), ' makes more.')),
    submit);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) {
      feedback.replaceChildren(notice('error', 'Paste a token first.'));
      input.focus();
      return;
    }
    await busy(submit, 'Checking…', async () => {
      let me;
      try {
        me = await api('GET', '/me', { token, redirect: false });  // any token may ask what it may use
      } catch (exc) {
        const text = exc.status === 401 ? `This token was not accepted: ${exc.message}` : messageOf(exc);
        feedback.replaceChildren(notice('error', text));
        input.select();
        return;
      }
      input.value = '';
      signIn(token, me);
    });
  });

  root.append(h('section', { class: 'signin card', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title', tabindex: '-1', text: 'Sign in to cargohold' }),
    h('p', { class: 'muted', text: 'Storage for computer-vision data: datasets, previews, links and connections.' }),
    feedback,
    form,
    h('p', { class: 'fineprint', text: 'The token stays in this browser tab only (session storage, gone when the tab '
      + 'closes) and is sent in a request header, never in an address.' })));
}
