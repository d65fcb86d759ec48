// Settings → Cache: each tier's usage against its limit, hit rate and entries; clear a tier (admin).
import { may } from '../access.js';
import { api } from '../api.js';
import { formatBytes, formatCount, h, pageHeader } from '../dom.js';
import { announce, busy, confirmAction, showError } from '../ui.js';

const TIERS = {
  storage: ['Storage', 'Originals of items on a remote (own storage in a bucket, and links), kept on this server’s disk.'],
  previews: ['Previews', 'Resized images for the grids.'],
  'image-converter': ['Image converter', 'Full-size browser-friendly versions of TIFF, BMP, 16-bit PNG and the like.'],
};

function duration(seconds) {
  if (!seconds) return 'never';
  const units = [[86400, 'day'], [3600, 'hour'], [60, 'minute'], [1, 'second']];
  for (const [size, unit] of units) {
    if (seconds >= size && seconds % size === 0) {
      const n = seconds / size;
      return `${n} ${unit}${n === 1 ? '' : 's'}`;
    }
  }
  return `${Math.round(seconds)} seconds`;
}

function percent(fraction) {
  if (fraction > 0 && fraction < 0.001) return 'under 0.1%';
  return `${(fraction * 100).toFixed(fraction >= 0.1 || fraction === 0 ? 0 : 1)}%`;
}

export async function render(root, { signal, me }) {
  const refresh = h('button', { type: 'button', text: 'Refresh' });
  root.append(pageHeader('Cache', {
    crumbs: [['Settings'], ['Cache']],
    subtitle: 'What cargohold keeps on its own disk so that remote files and previews are read once.',
    actions: [refresh],
  }));
  const feedback = h('div', { class: 'feedback' });
  const tiers = h('div', { class: 'tier-grid' }, h('p', { class: 'muted', text: 'Loading…' }));
  root.append(feedback, tiers);

  function card(t) {
    const [title, about] = TIERS[t.name] || [t.name, ''];
    const used = t.limit ? Math.min(t.bytes / t.limit, 1) : 0;
    const meterId = `meter-${t.name}`;
    const clearButton = h('button', { type: 'button', class: 'danger subtle', text: 'Clear', 'aria-label': `Clear the ${title} tier` });
    clearButton.addEventListener('click', async () => {
      const confirmed = await confirmAction({
        title: `Clear the ${title.toLowerCase()} tier?`,
        message: `Its ${formatCount(t.entries)} entries (${formatBytes(t.bytes)}) are removed from this server’s disk; the `
          + 'next request of each fetches or makes it again. Nothing in storage or in a bucket is touched.',
        confirmLabel: 'Clear tier',
      });
      if (!confirmed) {
        clearButton.focus();
        return;
      }
      await busy(clearButton, 'Clearing…', async () => {
        try {
          const answer = await api('DELETE', `/cache/${encodeURIComponent(t.name)}`);
          announce(`Cleared the ${title.toLowerCase()} tier: ${formatCount(answer.removed)} entries removed.`, 'success');
          feedback.replaceChildren();
          await load();
        } catch (exc) {
          if (exc.status === 403) showError(feedback, exc, 'Clearing a tier needs the admin token');
          else showError(feedback, exc, `The ${title.toLowerCase()} tier was not cleared`);
        }
      });
    });
    return h('section', { class: 'card tier', dataset: { tier: t.name }, 'aria-labelledby': `tier-${t.name}` },
      h('div', { class: 'card-head' },
        h('div', {}, h('h2', { id: `tier-${t.name}`, text: title }), h('p', { class: 'muted small', text: about })),
        may(me, 'admin') ? clearButton : null),  // any token reads the figures; clearing is for admin tokens
      h('div', { class: 'usage' },
        h('label', { for: meterId, class: 'usage-label' },
          h('span', { class: 'strong', text: `${formatBytes(t.bytes)} of ${formatBytes(t.limit)}` }),
          h('span', { class: 'muted', text: ` (${percent(used)} used)` })),
        h('meter', { id: meterId, min: '0', max: String(Math.max(t.limit, 1)), value: String(t.bytes),
          high: String(Math.max(t.limit, 1) * 0.9), optimum: '0' })),
      h('dl', { class: 'facts compact' },
        h('dt', { text: 'Hit rate' }),
        h('dd', { text: t.hit_rate === null ? 'no requests yet'
          : `${percent(t.hit_rate)} (${formatCount(t.hits)} hits, ${formatCount(t.misses)} misses)` }),
        h('dt', { text: 'Entries' }), h('dd', { text: formatCount(t.entries) }),
        h('dt', { text: 'Evicted / expired' }), h('dd', { text: `${formatCount(t.evictions)} / ${formatCount(t.expired)}` }),
        h('dt', { text: 'Expiry if unused' }), h('dd', { text: duration(t.expires_seconds) }),
        h('dt', { text: 'Served' }), h('dd', { text: formatBytes(t.bytes_served) })));
  }

  async function load() {
    try {
      const answer = await api('GET', '/cache', { signal });
      tiers.replaceChildren(...answer.tiers.map(card));
    } catch (exc) {
      showError(tiers, exc, 'The cache could not be read');
    }
  }

  refresh.addEventListener('click', () => busy(refresh, 'Refreshing…', load));
  await load();
}
