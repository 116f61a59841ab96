/**
 * Kill storm: a pool of 4 real Python workers serving 16 concurrent sessions while a random
 * worker's process is SIGKILLed by pid every 250 ms, for a bounded time.
 *
 * Checked (each failure is a violation in the report):
 * - every request settles before its own deadline (no request hangs);
 * - a request succeeds with the right answer, or fails with WorkerCrashedError naming a pid we
 *   killed while the request was on it; an idempotent request succeeds after its retry (it may
 *   fail only if the process it was retried on was killed too);
 * - no other error of any kind;
 * - within 1 s of the last kill the pool has its 4 workers healthy again;
 * - every killed pid is gone; after stop() no process the pool ever ran is alive.
 */
import { createPool } from '../../src/local/createPool.js';
import { WorkerCrashedError } from '../../src/errors.js';
import { identify, isRunning, waitUntil, type ProcId } from './procs.js';
import { ECHO_HANDLERS, PoolProcesses, PYTHON, quiet, sleep, within, type Log } from './common.js';

export interface KillStormOptions {
  seconds: number;
  workers?: number;
  sessions?: number;
  killEveryMs?: number;
  python?: string;
  /** Each request's own deadline: past it, the request is reported as hung. */
  requestDeadlineMs?: number;
  /** The pool must be whole again within this many ms of the last kill. */
  recoverWithinMs?: number;
  seed?: number;
  /** Overflow workers the pool may add (default 0). */
  maxOverflow?: number;
  /** Give the pool a restart budget the storm cannot exhaust (the 0.1 behaviour); default: the pool's own defaults. */
  generousRestarts?: boolean;
  log?: Log;
}

export interface KillStormReport {
  seconds: number;
  requests: number;
  succeeded: number;
  /** WorkerCrashedError for a request in flight on a killed process (allowed). */
  crashedInFlight: number;
  /** Idempotent requests that succeeded on their second attempt. */
  retriedThenSucceeded: number;
  /** Idempotent requests whose first and retried attempt were both on killed processes (allowed). */
  retriedAndKilledAgain: number;
  kills: number;
  /** ms from the last kill until every worker was healthy again (null: never). */
  recoveryMs: number | null;
  killedStillRunning: number;
  aliveAfterStop: number;
  violations: string[];
}

interface Attempt {
  workerId: string;
  pid: number | null;
}

interface Req {
  n: number;
  sessionId: string;
  idempotent: boolean;
  cmd: string;
  args: unknown;
  attempts: Attempt[];
}

export async function killStorm(options: KillStormOptions): Promise<KillStormReport> {
  const log = options.log ?? quiet;
  const workers = options.workers ?? 4;
  const sessions = options.sessions ?? 16;
  const killEveryMs = options.killEveryMs ?? 250;
  const deadlineMs = options.requestDeadlineMs ?? 10_000;
  const recoverWithinMs = options.recoverWithinMs ?? 1_000;
  let seed = options.seed ?? 42;
  const random = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  const violations: string[] = [];
  const report: KillStormReport = {
    seconds: options.seconds,
    requests: 0,
    succeeded: 0,
    crashedInFlight: 0,
    retriedThenSucceeded: 0,
    retriedAndKilledAgain: 0,
    kills: 0,
    recoveryMs: null,
    killedStillRunning: 0,
    aliveAfterStop: 0,
    violations,
  };

  const procs = new PoolProcesses();
  const pool = await createPool({
    poolSize: workers,
    maxOverflow: options.maxOverflow ?? 0,
    python: options.python ?? PYTHON,
    handlers: [ECHO_HANDLERS],
    // By default the pool's own restart budget: kills under requests are the crash barrier's,
    // and must not close the pool (docs/OPTIONS.md, "Escalation").
    ...(options.generousRestarts ? { restart: { maxRestarts: 100_000, maxSeconds: 1 } } : {}),
    checkoutTimeout: deadlineMs,
    requestTimeout: deadlineMs,
  });
  procs.watch(pool);

  // Which request each session has in flight, and on which worker process it ran.
  const current = new Map<string, Req>();
  const pidOf = (workerId: string) => pool.workers().find((w) => w.id === workerId)?.pid ?? null;
  pool.on('checkout', (e: { workerId: string; sessionId: string | null }) => {
    const req = e.sessionId ? current.get(e.sessionId) : undefined;
    if (req) req.attempts.push({ workerId: e.workerId, pid: pidOf(e.workerId) });
  });
  const killed = new Map<number, ProcId>();

  let running = true;
  let n = 0;
  const loops = Array.from({ length: sessions }, async (_, i) => {
    const sessionId = `storm-${i}`;
    const idempotent = i % 2 === 0;
    while (running) {
      const k = ++n;
      const sleepy = random() < 0.3;
      const req: Req = {
        n: k,
        sessionId,
        idempotent,
        cmd: sleepy ? 'sleep' : 'echo',
        args: sleepy ? { seconds: 0.002 + random() * 0.02 } : { session: sessionId, n: k, pad: 'x'.repeat(Math.floor(random() * 200)) },
        attempts: [],
      };
      current.set(sessionId, req);
      report.requests++;
      const outcome = await within(pool.execute(req.cmd, req.args, { sessionId, idempotent }), deadlineMs);
      current.delete(sessionId);
      if (!outcome.settled) {
        violations.push(`request #${k} (${req.cmd}, session ${sessionId}) did not settle within ${deadlineMs} ms`);
        continue;
      }
      if (outcome.ok) {
        const expected = req.cmd === 'sleep' ? { slept: (req.args as { seconds: number }).seconds } : req.args;
        if (JSON.stringify(outcome.value) !== JSON.stringify(expected)) {
          violations.push(`request #${k} (${req.cmd}) got a wrong answer: ${JSON.stringify(outcome.value).slice(0, 120)}`);
        } else {
          report.succeeded++;
          if (req.attempts.length > 1) report.retriedThenSucceeded++;
        }
        continue;
      }
      const error = outcome.error;
      if (!(error instanceof WorkerCrashedError)) {
        violations.push(`request #${k} (${req.cmd}) failed with ${(error as Error)?.name}: ${(error as Error)?.message?.split('\n')[0]}`);
        continue;
      }
      const pid = error.pid ?? -1;
      const onKilled = killed.has(pid) && req.attempts.some((a) => a.pid === pid);
      if (!onKilled) {
        violations.push(`request #${k} got WorkerCrashedError for pid ${pid}, which was not killed under it (attempts: ${JSON.stringify(req.attempts)})`);
        continue;
      }
      if (req.idempotent) {
        const allKilled = req.attempts.length >= 2 && req.attempts.every((a) => a.pid !== null && killed.has(a.pid));
        if (!allKilled) violations.push(`idempotent request #${k} failed without a retry on another process (attempts: ${JSON.stringify(req.attempts)})`);
        else report.retriedAndKilledAgain++;
        continue;
      }
      report.crashedInFlight++;
    }
  });

  // The killer: a random live worker process every killEveryMs.
  const t0 = performance.now();
  let lastKill = t0;
  while (performance.now() - t0 < options.seconds * 1000) {
    await sleep(killEveryMs);
    const candidates = pool.workers().filter((w) => w.pid !== null && (w.state === 'healthy' || w.state === 'busy'));
    if (candidates.length === 0) continue;
    const victim = candidates[Math.floor(random() * candidates.length)]!;
    const id = identify(victim.pid!);
    if (!id || killed.has(id.pid)) continue;
    try {
      process.kill(id.pid, 'SIGKILL');
    } catch {
      continue;
    }
    killed.set(id.pid, id);
    procs.add(id.pid);
    report.kills++;
    lastKill = performance.now();
  }
  log(`  kill storm: ${report.kills} kills in ${options.seconds} s, ${report.requests} requests so far`);

  // Back to full strength: every worker healthy (serving) within recoverWithinMs of the last kill.
  // Overflow workers may come and go; the permanent ones must all be back, and nothing may be down.
  const whole = () => {
    const ws = pool.workers();
    const permanent = ws.filter((w) => !w.overflow);
    return permanent.length === workers && ws.every((w) => w.pid !== null && !killed.has(w.pid)) && pool.stats().healthyWorkers === ws.length;
  };
  const waited = await waitUntil(whole, Math.max(recoverWithinMs * 5, 5_000), 5);
  report.recoveryMs = waited === null ? null : Math.round(performance.now() - lastKill);
  if (report.recoveryMs === null) violations.push(`the pool did not get its ${workers} workers back (workers: ${JSON.stringify(pool.workers().map((w) => [w.id, w.state]))})`);
  else if (report.recoveryMs > recoverWithinMs) violations.push(`the pool took ${report.recoveryMs} ms after the last kill to have ${workers} healthy workers (limit ${recoverWithinMs} ms)`);

  running = false;
  await Promise.all(loops);
  for (const id of killed.values()) if (isRunning(id)) report.killedStillRunning++;
  if (report.killedStillRunning) violations.push(`${report.killedStillRunning} killed pids are still running`);

  await pool.stop();
  for (const w of pool.workers()) procs.add(w.pid);
  const alive = procs.alive();
  report.aliveAfterStop = alive.length;
  if (alive.length) violations.push(`after stop(): Python processes still alive: ${alive.map((p) => p.pid).join(', ')}`);
  if (report.kills === 0) violations.push('no process was killed');
  return report;
}
