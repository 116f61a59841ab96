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
import {
  InvalidOptionError,
  PythonError,
  SessionNotFoundError,
  SessionWorkerLostError,
  WorkerCrashedError,
} from '../errors.js';
import type { ExecuteOptions, PoolOptions } from '../options.js';
import type { Executor } from '../core/executor.js';

// ---- public types ---------------------------------------------------------------------------

export type ProgramType = 'predict' | 'chain_of_thought';

export interface FieldSpec {
  name: string;
  description?: string;
}

export interface SignatureSpec {
  /** Input fields, in order; a bare string is a field with no description. */
  inputs: Array<FieldSpec | string>;
  /** Output fields, in order; chain_of_thought adds its own `reasoning` before them. */
  outputs: Array<FieldSpec | string>;
  /** The task description given to the LM. */
  instructions?: string;
}

export interface ProgramConfig {
  /** Program id, unique in the session; generated ("program_" + 12 hex digits) when absent. */
  id?: string;
  /** Default 'predict'. */
  type?: ProgramType;
  signature: SignatureSpec;
}

export interface DummyLMConfig {
  provider: 'dummy';
  /** A label echoed in results. Default "dummy". */
  model?: string;
  /**
   * Canned answers: a map from an input value to an outputs object (the first input field,
   * in signature order, whose value is a key selects it; "*" is the fallback), or a list of
   * outputs objects used in rotation. Without it every output is derived from the inputs:
   * `dummy <field> to: <input values joined by " | ">`.
   */
  answers?: Record<string, Record<string, unknown>> | Array<Record<string, unknown>>;
}

export interface OpenAILMConfig {
  provider: 'openai';
  /** Default "gpt-4o-mini". */
  model?: string;
  /** Any OpenAI-compatible endpoint; `${baseUrl}/chat/completions` is called. Default https://api.openai.com/v1. */
  baseUrl?: string;
  /** The key itself (kept in Node memory and re-sent when a worker is restored); prefer apiKeyEnv. */
  apiKey?: string;
  /** Name of the environment variable of the Python process holding the key. Default OPENAI_API_KEY. */
  apiKeyEnv?: string;
  /** HTTP timeout in ms. Default 60000. */
  timeoutMs?: number;
  temperature?: number;
  maxTokens?: number;
}

export type LMConfig = DummyLMConfig | OpenAILMConfig;

export interface LMInfo {
  provider: string;
  model: string;
}

export interface ProgramCallOptions {
  /** ms the command may run (default: the pool's requestTimeout). */
  timeout?: number;
  /** ms to wait for a worker (default: the pool's checkoutTimeout). */
  checkoutTimeout?: number;
  signal?: AbortSignal;
  /** Retry once when the worker dies under the call (default true). Set false for LM calls that must not be repeated. */
  retryOnCrash?: boolean;
}

export interface ExecuteResult<O extends Record<string, unknown> = Record<string, unknown>> {
  programId: string;
  /** The output fields (chain_of_thought: `reasoning` first). */
  outputs: O;
  provider: string;
  model: string;
  /** The worker that answered had to (re)create the program or the session's LM configuration first, in the same call. */
  restored: boolean;
  /** Calls sent to the pool for this execution: 1, or 2 when it was retried after its worker died. */
  attempts: number;
}

export interface NormalizedField {
  name: string;
  description: string;
}

export interface ProgramInfo {
  programId: string;
  type: ProgramType;
  signature: { inputs: NormalizedField[]; outputs: NormalizedField[]; instructions: string };
  /** Successful executions through this adapter, on all workers together. */
  executions: number;
  /** When the program was created, ms since the epoch (Node's clock). */
  createdAt: number;
  /** 'builtin' (the bridge's signature runner) or 'dspy' (a real dspy module). */
  engine: string;
}

export interface ProgramSummary {
  programId: string;
  type: ProgramType;
  executions: number;
  createdAt: number;
}

/**
 * Why a worker lacked a session's state: 'program_missing' (routing: it never held the
 * program, held an older spec of it, or another LM configuration), 'worker_crashed' (the call
 * is a retry after its worker died under it), 'worker_lost' (a retry after an
 * `affinity: 'strict'` session lost its pinned worker).
 */
export type RestoreReason = 'program_missing' | 'worker_crashed' | 'worker_lost';

export interface PythonPoolEvents {
  /** A worker (re)created a program or the session's LM configuration from the spec the call carried. */
  program_restored: { sessionId: string; programId: string; reason: RestoreReason };
  /** A call is being retried once: its worker died under it, or a strict session's worker is gone. */
  retry: { sessionId: string; programId: string; command: string; reason: 'worker_crashed' | 'worker_lost'; attempt: number };
}

export interface PythonPoolStats {
  /** Sessions the adapter holds state for. */
  sessions: number;
  /** Programs over all sessions. */
  programs: number;
  /** Successful executions. */
  executions: number;
  /** Calls whose worker (re)created the program or LM configuration from the spec they carried. */
  restores: number;
  /** Calls retried after their worker died (or a strict session's worker was lost). */
  retries: number;
}


// ---- internal state ---------------------------------------------------------------------------

interface ProgramSpec {
  id: string;
  type: ProgramType;
  signature: { inputs: NormalizedField[]; outputs: NormalizedField[]; instructions: string };
  /** create_program's args, sent as `restore.program` with every call about the program. */
  wire: Record<string, unknown>;
  createdAt: number;
  executions: number;
}

interface SessionState {
  id: string;
  lm: LMConfig | null;
  /** configure_lm's args, sent as `restore.lm` with every execute/info call. */
  lmWire: Record<string, unknown> | null;
  programs: Map<string, ProgramSpec>;
  /** Ids being created right now (a concurrent duplicate must fail, like Python would). */
  reserved: Set<string>;
}

const PROGRAM_TYPES: readonly ProgramType[] = ['predict', 'chain_of_thought'];

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || Buffer.isBuffer(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function describe(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'function') return 'a function';
  if (Array.isArray(v)) return 'an array';
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

function bad(field: string, problem: string, value: unknown): InvalidOptionError {
  return new InvalidOptionError(field, `${problem}, got ${describe(value)}`);
}

function checkKeys(where: string, obj: Record<string, unknown>, known: string[], hints: Record<string, string> = {}): void {
  for (const key of Object.keys(obj)) {
    if (known.includes(key)) continue;
    const hint = hints[key] ? ` (did you mean "${hints[key]}"?)` : '';
    throw new InvalidOptionError(`${where}${key}`, `unknown field${hint}; known: ${known.join(', ')}`);
  }
}

/** Cheap shape checks of a program config; the semantic rules (identifiers, duplicates, reserved names) are the bridge's. */
function programWire(config: ProgramConfig, id: string, type: ProgramType): Record<string, unknown> {
  const sig = config.signature as unknown;
  if (sig === undefined || sig === null) throw bad('signature', 'is required (an object with inputs and outputs)', sig);
  if (!isPlainObject(sig)) throw bad('signature', 'must be an object with inputs and outputs', sig);
  checkKeys('signature.', sig, ['inputs', 'outputs', 'instructions']);
  const fields = (part: 'inputs' | 'outputs') => {
    const list = sig[part];
    if (!Array.isArray(list) || list.length === 0) throw bad(`signature.${part}`, 'must be a non-empty array of fields ({ name, description? } or a name)', list);
    return list.map((f, i) => {
      const where = `signature.${part}[${i}]`;
      if (typeof f === 'string') {
        if (f.length === 0) throw bad(`${where}`, 'must be a non-empty name', f);
        return { name: f };
      }
      if (!isPlainObject(f)) throw bad(where, 'must be { name, description? } or a name', f);
      checkKeys(`${where}.`, f, ['name', 'description']);
      if (typeof f.name !== 'string' || f.name.length === 0) throw bad(`${where}.name`, 'must be a non-empty string', f.name);
      if (f.description !== undefined && typeof f.description !== 'string') throw bad(`${where}.description`, 'must be a string', f.description);
      return f.description === undefined ? { name: f.name } : { name: f.name, description: f.description };
    });
  };
  const signature: Record<string, unknown> = { inputs: fields('inputs'), outputs: fields('outputs') };
  if (sig.instructions !== undefined) {
    if (typeof sig.instructions !== 'string') throw bad('signature.instructions', 'must be a string', sig.instructions);
    signature.instructions = sig.instructions;
  }
  return { id, type, signature };
}

/** camelCase LM config → configure_lm's snake_case args. */
function lmWire(config: LMConfig): Record<string, unknown> {
  if (!isPlainObject(config)) throw bad('lm', 'must be an object with a provider', config);
  const provider = (config as { provider?: unknown }).provider;
  if (provider !== 'dummy' && provider !== 'openai') throw bad('provider', "must be 'dummy' or 'openai'", provider);
  const c = config as unknown as Record<string, unknown>;
  if (c.model !== undefined && (typeof c.model !== 'string' || c.model.length === 0)) throw bad('model', 'must be a non-empty string', c.model);
  if (provider === 'dummy') {
    checkKeys('', c, ['provider', 'model', 'answers']);
    const wire: Record<string, unknown> = { provider };
    if (c.model !== undefined) wire.model = c.model;
    if (c.answers !== undefined) {
      if (!isPlainObject(c.answers) && !Array.isArray(c.answers)) throw bad('answers', 'must be an object (input value → outputs) or an array of outputs objects', c.answers);
      wire.answers = structuredClone(c.answers);
    }
    return wire;
  }
  checkKeys('', c, ['provider', 'model', 'baseUrl', 'apiKey', 'apiKeyEnv', 'timeoutMs', 'temperature', 'maxTokens'], {
    base_url: 'baseUrl',
    api_key: 'apiKey',
    api_key_env: 'apiKeyEnv',
    timeout_s: 'timeoutMs',
    timeout: 'timeoutMs',
    max_tokens: 'maxTokens',
  });
  const wire: Record<string, unknown> = { provider };
  if (c.model !== undefined) wire.model = c.model;
  if (c.baseUrl !== undefined) {
    if (typeof c.baseUrl !== 'string' || !/^https?:\/\//.test(c.baseUrl)) throw bad('baseUrl', 'must be an http(s) URL', c.baseUrl);
    wire.base_url = c.baseUrl;
  }
  if (c.apiKey !== undefined) {
    if (typeof c.apiKey !== 'string') throw bad('apiKey', 'must be a string', c.apiKey);
    wire.api_key = c.apiKey;
  }
  if (c.apiKeyEnv !== undefined) {
    if (typeof c.apiKeyEnv !== 'string' || c.apiKeyEnv.length === 0) throw bad('apiKeyEnv', 'must be a non-empty string', c.apiKeyEnv);
    wire.api_key_env = c.apiKeyEnv;
  }
  if (c.timeoutMs !== undefined) {
    if (typeof c.timeoutMs !== 'number' || !Number.isFinite(c.timeoutMs) || c.timeoutMs <= 0) throw bad('timeoutMs', 'must be a number of milliseconds > 0', c.timeoutMs);
    wire.timeout_s = c.timeoutMs / 1000;
  }
  if (c.temperature !== undefined) {
    if (typeof c.temperature !== 'number' || !Number.isFinite(c.temperature) || c.temperature < 0) throw bad('temperature', 'must be a number >= 0', c.temperature);
    wire.temperature = c.temperature;
  }
  if (c.maxTokens !== undefined) {
    if (!Number.isSafeInteger(c.maxTokens) || (c.maxTokens as number) < 1) throw bad('maxTokens', 'must be an integer >= 1', c.maxTokens);
    wire.max_tokens = c.maxTokens;
  }
  return wire;
}

function callOptions(opts: ProgramCallOptions | undefined): { exec: Omit<ExecuteOptions, 'sessionId'>; retryOnCrash: boolean } {
  if (opts === undefined) return { exec: {}, retryOnCrash: true };
  if (!isPlainObject(opts as unknown)) throw bad('options', 'must be an object', opts);
  checkKeys('options.', opts as unknown as Record<string, unknown>, ['timeout', 'checkoutTimeout', 'signal', 'retryOnCrash']);
  if (opts.retryOnCrash !== undefined && typeof opts.retryOnCrash !== 'boolean') throw bad('options.retryOnCrash', 'must be true or false', opts.retryOnCrash);
  const exec: Omit<ExecuteOptions, 'sessionId'> = {};
  if (opts.timeout !== undefined) exec.timeout = opts.timeout;
  if (opts.checkoutTimeout !== undefined) exec.checkoutTimeout = opts.checkoutTimeout;
  if (opts.signal !== undefined) exec.signal = opts.signal;
  return { exec, retryOnCrash: opts.retryOnCrash ?? true };
}

function checkProgramId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || id.length === 0) throw bad('programId', 'must be a non-empty string', id);
}

/**
 * The bridge's "Program 'x' not found in session 's'", answered in Node: the adapter knows
 * every program of the session, and a worker may still hold a stale copy of a deleted one.
 */
function programNotFound(sessionId: string, programId: string, command: string): PythonError {
  return new PythonError('ProgramNotFoundError', `Program '${programId}' not found in session '${sessionId}'`, '', command);
}

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
    const spec = state.programs.get(programId);
    if (!spec) throw programNotFound(state.id, programId, command);
    const restore: Record<string, unknown> = { program: spec.wire };
    if (withLM && state.lmWire) restore.lm = state.lmWire;
    const { result, attempts, reason } = await this.call<T>(state, command, { ...args, program_id: programId, restore }, opts, programId);
    if (result.restored === true) {
      this.counters.restores++;
      this.emit('program_restored', { sessionId: state.id, programId, reason });
    }
    return { result, attempts, spec };
  }

  /** @internal */
  countExecution(): void {
    this.counters.executions++;
  }
}

/**
 * One session's view of the adapter. Obtain it from `py.sessionAdapter(id)` or
 * `py.anonymousAdapter()`; every method runs in that session's namespace.
 */
export class SessionAdapter {
  readonly sessionId: string;
  /** True for the adapter from `anonymousAdapter()`. */
  readonly anonymous: boolean;
  private readonly py: PythonPool;

  /** @internal */
  constructor(py: PythonPool, sessionId: string, anonymous: boolean) {
    this.py = py;
    this.sessionId = sessionId;
    this.anonymous = anonymous;
  }

  /**
   * Configure the session's language model. The bridge validates the configuration (its
   * PythonError is the answer for a bad one) on the worker that takes the call; every later
   * call carries it, so each worker switches to it on the session's next call there.
   */
  async configureLM(config: LMConfig): Promise<LMInfo> {
    const wire = lmWire(config);
    const state = this.py.state(this.sessionId);
    const { result } = await this.py.call<{ provider: string; model: string }>(state, 'configure_lm', wire);
    state.lm = structuredClone(config);
    state.lmWire = wire;
    return { provider: result.provider, model: result.model };
  }

  /** The session's LM configuration (a copy), or null when it uses the default dummy LM. */
  lmConfig(): LMConfig | null {
    const lm = this.py.peek(this.sessionId)?.lm;
    return lm ? structuredClone(lm) : null;
  }

  /** Create a program; resolves to its id. */
  async createProgram(config: ProgramConfig): Promise<string> {
    if (!isPlainObject(config)) throw bad('config', 'must be an object with a signature', config);
    checkKeys('', config, ['id', 'type', 'signature'], { program_id: 'id', programId: 'id' });
    if (config.id !== undefined && (typeof config.id !== 'string' || config.id.length === 0)) throw bad('id', 'must be a non-empty string', config.id);
    const type = config.type ?? 'predict';
    if (!PROGRAM_TYPES.includes(type)) throw bad('type', "must be 'predict' or 'chain_of_thought'", config.type);
    const state = this.py.state(this.sessionId);
    let id = config.id;
    if (id === undefined) {
      do id = `program_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
      while (state.programs.has(id) || state.reserved.has(id));
    }
    const wire = programWire(config, id, type);
    if (state.programs.has(id) || state.reserved.has(id)) {
      // The bridge's own check and message: here in Node, so the answer does not depend on which worker the call lands on.
      throw new PythonError('ValueError', `create_program: program '${id}' already exists in session '${this.sessionId}'`, '', 'create_program');
    }
    state.reserved.add(id);
    try {
      // The bridge validates the signature; its PythonError (identifier rules, reserved names)
      // is the answer. `replace`: Node has no such program, so a copy the worker may hold is a
      // leftover of a deleted one.
      const { result } = await this.py.call<{ signature: ProgramSpec['signature'] }>(state, 'create_program', { ...wire, replace: true }, undefined, id);
      state.programs.set(id, { id, type, signature: result.signature, wire, createdAt: Date.now(), executions: 0 });
      return id;
    } finally {
      state.reserved.delete(id);
    }
  }

  /** Run a program on the inputs; resolves to `{ outputs, programId, provider, model, restored, attempts }`. */
  async executeProgram<O extends Record<string, unknown> = Record<string, unknown>>(programId: string, inputs: Record<string, unknown>, options?: ProgramCallOptions): Promise<ExecuteResult<O>> {
    checkProgramId(programId);
    if (!isPlainObject(inputs)) throw bad('inputs', 'must be an object of input field values', inputs);
    const state = this.py.state(this.sessionId);
    const { result, attempts, spec } = await this.py.programCall<{ program_id: string; outputs: O; provider: string; model: string; restored?: boolean }>(
      state,
      'execute_program',
      programId,
      { inputs },
      options,
    );
    spec.executions++;
    this.py.countExecution();
    return { programId: result.program_id, outputs: result.outputs, provider: result.provider, model: result.model, restored: result.restored === true, attempts };
  }

  /** The program's type, normalized signature and counters (the bridge's get_program_info). */
  async getProgramInfo(programId: string, options?: ProgramCallOptions): Promise<ProgramInfo> {
    checkProgramId(programId);
    const state = this.py.state(this.sessionId);
    const { result, spec } = await this.py.programCall<{ program_id: string; type: ProgramType; signature: ProgramInfo['signature']; engine: string; restored?: boolean }>(
      state,
      'get_program_info',
      programId,
      {},
      options,
    );
    return { programId: result.program_id, type: result.type, signature: result.signature, executions: spec.executions, createdAt: spec.createdAt, engine: result.engine };
  }

  /** The session's programs, as the adapter holds them (every worker's copy is rebuilt from these). */
  async listPrograms(): Promise<ProgramSummary[]> {
    const state = this.py.peek(this.sessionId);
    if (!state) return [];
    return [...state.programs.values()].map((p) => ({ programId: p.id, type: p.type, executions: p.executions, createdAt: p.createdAt }));
  }

  /**
   * Delete a program: the adapter forgets it, and the worker that takes the call drops its
   * copy. Copies on other workers are left to the session's end: they cannot be reached (the
   * adapter answers ProgramNotFoundError for an id it does not know), and a new program with
   * the same id replaces them (every call carries its spec).
   */
  async deleteProgram(programId: string, options?: ProgramCallOptions): Promise<void> {
    checkProgramId(programId);
    const state = this.py.state(this.sessionId);
    try {
      await this.py.programCall(state, 'delete_program', programId, {}, options, false);
    } catch (error) {
      if (!(error instanceof WorkerCrashedError)) throw error; // its copy died with the worker
    }
    state.programs.delete(programId);
  }

  /** End this session (PythonPool.endSession). */
  endSession(): Promise<{ workers: number; programs: number }> {
    return this.py.endSession(this.sessionId);
  }
}
