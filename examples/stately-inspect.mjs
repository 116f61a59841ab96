// Watch a pyvisor pool in the Stately inspector (@statelyai/inspect).
//
//   npm run build                      # once: the example imports the built package
//   node examples/stately-inspect.mjs  # opens http://localhost:8080 in your browser
//
// createInspectorServer() serves a small bridge page that embeds https://stately.ai/inspect
// and relays what the pool sends over a local WebSocket: the browser needs internet access
// for the Stately UI (the pool itself does not). Without internet, use the pool's own page:
// `pyvisor inspect` or `await pool.serveInspector()` (docs/INSPECTOR.md).
//
// Environment: PORT (default 8080), NO_OPEN=1 (do not open a browser), DURATION=seconds
// (default: run until Ctrl-C).
import { createInspectorServer } from '@statelyai/inspect/server';
import { createWebSocketInspector } from '@statelyai/inspect';
import { createPool } from 'pyvisor';

const port = Number(process.env.PORT ?? 8080);
const server = createInspectorServer({ port, autoOpen: !process.env.NO_OPEN });

const inspector = createWebSocketInspector({
  url: `ws://localhost:${port}`,
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
const pool = await createPool({ poolSize: 2, inspect: inspector.inspect });
console.log(`inspector on http://localhost:${port} (pool of 2 Python workers; Ctrl-C to stop)`);

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
  server.stop();
  process.exit(0);
}
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
if (process.env.DURATION) setTimeout(stop, Number(process.env.DURATION) * 1000);
