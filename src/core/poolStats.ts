/**
 * What stats() and workers() report. Plain types with no imports, so the inspector page (a
 * browser bundle) reads the same definitions as the pool.
 */
export interface PoolStats {
  activeSessions: number;
  poolSize: number;
  utilization: number;
  healthyWorkers: number;
  unhealthyWorkers: number;
  busyWorkers: number;
  overflowWorkers: number;
  queueLength: number;
  /** Attempts that reached a worker and ended (an idempotent request retried after a crash counts twice). */
  totalCommands: number;
  /** Of those, the ones settled with an error. */
  totalErrors: number;
  restarts: number;
  latencyMs: { p50: number; p99: number };
}

export interface WorkerInfo {
  id: string;
  state: string;
  pid: number | null;
  /** Requests this worker ran (each attempt of a retried request on the worker it ran on). */
  requests: number;
  errors: number;
  restarts: number;
  /** Sessions whose state this worker may hold. */
  sessions: number;
  overflow: boolean;
  /** Requests in flight on it now. */
  inflight: number;
}
