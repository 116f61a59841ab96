/**
 * Shared helpers for the layer-2 protocol tests (no tests in this file).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';

import { WorkerProcess, type Reply, type WorkerExitInfo, type WorkerMessage, type WorkerProcessOptions } from '../../src/channel/workerProcess.js';
import type { ProtocolError } from '../../src/errors.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MOCK_WORKER = join(ROOT, 'test', 'fixtures', 'mock-worker.mjs');
export const SHARED_VECTORS = join(ROOT, 'test', 'fixtures', 'vectors.json');

// ---- tagged vector values ---------------------------------------------------------------

export type Tagged = Record<string, unknown>;

export interface Vector {
  name: string;
  value: Tagged;
  hex: string;
}

export interface VectorFile {
  format: string;
  vectors: Vector[];
  decode_only?: Vector[];
  invalid?: { name: string; hex: string; reason: string }[];
  source: string;
}

/** The shared vectors (written by python/tools/gen_vectors.py), or null when absent. */
export function loadVectors(): VectorFile | null {
  if (!existsSync(SHARED_VECTORS)) return null;
  const data = JSON.parse(readFileSync(SHARED_VECTORS, 'utf8')) as Omit<VectorFile, 'source'>;
  return { ...data, source: SHARED_VECTORS };
}

/**
 * A tagged value as the JS value our decoder must produce: int → number when |n| <= 2^53,
 * else bigint; float → number; bin → Buffer; map → plain object.
 */
export function expected(t: Tagged): unknown {
  const [tag, v] = Object.entries(t)[0] as [string, unknown];
  switch (tag) {
    case 'nil': return null;
    case 'bool': return v as boolean;
    case 'int': {
      const b = BigInt(v as string);
      return b <= 2n ** 53n && b >= -(2n ** 53n) ? Number(b) : b;
    }
    case 'float': return v === 'inf' ? Infinity : v === '-inf' ? -Infinity : v === 'nan' ? NaN : (v as number);
    case 'str': return v as string;
    case 'str_repeat': { const [unit, n] = v as [string, number]; return unit.repeat(n); }
    case 'bin': return Buffer.from(v as string, 'hex');
    case 'bin_repeat': { const [unit, n] = v as [string, number]; return Buffer.from(unit.repeat(n), 'hex'); }
    case 'array': return (v as Tagged[]).map(expected);
    case 'array_repeat': { const [item, n] = v as [Tagged, number]; return Array.from({ length: n }, () => expected(item)); }
    case 'map': {
      const o: Record<string, unknown> = {};
      for (const [k, x] of v as [string, Tagged][]) o[k] = expected(x);
      return o;
    }
    default: throw new Error(`unknown vector tag ${tag}`);
  }
}

/**
 * The JS value to hand our encoder for a tagged value: like `expected`, but 64-bit ints
 * beyond 2^53 as bigint and safe ones as number. Returns `skip` for floats with integral
 * values inside the int range (JS cannot tell 1.0 from 1: they would be sent as ints).
 */
export function encoderInput(t: Tagged): { value: unknown; skip?: string } {
  let skip: string | undefined;
  const walk = (x: Tagged): unknown => {
    const [tag, v] = Object.entries(x)[0] as [string, unknown];
    if (tag === 'int') {
      const b = BigInt(v as string);
      return b <= BigInt(Number.MAX_SAFE_INTEGER) && b >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
    }
    if (tag === 'float') {
      const f = expected(x) as number;
      if (Number.isInteger(f) && f >= -(2 ** 63) && f < 2 ** 64) skip = `integral float ${f} (a JS number cannot carry "float-ness")`;
      return f;
    }
    if (tag === 'array') return (v as Tagged[]).map(walk);
    if (tag === 'array_repeat') { const [item, n] = v as [Tagged, number]; return Array.from({ length: n }, () => walk(item)); }
    if (tag === 'map') {
      const o: Record<string, unknown> = {};
      for (const [k, y] of v as [string, Tagged][]) o[k] = walk(y);
      return o;
    }
    return expected(x);
  };
  const value = walk(t);
  return skip ? { value, skip } : { value };
}

/** Deep equality for wire values, with a path in the failure message. */
export function assertWireEqual(actual: unknown, want: unknown, path = 'value'): void {
  // messages are built only on failure (describing a 16 MiB Buffer is not free)
  const check = (cond: boolean, msg: () => string) => { if (!cond) assert.unreachable(msg()); };
  if (want instanceof Uint8Array) {
    check(Buffer.isBuffer(actual), () => `${path}: expected a Buffer, got ${describe(actual)}`);
    check(Buffer.compare(actual as Buffer, want) === 0, () => `${path}: Buffer contents differ (${(actual as Buffer).length} vs ${want.length} bytes)`);
    return;
  }
  if (typeof want === 'number' && Number.isNaN(want)) {
    check(typeof actual === 'number' && Number.isNaN(actual), () => `${path}: expected NaN, got ${describe(actual)}`);
    return;
  }
  if (Array.isArray(want)) {
    check(Array.isArray(actual), () => `${path}: expected an array, got ${describe(actual)}`);
    const a = actual as unknown[];
    check(a.length === want.length, () => `${path}: array length ${a.length}, expected ${want.length}`);
    for (let i = 0; i < want.length; i++) assertWireEqual(a[i], want[i], `${path}[${i}]`);
    return;
  }
  if (want !== null && typeof want === 'object') {
    check(actual !== null && typeof actual === 'object' && !Array.isArray(actual) && !Buffer.isBuffer(actual), () => `${path}: expected a map, got ${describe(actual)}`);
    const a = actual as Record<string, unknown>;
    const ka = Object.keys(a).join('\u0000');
    const kw = Object.keys(want).join('\u0000');
    check(ka === kw, () => `${path}: keys ${JSON.stringify(Object.keys(a))}, expected ${JSON.stringify(Object.keys(want))} (in that order)`);
    for (const k of Object.keys(want)) assertWireEqual(a[k], (want as Record<string, unknown>)[k], `${path}.${k}`);
    return;
  }
  check(Object.is(actual, want) || (actual === 0 && want === 0), () => `${path}: expected ${describe(want)}, got ${describe(actual)}`);
}

function describe(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`;
  if (Buffer.isBuffer(v)) return `Buffer(${v.length})`;
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (Array.isArray(v)) return `array(${v.length})`;
  if (v !== null && typeof v === 'object') return `map{${Object.keys(v).slice(0, 5).join(', ')}}`;
  return String(v);
}

// ---- process bookkeeping ------------------------------------------------------------------

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** Remembers every pid a test file spawned, to assert at the end that all are dead. */
export class PidTracker {
  readonly pids = new Set<number>();
  add(pid: number | undefined): void {
    if (pid !== undefined) this.pids.add(pid);
  }
  /** Wait (bounded) for every tracked pid to be gone, then assert it. */
  async assertAllDead(timeoutMs = 3000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const pid of this.pids) {
      while (isAlive(pid) && Date.now() < deadline) await sleep(20);
    }
    const alive = [...this.pids].filter(isAlive);
    for (const pid of alive) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    assert.equal(alive, [], `processes still alive after the suite: ${alive.join(', ')}`);
    for (const pid of this.pids) {
      let code: string | undefined;
      try { process.kill(pid, 0); } catch (err) { code = (err as NodeJS.ErrnoException).code; }
      assert.is(code, 'ESRCH', `pid ${pid} must be gone (process.kill(pid, 0) → ESRCH)`);
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resolve when `cond()` is true, polling; reject after `timeoutMs`. */
export async function waitFor(cond: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** Wait until the worker has said it is running an announced command (sleep {announce: true}). */
export function commandRunning(h: { messages: WorkerMessage[] }): Promise<void> {
  return waitFor(() => h.messages.some((m) => m.kind === 'log' && m.message === 'sleeping'), 10_000, 'the command to start');
}

// ---- a WorkerProcess with its messages recorded and requests awaited ----------------------

export interface WorkerHarness {
  wp: WorkerProcess;
  messages: WorkerMessage[];
  protocolErrors: ProtocolError[];
  stderr: string[];
  exit: Promise<WorkerExitInfo>;
  ready: Promise<WorkerMessage>;
  request(cmd: string, args?: unknown, session?: string | null): Promise<Reply>;
}

let nextRequestId = 1;

/**
 * Spawn a worker (real or mock) and record everything it says. The exit must be reported
 * exactly once, and a request never hangs a test: it fails after 10 s, or when the worker
 * exits unanswered.
 */
export function startWorker(options: WorkerProcessOptions, pids: PidTracker): WorkerHarness {
  const messages: WorkerMessage[] = [];
  const protocolErrors: ProtocolError[] = [];
  const stderr: string[] = [];
  const waiters = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  let onReady: (m: WorkerMessage) => void = () => {};
  const ready = new Promise<WorkerMessage>((r) => { onReady = r; });
  let onExit: (i: WorkerExitInfo) => void = () => {};
  const exit = new Promise<WorkerExitInfo>((r) => { onExit = r; });
  let exits = 0;
  const wp = WorkerProcess.spawn(options, {
    onMessage(m) {
      messages.push(m);
      if (m.kind === 'ready') onReady(m);
      if (m.kind === 'reply') { waiters.get(m.id)?.resolve(m); waiters.delete(m.id); }
    },
    onStderr(line) { stderr.push(line); },
    onProtocolError(e) { protocolErrors.push(e); },
    onExit(info) {
      for (const w of waiters.values()) w.reject(new Error(`worker exited (${info.code ?? info.signal}) before replying; stderr: ${info.stderrTail.join(' | ')}`));
      waiters.clear();
      exits++;
      assert.is(exits, 1, 'exit reported once');
      onExit(info);
    },
  });
  pids.add(wp.pid);
  return {
    wp, messages, protocolErrors, stderr, exit, ready,
    request(cmd, args, session = null) {
      const id = nextRequestId++;
      const p = new Promise<Reply>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no reply to ${cmd} (id ${id}) within 10 s; protocol errors: ${protocolErrors.map((e) => e.message).join('; ')}`)), 10_000);
        waiters.set(id, {
          resolve: (r) => { clearTimeout(timer); resolve(r); },
          reject: (e) => { clearTimeout(timer); reject(e); },
        });
      });
      wp.send(id, cmd, args, session);
      return p;
    },
  };
}
