// cache.js: the pull-through cache: fills in progress (with progress),
// cached repositories with their tags, blobs, size and last use, and the
// upstreams' status. Refreshes every 3 s.

import {clearError, getJSON, reportError} from './api.js';
import {upstreamsCard} from './upstreams.js';
import {ago, bytes, h, parseTime, replace, table, timeCell} from './dom.js';

const REFRESH_MS = 3000;

export function mount(root) {
  const body = h('div', {class: 'cache'}, h('p', {class: 'loading'}, 'Loading…'));
  replace(root, h('h1', null, 'Cache'), body);
  const open = new Set(); // repositories whose tag list is expanded, kept across refreshes
  let timer = null;
  let stopped = false;
  async function refresh() {
    try {
      const c = await getJSON('/api/cache');
      if (stopped) return;
      clearError('cache');
      render(body, c, open);
    } catch (e) {
      if (!stopped) reportError('cache', e);
    }
    if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
  }
  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

function render(body, c, open) {
  if (c.enabled === false) {
    replace(body, h('p', {class: 'notice'},
      'The registry has no cache rules: nothing is pulled through. See registry.cacheRules in docs/cache.md.'));
    return;
  }
  const repos = c.repositories || [];
  let total = 0;
  for (const r of repos) total += r.bytes || 0;
  replace(body,
    fillsCard(c.fills || []),
    h('section', {class: 'card'},
      h('h2', null, 'Repositories ', h('span', {class: 'muted'}, `${repos.length} · ${bytes(total)}`)),
      table(['repository', 'rule', 'upstream', 'tags', 'blobs', 'size', 'last used'],
        repos.map((r) => repoRow(r, open)), 'nothing cached yet', {id: 'repositories'})),
    upstreamsCard(c.upstreams || []));
}

function fillsCard(fills) {
  const rows = fills.map((f) => {
    const known = typeof f.size === 'number' && f.size >= 0;
    const bar = h('progress', {max: known ? Math.max(f.size, 1) : null, value: known ? Math.min(f.bytes || 0, f.size) : null});
    const pct = known && f.size > 0 ? ` (${Math.floor(100 * (f.bytes || 0) / f.size)} %)` : '';
    return h('tr', null,
      h('td', null, f.kind || ''),
      h('td', {class: 'mono'}, f.repository || ''),
      h('td', {class: 'mono', title: f.digest || ''}, short(f.digest)),
      h('td', {class: 'progress'}, bar, ' ', `${bytes(f.bytes || 0)} / ${known ? bytes(f.size) : 'size unknown'}${pct}`),
      timeCell(f.startedAt),
      h('td', {class: 'num'}, f.waiters || 0));
  });
  return h('section', {class: 'card'},
    h('h2', null, 'Fills in progress'),
    table(['kind', 'repository', 'digest', 'progress', 'started', 'waiting'], rows, 'no fill in progress', {id: 'fills'}));
}

function repoRow(r, open) {
  const tags = r.tags || [];
  const key = r.repository || '';
  const details = h('details', {open: open.has(key)},
    h('summary', null, `${tags.length} tag${tags.length === 1 ? '' : 's'}`),
    h('ul', {class: 'tags'}, tags.map((t) => {
      const fetched = parseTime(t.fetched);
      return h('li', null, h('span', {class: 'mono'}, t.tag || ''), ' ',
        h('span', {class: 'mono muted', title: t.digest || ''}, short(t.digest)), ' ',
        h('span', {class: 'muted', title: fetched ? fetched.toISOString() : ''}, 'fetched ' + ago(fetched)));
    })));
  details.addEventListener('toggle', () => {
    if (details.open) open.add(key);
    else open.delete(key);
  });
  return h('tr', null,
    h('td', {class: 'mono'}, key),
    h('td', null, r.rule || ''),
    h('td', {class: 'mono'}, r.upstream || ''),
    h('td', null, tags.length ? details : h('span', {class: 'muted'}, 'none')),
    h('td', {class: 'num'}, r.blobs || 0),
    h('td', {class: 'num', title: `${r.bytes || 0} bytes`}, bytes(r.bytes || 0)),
    timeCell(r.lastUsed));
}

// short is "sha256:0123456789ab" for a digest.
function short(d) {
  if (!d) return '';
  const i = d.indexOf(':');
  return i < 0 ? d.slice(0, 12) : d.slice(0, i + 13);
}
