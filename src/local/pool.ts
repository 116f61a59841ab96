/**
 * The local pool: the public facade over the supervision tree (machines/) and the request path
 * (dispatcher → worker handle → process). The machines decide every lifecycle step; this file
 * carries their decisions out — starting and retiring workers — and answers their questions
 * from live state; src/local/tree.ts follows the tree for the handles.
 *
 * Request path: execute() → Dispatcher.submit → route() → WorkerHandle.run → the process →
 * WorkerHandle.reply → Dispatcher.finish. No actor event on it when a worker is free.
 */
import { createActor, type Actor, type AnyActorRef, type CallbackActorLogic, type InspectionEvent } from 'xstate';
import type { ActorLogicView, ActorRefView, InspectionEventView } from '../core/actorView.js';
import { InvalidOptionError, AbortError, PoolClosedError, SessionNotFoundError, fromWire, type PyvisorError, type SupervisorEscalationError } from '../errors.js';
import { checkExecuteOptions, checkStreamOptions, type ExecuteOptions, type ResolvedOptions, type StreamOptions } from '../options.js';
import { TelemetryEmitter } from '../telemetry.js';
import type { Clock } from '../core/clock.js';
import { Request } from '../core/request.js';
import { DEFAULT_STREAM_WINDOW, ResultStream } from '../core/stream.js';
import { createCommands, type AnyCommands, type CommandMap, type Commands } from '../core/commands.js';
import type { Executor, PoolStats, WorkerInfo } from '../core/executor.js';
import { poolSupervisorMachine } from '../../machines/poolSupervisor.js';
import { sessionPoolMachine, type SessionPoolContext, type SessionPoolEmitted, type SessionPoolEvent, type SessionPoolInput } from '../../machines/sessionPool.js';
import { supervisorMachine, type ChildSpec, type SupervisorContext, type SupervisorInput } from '../../machines/supervisor.js';
import { monitorMachine } from '../../machines/monitor.js';
import { workerMachine, type WorkerContext, type WorkerInput } from '../../machines/worker.js';
import type { ProcessActorInput, ProcessCommand } from '../../machines/events.js';
import { Counters, poolStats, workerRows } from './stats.js';
import { Dispatcher } from './dispatcher.js';
import { WorkerHandle, type HandleHost } from './workerHandle.js';
import { TreeFollower } from './tree.js';

export type { PoolStats, WorkerInfo } from '../core/executor.js';

/**
 * Where a worker's stderr line goes under `logs`. 'inherit' is the default because a newcomer's
 * print() or traceback must not vanish; the prefix says which worker process wrote it.
 */
function logSink(mode: ResolvedOptions['logs'], emit: (workerId: string, pid: number | null, line: string) => void) {
  if (mode === 'silent') return () => {};
  if (mode === 'events') return emit;
  return (workerId: string, pid: number | null, line: string) => {
    process.stderr.write(`[${workerId} ${pid ?? '-'}] ${line}\n`);
    emit(workerId, pid, line);
  };
}

/** What differs between a real pool and a simulated one. */
export interface PoolSeams {
  /** The `pythonProcess` actor logic (src/channel/processActor.ts): real processes or the simulation's. */
  processLogic: ActorLogicView;
  /** The pool's one clock: every timer and measurement. */
  clock: Clock;
  /** Resident memory of a pid in MiB, or null if unknown. */
  rssMb?: (pid: number) => number | null;
  /** Resolves once every process this pool started has exited. */
  allExited: () => Promise<void>;
  /** pids of the pool's processes that have not exited yet. */
  pids?: () => number[];
  /** Called with each stderr line of a worker (wired by the real transport). */
  setLogSink?: (sink: (workerId: string, pid: number | null, line: string) => void) => void;
}

/** A request as observeRequests() reports it. */
export type RequestObservation =
  | { phase: 'sent'; workerId: string; cmd: string; args: unknown; sessionId: string | null }
  | { phase: 'settled'; workerId: string; cmd: string; sessionId: string | null; ok: boolean; result?: unknown; error?: PyvisorError };


export class Pool extends TelemetryEmitter implements Executor {
  readonly options: ResolvedOptions;
  private readonly seams: PoolSeams;
  private readonly clock: Clock;
  private readonly root: Actor<typeof poolSupervisorMachine>;
  private readonly sessionPool: AnyActorRef;
  private readonly tree: TreeFollower;
  private readonly handles = new Map<string, WorkerHandle>();
  private readonly counters = new Counters();
  private readonly dispatcher: Dispatcher;
  private readonly handleHost: HandleHost;
  private readonly requestObservers = new Set<(event: RequestObservation) => void>();
  private nextRequest = 1;
  private isReady = false;
  /** The root was told the workers came up (WORKERS_UP): from then on a failing tier is worth restarting. */
  private workersUp = false;
  private closed = false;
  private stopRequested = false;
  private escalation: SupervisorEscalationError | null = null;
  private stopping: Promise<void> | null = null;
  private readonly ready: Promise<void>;
  private readyGate!: { resolve: () => void; reject: (e: unknown) => void };
  private readonly initialWorkers: string[];
  private readonly workerSpec: (id: string, overflow: boolean) => ChildSpec;

  constructor(options: ResolvedOptions, seams: PoolSeams) {
    super();
    this.options = options;
    this.seams = seams;
    this.clock = seams.clock;
    const pool = this;
    this.handleHost = {
      clock: this.clock,
      concurrency: options.workerConcurrency,
      interruptGrace: options.interruptGrace,
      maxConsecutiveErrors: options.maxConsecutiveErrors,
      recycleAfter: options.recycle.maxRequests,
      maxRssMb: options.recycle.maxRssMb,
      rssMb: (pid) => seams.rssMb?.(pid) ?? null,
      get stopping() {
        return pool.stopRequested;
      },
      finish: (request, error, value) => this.dispatcher.finish(request, error, value),
      workerLost: (request, error) => this.dispatcher.workerLost(request, error),
      redispatch: (request) => this.dispatcher.redispatch(request),
      freed: () => this.dispatcher.serve(),
      timedOut: (handle, request) => {
        if (this.listenerCount('timeout')) this.emit('timeout', { kind: 'request', workerId: handle.id, sessionId: request.sessionId, command: request.cmd, timeoutMs: request.timeout });
      },
      held: (handle, sessionId, held) => this.dispatcher.held(handle, sessionId, held),
      restarted: (handle, oldPid, reason) => {
        this.counters.restarted(handle.id);
        this.emit('worker_restarted', { workerId: handle.id, oldPid, newPid: handle.pid, reason });
      },
    };
    this.dispatcher = new Dispatcher({
      clock: this.clock,
      affinity: options.affinity,
      maxQueue: options.maxQueue,
      sessionTtl: options.sessionTtl,
      counters: this.counters,
      sessions: () => this.sessionContext().sessions,
      tell: (event) => this.sessionPool.send(event),
      closedError: () => (this.closed ? this.closedError() : null),
      onCheckout: (request, workerId) => {
        for (const observe of this.requestObservers) observe({ phase: 'sent', workerId, cmd: request.cmd, args: request.args, sessionId: request.sessionId });
        if (this.listenerCount('checkout')) this.emit('checkout', { workerId, sessionId: request.sessionId, command: request.cmd, queueMs: request.startedAt - request.enqueuedAt });
      },
      onCheckin: (request, ok, error, value) => {
        for (const observe of this.requestObservers) observe({ phase: 'settled', workerId: request.workerId!, cmd: request.cmd, sessionId: request.sessionId, ok, ...(ok ? { result: value } : { error: error! }) });
        if (!this.listenerCount('checkin')) return;
        const checkin = { workerId: request.workerId!, sessionId: request.sessionId, command: request.cmd, queueMs: request.startedAt - request.enqueuedAt, runMs: this.clock.now() - request.startedAt, ok };
        this.emit('checkin', ok ? checkin : { ...checkin, error: error!.code });
      },
      onCheckoutTimeout: (request) => {
        if (this.listenerCount('timeout')) this.emit('timeout', { kind: 'checkout', sessionId: request.sessionId, command: request.cmd, timeoutMs: request.checkoutTimeout });
      },
    });

    const worker = workerMachine.provide({ actors: { pythonProcess: seams.processLogic as CallbackActorLogic<ProcessCommand, ProcessActorInput> } });
    const initialWorkers = options.lazy ? [] : Array.from({ length: options.poolSize }, (_, i) => `worker_${i + 1}`);
    this.workerSpec = (id: string, overflow: boolean): ChildSpec => {
      const handle = new WorkerHandle(id, overflow, this.handleHost);
      this.handles.set(id, handle);
      this.dispatcher.handles.push(handle);
      const input: WorkerInput = { workerId: id, startTimeout: options.startTimeout, pingTimeout: options.pingTimeout, link: handle };
      return {
        id,
        start: { logic: worker, input: input as unknown as Record<string, unknown> },
        // Overflow workers are temporary: a dead one is simply not replaced (OTP's temporary child).
        restart: overflow ? 'temporary' : 'permanent',
        shutdown: options.shutdownTimeout,
        type: 'worker',
      };
    };
    const sessionPoolInput: SessionPoolInput = {
      poolSize: options.poolSize,
      maxOverflow: options.maxOverflow,
      affinity: options.affinity,
      overflowIdle: options.overflowIdle,
      sessionTtl: options.sessionTtl,
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
        maxRestarts: options.restart.root.maxRestarts,
        periodMs: options.restart.root.maxSeconds * 1000,
      },
      clock: this.clock as never,
      // Absent unless asked for: with no observer XState skips building inspection events.
      ...(options.inspect ? { inspect: options.inspect as never } : {}),
      systemId: 'pool',
    });
    seams.setLogSink?.(logSink(options.logs, (workerId, pid, line) => this.emit('worker_log', { workerId, pid, line })));

    this.initialWorkers = initialWorkers;
    this.ready = new Promise<void>((resolve, reject) => (this.readyGate = { resolve, reject }));
    // Silence the unhandled-rejection warning for pools nobody awaits; callers still see it.
    this.ready.catch(() => {});

    // Take the root's children before start(): a pool whose workers escalate during start()
    // has already finished when start() returns, and system.get() no longer knows them.
    const sessionPool = this.root.system.get('sessionPool');
    const supervisor = this.root.system.get('workers');
    if (!sessionPool || !supervisor) throw new Error('pyvisor: the pool supervisor did not create its children');
    this.sessionPool = sessionPool;
    this.tree = new TreeFollower(supervisor, {
      dispatcher: this.dispatcher,
      counters: this.counters,
      handleOf: (id) => this.handles.get(id) ?? this.adopt(id),
      forget: (id) => {
        const handle = this.handles.get(id);
        this.handles.delete(id);
        const index = handle ? this.dispatcher.handles.indexOf(handle) : -1;
        if (index !== -1) this.dispatcher.handles.splice(index, 1);
      },
      tell: (event) => this.sessionPool.send(event),
      moved: (workerId, from, to, pid) => {
        if (to === 'removed' || this.listenerCount('worker_state')) this.emit('worker_state', { workerId, from, to, pid });
      },
      checkReady: () => this.checkReady(),
    });
    this.wireSessionPool();
    this.tree.follow(supervisor, false);
    this.root.on('tick', () => this.onTick());
    this.root.on('tier_restarted', (e: { failure: unknown; restarts: number }) => {
      const tier = this.root.getSnapshot().children.workers as AnyActorRef | undefined;
      if (tier && tier !== this.tree.tier) this.tree.follow(tier, true);
      this.emit('tier_restarted', { restarts: e.restarts, error: fromWire(e.failure as never) });
    });
    this.root.on('closed', (e: { escalation: unknown }) => {
      if (!e.escalation || this.escalation) return;
      // The root gave up: the interpreter or the handlers cannot start workers any more.
      this.escalation = fromWire(e.escalation as never) as SupervisorEscalationError;
      this.emit('escalation', { supervisorId: 'pool', error: this.escalation });
      this.close(this.escalation);
    });
    this.root.start();
    this.tree.sync((supervisor.getSnapshot() as { context: SupervisorContext }).context);
  }

  /** Receive every XState inspection event of the pool's actors (what the inspector page streams). */
  observeInspection(listener: (event: InspectionEventView) => void): () => void {
    const subscription = this.root.system.inspect(listener as (event: InspectionEvent) => void);
    return () => subscription.unsubscribe();
  }

  /**
   * Observe each request as it is handed to a worker and as it settles, with its arguments and
   * result (what the inspector shows with sanitize: false). Requests do not pass through the
   * actors, so the inspection stream does not carry them.
   */
  observeRequests(listener: (event: RequestObservation) => void): () => void {
    this.requestObservers.add(listener);
    return () => this.requestObservers.delete(listener);
  }

  /** Resolves when the non-lazy workers are healthy; rejects if the pool could not start. */
  whenReady(): Promise<void> {
    return this.ready;
  }

  private checkReady(): void {
    if (!this.isReady && this.initialWorkers.every((id) => this.handles.get(id)?.everHealthy)) {
      this.isReady = true;
      this.readyGate.resolve();
    }
    // A lazy pool is ready with no worker at all; the root hears that workers can start only when
    // one has: until then a tier that escalates is a configuration that cannot start workers.
    if (this.workersUp || !this.isReady) return;
    if (this.initialWorkers.length === 0 && ![...this.handles.values()].some((h) => h.everHealthy)) return;
    this.workersUp = true;
    this.root.send({ type: 'WORKERS_UP' });
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

  /**
   * Run a generator handler and read what it yields as it yields it: `for await (const chunk of
   * pool.stream(cmd, args))`. It starts at once; the worker runs at most `window` chunks ahead
   * of the reader; `break` (or `signal`) cancels the handler and frees the worker; a crash, a
   * deadline (`timeout`, for the whole stream) or a Python error is thrown from the loop after
   * the chunks that came before it. `.result` is the final reply's result (a sync generator's
   * `return` value). Bad arguments throw from the first `next()`.
   */
  stream<T = unknown>(command: string, args: unknown = null, options: StreamOptions = {}): ResultStream<T> {
    let request: Request | null = null;
    const stream = new ResultStream<T>(options.window ?? DEFAULT_STREAM_WINDOW, (reason) => {
      if (request) this.dispatcher.abort(request, reason);
    });
    const refuse = (error: unknown) => {
      stream.end({ error });
      return stream;
    };
    if (typeof command !== 'string' || command.length === 0) return refuse(new InvalidOptionError('command', `must be a non-empty string, got ${typeof command === 'string' ? '""' : typeof command}`));
    try {
      checkStreamOptions(options);
    } catch (err) {
      return refuse(err);
    }
    if (this.closed) return refuse(this.closedError());
    if (options.signal?.aborted) return refuse(new AbortError(options.signal.reason));
    request = this.request(command, args, options.sessionId ?? null, null, options, stream, (value) => stream.end({ value }), (error) => stream.end({ error }));
    this.dispatcher.submit(request);
    return stream;
  }

  /**
   * The commands as typed functions, for the `Handlers` that `pyvisor types` writes (docs/TYPES.md):
   * `const py = pool.commands<Handlers>(); await py.greet({ name })`; a generator command also has
   * `py.tokens.stream(args, options?)`. `defaults` go with every call (a call's own options win).
   */
  commands<H extends CommandMap<H> = AnyCommands>(defaults?: ExecuteOptions): Commands<H> {
    return createCommands<H>(this, defaults);
  }

  private submit(cmd: string, args: unknown, sessionId: string | null, target: string | null, options: ExecuteOptions): Promise<unknown> {
    return new Promise((resolve, reject) => this.dispatcher.submit(this.request(cmd, args, sessionId, target, options, null, resolve, reject)));
  }

  private request(cmd: string, args: unknown, sessionId: string | null, target: string | null, options: ExecuteOptions, stream: ResultStream<any> | null, resolve: (v: unknown) => void, reject: (e: unknown) => void): Request {
    const request = new Request(
      this.nextRequest++,
      {
        cmd,
        args,
        sessionId,
        target,
        timeout: options.timeout ?? this.options.requestTimeout,
        checkoutTimeout: options.checkoutTimeout ?? this.options.checkoutTimeout,
        idempotent: options.idempotent ?? false,
        affinity: options.affinity ?? null,
        stream,
      },
      resolve,
      reject,
    );
    if (options.signal) request.watch(options.signal, (reason) => this.dispatcher.abort(request, reason));
    return request;
  }

  /** cleanup_session on every worker that may hold the session's state; resolves with how many did. */
  async endSession(sessionId: string): Promise<number> {
    if (typeof sessionId !== 'string' || sessionId.length === 0) throw new InvalidOptionError('sessionId', 'endSession needs a non-empty string');
    if (this.closed) throw this.closedError();
    const entry = this.sessionContext().sessions[sessionId];
    if (!entry) throw new SessionNotFoundError(sessionId);
    this.sessionPool.send({ type: 'END_SESSION', sessionId } satisfies SessionPoolEvent);
    this.dispatcher.forgetSession(sessionId);
    const cleaned = await this.cleanupSession(sessionId, entry.workers);
    this.emit('session_end', { sessionId, reason: 'ended', workers: cleaned });
    return cleaned;
  }

  private async cleanupSession(sessionId: string, workers: string[]): Promise<number> {
    const results = await Promise.allSettled(workers.map((workerId) => this.submit('cleanup_session', { session_id: sessionId }, null, workerId, {})));
    return results.filter((r) => r.status === 'fulfilled').length;
  }

  stats(): PoolStats {
    const handles = this.tree.workers().map((t) => t.handle);
    return poolStats(handles, this.counters, Object.keys(this.sessionContext().sessions).length, this.options.poolSize, this.dispatcher.queue.length);
  }

  workers(): WorkerInfo[] {
    const rows = this.tree.workers().map(({ handle, ref }) => ({ handle, pid: (ref.getSnapshot() as { context: WorkerContext }).context.pid }));
    return workerRows(rows, this.counters, Object.values(this.sessionContext().sessions));
  }

  /** Serve the live inspector page on 127.0.0.1. Loaded on first use only. */
  async serveInspector(options?: import('../inspector/server.js').InspectorOptions): Promise<import('../inspector/server.js').InspectorServer> {
    const { serveInspector } = await import('../inspector/server.js');
    return serveInspector(this, options);
  }

  /** The root actor, for inspection and tooling. */
  get actor(): ActorRefView {
    return this.root as unknown as ActorRefView;
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
      this.tree.unsubscribeAll();
    })();
    return this.stopping;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  // ---- internals ----------------------------------------------------------------------------

  private sessionContext(): SessionPoolContext {
    const snapshot = this.sessionPool.getSnapshot() as { status: string; context: SessionPoolContext };
    // Once the pool has shut down its session pool is stopped and its last snapshot is stale.
    if (snapshot.status !== 'active') return { ...snapshot.context, slots: [], sessions: {} };
    return snapshot.context;
  }

  /** What a call on a closed pool gets: PoolClosedError, saying why the pool closed. */
  private closedError(): PyvisorError {
    return this.escalation
      ? new PoolClosedError(`the pool shut down after its supervisor escalated (${this.escalation.message})`)
      : new PoolClosedError();
  }

  private close(error: PyvisorError): void {
    if (this.closed) return;
    this.closed = true;
    this.sessionPool.send({ type: 'CLOSE' } satisfies SessionPoolEvent);
    // Nobody waits for a worker that cannot come. On escalation nobody waits for a running
    // request either: its process is being stopped with the rest.
    this.dispatcher.closeQueue(this.escalation ?? error);
    if (this.escalation) for (const handle of this.handles.values()) handle.failAll(this.escalation);
    this.readyGate.reject(error);
  }

  private wireSessionPool(): void {
    const on = <K extends SessionPoolEmitted['type']>(type: K, fn: (e: Extract<SessionPoolEmitted, { type: K }>) => void) =>
      this.sessionPool.on(type, fn as (e: unknown) => void);
    on('start_worker', (e) => this.tree.tier.send({ type: 'START_CHILD', spec: this.workerSpec(e.workerId, e.overflow) }));
    on('retire_worker', (e) => {
      const handle = this.handles.get(e.workerId);
      if (handle) handle.retiring = true;
      this.tree.tier.send({ type: 'TERMINATE_CHILD', id: e.workerId });
    });
    on('session_start', (e) => this.emit('session_start', { sessionId: e.sessionId }));
    on('session_idle_check', (e) => this.sessionPool.send({ type: 'SESSION_IDLE_FOR', sessionId: e.sessionId, idleMs: this.dispatcher.idleFor(e.sessionId) } satisfies SessionPoolEvent));
    on('session_expired', (e) => {
      this.dispatcher.forgetSession(e.sessionId);
      void this.cleanupSession(e.sessionId, e.workers).then((n) => this.emit('session_end', { sessionId: e.sessionId, reason: 'expired', workers: n }));
    });
    on('worker_idle_check', (e) => {
      const handle = this.handles.get(e.workerId);
      const idleMs = !handle || handle.inflight.size > 0 ? 0 : this.clock.now() - handle.idleSince;
      this.sessionPool.send({ type: 'WORKER_IDLE_FOR', workerId: e.workerId, idleMs } satisfies SessionPoolEvent);
    });
  }

  /** A child the supervisor was given without this pool's spec (its static children come from workerSpec too). */
  private adopt(id: string): WorkerHandle {
    const handle = new WorkerHandle(id, false, this.handleHost);
    this.handles.set(id, handle);
    this.dispatcher.handles.push(handle);
    return handle;
  }

  /** The monitor's tick: health-check idle workers, recycle old or fat ones. */
  private onTick(): void {
    const now = this.clock.now();
    const rssMb = this.seams.rssMb ?? (() => null);
    const ping = this.options.healthCheckInterval > 0;
    for (const { handle } of this.tree.workers()) handle.tick(now, this.options.recycle, rssMb, ping);
  }
}

/** When health checks are off, age and memory limits still need a tick to be checked on. */
const RECYCLE_CHECK_MS = 30_000;

/** The monitor's period: the health-check interval, or RECYCLE_CHECK_MS if only recycling needs it; 0 = off. */
function monitorInterval(options: ResolvedOptions): number {
  if (options.healthCheckInterval > 0) return options.healthCheckInterval;
  return options.recycle.maxAgeMs > 0 || options.recycle.maxRssMb > 0 ? RECYCLE_CHECK_MS : 0;
}
