export { createSimulation, SimPythonError } from './simulation.js';
export type { Simulation, SimulationOptions, SimContext, SimHandler, HandlerOptions, StartFault, FakeProcess, ReceivedRequest } from './simulation.js';
