/**
 * PythonPool: the DSPy adapter. Session-scoped programs executed on pooled Python workers,
 * built on the bridge's commands (configure_lm, create_program, execute_program,
 * get_program_info, delete_program; python/pyvisor/dspy_commands.py).
 *
 * The adapter is the source of truth for a session's programs: it keeps every program's spec
 * and the session's LM configuration in Node, and a worker's Python namespace is a cache of
 * them. Every call about a program carries its spec and the LM configuration (`restore`), and
 * the bridge brings its namespace up to date in that same call before it runs the command. So
 * one call works on whichever worker it lands on, and a program survives any routing and any
 * worker crash; a call is retried once only when its worker died. docs/ADAPTER.md has the
 * full story.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'eventemitter3';
import { createPool } from '../local/createPool.js';
import { SessionNotFoundError, SessionWorkerLostError, WorkerCrashedError } from '../errors.js';
import type { PoolOptions } from '../options.js';
import type { Executor } from '../core/executor.js';
import type { ResultStream } from '../core/stream.js';
import type { ProgramCallOptions, ProgramSpec, PythonPoolEvents, PythonPoolStats, RestoreReason, SessionState } from './types.js';
import { bad, callOptions, checkKeys, isPlainObject, programNotFound } from './wire.js';
import { SessionAdapter } from './sessionAdapter.js';

export type * from './types.js';

/**
 * What a call about a program carries so that any worker can run it: the program's spec with its
 * latest state and revision, and the session's LM configuration.
 */
function restoreOf(state: SessionState, spec: ProgramSpec, withLM: boolean): Record<string, unknown> {
  const program = spec.state === null ? spec.wire : { ...spec.wire, state: spec.state, state_rev: spec.stateRev };
  return withLM && state.lmWire ? { program, lm: state.lmWire } : { program };
}
export { SessionAdapter } from './sessionAdapter.js';

// ---- the adapter ----------------------------------------------------------------------------------

/**
 * The DSPy adapter over a pool. `new PythonPool(pool)` wraps a pool you own;
 * `PythonPool.create(options)` starts one that `close()` stops.
 */
export class PythonPool extends EventEmitter<{ [K in keyof PythonPoolEvents]: (e: PythonPoolEvents[K]) => void }> {
  /** Any Executor: a local pool, or a cluster pool. */
  readonly pool: Executor;
  private readonly ownsPool: boolean;
  private readonly sessions = new Map<string, SessionState>();
  private readonly adapters = new Map<string, SessionAdapter>();
  private anonymous: SessionAdapter | null = null;
  private counters = { executions: 0, restores: 0, retries: 0 };
  private closing: Promise<void> | null = null;

  constructor(pool: Executor, options: { ownsPool?: boolean } = {}) {
    super();
    if (!pool || typeof (pool as Executor).execute !== 'function' || typeof (pool as Executor).endSession !== 'function') {
      throw new TypeError('new PythonPool(pool): pool must be an Executor (a pool from createPool() or createClusterPool())');
    }
    if (!isPlainObject(options as unknown)) throw bad('options', 'must be an object', options);
    checkKeys('', options as unknown as Record<string, unknown>, ['ownsPool']);
    this.pool = pool;
    this.ownsPool = options.ownsPool === true;
  }

  /** Start a pool (createPool(options)) and wrap it; `close()` stops that pool. */
  static async create(options: PoolOptions = {}): Promise<PythonPool> {
    const pool = await createPool(options);
    return new PythonPool(pool, { ownsPool: true });
  }

  /** The adapter of one session (the same object for the same id). */
  sessionAdapter(sessionId: string): SessionAdapter {
    if (typeof sessionId !== 'string' || sessionId.length === 0) throw bad('sessionId', 'must be a non-empty string', sessionId);
    let adapter = this.adapters.get(sessionId);
    if (!adapter) {
      adapter = new SessionAdapter(this, sessionId, false);
      this.adapters.set(sessionId, adapter);
    }
    return adapter;
  }

  /**
   * The adapter for callers without a session: one per PythonPool (the same object every
   * time), so its programs are shared by everything that uses this PythonPool, and private to
   * it. In pool-worker mode the bridge needs a session, so it runs under a generated id
   * ("anonymous-<uuid>") no user session can collide with.
   */
  anonymousAdapter(): SessionAdapter {
    if (!this.anonymous || !this.adapters.has(this.anonymous.sessionId)) {
      const id = `anonymous-${randomUUID()}`;
      this.anonymous = new SessionAdapter(this, id, true);
      this.adapters.set(id, this.anonymous);
    }
    return this.anonymous;
  }

  /**
   * Forget the session's programs and LM configuration, and free it in every Python worker
   * that served it (the pool's endSession → cleanup_session). Resolves with the number of
   * workers cleaned. SessionNotFoundError when neither the adapter nor the pool knows the id.
   */
  async endSession(sessionId: string): Promise<{ workers: number; programs: number }> {
    if (typeof sessionId !== 'string' || sessionId.length === 0) throw bad('sessionId', 'must be a non-empty string', sessionId);
    const state = this.sessions.get(sessionId);
    this.sessions.delete(sessionId);
    this.adapters.delete(sessionId);
    if (this.anonymous?.sessionId === sessionId) this.anonymous = null;
    let workers = 0;
    try {
      workers = await this.pool.endSession(sessionId);
    } catch (error) {
      // The pool may never have seen a session whose only calls failed in Node, or may have expired it.
      if (!(error instanceof SessionNotFoundError) || !state) throw error;
    }
    return { workers, programs: state?.programs.size ?? 0 };
  }

  /** Sessions the adapter holds state for. */
  sessionIds(): string[] {
    return [...this.sessions.keys()];
  }

  stats(): PythonPoolStats {
    let programs = 0;
    for (const s of this.sessions.values()) programs += s.programs.size;
    return { sessions: this.sessions.size, programs, ...this.counters };
  }

  /** Forget every session; stop the pool if this PythonPool created it (PythonPool.create). */
  close(): Promise<void> {
    if (!this.closing) {
      this.sessions.clear();
      this.adapters.clear();
      this.anonymous = null;
      this.closing = this.ownsPool ? this.pool.stop() : Promise.resolve();
    }
    return this.closing;
  }

  // ---- internals used by SessionAdapter ------------------------------------------------------

  /** @internal */
  state(sessionId: string): SessionState {
    let s = this.sessions.get(sessionId);
    if (!s) {
      s = { id: sessionId, lm: null, lmWire: null, programs: new Map(), reserved: new Set() };
      this.sessions.set(sessionId, s);
    }
    return s;
  }

  /** @internal */
  peek(sessionId: string): SessionState | undefined {
    return this.sessions.get(sessionId);
  }

  /**
   * @internal One pool call in the session. Every adapter call is self-sufficient and safe to
   * repeat, so it is retried once when its worker died under it (WorkerCrashedError, unless
   * `retryOnCrash: false`) or when a strict session's pinned worker is gone
   * (SessionWorkerLostError, raised before anything ran: the pin is released first).
   */
  async call<T>(state: SessionState, command: string, args: Record<string, unknown>, opts?: ProgramCallOptions, programId = ''): Promise<{ result: T; attempts: number; reason: RestoreReason }> {
    const { exec, retryOnCrash } = callOptions(opts);
    // 'prefer': every call carries what it needs to restore the program, so it may run anywhere.
    const send = () => this.pool.execute<T>(command, args, { ...exec, sessionId: state.id, affinity: 'prefer' });
    try {
      return { result: await send(), attempts: 1, reason: 'program_missing' };
    } catch (error) {
      const lost = error instanceof SessionWorkerLostError;
      if (!lost && !(retryOnCrash && error instanceof WorkerCrashedError)) throw error;
      if (lost) {
        try {
          await this.pool.endSession(state.id); // the only way to release a strict pin
        } catch (e) {
          if (!(e instanceof SessionNotFoundError)) throw e; // a concurrent call released it already
        }
      }
      const reason = lost ? 'worker_lost' : 'worker_crashed';
      this.counters.retries++;
      this.emit('retry', { sessionId: state.id, programId, command, reason, attempt: 1 });
      return { result: await send(), attempts: 2, reason };
    }
  }

  /**
   * @internal A call about one of the session's programs. It carries the program's spec and
   * the session's LM configuration as `restore`, so the worker it lands on (re)creates them if
   * it lacks them, or holds another version, before running the command: one call suffices.
   */
  async programCall<T extends { restored?: boolean }>(state: SessionState, command: string, programId: string, args: Record<string, unknown>, opts: ProgramCallOptions | undefined, withLM = true): Promise<{ result: T; attempts: number; spec: ProgramSpec }> {
    const spec = this.spec(state, programId, command);
    const { result, attempts, reason } = await this.call<T>(state, command, { ...args, program_id: programId, restore: restoreOf(state, spec, withLM) }, opts, programId);
    if (result.restored === true) this.restored(state, programId, reason);
    return { result, attempts, spec };
  }

  /**
   * @internal A stream about one of the session's programs (stream_program, optimize_program),
   * carrying `restore` like programCall. Not retried: its reader may have chunks already.
   */
  programStream<C>(state: SessionState, command: string, programId: string, args: Record<string, unknown>, opts: ProgramCallOptions | undefined): { stream: ResultStream<C>; spec: ProgramSpec } {
    const spec = this.spec(state, programId, command);
    const { exec } = callOptions(opts);
    const stream = this.pool.stream<C>(command, { ...args, program_id: programId, restore: restoreOf(state, spec, true) }, { ...exec, sessionId: state.id, affinity: 'prefer' });
    return { stream, spec };
  }

  /** @internal A worker (re)made the program or LM from `restore`. */
  restored(state: SessionState, programId: string, reason: RestoreReason): void {
    this.counters.restores++;
    this.emit('program_restored', { sessionId: state.id, programId, reason });
  }

  private spec(state: SessionState, programId: string, command: string): ProgramSpec {
    const spec = state.programs.get(programId);
    if (!spec) throw programNotFound(state.id, programId, command);
    return spec;
  }

  /** @internal */
  countExecution(): void {
    this.counters.executions++;
  }
}
