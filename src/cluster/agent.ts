/**
 * The host agent: a local supervised pool (createPool, exactly as on one machine) served over
 * NATS. It takes anonymous requests from the pool's queue group and requests for the sessions
 * placed on it from its own subject, runs each on its local pool, and answers on the request's
 * reply subject: the outcome, a stream's chunks (within the front end's credit), or every error
 * as data. It heartbeats its capacity and load; on stop() it drains (docs/CLUSTER.md "Drain").
 */
import { randomBytes } from 'node:crypto';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';
import { createPool } from '../local/createPool.js';
import type { Pool } from '../local/pool.js';
import { resolveOptions, type ExecuteOptions } from '../options.js';
import { AbortError, RequestTimeoutError, SessionNotFoundError } from '../errors.js';
import type { ResultStream } from '../core/stream.js';
import { openConnection, type Connected, bounded } from './connection.js';
import { BUCKET_OPTIONS, bucketName, sessionKey, subjects, type Subjects } from './subjects.js';
import { SessionLedger } from './ledger.js';
import {
  decodeControl,
  decodeRequest,
  encodeAccept,
  encodeChunk,
  encodeEnded,
  encodeError,
  encodeHeartbeat,
  encodeOk,
  encodeReject,
  type HostState,
  type RequestEnvelope,
} from './envelope.js';
import { resolveAgentOptions, type AgentOptions, type ResolvedAgentOptions } from './options.js';

export type { AgentOptions } from './options.js';

export interface Agent {
  readonly hostId: string;
  /** The local supervised pool (createPool). */
  readonly pool: Pool;
  /** Graceful drain: stop taking new requests, finish those in flight, deregister, stop the pool, close NATS. */
  stop(): Promise<void>;
}

const MAX_MS = 2 ** 31 - 1;
/** ms an anonymous request may run before the agent tells its front end that it has it. */
export const ACCEPT_DELAY = 5;

/** One request the agent is running for a front end, keyed by its reply subject. */
class Run {
  readonly controller = new AbortController();
  cancelled = false;
  /** An anonymous request's pending accept (see ACCEPT_DELAY). */
  acceptTimer: NodeJS.Timeout | null = null;
  /** Stream credit: chunks sent, and consumed by the front end's reader as it last said. */
  sent = 0;
  acked = 0;
  private wake: (() => void) | null = null;

  constructor(
    readonly rid: string,
    readonly window: number,
  ) {}

  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.controller.abort('cancelled by the front end');
    this.notify();
  }

  ack(consumed: number): void {
    if (consumed > this.acked) this.acked = consumed;
    this.notify();
  }

  get outOfCredit(): boolean {
    return this.sent - this.acked >= this.window;
  }

  /** Resolves at the next ack or cancel (or after `ms`). */
  waitForCredit(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = null;
        resolve();
      }, Math.max(1, Math.min(MAX_MS, ms)));
      this.wake = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
    });
  }

  private notify(): void {
    this.wake?.();
  }
}

class HostAgent implements Agent {
  readonly hostId: string;
  /** This life of the agent: placements name it, so a restarted agent under the same id is told apart. */
  readonly incarnation = randomBytes(8).toString('hex');
  pool!: Pool;
  private readonly options: ResolvedAgentOptions;
  private readonly names: Subjects;
  private conn!: Connected;
  private nc!: NatsConnection;
  private readonly subs: { anonymous?: Subscription; directed?: Subscription; control?: Subscription; hello?: Subscription } = {};
  private readonly running = new Map<string, Run>();
  private readonly ledger = new SessionLedger();
  /** Sessions whose local state is being reset (a newer placement) or ended: their requests wait for it. */
  private readonly gates = new Map<string, Promise<void>>();
  private kv: Promise<KV | null> | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private state: HostState = 'up';
  private draining = false;
  private stopping: Promise<void> | null = null;
  private idleWaiters: Array<() => void> = [];

  constructor(options: ResolvedAgentOptions) {
    this.options = options;
    this.hostId = options.hostId;
    this.names = subjects(options.pool);
  }

  async start(): Promise<void> {
    this.conn = await openConnection(this.options.pool, this.options.servers, `pyvisor-agent-${this.hostId}`, (event) => {
      // Reconnected: say at once that this host is still here (its subscriptions are restored by the client).
      if (event === 'reconnect' && !this.draining) this.heartbeat();
    });
    this.nc = this.conn.nc;
    try {
      this.pool = await createPool(this.options.poolOptions);
    } catch (error) {
      await bounded(this.nc.close(), 2_000);
      throw error;
    }
    this.pool.on('session_end', (e: { sessionId: string; reason: string }) => {
      if (e.reason === 'expired') this.expired(e.sessionId);
    });
    const names = this.names;
    this.subs.anonymous = this.nc.subscribe(names.anonymous, { queue: names.queue, callback: (_err, msg) => this.onRequest(msg, false) });
    this.subs.directed = this.nc.subscribe(names.hostRequests(this.hostId), { callback: (_err, msg) => this.onRequest(msg, true) });
    this.subs.control = this.nc.subscribe(names.hostControl(this.hostId), { callback: (_err, msg) => this.onControl(msg) });
    this.subs.hello = this.nc.subscribe(names.hello, { callback: () => this.heartbeat() });
    this.heartbeat();
    await this.nc.flush();
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.options.heartbeatInterval);
    this.heartbeatTimer.unref();
  }

  // ---- requests -------------------------------------------------------------------------------

  private publish(subject: string, data: Uint8Array): void {
    try {
      this.nc.publish(subject, data);
    } catch {
      // The connection is closed: the front end settles the request on its own (host lost).
    }
  }

  private onRequest(msg: Msg, directed: boolean): void {
    const rid = msg.reply;
    if (!rid) return; // nobody to answer
    let env: ReturnType<typeof decodeRequest>;
    try {
      env = decodeRequest(msg.data);
    } catch (error) {
      this.publish(rid, encodeError(error));
      return;
    }
    if (this.draining) {
      this.publish(rid, encodeReject('leaving', this.hostId, this.incarnation));
      return;
    }
    let reset = false;
    if (directed && env.place) {
      if (env.place.inc !== this.incarnation) {
        this.publish(rid, encodeReject('lost', this.hostId, this.incarnation));
        return;
      }
      if (env.session !== null) {
        const verdict = this.ledger.check(env.session, env.place.rev, env.place.confirmed);
        if (verdict === 'stale') {
          this.publish(rid, encodeReject('stale', this.hostId, this.incarnation));
          return;
        }
        reset = verdict === 'reset';
      }
    }
    const run = new Run(rid, env.window);
    this.running.set(rid, run);
    if (!directed) {
      // The front end learns which host runs an anonymous request from its accept: at once for a
      // stream (its credit goes here), after ACCEPT_DELAY for the rest — a quick command's reply
      // is its accept, one message fewer on the way.
      if (env.window > 0) this.publish(rid, encodeAccept(this.hostId, this.incarnation));
      else {
        run.acceptTimer = setTimeout(() => {
          run.acceptTimer = null;
          if (this.running.get(rid) === run) this.publish(rid, encodeAccept(this.hostId, this.incarnation));
        }, ACCEPT_DELAY);
      }
    }
    const session = env.session;
    if (session !== null && reset) this.gate(session, () => this.resetSession(session));
    const gate = session !== null ? this.gates.get(session) : undefined;
    const go = () => (env.window > 0 ? this.runStream(run, env) : this.runExecute(run, env));
    if (gate) void gate.then(go);
    else go();
  }

  private localOptions(run: Run, env: RequestEnvelope): ExecuteOptions {
    return {
      sessionId: env.session,
      timeout: env.timeout,
      checkoutTimeout: Math.max(1, Math.min(MAX_MS, Math.round(env.checkoutBy - Date.now()))),
      signal: run.controller.signal,
      idempotent: env.idempotent,
      ...(env.affinity !== null ? { affinity: env.affinity } : {}),
    };
  }

  private finish(run: Run, reply: () => Uint8Array): void {
    if (this.running.get(run.rid) === run) this.running.delete(run.rid);
    if (run.acceptTimer) clearTimeout(run.acceptTimer);
    run.acceptTimer = null;
    let data: Uint8Array;
    try {
      data = reply();
    } catch (error) {
      data = encodeError(error);
    }
    this.publish(run.rid, data);
    if (this.running.size === 0) for (const wake of this.idleWaiters.splice(0)) wake();
  }

  private runExecute(run: Run, env: ReturnType<typeof decodeRequest>): void {
    if (run.cancelled) return this.finish(run, () => encodeError(new AbortError('cancelled by the front end')));
    this.pool.execute(env.cmd, env.argsValue, this.localOptions(run, env)).then(
      (value) => this.finish(run, () => encodeOk(value, this.conn.maxPayload())),
      (error) => this.finish(run, () => encodeError(error)),
    );
  }

  /**
   * A stream: read the local ResultStream and forward each chunk, never more than the front
   * end's window beyond what its reader consumed. Out of credit, the agent stops reading, so the
   * local stream's own window fills and the Python generator pauses (backpressure end to end).
   */
  private async runStream(run: Run, env: ReturnType<typeof decodeRequest>): Promise<void> {
    if (run.cancelled) return this.finish(run, () => encodeError(new AbortError('cancelled by the front end')));
    const local: ResultStream<unknown> = this.pool.stream(env.cmd, env.argsValue, { ...this.localOptions(run, env), window: env.window });
    // The whole stream must be over by then: a reader that stops reading cannot hold it longer.
    const overBy = env.checkoutBy + env.timeout;
    let ended = false;
    try {
      for (;;) {
        while (run.outOfCredit && !run.cancelled) {
          const left = overBy - Date.now();
          if (left <= 0) throw new RequestTimeoutError(env.cmd, env.timeout, this.hostId);
          await run.waitForCredit(left);
        }
        if (run.cancelled) throw new AbortError('cancelled by the front end');
        const next = await local.next();
        if (next.done) break;
        const data = encodeChunk(next.value, this.conn.maxPayload());
        run.sent++;
        this.publish(run.rid, data);
      }
      ended = true;
      const value = await local.result;
      this.finish(run, () => encodeOk(value, this.conn.maxPayload()));
    } catch (error) {
      this.finish(run, () => encodeError(error));
    } finally {
      if (!ended) void local.return();
    }
  }

  // ---- sessions -------------------------------------------------------------------------------

  /** Run `step` for the session after whatever is already pending for it; its requests wait. */
  private gate(session: string, step: () => Promise<unknown>): Promise<void> {
    const previous = this.gates.get(session) ?? Promise.resolve();
    const next = previous.then(step).then(
      () => {},
      () => {},
    );
    this.gates.set(session, next);
    void next.then(() => {
      if (this.gates.get(session) === next) this.gates.delete(session);
    });
    return next;
  }

  /** The local state belongs to an earlier placement of the session: clean it before serving the new one. */
  private async resetSession(session: string): Promise<number> {
    try {
      return await this.pool.endSession(session);
    } catch (error) {
      if (error instanceof SessionNotFoundError) return 0;
      throw error;
    }
  }

  /** The local pool expired the session (sessionTtl): its placement goes too, so the bucket holds live sessions only. */
  private expired(session: string): void {
    const rev = this.ledger.revision(session);
    if (rev === null) return;
    this.ledger.end(session, rev);
    void this.bucket().then((kv) => kv?.delete(sessionKey(session), { previousSeq: rev }).catch(() => {}));
  }

  private bucket(): Promise<KV | null> {
    this.kv ??= new Kvm(this.nc).create(bucketName(this.options.pool), BUCKET_OPTIONS).catch(() => {
      this.kv = null;
      return null;
    });
    return this.kv;
  }

  // ---- control --------------------------------------------------------------------------------

  private onControl(msg: Msg): void {
    let control: ReturnType<typeof decodeControl>;
    try {
      control = decodeControl(msg.data);
    } catch (error) {
      if (msg.reply) this.publish(msg.reply, encodeError(error));
      return;
    }
    switch (control.t) {
      case 'cancel':
        this.running.get(control.rid)?.cancel();
        return;
      case 'ack':
        this.running.get(control.rid)?.ack(control.n);
        return;
      case 'end': {
        const { session, rev } = control;
        this.ledger.end(session, rev);
        let workers = 0;
        let failure: unknown = null;
        void this.gate(session, async () => {
          try {
            workers = await this.resetSession(session);
          } catch (error) {
            failure = error;
          }
        }).then(() => {
          if (msg.reply) this.publish(msg.reply, failure === null ? encodeEnded(workers) : encodeError(failure));
        });
        return;
      }
    }
  }

  // ---- heartbeats -----------------------------------------------------------------------------

  private heartbeat(): void {
    const stats = this.pool.stats();
    const concurrency = this.pool.options.workerConcurrency;
    const up = this.pool.options.lazy ? Math.max(stats.healthyWorkers, this.pool.options.poolSize) : stats.healthyWorkers;
    this.publish(
      this.names.heartbeat,
      encodeHeartbeat({
        host: this.hostId,
        inc: this.incarnation,
        state: this.state,
        interval: this.options.heartbeatInterval,
        capacity: up * concurrency,
        inflight: this.running.size,
        queue: stats.queueLength,
        workers: stats.healthyWorkers,
        sessions: stats.activeSessions,
        stats,
        rows: this.pool.workers(),
      }),
    );
  }

  // ---- drain ----------------------------------------------------------------------------------

  private idle(): Promise<void> {
    if (this.running.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    this.stopping = (async () => {
      this.draining = true;
      // Out of the queue group first, so that NATS stops handing this host anonymous work. A
      // drain, not an unsubscribe: what NATS sent before it took the unsubscription in is still
      // answered (`leaving`, so the front end sends it elsewhere), not dropped.
      this.subs.hello?.unsubscribe();
      if (this.subs.anonymous) await bounded(this.subs.anonymous.drain(), 1_000);
      // ...then tell the front ends: no new session is placed here, and requests for the sessions
      // placed here are answered `leaving` (their front ends re-place them: host_lost).
      this.state = 'leaving';
      this.heartbeat();
      await bounded(this.nc.flush(), 1_000);
      await this.idle();
      if (this.subs.directed) await bounded(this.subs.directed.drain(), 1_000);
      this.state = 'gone';
      this.heartbeat();
      if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
      this.heartbeatTimer = null;
      await bounded(this.nc.flush(), 1_000);
      await this.pool.stop();
      this.subs.control?.unsubscribe();
      if (!this.nc.isClosed()) await bounded(this.nc.drain(), 2_000);
      if (!this.nc.isClosed()) await bounded(this.nc.close(), 1_000);
    })();
    return this.stopping;
  }
}

/**
 * Start a host agent: connect to NATS, start the local pool (every PoolOptions key applies),
 * serve it. Resolves once the pool is ready, the agent is subscribed and its first heartbeat is
 * out. Rejects with InvalidOptionError (before connecting), HostUnavailableError (NATS cannot be
 * reached) or whatever createPool rejects with.
 */
export async function startAgent(options: AgentOptions): Promise<Agent> {
  const resolved = resolveAgentOptions(options);
  resolveOptions(resolved.poolOptions); // the local pool's options, checked before anything starts
  const agent = new HostAgent(resolved);
  await agent.start();
  return agent;
}
