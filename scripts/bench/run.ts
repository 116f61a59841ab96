/**
 * npm run bench [-- --quick] [-- --only=roundtrip,throughput,payloads,coldstart,restart,affinity,overhead,dspy,cluster]
 *               [-- --out=bench] [-- --codecs=pure,msgpack]
 *
 * The benchmarks. Every figure is printed beside a baseline measured in the
 * same run on the same machine, as a ratio, with its target and PASS / GAP. Each benchmark
 * runs under both Python codecs:
 *   pure    — the bundled pure-Python codec: `python3` (pyenv) with PYVISOR_CODEC=pure
 *   msgpack — the msgpack C module: Debian's `/usr/bin/python3` with PYVISOR_CODEC=msgpack
 * Method: a warm-up, then repeated measurement windows, interleaved between the subjects
 * that are compared (so that a load spike hits both sides of a ratio), and the median.
 * Writes bench/results.md, bench/results.json and bench/throughput.svg.
 * The full run stays under ~5 minutes on 2 cores; --quick (smoke) under a minute.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import genericPool from 'generic-pool';
import tarn from 'tarn';
import { createPool } from '../../src/local/createPool.js';
import { encodeRequest } from '../../src/codec/encode.js';
import type { Pool } from '../../src/local/pool.js';
import { clearPythonCache, resolvePython } from '../../src/channel/python.js';
import { createSimulation } from '../../src/testing/index.js';
import {
  BareTransport,
  BENCH_HANDLERS,
  deadline,
  fmt,
  measureDuration,
  measureRate,
  median,
  PyShell,
  rate,
  RawEcho,
  ROOT,
  sleep,
  type BenchRow,
} from './lib.js';
import { throughputSvg, type Curve } from './chart.js';

// ---- options ----------------------------------------------------------------------------

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(`--${name}`);
const value = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const QUICK = flag('quick');
const ONLY = value('only')?.split(',') ?? ['roundtrip', 'throughput', 'payloads', 'coldstart', 'restart', 'affinity', 'overhead', 'dspy', 'cluster'];
const OUT = join(ROOT, value('out') ?? 'bench');
const WANT_CODECS = value('codecs')?.split(',') ?? ['pure', 'msgpack'];

/** Measurement budget. Full: ~4-5 min on 2 cores; quick: < 1 min. */
const P = QUICK
  ? { warmMs: 150, ms: 250, repeats: 3, conc: [1, 4, 16, 64], tpMs: 200, tpRepeats: 1, bigRepeats: 2, starts: 2, restarts: 3, ovMs: 250 }
  : { warmMs: 400, ms: 500, repeats: 5, conc: [1, 2, 4, 8, 16, 32, 64], tpMs: 300, tpRepeats: 3, bigRepeats: 5, starts: 5, restarts: 5, ovMs: 500 };

interface Codec {
  id: 'pure' | 'msgpack';
  python: string;
  env: Record<string, string>;
  label: string;
  exe?: string;
  version?: string;
}

const CODECS: Codec[] = [
  { id: 'pure', python: 'python3', env: { PYVISOR_CODEC: 'pure' }, label: 'bundled pure-Python codec (python3, PYVISOR_CODEC=pure)' },
  { id: 'msgpack', python: '/usr/bin/python3', env: { PYVISOR_CODEC: 'msgpack' }, label: 'msgpack C module (/usr/bin/python3, PYVISOR_CODEC=msgpack)' },
];

// ---- results ------------------------------------------------------------------------------

type Status = 'PASS' | 'GAP' | 'info';

/** A row as reported: what the benchmark gave, with its ratio and result. */
type Row = Omit<BenchRow, 'check'> & { ratio: number; status: Status };

const rows: Row[] = [];
const curves: Curve[] = [];
const matrix: Array<{ codec: string; poolSize: number; concurrency: number; callsPerSec: number; rawCallsPerSec: number; ratio: number }> = [];
const notes: string[] = [];

/** A ratio as printed: 3 decimals below 1 (so that 0.798 never reads as a passing 0.80), 2 above. */
function ratioText(r: number): string {
  return `${r < 1 ? r.toFixed(3) : r.toFixed(2)}x`;
}

function add(row: Omit<Row, 'ratio' | 'status'> & { ratio?: number; check?: (ratio: number) => boolean }): Row {
  const ratio = row.ratio ?? row.value / row.baseline;
  const status: Status = row.check ? (row.check(ratio) ? 'PASS' : 'GAP') : 'info';
  const { check: _c, ...rest } = row;
  const full: Row = { ...rest, ratio, status };
  rows.push(full);
  const r = `${full.bench} | ${full.subject} [${full.codec}]: ${fmt(full.value)} ${full.unit} vs ${full.baselineName} ${fmt(full.baseline)} → ${ratioText(full.ratio)} ${full.target} ${full.status}`;
  console.log(`  ${r}`);
  return full;
}

// ---- helpers -------------------------------------------------------------------------------

async function startPool(codec: Codec, options: Record<string, unknown> = {}): Promise<Pool> {
  const pool = await deadline(
    createPool({ python: codec.python, env: codec.env, handlers: [BENCH_HANDLERS], poolSize: 1, ...options }),
    60_000,
    'createPool',
  );
  const ping = (await pool.execute('ping')) as { codec: string };
  if (ping.codec !== codec.id) throw new Error(`bench: expected the ${codec.id} codec, the worker reports ${ping.codec}`);
  return pool;
}

function nextRestart(pool: Pool, workerId: string, timeoutMs = 30_000): Promise<{ oldPid: number | null; newPid: number | null }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      pool.off('worker_restarted', listener);
      reject(new Error(`no worker_restarted for ${workerId} within ${timeoutMs} ms`));
    }, timeoutMs);
    const listener = (e: { workerId: string; oldPid: number | null; newPid: number | null }) => {
      if (e.workerId !== workerId) return;
      clearTimeout(timer);
      pool.off('worker_restarted', listener);
      resolve(e);
    };
    pool.on('worker_restarted', listener);
  });
}

/** One worker process from spawn to its first ping answer: the unit cold start and restart are measured against. */
async function startPlusPing(codec: Codec): Promise<number> {
  const t0 = performance.now();
  const bare = new BareTransport(codec.exe!, codec.env);
  await bare.whenReady();
  await bare.call('ping', null);
  const ms = performance.now() - t0;
  await bare.stop();
  return ms;
}

/** Interleaved windows: every repeat measures each subject once, in turn. */
async function interleaved(subjects: Record<string, (lane: number) => Promise<unknown>>, opts: { concurrency?: number; warmMs: number; ms: number; repeats: number }) {
  const c = opts.concurrency ?? 1;
  for (const call of Object.values(subjects)) await rate(call, c, opts.warmMs);
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(subjects).map((k) => [k, []]));
  for (let i = 0; i < opts.repeats; i++) {
    for (const [name, call] of Object.entries(subjects)) samples[name]!.push(await rate(call, c, opts.ms));
  }
  return Object.fromEntries(Object.entries(samples).map(([k, s]) => [k, { value: median(s), samples: s }])) as Record<string, { value: number; samples: number[] }>;
}

// ---- 1. round trip --------------------------------------------------------------------------

async function roundTrip(codec: Codec): Promise<void> {
  console.log(`\n[1] round trip, one worker, sequential no-op — ${codec.id}`);
  const pool = await startPool(codec, { poolSize: 1 });
  const raw = new RawEcho(codec.exe!);
  const shell = new PyShell(codec.exe!);
  const bare = new BareTransport(codec.exe!, codec.env);
  await bare.whenReady();
  const frame = encodeRequest(1, 'noop', null, null);
  try {
    const m = await interleaved(
      {
        pool: () => pool.execute('noop'),
        raw: () => raw.call(frame),
        shell: () => shell.call('noop', null),
        bare: () => bare.call('noop', null),
      },
      { warmMs: P.warmMs, ms: P.ms, repeats: P.repeats },
    );
    const base = { bench: 'round trip', codec: codec.id, unit: 'calls/s' };
    add({ ...base, subject: 'pool.execute', value: m.pool!.value, samples: m.pool!.samples, baselineName: 'raw echo', baseline: m.raw!.value, baselineSamples: m.raw!.samples, target: '>= 0.80x', check: (r) => r >= 0.8 });
    add({ ...base, subject: 'pool.execute', value: m.pool!.value, baselineName: 'python-shell json', baseline: m.shell!.value, baselineSamples: m.shell!.samples, target: '> 1.00x', check: (r) => r > 1 });
    add({ ...base, subject: 'bare transport', value: m.bare!.value, samples: m.bare!.samples, baselineName: 'raw echo', baseline: m.raw!.value, target: '', note: 'WorkerProcess + codec, no machines' });
    add({ ...base, subject: 'pool.execute', value: m.pool!.value, baselineName: 'bare transport', baseline: m.bare!.value, target: '', note: 'share of the transport rate the machines keep' });
  } finally {
    await Promise.all([pool.stop(), raw.stop(), shell.stop(), bare.stop()]);
  }
}

// ---- 2. throughput ------------------------------------------------------------------------

async function throughput(codec: Codec): Promise<void> {
  console.log(`\n[2] throughput, poolSize 1/2/4 x concurrency ${P.conc.join(',')} — ${codec.id}`);
  const frame = encodeRequest(1, 'noop', null, null);
  for (const n of [1, 2, 4]) {
    const raws = Array.from({ length: n }, () => new RawEcho(codec.exe!));
    const pool = await startPool(codec, { poolSize: n });
    const rawCall = (lane: number) => raws[lane % n]!.call(frame);
    const poolPoints: Array<{ x: number; y: number }> = [];
    const rawSamples: number[] = [];
    let cpuPerCallUs = NaN;
    try {
      // n raw processes driven in parallel, one request in flight each: the limit for n processes.
      await rate(rawCall, n, P.warmMs);
      await rate(() => pool.execute('noop'), n, P.warmMs);
      for (const c of P.conc) {
        let calls = 0;
        const cpu0 = process.cpuUsage();
        const m = await measureRate(() => (calls++, pool.execute('noop')), { concurrency: c, warmMs: 0, ms: P.tpMs, repeats: P.tpRepeats });
        const cpu = process.cpuUsage(cpu0);
        // This process's CPU (user + system) per call: the Node side of the request path.
        if (n === 4 && c === 16) cpuPerCallUs = (cpu.user + cpu.system) / calls;
        rawSamples.push(await rate(rawCall, n, P.tpMs));
        poolPoints.push({ x: c, y: m.value });
      }
    } finally {
      await Promise.all([pool.stop(), ...raws.map((r) => r.stop())]);
    }
    const rawValue = median(rawSamples);
    for (const p of poolPoints) matrix.push({ codec: codec.id, poolSize: n, concurrency: p.x, callsPerSec: p.y, rawCallsPerSec: rawValue, ratio: p.y / rawValue });
    curves.push({ codec: codec.id, label: `pool ${n}`, poolSize: n, points: poolPoints, dashed: false });
    curves.push({ codec: codec.id, label: `raw ×${n}`, poolSize: n, points: P.conc.map((c) => ({ x: c, y: rawValue })), dashed: true });
    const best = poolPoints.reduce((a, b) => (b.y > a.y ? b : a));
    add({
      bench: 'throughput',
      subject: `poolSize ${n}, best (c=${best.x})`,
      codec: codec.id,
      value: best.y,
      unit: 'calls/s',
      baselineName: `${n} raw echo${n > 1 ? 'es' : ''} in parallel`,
      baseline: rawValue,
      baselineSamples: rawSamples,
      target: n === 2 ? '>= 0.80x' : '',
      ...(n === 2 ? { check: (r: number) => r >= 0.8 } : {}),
    });
    const at16 = poolPoints.find((p) => p.x === 16);
    if (n === 4 && at16) {
      add({ bench: 'throughput', subject: 'poolSize 4, 16 callers', codec: codec.id, value: at16.y, unit: 'calls/s', baselineName: '4 raw echoes in parallel', baseline: rawValue, baselineSamples: rawSamples, target: '>= 0.35x', check: (r) => r >= 0.35 });
      add({ bench: 'throughput', subject: 'Node CPU per call, poolSize 4, 16 callers', codec: codec.id, value: cpuPerCallUs, unit: 'µs', baselineName: 'budget', baseline: 25, target: '<= 1.00x', check: (r) => r <= 1, note: 'process.cpuUsage() over the calls' });
    }
  }
}

// ---- 3. payloads ----------------------------------------------------------------------------

async function payloads(codec: Codec): Promise<void> {
  console.log(`\n[3] payloads, bytes echo round trips — ${codec.id}`);
  const pool = await startPool(codec, { poolSize: 1, requestTimeout: 120_000 });
  const raw = new RawEcho(codec.exe!);
  const perByte: Record<string, number> = {};
  try {
    for (const [label, size] of [['1 KiB', 1024], ['1 MiB', 1 << 20], ['16 MiB', 16 << 20]] as const) {
      const buf = randomBytes(size);
      const back = (await pool.execute('echo', buf)) as Buffer;
      if (!Buffer.isBuffer(back) || !back.equals(buf)) throw new Error(`bench: ${label} echo did not come back intact`);
      const frame = encodeRequest(1, 'echo', buf, null);
      const mb = size / 1e6;
      let poolMBs: number;
      let rawMBs: number;
      let ps: number[];
      let rs: number[];
      if (size <= 1 << 20) {
        const m = await interleaved({ pool: () => pool.execute('echo', buf), raw: () => raw.call(frame) }, { warmMs: P.warmMs, ms: P.ms, repeats: P.repeats });
        poolMBs = m.pool!.value * mb;
        rawMBs = m.raw!.value * mb;
        ps = m.pool!.samples.map((x) => x * mb);
        rs = m.raw!.samples.map((x) => x * mb);
      } else {
        ps = [];
        rs = [];
        for (let i = 0; i < P.bigRepeats; i++) {
          let t0 = performance.now();
          await deadline(pool.execute('echo', buf), 120_000, '16 MiB echo');
          ps.push(mb / ((performance.now() - t0) / 1000));
          t0 = performance.now();
          await deadline(raw.call(frame), 120_000, '16 MiB raw echo');
          rs.push(mb / ((performance.now() - t0) / 1000));
        }
        poolMBs = median(ps);
        rawMBs = median(rs);
      }
      perByte[label] = poolMBs;
      const is1M = label === '1 MiB';
      add({
        bench: 'payload',
        subject: `${label} bytes`,
        codec: codec.id,
        value: poolMBs,
        unit: 'MB/s',
        samples: ps,
        baselineName: 'raw echo',
        baseline: rawMBs,
        baselineSamples: rs,
        target: is1M ? '>= 0.75x' : '',
        ...(is1M ? { check: (r: number) => r >= 0.75 } : {}),
      });
    }
    add({
      bench: 'payload',
      subject: '16 MiB per-byte speed',
      codec: codec.id,
      value: perByte['16 MiB']!,
      unit: 'MB/s',
      baselineName: 'pool at 1 MiB',
      baseline: perByte['1 MiB']!,
      target: '>= 0.90x',
      check: (r) => r >= 0.9,
      note: 'no quadratic buffering',
    });
  } finally {
    await Promise.all([pool.stop(), raw.stop()]);
  }
}

// ---- 4. cold start --------------------------------------------------------------------------

const startBaseline = new Map<string, number[]>();

async function coldStart(codec: Codec): Promise<void> {
  console.log(`\n[4] cold start, createPool({ poolSize: 8 }) — ${codec.id}`);
  const pool: number[] = [];
  const base: number[] = [];
  await startPlusPing(codec); // warm the page cache for both
  for (let i = 0; i < P.starts; i++) {
    base.push(await startPlusPing(codec));
    clearPythonCache(); // a first createPool in a process also resolves the interpreter
    const t0 = performance.now();
    const p = await deadline(createPool({ python: codec.python, env: codec.env, handlers: [BENCH_HANDLERS], poolSize: 8 }), 60_000, 'createPool(8)');
    pool.push(performance.now() - t0);
    await p.stop();
    await sleep(100);
  }
  startBaseline.set(codec.id, [...(startBaseline.get(codec.id) ?? []), ...base]);
  // The floor for 8 workers on this machine: 8 bare worker processes started at once, each pinged.
  const eight: number[] = [];
  for (let i = 0; i < Math.max(2, P.starts - 2); i++) {
    const t0 = performance.now();
    const bares = Array.from({ length: 8 }, (_, k) => new BareTransport(codec.exe!, codec.env, `bare_${k}`));
    await Promise.all(bares.map(async (b) => {
      await b.whenReady();
      await b.call('ping', null);
    }));
    eight.push(performance.now() - t0);
    await Promise.all(bares.map((b) => b.stop()));
  }
  add({
    bench: 'cold start',
    subject: 'createPool poolSize 8',
    codec: codec.id,
    value: median(pool),
    unit: 'ms',
    samples: pool,
    baselineName: '1 interpreter start + ping',
    baseline: median(base),
    baselineSamples: base,
    target: '<= 3.00x',
    check: (r) => r <= 3,
    note: `8 starts on ${os.availableParallelism()} cores`,
  });
  add({
    bench: 'cold start',
    subject: 'createPool poolSize 8',
    codec: codec.id,
    value: median(pool),
    unit: 'ms',
    baselineName: '8 bare worker starts + pings at once',
    baseline: median(eight),
    baselineSamples: eight,
    target: '',
    note: 'what 8 interpreters cost on this machine without the pool',
  });
}

// ---- 5. restart ------------------------------------------------------------------------------

async function restart(codec: Codec): Promise<void> {
  console.log(`\n[5] restart, SIGKILL to healthy again — ${codec.id}`);
  const pool = await startPool(codec, { poolSize: 2, restart: { maxRestarts: 1000, maxSeconds: 1 } });
  const times: number[] = [];
  const base: number[] = [...(startBaseline.get(codec.id) ?? [])];
  try {
    for (let i = 0; i < P.restarts; i++) {
      const victim = pool.workers().find((w) => w.id === 'worker_1')!;
      const back = nextRestart(pool, 'worker_1');
      const t0 = performance.now();
      process.kill(victim.pid!, 'SIGKILL');
      await back;
      times.push(performance.now() - t0);
      await pool.execute('noop');
      if (base.length < P.restarts) base.push(await startPlusPing(codec));
      else await sleep(100);
    }
  } finally {
    await pool.stop();
  }
  const b = median(base);
  add({
    bench: 'restart',
    subject: 'SIGKILL → healthy',
    codec: codec.id,
    value: median(times),
    unit: 'ms',
    samples: times,
    baselineName: '1 interpreter start + ping + 50 ms',
    baseline: b + 50,
    baselineSamples: base,
    target: '<= 1.00x',
    check: (r) => r <= 1,
  });
}

// ---- 5b. affinity: stateless sessions under 'auto' vs 'prefer' --------------------------------

async function affinity(codec: Codec): Promise<void> {
  console.log(`\n[5b] stateless sessions, poolSize 2 × 16 callers: 'auto' vs 'prefer' — ${codec.id}`);
  const auto = await startPool(codec, { poolSize: 2, affinity: 'auto' });
  const prefer = await startPool(codec, { poolSize: 2, affinity: 'prefer' });
  try {
    // Each caller is its own session that holds no state: 'auto' may send it anywhere.
    const m = await interleaved(
      { auto: (lane) => auto.execute('noop', null, { sessionId: `s${lane}` }), prefer: (lane) => prefer.execute('noop', null, { sessionId: `s${lane}` }) },
      { concurrency: 16, warmMs: P.warmMs, ms: P.ms, repeats: P.repeats },
    );
    add({ bench: 'affinity', subject: "stateless sessions under 'auto', c=16", codec: codec.id, value: m.auto!.value, samples: m.auto!.samples, unit: 'calls/s', baselineName: "'prefer'", baseline: m.prefer!.value, baselineSamples: m.prefer!.samples, target: '>= 0.90x', check: (r) => r >= 0.9 });
  } finally {
    await Promise.all([auto.stop(), prefer.stop()]);
  }
}

// ---- 6. pool overhead without Python ------------------------------------------------------------

async function overhead(): Promise<void> {
  console.log('\n[6] pool overhead without Python (simulation transport)');
  const sim = createSimulation();
  sim.handle('noop', () => null);
  const simPool = sim.createPool({ poolSize: 4, healthCheckInterval: 0 });
  await simPool.whenReady();
  const gp = genericPool.createPool({ create: async () => ({}), destroy: async () => {} }, { max: 4, min: 4 });
  const tp = new tarn.Pool({ create: async () => ({}), destroy: () => {}, min: 0, max: 4 });
  try {
    for (const c of [1, 4]) {
      const m = await interleaved(
        {
          pool: () => simPool.execute('noop'),
          gp: async () => gp.release(await gp.acquire()),
          tarn: async () => tp.release(await tp.acquire().promise),
        },
        { concurrency: c, warmMs: P.warmMs, ms: P.ovMs, repeats: P.repeats },
      );
      const base = { bench: 'pool overhead', codec: 'sim', unit: 'ops/s', target: '' };
      add({ ...base, subject: `checkout→execute→checkin, c=${c}`, value: m.pool!.value, samples: m.pool!.samples, baselineName: 'generic-pool acquire/release', baseline: m.gp!.value, baselineSamples: m.gp!.samples, note: `${fmt(1e6 / m.pool!.value, 1)} µs per request` });
      add({ ...base, subject: `checkout→execute→checkin, c=${c}`, value: m.pool!.value, baselineName: 'tarn acquire/release', baseline: m.tarn!.value, baselineSamples: m.tarn!.samples });
      if (c === 1) add({ ...base, subject: 'simulated pool, uncontended (c=1)', value: m.pool!.value, samples: m.pool!.samples, baselineName: 'target rate', baseline: 200_000, target: '>= 1.00x', check: (r) => r >= 1 });
    }
  } finally {
    await simPool.stop();
    await gp.drain();
    await gp.clear();
    await tp.destroy();
  }
}

// ---- output ------------------------------------------------------------------------------------

function machine() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    pythons: CODECS.map((c) => ({ codec: c.id, python: c.python, exe: c.exe, version: c.version })),
  };
}

function table(): string {
  const head = ['benchmark', 'subject', 'codec', 'measured', 'baseline', 'ratio', 'target', 'result'];
  const body = rows.map((r) => [
    r.bench,
    r.subject,
    r.codec,
    `${fmt(r.value)} ${r.unit}`,
    `${r.baselineName}: ${fmt(r.baseline)}`,
    ratioText(r.ratio),
    r.target || '—',
    r.status === 'info' ? 'info' : r.status,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

function markdown(meta: Record<string, unknown>): string {
  const m = meta.machine as ReturnType<typeof machine>;
  const load = meta.load as { start: number[]; end: number[] };
  const out: string[] = [];
  out.push('# Benchmark results', '');
  out.push(`Generated by \`npm run bench${QUICK ? ' -- --quick' : ''}\` on ${meta.date}. Every ratio compares two figures measured in the same run.`, '');
  out.push(`Machine: ${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB, ${m.os}, Node ${m.node}.`);
  for (const p of m.pythons) out.push(`- codec **${p.codec}**: \`${p.python}\` → ${p.exe ?? '?'} (Python ${p.version ?? '?'})`);
  out.push('', `Load average (1/5/15 min) at start ${load.start.map((x) => x.toFixed(2)).join(' / ')}, at end ${load.end.map((x) => x.toFixed(2)).join(' / ')}.`);
  if ((meta.underLoad as boolean)) out.push('**Taken under load**: other processes were using the CPUs, so absolute figures are low and noisy; the ratios are more robust (interleaved windows) but not exact.');
  out.push('');
  out.push('| benchmark | subject | codec | measured | baseline | ratio | target | result |');
  out.push('|---|---|---|---|---|---|---|---|');
  for (const r of rows) out.push(`| ${r.bench} | ${r.subject} | ${r.codec} | ${fmt(r.value)} ${r.unit} | ${r.baselineName}: ${fmt(r.baseline)} | ${ratioText(r.ratio)} | ${r.target || '—'} | ${r.status === 'info' ? 'info' : `**${r.status}**`} |`);
  if (matrix.length) {
    out.push('', '## Throughput matrix (calls/s; ratio to N raw echo processes)', '');
    for (const codec of [...new Set(matrix.map((x) => x.codec))]) {
      const conc = [...new Set(matrix.filter((x) => x.codec === codec).map((x) => x.concurrency))];
      out.push(`**${codec}**`, '', `| poolSize | raw ×N | ${conc.map((c) => `c=${c}`).join(' | ')} |`, `|---|---|${conc.map(() => '---').join('|')}|`);
      for (const n of [1, 2, 4]) {
        const cells = matrix.filter((x) => x.codec === codec && x.poolSize === n);
        if (!cells.length) continue;
        out.push(`| ${n} | ${fmt(cells[0]!.rawCallsPerSec)} | ${cells.map((x) => `${fmt(x.callsPerSec)} (${x.ratio.toFixed(3)})`).join(' | ')} |`);
      }
      out.push('');
    }
    out.push('![throughput vs concurrency](throughput.svg)', '');
  }
  out.push('## Method', '');
  out.push('- Round trip and throughput: a no-op command (`noop` in scripts/bench/bench_handlers.py) through `pool.execute`; the raw baseline sends the same request frame to test/fixtures/raw_echo.py, which echoes it unchanged (no codec on either side); python-shell runs scripts/bench/pyshell_echo.py in JSON mode; the bare transport is `WorkerProcess` with the real worker and codec but no actors.');
  out.push('- Rates: each subject is warmed up, then measured in repeated fixed-length windows (only calls completed inside a window count); the subjects of one comparison take turns window by window; the median window is reported.');
  out.push('- Throughput: `concurrency` async callers each awaiting `pool.execute` in a loop; the baseline is N raw echo processes each driven by its own sequential loop (one request in flight per process, as a pool worker has).');
  out.push('- Payloads: random `bytes` echoed by the worker (`echo` returns its args); MB/s = payload bytes (10^6) per round trip time, counted once. 16 MiB: single round trips, median of the repeats.');
  out.push('- Cold start: from `createPool({ poolSize: 8 })` to its resolution, the interpreter-path cache cleared first (a first pool in a process pays the probe); baseline: one worker process (`python dspy_bridge.py` with the same handlers) from spawn to its first ping answer.');
  out.push('- Restart: SIGKILL of a healthy worker\'s pid until the pool\'s `worker_restarted` event (healthy again); target: the start+ping baseline plus 50 ms.');
  out.push('- Pool overhead: the simulation transport (fake processes answering synchronously) through the real machines and facade, beside generic-pool and tarn acquire/release of a plain object.');
  if (rows.some((r) => r.bench === 'cluster')) out.push('- Cluster (scripts/bench/cluster.ts): this process is the front end (`createClusterPool`), each agent its own Node process (`startAgent`, python3 workers with the pure codec), a nats-server of its own on a loopback port; round trip: sequential `echo` of a small map against the same pool options in-process; throughput: 16 callers of `noop` (anonymous: the NATS queue group) with 1, 2, 3 agents of one worker each against a local pool with as many workers. On 2 cores every process shares the same CPUs: the scaling rows are info.');
  if (notes.length) out.push('', '## Notes', '', ...notes.map((n) => `- ${n}`));
  return out.join('\n') + '\n';
}

// ---- main ----------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = performance.now();
  const loadStart = os.loadavg();
  const codecs: Codec[] = [];
  for (const c of CODECS.filter((c) => WANT_CODECS.includes(c.id))) {
    try {
      c.exe = await resolvePython(c.python);
      c.version = execFileSync(c.exe, ['-c', 'import sys; print("%d.%d.%d" % sys.version_info[:3])'], { encoding: 'utf8' }).trim();
      if (c.id === 'msgpack') execFileSync(c.exe, ['-c', 'import msgpack'], { stdio: 'ignore' });
      codecs.push(c);
    } catch (error) {
      const why = `codec ${c.id} skipped: ${c.python} unusable (${(error as Error).message.split('\n')[0]})`;
      notes.push(why);
      console.warn(why);
    }
  }
  console.log(`pyvisor bench${QUICK ? ' (quick)' : ''} — ${os.availableParallelism()} cores, load ${loadStart.map((x) => x.toFixed(2)).join(' ')}`);
  for (const c of codecs) console.log(`  codec ${c.id}: ${c.label} → ${c.exe} (Python ${c.version})`);

  const suites: Record<string, (c: Codec) => Promise<void>> = { roundtrip: roundTrip, throughput, payloads, coldstart: coldStart, restart, affinity };
  for (const name of ['roundtrip', 'throughput', 'payloads', 'coldstart', 'restart', 'affinity']) {
    if (!ONLY.includes(name)) continue;
    for (const c of codecs) await suites[name]!(c);
  }
  if (ONLY.includes('overhead')) await overhead();
  if (ONLY.includes('dspy')) {
    // Loaded only when they run: the DSPy, NATS and cluster-test modules stay out of the process
    // that measures the local pool (with them loaded, Node CPU per call measured 12-20 µs higher).
    const { dspyAvailable, dspyConcurrency, dspyOverhead } = await import('./dspy.js');
    const missing = dspyAvailable();
    if (missing) {
      notes.push(`real-DSPy benchmarks skipped: ${missing}`);
      console.warn(`real-DSPy benchmarks skipped: ${missing}`);
    } else {
      await dspyConcurrency(add, { ms: QUICK ? 2000 : 3000, repeats: QUICK ? 1 : 3 });
      await dspyOverhead(add, { warmMs: P.warmMs, ms: P.ms * 2, repeats: P.repeats });
    }
  }
  if (ONLY.includes('cluster')) {
    const { clusterAvailable, clusterBench } = await import('./cluster.js');
    const missing = clusterAvailable();
    if (missing) {
      notes.push(`cluster benchmarks skipped: ${missing}`);
      console.warn(`cluster benchmarks skipped: ${missing}`);
    } else {
      await clusterBench(add, notes, { warmMs: P.warmMs, ms: P.ms, repeats: P.repeats });
    }
  }

  const loadEnd = os.loadavg();
  const underLoad = Math.max(loadStart[0]!, loadEnd[0]!) > os.availableParallelism() * 0.5;
  const meta = { date: new Date().toISOString(), quick: QUICK, machine: machine(), load: { start: loadStart, end: loadEnd }, underLoad, seconds: (performance.now() - started) / 1000 };
  mkdirSync(OUT, { recursive: true });
  writeFileSync(join(OUT, 'results.json'), JSON.stringify({ ...meta, rows, throughput: matrix, notes }, null, 2) + '\n');
  writeFileSync(join(OUT, 'results.md'), markdown(meta));
  if (curves.length) writeFileSync(join(OUT, 'throughput.svg'), throughputSvg(curves, { title: 'pyvisor throughput vs concurrency (no-op command)', subtitle: `${meta.machine.cores} cores, ${meta.date.slice(0, 10)}${underLoad ? ', taken under load' : ''}` }));
  console.log(`\n${table()}\n`);
  const gaps = rows.filter((r) => r.status === 'GAP').length;
  const passes = rows.filter((r) => r.status === 'PASS').length;
  console.log(`${passes} PASS, ${gaps} GAP, ${rows.length - passes - gaps} info — ${meta.seconds.toFixed(0)} s${underLoad ? ' (taken under load: load average above half the cores)' : ''}`);
  console.log(`wrote ${join(OUT, 'results.md')}, results.json${curves.length ? ', throughput.svg' : ''}`);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
