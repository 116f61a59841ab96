// A web server with a pool of Python workers per process, shut down gracefully on SIGTERM.
//
//   npm run build                                     # once: the example imports the built package
//   HANDLERS=./my_handlers.py node examples/http-server.mjs
//   curl -s localhost:3000/echo -d '{"hello":"world"}'  # POST /<command> with JSON args
//
// One pool per Node process (under a process manager or the cluster module, each process owns
// its own workers). On SIGTERM or SIGINT the server stops accepting connections, requests in
// flight finish, `pool.stop()` lets running commands answer and then ends every worker: nothing
// is left behind. A pyvisor error becomes an HTTP status by its code, with the error as JSON.
//
// Environment: PORT (default 3000; 0 picks a free one), HANDLERS (comma-separated handler
// files or modules), PYVISOR_PYTHON (the interpreter).
import { createServer } from 'node:http';
import { createPool, toWire } from 'pyvisor';

const STATUS = { INVALID_OPTION: 400, NOT_SERIALIZABLE: 400, PYTHON_ERROR: 422, POOL_TIMEOUT: 503, POOL_SATURATED: 503, REQUEST_TIMEOUT: 504, POOL_CLOSED: 503 };

const pool = await createPool({
  handlers: (process.env.HANDLERS ?? '').split(',').filter(Boolean),
  logs: 'inherit', // the workers' print() and tracebacks on this process's stderr, prefixed
});

const server = createServer(async (req, res) => {
  const command = decodeURIComponent((req.url ?? '/').slice(1).split('?')[0] ?? '');
  let body = '';
  for await (const chunk of req) body += chunk;
  const send = (status, value) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(value));
  };
  try {
    const args = body ? JSON.parse(body) : null;
    const sessionId = req.headers['x-session-id'] ?? null;
    send(200, await pool.execute(command, args, { sessionId, timeout: 10_000 }));
  } catch (error) {
    if (error instanceof SyntaxError) return send(400, { code: 'BAD_JSON', message: error.message });
    const wire = toWire(error);
    send(STATUS[wire.code] ?? 500, wire);
  }
});

server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  const { port } = server.address();
  console.log(`listening on http://127.0.0.1:${port} with ${pool.workers().length} Python workers (pids ${pool.workers().map((w) => w.pid).join(', ')})`);
});

let stopping = false;
async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: draining`);
  await new Promise((resolve) => server.close(resolve)); // no new connections; in-flight ones finish
  await pool.stop(); // running commands answer, then every worker is gone
  console.log('stopped: no worker left');
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
