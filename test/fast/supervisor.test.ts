/**
 * OTP's supervisor_SUITE, ported to the simulation: real supervisor and worker machines, fake
 * Python processes, simulated clock, no real sleeps.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createActor } from 'xstate';
import { createSimulation, type Simulation } from '../../src/testing/index.js';
import { childrenOf, countChildren, supervisorMachine, type ChildSpec, type RestartType, type Strategy } from '../../machines/supervisor.js';
import { SupervisorEscalationError, fromWire } from '../../src/errors.js';
import type { ShutdownSpec } from '../../machines/worker.js';
import { workerStateName } from '../../machines/workerStates.js';

interface Harness {
  sim: Simulation;
  sup: ReturnType<typeof createActor<typeof supervisorMachine>>;
  events: Array<{ type: string; id?: string }>;
  pid(id: string): number;
  state(id: string): string | undefined;
  ids(): string[];
  status(): string;
}

/** Every scenario is also replayed 20 times at the end, to prove the suite deterministic. */
const scenarios: Array<[string, () => void]> = [];
function scenario(name: string, fn: () => void): void {
  scenarios.push([name, fn]);
  test(name, fn);
}
/** Every harness's event log, so the replays can be compared with the first run. */
let traces: Array<Array<{ type: string; id?: string }>> = [];

function spec(sim: Simulation, id: string, restart: RestartType = 'permanent', shutdown: ShutdownSpec = 1000): ChildSpec {
  return { id, restart, shutdown, start: { logic: sim.workerMachine, input: { workerId: id, startTimeout: 100 } } };
}

function harness(
  children: Array<[string, RestartType?, ShutdownSpec?]>,
  opts: { strategy?: Strategy; maxRestarts?: number; periodMs?: number } = {},
  setup?: (sim: Simulation) => void,
): Harness {
  const sim = createSimulation();
  sim.handle('exit', (args: { code: number | null; signal?: string }) => sim.crash(args.code, args.signal ?? null));
  setup?.(sim);
  const sup = createActor(supervisorMachine, {
    clock: sim.clock,
    input: {
      id: 'sup',
      strategy: opts.strategy ?? 'one_for_one',
      maxRestarts: opts.maxRestarts ?? 3,
      periodMs: opts.periodMs ?? 5000,
      children: children.map(([id, restart, shutdown]) => spec(sim, id, restart, shutdown)),
    },
  });
  const events: Array<{ type: string; id?: string }> = [];
  traces.push(events);
  sup.on('*', (e) => events.push(e as { type: string; id?: string }));
  sup.start();
  return {
    sim,
    sup,
    events,
    pid: (id) => childrenOf(sup.getSnapshot()).find((c) => c.id === id)!.pid!,
    state: (id) => childrenOf(sup.getSnapshot()).find((c) => c.id === id)?.state,
    ids: () => childrenOf(sup.getSnapshot()).map((c) => c.id),
    status: () => sup.getSnapshot().status,
  };
}

/** Make a child's process exit on its own with this code / signal. */
function exitChild(h: Harness, id: string, code: number | null, signal: string | null = null): void {
  const proc = h.sim.processOf(id)!;
  if (signal === 'SIGKILL') {
    h.sim.kill(proc.pid, 'SIGKILL');
    return;
  }
  h.sim.exit(proc.pid, code, signal);
}

function stopAndCheck(h: Harness): void {
  h.sup.send({ type: 'STOP' });
  h.sim.advance(10_000);
  assert.is(h.status(), 'done');
  assert.equal(h.sim.alive(), [], 'no fake process may outlive the supervisor');
}

const exits: Array<[string, number | null, string | null]> = [
  ['normal', 0, null],
  ['shutdown', null, 'SIGTERM'],
  ['abnormal', null, 'SIGKILL'],
];
const expectRestart: Record<RestartType, Record<string, boolean>> = {
  permanent: { normal: true, shutdown: true, abnormal: true },
  transient: { normal: false, shutdown: false, abnormal: true },
  temporary: { normal: false, shutdown: false, abnormal: false },
};

for (const restart of ['permanent', 'transient', 'temporary'] as RestartType[]) {
  for (const [reason, code, signal] of exits) {
    const restarts = expectRestart[restart][reason]!;
    scenario(`${restart} child, ${reason} exit: ${restarts ? 'restarted' : 'not restarted'}`, () => {
      const h = harness([['child', restart]]);
      const before = h.pid('child');
      exitChild(h, 'child', code, signal);
      if (restarts) {
        assert.is(h.state('child'), 'running');
        assert.is.not(h.pid('child'), before, 'a new process');
        assert.is(h.sim.alive().length, 1);
      } else if (restart === 'temporary') {
        assert.equal(h.ids(), [], 'a temporary child is deleted when it exits');
        assert.is(h.sim.alive().length, 0);
      } else {
        assert.is(h.state('child'), 'exited', 'a transient child that exited normally stays, not running');
        assert.is(h.sim.alive().length, 0);
      }
      assert.is(h.status(), 'active');
      stopAndCheck(h);
    });
  }
}

scenario('temporary_bystander: a temporary child stopped by one_for_all is removed, not restarted', () => {
  const h = harness([['perm', 'permanent'], ['temp', 'temporary']], { strategy: 'one_for_all' });
  exitChild(h, 'perm', null, 'SIGKILL');
  assert.equal(h.ids(), ['perm']);
  assert.is(h.state('perm'), 'running');
  assert.equal(h.sim.alive().map((p) => p.workerId), ['perm']);
  stopAndCheck(h);
});

scenario('multiple_restarts: restarts spaced beyond the window never escalate', () => {
  const h = harness([['child']], { maxRestarts: 3, periodMs: 1000 });
  for (let i = 0; i < 20; i++) {
    exitChild(h, 'child', null, 'SIGKILL');
    assert.is(h.state('child'), 'running', `restart ${i + 1}`);
    h.sim.advance(1001);
  }
  assert.is(h.status(), 'active');
  stopAndCheck(h);
});

scenario('multiple_restarts: the (maxRestarts+1)th restart within the window escalates', () => {
  const h = harness([['child']], { maxRestarts: 3, periodMs: 1000 });
  for (let i = 0; i < 3; i++) {
    exitChild(h, 'child', null, 'SIGKILL');
    h.sim.advance(100);
    assert.is(h.status(), 'active', `restart ${i + 1} is within intensity`);
  }
  exitChild(h, 'child', null, 'SIGKILL');
  assert.is(h.status(), 'done');
  const output = h.sup.getSnapshot().output!;
  assert.is(output.reason, 'escalated');
  // Failures are data in the machines; the edge makes the class.
  assert.is(output.error!.code, 'ESCALATED');
  assert.instance(fromWire(output.error as never), SupervisorEscalationError);
  assert.ok(h.events.some((e) => e.type === 'escalation'));
  assert.equal(h.sim.alive(), []);
});

scenario('one_for_one: only the failed child restarts', () => {
  const h = harness([['a'], ['b'], ['c']], { strategy: 'one_for_one' });
  const [a, b, c] = ['a', 'b', 'c'].map(h.pid);
  exitChild(h, 'b', null, 'SIGKILL');
  assert.is(h.pid('a'), a);
  assert.is.not(h.pid('b'), b);
  assert.is(h.pid('c'), c);
  stopAndCheck(h);
});

scenario('one_for_all: every child restarts when one fails', () => {
  const h = harness([['a'], ['b'], ['c']], { strategy: 'one_for_all' });
  const before = ['a', 'b', 'c'].map(h.pid);
  exitChild(h, 'b', null, 'SIGKILL');
  const after = ['a', 'b', 'c'].map(h.pid);
  before.forEach((pid, i) => assert.is.not(after[i], pid));
  assert.is(h.sim.alive().length, 3);
  stopAndCheck(h);
});

scenario('rest_for_one: the failed child and those started after it restart', () => {
  const h = harness([['a'], ['b'], ['c']], { strategy: 'rest_for_one' });
  const [a, b, c] = ['a', 'b', 'c'].map(h.pid);
  exitChild(h, 'b', null, 'SIGKILL');
  assert.is(h.pid('a'), a);
  assert.is.not(h.pid('b'), b);
  assert.is.not(h.pid('c'), c);
  stopAndCheck(h);
});

for (const strategy of ['one_for_one', 'one_for_all', 'rest_for_one'] as Strategy[]) {
  scenario(`${strategy} escalation: stops every child in reverse order and terminates`, () => {
    const h = harness([['a'], ['b'], ['c']], { strategy, maxRestarts: 1, periodMs: 1000 });
    exitChild(h, 'a', null, 'SIGKILL');
    assert.is(h.status(), 'active', 'one restart is within intensity');
    const survivors = h.sim.alive();
    exitChild(h, 'a', null, 'SIGKILL');
    assert.is(h.status(), 'done');
    assert.is(h.sup.getSnapshot().output!.reason, 'escalated');
    assert.ok(h.events.some((e) => e.type === 'escalation'));
    const stoppedInOrder = survivors
      .filter((p) => p.workerId !== 'a')
      .sort((x, y) => x.exitSeq! - y.exitSeq!)
      .map((p) => p.workerId);
    assert.equal(stoppedInOrder, ['c', 'b']);
    assert.equal(h.sim.alive(), []);
  });
}

scenario('other_child_fails_restart: a failed restart counts and is retried through the mailbox', () => {
  const h = harness([['a'], ['b']], { strategy: 'one_for_all', maxRestarts: 5, periodMs: 1000 });
  // EAGAIN: a failure a retry may not meet (OTP's test fails a start transiently too).
  h.sim.failStarts(2, { workerId: 'b', phase: 'spawn', errno: 'EAGAIN' });
  exitChild(h, 'a', null, 'SIGKILL');
  assert.is(h.state('a'), 'running');
  assert.is(h.state('b'), 'running');
  assert.is(h.sup.getSnapshot().context.recentRestarts, 3, '1 restart + 2 failed starts of b');
  assert.is(h.events.filter((e) => e.type === 'child_start_failed' && e.id === 'b').length, 2);
  stopAndCheck(h);
});

scenario('other_child_fails_restart: failures beyond intensity escalate', () => {
  const h = harness([['a'], ['b']], { strategy: 'one_for_all', maxRestarts: 2, periodMs: 1000 });
  h.sim.failStarts(Infinity, { workerId: 'b', phase: 'spawn', errno: 'EAGAIN' });
  exitChild(h, 'a', null, 'SIGKILL');
  assert.is(h.status(), 'done');
  assert.is(h.events.filter((e) => e.type === 'child_start_failed').length, 2, 'the budget (2) was spent: EAGAIN may pass');
  const error = fromWire(h.sup.getSnapshot().output!.error! as never);
  assert.instance(error, SupervisorEscalationError);
  assert.match(String((error.cause as Error).message), /spawn failed/);
  assert.match(error.message, /^Worker b could not start .*spawn failed/, 'the message leads with the root cause');
  assert.equal(h.sim.alive(), []);
});

scenario('a child that dies while booting (after its start was acknowledged) is restarted within intensity, then escalates', () => {
  const h = harness([['a']], { maxRestarts: 2, periodMs: 1000 });
  h.sim.failStarts(Infinity, { workerId: 'a', signal: 'SIGKILL' }); // killed while booting: may not recur
  exitChild(h, 'a', null, 'SIGKILL');
  assert.is(h.status(), 'done');
  const error = fromWire(h.sup.getSnapshot().output!.error! as never);
  assert.instance(error, SupervisorEscalationError);
  assert.match(String((error.cause as Error & { output: string }).output), /SyntaxError/, 'the boot failure travels as the cause');
  assert.equal(h.sim.alive(), []);
});

// Beyond OTP: a start that fails the same deterministic way twice in a window is not retried again.
scenario('the same boot failure twice (a handler file that does not import) escalates at once, budget left or not', () => {
  const h = harness([['a']], { maxRestarts: 10, periodMs: 1000 });
  h.sim.failStarts(Infinity, { workerId: 'a', code: 1, stderr: ['SyntaxError: invalid syntax (h.py, line 3)'] });
  exitChild(h, 'a', null, 'SIGKILL');
  assert.is(h.status(), 'done');
  assert.is(h.sim.processes().length, 3, 'the first process, the failed boot, one retry: no more');
  const error = fromWire(h.sup.getSnapshot().output!.error! as never);
  assert.instance(error, SupervisorEscalationError);
  assert.match(error.message, /^Worker a could not start .*SyntaxError: invalid syntax \(h\.py, line 3\) \(supervisor sup gave up: the same start failure twice within 1000 ms\)$/);
  assert.equal(h.sim.alive(), []);
});

scenario('a missing interpreter is tried twice, not the whole budget', () => {
  const h = harness([['a'], ['b']], { maxRestarts: 10, periodMs: 1000 }, (sim) => sim.failStarts(Infinity, { phase: 'spawn' })); // ENOENT
  assert.is(h.status(), 'done');
  assert.is(h.sim.processes().length, 2, 'a could not be spawned, nor could its one retry');
  const error = fromWire(h.sup.getSnapshot().output!.error! as never);
  assert.match(error.message, /^Worker a could not start .*ENOENT.*the same start failure twice/);
  assert.equal(h.sim.alive(), []);
});

scenario('two children failing on the same file count as the same failure', () => {
  const h = harness([['a'], ['b'], ['c']], { maxRestarts: 10, periodMs: 1000 });
  h.sim.failStarts(1, { workerId: 'a', code: 1 });
  h.sim.failStarts(1, { workerId: 'b', code: 1 });
  exitChild(h, 'a', null, 'SIGKILL');
  assert.is(h.state('a'), 'running', 'a failed to boot once, then came up');
  exitChild(h, 'b', null, 'SIGKILL');
  assert.is(h.status(), 'done', 'b failed to boot the way a did: escalated');
  assert.is(h.sim.processes().length, 6);
  assert.equal(h.sim.alive(), []);
});

scenario('different boot failures, or the same one in another window, use the ordinary budget', () => {
  const h = harness([['a']], { maxRestarts: 10, periodMs: 1000 });
  h.sim.failStarts(1, { workerId: 'a', code: 1, stderr: ['ImportError: one'] });
  h.sim.failStarts(1, { workerId: 'a', code: 1, stderr: ['ImportError: two'] });
  exitChild(h, 'a', null, 'SIGKILL');
  assert.is(h.state('a'), 'running', 'two different failures, then a good start');
  h.sim.advance(1000); // every restart of the window expired: the failures are forgotten
  h.sim.failStarts(1, { workerId: 'a', code: 1, stderr: ['ImportError: two'] });
  exitChild(h, 'a', null, 'SIGKILL');
  assert.is(h.state('a'), 'running', 'the same failure as before, but in a new window');
  assert.is(h.status(), 'active');
  stopAndCheck(h);
});

scenario('order_of_children: started in order, stopped in reverse order', () => {
  const h = harness([['a'], ['b'], ['c']]);
  assert.equal(h.events.filter((e) => e.type === 'child_started').map((e) => e.id), ['a', 'b', 'c']);
  const pids = ['a', 'b', 'c'].map(h.pid);
  assert.ok(pids[0]! < pids[1]! && pids[1]! < pids[2]!, 'processes spawned in order');
  h.sup.send({ type: 'STOP' });
  assert.is(h.status(), 'done');
  const stopped = h.sim.processes().sort((x, y) => x.exitSeq! - y.exitSeq!).map((p) => p.workerId);
  assert.equal(stopped, ['c', 'b', 'a']);
  assert.equal(h.sim.alive(), []);
});

scenario('count_children: specs, active, workers; dynamic children counted', () => {
  const h = harness([['a'], ['b']]);
  assert.equal(countChildren(h.sup.getSnapshot()), { specs: 2, active: 2, supervisors: 0, workers: 2 });
  h.sup.send({ type: 'START_CHILD', spec: spec(h.sim, 'dyn', 'temporary') });
  assert.equal(countChildren(h.sup.getSnapshot()), { specs: 3, active: 3, supervisors: 0, workers: 3 });
  h.sup.send({ type: 'TERMINATE_CHILD', id: 'dyn' });
  assert.equal(countChildren(h.sup.getSnapshot()), { specs: 2, active: 2, supervisors: 0, workers: 2 });
  exitChild(h, 'a', 0);
  h.sup.send({ type: 'START_CHILD', spec: spec(h.sim, 't', 'transient') });
  exitChild(h, 't', 0);
  assert.equal(countChildren(h.sup.getSnapshot()), { specs: 3, active: 2, supervisors: 0, workers: 3 }, 'a transient child that exited normally is a spec, not active');
  stopAndCheck(h);
});

scenario('hanging_restart_loop: STOP still works while a child keeps failing to start', () => {
  // Each failed boot takes 100 ms (start timeout) and the window is 50 ms: intensity is never
  // exceeded, so only STOP can end the loop.
  const h = harness([['a'], ['b']], { maxRestarts: 1, periodMs: 50 });
  h.sim.failStarts(Infinity, { workerId: 'b', hang: true });
  exitChild(h, 'b', null, 'SIGKILL');
  for (let i = 0; i < 10; i++) h.sim.advance(100);
  const workerB = h.sup.getSnapshot().context.children.find((c) => c.spec.id === 'b')!.ref;
  assert.is(workerStateName(workerB.getSnapshot().value), 'restarting', 'b never becomes healthy');
  assert.ok(h.events.filter((e) => e.type === 'child_exited' && e.id === 'b').length >= 9, 'it kept trying');
  assert.is(h.status(), 'active');
  h.sup.send({ type: 'STOP' });
  h.sim.advance(2000);
  assert.is(h.status(), 'done');
  assert.is(h.sup.getSnapshot().output!.reason, 'normal');
  assert.equal(h.sim.alive(), []);
});

scenario('sup_stop_timeout: a child that ignores SIGTERM is killed after its shutdown time', () => {
  const h = harness([['a', 'permanent', 1000]], {}, (sim) => sim.ignoreSigterm('a'));
  const proc = h.sim.processOf('a')!;
  h.sup.send({ type: 'STOP' });
  h.sim.advance(999);
  assert.ok(proc.alive, 'still alive 1 ms before the shutdown time');
  assert.is(h.status(), 'active');
  h.sim.advance(1);
  assert.not.ok(proc.alive);
  assert.equal(proc.signals, ['SIGTERM', 'SIGKILL']);
  assert.is(proc.exit!.signal, 'SIGKILL');
  assert.is(h.status(), 'done');
});

scenario('sup_stop_brutal_kill: brutal_kill is SIGKILL at once, no SIGTERM', () => {
  const h = harness([['a', 'permanent', 'brutal_kill']], {}, (sim) => sim.ignoreSigterm('a'));
  const proc = h.sim.processOf('a')!;
  h.sup.send({ type: 'STOP' });
  assert.not.ok(proc.alive);
  assert.equal(proc.signals, ['SIGKILL']);
  assert.is(proc.exit!.signal, 'SIGKILL');
  assert.is(h.status(), 'done');
});

scenario('sup_stop_infinity: shutdown infinity waits for the child however long it takes', () => {
  const h = harness([['a', 'permanent', 'infinity']], {}, (sim) => sim.ignoreSigterm('a'));
  const proc = h.sim.processOf('a')!;
  h.sup.send({ type: 'STOP' });
  h.sim.advance(10 * 60_000);
  assert.ok(proc.alive);
  assert.is(h.status(), 'active');
  h.sim.kill(proc.pid, 'SIGKILL');
  assert.is(h.status(), 'done');
});

test('deterministic: every scenario, 20 times in a row, gives the same events', () => {
  const trace = (run: () => void) => {
    traces = [];
    run();
    return JSON.stringify(traces.map((events) => events.map((e) => `${e.type}:${e.id ?? ''}`)));
  };
  for (const [name, fn] of scenarios) {
    const first = trace(fn);
    for (let i = 1; i < 20; i++) assert.is(trace(fn), first, `${name}, run ${i + 1}`);
  }
});

test.run();
