/**
 * Every error pyvisor raises is a PyvisorError with a stable `code`. Callers branch on
 * `code` (or `instanceof`), never on message text. Errors that wrap another failure keep it
 * as the standard `cause`.
 */
export type PyvisorErrorCode =
  | 'POOL_TIMEOUT'
  | 'POOL_SATURATED'
  | 'REQUEST_TIMEOUT'
  | 'WORKER_CRASHED'
  | 'PYTHON_ERROR'
  | 'PROTOCOL_ERROR'
  | 'NOT_SERIALIZABLE'
  | 'POOL_CLOSED'
  | 'SESSION_NOT_FOUND'
  | 'SESSION_WORKER_LOST'
  | 'ESCALATED'
  | 'WORKER_START_FAILED'
  | 'ABORTED'
  | 'INVALID_OPTION';

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

export class WorkerCrashedError extends PyvisorError {
  readonly workerId: string;
  readonly pid: number | undefined;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stderrTail: string[];
  constructor(workerId: string, pid: number | undefined, exit: ExitInfo, reason?: string) {
    const how = exit.signal ? `killed by ${exit.signal}` : `exited with code ${exit.code}`;
    const tail = exit.stderrTail.length ? `\nlast stderr lines:\n  ${exit.stderrTail.join('\n  ')}` : '';
    super('WORKER_CRASHED', `Worker ${workerId} (pid ${pid ?? '?'}) ${reason ?? how}${tail}`);
    this.workerId = workerId;
    this.pid = pid;
    this.exitCode = exit.code;
    this.signal = exit.signal;
    this.stderrTail = exit.stderrTail;
  }
}

export class PythonError extends PyvisorError {
  /** The Python exception class name, e.g. "ValueError". */
  readonly pythonType: string;
  readonly traceback: string;
  readonly command: string | undefined;
  constructor(pythonType: string, message: string, traceback = '', command?: string) {
    super('PYTHON_ERROR', `${pythonType}: ${message}`);
    this.pythonType = pythonType;
    this.traceback = traceback;
    this.command = command;
  }
}

export class ProtocolError extends PyvisorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PROTOCOL_ERROR', message, options);
  }
}

/** A value outside the wire types (DESIGN §4), refused before anything was sent. */
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

export class SessionWorkerLostError extends PyvisorError {
  readonly sessionId: string;
  readonly workerId: string;
  constructor(sessionId: string, workerId: string) {
    super('SESSION_WORKER_LOST', `Session "${sessionId}" is pinned (affinity 'strict') to ${workerId}, which died; its Python state is gone`);
    this.sessionId = sessionId;
    this.workerId = workerId;
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

export class WorkerStartError extends PyvisorError {
  readonly workerId: string;
  readonly python: string;
  /** What the interpreter printed before it failed (e.g. a traceback), if anything. */
  readonly output: string;
  constructor(workerId: string, python: string, reason: string, output = '', options?: { cause?: unknown }) {
    super('WORKER_START_FAILED', `Worker ${workerId} could not start with interpreter "${python}": ${reason}${output ? `\n${output}` : ''}`, options);
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
