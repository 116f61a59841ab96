/**
 * The XState objects pyvisor hands out (`pool.actor`, `pool.observeInspection()`, the
 * simulation's machine and process logic), typed by what pyvisor promises about them rather
 * than by xstate's generics. Why: the public .d.ts files import nothing from xstate, whose own
 * declarations do not compile in an app with `exactOptionalPropertyTypes` and no `skipLibCheck`
 * (TS2344 inside xstate's setup.d.ts). At run time they are the real XState actors, events and
 * logic: a tool that wants xstate's types casts, e.g. `pool.actor as unknown as AnyActorRef`.
 * test/fast/types.test.ts checks both halves: no xstate in the public declarations, and the
 * real objects assignable to these views.
 */

/** A snapshot as XState's actors have it. */
export interface ActorSnapshotView {
  status: 'active' | 'done' | 'error' | 'stopped';
  /** A machine's state value (a string, or an object for nested and parallel states). */
  value?: unknown;
  context?: unknown;
  children?: Record<string, ActorRefView | undefined>;
  output?: unknown;
  error?: unknown;
}

/** An XState actor reference. */
export interface ActorRefView {
  readonly id: string;
  /** Unique within the actor system. */
  readonly sessionId: string;
  getSnapshot(): ActorSnapshotView;
  subscribe(observer: (snapshot: ActorSnapshotView) => void): { unsubscribe(): void };
  /** The pool's actor system: `system.get('workers')`, `system.get('worker_1')`... */
  readonly system: { get(systemId: string): ActorRefView | undefined };
}

/** The actor an inspection event is about (XState's ActorRefLike). */
export interface InspectedActorView {
  readonly sessionId: string;
  getSnapshot(): unknown;
  send(event: { type: string }): void;
}

/** An event as inspection reports it. */
export interface EventView {
  type: string;
  [key: string]: unknown;
}

/** One XState inspection event (what `inspect` observers and `observeInspection` listeners get). */
export type InspectionEventView =
  | { type: '@xstate.actor'; rootId: string; actorRef: InspectedActorView }
  /** `sourceRef`: who sent it (undefined for an event from outside the system). */
  | { type: '@xstate.event'; rootId: string; actorRef: InspectedActorView; sourceRef: InspectedActorView | undefined; event: EventView }
  | { type: '@xstate.snapshot' | '@xstate.transition' | '@xstate.microstep'; rootId: string; actorRef: InspectedActorView; event: EventView; snapshot: ActorSnapshotView }
  | { type: '@xstate.action'; rootId: string; actorRef: InspectedActorView; action: { type: string; params: unknown } };

/**
 * XState actor logic (`createActor(logic)`, `machine.provide({ actors: { pythonProcess: logic } })`).
 * Opaque here; cast to xstate's `AnyActorLogic` to use it with XState's own functions.
 */
export interface ActorLogicView {
  readonly config?: unknown;
  transition: (...args: never[]) => unknown;
}
