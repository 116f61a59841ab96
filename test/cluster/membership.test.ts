/**
 * Cluster tier: hosts joining and leaving, with the real CLI (`pyvisor agent`, src/cli.ts via
 * tsx) as the agent processes and a real nats-server. An agent started later joins and takes
 * new sessions while the old ones stay where they are; SIGTERM to an agent drains it: what it
 * had accepted finishes, the load flows to the other host, 0 requests fail, it deregisters at
 * once (not after the host timeout), exits 0 and leaves no Python worker behind; its sessions
 * then get SESSION_WORKER_LOST once and start fresh on the other host.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  AgentProc,
  assertAllDead,
  describe,
  freePort,
  FrontEnd,
  isAlive,
  NatsServer,
  now,
  Procs,
  startFrontEnds,
  stopAllProcs,
  waitUntil,
  type Lane,
  type LoadResult,
} from './helpers.js';

const procs = new Procs();
const tmp = mkdtempSync(join(tmpdir(), 'pyvisor-cluster-membership-'));
let nats: NatsServer | null = null;
const agents: AgentProc[] = [];
let fe: FrontEnd;
const OLD = Array.from({ length: 20 }, (_, i) => `old${i}`);
const NEW = Array.from({ length: 40 }, (_, i) => `new${i}`);
const hostOf = new Map<string, string>();
/** m1's sessions that heard of their loss already. */
const lostAlready = new Set<string>();

async function cliAgent(hostId: string): Promise<AgentProc> {
  const a = new AgentProc(procs, { servers: nats!.url, pool: 'members', hostId, cli: true });
  agents.push(a);
  const line = await a.ready();
  assert.is(line[0], `agent ${hostId} serving pool members via ${nats!.url}`);
  procs.sample();
  return a;
}

test.before(async () => {
  nats = await NatsServer.start(procs);
  await cliAgent('m1');
  [fe] = await startFrontEnds(procs, { servers: nats.url, pool: 'members' });
  const w = await fe!.op('whenHosts', { n: 1, timeout: 10_000 });
  assert.ok(w.ok, `whenHosts(1): ${JSON.stringify(w)}`);
});

test.after(() => {
  procs.killAll();
  rmSync(tmp, { recursive: true, force: true });
});

test('an agent started later joins and takes new sessions; the old ones stay on their host', async () => {
  for (const id of OLD) {
    const r = await fe.value('set', { key: 'k', value: id }, { sessionId: id });
    assert.is(r.host, 'm1');
    hostOf.set(id, r.host);
  }
  await cliAgent('m2');
  const w = await fe.op('whenHosts', { n: 2, timeout: 10_000 });
  assert.ok(w.ok, `whenHosts(2): ${JSON.stringify(w)}`);
  for (const id of NEW) hostOf.set(id, (await fe.value('set', { key: 'k', value: id }, { sessionId: id })).host);
  const onM2 = NEW.filter((id) => hostOf.get(id) === 'm2').length;
  console.log(`  new sessions: ${onM2} of ${NEW.length} on the new host m2`);
  assert.ok(onM2 >= NEW.length / 4, `the new host took ${onM2} of ${NEW.length} new sessions`);
  for (const id of [...OLD, ...NEW]) {
    const r = await fe.value('get', { key: 'k' }, { sessionId: id });
    assert.equal([r.host, r.found, r.value], [hostOf.get(id), true, id], `session ${id}`);
  }
});

test('SIGTERM drains an agent: what it accepted finishes, 0 requests fail, it deregisters at once and exits 0', async () => {
  const m1 = agents.find((a) => a.hostId === 'm1')!;
  // m1's Python workers (the CLI's pool may have grown overflow workers besides its 2)
  const m1Workers = () => new Set(procs.alive().filter(({ what }) => what === `descendant of ${m1.pid}`).map(({ pid }) => pid));
  assert.ok(m1Workers().size >= 2, `m1's Python workers: ${[...m1Workers()]}`);
  const onM2 = NEW.filter((id) => hostOf.get(id) === 'm2');
  const lanes: Lane[] = [
    ...onM2.slice(0, 2).map((sessionId) => ({ kind: 'session' as const, sessionId })),
    ...Array.from({ length: 4 }, () => ({ kind: 'anon' as const, command: 'whoami', args: { ms: 5 } })),
  ];
  const started = await fe.op('loadStart', { lanes, timeout: 10_000 });
  await waitUntil(async () => {
    const p = await fe.op('loadProgress', { since: started.t });
    return (p.hosts.m1 ?? 0) >= 20 && (p.hosts.m2 ?? 0) >= 20 ? p : null;
  }, 20_000, 'the load to run on both hosts');

  // Three slow requests in m1's sessions: two run (its two workers), one waits in its queue.
  const paths = [0, 1, 2].map((i) => join(tmp, `slow-${i}`));
  const slow = OLD.slice(0, 3).map((id, i) => fe.execute('whoami', { ms: 1500, path: paths[i] }, { sessionId: id }));
  await waitUntil(() => paths.filter(existsSync).length >= 2, 10_000, 'two slow requests running on m1');
  await waitUntil(async () => {
    const h = ((await fe.op('hosts')) as Array<{ hostId: string; inflight: number; queue: number }>).find((x) => x.hostId === 'm1');
    return h && h.inflight + h.queue >= 3;
  }, 5000, 'm1 to report the third request accepted (inflight + queue >= 3)');
  procs.sample();
  const m1Pids = m1Workers();
  const tTerm = now();
  m1.child.signal('SIGTERM');
  // A new request in one of m1's sessions once it drains: m1 takes no new requests, so the
  // session's state is lost with it — SESSION_WORKER_LOST (within its deadline), not a hang.
  await m1.child.waitFor(/agent m1: SIGTERM, draining/, 10_000);
  const during = fe.execute('get', { key: 'k' }, { sessionId: OLD[5]!, timeout: 10_000 });
  const done = await Promise.all(slow);
  for (const [i, o] of done.entries()) {
    assert.ok(o.ok, `slow request ${i} accepted before SIGTERM: ${JSON.stringify(o)}`);
    if (o.ok) assert.is(o.value.host, 'm1');
  }
  const exit = await m1.child.exited;
  const tExit = now();
  assert.equal(exit, { code: 0, signal: null }, `m1 exits 0 after draining:\n${m1.child.tail()}`);
  // Deregistered, not timed out: gone from hosts() well before the 3 s host timeout.
  await waitUntil(async () => !((await fe.op('hosts')) as Array<{ hostId: string }>).some((h) => h.hostId === 'm1'), 1500, 'm1 to leave hosts() (deregistration)');
  console.log(`  m1 drained in ${((tExit - tTerm) / 1000).toFixed(2)} s and left hosts() ${(now() - tExit).toFixed(0)} ms after its exit`);
  await waitUntil(async () => ((await fe.op('loadProgress', { since: tExit })).hosts.m2 ?? 0) >= 50, 10_000, 'the load to go on on m2');
  const { records, hung } = (await fe.op('loadStop')) as LoadResult;
  assert.equal(hung, []);
  assert.equal(records.filter((r) => !r.ok).map(describe), [], 'requests that failed while m1 drained');
  const d = await during;
  assert.ok(!d.ok && d.error.code === 'SESSION_WORKER_LOST', `a request in m1's session ${OLD[5]} sent while m1 drained: ${JSON.stringify(d)}`);
  lostAlready.add(OLD[5]!);
  console.log(`  a request in one of m1's sessions sent during the drain: ${d.ok ? 'ok' : `${d.error.code}/${d.error.reason}`} after ${d.ms.toFixed(0)} ms`);
  assert.equal(records.filter((r) => r.ok && r.value.host === 'm1' && r.t0 > tExit).map(describe), [], 'requests served by m1 after it exited');
  await waitUntil(() => [...m1Pids].every((pid) => !isAlive(pid)), 5000, `m1's Python workers (${[...m1Pids]}) to be gone`);
});

test("a drained host's sessions: SESSION_WORKER_LOST once, then fresh on the other host", async () => {
  for (const id of OLD.filter((id) => !lostAlready.has(id))) {
    const first = await fe.execute('get', { key: 'k' }, { sessionId: id });
    assert.not.ok(first.ok, `session ${id} of the drained host: ${JSON.stringify(first)}`);
    if (first.ok) continue;
    assert.is(first.error.code, 'SESSION_WORKER_LOST', JSON.stringify(first.error));
    assert.ok(['host_lost', 'removed'].includes(first.error.reason!), `reason ${first.error.reason}`);
    const again = await fe.value('get', { key: 'k' }, { sessionId: id });
    assert.equal([again.host, again.found], ['m2', false], `session ${id} afterwards: ${JSON.stringify(again)}`);
  }
});

test('pyvisor agent without a reachable NATS server: exits 1 at once, saying HOST_UNAVAILABLE and where it tried', async () => {
  const port = await freePort();
  const a = new AgentProc(procs, { servers: `nats://127.0.0.1:${port}`, pool: 'members', hostId: 'nowhere', cli: true });
  const t0 = now();
  const exit = await a.child.exited;
  assert.equal(exit, { code: 1, signal: null }, a.child.output());
  assert.ok(now() - t0 < 15_000, `exited after ${(now() - t0).toFixed(0)} ms`);
  assert.match(a.child.output(), new RegExp(`HOST_UNAVAILABLE: .*nats://127\\.0\\.0\\.1:${port}`));
  assert.not.match(a.child.output(), /serving pool/);
});

test('no process started by this suite is alive (nats-server, agents, Python workers, front ends)', async () => {
  await stopAllProcs(procs, { frontEnds: [fe], agents, nats });
  for (const a of agents) assert.equal(a.child.exit, { code: 0, signal: null }, `${a.hostId} drained and exited 0:\n${a.child.tail()}`);
  await assertAllDead(procs);
});

test.run();
