// app.js: the console's entry point. Hash routing (#/overview,
// #/decisions, #/cache, #/policy): each page module exports
// mount(root) → unmount function; the router unmounts the old page (its
// timers and streams) before mounting the next.

import {clearAllErrors, getJSON} from './api.js';
import {replace} from './dom.js';
import * as overview from './overview.js';
import * as decisions from './decisions.js';
import * as cache from './cache.js';
import * as policy from './policy.js';

const pages = {overview, decisions, cache, policy};
const titles = {overview: 'Overview', decisions: 'Live decisions', cache: 'Cache', policy: 'Policy'};

let unmount = null;

function route() {
  const name = (location.hash.match(/^#\/([a-z]+)/) || [])[1];
  if (!pages[name]) {
    location.replace('#/overview');
    return;
  }
  if (unmount) {
    unmount();
    unmount = null;
  }
  clearAllErrors();
  for (const a of document.querySelectorAll('nav a')) {
    a.classList.toggle('active', a.dataset.page === name);
  }
  document.title = `${titles[name]} · airlock`;
  const root = replace(document.getElementById('page'));
  root.dataset.page = name;
  unmount = pages[name].mount(root);
}

// meta shows version and replica in the header, once.
async function meta() {
  try {
    const o = await getJSON('/api/overview');
    const parts = [];
    if (o.version) parts.push('airlock ' + o.version);
    if (o.replica) parts.push('replica ' + o.replica);
    document.getElementById('meta').textContent = parts.join(' · ');
  } catch {
    // the overview page reports errors; the header stays empty
  }
}

window.addEventListener('hashchange', route);
route();
meta();
