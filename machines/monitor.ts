/**
 * The pool monitor: a metronome on the actor system's clock. Every `intervalMs` it sends TICK
 * to its parent, the pool supervisor, which emits it as `tick`; src/pool.ts answers a tick by
 * pinging idle workers and checking recycle limits. Going through the parent means a restarted
 * monitor is heard exactly like the first one.
 * Keeping the timer here (and not in src/) is what lets the simulated clock drive health
 * checks in tests.
 */
import { assign, sendParent, setup } from 'xstate';

export interface MonitorInput {
  /** ms between ticks; 0 disables the monitor. */
  intervalMs: number;
}

export const monitorMachine = setup({
  types: {
    context: {} as { intervalMs: number; ticks: number },
    input: {} as MonitorInput,

  },
  delays: {
    interval: ({ context }) => context.intervalMs,
  },
  guards: {
    enabled: ({ context }) => context.intervalMs > 0,
  },
}).createMachine({
  id: 'monitor',
  context: ({ input }) => ({ intervalMs: input.intervalMs, ticks: 0 }),
  initial: 'deciding',
  states: {
    deciding: {
      always: [{ guard: 'enabled', target: 'watching' }, { target: 'off' }],
    },
    watching: {
      after: {
        interval: {
          target: 'watching',
          reenter: true,
          actions: [assign({ ticks: ({ context }) => context.ticks + 1 }), sendParent(({ context }) => ({ type: 'TICK' as const, n: context.ticks }))],
        },
      },
    },
    off: {},
  },
});
