/**
 * Telemetry: an eventemitter3 emitter whose emit() isolates listeners, so a listener that
 * throws can neither break the pool's request path nor starve the listeners after it. The
 * throw is reported as a `listener_error` event (or to stderr if nobody listens for those).
 */
import { EventEmitter } from 'eventemitter3';

export interface PoolEvents {
  checkout: { workerId: string; sessionId: string | null; command: string; queueMs: number };
  checkin: { workerId: string; sessionId: string | null; command: string; queueMs: number; runMs: number; ok: boolean; error?: string };
  worker_restarted: { workerId: string; oldPid: number | null; newPid: number | null; reason: 'restart' | 'recycle' };
  timeout: { kind: 'checkout' | 'request'; workerId?: string; sessionId: string | null; command: string; timeoutMs: number };
  worker_state: { workerId: string; from: string; to: string; pid: number | null };
  session_start: { sessionId: string };
  session_end: { sessionId: string; reason: 'ended' | 'expired'; workers: number };
  worker_log: { workerId: string; pid: number | null; line: string };
  escalation: { supervisorId: string; error: Error };
  /** The worker tier exceeded its restart intensity and the root restarted it with fresh workers. */
  tier_restarted: { restarts: number; error: Error };
  listener_error: { event: string; error: unknown };
}

export type PoolEventName = keyof PoolEvents;

/** Every emitter reports its listeners' throws. */
export interface ListenerErrorEvent {
  listener_error: { event: string; error: unknown };
}

/** An event map (name → payload) as eventemitter3's typed listener map. */
export type Listeners<E> = { [K in keyof E]: (payload: E[K]) => void };

type Map_<E> = Listeners<E & ListenerErrorEvent>;

/** The typed subscription methods of an emitter of `E` (what an interface can promise). */
export interface TypedEvents<E extends object> {
  on<T extends EventEmitter.EventNames<Map_<E>>>(event: T, fn: EventEmitter.EventListener<Map_<E>, T>, context?: unknown): this;
  once<T extends EventEmitter.EventNames<Map_<E>>>(event: T, fn: EventEmitter.EventListener<Map_<E>, T>, context?: unknown): this;
  off<T extends EventEmitter.EventNames<Map_<E>>>(event: T, fn?: EventEmitter.EventListener<Map_<E>, T>, context?: unknown, once?: boolean): this;
}

interface Registered {
  fn: (...args: unknown[]) => void;
  context: unknown;
  once: boolean;
}

/**
 * Typed: `pool.on('checkin', (e) => e.runMs)` knows its payload, and an unknown event name or a
 * wrong field does not compile (test/fast/types.test.ts compiles the cases with tsc).
 */
export class TelemetryEmitter<E extends object = PoolEvents> extends EventEmitter<Listeners<E & ListenerErrorEvent>> {
  /**
   * eventemitter3's emit, with each listener isolated: `once` listeners are removed before they
   * run and `context` is honoured exactly as eventemitter3 does, but a throw is caught and
   * reported instead of unwinding into the pool (and skipping the listeners after it).
   */
  override emit<T extends EventEmitter.EventNames<Listeners<E & ListenerErrorEvent>>>(event: T, ...args: EventEmitter.EventArgs<Listeners<E & ListenerErrorEvent>, T>): boolean {
    const name = event as string | symbol;
    const key = EventEmitter.prefixed && typeof name === 'string' ? `${EventEmitter.prefixed}${name}` : name;
    const raw = (this as unknown as { _events: Record<string | symbol, Registered | Registered[] | undefined> })._events[key as string];
    if (!raw) return false;
    // A snapshot: listeners added or removed by a listener take effect from the next emit.
    const listeners = Array.isArray(raw) ? raw.slice() : [raw];
    for (const listener of listeners) {
      if (listener.once) (this as unknown as EventEmitter).removeListener(name, listener.fn, undefined, true);
      try {
        listener.fn.apply(listener.context, args);
      } catch (error) {
        this.reportListenerError(name, error);
      }
    }
    return true;
  }

  private reportListenerError(event: string | symbol, error: unknown): void {
    const self = this as unknown as EventEmitter;
    if (event !== 'listener_error' && self.listenerCount('listener_error') > 0) {
      self.emit('listener_error', { event: String(event), error });
    } else {
      process.stderr.write(`pyvisor: a "${String(event)}" listener threw: ${(error as Error)?.stack ?? error}\n`);
    }
  }
}

/** Latency percentiles over a sliding window of the most recent samples. */
export class LatencyWindow {
  private readonly samples: Float64Array;
  private count = 0;
  private next = 0;
  constructor(size = 4096) {
    this.samples = new Float64Array(size);
  }
  add(ms: number): void {
    this.samples[this.next] = ms;
    this.next = (this.next + 1) % this.samples.length;
    if (this.count < this.samples.length) this.count++;
  }
  percentiles(): { p50: number; p99: number } {
    if (this.count === 0) return { p50: 0, p99: 0 };
    const sorted = Array.from(this.samples.subarray(0, this.count)).sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
    return { p50: round(at(0.5)), p99: round(at(0.99)) };
  }
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;
