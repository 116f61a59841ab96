/**
 * The dispatcher: the owner of every request that is not running. It routes each request with
 * the pure rule of src/routing over live state, hands it to a free worker's handle at once
 * (the direct path: no actor event), or queues it with its checkout deadline; when a worker
 * frees up it serves the queue in order. `finish` is the one place any request is settled.
 */
import { isPinned, route, type Affinity, type Placement } from '../routing/route.js';
import type { Clock } from '../core/clock.js';
import type { Request } from '../core/request.js';
import type { SessionEntry, SessionPoolEvent } from '../../machines/sessionPool.js';
import { AbortError, PoolSaturatedError, PoolTimeoutError, SessionWorkerLostError, WorkerCrashedError, type PyvisorError, type SessionWorkerLostReason } from '../errors.js';
import type { Counters } from './stats.js';
import { WorkerHandle } from './workerHandle.js';

export interface DispatcherHost {
  readonly clock: Clock;
  readonly affinity: Affinity;
  readonly maxQueue: number;
  readonly sessionTtl: number;
  readonly counters: Counters;
  /** The session registry (the session pool machine's, read live). */
  sessions(): Record<string, SessionEntry>;
  tell(event: SessionPoolEvent): void;
  /** Why new requests are refused, once the pool is closed. */
  closedError(): PyvisorError | null;
  /** Telemetry; each is called only when someone listens. */
  onCheckout?(request: Request, workerId: string): void;
  onCheckin?(request: Request, ok: boolean, error: PyvisorError | undefined, value: unknown): void;
  onCheckoutTimeout?(request: Request): void;
}

interface Activity {
  active: number;
  lastUsed: number;
}

export class Dispatcher {
  /** Every worker's handle, in the order they joined (routing prefers permanent ones itself). */
  readonly handles: WorkerHandle[] = [];
  readonly queue: Request[] = [];
  private readonly host: DispatcherHost;
  /** Per session, for its TTL: requests not settled yet, and when the last one settled. */
  private readonly activity = new Map<string, Activity>();
  private serving = false;

  constructor(host: DispatcherHost) {
    this.host = host;
  }

  /** A new request from a caller. */
  submit(request: Request): void {
    const now = this.host.clock.now();
    request.enqueuedAt = now;
    request.checkoutDeadline = now + request.checkoutTimeout;
    if (request.sessionId !== null && this.host.sessionTtl > 0) {
      const activity = this.activity.get(request.sessionId);
      if (activity) activity.active++;
      else this.activity.set(request.sessionId, { active: 1, lastUsed: now });
    }
    this.dispatch(request);
  }

  private dispatch(request: Request): void {
    const closed = this.host.closedError();
    if (closed) return this.finish(request, closed);
    const placement = this.placementOf(request);
    const target = route(this.handles, request.affinity ?? this.host.affinity, placement, request.target);
    // Refused before it was accepted: a session it would have opened is not opened.
    if (target === 'wait' && this.queue.length >= this.host.maxQueue) return this.finish(request, new PoolSaturatedError(this.host.maxQueue));
    if (placement === undefined && request.sessionId !== null && request.target === null) this.host.tell({ type: 'SESSION_SEEN', sessionId: request.sessionId });
    if (target === 'wait') return this.enqueue(request, placement);
    if (!(target instanceof WorkerHandle)) return this.lose(request, target.lost, true);
    this.start(target, request, placement);
  }

  private placementOf(request: Request): (SessionEntry & Placement) | undefined {
    return request.sessionId === null ? undefined : this.host.sessions()[request.sessionId];
  }

  private start(handle: WorkerHandle, request: Request, placement: SessionEntry | undefined): void {
    const sessionId = request.sessionId;
    // Under 'auto' a session's place is where its state is, which the worker's reply says.
    const affinity = request.affinity ?? this.host.affinity;
    if (sessionId !== null && request.target === null && affinity !== 'auto' && (placement === undefined || placement.home !== handle.id || !placement.workers.includes(handle.id))) {
      this.host.tell({ type: 'SESSION_PLACED', sessionId, workerId: handle.id });
    }
    request.startedAt = this.host.clock.now();
    this.host.onCheckout?.(request, handle.id);
    handle.run(request);
  }

  private enqueue(request: Request, placement: Placement | undefined): void {
    const wait = Math.max(0, request.checkoutDeadline - this.host.clock.now());
    request.timer = this.host.clock.setTimeout(() => this.checkoutExpired(request), wait);
    this.queue.push(request);
    if (!isPinned(request.affinity ?? this.host.affinity, placement, request.target)) this.demand();
  }

  /** Tell the session pool how many waiting requests any new worker could take (it decides on growth). */
  demand(): void {
    if (this.queue.length === 0) return;
    const sessions = this.host.sessions();
    let unserved = 0;
    for (const r of this.queue) if (!isPinned(r.affinity ?? this.host.affinity, r.sessionId === null ? undefined : sessions[r.sessionId], r.target)) unserved++;
    if (unserved > 0) this.host.tell({ type: 'DEMAND', unserved });
  }

  private checkoutExpired(request: Request): void {
    request.timer = null;
    const index = this.queue.indexOf(request);
    if (index === -1) return;
    this.queue.splice(index, 1);
    this.host.onCheckoutTimeout?.(request);
    const starting = this.handles.filter((h) => !h.up && !h.everHealthy).length;
    this.finish(request, new PoolTimeoutError(request.checkoutTimeout, `${this.queue.length} others waiting${starting ? `, ${starting} workers still starting` : ''}`));
  }

  /** Serve waiting requests, oldest first, each within its own routing rules. */
  serve(): void {
    if (this.serving || this.queue.length === 0) return;
    this.serving = true;
    const reported = new Set<string>();
    try {
      let i = 0;
      while (i < this.queue.length) {
        const request = this.queue[i]!;
        const placement = this.placementOf(request);
        const target = route(this.handles, request.affinity ?? this.host.affinity, placement, request.target);
        if (target === 'wait') {
          i++;
          continue;
        }
        this.queue.splice(i, 1);
        this.clearTimer(request);
        if (target instanceof WorkerHandle) this.start(target, request, placement);
        else {
          // Every request that waited for a lost worker hears of it; then the pin is reset.
          this.lose(request, target.lost, false);
          if (request.sessionId !== null && request.target === null) reported.add(request.sessionId);
        }
        if (!this.handles.some((h) => h.free)) break;
      }
    } finally {
      this.serving = false;
    }
    for (const sessionId of reported) this.host.tell({ type: 'SESSION_LOSS_REPORTED', sessionId });
  }

  private lose(request: Request, lost: { workerId: string; reason: string }, report: boolean): void {
    this.finish(request, new SessionWorkerLostError(request.sessionId ?? '(none)', lost.workerId, lost.reason as SessionWorkerLostReason));
    if (report && request.sessionId !== null && request.target === null) this.host.tell({ type: 'SESSION_LOSS_REPORTED', sessionId: request.sessionId });
  }

  /** The caller's signal aborted. */
  abort(request: Request, reason: unknown): void {
    if (request.settled) return;
    if (request.workerId === null) {
      const index = this.queue.indexOf(request);
      if (index !== -1) this.queue.splice(index, 1);
      this.finish(request, new AbortError(reason));
      return;
    }
    this.handles.find((h) => h.id === request.workerId)?.abort(request, reason);
  }

  /**
   * A worker's reply says it now holds (or no longer holds) state for `sessionId`: tell the
   * registry, and keep the per-worker pin counts (what first placement balances) in step with it.
   */
  held(handle: WorkerHandle, sessionId: string, held: boolean): void {
    const prev = this.host.sessions()[sessionId];
    const holder = prev?.held ? prev.home : null;
    if (held && holder !== handle.id) {
      const old = holder === null ? undefined : this.handles.find((h) => h.id === holder);
      if (old && old.pinned > 0) old.pinned--;
      handle.pinned++;
    }
    if (!held && holder === handle.id && handle.pinned > 0) handle.pinned--;
    this.host.tell({ type: 'SESSION_HELD', sessionId, workerId: handle.id, held });
  }

  /** Its worker was condemned for another's fault (a stray reply): the request is served elsewhere, uncounted. */
  redispatch(request: Request): void {
    this.clearTimer(request);
    request.workerId = null;
    const now = this.host.clock.now();
    request.enqueuedAt = now;
    request.checkoutDeadline = now + request.checkoutTimeout;
    this.dispatch(request);
  }

  /** The worker died under `request`: an idempotent request gets one more try elsewhere. */
  workerLost(request: Request, error: PyvisorError): void {
    // A stream whose reader has chunks already cannot start over: it fails where it stopped.
    const started = request.stream !== null && request.stream.received > 0;
    if (error.code === 'WORKER_CRASHED' && request.idempotent && !request.retried && !started && this.host.closedError() === null) {
      // The attempt counts (it ran and failed); the request goes on.
      this.clearTimer(request);
      this.countAttempt(request, error);
      request.retried = true;
      request.workerId = null;
      const now = this.host.clock.now();
      request.enqueuedAt = now;
      request.checkoutDeadline = now + request.checkoutTimeout;
      // At once: the dead worker has no process any more, so routing cannot pick it again.
      this.dispatch(request);
      return;
    }
    if (error instanceof WorkerCrashedError && request.retried && !request.drained) {
      // It killed a second worker: it is poison, and nothing retries it again.
      const exit = { code: error.exitCode, signal: error.signal, stderrTail: error.stderrTail };
      return this.finish(request, new WorkerCrashedError(error.workerId, error.pid, exit, undefined, { poison: true, cause: error.cause }));
    }
    this.finish(request, error);
  }

  /** The one place a request is settled: counters, telemetry, session activity. */
  finish(request: Request, error: PyvisorError | undefined, value?: unknown): void {
    this.clearTimer(request);
    if (request.settled) return;
    const now = this.host.clock.now();
    this.countAttempt(request, error, value);
    if (request.sessionId !== null) {
      const activity = this.activity.get(request.sessionId);
      if (activity) {
        activity.active--;
        activity.lastUsed = now;
      }
    }
    request.settle(error, value);
  }

  /** An attempt that reached a worker ended: each attempt is counted (and announced) once. */
  private countAttempt(request: Request, error: PyvisorError | undefined, value?: unknown): void {
    if (request.workerId === null) return;
    this.host.counters.settled(request.workerId, error === undefined, this.host.clock.now() - request.startedAt);
    this.host.onCheckin?.(request, error === undefined, error, value);
  }

  /** How long a session has been idle (0 while a request of it waits or runs). */
  idleFor(sessionId: string): number {
    const activity = this.activity.get(sessionId);
    if (!activity) return Infinity;
    return activity.active > 0 ? 0 : this.host.clock.now() - activity.lastUsed;
  }

  forgetSession(sessionId: string): void {
    const activity = this.activity.get(sessionId);
    if (activity && activity.active <= 0) this.activity.delete(sessionId);
  }

  /** Refuse everything waiting (the pool closed). */
  closeQueue(error: PyvisorError): void {
    for (const request of this.queue.splice(0)) this.finish(request, error);
  }

  private clearTimer(request: Request): void {
    if (request.timer === null) return;
    this.host.clock.clearTimeout(request.timer);
    request.timer = null;
  }
}
