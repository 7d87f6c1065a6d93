// upstreams.js: the upstream health table the overview and cache pages
// share.

import {badge, h, parseTime, table, timeCell} from './dom.js';

const RECENT_MS = 5 * 60 * 1000;

// upstreamsCard lists each upstream host with its requests and errors:
// "ok" without errors, "failing" when the last error is under 5 minutes
// old, else "recovered".
export function upstreamsCard(ups) {
  const rows = ups.map((u) => {
    const last = parseTime(u.lastErrorAt);
    const recent = last && Date.now() - last.getTime() < RECENT_MS;
    return h('tr', null,
      h('td', {class: 'mono'}, u.host || ''),
      h('td', null, !u.errors ? badge('ok', 'ok') : recent ? badge('failing', 'bad') : badge('recovered', 'warn')),
      h('td', {class: 'num'}, u.requests || 0),
      h('td', {class: 'num'}, u.errors || 0),
      h('td', {class: 'reason'}, u.lastError || ''),
      timeCell(u.lastErrorAt));
  });
  return h('section', {class: 'card upstreams'},
    h('h2', null, 'Upstreams'),
    table(['host', 'health', 'requests', 'errors', 'last error', 'when'], rows, 'no upstream requests yet', {id: 'upstreams'}));
}
