/**
 * The supervision vocabulary the pool's options share with ./supervisor.ts. A file of its own,
 * importing nothing, so that the options' public declarations never reach xstate's (see
 * src/core/actorView.ts for why that matters).
 */
export type RestartType = 'permanent' | 'transient' | 'temporary';
export type Strategy = 'one_for_one' | 'one_for_all' | 'rest_for_one';
