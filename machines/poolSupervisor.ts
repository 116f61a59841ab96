/**
 * The root of a pool's supervision tree, one_for_one over its three children:
 *
 *   pool ─┬─ sessionPool        (membership and sessions; its failure is significant: the pool
 *         │                      shuts down, since its registry cannot be rebuilt)
 *         ├─ workers            (a ./supervisor.ts instance over the Python workers)
 *         └─ monitor            (stateless; restarted when it fails)
 *
 * OTP's nested supervision: when the worker tier exceeds its restart intensity it ends
 * (escalates), and this root restarts it — fresh workers from the tier's initial specs —
 * under the root's own intensity (`maxRestarts` tier restarts within `periodMs`). Only when
 * the root's budget is spent too does the pool close, with an `ESCALATED` failure whose
 * message leads with the root cause. A tier that escalates before it was ever fully up is a
 * configuration that cannot start workers (a missing interpreter, a handler that fails at
 * import): restarting it would repeat the same failure, so the pool closes at once with the
 * tier's own escalation. Callers waiting meanwhile keep waiting within their own
 * deadlines: nothing is lost with the tier but what ran on it.
 *
 * Each child lives in its own region of `active`, so restarting one never touches the
 * others; the tier's region outlives STOP (the `control` region moves to `stopping`) so that
 * stopping drains it in order.
 */
import { assign, emit, enqueueActions, not, sendTo, setup, stateIn, type AnyActorLogic } from 'xstate';
import { escalated, type Failure } from './failure.js';
import type { SupervisorOutput } from './supervisor.js';

export interface PoolSupervisorInput {
  sessionPool: Record<string, unknown>;
  workers: Record<string, unknown>;
  monitor: Record<string, unknown>;
  /** The root's own intensity: tier restarts allowed within `periodMs` before the pool closes. */
  maxRestarts?: number;
  periodMs?: number;
}

export type PoolSupervisorEvent =
  | { type: 'STOP' }
  | { type: 'TICK'; n: number }
  | { type: 'TIER_RESTART_EXPIRED' }
  /** Every initial worker has been healthy once: from now on a failing tier is worth restarting. */
  | { type: 'WORKERS_UP' };

export interface PoolSupervisorContext extends PoolSupervisorInput {
  maxRestarts: number;
  periodMs: number;
  monitorRestarts: number;
  /** Tier restarts within the current window (OTP's add_restart, kept by the clock). */
  recentTierRestarts: number;
  /** Tier restarts over the pool's life. */
  tierRestarts: number;
  /** Why the tier last escalated. */
  lastTierFailure: Failure | null;
  /** The workers were ever all up (WORKERS_UP): until then a tier that escalates is a configuration that cannot start workers. */
  everStarted: boolean;
  escalation: Failure | null;
}

export type PoolSupervisorEmitted =
  | { type: 'closed'; escalation: Failure | null }
  | { type: 'tick'; n: number }
  | { type: 'tier_restarted'; failure: Failure; restarts: number };

const tierOutput = (event: unknown): SupervisorOutput => (event as { output: SupervisorOutput }).output;

export const poolSupervisorMachine = setup({
  types: {
    context: {} as PoolSupervisorContext,
    input: {} as PoolSupervisorInput,
    events: {} as PoolSupervisorEvent,
    emitted: {} as PoolSupervisorEmitted,
    output: {} as { escalation: Failure | null },
  },
  actors: {
    // All three are provided by src/local/pool.ts so that the workers carry the right process actor.
    sessionPool: undefined as unknown as AnyActorLogic,
    workerSupervisor: undefined as unknown as AnyActorLogic,
    monitor: undefined as unknown as AnyActorLogic,
  },
  delays: {
    period: ({ context }) => context.periodMs,
  },
  guards: {
    tierEscalated: ({ event }) => tierOutput(event).reason === 'escalated',
    rootBudgetLeft: ({ context }) => context.recentTierRestarts < context.maxRestarts,
    everStarted: ({ context }) => context.everStarted,
  },
  actions: {
    restartTier: enqueueActions(({ context, enqueue }) => {
      const failure = context.lastTierFailure;
      const restarts = context.tierRestarts + 1;
      enqueue.assign({ recentTierRestarts: context.recentTierRestarts + 1, tierRestarts: restarts, lastTierFailure: failure });
      enqueue.raise({ type: 'TIER_RESTART_EXPIRED' }, { delay: context.periodMs });
      if (failure) enqueue.emit({ type: 'tier_restarted', failure, restarts });
    }),
    /** The pool never came up: restarting the tier would only repeat the same start failure. */
    giveUpAtStart: assign(({ context }) => ({ escalation: context.lastTierFailure })),
    giveUp: assign(({ context }) => ({ escalation: escalated('pool', context.maxRestarts, context.periodMs, context.lastTierFailure) })),
    recordTierFailure: assign(({ event }) => ({ lastTierFailure: tierOutput(event).error ?? null })),
  },
}).createMachine({
  id: 'pool',
  context: ({ input }) => ({
    ...input,
    maxRestarts: input.maxRestarts ?? 3,
    periodMs: input.periodMs ?? 30_000,
    monitorRestarts: 0,
    recentTierRestarts: 0,
    tierRestarts: 0,
    lastTierFailure: null,
    everStarted: false,
    escalation: null,
  }),
  initial: 'active',
  on: {
    TIER_RESTART_EXPIRED: { actions: assign({ recentTierRestarts: ({ context }) => Math.max(0, context.recentTierRestarts - 1) }) },
    WORKERS_UP: { actions: assign({ everStarted: true }) },
  },
  states: {
    active: {
      type: 'parallel',
      states: {
        control: {
          initial: 'running',
          states: {
            running: {
              on: {
                STOP: 'stopping',
                TICK: { actions: emit(({ event }) => ({ type: 'tick' as const, n: event.type === 'TICK' ? event.n : 0 })) },
              },
            },
            stopping: {
              entry: sendTo('workers', { type: 'STOP' }),
            },
          },
        },
        workers: {
          initial: 'up',
          states: {
            up: {
              invoke: {
                id: 'workers',
                systemId: 'workers',
                src: 'workerSupervisor',
                input: ({ context }: { context: PoolSupervisorContext }) => context.workers,
                onDone: [
                  // Stopping: the tier drained in order (or failed doing so); nothing is restarted now.
                  { guard: stateIn('#pool.active.control.stopping'), target: '#pool.closed' },
                  { guard: 'tierEscalated', target: 'restarting', actions: 'recordTierFailure' },
                  { target: '#pool.closed' },
                ],
              },
            },
            // A transient state so that `up` is entered afresh: a new tier actor with fresh workers.
            restarting: {
              always: [
                { guard: not('everStarted'), target: '#pool.closed', actions: 'giveUpAtStart' },
                { guard: 'rootBudgetLeft', target: 'up', actions: 'restartTier' },
                { target: '#pool.closed', actions: 'giveUp' },
              ],
            },
          },
        },
        sessionPool: {
          initial: 'up',
          states: {
            up: {
              invoke: { id: 'sessionPool', systemId: 'sessionPool', src: 'sessionPool', input: ({ context }: { context: PoolSupervisorContext }) => context.sessionPool, onError: '#pool.closed' },
            },
          },
        },
        monitor: {
          initial: 'up',
          states: {
            up: {
              invoke: {
                id: 'monitor',
                systemId: 'monitor',
                src: 'monitor',
                input: ({ context }: { context: PoolSupervisorContext }) => context.monitor,
                onError: { target: 'up', reenter: true, actions: assign({ monitorRestarts: ({ context }) => context.monitorRestarts + 1 }) },
              },
            },
          },
        },
      },
    },
    closed: {
      type: 'final',
      entry: emit(({ context }) => ({ type: 'closed' as const, escalation: context.escalation })),
    },
  },
  output: ({ context }) => ({ escalation: context.escalation }),
});
