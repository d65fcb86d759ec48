// One item: the image at full size (converted to JPEG when the browser cannot show its type),
// its metadata, its source, and a download through a signed URL.
import { api, signContent } from '../api.js';
import { dimensions, extensionOf, fileIcon, formatBytes, formatCount, formatDate, h, notice, pageHeader } from '../dom.js';
import { announce, busy, showError } from '../ui.js';

function row(label, value, { mono = false, id } = {}) {
  if (value === null || value === undefined || value === '') return null;
  return [h('dt', { text: label }), h('dd', { class: mono ? 'mono' : null, id }, value)];
}

export async function render(root, { params, signal }) {
  const itemId = params[0];
  const header = pageHeader('Item', { crumbs: [['Datasets', '#/datasets'], ['…', '#/datasets'], ['…']] });
  const feedback = h('div', { class: 'feedback' });
  const viewer = h('figure', { class: 'viewer', 'aria-busy': 'true' }, h('p', { class: 'muted', text: 'Loading…' }));
  const details = h('aside', { class: 'details card', 'aria-label': 'Item details' });
  root.append(header, feedback, h('div', { class: 'item-layout' }, viewer, details));

  let item;
  try {
    item = await api('GET', `/items/${itemId}`, { signal });
  } catch (exc) {
    viewer.replaceChildren();
    viewer.removeAttribute('aria-busy');
    showError(feedback, exc, 'The item could not be opened');
    return;
  }
  const title = header.querySelector('h1');
  title.textContent = item.name;
  document.title = `${item.name} · cargohold`;
  const crumbs = header.querySelectorAll('.crumbs li');
  const datasetLink = crumbs[1].querySelector('a');
  datasetLink.href = `#/datasets/${item.dataset_id}`;
  datasetLink.textContent = `Dataset ${item.dataset_id}`;
  crumbs[2].querySelector('span').textContent = item.name;
  api('GET', `/datasets/${item.dataset_id}`, { signal }).then((d) => {
    datasetLink.textContent = d.name;
  }, () => {});

  // -- the details -----------------------------------------------------------------------------------
  const linked = item.source === 'link';
  const downloadButton = h('button', { type: 'button', class: 'primary', text: 'Download' });
  const fit = h('button', { type: 'button', 'aria-pressed': 'true', text: 'Fit to window', hidden: item.kind !== 'image' });
  details.append(
    h('h2', { text: 'Details' }),
    h('dl', { class: 'facts' },
      row('Name', item.name, { id: 'item-name' }),
      row('Size', `${formatBytes(item.size)}${item.size !== null ? ` (${formatCount(item.size)} bytes)` : ''}`),
      row('Type', item.mime_type ? `${item.mime_type} (${item.kind})` : item.kind),
      row('Dimensions', dimensions(item) || 'unknown'),
      row('SHA-256', item.sha256, { mono: true }),
      row('ETag', item.etag, { mono: true }),
      row('Created', formatDate(item.created_at)),
      row('Source', h('span', {},
        h('span', { class: `badge ${linked ? 'linked' : 'stored'}`, text: linked ? 'linked' : 'stored' }),
        linked ? h('span', { class: 'mono source-uri', text: ` ${item.uri}` }) : null), { id: 'item-source' })),
    h('div', { class: 'actions' }, downloadButton, fit));

  downloadButton.addEventListener('click', () => busy(downloadButton, 'Preparing…', async () => {
    try {
      const url = await signContent(item.id);
      const link = h('a', { href: url, download: item.name.split('/').pop() || 'download', hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      announce(`Downloading ${item.name}.`);
    } catch (exc) {
      showError(feedback, exc, 'The download could not start');
    }
  }));

  // -- the image -------------------------------------------------------------------------------------
  viewer.removeAttribute('aria-busy');
  if (item.kind !== 'image') {
    viewer.classList.add('no-image');
    viewer.replaceChildren(fileIcon(extensionOf(item.name) || item.kind),
      h('figcaption', { class: 'muted', text: `A ${item.kind} has no image view; use Download.` }));
    return;
  }
  const convert = !item.browser_shows;  // the server's list (media/convert.py), not a copy of it
  let url;
  try {
    url = await signContent(item.id, convert ? 'jpeg' : undefined);
  } catch (exc) {
    viewer.replaceChildren();
    showError(feedback, exc, 'The image could not be signed');
    return;
  }
  const img = h('img', { id: 'full-image', alt: item.name, class: 'full fit' });
  if (item.width && item.height) {
    img.width = item.width;
    img.height = item.height;
  }
  const caption = h('figcaption', { class: 'muted' },
    convert ? `Shown converted to JPEG: this browser cannot show ${item.mime_type || 'this type'}. Download gives the original.`
      : `Full size${item.width ? `, ${item.width} × ${item.height} pixels` : ''}${linked ? ', read through the storage cache' : ''}.`);
  const frame = h('div', { class: 'image-frame' }, img);
  viewer.replaceChildren(frame, caption);
  img.addEventListener('error', () => {
    frame.replaceChildren(notice('error', 'The image could not be loaded: the server could not read or convert it, '
      + 'or the remote that holds it did not answer. Download may still work.'));
  }, { once: true });
  img.src = url;
  fit.addEventListener('click', () => {
    const fitted = img.classList.toggle('fit');
    fit.setAttribute('aria-pressed', String(fitted));
    frame.classList.toggle('actual', !fitted);
  });
  return () => {
    document.title = 'cargohold';
  };
}
