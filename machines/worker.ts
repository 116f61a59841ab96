/**
 * The worker machine: the life of one Python process, owned by one actor.
 *
 *   idle ─START→ live.initializing ─ready+ping→ live.healthy ⇄ live.busy
 *                                   live.* ─process died/condemned→ unhealthy ─START→ live.restarting → live.healthy
 *   live.* ─STOP→ live.stopping ─exit or shutdown timeout→ stopped
 *
 * Requests do not pass through here. Their owner, the worker's handle (src/local), sends each
 * frame straight to the process and settles each reply; it tells the machine only what the
 * machine decides on or shows: LOAD (busy or not, coalesced), HEALTH_CHECK, RECYCLE and
 * REPLACE. So a request costs no actor event, and the machine still decides every lifecycle
 * step and shows busy/healthy truthfully to inspection.
 *
 * The process is the invoked actor `pythonProcess` (src/channel; the simulation provides a
 * fake). Leaving `live` disposes that actor, and disposal SIGKILLs a process that is still
 * alive, so no path out of `live` can leak a process. All time comes from the actor system's
 * clock through `after` delays.
 *
 * The crash barrier: a process that dies under a request died of that request — bad input,
 * not a sick worker. The worker replaces it in place, after a `cooldown` that grows while the
 * slot keeps crashing (0 ms, then 25 ms doubling to 250 ms; forgotten after 1 s alive), and
 * never reports it: the supervisor's restart intensity counts only deaths that are the
 * worker's own. So no stream of poison requests can close a pool, and none can burn the CPU
 * the healthy workers need.
 *
 * After a death that is the worker's own — killed while idle, a protocol violation, a failed
 * health check — the worker does not come back on its own: it reports to its parent (a
 * supervisor) with the OTP child protocol and waits in `unhealthy` for START or STOP.
 * Replacements that are not the worker's fault — a crash under a request, recycling, a
 * request timeout, a handler deaf to its interrupt, errors in a row — happen in place and
 * never count against the supervisor's restart intensity.
 */
import { assign, enqueueActions, sendTo, setup, type ActorRefFrom, type CallbackActorLogic } from 'xstate';
import { crashed, pythonFailure, startFailed, type ExitInfo, type Failure } from './failure.js';
import type { ChildReport, ExitReason, ProcessActorInput, ProcessCommand, ProcessEvent } from './events.js';

export type ShutdownSpec = number | 'brutal_kill' | 'infinity';

export interface WorkerInput {
  workerId: string;
  /** ms from spawn until ready + ping must have succeeded. */
  startTimeout?: number;
  /** ms a health-check ping may take. */
  pingTimeout?: number;
  /** OTP shutdown: ms between SIGTERM and SIGKILL, or brutal_kill / infinity. */
  shutdown?: ShutdownSpec;
  /** The worker's request owner, handed to each process actor (opaque here). */
  link?: unknown;
}

/** Why the handle asks for a fresh process in place (never counted against restart intensity). */
export type ReplaceReason = 'timeout' | 'interrupt' | 'errors' | 'protocol';

export type WorkerEvent =
  | ProcessEvent
  | { type: 'START' }
  | { type: 'STOP' }
  /** The handle's load changed: some request is in flight (busy) or none is. */
  | { type: 'LOAD'; busy: boolean }
  | { type: 'HEALTH_CHECK' }
  | { type: 'RECYCLE' }
  | { type: 'REPLACE'; reason: ReplaceReason };

/** Fixed for the worker's life. */
export interface WorkerConfig {
  workerId: string;
  startTimeout: number;
  pingTimeout: number;
  shutdown: ShutdownSpec;
  link: unknown;
}

/** What is known about the current process and the worker's last failure. */
export interface WorkerInfo {
  python: string | null;
  codec: string | null;
  lastExit: ExitInfo | null;
  /** Why the worker last left `live` against its will, or failed to start. */
  failure: Failure | null;
  /** The OTP exit reason reported for that departure. */
  exitReason: ExitReason;
  /** The supervisor awaits CHILD.STARTED / CHILD.START_FAILED. */
  startPending: boolean;
  /** Why the last in-place replacement happened (shown to inspection). */
  replaced: ReplaceReason | 'recycle' | null;
}

/**
 * Few top-level keys on purpose: every assign copies the context with Object.assign, and on
 * V8 a copy of an object with ~20 keys falls into dictionary mode and costs ~10 µs.
 */
export interface WorkerContext {
  config: WorkerConfig;
  pid: number | null;
  /** Process incarnation: 1 for the first, +1 per (re)start. Also what `restarting` keys on. */
  generation: number;
  /** Crashes under requests in a row, each within a second of its process's start: sets the cooldown. */
  crashStreak: number;
  info: WorkerInfo;
}

/** spawn(2) errors that a retry meets again (no such file, not executable); EAGAIN, EMFILE, ENOMEM may pass. */
const PERMANENT_SPAWN_ERRORS = new Set(['ENOENT', 'EACCES', 'ENOTDIR', 'ENOEXEC', 'ELOOP', 'ENAMETOOLONG']);

const DEFAULTS = { startTimeout: 30_000, pingTimeout: 5_000, shutdown: 5_000 as ShutdownSpec };

/** The crash barrier's cooldown before the n-th crash in a row is replaced: 0, 25, 50, 100, 200, 250, 250 … ms. */
export function cooldownMs(streak: number): number {
  return streak <= 1 ? 0 : Math.min(250, 25 * 2 ** (streak - 2));
}

/** A process alive this long has shaken off its crash streak. */
export const STREAK_RESET_MS = 1_000;

/** setTimeout's ceiling; used where a spec says "wait forever" and a guard disables the timer. */
const FOREVER_MS = 2 ** 31 - 1;

function exitReason(exit: ExitInfo): ExitReason {
  if (exit.code === 0 && !exit.signal) return 'normal';
  // Someone else asked the process to terminate: OTP's `shutdown`, which a transient child may exit with.
  if (exit.signal === 'SIGTERM') return 'shutdown';
  return { abnormal: exit.signal ?? `exit code ${exit.code}` };
}

const NO_EXIT: ExitInfo = { code: null, signal: null, stderrTail: [] };

export const workerMachine = setup({
  types: {
    context: {} as WorkerContext,
    events: {} as WorkerEvent,
    input: {} as WorkerInput,
  },
  actors: {
    // Replaced through machine.provide(): src/channel for real processes, the simulation in tests.
    pythonProcess: undefined as unknown as CallbackActorLogic<ProcessCommand, ProcessActorInput>,
  },
  delays: {
    startTimeout: ({ context }) => context.config.startTimeout,
    pingTimeout: ({ context }) => context.config.pingTimeout,
    shutdownTimeout: ({ context }) => (typeof context.config.shutdown === 'number' ? context.config.shutdown : FOREVER_MS),
    cooldown: ({ context }) => cooldownMs(context.crashStreak),
    streakReset: STREAK_RESET_MS,
  },
  guards: {
    isRestart: ({ context }) => context.generation > 1,
    pongOk: ({ event }) => event.type === 'PROC.PONG' && event.ok,
    isBusy: ({ event }) => event.type === 'LOAD' && event.busy,
    isIdle: ({ event }) => event.type === 'LOAD' && !event.busy,
    isBrutalKill: ({ context }) => context.config.shutdown === 'brutal_kill',
    hasShutdownTimeout: ({ context }) => typeof context.config.shutdown === 'number',
    startPending: ({ context }) => context.info.startPending,
    /** A request was running when the process died: the request's fault, not the worker's. */
    diedUnderRequest: ({ event }) => event.type === 'PROC.EXIT' && event.inflight > 0,
    noCooldown: ({ context }) => cooldownMs(context.crashStreak) === 0,
  },
  actions: {
    beginGeneration: assign(({ context }) => ({ generation: context.generation + 1, pid: null })),
    countCrash: assign(({ context }) => ({ crashStreak: context.crashStreak + 1 })),
    forgetCrashes: assign({ crashStreak: 0 }),
    markStartPending: assign(({ context }) => ({ info: { ...context.info, startPending: true } })),
    /**
     * OTP's start returns once the child exists; slow initialisation (interpreter start, handler
     * imports, the first ping) continues after it, like a gen_server's handle_continue. So the
     * supervisor starts workers in parallel, and a failure during boot is an exit, not a start failure.
     */
    acknowledgeSpawn: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'PROC.SPAWNED') return;
      if (context.info.startPending) enqueue.sendParent({ type: 'CHILD.STARTED', id: context.config.workerId, pid: event.pid } satisfies ChildReport);
      enqueue.assign({ pid: event.pid, info: { ...context.info, python: event.python, startPending: false } });
    }),
    recordReady: assign(({ context, event }) => {
      if (event.type !== 'PROC.READY') return {};
      return { pid: event.pid, info: { ...context.info, python: event.python, codec: event.codec } };
    }),
    sendPing: sendTo('process', { type: 'PING' } satisfies ProcessCommand),
    /** Healthy: the failure is behind it. A process actor that never sent PROC.SPAWNED is acknowledged now. */
    markHealthy: enqueueActions(({ context, enqueue }) => {
      if (context.info.startPending) enqueue.sendParent({ type: 'CHILD.STARTED', id: context.config.workerId, pid: context.pid } satisfies ChildReport);
      enqueue.assign({ info: { ...context.info, startPending: false, failure: null } });
    }),
    noteReplaced: assign(({ context, event }) => ({
      info: { ...context.info, replaced: event.type === 'REPLACE' ? event.reason : 'recycle' },
    })),
    condemnForPing: condemn(({ context, event }) =>
      event.type === 'PROC.PONG' && !event.ok
        ? pythonFailure(event.error.type, event.error.message, event.error.traceback, 'ping')
        : crashed(context.config.workerId, context.pid, NO_EXIT, `did not answer a health check within ${context.config.pingTimeout} ms`),
    ),
    condemnForProtocol: condemn(({ event }) => (event.type === 'PROC.PROTOCOL_ERROR' ? event.failure : { code: 'PROTOCOL_ERROR', message: `unexpected ${event.type}` })),
    recordExit: assign(({ context, event }) => {
      if (event.type !== 'PROC.EXIT') return {};
      const failure = crashed(context.config.workerId, context.pid, event.exit);
      return { info: { ...context.info, lastExit: event.exit, exitReason: exitReason(event.exit), failure } };
    }),
    recordStartFailure: assign(({ context, event }) => {
      const { workerId } = context.config;
      const python = context.info.python ?? 'python';
      let failure: Failure;
      if (event.type === 'PROC.EXIT') {
        const how = event.exit.signal ? `killed by ${event.exit.signal} during start` : `exited with code ${event.exit.code} during start`;
        // The first line names what Python said last (e.g. `SyntaxError: invalid syntax`); the whole output follows.
        const said = lastLine(event.exit.stderrTail);
        failure = event.startFailure ?? startFailed(workerId, python, said ? `${how}: ${said}` : how, event.exit.stderrTail.join('\n'));
        return { info: { ...context.info, failure, lastExit: event.exit } };
      }
      if (event.type === 'PROC.PONG' && !event.ok) failure = startFailed(workerId, python, `start ping failed: ${event.error.type}: ${event.error.message}`);
      else if (event.type === 'PROC.PROTOCOL_ERROR') failure = startFailed(workerId, python, 'protocol error during start', '', event.failure);
      else failure = startFailed(workerId, python, `not ready within ${context.config.startTimeout} ms`);
      return { info: { ...context.info, failure } };
    }),
    reportStartFailed: enqueueActions(({ context, event, enqueue }) => {
      const { workerId } = context.config;
      const error = context.info.failure!;
      // Exited on its own before ready, or could not be spawned for good: the same start would fail the same way.
      const deterministic = event.type === 'PROC.EXIT' && (event.startFailure ? PERMANENT_SPAWN_ERRORS.has(event.spawnErrno ?? '') : event.exit.signal === null);
      if (context.info.startPending) enqueue.sendParent({ type: 'CHILD.START_FAILED', id: workerId, error, deterministic } satisfies ChildReport);
      else enqueue.sendParent({ type: 'CHILD.EXITED', id: workerId, reason: { abnormal: error.message }, error, deterministic } satisfies ChildReport);
      enqueue.assign({ info: { ...context.info, startPending: false } });
    }),
    reportExit: enqueueActions(({ context, enqueue }) => {
      const { workerId } = context.config;
      const report: ChildReport = { type: 'CHILD.EXITED', id: workerId, reason: context.info.exitReason, ...(context.info.failure ? { error: context.info.failure } : {}) };
      enqueue.sendParent(report);
    }),
    reportStopped: enqueueActions(({ context, enqueue }) => {
      enqueue.sendParent({ type: 'CHILD.STOPPED', id: context.config.workerId } satisfies ChildReport);
    }),
    signalTerm: enqueueActions(({ context, enqueue }) => {
      // brutal_kill skips the courtesy: leaving `live` disposes the process actor, which SIGKILLs.
      if (context.config.shutdown !== 'brutal_kill') enqueue.sendTo('process', { type: 'SIGNAL', signal: 'SIGTERM' } satisfies ProcessCommand);
    }),
  },
}).createMachine({
  id: 'worker',
  context: ({ input }) => ({
    config: {
      workerId: input.workerId,
      startTimeout: input.startTimeout ?? DEFAULTS.startTimeout,
      pingTimeout: input.pingTimeout ?? DEFAULTS.pingTimeout,
      shutdown: input.shutdown ?? DEFAULTS.shutdown,
      link: input.link ?? null,
    },
    pid: null,
    generation: 0,
    crashStreak: 0,
    info: { python: null, codec: null, lastExit: null, failure: null, exitReason: 'normal', startPending: false, replaced: null },
  }),
  initial: 'idle',
  states: {
    idle: {
      on: {
        START: { target: 'live', actions: 'markStartPending' },
        STOP: 'stopped',
      },
    },
    live: {
      entry: 'beginGeneration',
      invoke: {
        id: 'process',
        src: 'pythonProcess',
        input: ({ context }) => ({ workerId: context.config.workerId, generation: context.generation, link: context.config.link }),
      },
      initial: 'boot',
      after: {
        streakReset: { actions: 'forgetCrashes' },
      },
      on: {
        // Defaults for every running substate; the boot states override them as start failures.
        'PROC.EXIT': [
          { guard: 'diedUnderRequest', target: 'cooldown', actions: ['recordExit', 'countCrash'] },
          { target: 'unhealthy', actions: ['recordExit', 'reportExit'] },
        ],
        'PROC.PROTOCOL_ERROR': { target: 'unhealthy', actions: ['condemnForProtocol', 'reportExit'] },
        STOP: '.stopping',
        // The handle's reasons to start afresh in place: not the worker's failure, not counted.
        REPLACE: { target: 'live', reenter: true, actions: 'noteReplaced' },
      },
      states: {
        boot: {
          always: [{ guard: 'isRestart', target: 'restarting' }, { target: 'initializing' }],
        },
        initializing: bootState(),
        restarting: bootState(),
        healthy: {
          on: {
            LOAD: { guard: 'isBusy', target: 'busy' },
            HEALTH_CHECK: 'checking',
            RECYCLE: 'recycling',
          },
        },
        busy: {
          on: {
            LOAD: { guard: 'isIdle', target: 'healthy' },
            // The handle only asks these of a worker with nothing in flight; the LOAD that says so may still be on its way.
            HEALTH_CHECK: 'checking',
            RECYCLE: 'recycling',
          },
        },
        checking: {
          entry: 'sendPing',
          on: {
            'PROC.PONG': [
              { guard: 'pongOk', target: 'healthy' },
              { target: '#worker.unhealthy', actions: ['condemnForPing', 'reportExit'] },
            ],
          },
          after: {
            pingTimeout: { target: '#worker.unhealthy', actions: ['condemnForPing', 'reportExit'] },
          },
        },
        recycling: {
          // brutal_kill: no SIGTERM courtesy and nothing to wait for — leaving `live` SIGKILLs.
          always: { guard: 'isBrutalKill', target: '#worker.live', reenter: true },
          entry: ['signalTerm', 'noteReplaced'],
          on: {
            // A planned replacement: straight back into `live`, which starts the next generation.
            'PROC.EXIT': { target: '#worker.live', reenter: true },
          },
          after: {
            shutdownTimeout: { target: '#worker.live', reenter: true },
          },
        },
        stopping: {
          always: { guard: 'isBrutalKill', target: '#worker.stopped' },
          entry: 'signalTerm',
          on: {
            'PROC.EXIT': { target: '#worker.stopped' },
            'PROC.PROTOCOL_ERROR': {},
            'PROC.PONG': {},
            REPLACE: {},
            STOP: {},
          },
          after: {
            shutdownTimeout: { guard: 'hasShutdownTimeout', target: '#worker.stopped' },
          },
        },
      },
    },
    // The crash barrier: the process died under a request; a fresh one follows in place.
    cooldown: {
      // The first crash of a streak is replaced at once; a timer only once the slot keeps crashing.
      always: { guard: 'noCooldown', target: 'live' },
      after: {
        cooldown: 'live',
      },
      on: {
        STOP: 'stopped',
      },
    },
    unhealthy: {
      on: {
        START: { target: 'live', actions: 'markStartPending' },
        STOP: 'stopped',
      },
    },
    stopped: {
      entry: 'reportStopped',
      on: {
        START: { target: 'live', actions: 'markStartPending' },
        STOP: { actions: 'reportStopped' },
      },
    },
  },
});

function bootState() {
  return {
    initial: 'awaitReady' as const,
    on: {
      'PROC.EXIT': { target: '#worker.unhealthy', actions: ['recordStartFailure', 'reportStartFailed'] },
      'PROC.PROTOCOL_ERROR': { target: '#worker.unhealthy', actions: ['recordStartFailure', 'reportStartFailed'] },
    },
    after: {
      startTimeout: { target: '#worker.unhealthy', actions: ['recordStartFailure', 'reportStartFailed'] },
    },
    states: {
      awaitReady: {
        on: {
          'PROC.SPAWNED': { actions: 'acknowledgeSpawn' },
          'PROC.READY': { target: 'pinging', actions: 'recordReady' },
        },
      },
      pinging: {
        entry: 'sendPing',
        on: {
          'PROC.PONG': [
            { guard: 'pongOk', target: '#worker.live.healthy', actions: 'markHealthy' },
            { target: '#worker.unhealthy', actions: ['recordStartFailure', 'reportStartFailed'] },
          ],
        },
      },
    },
  } as const;
}

/** The last non-empty line of a process's stderr tail (a traceback ends with the exception). */
function lastLine(lines: string[]): string {
  for (let i = lines.length - 1; i >= 0; i--) if (lines[i]!.trim()) return lines[i]!.trim();
  return '';
}

/** A worker that is condemned leaves `live` (which kills its process) with an abnormal exit. */
function condemn(why: (args: { context: WorkerContext; event: WorkerEvent }) => Failure) {
  return assign<WorkerContext, WorkerEvent, undefined, WorkerEvent, never>((args) => {
    const failure = why(args);
    return { info: { ...args.context.info, failure, exitReason: { abnormal: failure.message } as ExitReason } };
  });
}

export type WorkerActor = ActorRefFrom<typeof workerMachine>;
