// One item: the image at full size (converted to JPEG when the browser cannot show its type),
// its metadata, its source, and a download through a signed URL.
import { api, signContent, signFrame, signPreview } from '../api.js';
import {
  dimensions, extensionOf, fileIcon, formatBytes, formatCount, formatDate, h, notice, pageHeader, videoDuration,
} from '../dom.js';
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
      ...videoRows(item.video),
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
  if (item.kind === 'video' && item.video) return showVideo(item, viewer, feedback);
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

function videoRows(video) {
  if (!video) return [];
  const rate = video.frame_rate ? `${Number(video.frame_rate.toFixed(3))} fps` : '';
  const nominal = video.nominal_frame_rate && video.frame_rate
    && Math.abs(video.nominal_frame_rate - video.frame_rate) > 0.01 ? ` (nominal ${Number(video.nominal_frame_rate.toFixed(3))})` : '';
  return [
    row('Duration', videoDuration({ video }), { id: 'video-duration' }),
    row('Frame rate', rate + nominal),
    row('Frames', video.frame_count !== null ? `${formatCount(video.frame_count)}${video.frame_count_from === 'counted' ? ' (counted)' : ''}` : ''),
    row('Codec', [video.codec, video.pixel_format].filter(Boolean).join(', ')),
    row('Bit rate', video.bit_rate ? `${formatCount(Math.round(video.bit_rate / 1000))} kbit/s` : ''),
    row('Audio', video.audio_codec || 'none'),
    row('Rotation', video.rotation ? `${video.rotation}°` : ''),
  ].flat().filter(Boolean);
}

// A video: the original played in the page (the browser decodes it, or says it cannot), and its exact frames
// from the server (the frames route), stepped with the arrow keys.
function showVideo(item, viewer, feedback) {
  const video = item.video;
  const count = video.frame_count || 0;
  const fps = video.frame_rate || 25;
  const player = h('video', { id: 'player', controls: '', preload: 'metadata', muted: '', playsinline: '' });
  const note = h('figcaption', { class: 'muted', id: 'player-note', text: 'The original, played by this browser.' });
  const frameImage = h('img', { id: 'frame-image', alt: `${item.name}, one frame`, class: 'full fit', hidden: true });
  const status = h('p', { id: 'frame-status', class: 'frame-status', 'aria-live': 'polite', text: '' });
  const previous = h('button', { type: 'button', text: '◀ Previous frame' });
  const next = h('button', { type: 'button', text: 'Next frame ▶' });
  let current = -1;
  let asked = 0;

  async function show(n) {
    if (!count) return;
    current = Math.max(0, Math.min(count - 1, n));
    const mine = ++asked;
    player.pause();
    status.textContent = `Frame ${formatCount(current)} of ${formatCount(count)} · about ${(current / fps).toFixed(2)} s`;
    try {
      const url = await signFrame(item.id, current);
      if (mine !== asked) return;
      frameImage.hidden = false;
      frameImage.dataset.frame = String(current);
      frameImage.src = url;
    } catch (exc) {
      showError(feedback, exc, 'The frame could not be signed');
    }
  }
  previous.addEventListener('click', () => show(current < 0 ? frameAt() : current - 1));
  next.addEventListener('click', () => show(current < 0 ? frameAt() : current + 1));
  function frameAt() {
    return Math.round((player.currentTime || 0) * fps);
  }
  function onKey(event) {
    if (!document.body.contains(viewer)) {
      document.removeEventListener('keydown', onKey);
      return;
    }
    if (event.target.closest && event.target.closest('input, textarea, select')) return;
    if (event.key === 'ArrowRight') {
      event.preventDefault();
      show(current < 0 ? frameAt() + 1 : current + 1);
    } else if (event.key === 'ArrowLeft') {
      event.preventDefault();
      show(current < 0 ? frameAt() - 1 : current - 1);
    }
  }
  document.addEventListener('keydown', onKey);
  let converted = false;
  player.addEventListener('error', () => {
    if (converted) {
      note.textContent = 'Even the converted copy does not play here: step through the exact frames below.';
      return;
    }
    converted = true;
    prepare();
  });
  // What the browser cannot play is converted by the server (?format=mp4: H.264/AAC), which answers 202 with its
  // progress until the copy is ready.
  async function prepare() {
    note.textContent = `This browser cannot play ${video.codec || 'this video'} in ${item.mime_type || 'this container'}: `
      + 'preparing for playback…';
    try {
      const url = await signContent(item.id, 'mp4');
      for (;;) {
        const answer = await fetch(url, { headers: { Range: 'bytes=0-0' } });
        if (answer.status === 202) {
          const body = await answer.json();
          note.textContent = `Preparing for playback: ${Math.round(((body.error && body.error.progress) || 0) * 100)}%`;
          const wait = Number(answer.headers.get('Retry-After')) || 1;
          await new Promise((resolve) => { setTimeout(resolve, Math.min(wait, 2) * 1000); });
          if (!document.body.contains(viewer)) return;
          continue;
        }
        if (!answer.ok) throw new Error(`the server answered ${answer.status}`);
        note.textContent = 'Converted for playback (H.264): Download gives the original.';
        player.src = url;
        return;
      }
    } catch (exc) {
      note.textContent = 'This video could not be prepared for playback: step through its exact frames below.';
      showError(feedback, exc, 'The video could not be converted');
    }
  }
  viewer.replaceChildren(player, note,
    h('div', { class: 'frame-step' }, previous, next, status), h('div', { class: 'image-frame' }, frameImage));
  player.muted = true;
  signPreview(item.id, { w: 1024, h: 1024, fit: 'contain', format: 'webp', q: 80 }).then((url) => {
    player.poster = url;
  }, () => {});
  signContent(item.id).then((url) => {
    player.src = url;
  }, (exc) => showError(feedback, exc, 'The video could not be signed'));
  status.textContent = count ? `${formatCount(count)} frames: ← and → step through them exactly.` : '';
  return () => {
    document.removeEventListener('keydown', onKey);
    document.title = 'cargohold';
  };
}
