/**
 * The session pool machine alone: no workers, no facade. Every decision it makes is an emitted
 * event (assigned / rejected / start_worker / retire_worker / session_start / session_expired),
 * so the routing policy is tested here by sending it events and reading what it decides.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createActor, SimulatedClock } from 'xstate';
import { pickWorker, sessionPoolMachine, type SessionPoolContext, type SessionPoolEmitted, type SessionPoolInput } from '../../machines/sessionPool.js';
import { PoolClosedError, PoolSaturatedError, PoolTimeoutError, SessionWorkerLostError, SupervisorEscalationError } from '../../src/errors.js';

function harness(input: Partial<SessionPoolInput> = {}, up = true) {
  const clock = new SimulatedClock();
  const full: SessionPoolInput = {
    poolSize: 2,
    maxOverflow: 0,
    maxQueue: 10,
    affinity: 'prefer',
    lazy: false,
    overflowIdleMs: 1000,
    sessionTtlMs: 0,
    initialWorkers: ['worker_1', 'worker_2'],
    ...input,
  };
  const actor = createActor(sessionPoolMachine, { clock, input: full });
  const out: SessionPoolEmitted[] = [];
  actor.on('*', (e) => out.push(e as SessionPoolEmitted));
  actor.start();
  if (up) for (const id of full.initialWorkers) actor.send({ type: 'WORKER_UP', workerId: id });
  let ticket = 0;
  return {
    clock,
    actor,
    out,
    ctx: () => actor.getSnapshot().context,
    checkout(sessionId: string | null = null, timeoutMs = 100, workerId: string | null = null) {
      const t = ++ticket;
      actor.send({ type: 'CHECKOUT', ticket: t, sessionId, timeoutMs, workerId });
      return t;
    },
    checkin(t: number, workerId: string, workerLost = false) {
      actor.send({ type: 'CHECKIN', ticket: t, workerId, workerLost });
    },
    /** Emitted events since the last call, as short strings. */
    take(): string[] {
      const lines = out.splice(0).map(describe);
      return lines;
    },
    slot: (id: string) => actor.getSnapshot().context.slots.find((s) => s.id === id),
  };
}

function describe(e: SessionPoolEmitted): string {
  switch (e.type) {
    case 'assigned':
      return `assigned #${e.ticket} → ${e.workerId}`;
    case 'rejected':
      return `rejected #${e.ticket}: ${e.error.code}`;
    case 'start_worker':
      return `start ${e.workerId}${e.overflow ? ' (overflow)' : ''}`;
    case 'retire_worker':
      return `retire ${e.workerId}`;
    case 'session_start':
      return `session_start ${e.sessionId}`;
    case 'session_expired':
      return `session_expired ${e.sessionId} [${e.workers.join(', ')}]`;
  }
}

// ---- pickWorker ---------------------------------------------------------------------------

function ctx(partial: Partial<SessionPoolContext> & { affinity?: SessionPoolContext['config']['affinity'] }): SessionPoolContext {
  const { affinity = 'prefer', ...rest } = partial;
  return {
    config: { poolSize: 2, maxOverflow: 1, maxQueue: 10, affinity, lazy: false, overflowIdleMs: 1000, sessionTtlMs: 0 },
    slots: [],
    queue: [],
    sessions: {},
    nextPermanent: 3,
    nextOverflow: 1,
    closed: false,
    overflowBlocked: false,
    ...rest,
  };
}

const slot = (id: string, state: 'idle' | 'busy' | 'down' | 'starting' | 'retiring', overflow = false) => ({ id, state, overflow, ticket: null, sessionId: null });
const session = (lastWorker: string | null, lostWorker: string | null = null) => ({ lastWorker, workers: lastWorker ? [lastWorker] : [], active: 0, lostWorker });

test('pickWorker: permanent idle workers before overflow ones', () => {
  const c = ctx({ slots: [slot('overflow_1', 'idle', true), slot('worker_1', 'busy'), slot('worker_2', 'idle')] });
  assert.is(pickWorker(c, null)?.id, 'worker_2');
  assert.is(pickWorker(ctx({ slots: [slot('worker_1', 'busy'), slot('overflow_1', 'idle', true)] }), null)?.id, 'overflow_1');
  assert.is(pickWorker(ctx({ slots: [slot('worker_1', 'busy'), slot('worker_2', 'down'), slot('worker_3', 'starting')] }), null), undefined);
});

test("pickWorker: 'prefer' takes the session's last worker when idle, else any idle one", () => {
  const slots = [slot('worker_1', 'idle'), slot('worker_2', 'idle')];
  assert.is(pickWorker(ctx({ slots, sessions: { s: session('worker_2') } }), 's')?.id, 'worker_2');
  const busyHome = [slot('worker_1', 'idle'), slot('worker_2', 'busy')];
  assert.is(pickWorker(ctx({ slots: busyHome, sessions: { s: session('worker_2') } }), 's')?.id, 'worker_1');
});

test("pickWorker: 'strict' takes only the session's worker; a new session takes any", () => {
  const busyHome = [slot('worker_1', 'idle'), slot('worker_2', 'busy')];
  assert.is(pickWorker(ctx({ affinity: 'strict', slots: busyHome, sessions: { s: session('worker_2') } }), 's'), undefined);
  assert.is(pickWorker(ctx({ affinity: 'strict', slots: busyHome, sessions: { s: session(null) } }), 's')?.id, 'worker_1');
});

test("pickWorker: 'none' ignores the session", () => {
  const slots = [slot('worker_1', 'idle'), slot('worker_2', 'idle')];
  assert.is(pickWorker(ctx({ affinity: 'none', slots, sessions: { s: session('worker_2') } }), 's')?.id, 'worker_1');
});

test('pickWorker: a targeted request takes that worker or waits', () => {
  const slots = [slot('worker_1', 'idle'), slot('worker_2', 'busy')];
  assert.is(pickWorker(ctx({ slots }), null, 'worker_2'), undefined);
  assert.is(pickWorker(ctx({ slots }), null, 'worker_1')?.id, 'worker_1');
});

// ---- queue --------------------------------------------------------------------------------

test('checkout: idle worker at once; otherwise queued, served FIFO on checkin', () => {
  const h = harness();
  const a = h.checkout();
  const b = h.checkout();
  const c = h.checkout();
  const d = h.checkout();
  assert.equal(h.take(), [`assigned #${a} → worker_1`, `assigned #${b} → worker_2`]);
  assert.equal(h.ctx().queue.map((w) => w.ticket), [c, d]);
  h.checkin(b, 'worker_2');
  assert.equal(h.take(), [`assigned #${c} → worker_2`]);
  h.checkin(a, 'worker_1');
  assert.equal(h.take(), [`assigned #${d} → worker_1`]);
  assert.equal(h.ctx().queue, []);
});

test('checkout deadline: the waiting request is rejected with PoolTimeoutError and never assigned', () => {
  const h = harness({ poolSize: 1, initialWorkers: ['worker_1'] });
  const a = h.checkout();
  const b = h.checkout(null, 50);
  h.take();
  h.clock.increment(49);
  assert.equal(h.take(), []);
  h.clock.increment(1);
  const [rejected] = h.out.splice(0);
  assert.is(rejected!.type, 'rejected');
  assert.instance((rejected as { error: Error }).error, PoolTimeoutError);
  assert.match((rejected as { error: Error }).error.message, 'Pool timeout - all workers busy');
  h.checkin(a, 'worker_1');
  assert.equal(h.take(), [], `#${b} is gone`);
  assert.is(h.slot('worker_1')!.state, 'idle');
});

test('an assigned request has no deadline any more', () => {
  const h = harness({ poolSize: 1, initialWorkers: ['worker_1'] });
  const a = h.checkout();
  const b = h.checkout(null, 50);
  h.checkin(a, 'worker_1');
  h.take();
  h.clock.increment(1000);
  assert.equal(h.take(), []);
  h.checkin(b, 'worker_1');
});

test('maxQueue: the request past it is rejected at once; a session it would open is not opened', () => {
  const h = harness({ poolSize: 1, maxQueue: 1, initialWorkers: ['worker_1'] });
  h.checkout();
  h.checkout('queued');
  const c = h.checkout('refused');
  const events = h.out.splice(0);
  assert.equal(events.map(describe), ['assigned #1 → worker_1', 'session_start queued', `rejected #${c}: POOL_SATURATED`]);
  assert.instance((events[2] as { error: Error }).error, PoolSaturatedError);
  assert.equal(Object.keys(h.ctx().sessions), ['queued']);
});

test('CANCEL removes a waiting request and its deadline', () => {
  const h = harness({ poolSize: 1, initialWorkers: ['worker_1'] });
  const a = h.checkout();
  const b = h.checkout(null, 50);
  h.actor.send({ type: 'CANCEL', ticket: b });
  assert.equal(h.ctx().queue, []);
  h.take();
  h.clock.increment(100);
  h.checkin(a, 'worker_1');
  assert.equal(h.take(), [], 'neither rejected by its deadline nor assigned');
});

test('CLOSE rejects every waiting request with the given error; later checkouts get PoolClosedError', () => {
  const h = harness({ poolSize: 1, initialWorkers: ['worker_1'] });
  h.checkout();
  const b = h.checkout();
  h.take();
  const error = new SupervisorEscalationError('workers', 0, 5000);
  h.actor.send({ type: 'CLOSE', error });
  const [rejected] = h.out.splice(0);
  assert.equal(describe(rejected!), `rejected #${b}: ESCALATED`);
  assert.is((rejected as { error: Error }).error, error);
  const c = h.checkout();
  const [late] = h.out.splice(0);
  assert.equal(describe(late!), `rejected #${c}: POOL_CLOSED`);
  assert.instance((late as { error: Error }).error, PoolClosedError);
  h.clock.increment(1000);
  assert.equal(h.take(), [], 'no deadline fires after close');
});

// ---- growth -------------------------------------------------------------------------------

test('lazy growth: one worker per request nobody can serve, permanent first, then overflow, then nothing', () => {
  const h = harness({ poolSize: 2, maxOverflow: 1, lazy: true, initialWorkers: [] }, false);
  h.checkout();
  assert.equal(h.take(), ['start worker_1']);
  h.checkout();
  assert.equal(h.take(), ['start worker_2']);
  h.checkout();
  assert.equal(h.take(), ['start overflow_1 (overflow)']);
  h.checkout();
  assert.equal(h.take(), [], 'poolSize + maxOverflow reached');
  h.actor.send({ type: 'WORKER_UP', workerId: 'worker_2' });
  assert.equal(h.take(), ['assigned #1 → worker_2']);
});

test('growth: requests pinned to a busy worker (strict) or targeted at one do not start workers', () => {
  const h = harness({ poolSize: 1, maxOverflow: 2, affinity: 'strict', initialWorkers: ['worker_1'] });
  const a = h.checkout('s');
  h.checkin(a, 'worker_1');
  h.checkout(null, 1000); // anonymous: takes worker_1
  h.take();
  h.checkout('s'); // pinned to busy worker_1: waits
  h.checkout(null, 100, 'worker_1'); // targeted: waits
  assert.equal(h.take(), []);
  h.checkout(); // anonymous: nobody can serve it → one overflow worker
  assert.equal(h.take(), ['start overflow_1 (overflow)']);
});

test('overflow retirement: idle for overflowIdleMs → retire_worker; a use in between restarts the clock', () => {
  const h = harness({ poolSize: 1, maxOverflow: 1, initialWorkers: ['worker_1'] });
  h.checkout();
  h.checkout();
  assert.equal(h.take(), ['assigned #1 → worker_1', 'start overflow_1 (overflow)']);
  h.actor.send({ type: 'WORKER_UP', workerId: 'overflow_1' });
  assert.equal(h.take(), ['assigned #2 → overflow_1']);
  h.checkin(2, 'overflow_1');
  h.clock.increment(600);
  const c = h.checkout(); // worker_1 is still busy: overflow_1
  assert.equal(h.take(), [`assigned #${c} → overflow_1`]);
  h.checkin(c, 'overflow_1');
  h.clock.increment(999);
  assert.equal(h.take(), []);
  h.clock.increment(1);
  assert.equal(h.take(), ['retire overflow_1']);
  assert.is(h.slot('overflow_1')!.state, 'retiring');
  h.actor.send({ type: 'WORKER_REMOVED', workerId: 'overflow_1' });
  assert.is(h.slot('overflow_1'), undefined);
});

test("overflow retirement under 'strict' waits until no session is pinned to the worker", () => {
  const h = harness({ poolSize: 1, maxOverflow: 1, affinity: 'strict', sessionTtlMs: 5000, initialWorkers: ['worker_1'] });
  h.checkout(null, 10_000); // worker_1 busy for the whole test
  h.checkout('s');
  h.actor.send({ type: 'WORKER_UP', workerId: 'overflow_1' });
  h.checkin(2, 'overflow_1');
  h.take();
  h.clock.increment(1000);
  assert.equal(h.take(), [], 's is pinned to overflow_1');
  h.clock.increment(4000);
  assert.equal(h.take(), ['session_expired s [overflow_1]']);
  h.clock.increment(1000);
  assert.equal(h.take(), ['retire overflow_1']);
});

// ---- sessions -----------------------------------------------------------------------------

test('sessions: created on first checkout, one session_start, workers recorded', () => {
  const h = harness({ affinity: 'none' });
  const a = h.checkout('s');
  const b = h.checkout('s');
  assert.equal(h.take(), ['session_start s', `assigned #${a} → worker_1`, `assigned #${b} → worker_2`]);
  assert.equal(h.ctx().sessions.s, { lastWorker: 'worker_2', workers: ['worker_1', 'worker_2'], active: 2, lostWorker: null });
  h.checkin(a, 'worker_1');
  h.checkin(b, 'worker_2');
  assert.is(h.ctx().sessions.s!.active, 0);
});

test('session TTL: expires after sessionTtlMs idle, reporting every worker that served it', () => {
  const h = harness({ sessionTtlMs: 500, affinity: 'none' });
  const a = h.checkout('s');
  const b = h.checkout('s');
  h.checkin(a, 'worker_1');
  h.clock.increment(400);
  assert.equal(h.take().filter((e) => e.startsWith('session_expired')), [], 'a request of it still runs');
  h.checkin(b, 'worker_2');
  h.clock.increment(499);
  assert.equal(h.take().filter((e) => e.startsWith('session_expired')), []);
  h.clock.increment(1);
  assert.equal(h.take(), ['session_expired s [worker_1, worker_2]']);
  assert.equal(h.ctx().sessions, {});
});

test('session TTL: not while a request of the session waits in the queue', () => {
  const h = harness({ poolSize: 1, sessionTtlMs: 50, initialWorkers: ['worker_1'] });
  const a = h.checkout('s', 1000);
  const other = h.checkout(null, 1000);
  const b = h.checkout('s', 1000);
  h.checkin(a, 'worker_1'); // s idle-ish, but #b waits; `other` takes the worker
  h.clock.increment(100);
  assert.equal(h.take().filter((e) => e.startsWith('session_expired')), []);
  h.checkin(other, 'worker_1');
  h.checkin(b, 'worker_1');
  h.clock.increment(50);
  assert.equal(h.take().filter((e) => e.startsWith('session_expired')), ['session_expired s [worker_1]']);
});

test('session TTL: a session whose requests all left the queue unserved expires too', () => {
  const h = harness({ poolSize: 1, sessionTtlMs: 50, initialWorkers: ['worker_1'] });
  h.checkout(null, 1000);
  const b = h.checkout('timed-out', 10);
  const c = h.checkout('cancelled', 1000);
  h.actor.send({ type: 'CANCEL', ticket: c });
  h.take();
  h.clock.increment(10);
  assert.equal(h.take(), [`rejected #${b}: POOL_TIMEOUT`]);
  h.clock.increment(50);
  assert.equal(h.take().sort(), ['session_expired cancelled []', 'session_expired timed-out []']);
  assert.equal(h.ctx().sessions, {});
});

test('END_SESSION forgets the session and stops its TTL clock', () => {
  const h = harness({ sessionTtlMs: 50 });
  h.checkin(h.checkout('s'), 'worker_1');
  h.actor.send({ type: 'END_SESSION', sessionId: 's' });
  assert.equal(h.ctx().sessions, {});
  h.take();
  h.clock.increment(100);
  assert.equal(h.take(), []);
});

test("strict: a dead worker's sessions are rejected with SessionWorkerLostError once, then unpinned", () => {
  const h = harness({ affinity: 'strict' });
  h.checkin(h.checkout('s'), 'worker_1');
  h.take();
  h.actor.send({ type: 'WORKER_DOWN', workerId: 'worker_1' });
  assert.is(h.ctx().sessions.s!.lostWorker, 'worker_1');
  const b = h.checkout('s');
  const [lost] = h.out.splice(0);
  assert.equal(describe(lost!), `rejected #${b}: SESSION_WORKER_LOST`);
  assert.instance((lost as { error: Error }).error, SessionWorkerLostError);
  assert.equal(h.ctx().sessions.s, { lastWorker: null, workers: [], active: 0, lostWorker: null }, 'kept, unpinned');
  const c = h.checkout('s');
  assert.equal(h.take(), [`assigned #${c} → worker_2`]);
});

test("strict: requests waiting for a worker that dies are all rejected, and the session is unpinned", () => {
  const h = harness({ affinity: 'strict' });
  const a = h.checkout('s');
  h.checkout(null, 1000); // worker_2 busy
  const q1 = h.checkout('s');
  const q2 = h.checkout('s');
  h.take();
  h.checkin(a, 'worker_1', true);
  assert.equal(h.take(), [`rejected #${q1}: SESSION_WORKER_LOST`, `rejected #${q2}: SESSION_WORKER_LOST`]);
  assert.equal(h.ctx().sessions.s!.lastWorker, null);
  h.actor.send({ type: 'WORKER_UP', workerId: 'worker_1' });
  const d = h.checkout('s');
  assert.equal(h.take(), [`assigned #${d} → worker_1`]);
});

test("prefer: a dead worker's sessions simply go elsewhere", () => {
  const h = harness({ affinity: 'prefer' });
  h.checkin(h.checkout('s'), 'worker_1');
  h.actor.send({ type: 'WORKER_DOWN', workerId: 'worker_1' });
  h.take();
  const b = h.checkout('s');
  assert.equal(h.take(), [`assigned #${b} → worker_2`]);
  assert.equal(h.ctx().sessions.s!.workers, ['worker_2'], 'worker_1 holds no state of s any more');
});

test('a removed worker holds no session state any more', () => {
  const h = harness({ poolSize: 1, maxOverflow: 1, initialWorkers: ['worker_1'] });
  h.checkout(null, 10_000);
  h.checkout('s');
  h.actor.send({ type: 'WORKER_UP', workerId: 'overflow_1' });
  h.checkin(2, 'overflow_1');
  h.clock.increment(1000);
  h.actor.send({ type: 'WORKER_REMOVED', workerId: 'overflow_1' });
  assert.equal(h.ctx().sessions.s!.workers, []);
});

test('targeted checkout: a request for a worker that is gone is rejected at once', () => {
  const h = harness();
  h.actor.send({ type: 'WORKER_DOWN', workerId: 'worker_2' });
  const t = h.checkout(null, 100, 'worker_2');
  assert.equal(h.take(), [`rejected #${t}: SESSION_WORKER_LOST`]);
  const u = h.checkout(null, 100, 'nobody');
  assert.equal(h.take(), [`rejected #${u}: SESSION_WORKER_LOST`]);
});

test('a worker that goes down while requests wait for it specifically fails them', () => {
  const h = harness();
  const a = h.checkout(); // worker_1
  const t = h.checkout(null, 1000, 'worker_1');
  h.take();
  h.checkin(a, 'worker_1', true);
  assert.equal(h.take(), [`rejected #${t}: SESSION_WORKER_LOST`]);
});

test('machines/ stay pure: no wall clock, no timers of their own', () => {
  const dir = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..', 'machines');
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
    const code = readFileSync(join(dir, file), 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
    for (const banned of ['Date.now(', 'new Date(', 'setTimeout(', 'setInterval(', 'performance.now(', 'process.hrtime']) {
      assert.not.ok(code.includes(banned), `${file} uses ${banned}`);
    }
  }
});

test.run();
