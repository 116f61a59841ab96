/**
 * Where a request's time goes: runs the workloads of scripts/bench/workload.ts under V8's
 * sampling CPU profiler (the one `node --cpu-prof` uses, started around the measured window
 * only, 100 µs interval), then reads the .cpuprofile files and prints self time per request,
 * by area (xstate, machines, facade, codec, transport, Node streams, GC, ...), by file and by
 * function; plus the actor events per request and the bytes allocated per request.
 *
 *   node --import tsx scripts/bench/profile.ts [--workloads=roundtrip,throughput,sim,transport]
 *        [--codec=msgpack|pure] [--seconds=4] [--keep=DIR] [--json=FILE] [--layers=ROUNDS]
 *
 * --layers=N first measures every layer without the profiler (raw echo, bare transport,
 * simulated pool, real pool sequential and at concurrency 16), N alternating rounds, medians.
 * --workloads= (empty) skips the profiles.
 *
 * Profiles are written to a temporary directory (kept with --keep=DIR, e.g. to open them in
 * Chrome DevTools).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './lib.js';

const argv = process.argv.slice(2);
const value = (name: string, dflt: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt;
const workloads = value('workloads', 'roundtrip,throughput,sim,transport').split(',').filter(Boolean);
const codec = value('codec', 'msgpack');
const seconds = value('seconds', '4');
const keep = value('keep', '');
const jsonOut = value('json', '');

interface CpuNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: CpuNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function shortUrl(url: string): string {
  if (!url) return '';
  const u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) return u.slice(nm + 'node_modules/'.length).replace(/^(@[^/]+\/[^/]+|[^/]+)\/(?:.*\/)?([^/]+)$/, '$1/…/$2');
  const root = `${ROOT.replace(/\/$/, '')}/`;
  if (u.startsWith(root)) return u.slice(root.length);
  return u;
}

/** The area a frame belongs to, for the per-request breakdown. */
function area(fn: string, url: string): string {
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(idle)') return 'idle';
  if (fn === '(program)') return 'V8/native (program)';
  const u = shortUrl(url);
  if (u.startsWith('xstate/')) return 'xstate (library)';
  if (u.startsWith('eventemitter3/')) return 'eventemitter3';
  if (u.startsWith('msgpackr/')) return 'msgpackr';
  if (u.startsWith('machines/')) return u.replace(/\.ts$/, '');
  if (u === 'src/pool.ts') return 'src/pool.ts (facade)';
  if (u === 'src/telemetry.ts') return 'src/telemetry.ts';
  if (u.startsWith('src/codec/')) return 'src/codec';
  if (u.startsWith('src/channel/') || u.startsWith('src/worker/')) return 'src/transport + processActor';
  if (u.startsWith('src/testing/')) return 'src/testing (simulation)';
  if (u.startsWith('scripts/')) return 'benchmark driver';
  if (u.startsWith('node:internal/streams') || u.startsWith('node:stream')) return 'node streams';
  if (/node:(internal\/)?(net|child_process|stream_base_commons|internal\/child_process|internal\/stream_base_commons)/.test(u)) return 'node pipes / child_process';
  if (u.startsWith('node:internal/process/task_queues') || u.startsWith('node:internal/timers') || u.startsWith('node:timers')) return 'node timers + microtasks';
  if (u.startsWith('node:')) return 'node (other)';
  if (!u) return 'native / builtins';
  return 'other';
}

interface Summary {
  workload: string;
  codec: string;
  requests: number;
  wallMs: number;
  /** CPU (non-idle) µs per request, from the profile. */
  cpuUsPerRequest: number;
  byArea: Array<{ name: string; usPerRequest: number; share: number }>;
  byFile: Array<{ name: string; usPerRequest: number; share: number }>;
  byFunction: Array<{ name: string; usPerRequest: number; share: number }>;
  events?: unknown;
  alloc?: unknown;
}

function summarise(profile: CpuProfile, requests: number): Pick<Summary, 'cpuUsPerRequest' | 'byArea' | 'byFile' | 'byFunction'> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  }
  const areas = new Map<string, number>();
  const files = new Map<string, number>();
  const fns = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const { functionName, url, lineNumber } = n.callFrame;
    const a = area(functionName, url);
    if (a === 'idle') continue;
    busy += us;
    areas.set(a, (areas.get(a) ?? 0) + us);
    const f = shortUrl(url) || functionName;
    files.set(f, (files.get(f) ?? 0) + us);
    const key = `${functionName || '(anonymous)'}${url ? ` ${shortUrl(url)}:${lineNumber + 1}` : ''}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
  }
  const list = (m: Map<string, number>, k: number) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, k).map(([name, us]) => ({ name, usPerRequest: +(us / requests).toFixed(2), share: +(us / busy).toFixed(3) }));
  return { cpuUsPerRequest: +(busy / requests).toFixed(1), byArea: list(areas, 30), byFile: list(files, 20), byFunction: list(fns, 30) };
}

function runWorkload(w: string, mode: string, extra: string[] = []): { stdout: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/bench/workload.ts'), `--workload=${w}`, `--codec=${codec}`, `--seconds=${seconds}`, `--mode=${mode}`, ...extra], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.status !== 0) throw new Error(`workload ${w} (${mode}) failed: ${r.stderr}`);
  return { stdout: r.stdout.trim().split('\n').pop()! };
}

interface RateResult {
  requests: number;
  ms: number;
  cpuUsPerRequest: number;
  userUsPerRequest: number;
  sysUsPerRequest: number;
  pythonCpuUsPerRequest: number;
}

/**
 * Per-request cost by layer, without the profiler: process CPU (user, system) of Node and CPU
 * of the Python process(es), for raw echo → bare transport → simulated pool → real pool.
 * Rounds alternate between the layers; medians.
 */
function layers(rounds: number): Array<{ layer: string; wallUs: number; nodeUserUs: number; nodeSysUs: number; pythonUs: number; perSecond: number }> {
  const names = ['raw', 'transport', 'sim', 'roundtrip', 'throughput'];
  const runs = new Map<string, RateResult[]>(names.map((n) => [n, []]));
  for (let r = 0; r < rounds; r++) for (const n of names) runs.get(n)!.push(JSON.parse(runWorkload(n, 'rate').stdout) as RateResult);
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  return names.map((n) => {
    const rs = runs.get(n)!;
    return {
      layer: n,
      wallUs: +med(rs.map((x) => (x.ms * 1000) / x.requests)).toFixed(1),
      nodeUserUs: med(rs.map((x) => x.userUsPerRequest)),
      nodeSysUs: med(rs.map((x) => x.sysUsPerRequest)),
      pythonUs: med(rs.map((x) => x.pythonCpuUsPerRequest)),
      perSecond: Math.round(med(rs.map((x) => (x.requests / x.ms) * 1000))),
    };
  });
}

const layerRounds = Number(value('layers', '0'));
if (layerRounds > 0) {
  const table = layers(layerRounds);
  console.log(`\n=== per-request cost by layer (${codec}, median of ${layerRounds} rounds; µs per request)`);
  console.log('   layer        calls/s    wall   Node user   Node sys   Python CPU');
  for (const l of table) console.log(`   ${l.layer.padEnd(11)} ${String(l.perSecond).padStart(8)} ${l.wallUs.toFixed(1).padStart(7)} ${l.nodeUserUs.toFixed(1).padStart(11)} ${l.nodeSysUs.toFixed(1).padStart(10)} ${l.pythonUs.toFixed(1).padStart(12)}`);
  if (jsonOut) writeFileSync(jsonOut.replace(/\.json$/, '') + '.layers.json', JSON.stringify(table, null, 2) + '\n');
}

const summaries: Summary[] = [];
for (const w of workloads) {
  const dir = mkdtempSync(join(tmpdir(), `pyvisor-prof-${w}-`));
  const file = join(dir, `${w}-${codec}.cpuprofile`);
  const { requests, ms } = JSON.parse(runWorkload(w, 'cpu', [`--profile=${file}`]).stdout) as { requests: number; ms: number };
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const s: Summary = { workload: w, codec, requests, wallMs: ms, ...summarise(profile, requests) };
  if (keep) {
    mkdirSync(keep, { recursive: true });
    writeFileSync(join(keep, `${w}-${codec}.cpuprofile`), JSON.stringify(profile));
  }
  rmSync(dir, { recursive: true, force: true });
  if (w !== 'transport') s.events = JSON.parse(runWorkload(w, 'events').stdout);
  s.alloc = JSON.parse(runWorkload(w, 'alloc').stdout);
  summaries.push(s);
  print(s);
}
if (jsonOut) writeFileSync(jsonOut, JSON.stringify(summaries, null, 2) + '\n');

function print(s: Summary): void {
  console.log(`\n=== ${s.workload} (${s.codec}) — ${s.requests} requests in ${(s.wallMs / 1000).toFixed(1)} s = ${Math.round((s.requests / s.wallMs) * 1000)}/s; ${(s.wallMs * 1000 / s.requests).toFixed(0)} µs wall, ${s.cpuUsPerRequest} µs main-thread CPU per request (measured window)`);
  console.log('-- self time by area (µs/request, share of busy time)');
  for (const a of s.byArea) console.log(`   ${a.name.padEnd(34)} ${a.usPerRequest.toFixed(2).padStart(8)}  ${(a.share * 100).toFixed(1).padStart(5)}%`);
  console.log('-- top functions');
  for (const f of s.byFunction.slice(0, 22)) console.log(`   ${f.usPerRequest.toFixed(2).padStart(8)}  ${(f.share * 100).toFixed(1).padStart(5)}%  ${f.name}`);
  if (s.events) console.log('-- inspection events per request', JSON.stringify(s.events));
  const alloc = s.alloc as { bytesPerRequest: number; byFile: Array<{ name: string; bytesPerRequest: number }>; byFunction: Array<{ name: string; bytesPerRequest: number }> };
  console.log(`-- allocated per request ≈ ${alloc.bytesPerRequest} bytes (sampled)`);
  for (const f of alloc.byFile.slice(0, 8)) console.log(`   ${String(f.bytesPerRequest).padStart(7)} B  ${f.name}`);
  for (const f of alloc.byFunction.slice(0, 12)) console.log(`   ${String(f.bytesPerRequest).padStart(7)} B  ${f.name}`);
}
