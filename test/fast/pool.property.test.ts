/**
 * Seeded random runs on the simulation: requests of many sessions, kills, aborts, timeouts,
 * recycling, in random order and at random simulated times. After each run every caller has
 * an answer, the counters add up, and — under 'strict' affinity — a session never silently
 * loses its state: a read either sees the session's last write or the caller is told
 * (SessionWorkerLostError or the failure itself).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Affinity } from '../../machines/sessionPool.js';
import { flush, setup, type Harness, type Outcome } from './pool.harness.js';

/** mulberry32: small, fast, good enough for test schedules. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n: number) => Math.floor(next() * n), pick: <T>(xs: T[]): T => xs[Math.floor(next() * xs.length)]! };
}

interface SessionModel {
  /** The value the session's state must hold, when `certain`. */
  value: number | null;
  certain: boolean;
  busy: boolean;
}

async function run(seed: number, affinity: Affinity, steps: number): Promise<void> {
  const r = rng(seed);
  const h: Harness = setup(
    { poolSize: 3, maxOverflow: 0, affinity, sessionTtl: 0, checkoutTimeout: 400, requestTimeout: 300, interruptGrace: 50, recycle: { maxRequests: 25 }, restart: { maxRestarts: 1000, maxSeconds: 1 } },
    {},
    (sim) =>
      sim
        .handle('write', (a: { value: number }, ctx) => ((ctx.session.v = a.value), a.value), { latencyMs: 7 })
        .handle('read', (_a, ctx) => (ctx.session.v ?? null) as number | null, { latencyMs: 5 })
        .handle('work', () => 'done', { latencyMs: 40 })
        .handle('very_slow', () => 'late', { latencyMs: 500 }),
  );
  await h.pool.whenReady();
  const sessions = new Map<string, SessionModel>(['a', 'b', 'c', 'd', 'e'].map((id) => [id, { value: null, certain: true, busy: false }]));
  const outcomes: Array<Outcome & { promise: Promise<unknown> }> = [];
  const controllers: AbortController[] = [];
  let writes = 0;
  const violations: string[] = [];

  for (let step = 0; step < steps; step++) {
    const roll = r.next();
    if (roll < 0.45) {
      // A request of an idle session: read or write (one at a time per session keeps the model exact).
      const free = [...sessions].filter(([, m]) => !m.busy);
      if (free.length === 0) continue;
      const [id, model] = r.pick(free);
      model.busy = true;
      const isWrite = r.next() < 0.5;
      const value = ++writes;
      const controller = new AbortController();
      controllers.push(controller);
      const o = h.run(isWrite ? 'write' : 'read', isWrite ? { value } : null, { sessionId: id, signal: controller.signal });
      outcomes.push(o);
      const expected = model.certain ? model.value : undefined;
      void o.promise.then(
        (result) => {
          model.busy = false;
          if (isWrite) {
            model.value = value;
            model.certain = true;
          } else {
            if (affinity === 'strict' && expected !== undefined && result !== expected) {
              violations.push(`seed ${seed} step ${step}: session ${id} read ${String(result)}, its last write was ${String(expected)}`);
            }
            model.value = result as number | null;
            model.certain = true;
          }
        },
        () => {
          model.busy = false;
          model.certain = false;
        },
      );
    } else if (roll < 0.6) {
      outcomes.push(h.run(r.next() < 0.9 ? 'work' : 'very_slow'));
    } else if (roll < 0.65) {
      const live = h.sim.alive();
      if (live.length) h.sim.kill(r.pick(live).pid);
    } else if (roll < 0.7) {
      const live = controllers.filter((c) => !c.signal.aborted);
      if (live.length) r.pick(live).abort();
    } else {
      await h.advance(r.int(60));
    }
    await flush();
    const s = h.pool.stats();
    assert.ok(s.busyWorkers <= h.pool.workers().length, `seed ${seed}: busy ${s.busyWorkers}`);
    assert.ok(s.healthyWorkers + s.unhealthyWorkers <= h.pool.workers().length);
    assert.ok(s.utilization >= 0 && s.utilization <= 1);
  }
  await h.advance(2000);
  assert.equal(violations, []);
  const unsettled = outcomes.filter((o) => !o.settled).length;
  assert.is(unsettled, 0, `seed ${seed}: every caller has an answer`);
  const codes = new Set(outcomes.filter((o) => !o.ok).map((o) => o.error?.code));
  for (const code of codes) {
    assert.ok(
      ['WORKER_CRASHED', 'REQUEST_TIMEOUT', 'ABORTED', 'POOL_TIMEOUT', 'SESSION_WORKER_LOST'].includes(code!),
      `seed ${seed}: unexpected error code ${code}`,
    );
  }
  if (affinity !== 'strict') assert.not.ok(codes.has('SESSION_WORKER_LOST'));
  const stats = h.pool.stats();
  const rows = h.pool.workers();
  assert.is(stats.totalCommands, rows.reduce((n, w) => n + w.requests, 0), 'per-worker requests add up to totalCommands');
  assert.is(stats.totalErrors, rows.reduce((n, w) => n + w.errors, 0), 'per-worker errors add up to totalErrors');
  assert.is(stats.restarts, rows.reduce((n, w) => n + w.restarts, 0), 'per-worker restarts add up');
  assert.is(stats.restarts, h.of('worker_restarted').length);
  assert.is(stats.queueLength, 0);
  assert.is(stats.busyWorkers, 0);
  assert.is(h.of('checkin').length, stats.totalCommands);
  await h.finish();
}

for (const affinity of ['strict', 'prefer', 'none'] as const) {
  test(`random schedules under '${affinity}': everyone answered, counters consistent${affinity === 'strict' ? ', no silent state loss' : ''}`, async () => {
    for (let seed = 1; seed <= 5; seed++) await run(seed * 7919 + affinity.length, affinity, 200);
  });
}

test.run();
