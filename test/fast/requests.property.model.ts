/**
 * The model behind test/fast/requests.property.test.ts: random schedules of requests and faults
 * run against a real pool on the simulation, and a judge that knows, from what the test itself
 * did and what the fake processes saw, which answers each request may get.
 *
 * Written only against the public and testing API (createSimulation, sim.createPool, execute,
 * endSession, stats, stop, sim.onRequest / kill / processes / alive / setRssMb), so that it
 * survives a rewrite of the pool core. Pool options are built in one place (`poolOptions`).
 *
 * Time is only simulated: `advance` moves the simulated clock from due timer to due timer (as
 * test/fast/pool.harness.ts does) and lets settled promises run their reactions with
 * setImmediate-based flushing, so each timer fires at its own instant and every observation
 * (arrival, settlement, process death) is stamped with the exact simulated time it happened at.
 */
import fc from 'fast-check';
import { createSimulation, SimPythonError, type Simulation } from '../../src/testing/index.js';
import { flush } from './pool.harness.js';

// ---- the schedule ---------------------------------------------------------------------------

/** Handler latencies in simulated ms (Infinity: never answers). */
export const LATENCY = {
  echo: 0,
  slow: 10,
  slower: 60,
  slowest: 150,
  /** Never answers; SIGINT interrupts it. */
  hang: Infinity,
  /** Never answers; deaf to SIGINT too (a handler stuck in C code). */
  stuck: Infinity,
  /** Raises ValueError at once. */
  raise: 0,
  /** Kills its process at once (exit code 1). */
  crash: 0,
  /** Kills its process after 40 ms. */
  crash_slow: 40,
} as const;
export type Cmd = keyof typeof LATENCY;
const CRASHERS = new Set<Cmd>(['crash', 'crash_slow']);
const ECHOERS = new Set<Cmd>(['echo', 'slow', 'slower', 'slowest']);

export const SESSIONS = ['a', 'b', 'c'] as const;
/** Affinities under which a session is pinned to the worker holding its state (DESIGN §3), so SESSION_WORKER_LOST can happen. */
const PINNING = new Set<string>(['strict', 'auto']);

export interface Config {
  poolSize: number;
  maxOverflow: number;
  maxQueue: number;
  affinity: 'prefer' | 'strict' | 'none';
  checkoutTimeout: number;
  requestTimeout: number;
  /** recycle.maxRequests; 0 = off. */
  recycleMaxRequests: number;
  /** recycle.maxRssMb; 0 = off ('fat' steps mark a process as using 500 MiB). */
  recycleMaxRssMb: number;
  healthCheckInterval: number;
  /** Simulated ms a `ping` (start ping and health checks) takes in the fake process. */
  pingLatencyMs: number;
  /** Simulated ms from spawn to `ready`. */
  startupMs: number;
  overflowIdleMs: number;
  maxConsecutiveErrors: number;
  sessionTtlMs: number;
  shutdownTimeout: number;
  interruptGraceMs: number;
}

export type Step =
  | {
      k: 'exec';
      cmd: Cmd;
      session: string | null;
      idempotent: boolean;
      /** execute()'s `timeout`; absent: the pool's requestTimeout. */
      timeout?: number;
      /** execute()'s `checkoutTimeout`; absent: the pool's. */
      checkoutTimeout?: number;
      /** Give it an AbortSignal that a later `abort` step may fire. */
      abortable: boolean;
    }
  /** Several anonymous requests at once: what makes overflow workers start. */
  | { k: 'burst'; cmd: Cmd; count: number }
  | { k: 'advance'; ms: number }
  /** SIGKILL the pick-th live fake process (by pid order, modulo their number). */
  | { k: 'kill'; pick: number }
  /** Abort the pick-th abortable request that has no answer yet. */
  | { k: 'abort'; pick: number }
  | { k: 'endSession'; session: string }
  /** The pick-th live process now reads as 500 MiB resident (recycled if recycle.maxRssMb is on). */
  | { k: 'fat'; pick: number }
  | { k: 'stop' };

export interface Schedule {
  config: Config;
  steps: Step[];
  /**
   * If the schedule did not stop the pool itself: first let every request settle on its own
   * (DRAIN_MS of simulated time), send one probe request that must succeed, then stop.
   * Otherwise stop with whatever is still outstanding.
   */
  drain: boolean;
}

/** Long enough for any request of any schedule to settle on its own (see `bound`). */
export const DRAIN_MS = 4_000;

/**
 * The pool options of a schedule, in one place so that a renamed option is one edit.
 * Everything else is the pool's default.
 */
export function poolOptions(c: Config): Parameters<Simulation['createPool']>[0] {
  return {
    poolSize: c.poolSize,
    maxOverflow: c.maxOverflow,
    maxQueue: c.maxQueue,
    affinity: c.affinity,
    checkoutTimeout: c.checkoutTimeout,
    requestTimeout: c.requestTimeout,
    healthCheckInterval: c.healthCheckInterval,
    pingTimeout: 1_000,
    overflowIdle: c.overflowIdleMs,
    sessionTtl: c.sessionTtlMs,
    shutdownTimeout: c.shutdownTimeout,
    interruptGrace: c.interruptGraceMs,
    maxConsecutiveErrors: c.maxConsecutiveErrors,
    recycle: { maxRequests: c.recycleMaxRequests, maxRssMb: c.recycleMaxRssMb },
    // FOR NOW: the worker tier may restart as often as it likes. What this property tests is
    // that every request has exactly one owner, not restart intensity; a kill storm of a few
    // dozen kills must not escalate here. The fault-model issue (DESIGN §6: crashes under a
    // request and in-place replacements do not count against intensity) will tighten this to
    // the default intensity, at which point kills of idle workers may legitimately escalate
    // and the judge below must learn about ESCALATED.
    restart: { maxRestarts: 1000, maxSeconds: 1 },
  };
}

const cmdArb = fc.constantFrom<Cmd>('echo', 'echo', 'slow', 'slow', 'slower', 'slower', 'slowest', 'hang', 'stuck', 'raise', 'raise', 'crash', 'crash', 'crash_slow');

const execArb: fc.Arbitrary<Step> = fc
  .record({
    cmd: cmdArb,
    session: fc.option(fc.constantFrom(...SESSIONS), { nil: null, freq: 2 }),
    idempotent: fc.integer({ min: 0, max: 3 }).map((x) => x === 0),
    timeout: fc.option(fc.constantFrom(35, 90), { nil: undefined, freq: 2 }),
    checkoutTimeout: fc.option(fc.constantFrom(30, 120), { nil: undefined, freq: 3 }),
    abortable: fc.boolean(),
  })
  .map((r) => {
    const step: Step = { k: 'exec', cmd: r.cmd, session: r.session, idempotent: r.idempotent, abortable: r.abortable };
    if (r.timeout !== undefined) step.timeout = r.timeout;
    if (r.checkoutTimeout !== undefined) step.checkoutTimeout = r.checkoutTimeout;
    return step;
  });

export const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 30, arbitrary: execArb },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('burst' as const), cmd: fc.constantFrom<Cmd>('slow', 'slower', 'slowest', 'crash_slow'), count: fc.integer({ min: 2, max: 6 }) }) },
  {
    weight: 28,
    arbitrary: fc.record({ k: fc.constant('advance' as const), ms: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 120 }), fc.integer({ min: 100, max: 600 })) }),
  },
  { weight: 8, arbitrary: fc.record({ k: fc.constant('kill' as const), pick: fc.nat({ max: 7 }) }) },
  { weight: 6, arbitrary: fc.record({ k: fc.constant('abort' as const), pick: fc.nat({ max: 7 }) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('endSession' as const), session: fc.constantFrom(...SESSIONS) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('fat' as const), pick: fc.nat({ max: 7 }) }) },
  { weight: 1, arbitrary: fc.constant({ k: 'stop' as const }) },
);

export const configArb: fc.Arbitrary<Config> = fc.record({
  poolSize: fc.integer({ min: 1, max: 3 }),
  maxOverflow: fc.integer({ min: 0, max: 2 }),
  maxQueue: fc.constantFrom(1000, 1000, 1000, 1, 2, 4),
  affinity: fc.constantFrom<Config['affinity']>('prefer', 'strict', 'none'),
  checkoutTimeout: fc.constantFrom(60, 250),
  requestTimeout: fc.constant(1_000),
  recycleMaxRequests: fc.constantFrom(0, 0, 2, 5),
  recycleMaxRssMb: fc.constantFrom(0, 100),
  healthCheckInterval: fc.constantFrom(0, 40, 150),
  pingLatencyMs: fc.constantFrom(0, 0, 2),
  startupMs: fc.constantFrom(0, 7),
  overflowIdleMs: fc.constantFrom(100, 300),
  maxConsecutiveErrors: fc.constantFrom(2, 10),
  sessionTtlMs: fc.constantFrom(0, 0, 500),
  shutdownTimeout: fc.constantFrom(50, 200),
  interruptGraceMs: fc.constant(20),
});

export const scheduleArb: fc.Arbitrary<Schedule> = fc.record({
  config: configArb,
  steps: fc.array(stepArb, { minLength: 1, maxLength: 40, size: 'max' }),
  drain: fc.boolean(),
});

// ---- running a schedule ---------------------------------------------------------------------

type Outcome = { ok: true; value: unknown } | { ok: false; error: Error & { code?: string } };

/** One caller's request, as the test knows it. */
export interface Req {
  /** Unique number, sent in the args ({n}) and echoed back by the echo commands. */
  n: number;
  cmd: Cmd;
  session: string | null;
  idempotent: boolean;
  /** Effective run timeout and checkout timeout (the pool's when execute() gave none). */
  T: number;
  C: number;
  L: number;
  executeAt: number;
  /** stop() had been called when execute() was. */
  afterStop: boolean;
  controller: AbortController | null;
  /** When the test aborted it while it had no answer yet. */
  abortedAt: number | null;
  /** Every time its frame reached a fake process (an idempotent retry is a second one). */
  arrivals: Array<{ pid: number; workerId: string; at: number }>;
  settledAt: number | null;
  outcome: Outcome | null;
  /** The drain probe: must succeed. */
  probe: boolean;
  /** Already reported as past its bound (reported once). */
  overdue: boolean;
}

export interface RunResult {
  violations: string[];
  requests: Req[];
  /** For reports: the codes seen, per command. */
  codes: Map<string, number>;
  /** Every fake process the run started. */
  processes: ReturnType<Simulation['processes']>;
}

interface SimClock {
  now(): number;
  set(t: number): void;
  timeouts: Map<number, { start: number; timeout: number }>;
}

function describeOutcome(r: Req): string {
  if (!r.outcome) return 'unsettled';
  return r.outcome.ok ? `ok ${JSON.stringify(r.outcome.value)}` : `${r.outcome.error.code ?? r.outcome.error.name}: ${r.outcome.error.message}`;
}

export function describeRequest(r: Req): string {
  const opts = [r.session ? `session ${r.session}` : 'anonymous', r.idempotent ? 'idempotent' : '', `T=${r.T}`, `C=${r.C}`, r.controller ? 'abortable' : '', r.probe ? 'probe' : '']
    .filter(Boolean)
    .join(', ');
  const arrivals = r.arrivals.map((a) => `pid ${a.pid} (${a.workerId}) @${a.at}`).join(', ') || 'none';
  return `#${r.n} ${r.cmd} (${opts}) executed @${r.executeAt}${r.afterStop ? ' after stop' : ''}${r.abortedAt !== null ? `, aborted @${r.abortedAt}` : ''}; arrivals: ${arrivals}; settled @${r.settledAt ?? '-'}: ${describeOutcome(r)}`;
}

export function describeSchedule(s: Schedule): string {
  const lines = [`config ${JSON.stringify(s.config)}`, `drain ${s.drain}`];
  for (const [i, step] of s.steps.entries()) {
    const { k, ...rest } = step;
    lines.push(`  ${String(i).padStart(2)} ${k} ${Object.keys(rest).length ? JSON.stringify(rest) : ''}`);
  }
  return lines.join('\n');
}

/**
 * Run one schedule on a fresh simulation and pool; return every invariant it broke (empty: none).
 * Never throws for a pool bug: violations are data, so fast-check can shrink them.
 */
export async function runSchedule(schedule: Schedule): Promise<RunResult> {
  const { config } = schedule;
  const violations: string[] = [];
  const fail = (message: string) => {
    if (violations.length < 50) violations.push(message);
  };

  const sim = createSimulation({ startupMs: config.startupMs });
  const clock = sim.clock as unknown as SimClock;
  const now = () => clock.now();
  const echo = (a: { n: number }, ctx: { pid: number }) => ({ n: a.n, pid: ctx.pid });
  sim
    .handle('echo', echo)
    .handle('slow', echo, { latencyMs: LATENCY.slow })
    .handle('slower', echo, { latencyMs: LATENCY.slower })
    .handle('slowest', echo, { latencyMs: LATENCY.slowest })
    .handle('hang', () => sim.hang())
    .handle('stuck', () => sim.hang({ uninterruptible: true }))
    .handle('raise', (a: { n: number }) => {
      throw new SimPythonError('ValueError', `bad input ${a.n}`);
    })
    .handle('crash', () => sim.crash(1))
    .handle('crash_slow', () => sim.crash(1), { latencyMs: LATENCY.crash_slow });
  if (config.pingLatencyMs > 0) {
    // The built-in ping, but taking time: health checks overlap with traffic.
    sim.handle('ping', (_a, ctx) => ({ pong: true, worker_id: ctx.workerId, pid: ctx.pid, mode: 'pool-worker', codec: 'sim' }), { latencyMs: config.pingLatencyMs });
  }

  const requests: Req[] = [];
  const byN = new Map<number, Req>();
  /** pid → simulated time it was first seen dead (exact: see `observe`). */
  const deaths = new Map<number, number>();
  /** The test's own SIGKILLs. */
  const kills: Array<{ pid: number; at: number }> = [];
  let cleanupArrivals = 0;
  let stopAt: number | null = null;
  let stopPromise: Promise<void> | null = null;
  let stopped = false;
  let stopError: unknown = null;
  const endSessions: Array<{ at: number; settled: boolean; outcome: Outcome | null }> = [];

  /** Record a death at the current instant if it was not seen yet. */
  const deathOf = (pid: number): number | undefined => {
    if (!deaths.has(pid)) {
      const proc = sim.processes().find((p) => p.pid === pid);
      if (proc && !proc.alive) deaths.set(pid, now());
    }
    return deaths.get(pid);
  };

  /**
   * The latest simulated time by which an unsettled request must have its answer (before stop()):
   *  - never reached a process: its checkout deadline (execute + checkoutTimeout), or for an
   *    idempotent request whose first attempt died, that death + checkoutTimeout;
   *  - reached a process that is still alive: arrival + min(handler latency, timeout);
   *  - reached a process that died under it: the death itself (non-idempotent, or already
   *    retried), or death + checkoutTimeout (an idempotent request's retry waits for a worker).
   * An idempotent request that was never sent may have been handed to a worker that was killed
   * while it held the request (during a health ping) and retried: the last kill restarts its clock.
   */
  const bound = (r: Req): number => {
    const last = r.arrivals[r.arrivals.length - 1];
    if (!last) {
      let start = r.executeAt;
      if (r.idempotent) for (const k of kills) if (k.at >= r.executeAt) start = Math.max(start, k.at);
      return start + r.C;
    }
    const died = deathOf(last.pid);
    if (died === undefined) return last.at + Math.min(r.L, r.T);
    if (r.idempotent && r.arrivals.length === 1) return died + r.C;
    return died;
  };

  /** After every instant: stamp deaths, and (until stop) flag every request past its bound. */
  const observe = () => {
    for (const p of sim.processes()) if (!p.alive && !deaths.has(p.pid)) deaths.set(p.pid, now());
    if (stopAt !== null) return;
    for (const r of requests) {
      if (r.settledAt !== null || r.abortedAt !== null || r.overdue) continue;
      const b = bound(r);
      if (now() > b) {
        fail(`overdue: at ${now()} request #${r.n} has no answer, due by ${b}: ${describeRequest(r)}`);
        r.overdue = true;
      }
    }
  };

  /** Move the clock by ms, stopping at every due timer (each fires at its own instant). */
  const advance = async (ms: number) => {
    const target = now() + ms;
    for (let guard = 0; guard < 100_000; guard++) {
      let next = Infinity;
      for (const t of clock.timeouts.values()) next = Math.min(next, t.start + t.timeout);
      if (next <= target) clock.set(Math.max(next, now()));
      else if (now() < target) clock.set(target);
      else break;
      await flush();
      observe();
    }
  };

  sim.onRequest((frame) => {
    if (frame.cmd === 'cleanup_session') {
      cleanupArrivals++;
      return;
    }
    if (frame.cmd === 'ping') return;
    const n = (frame.args as { n?: number } | null)?.n;
    const r = n === undefined ? undefined : byN.get(n);
    if (!r) {
      fail(`a process received a frame no caller sent: ${JSON.stringify(frame)}`);
      return;
    }
    const attempt = r.arrivals.length;
    if (frame.cmd !== r.cmd || frame.session !== r.session) fail(`#${r.n} arrived as ${frame.cmd} session ${frame.session}: ${describeRequest(r)}`);
    if (r.abortedAt !== null) fail(`(d) #${r.n} reached pid ${frame.pid} at ${frame.at} after it was aborted at ${r.abortedAt}: ${describeRequest(r)}`);
    if (r.settledAt !== null) fail(`(d) #${r.n} reached pid ${frame.pid} at ${frame.at} after its caller had an answer: ${describeRequest(r)}`);
    if (attempt === 0 && frame.at > r.executeAt + r.C) fail(`(d) #${r.n} reached a process at ${frame.at}, after its checkout deadline ${r.executeAt + r.C}: ${describeRequest(r)}`);
    if (attempt === 1) {
      const first = r.arrivals[0]!;
      const died = deathOf(first.pid);
      if (!r.idempotent) fail(`#${r.n} (not idempotent) reached a process twice (pid ${first.pid}, then pid ${frame.pid}): ${describeRequest(r)}`);
      else if (died === undefined) fail(`#${r.n} was sent again (pid ${frame.pid}) while its first attempt on pid ${first.pid} was alive: ${describeRequest(r)}`);
      else if (frame.at > died + r.C) fail(`(d) the retry of #${r.n} reached a process at ${frame.at}, after its checkout deadline ${died + r.C}: ${describeRequest(r)}`);
    }
    // The deadline the frame carries (absolute, on the pool's clock), where the pool sends one:
    // still ahead when the frame arrives, and no later than the request's own timeout allows.
    const deadline = (frame as { deadline?: number | null }).deadline;
    if (typeof deadline === 'number' && !(deadline > frame.at && deadline <= frame.at + r.T)) {
      fail(`(d) #${r.n} reached pid ${frame.pid} at ${frame.at} carrying deadline ${deadline}; it must lie in (${frame.at}, ${frame.at + r.T}]: ${describeRequest(r)}`);
    }
    if (attempt >= 2) fail(`#${r.n} reached a process a third time (pid ${frame.pid}): ${describeRequest(r)}`);
    r.arrivals.push({ pid: frame.pid, workerId: frame.workerId, at: frame.at });
  });

  const pool = sim.createPool(poolOptions(config));
  let nextN = 1;

  const exec = (cmd: Cmd, opts: { session?: string | null; idempotent?: boolean; timeout?: number; checkoutTimeout?: number; abortable?: boolean; probe?: boolean } = {}) => {
    const r: Req = {
      n: nextN++,
      cmd,
      session: opts.session ?? null,
      idempotent: opts.idempotent ?? false,
      T: opts.timeout ?? config.requestTimeout,
      C: opts.checkoutTimeout ?? config.checkoutTimeout,
      L: LATENCY[cmd],
      executeAt: now(),
      afterStop: stopAt !== null,
      controller: opts.abortable ? new AbortController() : null,
      abortedAt: null,
      arrivals: [],
      settledAt: null,
      outcome: null,
      probe: opts.probe ?? false,
      overdue: false,
    };
    requests.push(r);
    byN.set(r.n, r);
    const options: Record<string, unknown> = {};
    if (r.session !== null) options.sessionId = r.session;
    if (opts.idempotent) options.idempotent = true;
    if (opts.timeout !== undefined) options.timeout = opts.timeout;
    if (opts.checkoutTimeout !== undefined) options.checkoutTimeout = opts.checkoutTimeout;
    if (r.controller) options.signal = r.controller.signal;
    const settle = (outcome: Outcome) => {
      if (r.outcome) fail(`#${r.n} settled twice`);
      r.settledAt = now();
      r.outcome = outcome;
    };
    pool.execute(cmd, { n: r.n }, options).then(
      (value) => settle({ ok: true, value }),
      (error) => settle({ ok: false, error }),
    );
    return r;
  };

  const stop = () => {
    if (stopAt !== null) return;
    stopAt = now();
    stopPromise = pool.stop();
    stopPromise.then(
      () => (stopped = true),
      (err) => ((stopped = true), (stopError = err)),
    );
  };

  const live = () => sim.alive().sort((a, b) => a.pid - b.pid);

  try {
    // Never await a pool promise bare: one that never settles would end the test run silently.
    let ready: boolean | Error = false;
    pool.whenReady().then(
      () => (ready = true),
      (err: Error) => (ready = err),
    );
    await advance(config.startupMs + config.pingLatencyMs);
    if (ready !== true) throw new Error(`the pool was not ready after ${config.startupMs + config.pingLatencyMs} ms: ${String(ready)}`);

    for (const step of schedule.steps) {
      switch (step.k) {
        case 'exec':
          exec(step.cmd, step);
          break;
        case 'burst':
          for (let i = 0; i < step.count; i++) exec(step.cmd);
          break;
        case 'advance':
          await advance(step.ms);
          break;
        case 'kill': {
          const procs = live();
          if (procs.length === 0) break;
          const proc = procs[step.pick % procs.length]!;
          kills.push({ pid: proc.pid, at: now() });
          sim.kill(proc.pid, 'SIGKILL');
          break;
        }
        case 'abort': {
          const open = requests.filter((r) => r.controller && r.abortedAt === null && r.settledAt === null);
          if (open.length === 0) break;
          const r = open[step.pick % open.length]!;
          r.abortedAt = now();
          r.controller!.abort(new Error(`test aborts #${r.n}`));
          break;
        }
        case 'endSession': {
          const record = { at: now(), settled: false, outcome: null as Outcome | null };
          endSessions.push(record);
          pool.endSession(step.session).then(
            (value) => Object.assign(record, { settled: true, outcome: { ok: true, value } }),
            (error) => Object.assign(record, { settled: true, outcome: { ok: false, error } }),
          );
          break;
        }
        case 'fat': {
          const procs = live();
          if (procs.length) sim.setRssMb(procs[step.pick % procs.length]!.pid, 500);
          break;
        }
        case 'stop':
          stop();
          break;
      }
      await flush();
      observe();
    }

    if (stopAt === null && schedule.drain) {
      await advance(DRAIN_MS);
      for (const r of requests) if (r.settledAt === null && !r.overdue) fail(`(a) after ${DRAIN_MS} ms of drain #${r.n} still has no answer: ${describeRequest(r)}`);
      // (e) the pool still serves after whatever the schedule did to it.
      const probe = exec('echo', { probe: true });
      await flush();
      observe();
      await advance(Math.max(config.checkoutTimeout, 100) + 50);
      if (!probe.outcome?.ok) fail(`(e) after the drain a plain echo got ${describeOutcome(probe)}: ${describeRequest(probe)}`);
    }
  } catch (err) {
    fail(`the run threw: ${(err as Error)?.stack ?? String(err)}`);
  }
  try {
    stop();
    // Let shutdownTimeout pass for workers that hold a command that never ends.
    for (let i = 0; i < 40 && !(stopped && sim.alive().length === 0); i++) await advance(250);
    await flush();
  } catch (err) {
    fail(`stopping threw: ${(err as Error)?.stack ?? String(err)}`);
  }

  // ---- after stop(): the invariants -----------------------------------------------------------
  if (!stopped) fail(`(a) stop() did not resolve within 10 s of simulated time`);
  if (stopError) fail(`stop() rejected: ${String(stopError)}`);
  const alive = sim.alive();
  if (alive.length) fail(`(a) fake processes alive after stop(): ${alive.map((p) => `${p.workerId}/${p.pid}`).join(', ')}`);
  for (const p of sim.processes()) {
    if (p.peakInflight > 1) fail(`(c) pid ${p.pid} (${p.workerId}) had ${p.peakInflight} requests in flight at once (concurrency 1)`);
  }
  for (const e of endSessions) {
    if (!e.settled) fail(`(a) endSession called at ${e.at} never settled`);
    else if (!e.outcome!.ok) {
      const code = (e.outcome as { error: { code?: string } }).error.code;
      const okCode = code === 'SESSION_NOT_FOUND' || (code === 'POOL_CLOSED' && stopAt !== null);
      if (!okCode) fail(`endSession called at ${e.at} rejected with ${code}: ${(e.outcome as { error: Error }).error.message}`);
    }
  }

  const codes = new Map<string, number>();
  for (const r of requests) {
    if (r.settledAt === null) {
      fail(`(a) #${r.n} never settled, even after stop(): ${describeRequest(r)}`);
      continue;
    }
    const code = r.outcome!.ok ? 'ok' : r.outcome!.error.code ?? 'no code';
    const key = `${r.cmd} ${code}`;
    codes.set(key, (codes.get(key) ?? 0) + 1);
    const problem = judge(r, { config, stopAt, deaths, kills });
    if (problem) fail(`(b) #${r.n}: ${problem}: ${describeRequest(r)}`);
  }

  // (a) counters. What totalCommands counts: each time a caller's request (an idempotent retry
  // is a second time) or a cleanup_session reached a worker process and came back from it, with
  // a reply, an error, a crash, a timeout or an interrupt. What totalErrors counts: those of them
  // that did not come back with a result. So per request: its arrivals, of which all but an ok
  // answer's last one are errors; a request that never reached a process (POOL_TIMEOUT,
  // POOL_SATURATED, SESSION_WORKER_LOST, ABORTED or POOL_CLOSED while waiting) counts nothing.
  // cleanup_session answers at once in the simulation: each arrival is one command, no error.
  // Health pings are not requests and count nothing.
  //
  // A request that a worker accepted but had not sent yet (today: one handed to a worker whose
  // health ping is still out) has not reached a process either: it counts nothing, whatever
  // then happens to it (see NEVER_SENT_IS_NOT_A_COMMAND for the lenient reading).
  if (requests.every((r) => r.settledAt !== null)) {
    const stats = pool.stats();
    let arrivals = 0;
    let oks = cleanupArrivals;
    let held = 0;
    for (const r of requests) {
      arrivals += r.arrivals.length;
      if (r.outcome!.ok) oks++;
      // Lenient reading only: requests that may have been held by a worker during a ping (each
      // such hold answered with an error, and counted as one command and one error).
      if (!NEVER_SENT_IS_NOT_A_COMMAND && config.pingLatencyMs > 0 && !r.afterStop && (r.arrivals.length === 0 || r.idempotent)) held++;
    }
    const commands = arrivals + cleanupArrivals;
    const counted = `stats() counts totalCommands ${stats.totalCommands}, totalErrors ${stats.totalErrors}; the requests say ${commands} reached a process (${arrivals} request arrivals, ${cleanupArrivals} cleanup_session arrivals) and ${oks} of them succeeded${held ? `, plus up to ${held} held by a worker during a health ping` : ''}`;
    if (stats.totalCommands - stats.totalErrors !== oks || stats.totalCommands < commands || stats.totalCommands > commands + held) fail(`(a) ${counted}`);
  }
  return { violations, requests, codes, processes: sim.processes() };
}

/**
 * Whether a request's own timeout still holds while stop() lets running commands finish. Today
 * it does not (a command that outlives its timeout during stop() returns its result), and the
 * docs allow that ("the pool stopped under it: the result if it finished"). Set to true if the
 * lead decides that a caller never gets an answer later than its own deadline.
 */
export const DEADLINES_HOLD_DURING_STOP = false;

/**
 * What happens to a request a worker has accepted but not yet sent to its process (today: one
 * handed to a worker whose health ping is out; it is sent when the pong comes) if that process
 * dies first. true (what DESIGN §6 reads as): nothing ran, so nothing "died under it": it is not
 * failed with WORKER_CRASHED (it goes back to waiting, within its own checkout deadline) and it
 * counts as no command — totalCommands counts frames that reached a process. false (today's
 * behaviour): WORKER_CRASHED is allowed for it (an idempotent one is retried) and it may count as
 * one command and one error. A decision for the lead; the property is strict by default.
 */
export const NEVER_SENT_IS_NOT_A_COMMAND = true;

interface Facts {
  config: Config;
  stopAt: number | null;
  deaths: Map<number, number>;
  kills: Array<{ pid: number; at: number }>;
}

/**
 * Whether a settled request's answer is one it may get, given what happened to it; null if so,
 * else why not.
 */
export function judge(r: Req, f: Facts): string | null {
  const at = r.settledAt!;
  const outcome = r.outcome!;
  const last = r.arrivals[r.arrivals.length - 1];
  const stoppedFirst = f.stopAt !== null && f.stopAt <= at;
  const killedByTest = (pid: number) => f.kills.some((k) => k.pid === pid);
  const deathOf = (pid: number) => f.deaths.get(pid);
  // The last attempt never reached a process: never sent, or an idempotent request whose only
  // arrival died under it (its retry waited and did not get a worker).
  const firstDied = r.arrivals.length === 1 ? deathOf(r.arrivals[0]!.pid) : undefined;
  const retried = r.idempotent && r.arrivals.length === 1 && firstDied !== undefined && firstDied <= at && !deathAnsweredIt(r, firstDied, at, f);
  const unsent = r.arrivals.length === 0 || retried;
  const waitStart = r.arrivals.length === 0 ? r.executeAt : firstDied!;

  if (r.afterStop) return !outcome.ok && outcome.error.code === 'POOL_CLOSED' ? null : 'execute() after stop() must reject with POOL_CLOSED';
  if (r.abortedAt !== null) {
    // Aborted while it had no answer: the answer is ABORTED, at once.
    if (outcome.ok || outcome.error.code !== 'ABORTED') return `aborted at ${r.abortedAt} while unanswered, so it must get ABORTED`;
    return at === r.abortedAt ? null : `ABORTED at ${at}, but the abort was at ${r.abortedAt}`;
  }
  if (r.probe && !outcome.ok) return 'the probe after the drain must succeed';
  if (outcome.ok) {
    if (!ECHOERS.has(r.cmd)) return `${r.cmd} can never succeed`;
    if (!last) return 'ok without ever reaching a process';
    const value = outcome.value as { n?: number; pid?: number } | null;
    if (value?.n !== r.n) return `ok with another request's value ${JSON.stringify(value)}`;
    if (value.pid !== last.pid) return `ok from pid ${value.pid}, but it last reached pid ${last.pid}`;
    // A command still running when stop() is called is let finish (SIGTERM, then SIGKILL after
    // shutdownTimeout), and today its deadline is not enforced meanwhile: tolerated once stop()
    // came before the deadline (a doubt for the lead: see DEADLINES_HOLD_DURING_STOP).
    const deadlineBeforeStop = f.stopAt === null || last.at + r.T < f.stopAt;
    if (r.L >= r.T && (DEADLINES_HOLD_DURING_STOP || deadlineBeforeStop)) return `ok, but its handler takes ${r.L} ms and its timeout is ${r.T} ms`;
    if (at !== last.at + r.L) return `ok at ${at}, but its reply left the process at ${last.at + r.L}`;
    return null;
  }
  const code = outcome.error.code;
  switch (code) {
    case 'PYTHON_ERROR':
      if (r.cmd !== 'raise') return 'PYTHON_ERROR for a command that does not raise';
      if (!last || at !== last.at) return 'PYTHON_ERROR not at the arrival of the raising command';
      return null;
    case 'REQUEST_TIMEOUT':
      if (at < r.executeAt + r.T) return `REQUEST_TIMEOUT at ${at}, before its timeout of ${r.T} ms could have passed`;
      if (unsent) return null; // a deadline that passed before it ran (allowed: see the report)
      if (r.L < r.T) return `REQUEST_TIMEOUT, but its handler answers in ${r.L} ms, within its timeout of ${r.T} ms`;
      if (at > last!.at + r.T) return `REQUEST_TIMEOUT at ${at}, later than ${r.T} ms after it reached the process at ${last!.at}`;
      return null;
    case 'WORKER_CRASHED':
      if (!unsent) {
        const died = deathOf(last!.pid);
        if (died === undefined) return `WORKER_CRASHED, but pid ${last!.pid} that ran it is alive`;
        if (died !== at) return `WORKER_CRASHED at ${at}, but pid ${last!.pid} died at ${died}`;
        if (!CRASHERS.has(r.cmd) && !killedByTest(last!.pid)) return `WORKER_CRASHED, but nothing killed pid ${last!.pid} under it`;
        return null;
      }
      if (r.arrivals.length === 1 && NEVER_SENT_IS_NOT_A_COMMAND) return `WORKER_CRASHED for an idempotent request after pid ${r.arrivals[0]!.pid} died under it, but it was not retried on another worker`;
      if (NEVER_SENT_IS_NOT_A_COMMAND) return 'WORKER_CRASHED, but it never reached a process: no process died under it';
      // Lenient reading only: handed to a worker that was killed before the frame went out.
      return f.kills.some((k) => k.at >= r.executeAt && k.at <= at && (!last || k.pid !== last.pid)) ? null : 'WORKER_CRASHED, but it never ran and no process was killed meanwhile';
    case 'ABORTED':
      return 'ABORTED, but the test never aborted it';
    case 'POOL_TIMEOUT':
      if (!unsent) return 'POOL_TIMEOUT after it reached a process';
      if (at < waitStart + r.C) return `POOL_TIMEOUT at ${at}, before its checkout timeout (${waitStart} + ${r.C})`;
      return null;
    case 'POOL_SATURATED':
      if (f.config.maxQueue >= 1000) return 'POOL_SATURATED with a queue this long';
      if (!unsent || at !== waitStart) return 'POOL_SATURATED not at once';
      return null;
    case 'POOL_CLOSED':
      return stoppedFirst ? null : '(e) POOL_CLOSED, but stop() was not called: the pool closed on its own';
    case 'SESSION_WORKER_LOST': {
      if (r.session === null) return 'SESSION_WORKER_LOST for an anonymous request';
      if (!PINNING.has(f.config.affinity)) return `SESSION_WORKER_LOST under affinity '${f.config.affinity}'`;
      if (!unsent) return 'SESSION_WORKER_LOST after it reached a process';
      const anyDeath = [...f.deaths.values()].some((d) => d <= at);
      return anyDeath ? null : 'SESSION_WORKER_LOST, but no process had died';
    }
    default:
      return `unexpected error ${code ?? outcome.error.name}`;
  }
}

/**
 * An idempotent request whose first process died under it is retried, unless its answer came
 * at that death: stop() had been called (POOL_CLOSED), or it timed out or was aborted first.
 * Returns true when that death itself is its answer, i.e. it was not retried.
 */
function deathAnsweredIt(r: Req, died: number, at: number, f: Facts): boolean {
  if (at !== died) return false;
  const code = r.outcome && !r.outcome.ok ? r.outcome.error.code : undefined;
  if (code === 'REQUEST_TIMEOUT') return true; // the timeout killed it
  if (code === 'POOL_CLOSED' && f.stopAt !== null && f.stopAt <= at) return true;
  return false;
}
