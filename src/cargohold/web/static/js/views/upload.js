// Upload from this computer: drop or pick files; one request per file, three at a time, each with its
// own progress bar and the total; the conflict policy; the API's error message per file.
import { may } from '../access.js';
import { api, uploadFile } from '../api.js';
import { formatBytes, h, notice, pageHeader, plural } from '../dom.js';
import { announce, messageOf, showError } from '../ui.js';

const PARALLEL = 3;
const STATUS_TEXT = { created: 'Uploaded', renamed: 'Uploaded as', replaced: 'Replaced', skipped: 'Skipped: name taken' };

export async function render(root, { params, signal, me }) {
  const datasetId = params[0];
  const header = pageHeader('Upload files', {
    crumbs: [['Datasets', '#/datasets'], ['…', `#/datasets/${datasetId}`], ['Upload']],
  });
  const feedback = h('div', { class: 'feedback' });
  if (!may(me, 'write')) {
    root.append(header, notice('warning', h('strong', { text: 'Read only. ' }),
      `Uploading needs a write or admin token; you are signed in with a ${me.role} token.`));
    return () => {};
  }

  const conflict = h('select', { id: 'conflict', name: 'conflict', 'aria-describedby': 'conflict-hint' },
    h('option', { value: 'rename', text: 'Keep both: rename the new file' }),
    h('option', { value: 'skip', text: 'Skip the new file' }),
    h('option', { value: 'replace', text: 'Replace the existing item' }));
  const picker = h('input', { id: 'files', type: 'file', multiple: true, 'aria-describedby': 'drop-hint' });
  const drop = h('div', { class: 'dropzone', id: 'dropzone' },
    h('p', { class: 'drop-title', text: 'Drop files here' }),
    h('p', { class: 'muted', id: 'drop-hint', text: 'or choose them; uploads start at once, three at a time.' }),
    h('div', { class: 'field' }, h('label', { for: 'files', text: 'Choose files' }), picker));
  const options = h('div', { class: 'card upload-options' },
    h('div', { class: 'field' },
      h('label', { for: 'conflict', text: 'When a name is already taken' }),
      conflict,
      h('p', { class: 'hint', id: 'conflict-hint', text: 'Applies to the files you add from now on.' })),
    drop);

  const totalBar = h('progress', { id: 'total-progress', max: '1', value: '0', 'aria-labelledby': 'total-label' });
  const totalText = h('span', { class: 'muted', id: 'total-text', text: 'No files yet.' });
  const total = h('div', { class: 'total card', hidden: true },
    h('div', { class: 'total-head' }, h('span', { id: 'total-label', class: 'strong', text: 'Total' }), totalText),
    totalBar);
  const list = h('ul', { class: 'upload-list', 'aria-label': 'Files' });
  const back = h('p', { class: 'after-upload', hidden: true },
    h('a', { class: 'button', href: `#/datasets/${datasetId}`, text: 'Back to the dataset' }));
  root.append(header, feedback, options, total, list, back);

  api('GET', `/datasets/${datasetId}`, { signal }).then((d) => {
    header.querySelector('.crumbs li:nth-child(2) a').textContent = d.name;
    header.querySelector('h1').textContent = `Upload files to ${d.name}`;
  }, (exc) => showError(feedback, exc, 'The dataset could not be opened'));

  // -- the queue -------------------------------------------------------------------------------------
  const jobs = [];
  let running = 0;

  function refreshTotal() {
    const bytes = jobs.reduce((n, j) => n + j.file.size, 0);
    const sent = jobs.reduce((n, j) => n + (j.finished ? j.file.size : j.loaded), 0);
    const finished = jobs.filter((j) => j.finished).length;
    const failed = jobs.filter((j) => j.failed).length;
    totalBar.max = Math.max(bytes, 1);
    totalBar.value = jobs.length && finished === jobs.length ? totalBar.max : sent;
    totalText.textContent = `${finished} of ${plural(jobs.length, 'file')} done`
      + `${failed ? ` (${failed} failed)` : ''} · ${formatBytes(sent)} of ${formatBytes(bytes)}`;
    total.hidden = jobs.length === 0;
    back.hidden = !(jobs.length && finished === jobs.length);
  }

  function setStatus(job, kind, ...content) {
    job.row.classList.remove('waiting', 'active', 'done', 'error');
    job.row.classList.add(kind);
    job.status.replaceChildren(...content);
  }

  function run(job) {
    running += 1;
    setStatus(job, 'active', 'Uploading…');
    const upload = uploadFile(datasetId, job.file, job.conflict, (loaded, size) => {
      job.loaded = Math.min(job.file.size, Math.round(loaded * (job.file.size / Math.max(size, 1))));
      job.bar.max = Math.max(size, 1);
      job.bar.value = loaded;
      setStatus(job, 'active', `${Math.floor((loaded / Math.max(size, 1)) * 100)}%`);
      refreshTotal();
    });
    upload.promise.then((result) => {
      job.bar.value = job.bar.max;
      const label = STATUS_TEXT[result.status] || result.status;
      const link = result.item ? h('a', { href: `#/items/${result.item.id}`, text: result.item.name }) : null;
      if (result.status === 'skipped') setStatus(job, 'done', label, link ? ' (' : '', link, link ? ')' : '');
      else setStatus(job, 'done', `${label} `, link);
      job.row.dataset.status = result.status;
    }, (exc) => {
      job.failed = true;
      job.row.dataset.status = 'error';
      setStatus(job, 'error', h('span', { class: 'error-text', text: messageOf(exc) }));
    }).finally(() => {
      job.finished = true;
      running -= 1;
      refreshTotal();
      next();
      if (jobs.every((j) => j.finished)) {
        const failed = jobs.filter((j) => j.failed).length;
        announce(failed ? `Uploads finished: ${failed} of ${plural(jobs.length, 'file')} failed.`
          : `Uploaded ${plural(jobs.length, 'file')}.`, failed ? 'error' : 'success');
        window.removeEventListener('beforeunload', warnBeforeLeaving);
      }
    });
  }

  function next() {
    while (running < PARALLEL) {
      const job = jobs.find((j) => !j.started);
      if (!job) return;
      job.started = true;
      run(job);
    }
  }

  function warnBeforeLeaving(event) {
    event.preventDefault();
  }

  function add(files) {
    const added = [...files];
    if (!added.length) return;
    for (const file of added) {
      const bar = h('progress', { max: String(Math.max(file.size, 1)), value: '0', 'aria-label': `Upload of ${file.name}` });
      const status = h('span', { class: 'upload-status', text: 'Waiting' });
      const row = h('li', { class: 'upload-row waiting', dataset: { name: file.name } },
        h('span', { class: 'upload-name', title: file.name, text: file.name }),
        h('span', { class: 'upload-size muted', text: formatBytes(file.size) }),
        bar, status);
      list.append(row);
      jobs.push({ file, row, bar, status, conflict: conflict.value, loaded: 0, started: false, finished: false, failed: false });
    }
    window.addEventListener('beforeunload', warnBeforeLeaving);
    announce(`${plural(added.length, 'file')} added to the uploads.`);
    refreshTotal();
    next();
  }

  picker.addEventListener('change', () => {
    add(picker.files);
    picker.value = '';
  });
  for (const type of ['dragenter', 'dragover']) {
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add('over');
    });
  }
  for (const type of ['dragleave', 'drop']) {
    drop.addEventListener(type, () => drop.classList.remove('over'));
  }
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    if (event.dataTransfer) add(event.dataTransfer.files);
  });

  // Uploads go on if the user opens another page; only closing the tab is warned about.
  return () => {};
}
