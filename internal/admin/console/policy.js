// policy.js: the policy in force — groups, collections and rules with
// their hit counts (never-hit rules marked), the FQDN tags it uses with
// their entries, and the learn proposal with a download.

import {clearError, getJSON, reportError, url} from './api.js';
import {ago, badge, copyButton, h, parseTime, replace, table} from './dom.js';

export function mount(root) {
  const pol = h('div', {class: 'policy'}, h('p', {class: 'loading'}, 'Loading…'));
  const learn = h('section', {class: 'card learn', id: 'learn'}, h('h2', null, 'Learn proposal'), h('p', {class: 'loading'}, 'Loading…'));
  const reload = h('button', {type: 'button', id: 'reload'}, 'Refresh');
  replace(root, h('div', {class: 'title-row'}, h('h1', null, 'Policy'), reload), pol, learn);
  let stopped = false;
  async function load() {
    try {
      const p = await getJSON('/api/policy');
      if (stopped) return;
      clearError('policy');
      renderPolicy(pol, p);
    } catch (e) {
      if (!stopped) {
        reportError('policy', e);
        replace(pol);
      }
    }
    try {
      const l = await getJSON('/api/learn?format=json');
      if (stopped) return;
      clearError('learn');
      renderLearn(learn, l);
    } catch (e) {
      if (!stopped) {
        reportError('learn', e);
        replace(learn, h('h2', null, 'Learn proposal'), h('p', {class: 'muted'}, e.message));
      }
    }
  }
  reload.addEventListener('click', load);
  load();
  return () => { stopped = true; };
}

// f reads a field whether the server wrote it camelCase (the YAML names)
// or as Go's field name.
function f(o, name) {
  if (!o) return undefined;
  if (o[name] !== undefined) return o[name];
  return o[name.charAt(0).toUpperCase() + name.slice(1)];
}

function list(v) {
  return Array.isArray(v) ? v.map(String) : [];
}

function renderPolicy(el, p) {
  const hits = p.hits || {};
  const byRule = new Map();
  for (const r of hits.rules || []) byRule.set(`${r.group}/${r.collection}/${r.rule}`, r);
  const groups = p.groups || [];
  let rules = 0;
  let never = 0;
  const sections = groups.map((g) => {
    const gname = String(f(g, 'name') || '');
    return h('section', {class: 'card group'},
      h('h2', null, gname, ' ', h('span', {class: 'muted'}, `group · priority ${f(g, 'priority')}`)),
      (f(g, 'ruleCollections') || []).map((c) => {
        const cname = String(f(c, 'name') || '');
        const type = String(f(c, 'type') || '');
        const action = String(f(c, 'action') || '');
        const rows = (f(c, 'rules') || []).map((r) => {
          rules++;
          const rname = String(f(r, 'name') || '');
          const hr = byRule.get(`${gname}/${cname}/${rname}`);
          const n = hr ? hr.hits || 0 : 0;
          if (n === 0) never++;
          return h('tr', {class: n === 0 ? 'never-hit' : '', dataset: {rule: `${gname}/${cname}/${rname}`}},
            h('td', {class: 'mono'}, rname),
            h('td', {class: 'mono'}, list(f(r, 'protocols')).join(', ')),
            h('td', {class: 'mono'}, list(f(r, 'sourceAddresses')).join(', ')),
            h('td', {class: 'mono'}, destinations(r)),
            h('td', {class: 'mono'}, list(f(r, 'destinationPorts')).join(', ')),
            h('td', {class: 'num hits'}, n === 0 ? badge('never hit', 'warn') : String(n)),
            h('td', {class: 'time', title: hr && parseTime(hr.last) ? parseTime(hr.last).toISOString() : ''},
              hr && parseTime(hr.last) ? ago(hr.last) : ''));
        });
        return h('div', {class: 'collection'},
          h('h3', null, cname, ' ',
            badge(type, 'info'), ' ', badge(action, action === 'deny' ? 'bad' : 'ok'), ' ',
            h('span', {class: 'muted'}, `priority ${f(c, 'priority')}`)),
          table(['rule', 'protocols', 'sources', 'destinations', 'ports', 'hits', 'last hit'], rows, 'no rules'));
      }));
  });
  const since = parseTime(hits.since);
  const summary = h('p', {class: 'summary'},
    `${plural(groups.length, 'group')}, ${plural(rules, 'rule')}, `, h('span', {class: never ? 'never-hit-count' : ''}, `${never} never hit`),
    since ? ` · counting since ${since.toLocaleString()}` : '',
    p.location ? ` · location ${p.location}` : '');
  replace(el, summary,
    (p.warnings || []).length ? h('section', {class: 'card warnings'}, h('h2', null, 'Warnings'),
      h('ul', null, p.warnings.map((w) => h('li', null, w)))) : null,
    groups.length === 0 ? h('p', {class: 'notice'}, 'The policy has no rules: every flow is denied (no_match).') : null,
    sections,
    staleCard(hits.rules || []),
    noRuleCard(hits.noRule || {}),
    tagsCard(p.tags || []));
}

function destinations(r) {
  const out = [];
  for (const k of ['destinationAddresses', 'destinationFqdns', 'targetFqdns']) out.push(...list(f(r, k)));
  const tags = list(f(r, 'fqdnTags'));
  return [out.join(', '), tags.length ? [out.length ? ' ' : null, tags.map((t) => badge('tag ' + t, 'info'))] : null];
}

function staleCard(rules) {
  const stale = rules.filter((r) => r.stale);
  if (stale.length === 0) return null;
  return h('section', {class: 'card'},
    h('h2', null, 'Rules no longer in the policy'),
    h('p', {class: 'muted'}, 'They decided flows since counting began, then were renamed or removed.'),
    table(['rule', 'hits', 'last hit'], stale.map((r) => h('tr', null,
      h('td', {class: 'mono'}, `${r.group}/${r.collection}/${r.rule}`),
      h('td', {class: 'num'}, r.hits || 0),
      h('td', {class: 'time'}, ago(r.last))))));
}

function noRuleCard(noRule) {
  const keys = Object.keys(noRule).sort();
  if (keys.length === 0) return null;
  return h('section', {class: 'card'},
    h('h2', null, 'Decided by no rule'),
    h('p', {class: 'muted'}, 'No rule matched (no_match), or a check before the rules decided (an internal address, a malformed request).'),
    table(['component and verdict', 'decisions'], keys.map((k) => h('tr', null, h('td', null, k), h('td', {class: 'num'}, noRule[k])))));
}

function tagsCard(tags) {
  return h('section', {class: 'card tags', id: 'tags'},
    h('h2', null, 'FQDN tags in use'),
    tags.length === 0 ? h('p', {class: 'muted'}, 'The policy uses no FQDN tag.') : tags.map((t) => {
      const entries = t.entries || [];
      return h('details', {class: 'tag'},
        h('summary', null, h('span', {class: 'mono'}, t.name || ''), ' ',
          h('span', {class: 'muted'}, `${t.version || ''} · ${entries.length} entries`)),
        t.source ? h('p', {class: 'muted'}, 'source: ', t.source) : null,
        table(['fqdn', 'protocols', ''], entries.map((e) => h('tr', {class: e.skipped ? 'skipped' : ''},
          h('td', {class: 'mono'}, e.fqdn || ''),
          h('td', {class: 'mono'}, list(e.protocols).join(', ')),
          h('td', {class: 'muted'}, e.skipped ? 'skipped: ' + e.skipped : '')))));
    }));
}

function renderLearn(el, l) {
  const yaml = typeof l.yaml === 'string' ? l.yaml : '';
  const pre = h('pre', {class: 'snippet', id: 'learn-yaml'}, yaml || '# nothing to propose');
  replace(el,
    h('h2', null, 'Learn proposal'),
    h('p', {class: 'muted'},
      `${plural(l.records || 0, 'record')} read, ${plural(l.rules || 0, 'rule')} proposed: what was denied or would be denied, allowed and nothing more. `,
      'Review it, merge it into the policy: section of airlock.yaml and check it with ',
      h('code', null, 'airlock policy check'), '.'),
    h('div', {class: 'toolbar'},
      h('a', {href: url('/api/learn'), download: 'airlock-learned-policy.yaml', class: 'button', id: 'learn-download'}, 'Download YAML'),
      copyButton(() => yaml, pre)),
    pre);
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
