// Add or edit a connection (PUT /connections/{name}), with the fields of its provider: the providers, their
// fields, labels and hints come from GET /providers, so a new provider needs nothing here.
// Secrets are write-only: the form never shows one back; left empty, the stored one is kept.
// A server folder may be connected only under the folders the operator lists in LINKS_FS_ROOTS.
import { may } from '../access.js';
import { api, fieldOf, providers } from '../api.js';
import { h, notice, pageHeader } from '../dom.js';
import { adminOnly, announce, busy, showError } from '../ui.js';
import { testResult } from './connections.js';

const NAME_PATTERN = '[A-Za-z0-9][A-Za-z0-9._\\-]{0,127}';
const KEEP = 'Leave empty to keep the stored secret.';
const STORED = 'Stored encrypted; never shown again.';

function input(id, label, props = {}, hint) {
  const el = h('input', { id, name: id, autocomplete: 'off', spellcheck: 'false', ...props,
    'aria-describedby': hint ? `${id}-hint` : null });
  const hintEl = hint ? h('p', { class: 'hint', id: `${id}-hint`, text: hint }) : null;
  return { el, hintEl, wrap: h('div', { class: 'field' }, h('label', { for: id, text: label }), el, hintEl) };
}

/** A field's label inside a sentence: “Service-account key (JSON file)” → “service-account key”. */
function noun(label) {
  const bare = label.replace(/\s*\(.*\)$/, '');
  return /^[A-Z][a-z]/.test(bare) ? bare[0].toLowerCase() + bare.slice(1) : bare;
}

/** The hint of a secret field: what it is, or how to keep the stored one. */
function secretHint(field, keeps) {
  if (keeps) return field.kind === 'json' ? `${KEEP} Choose a file to replace it.` : KEEP;
  return field.help ? `${field.help} ${STORED}` : STORED;
}

export async function render(root, { params, query, signal, navigate, me }) {
  const editing = params.length ? params[0] : null;
  const header = pageHeader(editing ? `Edit connection ${editing}` : 'Add a connection', {
    crumbs: [['Settings'], ['Cloud connections', '#/settings/connections'], [editing ? 'Edit' : 'Add']],
  });
  const feedback = h('div', { class: 'feedback' });
  root.append(header, feedback);
  if (!may(me, 'admin')) {
    feedback.replaceChildren(adminOnly('Connections hold credentials, so they', me));
    return;
  }

  let existing = null;
  let fsRoots = [];
  let known;
  try {
    const [answer, list] = await Promise.all([api('GET', '/connections', { signal }), providers()]);
    known = list;
    fsRoots = answer.fs_roots || [];
    existing = editing ? answer.connections.find((c) => c.name === editing) || null : null;
  } catch (exc) {
    showError(feedback, exc, editing ? 'The connection could not be read' : 'The connections could not be read');
    return;
  }
  if (editing) {
    if (!existing) {
      feedback.replaceChildren(notice('error', `There is no connection named ${editing}.`));
      return;
    }
    if (existing.read_only || existing.origin === 'file') {
      feedback.replaceChildren(notice('warning', `Connection ${editing} is defined in remote_links.yml on the server`
        + `${existing.line ? ` (line ${existing.line})` : ''} and is read-only here: change it in that file.`));
      return;
    }
  }

  // -- the fields ------------------------------------------------------------------------------------
  const name = input('conn-name', 'Name', {
    required: true, pattern: NAME_PATTERN, maxlength: '128', value: editing || '', disabled: Boolean(editing),
  }, 'Letters, digits, “.”, “_” and “-”, starting with a letter or digit.');
  const choices = Object.values(known).filter((p) => p.connection);
  const provider = h('select', { id: 'conn-provider', name: 'provider', 'aria-describedby': 'conn-provider-hint' },
    choices.map((p) => h('option', { value: p.name, text: p.title })));
  provider.value = existing && known[existing.provider] ? existing.provider : choices[0].name;
  const providerField = h('div', { class: 'field' },
    h('label', { for: 'conn-provider', text: 'Provider' }), provider,
    h('p', { class: 'hint', id: 'conn-provider-hint', text: 'Where the linked files are: a cloud bucket, or a '
      + 'folder on the server itself.' }));

  const hasSecret = Boolean(existing && existing.has_secret);
  const value = (key) => (existing && existing[key]) || '';

  // One fieldset per provider, from its fields: the optional ones in a row, the required ones in a row, and
  // fields that go together instead of others (S3: keys or an IAM role) behind a choice of their own.
  function fieldset(p) {
    const prefix = p.schemes[0] || p.name;
    const control = (field) => {
      const id = `${prefix}-${field.name.replaceAll('_', '-')}`;
      let made;
      if (field.kind === 'json') {
        made = input(id, field.label, { type: 'file', accept: '.json,application/json' }, secretHint(field, hasSecret));
      } else if (field.secret) {
        made = input(id, field.label, { type: 'password', autocomplete: 'new-password' }, secretHint(field, hasSecret));
      } else if (p.server_folder && field.name === 'path') {
        made = input(id, field.label, { value: value(field.name),
          placeholder: fsRoots.length ? `${fsRoots[0]}/…` : field.example },
        fsRoots.length ? `An absolute path under ${fsRoots.join(', ')}.` : '');
      } else {
        made = input(id, field.label, { value: value(field.name), placeholder: field.example || null }, field.help);
      }
      return { field, ...made };
    };
    const row = (controls) => (controls.length === 1 ? controls[0].wrap
      : controls.length ? h('div', { class: 'form-row' }, controls.map((c) => c.wrap)) : null);
    const plain = p.fields.filter((f) => f.kind !== 'list' && !f.choice);
    const optional = plain.filter((f) => !f.required).map(control);
    const required = plain.filter((f) => f.required).map(control);
    const groups = [...new Set(p.fields.filter((f) => f.choice).map((f) => f.choice))].map((label, i) => {
      const radio = h('input', { type: 'radio', id: `${prefix}-choice-${i + 1}`, name: `${prefix}-choice`, value: label });
      const controls = p.fields.filter((f) => f.choice === label).map(control);
      return { label, radio, controls, box: h('div', { class: 'form-row' }, controls.map((c) => c.wrap)) };
    });
    const given = groups.find((g) => g.controls.some((c) => !c.field.secret && value(c.field.name))) || groups[0];
    if (given) given.radio.checked = true;
    const closed = p.server_folder && !fsRoots.length;
    const box = h('fieldset', { class: 'provider-fields', dataset: { provider: p.name } },
      h('legend', { text: p.label }),
      closed ? notice('warning', 'This server lets no folder be connected from here. The operator lists the '
        + 'folders that may be in .env (LINKS_FS_ROOTS=/data/datasets) or connects one in remote_links.yml '
        + `(provider: ${p.name}, ${p.fields.map((f) => f.name).join(', ')}).`) : [row(optional), row(required)],
      groups.length ? h('fieldset', { class: 'choice' },
        h('legend', { text: 'Credentials' }),
        h('div', { class: 'choice-options' }, groups.map((g) => h('div', { class: 'field check' },
          g.radio, h('label', { for: g.radio.id, text: g.label }))))) : null,
      groups.map((g) => g.box));
    const controls = [...optional, ...required, ...groups.flatMap((g) => g.controls)];
    return { provider: p, box, plain: [...optional, ...required], groups, controls, closed };
  }
  const forms = choices.map(fieldset);
  const chosen = () => forms.find((f) => f.provider.name === provider.value);

  const buckets = h('textarea', { id: 'conn-buckets', name: 'buckets', rows: '3', spellcheck: 'false', required: true,
    'aria-describedby': 'conn-buckets-hint' });
  buckets.value = existing ? existing.buckets.join('\n') : '';
  const bucketsLabel = h('label', { for: 'conn-buckets', text: 'Buckets' });
  const bucketsHint = h('p', { class: 'hint', id: 'conn-buckets-hint' });
  const bucketsField = h('div', { class: 'field' }, bucketsLabel, buckets, bucketsHint);

  const save = h('button', { type: 'submit', class: 'primary', text: editing ? 'Save changes' : 'Add connection' });
  const saveAndTest = h('button', { type: 'button', text: editing ? 'Save and test' : 'Add and test' });
  const result = h('div', { class: 'test-slot', 'aria-live': 'polite' });
  const form = h('form', { class: 'card stack connection-form', novalidate: true, 'aria-label': 'Connection' },
    h('div', { class: 'form-row' }, name.wrap, providerField),
    forms.map((f) => f.box), bucketsField,
    h('div', { class: 'actions' }, save, saveAndTest,
      h('a', { class: 'button subtle', href: '#/settings/connections', text: 'Cancel' })),
    result);
  root.append(form);

  function sync() {
    const active = chosen();
    for (const f of forms) {
      f.box.hidden = f !== active;
      f.box.disabled = f !== active;
      for (const g of f.groups) g.box.hidden = !g.radio.checked;
    }
    const list = fieldOf(active.provider, 'buckets');
    if (list) {
      bucketsLabel.textContent = list.label;
      bucketsHint.textContent = `One a line (or separated by commas). ${list.help}`;
    }
    bucketsField.hidden = !list;
    buckets.disabled = !list;
    save.disabled = active.closed;
    saveAndTest.disabled = save.disabled;
    // A secret is kept only while the provider stays the same.
    const keeps = hasSecret && existing && existing.provider === active.provider.name;
    for (const f of forms) {
      for (const c of f.controls) if (c.field.secret) c.hintEl.textContent = secretHint(c.field, keeps);
    }
  }
  provider.addEventListener('change', sync);
  for (const f of forms) for (const g of f.groups) g.radio.addEventListener('change', sync);
  sync();

  async function body() {
    const active = chosen();
    const p = active.provider;
    if (active.closed) throw new Error('This server lets no folder be connected from here.');
    const keeps = hasSecret && existing && existing.provider === p.name;
    const json = { provider: p.name };
    const list = fieldOf(p, 'buckets');
    if (list) {
      json.buckets = buckets.value.split(/[\s,]+/).map((b) => b.trim()).filter(Boolean);
      if (!json.buckets.length) throw new Error(`List at least one ${p.bucket}.`);
    }
    const taken = active.groups.find((g) => g.radio.checked);
    for (const g of active.groups) {
      // The secrets of the choice not taken are removed (keys given up for an IAM role).
      if (g !== taken) for (const c of g.controls) if (c.field.secret) json[c.field.name] = null;
    }
    for (const { field, el } of [...active.plain, ...(taken ? taken.controls : [])]) {
      if (field.kind === 'json') {
        const file = el.files && el.files[0];
        if (file) {
          const text = await file.text();
          try {
            JSON.parse(text);
          } catch {
            throw new Error(`${file.name} is not JSON: choose the ${noun(field.label)} file (.json).`);
          }
          json[field.name] = text;
        } else if (field.required && !keeps) {
          throw new Error(`Choose the ${noun(field.label)} file.`);
        }
      } else if (field.secret) {
        if (el.value) json[field.name] = el.value;
        else if (field.required && !keeps) throw new Error(`Give the ${noun(field.label)}.`);
      } else if (p.server_folder && field.name === 'path' && !el.value.trim().startsWith('/')) {
        throw new Error(`Give the folder’s absolute path, under ${fsRoots.join(', ')}.`);
      } else if (el.value.trim()) {
        json[field.name] = el.value.trim();
      } else if (field.required) {
        throw new Error(`Give the ${noun(field.label)}.`);
      }
    }
    return json;
  }

  async function submit(button, thenTest) {
    feedback.replaceChildren();
    result.replaceChildren();
    const connectionName = editing || name.el.value.trim();
    if (!new RegExp(`^${NAME_PATTERN}$`).test(connectionName)) {
      feedback.replaceChildren(notice('error', 'The name must be 1-128 letters, digits, “.”, “_” or “-”, starting with a '
        + 'letter or digit.'));
      name.el.focus();
      return;
    }
    await busy(button, 'Saving…', async () => {
      let json;
      try {
        json = await body();
      } catch (exc) {
        feedback.replaceChildren(notice('error', exc.message));
        return;
      }
      try {
        await api('PUT', `/connections/${encodeURIComponent(connectionName)}`, { json });
      } catch (exc) {
        showError(feedback, exc, 'The connection was not saved');
        return;
      }
      // Secrets typed in are not kept in the page once sent.
      for (const f of forms) for (const c of f.controls) if (c.field.secret) c.el.value = '';
      announce(`Saved connection ${connectionName}.`, 'success');
      if (!thenTest) {
        navigate('#/settings/connections');
        return;
      }
      if (!editing) {
        // From now on this is an edit of the saved connection (a stored secret is kept).
        navigate(`#/settings/connections/${encodeURIComponent(connectionName)}/edit?tested=1`);
        return;
      }
      await runTest(connectionName);
    });
  }

  async function runTest(connectionName) {
    result.replaceChildren(h('p', { class: 'muted', text: 'Testing each bucket…' }));
    try {
      const check = await api('POST', `/connections/${encodeURIComponent(connectionName)}/test`);
      result.replaceChildren(h('h3', { text: 'Test result' }), testResult(check, known[provider.value]));
    } catch (exc) {
      showError(result, exc, 'The test could not run');
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submit(save, false);
  });
  saveAndTest.addEventListener('click', () => submit(saveAndTest, true));
  if (editing && query.get('tested')) {
    await runTest(editing);
  }
}
