/**
 * Growth and upkeep on the simulation: overflow workers under load and their retirement, lazy
 * start, health checks, recycling (maxRequests, maxAgeMs, maxRssMb), restart-intensity
 * escalation and stop(). Simulated clock only; every scenario ends with no fake process alive.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PoolClosedError, PoolTimeoutError, SupervisorEscalationError, WorkerCrashedError } from '../../src/errors.js';
import { SimPythonError } from '../../src/testing/index.js';
import { expectStats, flush, pidsOf, row, setup, workerRows } from './pool.harness.js';

// ---- overflow -----------------------------------------------------------------------------

test('overflow: workers beyond poolSize start under load, never more than maxOverflow', async () => {
  const h = setup({ poolSize: 2, maxOverflow: 2, overflowIdle: 1000 });
  await h.pool.whenReady();
  const runs = Array.from({ length: 5 }, (_, i) => h.run('slow', i));
  await flush();
  assert.equal(h.pool.workers().map((w) => w.id), ['worker_1', 'worker_2', 'overflow_1', 'overflow_2']);
  assert.equal(h.of('checkout').map((e) => e.workerId), ['worker_1', 'worker_2', 'overflow_1', 'overflow_2']);
  expectStats(h, { healthyWorkers: 4, busyWorkers: 4, utilization: 1, overflowWorkers: 2, queueLength: 1 });
  await h.advance(100);
  expectStats(h, { healthyWorkers: 4, busyWorkers: 1, utilization: 0.25, overflowWorkers: 2, totalCommands: 4, latencyMs: { p50: 100, p99: 100 } });
  await h.advance(100);
  assert.equal(runs.map((r) => r.value), [0, 1, 2, 3, 4]);
  assert.equal(workerRows(h), [
    row('worker_1', { requests: 2 }),
    row('worker_2', { requests: 1 }),
    row('overflow_1', { requests: 1 }),
    row('overflow_2', { requests: 1 }),
  ]);
  await h.finish();
});

test('overflow: an idle overflow worker is retired after overflowIdle; each use restarts its idle clock', async () => {
  const h = setup({ poolSize: 1, maxOverflow: 1, overflowIdle: 1000 });
  await h.pool.whenReady();
  h.run('slow');
  h.run('slow');
  await h.advance(100); // both done at t=100; overflow_1 idle from t=100
  const overflowPid = h.pid('overflow_1');
  await h.advance(500);
  h.run('slow250'); // worker_1
  h.run('slow250'); // overflow_1 again, busy until t=850
  await h.advance(250);
  expectStats(h, { healthyWorkers: 2, overflowWorkers: 1, totalCommands: 4, latencyMs: { p50: 100, p99: 250 } });
  await h.advance(999);
  assert.is(h.sim.processOf('overflow_1')?.pid, overflowPid, 'idle for 999 ms: kept');
  await h.advance(1);
  assert.is(h.sim.processOf('overflow_1'), undefined, 'idle for 1000 ms: retired');
  assert.equal(h.sim.processes().find((p) => p.pid === overflowPid)!.signals, ['SIGTERM'], 'retired gracefully');
  assert.equal(h.pool.workers().map((w) => w.id), ['worker_1']);
  expectStats(h, { poolSize: 1, healthyWorkers: 1, totalCommands: 4, latencyMs: { p50: 100, p99: 250 } });
  assert.equal(
    h.of('worker_state').filter((e) => e.workerId === 'overflow_1').map((e) => e.to).slice(-3),
    ['stopping', 'stopped', 'removed'],
  );
  // Later load starts a fresh overflow worker.
  h.run('slow');
  h.run('slow');
  await flush();
  assert.equal(h.pool.workers().map((w) => w.id), ['worker_1', 'overflow_2']);
  await h.advance(100);
  await h.finish();
});

test('overflow: permanent workers are preferred, so overflow workers go idle and retire', async () => {
  const h = setup({ poolSize: 2, maxOverflow: 1, overflowIdle: 300 });
  await h.pool.whenReady();
  h.run('slow');
  h.run('slow');
  h.run('slow');
  await h.advance(100);
  for (let i = 0; i < 5; i++) {
    await h.pool.execute('echo');
    await h.advance(100);
  }
  assert.equal(h.pool.workers().map((w) => w.id), ['worker_1', 'worker_2']);
  assert.equal(h.of('checkout').slice(3).map((e) => e.workerId), Array(5).fill('worker_1'));
  await h.finish();
});

test('overflow: maxOverflow 0 never grows the pool', async () => {
  const h = setup({ poolSize: 1, maxOverflow: 0 });
  await h.pool.whenReady();
  h.run('slow');
  h.run('slow');
  await flush();
  assert.equal(h.pool.workers().map((w) => w.id), ['worker_1']);
  expectStats(h, { poolSize: 1, healthyWorkers: 1, busyWorkers: 1, utilization: 1, queueLength: 1 });
  await h.advance(200);
  await h.finish();
});

test('overflow: a starting overflow worker that is not needed any more comes up idle and retires', async () => {
  const h = setup({ poolSize: 1, maxOverflow: 1, overflowIdle: 500 }, { startupMs: 200 });
  h.sim.advance(200);
  await h.pool.whenReady();
  h.run('slow'); // worker_1 until t=300
  const queued = h.run('echo', 'q');
  await flush();
  expectStats(h, { poolSize: 1, healthyWorkers: 1, busyWorkers: 1, utilization: 1, overflowWorkers: 1, queueLength: 1 });
  await h.advance(100);
  assert.is(queued.value, 'q', 'worker_1 freed first and took it');
  await h.advance(100); // overflow_1 up at t=400, idle
  expectStats(h, { poolSize: 1, healthyWorkers: 2, overflowWorkers: 1, totalCommands: 2, latencyMs: { p50: 0, p99: 100 } });
  await h.advance(500);
  assert.equal(h.pool.workers().map((w) => w.id), ['worker_1']);
  await h.finish();
});

// ---- lazy ---------------------------------------------------------------------------------

test('lazy: no process until the first request; a caller waiting on a starting worker is served within its deadline', async () => {
  const h = setup({ poolSize: 2, lazy: true, checkoutTimeout: 500 }, { startupMs: 300 });
  await h.pool.whenReady();
  assert.equal(h.sim.processes(), [], 'nothing started');
  expectStats(h, { healthyWorkers: 0 });
  const first = h.run('echo', 1);
  const second = h.run('echo', 2);
  await flush();
  assert.equal(h.pool.workers().map((w) => [w.id, w.state]).slice(0, 1), [['worker_1', 'initializing']]);
  expectStats(h, { healthyWorkers: 0, queueLength: 2 });
  await h.advance(299);
  assert.is(first.settled || second.settled, false);
  await h.advance(1);
  assert.is(first.value, 1);
  assert.is(second.value, 2, 'the second caller is served too (the seed timed it out)');
  assert.equal(h.of('checkout').map((e) => e.queueMs), [300, 300]);
  assert.equal(h.of('timeout'), []);
  await h.advance(300);
  expectStats(h, { totalCommands: 2 });
  await h.finish();
});

test('lazy: workers asked for at the same time start in parallel', async () => {
  const h = setup({ poolSize: 2, lazy: true, checkoutTimeout: 1000 }, { startupMs: 300 });
  await h.pool.whenReady();
  const runs = [h.run('slow', 1), h.run('slow', 2)];
  await flush();
  assert.equal(h.pool.workers().map((w) => w.id), ['worker_1', 'worker_2']);
  await h.advance(400);
  assert.equal(runs.map((r) => r.value), [1, 2]);
  await h.finish();
});

test('eager: the initial workers start in parallel', async () => {
  const h = setup({ poolSize: 3 }, { startupMs: 100 });
  let ready = false;
  void h.pool.whenReady().then(() => (ready = true));
  await h.advance(100);
  assert.ok(ready);
  await h.finish();
});

test('lazy: the pool grows one worker per unserved caller, up to poolSize, then overflow', async () => {
  const h = setup({ poolSize: 2, maxOverflow: 1, lazy: true }, { startupMs: 50 });
  await h.pool.whenReady();
  await Promise.all([h.run('echo').promise, h.advance(50)]);
  assert.equal(h.pool.workers().map((w) => w.id), ['worker_1'], 'one caller, one worker');
  expectStats(h, { healthyWorkers: 1, totalCommands: 1 });
  const runs = [h.run('slow'), h.run('slow'), h.run('slow'), h.run('slow')];
  await h.advance(100); // worker_2 up at t=100, overflow_1 (started after it) at t=150
  assert.equal(h.pool.workers().map((w) => w.id), ['worker_1', 'worker_2', 'overflow_1'], 'three callers waited: two more workers, no more');
  await h.advance(300);
  assert.ok(runs.every((r) => r.ok));
  await h.finish();
});

test('lazy: a worker that starts slower than the caller can wait → PoolTimeoutError, the worker still comes up', async () => {
  const h = setup({ poolSize: 1, lazy: true, checkoutTimeout: 100 }, { startupMs: 300 });
  await h.pool.whenReady();
  const r = h.run('echo');
  await h.advance(100);
  assert.instance(r.error, PoolTimeoutError);
  assert.match(r.error!.message, 'still starting');
  await h.advance(200);
  expectStats(h, { poolSize: 1, healthyWorkers: 1 });
  assert.is(await h.pool.execute('echo', 'now'), 'now');
  await h.finish();
});

test('eager pool: a request made before the workers are ready waits for them', async () => {
  const h = setup({ poolSize: 1 }, { startupMs: 100 });
  let ready = false;
  void h.pool.whenReady().then(() => (ready = true));
  const r = h.run('echo', 'early');
  await flush();
  expectStats(h, { poolSize: 1, healthyWorkers: 0, queueLength: 1 });
  await h.advance(100);
  assert.ok(ready);
  assert.is(r.value, 'early');
  expectStats(h, { poolSize: 1, healthyWorkers: 1, totalCommands: 1, latencyMs: { p50: 0, p99: 0 } });
  await h.finish();
});

// ---- health checks ------------------------------------------------------------------------

function countPings(h: ReturnType<typeof setup>, behaviour: (workerId: string) => unknown = () => ({ pong: true })) {
  const pings: string[] = [];
  h.sim.handle('ping', (_a, ctx) => {
    pings.push(ctx.workerId);
    return behaviour(ctx.workerId);
  });
  return pings;
}

test('health check: every healthCheckInterval each idle worker is pinged; busy workers never are', async () => {
  const h = setup({ poolSize: 3, healthCheckInterval: 1000 });
  await h.pool.whenReady();
  const pings = countPings(h);
  await h.advance(999);
  assert.equal(pings, []);
  await h.advance(1);
  assert.equal(pings, ['worker_1', 'worker_2', 'worker_3']);
  const long = h.run('hang', null, { timeout: 5000 }); // worker_1 busy across the next ticks
  await h.advance(2000);
  assert.equal(pings.slice(3), ['worker_2', 'worker_3', 'worker_2', 'worker_3'], 'worker_1 is busy: never pinged');
  await h.advance(3000);
  assert.is(long.error?.code, 'REQUEST_TIMEOUT');
  assert.equal(h.of('checkout').map((e) => e.command), ['hang'], 'pings are not requests');
  expectStats(h, { poolSize: 3, healthyWorkers: 3, totalCommands: 1, totalErrors: 1, restarts: 1, latencyMs: { p50: 5000, p99: 5000 } });
  await h.finish();
});

test('health check: a failed ping marks the worker unhealthy and it is restarted', async () => {
  const h = setup({ poolSize: 2, healthCheckInterval: 1000 });
  await h.pool.whenReady();
  const oldPid = h.pid('worker_2');
  countPings(h, (id) => {
    if (id === 'worker_2' && h.sim.processOf('worker_2')!.pid === oldPid) throw new SimPythonError('RuntimeError', 'sick');
    return { pong: true };
  });
  await h.advance(1000);
  assert.is.not(h.pid('worker_2'), oldPid);
  assert.equal(
    h.of('worker_state').filter((e) => e.workerId === 'worker_2').map((e) => e.to),
    ['checking', 'unhealthy', 'restarting', 'healthy'],
  );
  assert.equal(h.of('worker_restarted'), [{ workerId: 'worker_2', oldPid, newPid: h.pid('worker_2'), reason: 'restart' }]);
  expectStats(h, { restarts: 1 });
  assert.equal(workerRows(h), [row('worker_1'), row('worker_2', { restarts: 1 })]);
  await h.finish();
});

test('health check: a late ping (past pingTimeout) marks the worker unhealthy and it is restarted', async () => {
  const h = setup({ poolSize: 1, healthCheckInterval: 1000, pingTimeout: 200 });
  await h.pool.whenReady();
  const oldPid = h.pid('worker_1');
  countPings(h, () => (h.sim.processOf('worker_1')!.pid === oldPid ? h.sim.hang() : { pong: true }));
  await h.advance(1199);
  assert.is(h.pid('worker_1'), oldPid);
  assert.is(h.pool.workers()[0]!.state, 'checking');
  await h.advance(1);
  assert.is.not(h.pid('worker_1'), oldPid);
  assert.equal(h.of('worker_restarted').map((e) => e.reason), ['restart']);
  expectStats(h, { poolSize: 1, healthyWorkers: 1, restarts: 1 });
  assert.is(await h.pool.execute('echo', 'fine'), 'fine');
  await h.finish();
});

test('health check: a request made during a ping that then times out is requeued, not failed', async () => {
  const h = setup({ poolSize: 1, healthCheckInterval: 1000, pingTimeout: 200 });
  await h.pool.whenReady();
  const oldPid = h.pid('worker_1');
  countPings(h, () => (h.sim.processOf('worker_1')!.pid === oldPid ? h.sim.hang() : { pong: true }));
  await h.advance(1000);
  const r = h.run('echo', 'after the check');
  await h.advance(200);
  assert.is(r.value, 'after the check');
  expectStats(h, { poolSize: 1, healthyWorkers: 1, totalCommands: 1, restarts: 1 });
  await h.finish();
});

test('health check: a request that arrives during a ping runs right after the pong', async () => {
  const h = setup({ poolSize: 1, healthCheckInterval: 1000 });
  await h.pool.whenReady();
  h.sim.handle('ping', () => ({ pong: true }), { latencyMs: 30 });
  await h.advance(1000);
  assert.is(h.pool.workers()[0]!.state, 'checking');
  const r = h.run('echo', 'x');
  await h.advance(30);
  assert.is(r.value, 'x');
  // It waited for the pong in the queue: queue time, not run time.
  assert.equal(h.of('checkout').map((e) => e.queueMs), [30]);
  expectStats(h, { poolSize: 1, healthyWorkers: 1, totalCommands: 1, latencyMs: { p50: 0, p99: 0 } });
  await h.finish();
});

test('healthCheckInterval: 0 turns health checks off', async () => {
  const h = setup({ poolSize: 1, healthCheckInterval: 0 });
  await h.pool.whenReady();
  const pings = countPings(h);
  await h.advance(10 * 60_000);
  assert.equal(pings, []);
  await h.finish();
});

// ---- recycling ----------------------------------------------------------------------------

test('recycle.maxRequests: after that many requests the process is replaced gracefully between requests', async () => {
  const h = setup({ poolSize: 1, recycle: { maxRequests: 3 } });
  await h.pool.whenReady();
  const first = h.pid('worker_1');
  for (let i = 0; i < 2; i++) await h.pool.execute('echo', i);
  assert.is(h.pid('worker_1'), first);
  assert.is(await h.pool.execute('echo', 'third'), 'third', 'the third request is answered before the recycle');
  const second = h.pid('worker_1');
  assert.is.not(second, first);
  assert.equal(h.sim.processes().find((p) => p.pid === first)!.signals, ['SIGTERM'], 'SIGTERM, not a kill');
  assert.equal(h.of('worker_restarted'), [{ workerId: 'worker_1', oldPid: first, newPid: second, reason: 'recycle' }]);
  for (let i = 0; i < 3; i++) await h.pool.execute('echo', i);
  assert.is.not(h.pid('worker_1'), second);
  expectStats(h, { poolSize: 1, healthyWorkers: 1, totalCommands: 6, restarts: 2 });
  assert.equal(workerRows(h), [row('worker_1', { requests: 6, restarts: 2 })]);
  assert.equal(h.of('timeout'), []);
  await h.finish();
});

test('recycle.maxRequests: a queued caller is not failed by a recycle, it waits for the new process', async () => {
  const h = setup({ poolSize: 1, recycle: { maxRequests: 1 } });
  await h.pool.whenReady();
  const a = h.run('slow', 'a');
  const b = h.run('echo', 'b');
  await h.advance(100);
  assert.is(a.value, 'a');
  assert.is(b.value, 'b');
  assert.is(pidsOf(h.sim, 'worker_1').length, 3);
  expectStats(h, { poolSize: 1, healthyWorkers: 1, totalCommands: 2, restarts: 2, latencyMs: { p50: 0, p99: 100 } });
  await h.finish();
});

test('recycle.maxAgeMs: an idle worker older than that is replaced at the next monitor tick; a busy one waits until idle', async () => {
  const h = setup({ poolSize: 2, healthCheckInterval: 1000, recycle: { maxAgeMs: 2500 } });
  await h.pool.whenReady();
  const [p1, p2] = [h.pid('worker_1'), h.pid('worker_2')];
  const long = h.run('hang', null, { timeout: 9500 }); // worker_1, busy until it times out at t=9500
  await h.advance(2999);
  assert.equal([h.pid('worker_1'), h.pid('worker_2')], [p1, p2]);
  await h.advance(1);
  assert.is(h.pid('worker_1'), p1, 'busy: not recycled');
  assert.is.not(h.pid('worker_2'), p2, 'idle and 3000 ms old: recycled');
  assert.equal(h.of('worker_restarted').map((e) => e.reason), ['recycle']);
  await h.advance(7000); // t=10000: worker_2 recycled again at 6000 and 9000; worker_1 replaced at 9500
  assert.is(long.error?.code, 'REQUEST_TIMEOUT');
  assert.equal(h.of('worker_restarted').map((e) => `${e.workerId}:${e.reason}`), ['worker_2:recycle', 'worker_2:recycle', 'worker_2:recycle', 'worker_1:restart']);
  expectStats(h, { totalCommands: 1, totalErrors: 1, restarts: 4, latencyMs: { p50: 9500, p99: 9500 } });
  await h.finish();
});

test('recycle.maxRssMb: a worker whose process uses more resident memory than that is replaced at the next tick', async () => {
  const h = setup({ poolSize: 2, healthCheckInterval: 1000, recycle: { maxRssMb: 500 } });
  await h.pool.whenReady();
  const [p1, p2] = [h.pid('worker_1'), h.pid('worker_2')];
  h.sim.setRssMb(p1, 480);
  h.sim.setRssMb(p2, 520);
  await h.advance(1000);
  assert.is(h.pid('worker_1'), p1);
  assert.is.not(h.pid('worker_2'), p2);
  assert.equal(h.sim.processes().find((p) => p.pid === p2)!.signals, ['SIGTERM']);
  await h.advance(5000);
  assert.is(pidsOf(h.sim, 'worker_2').length, 2, 'the fresh process is small: kept');
  expectStats(h, { restarts: 1 });
  await h.finish();
});

test('recycle.maxAgeMs with health checks off: still checked, every 30 s, and nobody is pinged', async () => {
  const h = setup({ poolSize: 1, healthCheckInterval: 0, recycle: { maxAgeMs: 10_000 } });
  await h.pool.whenReady();
  const pings: string[] = [];
  h.sim.handle('ping', (_a, ctx) => (pings.push(ctx.workerId), { pong: true }));
  const first = h.pid('worker_1');
  await h.advance(29_999);
  assert.is(h.pid('worker_1'), first);
  await h.advance(1);
  assert.is.not(h.pid('worker_1'), first);
  assert.equal(pings, ['worker_1'], 'only the start ping of the new process');
  expectStats(h, { poolSize: 1, healthyWorkers: 1, restarts: 1 });
  await h.finish();
});

// ---- escalation and stop ------------------------------------------------------------------

test('nested supervision: the worker tier exceeds its intensity → the root restarts it; waiting callers are served, the pool stays open', async () => {
  const h = setup({ poolSize: 2, restart: { maxRestarts: 0, maxSeconds: 5 }, shutdownTimeout: 500 });
  await h.pool.whenReady();
  const running = h.run('slow250'); // worker_1; its process finishes it while the tier drains (SIGTERM)
  await flush();
  h.sim.kill('worker_2'); // idle: the worker's own death, counted — and over the budget of 0
  const waiting = [h.run('echo', 1), h.run('echo', 2, { sessionId: 's' })];
  await h.advance(300);
  assert.is(h.of('tier_restarted').length, 1);
  assert.match((h.of('tier_restarted')[0]!.error as Error).message, /killed by SIGKILL/, 'the tier restart says why');
  assert.equal(h.of('escalation'), [], 'the root did not give up');
  assert.ok(running.ok, 'the running command finished: the draining tier let it (SIGTERM, not SIGKILL)');
  for (const w of waiting) assert.ok(w.ok, `served after the tier restart (${w.error?.message})`);
  assert.not.ok(h.pool.isClosed);
  const later = h.run('echo', 3);
  await flush();
  assert.is(later.value, 3);
  await h.finish();
});

test('root escalation: when the root’s own budget is spent the pool closes; waiting callers get SupervisorEscalationError, later ones PoolClosedError', async () => {
  const h = setup({ poolSize: 2, restart: { maxRestarts: 0, maxSeconds: 5, root: { maxRestarts: 0, maxSeconds: 30 } }, shutdownTimeout: 100 });
  await h.pool.whenReady();
  const inflight = h.run('hang'); // worker_1
  await flush();
  h.sim.kill('worker_2');
  const waiting = [h.run('echo', 1), h.run('echo', 2, { sessionId: 's' })];
  await h.advance(99);
  assert.is(waiting.filter((w) => w.settled).length, 0, 'they wait while the tier drains (worker_1 has 100 ms to stop)');
  await h.advance(1);
  for (const w of waiting) assert.instance(w.error, SupervisorEscalationError);
  const escalations = h.of('escalation');
  assert.is(escalations.length, 1);
  assert.is(escalations[0]!.supervisorId, 'pool');
  assert.instance(escalations[0]!.error, SupervisorEscalationError);
  assert.match((escalations[0]!.error as Error).message, /^Worker worker_2 \(pid \d+\) killed by SIGKILL/, 'the message leads with the root cause');
  assert.ok(inflight.settled, "worker_1's hung command did not outlive the shutdown timeout");
  assert.equal(h.sim.alive(), [], 'every worker stopped');
  const later = h.run('echo');
  await flush();
  assert.instance(later.error, PoolClosedError, 'afterwards the pool is simply closed');
  assert.match(later.error!.message, 'escalated');
  await h.pool.endSession('s').then(
    () => assert.unreachable(),
    (e) => assert.instance(e, PoolClosedError),
  );
  await h.finish();
});

test('escalation at start: workers that cannot start make whenReady reject, and nothing is left running', async () => {
  const h = setup({ poolSize: 2, restart: { maxRestarts: 2, maxSeconds: 5 } }, { startupMs: 10 }, (sim) =>
    sim.failStarts(Infinity, { code: 2, stderr: ['ImportError: no module named x'] }),
  );
  let error: unknown;
  void h.pool.whenReady().catch((e) => (error = e));
  await h.advance(1000);
  assert.instance(error, SupervisorEscalationError);
  // The first line a newcomer reads names the Python error.
  assert.match((error as Error).message.split('\n')[0]!, /^Worker worker_\d could not start with interpreter "sim": exited with code 2 during start: ImportError: no module named x/);
  // The pool never came up: a configuration that cannot start workers; the root does not retry it.
  assert.is(h.of('tier_restarted').length, 0);
  assert.equal(h.sim.alive(), []);
  assert.is(h.of('escalation').length, 1);
  const later = h.run('echo');
  await flush();
  assert.instance(later.error, PoolClosedError);
  await h.finish();
});

test('a lazy pool whose handlers cannot load: the first request gets the cause after one retry; the root does not restart the tier', async () => {
  const h = setup({ poolSize: 2, lazy: true, checkoutTimeout: 5000, restart: { maxRestarts: 10, maxSeconds: 5 } }, { startupMs: 10 }, (sim) =>
    sim.failStarts(Infinity, { code: 1, stderr: ["pyvisor worker: could not load handlers '/app/handlrs.py': FileNotFoundError: handlers file not found"] }),
  );
  await h.pool.whenReady();
  const first = h.run('echo');
  await h.advance(1000);
  assert.ok(first.settled && !first.ok);
  assert.match(first.error!.message.split('\n')[0]!, /could not load handlers '\/app\/handlrs\.py': FileNotFoundError.*the same start failure twice/);
  assert.ok(h.sim.processes().length <= 2, `${h.sim.processes().length} interpreters for a file that is not there`);
  assert.is(h.of('tier_restarted').length, 0, 'fresh workers would fail the same way');
  assert.equal(h.sim.alive(), []);
  const later = h.run('echo');
  await flush();
  assert.instance(later.error, PoolClosedError);
  await h.finish();
});

test('a running pool whose restarts fail the same way: each tier gives up after one retry, the root restarts it under its own budget (DESIGN §6), then closes', async () => {
  const h = setup({ poolSize: 1, restart: { maxRestarts: 10, maxSeconds: 5 } }, { startupMs: 10 });
  const ready = h.pool.whenReady();
  await h.advance(100);
  await ready;
  h.sim.failStarts(Infinity, { code: 1, stderr: ['SyntaxError: invalid syntax (handlers.py, line 9)'] }); // edited in place
  h.sim.kill('worker_1', 'SIGKILL');
  await h.advance(1000);
  assert.is(h.pool.isClosed, true);
  assert.is(h.of('tier_restarted').length, 3, 'the root budget (restart.root: 3 within 30 s), not restart.maxRestarts (10)');
  // The first process, then per tier its start and one retry: 1 + 2 + 3 × 2.
  assert.is(h.sim.processes().length, 9);
  assert.match(String((h.of('escalation')[0]!.error as Error).message), /SyntaxError: invalid syntax \(handlers\.py, line 9\)/);
  assert.equal(h.sim.alive(), []);
  await h.finish();
});

test('escalation during the constructor (start failures that are synchronous) leaves a closed pool, not a throw', async () => {
  const h = setup({ poolSize: 2, restart: { maxRestarts: 1, maxSeconds: 5 } }, {}, (sim) => sim.failStarts(Infinity));
  const error = await h.pool.whenReady().then(
    () => undefined,
    (e) => e,
  );
  assert.instance(error, SupervisorEscalationError);
  assert.equal(h.sim.alive(), []);
  expectStats(h, { healthyWorkers: 0 });
  const later = h.run('echo');
  await flush();
  assert.instance(later.error, PoolClosedError);
  await h.finish();
});

test('stop(): lazy and overflow workers too; nothing outlives the pool', async () => {
  const h = setup({ poolSize: 1, maxOverflow: 2, lazy: true }, { startupMs: 10 });
  await h.pool.whenReady();
  const runs = [h.run('slow'), h.run('slow'), h.run('slow')];
  await h.advance(30);
  assert.is(h.sim.alive().length, 3);
  await h.advance(300);
  assert.ok(runs.every((r) => r.ok));
  await h.finish();
});

test('stop() while workers are still starting', async () => {
  const h = setup({ poolSize: 2 }, { startupMs: 1000 });
  const r = h.run('echo');
  await h.advance(10);
  await h.finish();
  assert.instance(r.error, PoolClosedError);
});

test.run();
