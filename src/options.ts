/**
 * Pool options: defaults, presets and strict validation. Every rule is one line; an unknown
 * key or a bad value throws InvalidOptionError naming it, before anything is started.
 */
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { InvalidOptionError } from './errors.js';
import { AFFINITIES, type Affinity } from './routing/route.js';
import type { Strategy } from '../machines/strategy.js';

export interface RestartOptions {
  strategy?: Strategy;
  maxRestarts?: number;
  /** OTP's MaxSeconds: the window restart intensity is measured over. */
  maxSeconds?: number;
  /** The root supervisor's intensity: restarts of the whole worker tier allowed within `maxSeconds` before the pool closes. */
  root?: { maxRestarts?: number; maxSeconds?: number };
}

export interface RecycleOptions {
  /** Replace a worker after it served this many requests. */
  maxRequests?: number;
  /** Replace a worker whose Python process's resident memory exceeds this many MiB. */
  maxRssMb?: number;
  /** Replace a worker whose process is older than this many ms. */
  maxAgeMs?: number;
}

export interface PoolOptions {
  poolSize?: number;
  maxOverflow?: number;
  checkoutTimeout?: number;
  requestTimeout?: number;
  healthCheckInterval?: number;
  lazy?: boolean;
  maxQueue?: number;
  affinity?: Affinity;
  python?: string;
  /** Handler files (paths relative to process.cwd(), or `file:` URLs / URL objects) or module names. */
  handlers?: Array<string | URL>;
  restart?: RestartOptions;
  shutdownTimeout?: number;
  recycle?: RecycleOptions;
  inspect?: unknown;
  /**
   * Requests in flight per worker process. Default 1. Above 1, for I/O-bound handlers (a DSPy
   * program waiting on its LM): `async def` handlers run on the worker's event loop, sync ones
   * on that many threads, and replies come back in any order (docs/OPTIONS.md).
   */
  workerConcurrency?: number;
  /**
   * Where the workers' stderr (print(), logging, tracebacks) goes: 'inherit' (default) writes
   * each line to this process's stderr prefixed `[worker_1 <pid>]` and emits `worker_log`;
   * 'events' only emits `worker_log`; 'silent' drops it.
   */
  logs?: LogsMode;
  // ---- beyond the core options; each documented in docs/OPTIONS.md ----
  /** ms an idle session is kept before it is cleaned up in Python; 0 = never. Default 30 min. */
  sessionTtl?: number;
  /** ms an overflow worker may sit idle before it is retired. Default 10 s. */
  overflowIdle?: number;
  /** ms a worker has to become ready (interpreter start, handler imports, first ping). Default 30 s. */
  startTimeout?: number;
  /** ms a health-check ping may take before the worker is marked unhealthy. Default 5 s. */
  pingTimeout?: number;
  /** ms an aborted handler has to answer its KeyboardInterrupt before its worker is replaced. Default 1 s. */
  interruptGrace?: number;
  /** Python errors in a row after which a worker is replaced. Default 10. */
  maxConsecutiveErrors?: number;
  /** Largest frame either side accepts, in bytes. Default 64 MiB. */
  maxFrameBytes?: number;
  /** Extra environment for the Python processes. */
  env?: Record<string, string>;
  /** Working directory of the Python processes. */
  cwd?: string;
}

export interface ResolvedOptions {
  poolSize: number;
  maxOverflow: number;
  checkoutTimeout: number;
  requestTimeout: number;
  healthCheckInterval: number;
  lazy: boolean;
  maxQueue: number;
  affinity: Affinity;
  python: string;
  handlers: string[];
  restart: Required<Omit<RestartOptions, 'root'>> & { root: { maxRestarts: number; maxSeconds: number } };
  shutdownTimeout: number;
  recycle: Required<RecycleOptions>;
  inspect: unknown;
  workerConcurrency: number;
  logs: LogsMode;
  sessionTtl: number;
  overflowIdle: number;
  startTimeout: number;
  pingTimeout: number;
  interruptGrace: number;
  maxConsecutiveErrors: number;
  maxFrameBytes: number;
  env: Record<string, string>;
  cwd: string | undefined;
}

const cores = () => (typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);

/**
 * The default pool: one worker per core, at most 4, and as many overflow workers on demand. A
 * bigger default surprises on a big host: each worker is an interpreter that imports the
 * handlers (with DSPy ~100 MB and ~0.6 s each), and 2 × 64 cores would start 128 of them at
 * once. One per core: `poolSize: os.availableParallelism()`; `presets.prod` starts three per core.
 */
export const DEFAULT_MAX_POOL_SIZE = 4;

export function defaults(): ResolvedOptions {
  return {
    poolSize: Math.min(cores(), DEFAULT_MAX_POOL_SIZE),
    maxOverflow: Math.min(cores(), DEFAULT_MAX_POOL_SIZE),
    checkoutTimeout: 5_000,
    requestTimeout: 30_000,
    healthCheckInterval: 30_000,
    lazy: false,
    maxQueue: 1_000,
    affinity: 'auto',
    python: process.env.PYVISOR_PYTHON || 'python3',
    handlers: [],
    restart: { strategy: 'one_for_one', maxRestarts: 3, maxSeconds: 5, root: { maxRestarts: 3, maxSeconds: 30 } },
    shutdownTimeout: 5_000,
    recycle: { maxRequests: 0, maxRssMb: 0, maxAgeMs: 0 },
    inspect: undefined,
    workerConcurrency: 1,
    logs: 'inherit',
    sessionTtl: 30 * 60_000,
    overflowIdle: 10_000,
    startTimeout: 30_000,
    pingTimeout: 5_000,
    interruptGrace: 1_000,
    maxConsecutiveErrors: 10,
    maxFrameBytes: 64 * 1024 * 1024,
    env: {},
    cwd: undefined,
  };
}

/**
 * The seed's per-environment tuning, to spread into the options:
 * `createPool({ ...presets.prod, handlers: [...] })`. Frozen, so that one caller's tweak can
 * never leak into another's pool.
 */
export const presets: { readonly dev: Readonly<PoolOptions>; readonly test: Readonly<PoolOptions>; readonly prod: Readonly<PoolOptions> } = Object.freeze({
  dev: Object.freeze({ poolSize: 2, lazy: true }),
  test: Object.freeze({ poolSize: 4, checkoutTimeout: 10_000 }),
  get prod(): Readonly<PoolOptions> {
    return Object.freeze({ poolSize: cores() * 3, lazy: false });
  },
});

type Check = (value: unknown) => string | null;

export type LogsMode = 'inherit' | 'events' | 'silent';
export const LOGS_MODES: readonly LogsMode[] = ['inherit', 'events', 'silent'];

/** The worker's `--concurrency` ceiling (python/pyvisor refuses more). */
export const MAX_WORKER_CONCURRENCY = 1024;
/** The most chunks a stream's worker may run ahead of its reader. */
export const MAX_STREAM_WINDOW = 65_536;

const int = (min: number): Check => (v) => (Number.isSafeInteger(v) && (v as number) >= min ? null : `must be an integer >= ${min}`);
const ms: Check = (v) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 2 ** 31 - 1 ? null : 'must be a number of milliseconds between 0 and 2147483647');
const positiveMs: Check = (v) => ms(v) ?? ((v as number) > 0 ? null : 'must be greater than 0');
const bool: Check = (v) => (typeof v === 'boolean' ? null : 'must be true or false');
const oneOf = (...values: string[]): Check => (v) => (values.includes(v as string) ? null : `must be one of ${values.map((x) => `'${x}'`).join(', ')}`);
const nonEmptyString: Check = (v) => (typeof v === 'string' && v.length > 0 ? null : 'must be a non-empty string');
const handlerList: Check = (v) =>
  Array.isArray(v) && v.every((x) => (typeof x === 'string' && x.length > 0) || (x instanceof URL && x.protocol === 'file:'))
    ? null
    : 'must be an array of handler files (paths or file: URLs) or module names';

/** A handler given as a `file:` URL (an object or a string, as import.meta.resolve gives) is that file's path. */
export function handlerOf(h: string | URL): string {
  if (typeof h === 'string' && !h.startsWith('file:')) return h;
  try {
    return fileURLToPath(h);
  } catch (error) {
    throw new InvalidOptionError('handlers', `${String(h)} is not a usable file: URL (${(error as Error).message})`);
  }
}
const stringRecord: Check = (v) =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string') ? null : 'must be an object of string values';
const any: Check = () => null;
const observer: Check = (v) => (typeof v === 'function' || (v !== null && typeof v === 'object' && typeof (v as { next?: unknown }).next === 'function') ? null : 'must be an inspection observer (a function or an object with next())');

const RULES: Record<string, Check> = {
  poolSize: int(1),
  maxOverflow: int(0),
  checkoutTimeout: positiveMs,
  requestTimeout: positiveMs,
  healthCheckInterval: ms,
  lazy: bool,
  maxQueue: int(0),
  affinity: oneOf(...AFFINITIES),
  python: nonEmptyString,
  handlers: handlerList,
  restart: any,
  shutdownTimeout: ms,
  recycle: any,
  inspect: observer,
  workerConcurrency: (v) => (Number.isSafeInteger(v) && (v as number) >= 1 && (v as number) <= MAX_WORKER_CONCURRENCY ? null : `must be an integer between 1 and ${MAX_WORKER_CONCURRENCY}`),
  logs: oneOf(...LOGS_MODES),
  sessionTtl: ms,
  overflowIdle: ms,
  startTimeout: positiveMs,
  pingTimeout: positiveMs,
  interruptGrace: ms,
  maxConsecutiveErrors: int(1),
  maxFrameBytes: int(16),
  env: stringRecord,
  cwd: nonEmptyString,
};

/**
 * The naming rule: a duration is a number of milliseconds named without a unit, like
 * checkoutTimeout. Two names carry their unit because the design fixed them: restart.maxSeconds
 * (OTP's) and recycle.maxAgeMs. Sizes say theirs (maxRssMb, maxFrameBytes). Names of 0.1 that
 * broke the rule are answered with their new name.
 */
const RENAMED: Record<string, string> = { sessionTtlMs: 'sessionTtl', overflowIdleMs: 'overflowIdle', startTimeoutMs: 'startTimeout', pingTimeoutMs: 'pingTimeout', interruptGraceMs: 'interruptGrace' };

const RESTART_MAX_RESTARTS: Check = int(0);
// Its window is a timer of maxSeconds × 1000 ms, and timers stop at 2^31 - 1 ms.
const RESTART_MAX_SECONDS: Check = (v) => (typeof v === 'number' && Number.isFinite(v) && v > 0 && v * 1000 <= 2 ** 31 - 1 ? null : 'must be a number of seconds > 0 and <= 2147483');

const RESTART_RULES: Record<string, Check> = {
  strategy: oneOf('one_for_one', 'one_for_all', 'rest_for_one'),
  maxRestarts: RESTART_MAX_RESTARTS,
  maxSeconds: RESTART_MAX_SECONDS,
  root: any,
};

const ROOT_RESTART_RULES: Record<string, Check> = {
  maxRestarts: RESTART_MAX_RESTARTS,
  maxSeconds: RESTART_MAX_SECONDS,
};

const RECYCLE_RULES: Record<string, Check> = {
  maxRequests: int(0),
  maxRssMb: (v) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? null : 'must be a number of MiB >= 0'),
  maxAgeMs: ms,
};

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  // JSON would print NaN and Infinity as null, hiding the very value that is wrong.
  if (typeof value === 'number') return String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function') return 'a function';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * Check every key of `value` against `rules`. `prefix` names nested keys ("restart.maxRestarts");
 * `kind` says whose options they are in the messages. An undefined value means "the default".
 */
function checkObject(prefix: string, value: unknown, rules: Record<string, Check>, kind = 'option'): void {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidOptionError(prefix || 'options', `must be an object, got ${describe(value)}`);
  }
  for (const [key, v] of Object.entries(value)) {
    const name = prefix ? `${prefix}.${key}` : key;
    const rule = rules[key];
    if (!rule) {
      const near = RENAMED[key] ?? Object.keys(rules).find((k) => k.toLowerCase() === key.toLowerCase());
      throw new InvalidOptionError(name, `unknown ${kind}${near ? ` (did you mean "${near}"?)` : ''}; known: ${Object.keys(rules).join(', ')}`);
    }
    if (v === undefined) continue;
    const problem = rule(v);
    if (problem) throw new InvalidOptionError(name, `${kind === 'option' ? '' : `${kind} `}${problem}, got ${describe(v)}`);
  }
}

/** Validate user options and merge them over the defaults. Throws InvalidOptionError. */
export function resolveOptions(options: PoolOptions = {}): ResolvedOptions {
  checkObject('', options, RULES);
  if (options.restart !== undefined) checkObject('restart', options.restart, RESTART_RULES);
  if (options.restart?.root !== undefined) checkObject('restart.root', options.restart.root, ROOT_RESTART_RULES);
  if (options.recycle !== undefined) checkObject('recycle', options.recycle, RECYCLE_RULES);
  // A lazy pool serves its first caller only by letting it wait for a worker to start.
  if (options.lazy === true && options.maxQueue === 0) {
    throw new InvalidOptionError('maxQueue', 'must be >= 1 when lazy is true (callers wait in the queue while workers start), got 0');
  }
  const base = defaults();
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as PoolOptions;
  return {
    ...base,
    ...defined,
    restart: { ...base.restart, ...stripUndefined(options.restart), root: { ...base.restart.root, ...stripUndefined(options.restart?.root) } },
    recycle: { ...base.recycle, ...stripUndefined(options.recycle) },
    handlers: (options.handlers ?? base.handlers).map(handlerOf),
    env: { ...(options.env ?? {}) },
  } as ResolvedOptions;
}

function stripUndefined<T extends object>(value: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(value ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
}

const EXECUTE_RULES: Record<string, Check> = {
  // null (like undefined) means an anonymous call.
  sessionId: (v) => (v === null || (typeof v === 'string' && v.length > 0) ? null : 'must be a non-empty string (or null for none)'),
  timeout: positiveMs,
  checkoutTimeout: positiveMs,
  signal: (v) => (v !== null && typeof v === 'object' && 'aborted' in v && typeof (v as AbortSignal).addEventListener === 'function' ? null : 'must be an AbortSignal'),
  idempotent: bool,
  affinity: oneOf(...AFFINITIES),
};

export interface ExecuteOptions {
  /** The session this call belongs to (created on first use); absent or null: anonymous. */
  sessionId?: string | null;
  /** ms the command may run (default: the pool's requestTimeout). */
  timeout?: number;
  /** ms to wait for a worker (default: the pool's checkoutTimeout). */
  checkoutTimeout?: number;
  signal?: AbortSignal;
  /** Retry once on another worker if the worker crashes under the request. */
  idempotent?: boolean;
  /** This call's affinity rule (default: the pool's `affinity`). */
  affinity?: Affinity;
}

export function checkExecuteOptions(options: ExecuteOptions): void {
  checkObject('', options, EXECUTE_RULES, 'execute option');
}

const STREAM_RULES: Record<string, Check> = {
  ...EXECUTE_RULES,
  window: (v) => (Number.isSafeInteger(v) && (v as number) >= 1 && (v as number) <= MAX_STREAM_WINDOW ? null : `must be an integer between 1 and ${MAX_STREAM_WINDOW} (chunks)`),
};

export interface StreamOptions extends ExecuteOptions {
  /**
   * Chunks the worker may produce ahead of the reader (backpressure): it pauses the generator
   * when that many are unread. Default 16. `timeout` is for the whole stream.
   */
  window?: number;
}

export function checkStreamOptions(options: StreamOptions): void {
  checkObject('', options, STREAM_RULES, 'stream option');
}
