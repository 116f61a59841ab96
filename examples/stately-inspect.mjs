// Watch a pyvisor pool in the Stately inspector (@statelyai/inspect).
//
//   npm run build                      # once: the example imports the built package
//   node examples/stately-inspect.mjs  # then open the URL it prints in a browser
//
// The pool's WebSocket inspector sends every actor, event and snapshot to a small relay on
// 127.0.0.1, which also serves a bridge page embedding https://stately.ai/inspect: the browser
// needs internet access for the Stately UI (the pool itself does not). The relay is written
// here rather than taken from '@statelyai/inspect/server', whose createInspectorServer()
// listens on every network interface and would publish the pool's traffic to the network.
// Without internet, use the pool's own page: `pyvisor inspect` or `await pool.serveInspector()`
// (docs/INSPECTOR.md).
//
// Environment: PORT (default 8080; 0 picks a free one), DURATION=seconds (default: run until
// Ctrl-C).
import { createServer } from 'node:http';
import { WebSocket, WebSocketServer } from 'ws';
import { createWebSocketInspector } from '@statelyai/inspect';
import { createPool } from 'pyvisor';

/** What the relay keeps for a browser that connects late: the pool announces its actors at start. */
const KEEP_MESSAGES = 10_000;

/** The bridge page: Stately's UI in an iframe, fed what arrives on the relay's socket. */
const bridgePage = (wsUrl) => `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>pyvisor in the Stately inspector</title>
<style>html, body, iframe { margin: 0; width: 100%; height: 100%; border: 0; }</style></head>
<body><iframe id="ui" src="https://stately.ai/inspect"></iframe>
<script>
  const ui = document.getElementById('ui');
  const waiting = [];
  let ready = false;
  // The UI says when it listens; until then, what arrives waits.
  addEventListener('message', (e) => {
    if (e.data?.type !== '@statelyai.connected') return;
    ready = true;
    for (const m of waiting.splice(0)) ui.contentWindow.postMessage(m, '*');
  });
  new WebSocket(${JSON.stringify(wsUrl)}).onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (ready) ui.contentWindow.postMessage(m, '*');
    else waiting.push(m);
  };
</script></body></html>`;

/** An HTTP + WebSocket server on 127.0.0.1: every message one client sends goes to the others. */
async function startRelay(port) {
  const kept = [];
  const http = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(bridgePage(`ws://127.0.0.1:${http.address().port}`));
  });
  const wss = new WebSocketServer({ server: http });
  wss.on('connection', (socket) => {
    for (const message of kept) socket.send(message);
    socket.on('message', (data) => {
      const message = data.toString();
      kept.push(message);
      if (kept.length > KEEP_MESSAGES) kept.shift();
      for (const other of wss.clients) if (other !== socket && other.readyState === WebSocket.OPEN) other.send(message);
    });
  });
  await new Promise((resolve, reject) => http.once('error', reject).listen(port, '127.0.0.1', resolve));
  return {
    port: http.address().port,
    stop: () => new Promise((resolve) => {
      for (const socket of wss.clients) socket.terminate();
      wss.close();
      http.close(() => resolve());
    }),
  };
}

const relay = await startRelay(Number(process.env.PORT ?? 8080));

const inspector = createWebSocketInspector({
  url: `ws://127.0.0.1:${relay.port}`,
  // The pool announces its actors while it starts, before the socket is open: keep them all.
  maxDeferredEvents: 10_000,
  // Command arguments and results travel in events; hide them (drop this to see them).
  sanitizeEvent: (event) => {
    if (!('args' in event) && !('result' in event)) return event;
    const { args, result, ...rest } = event;
    return { ...rest, ...(args !== undefined && { args: '[hidden]' }), ...(result !== undefined && { result: '[hidden]' }) };
  },
});

// Every actor of the pool shows up: pool, sessionPool, workers (the supervisor), monitor,
// worker_1, worker_2 (and their process actors), with their events and snapshots.
const pool = await createPool({ poolSize: 2, inspect: inspector.inspect, logs: 'events' });
const pids = pool.workers().map((w) => w.pid).join(', ');
console.log(`inspector on http://127.0.0.1:${relay.port} (pool of 2 Python workers, pids ${pids}; Ctrl-C to stop)`);

let running = true;
const load = (async () => {
  for (let i = 0; running; i++) {
    const sessionId = `user_${i % 3}`;
    await pool.execute('ping', null, { sessionId }).catch(() => {});
    await new Promise((r) => setTimeout(r, 250));
  }
})();

async function stop() {
  running = false;
  await load;
  await pool.stop();
  inspector.stop();
  await relay.stop();
  console.log('stopped');
  process.exit(0);
}
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
if (process.env.DURATION) setTimeout(stop, Number(process.env.DURATION) * 1000);
