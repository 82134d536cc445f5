// Drives Hubble UI in a running headless Chromium over the DevTools protocol, as a user would:
// open the page, pick a namespace in the picker, pick a verdict in the flow filter. Prints one
// JSON object per step with what the page shows. Node's own WebSocket and fetch; no npm package.
//   node --experimental-websocket drive_page.js DEVTOOLS_PORT PAGE_URL
// With `l7 SCREENSHOT.png`: clicks L7 flows and an edge instead and reads the details panel
// (HTTP request, its response, the edge's L7 records, a DNS query), then screenshots the page.
//   node --experimental-websocket drive_page.js DEVTOOLS_PORT PAGE_URL l7 SCREENSHOT.png
'use strict';

const [port, pageUrl, mode, screenshot] = process.argv.slice(2);

async function main() {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const page = targets.find((t) => t.type === 'page');
  if (!page) throw new Error('no page target');
  const ws = new WebSocket(page.webSocketDebuggerUrl);
  await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail; });
  let next = 1;
  const pending = new Map();
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.id && pending.has(msg.id)) {
      pending.get(msg.id)(msg);
      pending.delete(msg.id);
    }
  };
  const send = (method, params = {}) => new Promise((ok) => {
    const id = next++;
    pending.set(id, ok);
    ws.send(JSON.stringify({ id, method, params }));
  });
  const evaluate = async (expression) => {
    const r = await send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true });
    if (r.result.exceptionDetails) throw new Error(JSON.stringify(r.result.exceptionDetails));
    return r.result.result.value;
  };
  const waitFor = async (expression, what) => {
    const deadline = Date.now() + 20000;
    while (Date.now() < deadline) {
      if (await evaluate(expression)) return;
      await new Promise((ok) => setTimeout(ok, 50));
    }
    throw new Error(`timed out waiting for ${what}`);
  };
  // What the page shows now.
  const snapshot = (step) => evaluate(`(() => ({
    step: ${JSON.stringify(step)},
    namespace: document.getElementById('namespace').value,
    options: [...document.querySelectorAll('#namespace option')].map((o) => o.value),
    nodes: [...document.querySelectorAll('#map .node')].map((n) => n.dataset.id),
    dropped_edges: [...document.querySelectorAll('#map .edge.dropped')].map((e) => e.dataset.from + '>' + e.dataset.to + ':' + e.dataset.protocol + '/' + e.dataset.port),
    rows: document.querySelectorAll('#flows tbody tr').length,
    dropped_rows: document.querySelectorAll('#flows tbody tr.verdict-DROPPED').length,
    url: location.search,
  }))()`);
  const pick = (id, value) => evaluate(`(() => {
    const s = document.getElementById(${JSON.stringify(id)});
    s.value = ${JSON.stringify(value)};
    s.dispatchEvent(new Event('change', { bubbles: true }));
  })()`);

  await send('Page.enable');
  await send('Runtime.enable');
  await send('Page.navigate', { url: pageUrl });
  await waitFor(`document.body && document.body.dataset.loaded === 'true'`, 'the first load');
  if (mode === 'l7') {
    await l7Steps(evaluate, waitFor, send);
    ws.close();
    return;
  }
  console.log(JSON.stringify(await snapshot('opened')));

  await pick('namespace', 'kube-system');
  await waitFor(`document.body.dataset.loaded === 'true' && !document.querySelector('#map .node[data-id="default/deathstar"]')`,
    'the kube-system map');
  console.log(JSON.stringify(await snapshot('picked kube-system')));

  await pick('namespace', 'default');
  await waitFor(`document.body.dataset.loaded === 'true' && document.querySelector('#map .node[data-id="default/deathstar"]')`,
    'the default map');
  await pick('verdict-filter', 'DROPPED');
  console.log(JSON.stringify(await snapshot('filtered DROPPED')));
  ws.close();
}

// The details panel as the page shows it.
const panel = (step) => `(() => {
  const p = document.getElementById('details');
  const dd = (cls) => { const e = p.querySelector('dd.' + cls); return e ? e.textContent : null; };
  return {
    step: ${JSON.stringify(step)},
    hidden: p.hidden,
    kind: p.dataset.kind,
    title: document.getElementById('details-title').textContent,
    l7_heading: (p.querySelector('section.l7 h3') || {}).textContent || null,
    source: dd('source'), destination: dd('destination'), verdict: dd('verdict'),
    method: dd('l7-method'), url: dd('l7-url'), path: dd('l7-path'), status: dd('l7-status'),
    latency: dd('l7-latency'), protocol: dd('l7-protocol'),
    dns_query: dd('l7-dns-query'), dns_types: dd('l7-dns-qtypes'), dns_rcode: dd('l7-dns-rcode'),
    dns_ips: dd('l7-dns-ips'),
    records: [...p.querySelectorAll('tr.l7-record')].map((r) =>
      [...r.querySelectorAll('td')].slice(1).map((td) => td.textContent).join(' ')),
  };
})()`;

// Clicks the first flow row whose cells contain all of `texts`.
const clickRow = (texts) => `(() => {
  const row = [...document.querySelectorAll('#flows tbody tr')].find((r) =>
    ${JSON.stringify(texts)}.every((t) => r.textContent.includes(t)));
  if (!row) return false;
  row.click();
  return true;
})()`;

async function l7Steps(evaluate, waitFor, send) {
  await waitFor(`document.querySelectorAll('#flows tbody tr.l7').length >= 4`, 'the L7 flows');
  if (!await evaluate(clickRow(['http-request', 'FORWARDED', 'POST']))) throw new Error('no POST row');
  await waitFor(`!document.getElementById('details').hidden`, 'the panel');
  console.log(JSON.stringify(await evaluate(panel('request'))));
  if (!await evaluate(clickRow(['http-response', '200']))) throw new Error('no response row');
  console.log(JSON.stringify(await evaluate(panel('response'))));
  if (!await evaluate(clickRow(['dns-request']))) throw new Error('no DNS row');
  console.log(JSON.stringify(await evaluate(panel('dns'))));
  const clicked = await evaluate(`(() => {
    const e = document.querySelector('#map .edge[data-from="default/tiefighter"][data-to="default/deathstar"]');
    if (!e) return false;
    e.dispatchEvent(new MouseEvent('click', { bubbles: true }));
    return true;
  })()`);
  if (!clicked) throw new Error('no tiefighter edge');
  // The page refreshes every 2 s: the panel must still show the edge after a refresh.
  const before = await evaluate(`document.getElementById('status').textContent`);
  await waitFor(`document.getElementById('status').textContent !== ${JSON.stringify(before)}`, 'a refresh');
  console.log(JSON.stringify(await evaluate(panel('edge'))));
  if (screenshot) {
    const shot = await send('Page.captureScreenshot', { format: 'png' });
    require('fs').writeFileSync(screenshot, Buffer.from(shot.result.data, 'base64'));
  }
  await evaluate(`document.getElementById('details-close').click()`);
  console.log(JSON.stringify(await evaluate(panel('closed'))));
}

main().catch((err) => {
  console.error(String(err && err.stack || err));
  process.exit(1);
});
