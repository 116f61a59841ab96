/**
 * Shared by the chaos and stress scenarios (scripts/chaos/*.ts, scripts/stress/run.ts) and by
 * their short CI versions in test/integration/chaos.test.ts. Every scenario returns a report
 * whose `violations` list is empty when it passed; the callers print or assert it.
 */
import { join } from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { fileURLToPath } from 'node:url';
import type { Pool } from '../../src/local/pool.js';
import { identify, isRunning, type ProcId } from './procs.js';

export const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
export const ECHO_HANDLERS = join(ROOT, 'test', 'fixtures', 'handlers', 'echo_handlers.py');
export const CRASH_ON_START = join(ROOT, 'test', 'fixtures', 'crash_on_start.py');
export const HOSTILE_WORKER = join(ROOT, 'test', 'fixtures', 'hostile-worker.mjs');
export const PYTHON = process.env.PYVISOR_PYTHON || 'python3';

export type Log = (line: string) => void;
export const quiet: Log = () => {};

/**
 * Every Python process a pool ever ran, by identity (pid + start time), followed through
 * restarts: from workers(), `worker_state` and `worker_restarted`.
 */
export class PoolProcesses {
  readonly seen = new Map<number, ProcId>();

  watch(pool: Pool): Pool {
    for (const w of pool.workers()) this.add(w.pid);
    pool.on('worker_state', (e: { pid: number | null }) => this.add(e.pid));
    pool.on('worker_restarted', (e: { oldPid: number | null; newPid: number | null }) => {
      this.add(e.oldPid);
      this.add(e.newPid);
    });
    return pool;
  }

  add(pid: number | null | undefined): void {
    if (typeof pid !== 'number' || this.seen.has(pid)) return;
    // Identify while it runs; a pid that is already gone is recorded with no start time, and
    // then counts as alive only if /proc knows no process by that pid at all... which means gone.
    const id = identify(pid);
    this.seen.set(pid, id ?? { pid, starttime: -1 });
  }

  /** The processes of this pool that are still running. */
  alive(): ProcId[] {
    return [...this.seen.values()].filter((id) => id.starttime >= 0 && isRunning(id));
  }
}

// The first `name` event for which `match` holds: the same helper as the layer-3 suites.
export { nextEvent } from '../../test/integration/helpers.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Settle `p`, or report that it did not settle within `ms`: { settled, value | error }. */
export async function within<T>(p: Promise<T>, ms: number): Promise<{ settled: true; ok: true; value: T } | { settled: true; ok: false; error: unknown } | { settled: false }> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<{ settled: false }>((r) => (timer = setTimeout(() => r({ settled: false }), ms)));
  try {
    return await Promise.race([p.then((value) => ({ settled: true as const, ok: true as const, value }), (error) => ({ settled: true as const, ok: false as const, error })), late]);
  } finally {
    clearTimeout(timer);
  }
}

let gcFn: (() => void) | undefined;
/** Force a full GC (exposed at runtime when node was not started with --expose-gc). */
export function gc(): void {
  if (!gcFn) {
    gcFn = (globalThis as { gc?: () => void }).gc;
    if (!gcFn) {
      v8.setFlagsFromString('--expose-gc');
      gcFn = vm.runInNewContext('gc') as () => void;
    }
  }
  gcFn();
}

export function mb(bytes: number): number {
  return Math.round((bytes / 1048576) * 10) / 10;
}
