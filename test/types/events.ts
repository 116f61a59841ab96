/**
 * Compiled by tsc in test/fast/types.test.ts, never run: what the typed events accept. Every
 * `@ts-expect-error` line must be an error (tsc reports an unused directive otherwise).
 */
import { createPool, type PoolEvents } from '../../src/index.js';
import { createClusterPool } from '../../src/cluster/index.js';

export async function localPool(): Promise<void> {
  const pool = await createPool({ poolSize: 1 });
  pool.on('checkin', (e) => {
    const ms: number = e.runMs;
    const ok: boolean = e.ok;
    void ms;
    void ok;
  });
  pool.on('worker_restarted', (e) => void e.newPid);
  pool.once('session_end', (e: PoolEvents['session_end']) => void e.reason);
  pool.off('worker_log', () => {});
  // @ts-expect-error: no such event
  pool.on('no_such_event', () => {});
  // @ts-expect-error: checkin has no field `durationMs`
  pool.on('checkin', (e) => void e.durationMs);
  // @ts-expect-error: runMs is a number
  pool.on('checkin', (e) => void (e.runMs satisfies string));
  // @ts-expect-error: a cluster pool's event, not a local pool's
  pool.on('host_down', () => {});
  await pool.stop();
}

export async function clusterPool(): Promise<void> {
  const cluster = await createClusterPool({ servers: 'nats://127.0.0.1:4222', pool: 'types' });
  cluster.on('host_down', (e) => {
    const reason: 'timeout' | 'left' | 'restarted' = e.reason;
    void reason;
  });
  // @ts-expect-error: hosts have no field `pid` in host_up
  cluster.on('host_up', (e) => void e.pid);
  await cluster.stop();
}
