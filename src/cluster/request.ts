/**
 * One request of a cluster pool, from execute()/stream() to its settlement. The cluster pool
 * owns it throughout, and `settle` makes a second settlement impossible whatever races a reply,
 * a host loss, a lost connection, a deadline and an abort.
 *
 * Its life: waiting (no host yet: not connected, no live host, its session's host not heard
 * from yet, or a send that found nobody subscribed) → placing (a session request reading or
 * writing its placement) → sent (published; `host` known for a session request at once, for an
 * anonymous one when the agent that took it accepts it) → done.
 */
import type { Affinity } from '../routing/route.js';
import type { ResultStream } from '../core/stream.js';
import type { SessionPlacement } from './placementStore.js';

export type RequestState = 'waiting' | 'placing' | 'sent' | 'done';

export interface ClusterRequestSpec {
  cmd: string;
  /** The args, already MessagePack-encoded. */
  args: Buffer;
  sessionId: string | null;
  affinity: Affinity | null;
  idempotent: boolean;
  timeout: number;
  checkoutTimeout: number;
  stream: ResultStream<any> | null;
}

export class ClusterRequest implements ClusterRequestSpec {
  readonly id: number;
  readonly cmd: string;
  readonly args: Buffer;
  readonly sessionId: string | null;
  readonly affinity: Affinity | null;
  readonly idempotent: boolean;
  readonly timeout: number;
  readonly checkoutTimeout: number;
  readonly stream: ResultStream<any> | null;
  state: RequestState = 'waiting';
  /** The reply-subject token of the current attempt (0: none registered). */
  token = 0;
  /** The host running the current attempt, and its incarnation, once known. */
  host: string | null = null;
  inc: string | null = null;
  /** The placement the current attempt was sent under (a session request). */
  place: SessionPlacement | null = null;
  /** The agent called this revision stale: a fresh read that finds the same one is sent `confirmed`. */
  staleRev: number | null = null;
  confirmed = false;
  stale = 0;
  /** ms since the Unix epoch by which a worker must have taken it. */
  checkoutBy: number;
  /** Why it is waiting, for the HostUnavailableError it gets if it waits too long. */
  why = 'no live host';
  /** An idempotent request is sent once more after its host was lost under it. */
  retried = false;
  /** It was settled (aborted, stopped) before the agent that took it was known: cancel it on accept. */
  cancelOnAccept = false;
  /** Retry delay after a send that reached nobody (ms, doubling). */
  backoff = 0;
  readonly submittedAt: number;
  checkoutTimer: NodeJS.Timeout | null = null;
  deadlineTimer: NodeJS.Timeout | null = null;
  acceptTimer: NodeJS.Timeout | null = null;
  retryTimer: NodeJS.Timeout | null = null;
  private done = false;
  private cleanup: (() => void) | null = null;

  constructor(
    id: number,
    spec: ClusterRequestSpec,
    now: number,
    private readonly resolve: (value: unknown) => void,
    private readonly reject: (error: unknown) => void,
  ) {
    this.id = id;
    this.cmd = spec.cmd;
    this.args = spec.args;
    this.sessionId = spec.sessionId;
    this.affinity = spec.affinity;
    this.idempotent = spec.idempotent;
    this.timeout = spec.timeout;
    this.checkoutTimeout = spec.checkoutTimeout;
    this.stream = spec.stream;
    this.submittedAt = now;
    this.checkoutBy = now + spec.checkoutTimeout;
  }

  /** Routed by its session's placement (not anonymous). */
  get placed(): boolean {
    return this.sessionId !== null && this.affinity !== 'none';
  }

  get settled(): boolean {
    return this.done;
  }

  /** Call `onAbort` once when `signal` aborts (before settlement). */
  watch(signal: AbortSignal, onAbort: (reason: unknown) => void): void {
    const listener = () => onAbort(signal.reason);
    signal.addEventListener('abort', listener, { once: true });
    this.cleanup = () => signal.removeEventListener('abort', listener);
  }

  clearRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  clearAccept(): void {
    if (this.acceptTimer) clearTimeout(this.acceptTimer);
    this.acceptTimer = null;
  }

  /** Settle once: false if it already was. Clears every timer of the request. */
  settle(error: unknown, value?: unknown): boolean {
    if (this.done) return false;
    this.done = true;
    this.state = 'done';
    this.cleanup?.();
    this.cleanup = null;
    for (const timer of [this.checkoutTimer, this.deadlineTimer, this.retryTimer]) if (timer) clearTimeout(timer);
    this.checkoutTimer = this.deadlineTimer = this.retryTimer = null;
    if (!this.cancelOnAccept) this.clearAccept();
    if (error !== undefined) {
      if (this.stream) this.stream.end({ error });
      else this.reject(error);
    } else if (this.stream) this.stream.end({ value });
    else this.resolve(value);
    return true;
  }
}
