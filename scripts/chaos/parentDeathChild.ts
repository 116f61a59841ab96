/**
 * The child of the parent-death scenario (scripts/chaos/parentDeath.ts): starts a pool of 4,
 * prints its workers' pids as one JSON line on stdout, then keeps them working until it is
 * SIGKILLed. Never stops its pool: that is the point.
 *
 *   node --import tsx scripts/chaos/parentDeathChild.ts [python]
 */
import { createPool } from '../../src/local/createPool.js';
import { ECHO_HANDLERS, PYTHON } from './common.js';

const pool = await createPool({ poolSize: 4, maxOverflow: 0, python: process.argv[2] || PYTHON, handlers: [ECHO_HANDLERS] });
process.stdout.write(`${JSON.stringify({ pid: process.pid, workers: pool.workers().map((w) => w.pid) })}\n`);
// Two lanes of short sleeps and two of echoes: at the moment of death some workers are in a
// command, some wait for the next one.
const lane = async (cmd: string, args: unknown) => {
  for (;;) await pool.execute(cmd, args).catch(() => {});
};
void lane('sleep', { seconds: 0.02 });
void lane('sleep', { seconds: 0.005 });
void lane('echo', { hello: 'world' });
void lane('echo', { n: 1 });
