/**
 * Escalation: workers that crash at every start (test/fixtures/crash_on_start.py exits the
 * interpreter while the handlers are imported). createPool must reject with
 * SupervisorEscalationError once the restart intensity is exceeded — not retry forever — and
 * leave no process behind. Each start attempt appends its pid to a file, which is how the
 * attempts are counted and proven gone; no new attempt may appear after the rejection.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPool } from '../../src/local/createPool.js';
import { SupervisorEscalationError } from '../../src/errors.js';
import { isRunning } from './procs.js';
import { CRASH_ON_START, PYTHON, quiet, sleep, type Log } from './common.js';

export interface EscalationOptions {
  python?: string;
  poolSize?: number;
  maxRestarts?: number;
  maxSeconds?: number;
  /** How long to watch for further start attempts after the rejection. */
  quietMs?: number;
  log?: Log;
}

export interface EscalationReport {
  rejectedWith: string;
  cause: string;
  ms: number;
  attempts: number;
  attemptsAfterRejection: number;
  alive: number;
  violations: string[];
}

export async function escalation(options: EscalationOptions = {}): Promise<EscalationReport> {
  const log = options.log ?? quiet;
  const poolSize = options.poolSize ?? 2;
  const maxRestarts = options.maxRestarts ?? 3;
  const maxSeconds = options.maxSeconds ?? 5;
  const dir = mkdtempSync(join(tmpdir(), 'pyvisor-escalation-'));
  const pidfile = join(dir, 'pids');
  const pids = () => {
    try {
      return readFileSync(pidfile, 'utf8').split('\n').filter(Boolean).map((l) => {
        const [pid, starttime] = l.split(' ').map(Number);
        return { pid: pid!, starttime: starttime ?? 0 };
      });
    } catch {
      return [];
    }
  };
  const violations: string[] = [];
  const report: EscalationReport = { rejectedWith: '', cause: '', ms: 0, attempts: 0, attemptsAfterRejection: 0, alive: 0, violations };
  const t0 = performance.now();
  try {
    const pool = await createPool({
      poolSize,
      python: options.python ?? PYTHON,
      handlers: [CRASH_ON_START],
      env: { PYVISOR_CRASH_PIDFILE: pidfile },
      restart: { maxRestarts, maxSeconds },
      startTimeout: 20_000,
    });
    await pool.stop();
    violations.push('createPool resolved although every worker crashes at start');
  } catch (error) {
    report.ms = Math.round(performance.now() - t0);
    report.rejectedWith = (error as Error)?.name ?? String(error);
    const cause = (error as Error)?.cause as Error | undefined;
    report.cause = cause ? `${cause.name}: ${cause.message.split('\n')[0]}` : '';
    if (!(error instanceof SupervisorEscalationError)) violations.push(`createPool rejected with ${report.rejectedWith} (${(error as Error)?.message}), not SupervisorEscalationError`);
  }
  report.attempts = pids().length;
  // No hot loop: nothing may start once the pool has given up.
  await sleep(options.quietMs ?? 1_500);
  const after = pids();
  report.attemptsAfterRejection = after.length - report.attempts;
  if (report.attemptsAfterRejection > 0) violations.push(`${report.attemptsAfterRejection} more start attempts after createPool rejected`);
  // The budget: the first start of each worker, plus at most maxRestarts restarts (+1, the one that exceeds it).
  const budget = poolSize + maxRestarts + 1;
  if (report.attempts > budget) violations.push(`${report.attempts} start attempts, more than the restart budget allows (${budget})`);
  if (report.attempts < 1) violations.push('no start attempt was recorded (the fixture did not run?)');
  // Within the budget in time too: maxSeconds is the window; a start takes well under a second.
  if (report.ms > maxSeconds * 1000 + 10_000) violations.push(`createPool took ${report.ms} ms to give up`);
  // Every attempt is gone: no process with that pid and start time is running.
  report.alive = after.filter((id) => isRunning(id)).length;
  if (report.alive) violations.push(`${report.alive} crashed workers' pids are still running`);
  rmSync(dir, { recursive: true, force: true });
  log(`  escalation: ${report.rejectedWith} after ${report.ms} ms, ${report.attempts} start attempts (budget ${budget}), ${report.attemptsAfterRejection} after; cause ${report.cause}`);
  return report;
}
