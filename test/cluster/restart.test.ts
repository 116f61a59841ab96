/**
 * Cluster tier: the nats-server restarted under load. A real nats-server, 2 agent processes
 * (pools of 2 real python3 workers) and a front-end process running session and anonymous
 * lanes; the server is stopped by pid and started again on the same port and store
 * directory. Requests during the gap fail with a clear error (a pyvisor error code) within
 * their deadline, never a hang or a wrong answer; traffic resumes on both hosts once the
 * clients reconnect, with the same agent processes (none restarted).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  assertAllDead,
  checkSessionLane,
  describe,
  FrontEnd,
  NatsServer,
  now,
  Procs,
  startAgents,
  startFrontEnds,
  stopAllProcs,
  waitUntil,
  type AgentProc,
  type Lane,
  type LoadResult,
} from './helpers.js';

const procs = new Procs();
let nats: NatsServer | null = null;
let agents: AgentProc[] = [];
let fe: FrontEnd;
const HOSTS = ['r1', 'r2'];
const TIMEOUT = 1500;
/** What a request may fail with while the server is away: each a pyvisor error with a code. */
const GAP_CODES = ['HOST_UNAVAILABLE', 'REQUEST_TIMEOUT', 'POOL_TIMEOUT', 'WORKER_CRASHED', 'SESSION_WORKER_LOST'];

test.before(async () => {
  nats = await NatsServer.start(procs);
  agents = await startAgents(procs, HOSTS.map((hostId) => ({ servers: nats!.url, pool: 'restart', hostId, heartbeatInterval: 250 })));
  [fe] = await startFrontEnds(procs, { servers: nats.url, pool: 'restart', requestTimeout: TIMEOUT, checkoutTimeout: TIMEOUT });
  const w = await fe!.op('whenHosts', { n: 2, timeout: 10_000 });
  assert.ok(w.ok, `whenHosts(2): ${JSON.stringify(w)}`);
});

test.after(() => procs.killAll());

/**
 * Run session and anonymous lanes, stop the server by pid, keep it down until requests have
 * failed for it and at least `downMs`, start it again on the same port and store, and
 * check what the lanes saw.
 */
async function restartUnderLoad(tag: string, downMs: number): Promise<void> {
  const agentPids = agents.map((a) => a.pid);
  const lanes: Lane[] = [
    ...Array.from({ length: 6 }, (_, i) => ({ kind: 'session' as const, sessionId: `${tag}${i}` })),
    ...Array.from({ length: 4 }, () => ({ kind: 'anon' as const, command: 'whoami', args: { ms: 2 } })),
  ];
  const started = await fe.op('loadStart', { lanes, timeout: TIMEOUT });
  await waitUntil(async () => {
    const p = await fe.op('loadProgress', { since: started.t });
    return HOSTS.every((h) => (p.hosts[h] ?? 0) >= 30) ? p : null;
  }, 20_000, 'the load to run on both hosts');

  const tStop = now();
  await nats!.stop();
  const tDown = now();
  // Down until requests have failed for it (at least one full request timeout's worth).
  await waitUntil(async () => {
    const p = await fe.op('loadProgress', { since: tDown });
    return p.failed >= 5 && now() > tDown + Math.max(TIMEOUT, downMs) ? p : null;
  }, 15_000 + downMs, 'requests to fail while the server is down');
  const gap = await fe.op('loadProgress', { since: tDown });
  await nats!.restart();
  const tUp = now();
  const resumed = await waitUntil(async () => {
    const p = await fe.op('loadProgress', { since: tUp });
    return HOSTS.every((h) => (p.hosts[h] ?? 0) >= 20) && (p.lanes as number[]).every((n) => n >= 2) ? p : null;
  }, 30_000, 'traffic to resume on both hosts and in every lane after the restart');
  const resumedIn = now() - tUp;
  const tResumed = now();
  const result = (await fe.op('loadStop')) as LoadResult;
  const { records, hung } = result;
  const firstOk = Math.min(...records.filter((r) => r.ok && r.t0 > tUp).map((r) => r.t1));
  console.log(`  down ${((tUp - tStop) / 1000).toFixed(1)} s: ${gap.failed} failed (${JSON.stringify(gap.codes)}); first success ${(firstOk - tUp).toFixed(0)} ms after the restart, every lane served again within ${resumedIn.toFixed(0)} ms; ${JSON.stringify(resumed.hosts)} since`);

  // The same agent processes serve again: none was restarted.
  assert.equal(agents.map((a) => a.pid), agentPids);
  assert.ok(agents.every((a) => a.child.alive), 'every agent still runs');

  // Never a hang; every failure a clear error, in time.
  assert.equal(hung, [], `requests that never settled: ${JSON.stringify(hung)}`);
  const late = records.filter((r) => r.t1 - r.t0 > TIMEOUT + 1000);
  assert.equal(late.map(describe), [], `requests that outlived their ${TIMEOUT} ms deadline`);
  const failed = records.filter((r) => !r.ok);
  assert.ok(failed.length > 0, 'requests sent while the server was down failed');
  assert.equal(failed.filter((r) => !GAP_CODES.includes(r.error!.code!) || !r.error!.message).map(describe), [], 'failures without a clear pyvisor error');
  assert.equal(failed.filter((r) => r.t1 < tStop).map(describe), [], "failures before the server stopped");
  assert.equal(failed.filter((r) => r.t0 > tResumed).map(describe), [], 'failures after traffic resumed');

  // Sessions: never a wrong read (state kept on its host, or lost once and fresh).
  let kept = 0;
  for (const [i, lane] of lanes.entries()) {
    if (lane.kind !== 'session') continue;
    const mine = records.filter((r) => r.lane === i);
    const seen = checkSessionLane(lane.sessionId, mine);
    assert.ok(seen.lost.length <= 1, `session ${lane.sessionId} lost ${seen.lost.length} times`);
    for (const l of seen.lost) assert.is(l.error!.reason, 'host_lost', describe(l));
    assert.ok(mine.some((r) => r.ok && r.cmd === 'read' && r.t0 > tUp), `session ${lane.sessionId} is read again after the restart`);
    if (seen.lost.length) console.log(`  session ${lane.sessionId}: lost once (${describe(seen.lost[0]!)}), then on ${seen.hosts.at(-1)}`);
    else kept++;
  }
  console.log(`  ${kept} of 6 sessions kept their state across the restart`);
}

test('nats-server restarted under load: clear errors within the deadline during the gap, then traffic resumes on the same agents', async () => {
  await restartUnderLoad('short', 0);
});

test('nats-server down for longer than the host timeout (3 s): the same, and no session reads stale state', async () => {
  await restartUnderLoad('long', 4000);
});

test('no process started by this suite is alive (nats-server, agents, Python workers, front ends)', async () => {
  await stopAllProcs(procs, { frontEnds: [fe], agents, nats });
  for (const a of agents) assert.equal(a.child.exit, { code: 0, signal: null }, `${a.hostId} drained and exited 0:\n${a.child.tail()}`);
  await assertAllDead(procs);
});

test.run();
