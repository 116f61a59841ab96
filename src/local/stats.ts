/**
 * The pool's counters: one place counts requests, errors and restarts. stats(), workers(),
 * telemetry and the inspector all read these.
 */
import { LatencyWindow } from '../telemetry.js';
import type { PoolStats, WorkerInfo } from '../core/poolStats.js';
import type { WorkerHandle } from './workerHandle.js';

export interface WorkerCounts {
  requests: number;
  errors: number;
  restarts: number;
}

export class Counters {
  /** Attempts that reached a worker and ended. */
  commands = 0;
  errors = 0;
  restarts = 0;
  readonly latency = new LatencyWindow();
  private readonly perWorker = new Map<string, WorkerCounts>();

  of(workerId: string): WorkerCounts {
    let counts = this.perWorker.get(workerId);
    if (!counts) this.perWorker.set(workerId, (counts = { requests: 0, errors: 0, restarts: 0 }));
    return counts;
  }

  /** A request that ran on `workerId` settled. */
  settled(workerId: string, ok: boolean, runMs: number): void {
    const counts = this.of(workerId);
    this.commands++;
    counts.requests++;
    this.latency.add(runMs);
    if (!ok) {
      this.errors++;
      counts.errors++;
    }
  }

  restarted(workerId: string): void {
    this.restarts++;
    this.of(workerId).restarts++;
  }

  /** Overflow ids are never reused: a removed worker's counters would only pile up. */
  forget(workerId: string): void {
    this.perWorker.delete(workerId);
  }
}

/** stats(): live figures from the handles, totals from the counters. */
export function poolStats(handles: readonly WorkerHandle[], counters: Counters, activeSessions: number, poolSize: number, queueLength: number): PoolStats {
  let healthy = 0;
  let unhealthy = 0;
  let busy = 0;
  let overflow = 0;
  for (const handle of handles) {
    if (handle.up) healthy++;
    else if (handle.failed) unhealthy++;
    if (handle.inflight.size > 0) busy++;
    if (handle.overflow) overflow++;
  }
  return {
    activeSessions,
    poolSize,
    utilization: healthy === 0 ? 0 : Math.min(1, busy / healthy),
    healthyWorkers: healthy,
    unhealthyWorkers: unhealthy,
    busyWorkers: busy,
    overflowWorkers: overflow,
    queueLength,
    totalCommands: counters.commands,
    totalErrors: counters.errors,
    restarts: counters.restarts,
    latencyMs: counters.latency.percentiles(),
  };
}

/** workers(): one row per worker, in start order. */
export function workerRows(workers: ReadonlyArray<{ handle: WorkerHandle; pid: number | null }>, counters: Counters, sessions: ReadonlyArray<{ workers: string[] }>): WorkerInfo[] {
  return workers.map(({ handle, pid }) => {
    const counts = counters.of(handle.id);
    return {
      id: handle.id,
      state: handle.liveState,
      pid,
      requests: counts.requests,
      errors: counts.errors,
      restarts: counts.restarts,
      sessions: sessions.filter((s) => s.workers.includes(handle.id)).length,
      overflow: handle.overflow,
      inflight: handle.inflight.size,
    };
  });
}
