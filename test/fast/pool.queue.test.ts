/**
 * The request path of a pool on the simulation: FIFO checkout queue, checkout deadlines,
 * maxQueue, parallelism, Python errors, crashes, request timeouts, aborts and idempotent
 * retries. Every scenario checks the whole stats() object and ends with no fake process alive.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  AbortError,
  PoolClosedError,
  PoolSaturatedError,
  PoolTimeoutError,
  PythonError,
  RequestTimeoutError,
  WorkerCrashedError, InvalidOptionError } from '../../src/errors.js';
import { expectStats, flush, pidsOf, row, setup, workerRows } from './pool.harness.js';

test('a request runs on an idle worker and its result comes back; stats count it', async () => {
  const h = setup();
  await h.pool.whenReady();
  expectStats(h, {});
  assert.equal(await h.pool.execute('echo', { a: [1, 2] }), { a: [1, 2] });
  expectStats(h, { totalCommands: 1 });
  assert.equal(workerRows(h), [row('worker_1', { requests: 1 }), row('worker_2')]);
  await h.finish();
});

test('requests to different workers run in parallel', async () => {
  const h = setup({ poolSize: 3 });
  await h.pool.whenReady();
  const runs = [h.run('slow', 1), h.run('slow', 2), h.run('slow', 3)];
  await flush();
  expectStats(h, { busyWorkers: 3, utilization: 1 });
  await h.advance(99);
  assert.ok(runs.every((r) => !r.settled));
  await h.advance(1);
  assert.equal(runs.map((r) => r.value), [1, 2, 3], 'all three finished at t=100: nothing serialized them');
  assert.equal(h.of('checkin').map((e) => e.runMs), [100, 100, 100]);
  expectStats(h, { totalCommands: 3, latencyMs: { p50: 100, p99: 100 } });
  await h.finish();
});

test('FIFO: waiting callers are served in the order they came', async () => {
  const h = setup({ poolSize: 1 });
  await h.pool.whenReady();
  const first = h.run('slow', 'first');
  const rest = ['b', 'c', 'd', 'e'].map((x) => h.run('slow', x));
  await flush();
  expectStats(h, { poolSize: 1, healthyWorkers: 1, busyWorkers: 1, utilization: 1, queueLength: 4 });
  await h.advance(500);
  assert.ok(first.ok);
  assert.equal(h.of('checkout').map((e) => e.queueMs), [0, 100, 200, 300, 400]);
  assert.equal(rest.map((r) => r.value), ['b', 'c', 'd', 'e']);
  expectStats(h, { poolSize: 1, healthyWorkers: 1, totalCommands: 5, latencyMs: { p50: 100, p99: 100 } });
  await h.finish();
});

test('checkout deadline: a caller still waiting when it passes gets PoolTimeoutError and its request never runs', async () => {
  const h = setup({ poolSize: 1, checkoutTimeout: 50 });
  await h.pool.whenReady();
  const busy = h.run('slow250', 'busy');
  const late = h.run('echo', 'never');
  await flush();
  expectStats(h, { poolSize: 1, healthyWorkers: 1, busyWorkers: 1, utilization: 1, queueLength: 1 });
  await h.advance(49);
  assert.is(late.settled, false);
  await h.advance(1);
  assert.instance(late.error, PoolTimeoutError);
  assert.is(late.error!.code, 'POOL_TIMEOUT');
  assert.match(late.error!.message, 'Pool timeout - all workers busy');
  assert.equal(h.of('timeout'), [{ kind: 'checkout', sessionId: null, command: 'echo', timeoutMs: 50 }]);
  expectStats(h, { poolSize: 1, healthyWorkers: 1, busyWorkers: 1, utilization: 1 });
  await h.advance(200);
  assert.is(busy.value, 'busy');
  assert.equal(h.of('checkout').map((e) => e.command), ['slow250'], 'the timed-out request was never handed to a worker');
  assert.is(h.sim.processOf('worker_1')!.requests, 2, 'the start ping and the one request');
  expectStats(h, { poolSize: 1, healthyWorkers: 1, totalCommands: 1, latencyMs: { p50: 250, p99: 250 } });
  await h.finish();
});

test('a per-call checkoutTimeout overrides the pool default, each caller keeps its own deadline', async () => {
  const h = setup({ poolSize: 1, checkoutTimeout: 1000 });
  await h.pool.whenReady();
  h.run('slow250');
  const short = h.run('echo', 'short', { checkoutTimeout: 30 });
  const long = h.run('echo', 'long');
  await h.advance(30);
  assert.instance(short.error, PoolTimeoutError);
  assert.match(short.error!.message, /within 30 ms/);
  assert.is(long.settled, false);
  await h.advance(220);
  assert.is(long.value, 'long', 'the caller behind the dropped one is served');
  expectStats(h, { poolSize: 1, healthyWorkers: 1, totalCommands: 2, latencyMs: { p50: 0, p99: 250 } });
  await h.finish();
});

test('maxQueue: the caller past the limit gets PoolSaturatedError at once; the others are unaffected', async () => {
  const h = setup({ poolSize: 1, maxQueue: 2 });
  await h.pool.whenReady();
  const busy = h.run('slow');
  const waiting = [h.run('echo', 1), h.run('echo', 2)];
  const over = h.run('echo', 3);
  await flush();
  assert.instance(over.error, PoolSaturatedError);
  assert.is(over.error!.code, 'POOL_SATURATED');
  assert.match(over.error!.message, /maxQueue=2/);
  expectStats(h, { poolSize: 1, healthyWorkers: 1, busyWorkers: 1, utilization: 1, queueLength: 2 });
  await h.advance(100);
  assert.ok(busy.ok);
  assert.equal(waiting.map((r) => r.value), [1, 2]);
  expectStats(h, { poolSize: 1, healthyWorkers: 1, totalCommands: 3, latencyMs: { p50: 0, p99: 100 } });
  await h.finish();
});

test('maxQueue: 0 means nobody waits', async () => {
  const h = setup({ poolSize: 1, maxQueue: 0 });
  await h.pool.whenReady();
  h.run('slow');
  const next = h.run('echo');
  await flush();
  assert.instance(next.error, PoolSaturatedError);
  expectStats(h, { poolSize: 1, healthyWorkers: 1, busyWorkers: 1, utilization: 1 });
  await h.advance(100);
  await h.finish();
});

test('a Python error is a PythonError and keeps the worker and its process', async () => {
  const h = setup({ poolSize: 1 });
  await h.pool.whenReady();
  const pid = h.pid('worker_1');
  const failed = h.run('raise', { message: 'bad input' });
  await flush();
  assert.instance(failed.error, PythonError);
  const error = failed.error as PythonError;
  assert.is(error.code, 'PYTHON_ERROR');
  assert.is(error.pythonType, 'ValueError');
  assert.is(error.message, 'ValueError: bad input');
  assert.match(error.traceback, 'ValueError: bad input');
  assert.is(h.pid('worker_1'), pid, 'same process');
  assert.is(await h.pool.execute('echo', 'after'), 'after');
  assert.equal(h.of('checkin').map((e) => [e.ok, e.error]), [[false, 'PYTHON_ERROR'], [true, undefined]]);
  expectStats(h, { poolSize: 1, healthyWorkers: 1, totalCommands: 2, totalErrors: 1 });
  assert.equal(workerRows(h), [row('worker_1', { requests: 2, errors: 1 })]);
  await h.finish();
});

test('errors in a row past maxConsecutiveErrors replace the worker', async () => {
  const h = setup({ poolSize: 1, maxConsecutiveErrors: 2 });
  await h.pool.whenReady();
  const pid = h.pid('worker_1');
  await h.pool.execute('raise').catch(() => {});
  assert.is(h.pid('worker_1'), pid);
  await h.pool.execute('raise').catch(() => {});
  assert.is.not(h.pid('worker_1'), pid, 'replaced after the second error in a row');
  expectStats(h, { poolSize: 1, healthyWorkers: 1, totalCommands: 2, totalErrors: 2, restarts: 1 });
  await h.finish();
});

test('a crash under a request: that caller gets WorkerCrashedError, the worker is replaced, nobody else is touched', async () => {
  const h = setup();
  await h.pool.whenReady();
  const oldPid = h.pid('worker_1');
  const other = h.run('slow', 'other');
  const dying = h.run('die');
  await flush();
  // `other` took worker_1, so `die` ran on worker_2.
  assert.instance(dying.error, WorkerCrashedError);
  const crash = dying.error as WorkerCrashedError;
  assert.is(crash.code, 'WORKER_CRASHED');
  assert.is(crash.exitCode, 1);
  assert.equal(crash.stderrTail, ['simulated crash in die']);
  assert.is(pidsOf(h.sim, 'worker_2').length, 2, 'worker_2 got a new process');
  assert.is(h.pid('worker_1'), oldPid);
  await h.advance(100);
  assert.is(other.value, 'other');
  assert.equal(h.of('worker_restarted'), [{ workerId: 'worker_2', oldPid: pidsOf(h.sim, 'worker_2')[0], newPid: pidsOf(h.sim, 'worker_2')[1], reason: 'restart' }]);
  expectStats(h, { totalCommands: 2, totalErrors: 1, restarts: 1, latencyMs: { p50: 0, p99: 100 } });
  assert.equal(workerRows(h), [row('worker_1', { requests: 1 }), row('worker_2', { requests: 1, errors: 1, restarts: 1 })]);
  await h.finish();
});

test('a crash is not retried without idempotent', async () => {
  const h = setup();
  await h.pool.whenReady();
  const dying = h.run('die');
  await flush();
  assert.instance(dying.error, WorkerCrashedError);
  assert.is(h.of('checkout').length, 1);
  assert.is(h.sim.processes().filter((p) => !p.alive).length, 1, 'one process died, no second attempt');
  expectStats(h, { totalCommands: 1, totalErrors: 1, restarts: 1 });
  await h.finish();
});

test('idempotent: a request whose worker crashes is retried once on another worker', async () => {
  const h = setup({}, {}, (sim) => sim.handle('flaky', (_a, ctx) => (ctx.workerId === 'worker_1' ? sim.crash(1) : `ok on ${ctx.workerId}`)));
  await h.pool.whenReady();
  const result = await h.pool.execute('flaky', null, { idempotent: true });
  assert.is(result, 'ok on worker_2');
  assert.equal(h.of('checkout').map((e) => e.workerId), ['worker_1', 'worker_2']);
  assert.equal(h.of('checkin').map((e) => [e.workerId, e.ok, e.error]), [['worker_1', false, 'WORKER_CRASHED'], ['worker_2', true, undefined]]);
  expectStats(h, { totalCommands: 2, totalErrors: 1, restarts: 1 });
  await h.finish();
});

test('a request that is not idempotent and crashes its worker: WorkerCrashedError, not poison, the worker replaced in place', async () => {
  const h = setup();
  await h.pool.whenReady();
  const dying = h.run('die');
  await flush();
  assert.instance(dying.error, WorkerCrashedError);
  assert.is((dying.error as WorkerCrashedError).poison, false);
  expectStats(h, { totalCommands: 1, totalErrors: 1, restarts: 1 });
  await h.finish();
});

test('idempotent: retried only once; the second crash reaches the caller as poison', async () => {
  const h = setup();
  await h.pool.whenReady();
  const dying = h.run('die', null, { idempotent: true });
  await flush();
  assert.instance(dying.error, WorkerCrashedError);
  assert.is((dying.error as WorkerCrashedError).poison, true, 'it killed two workers: poison, not retried again');
  assert.match(dying.error!.message, /poison/);
  assert.equal(h.of('checkout').map((e) => e.workerId), ['worker_1', 'worker_2']);
  expectStats(h, { totalCommands: 2, totalErrors: 2, restarts: 2 });
  await h.finish();
});

test('idempotent: Python errors and request timeouts are not retried', async () => {
  const h = setup();
  await h.pool.whenReady();
  const py = h.run('raise', null, { idempotent: true });
  const slow = h.run('hang', null, { idempotent: true, timeout: 40 });
  await h.advance(40);
  assert.instance(py.error, PythonError);
  assert.instance(slow.error, RequestTimeoutError);
  assert.is(h.of('checkout').length, 2);
  expectStats(h, { totalCommands: 2, totalErrors: 2, restarts: 1, latencyMs: { p50: 0, p99: 40 } });
  await h.finish();
});

test('idempotent on a one-worker pool: the retry waits for the replacement process', async () => {
  let calls = 0;
  const h = setup({ poolSize: 1 }, {}, (sim) => sim.handle('once', () => (++calls === 1 ? sim.crash(1) : 'second try')));
  await h.pool.whenReady();
  assert.is(await h.pool.execute('once', null, { idempotent: true }), 'second try');
  assert.is(pidsOf(h.sim, 'worker_1').length, 2);
  expectStats(h, { poolSize: 1, healthyWorkers: 1, totalCommands: 2, totalErrors: 1, restarts: 1 });
  await h.finish();
});

test('request timeout: RequestTimeoutError, the worker is replaced, the next request runs clean', async () => {
  const h = setup({ poolSize: 1, requestTimeout: 1000 });
  await h.pool.whenReady();
  const oldPid = h.pid('worker_1');
  const slow = h.run('hang', null, { timeout: 50 });
  await h.advance(49);
  assert.is(slow.settled, false);
  await h.advance(1);
  assert.instance(slow.error, RequestTimeoutError);
  assert.is(slow.error!.code, 'REQUEST_TIMEOUT');
  assert.match(slow.error!.message, /hang.*50 ms/);
  assert.equal(h.of('timeout'), [{ kind: 'request', workerId: 'worker_1', sessionId: null, command: 'hang', timeoutMs: 50 }]);
  assert.is.not(h.pid('worker_1'), oldPid);
  assert.is(await h.pool.execute('echo', 'clean'), 'clean');
  expectStats(h, { poolSize: 1, healthyWorkers: 1, totalCommands: 2, totalErrors: 1, restarts: 1, latencyMs: { p50: 0, p99: 50 } });
  await h.finish();
});

test('the pool requestTimeout applies when the call gives none', async () => {
  const h = setup({ poolSize: 1, requestTimeout: 300 });
  await h.pool.whenReady();
  const slow = h.run('hang');
  await h.advance(299);
  assert.is(slow.settled, false);
  await h.advance(1);
  assert.instance(slow.error, RequestTimeoutError);
  await h.finish();
});

test('abort while queued: removed at once with AbortError, never runs, the queue moves on', async () => {
  const h = setup({ poolSize: 1 });
  await h.pool.whenReady();
  const busy = h.run('slow', 'busy');
  const controller = new AbortController();
  const aborted = h.run('echo', 'aborted', { signal: controller.signal });
  const behind = h.run('echo', 'behind');
  await flush();
  expectStats(h, { poolSize: 1, healthyWorkers: 1, busyWorkers: 1, utilization: 1, queueLength: 2 });
  controller.abort('user left');
  await flush();
  assert.instance(aborted.error, AbortError);
  assert.is(aborted.error!.code, 'ABORTED');
  assert.match(aborted.error!.message, 'user left');
  expectStats(h, { poolSize: 1, healthyWorkers: 1, busyWorkers: 1, utilization: 1, queueLength: 1 });
  await h.advance(100);
  assert.is(busy.value, 'busy');
  assert.is(behind.value, 'behind');
  assert.equal(h.of('checkout').map((e) => e.command + ':' + e.workerId), ['slow:worker_1', 'echo:worker_1']);
  expectStats(h, { poolSize: 1, healthyWorkers: 1, totalCommands: 2, latencyMs: { p50: 0, p99: 100 } });
  await h.finish();
});

test('an already-aborted signal rejects at once and nothing is queued', async () => {
  const h = setup({ poolSize: 1 });
  await h.pool.whenReady();
  const r = h.run('echo', null, { signal: AbortSignal.abort('too late') });
  await flush();
  assert.instance(r.error, AbortError);
  assert.equal(h.of('checkout'), []);
  expectStats(h, { poolSize: 1, healthyWorkers: 1 });
  await h.finish();
});

test('abort in flight: the handler gets SIGINT (KeyboardInterrupt), the caller AbortError, the worker stays', async () => {
  const h = setup({ poolSize: 1 });
  await h.pool.whenReady();
  const pid = h.pid('worker_1');
  const controller = new AbortController();
  const r = h.run('hang', null, { signal: controller.signal });
  await flush();
  controller.abort();
  await flush();
  assert.instance(r.error, AbortError);
  assert.equal(h.sim.processOf('worker_1')!.signals, ['SIGINT']);
  assert.is(h.pid('worker_1'), pid, 'the process answered the interrupt and stays');
  assert.is(await h.pool.execute('echo', 'next'), 'next');
  expectStats(h, { poolSize: 1, healthyWorkers: 1, totalCommands: 2, totalErrors: 1 });
  await h.finish();
});

test('abort in flight: a handler that ignores the interrupt has its worker replaced after interruptGrace', async () => {
  const h = setup({ poolSize: 1, interruptGrace: 200 });
  await h.pool.whenReady();
  const pid = h.pid('worker_1');
  const controller = new AbortController();
  const r = h.run('stuck', null, { signal: controller.signal });
  await flush();
  controller.abort();
  await flush();
  assert.instance(r.error, AbortError, 'the caller is answered at once');
  const waiting = h.run('echo', 'waits for the replacement');
  await flush();
  // Settled, so counted; its frame still holds the worker.
  expectStats(h, { poolSize: 1, healthyWorkers: 1, busyWorkers: 1, utilization: 1, queueLength: 1, totalCommands: 1, totalErrors: 1 });
  await h.advance(199);
  assert.is(h.pid('worker_1'), pid);
  await h.advance(1);
  assert.is.not(h.pid('worker_1'), pid, 'replaced');
  assert.is(waiting.value, 'waits for the replacement');
  expectStats(h, { poolSize: 1, healthyWorkers: 1, totalCommands: 2, totalErrors: 1, restarts: 1, latencyMs: { p50: 0, p99: 0 } });
  await h.finish();
});

test('abort of a request held while its worker answers a health-check ping: it never runs', async () => {
  let ran = 0;
  const h = setup({ poolSize: 1, healthCheckInterval: 1000 }, {}, (sim) => sim.handle('work', () => ++ran));
  await h.pool.whenReady();
  h.sim.handle('ping', () => ({ pong: true }), { latencyMs: 30 });
  await h.advance(1000);
  const controller = new AbortController();
  const r = h.run('work', null, { signal: controller.signal });
  await flush();
  controller.abort();
  await h.advance(30);
  assert.instance(r.error, AbortError);
  assert.is(ran, 0, 'the aborted request never reached Python');
  await h.finish();
});

test('the abort listener is removed once the request settles', async () => {
  const h = setup({ poolSize: 1 });
  await h.pool.whenReady();
  let listeners = 0;
  const signal = {
    aborted: false,
    reason: undefined,
    addEventListener: () => listeners++,
    removeEventListener: () => listeners--,
  } as unknown as AbortSignal;
  for (let i = 0; i < 5; i++) await h.pool.execute('echo', i, { signal });
  assert.is(listeners, 0);
  await h.finish();
});

test('a bad command name is an InvalidOptionError naming it, not a request', async () => {
  const h = setup({ poolSize: 1 });
  await h.pool.whenReady();
  await h.pool.execute('' as string).then(
    () => assert.unreachable(),
    (e) => assert.instance(e, InvalidOptionError),
  );
  await h.pool.execute(42 as unknown as string).then(
    () => assert.unreachable(),
    (e) => assert.instance(e, InvalidOptionError),
  );
  expectStats(h, { poolSize: 1, healthyWorkers: 1 });
  await h.finish();
});

test('stop(): queued callers get PoolClosedError, later calls too, and no process is left', async () => {
  const h = setup({ poolSize: 1 });
  await h.pool.whenReady();
  const inflight = h.run('slow', 'finishes');
  const queued = h.run('echo');
  await flush();
  const stopping = h.pool.stop();
  await flush();
  assert.instance(queued.error, PoolClosedError);
  assert.is(queued.error!.code, 'POOL_CLOSED');
  await h.advance(100);
  await stopping;
  assert.is(inflight.value, 'finishes', 'SIGTERM lets the running command finish');
  assert.equal(h.sim.alive(), []);
  await h.pool.execute('echo').then(
    () => assert.unreachable(),
    (e) => assert.instance(e, PoolClosedError),
  );
  assert.is(h.pool.stop(), stopping, 'stop() is idempotent');
  await h.finish();
});

test('stop(): a command that ignores SIGTERM is killed after shutdownTimeout and its caller gets PoolClosedError', async () => {
  const h = setup({ poolSize: 1, shutdownTimeout: 300 });
  await h.pool.whenReady();
  const hung = h.run('stuck');
  await flush();
  const stopping = h.pool.stop();
  await h.advance(299);
  assert.is(h.sim.alive().length, 1);
  await h.advance(1);
  await stopping;
  assert.instance(hung.error, PoolClosedError);
  assert.equal(h.sim.alive(), []);
  await h.finish();
});

test.run();
