/**
 * The session pool machine alone: no workers, no dispatcher, no facade. It never sees a
 * request; it hears DEMAND, the session events and the membership events, and every decision
 * it makes is an emitted event (start_worker / retire_worker / session_start / session_expired)
 * or a question to the pool (session_idle_check / worker_idle_check), which the test answers
 * itself with SESSION_IDLE_FOR / WORKER_IDLE_FOR. Simulated clock only.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createActor, SimulatedClock } from 'xstate';
import { growth, sessionPoolMachine, type SessionPoolEmitted, type SessionPoolEvent, type SessionPoolInput } from '../../machines/sessionPool.js';

function harness(input: Partial<SessionPoolInput> = {}) {
  const clock = new SimulatedClock();
  const full: SessionPoolInput = {
    poolSize: 2,
    maxOverflow: 0,
    affinity: 'prefer',
    overflowIdle: 1000,
    sessionTtl: 0,
    initialWorkers: [],
    ...input,
  };
  const actor = createActor(sessionPoolMachine, { clock, input: full });
  const out: SessionPoolEmitted[] = [];
  actor.on('*', (e) => out.push(e as SessionPoolEmitted));
  actor.start();
  const h = {
    clock,
    actor,
    out,
    send(...events: SessionPoolEvent[]) {
      for (const e of events) actor.send(e);
      return h;
    },
    ctx: () => actor.getSnapshot().context,
    /** Emitted events since the last call, as short strings. */
    take: (): string[] => out.splice(0).map(describe),
    /** The slots as `id:state`, overflow ones marked with a `+`. */
    slots: () => actor.getSnapshot().context.slots.map((s) => `${s.id}${s.overflow ? '+' : ''}:${s.state}`),
    session: (id: string) => actor.getSnapshot().context.sessions[id],
    /** Mark these workers up (they were asked for, or are the initial ones). */
    up(...ids: string[]) {
      for (const workerId of ids) actor.send({ type: 'WORKER_UP', workerId });
      return h;
    },
    demand(unserved: number) {
      actor.send({ type: 'DEMAND', unserved });
      return h.take();
    },
    /** A session served by these workers, the last one being its home. */
    served(sessionId: string, ...workers: string[]) {
      actor.send({ type: 'SESSION_SEEN', sessionId });
      for (const workerId of workers) actor.send({ type: 'SESSION_PLACED', sessionId, workerId });
      return h;
    },
  };
  return h;
}

function describe(e: SessionPoolEmitted): string {
  switch (e.type) {
    case 'start_worker':
      return `start ${e.workerId}${e.overflow ? ' (overflow)' : ''}`;
    case 'retire_worker':
      return `retire ${e.workerId}`;
    case 'session_start':
      return `session_start ${e.sessionId}`;
    case 'session_expired':
      return `session_expired ${e.sessionId} [${e.workers.join(', ')}]`;
    case 'session_idle_check':
      return `idle? ${e.sessionId}`;
    case 'worker_idle_check':
      return `idle? ${e.workerId}`;
  }
}

// ---- growth -------------------------------------------------------------------------------

test('lazy growth: one worker per unserved request nobody is starting for, permanent first, then overflow, then nothing', () => {
  const h = harness({ poolSize: 2, maxOverflow: 1 });
  assert.equal(h.slots(), [], 'a lazy pool starts empty');
  assert.equal(h.demand(1), ['start worker_1']);
  assert.equal(h.slots(), ['worker_1:starting']);
  assert.equal(h.demand(1), [], 'the starting worker_1 will take that request');
  assert.equal(h.demand(2), ['start worker_2']);
  assert.equal(h.demand(3), ['start overflow_1 (overflow)']);
  assert.equal(h.demand(4), [], 'poolSize + maxOverflow reached');
  assert.equal(h.demand(100), []);
  assert.equal(h.slots(), ['worker_1:starting', 'worker_2:starting', 'overflow_1+:starting']);
});

test('growth: one DEMAND may start several workers at once, permanent ones first, capped', () => {
  const h = harness({ poolSize: 2, maxOverflow: 2 });
  assert.equal(h.demand(9), ['start worker_1', 'start worker_2', 'start overflow_1 (overflow)', 'start overflow_2 (overflow)']);
  assert.equal(h.demand(9), []);
});

test('growth: the initial workers of an eager pool count as starting until they are up, then as busy', () => {
  const h = harness({ poolSize: 2, maxOverflow: 2, initialWorkers: ['worker_1', 'worker_2'] });
  assert.equal(h.slots(), ['worker_1:starting', 'worker_2:starting']);
  assert.equal(h.demand(2), [], 'two starting workers will take two requests');
  assert.equal(h.demand(3), ['start overflow_1 (overflow)'], 'the third one needs another worker, and only overflow is left');
  h.up('worker_1', 'worker_2');
  // The dispatcher only reports demand that no up worker can take: an up worker absorbs nothing.
  assert.equal(h.demand(2), ['start overflow_2 (overflow)'], 'overflow_1 is still starting: one more');
  assert.equal(h.demand(5), [], 'capped');
  assert.is(h.ctx().nextPermanent, 3, 'the next permanent id follows the initial ones');
});

test('growth: a permanent worker that is down still counts towards poolSize (its supervisor brings it back)', () => {
  const h = harness({ poolSize: 1, maxOverflow: 1, initialWorkers: ['worker_1'] });
  h.up('worker_1');
  h.send({ type: 'WORKER_DOWN', workerId: 'worker_1', reason: 'crashed' });
  assert.equal(h.slots(), ['worker_1:down']);
  assert.equal(h.demand(1), ['start overflow_1 (overflow)'], 'no second permanent worker; a down one absorbs no demand');
});

test('growth: an overflow start failure blocks overflow growth until some worker comes up', () => {
  const h = harness({ poolSize: 2, maxOverflow: 1 });
  assert.equal(h.demand(1), ['start worker_1']);
  h.up('worker_1');
  assert.equal(h.demand(2), ['start worker_2', 'start overflow_1 (overflow)']);
  h.send({ type: 'WORKER_START_FAILED', workerId: 'overflow_1' });
  assert.equal(h.slots(), ['worker_1:up', 'worker_2:starting'], 'the failed slot is gone');
  assert.is(h.ctx().overflowBlocked, true);
  assert.equal(h.demand(2), [], 'worker_2 is starting for one; no new overflow worker for the other while blocked');
  assert.equal(h.demand(5), []);
  h.up('worker_2');
  assert.is(h.ctx().overflowBlocked, false, 'a worker came up: the interpreter works again');
  assert.equal(h.demand(1), ['start overflow_2 (overflow)'], 'ids are never reused');
});

test('growth: permanent workers are still started while overflow growth is blocked', () => {
  const h = harness({ poolSize: 2, maxOverflow: 1 });
  h.demand(1);
  h.up('worker_1');
  assert.equal(h.demand(2), ['start worker_2', 'start overflow_1 (overflow)']);
  h.send({ type: 'WORKER_START_FAILED', workerId: 'overflow_1' }, { type: 'WORKER_START_FAILED', workerId: 'worker_2' });
  assert.is(h.ctx().overflowBlocked, true);
  assert.equal(h.demand(2), ['start worker_3'], 'room for one permanent worker; overflow stays blocked');
});

test('growth(): the pure rule over a context', () => {
  const h = harness({ poolSize: 3, maxOverflow: 2, initialWorkers: ['worker_1'] });
  const c = h.ctx();
  assert.equal(growth(c, 0), { permanent: 0, overflow: 0 });
  assert.equal(growth(c, 1), { permanent: 0, overflow: 0 }, 'worker_1 is starting');
  assert.equal(growth(c, 3), { permanent: 2, overflow: 0 });
  assert.equal(growth(c, 10), { permanent: 2, overflow: 2 });
  assert.equal(growth({ ...c, overflowBlocked: true }, 10), { permanent: 2, overflow: 0 });
});

test('CLOSE stops growth; the registry keeps working for what is still running', () => {
  const h = harness({ poolSize: 2, maxOverflow: 1, sessionTtl: 100 });
  assert.equal(h.demand(1), ['start worker_1']);
  h.send({ type: 'CLOSE' });
  assert.is(h.ctx().closed, true);
  assert.equal(h.demand(5), [], 'a closed pool asks for no worker');
  h.up('worker_1');
  assert.equal(h.slots(), ['worker_1:up']);
  h.served('s', 'worker_1');
  assert.equal(h.take(), ['session_start s']);
});

// ---- membership ---------------------------------------------------------------------------

test('WORKER_UP: starting → up, down → up, up stays up; an unknown worker is adopted as permanent', () => {
  const h = harness({ poolSize: 2, initialWorkers: ['worker_1'] });
  h.up('worker_1');
  assert.equal(h.slots(), ['worker_1:up']);
  h.up('worker_1');
  assert.equal(h.slots(), ['worker_1:up']);
  h.send({ type: 'WORKER_DOWN', workerId: 'worker_1', reason: 'crashed' });
  h.up('worker_1');
  assert.equal(h.slots(), ['worker_1:up']);
  h.up('static_child');
  assert.equal(h.slots(), ['worker_1:up', 'static_child:up']);
  assert.equal(h.demand(1), [], 'poolSize 2 counts the adopted worker');
  assert.equal(h.take(), []);
});

test("WORKER_DOWN: the sessions homed on the worker lose their pin with the reason; visitors only forget the worker", () => {
  const h = harness({ poolSize: 2, initialWorkers: ['worker_1', 'worker_2'] });
  h.up('worker_1', 'worker_2');
  h.served('home1', 'worker_2', 'worker_1');
  h.served('home2', 'worker_1', 'worker_2');
  h.served('other', 'worker_2');
  h.send({ type: 'WORKER_DOWN', workerId: 'worker_1', reason: 'timeout' });
  assert.equal(h.slots(), ['worker_1:down', 'worker_2:up']);
  assert.equal(h.session('home1'), { home: 'worker_1', held: false, workers: ['worker_2'], lost: { workerId: 'worker_1', reason: 'timeout' } });
  assert.equal(h.session('home2'), { home: 'worker_2', held: false, workers: ['worker_2'], lost: null }, 'its state on worker_1 is gone, its pin is not');
  assert.equal(h.session('other'), { home: 'worker_2', held: false, workers: ['worker_2'], lost: null });
});

test('WORKER_DOWN: a starting worker stays starting; a retiring or unknown one is ignored', () => {
  const h = harness({ poolSize: 1, maxOverflow: 1, initialWorkers: ['worker_1'] });
  h.send({ type: 'WORKER_DOWN', workerId: 'worker_1', reason: 'crashed' });
  assert.equal(h.slots(), ['worker_1:starting'], 'still counted as starting: its supervisor retries it');
  h.send({ type: 'WORKER_DOWN', workerId: 'nobody', reason: 'crashed' });
  assert.equal(h.slots(), ['worker_1:starting']);

  h.up('worker_1');
  h.demand(1);
  h.up('overflow_1');
  h.served('s', 'overflow_1');
  h.clock.increment(1000);
  h.send({ type: 'WORKER_IDLE_FOR', workerId: 'overflow_1', idleMs: 1000 });
  assert.equal(h.slots(), ['worker_1:up', 'overflow_1+:retiring']);
  h.send({ type: 'WORKER_DOWN', workerId: 'overflow_1', reason: 'recycled' });
  assert.equal(h.slots(), ['worker_1:up', 'overflow_1+:retiring'], 'retiring stays retiring until it is removed');
  assert.equal(h.session('s')!.lost, null, 'its stop is not a loss yet: the removal says so');
  h.send({ type: 'WORKER_REMOVED', workerId: 'overflow_1' });
  assert.equal(h.session('s'), { home: 'overflow_1', held: false, workers: [], lost: { workerId: 'overflow_1', reason: 'removed' } });
});

test("WORKER_REMOVED: the slot is gone, and every session's state in it, with reason 'removed'", () => {
  const h = harness({ poolSize: 1, maxOverflow: 1, initialWorkers: ['worker_1'] });
  h.up('worker_1');
  h.demand(1);
  h.up('overflow_1');
  h.served('pinned', 'worker_1', 'overflow_1');
  h.served('visited', 'overflow_1', 'worker_1');
  h.take();
  h.send({ type: 'WORKER_REMOVED', workerId: 'overflow_1' });
  assert.equal(h.slots(), ['worker_1:up']);
  assert.equal(h.session('pinned'), { home: 'overflow_1', held: false, workers: ['worker_1'], lost: { workerId: 'overflow_1', reason: 'removed' } });
  assert.equal(h.session('visited'), { home: 'worker_1', held: false, workers: ['worker_1'], lost: null });
  assert.equal(h.demand(1), ['start overflow_2 (overflow)'], 'its room is free again');
});

test('WORKER_START_FAILED: the slot is gone and overflow growth is blocked', () => {
  const h = harness({ poolSize: 1, maxOverflow: 2, initialWorkers: ['worker_1'] });
  h.up('worker_1');
  assert.equal(h.demand(1), ['start overflow_1 (overflow)']);
  h.send({ type: 'WORKER_START_FAILED', workerId: 'overflow_1' });
  assert.equal(h.slots(), ['worker_1:up']);
  assert.is(h.ctx().overflowBlocked, true);
});

// ---- the session registry -----------------------------------------------------------------

test('SESSION_SEEN: a new session is announced once and registered unplaced', () => {
  const h = harness();
  h.send({ type: 'SESSION_SEEN', sessionId: 's' });
  h.send({ type: 'SESSION_SEEN', sessionId: 's' });
  assert.equal(h.take(), ['session_start s']);
  assert.equal(h.session('s'), { home: null, held: false, workers: [], lost: null });
});

test('SESSION_PLACED: the worker becomes its home and is remembered once; a lost pin is cleared', () => {
  const h = harness({ initialWorkers: ['worker_1', 'worker_2'] });
  h.up('worker_1', 'worker_2');
  h.served('s', 'worker_1', 'worker_2', 'worker_1');
  assert.equal(h.session('s'), { home: 'worker_1', held: false, workers: ['worker_1', 'worker_2'], lost: null });
  h.send({ type: 'WORKER_DOWN', workerId: 'worker_1', reason: 'crashed' });
  assert.equal(h.session('s')!.lost, { workerId: 'worker_1', reason: 'crashed' });
  h.send({ type: 'SESSION_PLACED', sessionId: 's', workerId: 'worker_2' });
  assert.equal(h.session('s'), { home: 'worker_2', held: false, workers: ['worker_2'], lost: null });
  assert.equal(h.take(), ['session_start s'], 'one announcement in all');
});

test('SESSION_PLACED of a session the registry does not know (ended while its request waited) starts it anew', () => {
  const h = harness({ sessionTtl: 100, initialWorkers: ['worker_1'] });
  h.up('worker_1');
  h.send({ type: 'SESSION_PLACED', sessionId: 's', workerId: 'worker_1' });
  assert.equal(h.take(), ['session_start s']);
  assert.equal(h.session('s'), { home: 'worker_1', held: false, workers: ['worker_1'], lost: null });
  h.clock.increment(100);
  assert.equal(h.take(), ['idle? s'], 'its TTL clock runs too');
});

test('SESSION_LOSS_REPORTED: the session goes on unpinned, keeping the workers that may still hold its state', () => {
  const h = harness({ initialWorkers: ['worker_1', 'worker_2'] });
  h.up('worker_1', 'worker_2');
  h.served('s', 'worker_2', 'worker_1');
  h.send({ type: 'WORKER_DOWN', workerId: 'worker_1', reason: 'crashed' });
  h.send({ type: 'SESSION_LOSS_REPORTED', sessionId: 's' });
  assert.equal(h.session('s'), { home: null, held: false, workers: ['worker_2'], lost: null });
  h.send({ type: 'SESSION_LOSS_REPORTED', sessionId: 'unknown' });
  assert.is(h.session('unknown'), undefined, 'not created by a report');
});

test('END_SESSION forgets the session and stops its TTL clock; an unknown id is ignored', () => {
  const h = harness({ sessionTtl: 50 });
  h.served('s');
  h.send({ type: 'END_SESSION', sessionId: 's' }, { type: 'END_SESSION', sessionId: 'never' });
  assert.equal(h.ctx().sessions, {});
  h.take();
  h.clock.increment(1000);
  assert.equal(h.take(), [], 'no idle check for an ended session');
});

// ---- session TTL --------------------------------------------------------------------------

test('session TTL: the pool is asked how long the session has been idle once sessionTtl has passed', () => {
  const h = harness({ sessionTtl: 500 });
  h.served('s');
  h.take();
  h.clock.increment(499);
  assert.equal(h.take(), []);
  h.clock.increment(1);
  assert.equal(h.take(), ['idle? s']);
  assert.ok(h.session('s'), 'asking is not expiring');
});

test('session TTL: idle for less than the TTL → asked again when the rest of it has passed', () => {
  const h = harness({ sessionTtl: 500 });
  h.served('s');
  h.clock.increment(500);
  h.take();
  // The session was used 200 ms ago: it has 300 ms left.
  h.send({ type: 'SESSION_IDLE_FOR', sessionId: 's', idleMs: 200 });
  h.clock.increment(299);
  assert.equal(h.take(), []);
  h.clock.increment(1);
  assert.equal(h.take(), ['idle? s']);
  // A request of it is running (idle 0): a whole TTL more.
  h.send({ type: 'SESSION_IDLE_FOR', sessionId: 's', idleMs: 0 });
  h.clock.increment(499);
  assert.equal(h.take(), []);
  h.clock.increment(1);
  assert.equal(h.take(), ['idle? s']);
});

test('session TTL: idle for the TTL or longer → session_expired with every worker that may hold its state', () => {
  const h = harness({ sessionTtl: 500, affinity: 'none', initialWorkers: ['worker_1', 'worker_2'] });
  h.up('worker_1', 'worker_2');
  h.served('s', 'worker_1', 'worker_2');
  h.take();
  h.clock.increment(500);
  assert.equal(h.take(), ['idle? s']);
  h.send({ type: 'SESSION_IDLE_FOR', sessionId: 's', idleMs: 500 });
  assert.equal(h.take(), ['session_expired s [worker_1, worker_2]']);
  assert.equal(h.ctx().sessions, {});
  h.send({ type: 'SESSION_IDLE_FOR', sessionId: 's', idleMs: 10_000 });
  assert.equal(h.take(), [], 'a late answer about a session that is gone changes nothing');
  h.clock.increment(10_000);
  assert.equal(h.take(), [], 'and no timer is left for it');
});

test('session TTL: a session with no activity at all (idle Infinity) expires with no workers', () => {
  const h = harness({ sessionTtl: 50 });
  h.served('never-ran');
  h.take();
  h.clock.increment(50);
  h.send({ type: 'SESSION_IDLE_FOR', sessionId: 'never-ran', idleMs: Infinity });
  assert.equal(h.take(), ['idle? never-ran', 'session_expired never-ran []']);
});

test('session TTL: a session seen again after it expired or ended starts anew with a fresh clock', () => {
  const h = harness({ sessionTtl: 100 });
  h.served('s');
  h.clock.increment(100);
  h.send({ type: 'SESSION_IDLE_FOR', sessionId: 's', idleMs: 100 });
  h.served('s');
  assert.equal(h.take(), ['session_start s', 'idle? s', 'session_expired s []', 'session_start s']);
  h.clock.increment(60);
  h.send({ type: 'END_SESSION', sessionId: 's' });
  h.served('s');
  h.clock.increment(99);
  assert.equal(h.take(), ['session_start s'], "the ended session's timer was cancelled, the new one counts from its start");
  h.clock.increment(1);
  assert.equal(h.take(), ['idle? s']);
});

test('sessionTtl 0: sessions are never checked', () => {
  const h = harness({ sessionTtl: 0 });
  h.served('s');
  h.take();
  h.clock.increment(1e9);
  assert.equal(h.take(), []);
  assert.ok(h.session('s'));
});

// ---- overflow retirement ------------------------------------------------------------------

/** A pool whose overflow_1 is up (worker_1 busy the whole time as far as the machine cares). */
function withOverflow(input: Partial<SessionPoolInput> = {}) {
  const h = harness({ poolSize: 1, maxOverflow: 1, initialWorkers: ['worker_1'], ...input });
  h.up('worker_1');
  assert.equal(h.demand(1), ['start overflow_1 (overflow)']);
  h.up('overflow_1');
  return h;
}

test('overflow retirement: asked after overflowIdle; idle shorter → asked again for the rest; idle long enough → retire', () => {
  const h = withOverflow();
  h.clock.increment(999);
  assert.equal(h.take(), []);
  h.clock.increment(1);
  assert.equal(h.take(), ['idle? overflow_1']);
  h.send({ type: 'WORKER_IDLE_FOR', workerId: 'overflow_1', idleMs: 400 }); // used 400 ms ago
  h.clock.increment(599);
  assert.equal(h.take(), []);
  h.clock.increment(1);
  assert.equal(h.take(), ['idle? overflow_1']);
  h.send({ type: 'WORKER_IDLE_FOR', workerId: 'overflow_1', idleMs: 0 }); // busy right now
  h.clock.increment(1000);
  assert.equal(h.take(), ['idle? overflow_1'], 'busy: a whole overflowIdle more');
  h.send({ type: 'WORKER_IDLE_FOR', workerId: 'overflow_1', idleMs: 1000 });
  assert.equal(h.take(), ['retire overflow_1']);
  assert.equal(h.slots(), ['worker_1:up', 'overflow_1+:retiring']);
  h.send({ type: 'WORKER_IDLE_FOR', workerId: 'overflow_1', idleMs: 5000 });
  assert.equal(h.take(), [], 'retired once');
  h.clock.increment(10_000);
  assert.equal(h.take(), [], 'no check of a retiring worker');
  h.send({ type: 'WORKER_REMOVED', workerId: 'overflow_1' });
  assert.equal(h.slots(), ['worker_1:up']);
});

test('overflow retirement: permanent workers are never asked about', () => {
  const h = harness({ poolSize: 2, initialWorkers: ['worker_1'] });
  h.up('worker_1');
  h.demand(1);
  h.up('worker_2');
  h.clock.increment(1e7);
  assert.equal(h.take(), []);
});

test('overflow retirement: a worker that is not up when its check falls due is not asked about', () => {
  const h = withOverflow();
  h.send({ type: 'WORKER_DOWN', workerId: 'overflow_1', reason: 'crashed' });
  h.clock.increment(1000);
  assert.equal(h.take(), []);
  h.send({ type: 'WORKER_IDLE_FOR', workerId: 'overflow_1', idleMs: 5000 });
  assert.equal(h.take(), [], 'a stray answer does not retire a worker that is down');
  h.up('overflow_1');
  h.clock.increment(1000);
  assert.equal(h.take(), ['idle? overflow_1'], 'back up: its idle clock starts again');
});

test("overflow retirement under 'strict': an overflow worker holding a pinned session is kept until the pin goes", () => {
  const h = withOverflow({ affinity: 'strict' });
  h.served('s', 'overflow_1');
  h.take();
  h.clock.increment(1000);
  h.send({ type: 'WORKER_IDLE_FOR', workerId: 'overflow_1', idleMs: 1000 });
  assert.equal(h.take(), ['idle? overflow_1'], 'kept: retiring it would lose s');
  h.clock.increment(999);
  assert.equal(h.take(), []);
  h.clock.increment(1);
  assert.equal(h.take(), ['idle? overflow_1'], 'asked again a whole overflowIdle later');
  h.send({ type: 'END_SESSION', sessionId: 's' });
  h.send({ type: 'WORKER_IDLE_FOR', workerId: 'overflow_1', idleMs: 2000 });
  assert.equal(h.take(), ['retire overflow_1'], 'no pin left');
});

test("overflow retirement under 'strict': a session merely visited, or pinned elsewhere, does not keep it", () => {
  const h = withOverflow({ affinity: 'strict' });
  h.served('s', 'overflow_1', 'worker_1');
  h.take();
  h.clock.increment(1000);
  h.send({ type: 'WORKER_IDLE_FOR', workerId: 'overflow_1', idleMs: 1000 });
  assert.equal(h.take(), ['idle? overflow_1', 'retire overflow_1']);
});

test("overflow retirement under 'strict': an expired pinned session releases the worker", () => {
  const h = withOverflow({ affinity: 'strict', sessionTtl: 3000 });
  h.served('s', 'overflow_1');
  h.take();
  h.clock.increment(1000);
  h.send({ type: 'WORKER_IDLE_FOR', workerId: 'overflow_1', idleMs: 1000 });
  h.clock.increment(2000);
  assert.equal(h.take(), ['idle? overflow_1', 'idle? overflow_1', 'idle? s']);
  h.send({ type: 'SESSION_IDLE_FOR', sessionId: 's', idleMs: 3000 });
  h.send({ type: 'WORKER_IDLE_FOR', workerId: 'overflow_1', idleMs: 3000 });
  assert.equal(h.take(), ['session_expired s [overflow_1]', 'retire overflow_1']);
});

test("overflow retirement under 'prefer': a session's state does not keep the worker; its removal loses that state", () => {
  const h = withOverflow({ affinity: 'prefer' });
  h.served('s', 'overflow_1');
  h.take();
  h.clock.increment(1000);
  h.send({ type: 'WORKER_IDLE_FOR', workerId: 'overflow_1', idleMs: 1000 });
  assert.equal(h.take(), ['idle? overflow_1', 'retire overflow_1']);
  h.send({ type: 'WORKER_REMOVED', workerId: 'overflow_1' });
  assert.equal(h.session('s'), { home: 'overflow_1', held: false, workers: [], lost: { workerId: 'overflow_1', reason: 'removed' } });
});

// ---- guards -------------------------------------------------------------------------------

test('the session-pool context stays small (V8 copies a ~20-key context in dictionary mode, ~10 µs per assign)', () => {
  const h = withOverflow({ sessionTtl: 100 });
  for (let i = 0; i < 50; i++) h.served(`s${i}`, 'worker_1');
  const keys = Object.keys(h.ctx());
  assert.ok(keys.length <= 12, `session-pool context has ${keys.length} top-level keys: ${keys.join(', ')}`);
  assert.ok(Object.keys(h.ctx().config).length <= 12);
});

test('a session event does not copy the registry (it is updated in place: O(1) per event, not O(sessions))', () => {
  const h = harness({ initialWorkers: ['worker_1'] });
  h.up('worker_1');
  for (let i = 0; i < 100; i++) h.served(`s${i}`, 'worker_1');
  const registry = h.ctx().sessions;
  h.served('one-more', 'worker_1');
  h.send({ type: 'SESSION_LOSS_REPORTED', sessionId: 's1' }, { type: 'END_SESSION', sessionId: 's2' });
  assert.is(h.ctx().sessions, registry);
  assert.is(Object.keys(registry).length, 100);
});

test('machines/ stay pure: no wall clock, no timers of their own, nothing from src/', () => {
  const dir = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..', 'machines');
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
    const code = readFileSync(join(dir, file), 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
    for (const banned of ['Date.now(', 'new Date(', 'setTimeout(', 'setInterval(', 'setImmediate(', 'performance.now(', 'process.hrtime', "from '../src/"]) {
      assert.not.ok(code.includes(banned), `${file} uses ${banned}`);
    }
  }
});

test.run();
