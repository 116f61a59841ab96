/**
 * What runs commands: a local pool (src/local) and a cluster pool both implement it, and
 * `PythonPool` (src/adapter) consumes only this. Errors that cross it are PyvisorErrors with
 * a stable `code` (src/errors.ts toWire/fromWire), never told apart by `instanceof`.
 */
import type { ExecuteOptions } from '../options.js';

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

export interface Executor {
  execute<T = unknown>(command: string, args?: unknown, options?: ExecuteOptions): Promise<T>;
  /** Frees the session's state wherever it is held; resolves with how many workers held it. */
  endSession(sessionId: string): Promise<number>;
  stats(): PoolStats;
  workers(): WorkerInfo[];
  on(event: string, listener: (...args: any[]) => void): unknown;
  off(event: string, listener: (...args: any[]) => void): unknown;
  stop(): Promise<void>;
}
