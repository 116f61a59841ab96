/**
 * Layer 3: the worker machine and the OTP supervisor over real python3 processes,
 * real pipes and real signals.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createActor, waitFor } from 'xstate';
import { createPool } from '../../src/local/createPool.js';
import { SupervisorEscalationError, WorkerStartError } from '../../src/errors.js';
import { supervisorMachine, childrenOf } from '../../machines/supervisor.js';
import { workerMachine } from '../../machines/worker.js';
import { createProcessLogic, ProcessRegistry } from '../../src/channel/processActor.js';
import { resolvePython } from '../../src/channel/python.js';
import { workerStateName } from '../../machines/workerStates.js';
import { assertAllDead, ECHO_HANDLERS, isAlive, nextEvent, PidTracker, PYTHON, SYNTAX_ERROR_HANDLERS } from './helpers.js';

const tracker = new PidTracker();

test('SIGKILL of a healthy worker: restarted, healthy again, pool size restored, worker_restarted with old and new pid', async () => {
  const pool = tracker.watch(await createPool({ poolSize: 2, python: PYTHON, handlers: [ECHO_HANDLERS] }));
  try {
    const victim = pool.workers()[0]!;
    const restarted = nextEvent<{ workerId: string; oldPid: number; newPid: number }>(pool, 'worker_restarted', (e) => e.workerId === victim.id);
    process.kill(victim.pid!, 'SIGKILL');
    const event = await restarted;
    tracker.add(event.newPid);
    assert.is(event.oldPid, victim.pid);
    assert.ok(event.newPid && event.newPid !== victim.pid);
    assert.not.ok(isAlive(victim.pid!), 'the killed pid is gone');
    const workers = pool.workers();
    assert.is(workers.length, 2);
    assert.ok(workers.every((w) => w.state === 'healthy'));
    assert.is(workers.find((w) => w.id === victim.id)!.restarts, 1);
    assert.equal(await pool.execute('echo', { after: 'restart' }), { after: 'restart' });
    assert.is(pool.stats().restarts, 1);
  } finally {
    await pool.stop();
  }
});

test('a handler module with a syntax error: WorkerStartError with the traceback, within the restart budget, no hot loop', async () => {
  const started = Date.now();
  let attempts = 0;
  try {
    await createPool({
      poolSize: 1,
      python: PYTHON,
      handlers: [SYNTAX_ERROR_HANDLERS],
      restart: { maxRestarts: 2, maxSeconds: 30 },
    }).then((p) => p.stop());
    assert.unreachable('createPool should reject');
  } catch (error) {
    assert.instance(error, SupervisorEscalationError);
    const cause = (error as Error).cause as WorkerStartError;
    assert.instance(cause, WorkerStartError);
    assert.match(cause.output, /SyntaxError/);
    assert.match(cause.output, /syntax_error\.py/);
    assert.ok(cause.python.startsWith('/') && cause.python.includes('python'), `names the interpreter tried: ${cause.python}`);
    attempts = (error as SupervisorEscalationError).restarts + 1;
  }
  // 1 start + maxRestarts retries, then escalation: bounded, not a loop.
  assert.is(attempts, 3);
  assert.ok(Date.now() - started < 20_000, 'escalated promptly');
});

test('a missing interpreter: WorkerStartError naming the path tried, not an ENOENT stack', async () => {
  try {
    await createPool({ poolSize: 1, python: '/nonexistent/python3.99' });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, WorkerStartError);
    assert.match((error as Error).message, /\/nonexistent\/python3\.99/);
  }
});

test('stopping a supervisor of N real workers leaves zero Python processes', async () => {
  const pool = tracker.watch(await createPool({ poolSize: 4, python: PYTHON }));
  const pids = pool.workers().map((w) => w.pid!);
  assert.is(new Set(pids).size, 4);
  assert.ok(pids.every(isAlive));
  await pool.stop();
  assert.equal(pids.filter(isAlive), []);
});

test('a worker that ignores SIGTERM is SIGKILLed after `shutdown` ms', async () => {
  const pool = tracker.watch(await createPool({ poolSize: 1, python: PYTHON, handlers: [ECHO_HANDLERS], shutdownTimeout: 300 }));
  const pid = pool.workers()[0]!.pid!;
  await pool.execute('ignore_sigterm');
  const t0 = Date.now();
  await pool.stop();
  const took = Date.now() - t0;
  assert.not.ok(isAlive(pid));
  assert.ok(took >= 280, `waited for the shutdown time before SIGKILL (${took} ms)`);
  assert.ok(took < 5_000, `then killed it (${took} ms)`);
});

test('no Python process started by this suite is alive', () => {
  assertAllDead(tracker);
});

test.run();
