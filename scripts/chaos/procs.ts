/**
 * Process bookkeeping shared by the chaos, stress and bench scripts (Linux /proc).
 *
 * pid_max is small on many machines (32768 here) and other programs spawn processes all the
 * time, so a pid alone does not name a process for long: every check here takes the pid
 * together with the process's start time (field 22 of /proc/PID/stat), and a pid that now
 * belongs to a younger process counts as gone. A zombie (state Z) counts as gone too: it runs
 * no code and holds no memory, it only waits for its parent to read its exit status.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  /** CPU time in user and kernel mode, in clock ticks. */
  utime: number;
  stime: number;
  /** Start time after boot, in clock ticks: with the pid, the process's identity. */
  starttime: number;
  rssPages: number;
}

/** /proc/PID/stat parsed, or null if there is no such process. */
export function procStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // comm is in parentheses and may itself contain spaces or parentheses: split after the last ')'.
  const close = text.lastIndexOf(')');
  const comm = text.slice(text.indexOf('(') + 1, close);
  const f = text.slice(close + 2).split(' ');
  // f[0] is field 3 (state); field N is f[N - 3].
  return {
    pid,
    comm,
    state: f[0]!,
    ppid: Number(f[1]),
    utime: Number(f[11]),
    stime: Number(f[12]),
    starttime: Number(f[19]),
    rssPages: Number(f[21]),
  };
}

/** A process identity that survives pid reuse. */
export interface ProcId {
  pid: number;
  starttime: number;
}

/** The identity of a live process, or null if it is already gone. */
export function identify(pid: number): ProcId | null {
  const s = procStat(pid);
  return s && s.state !== 'Z' ? { pid, starttime: s.starttime } : null;
}

/** True while this very process (same pid, same start time) exists and is not a zombie. */
export function isRunning(id: ProcId): boolean {
  const s = procStat(id.pid);
  return s !== null && s.starttime === id.starttime && s.state !== 'Z';
}

/** CPU ticks (user + system) a process has used, or null if it is gone. */
export function cpuTicks(id: ProcId): number | null {
  const s = procStat(id.pid);
  if (!s || s.starttime !== id.starttime) return null;
  return s.utime + s.stime;
}

/** Resident memory in MiB from /proc/PID/status (VmRSS), or null if gone. */
export function rssMb(id: ProcId): number | null {
  try {
    if (procStat(id.pid)?.starttime !== id.starttime) return null;
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${id.pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** Every running descendant of `root` (children, grandchildren, ...), by scanning /proc. */
export function descendants(root: number): ProcId[] {
  const byParent = new Map<number, ProcStat[]>();
  for (const pid of listPids()) {
    const s = procStat(pid);
    if (!s || s.state === 'Z') continue;
    const list = byParent.get(s.ppid) ?? [];
    list.push(s);
    byParent.set(s.ppid, list);
  }
  const out: ProcId[] = [];
  const walk = (pid: number) => {
    for (const c of byParent.get(pid) ?? []) {
      out.push({ pid: c.pid, starttime: c.starttime });
      walk(c.pid);
    }
  };
  walk(root);
  return out;
}

function listPids(): number[] {
  try {
    return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number);
  } catch {
    return [];
  }
}

let ticks: number | null = null;
/** Clock ticks per second (the unit of utime/stime), usually 100. */
export function clkTck(): number {
  if (ticks === null) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/** Poll `check` every `everyMs` until it holds or `timeoutMs` passes; resolves with the ms it took, or null. */
export async function waitUntil(check: () => boolean, timeoutMs: number, everyMs = 10): Promise<number | null> {
  const t0 = performance.now();
  for (;;) {
    if (check()) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) return null;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
