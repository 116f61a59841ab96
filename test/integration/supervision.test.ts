/**
 * Layer 3: the worker machine and the OTP supervisor over real python3 processes,
 * real pipes and real signals.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

test('a handler module with a syntax error: the first line names the file and the error; one retry, then reported', async () => {
  const started = Date.now();
  try {
    await createPool({ poolSize: 1, python: PYTHON, handlers: [SYNTAX_ERROR_HANDLERS], restart: { maxRestarts: 5, maxSeconds: 30 } }).then((p) => p.stop());
    assert.unreachable('createPool should reject');
  } catch (error) {
    assert.instance(error, SupervisorEscalationError);
    const firstLine = (error as Error).message.split('\n')[0]!;
    assert.match(firstLine, /could not load handlers '.*syntax_error\.py': SyntaxError: .*\(syntax_error\.py, line \d+\)/);
    assert.match(firstLine, /gave up: the same start failure twice within 30000 ms\)$/, 'not the whole budget of 5');
    const cause = (error as Error).cause as WorkerStartError;
    assert.instance(cause, WorkerStartError);
    assert.match(cause.output, /SyntaxError/);
    assert.ok(cause.python.startsWith('/') && cause.python.includes('python'), `names the interpreter tried: ${cause.python}`);
  }
  assert.ok(Date.now() - started < 20_000, 'reported promptly');
});

test('a handler that fails the same way at every import is started twice in all, whatever the budget or pool size', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pyvisor-import-fails-'));
  const log = join(dir, 'pids.txt');
  const handlers = join(dir, 'fails_at_import.py');
  writeFileSync(handlers, `import os\nwith open(${JSON.stringify(log)}, 'a') as f:\n    f.write('%d\\n' % os.getpid())\nraise RuntimeError('no database configured')\n`);
  try {
    for (const poolSize of [1, 3]) {
      rmSync(log, { force: true });
      const error = await createPool({ poolSize, python: PYTHON, handlers: [handlers], restart: { maxRestarts: 10, maxSeconds: 60 } }).then(
        (p) => p.stop().then(() => assert.unreachable('createPool should reject')),
        (e: unknown) => e as Error,
      );
      const pids = readFileSync(log, 'utf8').trim().split('\n').map(Number);
      for (const pid of pids) tracker.add(pid);
      assert.instance(error, SupervisorEscalationError);
      assert.match(error.message.split('\n')[0]!, /RuntimeError: no database configured.*the same start failure twice/);
      // poolSize 1: the start and one retry. poolSize 3: three starts in parallel; the second to fail repeats the first.
      assert.ok(pids.length >= 2 && pids.length <= poolSize + 1, `poolSize ${poolSize}: ${pids.length} interpreters imported the file`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
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
