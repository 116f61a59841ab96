/**
 * Model-based test of the worker machine: xstate/graph walks the machine's own transitions to
 * every reachable state (shortest paths), and each path is replayed on a live actor whose
 * process is a silent stub driven only by the path's events. The live actor must agree with
 * the model at every step, and every path must leave no process running after STOP.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createActor, fromCallback, SimulatedClock, type SnapshotFrom } from 'xstate';
import { getShortestPaths } from 'xstate/graph';
import { workerMachine, type WorkerEvent } from '../../machines/worker.js';
import type { ProcessActorInput, ProcessCommand } from '../../machines/events.js';

let alive = 0;
const stubProcess = fromCallback<ProcessCommand, ProcessActorInput>(() => {
  alive++;
  return () => {
    alive--;
  };
});
const machine = workerMachine.provide({ actors: { pythonProcess: stubProcess } });
type Snap = SnapshotFrom<typeof machine>;

const exit = { code: 1, signal: null, stderrTail: ['boom'] };

/** The events worth trying in a snapshot; replies carry the ids the machine is waiting for. */
function eventsFor(snapshot: Snap): WorkerEvent[] {
  const { pingId, inflight } = snapshot.context;
  const events: WorkerEvent[] = [
    { type: 'START' },
    { type: 'STOP' },
    { type: 'EXECUTE', ticket: 1, cmd: 'echo', args: null, session: null },
    { type: 'HEALTH_CHECK' },
    { type: 'RECYCLE' },
    { type: 'PROC.READY', pid: 4242, python: '3.11', codec: 'pure' },
    { type: 'PROC.EXIT', exit },
    { type: 'PROC.PROTOCOL_ERROR', error: new Error('bad frame') as never },
  ];
  if (pingId !== null) {
    events.push({ type: 'PROC.REPLY', id: pingId, ok: true, result: { pong: true } });
    events.push({ type: 'PROC.REPLY', id: pingId, ok: false, error: { type: 'RuntimeError', message: 'no', traceback: '' } });
  }
  if (inflight) {
    events.push({ type: 'PROC.REPLY', id: inflight.id, ok: true, result: 'ok' });
    events.push({ type: 'PROC.REPLY', id: inflight.id, ok: false, error: { type: 'ValueError', message: 'bad', traceback: '' } });
    events.push({ type: 'ABORT', ticket: inflight.ticket });
  }
  return events;
}

const serialize = (s: Snap) =>
  JSON.stringify([s.value, s.context.inflight !== null, s.context.pending !== null, s.context.generation > 1, s.context.pingId !== null]);

const paths = getShortestPaths(machine, {
  input: { workerId: 'model', maxConsecutiveErrors: 2 },
  events: eventsFor,
  serializeState: serialize as never,
  limit: 5000,
});

test('the model reaches every named worker state', () => {
  const reached = new Set(paths.map((p) => JSON.stringify(p.state.value)));
  for (const state of ['"idle"', '"unhealthy"', '"stopped"', '{"live":"healthy"}', '{"live":"busy"}', '{"live":"checking"}', '{"live":"interrupting"}', '{"live":"stopping"}']) {
    assert.ok(reached.has(state), `reached ${state}`);
  }
  assert.ok([...reached].some((s) => s.includes('restarting')), 'reached restarting');
  assert.ok([...reached].some((s) => s.includes('initializing')), 'reached initializing');
  assert.ok(paths.length > 20, `${paths.length} paths`);
  console.log(`  (${paths.length} model paths)`);
});

test('every shortest path replays identically on a live actor, and STOP leaves no process', () => {
  for (const path of paths) {
    alive = 0;
    const clock = new SimulatedClock();
    const actor = createActor(machine, { input: { workerId: 'model', maxConsecutiveErrors: 2 }, clock });
    actor.start();
    for (const step of path.steps) {
      if (step.event.type !== 'xstate.init') actor.send(step.event);
      assert.equal(actor.getSnapshot().value, step.state.value, `after ${step.event.type} in path to ${JSON.stringify(path.state.value)}`);
    }
    actor.send({ type: 'STOP' });
    // The stub never exits on its own, so stopping ends with the shutdown timer's SIGKILL.
    clock.increment(10_000);
    assert.equal(actor.getSnapshot().value, 'stopped', `STOP after the path to ${JSON.stringify(path.state.value)}`);
    assert.is(alive, 0, `path to ${JSON.stringify(path.state.value)} leaked a process`);
    actor.stop();
  }
});

test.run();
