/**
 * WorkerHandle alone: the owner of every running request, with a stub port (what a process
 * actor attaches) and a stub ref (what the worker machine would receive). Its whole contract
 * with the machine is observe() in and LOAD / HEALTH_CHECK / RECYCLE / REPLACE out, so both
 * sides are scripted here and every rule is checked at its edge: when it is free, how a reply,
 * an abort, a deadline, a detach settle a request (exactly once), when it asks the machine for
 * what. test/fast/worker.test.ts runs the same handle against the real machines.
 */
import { stubHost } from './handle.host.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SimulatedClock, type AnyActorRef } from 'xstate';
import { WorkerHandle } from '../../src/local/workerHandle.js';
import { Request } from '../../src/core/request.js';
import type { ProcessPort } from '../../src/channel/link.js';
import { AbortError, PoolClosedError, ProtocolError, PythonError, RequestTimeoutError, SerializationError, WorkerCrashedError, type PyvisorError } from '../../src/errors.js';

interface Sent {
  id: number;
  cmd: string;
  deadline: number | null;
}

function stubPort(pid = 4242) {
  const sent: Sent[] = [];
  const signals: string[] = [];
  const port = {
    pid,
    exited: false,
    refuse: null as PyvisorError | null,
    send(id: number, cmd: string, _args: unknown, _session: string | null, deadline: number | null) {
      if (port.refuse) throw port.refuse;
      sent.push({ id, cmd, deadline });
    },
    signal(s: string) {
      signals.push(s);
    },
    control(id: number, frame: { ack: number } | { cancel: true }) {
      signals.push('ack' in frame ? `ack ${id} ${frame.ack}` : `cancel ${id}`);
    },
  };
  return { port: port as ProcessPort & typeof port, sent, signals };
}

function setup(overrides: Partial<{ interruptGrace: number; maxConsecutiveErrors: number; recycleAfter: number }> = {}) {
  const clock = new SimulatedClock();
  const log: string[] = [];
  const host = stubHost(
    { now: () => clock.now(), setTimeout: (fn: () => void, ms: number) => clock.setTimeout(fn, ms), clearTimeout: (id: unknown) => clock.clearTimeout(id as number) },
    log,
    { interruptGrace: 100, maxConsecutiveErrors: 3, recycleAfter: 0, ...overrides, logValues: true },
  );
  const handle = new WorkerHandle('w1', false, host);
  const toMachine: string[] = [];
  handle.bind({ send: (e: { type: string; busy?: boolean; reason?: string }) => toMachine.push(e.type === 'LOAD' ? `LOAD ${e.busy ? 'busy' : 'idle'}` : e.reason ? `${e.type} ${e.reason}` : e.type) } as unknown as AnyActorRef);
  const errors = new Map<number, PyvisorError>();
  let nextId = 1;
  const h = {
    clock,
    host,
    handle,
    log,
    toMachine,
    errors,
    /** A process of `generation` is attached and the machine shows it healthy. */
    live(generation = 1, pid = 4242) {
      const stub = stubPort(pid);
      handle.attach(stub.port, generation);
      handle.observe('healthy', pid, generation);
      log.length = 0; // its 'freed'
      return stub;
    },
    request(cmd = 'echo', timeout = 1000) {
      const request = new Request(nextId++, { cmd, args: null, sessionId: null, target: null, timeout, checkoutTimeout: 1000, idempotent: false, affinity: null }, () => {}, (e) => errors.set(request.id, e as PyvisorError));
      request.startedAt = clock.now();
      return request;
    },
    run(cmd = 'echo', timeout = 1000) {
      const request = h.request(cmd, timeout);
      handle.run(request);
      return request;
    },
    take: () => log.splice(0),
    tick: (ping = true) => handle.tick(clock.now(), { maxAgeMs: 0, maxRssMb: 0 }, () => null, ping),
  };
  return h;
}

const macrotask = () => new Promise<void>((resolve) => setImmediate(resolve));

// ---- free / alive / failed -------------------------------------------------------------------

test('free: a port, a routable state, a slot, nothing asked of the machine, not retiring', () => {
  const h = setup();
  assert.is(h.handle.free, false, 'no process yet');
  const { port } = stubPort();
  h.handle.attach(port, 1);
  for (const state of ['initializing', 'restarting', 'checking', 'recycling', 'stopping', 'unhealthy', 'stopped']) {
    h.handle.observe(state, 1, 1);
    assert.is(h.handle.free, false, state);
  }
  for (const state of ['healthy', 'busy']) {
    h.handle.observe(state, 1, 1);
    assert.is(h.handle.free, true, state);
  }
  h.run('hang');
  assert.is(h.handle.free, false, 'its one slot is taken');
  h.handle.reply(1, true, null);
  assert.is(h.handle.free, true);
  h.handle.retiring = true;
  assert.is(h.handle.free, false, 'retiring takes nothing new');
});

test('alive / up / failed follow the machine; a recycle passes through restarting without being a failure', () => {
  const h = setup();
  const rows: Array<[string, boolean, boolean]> = [
    ['idle', false, false],
    ['initializing', false, false],
    ['healthy', true, false],
    ['busy', true, false],
    ['checking', true, false],
    ['unhealthy', false, true],
    ['restarting', false, true],
    ['stopped', false, false],
  ];
  for (const [state, up, failed] of rows) {
    h.handle.observe(state, null, 1);
    assert.equal([h.handle.up, h.handle.alive, h.handle.failed], [up, up, failed], state);
  }
  h.live();
  h.handle.retiring = true;
  assert.equal([h.handle.up, h.handle.alive], [true, false], 'a retiring worker is up but no longer alive for routing');

  const r = setup({ recycleAfter: 1 });
  r.live();
  r.run('echo');
  r.handle.reply(1, true, 'x');
  assert.equal(r.toMachine, ['RECYCLE']);
  r.handle.observe('recycling', null, 1);
  r.handle.observe('restarting', null, 2);
  assert.is(r.handle.failed, false, 'recycling, not failed');
});

// ---- running requests ------------------------------------------------------------------------

test('run: a frame id, a run deadline on the pool clock, the worker recorded; ids are shared with pings and never repeat', () => {
  const h = setup();
  h.clock.increment(500);
  const { sent } = h.live();
  const a = h.run('echo', 250);
  assert.equal([a.workerId, a.frameId, a.deadline], ['w1', 1, 750]);
  assert.is(h.handle.nextId(), 2, 'a ping takes the next id');
  h.handle.reply(1, true, null);
  const b = h.run('echo');
  assert.is(b.frameId, 3);
  assert.equal(sent, [{ id: 1, cmd: 'echo', deadline: 750 }, { id: 3, cmd: 'echo', deadline: 1500 }]);
  h.handle.attach(stubPort(7).port, 2);
  h.handle.reply(3, true, null);
  assert.is(h.run('echo').frameId, 4, 'a new process does not restart the numbering');
});

test('reply: settles its request once; an id it does not know is refused (the process actor condemns for it)', () => {
  const h = setup();
  h.live();
  const r = h.run('echo');
  assert.is(h.handle.reply(r.frameId, true, 'v'), true);
  assert.is(h.handle.reply(r.frameId, true, 'again'), false, 'answered already: a second reply is a protocol violation');
  assert.is(h.handle.reply(999, false, { type: 'X', message: '', traceback: '' }), false);
  assert.equal(h.take(), ['finish #1 ok "v"', 'freed']);
});

test('an error reply is a PythonError carrying the command; errors in a row past the limit ask for REPLACE errors, a success resets them', () => {
  const h = setup({ maxConsecutiveErrors: 2 });
  h.live();
  const err = { type: 'ValueError', message: 'bad', traceback: 'tb' };
  h.handle.reply(h.run('a').frameId, false, err);
  const e = h.errors.get(1) as PythonError;
  assert.instance(e, PythonError);
  assert.equal([e.pythonType, e.traceback, e.command], ['ValueError', 'tb', 'a']);
  h.handle.reply(h.run('b').frameId, true, null);
  h.handle.reply(h.run('c').frameId, false, err);
  assert.equal(h.toMachine, []);
  h.handle.reply(h.run('d').frameId, false, err);
  assert.equal(h.toMachine, ['REPLACE errors']);
  assert.is(h.handle.free, false, 'held until the fresh process is healthy');
  h.handle.attach(stubPort(5).port, 2);
  h.handle.observe('restarting', null, 2);
  h.handle.observe('healthy', 5, 2);
  assert.is(h.handle.free, true);
  h.handle.reply(h.run('e').frameId, false, err);
  assert.equal(h.toMachine, ['REPLACE errors'], 'the count starts afresh with the new process');
});

test('recycleAfter: RECYCLE once the process has answered that many frames; errors in a row take precedence', () => {
  const h = setup({ recycleAfter: 2, maxConsecutiveErrors: 2 });
  h.live();
  h.handle.reply(h.run().frameId, true, null);
  assert.equal(h.toMachine, []);
  h.handle.reply(h.run().frameId, true, null);
  assert.equal(h.toMachine, ['RECYCLE']);

  const e = setup({ recycleAfter: 2, maxConsecutiveErrors: 2 });
  e.live();
  const err = { type: 'E', message: '', traceback: '' };
  e.handle.reply(e.run().frameId, false, err);
  e.handle.reply(e.run().frameId, false, err);
  assert.equal(e.toMachine, ['REPLACE errors'], 'one ask, the stronger one');
});

test('a frame the port refuses (SerializationError) settles that request at once and leaves the worker as it was', async () => {
  const h = setup();
  const { port, sent } = h.live();
  port.refuse = new SerializationError('args', 'Symbol');
  const r = h.run('echo');
  assert.instance(h.errors.get(r.id), SerializationError);
  assert.is(r.timer, null, 'its run deadline is gone with it');
  assert.is(h.handle.inflight.size, 0);
  assert.is(h.handle.free, true);
  assert.equal(sent, []);
  await macrotask();
  assert.equal(h.toMachine, [], 'no LOAD for a request that never ran');
  h.clock.increment(10_000);
  assert.equal(h.take(), ['finish #1 NOT_SERIALIZABLE', 'freed']);
});

// ---- LOAD ------------------------------------------------------------------------------------

test('LOAD: at most one per macrotask, and only when what the machine shows is wrong', async () => {
  const h = setup();
  h.live();
  const a = h.run();
  h.handle.reply(a.frameId, true, null);
  h.handle.reply(h.run().frameId, true, null);
  await macrotask();
  assert.equal(h.toMachine, [], 'busy and idle again within the macrotask: the machine was never wrong');
  h.run('slow');
  await macrotask();
  assert.equal(h.toMachine, ['LOAD busy']);
  await macrotask();
  assert.equal(h.toMachine, ['LOAD busy'], 'the machine has not moved yet, but one LOAD is enough until the load changes');
  h.handle.observe('busy', 4242, 1);
  h.handle.reply(3, true, null);
  await macrotask();
  assert.equal(h.toMachine, ['LOAD busy', 'LOAD idle']);
  h.handle.observe('checking', 4242, 1);
  assert.is(h.handle.free, false, 'a worker being checked takes nothing');
  await macrotask();
  assert.equal(h.toMachine, ['LOAD busy', 'LOAD idle'], 'no LOAD outside healthy/busy');
});

// ---- abort, deadline -------------------------------------------------------------------------

test('abort: AbortError at once and SIGINT; a handler still running after interruptGrace is replaced; one that answered is not', () => {
  const h = setup({ interruptGrace: 100 });
  const { signals } = h.live();
  const deaf = h.run('stuck');
  h.handle.abort(deaf, 'bye');
  assert.instance(h.errors.get(deaf.id), AbortError);
  assert.equal(signals, ['SIGINT']);
  h.clock.increment(99);
  assert.equal(h.toMachine, []);
  h.clock.increment(1);
  assert.equal(h.toMachine, ['REPLACE interrupt']);
  assert.is(deaf.timer, null, 'its run deadline went with its answer');

  const k = setup({ interruptGrace: 100 });
  k.live();
  const heard = k.run('hang');
  k.handle.abort(heard, 'bye');
  assert.is(k.handle.reply(heard.frameId, false, { type: 'KeyboardInterrupt', message: '', traceback: '' }), true, 'the interrupted frame still belongs to the handle');
  k.clock.increment(1000);
  assert.equal(k.toMachine, []);
  assert.equal(k.take(), ['finish #1 ABORTED', 'freed'], 'answered once; the KeyboardInterrupt is swallowed');
});

test('abort of a request whose frame is no longer out does nothing more than answer it', () => {
  const h = setup();
  const { signals } = h.live();
  const r = h.request();
  h.handle.abort(r, 'never sent');
  assert.instance(h.errors.get(r.id), AbortError);
  assert.equal(signals, []);
});

test('run deadline: timedOut, RequestTimeoutError, REPLACE timeout; a request settled before its deadline has none', () => {
  const h = setup();
  h.live();
  const r = h.run('hang', 50);
  h.clock.increment(49);
  assert.equal(h.take(), []);
  h.clock.increment(1);
  assert.equal(h.take(), ['timedOut #1', 'finish #1 REQUEST_TIMEOUT']);
  assert.instance(h.errors.get(r.id), RequestTimeoutError);
  assert.equal(h.toMachine, ['REPLACE timeout']);
  assert.is(h.handle.inflight.get(r.frameId), r, 'abandoned, not forgotten: its frame is still out until the process goes');
  assert.is(h.handle.reply(r.frameId, true, 'late'), true, 'a late reply is recognised and dropped');
  assert.equal(h.take(), [], 'not settled twice, and the held worker is not handed on');

  const ok = setup();
  ok.live();
  const fast = ok.run('echo', 50);
  ok.handle.reply(fast.frameId, true, null);
  ok.clock.increment(1000);
  assert.equal(ok.toMachine, []);
});

// ---- detach ----------------------------------------------------------------------------------

test('detach: every unsettled request on that process is lost with the cause; abandoned ones are skipped; idempotent', async () => {
  const h = setup({ interruptGrace: 100 });
  h.live();
  const aborted = h.run('stuck');
  h.handle.abort(aborted, 'x');
  h.handle.inflight.set(99, h.request('second frame')); // concurrency 1 in practice; the rule is per frame
  h.handle.inflight.get(99)!.frameId = 99;
  h.take();
  const cause = new WorkerCrashedError('w1', 4242, { code: 1, signal: null, stderrTail: ['x'] });
  assert.is(h.handle.detach(2, cause, null), 0, 'another generation: not this process');
  assert.is(h.handle.detach(1, cause, null), 2, 'two frames were out');
  assert.equal(h.take(), ['lost #2 WORKER_CRASHED', 'finish #2 WORKER_CRASHED']);
  assert.is(h.errors.get(2), cause);
  assert.is(h.handle.detach(1, cause, null), 0, 'idempotent');
  assert.is(h.handle.free, false, 'no port any more');
  h.clock.increment(1000);
  assert.equal(h.toMachine, [], 'the interrupt timer died with the process');
});

test('detach with no cause: the supervisor took the process away (WorkerCrashedError), or the pool is stopping (PoolClosedError)', () => {
  const h = setup();
  h.live();
  const r = h.run('stuck');
  h.handle.detach(1, null, null);
  const e = h.errors.get(r.id) as WorkerCrashedError;
  assert.instance(e, WorkerCrashedError);
  assert.match(e.message, /was stopped by its supervisor under the request/);
  assert.is(e.signal, 'SIGKILL');

  const s = setup();
  s.live();
  const q = s.run('stuck');
  s.host.stopping = true;
  s.handle.detach(1, new ProtocolError('x'), null);
  assert.instance(s.errors.get(q.id), PoolClosedError, 'whatever the cause, a stopping pool answers POOL_CLOSED');
});

test('failAll answers every running request now; their frames stay out and are not settled again', () => {
  const h = setup();
  h.live();
  const r = h.run('stuck');
  const error = new PoolClosedError('escalated');
  h.handle.failAll(error);
  assert.is(h.errors.get(r.id), error);
  assert.is(h.handle.inflight.size, 1);
  h.handle.detach(1, null, null);
  assert.equal(h.take(), ['finish #1 POOL_CLOSED']);
});

// ---- tick, observe ---------------------------------------------------------------------------

test('tick: pings an idle free worker once (HEALTH_CHECK), never a busy one; recycles by age or memory first', () => {
  const h = setup();
  h.live();
  h.run('hang');
  h.tick();
  assert.equal(h.toMachine, [], 'busy');
  h.handle.reply(1, true, null);
  h.tick(false);
  assert.equal(h.toMachine, [], 'health checks off');
  h.tick();
  h.tick();
  assert.equal(h.toMachine, ['HEALTH_CHECK'], 'held while the ping is out');
  h.handle.observe('checking', 4242, 1);
  h.handle.observe('healthy', 4242, 1);
  h.tick();
  assert.equal(h.toMachine, ['HEALTH_CHECK', 'HEALTH_CHECK'], 'back from the ping: free again');

  const old = setup();
  old.live();
  old.clock.increment(1000);
  old.handle.tick(old.clock.now(), { maxAgeMs: 1001, maxRssMb: 0 }, () => 9999, true);
  assert.equal(old.toMachine, ['HEALTH_CHECK'], 'young enough; memory not limited');
  old.handle.observe('checking', 4242, 1);
  old.handle.observe('healthy', 4242, 1);
  old.handle.tick(old.clock.now(), { maxAgeMs: 1000, maxRssMb: 0 }, () => null, true);
  assert.equal(old.toMachine, ['HEALTH_CHECK', 'RECYCLE']);

  const fat = setup();
  fat.live(1, 77);
  fat.handle.tick(fat.clock.now(), { maxAgeMs: 0, maxRssMb: 500 }, (pid) => (pid === 77 ? 500 : null), true);
  assert.equal(fat.toMachine, ['HEALTH_CHECK'], 'at the limit is not over it');
  fat.handle.observe('checking', 77, 1);
  fat.handle.observe('healthy', 77, 1);
  fat.handle.tick(fat.clock.now(), { maxAgeMs: 0, maxRssMb: 500 }, (pid) => (pid === 77 ? 501 : null), true);
  assert.equal(fat.toMachine, ['HEALTH_CHECK', 'RECYCLE']);
});

test('observe: restarted once per new healthy generation after the first, as a recycle only when the handle asked for one', () => {
  const h = setup({ recycleAfter: 1 });
  h.live(1, 10);
  h.handle.observe('busy', 10, 1);
  h.handle.observe('healthy', 10, 1);
  assert.equal(h.take(), ['freed', 'freed'], 'generation 1: no restart (freed on each change into a free state)');
  h.handle.observe('unhealthy', null, 1);
  h.handle.attach(stubPort(11).port, 2);
  h.handle.observe('restarting', null, 2);
  h.handle.observe('healthy', 11, 2);
  h.handle.observe('checking', 11, 2);
  h.handle.observe('healthy', 11, 2);
  assert.equal(h.take().filter((l) => l.startsWith('restarted')), ['restarted 10→11 restart'], 'a ping is no restart');
  h.handle.reply(h.run().frameId, true, null);
  assert.equal(h.toMachine, ['RECYCLE']);
  h.handle.observe('recycling', 11, 2);
  h.handle.attach(stubPort(12).port, 3);
  h.handle.observe('restarting', null, 3);
  h.handle.observe('healthy', 12, 3);
  assert.equal(h.take().filter((l) => l.startsWith('restarted')), ['restarted 11→12 recycle']);
});

test.run();
