/**
 * An agent process for the cluster suites: startAgent() with a local pool of real python3
 * workers, as `pyvisor agent` runs it, plus the options the CLI does not take
 * (heartbeatInterval). Prints the pid of every Python worker it starts ("worker pid N"),
 * then the CLI's line "agent <hostId> serving pool <name> via <url>"; SIGTERM/SIGINT (or its
 * stdin closing: the test is gone) drain it (agent.stop()) and exit 0.
 *
 *   node --import tsx test/cluster/_agent.ts '{"servers":"nats://...","pool":"p","hostId":"h1","poolSize":2,"handlers":[...]}'
 */
import { startAgent } from '../../src/cluster/index.js';

interface Spec {
  servers: string;
  pool: string;
  hostId: string;
  poolSize?: number;
  handlers: string[];
  heartbeatInterval?: number;
  workerConcurrency?: number;
}

const spec = JSON.parse(process.argv[2] ?? '{}') as Spec;
const seen = new Set<number>();
const report = (pid: number | null | undefined) => {
  if (pid && !seen.has(pid)) {
    seen.add(pid);
    process.stdout.write(`worker pid ${pid}\n`);
  }
};

const agent = await startAgent({
  servers: spec.servers,
  pool: spec.pool,
  hostId: spec.hostId,
  poolSize: spec.poolSize ?? 2,
  maxOverflow: 0,
  handlers: spec.handlers,
  ...(spec.heartbeatInterval ? { heartbeatInterval: spec.heartbeatInterval } : {}),
  ...(spec.workerConcurrency ? { workerConcurrency: spec.workerConcurrency } : {}),
});
agent.pool.on('worker_state', (e: { pid: number | null }) => report(e.pid));
agent.pool.on('worker_restarted', (e: { newPid: number | null }) => report(e.newPid));
for (const w of agent.pool.workers()) report(w.pid);
process.stdout.write(`agent ${agent.hostId} serving pool ${spec.pool} via ${spec.servers}\n`);

let stopping = false;
const drain = async (sig: string) => {
  if (stopping) return;
  stopping = true;
  process.stdout.write(`agent ${agent.hostId}: ${sig}, draining\n`);
  const t0 = Date.now();
  await agent.stop();
  process.stdout.write(`agent ${agent.hostId} stopped after ${Date.now() - t0} ms\n`);
  process.exit(0);
};
process.on('SIGTERM', () => void drain('SIGTERM'));
process.on('SIGINT', () => void drain('SIGINT'));
// The test that started it is gone (its end of stdin closed): drain and exit as well.
process.stdin.on('end', () => void drain('stdin closed'));
process.stdin.resume();
