// The workers' print(), logging and log notices as JSON lines, through pino.
//
//   npm run build                      # once: the example imports the built package
//   node examples/pino-logs.mjs        # JSON lines on stdout (pipe them to `npx pino-pretty`)
//
// With `logs: 'events'` a worker's stderr lines are not written anywhere: each one is a
// `worker_log` event ({ workerId, pid, line }), here logged by a pino child logger per worker
// process (bound to its worker id and pid), at a level read from the line:
//
//   "[debug] order 42 done"             a log notice (ctx.log(message, level) in a handler)
//   "WARNING shop.orders: order 42 ..."  Python's logging, in the format examples/handlers/logging_demo.py sets
//   "Traceback (most recent call...", its indented lines and its last line: error
//   anything else                        print() output: info
//
// Environment: LOG_LEVEL (default debug), PYVISOR_PYTHON (the interpreter).
import pino from 'pino';
import { createPool } from 'pyvisor';

const logger = pino({ name: 'app', level: process.env.LOG_LEVEL ?? 'debug' });

/** Python's level names and ctx.log's, as pino's. */
const LEVELS = { debug: 'debug', info: 'info', warning: 'warn', warn: 'warn', error: 'error', critical: 'fatal', fatal: 'fatal' };

const inTraceback = new Set(); // "worker_1 4242" while that process is writing a traceback

/** A worker's stderr line as { level, msg, ...fields }. */
function parse(key, line) {
  if (line.startsWith('Traceback (most recent call last):')) inTraceback.add(key);
  if (inTraceback.has(key)) {
    if (!/^(\s|Traceback \()/.test(line)) inTraceback.delete(key); // "RuntimeError: ...": its last line
    return { level: 'error', msg: line, source: 'traceback' };
  }
  let m = /^\[(\w+)\] (.*)$/s.exec(line); // a log notice: "[level] message"
  if (m && LEVELS[m[1].toLowerCase()]) return { level: LEVELS[m[1].toLowerCase()], msg: m[2], source: 'notice' };
  m = /^(DEBUG|INFO|WARNING|ERROR|CRITICAL) ([\w.]+): (.*)$/s.exec(line); // logging: "LEVEL logger: message"
  if (m) return { level: LEVELS[m[1].toLowerCase()], msg: m[3], source: 'logging', logger: m[2] };
  return { level: 'info', msg: line, source: 'stderr' }; // print(), anything else
}

const children = new Map(); // one child logger per worker process: "worker_1 4242" -> logger
function workerLogger(key, workerId, pid) {
  let child = children.get(key);
  if (!child) children.set(key, (child = logger.child({ worker: workerId, workerPid: pid })));
  return child;
}

const pool = await createPool({
  poolSize: 2,
  logs: 'events', // stderr lines only as worker_log events (not on this process's stderr)
  handlers: [new URL('./handlers/logging_demo.py', import.meta.url)],
});
pool.on('worker_log', ({ workerId, pid, line }) => {
  const key = `${workerId} ${pid}`;
  const { level, msg, ...fields } = parse(key, line);
  workerLogger(key, workerId, pid)[level](fields, msg);
});
pool.on('worker_restarted', (e) => logger.warn({ worker: e.workerId, oldPid: e.oldPid, newPid: e.newPid, reason: e.reason }, 'worker restarted'));

logger.info({ pids: pool.workers().map((w) => w.pid) }, 'pool started');
const results = await Promise.all([
  pool.execute('process_order', { order: 42 }),
  pool.execute('process_order', { order: 43, late: true }),
  pool.execute('fail_order', { order: 44 }),
]);
logger.info({ results }, 'orders processed');
await pool.stop(); // every worker's last stderr lines are logged before stop() resolves
logger.info('pool stopped');
