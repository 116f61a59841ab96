/**
 * The model behind test/fast/requests.property.test.ts: random schedules of requests and faults
 * run against a real pool on the simulation, and a judge that knows, from what the test itself
 * did and what the fake processes saw, which answers each request may get.
 *
 * Written only against the public and testing API (createSimulation, sim.createPool, execute,
 * stream, endSession, stats, workers, stop, sim.onRequest / kill / processes / alive /
 * setRssMb, FakeProcess.controls / chunksProduced / peakInflight), so that it survives a
 * rewrite of the pool core. Pool options are built in one place (`poolOptions`). Streams (the
 * generator commands, their readers and what is checked of each stream) are in
 * requests.property.streams.ts.
 *
 * workerConcurrency (1, 2 or 4) changes what a give-up does to a running frame (see `cutAt`):
 * with 1, an abort is SIGINT and a deadline replaces the process; above 1 both are a cancel
 * frame, the frame is abandoned (still out, its slot taken, its late answer dropped), and the
 * process is replaced only when it stops answering altogether — interruptGrace after the
 * give-up, if no frame came since or nothing there is waited for any more (the model's
 * 'replaced' deaths), and then whatever else ran there is lost with it. The model keeps, per
 * process, exactly which frames are out (`frameOpen`), and checks it against
 * pool.workers()[i].inflight at every instant.
 *
 * Time is only simulated: `advance` moves the simulated clock from due timer to due timer (as
 * test/fast/pool.harness.ts does) and lets settled promises run their reactions with
 * setImmediate-based flushing, so each timer fires at its own instant and every observation
 * (arrival, settlement, process death) is stamped with the exact simulated time it happened at.
 *
 * Fault attribution (DESIGN §6, docs/OPTIONS.md "The fault model"): the pool runs with its
 * default restart budget, and every process death is classified by what the test knows (see
 * `Death`): under a request (a handler that crashed it, or a SIGKILL while a request frame was
 * out on it), idle (a SIGKILL with no request frame out: between requests, during a health
 * ping, during start), or the pool's own (recycling, retirement, replacement in place, stop,
 * the drain of a tier). Only idle deaths may count against the worker tier's intensity; see
 * `checkSupervision` for exactly what is checked about `tier_restarted` and `escalation`. A
 * death under requests fails every request in flight there (several, above workerConcurrency
 * 1) with WORKER_CRASHED at that instant; none of them counts.
 *
 * Doubtful or buggy behaviour is named by flags, each documented where it is declared:
 * DEADLINES_HOLD_DURING_STOP (lenient), DRAINS_ARE_NOT_CRASHES and NEVER_SENT_IS_NOT_A_COMMAND
 * (strict: fixed). The four bugs of streams and workerConcurrency this property found are fixed
 * and their flags strict too (regression tests in test/fast/streams.regressions.test.ts):
 * REPLACEMENTS_ARE_NOT_CRASHES and ABANDONED_SLOTS_ARE_RECLAIMED here, SYNC_FIRST_CHUNK_IS_ACKED
 * and CANCEL_BEFORE_START_STOPS_THE_GENERATOR in requests.property.streams.ts. A run reports
 * which lenient flag it ran into (`RunResult.tolerated`).
 */
import fc from 'fast-check';
import type { AnyActorRef } from 'xstate';
import { createSimulation, SimPythonError, type Simulation } from '../../src/testing/index.js';
import { resolveOptions } from '../../src/options.js'; // public: re-exported by src/index.ts
import { flush } from './pool.harness.js';
import {
  EXEC_GEN_CHUNKS,
  EXEC_GEN_LATENCY,
  GEN,
  CANCEL_BEFORE_START_STOPS_THE_GENERATOR,
  STREAM_CRASH_CODE,
  cancelledBeforeStart,
  checkStream,
  isGen,
  ledgerEnd,
  readStream,
  registerGenerators,
  streamStepArb,
  type GenCmd,
  type Ledger,
  type StreamRecord,
  type StreamStep,
} from './requests.property.streams.js';

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
const CRASHERS: ReadonlySet<string> = new Set<Cmd>(['crash', 'crash_slow']);
const ECHOERS: ReadonlySet<string> = new Set<Cmd>(['echo', 'slow', 'slower', 'slowest']);

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
  /** restart.root.maxRestarts; null = the pool's default. The worker tier's own budget is always the default. */
  rootMaxRestarts: number | null;
  /** Requests in flight per worker process at once. */
  workerConcurrency: number;
}

export type Step =
  | {
      k: 'exec';
      /** 'gen': the generator command run with execute() (a list of its EXEC_GEN_CHUNKS chunks). */
      cmd: Cmd | 'gen';
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
  /**
   * SIGKILL the pick-th live fake process (by pid order, modulo their number) among those the
   * target names: 'busy' ones have a request frame out (the death is under a request), 'idle'
   * ones have none; no such process, no kill.
   */
  | { k: 'kill'; pick: number; target: KillTarget }
  /**
   * `count` kills in a row, `gapMs` of simulated time apart (a kill storm: what makes the tier
   * escalate), each followed by `load` new anonymous `loadCmd` requests (so that some wait for
   * the replacement, across a tier restart or into the root's escalation, or run into a drain).
   */
  | { k: 'kills'; target: Exclude<KillTarget, 'any'>; count: number; gapMs: number; load: number; loadCmd: Cmd }
  /** Abort the pick-th abortable request that has no answer yet. */
  | { k: 'abort'; pick: number }
  | { k: 'endSession'; session: string }
  /** The pick-th live process now reads as 500 MiB resident (recycled if recycle.maxRssMb is on). */
  | { k: 'fat'; pick: number }
  /** A stream request over a generator command, and its reader (see requests.property.streams.ts). */
  | StreamStep
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
  /**
   * 'barrier': every SIGKILL targets a busy process, so every death is under a request (or the
   * pool's own) and the tier must never restart, whatever their number. 'mixed': anything.
   */
  faults: 'mixed' | 'barrier';
}

export type KillTarget = 'any' | 'busy' | 'idle';

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
    workerConcurrency: c.workerConcurrency,
    // The worker tier's restart budget is the pool's default (restart.maxRestarts within
    // restart.maxSeconds); only the root's may be made small, so that root escalation happens.
    ...(c.rootMaxRestarts !== null ? { restart: { root: { maxRestarts: c.rootMaxRestarts } } } : {}),
  };
}

/** The restart budgets a schedule's pool runs with (the defaults, but for restart.root.maxRestarts). */
export function budgetOf(c: Config): { maxRestarts: number; periodMs: number; rootMaxRestarts: number; rootPeriodMs: number } {
  const { restart } = resolveOptions({ python: 'sim', ...poolOptions(c) });
  return { maxRestarts: restart.maxRestarts, periodMs: restart.maxSeconds * 1000, rootMaxRestarts: restart.root.maxRestarts, rootPeriodMs: restart.root.maxSeconds * 1000 };
}

const cmdArb = fc.constantFrom<Cmd>('echo', 'echo', 'slow', 'slow', 'slower', 'slower', 'slowest', 'hang', 'stuck', 'raise', 'raise', 'crash', 'crash', 'crash_slow');

const execArb: fc.Arbitrary<Step> = fc
  .record({
    cmd: fc.oneof({ weight: 14, arbitrary: cmdArb }, { weight: 1, arbitrary: fc.constant('gen' as const) }),
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
  { weight: 4, arbitrary: fc.record({ k: fc.constant('burst' as const), cmd: fc.constantFrom<Cmd>('slow', 'slower', 'slowest', 'crash_slow', 'crash_slow', 'crash'), count: fc.integer({ min: 2, max: 6 }) }) },
  {
    weight: 28,
    arbitrary: fc.record({ k: fc.constant('advance' as const), ms: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 120 }), fc.integer({ min: 100, max: 600 })) }),
  },
  { weight: 8, arbitrary: fc.record({ k: fc.constant('kill' as const), pick: fc.nat({ max: 7 }), target: fc.constantFrom<KillTarget>('any', 'busy', 'busy', 'idle') }) },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant('kills' as const),
      target: fc.constantFrom<'busy' | 'idle'>('idle', 'idle', 'busy'),
      count: fc.integer({ min: 2, max: 8 }),
      gapMs: fc.constantFrom(0, 1, 5, 15),
      load: fc.constantFrom(0, 0, 1, 2),
      loadCmd: fc.constantFrom<Cmd>('slow', 'slow', 'slowest'),
    }),
  },
  { weight: 6, arbitrary: fc.record({ k: fc.constant('abort' as const), pick: fc.nat({ max: 7 }) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('endSession' as const), session: fc.constantFrom(...SESSIONS) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('fat' as const), pick: fc.nat({ max: 7 }) }) },
  { weight: 10, arbitrary: streamStepArb },
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
  pingLatencyMs: fc.constantFrom(0, 2, 5),
  startupMs: fc.constantFrom(0, 7),
  overflowIdleMs: fc.constantFrom(100, 300),
  maxConsecutiveErrors: fc.constantFrom(2, 10),
  sessionTtlMs: fc.constantFrom(0, 0, 500),
  shutdownTimeout: fc.constantFrom(50, 200),
  interruptGraceMs: fc.constant(20),
  rootMaxRestarts: fc.constantFrom<number | null>(null, null, null, null, 0, 1),
  workerConcurrency: fc.constantFrom(1, 1, 2, 4),
});

/** Under 'barrier' every kill targets a busy process: no death of the schedule may count against intensity. */
function onlyUnderRequests(step: Step): Step {
  return step.k === 'kill' || step.k === 'kills' ? { ...step, target: 'busy' } : step;
}

export const scheduleArb: fc.Arbitrary<Schedule> = fc
  .record({
    config: configArb,
    steps: fc.array(stepArb, { minLength: 1, maxLength: 40, size: 'max' }),
    drain: fc.boolean(),
    faults: fc.constantFrom<Schedule['faults']>('mixed', 'mixed', 'mixed', 'barrier'),
  })
  .map((s) => (s.faults === 'barrier' ? { ...s, steps: s.steps.map(onlyUnderRequests) } : s));

// ---- running a schedule ---------------------------------------------------------------------

type Outcome = { ok: true; value: unknown } | { ok: false; error: Error & { code?: string } };

/** A request frame's arrival at a fake process. */
export interface Arrival {
  pid: number;
  workerId: string;
  at: number;
  seq: number;
  /** The frame id (what control frames for it carry). */
  id: number;
  /** A generator command's own account of this attempt (see requests.property.streams.ts). */
  gen?: Ledger;
}

/** One caller's request, as the test knows it. */
export interface Req {
  /** Unique number, sent in the args ({n}) and echoed back by the echo commands. */
  n: number;
  cmd: Cmd | GenCmd;
  /** execute() or pool.stream(). */
  kind: 'exec' | 'stream';
  /** The pool's workerConcurrency (how a give-up reaches the handler: SIGINT or a cancel frame). */
  conc: number;
  /** A stream's reader; null for execute(). */
  stream: StreamRecord | null;
  /** A stream's credit window (0: execute()); known before pool.stream() returns, which may already have sent it. */
  window: number;
  /** When its reader broke out of the loop or aborted its signal (null: never), and how. */
  cancelAt: number | null;
  cancelHow: 'break' | 'abort' | null;
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
  /** An `abort` step may fire its signal (a stream's reader may have a signal of its own to abort). */
  abortablePick: boolean;
  /** When the test aborted it while it had no answer yet. */
  abortedAt: number | null;
  /** Every time its frame reached a fake process (an idempotent retry is a second one). */
  arrivals: Arrival[];
  settledAt: number | null;
  outcome: Outcome | null;
  /** The drain probe: must succeed. */
  probe: boolean;
  /** Already reported as past its bound (reported once). */
  overdue: boolean;
}

/** A SIGKILL the test sent, with what it knew at that instant. */
export interface Kill {
  pid: number;
  workerId: string;
  at: number;
  /** Order among kills, request arrivals, stop() and supervision events (several can share one instant). */
  seq: number;
  /** Requests (by n) with a frame out on the process: non-empty means the death is under a request. */
  open: number[];
  /** Those of them whose caller had no answer yet: each must be answered by this death (or retried). */
  victims: number[];
  /** The worker as pool.workers() showed it just before (null: no worker showed this pid). */
  state: string | null;
  overflow: boolean | null;
  /** stop() had been called, or the pool had closed, before the kill. */
  late: boolean;
}

/**
 * One process death, classified:
 *  - 'request': a request was in flight on it — its own handler crashed it (how 'crash'), or the
 *    test SIGKILLed it while a request frame was out (how 'kill'). The crash barrier: never counted.
 *  - 'idle': the test SIGKILLed it with no request frame out (between requests, during a health
 *    ping, during start). The worker's own death: counts against the tier's intensity.
 *  - 'pool': the pool ended it itself (how 'pool'): recycling, overflow retirement, a replacement
 *    in place (timeout, ignored interrupt, errors in a row), stop(), the drain of an escalated tier.
 */
export interface Death {
  pid: number;
  workerId: string;
  at: number;
  kind: 'request' | 'idle' | 'pool';
  /** 'replaced': the pool's own, a replacement in place of a process that did not let go of a request given up on. */
  how: 'crash' | 'kill' | 'pool' | 'replaced';
  /** Requests with a frame out on it when it died (and those of `ties`). */
  requests: number[];
  /** Requests whose frame was due to answer at the instant it died: either may have come first. */
  ties: number[];
}

/**
 * An event of the supervision tree, as the test saw it: the pool's `tier_restarted` (the root
 * restarted a drained tier) and `escalation` (the root gave up), and the worker tier's own
 * `escalation` ('tier_escalated': the tier exceeded its intensity and begins to drain).
 */
export interface SupervisionEvent {
  type: 'tier_escalated' | 'tier_restarted' | 'escalation';
  at: number;
  seq: number;
  code: string | undefined;
  supervisorId?: string;
  restarts?: number;
}

/** What a schedule exercised, for the case statistics the test prints and asserts on. */
export const CASES = [
  'crash under a request',
  'SIGKILL under a request',
  'idle SIGKILL',
  'SIGKILL during start',
  'SIGKILL during a health ping',
  'barrier: more request deaths in a window than the budget, none idle',
  'tier restarted',
  'intensity enforced (lower bound applied)',
  'request waited across a tier restart and was served',
  'request in flight on a drained tier',
  'root escalated: pool closed',
  'request answered by the escalation (ESCALATED)',
  'idempotent retry',
  'poison',
  'stream completed',
  'stream: worker paused for credit (window full)',
  'stream broken by its reader mid-way',
  'stream aborted by its signal mid-way',
  'stream: chunks, then REQUEST_TIMEOUT',
  'stream: chunks, then WORKER_CRASHED (not retried)',
  'stream: chunks, then PYTHON_ERROR',
  'stream never read, ended by its deadline',
  'idempotent stream retried before any chunk',
  'execute() of a generator: the list of its chunks',
  'concurrency > 1: several requests in flight on one process',
  'concurrency > 1: one death failed several requests',
  'concurrency > 1: a request given up on, its process kept',
  'concurrency > 1: a deaf process replaced',
] as const;
export type Case = (typeof CASES)[number];

export interface RunResult {
  violations: string[];
  requests: Req[];
  /** For reports: the codes seen, per command. */
  codes: Map<string, number>;
  /** Every fake process the run started. */
  processes: ReturnType<Simulation['processes']>;
  /** Every process death, classified. */
  deaths: Death[];
  kills: Kill[];
  supervision: SupervisionEvent[];
  /** When the pool closed on its own (root escalation); null if it did not. */
  closedAt: number | null;
  cases: Set<Case>;
  /** Which of today's known bugs the run ran into, tolerated by the lenient flags (REPLACEMENTS_ARE_NOT_CRASHES and the others). */
  tolerated: Set<string>;
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

function describeLedger(g: Ledger | undefined): string {
  if (!g) return '';
  const ends = [g.returnedAt !== null ? `returned @${g.returnedAt}` : '', g.raisedAt !== null ? `raised @${g.raisedAt}` : '', g.crashedAt !== null ? `crashed @${g.crashedAt}` : '', g.closedAt !== null ? `closed @${g.closedAt}` : '']
    .filter(Boolean)
    .join(', ');
  return ` [frame ${g.frameId}, started @${g.startedAt ?? '-'}, ${g.produced.length} chunk(s)${g.produced.length ? ` @${g.produced.join(',')}` : ''}${ends ? `, ${ends}` : ''}]`;
}

export function describeRequest(r: Req): string {
  const x = r.stream;
  const opts = [
    r.kind === 'stream' ? `stream window ${x!.window}, ${x!.chunks} chunks, reader ${JSON.stringify(x!.reader)}` : '',
    r.session ? `session ${r.session}` : 'anonymous',
    r.idempotent ? 'idempotent' : '',
    `T=${r.T}`,
    `C=${r.C}`,
    r.controller ? 'abortable' : '',
    r.probe ? 'probe' : '',
  ]
    .filter(Boolean)
    .join(', ');
  const arrivals = r.arrivals.map((a) => `pid ${a.pid} (${a.workerId}) @${a.at}${describeLedger(a.gen)}`).join(', ') || 'none';
  const reading = x
    ? `; read ${x.read.length} chunk(s)${x.readAt.length ? ` @${x.readAt.join(',')}` : ''}, max buffered ${x.maxBuffered}, loop ${x.end ? `${x.end.how} @${x.end.at}${x.end.how === 'error' ? ` (${(x.end.error as { code?: string }).code})` : ''}` : 'not ended'}`
    : '';
  const cancel = r.cancelAt !== null ? `, reader ${r.cancelHow === 'break' ? 'broke' : 'aborted'} @${r.cancelAt}` : '';
  return `#${r.n} ${r.cmd} (${opts}) executed @${r.executeAt}${r.afterStop ? ' after stop' : ''}${r.abortedAt !== null ? `, aborted @${r.abortedAt}` : ''}${cancel}; arrivals: ${arrivals}; settled @${r.settledAt ?? '-'}: ${describeOutcome(r)}${reading}`;
}

const codeOf = (r: Req): string | undefined => (r.outcome && !r.outcome.ok ? r.outcome.error.code : r.outcome ? 'ok' : undefined);

/**
 * When the pool gave up on a request that was running: the test's abort of it, its reader's
 * break or abort (when that is what answered it: ABORTED then), its deadline (REQUEST_TIMEOUT
 * when it ran out on the process it last reached). Null: never.
 */
export function giveUpAt(r: Req): number | null {
  const last = r.arrivals[r.arrivals.length - 1];
  if (!last) return null;
  if (r.abortedAt !== null) return r.abortedAt >= last.at ? r.abortedAt : null;
  const code = codeOf(r);
  if (r.cancelAt !== null && code === 'ABORTED' && r.settledAt === r.cancelAt) return r.cancelAt >= last.at ? r.cancelAt : null;
  if (code === 'REQUEST_TIMEOUT' && r.settledAt === last.at + r.T) return r.settledAt;
  return null;
}

/**
 * Whether a death under it may be answered with a retry: an idempotent request — but a stream
 * whose first attempt delivered chunks is never started over (its reader has them already).
 */
export function retriable(r: Req): boolean {
  if (!r.idempotent) return false;
  return !(r.kind === 'stream' && (r.arrivals[0]?.gen?.produced.length ?? 0) > 0);
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
  const streamEnv = {
    sim,
    now,
    fail,
    arrival: (n: number, pid: number) => byN.get(n)?.arrivals.filter((a) => a.pid === pid).at(-1),
    stream: (n: number) => byN.get(n)?.stream ?? undefined,
  };
  registerGenerators(streamEnv);
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

  /** Retries sent while the first process was alive (tolerated only as DRAINS_ARE_NOT_CRASHES / REPLACEMENTS_ARE_NOT_CRASHES = false say). */
  const sentBeforeDeath: Array<{ r: Req; pid: number; at: number }> = [];
  const requests: Req[] = [];
  const byN = new Map<number, Req>();
  /** pid → simulated time it was first seen dead (exact: see `observe`). */
  const deaths = new Map<number, number>();
  /** The test's own SIGKILLs. */
  const kills: Kill[] = [];
  /** The supervision events (tier_escalated, tier_restarted, escalation), in order. */
  const supervision: SupervisionEvent[] = [];
  let seq = 0;
  let stopSeq = Infinity;
  let closedAt: number | null = null;
  let cleanupArrivals = 0;
  let stopAt: number | null = null;
  let stopPromise: Promise<void> | null = null;
  let stopped = false;
  let stopError: unknown = null;
  const endSessions: Array<{ at: number; settled: boolean; outcome: Outcome | null }> = [];
  /** Workers left with a frame held for good after the drain, and whether the probe's POOL_TIMEOUT is that (see ABANDONED_SLOTS_ARE_RECLAIMED). */
  let leaked = 0;
  let probeTolerated = false;
  /** Which of today's known bugs (the lenient flags) this run ran into. */
  const tolerated = new Set<string>();

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
    if (retriable(r) && r.arrivals.length === 1) return died + r.C;
    return died;
  };

  /** After every instant: stamp deaths, and (until stop) flag every request past its bound. */
  const observe = () => {
    for (const p of sim.processes()) if (!p.alive && !deaths.has(p.pid)) deaths.set(p.pid, now());
    if (stopAt !== null) return;
    if (closedAt === null && pool.isClosed) closedAt = now();
    watchTier();
    for (const r of requests) {
      if (r.stream) r.stream.maxBuffered = Math.max(r.stream.maxBuffered, r.stream.rs.buffered);
      if (r.settledAt !== null || r.abortedAt !== null || r.cancelAt !== null || r.overdue) continue;
      const b = bound(r);
      if (now() > b) {
        fail(`overdue: at ${now()} request #${r.n} has no answer, due by ${b}: ${describeRequest(r)}`);
        r.overdue = true;
      }
    }
    checkInflight();
  };

  /**
   * Each worker's in-flight count (pool.workers()) is the number of request frames the model has
   * out on its process — abandoned ones (answered already, still running) included.
   */
  let inflightReported = false;
  const checkInflight = () => {
    if (inflightReported) return;
    const alive = new Set(sim.alive().map((p) => p.pid));
    for (const w of pool.workers()) {
      if (w.pid === null || w.pid === undefined || !alive.has(w.pid)) continue;
      const open = openOn(w.pid);
      if (w.inflight !== open.length) {
        inflightReported = true;
        fail(`(c) at ${now()} ${w.id} (pid ${w.pid}) shows inflight ${w.inflight}, but ${open.length} request frame(s) are out on its process by the model (${open.map((r) => `#${r.n}`).join(', ') || 'none'})`);
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
    if (r.cancelAt !== null) fail(`(d) #${r.n} reached pid ${frame.pid} at ${frame.at} after its reader ${r.cancelHow === 'break' ? 'broke out' : 'aborted'} at ${r.cancelAt}: ${describeRequest(r)}`);
    if (attempt === 1 && r.kind === 'stream' && (r.arrivals[0]!.gen?.produced.length ?? 0) > 0) {
      fail(`(s2) stream #${r.n} was started over on pid ${frame.pid} at ${frame.at} after its first attempt delivered ${r.arrivals[0]!.gen!.produced.length} chunk(s): ${describeRequest(r)}`);
    }
    if (r.settledAt !== null) fail(`(d) #${r.n} reached pid ${frame.pid} at ${frame.at} after its caller had an answer: ${describeRequest(r)}`);
    if (attempt === 0 && frame.at > r.executeAt + r.C) fail(`(d) #${r.n} reached a process at ${frame.at}, after its checkout deadline ${r.executeAt + r.C}: ${describeRequest(r)}`);
    if (attempt === 1) {
      const first = r.arrivals[0]!;
      const died = deathOf(first.pid);
      if (!r.idempotent) fail(`#${r.n} (not idempotent) reached a process twice (pid ${first.pid}, then pid ${frame.pid}): ${describeRequest(r)}`);
      // Sent while the first process was alive: tolerated only if the pool's own SIGKILL of it
      // settled (and so retried) just before it killed; judged once every death is classified
      // (see DRAINS_ARE_NOT_CRASHES, REPLACEMENTS_ARE_NOT_CRASHES).
      else if (died === undefined) sentBeforeDeath.push({ r, pid: first.pid, at: frame.at });
      else if (frame.at > died + r.C) fail(`(d) the retry of #${r.n} reached a process at ${frame.at}, after its checkout deadline ${died + r.C}: ${describeRequest(r)}`);
    }
    // The deadline the frame carries (absolute, on the pool's clock), where the pool sends one:
    // still ahead when the frame arrives, and no later than the request's own timeout allows.
    const deadline = (frame as { deadline?: number | null }).deadline;
    if (typeof deadline === 'number' && !(deadline > frame.at && deadline <= frame.at + r.T)) {
      fail(`(d) #${r.n} reached pid ${frame.pid} at ${frame.at} carrying deadline ${deadline}; it must lie in (${frame.at}, ${frame.at + r.T}]: ${describeRequest(r)}`);
    }
    if (attempt >= 2) fail(`#${r.n} reached a process a third time (pid ${frame.pid}): ${describeRequest(r)}`);
    const arrival: Arrival = { pid: frame.pid, workerId: frame.workerId, at: frame.at, seq: ++seq, id: frame.id };
    if (isGen(frame.cmd)) {
      arrival.gen = { frameId: frame.id, window: r.window, handledAt: null, startedAt: null, produced: [], returnedAt: null, raisedAt: null, crashedAt: null, closedAt: null };
    }
    r.arrivals.push(arrival);
  });

  const pool = sim.createPool(poolOptions(config));
  const budget = budgetOf(config);
  // The one look inside the pool: the worker tier's own `escalation` event, which says when a
  // drain begins (the pool forwards only the root's). pool.actor is the root actor, public "for
  // inspection and tooling"; its child `workers` is the worker tier of docs/ARCHITECTURE.md, a
  // new actor after each tier restart. Without it the drains could only be bounded from after.
  let tier: AnyActorRef | undefined;
  const watchTier = () => {
    const current = (pool.actor.getSnapshot().children as Record<string, AnyActorRef | undefined>).workers;
    if (!current || current === tier) return;
    tier = current;
    current.on('escalation', (e: { error?: { code?: string } }) => supervision.push({ type: 'tier_escalated', at: now(), seq: ++seq, code: e.error?.code }));
  };
  watchTier();
  if (!tier) violations.push('(model) the worker tier (pool.actor child "workers") is not there to watch');
  pool.on('tier_restarted', (e: { restarts: number; error: Error & { code?: string } }) => {
    supervision.push({ type: 'tier_restarted', at: now(), seq: ++seq, code: e.error?.code, restarts: e.restarts });
    watchTier();
  });
  pool.on('escalation', (e: { supervisorId: string; error: Error & { code?: string } }) =>
    supervision.push({ type: 'escalation', at: now(), seq: ++seq, code: e.error?.code, supervisorId: e.supervisorId }),
  );
  let nextN = 1;

  type ReqOptions = { session?: string | null; idempotent?: boolean; timeout?: number; checkoutTimeout?: number; abortable?: boolean; probe?: boolean };
  const newReq = (cmd: Cmd | GenCmd, kind: Req['kind'], L: number, opts: ReqOptions): { r: Req; options: Record<string, unknown>; settle: (outcome: Outcome) => void } => {
    const r: Req = {
      n: nextN++,
      cmd,
      kind,
      conc: config.workerConcurrency,
      stream: null,
      window: 0,
      cancelAt: null,
      cancelHow: null,
      session: opts.session ?? null,
      idempotent: opts.idempotent ?? false,
      T: opts.timeout ?? config.requestTimeout,
      C: opts.checkoutTimeout ?? config.checkoutTimeout,
      L,
      executeAt: now(),
      afterStop: stopAt !== null,
      controller: opts.abortable ? new AbortController() : null,
      abortablePick: opts.abortable ?? false,
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
    return { r, options, settle };
  };

  const exec = (cmd: Cmd | 'gen', opts: ReqOptions = {}) => {
    const { r, options, settle } = newReq(cmd, 'exec', cmd === 'gen' ? EXEC_GEN_LATENCY : LATENCY[cmd], opts);
    pool.execute(cmd, cmd === 'gen' ? { n: r.n, chunks: EXEC_GEN_CHUNKS } : { n: r.n }, options).then(
      (value) => settle({ ok: true, value }),
      (error) => settle({ ok: false, error }),
    );
    return r;
  };

  const sleep = (ms: number) => new Promise<void>((resolve) => sim.clock.setTimeout(resolve, ms));
  const stream = (step: StreamStep) => {
    const wantsSignal = step.abortable || (step.reader.kind === 'read' && step.reader.abortAfter !== null);
    // A stream's deadline is for the whole stream: it may end it at any point (L = Infinity).
    const { r, options, settle } = newReq(step.cmd, 'stream', Infinity, { ...step, abortable: wantsSignal });
    // Only the abort steps pick it if it is `abortable`; a reader's own abort uses the same signal.
    r.abortablePick = step.abortable;
    r.window = step.window;
    options.window = step.window;
    const rs = pool.stream(step.cmd, { n: r.n, chunks: step.chunks }, options);
    const x: StreamRecord = { rs, window: step.window, chunks: step.chunks, reader: step.reader, read: [], readAt: [], end: null, after: [], maxBuffered: 0 };
    r.stream = x;
    rs.result.then(
      (value) => settle({ ok: true, value }),
      (error) => settle({ ok: false, error }),
    );
    // Never awaited: a reader that never ends is reported by checkStream, not a hung test.
    void readStream(streamEnv, x, {
      controller: r.controller,
      sleep,
      onCancel: (how) => {
        if (r.cancelAt !== null) return;
        r.cancelAt = now();
        r.cancelHow = how;
      },
    });
    return r;
  };

  const stop = () => {
    if (stopAt !== null) return;
    stopAt = now();
    stopSeq = ++seq;
    stopPromise = pool.stop();
    stopPromise.then(
      () => (stopped = true),
      (err) => ((stopped = true), (stopError = err)),
    );
  };

  const live = () => sim.alive().sort((a, b) => a.pid - b.pid);

  /** Requests with a frame out on `pid` now (see `frameOpen`). */
  const openOn = (pid: number): Req[] => requests.filter((r) => r.arrivals.some((a) => a.pid === pid && frameOpen(r, a, now())));

  /** SIGKILL the pick-th live process of the target kind; false if there is none. */
  const killOne = (target: KillTarget, pick: number): boolean => {
    const candidates = live()
      .map((p) => ({ p, open: openOn(p.pid) }))
      .filter(({ open }) => target === 'any' || (open.length > 0) === (target === 'busy'));
    if (candidates.length === 0) return false;
    const { p, open } = candidates[pick % candidates.length]!;
    const shown = pool.workers().find((w) => w.id === p.workerId);
    const worker = shown && shown.pid === p.pid ? shown : null;
    // The model's frames against the pool's own count: they must agree, or the model is wrong
    // (or the handle lost track of a frame), and every attribution below would be too.
    if (worker && worker.inflight !== open.length) {
      fail(`(model) at ${now()} pid ${p.pid} (${p.workerId}) has ${open.length} request frame(s) out by the model (${open.map((r) => `#${r.n}`).join(', ') || 'none'}) but pool.workers() shows inflight ${worker.inflight}`);
    }
    kills.push({
      pid: p.pid,
      workerId: p.workerId,
      at: now(),
      seq: ++seq,
      open: open.map((r) => r.n),
      victims: open.filter((r) => r.settledAt === null).map((r) => r.n),
      state: worker?.state ?? null,
      overflow: worker?.overflow ?? null,
      late: stopAt !== null || pool.isClosed,
    });
    sim.kill(p.pid, 'SIGKILL');
    return true;
  };

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
        case 'kill':
          killOne(step.target, step.pick);
          break;
        case 'kills':
          for (let i = 0; i < step.count; i++) {
            killOne(step.target, i);
            await flush();
            observe();
            for (let j = 0; j < step.load; j++) exec(step.loadCmd);
            await flush();
            observe();
            if (step.gapMs > 0) await advance(step.gapMs);
          }
          break;
        case 'abort': {
          const open = requests.filter((r) => r.controller && r.abortablePick && r.abortedAt === null && r.cancelAt === null && r.settledAt === null);
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
        case 'stream':
          stream(step);
          break;
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
      // (a) once everything is answered, nothing is left running or waiting: every frame given
      // up on was cancelled or its process replaced, and stats() and workers() say so.
      const stats = pool.stats();
      for (const w of pool.workers()) {
        if (w.inflight === 0) continue;
        const open = w.pid === null || w.pid === undefined ? [] : openOn(w.pid);
        if (open.length === w.inflight && open.every((r) => leakTolerated(r, r.arrivals[r.arrivals.length - 1]!))) {
          leaked++;
          continue;
        }
        fail(`(a) after the drain ${w.id} (pid ${w.pid}, ${w.state}) still has ${w.inflight} request(s) in flight (by the model: ${open.map((r) => describeRequest(r)).join('; ') || 'none'})`);
      }
      if (stats.queueLength !== 0 || stats.busyWorkers !== leaked) fail(`(a) after the drain stats() shows queueLength ${stats.queueLength}, busyWorkers ${stats.busyWorkers}`);
      if (leaked > 0) tolerated.add('ABANDONED_SLOTS_ARE_RECLAIMED: a slot held for good after the drain');
      // (e) the pool still serves after whatever the schedule did to it (but a worker whose
      // slot is held for good may be out of service for good: see ABANDONED_SLOTS_ARE_RECLAIMED).
      const probe = exec('echo', { probe: true });
      await flush();
      observe();
      await advance(Math.max(config.checkoutTimeout, 100) + 50);
      probeTolerated = leaked > 0 && probe.outcome?.ok === false && probe.outcome.error.code === 'POOL_TIMEOUT';
      if (probeTolerated) tolerated.add('ABANDONED_SLOTS_ARE_RECLAIMED: the probe found no worker');
      if (closedAt === null && !probe.outcome?.ok && !probeTolerated) fail(`(e) after the drain a plain echo got ${describeOutcome(probe)}: ${describeRequest(probe)}`);
      if (closedAt !== null && (probe.outcome?.ok !== false || probe.outcome.error.code !== 'POOL_CLOSED')) fail(`(e) the pool closed at ${closedAt}, but the probe got ${describeOutcome(probe)}`);
    }
  } catch (err) {
    fail(`the run threw: ${(err as Error)?.stack ?? String(err)}`);
  }
  try {
    stop();
    // Let shutdownTimeout pass for workers that hold a command that never ends.
    for (let i = 0; i < 40 && !(stopped && sim.alive().length === 0); i++) await advance(250);
    // Readers still reading what was buffered, at their own pace.
    for (let i = 0; i < 40 && requests.some((r) => r.stream && !r.stream.end); i++) await advance(250);
    await flush();
  } catch (err) {
    fail(`stopping threw: ${(err as Error)?.stack ?? String(err)}`);
  }

  // ---- after stop(): the invariants -----------------------------------------------------------
  if (!stopped) fail(`(a) stop() did not resolve within 10 s of simulated time`);
  if (stopError) fail(`stop() rejected: ${String(stopError)}`);
  const alive = sim.alive();
  if (alive.length) fail(`(a) fake processes alive after stop(): ${alive.map((p) => `${p.workerId}/${p.pid}`).join(', ')}`);
  for (const w of pool.workers()) if (w.inflight !== 0) fail(`(a) after stop() ${w.id} still shows ${w.inflight} request(s) in flight`);
  for (const p of sim.processes()) {
    if (p.peakInflight > config.workerConcurrency) fail(`(c) pid ${p.pid} (${p.workerId}) had ${p.peakInflight} requests in flight at once (workerConcurrency ${config.workerConcurrency})`);
    // The generators' own count of what they produced on it is the process's.
    let produced = 0;
    for (const r of requests) for (const a of r.arrivals) if (a.pid === p.pid && a.gen) produced += a.gen.produced.length;
    if (produced !== p.chunksProduced) fail(`(s4) pid ${p.pid} (${p.workerId}) reports ${p.chunksProduced} chunks produced; its generators produced ${produced}`);
  }
  for (const e of endSessions) {
    if (!e.settled) fail(`(a) endSession called at ${e.at} never settled`);
    else if (!e.outcome!.ok) {
      const code = (e.outcome as { error: { code?: string } }).error.code;
      const okCode = code === 'SESSION_NOT_FOUND' || (code === 'POOL_CLOSED' && (stopAt !== null || (closedAt !== null && closedAt <= e.at)));
      if (!okCode) fail(`endSession called at ${e.at} rejected with ${code}: ${(e.outcome as { error: Error }).error.message}`);
    }
  }

  // ---- every death, classified (see `Death`) ---------------------------------------------------
  const killOf = new Map(kills.map((k) => [k.pid, k]));
  const classified: Death[] = [];
  for (const p of sim.processes()) {
    if (p.alive) continue;
    const at = deaths.get(p.pid);
    if (at === undefined) {
      fail(`(model) pid ${p.pid} (${p.workerId}) is dead but its death was never stamped`);
      continue;
    }
    const death = { pid: p.pid, workerId: p.workerId, at };
    const kill = killOf.get(p.pid);
    if (kill) {
      if (kill.at !== at) fail(`(model) pid ${p.pid} was SIGKILLed at ${kill.at} but seen dead at ${at}`);
      classified.push({ ...death, kind: kill.open.length > 0 ? 'request' : 'idle', how: 'kill', requests: kill.open, ties: [] });
      continue;
    }
    // Every request frame out on it when it died: with workerConcurrency > 1 there may be several.
    // And those due to answer at that very instant (which came first is the order of the timers).
    const open = openAt(requests, p.pid, at).map((r) => r.n);
    const ties = requests.filter((r) => !open.includes(r.n) && r.arrivals.some((a) => a.pid === p.pid && frameOpen(r, a, at - 0.5))).map((r) => r.n);
    // Its crashers (the first of them crashed it; with workerConcurrency > 1 others may have been due at that instant too) first.
    const withCrashers = (crashers: Req[]) => [...crashers.map((r) => r.n), ...[...open, ...ties].filter((n) => !crashers.some((r) => r.n === n))];
    if (p.exit?.code === 1 && p.exit.signal === null) {
      // sim.crash(1): the handler of the request whose frame was out, when its latency ran out.
      const crashers = requests.filter((r) => CRASHERS.has(r.cmd) && r.arrivals.some((a) => a.pid === p.pid && a.at + r.L === at && !interruptedBefore(r, a, at)));
      if (crashers.length === 0) fail(`unexplained death: pid ${p.pid} (${p.workerId}) exited with code 1 at ${at}, but no crashing handler was due on it then`);
      classified.push({ ...death, kind: 'request', how: 'crash', requests: withCrashers(crashers), ties });
      continue;
    }
    if (p.exit?.code === STREAM_CRASH_CODE && p.exit.signal === null) {
      // A generator's sim.crash(): its own ledger says when.
      const crashers = requests.filter((r) => r.arrivals.some((a) => a.pid === p.pid && a.gen?.crashedAt === at));
      if (crashers.length === 0) fail(`unexplained death: pid ${p.pid} (${p.workerId}) exited with code ${STREAM_CRASH_CODE} at ${at}, but no generator crashed it then`);
      classified.push({ ...death, kind: 'request', how: 'crash', requests: withCrashers(crashers), ties });
      continue;
    }
    // The pool's own: SIGTERM answered (exit 0: recycled, retired, stopped, drained) or its SIGKILL (disposal).
    const sigterm = p.exit?.code === 0 && p.exit.signal === null;
    if (!sigterm && p.exit?.signal !== 'SIGKILL') fail(`unexplained death: pid ${p.pid} (${p.workerId}) ended with ${JSON.stringify(p.exit)} at ${at}`);
    if (p.exit?.signal === 'SIGKILL' && !p.signals.includes('SIGKILL')) fail(`unexplained death: pid ${p.pid} (${p.workerId}) reports SIGKILL but none was delivered`);
    // A replacement in place because a request given up on did not let go of its process: its
    // deadline with workerConcurrency 1 (at once), or interruptGrace after the give-up.
    const replaced =
      p.exit?.signal === 'SIGKILL' &&
      requests.some((r) => {
        const g = giveUpAt(r);
        if (g === null) return false;
        return r.arrivals.some((a) => a.pid === p.pid && frameOpen(r, a, at) && (at === g + config.interruptGraceMs || (r.conc === 1 && at === g && codeOf(r) === 'REQUEST_TIMEOUT')));
      });
    classified.push({ ...death, kind: 'pool', how: replaced ? 'replaced' : 'pool', requests: [...open, ...ties], ties });
  }
  const deathByPid = new Map(classified.map((d) => [d.pid, d]));
  for (const { r, pid, at } of sentBeforeDeath) {
    const d = deathByPid.get(pid);
    // The pool's own SIGKILL of that process at that very instant, which settled (and so retried) before it killed.
    const atOnce = d?.kind === 'pool' && d.at === at;
    const lenient = atOnce && (d.how === 'replaced' ? !REPLACEMENTS_ARE_NOT_CRASHES : !DRAINS_ARE_NOT_CRASHES);
    if (lenient && d.how === 'replaced') tolerated.add('REPLACEMENTS_ARE_NOT_CRASHES: retry sent before the replaced process died');
    if (!lenient) {
      fail(`(d) #${r.n} was sent again at ${at} while its first attempt on pid ${pid} was alive${atOnce ? ` (the pool ${d.how === 'replaced' ? 'replaced' : 'stopped'} that process at that instant, after it had retried the request)` : ''}: ${describeRequest(r)}`);
    }
  }
  const drains = drainsOf(supervision);

  // (b) a request in flight when its process died under it (its own crash, or a SIGKILL while it
  // ran) is answered by that death: WORKER_CRASHED then (POOL_CLOSED once stop() was called), or,
  // if idempotent and this was its first attempt, retried (what it then gets is for `judge`).
  // The same holds for what else was in flight on a process the pool replaced because a request
  // given up on did not let go of it.
  for (const d of classified) {
    if (d.kind !== 'request' && d.how !== 'replaced') continue;
    const victims = d.how === 'kill' ? killOf.get(d.pid)!.victims : d.requests;
    for (const n of victims) {
      const r = byN.get(n)!;
      if (r.settledAt === null || r.settledAt < d.at || d.ties.includes(n)) continue;
      // Given up on before (abandoned, still running: workerConcurrency > 1), or the one whose
      // give-up made the pool replace the process: answered already.
      const g = giveUpAt(r);
      if (g !== null && g <= d.at) continue;
      const attempt = r.arrivals.findIndex((a) => a.pid === d.pid);
      if (retriable(r) && attempt === 0) continue;
      const code = r.outcome!.ok ? 'ok' : r.outcome!.error.code;
      const allowed = code === 'WORKER_CRASHED' || (code === 'POOL_CLOSED' && stopAt !== null && stopAt <= d.at);
      if (!allowed || r.settledAt !== d.at) fail(`(b) pid ${d.pid} died under #${r.n} at ${d.at} (${d.how}), so it must get WORKER_CRASHED then; it got ${describeOutcome(r)} at ${r.settledAt}: ${describeRequest(r)}`);
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
    const problem = judge(r, { config, stopAt, deaths, kills, closedAt, death: (pid) => deathByPid.get(pid), drains, probeTolerated });
    if (problem) fail(`(b) #${r.n}: ${problem}: ${describeRequest(r)}`);
  }

  // (s1)-(s5) every stream, as its reader saw it (see checkStream).
  for (const r of requests) {
    if (!r.stream) continue;
    const problems = checkStream(r.stream, {
      n: r.n,
      chunksExpected: GEN[r.cmd as GenCmd].ends === 'never' ? Infinity : r.stream.chunks,
      concurrency: config.workerConcurrency,
      interruptGraceMs: config.interruptGraceMs,
      settledAt: r.settledAt,
      outcome: r.outcome,
      arrivals: r.arrivals,
      gaveUpAt: giveUpAt(r),
      cancelAt: r.cancelAt,
      deaths,
      stopAt,
      drainedBy: (pid, t) => {
        const d = deathByPid.get(pid);
        return d?.kind === 'pool' && drains.some((x) => x.at <= t && d.at >= x.at && d.at <= x.endAt);
      },
      processes: sim.processes(),
    });
    for (const problem of problems.violations) fail(`${problem}: ${describeRequest(r)}`);
    for (const t of problems.tolerated) tolerated.add(t);
  }

  const supervised = checkSupervision({ kills, events: supervision, deaths: classified, closedAt, stopAt, stopSeq, budget, config });
  for (const v of supervised.violations) fail(v);
  const cases = casesOf({ requests, deaths: classified, kills, events: supervision, closedAt, budget, drains, lowerBoundApplied: supervised.lowerBoundApplied, config, processes: sim.processes(), deathAt: deaths });

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
  for (const r of requests) {
    const poisonAfterReplacement = r.outcome && !r.outcome.ok && (r.outcome.error as { poison?: unknown }).poison === true && r.arrivals.some((a) => deathByPid.get(a.pid)?.how === 'replaced');
    if (poisonAfterReplacement) tolerated.add('REPLACEMENTS_ARE_NOT_CRASHES: poison after a replacement');
  }
  return { violations, requests, codes, processes: sim.processes(), deaths: classified, kills, supervision, closedAt, cases, tolerated };
}

/**
 * Whether a request's own timeout still holds while stop() lets running commands finish. Today
 * it does not (a command that outlives its timeout during stop() returns its result), and the
 * docs allow that ("the pool stopped under it: the result if it finished"). Set to true if the
 * lead decides that a caller never gets an answer later than its own deadline.
 */
export const DEADLINES_HOLD_DURING_STOP = false;

/**
 * The drain of an escalated tier and the requests in flight on it. The tier stops its workers
 * one by one (SIGTERM, then SIGKILL after shutdownTimeout); a request still running when its
 * process is SIGKILLed may get WORKER_CRASHED (docs/OPTIONS.md "Escalation"). Strict (true, the
 * default): the drain's SIGKILL is the pool's own doing, not the request's — it never makes a
 * request `poison` (docs/OPTIONS.md: poison is "the same idempotent request kills a second
 * worker"), and a request sent to a worker after that worker's tier escalated was a waiting
 * caller, to be served by the new tier, so the drain must not fail it; and (d) holds for it
 * too: its retry is sent only once its first process is dead. false: today's behaviour, in
 * which all three happen (the drain's SIGKILL settles the process's requests, and so retries
 * an idempotent one, before it is sent; see the regression tests). A decision for the lead.
 */
export const DRAINS_ARE_NOT_CRASHES = true;

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

/**
 * A frame the pool gave up on (timeout or abort, workerConcurrency > 1) whose handler never
 * answers (`stuck`; or a generator whose cancel came before it started: see
 * CANCEL_BEFORE_START_STOPS_THE_GENERATOR). Strict (true): its slot is reclaimed — the process is
 * replaced once it stops answering altogether, "if nothing in flight there is waited for any
 * more" (docs/OPTIONS.md, "Concurrency inside a worker"), whenever that becomes true. false
 * (today's behaviour, see test/fast/streams.regressions.test.ts): that is looked at once,
 * interruptGrace after the give-up; a process that answered another request meanwhile keeps the
 * dead frame in flight for good (the worker shows inflight > 0, is never health-checked or
 * recycled by age again, and a recycle it is due waits for it forever). Lenient here so that the
 * property guards everything else.
 */
export const ABANDONED_SLOTS_ARE_RECLAIMED = true;

/** Whether a frame still out after the drain is one of those ABANDONED_SLOTS_ARE_RECLAIMED = false tolerates. */
function leakTolerated(r: Req, a: Arrival): boolean {
  const g = giveUpAt(r);
  if (ABANDONED_SLOTS_ARE_RECLAIMED || g === null || r.conc === 1) return false;
  if (a.gen) return !CANCEL_BEFORE_START_STOPS_THE_GENERATOR && cancelledBeforeStart(a.gen, g);
  return r.cmd === 'stuck';
}

/**
 * With workerConcurrency > 1 the pool replaces a process that does not let go of a request it
 * gave up on (interruptGrace after the timeout or abort, if no frame came since or nothing else
 * there is waited for), and whatever else was in flight on it is lost with it (WORKER_CRASHED;
 * an idempotent one retried). That replacement is the pool's own doing, like the drain of an
 * escalated tier. Strict (true): it never makes the retried request `poison` ("the same
 * idempotent request kills a second worker": it killed none), and the retry is sent only once
 * the replaced process is dead ((d): only after the first process died under it). false
 * (today's behaviour, see test/fast/streams.regressions.test.ts): the process actor's disposal
 * settles (and so retries) before it SIGKILLs, so the retry reaches another process while the
 * first still runs the request, and the retry's own death later makes it poison. A decision
 * for the lead; lenient here so that the property guards everything else meanwhile.
 */
export const REPLACEMENTS_ARE_NOT_CRASHES = true;

interface Facts {
  config: Config;
  stopAt: number | null;
  deaths: Map<number, number>;
  kills: Array<{ pid: number; at: number }>;
  /** When the pool closed on its own (root escalation), if it did. */
  closedAt: number | null;
  /** How a pid died (classified), if it did. */
  death: (pid: number) => Death | undefined;
  /** The drains of escalated tiers. */
  drains: Drain[];
  /** The probe's POOL_TIMEOUT is a worker out of service for good (see ABANDONED_SLOTS_ARE_RECLAIMED). */
  probeTolerated: boolean;
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
  const deathOf = (pid: number) => f.deaths.get(pid);
  // The last attempt never reached a process: never sent, or an idempotent request whose only
  // arrival died under it (its retry waited and did not get a worker).
  const firstDied = r.arrivals.length === 1 ? deathOf(r.arrivals[0]!.pid) : undefined;
  const retried = retriable(r) && r.arrivals.length === 1 && firstDied !== undefined && firstDied <= at && !deathAnsweredIt(r, firstDied, at, f);
  const unsent = r.arrivals.length === 0 || retried;
  const waitStart = r.arrivals.length === 0 ? r.executeAt : firstDied!;

  if (r.afterStop) return !outcome.ok && outcome.error.code === 'POOL_CLOSED' ? null : 'execute() after stop() must reject with POOL_CLOSED';
  if (r.abortedAt !== null) {
    // Aborted while it had no answer: the answer is ABORTED, at once.
    if (outcome.ok || outcome.error.code !== 'ABORTED') return `aborted at ${r.abortedAt} while unanswered, so it must get ABORTED`;
    return at === r.abortedAt ? null : `ABORTED at ${at}, but the abort was at ${r.abortedAt}`;
  }
  if (r.cancelAt !== null) {
    // Its reader broke out of the loop or aborted the signal: ABORTED then, unless it had its
    // answer already (then judged as any other answer).
    const what = r.cancelHow === 'break' ? 'broke out of the loop' : 'aborted its signal';
    if (!outcome.ok && outcome.error.code === 'ABORTED') return at === r.cancelAt ? null : `ABORTED at ${at}, but its reader ${what} at ${r.cancelAt}`;
    if (at > r.cancelAt) return `its reader ${what} at ${r.cancelAt} while it had no answer, so it must get ABORTED then`;
  }
  if (r.probe && f.closedAt !== null) return !outcome.ok && outcome.error.code === 'POOL_CLOSED' ? null : `the pool closed at ${f.closedAt}: the probe must get POOL_CLOSED`;
  if (r.probe && !outcome.ok && !f.probeTolerated) return 'the probe after the drain must succeed';
  if (r.probe && !outcome.ok) return null;
  if (outcome.ok && isGen(r.cmd)) return judgeGenerator(r, f);
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
      if (isGen(r.cmd)) return judgeGenerator(r, f);
      if (r.cmd !== 'raise') return 'PYTHON_ERROR for a command that does not raise';
      if (!last || at !== last.at) return 'PYTHON_ERROR not at the arrival of the raising command';
      return null;
    case 'REQUEST_TIMEOUT':
      if (at < r.executeAt + r.T) return `REQUEST_TIMEOUT at ${at}, before its timeout of ${r.T} ms could have passed`;
      if (unsent) return null; // a deadline that passed before it ran (allowed: see the report)
      if (r.L < r.T) return `REQUEST_TIMEOUT, but its handler answers in ${r.L} ms, within its timeout of ${r.T} ms`;
      if (at > last!.at + r.T) return `REQUEST_TIMEOUT at ${at}, later than ${r.T} ms after it reached the process at ${last!.at}`;
      if (last!.gen) {
        const g = last!.gen;
        const ended = g.returnedAt ?? g.raisedAt ?? g.crashedAt;
        if (ended !== null && ended < at) return `REQUEST_TIMEOUT at ${at}, but its generator had ended at ${ended}`;
      }
      return null;
    case 'WORKER_CRASHED':
      if (!unsent) {
        const died = deathOf(last!.pid);
        if (died === undefined) return `WORKER_CRASHED, but pid ${last!.pid} that ran it is alive`;
        if (died !== at) return `WORKER_CRASHED at ${at}, but pid ${last!.pid} died at ${died}`;
        const how = f.death(last!.pid);
        // Under it: its own crash, or the test's SIGKILL while its frame was out. Or the pool's
        // own stop of the process in the drain of an escalated tier ("stopped by its supervisor").
        const underIt = (a: { pid: number }) => {
          const d = f.death(a.pid);
          return d?.kind === 'request' && d.requests.includes(r.n);
        };
        // The drain it was caught in: its process died in it, with its frame out.
        const drain = how?.kind === 'pool' && how.requests.includes(r.n) ? f.drains.find((d) => died >= d.at && died <= d.endAt) : undefined;
        // Or the pool's replacement of a process that did not let go of another request it gave
        // up on (workerConcurrency > 1: what else ran there is lost with it).
        const replacedUnderIt = how?.how === 'replaced' && how.requests.includes(r.n);
        if (!underIt(last!) && !drain && !replacedUnderIt) {
          return how?.kind === 'idle'
            ? `WORKER_CRASHED, but by the model no request frame was out on pid ${last!.pid} when the test killed it`
            : `WORKER_CRASHED, but nothing killed pid ${last!.pid} under it (${how ? `${how.kind} death` : 'no death known'}${how?.kind === 'pool' ? ', and no tier was draining' : ''})`;
        }
        // (d) in flight on the drained tier means: sent before the tier escalated. One sent to
        // the escalated tier afterwards was a waiting request, to be served by the new tier.
        if (DRAINS_ARE_NOT_CRASHES && !underIt(last!) && drain && last!.seq > drain.seq) {
          return `(d) WORKER_CRASHED: it was sent to pid ${last!.pid} at ${last!.at}, after that worker's tier escalated at ${drain.at}, and the drain stopped it under the request at ${died}`;
        }
        // (b) poison: true exactly when it is the retry of an idempotent request and both of its
        // attempts died under it (its own crash or a SIGKILL while it ran), not by a drain.
        const poison = (outcome.error as { poison?: unknown }).poison === true;
        const poisonous = r.arrivals.length === 2 && (DRAINS_ARE_NOT_CRASHES ? r.arrivals.every(underIt) : true);
        // Lenient reading only (today: poison, unless that worker's tier was draining): one of
        // its processes was replaced by the pool with it in flight.
        const replacedWithIt = (a: { pid: number }) => {
          const d = f.death(a.pid);
          return d?.how === 'replaced' && d.requests.includes(r.n);
        };
        const either = !REPLACEMENTS_ARE_NOT_CRASHES && r.arrivals.length === 2 && r.arrivals.every((a) => underIt(a) || replacedWithIt(a));
        if (poison !== poisonous && !either) {
          const story = r.arrivals.map((a) => `pid ${a.pid}: ${f.death(a.pid)?.kind ?? 'alive'} death`).join(', ');
          return `WORKER_CRASHED with poison ${poison}, but it was attempt ${r.arrivals.length} of ${r.idempotent ? 'an idempotent' : 'a non-idempotent'} request (${story})`;
        }
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
      if (stoppedFirst) return null;
      if (f.closedAt !== null && r.executeAt >= f.closedAt) return at === r.executeAt ? null : `POOL_CLOSED at ${at} for a request made on the closed pool at ${r.executeAt}: not at once`;
      return f.closedAt !== null
        ? `(e) POOL_CLOSED, but it was made before the pool closed at ${f.closedAt}: it must get the escalation (ESCALATED)`
        : '(e) POOL_CLOSED, but stop() was not called and the root never escalated: the pool closed on its own';
    case 'ESCALATED':
      // (e) the root gave up: whatever still waited (or ran) is answered with the escalation, at once.
      if (f.closedAt === null) return '(e) ESCALATED, but the pool never closed';
      if (r.executeAt > f.closedAt || at !== f.closedAt) return `(e) ESCALATED at ${at}, but the pool closed at ${f.closedAt}`;
      return null;
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
 * The answer of a generator command that came from its generator (ok or PYTHON_ERROR): exactly
 * what its last attempt's ledger says it ended with, when it did.
 *  - execute() of `gen`: the list of its EXEC_GEN_CHUNKS chunks, when the reply left;
 *  - a stream of `gen` / `gen_burst`: {n, total, pid} of the process it last reached, when the
 *    generator returned, not after its deadline (but while stop() let it finish: see
 *    DEADLINES_HOLD_DURING_STOP);
 *  - a stream of `gen_raise`: PYTHON_ERROR ValueError when the generator raised.
 */
function judgeGenerator(r: Req, f: Facts): string | null {
  const at = r.settledAt!;
  const outcome = r.outcome!;
  const last = r.arrivals[r.arrivals.length - 1];
  const g = last?.gen;
  if (!last || !g) return `${outcome.ok ? 'ok' : 'PYTHON_ERROR'} without ever reaching a process`;
  const deadlineBeforeStop = f.stopAt === null || last.at + r.T < f.stopAt;
  if (!outcome.ok) {
    if (GEN[r.cmd as GenCmd].ends !== 'raise') return `PYTHON_ERROR, but ${r.cmd} never raises`;
    if (g.raisedAt !== at) return `PYTHON_ERROR at ${at}, but its generator raised at ${g.raisedAt}`;
    if (!/ValueError/.test(outcome.error.message)) return `PYTHON_ERROR without the ValueError: ${outcome.error.message}`;
    return null;
  }
  if (GEN[r.cmd as GenCmd].ends !== 'return') return `${r.cmd} can never succeed`;
  if (g.returnedAt !== at) return `ok at ${at}, but its generator returned at ${g.returnedAt}`;
  if (at > last.at + r.T && (DEADLINES_HOLD_DURING_STOP || deadlineBeforeStop)) return `ok at ${at}, after its deadline ${last.at + r.T}`;
  if (r.kind === 'exec') {
    const want = Array.from({ length: EXEC_GEN_CHUNKS }, (_, i) => ({ n: r.n, i, pid: last.pid }));
    if (JSON.stringify(outcome.value) !== JSON.stringify(want)) return `execute() of ${r.cmd} gave ${JSON.stringify(outcome.value)}, not the list of its chunks ${JSON.stringify(want)}`;
    if (at !== last.at + r.L) return `ok at ${at}, but its reply left the process at ${last.at + r.L}`;
    return null;
  }
  const want = { n: r.n, total: r.stream!.chunks, pid: last.pid };
  if (JSON.stringify(outcome.value) !== JSON.stringify(want)) return `.result is ${JSON.stringify(outcome.value)}, not ${JSON.stringify(want)}`;
  return null;
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

// ---- fault attribution ----------------------------------------------------------------------

/**
 * When the handle's give-up on `r` (its abort, or its deadline) itself ended the frame `a` on its
 * process, if it did (null: it did not):
 *  - workerConcurrency 1, execute(): an abort is SIGINT, which every handler but `stuck` answers
 *    at once (KeyboardInterrupt); a deadline replaces the process (its death ends the frame);
 *  - workerConcurrency > 1, execute(): an abort or a deadline is a cancel frame, which only `hang`
 *    answers at once (Cancelled, as an asyncio task would); a handler with latency runs on and
 *    answers late (the answer dropped), `stuck` never answers;
 *  - a stream: always a cancel frame, and its generator's ledger says when it closed.
 */
function cutAt(r: Req, a: Arrival): number | null {
  if (r.kind === 'stream') return null;
  if (r.conc === 1) return r.abortedAt !== null && r.cmd !== 'stuck' && r.abortedAt >= a.at ? r.abortedAt : null;
  if (r.cmd !== 'hang') return null;
  if (r.abortedAt !== null && r.abortedAt >= a.at) return r.abortedAt;
  const timedOut = r.outcome !== null && !r.outcome.ok && r.outcome.error.code === 'REQUEST_TIMEOUT';
  if (timedOut && r.settledAt! >= a.at && r.arrivals[r.arrivals.length - 1] === a) return r.settledAt;
  return null;
}

/** Whether the give-up on `r` ended its frame `a` before time t (see cutAt). */
function interruptedBefore(r: Req, a: Arrival, t: number): boolean {
  const cut = cutAt(r, a);
  return cut !== null && cut < t;
}

/**
 * Whether the frame of `r` that arrived as `a` is still out on its (live) process at the instant
 * t, once the instant's timers have fired: its handler has not answered (a finite latency runs
 * out at a.at + L; a generator's own ledger says when it closed or crashed) and no give-up ended
 * it (see cutAt). A frame whose caller already has an answer (timed out while its worker stops,
 * abandoned among others with workerConcurrency > 1, aborted while `stuck`) is still out: the
 * handle keeps it in flight until the process answers or dies, and so does this.
 */
export function frameOpen(r: Req, a: Arrival, t: number): boolean {
  if (a.at > t) return false;
  const cut = cutAt(r, a);
  if (cut !== null && cut <= t) return false;
  if (a.gen) {
    const end = ledgerEnd(a.gen);
    return end === null || end > t;
  }
  return !(Number.isFinite(r.L) && t >= a.at + r.L);
}

function openAt(requests: Req[], pid: number, t: number): Req[] {
  return requests.filter((r) => r.arrivals.some((a) => a.pid === pid && frameOpen(r, a, t)));
}

type Budget = ReturnType<typeof budgetOf>;

/** A drain: from the worker tier's escalation to the root's answer (tier_restarted or escalation; none: stop() ended it). */
export interface Drain {
  at: number;
  seq: number;
  endAt: number;
  endSeq: number;
}

/** The drains of a run, from its supervision events. */
export function drainsOf(events: SupervisionEvent[]): Drain[] {
  const drains: Drain[] = [];
  for (const [i, e] of events.entries()) {
    if (e.type !== 'tier_escalated') continue;
    const end = events.slice(i + 1).find((x) => x.type !== 'tier_escalated');
    drains.push({ at: e.at, seq: e.seq, endAt: end?.at ?? Infinity, endSeq: end?.seq ?? Infinity });
  }
  return drains;
}

/**
 * The supervision invariants, from the test's kills (each stamped with its order `seq` among
 * kills, arrivals and events) and the supervision events (see `SupervisionEvent`):
 *
 *  (a) the crash barrier: with no idle death there is no tier escalation, no tier restart, no
 *      root escalation, no close — however many deaths under requests (or replacements by the
 *      pool itself) there were.
 *  (c) upper bound, what the tier counts. The tier escalates on the (maxRestarts+1)-th counted
 *      exit within maxSeconds, and a restarted tier starts from zero. The only exits that can
 *      count in these schedules are idle deaths: there are no protocol violations, failing
 *      pings or failing starts but the test's own SIGKILLs. So each tier escalation must be
 *      preceded by at least maxRestarts+1 idle kills after the tier started (the previous
 *      tier_restarted) and at or after
 *        (the escalation's time) - maxSeconds - shutdownTimeout,
 *      where shutdownTimeout bounds how long an exit can wait in the supervisor's mailbox (while
 *      it stops one child). Sound: every idle kill is taken as if it counted (also those of
 *      overflow workers, of stopping or recycling workers, which do not), the window is closed
 *      at both ends, and no kill serves two escalations. It implies the brief's bound:
 *      tier restarts <= floor(idle deaths / (maxRestarts+1)), and the same within any window.
 *      Each tier escalation is answered by the root (tier_restarted, or its own escalation)
 *      within (poolSize + maxOverflow) × shutdownTimeout — the tier stops its children one by
 *      one, each within shutdownTimeout — unless stop() comes first; and nothing else is.
 *  (c') lower bound, idle deaths do count: maxRestarts+1 idle kills of permanent workers that
 *      pool.workers() showed `healthy` or `checking`, outside any drain, before stop(), within
 *      less than maxSeconds of each other, must be followed by a tier escalation within
 *      shutdownTimeout of the last of them — unless stop() came first.
 *  (e) the root: the pool closes (an `escalation` event from supervisor 'pool', code ESCALATED,
 *      and the pool closed at that instant) only when at least restart.root.maxRestarts tier
 *      restarts happened within restart.root.maxSeconds before (window closed at both ends),
 *      and the root restarts no tier when restart.root.maxRestarts of them happened strictly
 *      within restart.root.maxSeconds before (it must give up instead). The root decides at
 *      the instant the drained tier ends, which is when it emits tier_restarted. Nothing of
 *      this happens after stop().
 */
export function checkSupervision(x: {
  kills: Kill[];
  events: SupervisionEvent[];
  deaths: Death[];
  closedAt: number | null;
  stopAt: number | null;
  stopSeq: number;
  budget: Budget;
  config: Config;
}): { violations: string[]; lowerBoundApplied: boolean } {
  const { kills, events, closedAt, budget, config } = x;
  const v: string[] = [];
  const mailboxSlack = config.shutdownTimeout;
  const drainMax = (config.poolSize + config.maxOverflow) * config.shutdownTimeout;
  const idle = kills.filter((k) => k.open.length === 0);
  const restarts = events.filter((e) => e.type === 'tier_restarted');
  const escalations = events.filter((e) => e.type === 'escalation');
  const show = (e: SupervisionEvent) => `${e.type} at ${e.at}`;
  const showKills = (ks: Kill[]) => ks.map((k) => `${k.workerId}/${k.pid}@${k.at}`).join(', ') || 'none';

  for (const e of events) if (e.seq > x.stopSeq && e.type !== 'tier_escalated') v.push(`(e) ${show(e)}, after stop()`);
  for (const e of events) if (e.type !== 'escalation' && e.code !== 'ESCALATED') v.push(`(c) ${show(e)} carries ${e.code}, not the tier's ESCALATED`);
  for (const e of escalations) if (e.supervisorId !== 'pool' || e.code !== 'ESCALATED') v.push(`(e) ${show(e)} from supervisor ${e.supervisorId} with ${e.code}: only the root escalates to the caller`);
  if (escalations.length > 1) v.push(`(e) ${escalations.length} escalation events`);
  const final = escalations[0];
  if (closedAt !== null && final?.at !== closedAt) v.push(`(e) the pool closed on its own at ${closedAt}, ${final ? `but the escalation came at ${final.at}` : 'without an escalation event'}`);
  if (final && closedAt !== final.at) v.push(`(e) ${show(final)}, but the pool ${closedAt === null ? 'did not close' : `closed at ${closedAt}`}`);

  // (a) the crash barrier.
  if (idle.length === 0 && (events.length > 0 || closedAt !== null)) {
    const under = x.deaths.filter((d) => d.kind === 'request').length;
    v.push(`(a) ${events.map(show).join(', ') || `closed at ${closedAt}`}, but no death was idle (${under} under requests, ${x.deaths.length - under} the pool's own): deaths under requests must not count against intensity`);
  }

  // (c) each tier escalation needs maxRestarts+1 idle kills of its own tier within its window,
  // and the root answers each, in turn, within the longest drain.
  let tierStart = -Infinity;
  let open: SupervisionEvent | null = null;
  for (const e of events) {
    if (e.type === 'tier_escalated') {
      if (open) v.push(`(c) ${show(e)}, but the tier escalated at ${open.at} was not restarted yet`);
      const from = e.at - budget.periodMs - mailboxSlack;
      const used = idle.filter((k) => k.seq > tierStart && k.seq < e.seq && k.at >= from);
      if (used.length < budget.maxRestarts + 1) {
        v.push(`(c) ${show(e)}: only ${used.length} idle death(s) since the tier started and since ${from} (${showKills(used)}); exceeding restart.maxRestarts ${budget.maxRestarts} needs ${budget.maxRestarts + 1}`);
      }
      open = e;
      continue;
    }
    if (!open) v.push(`(c) ${show(e)}, but the tier had not escalated`);
    else if (e.at > open.at + drainMax) v.push(`(c) ${show(e)}: the tier escalated at ${open.at}, its drain took longer than ${drainMax} ms`);
    open = null;
    tierStart = e.seq;
  }
  if (open && (x.stopAt === null || x.stopAt > open.at + drainMax)) v.push(`(c) the tier escalated at ${open.at}, and the root never restarted it or gave up (stop() at ${x.stopAt})`);

  // (e) the root's budget.
  for (const [k, e] of restarts.entries()) {
    const recent = restarts.slice(0, k).filter((j) => j.at > e.at - budget.rootPeriodMs);
    if (recent.length >= budget.rootMaxRestarts) v.push(`(e) ${show(e)}, but ${recent.length} tier restarts came within restart.root.maxSeconds before it (${recent.map((j) => j.at).join(', ')}): restart.root.maxRestarts is ${budget.rootMaxRestarts}, the root must have given up`);
  }
  if (final) {
    const recent = restarts.filter((j) => j.seq < final.seq && j.at >= final.at - budget.rootPeriodMs);
    if (recent.length < budget.rootMaxRestarts) v.push(`(e) ${show(final)}: the pool closed after only ${recent.length} tier restart(s) within restart.root.maxSeconds; restart.root.maxRestarts is ${budget.rootMaxRestarts}`);
  }

  // (c') the lower bound.
  let lowerBoundApplied = false;
  const drains = drainsOf(events);
  const tierEscalations = events.filter((e) => e.type === 'tier_escalated');
  const counting = kills.filter(
    (k) =>
      k.open.length === 0 &&
      !k.late &&
      k.overflow === false &&
      (k.state === 'healthy' || k.state === 'checking') &&
      k.seq < x.stopSeq &&
      !drains.some((d) => k.seq > d.seq && k.seq < d.endSeq),
  );
  for (let i = 0; i + budget.maxRestarts < counting.length; i++) {
    const first = counting[i]!;
    const last = counting[i + budget.maxRestarts]!;
    if (last.at - first.at >= budget.periodMs - 1) continue;
    const due = last.at + mailboxSlack;
    if (x.stopAt !== null && x.stopAt <= due) continue;
    lowerBoundApplied = true;
    if (!tierEscalations.some((e) => e.seq > first.seq && e.at <= due)) {
      v.push(`(c') ${budget.maxRestarts + 1} idle kills of healthy permanent workers within ${last.at - first.at} ms (${showKills(counting.slice(i, i + budget.maxRestarts + 1))}), but the tier did not escalate by ${due}`);
    }
  }
  return { violations: v, lowerBoundApplied };
}

/** The stream and workerConcurrency cases of a schedule. */
function streamCases(x: Parameters<typeof casesOf>[0], cases: Set<Case>): void {
  const { requests, deaths, config } = x;
  for (const r of requests) {
    const code = codeOf(r);
    const last = r.arrivals[r.arrivals.length - 1];
    if (r.kind === 'exec' && r.cmd === 'gen' && code === 'ok') cases.add('execute() of a generator: the list of its chunks');
    const s = r.stream;
    if (!s) continue;
    if (code === 'ok' && s.end?.how === 'done') cases.add('stream completed');
    if (r.arrivals.some((a) => a.gen && a.gen.produced.length > a.gen.window)) cases.add('stream: worker paused for credit (window full)');
    const midway = (last?.gen?.produced.length ?? 0) > 0;
    if (code === 'ABORTED' && r.cancelHow === 'break' && midway) cases.add('stream broken by its reader mid-way');
    if (code === 'ABORTED' && r.cancelHow !== 'break' && midway) cases.add('stream aborted by its signal mid-way');
    if (code === 'REQUEST_TIMEOUT' && s.read.length > 0) cases.add('stream: chunks, then REQUEST_TIMEOUT');
    if (code === 'WORKER_CRASHED' && s.read.length > 0 && r.idempotent && r.arrivals.length === 1) cases.add('stream: chunks, then WORKER_CRASHED (not retried)');
    if (code === 'PYTHON_ERROR' && s.read.length > 0) cases.add('stream: chunks, then PYTHON_ERROR');
    if (code === 'REQUEST_TIMEOUT' && s.reader.kind === 'none' && (last?.gen?.produced.length ?? 0) >= s.window) cases.add('stream never read, ended by its deadline');
    if (r.arrivals.length === 2) cases.add('idempotent stream retried before any chunk');
  }
  if (config.workerConcurrency === 1) return;
  if (x.processes.some((p) => p.peakInflight >= 2)) cases.add('concurrency > 1: several requests in flight on one process');
  for (const d of deaths) {
    const failed = d.requests.filter((n) => {
      const r = requests.find((q) => q.n === n);
      return r?.settledAt === d.at || (r && r.arrivals.length === 2 && r.arrivals[0]!.pid === d.pid);
    });
    if (d.how !== 'pool' && failed.length >= 2) cases.add('concurrency > 1: one death failed several requests');
    if (d.how === 'replaced') cases.add('concurrency > 1: a deaf process replaced');
  }
  for (const r of requests) {
    const g = giveUpAt(r);
    const last = r.arrivals[r.arrivals.length - 1];
    if (g === null || !last) continue;
    const died = x.deathAt.get(last.pid);
    if ((died === undefined || died > g + config.interruptGraceMs) && requests.some((q) => q !== r && q.arrivals.some((a) => a.pid === last.pid && frameOpen(q, a, g)))) {
      cases.add('concurrency > 1: a request given up on, its process kept');
    }
  }
}

/** Which of CASES a schedule exercised. */
function casesOf(x: {
  requests: Req[];
  deaths: Death[];
  kills: Kill[];
  events: SupervisionEvent[];
  closedAt: number | null;
  budget: Budget;
  drains: Drain[];
  lowerBoundApplied: boolean;
  config: Config;
  processes: ReturnType<Simulation['processes']>;
  deathAt: Map<number, number>;
}): Set<Case> {
  const cases = new Set<Case>();
  streamCases(x, cases);
  const { requests, deaths, kills, events, budget } = x;
  if (deaths.some((d) => d.how === 'crash')) cases.add('crash under a request');
  if (kills.some((k) => k.open.length > 0)) cases.add('SIGKILL under a request');
  const idle = kills.filter((k) => k.open.length === 0);
  if (idle.length > 0) cases.add('idle SIGKILL');
  if (idle.some((k) => k.state === 'initializing' || k.state === 'restarting')) cases.add('SIGKILL during start');
  if (idle.some((k) => k.state === 'checking')) cases.add('SIGKILL during a health ping');
  if (idle.length === 0) {
    const under = deaths.filter((d) => d.kind === 'request' && !kills.some((k) => k.pid === d.pid && k.late)).map((d) => d.at).sort((a, b) => a - b);
    for (let i = 0; i + budget.maxRestarts < under.length; i++) {
      if (under[i + budget.maxRestarts]! - under[i]! < budget.periodMs) {
        cases.add('barrier: more request deaths in a window than the budget, none idle');
        break;
      }
    }
  }
  const restarts = events.filter((e) => e.type === 'tier_restarted');
  if (restarts.length > 0) cases.add('tier restarted');
  if (x.lowerBoundApplied) cases.add('intensity enforced (lower bound applied)');
  for (const e of restarts) {
    if (requests.some((r) => r.outcome?.ok && r.executeAt < e.at && r.arrivals.length > 0 && r.arrivals[r.arrivals.length - 1]!.at >= e.at)) {
      cases.add('request waited across a tier restart and was served');
    }
  }
  // A request sent before its tier escalated, still running on it when the drain stopped its process.
  const caught = x.drains.some((drain) =>
    deaths.some((d) => d.kind === 'pool' && d.at >= drain.at && d.at <= drain.endAt && requests.some((r) => r.arrivals.some((a) => a.pid === d.pid && a.seq < drain.seq && a.at + r.L >= drain.at))),
  );
  if (caught) cases.add('request in flight on a drained tier');
  if (x.closedAt !== null) cases.add('root escalated: pool closed');
  if (requests.some((r) => r.outcome && !r.outcome.ok && r.outcome.error.code === 'ESCALATED')) cases.add('request answered by the escalation (ESCALATED)');
  if (requests.some((r) => r.arrivals.length === 2)) cases.add('idempotent retry');
  if (requests.some((r) => r.outcome && !r.outcome.ok && (r.outcome.error as { poison?: unknown }).poison === true)) cases.add('poison');
  return cases;
}
