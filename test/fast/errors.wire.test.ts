/**
 * Errors as data (src/errors.ts): every PyvisorError survives toWire → JSON → fromWire with its
 * class, code, name, exact message, every field and its cause chain; the wire form is plain
 * data; every code has a class; malformed wire values and foreign throwables become
 * ProtocolErrors instead of throwing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  AbortError,
  ERROR_CLASSES,
  ERROR_CODES,
  HostUnavailableError,
  InvalidOptionError,
  MAX_CAUSE_DEPTH,
  PoolClosedError,
  PoolSaturatedError,
  PoolTimeoutError,
  ProtocolError,
  PyvisorError,
  PythonError,
  RequestTimeoutError,
  SerializationError,
  SESSION_WORKER_LOST_REASONS,
  SessionNotFoundError,
  SessionWorkerLostError,
  SupervisorEscalationError,
  WorkerCrashedError,
  WorkerStartError,
  fromWire,
  toWire,
  type WireError,
} from '../../src/errors.js';

type Ctor = abstract new (...args: any[]) => Error;

/** toWire → JSON text → fromWire, as an error crossing NATS or a pipe would. */
function roundTrip(error: unknown): { wire: WireError; back: PyvisorError } {
  const wire = toWire(error);
  const back = fromWire(JSON.parse(JSON.stringify(wire)) as WireError);
  return { wire, back };
}

/** The own public fields of an instance: what `fields` must hold (undefined ones stay home). */
function ownFields(error: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(error)) if (key !== 'code' && key !== 'name' && value !== undefined) out[key] = value;
  return out;
}

/** The same error: class, code, name, message, every own field; then the same for the causes. */
function assertSame(back: unknown, original: unknown, path = 'error'): void {
  if (original === undefined) {
    assert.is(back, undefined, `${path}: no cause expected`);
    return;
  }
  assert.ok(back instanceof Error, `${path}: not an Error`);
  const b = back as Error & Record<string, unknown>;
  const o = original as Error & Record<string, unknown>;
  if (o instanceof PyvisorError) {
    assert.ok(b instanceof (o.constructor as Ctor), `${path}: ${b.constructor.name} is not a ${o.constructor.name}`);
    assert.is(b.constructor, o.constructor, `${path}: exactly the same class`);
    assert.is(b.code, o.code, `${path}.code`);
    assert.equal(Object.keys(b).sort(), Object.keys(o).sort(), `${path}: the same own keys`);
    for (const key of Object.keys(o)) assert.equal(b[key], o[key], `${path}.${key}`);
  }
  assert.is(b.name, o.name, `${path}.name`);
  assert.is(b.message, o.message, `${path}.message`);
  assert.ok(String(b.stack).startsWith(`${b.name}: ${b.message}`) || (!b.message && String(b.stack).startsWith(b.name)), `${path}.stack shows the message`);
  const oc = o.cause;
  if (oc === undefined) assert.is(b.cause, undefined, `${path}.cause`);
  else if (oc instanceof Error) assertSame(b.cause, oc, `${path}.cause`);
  else {
    // A non-Error cause (an abort reason) travels as its text.
    assert.instance(b.cause, Error, `${path}.cause`);
    assert.is((b.cause as Error).message, String(oc), `${path}.cause.message`);
  }
}

/** The full check for one class: fields exactly as named, then the round trip. */
function check(error: PyvisorError, cls: Ctor, code: string, fields: string[]): PyvisorError {
  assert.instance(error, cls);
  assert.is(error.code, code);
  const { wire, back } = roundTrip(error);
  assert.is(wire.code, code);
  assert.is(wire.message, error.message);
  const own = ownFields(error);
  assert.equal(Object.keys(own).sort(), [...fields].sort(), `${cls.name}'s own fields are ${fields.join(', ')}`);
  if (fields.length) assert.equal(wire.fields, own, 'fields holds exactly the own public fields');
  else assert.is(wire.fields, undefined, 'no fields for a class without any');
  assertSame(back, error);
  return back;
}

const spawnFailure = Object.assign(new Error('spawn /opt/py/bin/python3 ENOENT'), { code: 'ENOENT', errno: -2, syscall: 'spawn' });

test('PoolTimeoutError round-trips (with a cause)', () => {
  const cause = new SessionWorkerLostError('s-1', 'worker_2', 'recycled');
  const error = new PoolTimeoutError(5000, '3 others waiting, 1 workers still starting', { cause });
  check(error, PoolTimeoutError, 'POOL_TIMEOUT', ['timeoutMs']);
});

test('PoolSaturatedError round-trips', () => {
  check(new PoolSaturatedError(1000), PoolSaturatedError, 'POOL_SATURATED', ['maxQueue']);
});

test('RequestTimeoutError round-trips, with and without a worker id', () => {
  check(new RequestTimeoutError('predict', 30_000, 'worker_3'), RequestTimeoutError, 'REQUEST_TIMEOUT', ['timeoutMs', 'command', 'workerId']);
  const back = check(new RequestTimeoutError('predict', 30_000), RequestTimeoutError, 'REQUEST_TIMEOUT', ['timeoutMs', 'command']) as RequestTimeoutError;
  assert.ok(Object.hasOwn(back, 'workerId') && back.workerId === undefined, 'an undefined field comes back undefined');
});

test('WorkerCrashedError round-trips: signal, exit code, stderr tail, poison, cause', () => {
  const exit = { code: null, signal: 'SIGKILL', stderrTail: ['Traceback (most recent call last):', '  File "handlers.py", line 9', 'MemoryError'] };
  const first = new WorkerCrashedError('worker_1', 4242, exit);
  const poison = new WorkerCrashedError('worker_2', 4243, exit, undefined, { poison: true, cause: first });
  assert.is(first.poison, false);
  assert.is(poison.poison, true);
  assert.match(poison.message, /killed by SIGKILL/);
  assert.match(poison.message, /same request killed two workers and is not retried/);
  assert.not.match(first.message, /poison/);
  const fields = ['workerId', 'pid', 'exitCode', 'signal', 'stderrTail', 'poison'];
  check(poison, WorkerCrashedError, 'WORKER_CRASHED', fields);
  check(new WorkerCrashedError('worker_4', 99, { code: 3, signal: null, stderrTail: [] }), WorkerCrashedError, 'WORKER_CRASHED', fields);
  // No pid (died before spawn reported one), a custom reason in the message: still the same.
  const noPid = new WorkerCrashedError('worker_5', undefined, { code: null, signal: null, stderrTail: [] }, 'did not answer a health check within 5000 ms');
  const back = check(noPid, WorkerCrashedError, 'WORKER_CRASHED', ['workerId', 'exitCode', 'signal', 'stderrTail', 'poison']) as WorkerCrashedError;
  assert.is(back.pid, undefined);
  assert.is(back.message, 'Worker worker_5 (pid ?) did not answer a health check within 5000 ms');
});

test('PythonError round-trips: type, traceback, command; message exactly as sent', () => {
  const traceback = 'Traceback (most recent call last):\n  File "h.py", line 3, in divide\n    return a / b\nZeroDivisionError: division by zero\n';
  const back = check(new PythonError('ZeroDivisionError', 'division by zero', traceback, 'divide'), PythonError, 'PYTHON_ERROR', ['pythonType', 'traceback', 'command']);
  assert.is(back.message, 'ZeroDivisionError: division by zero', 'not formatted a second time');
  check(new PythonError('KeyError', "'x'"), PythonError, 'PYTHON_ERROR', ['pythonType', 'traceback']);
});

test('ProtocolError round-trips (with a plain Error cause)', () => {
  const error = new ProtocolError('invalid frame: unexpected end of buffer', { cause: new RangeError('offset 12 is out of bounds') });
  const back = check(error, ProtocolError, 'PROTOCOL_ERROR', []);
  assert.instance(back.cause, RangeError, 'a built-in error class comes back as itself');
});

test('SerializationError round-trips', () => {
  check(new SerializationError('args.items[3]', 'a function'), SerializationError, 'NOT_SERIALIZABLE', ['path']);
});

test('PoolClosedError round-trips', () => {
  check(new PoolClosedError('the pool shut down after its supervisor escalated'), PoolClosedError, 'POOL_CLOSED', []);
});

test('SessionNotFoundError round-trips', () => {
  check(new SessionNotFoundError('user-42'), SessionNotFoundError, 'SESSION_NOT_FOUND', ['sessionId']);
});

test('SessionWorkerLostError round-trips for every reason; the message names session, worker and reason', () => {
  const words: Record<string, RegExp> = { crashed: /crashed/, recycled: /recycled/, timeout: /deadline/, host_lost: /host .* was lost/, removed: /removed/ };
  for (const reason of SESSION_WORKER_LOST_REASONS) {
    const error = new SessionWorkerLostError('user-42', 'worker_7', reason);
    assert.is(error.reason, reason);
    assert.match(error.message, '"user-42"');
    assert.match(error.message, 'worker_7');
    assert.match(error.message, words[reason]!);
    assert.not.match(error.message, 'strict');
    check(error, SessionWorkerLostError, 'SESSION_WORKER_LOST', ['sessionId', 'workerId', 'reason']);
  }
  assert.is(new SessionWorkerLostError('s', 'w').reason, 'crashed', 'the old two-argument form still works');
});

test('SupervisorEscalationError round-trips with its cause chain (WorkerStartError → spawn Error)', () => {
  const start = new WorkerStartError('worker_1', '/opt/py/bin/python3', 'spawn failed (ENOENT)', '', { cause: spawnFailure });
  const error = new SupervisorEscalationError('workers', 3, 5000, { cause: start });
  const back = check(error, SupervisorEscalationError, 'ESCALATED', ['supervisorId', 'restarts', 'windowMs']);
  const cause = back.cause as WorkerStartError;
  assert.instance(cause, WorkerStartError);
  assert.is(cause.python, '/opt/py/bin/python3');
  assert.is((cause.cause as Error).message, 'spawn /opt/py/bin/python3 ENOENT');
  assert.is((cause.cause as Record<string, unknown>).code, undefined, 'a foreign cause carries its name and message only');
});

test('WorkerStartError round-trips with the interpreter output', () => {
  const output = 'Traceback (most recent call last):\n  File "handlers.py", line 1\n    def (:\nSyntaxError: invalid syntax';
  check(new WorkerStartError('worker_2', 'python3', 'exited with code 1 during start', output), WorkerStartError, 'WORKER_START_FAILED', ['workerId', 'python', 'output']);
});

test('AbortError round-trips with an Error reason, a string reason, no reason', () => {
  const dom = AbortSignal.abort().reason as Error; // DOMException, name AbortError
  const back = check(new AbortError(dom), AbortError, 'ABORTED', []);
  assert.is((back.cause as Error).name, 'AbortError');
  const text = check(new AbortError('user pressed stop'), AbortError, 'ABORTED', []);
  assert.is(text.message, 'Aborted: user pressed stop');
  assert.is((text.cause as Error).message, 'user pressed stop');
  const bare = check(new AbortError(), AbortError, 'ABORTED', []);
  assert.is(bare.cause, undefined);
});

test('InvalidOptionError round-trips', () => {
  check(new InvalidOptionError('poolSize', 'must be an integer >= 1, got 0'), InvalidOptionError, 'INVALID_OPTION', ['option']);
});

test('HostUnavailableError round-trips (with a cause); message names the pool', () => {
  const error = new HostUnavailableError('dspy', 'no heartbeat from any host for 15000 ms', { cause: new Error('503 no responders') });
  assert.is(error.message, 'No live host serves pool "dspy": no heartbeat from any host for 15000 ms');
  assert.is(new HostUnavailableError('dspy').message, 'No live host serves pool "dspy"');
  check(error, HostUnavailableError, 'HOST_UNAVAILABLE', ['pool', 'detail']);
});

test('a cause on a class whose constructor takes none still travels', () => {
  const error = new PythonError('RuntimeError', 'boom');
  Object.defineProperty(error, 'cause', { value: new PoolClosedError(), writable: true, configurable: true });
  check(error, PythonError, 'PYTHON_ERROR', ['pythonType', 'traceback']);
});

test('toWire output is plain data only (walked), for every class and a deep chain', () => {
  const samples: unknown[] = [
    new WorkerCrashedError('w', 1, { code: null, signal: 'SIGSEGV', stderrTail: ['a'] }, undefined, { poison: true, cause: new TypeError('x') }),
    new SupervisorEscalationError('root', 1, 1000, { cause: new WorkerStartError('w', 'py', 'r', 'out', { cause: spawnFailure }) }),
    new RequestTimeoutError('c', 1), new PythonError('E', 'm'), new AbortError(Symbol('why')), new AbortError({ any: 'object' }),
    new PoolTimeoutError(Infinity), new TypeError('not pyvisor'), 'a string', undefined, null, 42,
  ];
  const walk = (value: unknown, path: string): void => {
    if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
    if (typeof value === 'number') return assert.ok(Number.isFinite(value), `${path}: finite`);
    if (Array.isArray(value)) return value.forEach((v, i) => walk(v, `${path}[${i}]`));
    assert.is(typeof value, 'object', `${path}: ${typeof value} is not plain data`);
    assert.is(Object.getPrototypeOf(value), Object.prototype, `${path}: a plain object`);
    for (const [key, v] of Object.entries(value as object)) {
      assert.ok(v !== undefined, `${path}.${key} is undefined`);
      walk(v, `${path}.${key}`);
    }
  };
  for (const sample of samples) {
    const wire = toWire(sample);
    walk(wire, 'wire');
    assert.equal(JSON.parse(JSON.stringify(wire)), wire, 'JSON keeps it unchanged');
  }
});

test('every code has its class in the table, the class raises that code, no class serves two codes', () => {
  assert.is(new Set(ERROR_CODES).size, ERROR_CODES.length);
  assert.equal(Object.keys(ERROR_CLASSES).sort(), [...ERROR_CODES].sort());
  assert.is(new Set(Object.values(ERROR_CLASSES)).size, ERROR_CODES.length);
  for (const code of ERROR_CODES) {
    const cls = ERROR_CLASSES[code];
    assert.ok(typeof cls === 'function' && cls.prototype instanceof PyvisorError, `${code}: a PyvisorError subclass`);
    // Minimal wire (no fields at all): the right class, defaults for its fields.
    const back = fromWire({ code, message: `a ${code}` });
    assert.instance(back, cls, code);
    assert.is(back.code, code);
    assert.is(back.name, cls.name);
    assert.is(back.message, `a ${code}`);
  }
});

test('missing or partial fields take defaults', () => {
  const crashed = fromWire({ code: 'WORKER_CRASHED', message: 'Worker w died', fields: { workerId: 'w' } }) as WorkerCrashedError;
  assert.instance(crashed, WorkerCrashedError);
  assert.equal([crashed.workerId, crashed.pid, crashed.exitCode, crashed.signal, crashed.stderrTail, crashed.poison], ['w', undefined, null, null, [], false]);
  const lost = fromWire({ code: 'SESSION_WORKER_LOST', message: 'm' }) as SessionWorkerLostError;
  assert.equal([lost.sessionId, lost.workerId, lost.reason], ['', '', 'crashed']);
  const timeout = fromWire({ code: 'POOL_TIMEOUT', message: 'm', fields: { extra: 'from a newer peer' } }) as PoolTimeoutError;
  assert.is(timeout.timeoutMs, 0);
  assert.not.ok('extra' in timeout, 'unknown fields are ignored');
  const py = fromWire({ code: 'PYTHON_ERROR', message: 'ValueError: x', fields: { pythonType: 'ValueError', command: null } }) as PythonError;
  assert.equal([py.pythonType, py.traceback, py.command], ['ValueError', '', undefined]);
});

test('malformed wire values give a ProtocolError naming what was wrong, never a TypeError', () => {
  const cases: Array<[unknown, RegExp]> = [
    [null, /expected an object, got null/],
    [undefined, /expected an object, got undefined/],
    ['POOL_CLOSED', /expected an object, got a string/],
    [[{ code: 'POOL_CLOSED', message: 'x' }], /expected an object, got an array/],
    [{ message: 'no code here' }, /"code" must be a string, got undefined.*no code here/],
    [{ code: 'NOPE', message: 'from the future' }, /unknown code "NOPE".*from the future/],
    [{ code: 'POOL_CLOSED' }, /"message" must be a string, got undefined \(code POOL_CLOSED\)/],
    [{ code: 'POOL_CLOSED', message: 7 }, /"message" must be a string, got a number \(7\)/],
    [{ code: 'POOL_TIMEOUT', message: 'm', fields: 'timeoutMs=5' }, /"fields" must be an object/],
    [{ code: 'POOL_TIMEOUT', message: 'late', fields: { timeoutMs: '5000' } }, /fields\.timeoutMs must be a number, got a string.*code POOL_TIMEOUT.*"late"/],
    [{ code: 'WORKER_CRASHED', message: 'm', fields: { stderrTail: [1, 2] } }, /fields\.stderrTail must be an array of strings/],
    [{ code: 'SESSION_WORKER_LOST', message: 'm', fields: { reason: 'evicted' } }, /fields\.reason must be one of "crashed", .*"removed", got a string \("evicted"\)/],
  ];
  for (const [wire, expected] of cases) {
    let back: unknown;
    try {
      back = fromWire(wire as WireError);
    } catch (error) {
      assert.unreachable(`fromWire(${JSON.stringify(wire)}) threw ${error}`);
    }
    assert.instance(back, ProtocolError, JSON.stringify(wire) ?? String(wire));
    assert.is((back as ProtocolError).code, 'PROTOCOL_ERROR');
    assert.match((back as ProtocolError).message, /^invalid wire error: /);
    assert.match((back as ProtocolError).message, expected);
  }
  // A hostile object (a throwing getter) is still no throw.
  const hostile = { code: 'POOL_CLOSED', get message(): string { throw new Error('gotcha'); } };
  assert.instance(fromWire(hostile as unknown as WireError), ProtocolError);
});

test('a malformed cause keeps the error around it; the cause says what was wrong', () => {
  const back = fromWire({ code: 'POOL_CLOSED', message: 'Pool closed: x', cause: { code: 'NOPE', message: 'inner' } as never });
  assert.instance(back, PoolClosedError);
  assert.instance(back.cause, ProtocolError);
  assert.match((back.cause as Error).message, /invalid wire error: cause unknown code "NOPE"/);
  const numeric = fromWire({ code: 'POOL_CLOSED', message: 'm', cause: 42 as never });
  assert.instance(numeric, PoolClosedError);
  assert.match((numeric.cause as Error).message, /a cause must be an object, got a number/);
  const plain = fromWire({ code: 'POOL_CLOSED', message: 'm', cause: { name: 5 } as never });
  assert.match((plain.cause as Error).message, /cause "message" must be a string/);
});

test('cause chains: a cycle ends the chain, depth is bounded on both sides', () => {
  const a = new ProtocolError('a');
  const b = new ProtocolError('b', { cause: a });
  Object.defineProperty(a, 'cause', { value: b, writable: true, configurable: true });
  const wire = toWire(b);
  assert.is((wire.cause as WireError).message, 'a');
  assert.is((wire.cause as WireError).cause, undefined, 'the cycle back to b is not followed');

  let deep: Error = new Error('root cause');
  for (let i = 0; i < MAX_CAUSE_DEPTH + 10; i++) deep = new ProtocolError(`level ${i}`, { cause: deep });
  let depth = 0;
  for (let w: WireError | undefined = toWire(deep); w; w = w.cause as WireError | undefined) depth++;
  assert.is(depth, MAX_CAUSE_DEPTH + 1);

  let nested: WireError = { code: 'POOL_CLOSED', message: 'bottom' };
  for (let i = 0; i < 1000; i++) nested = { code: 'POOL_CLOSED', message: `level ${i}`, cause: nested };
  let e: unknown = fromWire(nested);
  let levels = 0;
  while (e instanceof PoolClosedError) { e = e.cause; levels++; }
  assert.is(levels, MAX_CAUSE_DEPTH + 1);
  assert.instance(e, ProtocolError);
  assert.match((e as Error).message, /deeper than/);
});

test('toWire of a non-Pyvisor throwable: PROTOCOL_ERROR "unexpected error", the original as cause', () => {
  const { wire, back } = roundTrip(new TypeError("Cannot read properties of undefined (reading 'id')"));
  assert.equal(wire, {
    code: 'PROTOCOL_ERROR',
    message: "unexpected error: TypeError: Cannot read properties of undefined (reading 'id')",
    cause: { name: 'TypeError', message: "Cannot read properties of undefined (reading 'id')" },
  });
  assert.instance(back, ProtocolError);
  assert.instance(back.cause, TypeError);

  assert.equal(toWire('just a string'), { code: 'PROTOCOL_ERROR', message: 'unexpected error: just a string', cause: { message: 'just a string' } });
  assert.equal(toWire(new Error('plain')).message, 'unexpected error: plain');
  const named = roundTrip(Object.assign(new Error('custom'), { name: 'MyLibError' })).back;
  assert.is((named.cause as Error).name, 'MyLibError');
  assert.is(toWire(undefined).code, 'PROTOCOL_ERROR');
  const hostile = new Proxy({}, { get() { throw new Error('no'); }, getPrototypeOf() { throw new Error('no'); } });
  assert.is(toWire(hostile).code, 'PROTOCOL_ERROR', 'never throws');
});

test("toWire of the platform's AbortError (AbortSignal reason): ABORTED", () => {
  const reason = AbortSignal.abort().reason as Error;
  const { wire, back } = roundTrip(reason);
  assert.is(wire.code, 'ABORTED');
  assert.instance(back, AbortError);
  assert.is(back.message, `Aborted: ${reason.message}`);
  assert.is((back.cause as Error).name, 'AbortError');
});

test('an error from another copy of pyvisor (same code and class name, not instanceof) keeps its code and fields', () => {
  const foreign = Object.assign(new Error('Pool saturated: more than maxQueue=8 callers waiting for a worker'), { name: 'PoolSaturatedError', code: 'POOL_SATURATED', maxQueue: 8 });
  const { wire, back } = roundTrip(foreign);
  assert.equal(wire, { code: 'POOL_SATURATED', message: foreign.message, fields: { maxQueue: 8 } });
  assert.instance(back, PoolSaturatedError);
  assert.is((back as PoolSaturatedError).maxQueue, 8);
  // A Node system error whose code happens to be a string is not mistaken for one of ours.
  assert.is(toWire(spawnFailure).code, 'PROTOCOL_ERROR');
  // Nor an error that borrows one of our codes under another name.
  assert.is(toWire(Object.assign(new Error('x'), { code: 'ABORTED' })).code, 'PROTOCOL_ERROR');
});

test('the base class with a known code travels as that code, fields defaulted', () => {
  const { wire, back } = roundTrip(new PyvisorError('SESSION_WORKER_LOST', 'lost it'));
  assert.equal(wire, { code: 'SESSION_WORKER_LOST', message: 'lost it', fields: {} });
  assert.instance(back, SessionWorkerLostError);
  assert.is((back as SessionWorkerLostError).reason, 'crashed');
});

test('a non-finite number travels as null (JSON-safe) and comes back as NaN', () => {
  const { wire, back } = roundTrip(new PoolTimeoutError(Infinity));
  assert.equal(wire.fields, { timeoutMs: null });
  assert.ok(Number.isNaN((back as PoolTimeoutError).timeoutMs));
  assert.is(back.message, 'Pool timeout - all workers busy (no worker within Infinity ms)');
});

test.run();
