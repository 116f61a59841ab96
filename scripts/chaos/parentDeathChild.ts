/**
 * The child of the parent-death scenario (scripts/chaos/parentDeath.ts): starts a pool of 4,
 * prints its workers' pids as one JSON line on stdout, then keeps them working until it is
 * SIGKILLed — or, with `exit`, calls process.exit(0) once they are. Never stops its pool:
 * that is the point. With `spin` every worker runs a handler that ignores SIGTERM and never
 * returns (only SIGKILL ends it).
 *
 *   node --import tsx scripts/chaos/parentDeathChild.ts [python] [mixed|spin] [kill|exit]
 */
import { createPool } from '../../src/local/createPool.js';
import { ECHO_HANDLERS, PYTHON } from './common.js';

const work = process.argv[3] ?? 'mixed';
const ending = process.argv[4] ?? 'kill';
const pool = await createPool({ poolSize: 4, maxOverflow: 0, python: process.argv[2] || PYTHON, handlers: [ECHO_HANDLERS] });
process.stdout.write(`${JSON.stringify({ pid: process.pid, workers: pool.workers().map((w) => w.pid) })}\n`);
if (work === 'spin') {
  for (let i = 0; i < 4; i++) void pool.execute('spin', null, { timeout: 600_000 }).catch(() => {});
  // The parent tells us when every worker spins (it watches their CPU): then exit, or wait to be killed.
  process.stdin.once('data', () => {
    if (ending === 'exit') process.exit(0);
  });
}
if (work === 'mixed') {
  // Two lanes of short sleeps and two of echoes: at the moment of death some workers are in a
  // command, some wait for the next one.
  const lane = async (cmd: string, args: unknown) => {
    for (;;) await pool.execute(cmd, args).catch(() => {});
  };
  void lane('sleep', { seconds: 0.02 });
  void lane('sleep', { seconds: 0.005 });
  void lane('echo', { hello: 'world' });
  void lane('echo', { n: 1 });
}
