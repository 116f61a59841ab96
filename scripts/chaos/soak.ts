/**
 * Soak: N requests through a pool of 4 real workers (1,000,000 in `npm run stress`, 50,000 in
 * CI), from concurrent callers with and without sessions. Every answer is checked. The Node
 * heap (after a full GC) and each Python worker's RSS are sampled along the way; after the
 * warm-up both must stay flat: the last samples within `tolerance` (10%) of the first ones.
 */
import { createPool } from '../../src/local/createPool.js';
import { rssMb, identify, type ProcId } from './procs.js';
import { ECHO_HANDLERS, gc, mb, PoolProcesses, PYTHON, quiet, type Log } from './common.js';

export interface SoakOptions {
  requests: number;
  workers?: number;
  concurrency?: number;
  python?: string;
  /** Share of the requests treated as warm-up (default 0.2). */
  warmup?: number;
  samples?: number;
  tolerance?: number;
  log?: Log;
}

export interface SoakSample {
  done: number;
  heapMb: number;
  rssMb: number;
  pythonRssMb: number[];
}

export interface SoakReport {
  requests: number;
  seconds: number;
  perSecond: number;
  errors: number;
  samples: SoakSample[];
  heapGrowth: number;
  pythonRssGrowth: number[];
  restarts: number;
  violations: string[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

export async function soak(options: SoakOptions): Promise<SoakReport> {
  const log = options.log ?? quiet;
  const workers = options.workers ?? 4;
  const concurrency = options.concurrency ?? 16;
  const total = options.requests;
  const nSamples = options.samples ?? 20;
  const tolerance = options.tolerance ?? 0.1;
  const warm = Math.floor(total * (options.warmup ?? 0.2));
  const violations: string[] = [];
  const procs = new PoolProcesses();
  const pool = await createPool({ poolSize: workers, maxOverflow: 0, python: options.python ?? PYTHON, handlers: [ECHO_HANDLERS] });
  procs.watch(pool);
  const ids: ProcId[] = pool.workers().map((w) => identify(w.pid!)).filter((x): x is ProcId => x !== null);
  const samples: SoakSample[] = [];
  const every = Math.max(1, Math.floor((total - warm) / nSamples));
  let nextSample = warm;
  let sampling = false;
  const sample = (done: number) => {
    gc();
    const m = process.memoryUsage();
    samples.push({ done, heapMb: mb(m.heapUsed), rssMb: mb(m.rss), pythonRssMb: ids.map((id) => rssMb(id) ?? NaN) });
  };

  let issued = 0;
  let done = 0;
  let errors = 0;
  const t0 = performance.now();
  let lastLog = t0;
  const lane = async (i: number) => {
    const sessionId = i % 2 === 0 ? `soak-${i}` : null;
    while (issued < total) {
      const k = issued++;
      const args = { k, s: 'payload-'.repeat(8) };
      try {
        const r = (await pool.execute('echo', args, { sessionId })) as { k: number; s: string };
        if (r.k !== k || r.s !== args.s) {
          errors++;
          if (violations.length < 20) violations.push(`request ${k} got a wrong answer: ${JSON.stringify(r).slice(0, 100)}`);
        }
      } catch (error) {
        errors++;
        if (violations.length < 20) violations.push(`request ${k} failed: ${(error as Error).name}: ${(error as Error).message.split('\n')[0]}`);
      }
      done++;
      // Sample between requests, from one lane at a time (a GC pause under load is fine).
      if (done >= nextSample && !sampling) {
        sampling = true;
        nextSample += every;
        sample(done);
        sampling = false;
      }
      const now = performance.now();
      if (now - lastLog > 10_000) {
        lastLog = now;
        log(`  soak: ${done.toLocaleString('en-US')} / ${total.toLocaleString('en-US')} (${Math.round(done / ((now - t0) / 1000))}/s), heap ${samples.at(-1)?.heapMb ?? '?'} MiB`);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, i) => lane(i)));
  const seconds = (performance.now() - t0) / 1000;
  sample(done);
  const restarts = pool.stats().restarts;
  await pool.stop();
  const alive = procs.alive();
  if (alive.length) violations.push(`after stop(): Python processes still alive: ${alive.map((p) => p.pid).join(', ')}`);
  if (restarts) violations.push(`${restarts} workers restarted during the soak`);

  // Flat after warm-up: the median of the last three samples against the median of the first three.
  const k = Math.min(3, Math.floor(samples.length / 2));
  const head = samples.slice(0, k);
  const tail = samples.slice(-k);
  const growth = (a: number[], b: number[]) => (median(b) - median(a)) / median(a);
  const heapGrowth = growth(head.map((s) => s.heapMb), tail.map((s) => s.heapMb));
  const pythonRssGrowth = ids.map((_, i) => growth(head.map((s) => s.pythonRssMb[i]!), tail.map((s) => s.pythonRssMb[i]!)));
  if (!(heapGrowth <= tolerance)) violations.push(`Node heap grew ${(heapGrowth * 100).toFixed(1)}% after warm-up (${head.map((s) => s.heapMb).join('/')} → ${tail.map((s) => s.heapMb).join('/')} MiB)`);
  pythonRssGrowth.forEach((g, i) => {
    if (!(g <= tolerance)) violations.push(`worker ${i + 1} RSS grew ${(g * 100).toFixed(1)}% after warm-up (${head.map((s) => s.pythonRssMb[i]).join('/')} → ${tail.map((s) => s.pythonRssMb[i]).join('/')} MiB)`);
  });
  if (done !== total) violations.push(`${done} of ${total} requests completed`);
  log(`  soak: ${total.toLocaleString('en-US')} requests in ${seconds.toFixed(1)} s (${Math.round(total / seconds)}/s), ${errors} errors; heap ${(heapGrowth * 100).toFixed(1)}%, Python RSS ${pythonRssGrowth.map((g) => `${(g * 100).toFixed(1)}%`).join(' ')}`);
  return { requests: total, seconds, perSecond: total / seconds, errors, samples, heapGrowth, pythonRssGrowth, restarts, violations };
}
