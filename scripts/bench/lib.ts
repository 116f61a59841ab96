/**
 * Building blocks of `npm run bench`: timing (warm-up, repeats, medians), and the baselines
 * the pool is measured against — a raw echo process, python-shell in JSON mode, and the bare
 * transport (WorkerProcess without the machines).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PythonShell } from 'python-shell';
import { WorkerProcess, type WorkerMessage } from '../../src/channel/workerProcess.js';

export const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
export const RAW_ECHO = join(ROOT, 'test', 'fixtures', 'raw_echo.py');
export const BENCH_HANDLERS = join(ROOT, 'scripts', 'bench', 'bench_handlers.py');
export const PYSHELL_ECHO = join(ROOT, 'scripts', 'bench', 'pyshell_echo.py');

// ---- statistics -------------------------------------------------------------------------

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function spread(xs: number[]): { min: number; max: number } {
  return { min: Math.min(...xs), max: Math.max(...xs) };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Reject if `p` does not settle within `ms` (no benchmark may hang the run). */
export function deadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`bench: ${what} did not finish within ${ms} ms`)), ms);
      timer.unref();
    }),
  ]);
}

/**
 * Calls per second of `call`, driven by `concurrency` loops for `ms` milliseconds. Only calls
 * that completed inside the window count; the loops then drain (their tail is not counted).
 */
export async function rate(call: (lane: number) => Promise<unknown>, concurrency: number, ms: number): Promise<number> {
  let stop = false;
  let done = 0;
  const t0 = performance.now();
  const end = t0 + ms;
  let last = t0;
  const lane = async (i: number) => {
    while (!stop) {
      await call(i);
      const now = performance.now();
      if (now > end) {
        stop = true;
        break;
      }
      done++;
      last = now;
    }
  };
  await deadline(Promise.all(Array.from({ length: concurrency }, (_, i) => lane(i))), ms + 30_000, 'a rate window');
  return (done / (last - t0)) * 1000;
}

export interface Measured {
  /** Median of the repeats. */
  value: number;
  samples: number[];
}

/** Warm up for `warmMs`, then `repeats` windows of `ms`; the median rate. */
export async function measureRate(call: (lane: number) => Promise<unknown>, opts: { concurrency?: number; warmMs: number; ms: number; repeats: number }): Promise<Measured> {
  const c = opts.concurrency ?? 1;
  if (opts.warmMs > 0) await rate(call, c, opts.warmMs);
  const samples: number[] = [];
  for (let i = 0; i < opts.repeats; i++) samples.push(await rate(call, c, opts.ms));
  return { value: median(samples), samples };
}

/** Median duration in ms of `once()`, after `warm` unmeasured runs. */
export async function measureDuration(once: () => Promise<number | void>, opts: { warm: number; repeats: number }): Promise<Measured> {
  for (let i = 0; i < opts.warm; i++) await once();
  const samples: number[] = [];
  for (let i = 0; i < opts.repeats; i++) {
    const t0 = performance.now();
    const inner = await once();
    samples.push(typeof inner === 'number' ? inner : performance.now() - t0);
  }
  return { value: median(samples), samples };
}

// ---- the raw baseline ---------------------------------------------------------------------

/**
 * A bare Python process (test/fixtures/raw_echo.py) that echoes length-prefixed frames,
 * driven with no pool and no codec: the bytes of a request go out, the same bytes come back.
 * One request in flight at a time per process, like a pool worker.
 */
export class RawEcho {
  private readonly child: ChildProcess;
  private chunks: Buffer[] = [];
  private have = 0;
  private need = -1;
  private waiting: Array<(b: Buffer) => void> = [];
  private exited: Promise<void>;

  constructor(python: string) {
    this.child = spawn(python, [RAW_ECHO], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.child.stdin!.on('error', () => {});
    this.child.stdout!.on('data', (c: Buffer) => this.onData(c));
    this.exited = new Promise((r) => this.child.once('exit', () => r()));
  }

  get pid(): number {
    return this.child.pid!;
  }

  private onData(c: Buffer): void {
    this.chunks.push(c);
    this.have += c.length;
    for (;;) {
      if (this.need < 0) {
        if (this.have < 4) return;
        const head = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
        this.chunks = [head];
        this.need = head.readUInt32BE(0) + 4;
      }
      if (this.have < this.need) return;
      const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.have);
      const frame = all.subarray(0, this.need);
      const rest = all.subarray(this.need);
      this.chunks = rest.length ? [rest] : [];
      this.have = rest.length;
      this.need = -1;
      this.waiting.shift()?.(frame);
    }
  }

  /** Send one frame (header included) and resolve with the echoed frame. */
  call(frame: Buffer): Promise<Buffer> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.child.stdin!.write(frame);
    });
  }

  async stop(): Promise<void> {
    this.child.stdin!.end();
    await deadline(this.exited, 5000, 'raw echo exit').catch(() => this.child.kill('SIGKILL'));
  }
}

// ---- python-shell in JSON mode --------------------------------------------------------------

/** python-shell's JSON mode: one JSON line out, one JSON line back, against scripts/bench/pyshell_echo.py. */
export class PyShell {
  private readonly shell: PythonShell;
  private waiting: Array<(m: unknown) => void> = [];
  private nextId = 1;

  constructor(python: string) {
    this.shell = new PythonShell(PYSHELL_ECHO, { mode: 'json', pythonPath: python, pythonOptions: ['-u'] });
    this.shell.on('message', (m: unknown) => this.waiting.shift()?.(m));
  }

  get pid(): number {
    return this.shell.childProcess.pid!;
  }

  call(cmd: string, args: unknown): Promise<unknown> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.shell.send({ id: this.nextId++, cmd, args });
    });
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.shell.kill('SIGKILL');
        resolve();
      }, 5000);
      this.shell.end(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

// ---- the bare transport (no machines) ---------------------------------------------------------

/** WorkerProcess alone: the real worker and codec, without the pool's actors. */
export class BareTransport {
  private readonly proc: WorkerProcess;
  private readonly ready: Promise<void>;
  private waiting = new Map<number, (m: WorkerMessage) => void>();
  private nextId = 1;
  private exited: Promise<void>;

  constructor(python: string, env: Record<string, string>, workerId = 'bare') {
    let onReady!: () => void;
    let onExit!: () => void;
    this.ready = new Promise((r) => (onReady = r));
    this.exited = new Promise((r) => (onExit = r));
    this.proc = WorkerProcess.spawn(
      { workerId, python, handlers: [BENCH_HANDLERS], env },
      {
        onMessage: (m) => {
          if (m.kind === 'ready') onReady();
          else if (m.kind === 'reply') {
            const w = this.waiting.get(m.id);
            this.waiting.delete(m.id);
            w?.(m);
          }
        },
        onProtocolError: (e) => {
          throw e;
        },
        onExit: () => onExit(),
      },
    );
  }

  get pid(): number {
    return this.proc.pid!;
  }

  whenReady(): Promise<void> {
    return deadline(this.ready, 30_000, 'bare transport start');
  }

  call(cmd: string, args: unknown): Promise<WorkerMessage> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.proc.send(id, cmd, args, null);
    });
  }

  async stop(): Promise<void> {
    this.proc.endInput();
    await deadline(this.exited, 5000, 'bare transport exit').catch(() => this.proc.signal('SIGKILL'));
  }
}

// ---- formatting -----------------------------------------------------------------------------

export function fmt(x: number, digits = 0): string {
  if (!Number.isFinite(x)) return String(x);
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString('en-US');
  if (Math.abs(x) >= 100) return x.toFixed(digits);
  if (Math.abs(x) >= 10) return x.toFixed(Math.max(digits, 1));
  return x.toFixed(Math.max(digits, 2));
}

/** A result row as a benchmark hands it to run.ts (which adds the ratio and PASS / GAP / info). */
export interface BenchRow {
  bench: string;
  subject: string;
  codec: string;
  value: number;
  unit: string;
  baselineName: string;
  baseline: number;
  samples?: number[];
  baselineSamples?: number[];
  target: string;
  check?: (ratio: number) => boolean;
  note?: string;
}
