/**
 * workerConcurrency > 1 on the simulation: several requests in flight per worker, replies out of
 * order, least-loaded routing, and the fault model kept whole — a crash fails every request in
 * flight on that worker with WorkerCrashedError (none counted against intensity), a timed-out or
 * aborted request is abandoned (cancel frame, late reply dropped) and the process is replaced only
 * when it stops answering altogether.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setup, type Harness } from './pool.harness.js';

function handlers(h: Harness): void {
  h.sim
    .handle('wait100', (a) => a, { latencyMs: 100 })
    .handle('wait10', (a) => a, { latencyMs: 10 })
    .handle('crash_later', () => h.sim.crash(null, 'SIGKILL'), { latencyMs: 50 });
}

test('up to workerConcurrency requests run on one worker at once; more wait; replies come back in any order', async () => {
  const h = setup({ poolSize: 1, workerConcurrency: 4 });
  handlers(h);
  await h.pool.whenReady();
  const slow = h.run('wait100', 'slow');
  const fast = [1, 2, 3].map((i) => h.run('wait10', i));
  const queued = h.run('wait10', 'fifth');
  await h.advance(1);
  assert.is(h.pool.workers()[0]!.inflight, 4);
  assert.is(h.pool.stats().queueLength, 1);
  await h.advance(10);
  assert.equal(fast.map((o) => o.value), [1, 2, 3], 'the short ones answered before the long one');
  assert.is(slow.settled, false);
  await h.advance(10);
  assert.is(queued.value, 'fifth', 'a freed slot takes the waiting request at once');
  await h.advance(100);
  assert.is(slow.value, 'slow');
  assert.is(h.sim.processOf('worker_1')!.peakInflight, 4);
  const stats = h.pool.stats();
  assert.is(stats.totalCommands, 5);
  assert.is(stats.totalErrors, 0);
  assert.is(stats.restarts, 0);
  await h.finish();
});

test('routing spreads requests over the least-loaded worker', async () => {
  const h = setup({ poolSize: 2, workerConcurrency: 8 });
  handlers(h);
  await h.pool.whenReady();
  const runs = Array.from({ length: 10 }, (_, i) => h.run('wait100', i));
  await h.advance(1);
  assert.equal(h.pool.workers().map((w) => w.inflight), [5, 5]);
  await h.advance(100);
  assert.ok(runs.every((r) => r.ok));
  await h.finish();
});

test('a crash fails every request in flight on that worker with WorkerCrashedError; none counts against intensity; an idempotent one is retried', async () => {
  const h = setup({ poolSize: 1, workerConcurrency: 4 });
  handlers(h);
  await h.pool.whenReady();
  const victims = [h.run('wait100', 1), h.run('wait100', 2, { idempotent: true })];
  const killer = h.run('crash_later');
  await h.advance(60);
  assert.is(killer.error?.code, 'WORKER_CRASHED');
  assert.is(victims[0]!.error?.code, 'WORKER_CRASHED');
  for (let i = 0; i < 40 && !victims[1]!.settled; i++) await h.advance(50);
  assert.is(victims[1]!.value, 2, 'the idempotent one ran again on the fresh process');
  assert.is(h.of('tier_restarted').length, 0);
  assert.is(h.pool.stats().restarts, 1);
  await h.finish();
});

test('a timeout among others abandons the request: cancel frame, the others go on, the late reply is dropped, no process replaced', async () => {
  const h = setup({ poolSize: 1, workerConcurrency: 4, interruptGrace: 1000 });
  handlers(h);
  await h.pool.whenReady();
  const pid = h.pid('worker_1');
  const late = h.run('wait100', 'late', { timeout: 50 });
  const others = Array.from({ length: 3 }, (_, i) => h.run('wait10', i));
  await h.advance(50);
  assert.is(late.error?.code, 'REQUEST_TIMEOUT');
  assert.ok(others.every((o) => o.ok));
  const proc = h.sim.processOf('worker_1')!;
  assert.equal(proc.controls.map((c) => c.cancel), [true]);
  await h.advance(60);
  assert.is(h.pool.workers()[0]!.inflight, 0, 'the late reply freed its slot and was dropped');
  await h.advance(1000);
  assert.is(h.pid('worker_1'), pid, 'a process that answers is not replaced');
  assert.equal(h.pool.stats().restarts, 0);
  await h.finish();
});

test('a process that stops answering altogether is replaced after interruptGrace (uncounted)', async () => {
  const h = setup({ poolSize: 1, workerConcurrency: 4, interruptGrace: 200 });
  handlers(h);
  h.sim.handle('deaf', () => h.sim.hang({ uninterruptible: true }));
  await h.pool.whenReady();
  const pid = h.pid('worker_1');
  const stuck = [h.run('deaf', null, { timeout: 50 }), h.run('deaf', null, { timeout: 60 })];
  await h.advance(60);
  assert.ok(stuck.every((s) => s.error?.code === 'REQUEST_TIMEOUT'));
  await h.advance(150);
  assert.is(h.pid('worker_1'), pid, 'within the grace period the process is kept');
  await h.advance(100);
  for (let i = 0; i < 20 && h.pool.workers()[0]!.state !== 'healthy'; i++) await h.advance(50);
  assert.is.not(h.pid('worker_1'), pid, 'replaced: nothing it had in flight was answered');
  assert.is(h.of('tier_restarted').length, 0);
  assert.equal(await h.pool.execute('echo', 'ok'), 'ok');
  await h.finish();
});

test('an abort among others is a cancel frame, never SIGINT (it would interrupt every request of the process)', async () => {
  const h = setup({ poolSize: 1, workerConcurrency: 2 });
  handlers(h);
  await h.pool.whenReady();
  const controller = new AbortController();
  const aborted = h.run('hang', null, { signal: controller.signal });
  const other = h.run('wait100', 'kept');
  await h.advance(10);
  controller.abort();
  await h.advance(1);
  assert.is(aborted.error?.code, 'ABORTED');
  const proc = h.sim.processOf('worker_1')!;
  assert.equal(proc.signals, []);
  assert.is(proc.controls.length, 1);
  await h.advance(100);
  assert.is(other.value, 'kept');
  assert.is(h.pool.workers()[0]!.inflight, 0, 'the cancelled hang answered Cancelled and freed its slot');
  await h.finish();
});

test('workerConcurrency is validated: an integer between 1 and 1024', async () => {
  const { createSimulation } = await import('../../src/testing/index.js');
  const sim = createSimulation();
  for (const bad of [0, 1.5, 1025, '4', -1]) {
    assert.throws(() => sim.createPool({ workerConcurrency: bad as number }), (e: Error & { code?: string }) => e.code === 'INVALID_OPTION' && /workerConcurrency/.test(e.message) && /between 1 and 1024/.test(e.message));
  }
});

test.run();
