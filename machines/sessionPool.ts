/**
 * The session pool: checkout queue, session registry and affinity routing. It decides; it
 * never touches a worker. Every decision is an emitted event (`assigned`, `rejected`,
 * `start_worker`, `retire_worker`, `session_expired`) that src/pool.ts carries out, so the
 * whole routing policy can be tested with no worker at all.
 *
 * Deadlines travel with requests as clock timers: a queued request whose deadline passes is
 * removed and rejected before any worker can be handed to it.
 */
import { assign, enqueueActions, setup, type ActorRefFrom } from 'xstate';
import {
  PoolClosedError,
  PoolSaturatedError,
  PoolTimeoutError,
  SessionWorkerLostError,
  type PyvisorError,
} from '../src/errors.js';

export type Affinity = 'prefer' | 'strict' | 'none';
export type SlotState = 'starting' | 'idle' | 'busy' | 'down' | 'retiring';

export interface Slot {
  id: string;
  overflow: boolean;
  state: SlotState;
  ticket: number | null;
  /** The session of the request it serves now. */
  sessionId: string | null;
}

export interface SessionEntry {
  /** The worker that served the session last. */
  lastWorker: string | null;
  /** Every worker whose process holds state of this session (what endSession must clean). */
  workers: string[];
  /** Requests of this session checked out right now (queued ones are in `queue`). */
  active: number;
  /** Set when the worker the session is pinned to died: its Python state is gone. */
  lostWorker: string | null;
}

export interface Waiting {
  ticket: number;
  sessionId: string | null;
  timeoutMs: number;
  /** Only this worker may serve it (endSession's cleanup_session). */
  workerId: string | null;
}

export interface SessionPoolInput {
  poolSize: number;
  maxOverflow: number;
  maxQueue: number;
  affinity: Affinity;
  lazy: boolean;
  overflowIdleMs: number;
  /** Idle sessions are forgotten (and cleaned in Python) after this many ms; 0 = never. */
  sessionTtlMs: number;
  /** Ids of the workers the supervisor starts at once (non-lazy pools). */
  initialWorkers: string[];
}

/** The pool's fixed settings (SessionPoolInput without the initial workers). */
export type SessionPoolConfig = Omit<SessionPoolInput, 'initialWorkers'>;

/** Few top-level keys on purpose: see the note on WorkerContext (machines/worker.ts). */
export interface SessionPoolContext {
  config: SessionPoolConfig;
  slots: Slot[];
  queue: Waiting[];
  /**
   * The session registry, updated in place (entries are replaced, never mutated). Copying it
   * on every request would make each request O(sessions): ~230 µs at 1,000 sessions, ~4 ms at
   * 10,000. Nothing keeps an old snapshot's registry, and the machine is never transitioned
   * speculatively, so the in-place update is not observable.
   */
  sessions: Record<string, SessionEntry>;
  nextPermanent: number;
  nextOverflow: number;
  closed: boolean;
  /**
   * An overflow worker failed to start: start no more until some worker comes up, or a
   * caller waiting through a broken interpreter would spawn a process per start time.
   */
  overflowBlocked: boolean;
}

export type SessionPoolEvent =
  | { type: 'CHECKOUT'; ticket: number; sessionId: string | null; timeoutMs: number; workerId?: string | null }
  | { type: 'CHECKIN'; ticket: number; workerId: string; workerLost: boolean }
  | { type: 'CANCEL'; ticket: number }
  | { type: 'WORKER_UP'; workerId: string }
  | { type: 'WORKER_DOWN'; workerId: string }
  | { type: 'WORKER_REMOVED'; workerId: string }
  | { type: 'WORKER_START_FAILED'; workerId: string }
  | { type: 'END_SESSION'; sessionId: string }
  | { type: 'CLOSE'; error?: PyvisorError }
  | { type: 'CHECKOUT_DEADLINE'; ticket: number }
  | { type: 'OVERFLOW_IDLE'; workerId: string }
  | { type: 'SESSION_IDLE'; sessionId: string };

export type SessionPoolEmitted =
  | { type: 'assigned'; ticket: number; workerId: string; sessionId: string | null }
  | { type: 'rejected'; ticket: number; error: PyvisorError }
  | { type: 'start_worker'; workerId: string; overflow: boolean }
  | { type: 'retire_worker'; workerId: string }
  | { type: 'session_start'; sessionId: string }
  | { type: 'session_expired'; sessionId: string; workers: string[] };

// ---- pure routing -------------------------------------------------------------------------

/** The idle worker a request should get now, or undefined if it must wait. */
export function pickWorker(context: SessionPoolContext, sessionId: string | null, target: string | null = null): Slot | undefined {
  if (target !== null) {
    const slot = context.slots.find((s) => s.id === target);
    return slot?.state === 'idle' ? slot : undefined;
  }
  const session = sessionId === null ? undefined : context.sessions[sessionId];
  const home = session?.lastWorker ?? null;
  if (context.config.affinity === 'strict' && home !== null) {
    const slot = context.slots.find((s) => s.id === home);
    return slot?.state === 'idle' ? slot : undefined;
  }
  if (context.config.affinity === 'prefer' && home !== null) {
    const slot = context.slots.find((s) => s.id === home && s.state === 'idle');
    if (slot) return slot;
  }
  // Permanent workers first, so overflow workers go idle and can be retired.
  return context.slots.find((s) => s.state === 'idle' && !s.overflow) ?? context.slots.find((s) => s.state === 'idle');
}

/** A strict session whose worker died can never be served again: fail it now. */
function lostPin(context: Pick<SessionPoolContext, 'config' | 'sessions'>, sessionId: string | null): string | null {
  if (context.config.affinity !== 'strict' || sessionId === null) return null;
  return context.sessions[sessionId]?.lostWorker ?? null;
}

/**
 * The loss has been reported: the session goes on unpinned, and its next request pins it
 * afresh to whichever worker serves it.
 */
function resetPin(sessions: Record<string, SessionEntry>, sessionId: string): Record<string, SessionEntry> {
  const session = sessions[sessionId];
  if (session) sessions[sessionId] = { ...session, lastWorker: null, lostWorker: null };
  return sessions;
}

const NEW_SESSION: SessionEntry = { lastWorker: null, workers: [], active: 0, lostWorker: null };

/** Nothing of the session runs or waits: it is idle, and its TTL clock may run. */
function isIdle(context: Pick<SessionPoolContext, 'sessions' | 'queue'>, sessionId: string): boolean {
  const session = context.sessions[sessionId];
  return !!session && session.active <= 0 && !context.queue.some((w) => w.sessionId === sessionId);
}

/** A targeted request can still be served by this worker: it exists and its process is not gone. */
function isAlive(context: Pick<SessionPoolContext, 'slots'>, workerId: string): boolean {
  const slot = context.slots.find((s) => s.id === workerId);
  return !!slot && slot.state !== 'down' && slot.state !== 'retiring';
}

function withSlot(slots: Slot[], id: string, patch: Partial<Slot>): Slot[] {
  return slots.map((s) => (s.id === id ? { ...s, ...patch } : s));
}

function touchSession(sessions: Record<string, SessionEntry>, sessionId: string | null, workerId: string, activeDelta: number): Record<string, SessionEntry> {
  if (sessionId === null) return sessions;
  const prev = sessions[sessionId];
  const workers = prev?.workers ?? [];
  sessions[sessionId] = {
    lastWorker: workerId,
    workers: workers.includes(workerId) ? workers : [...workers, workerId],
    active: (prev?.active ?? 0) + activeDelta,
    lostWorker: null,
  };
  return sessions;
}

/**
 * How many more workers to ask for, given the queue: lazy pools grow their permanent workers
 * first, then overflow workers, never past poolSize + maxOverflow, and never more than the
 * requests that have nobody to serve them.
 */
function growth(context: SessionPoolContext): { permanent: number; overflow: number } {
  const starting = context.slots.filter((s) => s.state === 'starting').length;
  // Requests that must run on one worker (targeted, or pinned under strict affinity) wait for it; only the others justify a new one.
  const pinned = (w: Waiting) =>
    w.workerId !== null || (context.config.affinity === 'strict' && w.sessionId !== null && !!context.sessions[w.sessionId]?.lastWorker);
  const unserved = context.queue.filter((w) => !pinned(w)).length - starting;
  if (unserved <= 0) return { permanent: 0, overflow: 0 };
  const permanentSlots = context.slots.filter((s) => !s.overflow).length;
  const permanent = Math.min(unserved, context.config.poolSize - permanentSlots);
  const overflowSlots = context.slots.filter((s) => s.overflow).length;
  const overflow = context.overflowBlocked ? 0 : Math.min(unserved - permanent, context.config.maxOverflow - overflowSlots);
  return { permanent: Math.max(0, permanent), overflow: Math.max(0, overflow) };
}

/** The slots to add for `growth`, and the start_worker events that ask for them. */
function growSlots(context: SessionPoolContext): { starts: SessionPoolEmitted[]; patch: Partial<SessionPoolContext> } {
  const { permanent, overflow } = growth(context);
  if (permanent === 0 && overflow === 0) return { starts: [], patch: {} };
  const slots = [...context.slots];
  const starts: SessionPoolEmitted[] = [];
  let nextPermanent = context.nextPermanent;
  let nextOverflow = context.nextOverflow;
  for (let i = 0; i < permanent; i++) {
    const id = `worker_${nextPermanent++}`;
    slots.push({ id, overflow: false, state: 'starting', ticket: null, sessionId: null });
    starts.push({ type: 'start_worker', workerId: id, overflow: false });
  }
  for (let i = 0; i < overflow; i++) {
    const id = `overflow_${nextOverflow++}`;
    slots.push({ id, overflow: true, state: 'starting', ticket: null, sessionId: null });
    starts.push({ type: 'start_worker', workerId: id, overflow: true });
  }
  return { starts, patch: { slots, nextPermanent, nextOverflow } };
}

/** A worker's process is gone, and every session's state in it with it. */
function loseWorker(sessions: Record<string, SessionEntry>, workerId: string): Record<string, SessionEntry> {
  for (const [id, s] of Object.entries(sessions)) {
    if (s.lastWorker !== workerId && !s.workers.includes(workerId)) continue;
    const workers = s.workers.filter((w) => w !== workerId);
    sessions[id] = s.lastWorker === workerId ? { ...s, lostWorker: workerId, workers } : { ...s, workers };
  }
  return sessions;
}

// ---- machine ------------------------------------------------------------------------------

export const sessionPoolMachine = setup({
  types: {
    context: {} as SessionPoolContext,
    events: {} as SessionPoolEvent,
    input: {} as SessionPoolInput,
    emitted: {} as SessionPoolEmitted,
  },
  actions: {
    checkout: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'CHECKOUT') return;
      const { ticket, sessionId } = event;
      const target = event.workerId ?? null;
      if (context.closed) {
        enqueue.emit({ type: 'rejected', ticket, error: new PoolClosedError() });
        return;
      }
      if (target !== null && !isAlive(context, target)) {
        enqueue.emit({ type: 'rejected', ticket, error: new SessionWorkerLostError(sessionId ?? '(none)', target) });
        return;
      }
      const lost = lostPin(context, sessionId);
      if (lost !== null) {
        enqueue.assign({ sessions: resetPin(context.sessions, sessionId!) });
        enqueue.emit({ type: 'rejected', ticket, error: new SessionWorkerLostError(sessionId!, lost) });
        return;
      }
      const slot = pickWorker(context, sessionId, target);
      if (!slot && context.queue.length >= context.config.maxQueue) {
        // Refused before it was accepted: a session it would have opened is not opened.
        enqueue.emit({ type: 'rejected', ticket, error: new PoolSaturatedError(context.config.maxQueue) });
        return;
      }
      let sessions = context.sessions;
      if (sessionId !== null) {
        if (!sessions[sessionId]) {
          sessions[sessionId] = { ...NEW_SESSION };
          enqueue.emit({ type: 'session_start', sessionId });
        }
        enqueue.cancel(`session-idle:${sessionId}`);
      }
      if (slot) {
        enqueue.assign({
          slots: withSlot(context.slots, slot.id, { state: 'busy', ticket, sessionId }),
          sessions: touchSession(sessions, sessionId, slot.id, 1),
        });
        enqueue.cancel(`overflow-idle:${slot.id}`);
        enqueue.emit({ type: 'assigned', ticket, workerId: slot.id, sessionId });
        return;
      }
      const queue = [...context.queue, { ticket, sessionId, timeoutMs: event.timeoutMs, workerId: target }];
      enqueue.assign({ queue, sessions });
      enqueue.cancel(`deadline:${ticket}`);
      enqueue.raise({ type: 'CHECKOUT_DEADLINE', ticket }, { id: `deadline:${ticket}`, delay: event.timeoutMs });
      const grown = growSlots({ ...context, queue, sessions });
      for (const start of grown.starts) enqueue.emit(start);
      enqueue.assign(grown.patch);
    }),
    grow: enqueueActions(({ context, enqueue }) => {
      // Nothing waits on the request path's common case: no copy of the context for nothing.
      if (context.queue.length === 0) return;
      const grown = growSlots(context);
      for (const start of grown.starts) enqueue.emit(start);
      if (grown.starts.length > 0) enqueue.assign(grown.patch);
    }),

    /** Hand idle workers to waiting requests, oldest first, each within its own rules. */
    serveQueue: enqueueActions(({ context, enqueue }) => {
      if (context.queue.length === 0) return;
      let slots = context.slots;
      let sessions = context.sessions;
      // One working view for the whole pass (not a copy of the context per waiting request).
      const view: SessionPoolContext = { ...context };
      const queue: Waiting[] = [];
      // Every request that waited for a lost worker hears of it; after this pass the pin is reset.
      const reported = new Set<string>();
      for (const waiting of context.queue) {
        view.slots = slots;
        view.sessions = sessions;
        const lost = lostPin(view, waiting.sessionId);
        if (lost !== null) {
          enqueue.cancel(`deadline:${waiting.ticket}`);
          enqueue.emit({ type: 'rejected', ticket: waiting.ticket, error: new SessionWorkerLostError(waiting.sessionId!, lost) });
          reported.add(waiting.sessionId!);
          continue;
        }
        if (waiting.workerId !== null && !isAlive(view, waiting.workerId)) {
          enqueue.cancel(`deadline:${waiting.ticket}`);
          enqueue.emit({ type: 'rejected', ticket: waiting.ticket, error: new SessionWorkerLostError(waiting.sessionId ?? '(none)', waiting.workerId) });
          continue;
        }
        const slot = pickWorker(view, waiting.sessionId, waiting.workerId);
        if (!slot) {
          queue.push(waiting);
          continue;
        }
        slots = withSlot(slots, slot.id, { state: 'busy', ticket: waiting.ticket, sessionId: waiting.sessionId });
        // endSession while this request waited ended the session: serving it starts a new one.
        if (waiting.sessionId !== null && !sessions[waiting.sessionId]) enqueue.emit({ type: 'session_start', sessionId: waiting.sessionId });
        sessions = touchSession(sessions, waiting.sessionId, slot.id, 1);
        enqueue.cancel(`deadline:${waiting.ticket}`);
        enqueue.cancel(`overflow-idle:${slot.id}`);
        enqueue.emit({ type: 'assigned', ticket: waiting.ticket, workerId: slot.id, sessionId: waiting.sessionId });
      }
      for (const sessionId of reported) {
        sessions = resetPin(sessions, sessionId);
        if (context.config.sessionTtlMs > 0 && isIdle({ sessions, queue }, sessionId)) armSessionTtl(enqueue, sessionId, context.config.sessionTtlMs);
      }
      enqueue.assign({ slots, sessions, queue });
    }),
    checkin: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'CHECKIN') return;
      const slot = context.slots.find((s) => s.id === event.workerId);
      if (!slot || slot.ticket !== event.ticket) return;
      const sessionId = slot.sessionId;
      const session = sessionId === null ? undefined : context.sessions[sessionId];
      const state: SlotState = event.workerLost ? 'down' : slot.state === 'busy' ? 'idle' : slot.state;
      enqueue.assign({
        slots: withSlot(context.slots, slot.id, { state, ticket: null, sessionId: null }),
        sessions: session ? Object.assign(context.sessions, { [sessionId!]: { ...session, active: session.active - 1 } }) : context.sessions,
      });
      if (session && context.config.sessionTtlMs > 0) armSessionTtl(enqueue, sessionId!, context.config.sessionTtlMs);
      if (event.workerLost) enqueue.assign(({ context: c }) => ({ sessions: loseWorker(c.sessions, slot.id) }));
      if (state === 'idle' && slot.overflow) armOverflowIdle(enqueue, slot.id, context.config.overflowIdleMs);
    }),
    workerUp: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'WORKER_UP') return;
      const slot = context.slots.find((s) => s.id === event.workerId);
      if (!slot) {
        // A worker the pool did not ask for (the supervisor's static children): adopt it.
        enqueue.assign({ slots: [...context.slots, { id: event.workerId, overflow: false, state: 'idle', ticket: null, sessionId: null }] });
      } else if (slot.state === 'starting' || slot.state === 'down') {
        enqueue.assign({ slots: withSlot(context.slots, slot.id, { state: 'idle' }), overflowBlocked: false });
        if (slot.overflow) armOverflowIdle(enqueue, slot.id, context.config.overflowIdleMs);
      }
    }),
    workerDown: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'WORKER_DOWN') return;
      const slot = context.slots.find((s) => s.id === event.workerId);
      if (!slot || slot.state === 'retiring') return;
      enqueue.assign({
        slots: withSlot(context.slots, slot.id, { state: slot.state === 'starting' ? 'starting' : 'down' }),
        sessions: loseWorker(context.sessions, slot.id),
      });
    }),
    workerRemoved: assign(({ context, event }) => {
      if (event.type !== 'WORKER_REMOVED' && event.type !== 'WORKER_START_FAILED') return {};
      // Its process is gone (a retired overflow worker): so is every session's state in it.
      return { slots: context.slots.filter((s) => s.id !== event.workerId), sessions: loseWorker(context.sessions, event.workerId) };
    }),
    cancel: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'CANCEL') return;
      const waiting = context.queue.find((w) => w.ticket === event.ticket);
      if (!waiting) return;
      enqueue.cancel(`deadline:${event.ticket}`);
      const queue = context.queue.filter((w) => w.ticket !== event.ticket);
      enqueue.assign({ queue });
      idleAfterLeaving(enqueue, { ...context, queue }, waiting.sessionId);
    }),
    deadline: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'CHECKOUT_DEADLINE') return;
      const waiting = context.queue.find((w) => w.ticket === event.ticket);
      if (!waiting) return;
      const queue = context.queue.filter((w) => w.ticket !== event.ticket);
      enqueue.assign({ queue });
      idleAfterLeaving(enqueue, { ...context, queue }, waiting.sessionId);
      const starting = context.slots.filter((s) => s.state === 'starting').length;
      enqueue.emit({
        type: 'rejected',
        ticket: event.ticket,
        error: new PoolTimeoutError(waiting.timeoutMs, `${context.queue.length - 1} others waiting${starting ? `, ${starting} workers still starting` : ''}`),
      });
    }),
    retireIfIdle: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'OVERFLOW_IDLE') return;
      const slot = context.slots.find((s) => s.id === event.workerId);
      if (!slot || slot.state !== 'idle') return;
      // Under strict affinity a worker that still holds a pinned session is kept: retiring it would lose that session.
      if (context.config.affinity === 'strict' && Object.values(context.sessions).some((s) => s.lastWorker === slot.id)) {
        // Look again later: once the session ends or expires, the worker can go.
        armOverflowIdle(enqueue, slot.id, context.config.overflowIdleMs);
        return;
      }
      enqueue.assign({ slots: withSlot(context.slots, slot.id, { state: 'retiring' }) });
      enqueue.emit({ type: 'retire_worker', workerId: slot.id });
    }),
    expireSession: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'SESSION_IDLE') return;
      const session = context.sessions[event.sessionId];
      // Not idle after all (a request of it runs or waits): its next checkin arms the TTL again.
      if (!session || !isIdle(context, event.sessionId)) return;
      enqueue.assign({ sessions: forgetSession(context.sessions, event.sessionId) });
      enqueue.emit({ type: 'session_expired', sessionId: event.sessionId, workers: session.workers });
    }),
    endSession: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'END_SESSION') return;
      enqueue.cancel(`session-idle:${event.sessionId}`);
      enqueue.assign({ sessions: forgetSession(context.sessions, event.sessionId) });
    }),
    close: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'CLOSE') return;
      for (const waiting of context.queue) {
        enqueue.cancel(`deadline:${waiting.ticket}`);
        enqueue.emit({ type: 'rejected', ticket: waiting.ticket, error: event.error ?? new PoolClosedError() });
      }
      enqueue.assign({ queue: [], closed: true });
    }),
  },
}).createMachine({
  id: 'sessionPool',
  context: ({ input }) => ({
    config: {
      poolSize: input.poolSize,
      maxOverflow: input.maxOverflow,
      maxQueue: input.maxQueue,
      affinity: input.affinity,
      lazy: input.lazy,
      overflowIdleMs: input.overflowIdleMs,
      sessionTtlMs: input.sessionTtlMs,
    },
    slots: input.initialWorkers.map((id) => ({ id, overflow: false, state: 'starting' as SlotState, ticket: null, sessionId: null })),
    queue: [],
    sessions: {},
    nextPermanent: input.initialWorkers.length + 1,
    nextOverflow: 1,
    closed: false,
    overflowBlocked: false,
  }),
  on: {
    CHECKOUT: { actions: 'checkout' },
    CHECKIN: { actions: ['checkin', 'serveQueue', 'grow'] },
    CANCEL: { actions: 'cancel' },
    WORKER_UP: { actions: ['workerUp', 'serveQueue'] },
    WORKER_DOWN: { actions: ['workerDown', 'serveQueue', 'grow'] },
    WORKER_REMOVED: { actions: ['workerRemoved', 'grow'] },
    WORKER_START_FAILED: { actions: ['workerRemoved', assign({ overflowBlocked: true })] },
    CHECKOUT_DEADLINE: { actions: 'deadline' },
    OVERFLOW_IDLE: { actions: 'retireIfIdle' },
    SESSION_IDLE: { actions: 'expireSession' },
    END_SESSION: { actions: 'endSession' },
    CLOSE: { actions: 'close' },
  },
});

/** The part of enqueueActions' `enqueue` the timer helpers use. */
interface Enqueue {
  cancel(id: string): void;
  raise(event: SessionPoolEvent, options: { id: string; delay: number }): void;
}

/** (Re)start a session's idle clock. A delayed event's id must be cancelled before reuse: XState keeps the old timer. */
function armSessionTtl(enqueue: Enqueue, sessionId: string, ttlMs: number): void {
  enqueue.cancel(`session-idle:${sessionId}`);
  enqueue.raise({ type: 'SESSION_IDLE', sessionId }, { id: `session-idle:${sessionId}`, delay: ttlMs });
}

function armOverflowIdle(enqueue: Enqueue, workerId: string, idleMs: number): void {
  enqueue.cancel(`overflow-idle:${workerId}`);
  enqueue.raise({ type: 'OVERFLOW_IDLE', workerId }, { id: `overflow-idle:${workerId}`, delay: idleMs });
}

/** A request left the queue unserved (deadline, abort): if its session is now idle, its TTL runs. */
function idleAfterLeaving(enqueue: Enqueue, context: SessionPoolContext, sessionId: string | null): void {
  if (sessionId === null || context.config.sessionTtlMs <= 0 || !isIdle(context, sessionId)) return;
  armSessionTtl(enqueue, sessionId, context.config.sessionTtlMs);
}

function forgetSession(sessions: Record<string, SessionEntry>, sessionId: string): Record<string, SessionEntry> {
  delete sessions[sessionId];
  return sessions;
}

export type SessionPoolActor = ActorRefFrom<typeof sessionPoolMachine>;
