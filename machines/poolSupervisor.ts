/**
 * The root of a pool's supervision tree, one_for_one over its three children:
 *
 *   pool ─┬─ sessionPool        (routing; its queue and sessions cannot be rebuilt, so its
 *         │                      failure is significant: the pool shuts down)
 *         ├─ workers            (a ./supervisor.ts instance over the Python workers; its
 *         │                      escalation ends the pool)
 *         └─ monitor            (stateless; restarted when it fails)
 *
 * Each child lives in its own parallel region so that restarting one never touches the others.
 */
import { assign, emit, sendTo, setup, type AnyActorLogic } from 'xstate';
import type { Failure } from './failure.js';
import type { SupervisorOutput } from './supervisor.js';

export interface PoolSupervisorInput {
  sessionPool: Record<string, unknown>;
  workers: Record<string, unknown>;
  monitor: Record<string, unknown>;
}

export type PoolSupervisorEvent = { type: 'STOP' } | { type: 'TICK'; n: number };

export interface PoolSupervisorContext extends PoolSupervisorInput {
  monitorRestarts: number;
  escalation: Failure | null;
}

export const poolSupervisorMachine = setup({
  types: {
    context: {} as PoolSupervisorContext,
    input: {} as PoolSupervisorInput,
    events: {} as PoolSupervisorEvent,
    emitted: {} as { type: 'closed'; escalation: Failure | null } | { type: 'tick'; n: number },
    output: {} as { escalation: Failure | null },
  },
  actors: {
    // All three are provided by src/pool.ts so that the workers carry the right process actor.
    sessionPool: undefined as unknown as AnyActorLogic,
    workerSupervisor: undefined as unknown as AnyActorLogic,
    monitor: undefined as unknown as AnyActorLogic,
  },
}).createMachine({
  id: 'pool',
  context: ({ input }) => ({ ...input, monitorRestarts: 0, escalation: null }),
  initial: 'running',
  states: {
    running: {
      type: 'parallel',
      on: {
        STOP: 'stopping',
        TICK: { actions: emit(({ event }) => ({ type: 'tick' as const, n: event.type === 'TICK' ? event.n : 0 })) },
      },
      states: {
        sessionPool: {
          initial: 'up',
          states: {
            up: {
              invoke: { id: 'sessionPool', systemId: 'sessionPool', src: 'sessionPool', input: ({ context }: { context: PoolSupervisorContext }) => context.sessionPool, onError: '#pool.stopping' },
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
    // The worker supervisor outlives `running` so that stopping can drain it in order.
    stopping: {
      entry: sendTo('workers', { type: 'STOP' }),
      on: {},
    },
    closed: {
      type: 'final',
      entry: emit(({ context }) => ({ type: 'closed' as const, escalation: context.escalation })),
    },
  },
  invoke: {
    id: 'workers',
    systemId: 'workers',
    src: 'workerSupervisor',
    input: ({ context }: { context: PoolSupervisorContext }) => context.workers,
    onDone: {
      target: '.closed',
      actions: assign({ escalation: ({ event }) => (event.output as SupervisorOutput).error ?? null }),
    },
  },
  output: ({ context }) => ({ escalation: context.escalation }),
});
