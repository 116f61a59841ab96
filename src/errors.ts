/**
 * Every error pyvisor raises is a PyvisorError with a stable `code`. Callers branch on
 * `code` (or `instanceof` within one process), never on message text. Errors that wrap
 * another failure keep it as the standard `cause`.
 *
 * Errors cross boundaries (a process, NATS, a machine) as data: `toWire` turns any thrown
 * value into a `WireError` (plain JSON/MessagePack data) and `fromWire` rebuilds the class
 * for its code, so `instanceof`, `code`, `name`, `message`, every field and the cause chain
 * survive the trip. The codes are listed once (`ERROR_CODES`); the code → class table with
 * each class's wire fields is written once, at the end of this file (`CODECS`), and is typed
 * so that a code without a class, or a class field missing from its wire schema, does not
 * compile.
 *
 * What crosses the wire, and why:
 * - A PyvisorError: its code, its exact message, `fields` = the class's own public fields (a
 *   field whose value is undefined is left out: the wire has no undefined; a non-finite number
 *   travels as null, as JSON would print it), and its cause chain (up to MAX_CAUSE_DEPTH
 *   levels; a cycle ends the chain).
 * - A cause that is not a PyvisorError: `{ name, message }` only (its stack, fields and own
 *   cause stay behind); a cause that is not even an Error (an abort reason such as a string):
 *   `{ message: String(value) }`.
 * - A thrown value that is not a PyvisorError (a bug, a TypeError from user code, a string):
 *   `PROTOCOL_ERROR` with the message `unexpected error: <name>: <message>` and the original
 *   kept as the `cause` ({name, message}), so nothing is lost. Why not another code: the
 *   Executor contract (src/core/executor.ts) is that every error crossing it is a coded PyvisorError, so
 *   a throwable without a code is the sender breaking the contract — a protocol error from
 *   the receiver's point of view. `PYTHON_ERROR` would be a lie (it means "the handler
 *   raised; the worker is fine", and would carry a JS class name as the Python type), and a
 *   new catch-all code would widen every consumer's switch for what is always a bug. The one
 *   exception is the platform's abort error (`name === 'AbortError'`, what AbortSignal,
 *   fetch, streams and timers/promises throw): it becomes `ABORTED`, as the pool itself wraps
 *   abort reasons.
 * - An Error from another copy of pyvisor (two versions installed, another realm) is still
 *   recognised, by its code and class name rather than `instanceof`.
 *
 * `fromWire` never throws. A value that is not a wire error (not an object, no string code or
 * message, an unknown code, a field of the wrong type, a reason outside SessionWorkerLostReason)
 * yields a ProtocolError naming what was wrong and quoting the code and message it did carry.
 * Missing `fields`, or missing keys in it, take defaults: '' for strings, 0 for numbers,
 * false for flags, [] for lists, null / undefined where the field allows it, and 'crashed' for
 * a lost session's reason (the constructor's default). Unknown extra fields are ignored (a
 * newer peer may send more). A malformed cause does not throw away the error around it: that
 * error keeps its class, and its cause becomes a ProtocolError saying what was wrong.
 */

/** Every code, once. `PyvisorErrorCode` is derived from this list. */
export const ERROR_CODES = [
  'POOL_TIMEOUT',
  'POOL_SATURATED',
  'REQUEST_TIMEOUT',
  'WORKER_CRASHED',
  'PYTHON_ERROR',
  'PROTOCOL_ERROR',
  'NOT_SERIALIZABLE',
  'POOL_CLOSED',
  'SESSION_NOT_FOUND',
  'SESSION_WORKER_LOST',
  'ESCALATED',
  'WORKER_START_FAILED',
  'ABORTED',
  'INVALID_OPTION',
  'HOST_UNAVAILABLE',
] as const;

export type PyvisorErrorCode = (typeof ERROR_CODES)[number];

const CODE_SET: ReadonlySet<string> = new Set(ERROR_CODES);

export function isErrorCode(value: unknown): value is PyvisorErrorCode {
  return typeof value === 'string' && CODE_SET.has(value);
}

export class PyvisorError extends Error {
  readonly code: PyvisorErrorCode;
  constructor(code: PyvisorErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export class PoolTimeoutError extends PyvisorError {
  readonly timeoutMs: number;
  constructor(timeoutMs: number, detail = '', options?: { cause?: unknown }) {
    super('POOL_TIMEOUT', `Pool timeout - all workers busy (no worker within ${timeoutMs} ms${detail ? `; ${detail}` : ''})`, options);
    this.timeoutMs = timeoutMs;
  }
}

export class PoolSaturatedError extends PyvisorError {
  readonly maxQueue: number;
  constructor(maxQueue: number) {
    super('POOL_SATURATED', `Pool saturated: more than maxQueue=${maxQueue} callers waiting for a worker`);
    this.maxQueue = maxQueue;
  }
}

export class RequestTimeoutError extends PyvisorError {
  readonly timeoutMs: number;
  readonly command: string;
  readonly workerId: string | undefined;
  constructor(command: string, timeoutMs: number, workerId?: string) {
    super('REQUEST_TIMEOUT', `Command "${command}" ran past its timeout of ${timeoutMs} ms${workerId ? ` on ${workerId}` : ''}`);
    this.timeoutMs = timeoutMs;
    this.command = command;
    this.workerId = workerId;
  }
}

export interface ExitInfo {
  code: number | null;
  signal: string | null;
  /** The last lines the process wrote to stderr, oldest first. */
  stderrTail: string[];
}

export interface WorkerCrashedOptions {
  /** The same request killed a second worker: it is bad input and is not retried again. See docs/OPTIONS.md. */
  poison?: boolean;
  cause?: unknown;
}

export class WorkerCrashedError extends PyvisorError {
  readonly workerId: string;
  readonly pid: number | undefined;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stderrTail: string[];
  /** True when the same request killed two workers; such a request is not retried. */
  readonly poison: boolean;
  constructor(workerId: string, pid: number | undefined, exit: ExitInfo, reason?: string, options?: WorkerCrashedOptions) {
    const how = exit.signal ? `killed by ${exit.signal}` : `exited with code ${exit.code}`;
    const poison = options?.poison === true;
    const verdict = poison ? '; poison request: the same request killed two workers and is not retried' : '';
    const tail = exit.stderrTail.length ? `\nlast stderr lines:\n  ${exit.stderrTail.join('\n  ')}` : '';
    super('WORKER_CRASHED', `Worker ${workerId} (pid ${pid ?? '?'}) ${reason ?? how}${verdict}${tail}`, options && 'cause' in options ? { cause: options.cause } : undefined);
    this.workerId = workerId;
    this.pid = pid;
    this.exitCode = exit.code;
    this.signal = exit.signal;
    this.stderrTail = exit.stderrTail;
    this.poison = poison;
  }
}

export class PythonError extends PyvisorError {
  /** The Python exception class name, e.g. "ValueError". */
  readonly pythonType: string;
  readonly traceback: string;
  readonly command: string | undefined;
  /** What the exception carried as data (its `details` dict), e.g. an LM error's `{status, retry_after, code, kind}`. */
  readonly details: Record<string, unknown> | undefined;
  /** The HTTP status behind it (`details.status`), when there was one: an LM endpoint's 401, 429, 500... */
  readonly status: number | undefined;
  /** Seconds the provider asked to wait before retrying (`details.retry_after`, a 429's Retry-After). */
  readonly retryAfter: number | undefined;
  constructor(pythonType: string, message: string, traceback = '', command?: string, details?: Record<string, unknown>) {
    super('PYTHON_ERROR', `${pythonType}: ${message}`);
    this.pythonType = pythonType;
    this.traceback = traceback;
    this.command = command;
    this.details = details;
    this.status = typeof details?.status === 'number' ? details.status : undefined;
    this.retryAfter = typeof details?.retry_after === 'number' ? details.retry_after : undefined;
  }
}

export class ProtocolError extends PyvisorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PROTOCOL_ERROR', message, options);
  }
}

/** A value outside the wire types (docs/PROTOCOL.md), refused before anything was sent. */
export class SerializationError extends PyvisorError {
  /** Where in the value the offending part sits, e.g. "args.items[3]". */
  readonly path: string;
  constructor(path: string, what: string) {
    super('NOT_SERIALIZABLE', `${path}: ${what} is not serializable`);
    this.path = path;
  }
}

export class PoolClosedError extends PyvisorError {
  constructor(detail = 'the pool is stopping or stopped') {
    super('POOL_CLOSED', `Pool closed: ${detail}`);
  }
}

export class SessionNotFoundError extends PyvisorError {
  readonly sessionId: string;
  constructor(sessionId: string) {
    super('SESSION_NOT_FOUND', `Session "${sessionId}" not found: the pool never saw it, or it has already ended`);
    this.sessionId = sessionId;
  }
}

/** Why the worker holding a session's state went away. The first one is the default. */
export const SESSION_WORKER_LOST_REASONS = ['crashed', 'recycled', 'timeout', 'host_lost', 'removed'] as const;

export type SessionWorkerLostReason = (typeof SESSION_WORKER_LOST_REASONS)[number];

function lostBecause(workerId: string, reason: SessionWorkerLostReason): string {
  switch (reason) {
    case 'crashed': return `its worker ${workerId} crashed`;
    case 'recycled': return `its worker ${workerId} was recycled (a recycle limit was reached)`;
    case 'timeout': return `a request ran past its deadline on its worker ${workerId}, which was replaced`;
    case 'host_lost': return `the host running its worker ${workerId} was lost`;
    case 'removed': return `its worker ${workerId} was removed from the pool`;
  }
}

/**
 * The worker holding a session's Python state went away; the session's next request after
 * this one starts fresh.
 */
export class SessionWorkerLostError extends PyvisorError {
  readonly sessionId: string;
  readonly workerId: string;
  readonly reason: SessionWorkerLostReason;
  constructor(sessionId: string, workerId: string, reason: SessionWorkerLostReason = 'crashed') {
    super('SESSION_WORKER_LOST', `Session "${sessionId}" lost its Python state: ${lostBecause(workerId, reason)}; the session starts fresh on its next request`);
    this.sessionId = sessionId;
    this.workerId = workerId;
    this.reason = reason;
  }
}

export class SupervisorEscalationError extends PyvisorError {
  readonly supervisorId: string;
  readonly restarts: number;
  readonly windowMs: number;
  constructor(supervisorId: string, restarts: number, windowMs: number, options?: { cause?: unknown }) {
    super('ESCALATED', `Supervisor ${supervisorId} escalated: more than ${restarts} restarts within ${windowMs} ms`, options);
    this.supervisorId = supervisorId;
    this.restarts = restarts;
    this.windowMs = windowMs;
  }
}

/** WorkerStartError's workerId when no worker was started yet (the interpreter cannot be used at all). */
export const NO_WORKER = '-';

export class WorkerStartError extends PyvisorError {
  readonly workerId: string;
  readonly python: string;
  /** What the interpreter printed before it failed (e.g. a traceback), if anything. */
  readonly output: string;
  constructor(workerId: string, python: string, reason: string, output = '', options?: { cause?: unknown }) {
    // '-': the interpreter was found wanting before any worker existed (src/channel/python.ts).
    const who = workerId === NO_WORKER ? 'No worker could start' : `Worker ${workerId} could not start`;
    super('WORKER_START_FAILED', `${who} with interpreter "${python}": ${reason}${output ? `\n${output}` : ''}`, options);
    this.workerId = workerId;
    this.python = python;
    this.output = output;
  }
}

export class AbortError extends PyvisorError {
  constructor(reason?: unknown) {
    super('ABORTED', `Aborted${reason !== undefined ? `: ${reason instanceof Error ? reason.message : String(reason)}` : ''}`, { cause: reason });
  }
}

export class InvalidOptionError extends PyvisorError {
  readonly option: string;
  constructor(option: string, message: string) {
    super('INVALID_OPTION', `Invalid option "${option}": ${message}`);
    this.option = option;
  }
}

/** No live host in the cluster serves the pool. */
export class HostUnavailableError extends PyvisorError {
  readonly pool: string;
  readonly detail: string;
  constructor(pool: string, detail = '', options?: { cause?: unknown }) {
    super('HOST_UNAVAILABLE', `No live host serves pool "${pool}"${detail ? `: ${detail}` : ''}`, options);
    this.pool = pool;
    this.detail = detail;
  }
}

// ---------------------------------------------------------------------------------------------
// The wire form
// ---------------------------------------------------------------------------------------------

/** A cause that was not a PyvisorError: only its name and message travel. */
export interface WireCause {
  message: string;
  name?: string;
}

/**
 * An error as plain data: strings, numbers, booleans, null, arrays and plain objects only,
 * never undefined or a class instance, so it survives JSON and MessagePack unchanged.
 */
export interface WireError {
  code: PyvisorErrorCode;
  message: string;
  /** The class's own public fields (see `ERROR_CLASSES`); absent when it has none. */
  fields?: Record<string, unknown>;
  cause?: WireError | WireCause;
}

/** How deep a cause chain travels; deeper causes are left behind. */
export const MAX_CAUSE_DEPTH = 16;

/** How one field travels: its type on the wire, which decides its check and its default. */
type FieldKind =
  | 'string'
  | 'number'
  | 'boolean'
  | 'string?'
  | 'number?'
  | 'string|null'
  | 'number|null'
  | 'string[]'
  | 'record?'
  | readonly string[]; // one of these strings (a closed union such as SessionWorkerLostReason)

/** The kind a field of type T must be declared with (never: that type cannot travel). */
type KindOf<T> =
  [T] extends [string] ? (string extends T ? 'string' : readonly T[])
  : [T] extends [number] ? 'number'
  : [T] extends [boolean] ? 'boolean'
  : [T] extends [string | undefined] ? 'string?'
  : [T] extends [number | undefined] ? 'number?'
  : [T] extends [string | null] ? 'string|null'
  : [T] extends [number | null] ? 'number|null'
  : [T] extends [readonly string[]] ? 'string[]'
  : [T] extends [Record<string, unknown> | undefined] ? 'record?'
  : never;

/** The public fields a subclass adds to PyvisorError: exactly what travels in `fields`. */
type OwnKeys<E> = Exclude<keyof E, keyof PyvisorError>;

/** Every own field, each with the kind its type requires: a field left out does not compile. */
type Schema<E> = { readonly [K in OwnKeys<E>]-?: KindOf<E[K]> };

/** A PyvisorError subclass (its constructor), as `ERROR_CLASSES` holds them. */
export type PyvisorErrorClass<E extends PyvisorError = PyvisorError> = abstract new (...args: any[]) => E;

interface Codec {
  readonly type: PyvisorErrorClass;
  readonly schema: Readonly<Record<string, FieldKind>>;
  /** A fresh instance from validated fields; `fromWire` then sets the exact message and cause. */
  rebuild(fields: Record<string, unknown>): PyvisorError;
}

function codec<E extends PyvisorError>(
  type: PyvisorErrorClass<E>,
  schema: Schema<E>,
  rebuild: (fields: { [K in OwnKeys<E>]: E[K] }) => E,
): Codec {
  return { type, schema: schema as Readonly<Record<string, FieldKind>>, rebuild: rebuild as (fields: Record<string, unknown>) => PyvisorError };
}

/** The one code → class table: each class, the fields that travel, and how to rebuild it. */
const CODECS: { readonly [C in PyvisorErrorCode]: Codec } = {
  POOL_TIMEOUT: codec(PoolTimeoutError, { timeoutMs: 'number' }, (f) => new PoolTimeoutError(f.timeoutMs)),
  POOL_SATURATED: codec(PoolSaturatedError, { maxQueue: 'number' }, (f) => new PoolSaturatedError(f.maxQueue)),
  REQUEST_TIMEOUT: codec(
    RequestTimeoutError,
    { timeoutMs: 'number', command: 'string', workerId: 'string?' },
    (f) => new RequestTimeoutError(f.command, f.timeoutMs, f.workerId),
  ),
  WORKER_CRASHED: codec(
    WorkerCrashedError,
    { workerId: 'string', pid: 'number?', exitCode: 'number|null', signal: 'string|null', stderrTail: 'string[]', poison: 'boolean' },
    (f) => new WorkerCrashedError(f.workerId, f.pid, { code: f.exitCode, signal: f.signal, stderrTail: f.stderrTail }, undefined, { poison: f.poison }),
  ),
  PYTHON_ERROR: codec(
    PythonError,
    { pythonType: 'string', traceback: 'string', command: 'string?', details: 'record?', status: 'number?', retryAfter: 'number?' },
    (f) => new PythonError(f.pythonType, '', f.traceback, f.command, f.details),
  ),
  PROTOCOL_ERROR: codec(ProtocolError, {}, () => new ProtocolError('')),
  NOT_SERIALIZABLE: codec(SerializationError, { path: 'string' }, (f) => new SerializationError(f.path, 'a value')),
  POOL_CLOSED: codec(PoolClosedError, {}, () => new PoolClosedError()),
  SESSION_NOT_FOUND: codec(SessionNotFoundError, { sessionId: 'string' }, (f) => new SessionNotFoundError(f.sessionId)),
  SESSION_WORKER_LOST: codec(
    SessionWorkerLostError,
    { sessionId: 'string', workerId: 'string', reason: SESSION_WORKER_LOST_REASONS },
    (f) => new SessionWorkerLostError(f.sessionId, f.workerId, f.reason),
  ),
  ESCALATED: codec(
    SupervisorEscalationError,
    { supervisorId: 'string', restarts: 'number', windowMs: 'number' },
    (f) => new SupervisorEscalationError(f.supervisorId, f.restarts, f.windowMs),
  ),
  WORKER_START_FAILED: codec(
    WorkerStartError,
    { workerId: 'string', python: 'string', output: 'string' },
    (f) => new WorkerStartError(f.workerId, f.python, '', f.output),
  ),
  ABORTED: codec(AbortError, {}, () => new AbortError()),
  INVALID_OPTION: codec(InvalidOptionError, { option: 'string' }, (f) => new InvalidOptionError(f.option, '')),
  HOST_UNAVAILABLE: codec(HostUnavailableError, { pool: 'string', detail: 'string' }, (f) => new HostUnavailableError(f.pool, f.detail)),
};

/** The class for each code, derived from the table above (read-only). */
export const ERROR_CLASSES: { readonly [C in PyvisorErrorCode]: PyvisorErrorClass } = Object.freeze(
  Object.fromEntries(ERROR_CODES.map((code) => [code, CODECS[code].type])) as { [C in PyvisorErrorCode]: PyvisorErrorClass },
);

// --- toWire ----------------------------------------------------------------------------------

type Obj = Record<string, unknown>;

function isObject(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null;
}

/** An Error, including one from another realm (where `instanceof Error` is false). */
function isErrorLike(value: unknown): value is { name?: unknown; message: string } {
  return value instanceof Error || (isObject(value) && typeof value.message === 'string');
}

/** A PyvisorError, or one from another copy of pyvisor: its code and class name agree with ours. */
function pyvisorCode(value: unknown): PyvisorErrorCode | undefined {
  if (value instanceof PyvisorError && isErrorCode(value.code)) return value.code;
  if (!isErrorLike(value)) return undefined;
  const code = (value as Obj).code;
  return isErrorCode(code) && value.name === CODECS[code].type.name ? code : undefined;
}

function safeString(value: unknown): string {
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

function wireNumber(value: number): number | null {
  return Number.isFinite(value) ? value : null;
}

/** One field's wire value, or undefined to leave it out (absent, or not of its kind). */
function encodeField(kind: FieldKind, value: unknown): unknown {
  if (typeof kind !== 'string') return typeof value === 'string' && kind.includes(value) ? value : undefined;
  switch (kind) {
    case 'string':
    case 'string?':
      return typeof value === 'string' ? value : undefined;
    case 'string|null':
      return typeof value === 'string' || value === null ? value : undefined;
    case 'number':
    case 'number?':
      return typeof value === 'number' ? wireNumber(value) : undefined;
    case 'number|null':
      return typeof value === 'number' ? wireNumber(value) : value === null ? null : undefined;
    case 'boolean':
      return typeof value === 'boolean' ? value : undefined;
    case 'string[]':
      return Array.isArray(value) ? value.map((line) => (typeof line === 'string' ? line : safeString(line))) : undefined;
    case 'record?':
      return isObject(value) ? value : undefined;
  }
}

function plainCause(value: unknown): WireCause {
  if (isErrorLike(value)) {
    const name = typeof value.name === 'string' ? value.name : undefined;
    return name === undefined ? { message: value.message } : { name, message: value.message };
  }
  return { message: safeString(value) };
}

function encode(error: PyvisorError | Obj, code: PyvisorErrorCode, seen: Set<unknown>, depth: number): WireError {
  seen.add(error);
  const { schema } = CODECS[code];
  const wire: WireError = { code, message: safeString((error as { message: unknown }).message) };
  const keys = Object.keys(schema);
  if (keys.length) {
    const fields: Obj = {};
    for (const key of keys) {
      const value = encodeField(schema[key]!, (error as Obj)[key]);
      if (value !== undefined) fields[key] = value;
    }
    wire.fields = fields;
  }
  const cause = (error as { cause?: unknown }).cause;
  if (cause !== undefined && !seen.has(cause) && depth < MAX_CAUSE_DEPTH) {
    const causeCode = pyvisorCode(cause);
    wire.cause = causeCode ? encode(cause as PyvisorError, causeCode, seen, depth + 1) : plainCause(cause);
  }
  return wire;
}

/**
 * Any thrown value as a WireError (plain data). A PyvisorError keeps its code, exact message,
 * fields and cause chain; anything else becomes PROTOCOL_ERROR "unexpected error: ..." with
 * the original as its cause, except the platform's AbortError, which becomes ABORTED (see the
 * comment at the top of this file). Never throws.
 */
export function toWire(error: unknown): WireError {
  try {
    const code = pyvisorCode(error);
    if (code) return encode(error as PyvisorError, code, new Set(), 0);
    if (isErrorLike(error) && error.name === 'AbortError') return toWire(new AbortError(error));
    const what = isErrorLike(error)
      ? `${typeof error.name === 'string' && error.name && error.name !== 'Error' ? `${error.name}: ` : ''}${error.message}`
      : safeString(error);
    return toWire(new ProtocolError(`unexpected error: ${what}`, { cause: error }));
  } catch {
    // A hostile value (a throwing getter, a revoked proxy): say so rather than throw.
    return { code: 'PROTOCOL_ERROR', message: 'unexpected error: a thrown value that could not be read' };
  }
}

// --- fromWire --------------------------------------------------------------------------------

/** Thrown inside fromWire only, caught there: what was wrong with the wire value. */
class Malformed {
  constructor(readonly what: string) {}
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'string': return `a string (${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)})`;
    case 'number': return `a number (${value})`;
    case 'boolean': return `a boolean (${value})`;
    case 'object': return 'an object';
    default: return `a ${typeof value}`;
  }
}

function decodeField(key: string, kind: FieldKind, present: boolean, value: unknown): unknown {
  const bad = (expected: string) => new Malformed(`fields.${key} must be ${expected}, got ${describe(value)}`);
  if (typeof kind !== 'string') {
    if (!present) return kind[0];
    if (typeof value === 'string' && kind.includes(value)) return value;
    throw bad(`one of ${kind.map((v) => `"${v}"`).join(', ')}`);
  }
  switch (kind) {
    case 'string':
      if (!present) return '';
      if (typeof value === 'string') return value;
      throw bad('a string');
    case 'string?':
      if (!present || value === null) return undefined;
      if (typeof value === 'string') return value;
      throw bad('a string or absent');
    case 'string|null':
      if (!present || value === null) return null;
      if (typeof value === 'string') return value;
      throw bad('a string or null');
    case 'number':
      if (!present) return 0;
      if (value === null) return Number.NaN; // a non-finite number travels as null
      if (typeof value === 'number') return value;
      throw bad('a number');
    case 'number?':
      if (!present || value === null) return undefined;
      if (typeof value === 'number') return value;
      throw bad('a number or absent');
    case 'number|null':
      if (!present || value === null) return null;
      if (typeof value === 'number') return value;
      throw bad('a number or null');
    case 'boolean':
      if (!present) return false;
      if (typeof value === 'boolean') return value;
      throw bad('a boolean');
    case 'string[]':
      if (!present) return [];
      if (Array.isArray(value) && value.every((line) => typeof line === 'string')) return [...value];
      throw bad('an array of strings');
    case 'record?':
      if (!present || value === null) return undefined;
      if (isObject(value)) return value;
      throw bad('a map or absent');
  }
}

/** Replace what the constructor wrote with what travelled, as Error itself defines it. */
function setOwn(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: false, configurable: true });
}

const BUILTIN_ERRORS: Readonly<Record<string, ErrorConstructor>> = {
  TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError,
};

function rebuildPlain(cause: Obj): Error {
  if (typeof cause.message !== 'string') throw new Malformed(`"message" must be a string, got ${describe(cause.message)}`);
  if (cause.name !== undefined && typeof cause.name !== 'string') throw new Malformed(`"name" must be a string, got ${describe(cause.name)}`);
  const name = cause.name as string | undefined;
  const error = new (name !== undefined && Object.hasOwn(BUILTIN_ERRORS, name) ? BUILTIN_ERRORS[name]! : Error)(cause.message);
  if (name !== undefined && name !== error.name) error.name = name;
  return error;
}

function rebuildCause(cause: unknown, depth: number): unknown {
  if (depth > MAX_CAUSE_DEPTH) return new ProtocolError(`invalid wire error: cause chain deeper than ${MAX_CAUSE_DEPTH} levels; the rest was dropped`);
  if (!isObject(cause) || Array.isArray(cause)) return new ProtocolError(`invalid wire error: a cause must be an object, got ${describe(cause)}`);
  if ('code' in cause) return decode(cause, depth);
  try {
    return rebuildPlain(cause);
  } catch (error) {
    if (error instanceof Malformed) return new ProtocolError(`invalid wire error: cause ${error.what}`);
    throw error;
  }
}

function quote(text: string): string {
  return JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}…` : text);
}

function decode(wire: unknown, depth: number): PyvisorError {
  const carried: string[] = []; // what the value did carry, to quote in a ProtocolError
  try {
    if (!isObject(wire) || Array.isArray(wire)) throw new Malformed(`expected an object, got ${describe(wire)}`);
    const { code, message } = wire;
    if (typeof message === 'string') carried.push(`message ${quote(message)}`);
    if (typeof code !== 'string') throw new Malformed(`"code" must be a string, got ${describe(code)}`);
    if (!isErrorCode(code)) throw new Malformed(`unknown code ${quote(code)}`);
    carried.unshift(`code ${code}`);
    if (typeof message !== 'string') throw new Malformed(`"message" must be a string, got ${describe(message)}`);
    const fields = wire.fields ?? {};
    if (!isObject(fields) || Array.isArray(fields)) throw new Malformed(`"fields" must be an object, got ${describe(fields)}`);

    const { schema, rebuild } = CODECS[code];
    const values: Obj = {};
    for (const key of Object.keys(schema)) {
      const present = Object.hasOwn(fields, key) && fields[key] !== undefined;
      values[key] = decodeField(key, schema[key]!, present, present ? fields[key] : undefined);
    }
    const error = rebuild(values);
    // The fields and message are what travelled, whatever the constructor would have made of
    // them. (V8 formats `stack` on first read, so its first line shows this message too.)
    for (const key of Object.keys(values)) (error as unknown as Obj)[key] = values[key];
    setOwn(error, 'message', message);
    if (wire.cause !== undefined) setOwn(error, 'cause', rebuildCause(wire.cause, depth + 1));
    return error;
  } catch (error) {
    if (!(error instanceof Malformed)) throw error;
    const context = carried.length ? ` (${carried.join(', ')})` : '';
    return new ProtocolError(`invalid wire error: ${depth > 0 ? 'cause ' : ''}${error.what}${context}`);
  }
}

/**
 * The PyvisorError a WireError stands for: the class for its code (so `instanceof` works
 * again), the exact message, every field, and the cause chain (a wire cause → its class; a
 * {name, message} cause → an Error of that name, a built-in class when the name is one).
 * Never throws: anything malformed yields a ProtocolError naming what was wrong.
 */
export function fromWire(wire: WireError): PyvisorError {
  try {
    return decode(wire, 0);
  } catch {
    return new ProtocolError('invalid wire error: a value that could not be read');
  }
}
