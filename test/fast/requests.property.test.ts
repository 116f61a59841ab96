/**
 * One owner per request (DESIGN §2, §6), as a property: over random schedules of requests
 * (anonymous or of a few sessions, idempotent or not, short timeouts, abortable), clock moves,
 * SIGKILLs of random live worker processes, requests that crash their process, bursts that grow
 * overflow workers and idle time that retires them, recycling (after N requests, or by memory),
 * health pings that overlap traffic, endSession, and stop() at a random point (sometimes with
 * requests outstanding) — on pools of workerConcurrency 1, 2 or 4 — and stream requests over
 * generator commands (N chunks at a latency per chunk or none; k chunks then a crash of their
 * process; k chunks then a Python error; chunks without end; execute() of a generator too),
 * with windows 1..8, read by readers that read at a random pace, break out after a random number
 * of chunks, abort their signal, or never read while the request runs (relying on its timeout),
 * every schedule must keep these invariants:
 *
 *  (a) every request settles: by its own bound while the pool runs (checkout deadline, handler
 *      latency or timeout, the death of the process under it), after stop() at the latest; the
 *      counters add up with what the callers saw; once everything is answered nothing is left
 *      in flight or queued (workers()[i].inflight, stats().busyWorkers, queueLength); no fake
 *      process outlives stop();
 *  (b) every answer is one the request may get for what happened to it (an ok carries exactly
 *      its own request's value, from the process it last reached, when its reply left; a death
 *      under requests answers every one in flight there);
 *  (c) no worker process ever has more than workerConcurrency requests in flight (pings
 *      included), and pool.workers()[i].inflight is, at every instant, the number of request
 *      frames out on that worker's process (abandoned ones included);
 *  (d) no request reaches a process after its checkout deadline, after its abort, or after its
 *      caller has an answer; only an idempotent request is sent twice, and only after the first
 *      process died under it;
 *  (e) the pool never closes on its own but when the root's budget is spent: no POOL_CLOSED
 *      before stop() unless the root escalated (and then ESCALATED for whatever was outstanding,
 *      POOL_CLOSED at once for what came later), and after a drain a plain request still
 *      succeeds on a pool that did not close.
 *
 * With the pool's DEFAULT restart budget (restart.maxRestarts 3 within restart.maxSeconds 5;
 * only restart.root.maxRestarts is sometimes made 0 or 1 so that the root gives up), every
 * process death is attributed (the model's `Death`): under a request (its handler crashed it,
 * or a SIGKILL while a request frame was out), idle (a SIGKILL between requests, during a health
 * ping, during start) or the pool's own (recycling, retirement, replacement in place, stop, the
 * drain of an escalated tier). The generator kills busy processes, idle ones, and bursts of idle
 * ones; a quarter of the schedules ('barrier') kill only busy ones. On top of the above:
 *
 *  (a') deaths under requests never count: a schedule with no idle death never sees the tier
 *       escalate or restart, nor the pool close, however many deaths under requests it has;
 *  (b') a request whose process dies under it gets WORKER_CRASHED at that death (or, if
 *       idempotent, is retried once); poison: true exactly for a retry whose two processes both
 *       died under it — never otherwise, and never because the pool's own drain stopped one;
 *  (c') tier restarts are what idle deaths allow: each tier escalation has restart.maxRestarts+1
 *       idle deaths of its own tier within restart.maxSeconds before it (so tier restarts <=
 *       floor(idle deaths / (maxRestarts+1)), in any window too), the root answers each within
 *       the longest drain, and conversely maxRestarts+1 idle deaths of healthy permanent workers
 *       within restart.maxSeconds do make the tier escalate;
 *  (d') a tier restart loses no waiting request: each is served or times out by its own
 *       checkout deadline; only requests in flight on the escalated tier when it escalated may
 *       get WORKER_CRASHED from its drain;
 *  (e') the root closes the pool only after restart.root.maxRestarts tier restarts within
 *       restart.root.maxSeconds, and never restarts the tier beyond that.
 * The model's `checkSupervision` says exactly what is checked and why each bound is sound. And
 * for every stream (requests.property.streams.ts, `checkStream`):
 *
 *  (s1) it ends exactly once for its reader (completes, breaks, or throws one error — the one
 *       `.result` rejects with, of a code the judge allows for what happened to it);
 *  (s2) the chunks read are exactly 0..k-1 of the attempt that delivered them, in order, none
 *       twice, none missing; a stream that delivered chunks is never started over;
 *  (s3) `buffered` never exceeds the window;
 *  (s4) its process never produced more than acknowledged + window chunks for it (each chunk
 *       checked by the generator itself against FakeProcess.controls), acknowledgements come in
 *       half-window batches of what was read, and FakeProcess.chunksProduced agrees;
 *  (s5) a stream given up on (break, abort, deadline) while it ran gets a cancel frame, and its
 *       frame (its slot) is gone within interruptGrace.
 *
 * The run prints how many schedules hit each case and fails if one is hit fewer than MIN_HITS
 * times; and how many ran into each of today's known bugs, which the model's lenient flags
 * tolerate (see test/fast/streams.regressions.test.ts).
 *
 * The model and the judge live in requests.property.model.ts; see there for exactly which
 * outcomes are allowed when, and what totalCommands / totalErrors count.
 *
 * Reproduce a failure: PYVISOR_PROPERTY_SEED=<seed> (and PYVISOR_PROPERTY_PATH=<path> to jump
 * straight to the shrunk counterexample); PYVISOR_PROPERTY_RUNS=<n> changes the number of runs.
 *
 * The regression tests below are the shrunk counterexamples the property found, written out by
 * hand, each named for what it proves. The first three fail on the pool core of df6324d (before
 * the one-owner rewrite) and pass on 825fc6d; the fourth fails on 825fc6d; the last three, about
 * the drain of an escalated tier, fail on e98e30a. Each is a bug to fix, not an expectation to
 * relax.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { CASES, describeRequest, describeSchedule, runSchedule, scheduleArb, type Case, type Schedule } from './requests.property.model.js';
import { flush, setup, type Harness } from './pool.harness.js';

const DEFAULT_SEED = 20_250_611;
const SEED = process.env.PYVISOR_PROPERTY_SEED ? Number(process.env.PYVISOR_PROPERTY_SEED) : DEFAULT_SEED;
const RUNS = process.env.PYVISOR_PROPERTY_RUNS ? Number(process.env.PYVISOR_PROPERTY_RUNS) : 1_000;
const PATH = process.env.PYVISOR_PROPERTY_PATH || undefined;

/**
 * Each case must be hit by at least this many schedules of a default run, so that the property
 * cannot silently stop testing it (a generator change that never kills an idle worker, a pool
 * that never restarts its tier...). Only checked for the default number of runs or more.
 */
const MIN_HITS = 3;

test(`property: every request has exactly one owner (${RUNS} random schedules, seed ${SEED})`, async () => {
  const started = Date.now();
  const hits = new Map<Case, number>(CASES.map((c) => [c, 0]));
  const known = new Map<string, number>();
  const property = fc.asyncProperty(scheduleArb, async (schedule) => {
    const { violations, cases, tolerated } = await runSchedule(schedule);
    for (const c of cases) hits.set(c, hits.get(c)! + 1);
    for (const t of tolerated) known.set(t, (known.get(t) ?? 0) + 1);
    if (violations.length > 0) throw new Error(violations.join('\n'));
  });
  const details = await fc.check(property, { numRuns: RUNS, seed: SEED, ...(PATH ? { path: PATH } : {}) });
  if (details.failed) {
    const shrunk = details.counterexample?.[0] as Schedule | undefined;
    // Runs are deterministic: run the shrunk schedule once more for the whole story.
    const again = shrunk ? await runSchedule(shrunk) : null;
    assert.unreachable(
      [
        `property failed after ${details.numRuns} schedule(s), shrunk ${details.numShrinks} time(s); seed ${details.seed}, path "${details.counterexamplePath}"`,
        `reproduce: PYVISOR_PROPERTY_SEED=${details.seed} PYVISOR_PROPERTY_PATH='${details.counterexamplePath}' node --import tsx node_modules/uvu/bin.js test/fast requests.property`,
        '',
        'shrunk schedule:',
        shrunk ? describeSchedule(shrunk) : String(details.counterexample),
        '',
        again ? [...again.violations, '', 'requests:', ...again.requests.map((r) => `  ${describeRequest(r)}`)].join('\n') : String(details.errorInstance),
      ].join('\n'),
    );
  }
  const table = CASES.map((c) => `    ${String(hits.get(c)).padStart(5)}  ${c}`).join('\n');
  console.log(`  ${details.numRuns} schedules in ${((Date.now() - started) / 1000).toFixed(1)} s; schedules per case:\n${table}`);
  if (known.size > 0) {
    // Today's bugs the lenient flags of the model tolerate (see test/fast/streams.regressions.test.ts).
    console.log(`  schedules that ran into a known bug (tolerated, see the model's flags):\n${[...known].map(([t, n]) => `    ${String(n).padStart(5)}  ${t}`).join('\n')}`);
  }
  if (RUNS >= 1_000 && !PATH) {
    const missed = CASES.filter((c) => hits.get(c)! < MIN_HITS);
    assert.equal(missed, [], `cases hit by fewer than ${MIN_HITS} of ${details.numRuns} schedules:\n${table}`);
  }
});

// ---- regressions: the shrunk counterexamples, by hand ----------------------------------------
//
// Each found by the property above, shrunk by fast-check, then reduced by hand to the fewest
// steps that still show the bug. Only options whose names are stable are used.

/** Every request frame the fake processes receive, as [command, args, worker id, pid, at]. */
function frames(h: Harness) {
  const seen: Array<{ cmd: string; args: unknown; workerId: string; pid: number; at: number }> = [];
  h.sim.onRequest((f) => seen.push({ cmd: f.cmd, args: f.args, workerId: f.workerId, pid: f.pid, at: f.at }));
  return seen;
}

/** A ping that takes 2 simulated ms, so that a health check is out for a while. */
const slowPing = (sim: Harness['sim']) =>
  sim.handle('ping', (_a, ctx) => ({ pong: true, worker_id: ctx.workerId, pid: ctx.pid, mode: 'pool-worker', codec: 'sim' }), { latencyMs: 2 });

// Found on df6324d (DESIGN §9 (9)). Shrunk: {poolSize 1, maxOverflow 1}: exec echo; burst slow ×2;
// kill the second live process (overflow_1's); exec echo; advance 100 → the slow request that
// ran on overflow_1 never settled (only stop() answered it, with POOL_CLOSED), and
// totalCommands missed its attempt.
test('regression: a request on an overflow worker whose process is SIGKILLed gets WORKER_CRASHED at once', async () => {
  const h = setup({ poolSize: 1, maxOverflow: 1 });
  await h.pool.whenReady();
  const seen = frames(h);
  const first = h.run('slow', 1);
  const second = h.run('slow', 2);
  await flush();
  const onOverflow = seen.find((f) => (f.args as number) === 2);
  assert.is(onOverflow?.workerId, 'overflow_1', 'the second request runs on the overflow worker');
  h.sim.kill(onOverflow!.pid);
  await flush();
  assert.ok(second.settled, 'the caller is answered when the process dies under its request');
  assert.is(second.error?.code, 'WORKER_CRASHED');
  await h.advance(100);
  assert.is(first.value, 1);
  assert.is(h.pool.stats().totalCommands, 2, 'both attempts reached a process and are counted');
  assert.is(h.pool.stats().totalErrors, 1);
  await h.finish();
});

// Found on df6324d. Shrunk: {poolSize 1}: exec slower (abortable); stop; abort → the caller got
// ABORTED, but the stopping worker ignored the abort, the command ran to its end, and stats()
// counted the attempt as a success (totalCommands 1, totalErrors 0).
test('regression: a request aborted while stop() lets it finish gets ABORTED and counts as an error', async () => {
  const h = setup({ poolSize: 1, shutdownTimeout: 500 });
  await h.pool.whenReady();
  const controller = new AbortController();
  const run = h.run('slow', 1, { signal: controller.signal });
  await flush();
  const stopping = h.pool.stop();
  controller.abort(new Error('caller gave up'));
  await flush();
  assert.ok(run.settled, 'the abort answers the caller at once, also while the pool stops');
  assert.is(run.error?.code, 'ABORTED');
  await h.advance(1000);
  await stopping;
  const stats = h.pool.stats();
  assert.equal([stats.totalCommands, stats.totalErrors], [1, 1], 'one attempt, and its caller saw an error');
  assert.equal(h.sim.alive(), []);
});

// Found on df6324d. Shrunk: {poolSize 1, healthCheckInterval 40, ping 2 ms, startup 7 ms}: advance
// to a health check; burst slow ×2; kill worker_1 → the first request, handed to worker_1 while
// its ping was out and not yet sent, got WORKER_CRASHED although it never reached Python, and
// was counted as a command and an error. (Variants: stop() during the ping gave it POOL_CLOSED,
// counted; an idempotent one used up its retry on it.)
test('regression: a request that waits behind a health ping is not failed when the process dies before it was sent', async () => {
  const h = setup({ poolSize: 1, healthCheckInterval: 40 }, {}, slowPing);
  const seen = frames(h);
  await h.advance(2);
  await h.pool.whenReady();
  // Until the monitor's ping is out.
  const pings = () => seen.filter((f) => f.cmd === 'ping').length;
  const before = pings();
  for (let i = 0; i < 200 && pings() === before; i++) await h.advance(1);
  assert.ok(pings() > before, 'a health ping is out');
  const run = h.run('slow', 1);
  await flush();
  assert.not.ok(seen.some((f) => f.cmd === 'slow'), 'not sent while the ping is out');
  h.sim.kill('worker_1');
  await h.advance(500);
  assert.ok(run.settled);
  assert.is(run.error?.code, undefined, `it never ran, so nothing died under it: ${run.error?.message}`);
  assert.is(run.value, 1, 'it runs on the replacement process');
  assert.equal(seen.filter((f) => f.cmd === 'slow').length, 1, 'sent once');
  const stats = h.pool.stats();
  assert.equal([stats.totalCommands, stats.totalErrors], [1, 0], 'one command, which succeeded');
  await h.finish();
});

// Found on 825fc6d. Shrunk: {poolSize 1}: exec slowest (abortable); exec hang; abort the first →
// the hang, which nobody aborted, got PYTHON_ERROR "KeyboardInterrupt". The abort's SIGINT is
// delivered synchronously in the simulation; the interrupted handler's reply frees the worker
// inside that delivery, the handle sends the next request at once, and the simulation's signal
// loop (which iterates the live in-flight map) interrupts it too. A real SIGINT cannot hit a
// frame written after it; whether the fix belongs in src/testing/simulation.ts (interrupt only
// what was running when the signal arrived) or in the handle (no frame out from inside
// port.signal()) is the lead's call. (A real process has a cousin of this race: a handler that
// returns just before the SIGINT lands lets the signal hit the next request.)
test('regression: an abort interrupts only the aborted request, not the one its worker takes next', async () => {
  const h = setup({ poolSize: 1 });
  await h.pool.whenReady();
  const controller = new AbortController();
  const aborted = h.run('slow', 1, { signal: controller.signal });
  const next = h.run('slow', 2);
  await flush();
  controller.abort(new Error('caller gave up'));
  await flush();
  assert.is(aborted.error?.code, 'ABORTED');
  await h.advance(100);
  assert.ok(next.settled);
  assert.is(next.error?.code, undefined, `the next request was not aborted: ${next.error?.message}`);
  assert.is(next.value, 2);
  await h.finish();
});

// ---- regressions of the fault model: the drain of an escalated tier (found on e98e30a) ------
//
// When the worker tier exceeds its restart intensity it stops its workers one by one (in reverse
// order, SIGTERM, then SIGKILL after shutdownTimeout) before the root restarts it. Four idle
// SIGKILLs of worker_1 within restart.maxSeconds (the default budget: 3 within 5 s) are what
// make it escalate here. See DRAINS_ARE_NOT_CRASHES in the model: with it set to false (today's
// behaviour) the property passes the default seed, and these three tests are the difference.

/** Four idle deaths of worker_1 in a row: the (maxRestarts+1)-th makes the worker tier escalate. */
async function escalateTier(h: Harness) {
  for (let i = 0; i < 4; i++) {
    h.sim.kill('worker_1');
    await flush();
  }
}

// Found by the property (seed 20250611, strict DRAINS_ARE_NOT_CRASHES). Shrunk: {poolSize 1,
// maxOverflow 1, shutdownTimeout 50}: exec hang (idempotent); kill it (under the request: retried
// on overflow_1); 4 idle kills of worker_1 (the tier escalates); advance 50 → the drain SIGKILLs
// overflow_1 under the retry, and the caller gets WORKER_CRASHED with poison: true, "the same
// request killed two workers" — but the second was killed by its supervisor, not by the request.
test('regression: an idempotent request whose retry the drain of an escalated tier stops is not poison', async () => {
  const h = setup({ poolSize: 1, maxOverflow: 1, shutdownTimeout: 50 });
  await h.pool.whenReady();
  const seen = frames(h);
  const run = h.run('hang', 1, { idempotent: true });
  await flush();
  h.sim.kill('worker_1');
  await flush();
  assert.equal(seen.filter((f) => f.cmd === 'hang').map((f) => f.workerId), ['worker_1', 'overflow_1'], 'its process died under it: retried on overflow_1');
  await escalateTier(h);
  await h.advance(50);
  assert.equal(h.of('tier_restarted').length, 1, 'the tier escalated and was restarted');
  assert.ok(run.settled, 'the drain answered it');
  assert.is(run.error?.code, 'WORKER_CRASHED');
  assert.is((run.error as { poison?: boolean }).poison, false, `only one worker died of it; its supervisor stopped the other: ${run.error?.message}`);
  await h.finish();
});

// Found by the property (seeds 1, 4, 6, 7 at 5,000 runs; the default seed once the poison check
// is tolerated). Shrunk, then reduced by hand: {poolSize 3, shutdownTimeout 50}: slow ×2, hang
// (idempotent, on worker_3); advance 100; 4 idle kills of worker_1 (the tier escalates; the
// drain stops worker_3 first, its hang holding it 50 ms); at 150 the drain SIGKILLs worker_3's
// process, but the process actor settles its requests before it sends the SIGKILL, so the
// hang's retry is dispatched while that process still runs — to worker_2, which is healthy,
// idle and about to be stopped by the same drain. The same request then runs on two processes
// at once, and the drain's second SIGKILL makes it "poison".
test('regression: the retry of a request the drain stops under is sent only after its first process is dead', async () => {
  const h = setup({ poolSize: 3, shutdownTimeout: 50 });
  await h.pool.whenReady();
  const seen: Array<{ cmd: string; workerId: string; pid: number; at: number; alive: number[] }> = [];
  h.sim.onRequest((f) => seen.push({ cmd: f.cmd, workerId: f.workerId, pid: f.pid, at: f.at, alive: h.sim.alive().map((p) => p.pid) }));
  h.run('slow', 1);
  h.run('slow', 2);
  const held = h.run('hang', 3, { idempotent: true });
  await flush();
  const first = seen.find((f) => f.cmd === 'hang')!;
  assert.is(first.workerId, 'worker_3');
  await h.advance(100);
  await escalateTier(h);
  await h.advance(400);
  const retry = seen.filter((f) => f.cmd === 'hang')[1];
  assert.ok(retry, 'retried');
  assert.not.ok(retry!.alive.includes(first.pid), `the retry reached ${retry!.workerId} (pid ${retry!.pid}) at ${retry!.at} while its first process (pid ${first.pid}) was alive`);
  assert.not.ok(held.settled, 'the retry runs (and hangs) on the new tier');
  await h.finish();
});

// Found by the property (default seed, once the two above are tolerated). Shrunk: {poolSize 3,
// shutdownTimeout 50}: 2 idle kills; exec slow (on worker_1); 2 idle kills, each followed by a
// slowest → the 4th idle death escalates the tier at 0; the slowest made after it waits, and at
// 10, when worker_1's slow is done, it is sent to worker_1 — a worker of the escalated tier that
// the drain has not reached yet; the drain stops worker_1 at 50 and SIGKILLs it at 100: the
// caller gets WORKER_CRASHED "stopped by its supervisor under the request". Reduced by hand to a
// request made while the drain holds on a hung worker. docs/OPTIONS.md: "Callers waiting
// meanwhile are served by the new tier within their own checkoutTimeout".
test('regression: a request made while an escalated tier drains is served by the new tier, not failed by the drain', async () => {
  const h = setup({ poolSize: 3, shutdownTimeout: 50 });
  await h.pool.whenReady();
  const seen = frames(h);
  h.run('slow', 1);
  h.run('slow', 2);
  h.run('hang', 3);
  await h.advance(100);
  await escalateTier(h);
  assert.equal(h.pool.workers().find((w) => w.id === 'worker_3')?.state, 'stopping', 'the tier is draining');
  const escalatedTier = h.sim.alive().map((p) => p.pid);
  const late = h.run('slow250', 4);
  await h.advance(400);
  assert.equal(h.of('tier_restarted').length, 1);
  const sent = seen.filter((f) => f.cmd === 'slow250');
  assert.equal(sent.length, 1, 'sent once');
  assert.not.ok(escalatedTier.includes(sent[0]!.pid), `sent at ${sent[0]!.at} to ${sent[0]!.workerId} (pid ${sent[0]!.pid}), a process of the escalated tier`);
  assert.ok(late.settled);
  assert.is(late.error?.code, undefined, `made after the tier escalated, it must be served by the new tier: ${late.error?.message}`);
  await h.finish();
});

test.run();
