/**
 * Layer 3: the short CI versions of the chaos and stress suites (the full ones are
 * `npm run chaos` and `npm run stress`; same code, scripts/chaos/*). Real Python processes and
 * real SIGKILLs; about 40 s in all.
 *
 * Each scenario returns the list of what it saw go wrong; a test passes when that list is
 * empty. The suite ends by checking that no Python process started while it ran is alive.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { escalation } from '../../scripts/chaos/escalation.js';
import { hostile } from '../../scripts/chaos/hostile.js';
import { killStorm } from '../../scripts/chaos/killStorm.js';
import { parentDeath } from '../../scripts/chaos/parentDeath.js';
import { soak } from '../../scripts/chaos/soak.js';
import { descendants, procStat, waitUntil } from '../../scripts/chaos/procs.js';
import { PYTHON } from '../../scripts/chaos/common.js';

const log = process.env.PYVISOR_CHAOS_VERBOSE ? (l: string) => console.log(l) : undefined;
// The processes that were already there when this suite started (uvu runs the files of a tier
// in one process): only processes started after this are this suite's.
let before = new Set<string>();
test.before(() => {
  before = new Set(descendants(process.pid).map((p) => `${p.pid}:${p.starttime}`));
});

for (const maxOverflow of [0, 2]) {
  test(`kill storm with the default restart budget${maxOverflow ? ', overflow on' : ''}: 4 workers, 16 callers, a SIGKILL every 250 ms for 8 s — every request settles, only in-flight requests of killed pids fail, the pool stays open and is back to full health within 1 s`, async () => {
    const r = await killStorm({ seconds: 8, maxOverflow, python: PYTHON, log });
    assert.equal(r.violations, []);
    assert.ok(r.kills >= 20, `only ${r.kills} kills`);
    assert.ok(r.requests > 100, `only ${r.requests} requests`);
    assert.is(r.succeeded + r.crashedInFlight + r.retriedAndKilledAgain, r.requests);
    assert.ok(r.recoveryMs !== null && r.recoveryMs <= 1000, `recovered ${r.recoveryMs} ms after the last kill`);
    assert.is(r.killedStillRunning, 0);
    assert.is(r.aliveAfterStop, 0);
  });
}

test('parent death: the Node parent of a pool of 4 is SIGKILLed — every worker exits within 2 s, using no CPU meanwhile', async () => {
  const r = await parentDeath({ python: PYTHON, log });
  assert.equal(r.violations, []);
  assert.is(r.workers, 4);
  assert.ok(r.exitMs.every((ms) => ms !== null && ms <= 2000), `exits after ${r.exitMs.join(', ')} ms`);
});

for (const ending of ['kill', 'exit'] as const) {
  test(`parent death while every worker spins ignoring SIGTERM: the parent ${ending === 'kill' ? 'is SIGKILLed' : 'calls process.exit(0) without stop()'} — every worker gone within 2 s`, async () => {
    const r = await parentDeath({ python: PYTHON, work: 'spin', ending, log });
    assert.equal(r.violations, []);
    assert.is(r.workers, 4);
    assert.ok(r.exitMs.every((ms) => ms !== null && ms <= 2000), `exits after ${r.exitMs.join(', ')} ms`);
  });
}

test('hostile worker: 3,000 fuzzed frames through the transport and 60 through the pool — one ProtocolError each, only that worker restarted, memory bounded', async () => {
  const r = await hostile({ streamCases: 3000, poolCases: 60, python: PYTHON, log });
  assert.equal(r.violations, []);
  assert.is(r.stream.protocolErrors, 3000);
  assert.is(r.pool.cases, 60);
  assert.is(r.pool.protocolErrors, 60);
  assert.is(r.pool.restarts, 60);
  assert.is(r.pool.otherWorkersRestarted, 0);
  // Every category, the 4 GiB length headers included, went through the pool at least once.
  assert.is(Object.keys(r.pool.byCategory).length, 20);
});

test('soak: 50,000 requests through 4 workers — every answer right, Node heap and each worker RSS flat within 10% after warm-up', async () => {
  const r = await soak({ requests: 50_000, python: PYTHON, log });
  assert.equal(r.violations, []);
  assert.is(r.errors, 0);
  assert.ok(r.heapGrowth <= 0.1);
  assert.ok(r.pythonRssGrowth.every((g) => g <= 0.1));
});

test('escalation: workers that crash at every start — createPool rejects with SupervisorEscalationError within the restart budget, no hot loop, no process left', async () => {
  const r = await escalation({ python: PYTHON, log });
  assert.equal(r.violations, []);
  assert.is(r.rejectedWith, 'SupervisorEscalationError');
  assert.is(r.attemptsAfterRejection, 0);
  assert.is(r.alive, 0);
});

test('no Python process started by this suite is alive', async () => {
  const mine = () => descendants(process.pid).filter((p) => !before.has(`${p.pid}:${p.starttime}`) && /python/i.test(procStat(p.pid)?.comm ?? ''));
  await waitUntil(() => mine().length === 0, 2000);
  assert.equal(mine().map((p) => p.pid), []);
});

test.run();
