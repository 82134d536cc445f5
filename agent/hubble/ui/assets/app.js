// Hubble UI: namespace picker, service map (SVG) and flow table over /api (agent/hubble/ui).
'use strict';

const params = new URLSearchParams(location.search);
const state = {
  namespace: params.get('namespace') || '',
  verdict: params.get('verdict') || '',
  text: params.get('q') || '',
  flows: [],
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

function renderFlows() {
  const body = document.querySelector('#flows tbody');
  const text = state.text.toLowerCase();
  const shown = state.flows.filter((f) =>
    (!state.verdict || f.verdict === state.verdict) &&
    (!text || [f.source, f.destination, f.type, f.summary, f.drop_reason].join(' ').toLowerCase().includes(text)));
  body.replaceChildren(...shown.map((f) => {
    const tr = document.createElement('tr');
    tr.className = `flow verdict-${f.verdict}`;
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
    renderMap(data.map);
    renderFlows();
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
