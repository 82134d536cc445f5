// Drives Hubble UI in a running headless Chromium over the DevTools protocol, as a user would:
// open the page, pick a namespace in the picker, pick a verdict in the flow filter. Prints one
// JSON object per step with what the page shows. Node's own WebSocket and fetch; no npm package.
//   node --experimental-websocket drive_page.js DEVTOOLS_PORT PAGE_URL
'use strict';

const [port, pageUrl] = process.argv.slice(2);

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

main().catch((err) => {
  console.error(String(err && err.stack || err));
  process.exit(1);
});
