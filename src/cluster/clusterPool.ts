/**
 * The cluster pool: an Executor (src/core/executor.ts) whose workers are the local pools of the
 * agents serving a pool name over NATS. PythonPool, the CLI and user code use it as they use a
 * local pool. docs/CLUSTER.md describes the rules this file carries out:
 *
 * - anonymous requests go to the pool's queue group (NATS hands each to one agent, which
 *   accepts it, so the front end knows where it runs);
 * - a session request goes to the host its placement names (placementStore.ts: a KV bucket,
 *   compare-and-set), placing it first on the least loaded host (placement.ts) if it has none;
 * - hosts are known from their heartbeats (membership.ts); a dropped host's requests in flight
 *   are settled at once (HostUnavailableError, or once more elsewhere if idempotent), and the
 *   next request of each of its sessions gets SessionWorkerLostError reason 'host_lost', once;
 * - no host within the checkout deadline: HostUnavailableError; deadlines are absolute; an
 *   abort or a stream's break sends a cancel to the agent; stream chunks flow within a credit
 *   window acknowledged as the reader consumes.
 *
 * It is longer than the project's other files for a reason: it is the cluster's one owner of
 * every request (as src/local/dispatcher.ts and workerHandle.ts together are locally), from
 * submission through placement, sending, the agent's acceptance, chunks and the reply, to the
 * one settlement (`settle`) — whatever a host, the connection or the caller does meanwhile.
 * The pure parts are elsewhere: placement.ts, membership.ts, envelope.ts, view.ts.
 */
import { randomBytes } from 'node:crypto';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import {
  AbortError,
  HostUnavailableError,
  InvalidOptionError,
  PoolClosedError,
  ProtocolError,
  PyvisorError,
  RequestTimeoutError,
  SessionNotFoundError,
  SessionWorkerLostError,
} from '../errors.js';
import { checkExecuteOptions, checkStreamOptions, type ExecuteOptions, type StreamOptions } from '../options.js';
import { TelemetryEmitter, LatencyWindow } from '../telemetry.js';
import { realClock } from '../core/clock.js';
import { DEFAULT_STREAM_WINDOW, ResultStream } from '../core/stream.js';
import { createCommands, type AnyCommands, type CommandMap, type Commands } from '../core/commands.js';
import type { PoolStats } from '../core/executor.js';
import { openConnection, statusCode, type Connected, bounded } from './connection.js';
import { BUCKET_OPTIONS, bucketName, subjects, type Subjects } from './subjects.js';
import { decodeEnded, decodeHeartbeat, decodeReply, encodeArgs, encodeControl, encodeRequest, type Reply } from './envelope.js';
import { Membership, type MembershipEvent } from './membership.js';
import { chooseHost } from './placement.js';
import { clusterHosts, clusterStats, clusterWorkers, type ClusterHost, type ClusterPool, type ClusterPoolEvents, type ClusterWorkerInfo } from './view.js';
import { PlacementStore, type SessionPlacement } from './placementStore.js';
import { ClusterRequest } from './request.js';
import { resolveClusterOptions, type ClusterPoolOptions, type ResolvedClusterOptions } from './options.js';

export type { ClusterPoolOptions } from './options.js';
export type { ClusterHost, ClusterPool, ClusterPoolEvents, ClusterWorkerInfo } from './view.js';

/** A session request's route: its placement, or wait, or its host was lost. */
type PlaceOutcome = SessionPlacement | 'wait' | { lost: SessionWorkerLostError };

/** How many times a request's placement may change under it before it gives up. */
const MAX_PLACEMENT_ROUNDS = 8;
/** Retry delays after a send that reached nobody (503): 10 ms doubling to 200 ms. */
const FIRST_BACKOFF = 10;
const MAX_BACKOFF = 200;
const MAX_MS = 2 ** 31 - 1;

function message(error: unknown): string {
  return (error as Error)?.message ?? String(error);
}

class FrontEnd extends TelemetryEmitter<ClusterPoolEvents> implements ClusterPool {
  readonly options: ResolvedClusterOptions;
  /** This front end's id: its reply subjects are `${inbox}.<token>`. */
  readonly id = randomBytes(6).toString('hex');
  private readonly names: Subjects;
  private readonly inbox: string;
  private readonly conn: Connected;
  private readonly nc: NatsConnection;
  private readonly placements: PlacementStore;
  private readonly membership: Membership;
  private readonly subs: Subscription[] = [];
  /** The registered attempts, by reply token. */
  private readonly attempts = new Map<number, ClusterRequest>();
  /** Every unsettled request. */
  private readonly live = new Set<ClusterRequest>();
  /** Requests waiting for a host (or a connection, or news of their session's host). */
  private readonly waiting = new Set<ClusterRequest>();
  private readonly hostWaiters = new Set<{ n: number; resolve: () => void; reject: (error: unknown) => void }>();
  private readonly latency = new LatencyWindow();
  private readonly sweepTimer: NodeJS.Timeout;
  private nextId = 1;
  private nextToken = 1;
  private connected = true;
  private closed = false;
  private stopping: Promise<void> | null = null;

  constructor(options: ResolvedClusterOptions, conn: Connected, placements: PlacementStore) {
    super();
    this.options = options;
    this.names = subjects(options.pool);
    this.inbox = this.names.inbox(this.id);
    this.conn = conn;
    this.nc = conn.nc;
    this.placements = placements;
    this.membership = new Membership(options.hostTimeout, realClock.now);
    this.subs.push(this.nc.subscribe(`${this.inbox}.>`, { callback: (_err, msg) => this.onReply(msg) }));
    this.subs.push(this.nc.subscribe(this.names.heartbeat, { callback: (_err, msg) => this.onHeartbeat(msg) }));
    this.sweepTimer = setInterval(() => this.apply(this.membership.sweep()), Math.max(10, Math.min(250, options.hostTimeout / 4)));
    this.sweepTimer.unref();
    this.nc.publish(this.names.hello);
  }

  /** The connection went down or came back (connection.ts). */
  onConnection(event: 'disconnect' | 'reconnect', server: string): void {
    if (this.closed) return;
    if (event === 'disconnect') {
      this.connected = false;
      this.membership.freeze();
      for (const request of [...this.live]) {
        if (request.state === 'sent') this.lostInFlight(request, `the connection to NATS (${server}) was lost with the request in flight; it may have run`);
      }
      this.emit('disconnect', { server });
    } else {
      this.connected = true;
      this.membership.thaw();
      this.nc.publish(this.names.hello);
      this.emit('reconnect', { server });
      this.retryWaiting();
    }
  }

  // ---- public API -------------------------------------------------------------------------

  execute<T = unknown>(command: string, args: unknown = null, options: ExecuteOptions = {}): Promise<T> {
    return new Promise<unknown>((resolve, reject) => {
      const request = this.build(command, args, options, null, resolve, reject);
      if (request instanceof ClusterRequest) this.submit(request, options.signal);
      else reject(request.error);
    }) as Promise<T>;
  }

  stream<T = unknown>(command: string, args: unknown = null, options: StreamOptions = {}): ResultStream<T> {
    let request: ClusterRequest | null = null;
    const stream = new ResultStream<T>(options.window ?? DEFAULT_STREAM_WINDOW, (reason) => {
      if (request) this.abort(request, reason);
    });
    let built: ClusterRequest | { error: unknown };
    try {
      checkStreamOptions(options);
      built = this.build(command, args, options, stream, () => {}, () => {});
    } catch (error) {
      built = { error };
    }
    if (!(built instanceof ClusterRequest)) {
      stream.end({ error: built.error });
      return stream;
    }
    request = built;
    stream.credit = (consumed) => this.credit(built as ClusterRequest, consumed);
    this.submit(request, options.signal);
    return stream;
  }

  commands<H extends CommandMap<H> = AnyCommands>(defaults?: ExecuteOptions): Commands<H> {
    return createCommands<H>(this, defaults);
  }

  async endSession(sessionId: string): Promise<number> {
    if (typeof sessionId !== 'string' || sessionId.length === 0) throw new InvalidOptionError('sessionId', 'endSession needs a non-empty string');
    if (this.closed) throw new PoolClosedError();
    if (!this.connected) throw new HostUnavailableError(this.options.pool, 'not connected to NATS; the session was not ended');
    for (let round = 0; round < MAX_PLACEMENT_ROUNDS; round++) {
      const placement = this.placements.cached(sessionId) ?? (await this.placements.read(sessionId));
      if (!placement) throw new SessionNotFoundError(sessionId);
      if (!(await this.placements.remove(sessionId, placement.rev))) continue; // it changed: read again
      // Its placement is gone: from now on nobody routes to it. Free its state on its host.
      if (this.membership.status(placement.host, placement.inc) === 'lost') return 0;
      try {
        const reply = await this.nc.request(this.names.hostControl(placement.host), encodeControl({ t: 'end', session: sessionId, rev: placement.rev }), {
          timeout: Math.min(this.options.requestTimeout, 10_000),
        });
        return decodeEnded(reply.data);
      } catch (error) {
        if (error instanceof PyvisorError) throw error;
        return 0; // the host is unreachable: its state goes with it
      }
    }
    throw new ProtocolError(`the placement of session "${sessionId}" kept changing while it was being ended`);
  }

  stats(): PoolStats {
    return clusterStats(this.membership.all(), this.waiting.size, this.latency.percentiles());
  }

  workers(): ClusterWorkerInfo[] {
    return clusterWorkers(this.membership.all());
  }

  hosts(): ClusterHost[] {
    return clusterHosts(this.membership.all());
  }

  whenHosts(n = 1, timeout = 10_000): Promise<void> {
    if (!Number.isSafeInteger(n) || n < 1) return Promise.reject(new InvalidOptionError('n', `whenHosts needs an integer >= 1, got ${String(n)}`));
    if (typeof timeout !== 'number' || !(timeout > 0) || timeout > MAX_MS) return Promise.reject(new InvalidOptionError('timeout', `whenHosts needs a number of milliseconds > 0, got ${String(timeout)}`));
    if (this.closed) return Promise.reject(new PoolClosedError());
    if (this.membership.up().length >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = {
        n,
        resolve: () => {
          clearTimeout(timer);
          this.hostWaiters.delete(waiter);
          resolve();
        },
        reject: (error: unknown) => {
          clearTimeout(timer);
          this.hostWaiters.delete(waiter);
          reject(error);
        },
      };
      const timer = setTimeout(() => {
        this.hostWaiters.delete(waiter);
        reject(new HostUnavailableError(this.options.pool, `${this.membership.up().length} of the ${n} host(s) asked for are live after ${timeout} ms`));
      }, timeout);
      this.hostWaiters.add(waiter);
    });
  }

  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    this.closed = true;
    this.stopping = (async () => {
      clearInterval(this.sweepTimer);
      for (const request of [...this.live]) this.abandon(request, new PoolClosedError());
      for (const waiter of [...this.hostWaiters]) waiter.reject(new PoolClosedError());
      await bounded(this.nc.flush(), 1_000);
      for (const sub of this.subs) sub.unsubscribe();
      if (!this.nc.isClosed()) await bounded(this.nc.drain(), 2_000);
      if (!this.nc.isClosed()) await bounded(this.nc.close(), 1_000);
    })();
    return this.stopping;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  // ---- submission ---------------------------------------------------------------------------

  private build(command: string, args: unknown, options: ExecuteOptions, stream: ResultStream<any> | null, resolve: (v: unknown) => void, reject: (e: unknown) => void): ClusterRequest | { error: unknown } {
    try {
      if (typeof command !== 'string' || command.length === 0) {
        throw new InvalidOptionError('command', `must be a non-empty string, got ${typeof command === 'string' ? '""' : typeof command}`);
      }
      if (!stream) checkExecuteOptions(options);
      if (this.closed) throw new PoolClosedError();
      if (options.signal?.aborted) throw new AbortError(options.signal.reason);
      const encoded = encodeArgs(args, this.conn.maxPayload());
      return new ClusterRequest(
        this.nextId++,
        {
          cmd: command,
          args: encoded,
          sessionId: options.sessionId ?? null,
          affinity: options.affinity ?? null,
          idempotent: options.idempotent ?? false,
          timeout: options.timeout ?? this.options.requestTimeout,
          checkoutTimeout: options.checkoutTimeout ?? this.options.checkoutTimeout,
          stream,
        },
        Date.now(),
        resolve,
        reject,
      );
    } catch (error) {
      return { error };
    }
  }

  private submit(request: ClusterRequest, signal: AbortSignal | undefined): void {
    this.live.add(request);
    this.armCheckout(request);
    this.armBackstop(request);
    if (signal) request.watch(signal, (reason) => this.abort(request, reason));
    this.dispatch(request);
  }

  /** The backstop: whatever is lost on the way, the caller hears within its deadlines (and a host timeout). */
  private armBackstop(request: ClusterRequest): void {
    if (request.deadlineTimer) clearTimeout(request.deadlineTimer);
    const left = request.checkoutBy - Date.now() + request.timeout + this.options.hostTimeout;
    request.deadlineTimer = setTimeout(() => this.overdue(request), Math.max(0, Math.min(MAX_MS, left)));
  }

  private armCheckout(request: ClusterRequest): void {
    if (request.checkoutTimer) clearTimeout(request.checkoutTimer);
    request.checkoutTimer = setTimeout(() => {
      request.checkoutTimer = null;
      if (request.state !== 'sent') this.noHost(request);
    }, Math.max(0, request.checkoutBy - Date.now()));
  }

  private noHost(request: ClusterRequest): void {
    this.settle(request, new HostUnavailableError(this.options.pool, `no host took the request within its checkout timeout of ${request.checkoutTimeout} ms (${request.why})`));
  }

  /** Route and send the request, or park it until something changes. */
  private dispatch(request: ClusterRequest): void {
    if (request.settled) return;
    this.waiting.delete(request);
    request.clearRetry();
    if (this.closed) return void this.settle(request, new PoolClosedError());
    if (Date.now() >= request.checkoutBy) return this.noHost(request);
    if (!this.connected) {
      request.why = 'not connected to NATS';
      return this.park(request, null);
    }
    if (!request.placed) {
      if (this.membership.up().length === 0) {
        request.why = 'no live host';
        return this.park(request, null);
      }
      return this.send(request, null);
    }
    request.state = 'placing';
    this.place(request).then(
      (outcome) => {
        if (request.settled || request.state !== 'placing') return;
        if (outcome === 'wait') this.park(request, 100);
        else if ('lost' in outcome) this.settle(request, outcome.lost);
        else this.send(request, outcome);
      },
      (error) => {
        if (request.settled || request.state !== 'placing') return;
        request.why = `the session placements (JetStream KV) could not be reached: ${message(error)}`;
        this.park(request, 100);
      },
    );
  }

  /** Wait for a change (a host up or down, a reconnection), or `delay` ms at most. */
  private park(request: ClusterRequest, delay: number | null): void {
    request.state = 'waiting';
    this.waiting.add(request);
    if (delay !== null) request.retryTimer = setTimeout(() => this.dispatch(request), delay);
  }

  private retryWaiting(): void {
    for (const request of [...this.waiting]) this.dispatch(request);
  }

  /** Where a session request goes: its placement (made now if it has none), or wait, or its host was lost. */
  private async place(request: ClusterRequest): Promise<PlaceOutcome> {
    const sessionId = request.sessionId!;
    for (let round = 0; round < MAX_PLACEMENT_ROUNDS; round++) {
      let placement = this.placements.cached(sessionId);
      if (!placement) {
        const read = await this.placements.read(sessionId);
        if (read && request.staleRev !== null) request.confirmed = read.rev === request.staleRev;
        placement = read ?? undefined;
      }
      if (!placement) {
        const host = chooseHost(this.membership.eligible());
        if (!host) {
          request.why = 'no live host to place the session on';
          return 'wait';
        }
        // Counted before the round trip, so that sessions placed at the same moment spread.
        this.membership.placed(host.hostId, 1);
        let created: SessionPlacement | null;
        try {
          created = await this.placements.create(sessionId, host.hostId, host.inc);
        } catch (error) {
          this.membership.placed(host.hostId, -1);
          throw error;
        }
        if (!created) {
          this.membership.placed(host.hostId, -1);
          continue; // another front end placed it first: read theirs
        }
        return created;
      }
      const status = this.membership.status(placement.host, placement.inc);
      if (status === 'live') return placement;
      if (status === 'unknown') {
        request.why = `waiting to hear from host ${placement.host}, where the session is placed`;
        return 'wait';
      }
      // Its host is gone: whoever deletes the placement reports the loss; a loser reads again.
      if (await this.placements.remove(sessionId, placement.rev)) {
        return { lost: new SessionWorkerLostError(sessionId, placement.host, 'host_lost') };
      }
    }
    throw new ProtocolError(`the placement of session "${sessionId}" kept changing`);
  }

  private send(request: ClusterRequest, place: SessionPlacement | null): void {
    let data: Uint8Array;
    try {
      data = encodeRequest(
        {
          cmd: request.cmd,
          args: request.args,
          session: request.sessionId,
          affinity: request.affinity,
          idempotent: request.idempotent,
          timeout: request.timeout,
          checkoutBy: request.checkoutBy,
          window: request.stream ? request.stream.window : 0,
          place: place ? { rev: place.rev, inc: place.inc, confirmed: request.confirmed } : null,
        },
        this.conn.maxPayload(),
      );
    } catch (error) {
      return void this.settle(request, error);
    }
    const token = this.register(request);
    request.state = 'sent';
    request.place = place;
    request.host = place ? place.host : null;
    request.inc = place ? place.inc : null;
    try {
      this.nc.publish(place ? this.names.hostRequests(place.host) : this.names.anonymous, data, { reply: `${this.inbox}.${token}` });
    } catch (error) {
      this.unregister(request);
      request.why = `NATS refused the message: ${message(error)}`;
      return this.park(request, MAX_BACKOFF);
    }
    if (!place) {
      // An agent accepts at once; silence means the one NATS handed it to is gone.
      request.acceptTimer = setTimeout(() => this.noAccept(request, token), this.options.hostTimeout);
    }
  }

  private register(request: ClusterRequest): number {
    this.unregister(request);
    const token = this.nextToken++;
    request.token = token;
    this.attempts.set(token, request);
    return token;
  }

  private unregister(request: ClusterRequest): void {
    request.clearAccept();
    if (request.token !== 0) this.attempts.delete(request.token);
    request.token = 0;
  }

  // ---- replies ------------------------------------------------------------------------------

  private onReply(msg: Msg): void {
    const token = Number(msg.subject.slice(this.inbox.length + 1));
    const request = this.attempts.get(token);
    if (!request) return; // a late reply to an attempt given up on
    if (statusCode(msg) === 503) return this.nobodyThere(request);
    let reply: Reply;
    try {
      reply = decodeReply(msg.data);
    } catch (error) {
      this.cancel(request);
      return void this.settle(request, error);
    }
    if (request.settled) {
      // Settled before it was known which agent took it: tell that agent now.
      if (reply.t === 'acc' && request.cancelOnAccept) this.sendCancel(reply.host, token);
      this.unregister(request);
      return;
    }
    switch (reply.t) {
      case 'acc':
        request.clearAccept();
        request.host = reply.host;
        request.inc = reply.inc;
        return;
      case 'chunk':
        if (request.stream && !request.stream.push(reply.chunk)) {
          this.cancel(request);
          this.settle(request, new ProtocolError(`host ${request.host ?? '?'} sent more stream chunks than the window of ${request.stream.window} allows`));
        }
        return;
      case 'ok':
        this.latency.add(Date.now() - request.submittedAt);
        return void this.settle(request, undefined, reply.value);
      case 'err':
        return void this.settle(request, reply.error);
      case 'rej':
        return this.rejected(request, reply.why, reply.host, reply.inc);
    }
  }

  /** NATS says nobody subscribes to the subject the request went to: it was not delivered. */
  private nobodyThere(request: ClusterRequest): void {
    this.unregister(request);
    // Its host's subscription is gone (it died, or lost its connection): no new session goes
    // there until it is heard from again. Its sessions wait for it, or for its drop (host_lost).
    if (request.place) this.membership.unreachable(request.place.host, request.place.inc);
    request.why = request.place ? `host ${request.place.host}, where the session is placed, is not subscribed (not reachable)` : 'no agent is subscribed to the pool';
    request.backoff = Math.min(MAX_BACKOFF, request.backoff === 0 ? FIRST_BACKOFF : request.backoff * 2);
    this.park(request, request.backoff);
  }

  /** The agent did not run it: leaving, a stale placement, or a placement of its earlier life. */
  private rejected(request: ClusterRequest, why: 'leaving' | 'stale' | 'lost', host: string, inc: string): void {
    this.unregister(request);
    if (why === 'leaving') {
      this.apply(this.membership.markLeaving(host, inc));
      request.why = `host ${host} is leaving`;
      return this.park(request, FIRST_BACKOFF);
    }
    if (request.sessionId !== null) this.placements.forget(request.sessionId);
    if (why === 'lost') {
      // The placement names an earlier life of this host: the session's state went with it.
      if (request.place) this.apply(this.membership.markDead(host, request.place.inc));
      return this.dispatch(request);
    }
    request.staleRev = request.place?.rev ?? null;
    if (++request.stale > MAX_PLACEMENT_ROUNDS) {
      return void this.settle(request, new ProtocolError(`host ${host} kept refusing the placement of session "${request.sessionId}" as stale`));
    }
    this.dispatch(request);
  }

  private noAccept(request: ClusterRequest, token: number): void {
    if (request.token !== token) return;
    if (request.settled) return this.unregister(request);
    this.lostInFlight(request, `no agent acknowledged the request within ${this.options.hostTimeout} ms (the one NATS handed it to is gone); it may have run`);
  }

  /** Its host was lost with it: once more elsewhere if that is safe, else HostUnavailableError. */
  private lostInFlight(request: ClusterRequest, detail: string): void {
    if (request.settled) return;
    this.unregister(request);
    const delivered = request.stream !== null && request.stream.received > 0;
    if (request.idempotent && !request.retried && !delivered && !request.placed) {
      request.retried = true;
      request.host = request.inc = null;
      request.checkoutBy = Date.now() + request.checkoutTimeout;
      this.armCheckout(request);
      this.armBackstop(request);
      return this.dispatch(request);
    }
    this.settle(request, new HostUnavailableError(this.options.pool, detail));
  }

  private overdue(request: ClusterRequest): void {
    if (request.settled) return;
    this.cancel(request);
    this.settle(request, new RequestTimeoutError(request.cmd, request.timeout, request.host ?? undefined));
  }

  // ---- heartbeats ---------------------------------------------------------------------------

  private onHeartbeat(msg: Msg): void {
    let events: MembershipEvent[];
    try {
      events = this.membership.heartbeat(decodeHeartbeat(msg.data));
    } catch {
      return; // not a heartbeat this version understands
    }
    this.apply(events);
  }

  private apply(events: MembershipEvent[]): void {
    if (events.length === 0) return;
    for (const event of events) {
      if (event.type === 'up') this.emit('host_up', { hostId: event.hostId });
      else if (event.type === 'leaving') this.emit('host_leaving', { hostId: event.hostId });
      else {
        this.emit('host_down', { hostId: event.hostId, reason: event.reason });
        const how = event.reason === 'timeout' ? `missed its heartbeats for ${this.options.hostTimeout} ms` : event.reason === 'left' ? 'left the pool' : 'restarted';
        for (const request of [...this.live]) {
          if (request.state === 'sent' && request.host === event.hostId && request.inc === event.inc) {
            this.lostInFlight(request, `host ${event.hostId} ${how} with the request in flight; it may have run`);
          }
        }
      }
    }
    const eligible = this.membership.up().length;
    for (const waiter of [...this.hostWaiters]) if (eligible >= waiter.n) waiter.resolve();
    this.retryWaiting();
  }

  // ---- abort, cancel, credit ----------------------------------------------------------------

  private abort(request: ClusterRequest, reason: unknown): void {
    this.abandon(request, new AbortError(reason));
  }

  /** Settle it now with `error`, and tell the agent running it (if any) to stop. */
  private abandon(request: ClusterRequest, error: unknown): void {
    if (request.settled) return;
    this.cancel(request);
    this.settle(request, error);
  }

  /** Send a cancel for the current attempt; if the agent is not known yet, when it accepts. */
  private cancel(request: ClusterRequest): void {
    if (request.state !== 'sent' || request.token === 0) return;
    if (request.host !== null) this.sendCancel(request.host, request.token);
    else request.cancelOnAccept = true;
  }

  private sendCancel(host: string, token: number): void {
    if (!this.connected || this.nc.isClosed()) return;
    try {
      this.nc.publish(this.names.hostControl(host), encodeControl({ t: 'cancel', rid: `${this.inbox}.${token}` }));
    } catch {
      // closed meanwhile: the agent's own deadline ends the request
    }
  }

  /** The stream's reader consumed `consumed` chunks: credit for the agent. */
  private credit(request: ClusterRequest, consumed: number): void {
    if (request.settled || request.host === null || request.token === 0 || !this.connected) return;
    try {
      this.nc.publish(this.names.hostControl(request.host), encodeControl({ t: 'ack', rid: `${this.inbox}.${request.token}`, n: consumed }));
    } catch {
      // closed meanwhile
    }
  }

  private settle(request: ClusterRequest, error: unknown, value?: unknown): boolean {
    if (!request.settle(error, value)) return false;
    this.live.delete(request);
    this.waiting.delete(request);
    if (!request.cancelOnAccept) this.unregister(request);
    return true;
  }
}

/**
 * Connect to NATS and open the pool's session bucket (creating it if it is the first). Resolves
 * at once: hosts are heard from as their heartbeats arrive (`whenHosts`); a request meanwhile
 * waits for one within its checkout deadline. Rejects with InvalidOptionError (before
 * connecting) or HostUnavailableError (NATS or its JetStream cannot be reached).
 */
export async function createClusterPool(options: ClusterPoolOptions): Promise<ClusterPool> {
  const resolved = resolveClusterOptions(options);
  let frontEnd: FrontEnd | null = null;
  const conn = await openConnection(resolved.pool, resolved.servers, `pyvisor-front-${resolved.pool}`, (event, server) => frontEnd?.onConnection(event, server));
  try {
    const kv = await new Kvm(conn.nc).create(bucketName(resolved.pool), BUCKET_OPTIONS);
    frontEnd = new FrontEnd(resolved, conn, new PlacementStore(kv));
    return frontEnd;
  } catch (error) {
    await bounded(conn.nc.close(), 1_000);
    throw new HostUnavailableError(resolved.pool, `the session bucket ${bucketName(resolved.pool)} could not be opened (is JetStream enabled? nats-server -js): ${message(error)}`, { cause: error });
  }
}
