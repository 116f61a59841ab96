/**
 * An Erlang/OTP supervisor as an XState machine.
 *
 * Children are long-lived actors that speak the child protocol of ./events.ts: the supervisor
 * sends START and STOP, the child answers CHILD.STARTED / CHILD.START_FAILED / CHILD.STOPPED
 * and reports CHILD.EXITED when it dies on its own. A child enforces its own `shutdown`
 * (SIGTERM, wait, SIGKILL) because only it can see its process; the supervisor passes the spec's
 * value into the child's input.
 *
 * Like OTP's gen_server loop, the supervisor does one thing at a time: a restart plan (stop
 * some children in reverse order, then start some in order) runs to its end before the next
 * child exit is looked at; exits that arrive meanwhile wait in `deferred`. A failed (re)start
 * is not retried in place but re-posted to the supervisor's own mailbox (OTP's
 * `try_again_restart`), so STOP and other messages are handled between attempts.
 *
 * Restart intensity is OTP's add_restart with the clock doing the bookkeeping: each restart
 * adds one to `recentRestarts` and schedules its own expiry `periodMs` later, so
 * `recentRestarts` is always the number of restarts within the window, with no time read.
 */
import { assign, enqueueActions, setup, type AnyActorLogic, type AnyActorRef, type ActorRefFrom } from 'xstate';
import type { ChildReport, ExitReason } from './events.js';
import { escalated, type Failure } from './failure.js';
import type { ShutdownSpec } from './worker.js';

import type { RestartType, Strategy } from './strategy.js';
export type { RestartType, Strategy } from './strategy.js';

export interface ChildSpec {
  id: string;
  /** Actor logic that speaks the child protocol, and the input it is spawned with. */
  start: { logic: AnyActorLogic; input?: Record<string, unknown> };
  restart: RestartType;
  /** Passed to the child as `shutdown` in its input; the child enforces it. */
  shutdown: ShutdownSpec;
  /** Free-form tag for introspection (e.g. 'worker' | 'overflow' | 'supervisor'). */
  type?: 'worker' | 'supervisor';
}

export type ChildStatus = 'stopped' | 'starting' | 'running' | 'restarting' | 'stopping' | 'exited';

export interface ChildEntry {
  spec: ChildSpec;
  ref: AnyActorRef;
  status: ChildStatus;
  pid: number | null;
}

interface Plan {
  stop: string[];
  start: string[];
  /** Ids to delete from the child list once they are stopped (temporary bystanders, TERMINATE_CHILD). */
  remove: string[];
}

export interface SupervisorInput {
  id: string;
  strategy?: Strategy;
  maxRestarts?: number;
  /** OTP's MaxSeconds, in ms. */
  periodMs?: number;
  children?: ChildSpec[];
}

export type SupervisorEvent =
  | ChildReport
  | { type: 'STOP' }
  | { type: 'START_CHILD'; spec: ChildSpec }
  | { type: 'TERMINATE_CHILD'; id: string }
  | { type: 'RESTART_EXPIRED' }
  | { type: 'TRY_AGAIN' };

export type SupervisorEmitted =
  | { type: 'child_started'; id: string; pid: number | null; restart: boolean }
  | { type: 'child_start_failed'; id: string; error: Failure }
  | { type: 'child_exited'; id: string; reason: ExitReason; error?: Failure; restarting: boolean }
  | { type: 'child_removed'; id: string }
  | { type: 'escalation'; error: Failure };

export interface SupervisorContext {
  id: string;
  strategy: Strategy;
  maxRestarts: number;
  periodMs: number;
  children: ChildEntry[];
  plan: Plan | null;
  /** A plan whose start failed, waiting for its TRY_AGAIN to come through the mailbox. */
  retry: Plan | null;
  deferred: SupervisorEvent[];
  recentRestarts: number;
  /** True until the first full start of the static children has succeeded. */
  initializing: boolean;
  lastFailure: Failure | null;
  /**
   * The last deterministic failure to start (see ChildReport) within the intensity window, with
   * the child's id blanked out so that two workers failing on the same file match.
   */
  bootFailure: string | null;
  /** The failure just recorded is that one again: restarting cannot help. */
  bootFailureRepeated: boolean;
  escalation: Failure | null;
}

export interface SupervisorOutput {
  reason: 'normal' | 'escalated';
  error?: Failure;
}

// The six clauses of OTP's restart decision (supervisor:do_restart/4).
function shouldRestart(restart: RestartType, reason: ExitReason): boolean {
  if (restart === 'permanent') return true;
  if (restart === 'temporary') return false;
  if (reason === 'normal') return false;
  if (reason === 'shutdown') return false;
  return true; // transient, abnormal
}

/**
 * What a deterministic start failure would look like for any child: the same interpreter, file and
 * Python error give the same signature whichever worker met them.
 */
function bootSignature(id: string, error: Failure | undefined): string {
  const asWord = new RegExp(`(?<![\\w-])${id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\w-])`, 'g');
  return (error?.message ?? '').replace(asWord, '<child>');
}

/** Record a child's failure to start; note whether it repeats the window's last deterministic one. */
function noteBootFailure(context: SupervisorContext, id: string, error: Failure | undefined, deterministic: boolean | undefined): Partial<SupervisorContext> {
  if (!deterministic) return { bootFailureRepeated: false };
  const signature = bootSignature(id, error);
  return { bootFailure: signature, bootFailureRepeated: context.bootFailure === signature };
}

function entryOf(context: SupervisorContext, id: string): ChildEntry | undefined {
  return context.children.find((c) => c.spec.id === id);
}

/** The plan a strategy makes when child `id` must be restarted. */
function restartPlan(context: SupervisorContext, id: string): Plan {
  const index = context.children.findIndex((c) => c.spec.id === id);
  const group =
    context.strategy === 'one_for_one' ? [context.children[index]!]
    : context.strategy === 'one_for_all' ? context.children
    : context.children.slice(index);
  const bystanders = group.filter((c) => c.spec.id !== id);
  return {
    stop: bystanders.filter((c) => c.status !== 'stopped' && c.status !== 'exited').map((c) => c.spec.id).reverse(),
    // Temporary children are never restarted, not even as bystanders: they are removed instead.
    start: group.filter((c) => c.spec.id === id || c.spec.restart !== 'temporary').map((c) => c.spec.id),
    remove: bystanders.filter((c) => c.spec.restart === 'temporary').map((c) => c.spec.id),
  };
}

function withStatus(children: ChildEntry[], id: string, patch: Partial<ChildEntry>): ChildEntry[] {
  return children.map((c) => (c.spec.id === id ? { ...c, ...patch } : c));
}

export const supervisorMachine = setup({
  types: {
    context: {} as SupervisorContext,
    events: {} as SupervisorEvent,
    input: {} as SupervisorInput,
    emitted: {} as SupervisorEmitted,
    output: {} as SupervisorOutput,
  },
  delays: {
    period: ({ context }) => context.periodMs,
  },
  guards: {
    planDone: ({ context }) => !context.plan || (context.plan.stop.length === 0 && context.plan.start.length === 0),
    isStopHead: ({ context, event }) => event.type === 'CHILD.STOPPED' && context.plan?.stop[0] === event.id,
    isStartHead: ({ context, event }) =>
      (event.type === 'CHILD.STARTED' || event.type === 'CHILD.START_FAILED') && context.plan?.stop.length === 0 && context.plan?.start[0] === event.id,
    startFailed: ({ event }) => event.type === 'CHILD.START_FAILED',
    isTemporaryStartHead: ({ context, event }) =>
      event.type === 'CHILD.START_FAILED' && context.plan?.stop.length === 0 && context.plan?.start[0] === event.id && entryOf(context, event.id)?.spec.restart === 'temporary',
    intensityExceeded: ({ context }) => context.recentRestarts > context.maxRestarts,
    // Beyond OTP: the same deterministic start failure twice in one window is final; spending the
    // rest of the budget would only start more interpreters that fail the same way.
    bootFailureRepeated: ({ context }) => context.bootFailureRepeated,
    isKnownRunningChild: ({ context, event }) => event.type === 'CHILD.EXITED' && entryOf(context, event.id)?.status === 'running',
    mustRestart: ({ context, event }) => {
      if (event.type !== 'CHILD.EXITED') return false;
      const child = entryOf(context, event.id);
      return child?.status === 'running' && shouldRestart(child.spec.restart, event.reason);
    },
    // An exit of a child the current plan already stops or starts is subsumed by the plan.
    isPlanned: ({ context, event }) =>
      event.type === 'CHILD.EXITED' && !!context.plan && (context.plan.stop.includes(event.id) || context.plan.start.includes(event.id)),
    hasRetry: ({ context }) => context.retry !== null,
  },
  actions: {
    spawnChildren: assign(({ context, spawn }) => ({
      children: context.children.map((c) => ({ ...c, ref: spawnFrom(spawn, c.spec) })),
    })),
    planInitialStart: assign(({ context }) => ({
      plan: { stop: [], start: context.children.map((c) => c.spec.id), remove: [] },
    })),
    /** Send the command for the plan's next step: stops first, then starts. */
    step: enqueueActions(({ context, enqueue }) => {
      const plan = context.plan;
      if (!plan) return;
      const stopId = plan.stop[0];
      if (stopId !== undefined) {
        const child = entryOf(context, stopId)!;
        enqueue.assign({ children: withStatus(context.children, stopId, { status: 'stopping' }) });
        enqueue.sendTo(child.ref, { type: 'STOP' });
        return;
      }
      const startId = plan.start[0];
      if (startId !== undefined) {
        const child = entryOf(context, startId)!;
        const status: ChildStatus = child.status === 'restarting' || !context.initializing ? 'restarting' : 'starting';
        enqueue.assign({ children: withStatus(context.children, startId, { status }) });
        enqueue.sendTo(child.ref, { type: 'START' });
      }
    }),
    popStopped: enqueueActions(({ context, enqueue }) => {
      const plan = context.plan!;
      const [id, ...rest] = plan.stop;
      let children = withStatus(context.children, id!, { status: 'stopped', pid: null });
      if (plan.remove.includes(id!)) {
        const gone = entryOf(context, id!)!;
        enqueue.stopChild(gone.ref);
        children = children.filter((c) => c.spec.id !== id);
        enqueue.emit({ type: 'child_removed', id: id! });
      }
      enqueue.assign({ plan: { ...plan, stop: rest }, children });
    }),
    popStarted: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'CHILD.STARTED') return;
      const plan = context.plan!;
      const restart = entryOf(context, event.id)?.status === 'restarting';
      enqueue.assign({
        plan: { ...plan, start: plan.start.slice(1) },
        children: withStatus(context.children, event.id, { status: 'running', pid: event.pid }),
      });
      enqueue.emit({ type: 'child_started', id: event.id, pid: event.pid, restart });
    }),
    /** OTP's add_restart: count it now, forget it one period later. */
    addRestart: enqueueActions(({ context, enqueue }) => {
      enqueue.assign({ recentRestarts: context.recentRestarts + 1 });
      enqueue.raise({ type: 'RESTART_EXPIRED' }, { delay: context.periodMs });
    }),
    expireRestart: assign(({ context }) => {
      const recentRestarts = Math.max(0, context.recentRestarts - 1);
      return recentRestarts === 0 ? { recentRestarts, bootFailure: null } : { recentRestarts };
    }),
    recordStartFailure: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'CHILD.START_FAILED') return;
      enqueue.assign({
        ...noteBootFailure(context, event.id, event.error, event.deterministic),
        lastFailure: event.error,
        retry: context.plan,
        plan: null,
        children: withStatus(context.children, event.id, { status: 'restarting', pid: null }),
      });
      enqueue.emit({ type: 'child_start_failed', id: event.id, error: event.error });
    }),
    dropFailedTemporary: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'CHILD.START_FAILED') return;
      const child = entryOf(context, event.id)!;
      enqueue.stopChild(child.ref);
      enqueue.assign({
        plan: { ...context.plan!, start: context.plan!.start.slice(1) },
        children: context.children.filter((c) => c.spec.id !== event.id),
        lastFailure: event.error,
      });
      enqueue.emit({ type: 'child_start_failed', id: event.id, error: event.error });
      enqueue.emit({ type: 'child_removed', id: event.id });
    }),
    postTryAgain: enqueueActions(({ enqueue, self }) => {
      // Through the mailbox, behind whatever else is waiting: OTP's try_again_restart.
      enqueue.sendTo(self, { type: 'TRY_AGAIN' });
    }),
    resumeRetry: assign(({ context }) => ({ plan: context.retry, retry: null })),
    recordExit: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'CHILD.EXITED') return;
      const child = entryOf(context, event.id)!;
      const restarting = child.status === 'running' && shouldRestart(child.spec.restart, event.reason);
      enqueue.assign({
        ...noteBootFailure(context, event.id, event.error, event.deterministic),
        lastFailure: event.error ?? context.lastFailure,
        children: withStatus(context.children, event.id, { status: 'exited', pid: null }),
      });
      enqueue.emit({ type: 'child_exited', id: event.id, reason: event.reason, error: event.error, restarting });
      if (!restarting && child.spec.restart === 'temporary') {
        enqueue.assign(({ context: c }) => ({ children: c.children.filter((x) => x.spec.id !== event.id) }));
        enqueue.stopChild(child.ref);
        enqueue.emit({ type: 'child_removed', id: event.id });
      }
    }),
    planRestart: assign(({ context, event }) => {
      if (event.type !== 'CHILD.EXITED') return {};
      return { plan: restartPlan(context, event.id) };
    }),
    defer: assign(({ context, event }) => ({ deferred: [...context.deferred, event] })),
    replayDeferred: enqueueActions(({ context, enqueue, self }) => {
      for (const event of context.deferred) enqueue.sendTo(self, event);
      enqueue.assign({ deferred: [] });
    }),
    addDynamicChild: assign(({ context, event, spawn }) => {
      if (event.type !== 'START_CHILD') return {};
      if (entryOf(context, event.spec.id)) throw new Error(`START_CHILD: a child with id "${event.spec.id}" already exists`);
      const entry: ChildEntry = { spec: event.spec, ref: spawnFrom(spawn, event.spec), status: 'stopped', pid: null };
      return { children: [...context.children, entry], plan: { stop: [], start: [event.spec.id], remove: [] } };
    }),
    planTerminate: assign(({ context, event }) => {
      if (event.type !== 'TERMINATE_CHILD') return {};
      const child = entryOf(context, event.id);
      if (!child) return {};
      const running = child.status !== 'stopped' && child.status !== 'exited';
      return { plan: { stop: running ? [event.id] : [], start: [], remove: [event.id] } };
    }),
    removeIfIdle: enqueueActions(({ context, event, enqueue }) => {
      // TERMINATE_CHILD of a child that is not running: nothing to stop, just delete it.
      if (event.type !== 'TERMINATE_CHILD') return;
      const child = entryOf(context, event.id);
      if (!child || (child.status !== 'stopped' && child.status !== 'exited')) return;
      enqueue.stopChild(child.ref);
      enqueue.assign({ children: context.children.filter((c) => c.spec.id !== event.id) });
      enqueue.emit({ type: 'child_removed', id: event.id });
    }),
    planShutdown: assign(({ context }) => ({
      plan: {
        stop: context.children.filter((c) => c.status !== 'stopped').map((c) => c.spec.id).reverse(),
        start: [],
        remove: [],
      },
      retry: null,
      deferred: [],
    })),
    markStarted: assign({ initializing: false }),
    escalate: enqueueActions(({ context, enqueue }) => {
      const error = escalated(context.id, context.maxRestarts, context.periodMs, context.lastFailure, context.bootFailureRepeated);
      enqueue.assign({ escalation: error });
      enqueue.emit({ type: 'escalation', error });
    }),
  },
}).createMachine({
  id: 'supervisor',
  context: ({ input }) => ({
    id: input.id,
    strategy: input.strategy ?? 'one_for_one',
    maxRestarts: input.maxRestarts ?? 3,
    periodMs: input.periodMs ?? 5_000,
    children: (input.children ?? []).map((spec) => ({ spec, ref: undefined as unknown as AnyActorRef, status: 'stopped' as ChildStatus, pid: null })),
    plan: null,
    retry: null,
    deferred: [],
    recentRestarts: 0,
    initializing: true,
    lastFailure: null,
    bootFailure: null,
    bootFailureRepeated: false,
    escalation: null,
  }),
  entry: ['spawnChildren', 'planInitialStart'],
  initial: 'busy',
  on: {
    RESTART_EXPIRED: { actions: 'expireRestart' },
  },
  states: {
    running: {
      entry: ['markStarted', 'replayDeferred'],
      on: {
        'CHILD.EXITED': [
          { guard: 'mustRestart', actions: ['recordExit', 'addRestart', 'planRestart'], target: 'restartDecision' },
          { guard: 'isKnownRunningChild', actions: 'recordExit' },
        ],
        START_CHILD: { target: 'busy', actions: 'addDynamicChild' },
        TERMINATE_CHILD: [
          { actions: 'removeIfIdle', guard: ({ context, event }) => { const c = entryOf(context, event.id); return !c || c.status === 'stopped' || c.status === 'exited'; } },
          { target: 'busy', actions: 'planTerminate' },
        ],
        TRY_AGAIN: { guard: 'hasRetry', target: 'busy', actions: 'resumeRetry' },
        STOP: 'shuttingDown',
      },
    },
    restartDecision: {
      always: [
        { guard: 'intensityExceeded', target: 'escalating' },
        { guard: 'bootFailureRepeated', target: 'escalating' },
        { target: 'busy' },
      ],
    },
    busy: {
      entry: 'step',
      always: { guard: 'planDone', target: 'running', actions: assign({ plan: null }) },
      on: {
        'CHILD.STOPPED': { guard: 'isStopHead', target: 'busy', reenter: true, actions: 'popStopped' },
        'CHILD.STARTED': { guard: 'isStartHead', target: 'busy', reenter: true, actions: 'popStarted' },
        'CHILD.START_FAILED': [
          // OTP's start_child of a temporary child just returns the error: nothing to retry or count.
          { guard: 'isTemporaryStartHead', target: 'busy', reenter: true, actions: 'dropFailedTemporary' },
          { guard: 'isStartHead', target: 'startFailed', actions: ['recordStartFailure', 'addRestart'] },
        ],
        'CHILD.EXITED': [{ guard: 'isPlanned' }, { actions: 'defer' }],
        START_CHILD: { actions: 'defer' },
        TERMINATE_CHILD: { actions: 'defer' },
        TRY_AGAIN: {},
        STOP: 'shuttingDown',
      },
    },
    startFailed: {
      always: [
        { guard: 'intensityExceeded', target: 'escalating' },
        { guard: 'bootFailureRepeated', target: 'escalating' },
        { target: 'running', actions: 'postTryAgain' },
      ],
    },
    escalating: {
      entry: ['escalate', 'planShutdown'],
      always: { target: 'draining' },
    },
    shuttingDown: {
      entry: 'planShutdown',
      always: { target: 'draining' },
    },
    // Stop every child in reverse start order, one at a time, then end.
    draining: {
      entry: 'step',
      always: [
        { guard: ({ context }) => context.plan!.stop.length === 0 && context.escalation !== null, target: 'escalated' },
        { guard: ({ context }) => context.plan!.stop.length === 0, target: 'stopped' },
      ],
      on: {
        'CHILD.STOPPED': { guard: 'isStopHead', target: 'draining', reenter: true, actions: 'popStopped' },
      },
    },
    stopped: { type: 'final' },
    escalated: { type: 'final' },
  },
  output: ({ context }) => (context.escalation ? { reason: 'escalated', error: context.escalation } : { reason: 'normal' }),
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- XState's spawner overloads cannot type logic chosen at run time
function spawnFrom(spawn: any, spec: ChildSpec): AnyActorRef {
  return spawn(spec.start.logic, { id: spec.id, input: { ...spec.start.input, shutdown: spec.shutdown }, systemId: spec.id });
}

export type SupervisorActor = ActorRefFrom<typeof supervisorMachine>;

/** OTP's which_children/count_children, from a supervisor snapshot. */
export function childrenOf(snapshot: { context: SupervisorContext }): Array<{ id: string; state: ChildStatus; pid: number | null; type: 'worker' | 'supervisor'; restart: RestartType }> {
  return snapshot.context.children.map((c) => ({ id: c.spec.id, state: c.status, pid: c.pid, type: c.spec.type ?? 'worker', restart: c.spec.restart }));
}

export function countChildren(snapshot: { context: SupervisorContext }): { specs: number; active: number; supervisors: number; workers: number } {
  const children = snapshot.context.children;
  return {
    specs: children.length,
    active: children.filter((c) => c.status === 'running').length,
    supervisors: children.filter((c) => c.spec.type === 'supervisor').length,
    workers: children.filter((c) => (c.spec.type ?? 'worker') === 'worker').length,
  };
}
