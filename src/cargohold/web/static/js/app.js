// The single-page app: hash routes (#/datasets/3), sign-in state, navigation.
import { forget, may, remember, whoami } from './access.js';
import { onUnauthorized, session } from './api.js';
import { h } from './dom.js';
import { announce, showError } from './ui.js';
import * as cache from './views/cache.js';
import * as connectionForm from './views/connection-form.js';
import * as connections from './views/connections.js';
import * as dataset from './views/dataset.js';
import * as datasets from './views/datasets.js';
import * as item from './views/item.js';
import * as links from './views/links.js';
import * as signin from './views/signin.js';
import * as storage from './views/storage.js';
import * as tokens from './views/tokens.js';
import * as upload from './views/upload.js';

const ROUTES = [
  [/^\/signin$/, signin, null],
  [/^\/datasets$/, datasets, 'datasets'],
  [/^\/datasets\/(\d+)$/, dataset, 'datasets'],
  [/^\/datasets\/(\d+)\/upload$/, upload, 'datasets'],
  [/^\/datasets\/(\d+)\/links$/, links, 'datasets'],
  [/^\/items\/(\d+)$/, item, 'datasets'],
  [/^\/settings\/storage$/, storage, 'storage'],
  [/^\/settings\/connections$/, connections, 'connections'],
  [/^\/settings\/connections\/new$/, connectionForm, 'connections'],
  [/^\/settings\/connections\/([A-Za-z0-9][A-Za-z0-9._-]{0,127})\/edit$/, connectionForm, 'connections'],
  [/^\/settings\/cache$/, cache, 'cache'],
  [/^\/settings\/tokens$/, tokens, 'tokens'],
];

const state = {
  cleanup: null,
  path: null,
  controller: null,
  /** Where to go after signing in (the page a 401 or a missing token interrupted). */
  returnTo: '#/datasets',
  /** A message for the sign-in page (why the user is there). */
  signInMessage: null,
};

export function parseHash(hash = window.location.hash) {
  const raw = hash.replace(/^#/, '') || '/';
  const [path, search = ''] = raw.split('?');
  return { path: path || '/', query: new URLSearchParams(search) };
}

export function navigate(hash) {
  if (window.location.hash === hash) render();
  else window.location.hash = hash;
}

/** Change the hash's query (a filter, a folder) without re-rendering the page. */
export function replaceQuery(query) {
  const { path } = parseHash();
  const search = query.toString();
  window.history.replaceState(null, '', `#${path}${search ? `?${search}` : ''}`);
}

function setSignedIn(signedIn) {
  document.getElementById('main-nav').hidden = !signedIn;
  document.getElementById('menu-toggle').hidden = !signedIn;
  document.body.classList.toggle('signed-in', signedIn);
}

/** The navigation entries a token of this role may use: the Settings ones are for admin tokens (hidden until /me says so). */
function showAllowed(me) {
  for (const entry of document.querySelectorAll('#main-nav [data-needs]')) entry.hidden = !may(me, entry.dataset.needs);
}

function setMenu(open) {
  const toggle = document.getElementById('menu-toggle');
  toggle.setAttribute('aria-expanded', String(open));
  document.querySelector('.topbar').classList.toggle('menu-open', open);
}

function markSection(section) {
  for (const link of document.querySelectorAll('#main-nav a[data-section]')) {
    if (link.dataset.section === section) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

async function render() {
  const { path, query } = parseHash();
  if (state.cleanup) {
    try {
      state.cleanup();
    } catch (exc) {
      console.error(exc);
    }
    state.cleanup = null;
  }
  if (state.controller) state.controller.abort();
  state.controller = new AbortController();
  setMenu(false);

  if (!session.token && path !== '/signin') {
    if (path !== '/') state.returnTo = `#${path}${query.toString() ? `?${query}` : ''}`;
    window.location.replace('#/signin');
    return;
  }
  if (session.token && (path === '/' || path === '/signin')) {
    window.location.replace('#/datasets');
    return;
  }
  setSignedIn(Boolean(session.token));

  const main = document.getElementById('main');
  const { controller } = state;
  let me = null;
  if (session.token) {
    try {
      me = await whoami();
    } catch (exc) {
      if (controller !== state.controller) return;
      const failed = h('div', { class: 'view' });
      main.replaceChildren(failed);
      showError(failed, exc, 'What this token may use could not be read');
      return;
    }
    if (controller !== state.controller) return;  // another page was asked for meanwhile
  }
  showAllowed(me);
  if (path !== state.path) window.scrollTo(0, 0);
  state.path = path;
  const root = h('div', { class: 'view' });
  main.replaceChildren(root);
  const match = ROUTES.find(([pattern]) => pattern.test(path));
  if (!match) {
    markSection(null);
    root.append(h('h1', { tabindex: '-1', text: 'Page not found' }),
      h('p', {}, 'There is no page at this address. ', h('a', { href: '#/datasets', text: 'Go to the datasets.' })));
    focusHeading(root);
    return;
  }
  const [pattern, view, section] = match;
  markSection(section);
  const params = path.match(pattern).slice(1).map(decodeURIComponent);
  const context = {
    params, query, signal: state.controller.signal, navigate, replaceQuery, me,
    signIn: (token, answer) => {
      session.signIn(token);
      if (answer) remember(token, answer);
      const target = state.returnTo;
      state.returnTo = '#/datasets';
      navigate(target);
    },
    takeSignInMessage: () => {
      const message = state.signInMessage;
      state.signInMessage = null;
      return message;
    },
  };
  try {
    const cleanup = view.render(root, context);
    focusHeading(root);
    const done = await cleanup;
    if (typeof done === 'function') {
      if (root.isConnected) state.cleanup = done;
      else done();
    }
  } catch (exc) {
    if (root.isConnected) showError(root, exc);
  }
}

function focusHeading(root) {
  const heading = root.querySelector('h1');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: true });
  }
}

function signOut(message) {
  session.signOut();
  forget();
  showAllowed(null);
  state.signInMessage = message;
  setSignedIn(false);
  navigate('#/signin');
}

onUnauthorized((message) => {
  const { path, query } = parseHash();
  if (path !== '/signin') state.returnTo = `#${path}${query.toString() ? `?${query}` : ''}`;
  signOut({ kind: 'error', text: `The server refused the token: ${message}. Sign in again.` });
});

document.getElementById('sign-out').addEventListener('click', () => {
  state.returnTo = '#/datasets';
  signOut({ kind: 'info', text: 'You are signed out. The token was removed from this browser tab.' });
  announce('Signed out.');
});
document.getElementById('menu-toggle').addEventListener('click', () => {
  const open = document.getElementById('menu-toggle').getAttribute('aria-expanded') !== 'true';
  setMenu(open);
});
document.getElementById('skip-link').addEventListener('click', () => {
  const heading = document.querySelector('#main h1');
  (heading || document.getElementById('main')).focus();
});
document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && document.querySelector('.topbar.menu-open')) {
    setMenu(false);
    document.getElementById('menu-toggle').focus();
  }
});
window.addEventListener('hashchange', render);
window.addEventListener('unhandledrejection', (event) => {
  const error = event.reason;
  if (error && (error.name === 'AbortError' || error.handled)) return;
  showError(null, error);
});
render();
