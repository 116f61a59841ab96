/**
 * The worker machine on the simulation: every way a request can end, every way a process can
 * die, start, be recycled or stopped. Simulated clock only.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createActor } from 'xstate';
import { createSimulation, SimPythonError, type Simulation } from '../../src/testing/index.js';
import { workerStateName } from '../../src/pool.js';
import type { WorkerEmitted, WorkerInput } from '../../machines/worker.js';
import { AbortError, ProtocolError, PythonError, RequestTimeoutError, SerializationError, WorkerCrashedError, WorkerStartError } from '../../src/errors.js';

type Reply = Extract<WorkerEmitted, { type: 'reply' }>;

function setup(input: Partial<WorkerInput> = {}, configure?: (sim: Simulation) => void, simOptions = {}) {
  const sim = createSimulation(simOptions);
  sim
    .handle('echo', (a) => a)
    .handle('slow', (a) => a, { latencyMs: 100 })
    .handle('hang', () => sim.hang())
    .handle('stuck', () => sim.hang({ uninterruptible: true }))
    .handle('raise', (a: { message: string }) => {
      throw new SimPythonError('ValueError', a.message);
    })
    .handle('die', () => sim.crash(1));
  configure?.(sim);
  const worker = createActor(sim.workerMachine, { input: { workerId: 'w1', ...input }, clock: sim.clock });
  const replies: Reply[] = [];
  const refused: number[] = [];
  worker.on('reply', (e) => replies.push(e as Reply));
  worker.on('unavailable', (e) => refused.push((e as { ticket: number }).ticket));
  worker.start();
  let ticket = 0;
  return {
    sim,
    worker,
    replies,
    refused,
    state: () => workerStateName(worker.getSnapshot().value),
    context: () => worker.getSnapshot().context,
    exec(cmd: string, args: unknown = null, extra: { timeoutMs?: number; session?: string } = {}) {
      const t = ++ticket;
      worker.send({ type: 'EXECUTE', ticket: t, cmd, args, session: extra.session ?? null, timeoutMs: extra.timeoutMs });
      return t;
    },
    last: () => replies[replies.length - 1]!,
  };
}

test('healthy only after the ready notice and a successful ping', () => {
  const w = setup({}, undefined, { startupMs: 50 });
  w.worker.send({ type: 'START' });
  assert.is(w.state(), 'initializing');
  w.sim.advance(49);
  assert.is(w.state(), 'initializing', 'no ready notice yet');
  w.sim.advance(1);
  assert.is(w.state(), 'healthy');
  assert.is(w.context().pid, w.sim.alive()[0]!.pid);
  assert.is(w.sim.alive()[0]!.requests, 1, 'the ping');
});

test('a failed start ping is a start failure', () => {
  const w = setup({}, (sim) =>
    sim.handle('ping', () => {
      throw new SimPythonError('RuntimeError', 'not today');
    }),
  );
  w.worker.send({ type: 'START' });
  assert.is(w.state(), 'unhealthy');
  assert.instance(w.context().info.failure, WorkerStartError);
  assert.match(w.context().info.failure!.message, /not today/);
  assert.equal(w.sim.alive(), [], 'the process of a failed start is killed');
});

test('start timeout: a process that never becomes ready is a start failure', () => {
  const w = setup({ startTimeoutMs: 500 }, (sim) => sim.failStarts(1, { hang: true }));
  w.worker.send({ type: 'START' });
  w.sim.advance(499);
  assert.is(w.state(), 'initializing');
  w.sim.advance(1);
  assert.is(w.state(), 'unhealthy');
  assert.match(w.context().info.failure!.message, /not ready within 500 ms/);
  assert.equal(w.sim.alive(), []);
});

test('a process that exits during start carries its stderr into WorkerStartError', () => {
  const w = setup({}, (sim) => sim.failStarts(1, { code: 3, stderr: ['Traceback (most recent call last):', 'SyntaxError: bad'] }));
  w.worker.send({ type: 'START' });
  const failure = w.context().info.failure as WorkerStartError;
  assert.instance(failure, WorkerStartError);
  assert.match(failure.output, /SyntaxError: bad/);
  assert.match(failure.message, /exited with code 3/);
});

test('busy ⇄ healthy: a request ends in its reply', () => {
  const w = setup();
  w.worker.send({ type: 'START' });
  const t = w.exec('slow', { x: 1 });
  assert.is(w.state(), 'busy');
  w.sim.advance(100);
  assert.is(w.state(), 'healthy');
  assert.equal(w.last(), { type: 'reply', ticket: t, ok: true, result: { x: 1 }, workerId: 'w1', replaced: false });
  assert.is(w.context().stats.requests, 1);
});

test('a Python error is a PythonError reply and the worker stays', () => {
  const w = setup();
  w.worker.send({ type: 'START' });
  const pid = w.context().pid;
  w.exec('raise', { message: 'boom' });
  const reply = w.last();
  assert.is(reply.ok, false);
  const error = (reply as { error: PythonError }).error;
  assert.instance(error, PythonError);
  assert.is(error.pythonType, 'ValueError');
  assert.is(error.message, 'ValueError: boom');
  assert.match(error.traceback, /ValueError: boom/);
  assert.is(w.state(), 'healthy');
  assert.is(w.context().pid, pid);
  assert.is(w.context().stats.errors, 1);
});

test('errors in a row past maxConsecutiveErrors replace the process in place; a success resets the count', () => {
  const w = setup({ maxConsecutiveErrors: 3 });
  w.worker.send({ type: 'START' });
  const first = w.sim.processOf('w1')!;
  w.exec('raise', { message: '1' });
  w.exec('raise', { message: '2' });
  w.exec('echo');
  w.exec('raise', { message: '3' });
  w.exec('raise', { message: '4' });
  assert.ok(first.alive, 'a success in between reset the count');
  w.exec('raise', { message: '5' });
  assert.not.ok(first.alive, 'the third error in a row replaced the process');
  assert.is(w.last().replaced, true, 'the caller learns that its session state went with it');
  assert.instance((w.last() as { error: Error }).error, PythonError);
  assert.is(w.state(), 'healthy');
  assert.is(w.context().generation, 2);
  assert.is(w.sim.alive().length, 1);
});

test('request timeout: RequestTimeoutError, the process is replaced on the spot, a late reply cannot reach the next request', () => {
  const w = setup({ requestTimeoutMs: 50 });
  w.worker.send({ type: 'START' });
  const old = w.sim.processOf('w1')!;
  const t1 = w.exec('slow', 'late');
  // The caller owns the deadline (the pool's timer); the worker decides what a timeout does.
  w.worker.send({ type: 'REQUEST_TIMEOUT', ticket: t1 });
  const reply = w.last();
  assert.is(reply.ticket, t1);
  assert.instance((reply as { error: Error }).error, RequestTimeoutError);
  assert.is(reply.replaced, true);
  assert.not.ok(old.alive, 'the timed-out process is gone, so its late reply can never arrive');
  assert.is(old.exit!.signal, 'SIGKILL');
  assert.is(w.state(), 'healthy', 'replaced on the spot: a slow handler is not a sick worker');
  assert.is.not(w.context().pid, old.pid);
  assert.is(w.context().generation, 2);
  const t2 = w.exec('echo', 'fresh');
  w.sim.advance(1000);
  assert.equal(w.last(), { type: 'reply', ticket: t2, ok: true, result: 'fresh', workerId: 'w1', replaced: false });
  assert.is(w.replies.length, 2);
});

test('REQUEST_TIMEOUT for a ticket the worker is not running is ignored', () => {
  const w = setup();
  w.worker.send({ type: 'START' });
  w.exec('slow');
  w.worker.send({ type: 'REQUEST_TIMEOUT', ticket: 999 });
  assert.is(w.state(), 'busy');
  w.sim.advance(100);
  assert.is(w.last().ok, true);
});

test('REQUEST_TIMEOUT of a request held during a health ping fails it; it never ran, so the worker stays', () => {
  const w = setup({}, (sim) => sim.handle('ping', () => ({ pong: true }), { latencyMs: 10 }));
  w.worker.send({ type: 'START' });
  w.sim.advance(10);
  const pid = w.context().pid;
  w.worker.send({ type: 'HEALTH_CHECK' });
  const t = w.exec('echo', 'late');
  w.worker.send({ type: 'REQUEST_TIMEOUT', ticket: t });
  assert.instance((w.last() as { error: Error }).error, RequestTimeoutError);
  assert.is(w.last().replaced, false);
  w.sim.advance(10);
  assert.is(w.state(), 'healthy');
  assert.is(w.context().pid, pid);
  assert.is(w.replies.length, 1);
});

test('crash under a request: WorkerCrashedError with exit code, signal and stderr', () => {
  const w = setup();
  w.worker.send({ type: 'START' });
  w.exec('die');
  const error = (w.last() as { error: WorkerCrashedError }).error;
  assert.instance(error, WorkerCrashedError);
  assert.is(error.exitCode, 1);
  assert.is(error.signal, null);
  assert.equal(error.stderrTail, ['simulated crash in die']);
  assert.is(w.state(), 'unhealthy');

  w.worker.send({ type: 'START' });
  w.exec('hang');
  w.sim.kill('w1', 'SIGKILL');
  const killed = (w.last() as { error: WorkerCrashedError }).error;
  assert.is(killed.signal, 'SIGKILL');
  assert.match(killed.message, /killed by SIGKILL/);
  assert.is(w.context().stats.restarts, 1);
});

test('abort in flight: SIGINT interrupts the handler, the worker stays', () => {
  const w = setup();
  w.worker.send({ type: 'START' });
  const pid = w.context().pid;
  const t = w.exec('hang');
  w.worker.send({ type: 'ABORT', ticket: t });
  assert.equal(w.sim.processOf('w1')!.signals, ['SIGINT']);
  assert.instance((w.last() as { error: Error }).error, AbortError);
  assert.is(w.last().replaced, false);
  assert.is(w.state(), 'healthy');
  assert.is(w.context().pid, pid);
});

test('abort in flight: a handler that ignores the interrupt is replaced after the grace period', () => {
  const w = setup({ interruptGraceMs: 200 });
  w.worker.send({ type: 'START' });
  const old = w.sim.processOf('w1')!;
  const t = w.exec('stuck');
  w.worker.send({ type: 'ABORT', ticket: t });
  w.sim.advance(199);
  assert.is(w.state(), 'interrupting');
  w.sim.advance(1);
  assert.is(w.last().replaced, true);
  assert.instance((w.last() as { error: Error }).error, AbortError);
  assert.not.ok(old.alive);
  assert.is(w.state(), 'healthy', 'a fresh process took its place');
  assert.equal(w.sim.alive().length, 1);
});

test('ABORT for another ticket is ignored', () => {
  const w = setup();
  w.worker.send({ type: 'START' });
  w.exec('slow');
  w.worker.send({ type: 'ABORT', ticket: 999 });
  assert.is(w.state(), 'busy');
});

test('a value that cannot be sent fails that request only; the worker stays healthy', () => {
  const w = setup();
  w.worker.send({ type: 'START' });
  const t = w.exec('echo');
  // The real transport refuses unserializable values with SEND_FAILED; emulate its answer.
  w.worker.send({ type: 'EXECUTE', ticket: 77, cmd: 'hang', args: null, session: null });
  const id = w.context().inflight!.id;
  w.worker.send({ type: 'PROC.SEND_FAILED', id, error: new SerializationError('args', 'Symbol') });
  assert.is(w.state(), 'healthy');
  assert.is(w.last().ticket, 77);
  assert.instance((w.last() as { error: Error }).error, SerializationError);
  assert.ok(w.replies.some((r) => r.ticket === t && r.ok));
});

test('a reply with an unknown id is a protocol violation: the worker is condemned', () => {
  const w = setup();
  w.worker.send({ type: 'START' });
  const t = w.exec('hang');
  w.worker.send({ type: 'PROC.REPLY', id: 12345, ok: true, result: null });
  assert.is(w.state(), 'unhealthy');
  assert.instance(w.context().info.failure, ProtocolError);
  assert.is(w.last().ticket, t);
  assert.instance((w.last() as { error: Error }).error, ProtocolError);
  assert.equal(w.sim.alive(), []);
});

test('a protocol error from the transport condemns the worker', () => {
  const w = setup();
  w.worker.send({ type: 'START' });
  w.sim.corrupt('w1', 'garbage bytes');
  assert.is(w.state(), 'unhealthy');
  assert.match(w.context().info.failure!.message, /garbage bytes/);
});

test('health check: a ping while idle; an EXECUTE that arrives meanwhile is held, then served', () => {
  const w = setup({}, (sim) => sim.handle('ping', () => ({ pong: true }), { latencyMs: 10 }));
  w.worker.send({ type: 'START' });
  w.sim.advance(10);
  assert.is(w.state(), 'healthy');
  w.worker.send({ type: 'HEALTH_CHECK' });
  assert.is(w.state(), 'checking');
  const t = w.exec('echo', 'held');
  assert.is(w.state(), 'checking');
  w.sim.advance(10);
  assert.is(w.state(), 'healthy');
  assert.equal(w.last(), { type: 'reply', ticket: t, ok: true, result: 'held', workerId: 'w1', replaced: false });
});

test('health check: a late ping marks the worker unhealthy; the held request goes back to the queue', () => {
  const w = setup({ pingTimeoutMs: 100 }, (sim) => sim.handle('ping', () => ({ pong: true }), { latencyMs: 10 }));
  w.worker.send({ type: 'START' });
  w.sim.advance(10);
  w.sim.handle('ping', () => w.sim.hang());
  w.worker.send({ type: 'HEALTH_CHECK' });
  const t = w.exec('echo');
  w.sim.advance(100);
  assert.is(w.state(), 'unhealthy');
  assert.match(w.context().info.failure!.message, /health check within 100 ms/);
  assert.equal(w.refused, [t], 'it never reached Python: unavailable, not failed');
  assert.equal(w.replies, []);
});

test('health check: ABORT of the held request answers it at once and it never runs', () => {
  const w = setup({}, (sim) => sim.handle('ping', () => ({ pong: true }), { latencyMs: 10 }));
  w.worker.send({ type: 'START' });
  w.sim.advance(10);
  w.worker.send({ type: 'HEALTH_CHECK' });
  const t = w.exec('echo', 'never');
  w.worker.send({ type: 'ABORT', ticket: t });
  assert.instance((w.last() as { error: Error }).error, AbortError);
  w.sim.advance(10);
  assert.is(w.state(), 'healthy');
  assert.is(w.replies.length, 1, 'no second answer: the held request was dropped');
  assert.is(w.sim.processOf('w1')!.requests, 2, 'two pings, no echo');
});

test('EXECUTE in a state that cannot serve is refused, not lost', () => {
  const w = setup();
  w.exec('echo');
  assert.equal(w.refused, [1], 'idle');
  w.worker.send({ type: 'START' });
  w.sim.kill('w1');
  w.exec('echo');
  assert.equal(w.refused, [1, 2], 'unhealthy');
});

test('recycle after N requests: a new process, no restart counted, no request lost', () => {
  const w = setup({ recycleAfterRequests: 2 });
  w.worker.send({ type: 'START' });
  const first = w.context().pid;
  w.exec('echo', 1);
  assert.is(w.context().pid, first);
  w.exec('echo', 2);
  assert.is(w.state(), 'healthy');
  assert.is.not(w.context().pid, first, 'replaced after its second request');
  assert.is(w.context().generation, 2);
  assert.is(w.context().stats.restarts, 0);
  assert.equal(w.replies.map((r) => r.ok), [true, true]);
  assert.equal(w.sim.alive().length, 1);
});

test('RECYCLE on demand replaces the process gracefully (SIGTERM first)', () => {
  const w = setup();
  w.worker.send({ type: 'START' });
  const old = w.sim.processOf('w1')!;
  w.worker.send({ type: 'RECYCLE' });
  assert.equal(old.signals, ['SIGTERM']);
  assert.is(old.exit!.code, 0);
  assert.is(w.state(), 'healthy');
  assert.is.not(w.context().pid, old.pid);
});

test('stop: SIGTERM, and a running command is answered before the process exits', () => {
  const w = setup();
  w.worker.send({ type: 'START' });
  const t = w.exec('slow', 'finish me');
  w.worker.send({ type: 'STOP' });
  assert.is(w.state(), 'stopping');
  w.sim.advance(100);
  assert.is(w.state(), 'stopped');
  assert.equal(w.last(), { type: 'reply', ticket: t, ok: true, result: 'finish me', workerId: 'w1', replaced: false });
  assert.equal(w.sim.alive(), []);
});

test('stop: a process that ignores SIGTERM is SIGKILLed after `shutdown` ms', () => {
  const w = setup({ shutdown: 300 }, (sim) => sim.ignoreSigterm());
  w.worker.send({ type: 'START' });
  const proc = w.sim.processOf('w1')!;
  w.worker.send({ type: 'STOP' });
  w.sim.advance(299);
  assert.ok(proc.alive);
  w.sim.advance(1);
  assert.not.ok(proc.alive);
  assert.is(proc.exit!.signal, 'SIGKILL');
  assert.is(w.state(), 'stopped');
});

test('STOP while the start ping is out: the late ping reply is ignored and the worker stops cleanly', () => {
  const w = setup({}, (sim) => sim.handle('ping', () => ({ pong: true }), { latencyMs: 10 }));
  w.worker.send({ type: 'START' });
  assert.is(w.state(), 'initializing');
  w.worker.send({ type: 'STOP' });
  w.sim.advance(10);
  assert.is(w.state(), 'stopped');
  assert.is(w.context().info.failure, null, 'no protocol violation recorded');
  assert.equal(w.sim.alive(), []);
});

test('the worker and session-pool contexts stay small (V8 copies a ~20-key context in dictionary mode, ~10 µs per assign)', () => {
  const w = setup();
  w.worker.send({ type: 'START' });
  w.exec('echo');
  assert.ok(Object.keys(w.context()).length <= 12, `worker context has ${Object.keys(w.context()).length} top-level keys`);
  w.worker.stop();
  const pool = createSimulation().createPool({ poolSize: 1 });
  const sessionPool = pool.actor.system.get('sessionPool')!.getSnapshot() as { context: object };
  assert.ok(Object.keys(sessionPool.context).length <= 12, `session-pool context has ${Object.keys(sessionPool.context).length} top-level keys`);
  return pool.stop();
});

test('a stopped worker can be started again (one_for_all restarts stopped children)', () => {
  const w = setup();
  w.worker.send({ type: 'START' });
  w.worker.send({ type: 'STOP' });
  assert.is(w.state(), 'stopped');
  w.worker.send({ type: 'START' });
  assert.is(w.state(), 'healthy');
  assert.is(w.sim.alive().length, 1);
});

test.run();
