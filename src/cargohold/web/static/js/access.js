// What the signed-in token may use (GET /api/v1/me), so that pages offer only that. The server still checks
// every request; this only keeps the UI from offering what would answer 403.
import { api, session } from './api.js';

const RANK = { read: 0, write: 1, admin: 2 };

let known = null; // {token, answer: Promise}

/** The token's {name, role, datasets, files, connections}, asked once per token (cached for the tab's life). */
export function whoami() {
  const { token } = session;
  if (!known || known.token !== token) {
    const answer = api('GET', '/me');
    known = { token, answer };
    answer.catch(() => {
      if (known && known.answer === answer) known = null;
    });
  }
  return known.answer;
}

/** Sign-in already asked /me with the new token: keep its answer. */
export function remember(token, me) {
  known = { token, answer: Promise.resolve(me) };
}

export function forget() {
  known = null;
}

/** True when the token's role is `need` or above ('read' < 'write' < 'admin'). */
export function may(me, need) {
  return Boolean(me) && (RANK[me.role] ?? -1) >= RANK[need];
}

/** A token limited to some datasets or team-file folders: it cannot make a dataset. */
export function limited(me) {
  return Boolean(me) && (me.datasets !== null || me.files !== null);
}
