// Small DOM helpers. Everything that comes from the server is put in the page as text (textContent),
// never as HTML, so a file name cannot inject markup. No inline styles: the CSP forbids them.

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * h('a', {href: '#/x', class: 'link', onclick: fn}, 'text', child, [more]) -> Element.
 * Props: class, text, dataset {}, on<event> functions, boolean attributes (true/false), others as attributes.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'value') el.value = value;
    else if (key === 'checked' || key === 'selected' || key === 'disabled' || key === 'hidden' || key === 'multiple'
             || key === 'required' || key === 'open') el[key] = Boolean(value);
    else if (key === 'style') throw new Error('inline styles are not allowed (CSP)');
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

let ids = 0;
export function uid(prefix = 'f') {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** A labelled form field: returns {wrap, input}. `control` is 'input', 'select' or 'textarea'. */
export function field(label, props = {}, { control = 'input', hint, options } = {}) {
  const id = props.id || uid('field');
  const hintId = hint ? `${id}-hint` : undefined;
  const input = h(control, { ...props, id, 'aria-describedby': hintId });
  if (options) {
    for (const [value, text] of options) input.append(h('option', { value, text }));
    if (props.value !== undefined) input.value = props.value;
  }
  const wrap = h('div', { class: 'field' },
    h('label', { for: id, text: label }),
    input,
    hint ? h('p', { class: 'hint', id: hintId, text: hint }) : null);
  return { wrap, input, hintEl: hint ? wrap.querySelector('.hint') : null };
}

/** A checkbox with its label after it. */
export function checkbox(label, props = {}) {
  const id = props.id || uid('check');
  const input = h('input', { ...props, id, type: 'checkbox' });
  const wrap = h('div', { class: 'field check' }, input, h('label', { for: id, text: label }));
  return { wrap, input };
}

// Powers of 1024, as the server's settings write sizes (CACHE_STORAGE_SIZE=10g is 10 GiB).
const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
export function formatBytes(n) {
  if (n === null || n === undefined) return 'unknown size';
  if (n < 1024) return `${n} B`;
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = value >= 100 || Number.isInteger(value) ? 0 : 1;
  return `${value.toFixed(digits)} ${UNITS[unit]}`;
}

export function formatCount(n) {
  return new Intl.NumberFormat().format(n);
}

export function plural(n, one, many = `${one}s`) {
  return `${formatCount(n)} ${n === 1 ? one : many}`;
}

export function formatDate(value) {
  if (!value) return '';
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

export function dimensions(item) {
  return item.width && item.height ? `${item.width} × ${item.height}` : '';
}

/** Whether the item has a picture to show in the grid: an image, or a probed video (its poster). */
export function hasPreview(item) {
  return item.kind === 'image' || (item.kind === 'video' && Boolean(item.video));
}

/** A video's duration as m:ss (h:mm:ss past an hour); '' when unknown. */
export function videoDuration(item) {
  const seconds = item.video && item.video.duration;
  if (!seconds && seconds !== 0) return '';
  const whole = Math.round(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = String(whole % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** An inline SVG document icon with a short label (the file extension or kind). */
export function fileIcon(label) {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 48 56');
  svg.setAttribute('class', 'file-icon');
  svg.setAttribute('aria-hidden', 'true');
  const page = document.createElementNS(SVG_NS, 'path');
  page.setAttribute('d', 'M6 2h26l14 14v36a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2z');
  page.setAttribute('class', 'file-icon-page');
  const fold = document.createElementNS(SVG_NS, 'path');
  fold.setAttribute('d', 'M32 2v12a2 2 0 0 0 2 2h12');
  fold.setAttribute('class', 'file-icon-fold');
  const text = document.createElementNS(SVG_NS, 'text');
  text.setAttribute('x', '24');
  text.setAttribute('y', '42');
  text.setAttribute('text-anchor', 'middle');
  text.setAttribute('class', 'file-icon-text');
  text.textContent = (label || 'file').slice(0, 5).toUpperCase();
  svg.append(page, fold, text);
  return svg;
}

export function extensionOf(name) {
  const base = String(name).split('/').pop();
  const dot = base.lastIndexOf('.');
  return dot > 0 && dot < base.length - 1 ? base.slice(dot + 1) : '';
}

/** A notice box; kind is 'error' (role=alert), 'warning', 'info' or 'success'. */
export function notice(kind, ...children) {
  return h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : null }, ...children);
}

export function debounce(fn, ms) {
  let timer = 0;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}

/** The heading and breadcrumb every page starts with. */
export function pageHeader(title, { crumbs = [], actions = [], subtitle } = {}) {
  const nav = crumbs.length
    ? h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
      h('ol', {}, crumbs.map(([text, href]) => h('li', {}, href ? h('a', { href, text }) : h('span', { text })))))
    : null;
  return h('div', { class: 'page-header' },
    nav,
    h('div', { class: 'page-title' },
      h('div', {},
        h('h1', { tabindex: '-1', text: title }),
        subtitle ? h('p', { class: 'subtitle', text: subtitle }) : null),
      actions.length ? h('div', { class: 'actions' }, actions) : null));
}
