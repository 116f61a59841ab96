/**
 * Shared helpers of the layer-3 adapter and CLI suites: real pools, the pids they started,
 * and waiting on pool events instead of sleeping.
 */
import { createPool, type Pool, type PoolOptions } from '../../src/index.js';

export const PYTHON = process.env.PYVISOR_PYTHON || 'python3';

/** Every Python pid a suite's pools ever ran (from workers() and the events). */
export const startedPids = new Set<number>();

export function trackPids(pool: Pool): void {
  const add = (pid: number | null | undefined) => {
    if (typeof pid === 'number') startedPids.add(pid);
  };
  for (const w of pool.workers()) add(w.pid);
  pool.on('worker_state', (e: { pid: number | null }) => add(e.pid));
  pool.on('worker_restarted', (e: { oldPid: number | null; newPid: number | null }) => {
    add(e.oldPid);
    add(e.newPid);
  });
}

const open: Pool[] = [];

export async function startPool(options: PoolOptions = {}): Promise<Pool> {
  const pool = await createPool({ python: PYTHON, ...options });
  trackPids(pool);
  open.push(pool);
  return pool;
}

export async function stopAll(): Promise<void> {
  await Promise.all(open.splice(0).map((p) => p.stop()));
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** Resolves with the first event `name` for which `match` holds. */
export function nextEvent<T>(pool: Pool, name: string, match: (e: T) => boolean = () => true): Promise<T> {
  return new Promise((resolve) => {
    const listener = (e: T) => {
      if (!match(e)) return;
      pool.off(name, listener);
      resolve(e);
    };
    pool.on(name, listener);
  });
}

export interface WorkerStats {
  worker_id: string;
  pid: number;
  sessions: number;
  session_ids: string[];
  programs: number;
}

/**
 * get_stats from every worker of the pool. N concurrent calls on N idle workers go to N
 * distinct workers (a worker runs one request at a time); retried a few times to be safe.
 */
export async function statsByWorker(pool: Pool): Promise<Map<string, WorkerStats>> {
  const n = pool.workers().filter((w) => w.pid !== null).length;
  const seen = new Map<string, WorkerStats>();
  for (let round = 0; round < 10 && seen.size < n; round++) {
    const all = await Promise.all(Array.from({ length: n }, () => pool.execute<WorkerStats>('get_stats', null)));
    for (const s of all) if (!seen.has(s.worker_id)) seen.set(s.worker_id, s);
  }
  return seen;
}
