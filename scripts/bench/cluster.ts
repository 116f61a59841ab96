/**
 * The cluster benchmarks (issue 13), run by `npm run bench` (`--only=cluster`) when Debian's
 * nats-server is installed. The bench process is the front end (createClusterPool); each
 * agent is its own Node process (test/cluster/_agent.ts: startAgent with a local pool of
 * python3 workers running scripts/bench/bench_handlers.py); a nats-server of its own runs on
 * a free loopback port with a temporary store.
 *   [8a] round trip: sequential `echo` of a small map through createClusterPool + 1 agent
 *        against the same pool options locally (createPool in this process): what NATS and
 *        the agent hop add per request, in µs; and a bare NATS request/reply to a responder
 *        process, the transport's own share of it;
 *   [8b] throughput, concurrency 16, with 1, 2 and 3 agents (1 worker each) against a local
 *        pool with as many workers. On 2 cores the agents, their workers, nats-server and this
 *        process share the same CPUs, so these rows are "info": the scaling is for bigger machines.
 */
import { connect } from '@nats-io/transport-node';
import { createPool } from '../../src/local/createPool.js';
import type { Pool } from '../../src/local/pool.js';
import { AgentProc, Child, NatsServer, natsServerPath, Procs } from '../../test/cluster/helpers.js';
import type { BenchRow } from './lib.js';
import { BENCH_HANDLERS, deadline, fmt, median, rate } from './lib.js';

const ENV = { PYVISOR_CODEC: 'pure' };

/** A bare NATS responder in a Node process of its own: replies to `bench.echo` with the request's bytes. */
const RESPONDER = `
import { connect } from '@nats-io/transport-node';
const nc = await connect({ servers: process.argv[1] });
nc.subscribe('bench.echo', { callback: (_e, m) => m.respond(m.data) });
await nc.flush();
process.stdout.write('responder ready\\n');
process.stdin.on('end', async () => { await nc.close(); process.exit(0); });
process.stdin.resume();
`;

/** Why the cluster benchmarks cannot run here, or null. */
export function clusterAvailable(): string | null {
  return natsServerPath() ? null : 'nats-server not found (Debian: apt-get install nats-server)';
}

type Exec = { execute(command: string, args?: unknown): Promise<unknown> };

/** Interleaved windows: every repeat measures each subject once, in turn; the median of each. */
async function interleaved(subjects: Record<string, Exec>, call: (e: Exec) => Promise<unknown>, p: { concurrency: number; warmMs: number; ms: number; repeats: number }) {
  for (const e of Object.values(subjects)) await rate(() => call(e), p.concurrency, p.warmMs);
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(subjects).map((k) => [k, []]));
  for (let i = 0; i < p.repeats; i++) {
    for (const [name, e] of Object.entries(subjects)) samples[name]!.push(await rate(() => call(e), p.concurrency, p.ms));
  }
  return Object.fromEntries(Object.entries(samples).map(([k, s]) => [k, { value: median(s), samples: s }])) as Record<string, { value: number; samples: number[] }>;
}

export async function clusterBench(add: (row: BenchRow) => void, notes: string[], p: { warmMs: number; ms: number; repeats: number }): Promise<void> {
  const { createClusterPool } = await import('../../src/cluster/index.js');
  const procs = new Procs();
  const nats = await NatsServer.start(procs);
  const agents: AgentProc[] = [];
  const startAgent = async (hostId: string, poolSize: number) => {
    const a = new AgentProc(procs, { servers: nats.url, pool: 'bench', hostId, poolSize, handlers: [BENCH_HANDLERS] }, ENV);
    agents.push(a);
    await a.ready(60_000);
    return a;
  };
  const stopAgent = async (a: AgentProc) => {
    await a.child.stop(15_000);
    agents.splice(agents.indexOf(a), 1);
  };
  const cluster = await createClusterPool({ servers: nats.url, pool: 'bench' });
  const locals: Pool[] = [];
  const local = async (poolSize: number) => {
    const pool = await deadline(createPool({ python: 'python3', env: ENV, handlers: [BENCH_HANDLERS], poolSize, maxOverflow: 0 }), 60_000, 'createPool');
    locals.push(pool);
    return pool;
  };
  try {
    // ---- [8a] round trip
    console.log('\n[8a] cluster round trip: sequential echo through createClusterPool + 1 agent (poolSize 2) vs the same pool locally');
    const one = await startAgent('bench-1', 2);
    await cluster.whenHosts(1, 10_000);
    const pool2 = await local(2);
    const args = { q: 'what does NATS add?', n: 1 };
    // The transport alone: a NATS request/reply to a bare responder process (no pool, no agent).
    const responder = new Child(procs, 'nats responder', process.execPath, ['--input-type=module', '-e', RESPONDER, nats.url]);
    await responder.waitFor(/responder ready/, 30_000);
    const nc = await connect({ servers: nats.url });
    const payload = new TextEncoder().encode(JSON.stringify(args));
    const bare: Exec = { execute: () => nc.request('bench.echo', payload, { timeout: 5000 }) };
    const m = await interleaved({ cluster, local: pool2, bare }, (e) => e.execute('echo', args), { concurrency: 1, ...p });
    await nc.close();
    responder.proc.stdin!.end();
    await responder.exited;
    const addedUs = 1e6 / m.cluster!.value - 1e6 / m.local!.value;
    const natsUs = 1e6 / m.bare!.value;
    add({
      bench: 'cluster',
      subject: 'round trip via NATS, 1 agent (poolSize 2), sequential echo',
      codec: 'pure',
      value: m.cluster!.value,
      samples: m.cluster!.samples,
      unit: 'calls/s',
      baselineName: 'the same pool locally',
      baseline: m.local!.value,
      baselineSamples: m.local!.samples,
      target: '',
      note: `NATS and the agent add ${fmt(addedUs)} µs per request (${fmt(1e6 / m.cluster!.value)} µs vs ${fmt(1e6 / m.local!.value)} µs)`,
    });
    add({
      bench: 'cluster',
      subject: 'bare NATS request/reply to a Node responder process',
      codec: 'nats',
      value: m.bare!.value,
      samples: m.bare!.samples,
      unit: 'calls/s',
      baselineName: 'cluster round trip',
      baseline: m.cluster!.value,
      target: '',
      note: `${fmt(natsUs)} µs per NATS round trip: the transport's share of the ${fmt(addedUs)} µs the cluster adds`,
    });
    notes.push(`cluster: a request through NATS and an agent costs ${fmt(addedUs)} µs more than the same pool in-process (sequential echo, ${fmt(1e6 / m.cluster!.value)} µs vs ${fmt(1e6 / m.local!.value)} µs per round trip); a bare NATS request/reply between two Node processes takes ${fmt(natsUs)} µs on the same machine`);
    await stopAgent(one);
    await pool2.stop();

    // ---- [8b] throughput with 1, 2, 3 agents
    console.log('\n[8b] cluster throughput, concurrency 16, 1/2/3 agents (1 worker each) vs a local pool with as many workers');
    const c = 16;
    const byAgents: number[] = [];
    for (const n of [1, 2, 3]) {
      await startAgent(`bench-n${n}`, 1);
      await cluster.whenHosts(n, 10_000);
      const baseline = await local(n);
      const t = await interleaved({ cluster, local: baseline }, (e) => e.execute('noop'), { concurrency: c, ...p });
      byAgents.push(t.cluster!.value);
      add({
        bench: 'cluster',
        subject: `throughput, ${n} agent${n > 1 ? 's' : ''} × 1 worker, c=${c}`,
        codec: 'pure',
        value: t.cluster!.value,
        samples: t.cluster!.samples,
        unit: 'calls/s',
        baselineName: `local pool, poolSize ${n}`,
        baseline: t.local!.value,
        baselineSamples: t.local!.samples,
        target: '',
        note: n > 1 ? `${(t.cluster!.value / byAgents[0]!).toFixed(2)}x the 1-agent rate (2 cores shared by every process)` : 'NATS queue group',
      });
      await baseline.stop();
    }
  } finally {
    await cluster.stop();
    await Promise.all(locals.map((l) => l.stop()));
    await Promise.all(agents.map((a) => a.child.stop(15_000)));
    await nats.close();
    procs.killAll();
    procs.stopSampling();
  }
}
