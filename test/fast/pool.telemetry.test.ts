/**
 * Telemetry and metrics: every event of docs/OPTIONS.md with its fields, listener isolation
 * (a throwing listener breaks neither the pool nor the other listeners), eventemitter3
 * semantics (once, context, off), and stats()/workers() computed from real state.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SupervisorEscalationError } from '../../src/errors.js';
import { Pool } from '../../src/local/pool.js';
import { resolveOptions } from '../../src/options.js';
import { createSimulation } from '../../src/testing/index.js';
import { advanceClock, expectStats, flush, pidsOf, setup } from './pool.harness.js';

test('one request: session_start, checkout, worker_state busy, checkin, worker_state healthy — in that order, with their fields', async () => {
  const h = setup({ poolSize: 1 });
  await h.pool.whenReady();
  const pid = h.pid('worker_1');
  h.events.length = 0;
  // busy ⇄ healthy reach the machine coalesced, at most once per macrotask: a turn of the event loop
  // passes between the hand-over and the reply here, as it does with a real process.
  const r = h.run('slow', 'x', { sessionId: 's1' });
  await flush();
  await Promise.all([r.promise, h.advance(100)]);
  await flush();
  assert.equal(h.events, [
    { event: 'session_start', sessionId: 's1' },
    { event: 'checkout', workerId: 'worker_1', sessionId: 's1', command: 'slow', queueMs: 0 },
    { event: 'worker_state', workerId: 'worker_1', from: 'healthy', to: 'busy', pid },
    { event: 'checkin', workerId: 'worker_1', sessionId: 's1', command: 'slow', queueMs: 0, runMs: 100, ok: true },
    { event: 'worker_state', workerId: 'worker_1', from: 'busy', to: 'healthy', pid },
  ]);
  await h.finish();
});

test('queue wait and run time are measured separately', async () => {
  const h = setup({ poolSize: 1 });
  await h.pool.whenReady();
  h.run('slow');
  const second = h.run('slow250', null, { sessionId: 's' });
  await h.advance(350);
  assert.ok(second.ok);
  assert.equal(h.of('checkout').map((e) => e.queueMs), [0, 100]);
  assert.equal(h.of('checkin').map((e) => e.runMs), [100, 250]);
  assert.equal(h.of('checkin').map((e) => e.queueMs), [0, 100]);
  await h.finish();
});

test('failures: checkin carries ok: false and the error code; timeouts say which kind', async () => {
  const h = setup({ poolSize: 1, checkoutTimeout: 20 });
  await h.pool.whenReady();
  h.run('raise');
  h.run('hang', null, { timeout: 50, sessionId: 's1' });
  h.run('echo', null, { sessionId: 's2' }); // waits behind hang, times out after 20 ms
  await h.advance(50);
  assert.equal(h.of('checkin'), [
    { workerId: 'worker_1', sessionId: null, command: 'raise', queueMs: 0, runMs: 0, ok: false, error: 'PYTHON_ERROR' },
    { workerId: 'worker_1', sessionId: 's1', command: 'hang', queueMs: 0, runMs: 50, ok: false, error: 'REQUEST_TIMEOUT' },
  ]);
  assert.equal(h.of('timeout'), [
    { kind: 'checkout', sessionId: 's2', command: 'echo', timeoutMs: 20 },
    { kind: 'request', workerId: 'worker_1', sessionId: 's1', command: 'hang', timeoutMs: 50 },
  ]);
  expectStats(h, { poolSize: 1, healthyWorkers: 1, activeSessions: 2, totalCommands: 2, totalErrors: 2, restarts: 1, latencyMs: { p50: 0, p99: 50 } });
  await h.finish();
});

test('worker_restarted and worker_state follow a crash and the restart', async () => {
  const h = setup({ poolSize: 1 });
  await h.pool.whenReady();
  const oldPid = h.pid('worker_1');
  h.events.length = 0;
  h.sim.kill('worker_1');
  await flush();
  const newPid = h.pid('worker_1');
  assert.equal(h.events, [
    { event: 'worker_state', workerId: 'worker_1', from: 'healthy', to: 'unhealthy', pid: oldPid },
    { event: 'worker_state', workerId: 'worker_1', from: 'unhealthy', to: 'restarting', pid: null },
    { event: 'worker_restarted', workerId: 'worker_1', oldPid, newPid, reason: 'restart' },
    { event: 'worker_state', workerId: 'worker_1', from: 'restarting', to: 'healthy', pid: newPid },
  ]);
  expectStats(h, { poolSize: 1, healthyWorkers: 1, restarts: 1 });
  await h.finish();
});

test('session_end: reason ended (endSession) or expired (TTL), with the number of workers cleaned', async () => {
  const h = setup({ poolSize: 1, sessionTtl: 100, affinity: 'prefer' });
  await h.pool.whenReady();
  await h.pool.execute('echo', null, { sessionId: 'a' });
  await h.pool.execute('echo', null, { sessionId: 'b' });
  await h.pool.endSession('a');
  await h.advance(100);
  assert.equal(h.of('session_start'), [{ sessionId: 'a' }, { sessionId: 'b' }]);
  assert.equal(h.of('session_end'), [
    { sessionId: 'a', reason: 'ended', workers: 1 },
    { sessionId: 'b', reason: 'expired', workers: 1 },
  ]);
  await h.finish();
});

test('tier_restarted, then escalation: each emitted once with its error', async () => {
  const h = setup({ poolSize: 1, restart: { maxRestarts: 0, maxSeconds: 1, root: { maxRestarts: 1, maxSeconds: 60 } } });
  await h.pool.whenReady();
  h.sim.kill('worker_1');
  await h.advance(10);
  assert.equal(h.of('tier_restarted').map((e) => e.restarts), [1]);
  assert.instance(h.of('tier_restarted')[0]!.error, SupervisorEscalationError);
  assert.equal(h.of('escalation'), []);
  h.sim.kill('worker_1');
  await h.advance(10);
  const [e] = h.of('escalation');
  assert.is(h.of('escalation').length, 1);
  assert.is(e!.supervisorId, 'pool');
  assert.instance(e!.error, SupervisorEscalationError);
  await h.finish();
});

test('worker_log: each stderr line of a worker, with its id and pid', async () => {
  const sim = createSimulation();
  let sink: ((workerId: string, pid: number | null, line: string) => void) | undefined;
  const pool = new Pool(resolveOptions({ poolSize: 1, healthCheckInterval: 0, python: 'sim' }), {
    processLogic: sim.processLogic,
    clock: sim.clock,
    now: () => sim.clock.now(),
    allExited: async () => {},
    setLogSink: (s) => (sink = s),
  });
  await pool.whenReady();
  const logs: unknown[] = [];
  pool.on('worker_log', (e) => logs.push(e));
  sink!('worker_1', 4242, 'Traceback (most recent call last):');
  assert.equal(logs, [{ workerId: 'worker_1', pid: 4242, line: 'Traceback (most recent call last):' }]);
  const stopping = pool.stop();
  await advanceClock(sim, 10);
  await stopping;
  assert.equal(sim.alive(), []);
});

// ---- listener isolation -------------------------------------------------------------------

test('a throwing listener breaks neither the pool nor the listeners after it; listener_error reports it', async () => {
  const h = setup({ poolSize: 1 });
  await h.pool.whenReady();
  const seen: string[] = [];
  const errors: Array<{ event: string; error: unknown }> = [];
  for (const name of ['checkout', 'checkin', 'worker_state', 'session_start', 'session_end', 'worker_restarted']) {
    h.pool.on(name, () => {
      throw new Error(`listener of ${name} broke`);
    });
    h.pool.on(name, () => seen.push(name));
  }
  h.pool.on('listener_error', (e) => errors.push(e));
  assert.is(await h.pool.execute('echo', 1, { sessionId: 's' }), 1);
  await h.pool.execute('die').catch(() => {});
  assert.is(await h.pool.execute('echo', 2), 2);
  assert.is(await h.pool.endSession('s'), 0, "its only worker crashed since: nothing to clean");
  assert.ok(seen.includes('checkout') && seen.includes('checkin') && seen.includes('worker_state'));
  assert.ok(seen.includes('session_start') && seen.includes('session_end') && seen.includes('worker_restarted'));
  assert.is(errors.length, seen.length, 'each throw reported once');
  assert.ok(errors.every((e) => e.error instanceof Error && (e.error as Error).message === `listener of ${e.event} broke`));
  expectStats(h, { poolSize: 1, healthyWorkers: 1, totalCommands: 3, totalErrors: 1, restarts: 1 });
  await h.finish();
});

test('a throwing listener with nobody listening for listener_error is written to stderr, not thrown', async () => {
  const h = setup({ poolSize: 1 });
  await h.pool.whenReady();
  h.pool.removeAllListeners('listener_error');
  h.pool.on('checkout', () => {
    throw new Error('oops');
  });
  const written = await captureStderr(async () => assert.is(await h.pool.execute('echo', 'fine'), 'fine'));
  assert.is(written.length, 1);
  assert.match(written[0]!, /"checkout" listener threw: Error: oops/);
  await h.finish();
});

test('a throwing listener_error listener does not loop', async () => {
  const h = setup({ poolSize: 1 });
  await h.pool.whenReady();
  h.pool.removeAllListeners('listener_error');
  h.pool.on('checkout', () => {
    throw new Error('first');
  });
  h.pool.on('listener_error', () => {
    throw new Error('second');
  });
  const written = await captureStderr(async () => assert.is(await h.pool.execute('echo', 'fine'), 'fine'));
  assert.is(written.length, 1);
  assert.match(written[0]!, /"listener_error" listener threw: Error: second/);
  await h.finish();
});

test('eventemitter3 semantics: once fires once, context is honoured, off removes', async () => {
  const h = setup({ poolSize: 1 });
  await h.pool.whenReady();
  let once = 0;
  let on = 0;
  const ctx = { name: 'ctx', calls: 0 };
  const counted = () => on++;
  h.pool.once('checkout', () => once++);
  h.pool.on('checkout', counted);
  h.pool.on(
    'checkout',
    function (this: typeof ctx) {
      this.calls++;
    },
    ctx,
  );
  await h.pool.execute('echo');
  await h.pool.execute('echo');
  h.pool.off('checkout', counted);
  await h.pool.execute('echo');
  assert.is(once, 1);
  assert.is(on, 2);
  assert.is(ctx.calls, 3);
  assert.is(h.pool.listenerCount('checkout'), 2, 'ours and the harness log');
  await h.finish();
});

test('a listener may call back into the pool', async () => {
  const h = setup({ poolSize: 1 });
  await h.pool.whenReady();
  const nested: Array<Promise<unknown>> = [];
  h.pool.once('checkin', () => {
    nested.push(h.pool.execute('echo', 'nested'));
    h.pool.stats();
    h.pool.workers();
  });
  assert.is(await h.pool.execute('echo', 'outer'), 'outer');
  assert.equal(await Promise.all(nested), ['nested']);
  await h.finish();
});

// ---- stats() and workers() ----------------------------------------------------------------

test('latencyMs: p50 and p99 of the run times', async () => {
  const h = setup({ poolSize: 1 });
  await h.pool.whenReady();
  for (let i = 0; i < 98; i++) await Promise.all([h.run('slow').promise, h.advance(100)]);
  for (let i = 0; i < 2; i++) await Promise.all([h.run('slow250').promise, h.advance(250)]);
  expectStats(h, { poolSize: 1, healthyWorkers: 1, totalCommands: 100, latencyMs: { p50: 100, p99: 250 } });
  await h.finish();
});

test('workers(): id, state, pid, requests, errors, restarts, sessions of every worker', async () => {
  const h = setup({ poolSize: 2, affinity: 'prefer' });
  await h.pool.whenReady();
  await h.pool.execute('echo', null, { sessionId: 'a' }); // worker_1
  await h.pool.execute('raise', null, { sessionId: 'b' }).catch(() => {}); // worker_1
  const busy = h.run('hang', null, { sessionId: 'c' }); // worker_1
  await h.pool.execute('die').catch(() => {}); // worker_2 crashes and is replaced
  await flush();
  assert.equal(h.pool.workers(), [
    { id: 'worker_1', state: 'busy', pid: h.pid('worker_1'), requests: 2, errors: 1, restarts: 0, sessions: 3, overflow: false, inflight: 1 },
    { id: 'worker_2', state: 'healthy', pid: pidsOf(h.sim, 'worker_2')[1]!, requests: 1, errors: 1, restarts: 1, sessions: 0, overflow: false, inflight: 0 },
  ]);
  expectStats(h, { activeSessions: 3, busyWorkers: 1, utilization: 0.5, totalCommands: 3, totalErrors: 2, restarts: 1 });
  h.sim.kill('worker_1');
  await flush();
  assert.is(busy.error?.code, 'WORKER_CRASHED');
  assert.equal(h.pool.workers().map((w) => [w.id, w.sessions, w.restarts]), [['worker_1', 0, 1], ['worker_2', 0, 1]], 'sessions die with their process');
  expectStats(h, { activeSessions: 3, totalCommands: 4, totalErrors: 3, restarts: 2 });
  await h.finish();
});

test('stats(): a failed worker counts as unhealthy until it is back; a recycled one does not', async () => {
  const h = setup({ poolSize: 2, recycle: { maxRequests: 1 } }, { startupMs: 50 });
  await h.advance(100); // the two workers start one after the other
  await h.pool.whenReady();
  h.sim.kill('worker_2');
  await flush();
  assert.is(h.pool.workers()[1]!.state, 'restarting');
  expectStats(h, { healthyWorkers: 1, unhealthyWorkers: 1 });
  await h.advance(50);
  expectStats(h, { restarts: 1 });
  await h.pool.execute('echo'); // worker_1's one request: it is recycled
  assert.is(h.pool.workers()[0]!.state, 'restarting');
  expectStats(h, { healthyWorkers: 1, unhealthyWorkers: 0, totalCommands: 1, restarts: 1 });
  await h.advance(50);
  expectStats(h, { totalCommands: 1, restarts: 2 });
  assert.equal(h.of('worker_restarted').map((e) => `${e.workerId}:${e.reason}`), ['worker_2:restart', 'worker_1:recycle']);
  await h.finish();
});

test('stats(): a worker whose first start failed and was retried counts one restart', async () => {
  const h = setup({ poolSize: 2, startTimeout: 1000 }, {}, (sim) => sim.failStarts(1, { workerId: 'worker_2', hang: true }));
  expectStats(h, { healthyWorkers: 1 });
  await h.advance(1000);
  await h.pool.whenReady();
  expectStats(h, { restarts: 1 });
  assert.equal(h.of('worker_restarted').map((e) => e.reason), ['restart']);
  await h.finish();
});

test('stats() after stop(): nothing live any more, the totals kept', async () => {
  const h = setup({ poolSize: 2, shutdownTimeout: 100 });
  await h.pool.whenReady();
  await h.pool.execute('echo', null, { sessionId: 's' });
  const running = [h.run('hang'), h.run('slow250')];
  const queued = h.run('echo');
  await flush();
  expectStats(h, { activeSessions: 1, busyWorkers: 2, utilization: 1, queueLength: 1, totalCommands: 1 });
  await h.finish();
  assert.is(queued.error?.code, 'POOL_CLOSED');
  assert.equal(running.map((r) => r.error?.code), ['POOL_CLOSED', 'POOL_CLOSED'], 'killed after shutdownTimeout');
  // Workers are stopped one at a time, last started first (OTP's order): worker_2 is killed at
  // t=100, only then is worker_1 sent SIGTERM, and it is killed at t=200.
  expectStats(h, { healthyWorkers: 0, totalCommands: 3, totalErrors: 2, latencyMs: { p50: 100, p99: 200 } });
  assert.equal(h.pool.workers().map((w) => [w.state, w.sessions]), [['stopped', 0], ['stopped', 0]]);
});

/** What `fn` wrote to stderr (where the emitter reports listeners that threw). */
async function captureStderr(fn: () => Promise<void>): Promise<string[]> {
  const written: string[] = [];
  const original = process.stderr.write;
  process.stderr.write = ((chunk: string) => (written.push(String(chunk)), true)) as typeof process.stderr.write;
  try {
    await fn();
  } finally {
    process.stderr.write = original;
  }
  return written;
}

test.run();
