/**
 * Shared by the layer-3 suites: which Python processes a test started, and proof that none
 * of them is still alive at the end.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { createPool } from '../../src/local/createPool.js';
import type { PoolOptions } from '../../src/options.js';
import type { Pool } from '../../src/local/pool.js';

export const ROOT = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..');
export const ECHO_HANDLERS = join(ROOT, 'test', 'fixtures', 'handlers', 'echo_handlers.py');
export const SYNTAX_ERROR_HANDLERS = join(ROOT, 'test', 'fixtures', 'handlers', 'syntax_error.py');
export const PYTHON = process.env.PYVISOR_PYTHON || 'python3';

/** Every pid a pool's workers ever had, followed through restarts. */
export class PidTracker {
  readonly pids = new Set<number>();
  watch(pool: Pool): Pool {
    for (const w of pool.workers()) if (w.pid) this.pids.add(w.pid);
    pool.on('worker_state', (e: { pid: number | null }) => e.pid && this.pids.add(e.pid));
    pool.on('worker_restarted', (e: { oldPid: number | null; newPid: number | null }) => {
      if (e.oldPid) this.pids.add(e.oldPid);
      if (e.newPid) this.pids.add(e.newPid);
    });
    return pool;
  }
  add(pid: number | null | undefined): void {
    if (pid) this.pids.add(pid);
  }
}

// One definition of "alive" for every tier: ESRCH is the only proof a pid is gone.
export { isAlive } from '../protocol/_helpers.js';
import { isAlive } from '../protocol/_helpers.js';

/** The suite's last word: none of the processes it started is alive. */
export function assertAllDead(tracker: PidTracker): void {
  const alive = [...tracker.pids].filter(isAlive);
  assert.equal(alive, [], `Python processes still alive: ${alive.join(', ')}`);
}

/** Resolve on the first event that satisfies `match` (synchronize on events, not on delays). */
export function nextEvent<T>(pool: Pool, name: string, match: (e: T) => boolean = () => true, timeoutMs = 15_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      pool.off(name, listener);
      reject(new Error(`no "${name}" event within ${timeoutMs} ms`));
    }, timeoutMs);
    const listener = (e: T) => {
      if (!match(e)) return;
      clearTimeout(timer);
      pool.off(name, listener);
      resolve(e);
    };
    pool.on(name, listener);
  });
}

// ---- pools a suite starts and stops as a group -------------------------------------------

/** The pids of every pool started with startPool (and of others passed to suitePids.watch). */
export const suitePids = new PidTracker();
const open: Pool[] = [];

export async function startPool(options: PoolOptions = {}): Promise<Pool> {
  // Worker stderr as events only: the suites' output stays readable (logs.test.ts tests the default).
  const pool = suitePids.watch(await createPool({ python: PYTHON, logs: 'events', ...options }));
  open.push(pool);
  return pool;
}

export async function stopAll(): Promise<void> {
  await Promise.all(open.splice(0).map((p) => p.stop()));
}

export interface WorkerStats {
  worker_id: string;
  pid: number;
  sessions: number;
  session_ids: string[];
  programs: number;
}

/**
 * get_stats from every worker: calls issued in the same tick are routed before any returns,
 * so on an idle pool each goes to a different worker.
 */
export async function statsByWorker(pool: Pool): Promise<Map<string, WorkerStats>> {
  const n = pool.workers().filter((w) => w.pid !== null).length;
  const all = await Promise.all(Array.from({ length: n }, () => pool.execute<WorkerStats>('get_stats', null)));
  const byWorker = new Map(all.map((s) => [s.worker_id, s]));
  assert.is(byWorker.size, n, 'one get_stats per worker');
  return byWorker;
}

/** What a finished `pyvisor` command line run gave. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Run the `pyvisor` command line from the sources (`node --import tsx src/cli.ts ...`, no build
 * needed) with PYVISOR_PYTHON set to the tier's interpreter and `env` added; rejects when it has
 * not finished within `timeoutMs` (after SIGKILLing it).
 */
export function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
      cwd: ROOT,
      env: { ...process.env, PYVISOR_PYTHON: PYTHON, FORCE_COLOR: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`pyvisor ${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * pids of the live processes whose environment carries PYVISOR_TEST_MARK=`mark`: what a suite
 * that cannot follow every pid (a CLI run, an app it spawned) still started. [] without /proc.
 */
export function markedProcesses(mark: string): number[] {
  const marked: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return marked;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'latin1').includes(`PYVISOR_TEST_MARK=${mark}`)) marked.push(Number(entry));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return marked;
}
