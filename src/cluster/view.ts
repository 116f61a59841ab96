/**
 * What a cluster pool shows of its hosts: the public types, and stats()/workers()/hosts()
 * aggregated over the hosts' last heartbeats (pure functions of the membership's view).
 */
import { realEpochMs } from '../core/clock.js';
import type { Executor, PoolStats, WorkerInfo } from '../core/executor.js';
import type { HostView } from './membership.js';
import type { TypedEvents } from '../telemetry.js';

/** A host as the cluster pool sees it (from its last heartbeat). */
export interface ClusterHost {
  hostId: string;
  capacity: number;
  inflight: number;
  queue: number;
  workers: number;
  /** When its last heartbeat arrived, in ms since the Unix epoch. */
  lastSeen: number;
}

/** A worker row of a cluster pool: the host's row, with the host it runs on. */
export type ClusterWorkerInfo = WorkerInfo & { host: string };

export interface ClusterPool extends Executor {
  hosts(): ClusterHost[];
  /** Resolves once at least `n` hosts (default 1) are live; rejects after `timeout` ms (default 10000) with HostUnavailableError. */
  whenHosts(n?: number, timeout?: number): Promise<void>;
  workers(): ClusterWorkerInfo[];
  /** The commands as typed functions, as on a local pool: `cluster.commands<Handlers>().greet({ name })` (docs/TYPES.md). */
  commands<H extends import('../core/commands.js').CommandMap<H> = import('../core/commands.js').AnyCommands>(
    defaults?: import('../options.js').ExecuteOptions,
  ): import('../core/commands.js').Commands<H>;
  /** Typed: an unknown event name or a wrong payload field does not compile. */
  on: TypedEvents<ClusterPoolEvents>['on'];
  once: TypedEvents<ClusterPoolEvents>['once'];
  off: TypedEvents<ClusterPoolEvents>['off'];
}

/** Events a cluster pool emits (on/off), besides `listener_error`. */
export interface ClusterPoolEvents {
  host_up: { hostId: string };
  host_leaving: { hostId: string };
  host_down: { hostId: string; reason: 'timeout' | 'left' | 'restarted' };
  disconnect: { server: string };
  reconnect: { server: string };
}

const SUMMED = ['activeSessions', 'poolSize', 'healthyWorkers', 'unhealthyWorkers', 'busyWorkers', 'overflowWorkers', 'queueLength', 'totalCommands', 'totalErrors', 'restarts'] as const;

/**
 * The hosts' stats added up. `queueLength` also counts the requests waiting in this front end
 * for a host; `latencyMs` is this front end's own, submission to settlement (percentiles of
 * several hosts cannot be added).
 */
export function clusterStats(hosts: readonly HostView[], waitingHere: number, latencyMs: PoolStats['latencyMs']): PoolStats {
  const totals: PoolStats = {
    activeSessions: 0,
    poolSize: 0,
    utilization: 0,
    healthyWorkers: 0,
    unhealthyWorkers: 0,
    busyWorkers: 0,
    overflowWorkers: 0,
    queueLength: waitingHere,
    totalCommands: 0,
    totalErrors: 0,
    restarts: 0,
    latencyMs,
  };
  for (const host of hosts) {
    const s = host.stats as Partial<PoolStats>;
    for (const key of SUMMED) {
      const value = s[key];
      if (typeof value === 'number' && Number.isFinite(value)) totals[key] += value;
    }
  }
  totals.utilization = totals.healthyWorkers === 0 ? 0 : Math.min(1, totals.busyWorkers / totals.healthyWorkers);
  return totals;
}

/** Every host's worker rows, each with its host. */
export function clusterWorkers(hosts: readonly HostView[]): ClusterWorkerInfo[] {
  return hosts.flatMap((host) => host.rows.map((row) => ({ ...row, host: host.hostId })));
}

export function clusterHosts(hosts: readonly HostView[]): ClusterHost[] {
  return hosts.map((h) => ({ hostId: h.hostId, capacity: h.capacity, inflight: h.inflight, queue: h.queue, workers: h.workers, lastSeen: Math.round(realEpochMs(h.lastSeen)) }));
}
