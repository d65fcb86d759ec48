// The HTTP API client. The token lives in this tab's sessionStorage only: it is sent in the
// Authorization header, never put in a URL, and never written to localStorage. Images are loaded
// through short-lived signed URLs, which carry no token.

const TOKEN_KEY = 'cargohold.token';
export const API = '/api/v1';

export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  signIn(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    /** True once the sign-in page took over (a 401): the view need not show it again. */
    this.handled = false;
  }
}

let unauthorized = () => {};
/** Called with the server's message when a request is refused with 401 (token unknown or revoked). */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

function authHeader(token) {
  return `Bearer ${token}`;
}

function errorOf(status, data, text) {
  const error = data && typeof data === 'object' ? data.error : null;
  if (error && typeof error.message === 'string') return new ApiError(status, error.code || 'error', error.message);
  const fallback = text && text.length < 300 ? text : '';
  return new ApiError(status, 'http_error', `The server answered ${status}${fallback ? `: ${fallback}` : ''}`);
}

function failed(status, data, text, redirect) {
  const error = errorOf(status, data, text);
  if (status === 401 && redirect) {
    error.handled = true;
    unauthorized(error.message);
  }
  return error;
}

/**
 * api('GET', '/datasets', {query, json, body, contentType, signal, token, redirect}) -> parsed JSON or null.
 * Throws ApiError with the server's {"error": {"message"}}.
 */
export async function api(method, path, options = {}) {
  const { query, json, body, contentType, signal, token = session.token, redirect = true } = options;
  const url = new URL(API + path, window.location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, String(value));
  }
  const headers = new Headers({ Accept: 'application/json' });
  if (token) headers.set('Authorization', authHeader(token));
  let payload = body;
  if (json !== undefined) {
    payload = JSON.stringify(json);
    headers.set('Content-Type', 'application/json');
  } else if (contentType) {
    headers.set('Content-Type', contentType);
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body: payload, signal, cache: 'no-store', credentials: 'omit' });
  } catch (exc) {
    if (exc && exc.name === 'AbortError') throw exc;
    throw new ApiError(0, 'network', 'The server could not be reached. Check that cargohold is running.');
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) throw failed(response.status, data, text, redirect);
  return data;
}

let providerList = null;
/**
 * The providers (GET /providers, admin only): {name: {name, label, title, bucket, schemes, fields, ...}}, in the
 * server's order. The answer is the server's provider table, so it is asked for once a page load.
 */
export function providers() {
  if (!providerList) {
    providerList = api('GET', '/providers').then(
      (answer) => Object.fromEntries(answer.providers.map((p) => [p.name, p])),
      (exc) => {
        providerList = null;
        throw exc;
      });
  }
  return providerList;
}

/** `known[name]`, or a stand-in for a provider the list does not hold (its name for every label). */
export function providerOf(known, name) {
  return known[name] || { name, label: name, title: name, bucket: 'bucket', schemes: [name], fields: [] };
}

/** The field called `name` of a provider's connections, or undefined. */
export function fieldOf(provider, name) {
  return provider.fields.find((f) => f.name === name);
}

/**
 * Upload one file with XMLHttpRequest (fetch has no upload progress).
 * Returns {promise, abort}; promise resolves with the API's first result {filename, status, item}.
 */
export function uploadFile(datasetId, file, conflict, onProgress) {
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve, reject) => {
    const url = `${API}/datasets/${encodeURIComponent(datasetId)}/items?conflict=${encodeURIComponent(conflict)}`;
    xhr.open('POST', url);
    xhr.responseType = 'text';
    xhr.setRequestHeader('Authorization', authHeader(session.token || ''));
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    };
    xhr.onload = () => {
      let data = null;
      try {
        data = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        data = null;
      }
      if (xhr.status >= 200 && xhr.status < 300 && data && Array.isArray(data.results) && data.results.length) {
        resolve(data.results[0]);
      } else if (xhr.status >= 200 && xhr.status < 300) {
        reject(new ApiError(xhr.status, 'bad_answer', 'The server answered without a result for this file.'));
      } else {
        reject(failed(xhr.status, data, xhr.responseText, true));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, 'network', 'The connection to the server was lost.'));
    xhr.onabort = () => reject(new ApiError(0, 'aborted', 'Cancelled.'));
    const form = new FormData();
    form.append('files', file, file.name);
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}

export const PREVIEW = { w: 256, h: 256, fit: 'cover', format: 'webp', q: 80 };
export const SIGN_SECONDS = 600;

/** Signed preview URLs for a page of items, in one request: {urls: {id: url}, expiresAt: ms}. */
export async function signPreviews(ids, signal) {
  const answer = await api('POST', '/sign', { json: { items: ids, expires_in: SIGN_SECONDS, preview: PREVIEW }, signal });
  return { urls: answer.urls || {}, expiresAt: Date.parse(answer.expires_at) || Date.now() + SIGN_SECONDS * 1000 };
}

/** A signed URL of frame `n` of a video (exact: the frames route), sized as `preview` says. */
export async function signFrame(itemId, n, preview = { w: 1024, h: 1024, fit: 'contain', format: 'webp', q: 90 }) {
  const json = { expires_in: SIGN_SECONDS, frame: n, preview };
  const answer = await api('POST', `/items/${encodeURIComponent(itemId)}/sign`, { json });
  return answer.url;
}

/** A signed URL of an item's preview (a video's: its poster). */
export async function signPreview(itemId, preview = PREVIEW) {
  const json = { expires_in: SIGN_SECONDS, preview };
  const answer = await api('POST', `/items/${encodeURIComponent(itemId)}/sign`, { json });
  return answer.url;
}

/** A signed URL of an item's content; `format` asks for a browser-friendly conversion. */
export async function signContent(itemId, format) {
  const json = { expires_in: SIGN_SECONDS };
  if (format) json.format = format;
  const answer = await api('POST', `/items/${encodeURIComponent(itemId)}/sign`, { json });
  return answer.url;
}
