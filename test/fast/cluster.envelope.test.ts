/**
 * What crosses NATS (src/cluster/envelope.ts, src/cluster/subjects.ts, src/cluster/options.ts):
 * every message round-trips through the project's MessagePack codec, errors keep their class and
 * fields, malformed messages are refused with ProtocolError, oversized ones before they are sent,
 * and bad options throw InvalidOptionError naming the key.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encode } from '../../src/codec/encode.js';
import {
  decodeControl,
  decodeEnded,
  decodeHeartbeat,
  decodePlacement,
  decodeReply,
  decodeRequest,
  encodeAccept,
  encodeArgs,
  encodeChunk,
  encodeControl,
  encodeEnded,
  encodeError,
  encodeHeartbeat,
  encodeOk,
  encodePlacement,
  encodeReject,
  encodeRequest,
  type Heartbeat,
} from '../../src/cluster/envelope.js';
import { bucketName, sessionKey, sessionOfKey, subjects } from '../../src/cluster/subjects.js';
import { resolveAgentOptions, resolveClusterOptions } from '../../src/cluster/options.js';
import {
  HostUnavailableError,
  InvalidOptionError,
  ProtocolError,
  PythonError,
  SerializationError,
  SessionWorkerLostError,
  WorkerCrashedError,
} from '../../src/errors.js';

const BIG = 1024 * 1024;

test('a request round-trips, args decoded from their own encoding', () => {
  const args = { text: 'héllo', n: 42, big: 2n ** 60n, blob: Buffer.from([1, 2, 3]), list: [null, true, 1.5] };
  const data = encodeRequest(
    { cmd: 'run', args: encodeArgs(args, BIG), session: 's1', affinity: 'strict', idempotent: true, timeout: 1500, checkoutBy: 1_700_000_000_123, window: 8, place: { rev: 17, inc: 'abc', confirmed: true } },
    BIG,
  );
  const back = decodeRequest(data);
  assert.is(back.cmd, 'run');
  assert.equal(back.argsValue, args);
  assert.is(back.session, 's1');
  assert.is(back.affinity, 'strict');
  assert.is(back.idempotent, true);
  assert.is(back.timeout, 1500);
  assert.is(back.checkoutBy, 1_700_000_000_123, 'the checkout deadline travels as absolute epoch ms');
  assert.is(back.window, 8);
  assert.equal(back.place, { rev: 17, inc: 'abc', confirmed: true });
});

test('an anonymous execute request: defaults', () => {
  const back = decodeRequest(encodeRequest({ cmd: 'ping', args: encodeArgs(undefined, BIG), session: null, affinity: null, idempotent: false, timeout: 30000, checkoutBy: 1, window: 0, place: null }, BIG));
  assert.is(back.argsValue, null);
  assert.is(back.session, null);
  assert.is(back.affinity, null);
  assert.is(back.idempotent, false);
  assert.is(back.window, 0);
  assert.is(back.place, null);
});

test('args outside the wire types are refused before sending, naming the path from args', () => {
  try {
    encodeArgs({ items: [1, 2, () => 3] }, BIG);
    assert.unreachable();
  } catch (error) {
    assert.instance(error, SerializationError);
    assert.is((error as SerializationError).path, 'args.items[2]');
  }
});

test('a message over the server\'s max_payload is refused with NOT_SERIALIZABLE', () => {
  const args = encodeArgs('x'.repeat(2000), 10_000);
  assert.throws(() => encodeArgs('x'.repeat(2000), 1000), (e: unknown) => e instanceof SerializationError && /max_payload of 1000 bytes/.test((e as Error).message));
  assert.throws(() => encodeRequest({ cmd: 'c', args, session: null, affinity: null, idempotent: false, timeout: 1, checkoutBy: 1, window: 0, place: null }, 1500), (e: unknown) => e instanceof SerializationError);
  assert.throws(() => encodeOk('y'.repeat(5000), 4096), (e: unknown) => e instanceof SerializationError && (e as SerializationError).path === 'result');
  assert.throws(() => encodeChunk('y'.repeat(5000), 4096), (e: unknown) => e instanceof SerializationError && (e as SerializationError).path === 'chunk');
});

test('replies: accept, chunk, ok, reject', () => {
  assert.equal(decodeReply(encodeAccept('h1', 'i1')), { t: 'acc', host: 'h1', inc: 'i1' });
  assert.equal(decodeReply(encodeChunk({ token: 'a' }, BIG)), { t: 'chunk', chunk: { token: 'a' } });
  assert.equal(decodeReply(encodeOk(undefined, BIG)), { t: 'ok', value: null });
  assert.equal(decodeReply(encodeOk([1, 'two'], BIG)), { t: 'ok', value: [1, 'two'] });
  for (const why of ['leaving', 'stale', 'lost'] as const) assert.equal(decodeReply(encodeReject(why, 'h', 'i')), { t: 'rej', why, host: 'h', inc: 'i' });
});

test('errors cross as data: class, code and fields survive', () => {
  const cases = [
    new PythonError('ValueError', 'bad', 'Traceback...', 'cmd', { status: 429, retry_after: 2 }),
    new WorkerCrashedError('worker_1', 123, { code: null, signal: 'SIGKILL', stderrTail: ['boom'] }),
    new SessionWorkerLostError('s1', 'h1', 'host_lost'),
    new HostUnavailableError('qa', 'no host'),
  ];
  for (const error of cases) {
    const reply = decodeReply(encodeError(error));
    assert.is(reply.t, 'err');
    const back = (reply as { error: Error }).error;
    assert.instance(back, error.constructor as never);
    assert.is(back.message, error.message);
    assert.is((back as { code: string }).code, error.code);
  }
  const lost = (decodeReply(encodeError(new SessionWorkerLostError('s1', 'h1', 'host_lost'))) as { error: SessionWorkerLostError }).error;
  assert.is(lost.reason, 'host_lost');
  const py = (decodeReply(encodeError(cases[0])) as { error: PythonError }).error;
  assert.is(py.status, 429);
  assert.is(py.retryAfter, 2);
  // A thrown value that is not a PyvisorError still arrives coded.
  const odd = (decodeReply(encodeError(new TypeError('oops'))) as { error: Error & { code: string } }).error;
  assert.is(odd.code, 'PROTOCOL_ERROR');
});

test('control messages and the end reply', () => {
  for (const c of [{ t: 'cancel', rid: 'x.y.1' }, { t: 'ack', rid: 'x.y.2', n: 8 }, { t: 'end', session: 's', rev: 3 }] as const) {
    assert.equal(decodeControl(encodeControl(c)), c);
  }
  assert.is(decodeEnded(encodeEnded(2)), 2);
  assert.throws(() => decodeEnded(encodeError(new HostUnavailableError('p'))), (e: unknown) => e instanceof HostUnavailableError);
});

test('heartbeats round-trip; placements too', () => {
  const hb: Heartbeat = {
    host: 'h1', inc: 'i1', state: 'leaving', interval: 500, capacity: 8, inflight: 3, queue: 1, workers: 4, sessions: 12,
    stats: { activeSessions: 12, poolSize: 4, utilization: 0.5, healthyWorkers: 4, unhealthyWorkers: 0, busyWorkers: 2, overflowWorkers: 0, queueLength: 1, totalCommands: 100, totalErrors: 1, restarts: 0, latencyMs: { p50: 0.5, p99: 3 } },
    rows: [{ id: 'worker_1', state: 'busy', pid: 42, requests: 10, errors: 0, restarts: 0, sessions: 3, overflow: false, inflight: 1 }],
  };
  assert.equal(decodeHeartbeat(encodeHeartbeat(hb)), hb);
  assert.equal(decodePlacement(encodePlacement({ host: 'h2', inc: 'i9' })), { host: 'h2', inc: 'i9' });
});

test('malformed messages are refused with ProtocolError', () => {
  const bad = [
    () => decodeReply(Buffer.from([0xc1])),
    () => decodeReply(encode([1, 2])),
    () => decodeReply(encode({ t: 'what' })),
    () => decodeReply(encode({ t: 'rej', why: 'bored', host: 'h', inc: 'i' })),
    () => decodeRequest(encode({ v: 99, cmd: 'x' })),
    () => decodeRequest(encode({ v: 1, cmd: 'x', args: 'not bytes', timeout: 1, checkoutBy: 1 })),
    () => decodeRequest(encode({ v: 1, cmd: 'x', args: encodeArgs(null, BIG), timeout: 'soon', checkoutBy: 1 })),
    () => decodeRequest(encode({ v: 1, cmd: 'x', args: encodeArgs(null, BIG), timeout: 1, checkoutBy: 1, affinity: 'sticky' })),
    () => decodeControl(encode({ t: 'ack', rid: 'r' })),
    () => decodeHeartbeat(encode({ host: 'h', inc: 'i', state: 'sleeping' })),
    () => decodePlacement(encode({ host: 1 })),
  ];
  for (const [i, fn] of bad.entries()) assert.throws(fn, (e: unknown) => e instanceof ProtocolError, `case ${i}`);
});

test('subjects, bucket and session keys', () => {
  const s = subjects('qa');
  assert.is(s.anonymous, 'pyvisor.qa.req');
  assert.is(s.queue, 'pyvisor.qa.agents');
  assert.is(s.heartbeat, 'pyvisor.qa.hb');
  assert.is(s.hostRequests('h-1'), 'pyvisor.qa.host.h-1.req');
  assert.is(s.hostControl('h-1'), 'pyvisor.qa.host.h-1.ctl');
  assert.is(s.inbox('fe1'), 'pyvisor.qa.fe.fe1');
  assert.is(bucketName('qa'), 'pyvisor-qa-sessions');
  assert.is(sessionKey('user_42'), 's.user_42');
  for (const id of ['user_42', 'a.b', 'with space', 'ünï', '*', '>', 's.x', 'b.y', 'x'.repeat(300)]) {
    const key = sessionKey(id);
    assert.ok(/^[-/_=.A-Za-z0-9]+$/.test(key), `key of ${JSON.stringify(id)} is a valid KV key: ${key}`);
    assert.is(sessionOfKey(key), id);
  }
  assert.is.not(sessionKey('s.x'), sessionKey('x'));
});

test('cluster pool options: defaults, and each bad key named', () => {
  assert.equal(resolveClusterOptions({ servers: 'nats://127.0.0.1:4222', pool: 'qa' }), {
    servers: ['nats://127.0.0.1:4222'], pool: 'qa', checkoutTimeout: 5000, requestTimeout: 30000, hostTimeout: 3000,
  });
  const bad: Array<[unknown, string]> = [
    [{ pool: 'qa' }, 'servers'],
    [{ servers: [], pool: 'qa' }, 'servers'],
    [{ servers: 'nats://127.0.0.1:4222' }, 'pool'],
    [{ servers: 'nats://127.0.0.1:4222', pool: 'a.b' }, 'pool'],
    [{ servers: 'nats://127.0.0.1:4222', pool: 'qa', hostTimeout: 0 }, 'hostTimeout'],
    [{ servers: 'nats://127.0.0.1:4222', pool: 'qa', checkoutTimeout: -1 }, 'checkoutTimeout'],
    [{ servers: 'nats://127.0.0.1:4222', pool: 'qa', requestTimeout: Number.NaN }, 'requestTimeout'],
    [{ servers: 'nats://127.0.0.1:4222', pool: 'qa', hosttimeout: 5 }, 'hosttimeout'],
  ];
  for (const [options, key] of bad) {
    try {
      resolveClusterOptions(options as never);
      assert.unreachable(key);
    } catch (error) {
      assert.instance(error, InvalidOptionError);
      assert.is((error as InvalidOptionError).option, key);
    }
  }
});

test('agent options: cluster keys taken, the rest left for the local pool', () => {
  const r = resolveAgentOptions({ servers: ['nats://127.0.0.1:1', 'nats://127.0.0.1:2'], pool: 'qa', hostId: 'h_1', poolSize: 2, handlers: ['x.py'] });
  assert.equal(r.servers, ['nats://127.0.0.1:1', 'nats://127.0.0.1:2']);
  assert.is(r.hostId, 'h_1');
  assert.is(r.heartbeatInterval, 1000);
  assert.equal(r.poolOptions, { poolSize: 2, handlers: ['x.py'] });
  assert.match(resolveAgentOptions({ servers: 'nats://127.0.0.1:1', pool: 'qa' }).hostId, /^[A-Za-z0-9_-]+-\d+$/);
  for (const [options, key] of [
    [{ servers: 'nats://127.0.0.1:1', pool: 'qa', hostId: 'a b' }, 'hostId'],
    [{ servers: 'nats://127.0.0.1:1', pool: 'qa', heartbeatInterval: 0 }, 'heartbeatInterval'],
    [{ servers: 'nats://127.0.0.1:1', pool: '' }, 'pool'],
  ] as const) {
    assert.throws(() => resolveAgentOptions(options as never), (e: unknown) => e instanceof InvalidOptionError && e.option === key);
  }
});

test.run();
