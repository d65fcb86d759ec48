// Settings → Storage: own storage's provider, buckets and their health (admin only).
import { may } from '../access.js';
import { api, providers } from '../api.js';
import { h, pageHeader } from '../dom.js';
import { adminOnly, busy, showError } from '../ui.js';

function statusBadge(status) {
  return h('span', { class: `badge ${status === 'ok' ? 'ok' : 'bad'}`, text: status === 'ok' ? 'healthy' : status });
}

export async function render(root, { signal, me }) {
  const refresh = h('button', { type: 'button', text: 'Check again' });
  root.append(pageHeader('Storage', {
    crumbs: [['Settings'], ['Storage']],
    subtitle: 'Where cargohold keeps the bytes of uploaded files.',
    actions: [refresh],
  }));
  const body = h('div', { class: 'stack', 'aria-live': 'polite' }, h('p', { class: 'muted', text: 'Loading…' }));
  root.append(body);

  async function load() {
    if (!may(me, 'admin')) {
      body.replaceChildren(adminOnly('The storage settings', me));
      refresh.hidden = true;
      return;
    }
    let storage;
    let known;
    try {
      // Without the provider list the provider's name stands in for its title.
      [storage, known] = await Promise.all([api('GET', '/storage', { signal }), providers().catch(() => ({}))]);
    } catch (exc) {
      if (exc.status === 403) {
        body.replaceChildren(adminOnly('The storage settings', me));
        refresh.hidden = true;
      } else {
        showError(body, exc, 'The storage could not be read');
      }
      return;
    }
    const buckets = storage.buckets || [];
    body.replaceChildren(
      h('section', { class: 'card', 'aria-labelledby': 'storage-provider' },
        h('div', { class: 'card-head' },
          h('h2', { id: 'storage-provider', text: (known[storage.provider] || {}).title || storage.provider }),
          statusBadge(storage.status)),
        h('dl', { class: 'facts' },
          h('dt', { text: 'Provider' }), h('dd', { class: 'mono', id: 'storage-provider-id', text: storage.provider }),
          storage.endpoint ? [h('dt', { text: 'Endpoint' }), h('dd', { class: 'mono break', text: storage.endpoint })] : null,
          storage.bucket_prefix ? [h('dt', { text: 'Bucket prefix' }), h('dd', { class: 'mono', text: storage.bucket_prefix })] : null,
          h('dt', { text: 'Data folder' }), h('dd', { class: 'mono break', text: storage.data_path || '' }),
          h('dt', { text: 'Credentials' }),
          h('dd', {}, h('span', { class: 'masked', 'aria-label': 'hidden', text: '••••••••' }),
            h('span', { class: 'muted', text: ' never sent by the server; set in the server’s settings (.env)' })))),
      h('section', { class: 'card', 'aria-labelledby': 'buckets-title' },
        h('h2', { id: 'buckets-title', text: 'Buckets' }),
        h('div', { class: 'table-wrap' }, h('table', { class: 'table', id: 'storage-buckets' },
          h('thead', {}, h('tr', {},
            h('th', { scope: 'col', text: 'Bucket' }),
            h('th', { scope: 'col', text: 'Health' }),
            h('th', { scope: 'col', class: 'num', text: 'Answer time' }),
            h('th', { scope: 'col', text: 'Problem' }))),
          h('tbody', {}, buckets.map((b) => h('tr', {},
            h('td', { class: 'mono break', text: b.name }),
            h('td', {}, statusBadge(b.status)),
            h('td', { class: 'num', text: b.ms !== undefined ? `${b.ms} ms` : '' }),
            h('td', { class: 'break', text: b.error || '—' }))))))));
  }

  refresh.addEventListener('click', () => busy(refresh, 'Checking…', load));
  await load();
}
