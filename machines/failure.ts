/**
 * Failures as data. The machines decide on failures but never construct error classes (they
 * import nothing from src/): a failure is the wire form of a pyvisor error — `code`, `message`,
 * the class's fields, a cause — and src/errors.ts `fromWire` makes the class at the edge.
 */
export interface Failure {
  code: string;
  message: string;
  fields?: Record<string, unknown>;
  cause?: Failure | { message: string; name?: string };
}

/** How a process ended: the part of an exit a failure reports. */
export interface ExitInfo {
  code: number | null;
  signal: string | null;
  /** The last lines the process wrote to stderr, oldest first. */
  stderrTail: string[];
}

/** WORKER_CRASHED: the same text as src/errors.ts WorkerCrashedError. */
export function crashed(workerId: string, pid: number | null, exit: ExitInfo, reason?: string): Failure {
  const how = exit.signal ? `killed by ${exit.signal}` : `exited with code ${exit.code}`;
  const tail = exit.stderrTail.length ? `\nlast stderr lines:\n  ${exit.stderrTail.join('\n  ')}` : '';
  return {
    code: 'WORKER_CRASHED',
    message: `Worker ${workerId} (pid ${pid ?? '?'}) ${reason ?? how}${tail}`,
    fields: { workerId, pid, exitCode: exit.code, signal: exit.signal, stderrTail: exit.stderrTail, poison: false },
  };
}

/** WORKER_START_FAILED: the same text as src/errors.ts WorkerStartError. */
export function startFailed(workerId: string, python: string, reason: string, output = '', cause?: Failure): Failure {
  return {
    code: 'WORKER_START_FAILED',
    message: `Worker ${workerId} could not start with interpreter "${python}": ${reason}${output ? `\n${output}` : ''}`,
    fields: { workerId, python, output },
    ...(cause ? { cause } : {}),
  };
}

/** PYTHON_ERROR of a built-in command the machine itself sent (the health ping). */
export function pythonFailure(type: string, message: string, traceback: string, command: string): Failure {
  return { code: 'PYTHON_ERROR', message: `${type}: ${message}`, fields: { pythonType: type, traceback, command } };
}

/** ESCALATED: the supervisor gave up. The message leads with the root cause when there is one. */
export function escalated(supervisorId: string, restarts: number, windowMs: number, cause: Failure | null, repeatedStart = false): Failure {
  const budget = repeatedStart ? `the same start failure twice within ${windowMs} ms` : `more than ${restarts} restarts within ${windowMs} ms`;
  const root = cause ? rootCause(cause) : null;
  return {
    code: 'ESCALATED',
    message: root ? `${firstLine(root.message)} (supervisor ${supervisorId} gave up: ${budget})` : `Supervisor ${supervisorId} escalated: ${budget}`,
    fields: { supervisorId, restarts, windowMs },
    ...(cause ? { cause } : {}),
  };
}

/** The innermost failure of a chain: what actually went wrong. */
export function rootCause(failure: Failure): Failure {
  let at: Failure = failure;
  while (at.cause && 'code' in at.cause && at.code === 'ESCALATED') at = at.cause as Failure;
  return at;
}

function firstLine(text: string): string {
  const nl = text.indexOf('\n');
  return nl === -1 ? text : text.slice(0, nl);
}
