import type { Affinity } from '../routing/route.js';
import type { StreamSink } from './stream.js';

/**
 * One request, from execute() to its settlement. Its owner — the dispatcher while it waits,
 * the worker's handle while it runs — is the only code that settles it, and settle() makes a
 * second settlement impossible whatever races the process's death, a deadline and an abort.
 */
export interface RequestSpec {
  cmd: string;
  args: unknown;
  sessionId: string | null;
  /** Only this worker may run it (endSession's cleanup_session). */
  target: string | null;
  /** ms the command may run once a worker has it. */
  timeout: number;
  /** ms it may wait for a worker. */
  checkoutTimeout: number;
  idempotent: boolean;
  /** This call's affinity rule (null: the pool's). */
  affinity: Affinity | null;
  /** A stream request's reader (pool.stream); absent for execute(). */
  stream?: StreamSink | null;
}

export class Request implements RequestSpec {
  readonly id: number;
  readonly cmd: string;
  readonly args: unknown;
  readonly sessionId: string | null;
  readonly target: string | null;
  readonly timeout: number;
  readonly checkoutTimeout: number;
  readonly idempotent: boolean;
  readonly affinity: Affinity | null;
  readonly stream: StreamSink | null;
  /** When it (last) started waiting, and until when it may: absolute on the pool clock. */
  enqueuedAt = 0;
  checkoutDeadline = 0;
  /** When a worker took it, and until when it may run: absolute on the pool clock. */
  startedAt = 0;
  deadline = 0;
  /** The worker running it (null while it waits), and its frame id there. */
  workerId: string | null = null;
  frameId = 0;
  /** An idempotent request is retried once after its worker died under it. */
  retried = false;
  /** Its first attempt was cut by a tier drain, not by its own doing: a second death is no proof of poison. */
  drained = false;
  /** The pending deadline timer (checkout or run), on the pool clock. */
  timer: unknown = null;
  private done = false;
  private readonly resolve: (value: unknown) => void;
  private readonly reject: (error: unknown) => void;
  private cleanup: (() => void) | null = null;

  constructor(id: number, spec: RequestSpec, resolve: (value: unknown) => void, reject: (error: unknown) => void) {
    this.id = id;
    this.cmd = spec.cmd;
    this.args = spec.args;
    this.sessionId = spec.sessionId;
    this.target = spec.target;
    this.timeout = spec.timeout;
    this.checkoutTimeout = spec.checkoutTimeout;
    this.idempotent = spec.idempotent;
    this.affinity = spec.affinity;
    this.stream = spec.stream ?? null;
    this.resolve = resolve;
    this.reject = reject;
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

  /** Settle once: false if it already was. */
  settle(error: unknown, value?: unknown): boolean {
    if (this.done) return false;
    this.done = true;
    this.cleanup?.();
    this.cleanup = null;
    if (error !== undefined) this.reject(error);
    else this.resolve(value);
    return true;
  }
}
