// api.js: requests to the admin listener's /api and the error banner.

import {h, replace} from './dom.js';

// APIError is a failed request: the server's {"error"} text and status.
export class APIError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

const CREDENTIALS = 'credentials needed: this admin listener asks for an admin user (admin.users); ' +
  'reload the page to sign in';

// url makes path absolute on the page's origin. A page opened as
// http://user:password@host/ has those credentials in its base URL, and
// fetch and EventSource refuse a URL that carries credentials; the origin
// has none (the browser still sends the ones it was given).
export function url(path) {
  return location.origin + path;
}

// request fetches path and returns the response, or throws an APIError
// carrying the server's {"error": …} message.
export async function request(path, accept) {
  let resp;
  try {
    resp = await fetch(url(path), {headers: {Accept: accept || 'application/json'}, credentials: 'same-origin', cache: 'no-store'});
  } catch (e) {
    throw new APIError(`${path}: airlock is not answering (${e.message})`, 0);
  }
  if (resp.status === 401) throw new APIError(CREDENTIALS, 401);
  if (!resp.ok) {
    let msg = '';
    try {
      const body = await resp.json();
      if (body && typeof body.error === 'string') msg = body.error;
    } catch {
      // not JSON: the status line says enough
    }
    throw new APIError(`${path}: ${msg || resp.status + ' ' + resp.statusText}`, resp.status);
  }
  return resp;
}

// getJSON fetches path and decodes its JSON body.
export async function getJSON(path) {
  const resp = await request(path);
  try {
    return await resp.json();
  } catch (e) {
    throw new APIError(`${path}: the answer is not JSON (${e.message})`, resp.status);
  }
}

// getLines fetches newline-delimited JSON and returns [raw line, object]
// pairs; lines that are not JSON objects are skipped.
export async function getLines(path) {
  const resp = await request(path, 'application/x-ndjson');
  const text = await resp.text();
  const out = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const rec = JSON.parse(line);
      if (rec && typeof rec === 'object' && !Array.isArray(rec)) out.push([line, rec]);
    } catch {
      // a line that is not JSON is not a record
    }
  }
  return out;
}

// query builds "?k=v&…" from the non-empty values of params.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && String(v) !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

// The banner shows one message per source (a page's refresh, the stream);
// a source's success clears its message.
const messages = new Map();

export function reportError(source, err) {
  const msg = err instanceof Error ? err.message : String(err);
  messages.set(source, {msg, auth: err && err.status === 401});
  renderBanner();
}

export function clearError(source) {
  if (messages.delete(source)) renderBanner();
}

export function clearAllErrors() {
  messages.clear();
  renderBanner();
}

function renderBanner() {
  const el = document.getElementById('banner');
  if (!el) return;
  if (messages.size === 0) {
    el.hidden = true;
    replace(el);
    return;
  }
  const auth = [...messages.values()].some((m) => m.auth);
  el.className = auth ? 'banner auth' : 'banner';
  const seen = new Set();
  const items = [];
  for (const m of messages.values()) {
    if (seen.has(m.msg)) continue;
    seen.add(m.msg);
    items.push(h('li', null, m.msg));
  }
  replace(el, h('ul', null, items));
  el.hidden = false;
}
