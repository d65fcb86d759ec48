// Settings → Tokens (admin): every token with its role and what it reaches; make one, shown once with a Copy
// button (the server keeps only its hash); revoke one after a confirmation.
import { may } from '../access.js';
import { api } from '../api.js';
import { formatDate, h, notice, pageHeader, plural } from '../dom.js';
import { adminOnly, announce, busy, confirmAction, showError } from '../ui.js';

const ROLES = [
  ['read', 'Read', 'Lists, downloads, previews and signed URLs; changes nothing.'],
  ['write', 'Write', 'Also uploads, adds links and deletes.'],
  ['admin', 'Admin', 'Everything: also connections, storage, clearing the cache and tokens. Takes no limits.'],
];

/** A limit as the table shows it: null is “all”, an empty list “none”. */
function limit(values, { mono = false } = {}) {
  if (values === null || values === undefined) return h('span', { class: 'muted', text: 'all' });
  if (!values.length) return h('span', { class: 'muted', text: 'none' });
  return h('span', { class: mono ? 'mono' : null, text: values.join(', ') });
}

/** Team-file folders as typed: “models/, notes/2024/” (commas or spaces between). The server checks each. */
function folders(text) {
  return text.split(/[\s,]+/).map((f) => f.trim()).filter(Boolean);
}

function selected(select) {
  return [...select.selectedOptions].map((o) => o.value);
}

function multiSelect(id, label, hint) {
  const select = h('select', { id, multiple: true, size: '5', 'aria-describedby': `${id}-hint` });
  const wrap = h('div', { class: 'field' },
    h('label', { for: id, text: label }),
    select,
    h('p', { class: 'hint', id: `${id}-hint`, text: hint }));
  return { select, wrap };
}

export async function render(root, { signal, me }) {
  const header = pageHeader('Tokens', {
    crumbs: [['Settings'], ['Tokens']],
    subtitle: 'Who may use this server, and what each token reaches. A token is shown once, when it is made.',
  });
  root.append(header);
  if (!may(me, 'admin')) {
    root.append(adminOnly('Tokens', me));
    return;
  }
  const feedback = h('div', { class: 'feedback' });
  const list = h('div', { class: 'table-wrap', 'aria-busy': 'true' }, h('p', { class: 'muted', text: 'Loading…' }));

  // -- the form --------------------------------------------------------------------------------------
  const name = h('input', { id: 'token-name', name: 'name', required: true, maxlength: '255', autocomplete: 'off',
    spellcheck: 'false', placeholder: 'e.g. training-job', 'aria-describedby': 'token-name-hint' });
  const radios = ROLES.map(([value, label, about]) => {
    const input = h('input', { type: 'radio', id: `token-role-${value}`, name: 'role', value,
      'aria-describedby': `token-role-${value}-hint`, checked: value === 'read' });
    return { value, input, wrap: h('div', { class: 'field check role-choice' },
      input, h('label', { for: input.id, text: label }),
      h('span', { class: 'hint', id: `token-role-${value}-hint`, text: about })) };
  });
  const datasets = multiSelect('token-datasets', 'Limit to datasets',
    'None chosen: not limited by dataset. Ctrl-click (⌘-click) chooses several.');
  const files = h('input', { id: 'token-files', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'models/, notes/2024/', 'aria-describedby': 'token-files-hint' });
  const connections = multiSelect('token-connections', 'May sync connections',
    'Syncing a bucket into a dataset lists it: a write token may do so for the connections chosen here.');
  const reach = h('p', { class: 'reach', id: 'token-reach', 'aria-live': 'polite' });
  const limits = h('fieldset', { class: 'token-limits' },
    h('legend', { text: 'What it reaches' }),
    h('div', { class: 'form-row' },
      datasets.wrap,
      h('div', { class: 'field' },
        h('label', { for: 'token-files', text: 'Limit to team-file folders' }),
        files,
        h('p', { class: 'hint', id: 'token-files-hint', text: 'Folders, separated by commas. Empty: not limited by '
          + 'folder.' })),
      connections.wrap),
    reach);
  const s3 = h('input', { type: 'checkbox', id: 'token-s3', 'aria-describedby': 'token-s3-hint' });
  const s3Field = h('div', { class: 'field check' },
    s3, h('label', { for: 'token-s3', text: 'Also an S3 key pair' }),
    h('span', { class: 'hint', id: 'token-s3-hint', text: 'An access key id and secret for S3 clients (AWS CLI, '
      + 'boto3, rclone...) on the S3 endpoint: they may do what the token may, and die with it.' }));
  const submit = h('button', { type: 'submit', class: 'primary', text: 'Make token' });
  const formFeedback = h('div', { class: 'feedback' });
  const made = h('div', { class: 'new-token stack' });  // focus moves to the token: no live region reads it out
  const form = h('form', { class: 'card stack', 'aria-labelledby': 'make-token-title', novalidate: true },
    h('h2', { id: 'make-token-title', text: 'Make a token' }),
    h('div', { class: 'field token-name' },
      h('label', { for: 'token-name', text: 'Name' }),
      name,
      h('p', { class: 'hint', id: 'token-name-hint', text: 'To tell it by in this list and in the logs; unique.' })),
    h('fieldset', { class: 'choice' },
      h('legend', { text: 'Role' }),
      h('div', { class: 'role-options' }, radios.map((r) => r.wrap))),
    limits,
    s3Field,
    h('div', { class: 'actions' }, submit),
    formFeedback,
    made);
  root.append(feedback, h('section', { class: 'card', 'aria-labelledby': 'tokens-title' },
    h('h2', { id: 'tokens-title', text: 'Every token' }), list), form);

  const role = () => (radios.find((r) => r.input.checked) || radios[0]).value;

  /** What the token being made will reach, in words (the server's rule: docs/SECURITY.md, “Tokens”). */
  function describe() {
    if (role() === 'admin') {
      limits.disabled = true;
      reach.textContent = 'An admin token reaches every dataset and team file and may sync any connection.';
      return;
    }
    limits.disabled = false;
    const chosen = selected(datasets.select);
    const typed = folders(files.value);
    const syncs = selected(connections.select);
    const parts = [];
    if (!chosen.length && !typed.length) {
      parts.push('It reaches every dataset and every team file.');
    } else {
      parts.push(`It reaches only ${chosen.length ? `the ${plural(chosen.length, 'dataset')} ${chosen.join(', ')}` : 'no dataset'}`
        + ` and ${typed.length ? `team files under ${typed.join(', ')}` : 'no team file'}.`);
    }
    if (syncs.length) parts.push(`It may sync the buckets of ${syncs.join(', ')}.`);
    reach.textContent = parts.join(' ');
  }
  for (const r of radios) r.input.addEventListener('change', describe);
  datasets.select.addEventListener('change', describe);
  connections.select.addEventListener('change', describe);
  files.addEventListener('input', describe);

  /** A read-only field with one half of the S3 key pair, shown this once with the token. */
  function keyField(id, label, text) {
    return h('div', { class: 'field' },
      h('label', { for: id, text: label }),
      h('div', { class: 'row' },
        h('input', { id, class: 'mono', readonly: true, value: text, autocomplete: 'off', spellcheck: 'false' })));
  }

  function showMade(answer) {
    const value = h('input', { id: 'new-token', class: 'mono', readonly: true, value: answer.token, autocomplete: 'off',
      spellcheck: 'false', 'aria-describedby': 'new-token-hint' });
    const copy = h('button', { type: 'button', class: 'primary', text: 'Copy' });
    const hide = h('button', { type: 'button', class: 'subtle', text: 'Hide it' });
    copy.addEventListener('click', async () => {
      value.select();
      try {
        await navigator.clipboard.writeText(value.value);
      } catch {
        // No clipboard API (a page over plain HTTP from another host): the older way, on the selection.
        if (!document.execCommand('copy')) {
          announce('The browser refused to copy: the token is selected, copy it with Ctrl+C (⌘C).', 'error');
          return;
        }
      }
      announce(`Copied the token ${answer.info.name}.`, 'success');
    });
    hide.addEventListener('click', () => {
      made.replaceChildren();
      name.focus();
    });
    made.replaceChildren(
      notice('success', h('strong', { text: `Token ${answer.info.name} made. ` }),
        'Copy it now: it is shown this once, and the server keeps only its hash.'),
      h('div', { class: 'field' },
        h('label', { for: 'new-token', text: 'The new token' }),
        h('div', { class: 'row' }, value, copy, hide),
        h('p', { class: 'hint', id: 'new-token-hint', text: 'Give it to whoever needs it; cargohold cannot show it '
          + 'again. Lost, it is revoked and another made.' })),
      ...(answer.s3_access_key_id ? [keyField('new-s3-key', 'S3 access key id', answer.s3_access_key_id),
        keyField('new-s3-secret', 'S3 secret access key', answer.s3_secret_access_key)] : []));
    value.focus();
    value.select();
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    formFeedback.replaceChildren();
    const tokenName = name.value.trim();
    if (!tokenName) {
      formFeedback.replaceChildren(notice('error', 'Give the token a name.'));
      name.focus();
      return;
    }
    const body = { name: tokenName, role: role(), s3: s3.checked };
    if (body.role !== 'admin') {
      // Given (even one), datasets or folders limit the token to what they name; neither: it reaches all.
      const chosen = selected(datasets.select);
      const typed = folders(files.value);
      const syncs = selected(connections.select);
      if (chosen.length) body.datasets = chosen;
      if (typed.length) body.files = typed;
      if (syncs.length) body.connections = syncs;
    }
    await busy(submit, 'Making…', async () => {
      try {
        const answer = await api('POST', '/tokens', { json: body });
        name.value = '';
        files.value = '';
        s3.checked = false;
        for (const option of [...datasets.select.options, ...connections.select.options]) option.selected = false;
        describe();
        showMade(answer);
        announce(`Made token ${answer.info.name}: copy it now.`, 'success');
        await load();
      } catch (exc) {
        showError(formFeedback, exc, 'The token was not made');
      }
    });
  });

  // -- the list --------------------------------------------------------------------------------------
  async function revoke(t, button) {
    const own = t.name === me.name;
    const confirmed = await confirmAction({
      title: `Revoke token “${t.name}”?`,
      message: 'Requests with it are refused from now on, and so are the URLs it signed. '
        + `${own ? 'It is the token this tab is signed in with: you will have to sign in again. ' : ''}`
        + 'This cannot be undone: make another token instead.',
      confirmLabel: 'Revoke token',
    });
    if (!confirmed) {
      button.focus();
      return;
    }
    await busy(button, 'Revoking…', async () => {
      try {
        await api('DELETE', `/tokens/${encodeURIComponent(t.name)}`);
        feedback.replaceChildren();
        announce(`Revoked token ${t.name}.`, 'success');
        await load();  // with this tab's own token revoked, this answers 401: back to the sign-in page
      } catch (exc) {
        showError(feedback, exc, `Token ${t.name} was not revoked`);
      }
    });
  }

  function draw(tokens) {
    list.removeAttribute('aria-busy');
    const rows = tokens.map((t) => h('tr', { dataset: { name: t.name } },
      h('th', { scope: 'row', class: 'break' }, t.name,
        t.name === me.name ? h('span', { class: 'badge neutral own', text: 'this tab' }) : null),
      h('td', {}, h('span', { class: `badge role-${t.role}`, text: t.role })),
      h('td', { class: 'break' }, limit(t.datasets)),
      h('td', { class: 'break' }, limit(t.files, { mono: true })),
      h('td', { class: 'break' }, t.role === 'admin' ? limit(null) : limit(t.connections)),
      h('td', { class: 'hide-narrow', text: formatDate(t.created_at) }),
      h('td', { class: 'hide-narrow' }, t.last_used_at ? formatDate(t.last_used_at)
        : h('span', { class: 'muted', text: 'never' })),
      h('td', { class: 'row-actions' }, h('button', {
        type: 'button', class: 'danger subtle', text: 'Revoke', 'aria-label': `Revoke token ${t.name}`,
        onclick: (event) => revoke(t, event.currentTarget),
      }))));
    list.replaceChildren(h('table', { class: 'table tokens-table', id: 'tokens' },
      h('caption', { class: 'visually-hidden', text: 'Tokens' }),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col', text: 'Name' }),
        h('th', { scope: 'col', text: 'Role' }),
        h('th', { scope: 'col', text: 'Datasets' }),
        h('th', { scope: 'col', text: 'Team-file folders' }),
        h('th', { scope: 'col', text: 'May sync' }),
        h('th', { scope: 'col', class: 'hide-narrow', text: 'Created' }),
        h('th', { scope: 'col', class: 'hide-narrow', text: 'Last used' }),
        h('th', { scope: 'col' }, h('span', { class: 'visually-hidden', text: 'Actions' })))),
      h('tbody', {}, rows)));
  }

  async function load() {
    try {
      const answer = await api('GET', '/tokens', { signal });
      draw(answer.tokens);
    } catch (exc) {
      list.removeAttribute('aria-busy');
      showError(list, exc, 'The tokens could not be listed');
    }
  }

  /** The choices of the two lists: the datasets and the connections (both names, as the API takes them). */
  async function loadChoices() {
    try {
      const [found, connected] = await Promise.all([api('GET', '/datasets', { signal }),
        api('GET', '/connections', { signal })]);
      datasets.select.replaceChildren(...found.datasets.map((d) => h('option', { value: d.name, text: d.name })));
      connections.select.replaceChildren(...connected.connections.map((c) => h('option', { value: c.name, text: c.name })));
      datasets.select.disabled = !found.datasets.length;
      connections.select.disabled = !connected.connections.length;
    } catch (exc) {
      showError(formFeedback, exc, 'The datasets and connections to choose from could not be listed');
    }
  }

  describe();
  await Promise.all([load(), loadChoices()]);
}
