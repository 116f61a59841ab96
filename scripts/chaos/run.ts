/**
 * npm run chaos [-- --seconds=60] [-- --only=killstorm,parent,hostile,escalation]
 *               [-- --stream-cases=20000] [-- --pool-cases=600] [-- --python=python3]
 *
 * The chaos suite at full size (its short versions run in CI from
 * test/integration/chaos.test.ts): kill storm, parent death, hostile worker, escalation.
 * Real Python processes, real SIGKILLs. Prints each scenario's figures and violations; exits 1
 * if any scenario has one. Every scenario proves that no process it started is left.
 */
import { descendants, procStat } from './procs.js';
import { escalation } from './escalation.js';
import { hostile } from './hostile.js';
import { killStorm } from './killStorm.js';
import { parentDeath } from './parentDeath.js';
import { PYTHON } from './common.js';

const argv = process.argv.slice(2);
const value = (name: string, dflt: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt;
const only = value('only', 'killstorm,parent,hostile,escalation').split(',');
const python = value('python', PYTHON);
const log = (line: string) => console.log(line);

const results: Array<{ name: string; seconds: number; violations: string[]; summary: string }> = [];

async function run(name: string, fn: () => Promise<{ violations: string[] }>, summary: (r: never) => string): Promise<void> {
  if (!only.includes(name)) return;
  console.log(`\n== ${name}`);
  const t0 = performance.now();
  try {
    const r = await fn();
    results.push({ name, seconds: (performance.now() - t0) / 1000, violations: r.violations, summary: summary(r as never) });
  } catch (error) {
    results.push({ name, seconds: (performance.now() - t0) / 1000, violations: [`crashed: ${(error as Error).stack ?? error}`], summary: '' });
  }
  const last = results.at(-1)!;
  console.log(`   ${last.summary}`);
  for (const v of last.violations.slice(0, 20)) console.log(`   VIOLATION: ${v}`);
  if (last.violations.length > 20) console.log(`   ... ${last.violations.length - 20} more`);
}

const pythonsBefore = new Set(descendants(process.pid).map((p) => `${p.pid}:${p.starttime}`));

const stormSummary = (r: Awaited<ReturnType<typeof killStorm>>) =>
  `${r.kills} kills, ${r.requests} requests: ${r.succeeded} ok (${r.retriedThenSucceeded} after an idempotent retry), ${r.crashedInFlight} WorkerCrashedError in flight on a killed pid, ${r.retriedAndKilledAgain} idempotent killed twice; back to full strength ${r.recoveryMs} ms after the last kill; killed pids still running: ${r.killedStillRunning}; alive after stop: ${r.aliveAfterStop}`;
// The pool's default restart budget, overflow off and on: no kill storm may close it.
await run('killstorm', () => killStorm({ seconds: Number(value('seconds', '60')), python, log }), stormSummary);
await run('killstorm+overflow', () => killStorm({ seconds: Number(value('seconds', '60')), maxOverflow: 2, python, log }), stormSummary);
const parentSummary = (r: Awaited<ReturnType<typeof parentDeath>>) => `${r.workers} orphaned workers exited after ${r.exitMs.join(', ')} ms, using ${r.cpuMs.join(', ')} ms of CPU meanwhile`;
await run('parent', () => parentDeath({ python, log }), parentSummary);
await run('parent-spin-kill', () => parentDeath({ python, work: 'spin', ending: 'kill', log }), parentSummary);
await run('parent-spin-exit', () => parentDeath({ python, work: 'spin', ending: 'exit', log }), parentSummary);
await run('hostile', () => hostile({ streamCases: Number(value('stream-cases', '20000')), poolCases: Number(value('pool-cases', '600')), python, log }), (r: Awaited<ReturnType<typeof hostile>>) =>
  `transport: ${r.stream.cases} cases → ${r.stream.protocolErrors} ProtocolErrors; pool: ${r.pool.cases} cases → ${r.pool.protocolErrors} ProtocolErrors, ${r.pool.restarts} restarts of the hostile worker, ${r.pool.otherWorkersRestarted} of the others; host heap ${r.memory.heapBeforeMb} → ${r.memory.heapAfterMb} MiB, RSS ${r.memory.rssBeforeMb} → ${r.memory.rssAfterMb} MiB`);
await run('escalation', () => escalation({ python, log }), (r: Awaited<ReturnType<typeof escalation>>) =>
  `${r.rejectedWith} after ${r.ms} ms and ${r.attempts} start attempts (${r.attemptsAfterRejection} after it); cause: ${r.cause}; alive: ${r.alive}`);

// The last word: no Python process started by this run is alive.
const left = descendants(process.pid).filter((p) => !pythonsBefore.has(`${p.pid}:${p.starttime}`) && /python/i.test(procStat(p.pid)?.comm ?? ''));
console.log('\n== summary');
for (const r of results) console.log(`   ${r.violations.length ? 'FAIL' : 'PASS'}  ${r.name.padEnd(18)} ${r.seconds.toFixed(1).padStart(6)} s  ${r.violations.length} violations`);
if (left.length) console.log(`   FAIL  Python processes of this run still alive: ${left.map((p) => p.pid).join(', ')}`);
const failed = results.some((r) => r.violations.length) || left.length > 0;
console.log(failed ? '\nchaos: FAILED' : '\nchaos: all scenarios passed');
process.exit(failed ? 1 : 0);
