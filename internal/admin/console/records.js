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

// learnSnippet is a policy fragment that allows the record's flow: one
// application rule (the name, with its http:PORT or https:PORT) or, for a
// flow without a name, one network rule (protocol, address, port).
export function learnSnippet(rec) {
  const v = view(rec);
  const dns = rec.msg === 'dns decision';
  const srcIP = hostOf(v.src);
  const source = srcIP ? srcIP + (srcIP.includes(':') ? '/128' : '/32') : '*';
  const lines = [
    '# "allow this": one decision record as a policy fragment, in the shape',
    '# `airlock policy learn` writes (learn groups sources into the configured',
    '# node and pod ranges and collects every record; run it for the whole',
    '# picture). Merge under policy.ruleCollectionGroups of airlock.yaml and pick',
    '# priorities no other group or collection uses; check with',
    '# `airlock policy check`.',
  ];
  if (v.rule) {
    lines.push(`# This flow was denied by the rule ${comment(v.rule)}: an allow takes effect`);
    lines.push('# only in a group or collection processed before that rule.');
  }
  let coll;
  let rule;
  const evidence = `# seen ${comment(v.time)}: ${comment(v.component)} ${comment(str(rec.verdict))}` +
    `${v.wouldDeny ? ' (would deny, report mode)' : ''} ${comment(v.reason)} from ${comment(v.src)}`;
  if (v.name) {
    let port = Number(rec.port) || 443;
    let scheme = rec.app === 'http' ? 'http' : 'https';
    if (dns) {
      port = 443;
      scheme = 'https';
    }
    coll = {name: 'learned-application', type: 'application'};
    rule = [
      evidence,
      dns ? '# (a DNS question carries no port: https:443 assumed, change it to what the client uses)' : null,
      `- name: ${yamlString(ruleName('allow-' + v.name + '-' + port))}`,
      `  protocols: [${yamlString(scheme + ':' + port)}]`,
      `  sourceAddresses: [${yamlString(source)}]`,
      `  targetFqdns: [${yamlString(v.name)}]`,
    ];
  } else {
    const dstIP = hostOf(str(rec.dst));
    const proto = (str(rec.proto) || 'tcp').toUpperCase();
    const port = proto === 'ICMP' ? '*' : str(rec.port) || portOf(str(rec.dst)) || '*';
    coll = {name: 'learned-network', type: 'network'};
    rule = [
      evidence,
      `- name: ${yamlString(ruleName('allow-' + dstIP + '-' + proto.toLowerCase() + '-' + port))}`,
      `  protocols: [${yamlString(proto)}]`,
      `  sourceAddresses: [${yamlString(source)}]`,
      `  destinationAddresses: [${yamlString(dstIP ? dstIP + (dstIP.includes(':') ? '/128' : '/32') : '*')}]`,
      `  destinationPorts: [${yamlString(port)}]`,
    ];
  }
  lines.push(
    'policy:',
    '  ruleCollectionGroups:',
    '    - name: learned',
    '      priority: 65000',
    '      ruleCollections:',
    `        - name: ${coll.name}`,
    `          type: ${coll.type}`,
    '          priority: 65000',
    '          action: allow',
    '          rules:');
  for (const l of rule) {
    if (l !== null) lines.push('            ' + l);
  }
  return lines.join('\n') + '\n';
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

// ruleName turns s into a valid rule name: letters, digits, '_', '.', '-',
// starting with a letter or digit, at most 80 characters.
export function ruleName(s) {
  let n = String(s).replace(/\*/g, 'wildcard').replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  if (!n) n = 'learned';
  return n.slice(0, 80).replace(/[^A-Za-z0-9]+$/, '') || 'learned';
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
