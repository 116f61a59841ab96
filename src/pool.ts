/**
 * The pool facade: the effects half of the pool. The machines decide (routing, supervision,
 * timers); this file carries the decisions out — it hands a checked-out worker its EXECUTE,
 * settles callers' promises, starts and retires workers, runs health checks, and turns
 * actor activity into telemetry and stats.
 *
 * Request path: execute() → sessionPool CHECKOUT → `assigned` → worker EXECUTE → worker
 * `reply` → settle the caller → sessionPool CHECKIN. Nothing else sits between a caller and
 * its worker, so requests to different workers run in parallel.
 */
import { createActor, type Actor, type AnyActorRef, type CallbackActorLogic, type InspectionEvent, type Subscription } from 'xstate';
import {
  AbortError,
  InvalidOptionError,
  PoolClosedError,
  PoolTimeoutError,
  PyvisorError,
  RequestTimeoutError,
  SessionNotFoundError,
  SupervisorEscalationError,
  WorkerCrashedError,
} from './errors.js';
import { checkExecuteOptions, type ExecuteOptions, type ResolvedOptions } from './options.js';
import { LatencyWindow, TelemetryEmitter } from './telemetry.js';
import { poolSupervisorMachine } from '../machines/poolSupervisor.js';
import { sessionPoolMachine, type SessionPoolContext, type SessionPoolInput } from '../machines/sessionPool.js';
import { supervisorMachine, type ChildSpec, type SupervisorContext, type SupervisorInput } from '../machines/supervisor.js';
import { monitorMachine } from '../machines/monitor.js';
import { workerMachine, type WorkerContext, type WorkerEmitted, type WorkerInput } from '../machines/worker.js';
import type { ProcessActorInput, ProcessCommand } from '../machines/events.js';

/** What differs between a real pool and a simulated one. */
export interface PoolSeams {
  processLogic: CallbackActorLogic<ProcessCommand, ProcessActorInput>;
  /** XState clock; undefined = real time. */
  clock?: { setTimeout(fn: (...args: unknown[]) => void, ms: number): unknown; clearTimeout(id: unknown): void };
  /** ms timestamps for measurements (queue wait, run time, process age). */
  now: () => number;
  /** Resident memory of a pid in MiB, or null if unknown. */
  rssMb?: (pid: number) => number | null;
  /** Resolves once every process this pool started has exited. */
  allExited: () => Promise<void>;
  /** pids of the pool's processes that have not exited yet. */
  pids?: () => number[];
  /** Called with each stderr line of a worker (wired by the real transport). */
  setLogSink?: (sink: (workerId: string, pid: number | null, line: string) => void) => void;
}

export interface WorkerInfo {
  id: string;
  state: string;
  pid: number | null;
  requests: number;
  errors: number;
  restarts: number;
  sessions: number;
  overflow: boolean;
}

export interface PoolStats {
  activeSessions: number;
  poolSize: number;
  utilization: number;
  healthyWorkers: number;
  unhealthyWorkers: number;
  busyWorkers: number;
  overflowWorkers: number;
  queueLength: number;
  totalCommands: number;
  totalErrors: number;
  restarts: number;
  latencyMs: { p50: number; p99: number };
}

interface Pending {
  ticket: number;
  cmd: string;
  args: unknown;
  sessionId: string | null;
  /** A request that must run on this worker (endSession's cleanup). */
  targetWorker: string | null;
  timeoutMs: number;
  checkoutTimeoutMs: number;
  checkoutDeadline: number;
  enqueuedAt: number;
  startedAt: number;
  workerId: string | null;
  idempotent: boolean;
  retried: boolean;
  /** The caller has its answer (e.g. aborted); the worker's reply only checks it back in. */
  settled: boolean;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  cleanup: (() => void) | null;
  /** The request-timeout timer while the request is with a worker. */
  deadline: unknown;
}

interface Tracked {
  ref: AnyActorRef;
  subscriptions: Subscription[];
  serving: boolean;
  state: string;
  pid: number | null;
  generation: number;
  /** The process generation last seen healthy, and its pid: what worker_restarted reports. */
  healthyGeneration: number;
  lastHealthyPid: number | null;
  startedAt: number;
  overflow: boolean;
  /** The process is being replaced on purpose (recycling), not because it failed. */
  recycling: boolean;
}

/** What workers() reports per worker, counted by the facade from the replies it settles. */
interface WorkerCounts {
  requests: number;
  errors: number;
  restarts: number;
}

/** Worker machine states in which it can take (or is running) a request. */
const SERVING = new Set(['healthy', 'busy', 'interrupting', 'checking', 'afterCheck']);
/** Worker machine states of a worker that failed and is not (yet) back. */
const FAILED = new Set(['unhealthy', 'restarting']);

/** The worker machine's state as one word: the live substate, or the top-level state. */
export function workerStateName(value: unknown): string {
  if (typeof value === 'string') return value;
  const live = (value as { live?: unknown }).live;
  if (typeof live === 'string') return live;
  if (live && typeof live === 'object') return Object.keys(live)[0]!;
  return Object.keys(value as object)[0] ?? 'unknown';
}

export class Pool extends TelemetryEmitter {
  readonly options: ResolvedOptions;
  private readonly seams: PoolSeams;
  /** The pool's clock for request deadlines: the simulated one in tests, real timers otherwise. */
  private readonly clock: { setTimeout(fn: () => void, ms: number): unknown; clearTimeout(id: unknown): void };
  private readonly root: Actor<typeof poolSupervisorMachine>;
  private readonly sessionPool: AnyActorRef;
  private readonly supervisor: AnyActorRef;
  private readonly workerRefs = new Map<string, Tracked>();
  private readonly pending = new Map<number, Pending>();
  private readonly latency = new LatencyWindow();
  private nextTicket = 1;
  private closed = false;
  private escalation: SupervisorEscalationError | null = null;
  private stopping: Promise<void> | null = null;
  private stopRequested = false;
  private counters = { commands: 0, errors: 0, restarts: 0 };
  private readonly counts = new Map<string, WorkerCounts>();
  private readonly ready: Promise<void>;
  private readyGate!: { resolve: () => void; reject: (e: unknown) => void };
  private readonly initialWorkers: string[];
  private readonly workerSpec: (id: string, overflow: boolean) => ChildSpec;

  constructor(options: ResolvedOptions, seams: PoolSeams) {
    super();
    this.options = options;
    this.seams = seams;
    this.clock = seams.clock ?? { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (id) => clearTimeout(id as NodeJS.Timeout) };
    const worker = workerMachine.provide({ actors: { pythonProcess: seams.processLogic } });
    const initialWorkers = options.lazy ? [] : Array.from({ length: options.poolSize }, (_, i) => `worker_${i + 1}`);
    const workerInput = (id: string): WorkerInput => ({
      workerId: id,
      requestTimeoutMs: options.requestTimeout,
      startTimeoutMs: options.startTimeoutMs,
      pingTimeoutMs: options.pingTimeoutMs,
      interruptGraceMs: options.interruptGraceMs,
      maxConsecutiveErrors: options.maxConsecutiveErrors,
      recycleAfterRequests: options.recycle.maxRequests,
    });
    this.workerSpec = (id: string, overflow: boolean): ChildSpec => ({
      id,
      start: { logic: worker, input: workerInput(id) as unknown as Record<string, unknown> },
      // Overflow workers are temporary: a dead one is simply not replaced (OTP's temporary child).
      restart: overflow ? 'temporary' : 'permanent',
      shutdown: options.shutdownTimeout,
      type: 'worker',
    });
    const sessionPoolInput: SessionPoolInput = {
      poolSize: options.poolSize,
      maxOverflow: options.maxOverflow,
      maxQueue: options.maxQueue,
      affinity: options.affinity,
      lazy: options.lazy,
      overflowIdleMs: options.overflowIdleMs,
      sessionTtlMs: options.sessionTtlMs,
      initialWorkers,
    };
    const supervisorInput: SupervisorInput = {
      id: 'workers',
      strategy: options.restart.strategy,
      maxRestarts: options.restart.maxRestarts,
      periodMs: options.restart.maxSeconds * 1000,
      children: initialWorkers.map((id) => this.workerSpec(id, false)),
    };
    const machine = poolSupervisorMachine.provide({
      actors: { sessionPool: sessionPoolMachine, workerSupervisor: supervisorMachine, monitor: monitorMachine },
    });
    this.root = createActor(machine, {
      input: {
        sessionPool: sessionPoolInput as unknown as Record<string, unknown>,
        workers: supervisorInput as unknown as Record<string, unknown>,
        monitor: { intervalMs: monitorInterval(options) },
      },
      // Absent, not undefined: XState would take an explicit undefined as "no clock".
      ...(seams.clock ? { clock: seams.clock as never } : {}),
      // Absent unless asked for: with no observer XState skips building inspection events, which
      // is measurable on the request path. observeInspection() adds observers later.
      ...(options.inspect ? { inspect: options.inspect as never } : {}),
      systemId: 'pool',
    });
    seams.setLogSink?.((workerId, pid, line) => this.emit('worker_log', { workerId, pid, line }));

    this.initialWorkers = initialWorkers;
    this.ready = new Promise<void>((resolve, reject) => (this.readyGate = { resolve, reject }));
    // Silence the unhandled-rejection warning for pools nobody awaits; callers still see it.
    this.ready.catch(() => {});

    // Take the root's children before start(): they exist from createActor() on, while a pool
    // whose workers escalate during start() (start failures that are synchronous, as in the
    // simulation) has already finished when start() returns, and system.get() no longer knows
    // the children of a finished actor.
    const children = {
      sessionPool: this.root.system.get('sessionPool'),
      workers: this.root.system.get('workers'),
    };
    if (!children.sessionPool || !children.workers) throw new Error('pyvisor: the pool supervisor did not create its children');
    this.sessionPool = children.sessionPool;
    this.supervisor = children.workers;
    this.wireSessionPool();
    this.supervisor.subscribe((snapshot: { context: SupervisorContext }) => this.syncWorkers(snapshot.context));
    this.root.on('tick', () => this.onTick());
    this.root.start();
    // Workers are spawned with the supervisor, before it publishes snapshots: start from the
    // current one.
    this.syncWorkers((this.supervisor.getSnapshot() as { context: SupervisorContext }).context);
  }

  /** Receive every XState inspection event of the pool's actors (what the inspector page streams). */
  observeInspection(listener: (event: InspectionEvent) => void): () => void {
    const subscription = this.root.system.inspect(listener);
    return () => subscription.unsubscribe();
  }

  /** Ready once every non-lazy worker has been healthy (a supervisor's "started" only means spawned). */
  private checkReady(): void {
    if (this.initialWorkers.every((id) => (this.workerRefs.get(id)?.healthyGeneration ?? 0) > 0)) this.readyGate.resolve();
  }
  /** Resolves when the non-lazy workers are healthy; rejects if the pool could not start. */
  whenReady(): Promise<void> {
    return this.ready;
  }

  // ---- public API -------------------------------------------------------------------------

  execute<T = unknown>(command: string, args: unknown = null, options: ExecuteOptions = {}): Promise<T> {
    if (typeof command !== 'string' || command.length === 0) {
      return Promise.reject(new InvalidOptionError('command', `must be a non-empty string, got ${typeof command === 'string' ? '""' : typeof command}`));
    }
    try {
      checkExecuteOptions(options);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.closed) return Promise.reject(this.closedError());
    if (options.signal?.aborted) return Promise.reject(new AbortError(options.signal.reason));
    return this.submit(command, args, options.sessionId ?? null, null, options) as Promise<T>;
  }

  private submit(cmd: string, args: unknown, sessionId: string | null, targetWorker: string | null, options: ExecuteOptions): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const ticket = this.nextTicket++;
      const now = this.seams.now();
      const checkoutTimeoutMs = options.checkoutTimeout ?? this.options.checkoutTimeout;
      const pending: Pending = {
        ticket,
        cmd,
        args,
        sessionId,
        targetWorker,
        timeoutMs: options.timeout ?? this.options.requestTimeout,
        checkoutTimeoutMs,
        checkoutDeadline: now + checkoutTimeoutMs,
        enqueuedAt: now,
        startedAt: 0,
        workerId: null,
        idempotent: options.idempotent ?? false,
        retried: false,
        settled: false,
        resolve,
        reject,
        cleanup: null,
        deadline: null,
      };
      const signal = options.signal;
      if (signal) {
        const onAbort = () => this.abort(pending, signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
        pending.cleanup = () => signal.removeEventListener('abort', onAbort);
      }
      this.pending.set(ticket, pending);
      this.checkout(pending, checkoutTimeoutMs);
    });
  }

  private checkout(pending: Pending, timeoutMs: number): void {
    this.sessionPool.send({ type: 'CHECKOUT', ticket: pending.ticket, sessionId: pending.sessionId, timeoutMs, workerId: pending.targetWorker });
  }

  /** cleanup_session on every worker that served the session; resolves with how many did. */
  async endSession(sessionId: string): Promise<number> {
    if (typeof sessionId !== 'string' || sessionId.length === 0) throw new InvalidOptionError('sessionId', 'endSession needs a non-empty string');
    if (this.closed) throw this.closedError();
    const entry = this.sessionContext().sessions[sessionId];
    if (!entry) throw new SessionNotFoundError(sessionId);
    this.sessionPool.send({ type: 'END_SESSION', sessionId });
    const cleaned = await this.cleanupSession(sessionId, entry.workers);
    this.emit('session_end', { sessionId, reason: 'ended', workers: cleaned });
    return cleaned;
  }

  private async cleanupSession(sessionId: string, workers: string[]): Promise<number> {
    const results = await Promise.allSettled(
      workers.map((workerId) => this.submit('cleanup_session', { session_id: sessionId }, null, workerId, {})),
    );
    return results.filter((r) => r.status === 'fulfilled').length;
  }

  stats(): PoolStats {
    const sp = this.sessionContext();
    let healthy = 0;
    let unhealthy = 0;
    for (const tracked of this.workerRefs.values()) {
      if (SERVING.has(tracked.state)) healthy++;
      // A recycled worker passes through `restarting` too, but nothing failed.
      else if (FAILED.has(tracked.state) && !tracked.recycling) unhealthy++;
    }
    const busy = sp.slots.filter((s) => s.state === 'busy').length;
    return {
      activeSessions: Object.keys(sp.sessions).length,
      poolSize: this.options.poolSize,
      utilization: healthy === 0 ? 0 : Math.min(1, busy / healthy),
      healthyWorkers: healthy,
      unhealthyWorkers: unhealthy,
      busyWorkers: busy,
      overflowWorkers: sp.slots.filter((s) => s.overflow).length,
      queueLength: sp.queue.length,
      totalCommands: this.counters.commands,
      totalErrors: this.counters.errors,
      restarts: this.counters.restarts,
      latencyMs: this.latency.percentiles(),
    };
  }

  workers(): WorkerInfo[] {
    const sp = this.sessionContext();
    const sessions = Object.values(sp.sessions);
    const result: WorkerInfo[] = [];
    for (const [id, tracked] of this.workerRefs) {
      const context = (tracked.ref.getSnapshot() as { context: WorkerContext }).context;
      const counts = this.countsOf(id);
      result.push({
        id,
        state: tracked.state,
        pid: context.pid,
        requests: counts.requests,
        errors: counts.errors,
        restarts: counts.restarts,
        sessions: sessions.filter((s) => s.workers.includes(id)).length,
        overflow: tracked.overflow,
      });
    }
    return result;
  }

  /**
   * Serve the live inspector page (supervision tree, worker state machines, charts, log) on
   * 127.0.0.1. Loaded on first use only.
   */
  async serveInspector(options?: import('./inspector/server.js').InspectorOptions): Promise<import('./inspector/server.js').InspectorServer> {
    const { serveInspector } = await import('./inspector/server.js');
    return serveInspector(this, options);
  }

  /** The root actor, for inspection and tooling. */
  get actor(): Actor<typeof poolSupervisorMachine> {
    return this.root;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Stop every worker (SIGTERM, then SIGKILL after shutdownTimeout); resolves when no Python process of the pool is alive. */
  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    this.stopRequested = true;
    this.close(new PoolClosedError());
    this.stopping = (async () => {
      if (this.root.getSnapshot().status === 'active') {
        // The root completes once its supervisor has stopped every worker in reverse order.
        await new Promise<void>((resolve) => {
          this.root.subscribe({ complete: resolve, error: () => resolve() });
          this.root.send({ type: 'STOP' });
          if (this.root.getSnapshot().status !== 'active') resolve();
        });
      }
      this.root.stop();
      await this.seams.allExited();
      for (const pending of this.pending.values()) this.settle(pending, this.escalation ?? new PoolClosedError());
      this.pending.clear();
      for (const tracked of this.workerRefs.values()) for (const s of tracked.subscriptions) s.unsubscribe();
    })();
    return this.stopping;
  }

  // ---- internals ----------------------------------------------------------------------------

  private countsOf(workerId: string): WorkerCounts {
    let counts = this.counts.get(workerId);
    if (!counts) this.counts.set(workerId, (counts = { requests: 0, errors: 0, restarts: 0 }));
    return counts;
  }

  private sessionContext(): SessionPoolContext {
    const snapshot = this.sessionPool.getSnapshot() as { status: string; context: SessionPoolContext };
    // Once the pool has shut down its session pool is stopped and its last snapshot is stale:
    // nothing is checked out, waiting or held in a worker any more.
    if (snapshot.status !== 'active') return { ...snapshot.context, slots: [], queue: [], sessions: {} };
    return snapshot.context;
  }

  /** What a call on a closed pool gets: PoolClosedError, saying why the pool closed. */
  private closedError(): PoolClosedError {
    return this.escalation
      ? new PoolClosedError(`the pool shut down after its supervisor escalated (${this.escalation.message})`)
      : new PoolClosedError();
  }

  private close(error: PyvisorError): void {
    if (this.closed) return;
    this.closed = true;
    this.sessionPool.send({ type: 'CLOSE', error: this.escalation ?? undefined });
    if (this.escalation) {
      // Escalation: the workers are going away; nobody waits for an answer that cannot come.
      // After a microtask: the escalation is decided while the crashing worker is still in its
      // transition, and its own reply (the crash, with exit code and stderr) comes first.
      const escalation = this.escalation;
      queueMicrotask(() => {
        for (const pending of this.pending.values()) this.settle(pending, escalation);
      });
    }
    // Nobody is left waiting for readiness either (a no-op once the pool was ready).
    this.readyGate.reject(error);
  }

  private wireSessionPool(): void {
    this.sessionPool.on('assigned', (e: { ticket: number; workerId: string }) => this.onAssigned(e.ticket, e.workerId));
    this.sessionPool.on('rejected', (e: { ticket: number; error: PyvisorError }) => {
      const pending = this.pending.get(e.ticket);
      if (!pending) return;
      this.pending.delete(e.ticket);
      if (e.error instanceof PoolTimeoutError) {
        this.emit('timeout', { kind: 'checkout', sessionId: pending.sessionId, command: pending.cmd, timeoutMs: pending.checkoutTimeoutMs });
      }
      this.settle(pending, e.error);
    });
    this.sessionPool.on('start_worker', (e: { workerId: string; overflow: boolean }) => {
      this.supervisor.send({ type: 'START_CHILD', spec: this.workerSpec(e.workerId, e.overflow) });
    });
    this.sessionPool.on('retire_worker', (e: { workerId: string }) => {
      this.supervisor.send({ type: 'TERMINATE_CHILD', id: e.workerId });
    });
    this.sessionPool.on('session_start', (e: { sessionId: string }) => this.emit('session_start', { sessionId: e.sessionId }));
    this.sessionPool.on('session_expired', (e: { sessionId: string; workers: string[] }) => {
      void this.cleanupSession(e.sessionId, e.workers).then((n) => this.emit('session_end', { sessionId: e.sessionId, reason: 'expired', workers: n }));
    });
  }

  private onAssigned(ticket: number, workerId: string): void {
    const pending = this.pending.get(ticket);
    const tracked = this.workerRefs.get(workerId);
    if (!pending || pending.settled || !tracked) {
      // A worker this facade does not follow cannot serve: mark it down, or the request would be
      // handed straight back to it.
      this.sessionPool.send({ type: 'CHECKIN', ticket, workerId, workerLost: !tracked });
      if (pending && !pending.settled) this.checkout(pending, Math.max(1, pending.checkoutDeadline - this.seams.now()));
      return;
    }
    const now = this.seams.now();
    if (now > pending.checkoutDeadline) {
      // Its deadline passed while the assignment was in flight: drop it, never run it.
      this.pending.delete(ticket);
      this.sessionPool.send({ type: 'CHECKIN', ticket, workerId, workerLost: false });
      this.emit('timeout', { kind: 'checkout', sessionId: pending.sessionId, command: pending.cmd, timeoutMs: pending.checkoutTimeoutMs });
      this.settle(pending, new PoolTimeoutError(pending.checkoutTimeoutMs));
      return;
    }
    pending.workerId = workerId;
    pending.startedAt = now;
    // Per-request events build their payload only for someone listening: this is the request path.
    if (this.listenerCount('checkout')) this.emit('checkout', { workerId, sessionId: pending.sessionId, command: pending.cmd, queueMs: now - pending.enqueuedAt });
    // The deadline travels with the request: its timer is ours, on the pool's clock; what a
    // timeout does to the worker is the worker machine's decision. Armed before EXECUTE, whose
    // answer may come back before send() returns (the simulation answers synchronously).
    pending.deadline = this.clock.setTimeout(() => {
      pending.deadline = null;
      tracked.ref.send({ type: 'REQUEST_TIMEOUT', ticket });
    }, pending.timeoutMs);
    tracked.ref.send({ type: 'EXECUTE', ticket, cmd: pending.cmd, args: pending.args, session: pending.sessionId, timeoutMs: pending.timeoutMs });
  }

  private onReply(reply: Extract<WorkerEmitted, { type: 'reply' }>): void {
    const pending = this.pending.get(reply.ticket);
    if (!pending || pending.workerId !== reply.workerId) return;
    this.pending.delete(reply.ticket);
    this.clearDeadline(pending);
    const runMs = this.seams.now() - pending.startedAt;
    const workerLost = !reply.ok && reply.replaced;
    const counts = this.countsOf(reply.workerId);
    this.counters.commands++;
    counts.requests++;
    this.latency.add(runMs);
    if (!reply.ok) {
      this.counters.errors++;
      counts.errors++;
    }
    // The checkin event comes before the worker is handed on, so a listener sees the events of
    // one worker in their real order (this checkin, then the next caller's checkout).
    if (this.listenerCount('checkin')) {
      const checkin = { workerId: reply.workerId, sessionId: pending.sessionId, command: pending.cmd, queueMs: pending.startedAt - pending.enqueuedAt, runMs, ok: reply.ok };
      this.emit('checkin', reply.ok ? checkin : { ...checkin, error: reply.error.code });
    }
    this.sessionPool.send({ type: 'CHECKIN', ticket: reply.ticket, workerId: reply.workerId, workerLost });
    if (reply.ok) {
      this.settle(pending, undefined, reply.result);
      return;
    }
    if (this.stopRequested && reply.replaced && !(reply.error instanceof RequestTimeoutError)) {
      // stop() took the process away under the command (it outlived shutdownTimeout).
      this.settle(pending, new PoolClosedError(`the pool stopped before "${pending.cmd}" finished (${reply.error.message})`));
      return;
    }
    if (reply.error instanceof RequestTimeoutError) {
      this.emit('timeout', { kind: 'request', workerId: reply.workerId, sessionId: pending.sessionId, command: pending.cmd, timeoutMs: pending.timeoutMs });
    }
    if (reply.error instanceof WorkerCrashedError && pending.idempotent && !pending.retried && !pending.settled && !this.closed) {
      // Idempotent: once more, on whichever worker is free (the crashed one is being replaced).
      pending.retried = true;
      pending.workerId = null;
      pending.enqueuedAt = this.seams.now();
      pending.checkoutDeadline = pending.enqueuedAt + pending.checkoutTimeoutMs;
      this.pending.set(pending.ticket, pending);
      this.checkout(pending, pending.checkoutTimeoutMs);
      return;
    }
    this.settle(pending, reply.error);
  }

  /** The worker was not in a state to take the request: put it back in the queue. */
  private onUnavailable(e: { ticket: number; workerId: string }): void {
    const pending = this.pending.get(e.ticket);
    this.sessionPool.send({ type: 'CHECKIN', ticket: e.ticket, workerId: e.workerId, workerLost: true });
    if (!pending || pending.settled) {
      this.pending.delete(e.ticket);
      return;
    }
    pending.workerId = null;
    this.clearDeadline(pending);
    const remaining = pending.checkoutDeadline - this.seams.now();
    if (remaining <= 0) {
      this.pending.delete(e.ticket);
      this.emit('timeout', { kind: 'checkout', sessionId: pending.sessionId, command: pending.cmd, timeoutMs: pending.checkoutTimeoutMs });
      this.settle(pending, new PoolTimeoutError(pending.checkoutTimeoutMs));
      return;
    }
    this.checkout(pending, remaining);
  }

  private abort(pending: Pending, reason: unknown): void {
    if (pending.settled) return;
    if (pending.workerId === null) {
      this.pending.delete(pending.ticket);
      this.sessionPool.send({ type: 'CANCEL', ticket: pending.ticket });
    } else {
      // In flight: interrupt the handler; the worker checks itself back in when it answers.
      this.workerRefs.get(pending.workerId)?.ref.send({ type: 'ABORT', ticket: pending.ticket });
    }
    this.settle(pending, new AbortError(reason));
  }

  private clearDeadline(pending: Pending): void {
    if (pending.deadline !== null) {
      this.clock.clearTimeout(pending.deadline);
      pending.deadline = null;
    }
  }

  private settle(pending: Pending, error: unknown, value?: unknown): void {
    this.clearDeadline(pending);
    if (pending.settled) return;
    pending.settled = true;
    pending.cleanup?.();
    if (error !== undefined) pending.reject(error);
    else pending.resolve(value);
  }

  /** Follow the supervisor's child list: listen to new workers, forget removed ones. */
  private syncWorkers(context: SupervisorContext): void {
    if (context.escalation && !this.escalation) {
      this.escalation = context.escalation;
      this.emit('escalation', { supervisorId: context.id, error: context.escalation });
      this.close(context.escalation);
      this.readyGate.reject(context.escalation);
    }
    this.checkReady();
    const present = new Set<string>();
    for (const child of context.children) {
      present.add(child.spec.id);
      if (this.workerRefs.has(child.spec.id) && this.workerRefs.get(child.spec.id)!.ref === child.ref) continue;
      this.track(child.spec.id, child.ref, child.spec.restart === 'temporary');
    }
    for (const [id, tracked] of this.workerRefs) {
      if (present.has(id)) continue;
      for (const s of tracked.subscriptions) s.unsubscribe();
      this.workerRefs.delete(id);
      // Overflow ids are never reused: forget a removed worker's counters, or they pile up.
      this.counts.delete(id);
      // One that never came up failed to start: the session pool must not simply ask for another.
      this.sessionPool.send({ type: tracked.healthyGeneration === 0 ? 'WORKER_START_FAILED' : 'WORKER_REMOVED', workerId: id });
      this.emit('worker_state', { workerId: id, from: tracked.state, to: 'removed', pid: null });
    }
  }

  private track(id: string, ref: AnyActorRef, overflow: boolean): void {
    const tracked: Tracked = { ref, subscriptions: [], serving: false, state: 'idle', pid: null, generation: 0, healthyGeneration: 0, lastHealthyPid: null, startedAt: this.seams.now(), overflow, recycling: false };
    this.workerRefs.set(id, tracked);
    tracked.subscriptions.push(ref.on('reply', (e: Extract<WorkerEmitted, { type: 'reply' }>) => this.onReply(e)));
    tracked.subscriptions.push(ref.on('unavailable', (e: { ticket: number; workerId: string }) => this.onUnavailable(e)));
    const observe = (snapshot: { value: unknown; context: WorkerContext }) => {
        const state = workerStateName(snapshot.value);
        const { pid, generation } = snapshot.context;
        if (generation !== tracked.generation) {
          tracked.generation = generation;
          tracked.startedAt = this.seams.now();
        }
        if (state === 'recycling') tracked.recycling = true;
        else if (state === 'unhealthy') tracked.recycling = false;
        if (state === 'healthy' && generation > 1 && tracked.healthyGeneration !== generation) {
          this.counters.restarts++;
          this.countsOf(id).restarts++;
          this.emit('worker_restarted', { workerId: id, oldPid: tracked.lastHealthyPid, newPid: pid, reason: tracked.recycling ? 'recycle' : 'restart' });
        }
        if (state === 'healthy' && tracked.healthyGeneration !== generation) {
          tracked.healthyGeneration = generation;
          tracked.lastHealthyPid = pid;
          tracked.recycling = false;
          this.checkReady();
        }
        const serving = SERVING.has(state);
        if (state !== tracked.state) {
          const from = tracked.state;
          tracked.state = state;
          tracked.pid = pid ?? tracked.pid;
          if (this.listenerCount('worker_state')) this.emit('worker_state', { workerId: id, from, to: state, pid });
        }
        if (serving !== tracked.serving) {
          tracked.serving = serving;
          this.sessionPool.send({ type: serving ? 'WORKER_UP' : 'WORKER_DOWN', workerId: id });
        }
    };
    tracked.subscriptions.push(ref.subscribe(observe));
    observe(ref.getSnapshot());
  }

  /** The monitor's tick: health-check idle workers, recycle old or fat ones. */
  private onTick(): void {
    const now = this.seams.now();
    const { maxAgeMs, maxRssMb } = this.options.recycle;
    for (const tracked of this.workerRefs.values()) {
      if (tracked.state !== 'healthy') continue; // busy workers are never pinged
      const pid = tracked.pid;
      if (maxAgeMs > 0 && now - tracked.startedAt >= maxAgeMs) {
        tracked.ref.send({ type: 'RECYCLE' });
        continue;
      }
      if (maxRssMb > 0 && pid !== null) {
        const rss = this.seams.rssMb?.(pid) ?? null;
        if (rss !== null && rss > maxRssMb) {
          tracked.ref.send({ type: 'RECYCLE' });
          continue;
        }
      }
      if (this.options.healthCheckInterval > 0) tracked.ref.send({ type: 'HEALTH_CHECK' });
    }
  }
}

/** When health checks are off, age and memory limits still need a tick to be checked on. */
const RECYCLE_CHECK_MS = 30_000;

/** The monitor's period: the health-check interval, or RECYCLE_CHECK_MS if only recycling needs it; 0 = off. */
function monitorInterval(options: ResolvedOptions): number {
  if (options.healthCheckInterval > 0) return options.healthCheckInterval;
  return options.recycle.maxAgeMs > 0 || options.recycle.maxRssMb > 0 ? RECYCLE_CHECK_MS : 0;
}

