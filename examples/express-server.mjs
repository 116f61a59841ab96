// An Express server with a pool of Python workers per process, shut down gracefully on SIGTERM.
//
//   npm run build                                       # once: the example imports the built package
//   node examples/express-server.mjs                    # handlers: examples/handlers/app.py
//   curl -s localhost:3000/echo -d '{"hello":"world"}'  # POST /<command> with JSON args
//
// One pool per Node process: under a process manager or the cluster module each process owns
// its own workers (a pool is not shared across processes; pyvisor/cluster is for that).
//
// Errors: a pyvisor error becomes an HTTP status by its `code` (STATUS below), with the error as
// JSON (`toWire`, without the Python traceback: that is for your logs, not for your clients).
//
// Shutdown: on SIGTERM or SIGINT the server stops accepting connections and answers requests
// that arrive on open connections with 503; the requests in flight finish (their responses
// close their connections); then `pool.stop()` lets running commands answer and ends every
// worker; then the process exits 0 with nothing left behind.
//
// Environment: PORT (default 3000; 0 picks a free one), HANDLERS (comma-separated handler files
// or modules, default examples/handlers/app.py), PYVISOR_PYTHON (the interpreter).
import express from 'express';
import { createPool, toWire } from 'pyvisor';

const STATUS = {
  INVALID_OPTION: 400,
  NOT_SERIALIZABLE: 400,
  PYTHON_ERROR: 422,
  POOL_TIMEOUT: 503,
  POOL_SATURATED: 503,
  POOL_CLOSED: 503,
  REQUEST_TIMEOUT: 504,
};

const pool = await createPool({
  handlers: process.env.HANDLERS ? process.env.HANDLERS.split(',') : [new URL('./handlers/app.py', import.meta.url)],
  logs: 'inherit', // the workers' print() and tracebacks on this process's stderr, prefixed [worker_N pid]
});

let draining = false;
const app = express();

// While draining, new requests (on connections opened before) get 503, and every response
// closes its connection, so that server.close() is not held open by idle keep-alive sockets.
app.use((req, res, next) => {
  if (draining) return res.status(503).set('Connection', 'close').json({ code: 'SHUTTING_DOWN', message: 'the server is shutting down' });
  next();
});
// Any body is JSON (curl -d sends form-encoded headers); primitives too ("1", "\"text\"").
app.use(express.json({ type: () => true, strict: false }));

app.post('/:command', async (req, res) => {
  const result = await pool.execute(req.params.command, req.body ?? null, {
    sessionId: req.get('x-session-id') ?? null, // a session's state lives in one worker: pass one to use it
    timeout: 10_000,
  });
  if (draining) res.set('Connection', 'close');
  res.json(result);
});

// Express 5 sends a rejected async handler here.
app.use((error, req, res, _next) => {
  if (draining) res.set('Connection', 'close');
  if (error?.type === 'entity.parse.failed') return res.status(400).json({ code: 'BAD_JSON', message: error.message });
  const { fields: { traceback: _traceback, ...fields } = {}, ...wire } = toWire(error);
  const status = fields.pythonType === 'UnknownCommand' ? 404 : STATUS[wire.code] ?? 500;
  console.error(`${req.method} ${req.path} -> ${status} ${wire.code}: ${wire.message.split('\n')[0]}`);
  res.status(status).json({ ...wire, fields });
});

const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', (error) => {
  if (error) throw error;
  const { port } = server.address();
  const pids = pool.workers().map((w) => w.pid);
  console.log(`listening on http://127.0.0.1:${port} with ${pids.length} Python workers (pids ${pids.join(', ')})`);
});

async function shutdown(signal) {
  if (draining) return;
  draining = true;
  const closed = new Promise((resolve) => server.close(resolve)); // no new connections; in-flight requests finish
  console.log(`${signal}: draining`);
  await closed;
  await pool.stop(); // running commands answer, then every worker is gone
  console.log('stopped: no worker left');
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
