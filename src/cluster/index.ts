/**
 * `pyvisor/cluster`: one supervised pool per host, served over NATS, and a cluster pool that
 * is an Executor over all of them (docs/CLUSTER.md).
 *
 *   const agent = await startAgent({ servers: 'nats://127.0.0.1:4222', pool: 'qa', handlers: [...] });
 *   const pool = await createClusterPool({ servers: 'nats://127.0.0.1:4222', pool: 'qa' });
 *   await pool.whenHosts(1);
 *   await pool.execute('ping');
 */
export { startAgent } from './agent.js';
export type { Agent, AgentOptions } from './agent.js';
export { createClusterPool } from './clusterPool.js';
export type { ClusterPool, ClusterPoolOptions, ClusterHost, ClusterWorkerInfo, ClusterPoolEvents } from './clusterPool.js';
export type { Commands, CommandMap, CommandSpec, AnyCommands } from '../core/commands.js';
export { chooseHost, loadScore } from './placement.js';
export type { HostLoad } from './placement.js';
export { subjects, bucketName, sessionKey } from './subjects.js';
