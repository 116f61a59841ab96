/**
 * Following the supervision tree: the worker tier's child list decides which workers exist,
 * and each worker machine's state decides what its handle may do. This keeps the handles
 * bound to the current actors (a restarted tier brings new ones), tells the session pool of
 * membership (WORKER_UP/DOWN/REMOVED/START_FAILED), and wakes the dispatcher when a worker
 * can serve again or demand may need a new one.
 */
import type { AnyActorRef, Subscription } from 'xstate';
import type { SessionPoolEvent } from '../../machines/sessionPool.js';
import type { SupervisorContext } from '../../machines/supervisor.js';
import type { WorkerContext } from '../../machines/worker.js';
import { workerStateName } from '../../machines/workerStates.js';
import type { Dispatcher } from './dispatcher.js';
import type { Counters } from './stats.js';
import type { WorkerHandle } from './workerHandle.js';

export interface TreeHost {
  readonly dispatcher: Dispatcher;
  readonly counters: Counters;
  /** The handle of a worker id (made by the pool's worker spec, or adopted). */
  handleOf(id: string): WorkerHandle;
  /** A worker left the tree: its handle is no longer the pool's. */
  forget(id: string): void;
  tell(event: SessionPoolEvent): void;
  /** A worker machine moved (telemetry). */
  moved(workerId: string, from: string, to: string, pid: number | null): void;
  /** Some worker became healthy: the pool may now be ready. */
  checkReady(): void;
}

interface Tracked {
  handle: WorkerHandle;
  ref: AnyActorRef;
  subscription: Subscription;
  /** Counted as up by the session pool (WORKER_UP sent). */
  up: boolean;
}

export class TreeFollower {
  /** The worker tier followed now (a restarted tier is a new actor). */
  tier: AnyActorRef;
  private readonly tracked = new Map<string, Tracked>();
  private tierSubscription: Subscription | null = null;
  private readonly host: TreeHost;

  constructor(tier: AnyActorRef, host: TreeHost) {
    this.tier = tier;
    this.host = host;
  }

  /** Follow `tier`'s child list from now on; `now`: read its current one at once. */
  follow(tier: AnyActorRef, now: boolean): void {
    this.tierSubscription?.unsubscribe();
    this.tier = tier;
    this.tierSubscription = tier.subscribe((snapshot: { context: SupervisorContext }) => {
      if (tier === this.tier) this.sync(snapshot.context);
    });
    if (now) this.sync((tier.getSnapshot() as { context: SupervisorContext }).context);
  }

  /** The workers of the tree with their current actors, in start order. */
  workers(): Array<{ handle: WorkerHandle; ref: AnyActorRef }> {
    return [...this.tracked.values()];
  }

  unsubscribeAll(): void {
    this.tierSubscription?.unsubscribe();
    for (const { subscription } of this.tracked.values()) subscription.unsubscribe();
  }

  /** Listen to new workers, forget removed ones. */
  sync(context: SupervisorContext): void {
    // A tier that escalated is draining: the root restarts it (or gives up, and says so).
    if (context.escalation) {
      for (const { handle } of this.tracked.values()) handle.draining = true;
      return;
    }
    this.host.checkReady();
    const present = new Set<string>();
    for (const child of context.children) {
      present.add(child.spec.id);
      if (this.tracked.get(child.spec.id)?.ref === child.ref) continue;
      this.track(child.spec.id, child.ref);
    }
    for (const [id, tracked] of this.tracked) {
      if (present.has(id)) continue;
      tracked.subscription.unsubscribe();
      this.tracked.delete(id);
      this.host.forget(id);
      this.host.counters.forget(id);
      // One that never came up failed to start: the session pool must not simply ask for another.
      this.host.tell({ type: tracked.handle.everHealthy ? 'WORKER_REMOVED' : 'WORKER_START_FAILED', workerId: id });
      this.host.moved(id, tracked.handle.state, 'removed', null);
      // Requests only it could serve (its cleanup) are told now; the rest may need a new worker.
      this.host.dispatcher.serve();
      this.host.dispatcher.demand();
    }
  }

  private track(id: string, ref: AnyActorRef): void {
    this.tracked.get(id)?.subscription.unsubscribe();
    const handle = this.host.handleOf(id);
    handle.bind(ref);
    const tracked: Tracked = { handle, ref, subscription: null as unknown as Subscription, up: false };
    this.tracked.set(id, tracked);
    const observe = (snapshot: { value: unknown; context: WorkerContext }) => {
      const state = workerStateName(snapshot.value);
      const from = handle.state;
      if (state === from) return;
      handle.observe(state, snapshot.context.pid, snapshot.context.generation);
      this.host.moved(id, from, state, snapshot.context.pid);
      if (handle.up !== tracked.up) {
        tracked.up = handle.up;
        this.host.tell(handle.up ? { type: 'WORKER_UP', workerId: id } : { type: 'WORKER_DOWN', workerId: id, reason: handle.lossReason });
        if (handle.up) this.host.dispatcher.serve();
        else this.host.dispatcher.demand();
      }
      this.host.checkReady();
    };
    tracked.subscription = ref.subscribe(observe);
    observe(ref.getSnapshot());
  }
}
