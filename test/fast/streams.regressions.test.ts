/**
 * Regressions found by the property of test/fast/requests.property.test.ts once it covered
 * streams and workerConcurrency: each is its shrunk counterexample, reduced by hand to the fewest
 * steps that still show the bug, and each asserts what the docs promise. All five are fixed;
 * the property runs with its strict flags (SYNC_FIRST_CHUNK_IS_ACKED and
 * CANCEL_BEFORE_START_STOPS_THE_GENERATOR in requests.property.streams.ts,
 * ABANDONED_SLOTS_ARE_RECLAIMED and REPLACEMENTS_ARE_NOT_CRASHES in requests.property.model.ts).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setup, type Harness } from './pool.harness.js';

/** Read a stream to its end in the background; `out` says how it ended (null: not yet). */
function read(iterable: AsyncIterable<unknown>) {
  const seen: unknown[] = [];
  const state: { out: null | { done: true } | { error: Error & { code?: string } } } = { out: null };
  (async () => {
    for await (const c of iterable) seen.push(c);
  })().then(
    () => (state.out = { done: true }),
    (error) => (state.out = { error }),
  );
  return { seen, state };
}

function frames(h: Harness) {
  const seen: Array<{ cmd: string; id: number; workerId: string; pid: number; at: number; alive: number[] }> = [];
  h.sim.onRequest((f) => seen.push({ cmd: f.cmd, id: f.id, workerId: f.workerId, pid: f.pid, at: f.at, alive: h.sim.alive().map((p) => p.pid) }));
  return seen;
}

// Bug 1 (src/local/workerHandle.ts run(), src/core/stream.ts read()). Flag SYNC_FIRST_CHUNK_IS_ACKED.
// Shrunk (default seed): {poolSize 1, startupMs 7}: kill the worker; a stream of gen_burst (no
// latency), window 2, read as fast as chunks come → its process got the acknowledgements 2, 3, 4
// (1 is missing); with window 1 (strict flag, default seed, schedule 405) the stream stalls
// until its deadline. Reduced by hand: a stream of a zero-latency generator, window 1, made
// while the worker is busy, its reader already waiting. When the worker frees, run() sends the frame and the fake
// process answers the first chunk inside port.send(); the reader takes it at once and
// ResultStream.read() records an acknowledgement of 1 — but stream.credit is installed only
// after send() returns, so no ack frame goes out (read() sets `acked` although `credit` was
// null). The worker waits for credit, the reader for a chunk: the stream stalls until its
// deadline (REQUEST_TIMEOUT after 1 of 3 chunks; the process got no control frame at all).
// With a larger window the first batch's ack is lost the same way and a later one makes up for
// it. (A real process cannot answer inside send(), but the simulation is the product's own
// testing API, and run() already arms the timer before send() for exactly this reason.)
test('regression: a stream whose first chunk comes back inside send() has it acknowledged (window 1 does not stall)', async () => {
  const h = setup({ poolSize: 1 });
  h.sim.handle('count', function* (a: { n: number }) {
    for (let i = 0; i < a.n; i++) yield i;
    return 'done';
  });
  await h.pool.whenReady();
  const busy = h.run('slow', 'first');
  const { seen, state } = read(h.pool.stream('count', { n: 3 }, { window: 1, timeout: 500 }));
  for (let i = 0; i < 60 && state.out === null; i++) await h.advance(10);
  assert.is(busy.value, 'first');
  assert.equal(h.sim.processOf('worker_1')!.controls.filter((c) => c.ack !== undefined).length > 0, true, 'the process was acknowledged the chunk read');
  assert.equal(seen, [0, 1, 2], `all three chunks, not a stall: ${JSON.stringify(state.out)}`);
  assert.equal(state.out, { done: true });
  await h.finish();
});

// Bug 2 (src/testing/simulation.ts control()). Flag CANCEL_BEFORE_START_STOPS_THE_GENERATOR.
// Shrunk: {poolSize 1, workerConcurrency 4}: slowest ×2 (150 ms); a stream of `gen` (4 ms a
// chunk) aborted at once, before its first chunk → the cancel frame reaches the fake process
// while the generator handler is still in its latency; control() takes it for a sync handler
// ("runs on and answers late") and drops it; the generator then starts, fills its window and
// waits for credit for good. The handle's interruptGrace check finds the process answering (the
// generator's chunks) and others waited for, so it keeps the process, and the frame holds its
// slot for good (workers()[0].inflight stays 1, the worker is never idle again). The real worker
// would honour the cancel at the generator's first chunk (docs/OPTIONS.md: a cancelled handler
// "sees ctx.cancelled").
test('regression: a cancel that reaches a generator before its first chunk stops it, and its slot is freed', async () => {
  const h = setup({ poolSize: 1, workerConcurrency: 4, interruptGrace: 20 });
  h.sim.handle(
    'tick',
    function* () {
      for (let i = 0; ; i++) yield i;
    },
    { latencyMs: 4 },
  );
  await h.pool.whenReady();
  const others = [h.run('slow', 1), h.run('slow', 2)];
  const controller = new AbortController();
  const { state } = read(h.pool.stream('tick', null, { window: 2, signal: controller.signal }));
  await h.advance(1);
  controller.abort(new Error('the caller left'));
  await h.advance(1);
  assert.is((state.out as { error?: { code?: string } } | null)?.error?.code, 'ABORTED');
  await h.advance(500);
  assert.equal(others.map((o) => o.value), [1, 2]);
  const proc = h.sim.processOf('worker_1')!;
  assert.ok(proc.controls.some((c) => c.cancel), 'the process got the cancel');
  assert.ok(proc.chunksProduced <= 1, `the cancelled generator stopped at its first chunk at the latest (it produced ${proc.chunksProduced})`);
  assert.is(h.pool.workers()[0]!.inflight, 0, 'nothing in flight any more');
  await h.finish();
});

// Bug 3 (src/local/workerHandle.ts giveUp()). Flag ABANDONED_SLOTS_ARE_RECLAIMED.
// Shrunk (seed 1, 3,000 runs): {poolSize 1, workerConcurrency 4, recycle.maxRequests 5}: two
// streams, one aborted before its first chunk (bug 2 keeps it running), echo ×2 → after the
// drain the probe gets POOL_TIMEOUT: the worker is due a recycle, which waits for nothing in
// flight, and the abandoned frame never answers. Reduced by hand to a handler deaf to cancel
// (`stuck`): the process is replaced "only when it stops answering altogether: after
// interruptGrace, if no frame came from it since, or if nothing in flight there is waited for
// any more" (docs/OPTIONS.md) — but that is looked at once, interruptGrace after the give-up.
// While another request was still running then, the process is kept; when that one answers,
// nothing in flight there is waited for any more, and nobody looks again: the dead frame holds
// its slot for good, the worker is never health-checked or recycled by age again (both only
// touch idle workers), and a recycle it is due waits for it forever — a pool of one worker
// never serves again.
test('regression: a request given up on that never answers does not hold its slot for good once nothing else there is waited for', async () => {
  const h = setup({ poolSize: 1, workerConcurrency: 3, interruptGrace: 20 });
  await h.pool.whenReady();
  const pid = h.pid('worker_1');
  const deaf = h.run('stuck', null, { timeout: 10 });
  const other = h.run('slow', 'other');
  await h.advance(15);
  assert.is(deaf.error?.code, 'REQUEST_TIMEOUT');
  // The process answers after the give-up, and another request is still running at the check.
  const answering = h.run('echo', 'answering');
  await h.advance(1);
  assert.is(answering.value, 'answering');
  await h.advance(14);
  assert.is(h.pid('worker_1'), pid, 'kept at the grace check: it answers, and another request was running');
  await h.advance(1000);
  assert.is(other.value, 'other');
  assert.is(h.pool.workers()[0]!.inflight, 0, 'the process was replaced once nothing in flight was waited for any more');
  await h.finish();
});

test('regression: a worker due a recycle serves again although a request given up on never answers', async () => {
  const h = setup({ poolSize: 1, workerConcurrency: 3, interruptGrace: 20, recycle: { maxRequests: 1 }, checkoutTimeout: 200 });
  await h.pool.whenReady();
  const pid = h.pid('worker_1');
  h.run('stuck', null, { timeout: 10 });
  const other = h.run('slow', 'other');
  await h.advance(15);
  const answering = h.run('echo', 'answering');
  await h.advance(1);
  assert.is(answering.value, 'answering');
  await h.advance(15);
  assert.is(h.pid('worker_1'), pid, 'kept at the grace check (it answers; another request runs)');
  await h.advance(200);
  assert.is(other.value, 'other');
  assert.is.not(h.pid('worker_1'), pid, 'the recycle it was due waited only for what anybody waits for');
  const later = h.run('echo', 'later');
  await h.advance(300);
  assert.is(later.error?.code, undefined, `the pool serves again: ${later.error?.message}`);
  assert.is(later.value, 'later');
  await h.finish();
});

// Bug 4 (src/local/dispatcher.ts workerLost(), src/channel/processActor.ts disposal). Flag
// REPLACEMENTS_ARE_NOT_CRASHES. Shrunk (default seed): {poolSize 1, workerConcurrency 4}:
// slowest (idempotent), slowest (idempotent, timeout 35); advance 55; kill the busy process ×2.
// At 35 the second times out (abandoned: its handler runs on); at 55 nothing has come from the
// process since, so the pool replaces it — and the first request, which was only running, is
// lost with it and retried (as docs/OPTIONS.md says). Its retry's process is then SIGKILLed
// under it: WORKER_CRASHED with poison: true, "the same request killed two workers" — but the
// first was replaced by the pool for another request's sake; the request killed none before.
// (The same reading as the drain of an escalated tier, which sets request.drained.)
test('regression: a request lost with a process the pool replaced for another request is not poison when its retry dies', async () => {
  const h = setup({ poolSize: 1, workerConcurrency: 4, interruptGrace: 20 });
  await h.pool.whenReady();
  const seen = frames(h);
  const victim = h.run('slow250', 1, { idempotent: true });
  const late = h.run('slow250', 2, { timeout: 35 });
  await h.advance(55);
  assert.is(late.error?.code, 'REQUEST_TIMEOUT');
  const sent = seen.filter((f) => f.cmd === 'slow250' && f.at === 55);
  assert.is(sent.length, 1, 'the replacement at 55 took the victim along: retried');
  h.sim.kill(sent[0]!.pid);
  await h.advance(1);
  assert.is(victim.error?.code, 'WORKER_CRASHED');
  assert.is((victim.error as { poison?: boolean }).poison, false, `only its retry's process died under it: ${victim.error?.message}`);
  await h.finish();
});

// Bug 5 (src/channel/processActor.ts disposal: "Settled first: whatever the kill then reports").
// Flag REPLACEMENTS_ARE_NOT_CRASHES. Shrunk (default seed): {poolSize 1, maxOverflow 1,
// workerConcurrency 4}: slowest (idempotent), slowest (idempotent, timeout 35); advance 100 →
// at 55 the replacement settles the process's requests before it SIGKILLs, so the first
// request's retry is sent to overflow_1 while its first process still runs it: the same request
// on two processes at once. The drain of an escalated tier had the same race (see
// requests.property.test.ts, "the retry of a request the drain stops under is sent only after
// its first process is dead"); the replacement in place has it still.
test('regression: the retry of a request lost with a replaced process is sent only after that process is dead', async () => {
  const h = setup({ poolSize: 1, maxOverflow: 1, workerConcurrency: 4, interruptGrace: 20 });
  await h.pool.whenReady();
  const seen = frames(h);
  h.run('slow250', 1, { idempotent: true });
  h.run('slow250', 2, { timeout: 35 });
  await h.advance(1);
  const first = seen.find((f) => f.cmd === 'slow250')!;
  await h.advance(100);
  const retry = seen.filter((f) => f.cmd === 'slow250')[2];
  assert.ok(retry, 'retried after the replacement');
  assert.not.ok(retry!.alive.includes(first.pid), `the retry reached ${retry!.workerId} (pid ${retry!.pid}) at ${retry!.at} while its first process (pid ${first.pid}) was alive`);
  await h.finish();
});

test.run();
