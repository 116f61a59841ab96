/**
 * WorkerProcess against the real Python worker (python/dspy_bridge.py), when it exists.
 * Skips with a message otherwise.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { WorkerProcess, type Reply, type WorkerExitInfo, type WorkerMessage, type WorkerProcessOptions } from '../../src/channel/workerProcess.js';
import { BRIDGE_SCRIPT, resolvePython } from '../../src/channel/python.js';
import { ProtocolError } from '../../src/errors.js';
import { MAX_DEPTH } from '../../src/codec/encode.js';
import { PidTracker, ROOT, assertWireEqual, commandRunning, sleep, startWorker, waitFor, type WorkerHarness } from './_helpers.js';

const pids = new PidTracker();
const HANDLERS = join(ROOT, 'test', 'fixtures', 'handlers', 'echo_handlers.py');
const PYTHON = process.env.PYVISOR_PYTHON ?? 'python3';
const present = existsSync(BRIDGE_SCRIPT);
let python = '';

function start(opts: Partial<WorkerProcessOptions> = {}): WorkerHarness {
  return startWorker({ workerId: 'py1', python, handlers: [HANDLERS], ...opts }, pids);
}

if (!present) {
  test('real Python worker — skipped', () => {
    console.log(`  [skip] ${BRIDGE_SCRIPT} does not exist yet`);
  });
} else {
  test('resolvePython resolves the interpreter (shim) to its real executable, cached', async () => {
    python = await resolvePython(PYTHON);
    assert.ok(python.startsWith('/'), python);
    assert.is(await resolvePython(PYTHON), python);
  });

  test('ready, ping, echo of every value type, error reply, clean exit on EOF', async () => {
    const h = start();
    const ready = await h.ready;
    assert.is(ready.kind, 'ready');
    if (ready.kind === 'ready') {
      assert.is(ready.workerId, 'py1');
      assert.is(ready.pid, h.wp.pid);
      assert.type(ready.codec, 'string');
      assert.is(ready.mode, 'pool-worker');
    }
    const ping = await h.request('ping');
    assert.ok(ping.ok, JSON.stringify(ping));
    const big = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big[i] = (i >>> 12) & 0xff;
    const values: [unknown, unknown][] = [
      [null, null], [true, true], [0, 0], [-1, -1], [255, 255], [-(2 ** 31) - 1, -(2 ** 31) - 1], [2 ** 53, 2 ** 53],
      [2n ** 64n - 1n, 2n ** 64n - 1n], [-(2n ** 63n), -(2n ** 63n)], [7n, 7], [1.5, 1.5], [-Infinity, -Infinity], [NaN, NaN],
      ['héllo 😀', 'héllo 😀'], ['x'.repeat(70_000), 'x'.repeat(70_000)], [Buffer.from([0, 1, 255]), Buffer.from([0, 1, 255])],
      [[1, [2, ['three', null]]], [1, [2, ['three', null]]]],
      [{ z: 1, a: { nested: [true, false] }, 'key with space': 'v', skip: undefined }, { z: 1, a: { nested: [true, false] }, 'key with space': 'v' }],
      [{ big }, { big }],
    ];
    const replies = await Promise.all(values.map(([v]) => h.request('echo', v)));
    replies.forEach((r, i) => {
      assert.ok(r.ok, `echo[${i}] ok: ${JSON.stringify(!r.ok && r.error)}`);
      if (r.ok) assertWireEqual(r.result, values[i][1], `echo[${i}]`);
    });
    const err = await h.request('raise', { message: 'nope' });
    assert.is(err.ok, false);
    if (!err.ok) {
      assert.is(err.error.type, 'ValueError');
      assert.is(err.error.message, 'nope');
      assert.match(err.error.traceback, /Traceback/);
    }
    const unknown = await h.request('no_such_command');
    assert.is(unknown.ok, false);
    const noise = await h.request('print_noise');
    assert.ok(noise.ok, 'print() in a handler does not corrupt the protocol');
    await waitFor(() => h.stderr.some((l) => l.includes('noise from print()')), 2000, 'print output on stderr');
    const t0 = Date.now();
    h.wp.endInput();
    const info = await h.exit;
    assert.is(info.code, 0);
    assert.ok(Date.now() - t0 < 1500, 'exits promptly on stdin EOF');
    assert.equal(h.protocolErrors, []);
  });

  test('nesting: MAX_DEPTH containers round-trip through Python; log notices arrive', async () => {
    const h = start();
    await h.ready;
    let deep: unknown = 'leaf';
    for (let i = 0; i < MAX_DEPTH; i++) deep = i % 2 ? { d: deep } : [deep];
    const r = await h.request('echo', deep);
    assert.ok(r.ok, JSON.stringify(!r.ok && r.error));
    if (r.ok) assertWireEqual(r.result, deep);
    await h.request('log', { message: 'from python', level: 'warning' });
    const log = h.messages.find((m) => m.kind === 'log');
    assert.equal(log, { kind: 'log', level: 'warning', message: 'from python' });
    h.wp.endInput();
    await h.exit;
    assert.equal(h.protocolErrors, []);
  });

  test('handler import failure → exit 3 with the traceback in the stderr tail', async () => {
    const h = start({ handlers: [join(ROOT, 'test', 'fixtures', 'handlers', 'import_error.py')] });
    const info = await h.exit;
    assert.is(info.code, 3);
    assert.ok(info.stderrTail.some((l) => l.includes('handlers failed on purpose during import')), info.stderrTail.join('\n'));
  });

  test('oversized frame (worker max below ours) → exit 4', async () => {
    const h = start({ extraArgs: ['--max-frame-bytes', '1024'] });
    await h.ready;
    h.wp.send(1, 'echo', 'x'.repeat(5000), null);
    const info = await h.exit;
    assert.is(info.code, 4);
  });

  test('SIGTERM: the current command finishes, then exit 0', async () => {
    const h = start();
    await h.ready;
    const slow = h.request('sleep', { seconds: 0.3, announce: true });
    await commandRunning(h);
    h.wp.signal('SIGTERM');
    const r = await slow;
    assert.ok(r.ok, JSON.stringify(r));
    const info = await h.exit;
    assert.is(info.code, 0);
  });

  test('SIGINT interrupts the running handler with KeyboardInterrupt', async () => {
    const h = start();
    await h.ready;
    const slow = h.request('sleep', { seconds: 5, announce: true });
    await commandRunning(h);
    h.wp.signal('SIGINT');
    const r = await slow;
    assert.is(r.ok, false);
    if (!r.ok) assert.is(r.error.type, 'KeyboardInterrupt');
    const after = await h.request('ping');
    assert.ok(after.ok, 'worker stays usable');
    h.wp.endInput();
    await h.exit;
  });

  test('crash under a request → exit info with the code', async () => {
    const h = start();
    await h.ready;
    h.wp.send(99, 'crash', { code: 9 }, null);
    const info = await h.exit;
    assert.is(info.code, 9);
  });
}

test('every process this file spawned is dead', async () => {
  await pids.assertAllDead();
});

test.run();
