// records.js: what the console reads from one decision record (the JSON
// line airlock logged: "egress decision" or "dns decision"), the flow
// /api/explain is asked about, and the "allow this" snippet in the shape
// `airlock policy learn` writes.

// view returns the fields a row shows, all strings.
export function view(rec) {
  const dns = rec.msg === 'dns decision';
  const component = str(rec.component) || (dns ? 'dns' : 'gateway');
  const name = trimDot(str(dns ? rec.qname : rec.name));
  let dst = '';
  if (dns) dst = str(rec.qtype);
  else if (rec.dst) dst = str(rec.dst);
  else if (rec.port !== undefined) dst = ':' + str(rec.port);
  const wouldDeny = rec.would_deny === true;
  let verdict = str(rec.verdict) || '?';
  if (wouldDeny) verdict = 'would deny';
  const rule = ruleOf(rec);
  return {
    component, name, dst,
    time: str(rec.time),
    src: str(rec.src),
    proto: str(rec.proto) + (rec.app && rec.app !== 'none' ? '/' + str(rec.app) : ''),
    verdict, wouldDeny,
    denied: rec.verdict === 'deny',
    rule,
    reason: str(rec.reason),
  };
}

// ruleOf is "group/collection/rule" for a record a rule decided, else "".
export function ruleOf(rec) {
  if (!rec.rule) return '';
  return [rec.group, rec.collection, rec.rule].map(str).filter(Boolean).join('/');
}

// explainQuery returns the /api/explain parameters for the record's flow.
// A DNS question is explained as an HTTPS flow to the name: the question
// alone carries no port.
export function explainQuery(rec) {
  const src = hostOf(str(rec.src));
  if (rec.msg === 'dns decision') {
    const q = trimDot(str(rec.qname));
    return {src, dst: joinHostPort(q, 443), proto: 'tcp', sni: q};
  }
  const name = str(rec.name);
  const port = rec.port !== undefined ? str(rec.port) : portOf(str(rec.dst));
  const p = {src, dst: rec.dst ? str(rec.dst) : joinHostPort(name, port), proto: str(rec.proto) || 'tcp'};
  if (name && rec.app === 'https') p.sni = name;
  if (name && rec.app === 'http') p.host = name;
  return p;
}

// learnSnippet is a config document that allows the record's flow, in
// the shape `airlock policy learn` writes for one record: version 1 and a
// policy with one group ("learned", at a name and priority the groups of
// existing do not use) holding one application rule (the name with its
// http:PORT or https:PORT) or, for a flow without a name, one network rule
// (protocol, address, port). The source is the record's own address: the
// console does not know the configured source groups. existing is the
// running policy's groups (from /api/policy), or [] when unknown.
export function learnSnippet(rec, existing) {
  const v = view(rec);
  const dns = rec.msg === 'dns decision';
  const srcIP = hostOf(v.src);
  const source = srcIP ? srcIP + (srcIP.includes(':') ? '/128' : '/32') : '*';
  const {name: group, priority} = freeGroup(existing || []);
  const when = rfc3339(v.time);
  const evidence = [`hits 1, sources 1, first ${when}, last ${when}, bytes ${Number(rec.bytes_up || 0) + Number(rec.bytes_down || 0)}` +
    (v.wouldDeny ? ', report mode' : '')];
  let coll;
  let rule;
  if (v.name) {
    let port = Number(rec.port) || 443;
    let scheme = rec.app === 'http' ? 'http' : 'https';
    if (dns) {
      port = 443;
      scheme = 'https';
      evidence.push('seen in DNS only: no gateway record for the name, protocol assumed https:443');
    }
    coll = 'sources-application';
    rule = [
      `- name: ${yamlString(ruleName(v.name))}`,
      `  protocols: [${yamlString(scheme + ':' + port)}]`,
      `  sourceAddresses: [${yamlString(source)}]`,
      `  targetFqdns: [${yamlString(v.name)}]`,
    ];
  } else {
    const dstIP = hostOf(str(rec.dst));
    const proto = (str(rec.proto) || 'tcp').toUpperCase();
    const port = proto === 'ICMP' ? '*' : str(rec.port) || portOf(str(rec.dst)) || '*';
    evidence.push('no name seen (no SNI, Host or CONNECT name): a network rule to the address');
    coll = 'sources-network';
    rule = [
      `- name: ${yamlString(ruleName('ip-' + dstIP + '-' + proto.toLowerCase()))}`,
      `  protocols: [${yamlString(proto)}]`,
      `  sourceAddresses: [${yamlString(source)}]`,
      `  destinationAddresses: [${yamlString(dstIP ? dstIP + (dstIP.includes(':') ? '/128' : '/32') : '*')}]`,
      `  destinationPorts: [${yamlString(port)}]`,
    ];
  }
  const lines = [
    '# "Allow this" in the airlock console: one decision record as a policy, in the',
    '# shape `airlock policy learn` writes (learn reads every record, groups sources',
    '# into the configured ranges and collapses sibling names; run it for the whole',
    '# picture). Merge the group into the policy: section of airlock.yaml.',
  ];
  if (v.rule) {
    lines.push(`# The record was denied by the rule ${comment(v.rule)}: an allow takes effect only`);
    lines.push('# when its group and collection are processed before that rule.');
  }
  lines.push(
    'version: 1',
    'policy:',
    '  ruleCollectionGroups:',
    `    - name: ${yamlString(group)}`,
    `      priority: ${priority}`,
    '      ruleCollections:',
    `        # source ${comment(srcIP || '?')}: the record's own address`,
    `        - name: ${coll}`,
    `          type: ${coll.endsWith('application') ? 'application' : 'network'}`,
    '          priority: 100',
    '          action: allow',
    '          rules:');
  for (const e of evidence) lines.push('            # ' + comment(e));
  for (const l of rule) lines.push('            ' + l);
  return lines.join('\n') + '\n';
}

// freeGroup returns a group name and priority groups do not use, as learn
// picks them: "learned" (or learned-2, …) and the first multiple of 100
// after the highest priority in use, else any free priority.
export function freeGroup(groups) {
  const names = new Set();
  const prios = new Set();
  let highest = 0;
  for (const g of groups) {
    names.add(String(g.name));
    const p = Number(g.priority) || 0;
    prios.add(p);
    highest = Math.max(highest, p);
  }
  let name = 'learned';
  for (let i = 2; names.has(name); i++) name = 'learned-' + i;
  let priority = Math.max(100, (Math.floor(highest / 100) + 1) * 100);
  while (prios.has(priority) || priority > 65000) {
    priority = priority > 65000 ? 100 : priority + 1;
  }
  return {name, priority};
}

// rfc3339 is t in UTC to the second, as learn writes times.
function rfc3339(t) {
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toISOString().replace(/\.\d+Z$/, 'Z');
}

// yamlString quotes s as a YAML double-quoted scalar: JSON's escapes, plus
// the characters YAML does not allow unescaped.
export function yamlString(s) {
  return JSON.stringify(String(s)).replace(/[\u007f-\u009f\u2028\u2029\ufeff]/g,
    (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

// comment makes s safe inside a YAML comment (one line, printable).
function comment(s) {
  return String(s).replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\ufeff]/g, '?');
}

// ruleName turns s into a valid rule name exactly as learn does: every
// character but letters, digits, '_', '.' and '-' becomes '-', an 'r' goes
// before a first character that is not a letter or digit, and a name over
// 80 characters keeps 62 and gains a hash of the whole.
export function ruleName(s) {
  const bytes = new TextEncoder().encode(String(s));
  let out = '';
  for (const c of bytes) {
    const ch = String.fromCharCode(c);
    out += /[A-Za-z0-9_.-]/.test(ch) ? ch : '-';
  }
  if (!/^[A-Za-z0-9]/.test(out)) out = 'r' + out;
  if (out.length > 80) out = out.slice(0, 62) + '-' + fnv32a(bytes).toString(16).padStart(8, '0');
  return out;
}

// fnv32a is the 32-bit FNV-1a hash of bytes.
function fnv32a(bytes) {
  let h = 0x811c9dc5;
  for (const b of bytes) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

// hostOf is the host of "IP:PORT", "[IPv6]:PORT" or a bare address.
export function hostOf(a) {
  if (!a) return '';
  const m = a.match(/^\[([^\]]*)\](?::\d+)?$/);
  if (m) return m[1];
  const i = a.lastIndexOf(':');
  if (i > 0 && a.indexOf(':') === i) return a.slice(0, i); // IPv4:port or name:port
  return a; // bare IPv4 or IPv6
}

function portOf(a) {
  const m = String(a).match(/:(\d+)$/);
  return m ? m[1] : '';
}

function joinHostPort(host, port) {
  return (host.includes(':') ? `[${host}]` : host) + ':' + port;
}

function trimDot(s) {
  return s.endsWith('.') && s.length > 1 ? s.slice(0, -1) : s;
}

function str(v) {
  return v === undefined || v === null ? '' : String(v);
}
