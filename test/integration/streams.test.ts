/**
 * Layer 3: streams and workerConcurrency against real python3 workers (pipes, signals).
 * Chunks in order from sync and async generators; the backpressure bound measured in the worker
 * itself (it writes how many chunks it produced); `break` cancels the generator and frees the
 * worker; a SIGKILL mid-stream and a deadline mid-stream; many requests in flight on one worker
 * with out-of-order replies; a crash failing every request in flight; a timed-out request among
 * others abandoned without replacing a process that still answers.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PythonError, RequestTimeoutError, WorkerCrashedError, type Pool } from '../../src/index.js';
import { ROOT, assertAllDead, nextEvent, startPool, stopAll, suitePids } from './helpers.js';

const STREAMS = join(ROOT, 'test', 'fixtures', 'handlers', 'stream_handlers.py');
const dir = mkdtempSync(join(tmpdir(), 'pyvisor-streams-'));

async function drain<T>(iterable: AsyncIterable<T>): Promise<{ chunks: T[]; error: unknown }> {
  const chunks: T[] = [];
  try {
    for await (const c of iterable) chunks.push(c);
    return { chunks, error: null };
  } catch (error) {
    return { chunks, error };
  }
}

/** Resolve once `read()` is truthy, polling the file system (the worker's own count), at most `ms`. */
async function until<T>(read: () => T | null, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = read();
    if (v) return v;
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const produced = (path: string) => {
  try {
    return Number(readFileSync(path, 'utf8')) || 0;
  } catch {
    return 0;
  }
};

let pool: Pool;

test.before(async () => {
  pool = await startPool({ poolSize: 1, maxOverflow: 0, handlers: [STREAMS], interruptGrace: 2000 });
});

test.after(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
  assertAllDead(suitePids);
});

test('a sync generator and an async generator: chunks in order, then the return value as result', async () => {
  const s = pool.stream('count', { n: 500 });
  const { chunks, error } = await drain(s);
  assert.is(error, null);
  assert.equal(chunks, Array.from({ length: 500 }, (_, i) => i));
  assert.equal(await s.result, { total: 500 });
  const a = await drain(pool.stream('acount', { n: 50 }));
  assert.equal(a.chunks, Array.from({ length: 50 }, (_, i) => i));
  assert.equal(await pool.execute('count', { n: 4 }), [0, 1, 2, 3], 'execute() of a generator: the list');
});

test('backpressure: an unread stream stops the generator at its window (counted in the worker); reading lets it go on', async () => {
  const path = join(dir, 'forever');
  const s = pool.stream<number>('stream_forever', { path }, { window: 8 });
  await until(() => produced(path) >= 8);
  // The generator is paused at its window: give it time to overrun, if it would.
  await new Promise((r) => setTimeout(r, 300));
  assert.is(produced(path), 8, 'exactly window chunks produced while nothing was read');
  const first: number[] = [];
  for await (const c of s) {
    first.push(c);
    if (first.length === 20) break;
  }
  assert.equal(first, Array.from({ length: 20 }, (_, i) => i));
  const n = produced(path);
  assert.ok(n >= 20 && n <= 20 + 8, `produced ${n}: never more than window ahead of the reader`);
  // break cancelled it: the worker is free again.
  assert.is(await pool.execute('tsleep', { ms: 1, value: 'free' }), 'free');
});

test('a Python error mid-stream: PythonError after the chunks before it; the worker is kept', async () => {
  const pid = pool.workers()[0]!.pid;
  const { chunks, error } = await drain(pool.stream('stream_then_fail', { n: 3 }));
  assert.equal(chunks, [0, 1, 2]);
  assert.instance(error, PythonError);
  assert.match((error as Error).message, /failed after 3 chunks/);
  assert.is(pool.workers()[0]!.pid, pid);
});

test('SIGKILL mid-stream (the handler kills its process): WorkerCrashedError after the chunks; replaced, not retried', async () => {
  const pid = pool.workers()[0]!.pid;
  const back = nextEvent(pool, 'worker_restarted');
  const { chunks, error } = await drain(pool.stream('stream_then_crash', { n: 2 }, { idempotent: true }));
  assert.equal(chunks, [0, 1]);
  assert.instance(error, WorkerCrashedError);
  assert.is((error as WorkerCrashedError).signal, 'SIGKILL');
  await back;
  assert.is.not(pool.workers()[0]!.pid, pid);
});

test('a deadline mid-stream: RequestTimeoutError after the chunks so far', async () => {
  const { chunks, error } = await drain(pool.stream('count', { n: 1000, delay_ms: 20 }, { timeout: 300 }));
  assert.ok(chunks.length > 0 && chunks.length < 1000, `${chunks.length} chunks before the deadline`);
  assert.instance(error, RequestTimeoutError);
  await nextEvent(pool, 'worker_state', (e: { state: string }) => e.state === 'healthy').catch(() => undefined);
  assert.is(await pool.execute('tsleep', { ms: 1, value: 'after' }), 'after');
});

test('workerConcurrency 8: async and threaded handlers overlap on one worker; replies come back out of order', async () => {
  const p = await startPool({ poolSize: 1, maxOverflow: 0, handlers: [STREAMS], workerConcurrency: 8 });
  const order: string[] = [];
  const slow = p.execute('asleep', { ms: 400, value: 'slow' }).then((v) => order.push(v as string));
  const quick = p.execute('tsleep', { ms: 20, value: 'quick' }).then((v) => order.push(v as string));
  await Promise.all([slow, quick]);
  assert.equal(order, ['quick', 'slow']);
  const t0 = performance.now();
  const many = await Promise.all(Array.from({ length: 8 }, (_, i) => p.execute('asleep', { ms: 200, value: i })));
  const ms = performance.now() - t0;
  assert.equal(many, [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.ok(ms < 1000, `8 × 200 ms async sleeps took ${ms.toFixed(0)} ms on one worker`);
  const inflight = await Promise.all([p.execute('inflight'), p.execute('asleep', { ms: 100, value: 0 })]);
  assert.ok((inflight[0] as number) >= 1);
  await p.stop();
});

test('workerConcurrency: a crash fails every request in flight on that worker; a timeout among others does not replace a worker that answers', async () => {
  const p = await startPool({ poolSize: 1, maxOverflow: 0, handlers: [STREAMS], workerConcurrency: 4, interruptGrace: 500 });
  const pid = p.workers()[0]!.pid;
  const victims = [p.execute('asleep', { ms: 5000, value: 1 }), p.execute('tsleep', { ms: 5000, value: 2 })];
  const killer = p.execute('crash_after', { ms: 100 });
  const outcomes = await Promise.allSettled([...victims, killer]);
  assert.ok(outcomes.every((o) => o.status === 'rejected' && o.reason instanceof WorkerCrashedError), JSON.stringify(outcomes.map((o) => o.status)));
  await nextEvent(p, 'worker_restarted');
  const pid2 = p.workers()[0]!.pid;
  assert.is.not(pid2, pid);
  const abandoned = p.execute('ahang', null, { timeout: 100 }).catch((e: unknown) => e);
  const others = Promise.all(Array.from({ length: 3 }, (_, i) => p.execute('tsleep', { ms: 300, value: i })));
  assert.instance(await abandoned, RequestTimeoutError);
  assert.equal(await others, [0, 1, 2]);
  await new Promise((r) => setTimeout(r, 700)); // past interruptGrace: a worker that answers is kept
  assert.is(p.workers()[0]!.pid, pid2);
  assert.is(p.workers()[0]!.inflight, 0, 'the cancelled task answered (Cancelled) and freed its slot');
  assert.is(p.stats().restarts, 1);
  await p.stop();
});

test.run();
