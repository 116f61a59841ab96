/**
 * The session pool: the pool's membership and its sessions — the decisions that need a mailbox
 * and a clock. It decides which workers to start and retire, remembers which worker holds each
 * session's state, and expires idle sessions. It never sees a request: the dispatcher
 * (src/local) routes and queues them over live state, and tells this machine only what it
 * decides on —
 *
 *   DEMAND           requests are waiting that no worker can take (growth)
 *   SESSION_SEEN     the first request of a new session
 *   SESSION_PLACED   a session ran on a worker it was not on before ('prefer', 'strict')
 *   SESSION_HELD     a worker now holds, or no longer holds, a session's state ('auto')
 *   WORKER_UP/DOWN/REMOVED/START_FAILED   membership, from the supervisor's children
 *   *_IDLE_FOR       the answer to this machine's own idle checks (TTL, overflow retirement)
 *
 * so an uncontended request costs it nothing. Its timers ask, live state answers: when a
 * session's TTL or an overflow worker's idle time falls due, it emits a check, and the pool
 * answers with how long the session or worker has really been idle.
 */
import { assign, enqueueActions, setup, type ActorRefFrom } from 'xstate';

export type SlotState = 'starting' | 'up' | 'down' | 'retiring';
/** Why a session's worker went away (SESSION_WORKER_LOST's `reason`). */
export type LossReason = 'crashed' | 'recycled' | 'timeout' | 'removed';

export interface Slot {
  id: string;
  overflow: boolean;
  state: SlotState;
}

export interface SessionEntry {
  /** Where affinity sends it: the worker that served it last ('prefer', 'strict') or that holds its state ('auto'). */
  home: string | null;
  /** Its home's process holds state for it (the worker said so in a reply). */
  held: boolean;
  /** Every worker whose process may hold state of this session (what endSession must clean). */
  workers: string[];
  /** Set when the session's home went away: its Python state there is gone. */
  lost: { workerId: string; reason: LossReason } | null;
}

export interface SessionPoolInput {
  poolSize: number;
  maxOverflow: number;
  /** Pinned sessions keep an overflow worker from being retired under 'strict' (and under 'auto', those whose state it holds). */
  affinity: string;
  /** ms an overflow worker may sit idle before it is retired. */
  overflowIdle: number;
  /** ms an idle session is kept (and then cleaned in Python); 0 = never. */
  sessionTtl: number;
  /** Ids of the workers the supervisor starts at once (non-lazy pools). */
  initialWorkers: string[];
}

export type SessionPoolConfig = Omit<SessionPoolInput, 'initialWorkers'>;

/** Few top-level keys on purpose: see the note on WorkerContext (machines/worker.ts). */
export interface SessionPoolContext {
  config: SessionPoolConfig;
  slots: Slot[];
  /**
   * The session registry, updated in place (entries are replaced, never mutated). Copying it
   * on every change would make each change O(sessions). Nothing keeps an old snapshot's
   * registry, and the machine is never transitioned speculatively, so the in-place update is
   * not observable.
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
  | { type: 'DEMAND'; unserved: number }
  /** The first request of a session the registry does not know. */
  | { type: 'SESSION_SEEN'; sessionId: string }
  | { type: 'SESSION_PLACED'; sessionId: string; workerId: string }
  /** A worker's reply said it now holds (or no longer holds) state for the session. */
  | { type: 'SESSION_HELD'; sessionId: string; workerId: string; held: boolean }
  | { type: 'SESSION_LOSS_REPORTED'; sessionId: string }
  | { type: 'END_SESSION'; sessionId: string }
  | { type: 'SESSION_IDLE_FOR'; sessionId: string; idleMs: number }
  | { type: 'WORKER_IDLE_FOR'; workerId: string; idleMs: number }
  | { type: 'WORKER_UP'; workerId: string }
  | { type: 'WORKER_DOWN'; workerId: string; reason: LossReason }
  | { type: 'WORKER_REMOVED'; workerId: string }
  | { type: 'WORKER_START_FAILED'; workerId: string }
  | { type: 'SESSION_TTL'; sessionId: string }
  | { type: 'OVERFLOW_IDLE'; workerId: string }
  | { type: 'CLOSE' };

export type SessionPoolEmitted =
  | { type: 'start_worker'; workerId: string; overflow: boolean }
  | { type: 'retire_worker'; workerId: string }
  | { type: 'session_start'; sessionId: string }
  | { type: 'session_expired'; sessionId: string; workers: string[] }
  /** How long has this session been idle? Answer with SESSION_IDLE_FOR. */
  | { type: 'session_idle_check'; sessionId: string }
  /** How long has this overflow worker been idle? Answer with WORKER_IDLE_FOR. */
  | { type: 'worker_idle_check'; workerId: string };

const NEW_SESSION: SessionEntry = { home: null, held: false, workers: [], lost: null };

function withSlot(slots: Slot[], id: string, patch: Partial<Slot>): Slot[] {
  return slots.map((s) => (s.id === id ? { ...s, ...patch } : s));
}

/**
 * How many more workers to ask for: permanent ones first (lazy pools), then overflow, never
 * past poolSize + maxOverflow, never more than the waiting requests nobody is starting for.
 */
export function growth(context: SessionPoolContext, unserved: number): { permanent: number; overflow: number } {
  const starting = context.slots.filter((s) => s.state === 'starting').length;
  const needed = unserved - starting;
  if (needed <= 0) return { permanent: 0, overflow: 0 };
  const permanent = Math.max(0, Math.min(needed, context.config.poolSize - context.slots.filter((s) => !s.overflow).length));
  const overflowRoom = context.config.maxOverflow - context.slots.filter((s) => s.overflow).length;
  const overflow = context.overflowBlocked ? 0 : Math.max(0, Math.min(needed - permanent, overflowRoom));
  return { permanent, overflow };
}

/** A worker's process is gone, and every session's state in it with it. */
function loseWorker(sessions: Record<string, SessionEntry>, workerId: string, reason: LossReason): Record<string, SessionEntry> {
  for (const [id, s] of Object.entries(sessions)) {
    if (s.home !== workerId && !s.workers.includes(workerId)) continue;
    const workers = s.workers.filter((w) => w !== workerId);
    sessions[id] = s.home === workerId ? { home: s.home, held: false, workers, lost: { workerId, reason } } : { ...s, workers };
  }
  return sessions;
}

export const sessionPoolMachine = setup({
  types: {
    context: {} as SessionPoolContext,
    events: {} as SessionPoolEvent,
    input: {} as SessionPoolInput,
    emitted: {} as SessionPoolEmitted,
  },
  actions: {
    grow: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'DEMAND' || context.closed) return;
      const { permanent, overflow } = growth(context, event.unserved);
      if (permanent === 0 && overflow === 0) return;
      const slots = [...context.slots];
      let { nextPermanent, nextOverflow } = context;
      for (let i = 0; i < permanent; i++) {
        const id = `worker_${nextPermanent++}`;
        slots.push({ id, overflow: false, state: 'starting' });
        enqueue.emit({ type: 'start_worker', workerId: id, overflow: false });
      }
      for (let i = 0; i < overflow; i++) {
        const id = `overflow_${nextOverflow++}`;
        slots.push({ id, overflow: true, state: 'starting' });
        enqueue.emit({ type: 'start_worker', workerId: id, overflow: true });
      }
      enqueue.assign({ slots, nextPermanent, nextOverflow });
    }),
    open: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'SESSION_SEEN' || context.sessions[event.sessionId]) return;
      context.sessions[event.sessionId] = { ...NEW_SESSION };
      enqueue.emit({ type: 'session_start', sessionId: event.sessionId });
      if (context.config.sessionTtl > 0) armSessionTtl(enqueue, event.sessionId, context.config.sessionTtl);
    }),
    place: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'SESSION_PLACED') return;
      const prev = context.sessions[event.sessionId];
      // Ended while its request waited: serving that request starts the session anew.
      if (!prev) enqueue.emit({ type: 'session_start', sessionId: event.sessionId });
      const workers = prev?.workers ?? [];
      context.sessions[event.sessionId] = {
        home: event.workerId,
        held: prev?.home === event.workerId ? prev.held : false,
        workers: workers.includes(event.workerId) ? workers : [...workers, event.workerId],
        lost: null,
      };
      if (!prev && context.config.sessionTtl > 0) armSessionTtl(enqueue, event.sessionId, context.config.sessionTtl);
    }),
    hold: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'SESSION_HELD') return;
      const prev = context.sessions[event.sessionId];
      if (!prev && !event.held) return;
      if (!prev) enqueue.emit({ type: 'session_start', sessionId: event.sessionId });
      const workers = prev?.workers ?? [];
      context.sessions[event.sessionId] = event.held
        ? { home: event.workerId, held: true, workers: workers.includes(event.workerId) ? workers : [...workers, event.workerId], lost: null }
        : { home: prev!.home === event.workerId ? null : prev!.home, held: prev!.home === event.workerId ? false : prev!.held, workers: workers.filter((w) => w !== event.workerId), lost: prev!.lost };
      if (!prev && context.config.sessionTtl > 0) armSessionTtl(enqueue, event.sessionId, context.config.sessionTtl);
    }),
    /** The loss has been reported: the session goes on unpinned, and its next request pins it afresh. */
    resetPin: ({ context, event }) => {
      if (event.type !== 'SESSION_LOSS_REPORTED') return;
      const session = context.sessions[event.sessionId];
      if (session) context.sessions[event.sessionId] = { ...session, home: null, held: false, lost: null };
    },
    endSession: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'END_SESSION') return;
      enqueue.cancel(`session-ttl:${event.sessionId}`);
      delete context.sessions[event.sessionId];
    }),
    checkSession: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'SESSION_TTL' || !context.sessions[event.sessionId]) return;
      enqueue.emit({ type: 'session_idle_check', sessionId: event.sessionId });
    }),
    expireOrWait: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'SESSION_IDLE_FOR') return;
      const session = context.sessions[event.sessionId];
      if (!session) return;
      const ttl = context.config.sessionTtl;
      if (event.idleMs < ttl) {
        armSessionTtl(enqueue, event.sessionId, ttl - event.idleMs);
        return;
      }
      delete context.sessions[event.sessionId];
      enqueue.emit({ type: 'session_expired', sessionId: event.sessionId, workers: session.workers });
    }),
    workerUp: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'WORKER_UP') return;
      const slot = context.slots.find((s) => s.id === event.workerId);
      if (!slot) {
        // A worker the pool did not ask for (the supervisor's static children): adopt it.
        enqueue.assign({ slots: [...context.slots, { id: event.workerId, overflow: false, state: 'up' }] });
        return;
      }
      if (slot.state !== 'starting' && slot.state !== 'down') return;
      enqueue.assign({ slots: withSlot(context.slots, slot.id, { state: 'up' }), overflowBlocked: false });
      if (slot.overflow) armOverflowIdle(enqueue, slot.id, context.config.overflowIdle);
    }),
    workerDown: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'WORKER_DOWN') return;
      const slot = context.slots.find((s) => s.id === event.workerId);
      if (!slot || slot.state === 'retiring') return;
      enqueue.assign({
        slots: withSlot(context.slots, slot.id, { state: slot.state === 'starting' ? 'starting' : 'down' }),
        sessions: loseWorker(context.sessions, slot.id, event.reason),
      });
    }),
    workerRemoved: assign(({ context, event }) => {
      if (event.type !== 'WORKER_REMOVED' && event.type !== 'WORKER_START_FAILED') return {};
      // Its process is gone (a retired overflow worker): so is every session's state in it.
      return { slots: context.slots.filter((s) => s.id !== event.workerId), sessions: loseWorker(context.sessions, event.workerId, 'removed') };
    }),
    checkOverflow: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'OVERFLOW_IDLE') return;
      const slot = context.slots.find((s) => s.id === event.workerId);
      if (slot?.state === 'up') enqueue.emit({ type: 'worker_idle_check', workerId: slot.id });
    }),
    retireOrWait: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'WORKER_IDLE_FOR') return;
      const slot = context.slots.find((s) => s.id === event.workerId);
      if (!slot || !slot.overflow || slot.state !== 'up') return;
      const idle = context.config.overflowIdle;
      // Under strict affinity a worker that still holds a pinned session is kept: retiring it would lose that session.
      const pinned = Object.values(context.sessions).some((s) => s.home === slot.id && (context.config.affinity === 'strict' || (context.config.affinity === 'auto' && s.held)));
      if (event.idleMs < idle || pinned) {
        armOverflowIdle(enqueue, slot.id, pinned ? idle : idle - event.idleMs);
        return;
      }
      enqueue.assign({ slots: withSlot(context.slots, slot.id, { state: 'retiring' }) });
      enqueue.emit({ type: 'retire_worker', workerId: slot.id });
    }),
  },
}).createMachine({
  id: 'sessionPool',
  context: ({ input }) => ({
    config: {
      poolSize: input.poolSize,
      maxOverflow: input.maxOverflow,
      affinity: input.affinity,
      overflowIdle: input.overflowIdle,
      sessionTtl: input.sessionTtl,
    },
    slots: input.initialWorkers.map((id) => ({ id, overflow: false, state: 'starting' as SlotState })),
    sessions: {},
    nextPermanent: input.initialWorkers.length + 1,
    nextOverflow: 1,
    closed: false,
    overflowBlocked: false,
  }),
  on: {
    DEMAND: { actions: 'grow' },
    SESSION_SEEN: { actions: 'open' },
    SESSION_PLACED: { actions: 'place' },
    SESSION_HELD: { actions: 'hold' },
    SESSION_LOSS_REPORTED: { actions: 'resetPin' },
    END_SESSION: { actions: 'endSession' },
    SESSION_TTL: { actions: 'checkSession' },
    SESSION_IDLE_FOR: { actions: 'expireOrWait' },
    WORKER_UP: { actions: 'workerUp' },
    WORKER_DOWN: { actions: 'workerDown' },
    WORKER_REMOVED: { actions: 'workerRemoved' },
    WORKER_START_FAILED: { actions: ['workerRemoved', assign({ overflowBlocked: true })] },
    OVERFLOW_IDLE: { actions: 'checkOverflow' },
    WORKER_IDLE_FOR: { actions: 'retireOrWait' },
    CLOSE: { actions: assign({ closed: true }) },
  },
});

/** The part of enqueueActions' `enqueue` the timer helpers use. */
interface Enqueue {
  cancel(id: string): void;
  raise(event: SessionPoolEvent, options: { id: string; delay: number }): void;
}

/** (Re)start a session's idle clock. A delayed event's id must be cancelled before reuse: XState keeps the old timer. */
function armSessionTtl(enqueue: Enqueue, sessionId: string, ms: number): void {
  enqueue.cancel(`session-ttl:${sessionId}`);
  enqueue.raise({ type: 'SESSION_TTL', sessionId }, { id: `session-ttl:${sessionId}`, delay: ms });
}

function armOverflowIdle(enqueue: Enqueue, workerId: string, ms: number): void {
  enqueue.cancel(`overflow-idle:${workerId}`);
  enqueue.raise({ type: 'OVERFLOW_IDLE', workerId }, { id: `overflow-idle:${workerId}`, delay: ms });
}

export type SessionPoolActor = ActorRefFrom<typeof sessionPoolMachine>;
