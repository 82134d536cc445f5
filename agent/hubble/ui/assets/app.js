// Hubble UI: namespace picker, service map (SVG), flow table and a details panel for the
// selected flow or edge (with its L7: HTTP, DNS) over /api (agent/hubble/ui).
'use strict';

const params = new URLSearchParams(location.search);
const state = {
  namespace: params.get('namespace') || '',
  verdict: params.get('verdict') || '',
  text: params.get('q') || '',
  flows: [],
  edges: [],
  selected: null,  // {kind: 'flow', key} or {kind: 'edge', key}: the details panel's subject
};
const svgNs = 'http://www.w3.org/2000/svg';
const box = { w: 170, h: 40, colGap: 200, rowGap: 22, pad: 26 };

function el(tag, attrs, text) {
  const e = document.createElementNS(svgNs, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

async function getJson(url) {
  const res = await fetch(url, { cache: 'no-store' });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

// Columns by depth: a node with no incoming edge is at 0, others one right of their
// furthest caller (cycles stop at the number of nodes).
function depths(nodes, edges) {
  const depth = new Map(nodes.map((n) => [n.id, 0]));
  for (let round = 0; round < nodes.length; round++) {
    let changed = false;
    for (const e of edges) {
      if (e.from === e.to) continue;
      const d = depth.get(e.from) + 1;
      if (d > depth.get(e.to) && d < nodes.length) { depth.set(e.to, d); changed = true; }
    }
    if (!changed) break;
  }
  return depth;
}

// Namespaces as bands (the picked one first), workloads in columns by depth inside them.
function renderMap(map) {
  const svg = document.getElementById('map');
  svg.replaceChildren();
  const depth = depths(map.nodes, map.edges);
  const groups = new Map();
  for (const n of map.nodes) {
    const g = n.namespace || (n.kind === 'reserved' ? 'reserved' : 'outside the cluster');
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(n);
  }
  const order = [...groups.keys()].sort((a, b) =>
    (a === state.namespace ? -1 : b === state.namespace ? 1 : a.localeCompare(b)));
  const pos = new Map();
  let y = 10;
  let width = 400;
  const groupLayer = el('g', { id: 'groups' });
  for (const g of order) {
    const members = groups.get(g).sort((a, b) => depth.get(a.id) - depth.get(b.id) || a.name.localeCompare(b.name));
    const rows = new Map();
    for (const n of members) {
      const col = depth.get(n.id);
      const row = rows.get(col) || 0;
      rows.set(col, row + 1);
      pos.set(n.id, { x: box.pad + col * (box.w + box.colGap), y: y + box.pad + row * (box.h + box.rowGap) });
    }
    const maxRows = Math.max(...rows.values());
    const maxCol = Math.max(...rows.keys());
    const gw = box.pad * 2 + (maxCol + 1) * box.w + maxCol * box.colGap;
    const gh = box.pad * 2 + maxRows * box.h + (maxRows - 1) * box.rowGap;
    const group = el('g', { class: 'ns-group', 'data-namespace': g });
    group.append(el('rect', { x: 4, y, width: gw, height: gh, rx: 8 }), el('text', { x: 12, y: y + 16 }, g));
    groupLayer.append(group);
    width = Math.max(width, gw + 10);
    y += gh + 16;
  }
  svg.append(groupLayer);
  const edgeLayer = el('g', { id: 'edges' });
  for (const e of map.edges) {
    const a = pos.get(e.from);
    const b = pos.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + box.w, y1 = a.y + box.h / 2, x2 = b.x, y2 = b.y + box.h / 2;
    const mx = (x1 + x2) / 2;
    const g = el('g', {
      class: `edge ${e.verdict}`, 'data-from': e.from, 'data-to': e.to,
      'data-protocol': e.protocol, 'data-port': e.port, 'data-verdict': e.verdict,
    });
    g.append(el('path', { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}` }));
    const label = `${e.protocol}/${e.port} ${e.verdict === 'dropped' ? 'DROPPED' : e.verdict === 'mixed' ? 'FORWARDED+DROPPED' : 'FORWARDED'}`;
    const t = el('text', { x: mx, y: (y1 + y2) / 2 - 4, 'text-anchor': 'middle', class: 'edge-label' }, label);
    g.append(t);
    (e.l7 || []).forEach((r, i) => g.append(el('text', { x: mx, y: (y1 + y2) / 2 + 10 + i * 12, 'text-anchor': 'middle', class: 'edge-l7' }, r)));
    g.addEventListener('click', () => select({ kind: 'edge', key: edgeKey(e) }));
    if (state.selected && state.selected.kind === 'edge' && state.selected.key === edgeKey(e)) g.classList.add('selected');
    edgeLayer.append(g);
  }
  svg.append(edgeLayer);
  const nodeLayer = el('g', { id: 'nodes' });
  for (const n of map.nodes) {
    const p = pos.get(n.id);
    const g = el('g', { class: `node ${n.kind}`, 'data-id': n.id, 'data-namespace': n.namespace, transform: `translate(${p.x},${p.y})` });
    g.append(el('rect', { width: box.w, height: box.h, rx: 6 }), el('text', { x: 10, y: 25 }, n.name));
    nodeLayer.append(g);
  }
  svg.append(nodeLayer);
  svg.setAttribute('height', Math.max(y, 60));
  svg.setAttribute('viewBox', `0 0 ${width} ${Math.max(y, 60)}`);
}

const flowKey = (f) => [f.time, f.node, f.source, f.destination, f.type, f.summary].join('|');
const edgeKey = (e) => [e.from, e.to, e.protocol, e.port].join('|');

// Hubble's DNS response codes by number.
const rcodes = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

// The path of a URL ("http://deathstar/v1/exhaust-port" -> "/v1/exhaust-port").
function urlPath(url) {
  try { return new URL(url).pathname; } catch (_) { return url; }
}

function dl(rows) {
  const d = document.createElement('dl');
  for (const [cls, k, v] of rows) {
    if (v === undefined || v === null || v === '') continue;
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.className = cls;
    dd.textContent = v;
    d.append(dt, dd);
  }
  return d;
}

// The L7 part of a flow: HTTP method, URL, path, status and latency, or the DNS query and its
// answer, as Hubble UI's flow details show them.
function l7Details(l7) {
  const h3 = document.createElement('h3');
  const section = document.createElement('section');
  section.className = 'l7';
  if (l7.http) {
    const h = l7.http;
    h3.textContent = `HTTP ${l7.type === 'RESPONSE' ? 'response' : 'request'}`;
    section.append(h3, dl([
      ['l7-method', 'Method', h.method],
      ['l7-url', 'URL', h.url],
      ['l7-path', 'Path', urlPath(h.url)],
      ['l7-protocol', 'Protocol', h.protocol],
      ['l7-status', 'Status', h.code ? String(h.code) : ''],
      ['l7-latency', 'Latency', l7.type === 'RESPONSE' && l7.latency_ns ? `${(l7.latency_ns / 1e6).toFixed(2)} ms` : ''],
      ['l7-headers', 'Headers', (h.headers || []).map((x) => `${x.key}: ${x.value}`).join('; ')],
    ]));
  } else if (l7.dns) {
    const d = l7.dns;
    const answered = l7.type === 'RESPONSE';
    h3.textContent = `DNS ${answered ? 'response' : 'query'}`;
    section.append(h3, dl([
      ['l7-dns-query', 'Query', d.query],
      ['l7-dns-qtypes', 'Types', (d.qtypes || []).join(', ')],
      ['l7-dns-rcode', 'Response code', answered ? (rcodes[d.rcode] || String(d.rcode)) : ''],
      ['l7-dns-ips', 'IPs', (d.ips || []).join(', ')],
      ['l7-dns-cnames', 'CNAMEs', (d.cnames || []).join(', ')],
      ['l7-dns-ttl', 'TTL', answered && d.ttl ? `${d.ttl} s` : ''],
    ]));
  } else {
    h3.textContent = 'L7';
    section.append(h3, dl([['l7-type', 'Type', l7.type]]));
  }
  return section;
}

// The details panel for the selected flow or edge (empty and hidden when nothing is).
function renderDetails() {
  const panel = document.getElementById('details');
  const body = document.getElementById('details-body');
  const title = document.getElementById('details-title');
  const sel = state.selected;
  const flow = sel && sel.kind === 'flow' && state.flows.find((f) => flowKey(f) === sel.key);
  const edge = sel && sel.kind === 'edge' && state.edges.find((e) => edgeKey(e) === sel.key);
  if (!flow && !edge) {
    panel.hidden = true;
    panel.dataset.kind = '';
    body.replaceChildren();
    return;
  }
  panel.hidden = false;
  if (flow) {
    panel.dataset.kind = 'flow';
    title.textContent = 'Flow details';
    body.replaceChildren(dl([
      ['time', 'Time', flow.time], ['node', 'Node', flow.node], ['source', 'Source', flow.source],
      ['destination', 'Destination', flow.destination], ['type', 'Type', flow.type],
      ['verdict', 'Verdict', flow.verdict_text], ['drop-reason', 'Drop reason', flow.verdict === 'DROPPED' ? flow.drop_reason : ''],
      ['summary', 'Summary', flow.summary],
    ]));
    if (flow.l7) body.append(l7Details(flow.l7));
    return;
  }
  panel.dataset.kind = 'edge';
  title.textContent = 'Connection details';
  const name = (id) => (state.nodes.find((n) => n.id === id) || { name: id }).name;
  body.replaceChildren(dl([
    ['source', 'From', name(edge.from)], ['destination', 'To', name(edge.to)],
    ['port', 'Port', `${edge.protocol}/${edge.port}`], ['verdict', 'Verdict', edge.verdict.toUpperCase()],
  ]));
  // The L7 records on this connection: requests from->to and the responses back.
  const l7 = state.flows.filter((f) => f.l7 && (
    (f.source_id === edge.from && f.destination_id === edge.to && f.destination_port === edge.port) ||
    (f.is_reply && f.source_id === edge.to && f.destination_id === edge.from)));
  if (!l7.length) return;
  const table = document.createElement('table');
  table.className = 'l7-records';
  const head = document.createElement('tr');
  for (const c of ['Time', 'Kind', 'Method', 'Path', 'Status', 'Verdict']) {
    const th = document.createElement('th');
    th.textContent = c;
    head.append(th);
  }
  table.append(head);
  for (const f of l7) {
    const h = f.l7.http || {};
    const d = f.l7.dns;
    const tr = document.createElement('tr');
    tr.className = 'l7-record';
    for (const [cls, v] of [['time', f.time.slice(11, 23)], ['kind', `${h.method ? 'HTTP' : d ? 'DNS' : 'L7'} ${f.l7.type.toLowerCase()}`],
      ['method', h.method || ''], ['path', h.url ? urlPath(h.url) : d ? d.query : ''],
      ['status', h.code ? String(h.code) : ''], ['verdict', f.verdict_text]]) {
      const td = document.createElement('td');
      td.className = cls;
      td.textContent = v;
      tr.append(td);
    }
    table.append(tr);
  }
  const h3 = document.createElement('h3');
  h3.textContent = `L7 (${l7.length})`;
  body.append(h3, table);
}

function select(sel) {
  state.selected = sel;
  renderDetails();
  renderFlows();
  for (const g of document.querySelectorAll('#edges .edge')) {
    const key = [g.dataset.from, g.dataset.to, g.dataset.protocol, g.dataset.port].join('|');
    g.classList.toggle('selected', !!sel && sel.kind === 'edge' && sel.key === key);
  }
}

function renderFlows() {
  const body = document.querySelector('#flows tbody');
  const text = state.text.toLowerCase();
  const shown = state.flows.filter((f) =>
    (!state.verdict || f.verdict === state.verdict) &&
    (!text || [f.source, f.destination, f.type, f.summary, f.drop_reason].join(' ').toLowerCase().includes(text)));
  body.replaceChildren(...shown.map((f) => {
    const tr = document.createElement('tr');
    tr.className = `flow verdict-${f.verdict}${f.l7 ? ' l7' : ''}`;
    if (state.selected && state.selected.kind === 'flow' && state.selected.key === flowKey(f)) tr.classList.add('selected');
    tr.addEventListener('click', () => select({ kind: 'flow', key: flowKey(f) }));
    for (const [cls, v] of [['time', f.time], ['node', f.node], ['source', f.source], ['destination', f.destination],
      ['type', f.type], ['verdict', f.verdict_text], ['summary', f.summary]]) {
      const td = document.createElement('td');
      td.className = cls;
      td.textContent = v;
      tr.append(td);
    }
    return tr;
  }));
  document.getElementById('flow-count').textContent = `(${shown.length} of ${state.flows.length})`;
}

async function loadNamespaces() {
  const picker = document.getElementById('namespace');
  const { namespaces } = await getJson('/api/namespaces');
  if (!state.namespace && namespaces.length) state.namespace = namespaces.includes('default') ? 'default' : namespaces[0];
  if (state.namespace && !namespaces.includes(state.namespace)) namespaces.push(state.namespace);
  picker.replaceChildren(...namespaces.map((n) => {
    const o = document.createElement('option');
    o.value = n;
    o.textContent = n;
    if (n === state.namespace) o.setAttribute('selected', '');
    return o;
  }));
}

async function refresh() {
  const status = document.getElementById('status');
  try {
    const data = await getJson(`/api/flows?namespace=${encodeURIComponent(state.namespace)}`);
    if (data.namespace !== state.namespace) return;  // an answer for a namespace left since
    state.flows = data.flows;
    state.edges = data.map.edges;
    state.nodes = data.map.nodes;
    renderMap(data.map);
    renderFlows();
    renderDetails();
    status.textContent = `${data.flows.length} flows, updated ${new Date().toLocaleTimeString()}`;
    status.className = '';
    document.body.dataset.loaded = 'true';
  } catch (err) {
    status.textContent = `error: ${err.message}`;
    status.className = 'error';
  }
}

function syncUrl() {
  const p = new URLSearchParams();
  if (state.namespace) p.set('namespace', state.namespace);
  if (state.verdict) p.set('verdict', state.verdict);
  if (state.text) p.set('q', state.text);
  history.replaceState(null, '', `?${p}`);
}

async function main() {
  document.getElementById('verdict-filter').value = state.verdict;
  document.getElementById('text-filter').value = state.text;
  document.getElementById('namespace').addEventListener('change', (e) => {
    state.namespace = e.target.value;
    document.body.dataset.loaded = 'false';
    syncUrl();
    refresh();
  });
  document.getElementById('verdict-filter').addEventListener('change', (e) => {
    state.verdict = e.target.value;
    syncUrl();
    renderFlows();
  });
  document.getElementById('details-close').addEventListener('click', () => select(null));
  document.getElementById('text-filter').addEventListener('input', (e) => {
    state.text = e.target.value;
    syncUrl();
    renderFlows();
  });
  try {
    await loadNamespaces();
  } catch (err) {
    document.getElementById('status').textContent = `error: ${err.message}`;
  }
  await refresh();
  setInterval(refresh, 2000);
}

main();
