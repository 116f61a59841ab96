/**
 * Shared harness of the pool suites (test/fast/pool*.test.ts): a real Pool (the same machines
 * and facade as createPool) on the simulation's fake processes and simulated clock, an event
 * log of every telemetry event, and tarn-style whole-object assertions on stats().
 *
 * No real time anywhere: `advance` moves the simulated clock from one due timer to the next,
 * so every timer fires at its own instant (SimulatedClock.increment alone would fire them all
 * at the final instant), and `flush` only lets already-settled promises run their callbacks.
 */
import * as assert from 'uvu/assert';
import { createSimulation, SimPythonError, type Simulation, type SimulationOptions } from '../../src/testing/index.js';
import type { Pool, PoolStats, WorkerInfo } from '../../src/local/pool.js';
import type { PoolOptions } from '../../src/options.js';

export const EVENT_NAMES = [
  'checkout',
  'checkin',
  'worker_restarted',
  'timeout',
  'worker_state',
  'session_start',
  'session_end',
  'worker_log',
  'escalation',
  'tier_restarted',
  'listener_error',
] as const;

export interface LoggedEvent {
  event: string;
  [key: string]: unknown;
}

export interface Outcome<T = unknown> {
  settled: boolean;
  ok?: boolean;
  value?: T;
  error?: Error & { code?: string };
}

export interface Harness {
  sim: Simulation;
  pool: Pool;
  events: LoggedEvent[];
  /** Events of one name, without the `event` key. */
  of(name: string): Array<Record<string, unknown>>;
  /** Start a request and track how it ends, without ever leaving a rejection unhandled. */
  run<T = unknown>(cmd: string, args?: unknown, options?: Parameters<Pool['execute']>[2]): Outcome<T> & { promise: Promise<T> };
  /** Move simulated time forward by `ms`, firing each due timer at its own instant, then flush. */
  advance(ms: number): Promise<void>;
  /** The fake process's pid behind a worker. */
  pid(workerId: string): number;
  /** Stop the pool and assert that no fake process survived it. */
  finish(): Promise<void>;
}

/** Let settled promises run their reactions (no timers involved). */
export async function flush(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/**
 * The commands every scenario may use:
 *   echo (instant), slow (100 ms), slow250 (250 ms), hang (never answers; SIGINT interrupts),
 *   stuck (never answers, ignores SIGINT), raise (PythonError ValueError), die (exit code 1),
 *   put/get (per-session state inside the fake process), whoami (worker id).
 */
export function setup(options: PoolOptions = {}, simOptions: SimulationOptions = {}, configure?: (sim: Simulation) => void): Harness {
  const sim = createSimulation(simOptions);
  sim
    .handle('echo', (a) => a)
    .handle('slow', (a) => a, { latencyMs: 100 })
    .handle('slow250', (a) => a, { latencyMs: 250 })
    .handle('hang', () => sim.hang())
    .handle('stuck', () => sim.hang({ uninterruptible: true }))
    .handle('raise', (a: { message?: string } | null) => {
      throw new SimPythonError('ValueError', a?.message ?? 'boom');
    })
    .handle('die', () => sim.crash(1))
    .handle('put', (a: { key: string; value: unknown }, ctx) => {
      ctx.session[a.key] = a.value;
      return ctx.workerId;
    })
    .handle('get', (a: { key: string }, ctx) => ({ value: ctx.session[a.key] ?? null, worker: ctx.workerId }))
    .handle('whoami', (_a, ctx) => ctx.workerId);
  configure?.(sim);
  const pool = sim.createPool({ poolSize: 2, maxOverflow: 0, healthCheckInterval: 0, ...options });
  const events: LoggedEvent[] = [];
  for (const name of EVENT_NAMES) pool.on(name, (payload: Record<string, unknown>) => events.push({ event: name, ...payload }));
  const h: Harness = {
    sim,
    pool,
    events,
    of: (name) => events.filter((e) => e.event === name).map(({ event: _e, ...rest }) => rest),
    run(cmd, args = null, opts) {
      const outcome = { settled: false } as Outcome & { promise: Promise<unknown> };
      outcome.promise = pool.execute(cmd, args, opts);
      outcome.promise.then(
        (value) => Object.assign(outcome, { settled: true, ok: true, value }),
        (error) => Object.assign(outcome, { settled: true, ok: false, error }),
      );
      return outcome as never;
    },
    async advance(ms) {
      await advanceClock(sim, ms);
    },
    pid(workerId) {
      const proc = sim.processOf(workerId);
      if (!proc) throw new Error(`no live process for ${workerId}`);
      return proc.pid;
    },
    async finish() {
      const stopping = pool.stop();
      // Workers that hold a hung command get SIGKILL after shutdownTimeout: let that time pass.
      for (let i = 0; i < 100 && sim.alive().length > 0; i++) await advanceClock(sim, 1000);
      await stopping;
      assert.equal(sim.alive(), [], 'no fake process outlives pool.stop()');
    },
  };
  return h;
}

/** Move the simulated clock by `ms`, stopping at every due timer so each fires at its own instant. */
export async function advanceClock(sim: Simulation, ms: number): Promise<void> {
  const clock = sim.clock as unknown as { now(): number; set(t: number): void; timeouts: Map<number, { start: number; timeout: number }> };
  const target = clock.now() + ms;
  for (let guard = 0; guard < 100_000; guard++) {
    let next = Infinity;
    for (const t of clock.timeouts.values()) next = Math.min(next, t.start + t.timeout);
    if (next > target) break;
    clock.set(Math.max(next, clock.now()));
    await flush();
  }
  clock.set(target);
  await flush();
}

/** A calm pool of `poolSize` healthy idle workers that has served nothing yet. */
export function calm(poolSize: number): PoolStats {
  return {
    activeSessions: 0,
    poolSize,
    utilization: 0,
    healthyWorkers: poolSize,
    unhealthyWorkers: 0,
    busyWorkers: 0,
    overflowWorkers: 0,
    queueLength: 0,
    totalCommands: 0,
    totalErrors: 0,
    restarts: 0,
    latencyMs: { p50: 0, p99: 0 },
  };
}

/**
 * tarn-style: the whole stats object, every counter, every time. `expected` overrides the
 * calm baseline of the pool's configured size; anything not overridden must be at baseline.
 */
export function expectStats(h: Harness, expected: Partial<PoolStats>, message?: string): void {
  const actual = h.pool.stats();
  const want = { ...calm(h.pool.options.poolSize), ...expected };
  assert.equal(actual, want, message ?? `stats() ${JSON.stringify(actual)} should be ${JSON.stringify(want)}`);
}

/** workers() reduced to the fields a scenario asserts, in pool order. */
export function workerRows(h: Harness): Array<Pick<WorkerInfo, 'id' | 'state' | 'requests' | 'errors' | 'restarts' | 'sessions' | 'overflow'>> {
  return h.pool.workers().map(({ id, state, requests, errors, restarts, sessions, overflow }) => ({ id, state, requests, errors, restarts, sessions, overflow }));
}

export function row(id: string, fields: Partial<WorkerInfo> = {}): Pick<WorkerInfo, 'id' | 'state' | 'requests' | 'errors' | 'restarts' | 'sessions' | 'overflow'> {
  return { id, state: 'healthy', requests: 0, errors: 0, restarts: 0, sessions: 0, overflow: id.startsWith('overflow_'), ...fields };
}

/** Every process pid the simulation ever started for a worker, oldest first. */
export function pidsOf(sim: Simulation, workerId: string): number[] {
  return sim.processes().filter((p) => p.workerId === workerId).map((p) => p.pid);
}
