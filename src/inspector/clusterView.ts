/**
 * The inspector's view of a cluster pool (src/cluster): there are no actors to inspect here —
 * each host runs its own supervision tree — so the page shows what the hosts' heartbeats carry:
 * the cluster, its hosts, and each host's workers (their machine state, pid, counters).
 */
import type { ClusterPool } from '../cluster/clusterPool.js';
import type { WorkerInfo } from '../core/poolStats.js';

export function isClusterPool(pool: unknown): pool is ClusterPool {
  return typeof (pool as ClusterPool).hosts === 'function' && typeof (pool as ClusterPool).whenHosts === 'function';
}

/** A worker's id on the page: unique over the cluster (every host has a worker_1). */
export function clusterWorkerId(host: string, id: string): string {
  return `${host}/${id}`;
}

/** The workers of every live host, with page-unique ids. */
export function clusterWorkers(cluster: ClusterPool): WorkerInfo[] {
  return cluster.workers().map((w) => ({ ...w, id: clusterWorkerId(w.host, w.id) }));
}

/** The tree the page draws for a cluster: hosts → workers (docs/INSPECTOR.md). */
export function clusterTree(cluster: ClusterPool, closed: boolean) {
  const rows = cluster.workers();
  return {
    id: 'cluster',
    role: 'ClusterPool',
    strategy: 'placement by load',
    status: closed ? 'stopped' : 'active',
    state: closed ? 'stopped' : 'running',
    hosts: cluster.hosts().map((h) => ({
      hostId: h.hostId,
      capacity: h.capacity,
      inflight: h.inflight,
      queue: h.queue,
      lastSeen: h.lastSeen,
      workers: rows.filter((w) => w.host === h.hostId).map((w) => ({ id: clusterWorkerId(h.hostId, w.id), state: w.state, pid: w.pid, overflow: w.overflow })),
    })),
    children: [],
  };
}

/** The summary line's figures for a cluster. */
export function clusterOptions(cluster: ClusterPool) {
  const workers = cluster.workers().length;
  return {
    poolSize: workers,
    maxOverflow: 0,
    strategy: `cluster of ${cluster.hosts().length} host(s)`,
    maxRestarts: 0,
    maxSeconds: 0,
    healthCheckInterval: 0,
    affinity: 'session placement',
    workerConcurrency: 1,
    cluster: true,
  };
}
