// Datasets: the list with item counts and sizes; create; delete (after a confirmation dialog).
import { limited, may } from '../access.js';
import { api } from '../api.js';
import { formatBytes, formatCount, formatDate, h, notice, pageHeader, plural } from '../dom.js';
import { announce, busy, confirmAction, showError } from '../ui.js';

export async function render(root, { signal, me }) {
  const writes = may(me, 'write');
  const feedback = h('div', { class: 'feedback' });
  const nameInput = h('input', {
    id: 'new-dataset', name: 'name', required: true, maxlength: '200', autocomplete: 'off',
    placeholder: 'e.g. cars-2024', 'aria-describedby': 'new-dataset-hint',
  });
  const create = h('button', { type: 'submit', class: 'primary', text: 'Create dataset' });
  const form = h('form', { class: 'inline-form card', 'aria-label': 'Create a dataset' },
    h('div', { class: 'field grow' },
      h('label', { for: 'new-dataset', text: 'New dataset' }),
      nameInput,
      h('p', { class: 'hint', id: 'new-dataset-hint', text: 'A name for a set of images and files, unique here.' })),
    create);
  // A read token changes nothing; a token limited to some datasets cannot make another (the server says 403).
  form.hidden = !writes || limited(me);
  const list = h('div', { class: 'dataset-list', 'aria-busy': 'true' }, h('p', { class: 'muted', text: 'Loading…' }));
  root.append(pageHeader('Datasets', { subtitle: 'Images and files, stored here or linked from buckets.' }),
    form, feedback, list);

  let datasets = [];

  function draw() {
    list.removeAttribute('aria-busy');
    if (!datasets.length) {
      list.replaceChildren(h('div', { class: 'empty' },
        h('p', { class: 'empty-title', text: 'No datasets yet' }),
        h('p', { class: 'muted', text: form.hidden ? 'This token reaches no dataset yet.'
          : 'Create one above, then upload images or import links into it.' })));
      return;
    }
    const rows = datasets.map((d) => h('tr', { dataset: { id: String(d.id) } },
      h('th', { scope: 'row' }, h('a', { href: `#/datasets/${d.id}`, class: 'dataset-name', text: d.name })),
      h('td', { class: 'num', text: formatCount(d.item_count) }),
      h('td', { class: 'num', text: formatBytes(d.total_size) }),
      h('td', { class: 'hide-narrow', text: formatDate(d.created_at) }),
      h('td', { class: 'row-actions' },
        writes ? h('button', {
          type: 'button', class: 'danger subtle', text: 'Delete',
          'aria-label': `Delete dataset ${d.name}`, onclick: (event) => remove(d, event.currentTarget),
        }) : null)));
    list.replaceChildren(h('table', { class: 'table datasets-table' },
      h('caption', { class: 'visually-hidden', text: 'Datasets' }),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col', text: 'Name' }),
        h('th', { scope: 'col', class: 'num', text: 'Items' }),
        h('th', { scope: 'col', class: 'num', text: 'Size' }),
        h('th', { scope: 'col', class: 'hide-narrow', text: 'Created' }),
        h('th', { scope: 'col' }, h('span', { class: 'visually-hidden', text: 'Actions' })))),
      h('tbody', {}, rows)));
  }

  async function load() {
    try {
      const answer = await api('GET', '/datasets', { signal });
      datasets = answer.datasets;
      draw();
    } catch (exc) {
      list.removeAttribute('aria-busy');
      showError(list, exc, 'The datasets could not be listed');
    }
  }

  async function remove(d, button) {
    const confirmed = await confirmAction({
      title: `Delete dataset “${d.name}”?`,
      message: `Its ${plural(d.item_count, 'item')} (${formatBytes(d.total_size)}) leave the catalog. Linked files stay `
        + 'where they are; stored bytes no other item uses are left for cargohold gc. This cannot be undone.',
      confirmLabel: 'Delete dataset',
    });
    if (!confirmed) {
      button.focus();
      return;
    }
    await busy(button, 'Deleting…', async () => {
      try {
        await api('DELETE', `/datasets/${d.id}`);
        datasets = datasets.filter((x) => x.id !== d.id);
        draw();
        feedback.replaceChildren();
        announce(`Deleted dataset ${d.name}.`, 'success');
        nameInput.focus();
      } catch (exc) {
        showError(feedback, exc, `Dataset ${d.name} was not deleted`);
      }
    });
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const name = nameInput.value.trim();
    if (!name) {
      feedback.replaceChildren(notice('error', 'Give the dataset a name.'));
      nameInput.focus();
      return;
    }
    await busy(create, 'Creating…', async () => {
      try {
        const created = await api('POST', '/datasets', { json: { name } });
        datasets = [...datasets.filter((d) => d.id !== created.id), created];
        datasets.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        draw();
        nameInput.value = '';
        feedback.replaceChildren(notice('success', 'Created dataset ',
          h('a', { href: `#/datasets/${created.id}`, text: created.name }), '.'));
        announce(`Created dataset ${created.name}.`, 'success');
      } catch (exc) {
        showError(feedback, exc, 'The dataset was not created');
      }
    });
  });

  await load();
}
