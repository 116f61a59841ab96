/**
 * Parent death: a child Node process runs a pool of 4 Python workers and is SIGKILLed (so
 * nothing of pyvisor runs its cleanup), or calls process.exit(0) without stop(). The
 * orphaned workers must be gone within 2 s: by stdin EOF, the parent-death signal (SIGKILL),
 * or the host's exit hook. With `work: 'mixed'` they must not spin meanwhile: their CPU time
 * (utime + stime from /proc/PID/stat) may grow by at most a few clock ticks. With
 * `work: 'spin'` every worker is stuck in a handler that ignores SIGTERM and never returns,
 * which only SIGKILL ends.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { clkTck, cpuTicks, identify, isRunning, type ProcId } from './procs.js';
import { PYTHON, quiet, ROOT, type Log } from './common.js';

export interface ParentDeathOptions {
  python?: string;
  exitWithinMs?: number;
  /** CPU clock ticks (1/CLK_TCK s) a worker may use between the kill and its exit. */
  maxCpuTicks?: number;
  /** What the workers do when their parent goes (default 'mixed'). */
  work?: 'mixed' | 'spin';
  /** How the parent goes: SIGKILLed (default) or process.exit(0) without stop(). */
  ending?: 'kill' | 'exit';
  log?: Log;
}

export interface ParentDeathReport {
  workers: number;
  /** ms from the SIGKILL to each worker's exit (null: still running at the end). */
  exitMs: Array<number | null>;
  /** CPU ms each worker used between the kill and its exit. */
  cpuMs: number[];
  violations: string[];
}

export async function parentDeath(options: ParentDeathOptions = {}): Promise<ParentDeathReport> {
  const log = options.log ?? quiet;
  const exitWithinMs = options.exitWithinMs ?? 2_000;
  const maxTicks = options.maxCpuTicks ?? 3;
  const violations: string[] = [];
  const work = options.work ?? 'mixed';
  const ending = options.ending ?? 'kill';
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'chaos', 'parentDeathChild.ts'), options.python ?? PYTHON, work, ending], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the child did not report its pool within 60 s')), 60_000);
    createInterface({ input: child.stdout! }).once('line', (l) => {
      clearTimeout(timer);
      resolve(l);
    });
    child.once('exit', (code, signal) => reject(new Error(`the child exited early (${code ?? signal})`)));
  }).catch((error) => {
    child.kill('SIGKILL');
    throw error;
  });
  const { workers } = JSON.parse(line) as { pid: number; workers: Array<number | null> };
  const ids = workers.map((pid) => (pid === null ? null : identify(pid))).filter((id): id is ProcId => id !== null);
  if (ids.length !== 4) violations.push(`expected 4 running workers, found ${ids.length} (${JSON.stringify(workers)})`);
  if (work === 'spin') {
    // Synchronize on the workers, not a delay: each has burnt a few ticks of CPU, so it spins.
    const start = ids.map((id) => cpuTicks(id) ?? 0);
    const t = performance.now();
    while (ids.some((id, i) => (cpuTicks(id) ?? 0) - start[i]! < 3) && performance.now() - t < 10_000) await new Promise((r) => setTimeout(r, 5));
  } else {
    // Let the workers get into their commands, then take the CPU baseline and kill the parent.
    await new Promise((r) => setTimeout(r, 300));
  }
  const base = ids.map((id) => cpuTicks(id) ?? 0);
  const last = [...base];
  const exitMs: Array<number | null> = ids.map(() => null);
  const childGone = new Promise<void>((r) => child.once('exit', () => r()));
  const t0 = performance.now();
  if (ending === 'exit') child.stdin!.write('go\n');
  else child.kill('SIGKILL');
  await childGone;
  // Poll until every worker is gone (a bit past the limit, to report how late a slow one was).
  while (performance.now() - t0 < exitWithinMs + 3_000 && exitMs.some((x) => x === null)) {
    ids.forEach((id, i) => {
      if (exitMs[i] !== null) return;
      const ticks = cpuTicks(id);
      if (ticks !== null) last[i] = ticks;
      if (!isRunning(id)) exitMs[i] = Math.round(performance.now() - t0);
    });
    await new Promise((r) => setTimeout(r, 5));
  }
  const ms = 1000 / clkTck();
  const cpuMs = ids.map((_, i) => (last[i]! - base[i]!) * ms);
  ids.forEach((id, i) => {
    const t = exitMs[i];
    if (t === null) {
      violations.push(`worker pid ${id.pid} still running ${exitWithinMs + 3_000} ms after its parent died`);
      try {
        process.kill(id.pid, 'SIGKILL'); // leave nothing behind
      } catch {
        // already gone
      }
    } else if (t > exitWithinMs) violations.push(`worker pid ${id.pid} exited ${t} ms after its parent died (limit ${exitWithinMs} ms)`);
    if (work === 'mixed' && last[i]! - base[i]! > maxTicks) violations.push(`worker pid ${id.pid} used ${cpuMs[i]} ms of CPU between its parent's death and its exit (limit ${maxTicks * ms} ms)`);
  });
  log(`  parent death (${work}, ${ending}): exits after ${exitMs.join(', ')} ms; CPU used ${cpuMs.join(', ')} ms`);
  return { workers: ids.length, exitMs, cpuMs, violations };
}
