// decisions.js: live decisions. The table is filled from /api/decisions
// (the recent records) and then follows /api/decisions/stream (Server-Sent
// Events), newest first, at most MAX_ROWS rows. Changing a filter
// reconnects with the filter in the query, so the server filters.

import {clearError, getJSON, getLines, query, reportError, request, url} from './api.js';
import {badge, clock, copyButton, h, replace} from './dom.js';
import {explainQuery, learnSnippet, view} from './records.js';

const MAX_ROWS = 500;
const FILL = 200;
const RETRY_MS = 5000;

export function mount(root) {
  const verdict = h('select', {name: 'verdict', id: 'f-verdict'},
    h('option', {value: ''}, 'any'),
    h('option', {value: 'allow'}, 'allow'),
    h('option', {value: 'deny'}, 'deny (and would deny)'));
  const inputs = {
    src: h('input', {name: 'src', id: 'f-src', type: 'search', placeholder: '10.42.0.0/16 or 10.42.1.7', autocomplete: 'off'}),
    name: h('input', {name: 'name', id: 'f-name', type: 'search', placeholder: 'mcr.microsoft.com', autocomplete: 'off'}),
    rule: h('input', {name: 'rule', id: 'f-rule', type: 'search', placeholder: 'group/collection/rule', autocomplete: 'off'}),
  };
  const status = h('span', {class: 'status', id: 'stream-status'}, 'connecting');
  const count = h('span', {class: 'muted', id: 'row-count'}, '');
  const pause = h('button', {type: 'button', id: 'pause'}, 'Pause');
  const form = h('form', {class: 'filters', onsubmit: (e) => { e.preventDefault(); connect(); }},
    h('label', null, 'verdict ', verdict),
    h('label', null, 'source ', inputs.src),
    h('label', null, 'name ', inputs.name),
    h('label', null, 'rule ', inputs.rule),
    h('button', {type: 'submit'}, 'Apply'),
    pause, status, count);
  const detail = h('section', {class: 'panel', id: 'detail', hidden: true});
  const tbody = h('tbody');
  const tbl = h('table', {class: 'decisions', id: 'decisions'},
    h('thead', null, h('tr', null,
      ['time', 'component', 'source', 'name', 'dst / port', 'proto', 'verdict', 'rule or reason', ''].map((x) => h('th', null, x)))),
    tbody);
  replace(root, h('h1', null, 'Live decisions'), form, detail, h('div', {class: 'scroll'}, tbl));

  let es = null;
  let gen = 0; // bumps on every (re)connect: answers for an older one are dropped
  let retry = null;
  let paused = false;
  let held = []; // records that arrived while paused, oldest first
  let debounce = null;

  verdict.addEventListener('change', connect);
  // a source is applied when complete (Enter or leaving the field): a
  // partial address is not a filter the server takes
  inputs.src.addEventListener('change', connect);
  for (const el of [inputs.name, inputs.rule]) {
    el.addEventListener('input', () => {
      clearTimeout(debounce);
      debounce = setTimeout(connect, 500);
    });
  }
  pause.addEventListener('click', () => {
    paused = !paused;
    pause.textContent = paused ? 'Resume' : 'Pause';
    if (!paused) {
      for (const r of held) addRow(r);
      held = [];
    }
    updateCount();
  });

  function filters() {
    return {verdict: verdict.value, src: inputs.src.value.trim(), name: inputs.name.value.trim(), rule: inputs.rule.value.trim()};
  }

  function setStatus(text, kind) {
    status.textContent = text;
    status.className = 'status ' + (kind || '');
  }

  function updateCount() {
    const n = tbody.rows.length;
    count.textContent = `${n} shown${n >= MAX_ROWS ? ' (newest ' + MAX_ROWS + ')' : ''}${held.length ? `, ${held.length} held` : ''}`;
  }

  function disconnect() {
    clearTimeout(retry);
    retry = null;
    if (es) {
      es.close();
      es = null;
    }
  }

  // connect opens the stream first and holds its events until the fill
  // from /api/decisions is shown, so nothing logged in between is lost;
  // events the fill already holds (the same line) are not shown twice.
  function connect() {
    disconnect();
    const my = ++gen;
    const f = filters();
    setStatus('connecting', 'info');
    let pending = [];
    let filled = false;
    let opened = false;
    es = new EventSource(url('/api/decisions/stream' + query(f)));
    es.onopen = () => {
      if (my !== gen) return;
      if (opened) {
        // the browser reconnected by itself (the server dropped a client
        // that fell behind, or the connection broke): records logged in
        // the gap are missing, so start over with a fresh fill
        connect();
        return;
      }
      opened = true;
      clearError('stream');
      setStatus('live', 'ok');
    };
    es.onmessage = (ev) => {
      if (my !== gen) return;
      let rec;
      try {
        rec = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (!rec || typeof rec !== 'object') return;
      if (!filled) pending.push([ev.data, rec]);
      else receive([ev.data, rec]);
    };
    es.addEventListener('dropped', () => {
      if (my !== gen) return;
      reportError('stream', new Error('the live view fell behind and missed records; it reconnects'));
    });
    es.onerror = () => {
      if (my !== gen) return;
      if (es && es.readyState === EventSource.CLOSED) {
        // the server refused the stream: ask the same filter of the list
        // endpoint to learn why, and try again later
        setStatus('disconnected', 'bad');
        es = null;
        // the same request as the fill: the same refusal shows once in the banner
        request('/api/decisions' + query({...f, limit: FILL}), 'application/x-ndjson')
          .then(() => {
            reportError('stream', new Error('the live stream closed; reconnecting'));
            return true;
          })
          .catch((e) => {
            reportError('stream', e);
            return e.status !== 400; // a filter the server refuses stays refused
          })
          .then((again) => {
            if (again && my === gen) retry = setTimeout(() => { if (my === gen) connect(); }, RETRY_MS);
          });
      } else {
        setStatus('reconnecting', 'warn');
      }
    };
    getLines('/api/decisions' + query({...f, limit: FILL}))
      .then((lines) => {
        if (my !== gen) return;
        clearError('decisions');
        tbody.replaceChildren();
        held = [];
        const seen = new Set();
        for (const l of lines) {
          seen.add(l[0]);
          addRow(l);
        }
        for (const l of pending) {
          if (!seen.has(l[0])) addRow(l);
        }
      })
      .catch((e) => {
        if (my !== gen) return;
        reportError('decisions', e);
        tbody.replaceChildren();
        for (const l of pending) addRow(l);
      })
      .finally(() => {
        if (my !== gen) return;
        pending = [];
        filled = true;
        updateCount();
      });
  }

  function receive(l) {
    if (paused) {
      held.push(l);
      if (held.length > MAX_ROWS) held.shift();
      updateCount();
      return;
    }
    addRow(l);
    updateCount();
  }

  function addRow([, rec]) {
    const v = view(rec);
    const verdictKind = v.wouldDeny ? 'warn' : v.verdict === 'allow' ? 'ok' : 'bad';
    const tr = h('tr', {dataset: {verdict: v.verdict, component: v.component}},
      h('td', {class: 'time', title: v.time}, clock(v.time)),
      h('td', null, v.component),
      h('td', {class: 'mono'}, v.src),
      h('td', {class: 'mono name'}, v.name),
      h('td', {class: 'mono'}, v.dst),
      h('td', null, v.proto),
      h('td', null, badge(v.verdict, verdictKind)),
      h('td', {class: 'rule'}, v.rule ? h('span', {class: 'mono'}, v.rule) : h('span', {class: 'muted'}, v.reason)),
      h('td', {class: 'actions'},
        h('button', {type: 'button', class: 'explain', onclick: () => explain(rec, v)}, 'Explain'),
        v.denied ? h('button', {type: 'button', class: 'allow', onclick: () => allowThis(rec, v)}, 'Allow this') : null));
    tbody.insertBefore(tr, tbody.firstChild);
    while (tbody.rows.length > MAX_ROWS) tbody.deleteRow(tbody.rows.length - 1);
  }

  function showDetail(title, ...body) {
    replace(detail,
      h('div', {class: 'panel-head'}, h('h2', null, title),
        h('button', {type: 'button', class: 'close', onclick: () => { detail.hidden = true; }}, 'Close')),
      body);
    detail.hidden = false;
    detail.scrollIntoView({block: 'nearest'});
  }

  async function explain(rec, v) {
    const q = explainQuery(rec);
    const flow = `${q.proto} ${q.src} → ${q.dst}${q.sni ? ' sni ' + q.sni : ''}${q.host ? ' host ' + q.host : ''}`;
    const pre = h('pre', {class: 'explain-text', id: 'explain-text'}, 'asking airlock…');
    showDetail('Explain', h('p', {class: 'mono'}, flow),
      v.component === 'dns' ? h('p', {class: 'muted'}, 'A DNS question has no port: explained as an HTTPS flow to the name.') : null,
      pre);
    try {
      const e = await getJSON('/api/explain' + query(q));
      clearError('explain');
      pre.textContent = typeof e.text === 'string' ? e.text : JSON.stringify(e.decision, null, 2);
    } catch (err) {
      pre.textContent = err.message;
      reportError('explain', err);
    }
  }

  // allowThis shows the record as a policy to paste, its group named and
  // prioritized clear of the running policy's groups.
  async function allowThis(rec) {
    let groups = [];
    try {
      groups = (await getJSON('/api/policy')).groups || [];
    } catch {
      // without the running policy the snippet still stands; its group
      // priority may then need changing
    }
    const text = learnSnippet(rec, groups);
    const pre = h('pre', {class: 'snippet', id: 'allow-snippet'}, text);
    showDetail('Allow this', h('p', {class: 'muted'},
      'A policy that allows this one flow, in the shape airlock policy learn writes. ',
      h('a', {href: '#/policy'}, 'The learn proposal'), ' covers every denied record.'),
    h('div', {class: 'toolbar'}, copyButton(() => text, pre)), pre);
  }

  connect();
  return () => {
    gen++;
    clearTimeout(debounce);
    disconnect();
  };
}
