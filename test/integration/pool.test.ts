/**
 * Layer 3: createPool against real python3 workers — sessions, affinity, endSession,
 * timeouts and crashes, with every outcome checked.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createPool } from '../../src/local/createPool.js';
import {
  PoolTimeoutError,
  PythonError,
  RequestTimeoutError,
  SessionNotFoundError,
  SessionWorkerLostError,
  WorkerCrashedError,
} from '../../src/errors.js';
import { assertAllDead, ECHO_HANDLERS, isAlive, nextEvent, PidTracker, PYTHON, statsByWorker } from './helpers.js';

const tracker = new PidTracker();
const POOL_HANDLERS = ECHO_HANDLERS.replace('echo_handlers.py', 'pool_handlers.py');
const pool = (options: Parameters<typeof createPool>[0] = {}) =>
  createPool({ python: PYTHON, handlers: [ECHO_HANDLERS, POOL_HANDLERS], ...options }).then((p) => tracker.watch(p));

test('200 sessions × 20 operations, concurrently: each reads back exactly its own state', async () => {
  const p = await pool({ poolSize: 4, affinity: 'strict' });
  try {
    const sessions = Array.from({ length: 200 }, (_, i) => `user_${i}`);
    await Promise.all(
      sessions.map(async (sessionId, i) => {
        for (let op = 0; op < 10; op++) {
          await p.execute('session_put', { key: `k${op}`, value: `${sessionId}:${op}:${i}` }, { sessionId });
          const got = (await p.execute('session_get', { key: `k${op}` }, { sessionId })) as { found: boolean; value: string };
          assert.equal(got, { session_id: sessionId, found: true, value: `${sessionId}:${op}:${i}` });
        }
      }),
    );
    const stats = p.stats();
    assert.is(stats.activeSessions, 200);
    assert.is(stats.totalCommands, 200 * 20);
    assert.is(stats.totalErrors, 0);
    assert.is(stats.restarts, 0);
  } finally {
    await p.stop();
  }
});

test("affinity 'prefer': an idle pool sends a session back to the worker that served it", async () => {
  const p = await pool({ poolSize: 3 });
  try {
    const first = await p.execute('pid', null, { sessionId: 's' });
    for (let i = 0; i < 10; i++) assert.is(await p.execute('pid', null, { sessionId: 's' }), first);
    // Different sessions still spread: all three idle workers are used by three concurrent sessions.
    const pids = await Promise.all(['a', 'b', 'c'].map((s) => p.execute('sleep_pid', { seconds: 0.2 }, { sessionId: s })));
    assert.is(new Set(pids).size, 3);
  } finally {
    await p.stop();
  }
});

test("affinity 'strict': a session waits for its own worker, and learns when that worker died", async () => {
  const p = await pool({ poolSize: 2, affinity: 'strict' });
  try {
    await p.execute('session_put', { key: 'x', value: 1 }, { sessionId: 'pinned' });
    const home = (await p.execute('pid', null, { sessionId: 'pinned' })) as number;
    // While its worker is busy, the pinned session queues for it rather than moving.
    const busy = p.execute('sleep', { seconds: 0.3 }, { sessionId: 'pinned' });
    const waited = p.execute('pid', null, { sessionId: 'pinned' });
    await busy;
    assert.is(await waited, home);
    const restarted = nextEvent(p, 'worker_restarted');
    process.kill(home, 'SIGKILL');
    await restarted;
    try {
      await p.execute('session_get', { key: 'x' }, { sessionId: 'pinned' });
      assert.unreachable('the pinned worker died');
    } catch (error) {
      assert.instance(error, SessionWorkerLostError);
    }
    // The error is reported once; the session then starts afresh.
    const again = (await p.execute('session_get', { key: 'x' }, { sessionId: 'pinned' })) as { found: boolean };
    assert.is(again.found, false);
  } finally {
    await p.stop();
  }
});

test('endSession really frees the session in every Python worker that served it', async () => {
  const p = await pool({ poolSize: 2, affinity: 'none' });
  try {
    // affinity none spreads the session over both workers.
    await Promise.all([
      p.execute('alloc', { mb: 5 }, { sessionId: 'fat' }),
      p.execute('alloc', { mb: 5 }, { sessionId: 'fat' }),
    ]);
    await p.execute('session_put', { key: 'keep', value: true }, { sessionId: 'other' });
    const before = [...(await statsByWorker(p)).values()];
    assert.ok(before.filter((s) => s.session_ids.includes('fat')).length === 2, 'both workers hold the session');
    const cleaned = await p.endSession('fat');
    assert.is(cleaned, 2);
    const after = [...(await statsByWorker(p)).values()];
    for (const s of after) assert.not.ok(s.session_ids.includes('fat'), `worker ${s.worker_id} still holds the session`);
    assert.ok(after.some((s) => s.session_ids.includes('other')), 'other sessions are untouched');
    assert.is(p.stats().activeSessions, 1);
    try {
      await p.endSession('fat');
      assert.unreachable();
    } catch (error) {
      assert.instance(error, SessionNotFoundError);
    }
  } finally {
    await p.stop();
  }
});


test('checkout timeout: PoolTimeoutError when every worker stays busy', async () => {
  const p = await pool({ poolSize: 1, maxOverflow: 0 });
  try {
    const long = p.execute('sleep', { seconds: 0.5 });
    try {
      await p.execute('echo', 1, { checkoutTimeout: 100 });
      assert.unreachable();
    } catch (error) {
      assert.instance(error, PoolTimeoutError);
      assert.match((error as Error).message, /Pool timeout - all workers busy/);
    }
    await long;
    assert.is(p.stats().totalErrors, 0, 'a checkout timeout is not a command error');
  } finally {
    await p.stop();
  }
});

test('request timeout, then a clean next request on the same pool', async () => {
  const p = await pool({ poolSize: 1, maxOverflow: 0 });
  try {
    try {
      await p.execute('sleep', { seconds: 5 }, { timeout: 200 });
      assert.unreachable();
    } catch (error) {
      assert.instance(error, RequestTimeoutError);
    }
    assert.equal(await p.execute('echo', { clean: true }), { clean: true });
    assert.is(p.workers()[0]!.restarts, 1, 'the timed-out worker was replaced');
    // A slow handler is not a crash: timeouts never count against restart intensity.
    for (let i = 0; i < 5; i++) {
      await p.execute('sleep', { seconds: 5 }, { timeout: 100 }).catch((e) => assert.instance(e, RequestTimeoutError));
    }
    assert.not.ok(p.isClosed, 'five timeouts in a row did not escalate');
    assert.equal(await p.execute('echo', 'still here'), 'still here');
  } finally {
    await p.stop();
  }
});

test('a request on an overflow worker that is SIGKILLed gets WorkerCrashedError within a second', async () => {
  const p = await pool({ poolSize: 1, maxOverflow: 1, checkoutTimeout: 10_000 });
  try {
    const handedOver = nextEvent<{ workerId: string }>(p, 'checkout', (e) => e.workerId.startsWith('overflow_'));
    const first = p.execute('sleep', { seconds: 5 });
    const second = p.execute('sleep', { seconds: 5 }); // waits, and makes the pool grow an overflow worker
    const { workerId } = await handedOver;
    const overflow = { pid: p.workers().find((w) => w.id === workerId)!.pid! };
    tracker.add(overflow.pid);
    const t0 = Date.now();
    process.kill(overflow.pid, 'SIGKILL');
    const error = await second.then(
      () => assert.unreachable('the overflow request cannot succeed'),
      (e: unknown) => e,
    );
    assert.instance(error, WorkerCrashedError);
    assert.is((error as WorkerCrashedError).pid, overflow.pid);
    assert.ok(Date.now() - t0 < 1000, `settled ${Date.now() - t0} ms after the kill`);
    process.kill(p.workers().find((w) => !w.overflow)!.pid!, 'SIGKILL');
    await first.catch(() => {});
  } finally {
    await p.stop();
  }
});

test('a handler reads its deadline: ctx.remaining() and ctx.deadline follow the request timeout', async () => {
  const p = await pool({ poolSize: 1 });
  try {
    const before = Date.now();
    const seen = (await p.execute('remaining', null, { timeout: 4_000 })) as { remaining: number; deadline: number };
    assert.ok(seen.remaining > 3 && seen.remaining <= 4, `remaining ${seen.remaining} s of a 4 s timeout`);
    assert.ok(Math.abs(seen.deadline * 1000 - (before + 4_000)) < 500, `deadline ${seen.deadline} is 4 s after the call (wall clock)`);
  } finally {
    await p.stop();
  }
});

test('SIGKILL of a busy worker: that one caller gets WorkerCrashedError, nobody else an error', async () => {
  const p = await pool({ poolSize: 2 });
  try {
    const doomed = p.execute('sleep', { seconds: 10 });
    // The direct path: the worker is busy as soon as execute() returns.
    const victimPid = p.workers().find((w) => w.state === 'busy')!.pid!;
    const others = Array.from({ length: 50 }, (_, i) => p.execute('echo', i));
    process.kill(victimPid, 'SIGKILL');
    try {
      await doomed;
      assert.unreachable();
    } catch (error) {
      assert.instance(error, WorkerCrashedError);
      assert.is((error as WorkerCrashedError).signal, 'SIGKILL');
      assert.is((error as WorkerCrashedError).pid, victimPid);
    }
    assert.equal(await Promise.all(others), Array.from({ length: 50 }, (_, i) => i));
    assert.not.ok(isAlive(victimPid));
    assert.is(p.stats().totalErrors, 1);
  } finally {
    await p.stop();
  }
});

test('a Python error keeps the worker', async () => {
  const p = await pool({ poolSize: 1 });
  try {
    const pid = p.workers()[0]!.pid;
    try {
      await p.execute('raise', { message: 'kept' });
      assert.unreachable();
    } catch (error) {
      assert.instance(error, PythonError);
      assert.is((error as PythonError).pythonType, 'ValueError');
      assert.match((error as PythonError).traceback, /Traceback/);
    }
    assert.is(p.workers()[0]!.pid, pid);
  } finally {
    await p.stop();
  }
});

test('no Python process started by this suite is alive', () => {
  assertAllDead(tracker);
});

test.run();
