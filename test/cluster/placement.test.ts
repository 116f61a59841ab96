/**
 * Cluster tier: session placement across hosts. A real nats-server, 3 agent processes (each a
 * local pool of 2 real python3 workers) and 2 front-end processes: 300 sessions × 10
 * set-then-read steps, each step written through one front end and read back through the
 * other — every read is right, and each session is served by exactly one host (the
 * placement in the KV bucket is what both front ends follow).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertAllDead, FrontEnd, NatsServer, Procs, startAgents, startFrontEnds, stopAllProcs, waitUntil, type AgentProc } from './helpers.js';

const procs = new Procs();
let nats: NatsServer | null = null;
let agents: AgentProc[] = [];
let fes: FrontEnd[] = [];
const HOSTS = ['p1', 'p2', 'p3'];
const SESSIONS = 300;
const STEPS = 10;

test.before(async () => {
  nats = await NatsServer.start(procs);
  agents = await startAgents(procs, HOSTS.map((hostId) => ({ servers: nats!.url, pool: 'placement', hostId, heartbeatInterval: 250 })));
  fes = await startFrontEnds(procs, { servers: nats.url, pool: 'placement', requestTimeout: 10_000 }, 2);
  for (const fe of fes) {
    const w = await fe.op('whenHosts', { n: 3, timeout: 10_000 });
    assert.ok(w.ok, `whenHosts(3): ${JSON.stringify(w)}`);
  }
});

test.after(() => procs.killAll());

/** Run `fn` over 0..n-1 with at most `limit` in flight. */
async function pmap(n: number, limit: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < n) await fn(next++);
  }));
}

test(`3 hosts, 2 front ends: ${SESSIONS} sessions × ${STEPS} set-then-read, every read right, each session on one host`, async () => {
  const hostsOf = new Map<string, Set<string>>();
  const wrong: string[] = [];
  let reads = 0;
  const t0 = Date.now();
  await pmap(SESSIONS, 24, async (s) => {
    const id = `s${s}`;
    const hosts = new Set<string>();
    hostsOf.set(id, hosts);
    for (let i = 0; i < STEPS; i++) {
      // Written through one front end, read back through the other.
      const writer = fes[(s + i) % 2]!;
      const reader = fes[(s + i + 1) % 2]!;
      const w = await writer.execute('set', { key: `k${i}`, value: `${id}:${i}` }, { sessionId: id });
      if (!w.ok) {
        wrong.push(`${id} set k${i}: ${w.error.code} ${w.error.message}`);
        return;
      }
      hosts.add(w.value.host);
      const r = await reader.execute('get', { key: `k${i}` }, { sessionId: id });
      if (!r.ok) {
        wrong.push(`${id} get k${i}: ${r.error.code} ${r.error.message}`);
        return;
      }
      hosts.add(r.value.host);
      reads++;
      if (!r.value.found || r.value.value !== `${id}:${i}`) wrong.push(`${id} get k${i} on ${r.value.host}: ${JSON.stringify(r.value)}`);
    }
    // The whole session, once more: exactly the ten keys, nothing from another session.
    const all = await fes[s % 2]!.execute('get', null, { sessionId: id });
    if (!all.ok) return void wrong.push(`${id} get all: ${all.error.code} ${all.error.message}`);
    hosts.add(all.value.host);
    const expected = Object.fromEntries(Array.from({ length: STEPS }, (_, i) => [`k${i}`, `${id}:${i}`]));
    if (JSON.stringify(all.value.all) !== JSON.stringify(expected)) wrong.push(`${id} holds ${JSON.stringify(all.value.all)}`);
  });
  const secs = (Date.now() - t0) / 1000;
  console.log(`  ${SESSIONS * (2 * STEPS + 1)} requests through 2 front ends in ${secs.toFixed(1)} s (${((SESSIONS * (2 * STEPS + 1)) / secs).toFixed(0)}/s)`);
  assert.equal(wrong.slice(0, 10), [], `${wrong.length} wrong answers or failures`);
  assert.is(reads, SESSIONS * STEPS);
  const split = [...hostsOf].filter(([, h]) => h.size !== 1);
  assert.equal(split.map(([id, h]) => `${id}: ${[...h]}`), [], 'each session is served by exactly one host');
  const perHost = Object.fromEntries(HOSTS.map((h) => [h, 0]));
  for (const [, h] of hostsOf) perHost[[...h][0]!]!++;
  console.log(`  sessions per host: ${JSON.stringify(perHost)}`);
  // Least loaded first: every host takes a share (not one host for all).
  for (const h of HOSTS) assert.ok(perHost[h]! >= SESSIONS / 10, `host ${h} holds ${perHost[h]} of ${SESSIONS} sessions: ${JSON.stringify(perHost)}`);

  // The hosts agree: their workers hold exactly these sessions (stats() aggregates the heartbeats).
  await waitUntil(async () => (await fes[0]!.op('stats')).activeSessions === SESSIONS, 5000, `stats().activeSessions to be ${SESSIONS}`);
});

test('workers() of either front end lists the 6 workers with their host', async () => {
  for (const fe of fes) {
    const workers = (await fe.op('workers')) as Array<{ host: string; pid: number }>;
    assert.is(workers.length, 6);
    for (const a of agents) {
      const mine = workers.filter((w) => w.host === a.hostId);
      assert.is(mine.length, 2, `${a.hostId}: ${JSON.stringify(mine)}`);
      for (const w of mine) assert.ok(a.workerPids.has(w.pid), `${a.hostId}'s worker pid ${w.pid} is one the agent started (${[...a.workerPids]})`);
    }
  }
});

test('a session first used through both front ends at once is placed once (compare-and-set in the KV bucket)', async () => {
  const split: string[] = [];
  await pmap(100, 10, async (i) => {
    const id = `race${i}`;
    // whoami keeps no state: two first requests at once may take two workers of the host.
    const [a, b] = await Promise.all([fes[0]!.value('whoami', null, { sessionId: id }), fes[1]!.value('whoami', null, { sessionId: id })]);
    if (a.host !== b.host) split.push(`${id}: ${a.host} / ${b.host}`);
    const later = await fes[i % 2]!.value('whoami', null, { sessionId: id });
    if (later.host !== a.host) split.push(`${id}: ${a.host}, then ${later.host}`);
  });
  assert.equal(split, [], 'sessions placed on two hosts by two front ends');
});

test('endSession through one front end frees the session for both', async () => {
  const before = await fes[1]!.value('get', { key: 'k0' }, { sessionId: 's7' });
  assert.is(before.value, 's7:0');
  const freed = await fes[0]!.op('endSession', { sessionId: 's7' });
  assert.ok(freed.ok, JSON.stringify(freed));
  assert.is(freed.value, 1);
  const after = await fes[1]!.value('get', { key: 'k0' }, { sessionId: 's7' });
  assert.is(after.found, false, JSON.stringify(after));
});

test('no process started by this suite is alive (nats-server, agents, Python workers, front ends)', async () => {
  await stopAllProcs(procs, { frontEnds: fes, agents, nats });
  for (const a of agents) assert.equal(a.child.exit, { code: 0, signal: null }, `${a.hostId} drained and exited 0:\n${a.child.tail()}`);
  await assertAllDead(procs);
});

test.run();
