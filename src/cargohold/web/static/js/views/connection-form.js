// Add or edit a connection (PUT /connections/{name}), with the fields of its provider.
// Secrets are write-only: the form never shows one back; left empty, the stored one is kept.
// A server folder may be connected only under the folders the operator lists in LINKS_FS_ROOTS.
import { api } from '../api.js';
import { h, notice, pageHeader } from '../dom.js';
import { announce, busy, showError } from '../ui.js';
import { testResult } from './connections.js';

const NAME_PATTERN = '[A-Za-z0-9][A-Za-z0-9._\\-]{0,127}';
const KEEP = 'Leave empty to keep the stored secret.';

function input(id, label, props = {}, hint) {
  const el = h('input', { id, name: id, autocomplete: 'off', spellcheck: 'false', ...props,
    'aria-describedby': hint ? `${id}-hint` : null });
  const hintEl = hint ? h('p', { class: 'hint', id: `${id}-hint`, text: hint }) : null;
  return { el, hintEl, wrap: h('div', { class: 'field' }, h('label', { for: id, text: label }), el, hintEl) };
}

export async function render(root, { params, query, signal, navigate }) {
  const editing = params.length ? params[0] : null;
  const header = pageHeader(editing ? `Edit connection ${editing}` : 'Add a connection', {
    crumbs: [['Settings'], ['Cloud connections', '#/settings/connections'], [editing ? 'Edit' : 'Add']],
  });
  const feedback = h('div', { class: 'feedback' });
  root.append(header, feedback);

  let existing = null;
  let fsRoots = [];
  try {
    const answer = await api('GET', '/connections', { signal });
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
  const provider = h('select', { id: 'conn-provider', name: 'provider', 'aria-describedby': 'conn-provider-hint' },
    h('option', { value: 'minio', text: 'S3-compatible (AWS S3, MinIO, Ceph…)' }),
    h('option', { value: 'azure', text: 'Azure Blob Storage' }),
    h('option', { value: 'google', text: 'Google Cloud Storage' }),
    h('option', { value: 'fs', text: 'Server folder (fs://)' }));
  provider.value = existing ? existing.provider : 'minio';
  const providerField = h('div', { class: 'field' },
    h('label', { for: 'conn-provider', text: 'Provider' }), provider,
    h('p', { class: 'hint', id: 'conn-provider-hint', text: 'Where the linked files are: a cloud bucket, or a '
      + 'folder on the server itself.' }));

  const hasSecret = Boolean(existing && existing.has_secret);
  const value = (key) => (existing && existing[key]) || '';

  // S3-compatible
  const s3Endpoint = input('s3-endpoint', 'Endpoint', { value: value('endpoint'), placeholder: 'https://s3.amazonaws.com' },
    'host, host:port or http(s)://host[:port]; empty for AWS.');
  const s3Region = input('s3-region', 'Region', { value: value('region'), placeholder: 'eu-central-1' });
  const authKeys = h('input', { type: 'radio', id: 's3-auth-keys', name: 's3-auth', value: 'keys' });
  const authRole = h('input', { type: 'radio', id: 's3-auth-role', name: 's3-auth', value: 'role' });
  (existing && existing.iam_role ? authRole : authKeys).checked = true;
  const s3Access = input('s3-access-key', 'Access key', { value: value('access_key') });
  const s3Secret = input('s3-secret-key', 'Secret key', { type: 'password', autocomplete: 'new-password' },
    hasSecret ? KEEP : 'Stored encrypted; never shown again.');
  const s3Role = input('s3-iam-role', 'IAM role', { value: value('iam_role'), placeholder: 'cargohold-s3' },
    'Keys come from the instance metadata service (on AWS).');
  const keysBox = h('div', { class: 'form-row' }, s3Access.wrap, s3Secret.wrap);
  const roleBox = h('div', { class: 'form-row' }, s3Role.wrap);
  const s3 = h('fieldset', { class: 'provider-fields', dataset: { provider: 'minio' } },
    h('legend', { text: 'S3-compatible' }),
    h('div', { class: 'form-row' }, s3Endpoint.wrap, s3Region.wrap),
    h('fieldset', { class: 'choice' },
      h('legend', { text: 'Credentials' }),
      h('div', { class: 'choice-options' },
        h('div', { class: 'field check' }, authKeys, h('label', { for: 's3-auth-keys', text: 'Use an access key and secret key' })),
        h('div', { class: 'field check' }, authRole, h('label', { for: 's3-auth-role', text: 'Use an IAM role' })))),
    keysBox, roleBox);

  // Azure
  const azEndpoint = input('az-endpoint', 'Endpoint (optional)', { value: value('endpoint'),
    placeholder: 'https://myaccount.blob.core.windows.net' }, 'Empty for Azure itself; an emulator: http://127.0.0.1:10000');
  const azAccount = input('az-account', 'Storage account', { value: value('access_key'), placeholder: 'myaccount' });
  const azKey = input('az-key', 'Account key', { type: 'password', autocomplete: 'new-password' },
    hasSecret ? KEEP : 'The storage account’s access key (base64). Stored encrypted; never shown again.');
  const azure = h('fieldset', { class: 'provider-fields', dataset: { provider: 'azure' } },
    h('legend', { text: 'Azure Blob Storage' }), azEndpoint.wrap, h('div', { class: 'form-row' }, azAccount.wrap, azKey.wrap));

  // Google
  const gcEndpoint = input('gc-endpoint', 'Endpoint (optional)', { value: value('endpoint'),
    placeholder: 'https://storage.googleapis.com' }, 'Empty for Google itself.');
  const gcFile = input('gc-credentials', 'Service-account key (JSON file)', { type: 'file', accept: '.json,application/json' },
    hasSecret ? `${KEEP} Choose a file to replace it.` : 'The key file downloaded from the Google Cloud console. '
      + 'Stored encrypted; never shown again.');
  const google = h('fieldset', { class: 'provider-fields', dataset: { provider: 'google' } },
    h('legend', { text: 'Google Cloud Storage' }), gcEndpoint.wrap, gcFile.wrap);

  // Server folder
  const fsPath = input('fs-path', 'Folder on the server', { value: value('path'),
    placeholder: fsRoots.length ? `${fsRoots[0]}/…` : '/data/datasets' },
    fsRoots.length ? `An absolute path under ${fsRoots.join(', ')}.` : '');
  const fsId = input('fs-storage-id', 'Storage id', { value: value('storage_id'), placeholder: 'local-datasets' },
    'The name links use for this folder: fs://<storage id>/path/to/file.jpg');
  const fsNone = notice('warning', 'This server lets no folder be connected from here. The operator lists the '
    + 'folders that may be in .env (LINKS_FS_ROOTS=/data/datasets) or connects one in remote_links.yml '
    + '(provider: fs, path, storage_id).');
  const folder = h('fieldset', { class: 'provider-fields', dataset: { provider: 'fs' } },
    h('legend', { text: 'Server folder' }), ...(fsRoots.length
      ? [h('div', { class: 'form-row' }, fsPath.wrap, fsId.wrap)] : [fsNone]));

  const buckets = h('textarea', { id: 'conn-buckets', name: 'buckets', rows: '3', spellcheck: 'false', required: true,
    'aria-describedby': 'conn-buckets-hint' });
  buckets.value = existing ? existing.buckets.join('\n') : '';
  const bucketsLabel = h('label', { for: 'conn-buckets', text: 'Buckets' });
  const bucketsField = h('div', { class: 'field' }, bucketsLabel, buckets,
    h('p', { class: 'hint', id: 'conn-buckets-hint', text: 'One a line (or separated by commas). A link’s bucket picks '
      + 'the connection that lists it, so a bucket can be listed by one connection only.' }));

  const save = h('button', { type: 'submit', class: 'primary', text: editing ? 'Save changes' : 'Add connection' });
  const saveAndTest = h('button', { type: 'button', text: editing ? 'Save and test' : 'Add and test' });
  const result = h('div', { class: 'test-slot', 'aria-live': 'polite' });
  const form = h('form', { class: 'card stack connection-form', novalidate: true, 'aria-label': 'Connection' },
    h('div', { class: 'form-row' }, name.wrap, providerField),
    s3, azure, google, folder, bucketsField,
    h('div', { class: 'actions' }, save, saveAndTest,
      h('a', { class: 'button subtle', href: '#/settings/connections', text: 'Cancel' })),
    result);
  root.append(form);

  function sync() {
    const chosen = provider.value;
    for (const box of [s3, azure, google, folder]) {
      const active = box.dataset.provider === chosen;
      box.hidden = !active;
      box.disabled = !active;
    }
    const role = authRole.checked;
    keysBox.hidden = role;
    roleBox.hidden = !role;
    bucketsLabel.textContent = chosen === 'azure' ? 'Containers' : 'Buckets';
    bucketsField.hidden = chosen === 'fs';
    buckets.disabled = chosen === 'fs';
    save.disabled = chosen === 'fs' && !fsRoots.length;
    saveAndTest.disabled = save.disabled;
    // A secret is kept only while the provider stays the same.
    const keeps = hasSecret && existing && existing.provider === chosen;
    s3Secret.hintEl.textContent = keeps ? KEEP : 'Stored encrypted; never shown again.';
    azKey.hintEl.textContent = keeps ? KEEP : 'The storage account’s access key (base64). Stored encrypted; never shown again.';
    gcFile.hintEl.textContent = keeps ? `${KEEP} Choose a file to replace it.` : 'The key file downloaded from the '
      + 'Google Cloud console. Stored encrypted; never shown again.';
  }
  provider.addEventListener('change', sync);
  authKeys.addEventListener('change', sync);
  authRole.addEventListener('change', sync);
  sync();

  async function body() {
    const chosen = provider.value;
    if (chosen === 'fs') {
      if (!fsRoots.length) throw new Error('This server lets no folder be connected from here.');
      const path = fsPath.el.value.trim();
      const storageId = fsId.el.value.trim();
      if (!path.startsWith('/')) throw new Error(`Give the folder’s absolute path, under ${fsRoots.join(', ')}.`);
      if (!storageId) throw new Error('Give the storage id that links will use.');
      return { provider: chosen, path, storage_id: storageId };
    }
    const keeps = hasSecret && existing && existing.provider === chosen;
    const list = buckets.value.split(/[\s,]+/).map((b) => b.trim()).filter(Boolean);
    if (!list.length) throw new Error(`List at least one ${chosen === 'azure' ? 'container' : 'bucket'}.`);
    const json = { provider: chosen, buckets: list };
    const optional = (key, el) => {
      const v = el.value.trim();
      if (v) json[key] = v;
    };
    if (chosen === 'minio') {
      optional('endpoint', s3Endpoint.el);
      optional('region', s3Region.el);
      if (authRole.checked) {
        if (!s3Role.el.value.trim()) throw new Error('Give the IAM role, or choose access key and secret key.');
        json.iam_role = s3Role.el.value.trim();
        json.secret_key = null;
      } else {
        if (!s3Access.el.value.trim()) throw new Error('Give the access key.');
        json.access_key = s3Access.el.value.trim();
        if (s3Secret.el.value) json.secret_key = s3Secret.el.value;
        else if (!keeps) throw new Error('Give the secret key.');
      }
    } else if (chosen === 'azure') {
      optional('endpoint', azEndpoint.el);
      if (!azAccount.el.value.trim()) throw new Error('Give the storage account name.');
      json.access_key = azAccount.el.value.trim();
      if (azKey.el.value) json.secret_key = azKey.el.value.trim();
      else if (!keeps) throw new Error('Give the account key.');
    } else {
      optional('endpoint', gcEndpoint.el);
      const file = gcFile.el.files && gcFile.el.files[0];
      if (file) {
        const text = await file.text();
        try {
          JSON.parse(text);
        } catch {
          throw new Error(`${file.name} is not JSON: choose the service-account key file (.json).`);
        }
        json.credentials_json = text;
      } else if (!keeps) {
        throw new Error('Choose the service-account key file.');
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
      s3Secret.el.value = '';
      azKey.el.value = '';
      gcFile.el.value = '';
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
      result.replaceChildren(h('h3', { text: 'Test result' }), testResult(check, provider.value));
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
