/**
 * Compiled by tsc in test/fast/types.test.ts, never run: the real XState objects fit the views
 * the public declarations use instead of xstate's types (src/core/actorView.ts), so the casts
 * in src/ are sound and a view never promises what the object lacks.
 */
import { createActor, type AnyActorLogic, type InspectionEvent } from 'xstate';
import type { ActorLogicView, ActorRefView, InspectionEventView } from '../../src/core/actorView.js';
import { processActorLogic } from '../../src/channel/processActor.js';
import { poolSupervisorMachine } from '../../machines/poolSupervisor.js';
import { workerMachine } from '../../machines/worker.js';
import { supervisorMachine } from '../../machines/supervisor.js';

export function views(spawn: Parameters<typeof processActorLogic>[0], event: InspectionEvent): void {
  const root: ActorRefView = createActor(poolSupervisorMachine, { input: { sessionPool: {}, workers: {}, monitor: {} } });
  const tier: ActorRefView = createActor(supervisorMachine, { input: { id: 'workers' } });
  const inspected: InspectionEventView = event;
  const logic: ActorLogicView = processActorLogic(spawn);
  const machine: ActorLogicView = workerMachine;
  // ...and back: a view is what xstate's functions take, after the documented cast.
  createActor(logic as AnyActorLogic);
  void root;
  void tier;
  void inspected;
  void machine;
}
