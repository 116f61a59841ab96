/**
 * The one clock of a pool. Every timer of the pool — XState's delayed events, request and
 * checkout deadlines, interrupt grace — and every measurement runs on it, so the simulation
 * can drive all of them with one SimulatedClock.
 */
import { performance } from 'node:perf_hooks';

export interface Clock {
  /** ms on this clock's own scale (monotonic for the real clock). */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

export const realClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as NodeJS.Timeout),
};

/** A real-clock time as ms since the Unix epoch: what the wire's deadlines are. */
export const realEpochMs = (time: number): number => performance.timeOrigin + time;
