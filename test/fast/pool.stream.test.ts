/**
 * pool.stream() on the simulation: a generator handler's chunks in order, credit-based
 * backpressure (the worker never more than `window` chunks ahead of the reader), `break` and
 * `signal` cancel the handler and free the worker, and the fault model holds mid-stream: a crash
 * throws WorkerCrashedError from the loop after the chunks before it, a deadline throws
 * RequestTimeoutError, a Python error PythonError. Every test ends with every counter checked.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SimPythonError } from '../../src/testing/index.js';
import { expectStats, setup, type Harness } from './pool.harness.js';

function streaming(h: Harness): void {
  h.sim
    .handle('count', function* (a: { n: number }) {
      for (let i = 0; i < a.n; i++) yield i;
      return { total: a.n };
    })
    .handle(
      'tick',
      function* (a: { n: number }) {
        for (let i = 0; i < a.n; i++) yield i;
        return 'done';
      },
      { latencyMs: 10 },
    )
    .handle('forever', function* () {
      for (let i = 0; ; i++) yield i;
    })
    .handle(
      'crash_at',
      function* (a: { n: number }) {
        for (let i = 0; i < a.n; i++) yield i;
        yield h.sim.crash(null, 'SIGKILL');
      },
      { latencyMs: 5 },
    )
    .handle('fail_at', function* (a: { n: number }) {
      for (let i = 0; i < a.n; i++) yield i;
      throw new SimPythonError('ValueError', `failed after ${a.n} chunks`);
    });
}

async function collect(h: Harness, iterable: AsyncIterable<unknown>, step = 1): Promise<{ chunks: unknown[]; error?: Error & { code?: string } }> {
  const chunks: unknown[] = [];
  const reading = (async () => {
    for await (const c of iterable) chunks.push(c);
  })();
  let out: { error?: Error & { code?: string } } | null = null;
  reading.then(
    () => (out = {}),
    (error) => (out = { error }),
  );
  for (let i = 0; i < 10_000 && out === null; i++) await h.advance(step);
  assert.ok(out, 'the stream ended');
  return { chunks, ...(out as { error?: Error & { code?: string } }) };
}

test('chunks arrive in order, then the loop ends; result is the generator’s return value', async () => {
  const h = setup({ poolSize: 1 });
  streaming(h);
  await h.pool.whenReady();
  const stream = h.pool.stream('count', { n: 100 });
  const { chunks, error } = await collect(h, stream);
  assert.is(error, undefined);
  assert.equal(chunks, Array.from({ length: 100 }, (_, i) => i));
  assert.equal(await stream.result, { total: 100 });
  expectStats(h, { totalCommands: 1, poolSize: 1, healthyWorkers: 1, latencyMs: h.pool.stats().latencyMs });
  await h.finish();
});

test('execute() of a generator command gets the list of its chunks', async () => {
  const h = setup({ poolSize: 1 });
  streaming(h);
  await h.pool.whenReady();
  assert.equal(await h.pool.execute('count', { n: 3 }), [0, 1, 2]);
  await h.finish();
});

test('backpressure: an unread stream has exactly `window` chunks produced, and reading gives credit in half-window batches', async () => {
  const h = setup({ poolSize: 1 });
  streaming(h);
  await h.pool.whenReady();
  const stream = h.pool.stream('forever', null, { window: 8 });
  await h.advance(100);
  const proc = h.sim.processOf('worker_1')!;
  assert.is(proc.chunksProduced, 8, 'the worker stops at its window');
  assert.is(stream.buffered, 8);
  for (let i = 0; i < 3; i++) assert.equal(await stream.next(), { value: i, done: false });
  await h.advance(10);
  assert.is(proc.chunksProduced, 8, 'no credit before half a window is read');
  assert.equal(await stream.next(), { value: 3, done: false });
  await h.advance(10);
  assert.equal(proc.controls, [{ id: proc.controls[0]!.id, ack: 4 }]);
  assert.is(proc.chunksProduced, 12, 'four chunks of credit, four more chunks');
  assert.ok(stream.buffered <= 8);
  await stream.return();
  await h.advance(10);
  assert.equal(proc.controls.at(-1), { id: proc.controls[0]!.id, cancel: true });
  assert.is(h.pool.workers()[0]!.inflight, 0, 'cancel freed the worker');
  await h.finish();
});

test('break cancels the handler and frees the worker for the next request; the late chunks are dropped', async () => {
  const h = setup({ poolSize: 1 });
  streaming(h);
  await h.pool.whenReady();
  const seen: unknown[] = [];
  const reading = (async () => {
    for await (const c of h.pool.stream('tick', { n: 1000 })) {
      seen.push(c);
      if (seen.length === 5) break;
    }
  })();
  for (let i = 0; i < 20; i++) await h.advance(10);
  await reading;
  assert.equal(seen, [0, 1, 2, 3, 4]);
  const next = h.run('echo', 'after');
  await h.advance(1);
  assert.equal(next.value, 'after', 'the worker serves the next request');
  const stats = h.pool.stats();
  assert.is(stats.totalCommands, 2);
  assert.is(stats.totalErrors, 1, 'the cancelled stream settled once, as ABORTED');
  assert.is(stats.restarts, 0, 'no process replaced');
  await h.finish();
});

test('an AbortSignal cancels a stream mid-way: the loop throws AbortError after the chunks read so far', async () => {
  const h = setup({ poolSize: 1 });
  streaming(h);
  await h.pool.whenReady();
  const controller = new AbortController();
  const stream = h.pool.stream('tick', { n: 100 }, { signal: controller.signal });
  await h.advance(35);
  controller.abort(new Error('user left'));
  const { chunks, error } = await collect(h, stream);
  assert.equal(chunks, [0, 1, 2], 'the chunks that had arrived (at 10, 20, 30 ms), then the abort');
  assert.is(error?.code, 'ABORTED');
  await h.advance(10);
  assert.is(h.pool.workers()[0]!.inflight, 0);
  await h.finish();
});

test('a crash mid-stream: WorkerCrashedError from the loop after the chunks before it; the worker is replaced, nothing counted against intensity', async () => {
  const h = setup({ poolSize: 1 });
  streaming(h);
  await h.pool.whenReady();
  const { chunks, error } = await collect(h, h.pool.stream('crash_at', { n: 3 }, { idempotent: true }));
  assert.equal(chunks, [0, 1, 2]);
  assert.is(error?.code, 'WORKER_CRASHED', 'an idempotent stream that delivered chunks is not retried');
  for (let i = 0; i < 100 && h.pool.workers()[0]!.state !== 'healthy'; i++) await h.advance(50);
  assert.is(h.pool.workers()[0]!.state, 'healthy');
  assert.is(h.of('tier_restarted').length, 0);
  await h.finish();
});

test('a deadline mid-stream: RequestTimeoutError after the chunks so far; the process is replaced in place', async () => {
  const h = setup({ poolSize: 1 });
  streaming(h);
  await h.pool.whenReady();
  const { chunks, error } = await collect(h, h.pool.stream('tick', { n: 100 }, { timeout: 55 }));
  assert.equal(chunks, [0, 1, 2, 3, 4]);
  assert.is(error?.code, 'REQUEST_TIMEOUT');
  await h.finish();
});

test('a Python error mid-stream: PythonError after the chunks; the worker is kept', async () => {
  const h = setup({ poolSize: 1 });
  streaming(h);
  await h.pool.whenReady();
  const pid = h.pid('worker_1');
  const { chunks, error } = await collect(h, h.pool.stream('fail_at', { n: 2 }));
  assert.equal(chunks, [0, 1]);
  assert.is(error?.code, 'PYTHON_ERROR');
  assert.match(error!.message, 'ValueError: failed after 2 chunks');
  assert.is(h.pid('worker_1'), pid);
  await h.finish();
});

test('bad stream arguments throw from the first next(), typed and named; nothing is sent', async () => {
  const h = setup({ poolSize: 1 });
  streaming(h);
  await h.pool.whenReady();
  for (const [options, name] of [
    [{ window: 0 }, 'window'],
    [{ window: 1.5 }, 'window'],
    [{ timeout: -1 }, 'timeout'],
    [{ windowSize: 3 }, 'windowSize'],
  ] as const) {
    const { error } = await collect(h, h.pool.stream('count', { n: 1 }, options as never));
    assert.is(error?.code, 'INVALID_OPTION');
    assert.match(error!.message, name);
  }
  assert.is(h.pool.stats().totalCommands, 0);
  await h.finish();
});

test('a worker that sends more than its window is condemned (protocol violation), the stream fails, the pool goes on', async () => {
  const h = setup({ poolSize: 1 });
  streaming(h);
  await h.pool.whenReady();
  let frameId = 0;
  h.sim.onRequest((r) => {
    if (r.cmd === 'forever') frameId = r.id;
  });
  const stream = h.pool.stream('forever', null, { window: 4 });
  await h.advance(5);
  const proc = h.sim.processOf('worker_1') as unknown as { hooks: { onChunk(id: number, v: unknown): void } };
  proc.hooks.onChunk(frameId, 'one too many');
  const { chunks, error } = await collect(h, stream);
  assert.equal(chunks, [0, 1, 2, 3]);
  assert.is(error?.code, 'PROTOCOL_ERROR');
  for (let i = 0; i < 100 && h.pool.workers()[0]!.state !== 'healthy'; i++) await h.advance(50);
  assert.equal(await h.pool.execute('echo', 1), 1);
  await h.finish();
});

test.run();
