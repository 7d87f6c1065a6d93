// dom.js: building the DOM from data without ever parsing data as HTML.
// Every string from the server (records carry attacker-chosen names) goes
// in as a text node or an attribute value, never through innerHTML.

const SVG_NS = 'http://www.w3.org/2000/svg';

// h creates an element: h('td', {class: 'x', title: t, onclick: f}, child…).
// Children are nodes, strings (text nodes), numbers, null/false (skipped)
// or arrays of those.
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

// s creates an SVG element the same way.
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) {
      if (typeof v === 'function') el.addEventListener(k.slice(2), v); // never a handler from a string
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// replace empties el and appends children.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// bytes formats a byte count: 1536 → "1.5 KiB"; negative → "?".
export function bytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return '?';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return (i === 0 ? String(n) : n.toFixed(n < 10 ? 1 : 0)) + ' ' + units[i];
}

// parseTime returns a Date for an RFC 3339 string, or null for a missing
// or zero ("0001-01-01…") time.
export function parseTime(t) {
  if (!t || typeof t !== 'string' || t.startsWith('0001-')) return null;
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? null : d;
}

// ago formats the time since t: "12s ago", "5m ago", "3h ago", "2d ago";
// "never" for no time.
export function ago(t, now = Date.now()) {
  const d = t instanceof Date ? t : parseTime(t);
  if (!d) return 'never';
  let sec = Math.round((now - d.getTime()) / 1000);
  if (sec < 0) sec = 0;
  if (sec < 60) return sec + 's ago';
  if (sec < 3600) return Math.floor(sec / 60) + 'm ago';
  if (sec < 86400) return Math.floor(sec / 3600) + 'h ago';
  return Math.floor(sec / 86400) + 'd ago';
}

// timeCell is a <td> with the relative time and the absolute one as title.
export function timeCell(t) {
  const d = parseTime(t);
  return h('td', {class: 'time', title: d ? d.toISOString() : ''}, ago(d));
}

// clock formats a time of day with milliseconds, local time.
export function clock(t) {
  const d = parseTime(t);
  if (!d) return '';
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

// badge is a small label whose class says its kind (ok, warn, bad, info).
export function badge(text, kind) {
  return h('span', {class: 'badge ' + (kind || '')}, text);
}

// table builds a table with a header row and body rows; empty shows a
// single row with that text when there are no rows.
export function table(headers, rows, empty, attrs) {
  const body = h('tbody', null, rows);
  if (rows.length === 0 && empty) {
    body.appendChild(h('tr', {class: 'empty'}, h('td', {colspan: headers.length}, empty)));
  }
  return h('table', attrs || null, h('thead', null, h('tr', null, headers.map((x) => h('th', null, x)))), body);
}

// copyButton copies text() to the clipboard; where the Clipboard API is
// not available (plain http on a non-loopback address) it selects the text
// of target so the operator can copy it by hand.
export function copyButton(text, target) {
  const btn = h('button', {type: 'button', class: 'copy'}, 'Copy');
  btn.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text());
      btn.textContent = 'Copied';
    } catch {
      if (target) {
        const r = document.createRange();
        r.selectNodeContents(target);
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(r);
      }
      btn.textContent = 'Selected: press Ctrl+C';
    }
    setTimeout(() => { btn.textContent = 'Copy'; }, 2000);
  });
  return btn;
}
