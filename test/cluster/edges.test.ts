/**
 * Cluster tier: what crosses NATS besides plain results, with a real nats-server, two agent
 * processes (pools of 2 real python3 workers) and front-end processes — no live host
 * (HostUnavailableError within the checkout deadline), deadlines, Python errors as data,
 * an AbortSignal reaching the handler, streams (all chunks and the result, a break that
 * closes the generator on the agent, backpressure, an error after chunks), endSession, and
 * stats()/workers()/hosts() aggregated over the hosts.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertAllDead, FrontEnd, NatsServer, Procs, startAgents, startFrontEnds, stopAllProcs, waitUntil, type AgentProc } from './helpers.js';

const procs = new Procs();
const tmp = mkdtempSync(join(tmpdir(), 'pyvisor-cluster-edges-'));
let nats: NatsServer | null = null;
let agents: AgentProc[] = [];
let fe: FrontEnd;
let nobody: FrontEnd;

test.before(async () => {
  nats = await NatsServer.start(procs);
  agents = await startAgents(procs, ['e1', 'e2'].map((hostId) => ({ servers: nats!.url, pool: 'edges', hostId, heartbeatInterval: 250 })));
  // The second front end is for a pool no agent serves.
  [fe] = await startFrontEnds(procs, { servers: nats.url, pool: 'edges' });
  [nobody] = await startFrontEnds(procs, { servers: nats.url, pool: 'nobody', checkoutTimeout: 600 });
  const w = await fe!.op('whenHosts', { n: 2, timeout: 10_000 });
  assert.ok(w.ok, `whenHosts(2): ${JSON.stringify(w)}`);
});

test.after(async () => {
  procs.killAll();
  rmSync(tmp, { recursive: true, force: true });
});

test('no live host: HostUnavailableError (HOST_UNAVAILABLE) within the checkout deadline', async () => {
  const explicit = await nobody.execute('whoami', null, { checkoutTimeout: 400 });
  assert.not.ok(explicit.ok, 'a pool without hosts cannot answer');
  if (explicit.ok) return;
  assert.is(explicit.error.code, 'HOST_UNAVAILABLE', JSON.stringify(explicit.error));
  assert.is(explicit.error.name, 'HostUnavailableError');
  assert.is(explicit.error.pool, 'nobody');
  assert.ok(explicit.ms <= 400 + 400, `failed after ${explicit.ms.toFixed(0)} ms; the checkout deadline was 400 ms`);

  // The pool's own checkoutTimeout (600 ms), for a session request too.
  const session = await nobody.execute('set', { key: 'k', value: 1 }, { sessionId: 'nobody-1' });
  assert.not.ok(session.ok);
  if (session.ok) return;
  assert.is(session.error.code, 'HOST_UNAVAILABLE', JSON.stringify(session.error));
  assert.ok(session.ms <= 600 + 400, `failed after ${session.ms.toFixed(0)} ms; the checkout deadline was 600 ms`);

  const when = await nobody.op('whenHosts', { n: 1, timeout: 300 });
  assert.not.ok(when.ok);
  assert.is(when.error.code, 'HOST_UNAVAILABLE', JSON.stringify(when.error));
  assert.ok(when.ms >= 250 && when.ms <= 300 + 400, `whenHosts(1, 300) rejected after ${when.ms.toFixed(0)} ms`);
  assert.equal(await nobody.op('hosts'), []);
});

test('hosts(), workers() and stats() aggregate over the hosts, with `host` on every worker', async () => {
  const hosts = (await fe.op('hosts')) as Array<{ hostId: string; workers: number; capacity: number; inflight: number; queue: number; lastSeen: number }>;
  assert.equal(hosts.map((h) => h.hostId).sort(), ['e1', 'e2']);
  for (const h of hosts) {
    assert.is(h.workers, 2, JSON.stringify(h));
    assert.ok(h.capacity >= 2, `capacity ${h.capacity}`);
    assert.ok(Date.now() - h.lastSeen < 5000, `lastSeen ${h.lastSeen}`);
  }
  const workers = (await fe.op('workers')) as Array<{ host: string; pid: number | null; state: string; id: string }>;
  assert.is(workers.length, 4, JSON.stringify(workers));
  for (const a of agents) {
    const mine = workers.filter((w) => w.host === a.hostId);
    assert.is(mine.length, 2, `${a.hostId}: ${JSON.stringify(mine)}`);
    // The pids are the Python workers the agent process started.
    for (const w of mine) assert.ok(w.pid !== null && a.workerPids.has(w.pid), `${a.hostId}'s worker ${w.id} has pid ${w.pid}; the agent started ${[...a.workerPids]}`);
  }
  const stats = (await fe.op('stats')) as { poolSize: number; healthyWorkers: number };
  assert.is(stats.poolSize, 4);
  assert.is(stats.healthyWorkers, 4);
});

test('deadlines cross NATS: the handler sees its remaining time; a request past its timeout fails in time', async () => {
  const r = await fe.value('remaining', null, { timeout: 2000 });
  assert.ok(r.remaining > 1.0 && r.remaining <= 2.0, `remaining ${r.remaining} s of a 2 s timeout`);
  const late = await fe.execute('tsleep', { ms: 3000, value: 1 }, { timeout: 400 });
  assert.not.ok(late.ok);
  if (late.ok) return;
  assert.is(late.error.code, 'REQUEST_TIMEOUT', JSON.stringify(late.error));
  assert.ok(late.ms >= 390 && late.ms <= 400 + 600, `timed out after ${late.ms.toFixed(0)} ms (timeout 400)`);
  // The worker it ran on is replaced or interrupted; the pool answers after it.
  assert.is((await fe.value('whoami')).host.startsWith('e'), true);
});

test('the checkout deadline crosses NATS: waiting on the host for a busy session worker ends in POOL_TIMEOUT, in time', async () => {
  await fe.value('set', { key: 'k', value: 1 }, { sessionId: 'busy-1' });
  const path = join(tmp, 'busy-1');
  const slow = fe.execute('whoami', { ms: 1500, path }, { sessionId: 'busy-1' });
  await waitUntil(() => existsSync(path), 10_000, 'the slow request to run');
  const waiting = await fe.execute('get', { key: 'k' }, { sessionId: 'busy-1', checkoutTimeout: 300 });
  assert.not.ok(waiting.ok, JSON.stringify(waiting));
  if (!waiting.ok) {
    assert.is(waiting.error.code, 'POOL_TIMEOUT', JSON.stringify(waiting.error));
    assert.ok(waiting.ms >= 250 && waiting.ms < 300 + 500, `failed after ${waiting.ms.toFixed(0)} ms (checkout timeout 300)`);
  }
  assert.ok((await slow).ok);
  assert.is((await fe.value('get', { key: 'k' }, { sessionId: 'busy-1' })).value, 1);
});

test('errors cross NATS as data: a Python exception keeps its class, type and message', async () => {
  const o = await fe.execute('fail', { message: 'nope' }, { sessionId: 'err-1' });
  assert.not.ok(o.ok);
  if (o.ok) return;
  assert.is(o.error.code, 'PYTHON_ERROR');
  assert.is(o.error.name, 'PythonError');
  assert.is(o.error.pythonType, 'ValueError');
  assert.is(o.error.message, 'ValueError: nope');
});

test('a Python worker that dies on its host: WORKER_CRASHED with its signal, then SESSION_WORKER_LOST reason crashed, both as data', async () => {
  const set = await fe.value('set', { key: 'k', value: 1 }, { sessionId: 'crash-1' });
  const crashed = await fe.execute('crash_after', { ms: 0 }, { sessionId: 'crash-1' });
  assert.not.ok(crashed.ok);
  if (crashed.ok) return;
  assert.is(crashed.error.code, 'WORKER_CRASHED', JSON.stringify(crashed.error));
  assert.is(crashed.error.name, 'WorkerCrashedError');
  assert.is(crashed.error.signal, 'SIGKILL');
  assert.is(crashed.error.pid, set.pid, 'the pid of the worker that held the session');
  const lost = await fe.execute('get', { key: 'k' }, { sessionId: 'crash-1' });
  assert.not.ok(lost.ok);
  if (lost.ok) return;
  assert.is(lost.error.code, 'SESSION_WORKER_LOST', JSON.stringify(lost.error));
  assert.is(lost.error.reason, 'crashed');
  const fresh = await fe.value('get', { key: 'k' }, { sessionId: 'crash-1' });
  assert.equal([fresh.host, fresh.found], [set.host, false], 'the session starts fresh on the same host');
  // The agent's pool replaced the worker: its new pid is reported, and tracked.
  await waitUntil(() => agents.find((a) => a.hostId === set.host)!.workerPids.size >= 3, 10_000, 'the replacement worker');
});

test('an AbortSignal crosses to the agent: the caller gets ABORTED at once and the handler is interrupted', async () => {
  const path = join(tmp, 'abort-1');
  const o = await fe.execute('wait_abort', { path, ms: 20_000 }, { sessionId: 'ab-1', timeout: 30_000 }, { abortWhenFile: path });
  assert.not.ok(o.ok);
  if (o.ok) return;
  assert.is(o.error.code, 'ABORTED', JSON.stringify(o.error));
  assert.ok((o as { sinceAbortMs?: number }).sinceAbortMs! < 1000, `settled ${(o as { sinceAbortMs?: number }).sinceAbortMs} ms after the abort`);
  // The handler saw it: KeyboardInterrupt (one request per worker) or ctx.cancelled. Its reply
  // may still be on its way when the next request is routed: poll.
  const seen = await waitUntil(async () => {
    const g = await fe.value('get', { key: 'aborted' }, { sessionId: 'ab-1' });
    return g.found && g.value !== 'running' ? g.value : null;
  }, 10_000, 'the aborted handler to record what it saw');
  assert.ok(seen === 'interrupted' || seen === 'cancelled', `the handler recorded ${seen}`);

  // Already aborted: nothing runs.
  const never = join(tmp, 'abort-never');
  const pre = await fe.execute('wait_abort', { path: never, ms: 100 }, { sessionId: 'ab-2' }, { preAborted: true });
  assert.not.ok(pre.ok);
  if (!pre.ok) assert.is(pre.error.code, 'ABORTED');
  await fe.value('whoami', null, { sessionId: 'ab-2' });
  assert.not.ok(existsSync(never), 'a request aborted before it was sent must not run');
});

test('a stream crosses NATS: every chunk in order, then the result', async () => {
  const s = await fe.op('stream', { command: 'count', args: { n: 50 }, opts: { sessionId: 'st-count' } });
  assert.is(s.error, null, JSON.stringify(s.error));
  assert.equal(s.chunks, Array.from({ length: 50 }, (_, i) => i));
  assert.equal(s.result, { total: 50 });
  const anon = await fe.op('stream', { command: 'count', args: { n: 3 } });
  assert.equal(anon.chunks, [0, 1, 2]);
});

test('a stream with break: the generator on the agent is closed, the session keeps working', async () => {
  const s = await fe.op('stream', { command: 'ticks', args: { delay_ms: 5 }, opts: { sessionId: 'st-break', window: 4 }, take: 5 });
  assert.is(s.error, null, JSON.stringify(s.error));
  assert.equal(s.chunks, [0, 1, 2, 3, 4]);
  const closed = await waitUntil(async () => {
    const g = await fe.value('get', { key: 'ticks_closed' }, { sessionId: 'st-break' });
    return g.found ? { n: g.value as number } : null;
  }, 10_000, 'the generator to be closed on the agent (ticks_closed)');
  // It ran ahead of the reader by the window at most (acks cross NATS), never on and on.
  assert.ok(closed.n >= 5 && closed.n <= 5 + 2 * 4 + 2, `the generator yielded ${closed.n} chunks for a reader that took 5 (window 4)`);
});

test('a stream aborted by its AbortSignal: ABORTED for the reader, the generator closed on the agent', async () => {
  const s = await fe.op('stream', { command: 'ticks', args: { delay_ms: 20 }, opts: { sessionId: 'st-abort' }, abortAfterMs: 300 });
  assert.is(s.error?.code, 'ABORTED', JSON.stringify(s.error));
  assert.ok(s.chunks.length >= 1, `chunks before the abort: ${s.chunks.length}`);
  assert.ok(s.ms < 300 + 1000, `the stream ended ${s.ms.toFixed(0)} ms after it started (aborted at 300 ms)`);
  const closed = await waitUntil(async () => {
    const g = await fe.value('get', { key: 'ticks_closed' }, { sessionId: 'st-abort' });
    return g.found ? { n: g.value as number } : null;
  }, 10_000, 'the aborted generator to be closed on the agent');
  assert.ok(closed.n >= s.chunks.length, `yielded ${closed.n}, read ${s.chunks.length}`);
});

test('stream backpressure crosses NATS: a slow reader holds the generator to its window', async () => {
  const path = join(tmp, 'forever');
  const s = await fe.op('stream', { command: 'stream_forever', args: { path }, opts: { window: 4 }, take: 12, readDelayMs: 30 });
  assert.is(s.error, null, JSON.stringify(s.error));
  assert.equal(s.chunks, Array.from({ length: 12 }, (_, i) => i));
  const produced = Number(readFileSync(path, 'utf8'));
  assert.ok(produced <= 12 + 2 * 4 + 2, `the generator produced ${produced} chunks for a reader that took 12 (window 4)`);
});

test('a stream that fails after its chunks: the chunks, then the Python error', async () => {
  const s = await fe.op('stream', { command: 'stream_then_fail', args: { n: 3 } });
  assert.equal(s.chunks, [0, 1, 2]);
  assert.is(s.error?.code, 'PYTHON_ERROR', JSON.stringify(s.error));
  assert.is(s.error?.message, 'ValueError: failed after 3 chunks');
});

test('endSession crosses NATS: the host frees the state, the next request starts fresh', async () => {
  const set = await fe.value('set', { key: 'k', value: 'v' }, { sessionId: 'end-1' });
  const freed = await fe.op('endSession', { sessionId: 'end-1' });
  assert.ok(freed.ok, JSON.stringify(freed));
  assert.is(freed.value, 1, 'one worker held the session');
  const after = await fe.value('get', { key: 'k' }, { sessionId: 'end-1' });
  assert.is(after.found, false, `state left after endSession on ${set.host}: ${JSON.stringify(after)}`);
});

test('past the NATS server\'s max_payload (1 MiB): NOT_SERIALIZABLE either way, at once, and the host goes on', async () => {
  const big = await fe.execute('whoami', 'x'.repeat(2 << 20));
  assert.not.ok(big.ok);
  if (!big.ok) assert.is(big.error.code, 'NOT_SERIALIZABLE', JSON.stringify(big.error));
  const back = await fe.execute('blob', { size: 2 << 20 }, { sessionId: 'blob-1', timeout: 10_000 });
  assert.not.ok(back.ok, 'a 2 MiB result cannot cross a 1 MiB max_payload');
  if (!back.ok) {
    assert.is(back.error.code, 'NOT_SERIALIZABLE', JSON.stringify(back.error));
    assert.ok(back.ms < 5000, `the oversized result failed after ${back.ms.toFixed(0)} ms`);
  }
  const small = await fe.execute('blob', { size: 1000 }, { sessionId: 'blob-1' });
  assert.ok(small.ok, JSON.stringify(small));
});

test('endSession of a session nobody knows: SessionNotFoundError, as a local pool says', async () => {
  const o = await fe.op('endSession', { sessionId: 'never-seen' });
  assert.not.ok(o.ok, JSON.stringify(o));
  assert.is(o.error.code, 'SESSION_NOT_FOUND', JSON.stringify(o.error));
});

test('no process started by this suite is alive (nats-server, agents, Python workers, front ends)', async () => {
  await stopAllProcs(procs, { frontEnds: [fe, nobody], agents, nats });
  for (const a of agents) assert.equal(a.child.exit, { code: 0, signal: null }, `${a.hostId} drained and exited 0:\n${a.child.tail()}`);
  await assertAllDead(procs);
});

test.run();
