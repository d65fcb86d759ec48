// Settings → Cloud connections: the list (remote_links.yml ones read-only), test with the per-bucket
// result, delete with confirmation. Adding and editing is connection-form.js. Secrets never come back.
import { may } from '../access.js';
import { api, fieldOf, providerOf, providers } from '../api.js';
import { formatDate, h, notice, pageHeader, plural } from '../dom.js';
import { adminOnly, announce, busy, confirmAction, showError } from '../ui.js';

/** A connection's buckets as links: s3://a, s3://b. */
function links(c, provider) {
  return c.buckets.map((b) => `${provider.schemes[0] || provider.name}://${b}`).join(', ');
}

function fact(label, value, mono = true) {
  if (value === null || value === undefined || value === '') return null;
  return [h('dt', { text: label }), h('dd', { class: mono ? 'mono break' : 'break' }, value)];
}

function mark(ok) {
  if (ok === null || ok === undefined) return h('span', { class: 'badge neutral', text: 'empty' });
  return h('span', { class: `badge ${ok ? 'ok' : 'bad'}`, text: ok ? 'OK' : 'failed' });
}

/** The providers of bucket connections, for a sentence: “S3-compatible, Azure Blob Storage or Google Cloud Storage”. */
function clouds(known) {
  const labels = Object.values(known).filter((p) => p.connection && !p.server_folder).map((p) => p.label);
  return labels.length > 1 ? `${labels.slice(0, -1).join(', ')} or ${labels[labels.length - 1]}` : labels.join('');
}

/** A test's answer, per bucket; `provider` is the connection's provider (GET /providers). */
export function testResult(check, provider) {
  const noun = provider.bucket;
  const allOk = check.buckets.every((b) => b.list && b.read !== false);
  return h('div', { class: 'test-result', dataset: { ok: String(allOk) } },
    h('p', { class: allOk ? 'result-ok' : 'result-bad', role: 'status' },
      allOk ? `Connection ${check.name} works: ${plural(check.buckets.length, noun)} listed and read.`
        : `Connection ${check.name} has a problem.`),
    h('div', { class: 'table-wrap' }, h('table', { class: 'table test-table' },
      h('caption', { class: 'visually-hidden', text: `Test of ${check.name}, per ${noun}` }),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col', text: noun[0].toUpperCase() + noun.slice(1) }),
        h('th', { scope: 'col', text: 'List' }),
        h('th', { scope: 'col', text: 'Read' }),
        h('th', { scope: 'col', text: 'Error' }))),
      h('tbody', {}, check.buckets.map((b) => h('tr', { dataset: { bucket: b.bucket } },
        h('td', { class: 'mono break', text: b.bucket }),
        h('td', {}, mark(b.list)),
        h('td', {}, b.list ? mark(b.read) : h('span', { class: 'muted', text: '—' })),
        h('td', { class: 'break', text: b.error || '—' })))))));
}

export async function render(root, { signal, me }) {
  let known = {};
  const add = h('a', { class: 'button primary', href: '#/settings/connections/new', text: 'Add connection' });
  root.append(pageHeader('Cloud connections', {
    crumbs: [['Settings'], ['Cloud connections']],
    subtitle: 'Credentials for buckets that cargohold reads links from, but does not own.',
    actions: [add],
  }));
  const feedback = h('div', { class: 'feedback' });
  const list = h('div', { class: 'connection-list stack' }, h('p', { class: 'muted', text: 'Loading…' }));
  root.append(feedback, list);

  function card(c) {
    const provider = providerOf(known, c.provider);
    const label = (name, otherwise) => (fieldOf(provider, name) || {}).label || otherwise;
    const fromFile = c.origin === 'file';
    const result = h('div', { class: 'test-slot', 'aria-live': 'polite' });
    const test = h('button', { type: 'button', text: 'Test', 'aria-label': `Test connection ${c.name}` });
    test.addEventListener('click', () => busy(test, 'Testing…', async () => {
      result.replaceChildren(h('p', { class: 'muted', text: 'Testing each bucket…' }));
      try {
        const check = await api('POST', `/connections/${encodeURIComponent(c.name)}/test`);
        result.replaceChildren(testResult(check, provider));
        announce(`Tested ${c.name}.`);
      } catch (exc) {
        showError(result, exc, 'The test could not run');
      }
    }));
    const actions = [test];
    if (!fromFile) {
      actions.push(h('a', {
        class: 'button', href: `#/settings/connections/${encodeURIComponent(c.name)}/edit`, text: 'Edit',
        'aria-label': `Edit connection ${c.name}`,
      }));
      const del = h('button', { type: 'button', class: 'danger subtle', text: 'Delete', 'aria-label': `Delete connection ${c.name}` });
      del.addEventListener('click', async () => {
        const confirmed = await confirmAction({
          title: `Delete connection “${c.name}”?`,
          message: `Links to ${links(c, provider)} stay in their datasets but `
            + 'cannot be read until another connection lists their bucket. The stored secret is deleted.',
          confirmLabel: 'Delete connection',
        });
        if (!confirmed) {
          del.focus();
          return;
        }
        await busy(del, 'Deleting…', async () => {
          try {
            await api('DELETE', `/connections/${encodeURIComponent(c.name)}`);
            announce(`Deleted connection ${c.name}.`, 'success');
            await load();
          } catch (exc) {
            showError(feedback, exc, `Connection ${c.name} was not deleted`);
          }
        });
      });
      actions.push(del);
    }
    const origin = fromFile
      ? h('span', { class: 'badge neutral', title: 'Defined in remote_links.yml on the server; change it there.' },
        `remote_links.yml${c.line ? `, line ${c.line}` : ''} · read-only`)
      : h('span', { class: 'badge info', text: 'made here' });
    const secret = !provider.fields.some((f) => f.secret) ? null
      : c.has_secret ? h('span', {}, h('span', { class: 'masked', text: '••••••••' }), h('span', { class: 'muted', text: ' stored, write-only' }))
        : c.iam_role ? 'none (IAM role)' : 'none';
    return h('article', { class: 'card connection', dataset: { name: c.name, origin: c.origin }, 'aria-labelledby': `conn-${c.name}` },
      h('div', { class: 'card-head' },
        h('div', {},
          h('h2', { id: `conn-${c.name}`, text: c.name }),
          h('p', { class: 'muted', text: provider.label })),
        origin),
      c.problem ? notice('warning', c.problem) : null,
      h('dl', { class: 'facts' },
        fact(label('buckets', label('storage_id', 'Buckets')), links(c, provider)),
        fact(label('path', 'Folder on the server'), c.path),
        fact('Endpoint', c.endpoint),
        fact('Region', c.region),
        fact(label('access_key', 'Access key'), c.access_key),
        fact('IAM role', c.iam_role),
        fact('Service account file', c.credentials_path),
        fact('Secret', secret, false),
        fact('Changed', c.updated_at ? formatDate(c.updated_at) : null, false)),
      h('div', { class: 'actions' }, actions),
      result);
  }

  async function load() {
    let answer;
    if (!may(me, 'admin')) {
      list.replaceChildren(adminOnly('Connections hold credentials, so they', me));
      add.hidden = true;
      return;
    }
    try {
      [answer, known] = await Promise.all([api('GET', '/connections', { signal }), providers()]);
    } catch (exc) {
      if (exc.status === 403) {
        list.replaceChildren(adminOnly('Connections hold credentials, so they', me));
        add.hidden = true;
      } else {
        showError(list, exc, 'The connections could not be listed');
      }
      return;
    }
    const parts = [];
    if (answer.file && answer.file.error) {
      parts.push(notice('warning', h('strong', { text: `${answer.file.path} cannot be used as it is now. ` }),
        answer.file.error, ' The connections read from it before stay in force.'));
    }
    if (!answer.connections.length) {
      parts.push(h('div', { class: 'empty' },
        h('p', { class: 'empty-title', text: 'No connections yet' }),
        h('p', { class: 'muted', text: `Add one to read links from ${clouds(known)} buckets. `
          + `Server folders are connected in ${answer.file ? answer.file.path : 'remote_links.yml'} on the server.` })));
    }
    parts.push(...answer.connections.map(card));
    list.replaceChildren(...parts);
  }

  await load();
}
