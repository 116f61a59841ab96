/**
 * One profiling workload, run in its own process so that it can be started under
 * `node --cpu-prof` (scripts/bench/profile.ts does that and reads the result).
 *
 *   node --import tsx scripts/bench/workload.ts --workload=roundtrip|throughput|sim|transport|raw|payload1m|payload16m|rawpayload1m|rawpayload16m
 *        [--codec=pure|msgpack] [--seconds=4] [--mode=cpu|events|alloc] [--profile=FILE.cpuprofile]
 *
 * mode=rate    run the workload for --seconds after a warm-up, no profiler; print
 *              {requests, ms, cpuUsPerRequest} (process CPU time, all threads).
 * mode=cpu     run the workload for --seconds after a warm-up, under the CPU profiler (written to
 *              --profile); print {requests, ms} as JSON.
 * mode=events  count the pool's XState inspection events per request, by type and by actor.
 * mode=alloc   bytes allocated per request (sampling heap profiler that keeps collected
 *              objects, so short-lived garbage counts), by function and by file.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { createPool } from '../../src/local/createPool.js';
import type { Pool } from '../../src/local/pool.js';
import { createSimulation } from '../../src/testing/index.js';
import { BareTransport, BENCH_HANDLERS, RawEcho, ROOT } from './lib.js';
import { encodeRequest } from '../../src/codec/encode.js';
import { cpuTicks, clkTck, identify, type ProcId } from '../chaos/procs.js';
import { resolvePython } from '../../src/channel/python.js';

const argv = process.argv.slice(2);
const value = (name: string, dflt: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt;
const workload = value('workload', 'roundtrip');
const codec = value('codec', 'msgpack');
const seconds = Number(value('seconds', '4'));
const mode = value('mode', 'cpu');

const PY = codec === 'pure' ? { python: 'python3', env: { PYVISOR_CODEC: 'pure' } } : { python: '/usr/bin/python3', env: { PYVISOR_CODEC: 'msgpack' } };

interface Subject {
  call: () => Promise<unknown>;
  concurrency: number;
  pool?: Pool;
  /** The Python processes serving the workload (their CPU time is read from /proc). */
  pids: () => number[];
  stop: () => Promise<void>;
}

async function subject(): Promise<Subject> {
  switch (workload) {
    case 'roundtrip': {
      const pool = await createPool({ ...PY, poolSize: 1, handlers: [BENCH_HANDLERS] });
      return { call: () => pool.execute('noop'), concurrency: 1, pool, pids: () => poolPids(pool), stop: () => pool.stop() };
    }
    case 'payload1m':
    case 'payload16m': {
      const size = workload === 'payload1m' ? 1 << 20 : 16 << 20;
      const buf = Buffer.alloc(size, 7);
      const pool = await createPool({ ...PY, poolSize: 1, handlers: [BENCH_HANDLERS], requestTimeout: 120_000 });
      return { call: () => pool.execute('echo', buf), concurrency: 1, pool, pids: () => poolPids(pool), stop: () => pool.stop() };
    }
    case 'rawpayload1m':
    case 'rawpayload16m': {
      const size = workload === 'rawpayload1m' ? 1 << 20 : 16 << 20;
      const raw = new RawEcho(await resolvePython(PY.python));
      const frame = encodeRequest(1, 'echo', Buffer.alloc(size, 7), null);
      return { call: () => raw.call(frame), concurrency: 1, pids: () => [raw.pid], stop: () => raw.stop() };
    }
    case 'throughput': {
      const pool = await createPool({ ...PY, poolSize: 2, handlers: [BENCH_HANDLERS] });
      return { call: () => pool.execute('noop'), concurrency: 16, pool, pids: () => poolPids(pool), stop: () => pool.stop() };
    }
    case 'sim': {
      const sim = createSimulation();
      sim.handle('noop', () => null);
      const pool = sim.createPool({ poolSize: 1, healthCheckInterval: 0 });
      await pool.whenReady();
      return { call: () => pool.execute('noop'), concurrency: 1, pool, pids: () => [], stop: () => pool.stop() };
    }
    case 'transport': {
      const bare = new BareTransport(await resolvePython(PY.python), PY.env);
      await bare.whenReady();
      return { call: () => bare.call('noop', null), concurrency: 1, pids: () => [bare.pid], stop: () => bare.stop() };
    }
    case 'raw': {
      const raw = new RawEcho(await resolvePython(PY.python));
      const frame = encodeRequest(1, 'noop', null, null);
      return { call: () => raw.call(frame), concurrency: 1, pids: () => [raw.pid], stop: () => raw.stop() };
    }
    default:
      throw new Error(`unknown workload ${workload}`);
  }
}

function poolPids(pool: Pool): number[] {
  return pool.workers().map((w) => w.pid).filter((p): p is number => p !== null);
}

async function drive(s: Subject, opts: { ms?: number; count?: number }): Promise<{ requests: number; ms: number }> {
  let n = 0;
  const t0 = performance.now();
  const end = opts.ms !== undefined ? t0 + opts.ms : Infinity;
  const limit = opts.count ?? Infinity;
  const lane = async () => {
    while (performance.now() < end && n < limit) {
      n++;
      await s.call();
    }
  };
  await Promise.all(Array.from({ length: s.concurrency }, lane));
  return { requests: n, ms: performance.now() - t0 };
}

async function main(): Promise<void> {
  const s = await subject();
  await drive(s, { ms: 500 }); // warm-up: JIT, worker caches
  let out: unknown;
  if (mode === 'rate') {
    const procs = s.pids().map(identify).filter((p): p is ProcId => p !== null);
    const py0 = procs.map((p) => cpuTicks(p) ?? 0);
    const cpu0 = process.cpuUsage();
    const r = await drive(s, { ms: seconds * 1000 });
    const cpu = process.cpuUsage(cpu0);
    const pyTicks = procs.reduce((sum, p, i) => sum + ((cpuTicks(p) ?? py0[i]!) - py0[i]!), 0);
    out = {
      ...r,
      cpuUsPerRequest: +((cpu.user + cpu.system) / r.requests).toFixed(1),
      userUsPerRequest: +(cpu.user / r.requests).toFixed(1),
      sysUsPerRequest: +(cpu.system / r.requests).toFixed(1),
      pythonCpuUsPerRequest: +(((pyTicks / clkTck()) * 1e6) / r.requests).toFixed(1),
    };
  } else if (mode === 'cpu') {
    // The same sampling profiler as `node --cpu-prof`, started around the measured window only
    // (so interpreter start, tsx compilation and warm-up are not charged to the requests).
    const session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 100 });
    await session.post('Profiler.start');
    const r = await drive(s, { ms: seconds * 1000 });
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    const file = value('profile', '');
    if (file) writeFileSync(file, JSON.stringify(profile));
    out = r;
  } else if (mode === 'events') {
    if (!s.pool) throw new Error('events mode needs a pool workload');
    const byType = new Map<string, number>();
    const byActorEvent = new Map<string, number>();
    const off = s.pool.observeInspection((e) => {
      byType.set(e.type, (byType.get(e.type) ?? 0) + 1);
      if (e.type === '@xstate.event') {
        const actor = (e.actorRef as { id?: string }).id ?? '?';
        const ev = (e as { event: { type: string } }).event.type;
        const key = `${actor.replace(/^worker_\d+$/, 'worker_N')} ← ${ev}`;
        byActorEvent.set(key, (byActorEvent.get(key) ?? 0) + 1);
      }
    });
    const r = await drive(s, { count: 2000 });
    off();
    const per = (m: Map<string, number>) => Object.fromEntries([...m].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, +(v / r.requests).toFixed(2)]));
    out = { requests: r.requests, perRequestByType: per(byType), perRequestByActorEvent: per(byActorEvent) };
  } else if (mode === 'alloc') {
    const session = new Session();
    session.connect();
    await session.post('HeapProfiler.enable');
    const interval = 1024;
    await session.post('HeapProfiler.startSampling', { samplingInterval: interval, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true } as never);
    const r = await drive(s, { ms: seconds * 1000 });
    const { profile } = (await session.post('HeapProfiler.stopSampling')) as unknown as { profile: { head: HeapNode; samples: Array<{ size: number; nodeId: number }> } };
    session.disconnect();
    out = { requests: r.requests, ...summariseAlloc(profile, r.requests) };
  }
  await s.stop();
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

interface HeapNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

/** Sampled allocation: bytes per request, by function (self) and by file. */
function summariseAlloc(profile: { head: HeapNode; samples: Array<{ size: number; nodeId: number }> }, requests: number) {
  const nodes = new Map<number, HeapNode>();
  const walk = (n: HeapNode) => {
    nodes.set(n.id, n);
    n.children.forEach(walk);
  };
  walk(profile.head);
  const byFn = new Map<string, number>();
  const byFile = new Map<string, number>();
  let total = 0;
  // selfSize of a node = sum over its samples of size x count: the sampled estimate of bytes allocated there.
  for (const n of nodes.values()) {
    if (!n.selfSize) continue;
    total += n.selfSize;
    const file = shortUrl(n.callFrame.url);
    const fn = `${n.callFrame.functionName || '(anonymous)'} ${file}:${n.callFrame.lineNumber + 1}`;
    byFn.set(fn, (byFn.get(fn) ?? 0) + n.selfSize);
    byFile.set(file, (byFile.get(file) ?? 0) + n.selfSize);
  }
  const top = (m: Map<string, number>, k: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, k).map(([name, b]) => ({ name, bytesPerRequest: Math.round(b / requests) }));
  return { bytesPerRequest: Math.round(total / requests), byFile: top(byFile, 15), byFunction: top(byFn, 25) };
}

export function shortUrl(url: string): string {
  if (!url) return '(native)';
  const u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) return u.slice(nm + 'node_modules/'.length).replace(/^(@[^/]+\/[^/]+|[^/]+)\/.*$/, '$1 (dep)');
  const root = `${ROOT.replace(/\/$/, '')}/`;
  if (u.startsWith(root)) return u.slice(root.length);
  return u.startsWith('node:') ? u : u.replace(/^.*\/(src|machines|scripts)\//, '$1/');
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
