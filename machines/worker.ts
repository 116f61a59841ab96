/**
 * The worker machine: one Python process, owned by one actor.
 *
 *   idle ─START→ live.initializing ─ready+ping→ live.healthy ⇄ live.busy
 *                                   live.* ─process died/condemned→ unhealthy ─START→ live.restarting → live.healthy
 *   live.* ─STOP→ live.stopping ─exit or shutdown timeout→ stopped
 *
 * The process is the invoked actor `pythonProcess`: src/ provides the real one, the simulation
 * a fake. Leaving `live` disposes that actor, and disposal SIGKILLs a process that is still
 * alive, so no path out of `live` can leak a process. All time comes from the actor system's
 * clock through `after` delays.
 *
 * After a crash, a protocol violation or a failed health check the worker does not come back on
 * its own: it reports to its parent (a supervisor) with the OTP child protocol and waits in
 * `unhealthy` for START or STOP. Replacements that are not the worker's fault — recycling, a
 * request timeout, a handler deaf to its interrupt, errors in a row — happen in place
 * (`live` is re-entered) and never count against the supervisor's restart intensity.
 */
import { assign, enqueueActions, sendTo, setup, type ActorRefFrom, type AnyActorRef, type CallbackActorLogic } from 'xstate';
import {
  AbortError,
  ProtocolError,
  PythonError,
  RequestTimeoutError,
  WorkerCrashedError,
  WorkerStartError,
  type ExitInfo,
  type PyvisorError,
} from '../src/errors.js';
import { processChannels, type ChildReport, type ExitReason, type ProcessActorInput, type ProcessCommand, type ProcessEvent } from './events.js';

export type ShutdownSpec = number | 'brutal_kill' | 'infinity';

export interface WorkerInput {
  workerId: string;
  /** Default per-request timeout in ms when EXECUTE does not carry one. */
  requestTimeoutMs?: number;
  /** ms from spawn until ready + ping must have succeeded. */
  startTimeoutMs?: number;
  /** ms a health-check ping may take. */
  pingTimeoutMs?: number;
  /** OTP shutdown: ms between SIGTERM and SIGKILL, or brutal_kill / infinity. */
  shutdown?: ShutdownSpec;
  /** ms an interrupted (aborted) handler has to answer before the process is replaced. */
  interruptGraceMs?: number;
  /** Consecutive Python errors after which the worker is considered broken. */
  maxConsecutiveErrors?: number;
  /** Replace the process gracefully after this many requests (0 = never). */
  recycleAfterRequests?: number;
}

export interface Inflight {
  ticket: number;
  id: number;
  cmd: string;
  timeoutMs: number;
}

export type ExecuteEvent = {
  type: 'EXECUTE';
  ticket: number;
  cmd: string;
  args: unknown;
  session: string | null;
  /** ms; defaults to the worker's requestTimeoutMs. */
  timeoutMs?: number;
};

export type WorkerEvent =
  | ProcessEvent
  | ExecuteEvent
  | { type: 'START' }
  | { type: 'STOP' }
  | { type: 'ABORT'; ticket: number }
  /**
   * The caller's deadline for this request passed. Deadlines travel with requests: whoever
   * checked the worker out owns the timer (on the pool's clock), so a request costs no timer in
   * the actor system's scheduler. What a timeout does to the worker is decided here.
   */
  | { type: 'REQUEST_TIMEOUT'; ticket: number }
  | { type: 'HEALTH_CHECK' }
  | { type: 'RECYCLE' };

/** What the worker tells whoever checked it out. */
export type WorkerEmitted =
  | { type: 'reply'; ticket: number; ok: true; result: unknown; workerId: string; replaced: false }
  /** `replaced`: the worker's process is being replaced, so its sessions' state is gone. */
  | { type: 'reply'; ticket: number; ok: false; error: PyvisorError; workerId: string; replaced: boolean }
  /** EXECUTE reached the worker in a state that cannot serve it; the caller should queue it again. */
  | { type: 'unavailable'; ticket: number; workerId: string };

/** Fixed for the worker's life. */
export interface WorkerConfig {
  workerId: string;
  requestTimeoutMs: number;
  startTimeoutMs: number;
  pingTimeoutMs: number;
  shutdown: ShutdownSpec;
  interruptGraceMs: number;
  maxConsecutiveErrors: number;
  recycleAfterRequests: number;
}

export interface WorkerStats {
  requests: number;
  /** Requests served by the current process (recycling counts these). */
  processRequests: number;
  errors: number;
  consecutiveErrors: number;
  restarts: number;
}

/** What is known about the current process and the worker's last failure. */
export interface WorkerInfo {
  python: string | null;
  codec: string | null;
  lastExit: ExitInfo | null;
  /** Why the worker last left `live` against its will, or failed to start. */
  failure: PyvisorError | null;
  /** The OTP exit reason reported for that departure. */
  exitReason: ExitReason;
  /** The supervisor awaits CHILD.STARTED / CHILD.START_FAILED. */
  startPending: boolean;
}

/**
 * Few top-level keys on purpose: every assign copies the context with Object.assign, and on
 * V8 a copy of an object with ~20 keys falls into dictionary mode and costs ~10 µs — more than
 * a whole request. Grouped, the per-request copies stay in the ~100 ns range.
 */
export interface WorkerContext {
  config: WorkerConfig;
  pid: number | null;
  /** Process incarnation: 1 for the first, +1 per (re)start. Also what `restarting` keys on. */
  generation: number;
  /** Next frame id. Never reused within a worker, so a late reply can be recognised as stale. */
  nextId: number;
  pingId: number | null;
  inflight: Inflight | null;
  /** An EXECUTE that arrived while a health ping was out; served when the ping returns. */
  pending: ExecuteEvent | null;
  stats: WorkerStats;
  info: WorkerInfo;
}

const DEFAULTS = {
  requestTimeoutMs: 30_000,
  startTimeoutMs: 30_000,
  pingTimeoutMs: 5_000,
  shutdown: 5_000 as ShutdownSpec,
  interruptGraceMs: 1_000,
  maxConsecutiveErrors: 10,
  recycleAfterRequests: 0,
};

/** setTimeout's ceiling; used where a spec says "wait forever" and a guard disables the timer. */
const FOREVER_MS = 2 ** 31 - 1;

/** A frame to the process: through its registered channel when it has one, else as an event. */
function transmit(enqueue: { (action: () => void): void; sendTo(to: string, event: ProcessCommand): void }, self: AnyActorRef, command: ProcessCommand): void {
  if (!processChannels.has(self)) {
    enqueue.sendTo('process', command);
    return;
  }
  enqueue(() => processChannels.get(self)?.(command));
}

function report(self: AnyActorRef, event: ChildReport): void {
  // A worker may run without a supervisor (tests, tools); then there is no one to tell.
  (self as { _parent?: AnyActorRef })._parent?.send(event);
}

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
    emitted: {} as WorkerEmitted,
  },
  actors: {
    // Replaced through machine.provide(): src/transport for real processes, the simulation in tests.
    pythonProcess: undefined as unknown as CallbackActorLogic<ProcessCommand, ProcessActorInput>,
  },
  delays: {
    startTimeout: ({ context }) => context.config.startTimeoutMs,
    pingTimeout: ({ context }) => context.config.pingTimeoutMs,
    shutdownTimeout: ({ context }) => (typeof context.config.shutdown === 'number' ? context.config.shutdown : FOREVER_MS),
    interruptGrace: ({ context }) => context.config.interruptGraceMs,
  },
  guards: {
    isRestart: ({ context }) => context.generation > 1,
    isPingReply: ({ context, event }) => event.type === 'PROC.REPLY' && event.id === context.pingId,
    isPingOk: ({ context, event }) => event.type === 'PROC.REPLY' && event.id === context.pingId && event.ok,
    isInflightReply: ({ context, event }) => event.type === 'PROC.REPLY' && event.id === context.inflight?.id,
    isInflightSendFailure: ({ context, event }) => event.type === 'PROC.SEND_FAILED' && event.id === context.inflight?.id,
    isInflightTicket: ({ context, event }) => (event.type === 'ABORT' || event.type === 'REQUEST_TIMEOUT') && event.ticket === context.inflight?.ticket,
    hasPending: ({ context }) => context.pending !== null,
    // Evaluated on the reply that would be counted next, so the decision needs no extra microstep.
    replyCrossesErrorLimit: ({ context, event }) =>
      event.type === 'PROC.REPLY' && event.id === context.inflight?.id && !event.ok && context.stats.consecutiveErrors + 1 >= context.config.maxConsecutiveErrors,
    replyMakesRecycleDue: ({ context, event }) =>
      event.type === 'PROC.REPLY' && event.id === context.inflight?.id && context.config.recycleAfterRequests > 0 && context.stats.processRequests + 1 >= context.config.recycleAfterRequests,
    isPendingTicket: ({ context, event }) => (event.type === 'ABORT' || event.type === 'REQUEST_TIMEOUT') && event.ticket === context.pending?.ticket,
    isBrutalKill: ({ context }) => context.config.shutdown === 'brutal_kill',
    hasShutdownTimeout: ({ context }) => typeof context.config.shutdown === 'number',
  },
  actions: {
    beginGeneration: assign(({ context }) => ({
      generation: context.generation + 1,
      pid: null,
      pingId: null,
      inflight: null,
      stats: { ...context.stats, processRequests: 0, consecutiveErrors: 0 },
    })),
    markStartPending: assign(({ context }) => ({ info: { ...context.info, startPending: true } })),
    countRestart: assign(({ context }) => ({ stats: { ...context.stats, restarts: context.stats.restarts + 1 } })),
    /**
     * OTP's start returns once the child exists; slow initialisation (interpreter start, handler
     * imports, the first ping) continues after it, like a gen_server's handle_continue. So the
     * supervisor starts workers in parallel, and a failure during boot is an exit, not a start failure.
     */
    acknowledgeSpawn: assign(({ context, event, self }) => {
      if (event.type !== 'PROC.SPAWNED') return {};
      if (context.info.startPending) report(self, { type: 'CHILD.STARTED', id: context.config.workerId, pid: event.pid });
      return { pid: event.pid, info: { ...context.info, python: event.python, startPending: false } };
    }),
    recordReady: assign(({ context, event }) => {
      if (event.type !== 'PROC.READY') return {};
      return { pid: event.pid, info: { ...context.info, python: event.python, codec: event.codec } };
    }),
    sendPing: enqueueActions(({ context, enqueue, self }) => {
      const id = context.nextId;
      transmit(enqueue, self, { type: 'SEND', id, cmd: 'ping', args: null, session: null });
      enqueue.assign({ pingId: id, nextId: id + 1 });
    }),
    clearPing: assign({ pingId: null }),
    /** Healthy: the failure is behind it. A process actor that never sent PROC.SPAWNED is acknowledged now. */
    markHealthy: assign(({ context, self }) => {
      if (context.info.startPending) report(self, { type: 'CHILD.STARTED', id: context.config.workerId, pid: context.pid });
      return { info: { ...context.info, startPending: false, failure: null } };
    }),
    dispatch: enqueueActions(({ context, event, enqueue, self }) => {
      const exec = event.type === 'EXECUTE' ? event : context.pending;
      if (!exec) return;
      const id = context.nextId;
      const inflight: Inflight = {
        ticket: exec.ticket,
        id,
        cmd: exec.cmd,
        timeoutMs: exec.timeoutMs ?? context.config.requestTimeoutMs,
      };
      transmit(enqueue, self, { type: 'SEND', id, cmd: exec.cmd, args: exec.args, session: exec.session });
      enqueue.assign({ inflight, pending: null, nextId: id + 1 });
    }),
    holdPending: assign(({ event }) => (event.type === 'EXECUTE' ? { pending: event } : {})),
    /** The reply to the request in flight: answer the caller, count it, clear it — one assign. */
    finishRequest: enqueueActions(({ context, event, enqueue }) => finish(context, event, enqueue, false)),
    /** The same, for the reply after which the process is replaced (its sessions' state goes with it). */
    finishRequestReplaced: enqueueActions(({ context, event, enqueue }) => finish(context, event, enqueue, true)),
    answerSendFailure: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'PROC.SEND_FAILED' || !context.inflight) return;
      enqueue.emit({ type: 'reply', ticket: context.inflight.ticket, ok: false, error: event.error, workerId: context.config.workerId, replaced: false });
    }),
    clearInflight: assign({ inflight: null }),
    failInflight: enqueueActions(({ context, enqueue }) => {
      if (context.inflight) enqueue.emit(failureReply(context, context.inflight.ticket));
    }),
    failPending: enqueueActions(({ context, enqueue }) => {
      if (context.pending) enqueue.emit(failureReply(context, context.pending.ticket));
    }),
    /** A request held during a health ping never reached Python: it goes back to the queue. */
    returnPending: enqueueActions(({ context, enqueue }) => {
      if (context.pending) enqueue.emit({ type: 'unavailable', ticket: context.pending.ticket, workerId: context.config.workerId });
      enqueue.assign({ pending: null });
    }),
    /** Its deadline passed while it waited for a health ping: it never ran, so the worker stays. */
    timeoutPending: enqueueActions(({ context, enqueue }) => {
      const pending = context.pending!;
      const error = new RequestTimeoutError(pending.cmd, pending.timeoutMs ?? context.config.requestTimeoutMs, context.config.workerId);
      enqueue.emit({ type: 'reply', ticket: pending.ticket, ok: false, error, workerId: context.config.workerId, replaced: false });
      enqueue.assign({ pending: null });
    }),
    abortPending: enqueueActions(({ context, enqueue }) => {
      const error = new AbortError('the request was aborted before it ran');
      enqueue.emit({ type: 'reply', ticket: context.pending!.ticket, ok: false, error, workerId: context.config.workerId, replaced: false });
      enqueue.assign({ pending: null });
    }),
    clearWork: assign({ inflight: null, pending: null }),
    answerTimeout: enqueueActions(({ context, enqueue }) => {
      const inflight = context.inflight!;
      const error = new RequestTimeoutError(inflight.cmd, inflight.timeoutMs, context.config.workerId);
      enqueue.emit({ type: 'reply', ticket: inflight.ticket, ok: false, error, workerId: context.config.workerId, replaced: true });
    }),
    answerAborted: enqueueActions(({ context, enqueue }) => {
      const error = new AbortError('the request was aborted while it ran');
      enqueue.emit({ type: 'reply', ticket: context.inflight!.ticket, ok: false, error, workerId: context.config.workerId, replaced: false });
    }),
    answerAbortedReplaced: enqueueActions(({ context, enqueue }) => {
      const error = new AbortError('the request was aborted while it ran; its worker did not answer the interrupt and is replaced');
      enqueue.emit({ type: 'reply', ticket: context.inflight!.ticket, ok: false, error, workerId: context.config.workerId, replaced: true });
    }),
    refuse: enqueueActions(({ context, event, enqueue }) => {
      if (event.type === 'EXECUTE') enqueue.emit({ type: 'unavailable', ticket: event.ticket, workerId: context.config.workerId });
    }),
    condemnForPing: condemn(({ context, event }) =>
      event.type === 'PROC.REPLY' && !event.ok
        ? new PythonError(event.error.type, event.error.message, event.error.traceback, 'ping')
        : new WorkerCrashedError(context.config.workerId, context.pid ?? undefined, NO_EXIT, `did not answer a health check within ${context.config.pingTimeoutMs} ms`),
    ),
    condemnForProtocol: condemn(({ event }) =>
      event.type === 'PROC.PROTOCOL_ERROR'
        ? event.error
        : new ProtocolError(event.type === 'PROC.REPLY' ? `reply with id ${event.id}, which no request of this worker is waiting for` : `unexpected ${event.type}`),
    ),
    recordExit: assign(({ context, event }) => {
      if (event.type !== 'PROC.EXIT') return {};
      const failure = new WorkerCrashedError(context.config.workerId, context.pid ?? undefined, event.exit);
      return { info: { ...context.info, lastExit: event.exit, exitReason: exitReason(event.exit), failure } };
    }),
    recordStartFailure: assign(({ context, event }) => {
      let failure: PyvisorError;
      if (event.type === 'PROC.EXIT') {
        failure =
          event.startError ??
          new WorkerStartError(
            context.config.workerId,
            context.info.python ?? 'python',
            event.exit.signal ? `killed by ${event.exit.signal} during start` : `exited with code ${event.exit.code} during start`,
            event.exit.stderrTail.join('\n'),
          );
        return { info: { ...context.info, failure, lastExit: event.exit } };
      }
      if (event.type === 'PROC.REPLY' && !event.ok) {
        failure = new WorkerStartError(context.config.workerId, context.info.python ?? 'python', `start ping failed: ${event.error.type}: ${event.error.message}`);
      } else if (event.type === 'PROC.PROTOCOL_ERROR') {
        failure = new WorkerStartError(context.config.workerId, context.info.python ?? 'python', 'protocol error during start', '', { cause: event.error });
      } else {
        failure = new WorkerStartError(context.config.workerId, context.info.python ?? 'python', `not ready within ${context.config.startTimeoutMs} ms`);
      }
      return { info: { ...context.info, failure } };
    }),
    reportStartFailed: assign(({ context, self }) => {
      if (context.info.startPending) report(self, { type: 'CHILD.START_FAILED', id: context.config.workerId, error: context.info.failure! });
      else report(self, { type: 'CHILD.EXITED', id: context.config.workerId, reason: { abnormal: context.info.failure!.message }, error: context.info.failure! });
      return { info: { ...context.info, startPending: false } };
    }),
    reportExit: ({ context, self }) => {
      report(self, { type: 'CHILD.EXITED', id: context.config.workerId, reason: context.info.exitReason, error: context.info.failure ?? undefined });
    },
    reportStopped: ({ context, self }) => report(self, { type: 'CHILD.STOPPED', id: context.config.workerId }),
    signalTerm: enqueueActions(({ context, enqueue }) => {
      // brutal_kill skips the courtesy: leaving `live` disposes the process actor, which SIGKILLs.
      if (context.config.shutdown !== 'brutal_kill') enqueue.sendTo('process', { type: 'SIGNAL', signal: 'SIGTERM' } satisfies ProcessCommand);
    }),
    signalInterrupt: sendTo('process', { type: 'SIGNAL', signal: 'SIGINT' } satisfies ProcessCommand),
  },
}).createMachine({
  id: 'worker',
  context: ({ input }) => ({
    config: {
      workerId: input.workerId,
      requestTimeoutMs: input.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs,
      startTimeoutMs: input.startTimeoutMs ?? DEFAULTS.startTimeoutMs,
      pingTimeoutMs: input.pingTimeoutMs ?? DEFAULTS.pingTimeoutMs,
      shutdown: input.shutdown ?? DEFAULTS.shutdown,
      interruptGraceMs: input.interruptGraceMs ?? DEFAULTS.interruptGraceMs,
      maxConsecutiveErrors: input.maxConsecutiveErrors ?? DEFAULTS.maxConsecutiveErrors,
      recycleAfterRequests: input.recycleAfterRequests ?? DEFAULTS.recycleAfterRequests,
    },
    pid: null,
    generation: 0,
    nextId: 1,
    pingId: null,
    inflight: null,
    pending: null,
    stats: { requests: 0, processRequests: 0, errors: 0, consecutiveErrors: 0, restarts: 0 },
    info: { python: null, codec: null, lastExit: null, failure: null, exitReason: 'normal', startPending: false },
  }),
  initial: 'idle',
  on: {
    // Only `healthy` (and `checking`, which holds it) take work; everywhere else it goes back to the queue.
    EXECUTE: { actions: 'refuse' },
  },
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
        input: ({ context }) => ({ workerId: context.config.workerId, generation: context.generation }),
      },
      initial: 'boot',
      on: {
        // Defaults for every running substate; the boot states override them as start failures.
        'PROC.EXIT': { target: 'unhealthy', actions: ['recordExit', 'failInflight', 'failPending', 'clearWork', 'reportExit'] },
        'PROC.PROTOCOL_ERROR': { target: 'unhealthy', actions: ['condemnForProtocol', 'failInflight', 'failPending', 'clearWork', 'reportExit'] },
        'PROC.REPLY': { target: 'unhealthy', actions: ['condemnForProtocol', 'failInflight', 'failPending', 'clearWork', 'reportExit'] },
        STOP: '.stopping',
      },
      states: {
        boot: {
          always: [{ guard: 'isRestart', target: 'restarting' }, { target: 'initializing' }],
        },
        initializing: bootState(),
        restarting: bootState(),
        healthy: {
          on: {
            EXECUTE: 'busy',
            HEALTH_CHECK: 'checking',
            RECYCLE: 'recycling',
          },
        },
        busy: {
          entry: 'dispatch',
          on: {
            'PROC.REPLY': [
              // Errors in a row: maybe a poisoned interpreter, maybe only bad input — a fresh process
              // either way, replaced on the spot so that user errors can never escalate the pool.
              { guard: 'replyCrossesErrorLimit', target: '#worker.live', reenter: true, actions: ['finishRequestReplaced', 'countRestart'] },
              { guard: 'replyMakesRecycleDue', target: 'recycling', actions: 'finishRequest' },
              { guard: 'isInflightReply', target: 'healthy', actions: 'finishRequest' },
              // any other id: fall through to live's handler, which condemns the worker
            ],
            'PROC.SEND_FAILED': { guard: 'isInflightSendFailure', target: 'healthy', actions: ['answerSendFailure', 'clearInflight'] },
            ABORT: { guard: 'isInflightTicket', target: 'interrupting' },
            // The handler is slow, not the worker sick: replace the process here, without the
            // supervisor, so that timeouts never count against restart intensity. Killing it is
            // also what guarantees that its late reply can never reach a later request.
            REQUEST_TIMEOUT: { guard: 'isInflightTicket', target: '#worker.live', reenter: true, actions: ['answerTimeout', 'clearWork', 'countRestart'] },
          },
        },
        interrupting: {
          entry: 'signalInterrupt',
          on: {
            'PROC.REPLY': [{ guard: 'isInflightReply', target: 'healthy', actions: ['answerAborted', 'clearInflight'] }],
          },
          after: {
            // Likewise a handler deaf to KeyboardInterrupt: replaced on the spot, not counted as a crash.
            interruptGrace: { target: '#worker.live', reenter: true, actions: ['answerAbortedReplaced', 'clearWork', 'countRestart'] },
          },
        },
        checking: {
          entry: 'sendPing',
          on: {
            EXECUTE: { actions: 'holdPending' },
            ABORT: { guard: 'isPendingTicket', actions: 'abortPending' },
            REQUEST_TIMEOUT: { guard: 'isPendingTicket', actions: 'timeoutPending' },
            'PROC.REPLY': [
              { guard: 'isPingOk', target: 'afterCheck', actions: 'clearPing' },
              { guard: 'isPingReply', target: '#worker.unhealthy', actions: ['condemnForPing', 'returnPending', 'clearWork', 'reportExit'] },
            ],
          },
          after: {
            pingTimeout: { target: '#worker.unhealthy', actions: ['condemnForPing', 'returnPending', 'clearWork', 'reportExit'] },
          },
        },
        afterCheck: {
          always: [{ guard: 'hasPending', target: 'busy' }, { target: 'healthy' }],
        },
        recycling: {
          entry: 'signalTerm',
          on: {
            // A planned replacement: straight back into `live`, which starts the next generation.
            'PROC.EXIT': { target: '#worker.live', reenter: true },
            'PROC.REPLY': {},
          },
          after: {
            shutdownTimeout: { target: '#worker.live', reenter: true },
          },
        },
        stopping: {
          always: { guard: 'isBrutalKill', target: '#worker.stopped', actions: ['failInflight', 'failPending', 'clearWork'] },
          entry: 'signalTerm',
          on: {
            'PROC.EXIT': { target: '#worker.stopped', actions: ['failInflight', 'failPending', 'clearWork'] },
            // The process is going away: answer the request it finishes; any other reply (e.g. to a
            // start ping that was out when STOP came) is no longer anyone's business.
            'PROC.REPLY': [{ guard: 'isInflightReply', actions: 'finishRequest' }, {}],
            'PROC.PROTOCOL_ERROR': {},
            STOP: {},
          },
          after: {
            shutdownTimeout: { guard: 'hasShutdownTimeout', target: '#worker.stopped', actions: ['failInflight', 'failPending', 'clearWork'] },
          },
        },
      },
    },
    unhealthy: {
      on: {
        START: { target: 'live', actions: ['markStartPending', 'countRestart'] },
        STOP: 'stopped',
      },
    },
    stopped: {
      entry: 'reportStopped',
      on: {
        START: { target: 'live', actions: ['markStartPending', 'countRestart'] },
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
          'PROC.REPLY': [
            { guard: 'isPingOk', target: '#worker.live.healthy', actions: ['clearPing', 'markHealthy'] },
            { guard: 'isPingReply', target: '#worker.unhealthy', actions: ['recordStartFailure', 'reportStartFailed'] },
          ],
        },
      },
    },
  } as const;
}

/** Answer the request in flight from its reply, count it, clear it — one assign. */
function finish(
  context: WorkerContext,
  event: WorkerEvent,
  enqueue: { emit(event: WorkerEmitted): void; assign(patch: Partial<WorkerContext>): void },
  replaced: boolean,
): void {
  const inflight = context.inflight!;
  if (event.type !== 'PROC.REPLY') return;
  const workerId = context.config.workerId;
  if (event.ok) {
    enqueue.emit({ type: 'reply', ticket: inflight.ticket, ok: true, result: event.result, workerId, replaced: false });
  } else {
    const error = new PythonError(event.error.type, event.error.message, event.error.traceback, inflight.cmd);
    enqueue.emit({ type: 'reply', ticket: inflight.ticket, ok: false, error, workerId, replaced });
  }
  const stats = context.stats;
  enqueue.assign({
    inflight: null,
    stats: {
      requests: stats.requests + 1,
      processRequests: stats.processRequests + 1,
      errors: stats.errors + (event.ok ? 0 : 1),
      consecutiveErrors: event.ok ? 0 : stats.consecutiveErrors + 1,
      restarts: stats.restarts,
    },
  });
}

/** A worker that is condemned leaves `live` (which kills its process) with an abnormal exit. */
function condemn(why: (args: { context: WorkerContext; event: WorkerEvent }) => PyvisorError) {
  return assign<WorkerContext, WorkerEvent, undefined, WorkerEvent, never>((args) => {
    const failure = why(args);
    return { info: { ...args.context.info, failure, exitReason: { abnormal: failure.message } as ExitReason } };
  });
}

function failureReply(context: WorkerContext, ticket: number): WorkerEmitted {
  return {
    type: 'reply',
    ticket,
    ok: false,
    error: context.info.failure ?? new WorkerCrashedError(context.config.workerId, context.pid ?? undefined, context.info.lastExit ?? NO_EXIT),
    workerId: context.config.workerId,
    replaced: true,
  };
}

export type WorkerActor = ActorRefFrom<typeof workerMachine>;
