// overview.js: components and readiness, upstream health, the cache hit
// ratio and decisions per minute (an inline SVG bar chart). Refreshes every
// 5 s.

import {clearError, getJSON, reportError} from './api.js';
import {upstreamsCard} from './upstreams.js';
import {ago, badge, h, parseTime, replace, s, table} from './dom.js';

const REFRESH_MS = 5000;

export function mount(root) {
  const body = h('div', {class: 'overview'}, h('p', {class: 'loading'}, 'Loading…'));
  replace(root, h('h1', null, 'Overview'), body);
  let timer = null;
  let stopped = false;
  async function refresh() {
    try {
      const o = await getJSON('/api/overview');
      if (stopped) return;
      clearError('overview');
      render(body, o);
    } catch (e) {
      if (!stopped) reportError('overview', e);
    }
    if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
  }
  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

function render(body, o) {
  replace(body,
    h('div', {class: 'cards'},
      componentsCard(o.components || []),
      cacheCard(o.cache || {}),
      aboutCard(o)),
    decisionsCard((o.decisions && o.decisions.perMinute) || []),
    upstreamsCard(o.upstreams || []));
}

const stateKind = {ready: 'ok', starting: 'info', degraded: 'warn', 'not ready': 'bad'};

function componentsCard(components) {
  const rows = components.map((c) => h('tr', {dataset: {component: c.name || ''}},
    h('td', null, c.name || ''),
    h('td', null, badge(c.state || 'unknown', stateKind[c.state] || 'warn')),
    h('td', {class: 'reason'}, c.reason || '')));
  return h('section', {class: 'card components'},
    h('h2', null, 'Components'),
    table(['component', 'state', 'reason'], rows, 'no components configured'));
}

function cacheCard(c) {
  // No traffic-light colour: a low ratio is normal while the cache warms.
  let ratio = '—';
  let kind = 'muted';
  if (c.enabled === false) {
    ratio = 'off';
  } else if (typeof c.hitRatio === 'number') {
    ratio = (c.hitRatio * 100).toFixed(1) + ' %';
    kind = '';
  }
  return h('section', {class: 'card cache'},
    h('h2', null, 'Cache hit ratio'),
    h('p', {class: 'big ' + kind, id: 'hit-ratio'}, ratio),
    c.enabled === false
      ? h('p', {class: 'muted'}, 'No cache rules configured.')
      : h('p', {class: 'muted'}, `${c.hits || 0} hits · ${c.misses || 0} misses`));
}

function aboutCard(o) {
  const started = parseTime(o.startedAt);
  return h('section', {class: 'card about'},
    h('h2', null, 'This airlock'),
    h('dl', null,
      h('dt', null, 'version'), h('dd', null, o.version || '?'),
      o.replica ? [h('dt', null, 'replica'), h('dd', null, o.replica)] : null,
      h('dt', null, 'started'), h('dd', {title: started ? started.toISOString() : ''}, started ? ago(started).replace(' ago', '') + ' ago' : '?')));
}

// decisionsCard draws allows, denies and would-denies per minute as
// stacked bars, oldest on the left.
function decisionsCard(perMinute) {
  const totals = {allow: 0, deny: 0, wouldDeny: 0};
  for (const m of perMinute) {
    for (const k of Object.keys(totals)) totals[k] += m[k] || 0;
  }
  const legend = h('p', {class: 'legend'},
    h('span', {class: 'key allow'}), `allow ${totals.allow}`,
    h('span', {class: 'key deny'}), `deny ${totals.deny}`,
    h('span', {class: 'key would-deny'}), `would deny ${totals.wouldDeny}`,
    h('span', {class: 'muted'}, ` · last ${perMinute.length || 60} minutes`));
  return h('section', {class: 'card chart'},
    h('h2', null, 'Decisions per minute'),
    legend,
    barChart(perMinute));
}

function barChart(perMinute) {
  const W = 720;
  const H = 160;
  const left = 40;
  const head = 10; // room for the top label
  const bottom = 20;
  const n = Math.max(perMinute.length, 60);
  const slot = (W - left) / n;
  const barW = Math.max(1, slot - 2);
  let max = 0;
  for (const m of perMinute) max = Math.max(max, (m.allow || 0) + (m.deny || 0) + (m.wouldDeny || 0));
  const top = niceMax(max);
  const y = (v) => head + (H - bottom - head) * (1 - v / top);
  const svg = s('svg', {viewBox: `0 0 ${W} ${H}`, class: 'bars', role: 'img', 'aria-label': 'decisions per minute'});
  // grid and y labels
  for (const v of [0, top / 2, top]) {
    svg.appendChild(s('line', {x1: left, x2: W, y1: y(v), y2: y(v), class: 'grid'}));
    svg.appendChild(s('text', {x: left - 6, y: y(v) + 4, class: 'axis', 'text-anchor': 'end'}, formatCount(v)));
  }
  const offset = n - perMinute.length; // right-align: the newest minute is at the right edge
  perMinute.forEach((m, i) => {
    const x = left + (offset + i) * slot + 1;
    let base = 0;
    const when = parseTime(m.minute);
    const label = `${when ? when.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'}) : ''}: ` +
      `${m.allow || 0} allow, ${m.deny || 0} deny, ${m.wouldDeny || 0} would deny`;
    const g = s('g', null, s('title', null, label));
    for (const [k, cls] of [['allow', 'allow'], ['deny', 'deny'], ['wouldDeny', 'would-deny']]) {
      const v = m[k] || 0;
      if (v <= 0) continue;
      g.appendChild(s('rect', {x, width: barW, y: y(base + v), height: Math.max(1, y(base) - y(base + v)), class: cls}));
      base += v;
    }
    // a transparent full-height target, so the tooltip works on empty minutes too
    g.appendChild(s('rect', {x, width: barW, y: head, height: H - bottom - head, class: 'hover'}));
    svg.appendChild(g);
  });
  svg.appendChild(s('text', {x: left, y: H - 4, class: 'axis'}, `-${n}m`));
  svg.appendChild(s('text', {x: W, y: H - 4, class: 'axis', 'text-anchor': 'end'}, 'now'));
  return svg;
}

// niceMax rounds a maximum up to 1, 2 or 5 times a power of ten (at least 1).
function niceMax(v) {
  if (v <= 1) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) {
    if (v <= m * p) return m * p;
  }
  return 10 * p;
}

function formatCount(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(v % 1e6 ? 1 : 0) + 'M';
  if (v >= 1e3) return (v / 1e3).toFixed(v % 1e3 ? 1 : 0) + 'k';
  return String(Math.round(v * 10) / 10);
}
