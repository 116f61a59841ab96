/**
 * PythonPool: the DSPy adapter. Session-scoped programs executed on pooled Python workers,
 * built on the bridge's commands (configure_lm, create_program, execute_program,
 * get_program_info, delete_program; python/pyvisor/dspy_commands.py).
 *
 * The adapter is the source of truth for a session's programs: it keeps every program's spec
 * and the session's LM configuration in Node. A worker's Python namespace is a cache of that
 * state. When a call lands on a worker that lacks the program (another worker served the
 * session before, or the worker crashed and was replaced, or the session expired), the
 * adapter re-creates the LM configuration and the program from the spec and retries, so a
 * program survives any routing and any worker crash. docs/ADAPTER.md has the full story.
 */
import { createHash, randomUUID } from 'node:crypto';
import { EventEmitter } from 'eventemitter3';
import { createPool } from '../createPool.js';
import {
  InvalidOptionError,
  PythonError,
  SessionNotFoundError,
  SessionWorkerLostError,
  WorkerCrashedError,
} from '../errors.js';
import type { ExecuteOptions, PoolOptions } from '../options.js';
import type { Pool } from '../pool.js';

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
  /** The program (and LM configuration) had to be re-created on the worker that answered. */
  restored: boolean;
  /** Calls sent to the pool for this execution, restores included: 1 when nothing went wrong. */
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

export type RestoreReason = 'program_missing' | 'worker_crashed' | 'worker_lost' | 'lm_missing';

export interface PythonPoolEvents {
  /** The adapter re-created a session's state on a worker before retrying a call. */
  program_restored: { sessionId: string; programId: string; reason: RestoreReason };
  /** A call is being retried (after a restore, a crash or a lost pinned worker). */
  retry: { sessionId: string; programId: string; command: string; reason: RestoreReason; attempt: number };
}

export interface PythonPoolStats {
  /** Sessions the adapter holds state for. */
  sessions: number;
  /** Programs over all sessions. */
  programs: number;
  /** Successful executions. */
  executions: number;
  /** Times state was re-created on a worker. */
  restores: number;
  /** Calls retried (after a restore, crash or lost worker). */
  retries: number;
}

export interface PythonPoolOptions {
  /**
   * How many times one call may restore state and retry when it keeps landing on workers
   * that lack the program. Default: three times the number of workers, plus 2 (each restore
   * covers one more worker, so this is only reached under heavy non-sticky routing).
   */
  maxRestores?: number;
}

// ---- internal state ---------------------------------------------------------------------------

interface ProgramSpec {
  id: string;
  type: ProgramType;
  signature: { inputs: NormalizedField[]; outputs: NormalizedField[]; instructions: string };
  wire: Record<string, unknown>;
  createdAt: number;
  executions: number;
}

interface SessionState {
  id: string;
  lm: LMConfig | null;
  lmWire: Record<string, unknown> | null;
  /** provider/model the workers report for the configured LM (model as sent on the wire). */
  lmExpect: LMInfo | null;
  /** The model name the user gave (or the default): what results report. */
  lmLabel: string | null;
  programs: Map<string, ProgramSpec>;
  /** Ids being created right now (a concurrent duplicate must fail, like Python would). */
  reserved: Set<string>;
  /** Some Python worker may hold state of this session (set by the first call that reached one). */
  touched: boolean;
}

const PROGRAM_TYPES: readonly ProgramType[] = ['predict', 'chain_of_thought'];
const DEFAULT_OPENAI_MODEL = 'gpt-4o-mini';
/** PythonPool.create's default for the pool's maxConsecutiveErrors (see create()). */
export const ADAPTER_MAX_CONSECUTIVE_ERRORS = 1000;

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
function lmWire(config: LMConfig): { wire: Record<string, unknown>; expect: LMInfo; label: string } {
  if (!isPlainObject(config)) throw bad('lm', 'must be an object with a provider', config);
  const provider = (config as { provider?: unknown }).provider;
  if (provider !== 'dummy' && provider !== 'openai') throw bad('provider', "must be 'dummy' or 'openai'", provider);
  const c = config as unknown as Record<string, unknown>;
  if (c.model !== undefined && (typeof c.model !== 'string' || c.model.length === 0)) throw bad('model', 'must be a non-empty string', c.model);
  if (provider === 'dummy') {
    checkKeys('', c, ['provider', 'model', 'answers']);
    const label = (c.model as string | undefined) ?? 'dummy';
    const wire: Record<string, unknown> = { provider };
    if (c.model !== undefined) wire.model = c.model;
    if (c.answers !== undefined) {
      if (!isPlainObject(c.answers) && !Array.isArray(c.answers)) throw bad('answers', 'must be an object (input value → outputs) or an array of outputs objects', c.answers);
      wire.answers = c.answers;
      // A worker that lost the session's LM answers with the default dummy LM, which reports
      // model "dummy" too: tag the wire label with the table's digest so the adapter can tell
      // them apart (results report the user's label).
      wire.model = `${label}#${createHash('sha1').update(JSON.stringify(c.answers) ?? '').digest('hex').slice(0, 8)}`;
    }
    return { wire, expect: { provider, model: (wire.model as string | undefined) ?? 'dummy' }, label };
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
  const label = (c.model as string | undefined) ?? DEFAULT_OPENAI_MODEL;
  return { wire, expect: { provider, model: label }, label };
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

/** The bridge's "Program 'x' not found in session 's'". */
function isProgramMissing(error: unknown): boolean {
  return error instanceof PythonError && error.pythonType === 'ProgramNotFoundError';
}

function isDuplicate(error: unknown): boolean {
  return error instanceof PythonError && error.pythonType === 'ValueError' && /already exists/.test(error.message);
}

// ---- the adapter ----------------------------------------------------------------------------------

/**
 * The DSPy adapter over a pool. `new PythonPool(pool)` wraps a pool you own;
 * `PythonPool.create(options)` starts one that `close()` stops.
 */
export class PythonPool extends EventEmitter<{ [K in keyof PythonPoolEvents]: (e: PythonPoolEvents[K]) => void }> {
  readonly pool: Pool;
  private readonly ownsPool: boolean;
  private readonly sessions = new Map<string, SessionState>();
  private readonly adapters = new Map<string, SessionAdapter>();
  private readonly maxRestoresOption: number | undefined;
  private anonymous: SessionAdapter | null = null;
  private counters = { executions: 0, restores: 0, retries: 0 };
  private closing: Promise<void> | null = null;

  constructor(pool: Pool, options: PythonPoolOptions & { ownsPool?: boolean } = {}) {
    super();
    if (!pool || typeof (pool as Pool).execute !== 'function' || typeof (pool as Pool).endSession !== 'function') {
      throw new TypeError('new PythonPool(pool): pool must be a Pool from createPool()');
    }
    if (!isPlainObject(options as unknown)) throw bad('options', 'must be an object', options);
    checkKeys('', options as unknown as Record<string, unknown>, ['maxRestores', 'ownsPool']);
    if (options.maxRestores !== undefined && (!Number.isSafeInteger(options.maxRestores) || options.maxRestores < 1)) {
      throw bad('maxRestores', 'must be an integer >= 1', options.maxRestores);
    }
    this.pool = pool;
    this.ownsPool = options.ownsPool === true;
    this.maxRestoresOption = options.maxRestores;
  }

  /**
   * Start a pool (createPool(options)) and wrap it; `close()` stops that pool.
   * `maxConsecutiveErrors` defaults to 1000 here instead of the pool's 10: a fresh worker
   * answers "program not found" to every session that lands on it until the adapter has
   * restored their programs, and those expected replies must not get it replaced.
   */
  static async create(options: PoolOptions = {}, adapterOptions: PythonPoolOptions = {}): Promise<PythonPool> {
    const pool = await createPool({ maxConsecutiveErrors: ADAPTER_MAX_CONSECUTIVE_ERRORS, ...options });
    return new PythonPool(pool, { ...adapterOptions, ownsPool: true });
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
      s = { id: sessionId, lm: null, lmWire: null, lmExpect: null, lmLabel: null, programs: new Map(), reserved: new Set(), touched: false };
      this.sessions.set(sessionId, s);
    }
    return s;
  }

  /** @internal */
  peek(sessionId: string): SessionState | undefined {
    return this.sessions.get(sessionId);
  }

  /** @internal one pool call in the session. */
  async call<T>(state: SessionState, command: string, args: Record<string, unknown>, exec: Omit<ExecuteOptions, 'sessionId'> = {}): Promise<T> {
    const result = await this.pool.execute<T>(command, args, { ...exec, sessionId: state.id });
    state.touched = true;
    return result;
  }

  /**
   * @internal A call that changes state but is safe to repeat (configure_lm, create_program):
   * retried once when the worker dies under it (its state died with it) or when a strict
   * session's worker is lost (after releasing the pin).
   */
  async callSurvivingCrash<T>(state: SessionState, command: string, args: Record<string, unknown>, exec: Omit<ExecuteOptions, 'sessionId'> = {}): Promise<T> {
    try {
      return await this.call<T>(state, command, args, exec);
    } catch (error) {
      if (!(error instanceof WorkerCrashedError) && !(error instanceof SessionWorkerLostError)) throw error;
      if (error instanceof SessionWorkerLostError) await this.wipe(state);
      this.retried(state, typeof args.id === 'string' ? args.id : '', command, error instanceof WorkerCrashedError ? 'worker_crashed' : 'worker_lost', 1);
      return this.call<T>(state, command, args, exec);
    }
  }

  /** @internal wipe the session's Python state everywhere (after a change that would leave other workers stale). */
  async wipe(state: SessionState): Promise<void> {
    try {
      await this.pool.endSession(state.id);
    } catch (error) {
      if (!(error instanceof SessionNotFoundError)) throw error;
    }
  }

  /** @internal re-create the session's LM configuration and one program on whichever worker takes the calls. */
  async restore(state: SessionState, spec: ProgramSpec | null, reason: RestoreReason, exec: Omit<ExecuteOptions, 'sessionId'>): Promise<void> {
    this.counters.restores++;
    if (state.lmWire) await this.call(state, 'configure_lm', state.lmWire, exec);
    if (spec) {
      try {
        await this.call(state, 'create_program', spec.wire, exec);
      } catch (error) {
        if (!isDuplicate(error)) throw error; // that worker has it already
      }
    }
    this.emit('program_restored', { sessionId: state.id, programId: spec?.id ?? '', reason });
  }

  /**
   * @internal A call about one program, made to survive routing and crashes: when the worker
   * lacks the program it is re-created from the spec and the call retried; when the worker
   * dies under the call (or a strict session's worker is lost) the call is retried once.
   */
  async programCall<T>(state: SessionState, command: string, programId: string, args: Record<string, unknown>, opts: ProgramCallOptions | undefined, verify?: (result: T) => boolean): Promise<{ result: T; restored: boolean; attempts: number }> {
    const { exec, retryOnCrash } = callOptions(opts);
    const maxRestores = this.maxRestoresOption ?? 3 * Math.max(1, this.pool.workers().length) + 2;
    let restores = 0;
    let crashRetried = false;
    let pendingRestore: RestoreReason | null = null;
    let restored = false;
    let attempts = 0;
    for (;;) {
      const spec = state.programs.get(programId) ?? null;
      try {
        if (pendingRestore) {
          const reason = pendingRestore;
          pendingRestore = null;
          if (spec || reason === 'lm_missing') {
            attempts++;
            await this.restore(state, spec, reason, exec);
            restored = true;
          }
        }
        attempts++;
        const result = await this.call<T>(state, command, { ...args, program_id: programId }, exec);
        if (verify && !verify(result) && state.programs.get(programId) && restores < maxRestores) {
          // The worker had the program but not the session's LM configuration (it ran the default dummy LM).
          restores++;
          pendingRestore = 'lm_missing';
          this.retried(state, programId, command, 'lm_missing', attempts);
          continue;
        }
        return { result, restored, attempts };
      } catch (error) {
        const known = state.programs.get(programId);
        if (!known) throw error; // not the adapter's program (or deleted meanwhile): the bridge's answer stands
        if (isProgramMissing(error) && restores < maxRestores) {
          restores++;
          pendingRestore = 'program_missing';
          this.retried(state, programId, command, 'program_missing', attempts);
          continue;
        }
        if ((error instanceof WorkerCrashedError || error instanceof SessionWorkerLostError) && retryOnCrash && !crashRetried) {
          crashRetried = true;
          const reason: RestoreReason = error instanceof WorkerCrashedError ? 'worker_crashed' : 'worker_lost';
          // A strict session pinned to a dead worker: release the pin so the pool routes it anew.
          if (error instanceof SessionWorkerLostError) await this.wipe(state);
          this.retried(state, programId, command, reason, attempts);
          continue; // the replacement worker is empty: the retry meets "not found" and restores
        }
        throw error;
      }
    }
  }

  /** @internal */
  retried(state: SessionState, programId: string, command: string, reason: RestoreReason, attempt: number): void {
    this.counters.retries++;
    this.emit('retry', { sessionId: state.id, programId, command, reason, attempt });
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
   * PythonError is the answer for a bad one). If the session already has state in Python, it
   * is dropped on every worker so none keeps the old LM; programs are re-created lazily.
   */
  async configureLM(config: LMConfig): Promise<LMInfo> {
    const { wire, expect, label } = lmWire(config);
    const state = this.py.state(this.sessionId);
    const hadState = state.touched;
    const reply = await this.py.callSurvivingCrash<{ provider: string; model: string }>(state, 'configure_lm', wire);
    state.lm = structuredClone(config);
    state.lmWire = wire;
    state.lmExpect = { provider: reply.provider ?? expect.provider, model: reply.model ?? expect.model };
    state.lmLabel = label;
    if (hadState) {
      await this.py.wipe(state);
      state.touched = false;
    }
    return { provider: state.lmExpect.provider, model: label };
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
      // The bridge validates the signature; its PythonError (identifier rules, reserved names,
      // a duplicate made outside the adapter) is the answer.
      const reply = await this.py.callSurvivingCrash<{ program_id: string; type: ProgramType; signature: ProgramSpec['signature'] }>(state, 'create_program', wire);
      state.programs.set(id, { id, type, signature: reply.signature, wire, createdAt: Date.now(), executions: 0 });
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
    const expect = state.lmExpect;
    const verify = expect
      ? (r: { provider?: string; model?: string }) => r.provider === expect.provider && r.model === expect.model
      : undefined;
    const { result, restored, attempts } = await this.py.programCall<{ program_id: string; outputs: O; provider: string; model: string }>(
      state,
      'execute_program',
      programId,
      { inputs },
      options,
      verify,
    );
    const spec = state.programs.get(programId);
    if (spec) spec.executions++;
    this.py.countExecution();
    const model = expect && result.model === expect.model && state.lmLabel !== null ? state.lmLabel : result.model;
    return { programId: result.program_id, outputs: result.outputs, provider: result.provider, model, restored, attempts };
  }

  /** The program's type, normalized signature and counters (the bridge's get_program_info). */
  async getProgramInfo(programId: string, options?: ProgramCallOptions): Promise<ProgramInfo> {
    checkProgramId(programId);
    const state = this.py.state(this.sessionId);
    const { result } = await this.py.programCall<{ program_id: string; type: ProgramType; signature: ProgramInfo['signature']; executions: number; created_at: number; engine: string }>(
      state,
      'get_program_info',
      programId,
      {},
      options,
    );
    const spec = state.programs.get(programId);
    return {
      programId: result.program_id,
      type: result.type,
      signature: result.signature,
      executions: spec?.executions ?? result.executions,
      createdAt: spec?.createdAt ?? Math.round(result.created_at * 1000),
      engine: result.engine,
    };
  }

  /** The session's programs, as the adapter holds them (every worker's copy is rebuilt from these). */
  async listPrograms(): Promise<ProgramSummary[]> {
    const state = this.py.peek(this.sessionId);
    if (!state) return [];
    return [...state.programs.values()].map((p) => ({ programId: p.id, type: p.type, executions: p.executions, createdAt: p.createdAt }));
  }

  /** Delete a program; the bridge's ProgramNotFoundError for an id the session does not have. */
  async deleteProgram(programId: string, options?: ProgramCallOptions): Promise<void> {
    checkProgramId(programId);
    const state = this.py.state(this.sessionId);
    const spec = state.programs.get(programId);
    if (!spec) {
      // Ask the bridge anyway: its error is the precise answer (and a program made outside the adapter is deleted).
      await this.py.call(state, 'delete_program', { program_id: programId }, callOptions(options).exec);
      return;
    }
    try {
      await this.py.call(state, 'delete_program', { program_id: programId }, callOptions(options).exec);
    } catch (error) {
      // The worker that answered had no copy (or died with it): the program is gone there either way.
      if (!isProgramMissing(error) && !(error instanceof WorkerCrashedError) && !(error instanceof SessionWorkerLostError)) throw error;
    }
    state.programs.delete(programId);
    // Other workers may still hold a copy; drop the session there (the rest is re-created lazily).
    await this.py.wipe(state);
    state.touched = false;
  }

  /** End this session (PythonPool.endSession). */
  endSession(): Promise<{ workers: number; programs: number }> {
    return this.py.endSession(this.sessionId);
  }
}
