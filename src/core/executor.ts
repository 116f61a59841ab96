/**
 * What runs commands: a local pool (src/local) and a cluster pool both implement it, and
 * `PythonPool` (src/adapter) consumes only this. Errors that cross it are PyvisorErrors with
 * a stable `code` (src/errors.ts toWire/fromWire), never told apart by `instanceof`.
 */
import type { ExecuteOptions, StreamOptions } from '../options.js';
import type { ResultStream } from './stream.js';
import type { PoolStats, WorkerInfo } from './poolStats.js';

export type { PoolStats, WorkerInfo } from './poolStats.js';

export interface Executor {
  execute<T = unknown>(command: string, args?: unknown, options?: ExecuteOptions): Promise<T>;
  /** A generator handler's chunks as they are produced (backpressure, cancel on `break`). */
  stream<T = unknown>(command: string, args?: unknown, options?: StreamOptions): ResultStream<T>;
  /** Frees the session's state wherever it is held; resolves with how many workers held it. */
  endSession(sessionId: string): Promise<number>;
  stats(): PoolStats;
  workers(): WorkerInfo[];
  on(event: string, listener: (...args: any[]) => void): unknown;
  off(event: string, listener: (...args: any[]) => void): unknown;
  stop(): Promise<void>;
}
