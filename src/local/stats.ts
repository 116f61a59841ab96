/**
 * The pool's counters: one place counts requests, errors and restarts. stats(), workers(),
 * telemetry and the inspector all read these.
 */
import { LatencyWindow } from '../telemetry.js';

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
