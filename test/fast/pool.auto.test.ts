/**
 * affinity 'auto', the default: a session whose state a worker holds is pinned to that worker;
 * a stateless one goes anywhere; when the holder goes away the session hears of it once, with
 * the reason, then starts fresh. A session's state can never be silently missing or stale.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SessionWorkerLostError } from '../../src/errors.js';
import { flush, setup } from './pool.harness.js';

test('the default is auto: 200 sessions × 10 set-then-read, concurrently on 4 workers, every read sees its own last write', async () => {
  const h = setup({ poolSize: 4 }, {}, (sim) => sim.handle('set', (a: { v: number }, ctx) => ((ctx.session.v = a.v), a.v), { latencyMs: 3 }).handle('read', (_a, ctx) => ctx.session.v ?? null, { latencyMs: 2 }));
  await h.pool.whenReady();
  assert.is(h.pool.options.affinity, 'auto');
  let correct = 0;
  const sessions = Array.from({ length: 200 }, (_, i) => `user_${i}`);
  const runs = sessions.map(async (sessionId, i) => {
    for (let k = 0; k < 10; k++) {
      const v = i * 100 + k;
      await h.pool.execute('set', { v }, { sessionId });
      if ((await h.pool.execute('read', null, { sessionId })) === v) correct++;
    }
  });
  const done = Promise.all(runs);
  let finished = false;
  void done.then(() => (finished = true));
  for (let i = 0; i < 10_000 && !finished; i++) await h.advance(5);
  await done;
  assert.is(correct, 2000);
  // Balanced: first placement picks the worker with the fewest pinned sessions.
  const pinned = h.pool.workers().map((w) => w.sessions);
  assert.equal(pinned, [50, 50, 50, 50]);
  await h.finish();
});

test('a stateless session goes to any free worker: it never waits for a busy one, and the session pool hears nothing per request', async () => {
  const h = setup({ poolSize: 2 });
  await h.pool.whenReady();
  const busy = h.run('slow', null, { sessionId: 's' }); // worker_1, no state
  const second = h.run('echo', 'x', { sessionId: 's' });
  await flush();
  assert.is(second.value, 'x', 'served by worker_2 at once');
  await h.advance(100);
  assert.ok(busy.ok);
  assert.equal(h.pool.workers().map((w) => w.sessions), [0, 0], 'no worker holds its state');
  await h.finish();
});

test('a session with state waits for its worker, even while others are free', async () => {
  const h = setup({ poolSize: 2 });
  await h.pool.whenReady();
  assert.is(await h.pool.execute('put', { key: 'k', value: 1 }, { sessionId: 's' }), 'worker_1');
  const busy = h.run('slow', null, { sessionId: 's' }); // worker_1, its holder
  const read = h.run('get', { key: 'k' }, { sessionId: 's' });
  await flush();
  assert.not.ok(read.settled, 'it waits for worker_1, which holds its state');
  await h.advance(100);
  assert.ok(busy.ok);
  assert.equal(read.value, { value: 1, worker: 'worker_1' });
  await h.finish();
});

for (const [how, reason] of [
  ['crashes', 'crashed'],
  ['is recycled', 'recycled'],
  ['times out', 'timeout'],
] as const) {
  test(`the holder ${how} → the session's next request gets SESSION_WORKER_LOST reason '${reason}' once, then starts fresh`, async () => {
    const h = setup({ poolSize: 2, requestTimeout: 50, ...(reason === 'recycled' ? { recycle: { maxRequests: 2 } } : {}) });
    await h.pool.whenReady();
    assert.is(await h.pool.execute('put', { key: 'k', value: 1 }, { sessionId: 's' }), 'worker_1');
    if (reason === 'crashed') h.sim.kill('worker_1');
    if (reason === 'recycled') await h.pool.execute('get', { key: 'k' }, { sessionId: 's' }); // the 2nd request: recycled after it
    if (reason === 'timeout') {
      const slow = h.run('hang', null, { sessionId: 's' });
      await h.advance(50);
      assert.is(slow.error?.code, 'REQUEST_TIMEOUT');
    }
    await flush();
    const lost = h.run('get', { key: 'k' }, { sessionId: 's' });
    await flush();
    assert.instance(lost.error, SessionWorkerLostError);
    assert.is((lost.error as SessionWorkerLostError).reason, reason);
    assert.is((lost.error as SessionWorkerLostError).workerId, 'worker_1');
    const fresh = await h.pool.execute('get', { key: 'k' }, { sessionId: 's' });
    assert.equal((fresh as { value: unknown }).value, null, 'fresh state, never a stale or missing value silently');
    await h.finish();
  });
}

test("per call: affinity 'prefer' overrides the pool's 'auto' (PythonPool restores state itself)", async () => {
  const h = setup({ poolSize: 2 });
  await h.pool.whenReady();
  await h.pool.execute('put', { key: 'k', value: 1 }, { sessionId: 's' }); // worker_1 holds it
  const busy = h.run('slow', null, { sessionId: 'other' }); // worker_1
  const anywhere = h.run('whoami', null, { sessionId: 's', affinity: 'prefer' });
  await flush();
  assert.is(anywhere.value, 'worker_2', 'does not wait for its holder');
  await h.advance(100);
  assert.ok(busy.ok);
  await h.finish();
});

test('memory is checked after replies: a worker that is never idle at a tick is recycled after its current reply, and its sessions hear why', async () => {
  const h = setup({ poolSize: 1, healthCheckInterval: 0, recycle: { maxRssMb: 100 } });
  await h.pool.whenReady();
  const pid = h.pid('worker_1');
  assert.is(await h.pool.execute('put', { key: 'k', value: 1 }, { sessionId: 's' }), 'worker_1');
  h.sim.setRssMb(pid, 616);
  await h.advance(1000); // the per-worker check runs at most once a second
  const busy = h.run('slow', null, { sessionId: 'other' });
  await h.advance(100);
  assert.ok(busy.ok, 'the current request is answered first');
  await flush();
  assert.is.not(h.pid('worker_1'), pid, 'replaced after its reply, without waiting for a monitor tick');
  assert.equal(h.of('worker_restarted').map((e) => e.reason), ['recycle']);
  const lost = h.run('get', { key: 'k' }, { sessionId: 's' });
  await flush();
  assert.instance(lost.error, SessionWorkerLostError);
  assert.is((lost.error as SessionWorkerLostError).reason, 'recycled');
  await h.finish();
});

test.run();
