/**
 * WorkerProcess against the Node mock worker (test/fixtures/mock-worker.mjs) over real pipes.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkerProcess, type Reply, type WorkerExitInfo, type WorkerMessage, type WorkerProcessOptions } from '../../src/channel/workerProcess.js';
import { BRIDGE_SCRIPT, PACKAGE_ROOT, clearPythonCache, resolvePython } from '../../src/channel/python.js';
import { ProtocolError, SerializationError, WorkerStartError } from '../../src/errors.js';
import { MOCK_WORKER, PidTracker, assertWireEqual, commandRunning, isAlive, sleep, startWorker, waitFor, type WorkerHarness } from './_helpers.js';

const pids = new PidTracker();

function start(script = 'normal', extra: string[] = [], opts: Partial<WorkerProcessOptions> = {}): WorkerHarness {
  const workerId = opts.workerId ?? 'w1';
  return startWorker(
    { workerId, python: process.execPath, argv: [process.execPath, MOCK_WORKER, '--worker-id', workerId, '--script', script, ...extra], ...opts },
    pids,
  );
}

async function stop(h: WorkerHarness): Promise<WorkerExitInfo> {
  h.wp.endInput();
  return h.exit;
}

// First in the file: the killed grandchild is reaped by init, not by us, which takes a
// moment; the final all-dead check comes much later.
test('a grandchild holding the pipes does not delay the exit report past exitDrainMs', async () => {
  const h = start('grandchild', [], { exitDrainMs: 200 });
  await waitFor(() => h.stderr.some((l) => l.startsWith('mock: grandchild pid')), 3000, 'grandchild pid');
  const gpid = Number(h.stderr.find((l) => l.startsWith('mock: grandchild pid'))!.split(' ').pop());
  pids.add(gpid);
  const t0 = Date.now();
  const info = await h.exit;
  assert.is(info.code, 0);
  assert.ok(Date.now() - t0 < 2000, 'reported without waiting for the grandchild');
  assert.ok(isAlive(gpid), 'the grandchild is still there (it held the pipes)');
  process.kill(gpid, 'SIGKILL');
});

test('ready notice, ping, clean exit on stdin EOF', async () => {
  const h = start('normal', ['--stderr-lines', '3']);
  const ready = await h.ready;
  const { data, ...fields } = ready as Extract<WorkerMessage, { kind: 'ready' }>;
  assert.equal(fields, { kind: 'ready', workerId: 'w1', pid: h.wp.pid!, python: process.execPath, codec: 'mock-msgpack', mode: 'pool-worker' });
  assert.is(data.event, 'ready');
  const r = await h.request('ping');
  assert.is(r.ok, true);
  assert.equal((r as { result: unknown }).result, { status: 'ok', worker_id: 'w1', pid: h.wp.pid });
  assert.is(h.wp.inFlightCount, 0);
  const info = await stop(h);
  assert.equal(info, { code: 0, signal: null, stderrTail: ['mock stderr line 1', 'mock stderr line 2', 'mock stderr line 3'] });
  assert.ok(h.wp.exited);
  assert.equal(h.protocolErrors, []);
});

test('echo of every value type, big Buffers and BigInts, concurrent requests', async () => {
  const h = start();
  await h.ready;
  const big = Buffer.alloc(16 * 1024 * 1024);
  for (let i = 0; i < big.length; i += 4096) big[i] = i & 0xff;
  const values: [unknown, unknown][] = [
    [null, null], [true, true], [false, false], [0, 0], [-1, -1], [2 ** 31, 2 ** 31], [2 ** 53, 2 ** 53],
    [-(2 ** 63), -(2n ** 63n)], [2n ** 64n - 1n, 2n ** 64n - 1n], [5n, 5], [2n ** 60n, 2n ** 60n], [1.5, 1.5], [NaN, NaN], [-Infinity, -Infinity],
    ['', ''], ['héllo 😀', 'héllo 😀'], ['x'.repeat(100_000), 'x'.repeat(100_000)],
    [Buffer.from([]), Buffer.from([])], [new Uint8Array([1, 2, 3]), Buffer.from([1, 2, 3])],
    [[1, [2, [3, []]]], [1, [2, [3, []]]]],
    [{ a: { b: { c: [1, 'two', null] } }, 'key with spaces': 1, undef: undefined }, { a: { b: { c: [1, 'two', null] } }, 'key with spaces': 1 }],
    [{ big }, { big }],
  ];
  const replies = await Promise.all(values.map(([v]) => h.request('echo', v)));
  replies.forEach((r, i) => {
    assert.ok(r.ok, `reply ${i} ok`);
    assertWireEqual((r as { result: unknown }).result, values[i][1], `echo[${i}]`);
  });
  await stop(h);
  assert.equal(h.protocolErrors, []);
});

test('large frames whose slabs are handed back and reused never corrupt one another', async () => {
  const h = start();
  await h.ready;
  // Several 1 MiB requests in flight at once, then more: the encoder reuses the slab of a frame
  // only after its write completed; every reply must be exactly its own request's bytes.
  for (let round = 0; round < 3; round++) {
    const payloads = Array.from({ length: 4 }, (_, i) => Buffer.alloc(1024 * 1024 + i, 0x41 + round * 4 + i));
    const replies = await Promise.all(payloads.map((p) => h.request('echo', { p })));
    replies.forEach((r, i) => {
      assert.ok(r.ok, 'reply ok');
      const got = (r as { result: { p: Buffer } }).result.p;
      assert.is(got.length, payloads[i]!.length);
      assert.ok(got.equals(payloads[i]!), `payload ${i} of round ${round} intact`);
    });
  }
  await stop(h);
});

test('error reply carries type, message, traceback; worker stays usable', async () => {
  const h = start();
  await h.ready;
  const r = await h.request('raise', { type: 'KeyError', message: "'missing'" });
  assert.is(r.ok, false);
  if (!r.ok) {
    assert.is(r.error.type, 'KeyError');
    assert.is(r.error.message, "'missing'");
    assert.match(r.error.traceback, /Traceback \(most recent call last\)/);
  }
  const u = await h.request('no_such_command');
  assert.is(u.ok, false);
  const p = await h.request('ping');
  assert.is(p.ok, true);
  await stop(h);
});

test('log and other notices are classified', async () => {
  const h = start();
  await h.ready;
  await h.request('log', { level: 'warning', message: 'careful' });
  await h.request('notice', { event: 'progress', done: 3, total: 10 });
  const log = h.messages.find((m) => m.kind === 'log');
  assert.equal(log, { kind: 'log', level: 'warning', message: 'careful' });
  const notice = h.messages.find((m) => m.kind === 'notice');
  assert.ok(notice && notice.kind === 'notice');
  if (notice?.kind === 'notice') {
    assert.is(notice.event, 'progress');
    assert.is(notice.data.done, 3);
  }
  await stop(h);
});

test('send: SerializationError thrown synchronously, nothing written, worker unaffected', async () => {
  const h = start();
  await h.ready;
  assert.throws(() => h.wp.send(900, 'echo', { when: new Date() }, null), (e: unknown) => e instanceof SerializationError && (e as Error).message === 'args.when: Date is not serializable');
  assert.is(h.wp.inFlightCount, 0);
  const r = await h.request('echo', 'still fine');
  assert.equal((r as { result: unknown }).result, 'still fine');
  await stop(h);
  assert.equal(h.protocolErrors, []);
});

test('send: request too large for maxFrameBytes is refused before writing', async () => {
  const h = start('normal', ['--max-frame-bytes', '4096'], { maxFrameBytes: 4096 });
  await h.ready;
  assert.throws(() => h.wp.send(901, 'echo', Buffer.alloc(5000), null), /^args: a request encoding to more than 4096 bytes/);
  const r = await h.request('echo', Buffer.alloc(1000));
  assert.ok(r.ok);
  await stop(h);
});

test('duplicate in-flight id is refused', async () => {
  const h = start();
  await h.ready;
  h.wp.send(777, 'sleep', { ms: 50 }, null);
  assert.throws(() => h.wp.send(777, 'ping', null, null), (e: unknown) => e instanceof ProtocolError && /777 is already in flight/.test((e as Error).message));
  await waitFor(() => h.wp.inFlightCount === 0, 3000, 'sleep reply');
  await stop(h);
});

test('stderr: partial lines across chunks, CRLF, UTF-8 split, tail of N lines', async () => {
  const h = start('normal', [], { stderrTailLines: 3 });
  await h.ready;
  const euro = Buffer.from('€');
  await h.request('stderr', { pieces: ['first ha', 'lf\nsecond\r\n', 'third ', 'line\nfourth', ' line\n', 'no newline at end'] });
  await h.request('stderr', { pieces: [] });
  const info = await stop(h);
  assert.equal(h.stderr, ['first half', 'second', 'third line', 'fourth line', 'no newline at end']);
  assert.equal(info.stderrTail, ['third line', 'fourth line', 'no newline at end']);
  assert.ok(euro.length === 3);
});

test('stderr: an endless line is cut, later lines still arrive', async () => {
  const h = start('stderr-flood', [], { maxStderrLineLength: 1000 });
  await h.ready;
  await waitFor(() => h.stderr.length >= 2, 3000, 'stderr lines');
  assert.is(h.stderr[0].length, 1000 + ' … [line cut at 1000 characters]'.length);
  assert.is(h.stderr[1], 'after the flood');
  await stop(h);
});

// ---- hostile workers -------------------------------------------------------------------------

async function hostile(script: string, pattern: RegExp, extra: string[] = []): Promise<void> {
  const h = start(script, extra, { workerId: 'w1' });
  try {
    await h.ready;
    await waitFor(() => h.protocolErrors.length > 0, 3000, `protocol error from "${script}"`);
    assert.instance(h.protocolErrors[0], ProtocolError, script);
    assert.match(h.protocolErrors[0].message, pattern, `${script}: ${h.protocolErrors[0].message}`);
    // the transport itself does not kill: the worker is still alive
    assert.not.ok(h.wp.exited, `${script}: transport does not kill on a protocol error`);
  } finally {
    h.wp.signal('SIGKILL');
  }
  const info = await h.exit;
  assert.is(info.signal, 'SIGKILL', script);
}

test('hostile workers → onProtocolError with the right message (run in parallel)', async () => {
  const cases: [string, RegExp][] = [
    // a stray print() on stdout: "Hell" read as a length header
    ['garbage', /frame length 1214606444 bytes exceeds the maximum of 67108864 bytes/],
    ['oversized', /frame length 2147483647 bytes exceeds the maximum of 67108864/],
    ['invalid-msgpack', /0xc1/],
    ['ext', /extension type -1/],
    ['trailing', /trailing byte/],
    ['not-map', /not a map \(got an array of 3\)/],
    ['unsolicited', /reply for request id 4242, which is not in flight/],
    ['id-nil', /worker w1 reported a protocol error: ProtocolError: could not decode request frame/],
  ];
  await Promise.all(cases.map(([script, pattern]) => hostile(script, pattern)));
});

test('zero-length frame → ProtocolError, stream stays usable', async () => {
  const h = start('zero-frame');
  await h.ready;
  await waitFor(() => h.protocolErrors.length > 0);
  assert.match(h.protocolErrors[0].message, /zero-length frame/);
  const r = await h.request('ping');
  assert.ok(r.ok, 'still in sync');
  await stop(h);
});

test('reply without request → ProtocolError', async () => {
  await hostile('unsolicited', /reply for request id 4242, which is not in flight/);
});

test('reply with the wrong id → ProtocolError', async () => {
  const h = start('wrong-id');
  await h.ready;
  h.wp.send(5, 'ping', null, null);
  await waitFor(() => h.protocolErrors.length > 0);
  assert.match(h.protocolErrors[0].message, /reply for request id 1005, which is not in flight/);
  assert.is(h.wp.inFlightCount, 1, 'request 5 is still unanswered');
  h.wp.signal('SIGKILL');
  await h.exit;
});

test('reply without ok → ProtocolError', async () => {
  const h = start('bad-reply');
  await h.ready;
  h.wp.send(6, 'ping', null, null);
  await waitFor(() => h.protocolErrors.length > 0);
  assert.match(h.protocolErrors[0].message, /reply without a boolean "ok" \(id 6\)/);
  h.wp.signal('SIGKILL');
  await h.exit;
});

test('error reply with id nil → ProtocolError carrying the worker\'s message', async () => {
  await hostile('id-nil', /worker w1 reported a protocol error: ProtocolError: could not decode request frame/);
});

test('truncated frame then exit → ProtocolError (mid-frame) and exit info with stderr tail', async () => {
  const h = start('truncated', ['--code', '3']);
  await h.ready;
  const info = await h.exit;
  assert.is(info.code, 3);
  assert.is(info.signal, null);
  assert.equal(info.stderrTail, ['mock: dying mid-frame']);
  assert.is(h.protocolErrors.length, 1);
  assert.match(h.protocolErrors[0].message, /output ended inside a frame \(16 of \d+ payload bytes received\)/);
});

test('exit with code N, reported once with the stderr tail', async () => {
  const h = start('exit', ['--code', '7', '--stderr-lines', '25']);
  const info = await h.exit;
  assert.is(info.code, 7);
  assert.is(info.signal, null);
  assert.is(info.stderrTail.length, 20, 'default tail of 20 lines');
  assert.is(info.stderrTail[19], 'mock: exiting with code 7');
  assert.is(info.stderrTail[0], 'mock stderr line 7');
  assert.is(info.startError, undefined);
});

test('death by signal', async () => {
  const h = start('die-signal');
  const info = await h.exit;
  assert.is(info.code, null);
  assert.is(info.signal, 'SIGKILL');
  assert.ok(h.wp.exited);
  assert.not.ok(h.wp.signal('SIGTERM'), 'never signals an exited process');
});

test('SIGTERM: the running command finishes, then exit 0', async () => {
  const h = start();
  await h.ready;
  const slow = h.request('sleep', { ms: 200, announce: true });
  await commandRunning(h);
  assert.ok(h.wp.signal('SIGTERM'));
  const r = await slow;
  assert.ok(r.ok);
  const info = await h.exit;
  assert.is(info.code, 0);
});

test('SIGINT interrupts the running command with KeyboardInterrupt', async () => {
  const h = start();
  await h.ready;
  const slow = h.request('sleep', { ms: 5000, announce: true });
  await commandRunning(h);
  h.wp.signal('SIGINT');
  const r = await slow;
  assert.is(r.ok, false);
  if (!r.ok) assert.is(r.error.type, 'KeyboardInterrupt');
  await stop(h);
});

test('a worker that ignores SIGTERM needs SIGKILL', async () => {
  const h = start('ignore-sigterm');
  await h.ready;
  h.wp.signal('SIGTERM');
  await waitFor(() => h.stderr.includes('mock: ignoring SIGTERM'));
  // Still serving after the SIGTERM it ignored: a round trip proves it, no delay guessed.
  assert.ok((await h.request('ping')).ok);
  assert.not.ok(h.wp.exited);
  assert.ok(isAlive(h.wp.pid!));
  h.wp.signal('SIGKILL');
  const info = await h.exit;
  assert.is(info.signal, 'SIGKILL');
});

test('slow start: ready arrives after the delay', async () => {
  const t0 = Date.now();
  const h = start('slow-start', ['--delay', '200']);
  await h.ready;
  assert.ok(Date.now() - t0 >= 190);
  await stop(h);
});

test('writes to a dead process are swallowed; exit is reported', async () => {
  const h = start('exit', ['--code', '0']);
  await h.exit;
  h.wp.send(1234, 'ping', null, null); // no throw
  assert.is(h.wp.inFlightCount, 0);
});

// ---- spawn failures and options -----------------------------------------------------------------

test('spawn of a nonexistent interpreter → onExit with startError naming the path', async () => {
  const h = start('normal', [], { argv: ['/nonexistent/bin/python3', 'x.py'] });
  const info = await h.exit;
  assert.ok(info.startError instanceof WorkerStartError);
  assert.is(info.startError!.code, 'WORKER_START_FAILED');
  assert.match(info.startError!.message, /Worker w1 could not start with interpreter "\/nonexistent\/bin\/python3": interpreter not found \(path tried: \/nonexistent\/bin\/python3\)/);
  assert.is(info.code, null);
  assert.is(h.wp.pid, undefined);
  assert.ok(h.wp.exited);
  h.wp.send(1, 'ping', null, null); // swallowed
  assert.not.ok(h.wp.signal('SIGKILL'));
});

test('spawn of a non-executable file → startError (EACCES)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pyvisor-'));
  const f = join(dir, 'python3');
  writeFileSync(f, '#!/bin/sh\n');
  chmodSync(f, 0o644);
  const h = start('normal', [], { argv: [f] });
  const info = await h.exit;
  assert.match(info.startError!.message, /interpreter is not executable \(path tried: .*python3\)/);
});

test('spawn with a missing working directory → startError says so', async () => {
  const h = start('normal', [], { cwd: '/nonexistent/dir' });
  const info = await h.exit;
  assert.match(info.startError!.message, /working directory does not exist: \/nonexistent\/dir/);
});

test('argv: built from options (mode, worker id, handlers, max frame) ', () => {
  assert.equal(WorkerProcess.buildArgv({ workerId: 'worker_1', python: '/usr/bin/python3' }), ['/usr/bin/python3', BRIDGE_SCRIPT, '--mode', 'pool-worker', '--worker-id', 'worker_1']);
  assert.equal(
    WorkerProcess.buildArgv({ workerId: 'w', python: 'py', script: 's.py', mode: 'standalone', handlers: ['a.py', 'pkg.mod'], maxFrameBytes: 1024, extraArgs: ['--x'] }),
    ['py', 's.py', '--mode', 'standalone', '--worker-id', 'w', '--max-frame-bytes', '1024', '--x', '--handlers', 'a.py', 'pkg.mod'],
  );
  assert.ok(BRIDGE_SCRIPT.endsWith('/python/dspy_bridge.py'));
  assert.ok(BRIDGE_SCRIPT.startsWith(PACKAGE_ROOT));
});

test('env is merged over process.env with PYTHONUNBUFFERED=1; cwd applies', async () => {
  const h = start('normal', [], { env: { MOCK_VAR: 'yes' }, cwd: '/tmp' });
  await h.ready;
  const r = await h.request('info');
  const info = (r as { result: { env: Record<string, unknown>; cwd: string } }).result;
  assert.equal(info.env, { PYTHONUNBUFFERED: '1', MOCK_VAR: 'yes' });
  assert.is(info.cwd, '/tmp');
  await stop(h);
});

test('resolvePython: resolves a name on PATH once, caches; missing → WorkerStartError', async () => {
  clearPythonCache();
  const exe = await resolvePython(process.execPath).catch((e) => e);
  // node is not python: `-c` makes node evaluate the Python source and fail → rejection
  assert.instance(exe, WorkerStartError);
  const missing = await resolvePython('/definitely/not/here/python3').catch((e) => e);
  assert.instance(missing, WorkerStartError);
  assert.match(missing.message, /^No worker could start with interpreter "\/definitely\/not\/here\/python3": interpreter not found \(path tried: \/definitely\/not\/here\/python3\)/);
  assert.is(missing.workerId, '-');
  const onPath = await resolvePython('no-such-python-xyz').catch((e) => e);
  assert.match(onPath.message, /interpreter not found \(looked up "no-such-python-xyz" on PATH=/);
});

test('every process this file spawned is dead', async () => {
  await pids.assertAllDead();
});

test.run();
