/**
 * Sessions on the simulation: implicit creation, affinity 'prefer' | 'strict' | 'none',
 * TTL expiry, endSession. Per-session state lives inside each fake process (`put`/`get`), so
 * a test sees exactly what Python would: state where the session ran, nothing elsewhere.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { InvalidOptionError, PoolClosedError, SessionNotFoundError, SessionWorkerLostError, WorkerCrashedError } from '../../src/errors.js';
import { expectStats, flush, row, setup, workerRows, type Harness } from './pool.harness.js';

/** Keep `workerIds` busy for `ms` with anonymous requests; returns the runs. */
function occupy(h: Harness, count: number, cmd = 'slow') {
  return Array.from({ length: count }, () => h.run(cmd));
}

function sessionsIn(h: Harness, workerId: string): string[] {
  return [...(h.sim.processOf(workerId)?.sessions.keys() ?? [])];
}

test('a session is created implicitly on first use: one session_start, counted in stats and workers()', async () => {
  const h = setup();
  await h.pool.whenReady();
  assert.is(await h.pool.execute('put', { key: 'k', value: 1 }, { sessionId: 's1' }), 'worker_1');
  assert.is(await h.pool.execute('put', { key: 'k', value: 2 }, { sessionId: 's1' }), 'worker_1');
  assert.equal(h.of('session_start'), [{ sessionId: 's1' }]);
  assert.equal(h.of('checkout').map((e) => e.sessionId), ['s1', 's1']);
  expectStats(h, { activeSessions: 1, totalCommands: 2 });
  assert.equal(workerRows(h), [row('worker_1', { requests: 2, sessions: 1 }), row('worker_2')]);
  await h.finish();
});

test("affinity 'prefer': a session goes back to the worker that served it last when that worker is idle", async () => {
  const h = setup({ poolSize: 3, affinity: 'prefer' });
  await h.pool.whenReady();
  const blocker = h.run('slow');
  assert.is(await h.pool.execute('put', { key: 'k', value: 'v' }, { sessionId: 's1' }), 'worker_2');
  await h.advance(100);
  assert.ok(blocker.ok);
  // All three idle now: an anonymous request would take worker_1; s1 goes home to worker_2.
  assert.equal(await h.pool.execute('get', { key: 'k' }, { sessionId: 's1' }), { value: 'v', worker: 'worker_2' });
  assert.is(await h.pool.execute('whoami'), 'worker_1');
  expectStats(h, { poolSize: 3, healthyWorkers: 3, activeSessions: 1, totalCommands: 4, latencyMs: { p50: 0, p99: 100 } });
  await h.finish();
});

test("affinity 'prefer': when its worker is busy the session takes any idle worker instead of waiting", async () => {
  const h = setup({ poolSize: 3, affinity: 'prefer' });
  await h.pool.whenReady();
  await h.pool.execute('put', { key: 'k', value: 'v' }, { sessionId: 's1' }); // worker_1
  const busy = occupy(h, 2, 'slow'); // worker_1, worker_2
  const got = h.run('get', { key: 'k' }, { sessionId: 's1' });
  await flush();
  assert.equal(got.value, { value: null, worker: 'worker_3' }, 'served at once elsewhere; its state there is empty');
  expectStats(h, { poolSize: 3, healthyWorkers: 3, activeSessions: 1, busyWorkers: 2, utilization: 2 / 3, totalCommands: 2 });
  await h.advance(100);
  assert.ok(busy.every((r) => r.ok));
  // Its last worker is now worker_3.
  assert.equal(await h.pool.execute('get', { key: 'k' }, { sessionId: 's1' }), { value: null, worker: 'worker_3' });
  assert.equal(workerRows(h).map((w) => [w.id, w.sessions]), [['worker_1', 1], ['worker_2', 0], ['worker_3', 1]]);
  await h.finish();
});

test("affinity 'strict': a session waits for its own worker even while others are idle, and no overflow starts for it", async () => {
  const h = setup({ poolSize: 3, affinity: 'strict', maxOverflow: 2 });
  await h.pool.whenReady();
  const blocker = h.run('slow');
  await h.pool.execute('put', { key: 'k', value: 'v' }, { sessionId: 's1' }); // worker_2
  await h.advance(100);
  assert.ok(blocker.ok);
  const running = h.run('slow', null, { sessionId: 's1' }); // worker_2
  const waiting = h.run('get', { key: 'k' }, { sessionId: 's1' });
  await flush();
  assert.is(waiting.settled, false);
  expectStats(h, { poolSize: 3, healthyWorkers: 3, activeSessions: 1, busyWorkers: 1, utilization: 1 / 3, queueLength: 1, totalCommands: 2, latencyMs: { p50: 0, p99: 100 } });
  assert.is(await h.pool.execute('whoami'), 'worker_1', 'anonymous work still flows past it');
  await h.advance(100);
  assert.ok(running.ok);
  assert.equal(waiting.value, { value: 'v', worker: 'worker_2' });
  assert.equal(h.pool.workers().map((w) => w.id), ['worker_1', 'worker_2', 'worker_3'], 'no overflow worker');
  await h.finish();
});

test("affinity 'strict': a pinned caller that waits past its deadline gets PoolTimeoutError", async () => {
  const h = setup({ poolSize: 2, affinity: 'strict', checkoutTimeout: 50 });
  await h.pool.whenReady();
  await h.pool.execute('put', { key: 'k', value: 1 }, { sessionId: 's1' }); // worker_1
  h.run('slow', null, { sessionId: 's1' });
  const waiting = h.run('echo', null, { sessionId: 's1' });
  await h.advance(50);
  assert.is(waiting.error?.code, 'POOL_TIMEOUT');
  await h.advance(50);
  expectStats(h, { activeSessions: 1, totalCommands: 2, latencyMs: { p50: 0, p99: 100 } });
  await h.finish();
});

test("affinity 'strict': its worker died → SessionWorkerLostError once, then the pin is reset", async () => {
  const h = setup({ poolSize: 2, affinity: 'strict' });
  await h.pool.whenReady();
  await h.pool.execute('put', { key: 'k', value: 'v' }, { sessionId: 's1' }); // worker_1
  h.sim.kill('worker_1');
  await flush();
  const lost = h.run('get', { key: 'k' }, { sessionId: 's1' });
  await flush();
  assert.instance(lost.error, SessionWorkerLostError);
  assert.is(lost.error!.code, 'SESSION_WORKER_LOST');
  assert.is((lost.error as SessionWorkerLostError).workerId, 'worker_1');
  assert.is((lost.error as SessionWorkerLostError).sessionId, 's1');
  // Reported once; the session goes on, pinned afresh to wherever it runs next.
  assert.equal(await h.pool.execute('get', { key: 'k' }, { sessionId: 's1' }), { value: null, worker: 'worker_1' });
  assert.equal(h.of('session_start'), [{ sessionId: 's1' }], 'the same session, not a new one');
  expectStats(h, { activeSessions: 1, totalCommands: 2, restarts: 1 });
  assert.is(await h.pool.endSession('s1'), 1);
  await h.finish();
});

test("affinity 'strict': the request in flight gets WorkerCrashedError, the ones queued for that worker SessionWorkerLostError", async () => {
  const h = setup({ poolSize: 2, affinity: 'strict' }, {}, (sim) => sim.handle('boom', () => sim.crash(1), { latencyMs: 100 }));
  await h.pool.whenReady();
  await h.pool.execute('put', { key: 'k', value: 'v' }, { sessionId: 's1' }); // worker_1
  const crashing = h.run('boom', null, { sessionId: 's1' });
  const queued = [h.run('get', { key: 'k' }, { sessionId: 's1' }), h.run('get', { key: 'k' }, { sessionId: 's1' })];
  const other = h.run('slow', null, { sessionId: 's2' }); // worker_2
  await flush();
  expectStats(h, { activeSessions: 2, busyWorkers: 2, utilization: 1, queueLength: 2, totalCommands: 1 });
  await h.advance(100);
  assert.instance(crashing.error, WorkerCrashedError);
  for (const q of queued) assert.instance(q.error, SessionWorkerLostError);
  assert.ok(other.ok, 'the other session is untouched');
  assert.equal(await h.pool.execute('get', { key: 'k' }, { sessionId: 's1' }), { value: null, worker: 'worker_1' });
  expectStats(h, { activeSessions: 2, totalCommands: 4, totalErrors: 1, restarts: 1, latencyMs: { p50: 0, p99: 100 } });
  await h.finish();
});

test("affinity 'none': sessions do not steer routing, but endSession still reaches every worker that served them", async () => {
  const h = setup({ poolSize: 2, affinity: 'none' });
  await h.pool.whenReady();
  const blocker = h.run('slow');
  assert.is(await h.pool.execute('put', { key: 'a', value: 1 }, { sessionId: 's1' }), 'worker_2');
  await h.advance(100);
  assert.ok(blocker.ok);
  assert.is(await h.pool.execute('put', { key: 'b', value: 2 }, { sessionId: 's1' }), 'worker_1', 'first idle worker, not its last one');
  assert.equal(sessionsIn(h, 'worker_1'), ['s1']);
  assert.equal(sessionsIn(h, 'worker_2'), ['s1']);
  assert.is(await h.pool.endSession('s1'), 2);
  assert.equal(sessionsIn(h, 'worker_1'), []);
  assert.equal(sessionsIn(h, 'worker_2'), []);
  expectStats(h, { totalCommands: 5, latencyMs: { p50: 0, p99: 100 } });
  await h.finish();
});

test('endSession: cleanup_session on every worker that served the session; resolves with how many did', async () => {
  const h = setup({ poolSize: 3, affinity: 'prefer' });
  await h.pool.whenReady();
  await h.pool.execute('put', { key: 'k', value: 1 }, { sessionId: 's1' }); // worker_1
  const blockers = [h.run('slow', null, { sessionId: 's1' })]; // worker_1 busy
  await h.pool.execute('put', { key: 'k', value: 2 }, { sessionId: 's1' }); // worker_2 (prefer: home busy)
  await h.advance(100);
  assert.ok(blockers[0]!.ok);
  await h.pool.execute('put', { key: 'k', value: 3 }, { sessionId: 's2' }); // worker_1
  assert.equal(sessionsIn(h, 'worker_1').sort(), ['s1', 's2']);
  assert.equal(sessionsIn(h, 'worker_2'), ['s1']);
  expectStats(h, { poolSize: 3, healthyWorkers: 3, activeSessions: 2, totalCommands: 4, latencyMs: { p50: 0, p99: 100 } });

  assert.is(await h.pool.endSession('s1'), 2);
  assert.equal(sessionsIn(h, 'worker_1'), ['s2'], 'other sessions untouched');
  assert.equal(sessionsIn(h, 'worker_2'), []);
  assert.equal(sessionsIn(h, 'worker_3'), [], 'never served s1, never asked');
  const cleanups = h.of('checkout').filter((e) => e.command === 'cleanup_session');
  assert.equal(cleanups.map((e) => e.workerId).sort(), ['worker_1', 'worker_2']);
  assert.equal(h.of('session_end'), [{ sessionId: 's1', reason: 'ended', workers: 2 }]);
  expectStats(h, { poolSize: 3, healthyWorkers: 3, activeSessions: 1, totalCommands: 6, latencyMs: { p50: 0, p99: 100 } });
  assert.equal(workerRows(h).map((w) => w.sessions), [1, 0, 0]);

  // Ended means gone: a second endSession, or one of a session never seen, is SessionNotFoundError.
  for (const id of ['s1', 'never-seen']) {
    await h.pool.endSession(id).then(
      () => assert.unreachable(),
      (e) => {
        assert.instance(e, SessionNotFoundError);
        assert.is(e.code, 'SESSION_NOT_FOUND');
        assert.match(e.message, id);
      },
    );
  }
  await h.finish();
});

test('endSession of a session whose worker is busy waits for that worker, then cleans it', async () => {
  const h = setup({ poolSize: 2, affinity: 'prefer' });
  await h.pool.whenReady();
  const running = h.run('slow', null, { sessionId: 's1' }); // worker_1
  await flush();
  let count: number | undefined;
  void h.pool.endSession('s1').then((n) => (count = n));
  await flush();
  assert.is(count, undefined, 'the cleanup waits behind the running command');
  expectStats(h, { busyWorkers: 1, utilization: 0.5, queueLength: 1 });
  await h.advance(100);
  assert.ok(running.ok);
  assert.is(count, 1);
  assert.equal(sessionsIn(h, 'worker_1'), []);
  expectStats(h, { totalCommands: 2, latencyMs: { p50: 0, p99: 100 } });
  await h.finish();
});

test('endSession does not count a worker whose process died since (its state died with it)', async () => {
  const h = setup({ poolSize: 2, affinity: 'prefer' });
  await h.pool.whenReady();
  const blocker = h.run('slow');
  await h.pool.execute('put', { key: 'k', value: 1 }, { sessionId: 's1' }); // worker_2
  await h.advance(100);
  assert.ok(blocker.ok);
  const hold = h.run('slow', null, { sessionId: 's1' }); // worker_2 (home)
  await h.pool.execute('put', { key: 'k', value: 1 }, { sessionId: 's1' }); // worker_1
  await h.advance(100);
  assert.ok(hold.ok);
  h.sim.kill('worker_2');
  await flush();
  assert.is(await h.pool.endSession('s1'), 1);
  expectStats(h, { totalCommands: 5, restarts: 1, latencyMs: { p50: 0, p99: 100 } });
  await h.finish();
});

test('endSession of a session that is still running: new requests of the same id start a new session', async () => {
  const h = setup({ poolSize: 1, affinity: 'prefer' });
  await h.pool.whenReady();
  await h.pool.execute('put', { key: 'k', value: 'old' }, { sessionId: 's1' });
  assert.is(await h.pool.endSession('s1'), 1);
  assert.equal(await h.pool.execute('get', { key: 'k' }, { sessionId: 's1' }), { value: null, worker: 'worker_1' });
  assert.equal(h.of('session_start'), [{ sessionId: 's1' }, { sessionId: 's1' }]);
  expectStats(h, { poolSize: 1, healthyWorkers: 1, activeSessions: 1, totalCommands: 3 });
  await h.finish();
});

test('session TTL: an idle session expires, cleanup_session reaches every worker that served it', async () => {
  const h = setup({ poolSize: 2, sessionTtl: 1000, affinity: 'none' });
  await h.pool.whenReady();
  const blocker = h.run('slow');
  await h.pool.execute('put', { key: 'k', value: 1 }, { sessionId: 's1' }); // worker_2
  await h.advance(100);
  assert.ok(blocker.ok);
  await h.pool.execute('put', { key: 'k', value: 1 }, { sessionId: 's1' }); // worker_1 at t=100
  assert.equal(sessionsIn(h, 'worker_1'), ['s1']);
  assert.equal(sessionsIn(h, 'worker_2'), ['s1']);
  await h.advance(999);
  assert.equal(h.of('session_end'), []);
  expectStats(h, { activeSessions: 1, totalCommands: 3, latencyMs: { p50: 0, p99: 100 } });
  await h.advance(1);
  assert.equal(h.of('session_end'), [{ sessionId: 's1', reason: 'expired', workers: 2 }]);
  assert.equal(sessionsIn(h, 'worker_1'), []);
  assert.equal(sessionsIn(h, 'worker_2'), []);
  expectStats(h, { totalCommands: 5, latencyMs: { p50: 0, p99: 100 } });
  await h.pool.endSession('s1').then(
    () => assert.unreachable(),
    (e) => assert.instance(e, SessionNotFoundError),
  );
  await h.finish();
});

test('session TTL counts from the last use, and never expires a session while a request of it runs', async () => {
  const h = setup({ poolSize: 1, sessionTtl: 200, affinity: 'prefer' });
  await h.pool.whenReady();
  await h.pool.execute('echo', null, { sessionId: 's1' });
  await h.advance(150);
  await h.pool.execute('echo', null, { sessionId: 's1' }); // t=150: expires at 350
  await h.advance(150);
  assert.equal(h.of('session_end'), []);
  const long = h.run('slow250', null, { sessionId: 's1' }); // t=300..550
  await h.advance(249);
  assert.equal(h.of('session_end'), [], 'running: not idle');
  await h.advance(1);
  assert.ok(long.ok);
  await h.advance(199);
  assert.equal(h.of('session_end'), []);
  await h.advance(1);
  assert.equal(h.of('session_end'), [{ sessionId: 's1', reason: 'expired', workers: 1 }]);
  expectStats(h, { poolSize: 1, healthyWorkers: 1, totalCommands: 4, latencyMs: { p50: 0, p99: 250 } });
  await h.finish();
});

test('session TTL never expires a session with a request still waiting in the queue', async () => {
  // worker_1 serves s1 then an anonymous caller that was queued before s1's second request;
  // s1's TTL runs out while that second request still waits.
  const h = setup({ poolSize: 1, sessionTtl: 50 });
  await h.pool.whenReady();
  const first = h.run('slow', null, { sessionId: 's1' }); // 0..100
  const anon = h.run('slow'); // queued, 100..200
  const second = h.run('put', { key: 'k', value: 'kept' }, { sessionId: 's1' }); // queued, 200
  await h.advance(200);
  assert.ok(first.ok && anon.ok && second.ok);
  assert.equal(h.of('session_end'), [], 'the session had a request waiting when its TTL ran out');
  assert.equal(await h.pool.execute('get', { key: 'k' }, { sessionId: 's1' }), { value: 'kept', worker: 'worker_1' });
  assert.equal(h.of('session_start'), [{ sessionId: 's1' }]);
  await h.advance(50);
  assert.equal(h.of('session_end'), [{ sessionId: 's1', reason: 'expired', workers: 1 }]);
  await h.finish();
});

test('a session whose only request never ran is not kept forever', async () => {
  const h = setup({ poolSize: 1, maxQueue: 1, sessionTtl: 500, checkoutTimeout: 100 });
  await h.pool.whenReady();
  h.run('slow250');
  const timedOut = h.run('echo', null, { sessionId: 'waiter' });
  const saturated = h.run('echo', null, { sessionId: 'rejected' });
  await flush();
  assert.is(saturated.error?.code, 'POOL_SATURATED');
  await h.advance(100);
  assert.is(timedOut.error?.code, 'POOL_TIMEOUT');
  await h.advance(650);
  expectStats(h, { poolSize: 1, healthyWorkers: 1, totalCommands: 1, latencyMs: { p50: 250, p99: 250 } });
  await h.finish();
});

test('sessionTtl: 0 keeps sessions until endSession', async () => {
  const h = setup({ poolSize: 1, sessionTtl: 0, affinity: 'prefer' });
  await h.pool.whenReady();
  await h.pool.execute('echo', null, { sessionId: 's1' });
  await h.advance(10 * 60 * 60 * 1000);
  expectStats(h, { poolSize: 1, healthyWorkers: 1, activeSessions: 1, totalCommands: 1 });
  assert.is(await h.pool.endSession('s1'), 1);
  await h.finish();
});

test('endSession on a stopped pool is PoolClosedError; a bad id is an InvalidOptionError', async () => {
  const h = setup({ poolSize: 1, affinity: 'prefer' });
  await h.pool.whenReady();
  await h.pool.endSession('' as string).then(
    () => assert.unreachable(),
    (e) => assert.instance(e, InvalidOptionError),
  );
  await h.pool.execute('echo', null, { sessionId: 's1' });
  await h.finish();
  await h.pool.endSession('s1').then(
    () => assert.unreachable(),
    (e) => assert.instance(e, PoolClosedError),
  );
});

test.run();
