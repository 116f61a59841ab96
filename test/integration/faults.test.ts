/**
 * Layer 3: the fault model (docs/OPTIONS.md, "Escalation") on real python3 processes with real
 * signals — no runtime fault closes a pool: poison requests, idempotent poison, a holder of
 * session state that crashes or is recycled, and the one thing that does close it, a
 * configuration that can no longer start workers.
 */
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createPool } from '../../src/local/createPool.js';
import { resolvePython } from '../../src/channel/python.js';
import { PoolClosedError, SessionWorkerLostError, SupervisorEscalationError, WorkerCrashedError } from '../../src/errors.js';
import { assertAllDead, ECHO_HANDLERS, nextEvent, PidTracker, PYTHON } from './helpers.js';

const tracker = new PidTracker();
const pool = (options: Parameters<typeof createPool>[0] = {}) => createPool({ python: PYTHON, handlers: [ECHO_HANDLERS], ...options }).then((p) => tracker.watch(p));
const poison = { code: 1 };

test('20 poison requests in a row, interleaved with normal calls: every poison gets WORKER_CRASHED, every normal call succeeds, the pool stays open', async () => {
  const p = await pool({ poolSize: 4 });
  try {
    for (let i = 0; i < 20; i++) {
      const crashed = await p.execute('crash', poison).then(() => null, (e: unknown) => e);
      assert.instance(crashed, WorkerCrashedError, `poison ${i}`);
      assert.is((crashed as WorkerCrashedError).exitCode, 1);
      assert.equal(await p.execute('echo', { i }), { i });
    }
    assert.not.ok(p.isClosed);
    assert.is(p.stats().totalErrors, 20);
  } finally {
    await p.stop();
  }
});

test('20 poison requests among 60 normal ones at once: the same, and the pool is back at full health', async () => {
  const p = await pool({ poolSize: 4 });
  try {
    const calls = Array.from({ length: 80 }, (_, i) => (i % 4 === 0 ? p.execute('crash', poison).then(() => 'ok', (e: { code?: string }) => e.code) : p.execute('echo', i).then((v) => (v === i ? 'ok' : 'wrong'), (e: { code?: string }) => e.code)));
    const results = await Promise.all(calls);
    results.forEach((r, i) => assert.is(r, i % 4 === 0 ? 'WORKER_CRASHED' : 'ok', `call ${i}`));
    assert.not.ok(p.isClosed);
    assert.equal(await p.execute('echo', 'after'), 'after');
    const healthy = () => p.stats().healthyWorkers === 4;
    for (let i = 0; i < 200 && !healthy(); i++) await nextEvent(p, 'worker_state', () => true, 2000).catch(() => {});
    assert.ok(healthy(), `healthy workers: ${p.stats().healthyWorkers}`);
  } finally {
    await p.stop();
  }
});

test('an idempotent poison request is retried once on another worker, then gets WORKER_CRASHED with poison: true', async () => {
  const p = await pool({ poolSize: 2 });
  try {
    const error = await p.execute('crash', poison, { idempotent: true }).then(() => null, (e: unknown) => e);
    assert.instance(error, WorkerCrashedError);
    assert.is((error as WorkerCrashedError).poison, true);
    assert.equal(await p.execute('echo', 1), 1);
  } finally {
    await p.stop();
  }
});

test('200 sessions × 10 set-then-read under the default affinity: 2,000 of 2,000 reads correct', async () => {
  const p = await pool({ poolSize: 4 });
  try {
    let correct = 0;
    await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const sessionId = `s${i}`;
        for (let k = 0; k < 10; k++) {
          await p.execute('session_put', { key: 'v', value: `${i}:${k}` }, { sessionId });
          const got = (await p.execute('session_get', { key: 'v' }, { sessionId })) as { value: string };
          if (got.value === `${i}:${k}`) correct++;
        }
      }),
    );
    assert.is(correct, 2000);
  } finally {
    await p.stop();
  }
});

test("the worker holding a session's state crashes: its next request gets SESSION_WORKER_LOST reason 'crashed' once, then fresh state", async () => {
  const p = await pool({ poolSize: 2 });
  try {
    await p.execute('session_put', { key: 'v', value: 1 }, { sessionId: 's' });
    const holder = p.workers().find((w) => w.sessions === 1)!;
    const restarted = nextEvent<{ workerId: string; newPid: number }>(p, 'worker_restarted', (e) => e.workerId === holder.id);
    process.kill(holder.pid!, 'SIGKILL');
    tracker.add((await restarted).newPid);
    const lost = await p.execute('session_get', { key: 'v' }, { sessionId: 's' }).then(() => null, (e: unknown) => e);
    assert.instance(lost, SessionWorkerLostError);
    assert.is((lost as SessionWorkerLostError).reason, 'crashed');
    assert.equal(await p.execute('session_get', { key: 'v' }, { sessionId: 's' }), { session_id: 's', found: false, value: null });
  } finally {
    await p.stop();
  }
});

test("the worker holding a session's state is recycled: reason 'recycled', then fresh state", async () => {
  const p = await pool({ poolSize: 1, recycle: { maxRequests: 2 } });
  try {
    const restarted = nextEvent<{ reason: string; newPid: number }>(p, 'worker_restarted', (e) => e.reason === 'recycle');
    await p.execute('session_put', { key: 'v', value: 1 }, { sessionId: 's' });
    await p.execute('session_get', { key: 'v' }, { sessionId: 's' }); // the 2nd: recycled after it
    tracker.add((await restarted).newPid);
    const lost = await p.execute('session_get', { key: 'v' }, { sessionId: 's' }).then(() => null, (e: unknown) => e);
    assert.instance(lost, SessionWorkerLostError);
    assert.is((lost as SessionWorkerLostError).reason, 'recycled');
  } finally {
    await p.stop();
  }
});

test('root escalation: the interpreter is removed while the pool runs — the pool closes only after the root has restarted the tier 3 times, and the message leads with the cause', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pyvisor-gone-'));
  const python = join(dir, 'python3');
  // A private copy of the interpreter, so that removing it removes the pool's interpreter only.
  copyFileSync(await resolvePython(PYTHON), python);
  chmodSync(python, 0o755);
  const p = await pool({ poolSize: 2, python, restart: { maxRestarts: 1, maxSeconds: 5 } });
  try {
    const tierRestarts: number[] = [];
    p.on('tier_restarted', (e: { restarts: number }) => tierRestarts.push(e.restarts));
    const escalated = nextEvent<{ error: Error }>(p, 'escalation', () => true, 30_000);
    rmSync(python);
    for (const w of p.workers()) process.kill(w.pid!, 'SIGKILL'); // idle deaths: the workers' own, counted
    const { error } = await escalated;
    assert.instance(error, SupervisorEscalationError);
    assert.equal(tierRestarts, [1, 2, 3]);
    assert.match(error.message.split('\n')[0]!, /^Worker worker_\d could not start with interpreter ".*python3": interpreter not found \(path tried: .*python3\)/);
    assert.ok(p.isClosed);
    const later = await p.execute('echo', 1).then(() => null, (e: unknown) => e);
    assert.instance(later, PoolClosedError);
  } finally {
    await p.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('no Python process started by this suite is alive', () => {
  assertAllDead(tracker);
});

test.run();
