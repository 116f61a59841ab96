/**
 * Cluster tier: a host dies under load. A real nats-server, 3 agent processes (pools of 2
 * real python3 workers, heartbeats every 200 ms) and a front-end process (hostTimeout
 * 1000 ms) running session lanes (append/read), PythonPool program lanes and anonymous
 * lanes; one agent is SIGKILLed mid-load. Its in-flight requests fail with WORKER_CRASHED
 * or HOST_UNAVAILABLE (never a hang, never a wrong answer), each of its sessions gets
 * SESSION_WORKER_LOST reason host_lost exactly once and then starts fresh on another host,
 * the adapter's programs on it keep working elsewhere, nothing else is disturbed, and
 * anonymous throughput is back on the remaining hosts within 2 s.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  assertAllDead,
  checkSessionLane,
  describe,
  FrontEnd,
  isAlive,
  NatsServer,
  now,
  Procs,
  rateIn,
  startAgents,
  startFrontEnds,
  stopAllProcs,
  waitUntil,
  type AgentProc,
  type Lane,
  type LoadResult,
  type Outcome,
} from './helpers.js';

const procs = new Procs();
const tmp = mkdtempSync(join(tmpdir(), 'pyvisor-cluster-hostloss-'));
let nats: NatsServer | null = null;
let agents: AgentProc[] = [];
let fe: FrontEnd;
let fe2: FrontEnd;
const frontEnds: FrontEnd[] = [];
const HOSTS = ['k1', 'k2', 'k3'];
const TIMEOUT = 4000;
const HOST_TIMEOUT = 1000;
const LOST_CODES = ['WORKER_CRASHED', 'HOST_UNAVAILABLE'];

test.before(async () => {
  nats = await NatsServer.start(procs);
  agents = await startAgents(procs, HOSTS.map((hostId) => ({ servers: nats!.url, pool: 'hostloss', hostId, heartbeatInterval: 200 })));
  [fe] = await startFrontEnds(procs, { servers: nats.url, pool: 'hostloss', hostTimeout: HOST_TIMEOUT, requestTimeout: TIMEOUT, checkoutTimeout: 3000 });
  frontEnds.push(fe!);
  // A second front end that knows the sessions too (it has their placements cached): the loss
  // of a session is reported once, by whichever front end deletes its placement — not again here.
  [fe2] = await startFrontEnds(procs, { servers: nats.url, pool: 'hostloss', hostTimeout: HOST_TIMEOUT, requestTimeout: TIMEOUT, checkoutTimeout: 3000 });
  frontEnds.push(fe2!);
  const w = await fe!.op('whenHosts', { n: 3, timeout: 10_000 });
  assert.ok(w.ok, `whenHosts(3): ${JSON.stringify(w)}`);
});

test.after(() => {
  procs.killAll();
  rmSync(tmp, { recursive: true, force: true });
});

test('SIGKILL one agent mid-load: its requests fail fast and clearly, its sessions are lost once, the rest carries on', async () => {
  const dataSessions = Array.from({ length: 12 }, (_, i) => `d${i}`);
  const programSessions = Array.from({ length: 3 }, (_, i) => `p${i}`);
  // Place every session first (whoami keeps no state), to know where each one lives.
  const home = new Map<string, string>();
  for (const id of [...dataSessions, ...programSessions]) home.set(id, (await fe.value('whoami', null, { sessionId: id })).host);
  for (const id of dataSessions) assert.is((await fe2.value('whoami', null, { sessionId: id })).host, home.get(id), `both front ends place ${id} alike`);
  const on = (h: string, ids: string[]) => ids.filter((id) => home.get(id) === h);
  // The victim: a host with a program session, and the most data sessions among those.
  const victim = HOSTS.filter((h) => on(h, programSessions).length > 0).sort((a, b) => on(b, dataSessions).length - on(a, dataSessions).length)[0]!;
  const survivors = HOSTS.filter((h) => h !== victim);
  assert.ok(on(victim, dataSessions).length > 0, `placement: ${JSON.stringify([...home])}`);
  console.log(`  placement: ${HOSTS.map((h) => `${h}: ${on(h, dataSessions).length} data + ${on(h, programSessions).length} program sessions`).join('; ')}; victim ${victim}`);

  const lanes: Lane[] = [
    ...dataSessions.map((sessionId) => ({ kind: 'session' as const, sessionId })),
    ...programSessions.map((sessionId) => ({ kind: 'program' as const, sessionId })),
    ...Array.from({ length: 6 }, () => ({ kind: 'anon' as const, command: 'whoami', args: { ms: 2 } })),
  ];
  const started = await fe.op('loadStart', { lanes, timeout: TIMEOUT });
  // Under way on every host (and past the programs' creation), for the 1.5 s the rate before
  // the kill is measured over.
  await waitUntil(async () => {
    const p = await fe.op('loadProgress', { since: started.t + 500 });
    return HOSTS.every((h) => (p.hosts[h] ?? 0) >= 40) && p.failed === 0 && p.t > started.t + 2000 ? p : null;
  }, 20_000, 'the load to run on all 3 hosts');
  const victimAgent = agents.find((a) => a.hostId === victim)!;
  // The rate before the kill is measured over the 1.5 s before what follows (which loads the hosts).
  const tBefore = now();
  // Running on the victim when it dies (in sessions placed there for them): a slow request
  // and a stream that has delivered chunks.
  const slowIds: string[] = [];
  for (let i = 0; slowIds.length < 2 && i < 60; i++) {
    if ((await fe.value('whoami', null, { sessionId: `slow${i}` })).host === victim) slowIds.push(`slow${i}`);
  }
  assert.is(slowIds.length, 2, `sessions placed on ${victim}`);
  const paths = slowIds.map((id) => join(tmp, id));
  const slow = fe.execute('whoami', { ms: 3800, path: paths[0] }, { sessionId: slowIds[0], timeout: TIMEOUT }).then((o) => ({ ...o, at: now() }));
  const stream = fe.op('stream', { command: 'stream_forever', args: { path: paths[1], delay_ms: 10 }, opts: { sessionId: slowIds[1], timeout: TIMEOUT } });
  await waitUntil(() => existsSync(paths[0]!) && existsSync(paths[1]!) && Number(readFileSync(paths[1]!, 'utf8')) >= 3, 10_000, `the slow request and the stream running on ${victim}`);
  // Anonymous requests in flight, some of them accepted by the victim (queued there behind its
  // two busy workers, as its heartbeat shows): idempotent ones run again elsewhere; the others
  // may fail, with WORKER_CRASHED or HOST_UNAVAILABLE only.
  const victimQueue = async () => ((await fe.op('hosts')) as Array<{ hostId: string; queue: number; lastSeen: number }>).find((h) => h.hostId === victim)!;
  const q0 = (await victimQueue()).queue;
  const idempotent: Array<Promise<Outcome>> = [];
  const plain: Array<Promise<Outcome>> = [];
  for (let i = 0; i < 12; i++) {
    idempotent.push(fe.execute('whoami', { ms: 200 }, { idempotent: true, timeout: TIMEOUT }));
    plain.push(fe.execute('whoami', { ms: 200 }, { timeout: TIMEOUT }));
  }
  const qAt = await waitUntil(async () => {
    const h = await victimQueue();
    return h.queue >= q0 + 3 ? h.queue : null;
  }, 5000, `anonymous requests queued on ${victim} (its queue was ${q0})`);
  procs.sample(); // its Python workers are on record before it dies
  const tKill = now();
  victimAgent.child.signal('SIGKILL');
  await victimAgent.child.exited;
  // Run on past the host timeout and the 2 s recovery, then measure 1.5 s of recovered load.
  await waitUntil(() => now() > tKill + 3500, 10_000, 'the post-kill measurement window');
  const result = (await fe.op('loadStop')) as LoadResult;
  const { records, hung } = result;

  // In flight on the dead host: WORKER_CRASHED or HOST_UNAVAILABLE once the host is known to
  // be gone (about the host timeout), not at their own end or deadline.
  const o = await slow;
  assert.not.ok(o.ok, `the slow request on the dead host: ${JSON.stringify(o)}`);
  if (!o.ok) {
    assert.ok(LOST_CODES.includes(o.error.code!), `the slow request: ${o.error.code} ${o.error.message}`);
    assert.ok(o.at - tKill < HOST_TIMEOUT + 1000, `the slow request settled ${(o.at - tKill).toFixed(0)} ms after the kill (host timeout ${HOST_TIMEOUT} ms, its handler 3800 ms)`);
  }
  const s = await stream;
  assert.ok(s.chunks.length >= 3, `the stream delivered ${s.chunks.length} chunks before the host died`);
  assert.equal(s.chunks, s.chunks.map((_: unknown, i: number) => i), 'its chunks, in order');
  assert.ok(LOST_CODES.includes(s.error?.code), `the stream on the dead host ends with ${JSON.stringify(s.error)}`);
  assert.ok(s.ms < TIMEOUT, `the stream ended ${s.ms.toFixed(0)} ms after it started`);
  const idem = await Promise.all(idempotent);
  assert.equal(idem.filter((r) => !r.ok).map((r) => JSON.stringify(r)), [], 'idempotent anonymous requests in flight on the dead host run again elsewhere');
  const plainOut = await Promise.all(plain);
  assert.equal(plainOut.filter((r) => !r.ok && !LOST_CODES.includes(r.error.code!)).map((r) => JSON.stringify(r)), []);
  console.log(`  in flight at the kill: the slow request ${o.ok ? 'ok?!' : `${o.error.code} ${(o.at - tKill).toFixed(0)} ms after the kill`}, the stream ${s.error?.code} after ${s.chunks.length} chunks; ${victim}'s queue ${q0} → ${qAt} with the anonymous batch: 12 of 12 idempotent ones answered, ${plainOut.filter((r) => !r.ok).length} of 12 others failed`);

  // Never a hang: every request settled, within its deadline (plus scheduling slack).
  assert.equal(hung, [], `requests that never settled: ${JSON.stringify(hung)}`);
  const late = records.filter((r) => r.t1 - r.t0 > TIMEOUT + 1000);
  assert.equal(late.map(describe), [], 'requests that outlived their deadline');

  // Anonymous lanes: failures only for requests the dead host had, with a clear code;
  // from 2 s after the kill on, every request succeeds, on the survivors.
  const anon = records.filter((r) => r.kind === 'anon');
  const anonFailed = anon.filter((r) => !r.ok);
  assert.equal(anonFailed.filter((r) => !LOST_CODES.includes(r.error!.code!)).map(describe), [], 'anonymous failures other than WORKER_CRASHED/HOST_UNAVAILABLE');
  assert.equal(anonFailed.filter((r) => r.t1 < tKill).map(describe), [], 'anonymous failures before the kill');
  const after2s = anon.filter((r) => r.t0 >= tKill + 2000);
  assert.equal(after2s.filter((r) => !r.ok).map(describe), [], 'anonymous requests that failed 2 s after the kill');
  assert.equal(anon.filter((r) => r.ok && r.t0 > tKill + 100 && r.value.host === victim).map(describe), [], 'anonymous requests served by the dead host');
  const servedAfter = new Set(after2s.filter((r) => r.ok).map((r) => r.value.host));
  assert.equal([...servedAfter].sort(), survivors, 'the survivors serve the anonymous load');
  const before = rateIn(anon, tBefore - 1500, tBefore);
  const recovered = rateIn(anon, tKill + 2000, tKill + 3500);
  const perKind = (k: string) => records.filter((r) => r.kind === k);
  console.log(`  session lanes ${rateIn(perKind('session'), tBefore - 1500, tBefore).toFixed(0)}/s → ${rateIn(perKind('session'), tKill + 2000, tKill + 3500).toFixed(0)}/s, program lanes ${rateIn(perKind('program'), tBefore - 1500, tBefore).toFixed(0)}/s → ${rateIn(perKind('program'), tKill + 2000, tKill + 3500).toFixed(0)}/s (before the kill → from 2 s after)`);
  const firstOk = Math.min(...anon.filter((r) => r.ok && r.t0 > tKill).map((r) => r.t1));
  console.log(`  anonymous: ${before.toFixed(0)}/s before the kill, ${recovered.toFixed(0)}/s from 2 s after (first success ${(firstOk - tKill).toFixed(0)} ms after the kill); ${anonFailed.length} failed: ${[...new Set(anonFailed.map((r) => r.error!.code))]}`);
  assert.ok(recovered >= 0.5 * before, `anonymous throughput ${recovered.toFixed(0)}/s from 2 s after the kill vs ${before.toFixed(0)}/s before`);

  // Session lanes: never a wrong read; the victim's sessions are lost exactly once.
  for (const [i, lane] of lanes.entries()) {
    if (lane.kind !== 'session') continue;
    const mine = records.filter((r) => r.lane === i);
    const seen = checkSessionLane(lane.sessionId, mine);
    const id = lane.sessionId;
    if (home.get(id) !== victim) {
      assert.equal([...seen.errors, ...seen.lost].map(describe), [], `session ${id} on ${home.get(id)} (alive) was disturbed`);
      assert.equal(seen.hosts, [home.get(id)!], `session ${id} stays on its host`);
      continue;
    }
    assert.is(seen.lost.length, 1, `session ${id} on the dead host: SESSION_WORKER_LOST ${seen.lost.length} times\n${mine.filter((r) => !r.ok).map(describe).join('\n')}`);
    const lost = seen.lost[0]!;
    assert.is(lost.error!.reason, 'host_lost', describe(lost));
    assert.ok(lost.t0 > tKill - 5, `session ${id} lost before the kill: ${describe(lost)}`);
    for (const e of seen.errors) {
      assert.ok(LOST_CODES.includes(e.error!.code!), `session ${id}: ${describe(e)}`);
      assert.ok(e.t0 < lost.t0, `session ${id}: an error after its SESSION_WORKER_LOST: ${describe(e)}`);
    }
    // In flight when the host died: WORKER_CRASHED or HOST_UNAVAILABLE, never the lost-session error.
    const inflight = mine.filter((r) => r.t0 < tKill && r.t1 > tKill);
    // (one that answered just before the process died is fine: its read was checked above)
    for (const r of inflight.filter((r) => !r.ok)) assert.ok(LOST_CODES.includes(r.error!.code!), `session ${id}, in flight at the kill: ${describe(r)}`);
    assert.is(seen.hosts.length, 2, `session ${id}: hosts ${seen.hosts}`);
    assert.is(seen.hosts[0], victim);
    assert.ok(survivors.includes(seen.hosts[1]!), `session ${id} moved to ${seen.hosts[1]}`);
    assert.ok(mine.some((r) => r.ok && r.cmd === 'read' && r.t0 > lost.t1), `session ${id} was read after it moved`);
  }

  // The other front end: every session readable, where the first one moved it, with the same
  // state, and no second SESSION_WORKER_LOST for a loss the first one reported.
  for (const id of dataSessions) {
    const there = await fe2.execute('read', null, { sessionId: id });
    assert.ok(there.ok, `session ${id} through the second front end: ${JSON.stringify(there)}`);
    const here = await fe.value('read', null, { sessionId: id });
    if (there.ok) assert.equal([there.value.host, there.value.log], [here.host, here.log], `session ${id} seen alike by both front ends`);
  }

  // Program lanes (PythonPool over the cluster pool): every answer right; the victim's programs
  // are restored on another host by the adapter and keep working.
  for (const [i, lane] of lanes.entries()) {
    if (lane.kind !== 'program') continue;
    const id = lane.sessionId;
    const mine = records.filter((r) => r.lane === i && r.cmd === 'executeProgram');
    for (const r of mine.filter((r) => r.ok)) assert.is(r.value.answer, `dummy answer to: ${(r as { question?: string }).question}`, describe(r));
    const failed = mine.filter((r) => !r.ok);
    if (home.get(id) !== victim) {
      assert.equal(failed.map(describe), [], `program session ${id} on ${home.get(id)} (alive) was disturbed`);
      continue;
    }
    for (const r of failed) {
      assert.ok(LOST_CODES.includes(r.error!.code!), `program session ${id}: ${describe(r)}`);
      assert.ok(r.t0 < tKill + HOST_TIMEOUT + 500, `program session ${id} failed long after the kill: ${describe(r)}`);
    }
    const okAfter = mine.filter((r) => r.ok && r.t0 > tKill);
    assert.ok(okAfter.length >= 3, `program session ${id} ran ${okAfter.length} times after the kill`);
    assert.ok(okAfter.some((r) => r.value.restored === true), `program session ${id}: restored on its new host`);
    assert.ok(mine.filter((r) => r.t0 >= tKill + 2000).every((r) => r.ok), `program session ${id} fails 2 s after the kill`);
    const moved = await fe.value('whoami', null, { sessionId: id });
    assert.ok(survivors.includes(moved.host), `program session ${id} now on ${moved.host}`);
  }
  const lanesFailed = records.filter((r) => !r.ok).length;
  console.log(`  ${records.length} requests, ${lanesFailed} failed; adapter retries: ${result.retries.map((r) => `${r.sessionId}/${r.reason}`).join(', ') || 'none'}`);

  // The dead agent's Python workers do not outlive it.
  const orphans = [...victimAgent.workerPids];
  await waitUntil(() => orphans.every((pid) => !isAlive(pid)), 5000, `the dead agent's Python workers (${orphans}) to exit`);
  // The front end forgot the host.
  const hosts = (await fe.op('hosts')) as Array<{ hostId: string }>;
  assert.equal(hosts.map((h) => h.hostId).sort(), survivors);
});

test('an agent restarted under the same hostId before its host timeout: its sessions are still lost once, then fresh', async () => {
  // A front end that would wait 10 s before dropping a silent host: only the new incarnation
  // (its heartbeat, or its refusal of the old placement) can tell it the state is gone.
  const slowFe = new FrontEnd(procs, { servers: nats!.url, pool: 'hostloss', hostTimeout: 10_000, requestTimeout: TIMEOUT }, 'front end (hostTimeout 10 s)');
  frontEnds.push(slowFe);
  await slowFe.ready();
  const up = await slowFe.op('whenHosts', { n: 2, timeout: 10_000 });
  assert.ok(up.ok, JSON.stringify(up));
  const live = agents.filter((a) => a.child.alive);
  assert.is(live.length, 2);
  const ids = Array.from({ length: 10 }, (_, i) => `again${i}`);
  const where = new Map<string, string>();
  for (const id of ids) where.set(id, (await slowFe.value('set', { key: 'k', value: id }, { sessionId: id })).host);
  const target = live.map((a) => a.hostId).sort((a, b) => ids.filter((id) => where.get(id) === b).length - ids.filter((id) => where.get(id) === a).length)[0]!;
  const old = live.find((a) => a.hostId === target)!;
  assert.ok(ids.some((id) => where.get(id) === target), `sessions on ${target}: ${JSON.stringify([...where])}`);
  procs.sample();
  const t0 = now();
  old.child.signal('SIGKILL');
  await old.child.exited;
  const [reborn] = await startAgents(procs, [{ servers: nats!.url, pool: 'hostloss', hostId: target, heartbeatInterval: 200 }]);
  agents.push(reborn!);
  console.log(`  ${target} SIGKILLed and serving again ${(now() - t0).toFixed(0)} ms later`);
  for (const id of ids) {
    const first = await slowFe.execute('get', { key: 'k' }, { sessionId: id });
    if (where.get(id) !== target) {
      assert.ok(first.ok && first.value.found && first.value.value === id, `session ${id} on ${where.get(id)}: ${JSON.stringify(first)}`);
      continue;
    }
    assert.not.ok(first.ok, `session ${id} was on ${target}'s previous incarnation: ${JSON.stringify(first)}`);
    if (first.ok) continue;
    assert.is(first.error.code, 'SESSION_WORKER_LOST', JSON.stringify(first.error));
    assert.is(first.error.reason, 'host_lost');
    assert.ok(first.ms < TIMEOUT, `SESSION_WORKER_LOST after ${first.ms.toFixed(0)} ms`);
    const again = await slowFe.execute('get', { key: 'k' }, { sessionId: id });
    assert.ok(again.ok && again.value.found === false, `session ${id} afterwards: ${JSON.stringify(again)}`);
  }
});

test('no process started by this suite is alive (nats-server, agents, Python workers, front ends)', async () => {
  await stopAllProcs(procs, { frontEnds, agents, nats });
  for (const a of agents.filter((a) => a.child.exit?.signal !== 'SIGKILL')) assert.equal(a.child.exit, { code: 0, signal: null }, `${a.hostId} drained and exited 0:\n${a.child.tail()}`);
  await assertAllDead(procs);
});

test.run();
