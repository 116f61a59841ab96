/**
 * A worker's handle: the owner of every request that runs on the worker. It sends each frame
 * straight to the process, settles each reply, holds each run deadline and abort, and settles
 * whatever the process still had on every way a process can leave — crash, timeout, recycle,
 * retirement, removal, stop — exactly once (through the dispatcher's `finish`).
 *
 * It tells the worker machine only what the machine decides on: LOAD (busy or not, coalesced
 * to one event per macrotask at most), HEALTH_CHECK, RECYCLE and REPLACE. Routing reads `free`
 * and `load`.
 *
 * With `workerConcurrency` > 1 several requests run on the process at once. A request given up
 * on (timeout, abort) is then abandoned, not fatal: the worker is told to cancel it, its slot
 * stays taken until its late reply (which is dropped), and the process is replaced only when it
 * stops answering altogether (see `giveUp`).
 */
import type { AnyActorRef } from 'xstate';
import type { ReplaceReason } from '../../machines/worker.js';
import { FAILED_STATES, ROUTABLE_STATES, UP_STATES } from '../../machines/workerStates.js';
import type { Candidate } from '../routing/route.js';
import type { Clock } from '../core/clock.js';
import type { Request } from '../core/request.js';
import { AbortError, PoolClosedError, PythonError, RequestTimeoutError, WorkerCrashedError, fromWire, type ExitInfo, type PyvisorError } from '../errors.js';
import type { ProcessLink, ProcessPort, PythonErrorInfo } from '../channel/link.js';

/** What a handle needs from its pool. */
export interface HandleHost {
  readonly clock: Clock;
  /** Requests in flight per process (`workerConcurrency`). */
  readonly concurrency: number;
  readonly interruptGrace: number;
  readonly maxConsecutiveErrors: number;
  /** Replace the process after this many requests (0: never). */
  readonly recycleAfter: number;
  /** Replace the process once its resident memory exceeds this many MiB (0: never), checked after replies too. */
  readonly maxRssMb: number;
  /** Resident memory of a pid in MiB (null: unknown). */
  rssMb(pid: number): number | null;
  /** The pool is stopping: what is cut short by it is POOL_CLOSED, not a crash. */
  readonly stopping: boolean;
  /** The one place a request is settled. */
  finish(request: Request, error: PyvisorError | undefined, value?: unknown): void;
  /** The worker was condemned for a fault that is not `request`'s: serve it elsewhere. */
  redispatch(request: Request): void;
  /** The worker died under `request`: retry it or settle it. */
  workerLost(request: Request, error: PyvisorError): void;
  /** The handle can take a request again. */
  freed(handle: WorkerHandle): void;
  /** A request ran past its deadline (telemetry). */
  timedOut(handle: WorkerHandle, request: Request): void;
  /** The worker now holds (or no longer holds) state for `sessionId`. */
  held(handle: WorkerHandle, sessionId: string, held: boolean): void;
  /** The worker came back healthy in a new process (telemetry, counters). */
  restarted(handle: WorkerHandle, oldPid: number | null, reason: 'restart' | 'recycle'): void;
}

/** How often, at most, a worker's memory is read after its replies. */
export const RSS_CHECK_MS = 1_000;

type Pending = { type: 'RECYCLE' } | { type: 'REPLACE'; reason: ReplaceReason };

/** A Python error reply as the error it is: a reply the worker could not encode is NOT_SERIALIZABLE, not the handler's fault. */
function replyError(info: PythonErrorInfo, cmd: string): PyvisorError {
  if (info.type === 'SerializationError') return fromWire({ code: 'NOT_SERIALIZABLE', message: info.message, fields: { path: 'result' } });
  return new PythonError(info.type, info.message, info.traceback, cmd, info.details);
}

export class WorkerHandle implements ProcessLink, Candidate {
  readonly id: string;
  readonly overflow: boolean;
  /** Requests in flight at once (1: one per process). */
  readonly concurrency: number;
  /** Frame id → request. A settled request here is abandoned (aborted, timed out): its frame is still out. */
  readonly inflight = new Map<number, Request>();
  /** The worker machine's state, as last observed. */
  state = 'idle';
  pid: number | null = null;
  /** Sessions whose state this worker's process holds (what first placement balances). */
  pinned = 0;
  /** Leaving the pool (overflow retirement, removal): takes nothing new. */
  retiring = false;
  /**
   * Its worker tier escalated and is stopping its workers: it takes nothing new (waiting
   * callers are for the restarted tier), and what the drain cuts short is the drain's doing,
   * never held against the request (no poison; an idempotent request is retried on the new
   * tier). Cleared when the new tier binds it.
   */
  draining = false;
  /** When the current process was attached, and when the handle last went idle (pool clock). */
  startedAt = 0;
  idleSince = 0;
  private ref: AnyActorRef | null = null;
  private readonly host: HandleHost;
  private port: ProcessPort | null = null;
  private generation = 0;
  private healthyGeneration = 0;
  private lastHealthyPid: number | null = null;
  private frames = 0;
  private processRequests = 0;
  private consecutiveErrors = 0;
  /** The handle asked the machine for something that takes the worker out of service. */
  private held = false;
  private pending: Pending | null = null;
  private recycling = false;
  /** What the sessions it served are told when this process goes: the reason the handle asked for, else a crash. */
  lossReason: 'timeout' | 'recycled' | 'crashed' = 'crashed';
  private loadScheduled = false;
  private rssCheckedAt = -Infinity;
  private readonly interrupts = new Map<number, unknown>();
  /** When the current process last sent a frame (pool clock): "does it still answer at all?". */
  private lastFrameAt = 0;

  constructor(id: string, overflow: boolean, host: HandleHost) {
    this.id = id;
    this.overflow = overflow;
    this.host = host;
    this.concurrency = host.concurrency;
  }

  bind(ref: AnyActorRef): void {
    this.ref = ref;
    this.draining = false;
  }

  /** The machine's state, with busy/healthy read live (the machine hears of them coalesced). */
  get liveState(): string {
    if (this.state === 'healthy' && this.inflight.size > 0) return 'busy';
    if (this.state === 'busy' && this.inflight.size === 0) return 'healthy';
    return this.state;
  }

  /** Requests running here now (abandoned ones included: they hold their slot until answered). */
  get load(): number {
    return this.inflight.size;
  }

  get free(): boolean {
    return !this.held && !this.retiring && !this.draining && this.port !== null && ROUTABLE_STATES.has(this.state) && this.inflight.size < this.concurrency;
  }

  get alive(): boolean {
    return !this.retiring && UP_STATES.has(this.state);
  }

  get up(): boolean {
    return UP_STATES.has(this.state);
  }

  /** Failed and not back yet; a recycle passes through `restarting` too, which is no failure. */
  get failed(): boolean {
    return FAILED_STATES.has(this.state) && !this.recycling;
  }

  // ---- requests ------------------------------------------------------------------------------

  /** Send `request` to the process now (the dispatcher checked `free` and set `startedAt`). */
  run(request: Request): void {
    const id = ++this.frames;
    request.workerId = this.id;
    request.frameId = id;
    request.deadline = request.startedAt + request.timeout;
    this.inflight.set(id, request);
    // Armed before the frame goes out: the answer may come back before send() returns.
    request.timer = this.host.clock.setTimeout(() => this.expire(request), request.timeout);
    const stream = request.stream;
    if (stream) {
      // Before the frame goes out, like the timer: a first chunk may be read before send() returns.
      const port = this.port!;
      stream.credit = (consumed) => port.control(id, { ack: consumed });
    }
    try {
      this.port!.send(id, request.cmd, request.args, request.sessionId, request.deadline, stream?.window ?? 0);
    } catch (error) {
      if (stream) stream.credit = null;
      // Refused before anything was written (a value outside the wire types): the worker stays.
      this.inflight.delete(id);
      this.host.finish(request, error as PyvisorError);
      this.afterFrame();
      return;
    }
    if (this.inflight.size === 1) this.scheduleLoad();
  }

  /** A chunk of a stream request's output. False: no stream request here has that id, or it broke its window. */
  chunk(id: number, value: unknown): boolean {
    const request = this.inflight.get(id);
    if (!request?.stream) return false;
    this.lastFrameAt = this.host.clock.now();
    // Given up on (its reader left, its deadline passed): what is still on its way is dropped.
    if (request.settled) return true;
    return request.stream.push(value);
  }

  reply(id: number, ok: true, result: unknown, held?: boolean): boolean;
  reply(id: number, ok: false, error: PythonErrorInfo, held?: boolean): boolean;
  reply(id: number, ok: boolean, value: unknown, held?: boolean): boolean {
    const request = this.inflight.get(id);
    if (!request) return false;
    this.inflight.delete(id);
    this.clearInterrupt(id);
    this.lastFrameAt = this.host.clock.now();
    if (request.stream) request.stream.credit = null;
    this.processRequests++;
    // Before the caller hears: its next request must already route to where its state is.
    if (held !== undefined && request.sessionId !== null) this.host.held(this, request.sessionId, held);
    if (!request.settled) {
      if (ok) {
        this.consecutiveErrors = 0;
        this.host.finish(request, undefined, value);
      } else {
        const info = value as PythonErrorInfo;
        this.consecutiveErrors++;
        this.host.finish(request, replyError(info, request.cmd));
      }
    }
    this.afterFrame();
    return true;
  }

  /** The caller gave up on a running request: answer it now, interrupt the handler, replace a deaf one. */
  abort(request: Request, reason: unknown): void {
    this.host.finish(request, new AbortError(reason));
    if (this.inflight.has(request.frameId)) this.giveUp(request, 'interrupt');
  }

  private expire(request: Request): void {
    request.timer = null;
    if (request.settled) return;
    this.host.timedOut(this, request);
    this.host.finish(request, new RequestTimeoutError(request.cmd, request.timeout, this.id));
    // One request per process: the handler is slow, not the worker sick — a fresh process in
    // place, not counted; killing it is also what frees the slot the handler still holds.
    if (this.concurrency === 1) this.ask({ type: 'REPLACE', reason: 'timeout' });
    else this.giveUp(request, 'timeout');
  }

  /**
   * Stop a request that was answered already (abort, or a deadline with other requests on the
   * process): tell the handler, and replace the process if nothing answers within the grace
   * period. A lone handler gets KeyboardInterrupt (SIGINT); a stream, or a request among others,
   * a cancel frame — a signal would hit every request of the process. Among others the process
   * is replaced only when it stopped answering altogether: no frame since, or nothing in flight
   * that anybody still waits for.
   */
  private giveUp(request: Request, reason: 'interrupt' | 'timeout'): void {
    const id = request.frameId;
    if (this.concurrency === 1 && !request.stream) this.port?.signal('SIGINT');
    else this.port?.control(id, { cancel: true });
    const since = this.host.clock.now();
    this.interrupts.set(
      id,
      this.host.clock.setTimeout(() => {
        this.interrupts.delete(id);
        if (this.inflight.get(id) !== request) return;
        const deaf = this.concurrency === 1 || this.lastFrameAt <= since || this.onlyAbandoned();
        if (deaf) this.ask({ type: 'REPLACE', reason });
      }, this.host.interruptGrace),
    );
  }

  /** Everything in flight here was given up on and is past its grace: nobody waits for any of it. */
  private onlyAbandoned(): boolean {
    for (const [id, request] of this.inflight) if (!request.settled || this.interrupts.has(id)) return false;
    return true;
  }

  /** A frame is done: hand the worker on, or do what is due now. */
  private afterFrame(): void {
    const idle = this.inflight.size === 0;
    if (!idle && this.concurrency === 1) return;
    if (!idle && (!this.held || this.pending !== null) && this.onlyAbandoned()) {
      // What is left was given up on, past its grace, and has not answered: it never will. (A
      // recycle or replacement waiting for it would wait forever: it becomes this one.)
      this.pending = null;
      this.ask({ type: 'REPLACE', reason: 'interrupt' });
      return;
    }
    const now = this.host.clock.now();
    if (idle) {
      this.idleSince = now;
      this.scheduleLoad();
    }
    if (!this.held) {
      // Errors in a row: maybe a poisoned interpreter, maybe only bad input — a fresh process
      // either way, in place, so that user errors can never escalate the pool. (Once the other
      // requests in flight have answered: they are not to blame.)
      if (this.consecutiveErrors >= this.host.maxConsecutiveErrors) this.ask({ type: 'REPLACE', reason: 'errors' }, true);
      else if (this.host.recycleAfter > 0 && this.processRequests >= this.host.recycleAfter) this.ask({ type: 'RECYCLE' });
      else if (this.host.maxRssMb > 0 && now - this.rssCheckedAt >= RSS_CHECK_MS) this.checkMemory(now);
    }
    if (this.pending && this.inflight.size === 0) {
      const event = this.pending;
      this.pending = null;
      this.ref?.send(event);
      return;
    }
    if (this.free) this.host.freed(this);
  }

  /** Take the worker out of service and ask the machine for `event`: once nothing is in flight, unless it replaces the process now (`drain` false). */
  private ask(event: Pending, drain = false): void {
    this.held = true;
    if (event.type === 'RECYCLE') this.recycling = true;
    this.lossReason = event.type === 'RECYCLE' ? 'recycled' : event.reason === 'timeout' ? 'timeout' : 'crashed';
    if ((event.type === 'REPLACE' && !drain) || this.inflight.size === 0) this.ref?.send(event);
    else this.pending = event;
  }

  /**
   * Memory, measured after a reply (so a worker that is never idle at a tick is seen too), at
   * most every RSS_CHECK_MS per worker, and after the turn that delivered the reply: reading
   * /proc costs tens of µs, which the request path does not pay.
   */
  private checkMemory(now: number): void {
    this.rssCheckedAt = now;
    setImmediate(() => {
      const pid = this.pid;
      if (pid === null || this.held || this.port === null) return;
      const rss = this.host.rssMb(pid);
      if (rss !== null && rss > this.host.maxRssMb) this.ask({ type: 'RECYCLE' });
    });
  }

  /** The monitor's tick: recycle an old or fat idle worker, or ping it. Busy workers are never pinged. */
  tick(now: number, recycle: { maxAgeMs: number; maxRssMb: number }, rssMb: (pid: number) => number | null, ping: boolean): void {
    if (!this.free || this.inflight.size > 0) return;
    const rss = recycle.maxRssMb > 0 && this.pid !== null ? rssMb(this.pid) : null;
    if ((recycle.maxAgeMs > 0 && now - this.startedAt >= recycle.maxAgeMs) || (rss !== null && rss > recycle.maxRssMb)) {
      this.ask({ type: 'RECYCLE' });
      return;
    }
    if (!ping) return;
    this.held = true;
    this.ref?.send({ type: 'HEALTH_CHECK' });
  }

  /** Answer every request still running here with `error` now (their frames stay out, abandoned). */
  failAll(error: PyvisorError): void {
    for (const request of this.inflight.values()) this.host.finish(request, error);
  }

  // ---- ProcessLink ---------------------------------------------------------------------------

  attach(port: ProcessPort, generation: number): void {
    this.port = port;
    // A new process holds no session's state.
    this.pinned = 0;
    this.generation = generation;
    this.pid = port.pid ?? null;
    this.startedAt = this.host.clock.now();
    this.lastFrameAt = this.startedAt;
    this.processRequests = 0;
    this.consecutiveErrors = 0;
  }

  nextId(): number {
    return ++this.frames;
  }

  detach(generation: number, cause: PyvisorError | null, exit: ExitInfo | null, strayId?: number): number {
    if (generation !== this.generation || this.port === null) return 0;
    const pid = this.port.pid;
    this.port = null;
    const count = this.inflight.size;
    if (count === 0) return 0;
    // A second answer to a frame that was already answered: a hostile handler's duplicate,
    // not the doing of the requests running now.
    const innocent = strayId !== undefined && Number.isInteger(strayId) && strayId > 0 && strayId <= this.frames && !this.inflight.has(strayId);
    const requests = [...this.inflight.values()];
    this.inflight.clear();
    for (const timer of this.interrupts.values()) this.host.clock.clearTimeout(timer);
    this.interrupts.clear();
    for (const request of requests) {
      if (request.stream) request.stream.credit = null;
      if (request.settled) continue;
      // A stream that delivered chunks cannot start over elsewhere: its reader has them already.
      if (innocent && !this.host.stopping && !(request.stream && request.stream.received > 0)) {
        this.host.redispatch(request);
        continue;
      }
      let error = cause ?? new WorkerCrashedError(this.id, pid, exit ?? { code: null, signal: 'SIGKILL', stderrTail: [] }, 'was stopped by its supervisor under the request');
      if (this.host.stopping) error = new PoolClosedError(`the pool stopped before "${request.cmd}" finished (${error.message})`);
      // Taken away by the pool (a tier drain, a replacement for another request's sake), not a
      // death of its own: never held against the request (no poison), retried once at most.
      const byPool = cause === null;
      if (byPool && request.retried) this.host.finish(request, error);
      else {
        if (byPool) request.drained = true;
        this.host.workerLost(request, error);
      }
    }
    this.scheduleLoad();
    return count;
  }

  // ---- the machine ---------------------------------------------------------------------------

  /** The worker machine moved: follow it. */
  observe(state: string, pid: number | null, generation: number): void {
    const from = this.state;
    if (state === from) return;
    this.state = state;
    if (pid !== null) this.pid = pid;
    if (state === 'healthy' && !ROUTABLE_STATES.has(from)) {
      // A fresh process, or back from a health ping: whatever the handle asked for is done.
      this.held = false;
      this.pending = null;
      this.lossReason = 'crashed';
      if (this.healthyGeneration !== generation) {
        // Any process after the first is a restart, also one that follows a failed first start.
        if (generation > 1) this.host.restarted(this, this.lastHealthyPid, this.recycling ? 'recycle' : 'restart');
        this.healthyGeneration = generation;
        this.lastHealthyPid = this.pid;
        this.recycling = false;
      }
    }
    if (this.free) this.host.freed(this);
  }

  /** Has this worker ever been healthy (a start that never succeeded is a start failure)? */
  get everHealthy(): boolean {
    return this.healthyGeneration > 0;
  }

  private scheduleLoad(): void {
    if (this.loadScheduled || this.ref === null) return;
    this.loadScheduled = true;
    setImmediate(this.flushLoad);
  }

  /** At most one LOAD per macrotask, and only when what the machine shows is wrong. */
  private readonly flushLoad = (): void => {
    this.loadScheduled = false;
    const busy = this.inflight.size > 0;
    if ((this.state === 'healthy' && busy) || (this.state === 'busy' && !busy)) this.ref?.send({ type: 'LOAD', busy });
  };

  private clearInterrupt(id: number): void {
    const timer = this.interrupts.get(id);
    if (timer === undefined) return;
    this.host.clock.clearTimeout(timer);
    this.interrupts.delete(id);
  }
}
