// Import links into a dataset: a .txt links file or pasted lines (POST /datasets/{id}/links), and
// whole folders of a connected bucket, browsed folder by folder (POST /datasets/{id}/sync). Browsing lists
// connections, which is for admin tokens; a write token made with --connections types the folder's address.
import { may } from '../access.js';
import { api, providerOf, providers } from '../api.js';
import { checkbox, formatBytes, formatCount, formatDate, h, notice, pageHeader, plural } from '../dom.js';
import { announce, busy, showError } from '../ui.js';

const BROWSE_PAGE = 200;

function conflictSelect(id) {
  return h('select', { id, name: 'conflict' },
    h('option', { value: 'rename', text: 'Keep both: rename the new link' }),
    h('option', { value: 'skip', text: 'Skip the new link' }),
    h('option', { value: 'replace', text: 'Replace the existing item' }));
}

/** The counts of a links or sync report, and every refused line with its number and reason. */
export function reportView(report, { datasetId, sync = false } = {}) {
  const counts = [
    ['Added', report.added], ['Unchanged', report.unchanged], ['Renamed', report.renamed],
    ['Replaced', report.replaced], ['Skipped', report.skipped], ['Refused', report.refused_count],
  ];
  if (sync) counts.unshift(['Listed', report.listed]);
  if (sync) counts.push(['Gone from the bucket', report.removed_count]);
  const refused = report.refused || [];
  const parts = [
    h('ul', { class: 'stats', 'aria-label': 'Counts' }, counts.map(([label, n]) => h('li', {
      class: `stat${label === 'Refused' && n ? ' bad' : ''}${label === 'Added' && n ? ' good' : ''}`,
      dataset: { stat: label.toLowerCase().split(' ')[0] },
    }, h('span', { class: 'stat-value', text: formatCount(n || 0) }), h('span', { class: 'stat-label', text: label })))),
  ];
  if (refused.length) {
    parts.push(h('div', { class: 'table-wrap' }, h('table', { class: 'table refused-table' },
      h('caption', { text: `Refused ${refused.length === 1 ? 'line' : 'lines'} (${formatCount(report.refused_count)})` }),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col', class: 'num', text: 'Line' }),
        h('th', { scope: 'col', text: 'Link' }),
        h('th', { scope: 'col', text: 'Reason' }))),
      h('tbody', {}, refused.map((r) => h('tr', {},
        h('td', { class: 'num', text: r.line ? String(r.line) : '—' }),
        h('td', { class: 'mono break', text: r.url || '' }),
        h('td', { class: 'break', text: r.reason })))))));
    if (report.refused_count > refused.length) {
      parts.push(h('p', { class: 'muted', text: `Only the first ${formatCount(refused.length)} refused lines are listed.` }));
    }
  }
  if (sync && report.removed && report.removed.length) {
    parts.push(h('details', {}, h('summary', { text: `${plural(report.removed_count, 'link')} whose object is gone (kept in the dataset)` }),
      h('ul', { class: 'mono small' }, report.removed.map((uri) => h('li', { text: uri })))));
  }
  parts.push(h('p', {}, h('a', { href: `#/datasets/${datasetId}`, text: 'Open the dataset' })));
  return parts;
}

function syncedKey(datasetId) {
  return `cargohold.synced.${datasetId}`;
}

function readSynced(datasetId) {
  try {
    const value = JSON.parse(sessionStorage.getItem(syncedKey(datasetId)) || '[]');
    return Array.isArray(value) ? value : [];
  } catch {
    return [];
  }
}

export async function render(root, { params, query, signal, replaceQuery, me }) {
  const datasetId = params[0];
  const header = pageHeader('Import links', {
    crumbs: [['Datasets', '#/datasets'], ['…', `#/datasets/${datasetId}`], ['Import links']],
    subtitle: 'Files that stay where they are: registered by link, read in place, never copied.',
  });
  root.append(header);
  if (!may(me, 'write')) {
    root.append(notice('warning', h('strong', { text: 'Read only. ' }),
      `Adding links needs a write or admin token; you are signed in with a ${me.role} token.`));
    return () => {};
  }

  // -- a links file or pasted links ------------------------------------------------------------------
  const fileInput = h('input', { id: 'links-file', type: 'file', accept: '.txt,text/plain', 'aria-describedby': 'links-file-hint' });
  const textArea = h('textarea', {
    id: 'links-text', rows: '7', spellcheck: 'false', 'aria-describedby': 'links-text-hint',
    placeholder: 's3://cars_2020_20_10/front/0001.jpg\nhttps://images.example.com/cat.jpg',
  });
  const clearFile = h('button', { type: 'button', class: 'subtle', text: 'Remove the file', hidden: true });
  const verify = checkbox('Verify each link (it must exist; images get their type and size)', { id: 'links-verify', checked: true });
  const conflict = conflictSelect('links-conflict');
  const submit = h('button', { type: 'submit', class: 'primary', text: 'Import links' });
  const importFeedback = h('div', { class: 'feedback' });
  const importResult = h('div', { class: 'report', id: 'links-report', 'aria-live': 'polite' });
  const form = h('form', { class: 'card stack', 'aria-labelledby': 'import-title' },
    h('h2', { id: 'import-title', text: 'A links file or pasted links' }),
    h('div', { class: 'field' },
      h('label', { for: 'links-file', text: 'Links file (.txt)' }),
      h('div', { class: 'row' }, fileInput, clearFile),
      h('p', { class: 'hint', id: 'links-file-hint', text: 'One link a line: s3://, azure://, gs://, fs://, https://. '
        + 'Blank lines and # comments are skipped; line numbers count every line.' })),
    h('div', { class: 'field' },
      h('label', { for: 'links-text', text: 'Or paste links' }),
      textArea,
      h('p', { class: 'hint', id: 'links-text-hint', text: 'Used when no file is chosen.' })),
    h('div', { class: 'form-row' },
      verify.wrap,
      h('div', { class: 'field' }, h('label', { for: 'links-conflict', text: 'When a name is already taken' }), conflict)),
    h('div', { class: 'actions' }, submit),
    importFeedback);
  root.append(form, importResult);
  api('GET', `/datasets/${datasetId}`, { signal }).then((d) => {
    header.querySelector('.crumbs li:nth-child(2) a').textContent = d.name;
    header.querySelector('h1').textContent = `Import links into ${d.name}`;
  }, (exc) => showError(importFeedback, exc, 'The dataset could not be opened'));

  fileInput.addEventListener('change', () => {
    const chosen = fileInput.files && fileInput.files.length > 0;
    textArea.disabled = chosen;
    clearFile.hidden = !chosen;
  });
  clearFile.addEventListener('click', () => {
    fileInput.value = '';
    textArea.disabled = false;
    clearFile.hidden = true;
    fileInput.focus();
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    importFeedback.replaceChildren();
    const file = fileInput.files && fileInput.files[0];
    const text = textArea.value;
    if (!file && !text.trim()) {
      importFeedback.replaceChildren(notice('error', 'Choose a links file or paste some links first.'));
      return;
    }
    await busy(submit, verify.input.checked ? 'Importing and verifying…' : 'Importing…', async () => {
      try {
        const report = await api('POST', `/datasets/${datasetId}/links`, {
          query: { verify: verify.input.checked ? 'true' : 'false', conflict: conflict.value },
          body: file || text, contentType: 'text/plain; charset=utf-8',
        });
        importResult.replaceChildren(h('h2', { text: 'Import result' }), ...reportView(report, { datasetId }));
        announce(`Imported links: ${report.added} added, ${report.refused_count} refused.`,
          report.refused_count ? 'error' : 'success');
      } catch (exc) {
        showError(importFeedback, exc, 'The links were not imported');
      }
    });
  });

  // -- a folder of a connected bucket ----------------------------------------------------------------
  const browseSection = h('section', { class: 'card stack', 'aria-labelledby': 'browse-title' },
    h('h2', { id: 'browse-title', text: 'A folder of a connected bucket' }),
    h('p', { class: 'muted', text: 'Browse a bucket folder by folder, then add every object under a folder as links. '
      + 'Syncing the same folder again later adds only the new objects.' }));
  const browseBody = h('div', { class: 'stack' }, h('p', { class: 'muted', text: 'Loading the connections…' }));
  browseSection.append(browseBody);
  const syncedList = h('div', { class: 'synced' });
  const syncFeedback = h('div', { class: 'feedback' });
  const syncResult = h('div', { class: 'report', id: 'sync-report', 'aria-live': 'polite' });
  root.append(browseSection, syncedList);

  if (!may(me, 'admin')) {
    if (me.connections.length) {
      browseBody.replaceChildren(addressForm());
    } else {
      browseBody.replaceChildren(notice('info', 'Browsing buckets needs an admin token (connections hold credentials), '
        + 'and syncing one a token made for its connection. The links file above works with any write token.'));
    }
    drawSynced();
    return () => {};
  }

  let connections = [];
  let known = {};
  try {
    const [answer, list] = await Promise.all([api('GET', '/connections', { signal }), providers()]);
    connections = answer.connections;
    known = list;
  } catch (exc) {
    if (exc.status === 403) {
      browseBody.replaceChildren(notice('info', 'Browsing buckets needs an admin token (connections hold credentials). '
        + 'The links file above works with any token.'));
    } else {
      showError(browseBody, exc, 'The connections could not be listed');
    }
    return () => {};
  }
  const usable = connections.filter((c) => c.buckets.length);
  const scheme = (c) => providerOf(known, c.provider).schemes[0] || c.provider;
  if (!usable.length) {
    browseBody.replaceChildren(notice('info', 'No cloud connection yet. ',
      h('a', { href: '#/settings/connections/new', text: 'Add one in Settings → Cloud connections' }), '.'));
    return () => {};
  }

  const connectionSelect = h('select', { id: 'browse-connection' },
    usable.map((c) => h('option', { value: c.name, text: `${c.name} (${scheme(c)})` })));
  const bucketSelect = h('select', { id: 'browse-bucket' });
  const crumbs = h('nav', { class: 'folder-crumbs', 'aria-label': 'Folder' });
  const listing = h('div', { class: 'listing', 'aria-live': 'polite' });
  const moreButton = h('button', { type: 'button', text: 'More entries', hidden: true });
  const sourceText = h('code', { id: 'sync-source', class: 'break' });
  const filterInput = h('input', { id: 'sync-filter', autocomplete: 'off', spellcheck: 'false', placeholder: '\\.jpe?g$',
    'aria-describedby': 'sync-filter-hint' });
  const syncVerify = checkbox('Read each image’s header for its size (slower)', { id: 'sync-verify' });
  const syncConflict = conflictSelect('sync-conflict');
  const syncButton = h('button', { type: 'button', class: 'primary', text: 'Add this folder as links' });
  browseBody.replaceChildren(
    h('div', { class: 'form-row' },
      h('div', { class: 'field' }, h('label', { for: 'browse-connection', text: 'Connection' }), connectionSelect),
      h('div', { class: 'field' }, h('label', { for: 'browse-bucket', text: 'Bucket' }), bucketSelect)),
    crumbs, listing, moreButton,
    h('div', { class: 'sync-box' },
      h('p', {}, 'Folder: ', sourceText),
      h('div', { class: 'form-row' },
        h('div', { class: 'field grow' },
          h('label', { for: 'sync-filter', text: 'Only keys matching (optional)' }), filterInput,
          h('p', { class: 'hint', id: 'sync-filter-hint', text: 'A regular expression, e.g. \\.jpe?g$' })),
        h('div', { class: 'field' }, h('label', { for: 'sync-conflict', text: 'When a name is already taken' }), syncConflict)),
      syncVerify.wrap,
      h('div', { class: 'actions' }, syncButton),
      syncFeedback),
    syncResult);

  const where = {
    connection: query.get('connection') || usable[0].name,
    bucket: query.get('bucket') || '',
    prefix: query.get('prefix') || '',
    cursor: null,
  };
  if (!usable.some((c) => c.name === where.connection)) where.connection = usable[0].name;
  let browseRun = 0;

  function current() {
    return usable.find((c) => c.name === where.connection);
  }

  function source() {
    const c = current();
    return `${scheme(c)}://${where.bucket}/${where.prefix}`;
  }

  function fillBuckets() {
    const c = current();
    bucketSelect.replaceChildren(...c.buckets.map((b) => h('option', { value: b, text: b })));
    if (!c.buckets.includes(where.bucket)) where.bucket = c.buckets[0];
    bucketSelect.value = where.bucket;
    bucketSelect.disabled = c.buckets.length < 2;
  }

  function drawCrumbs() {
    const parts = where.prefix.split('/').filter(Boolean);
    const items = [h('li', {}, h('button', {
      type: 'button', class: 'link', text: where.bucket, onclick: () => open(''),
      'aria-current': parts.length ? null : 'location',
    }))];
    parts.forEach((part, index) => {
      const prefix = `${parts.slice(0, index + 1).join('/')}/`;
      items.push(h('li', {}, h('button', {
        type: 'button', class: 'link', text: part, onclick: () => open(prefix),
        'aria-current': index === parts.length - 1 ? 'location' : null,
      })));
    });
    crumbs.replaceChildren(h('ol', {}, items));
  }

  function rememberQuery() {
    const next = new URLSearchParams();
    next.set('connection', where.connection);
    next.set('bucket', where.bucket);
    if (where.prefix) next.set('prefix', where.prefix);
    replaceQuery(next);
  }

  async function open(prefix, { append = false } = {}) {
    const run = ++browseRun;
    if (!append) {
      where.prefix = prefix;
      where.cursor = null;
      drawCrumbs();
      sourceText.textContent = source();
      rememberQuery();
      listing.replaceChildren(h('p', { class: 'muted', text: 'Listing…' }));
      syncResult.replaceChildren();
      syncFeedback.replaceChildren();
    }
    moreButton.hidden = true;
    listing.setAttribute('aria-busy', 'true');
    try {
      const page = await api('GET', `/connections/${encodeURIComponent(where.connection)}/browse`, {
        query: { bucket: where.bucket, prefix: where.prefix, cursor: where.cursor, limit: BROWSE_PAGE }, signal,
      });
      if (run !== browseRun) return;
      if (!append) listing.replaceChildren();
      let folders = listing.querySelector('.folders');
      let objects = listing.querySelector('.objects tbody');
      if (page.folders.length && !folders) {
        folders = h('ul', { class: 'folders', 'aria-label': 'Folders' });
        listing.prepend(folders);
      }
      for (const f of page.folders) {
        folders.append(h('li', {}, h('button', {
          type: 'button', class: 'folder', onclick: () => open(f.prefix),
        }, h('span', { class: 'folder-icon', 'aria-hidden': 'true' }), f.name)));
      }
      if (page.objects.length && !objects) {
        const table = h('table', { class: 'table objects' },
          h('caption', { class: 'visually-hidden', text: 'Objects in this folder' }),
          h('thead', {}, h('tr', {},
            h('th', { scope: 'col', text: 'Object' }),
            h('th', { scope: 'col', class: 'num', text: 'Size' }),
            h('th', { scope: 'col', class: 'hide-narrow', text: 'Modified' }))),
          h('tbody'));
        listing.append(h('div', { class: 'table-wrap' }, table));
        objects = table.querySelector('tbody');
      }
      for (const o of page.objects) {
        objects.append(h('tr', {},
          h('td', { class: 'break', text: o.name }),
          h('td', { class: 'num', text: formatBytes(o.size) }),
          h('td', { class: 'hide-narrow', text: formatDate(o.modified) })));
      }
      if (!listing.children.length) listing.append(h('p', { class: 'muted', text: 'This folder is empty.' }));
      where.cursor = page.next_cursor;
      moreButton.hidden = !page.next_cursor;
    } catch (exc) {
      if (run === browseRun) showError(listing, exc, 'The folder could not be listed');
    } finally {
      if (run === browseRun) listing.removeAttribute('aria-busy');
    }
  }

  // -- sync, and the folders synced from this page -----------------------------------------------------
  /** For a token that may sync some connections but not browse them: the folder's address, typed. */
  function addressForm() {
    const address = h('input', { id: 'sync-address', required: true, autocomplete: 'off', spellcheck: 'false',
      placeholder: 's3://bucket/folder/', 'aria-describedby': 'sync-address-hint' });
    const filter = h('input', { id: 'sync-filter', autocomplete: 'off', spellcheck: 'false', placeholder: '\\.jpe?g$',
      'aria-describedby': 'sync-filter-hint' });
    const verifyBox = checkbox('Read each image’s header for its size (slower)', { id: 'sync-verify' });
    const conflictBox = conflictSelect('sync-conflict');
    const button = h('button', { type: 'submit', class: 'primary', text: 'Add this folder as links' });
    const form = h('form', { class: 'stack', novalidate: true },
      h('div', { class: 'field' },
        h('label', { for: 'sync-address', text: 'Folder address' }), address,
        h('p', { class: 'hint', id: 'sync-address-hint',
          text: `This token may sync the buckets of ${me.connections.join(', ')}. Browsing them needs an admin token, `
            + 'so give the folder’s address: s3://, azure://, gs:// or fs://, then the bucket and the folder.' })),
      h('div', { class: 'form-row' },
        h('div', { class: 'field grow' },
          h('label', { for: 'sync-filter', text: 'Only keys matching (optional)' }), filter,
          h('p', { class: 'hint', id: 'sync-filter-hint', text: 'A regular expression, e.g. \\.jpe?g$' })),
        h('div', { class: 'field' }, h('label', { for: 'sync-conflict', text: 'When a name is already taken' }), conflictBox)),
      verifyBox.wrap,
      h('div', { class: 'actions' }, button),
      syncFeedback,
      syncResult);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const source = address.value.trim();
      if (!source) {
        syncFeedback.replaceChildren(notice('error', 'Give the folder’s address first.'));
        address.focus();
        return;
      }
      sync({ source, filter: filter.value.trim(), verify: verifyBox.input.checked, conflict: conflictBox.value }, button);
    });
    return form;
  }

  function drawSynced() {
    const synced = readSynced(datasetId);
    if (!synced.length) {
      syncedList.replaceChildren();
      return;
    }
    syncedList.replaceChildren(h('section', { class: 'card stack', 'aria-labelledby': 'synced-title' },
      h('h2', { id: 'synced-title', text: 'Folders added in this session' }),
      h('ul', { class: 'synced-list' }, synced.map((s) => h('li', {},
        h('code', { class: 'break', text: s.source }),
        s.filter ? h('span', { class: 'muted', text: ` matching ${s.filter}` }) : null,
        h('button', {
          type: 'button', text: 'Sync again', 'aria-label': `Sync ${s.source} again`,
          onclick: (event) => sync(s, event.currentTarget),
        }))))));
  }

  async function sync(job, button) {
    syncFeedback.replaceChildren();
    await busy(button, 'Syncing…', async () => {
      try {
        const report = await api('POST', `/datasets/${datasetId}/sync`, {
          query: { conflict: job.conflict || 'rename' },
          json: { source: job.source, filter: job.filter || null, verify: Boolean(job.verify) },
        });
        syncResult.replaceChildren(h('h3', {}, 'Sync of ', h('code', { class: 'break', text: job.source })),
          ...reportView(report, { datasetId, sync: true }));
        const synced = readSynced(datasetId).filter((s) => s.source !== job.source || s.filter !== job.filter);
        synced.unshift(job);
        sessionStorage.setItem(syncedKey(datasetId), JSON.stringify(synced.slice(0, 20)));
        drawSynced();
        announce(`Synced ${job.source}: ${report.added} added, ${report.unchanged} unchanged.`, 'success');
      } catch (exc) {
        showError(syncFeedback, exc, 'The folder was not added');
      }
    });
  }

  connectionSelect.value = where.connection;
  connectionSelect.addEventListener('change', () => {
    where.connection = connectionSelect.value;
    fillBuckets();
    open('');
  });
  bucketSelect.addEventListener('change', () => {
    where.bucket = bucketSelect.value;
    open('');
  });
  moreButton.addEventListener('click', () => open(where.prefix, { append: true }));
  syncButton.addEventListener('click', (event) => sync({
    source: source(), filter: filterInput.value.trim(), verify: syncVerify.input.checked, conflict: syncConflict.value,
  }, event.currentTarget));

  fillBuckets();
  drawSynced();
  await open(where.prefix);
  return () => {};
}
