// A dataset's items as a grid of previews.
// - Pages of 100 by cursor, appended as the sentinel below the grid nears the viewport: a page is
//   added to the grid, nothing already shown is drawn again, so 100,000 items stay smooth.
// - One signing request per page (POST /sign), then each <img> gets its signed URL only when it nears
//   the viewport (IntersectionObserver). Expired signatures are renewed per page, once.
// - The name filter is the API's server-side `name` parameter, debounced.
import { may } from '../access.js';
import { api, signPreviews } from '../api.js';
import {
  debounce, dimensions, extensionOf, fileIcon, formatBytes, formatCount, h, hasPreview, pageHeader, plural,
  videoDuration,
} from '../dom.js';
import { announce, busy, confirmAction, showError } from '../ui.js';

const PAGE_SIZE = 100;
const RENEW_MARGIN_MS = 20_000;

export async function render(root, { params, query, signal, replaceQuery, navigate, me }) {
  const datasetId = params[0];
  const writes = may(me, 'write');  // a read token is offered no upload, links or delete
  let filter = query.get('name') || '';

  const header = pageHeader('Dataset', { crumbs: [['Datasets', '#/datasets'], ['…']] });
  const title = header.querySelector('h1');
  const subtitle = h('p', { class: 'subtitle', text: ' ' });
  title.after(subtitle);
  const deleteButton = h('button', { type: 'button', class: 'danger subtle', text: 'Delete dataset' });
  if (writes) {
    header.querySelector('.page-title').append(h('div', { class: 'actions' },
      h('a', { class: 'button primary', href: `#/datasets/${datasetId}/upload`, text: 'Upload files' }),
      h('a', { class: 'button', href: `#/datasets/${datasetId}/links`, text: 'Import links' }),
      deleteButton));
  }

  const filterInput = h('input', {
    id: 'name-filter', type: 'search', value: filter, autocomplete: 'off', placeholder: 'Part of a name, e.g. front/',
    'aria-controls': 'item-grid',
  });
  const countLine = h('p', { class: 'count-line muted', 'aria-live': 'polite' });
  const toolbar = h('div', { class: 'toolbar' },
    h('div', { class: 'field filter' }, h('label', { for: 'name-filter', text: 'Filter by name' }), filterInput),
    countLine);
  const feedback = h('div', { class: 'feedback' });
  const grid = h('ul', { class: 'grid', id: 'item-grid', 'aria-label': 'Items' });
  const moreButton = h('button', { type: 'button', class: 'load-more', text: 'Load more' });
  const sentinel = h('div', { class: 'sentinel' }, moreButton);
  root.append(header, toolbar, feedback, grid, sentinel);

  let dataset = null;
  let generation = 0;
  let cursor = null;
  let done = false;
  let loading = false;
  let shown = 0;
  let listController = new AbortController();
  signal.addEventListener('abort', () => listController.abort());

  // -- previews: lazy, through signed URLs ----------------------------------------------------------
  const images = new WeakMap();

  async function renew(page) {
    if (!page.renewing) {
      page.renewing = signPreviews(page.ids, listController.signal).then((signed) => {
        page.urls = signed.urls;
        page.expiresAt = signed.expiresAt;
        page.version += 1;
      }).finally(() => {
        page.renewing = null;
      });
    }
    return page.renewing;
  }

  function noPreview(img, reason) {
    const thumb = img.parentElement;
    if (!thumb) return;
    const info = images.get(img);
    thumb.classList.add('no-preview');
    const badge = thumb.querySelector('.badge');
    thumb.replaceChildren(fileIcon(extensionOf(info ? info.item.name : '') || 'image'),
      h('span', { class: 'thumb-note', text: reason }), badge);
  }

  async function show(img) {
    const info = images.get(img);
    const { page } = info;
    try {
      await page.ready;
      if (Date.now() > page.expiresAt - RENEW_MARGIN_MS) await renew(page);
    } catch (exc) {
      if (exc && exc.name === 'AbortError') return;
      noPreview(img, 'preview not signed');
      return;
    }
    const url = page.urls[String(info.item.id)];
    if (!url) {
      noPreview(img, 'no preview');
      return;
    }
    info.version = page.version;
    img.src = url;
  }

  const imageObserver = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      imageObserver.unobserve(entry.target);
      show(entry.target);
    }
  }, { rootMargin: '400px 0px' });

  function onImageError(event) {
    const img = event.currentTarget;
    const info = images.get(img);
    if (!info || info.retried) {
      noPreview(img, 'no preview');
      return;
    }
    // Perhaps the signature expired while the page sat open: renew this page's URLs once and retry.
    info.retried = true;
    const { page } = info;
    const again = page.version === info.version ? renew(page) : Promise.resolve();
    again.then(() => show(img), () => noPreview(img, 'no preview'));
  }

  function tile(item, page) {
    const thumb = h('div', { class: 'thumb' });
    if (hasPreview(item)) {
      const img = h('img', { alt: '', width: '256', height: '256', decoding: 'async' });
      img.addEventListener('load', () => thumb.classList.add('loaded'), { once: true });
      img.addEventListener('error', onImageError);
      images.set(img, { item, page, version: -1, retried: false });
      thumb.append(img);
      if (item.kind === 'video') thumb.append(h('span', { class: 'thumb-note duration', text: videoDuration(item) }));
      imageObserver.observe(img);
    } else {
      thumb.classList.add('icon');
      thumb.append(fileIcon(extensionOf(item.name) || item.kind), h('span', { class: 'thumb-note', text: item.kind }));
    }
    const linked = item.source === 'link';
    thumb.append(h('span', {
      class: `badge ${linked ? 'linked' : 'stored'}`, title: linked ? item.uri : 'bytes in cargohold storage',
      text: linked ? 'linked' : 'stored',
    }));
    const facts = [formatBytes(item.size), dimensions(item)].filter(Boolean).join(' · ');
    return h('li', { class: 'tile', dataset: { id: String(item.id) } },
      h('a', { class: 'tile-link', href: `#/items/${item.id}` },
        thumb,
        h('span', { class: 'tile-meta' },
          h('span', { class: 'tile-name', title: item.name, text: item.name }),
          h('span', { class: 'tile-facts', text: facts }))));
  }

  // -- pages ----------------------------------------------------------------------------------------
  function updateCount() {
    if (!done) {
      countLine.textContent = `${formatCount(shown)} shown, more below`;
    } else if (filter) {
      countLine.textContent = `${plural(shown, 'item')} whose name contains “${filter}”`;
    } else {
      countLine.textContent = plural(shown, 'item');
    }
    moreButton.hidden = done;
    if (done && shown === 0) {
      grid.hidden = true;
      const empty = filter
        ? h('div', { class: 'empty' }, h('p', { class: 'empty-title', text: 'No match' }),
          h('p', { class: 'muted', text: `No item name contains “${filter}”.` }))
        : h('div', { class: 'empty' }, h('p', { class: 'empty-title', text: 'This dataset is empty' }),
          writes ? h('p', { class: 'muted' }, h('a', { href: `#/datasets/${datasetId}/upload`, text: 'Upload files' }),
            ' from this computer or ', h('a', { href: `#/datasets/${datasetId}/links`, text: 'import links' }), '.')
            : null);
      sentinel.replaceChildren(empty, moreButton);
    } else {
      grid.hidden = false;
      sentinel.replaceChildren(moreButton);
    }
  }

  async function loadMore() {
    if (loading || done) return;
    const run = generation;
    loading = true;
    moreButton.disabled = true;
    moreButton.textContent = 'Loading…';
    grid.setAttribute('aria-busy', 'true');
    try {
      const answer = await api('GET', `/datasets/${datasetId}/items`, {
        query: { limit: PAGE_SIZE, cursor, name: filter }, signal: listController.signal,
      });
      if (run !== generation) return;
      const ids = answer.items.filter(hasPreview).map((i) => i.id);
      const page = { ids, urls: {}, expiresAt: 0, version: 0, renewing: null, ready: Promise.resolve() };
      if (ids.length) {
        page.ready = signPreviews(ids, listController.signal).then((signed) => {
          page.urls = signed.urls;
          page.expiresAt = signed.expiresAt;
        });
        page.ready.catch((exc) => showError(feedback, exc, 'The previews could not be signed'));
      }
      const fragment = document.createDocumentFragment();
      for (const item of answer.items) fragment.append(tile(item, page));
      grid.append(fragment);
      shown += answer.items.length;
      cursor = answer.next_cursor;
      done = !cursor;
      updateCount();
    } catch (exc) {
      if (run === generation) showError(feedback, exc, 'The items could not be loaded');
    } finally {
      if (run === generation) {
        loading = false;
        moreButton.disabled = false;
        moreButton.textContent = 'Load more';
        grid.removeAttribute('aria-busy');
        // The sentinel may still be in view (a short page, a tall window): observe again to re-check.
        sentinelObserver.unobserve(sentinel);
        if (!done) sentinelObserver.observe(sentinel);
      }
    }
  }

  const sentinelObserver = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadMore();
  }, { rootMargin: '800px 0px' });

  function restart() {
    generation += 1;
    listController.abort();
    listController = new AbortController();
    imageObserver.disconnect();
    cursor = null;
    done = false;
    loading = false;
    shown = 0;
    grid.replaceChildren();
    feedback.replaceChildren();
    countLine.textContent = 'Loading…';
    loadMore();
  }

  const onFilter = debounce(() => {
    const value = filterInput.value.trim();
    if (value === filter) return;
    filter = value;
    const next = new URLSearchParams();
    if (filter) next.set('name', filter);
    replaceQuery(next);
    restart();
  }, 300);
  filterInput.addEventListener('input', onFilter);
  filterInput.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      event.preventDefault();
      onFilter();
    }
  });
  moreButton.addEventListener('click', () => loadMore());

  deleteButton.addEventListener('click', async () => {
    if (!dataset) return;
    const confirmed = await confirmAction({
      title: `Delete dataset “${dataset.name}”?`,
      message: `Its ${plural(dataset.item_count, 'item')} (${formatBytes(dataset.total_size)}) leave the catalog. `
        + 'Linked files stay where they are. This cannot be undone.',
      confirmLabel: 'Delete dataset',
    });
    if (!confirmed) {
      deleteButton.focus();
      return;
    }
    await busy(deleteButton, 'Deleting…', async () => {
      try {
        await api('DELETE', `/datasets/${datasetId}`);
        announce(`Deleted dataset ${dataset.name}.`, 'success');
        navigate('#/datasets');
      } catch (exc) {
        showError(feedback, exc, 'The dataset was not deleted');
      }
    });
  });

  try {
    dataset = await api('GET', `/datasets/${datasetId}`, { signal });
  } catch (exc) {
    showError(feedback, exc, 'The dataset could not be opened');
    toolbar.hidden = true;
    sentinel.hidden = true;
    return () => {};
  }
  title.textContent = dataset.name;
  document.title = `${dataset.name} · cargohold`;
  header.querySelector('.crumbs li:last-child span').textContent = dataset.name;
  // The S3 endpoint's name for it (docs/S3.md): S3 clients are told this bucket, not the dataset's name.
  subtitle.textContent = `${plural(dataset.item_count, 'item')} · ${formatBytes(dataset.total_size)}`
    + ` · S3 bucket ${dataset.bucket}`;
  countLine.textContent = 'Loading…';
  sentinelObserver.observe(sentinel);

  return () => {
    onFilter.cancel();
    imageObserver.disconnect();
    sentinelObserver.disconnect();
    listController.abort();
    document.title = 'cargohold';
  };
}

