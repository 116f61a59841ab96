/**
 * Regressions found by review, each the scenario that showed the bug.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { flush, setup } from './pool.harness.js';
import { PoolClosedError, PythonError } from '../../src/errors.js';

test('bad user input never closes the pool: 100 Python errors in a row replace workers in place, no escalation', async () => {
  const h = setup({ poolSize: 2 });
  await h.pool.whenReady();
  const runs = Array.from({ length: 100 }, () => h.run('raise', { message: 'bad input' }));
  await h.advance(1000);
  assert.ok(runs.every((r) => r.settled && r.error instanceof PythonError), 'every caller gets its own PythonError');
  assert.not.ok(h.pool.isClosed);
  assert.equal(h.of('escalation'), []);
  assert.is(await h.pool.execute('echo', 'still serving'), 'still serving');
  assert.ok(h.pool.stats().restarts >= 10, 'workers were replaced (10 errors in a row each time)');
  await h.finish();
});

test('an overflow worker that cannot even be spawned is dropped; the pool stays up and serves the caller', async () => {
  const h = setup({ poolSize: 1, maxOverflow: 1 }, {}, (sim) => sim.failStarts(Infinity, { workerId: 'overflow_1', phase: 'spawn' }));
  await h.pool.whenReady();
  const a = h.run('slow', 1);
  const b = h.run('echo', 2);
  await h.advance(1000);
  assert.equal([a.value, b.value], [1, 2]);
  assert.not.ok(h.pool.isClosed);
  assert.equal(h.of('escalation'), []);
  await h.finish();
});

test('an overflow worker that dies while booting is not replaced by another and another while a caller waits', async () => {
  const h = setup({ poolSize: 1, maxOverflow: 2 }, { startupMs: 50 });
  await h.advance(50);
  await h.pool.whenReady();
  h.sim.failStarts(Infinity);
  const a = h.run('slow250', 1);
  const b = h.run('echo', 2);
  await h.advance(2000);
  assert.equal([a.value, b.value], [1, 2]);
  const spawned = h.sim.processes().filter((p) => p.workerId.startsWith('overflow')).length;
  assert.ok(spawned <= 2, `${spawned} overflow processes were spawned for one waiting caller`);
  await h.finish();
});

test('endSession while a request of the session is still queued: serving it later starts a new session, announced', async () => {
  const h = setup({ poolSize: 1, sessionTtl: 0 });
  await h.pool.whenReady();
  h.run('slow', 1);
  const put = h.run('put', { key: 'k', value: 1 }, { sessionId: 's' });
  await flush();
  assert.is(await h.pool.endSession('s'), 0, 'no worker has served the session yet');
  await h.advance(200);
  assert.ok(put.settled && put.ok);
  assert.is(h.of('session_start').filter((e) => e.sessionId === 's').length, 2, 'the session that comes back is announced again');
  assert.is(await h.pool.endSession('s'), 1);
  await h.finish();
});

test('whenReady settles when the pool is stopped before it was ready', async () => {
  const h = setup({ poolSize: 2 }, { startupMs: 100 });
  let outcome: unknown = 'pending';
  h.pool.whenReady().then(
    () => (outcome = 'ready'),
    (e) => (outcome = e),
  );
  const stopping = h.pool.stop();
  await h.advance(20_000);
  await stopping;
  assert.instance(outcome, PoolClosedError);
  assert.equal(h.sim.alive(), []);
});

test('a request does not copy the session registry: its cost does not grow with the number of sessions', async () => {
  const h = setup({ poolSize: 2 });
  await h.pool.whenReady();
  const registry = () => (h.pool.actor.system.get('sessionPool')!.getSnapshot() as { context: { sessions: object } }).context.sessions;
  for (let i = 0; i < 2000; i++) await h.pool.execute('echo', i, { sessionId: `user_${i}` });
  const before = registry();
  assert.is(Object.keys(before).length, 2000);
  await h.pool.execute('echo', 'again', { sessionId: 'user_7' });
  await h.pool.execute('echo', 'anonymous');
  assert.is(registry(), before, 'the same registry, updated in place');
  await h.finish();
});

test('a stray reply (a hostile handler wrote a duplicate raw reply) condemns its worker at the violation; the innocent request on it is served elsewhere', async () => {
  const h = setup({ poolSize: 2 });
  await h.pool.whenReady();
  const innocent = h.run('slow', 'mine');
  await flush();
  const pid = h.pid('worker_1');
  h.sim.strayReply('worker_1', 1); // frame 1 (its start ping) was answered long ago
  await h.advance(100);
  assert.is(innocent.value, 'mine', 'served elsewhere, not failed with PROTOCOL_ERROR');
  assert.equal(h.of('checkout').map((e) => e.workerId), ['worker_1', 'worker_2']);
  await h.advance(10);
  assert.is.not(h.pid('worker_1'), pid, 'the violator was replaced');
  await h.finish();
});

test('an answer to an id that was never sent is the running request\'s fault: it gets PROTOCOL_ERROR and is not run again', async () => {
  const h = setup({ poolSize: 2 });
  await h.pool.whenReady();
  const culprit = h.run('slow', 'x');
  await flush();
  h.sim.strayReply('worker_1');
  await flush();
  assert.is(culprit.error?.code, 'PROTOCOL_ERROR');
  assert.equal(h.of('checkout').map((e) => e.workerId), ['worker_1']);
  await h.finish();
});

test.run();
