// Page-wide pieces: the status region (aria-live), the confirmation dialog, error display.
import { h, notice } from './dom.js';

let hideTimer = 0;

/**
 * A short message in the status region (aria-live: read out by screen readers, which is why the region
 * itself always stays in the page); errors stay until replaced, the rest fade after 6 s.
 */
export function announce(message, kind = 'info') {
  const region = document.getElementById('status');
  if (!region) return;
  clearTimeout(hideTimer);
  region.replaceChildren(h('p', { class: `toast ${kind}`, text: message }));
  if (kind !== 'error') hideTimer = setTimeout(() => region.replaceChildren(), 6000);
}

/** The message to show for anything a call threw. */
export function messageOf(error) {
  if (!error) return 'Something went wrong.';
  if (error.name === 'ApiError') return error.message;
  return `Something went wrong in this page: ${error.message || error}`;
}

/**
 * What a page for admin tokens shows another token (`me` from GET /me), instead of asking what it would be
 * refused. `what` is the subject of the sentence: “The storage settings”.
 */
export function adminOnly(what, me) {
  const role = me && me.role ? `a ${me.role} token` : 'not an admin token';
  return notice('warning', h('strong', { text: 'Admin only. ' }),
    `${what} need an admin token; you are signed in with ${role}.`);
}

/**
 * Put an error in `where` (a container, emptied first) as a role=alert notice.
 * A 401 already sent the user to the sign-in page, so it is not shown again. AbortErrors are ignored.
 */
export function showError(where, error, prefix = '') {
  if (!error || error.name === 'AbortError' || error.handled) return;
  const text = prefix ? `${prefix}: ${messageOf(error)}` : messageOf(error);
  if (where) where.replaceChildren(notice('error', text));
  else announce(text, 'error');
}

/**
 * Ask before something that cannot be undone, in a modal <dialog> (focus stays inside it; Escape cancels).
 * Resolves true when confirmed.
 */
export function confirmAction({ title, message, confirmLabel = 'Delete', danger = true }) {
  const dialog = document.getElementById('confirm');
  const heading = dialog.querySelector('#confirm-title');
  const body = dialog.querySelector('#confirm-message');
  const ok = dialog.querySelector('#confirm-ok');
  const cancel = dialog.querySelector('#confirm-cancel');
  heading.textContent = title;
  body.textContent = message;
  ok.textContent = confirmLabel;
  ok.className = danger ? 'danger' : 'primary';
  return new Promise((resolve) => {
    const closed = () => {
      dialog.removeEventListener('close', closed);
      resolve(dialog.returnValue === 'confirm');
    };
    dialog.returnValue = '';
    dialog.addEventListener('close', closed);
    dialog.showModal();
    cancel.focus();
  });
}

/** Disable a button while `work` runs, with a busy label; returns what work returns. */
export async function busy(button, label, work) {
  const before = button.textContent;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  button.textContent = label;
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    button.textContent = before;
  }
}
