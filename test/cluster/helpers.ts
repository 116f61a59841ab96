/**
 * Shared by the cluster suites (test/cluster): a real nats-server on a free loopback port,
 * agent processes (each its own Node process serving a local pool of real python3 workers),
 * front-end processes (createClusterPool in a Node process, driven over stdin/stdout), and
 * proof at the end that no process a suite started is still alive.
 *
 * Nothing here waits on a guessed delay: a server is ready when it logs "Server is ready"
 * and its port accepts a connection, an agent when it prints its "serving" line, a front
 * end when it answers; bounded waits (`waitUntil`) poll a condition and fail with what they
 * were waiting for.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { isAlive } from '../protocol/_helpers.js';

export { isAlive };

export const ROOT = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..');
export const HANDLERS_DIR = join(ROOT, 'test', 'fixtures', 'handlers');
export const CLUSTER_HANDLERS = join(HANDLERS_DIR, 'cluster_handlers.py');
export const STREAM_HANDLERS = join(HANDLERS_DIR, 'stream_handlers.py');
export const ECHO_HANDLERS = join(HANDLERS_DIR, 'echo_handlers.py');
const AGENT_SCRIPT = join(ROOT, 'test', 'cluster', '_agent.ts');
const FRONTEND_SCRIPT = join(ROOT, 'test', 'cluster', '_frontend.ts');
const CLI = join(ROOT, 'src', 'cli.ts');

/** Debian's nats-server (PYVISOR_NATS_SERVER overrides), or null when there is none. */
export function natsServerPath(): string | null {
  if (process.env.PYVISOR_NATS_SERVER) return process.env.PYVISOR_NATS_SERVER;
  const r = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' });
  const found = r.stdout.trim();
  if (r.status === 0 && found) return found;
  return existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : null; // Debian's place, not always on PATH
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const now = () => performance.timeOrigin + performance.now();

/** Poll `cond` every `everyMs` until it holds; reject after `timeoutMs` naming `what`. */
export async function waitUntil<T>(cond: () => T | Promise<T>, timeoutMs: number, what: string, everyMs = 25): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** A loopback port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once a TCP connection to 127.0.0.1:port succeeds. */
function portAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

// ---- every process a suite started -------------------------------------------------------

/** A pid's parent (from /proc/<pid>/stat), or null when it is gone. */
function parentOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}

/** The live descendants of the given pids (children, their children...). */
export function descendants(roots: Iterable<number>): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const ppid = parentOf(pid);
    if (ppid === null) continue;
    let list = children.get(ppid);
    if (!list) children.set(ppid, (list = []));
    list.push(pid);
  }
  const out: number[] = [];
  const todo = [...roots];
  while (todo.length) {
    const p = todo.pop()!;
    for (const c of children.get(p) ?? []) {
      out.push(c);
      todo.push(c);
    }
  }
  return out;
}

/**
 * Every process a suite started, by pid, with what it is: the ones it spawned itself and
 * (sampled every 200 ms, and on demand with `sample()`) their descendants, the agents'
 * Python workers. The agents also print their workers' pids, which are added as they come.
 */
export class Procs {
  readonly pids = new Map<number, string>();
  private readonly roots = new Set<number>();
  private timer: NodeJS.Timeout | null = null;
  readonly children = new Set<Child>();

  constructor() {
    everyProcs.add(this);
  }

  add(pid: number | null | undefined, what: string): void {
    if (pid && !this.pids.has(pid)) this.pids.set(pid, what);
  }

  root(pid: number, what: string): void {
    this.add(pid, what);
    this.roots.add(pid);
    if (!this.timer) {
      this.timer = setInterval(() => this.sample(), 200);
      this.timer.unref();
    }
  }

  /** Record the current descendants of every process this suite spawned. */
  sample(): void {
    const live = [...this.roots].filter(isAlive);
    for (const pid of descendants(live)) this.add(pid, `descendant of ${parentOf(pid)}`);
  }

  alive(): Array<{ pid: number; what: string }> {
    return [...this.pids].filter(([pid]) => isAlive(pid)).map(([pid, what]) => ({ pid, what }));
  }

  /** SIGKILL, by pid, everything this suite started that still runs (the suites' last resort). */
  killAll(): void {
    this.sample();
    for (const { pid } of this.alive()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }

  stopSampling(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

/**
 * Whatever happens to this process (a suite that throws outside a test, uvu exiting early), what
 * it started does not outlive it: on exit, everything still running is SIGKILLed by pid (and the
 * servers' store directories are removed).
 */
const everyProcs = new Set<Procs>();
/** Store directories of the servers started here, removed on exit too. */
const storeDirs = new Set<string>();
process.on('exit', () => {
  for (const p of everyProcs) p.killAll();
  for (const dir of storeDirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * The suite's last word: none of the processes it started (nats-server, agents, their Python
 * workers, front ends) is alive. Processes that were told to stop get `graceMs` to be gone
 * (a SIGKILLed agent's workers see their stdin close and exit on their own).
 */
export async function assertAllDead(procs: Procs, graceMs = 5000): Promise<void> {
  procs.sample();
  const end = Date.now() + graceMs;
  while (procs.alive().length && Date.now() < end) await sleep(25);
  procs.stopSampling();
  const alive = procs.alive();
  assert.equal(alive, [], `processes still alive: ${alive.map((a) => `${a.pid} (${a.what})`).join(', ')}`);
}

// ---- child processes with line output ------------------------------------------------------

/** A spawned process whose output is kept and can be waited on, line by line. */
export class Child {
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly name: string;
  private out = '';
  private waiters: Array<{ re: RegExp; resolve: (m: RegExpMatchArray) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }> = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private lineListeners: Array<(line: string) => void> = [];

  constructor(procs: Procs, name: string, cmd: string, args: string[], env: Record<string, string> = {}) {
    this.name = name;
    this.proc = spawn(cmd, args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0', ...env } });
    if (!this.proc.pid) throw new Error(`${name}: could not spawn ${cmd}`);
    this.pid = this.proc.pid;
    procs.root(this.pid, name);
    procs.children.add(this);
    let partial = '';
    const onData = (d: Buffer) => {
      const text = d.toString('utf8');
      this.out += text;
      partial += text;
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        for (const l of this.lineListeners) l(line);
      }
      this.check();
    };
    this.proc.stdout!.on('data', onData);
    this.proc.stderr!.on('data', onData);
    this.proc.stdin!.on('error', () => {}); // a dead child's stdin: EPIPE is expected
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exit = { code, signal };
        for (const w of this.waiters.splice(0)) {
          clearTimeout(w.timer);
          w.reject(new Error(`${name} exited (${code ?? signal}) before printing ${w.re}; its output:\n${this.tail()}`));
        }
        resolve({ code, signal });
      });
    });
  }

  onLine(listener: (line: string) => void): void {
    this.lineListeners.push(listener);
  }

  output(): string {
    return this.out;
  }

  tail(n = 40): string {
    return this.out.trimEnd().split('\n').slice(-n).join('\n');
  }

  private check(): void {
    this.waiters = this.waiters.filter((w) => {
      const m = this.out.match(w.re);
      if (!m) return true;
      clearTimeout(w.timer);
      w.resolve(m);
      return false;
    });
  }

  /** Resolves with the first match of `re` in the output so far or to come. */
  waitFor(re: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    const m = this.out.match(re);
    if (m) return Promise.resolve(m);
    if (this.exit) return Promise.reject(new Error(`${this.name} exited (${this.exit.code ?? this.exit.signal}) before printing ${re}; its output:\n${this.tail()}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.timer !== timer);
        reject(new Error(`${this.name} did not print ${re} within ${timeoutMs} ms; its output:\n${this.tail()}`));
      }, timeoutMs);
      this.waiters.push({ re, resolve, reject, timer });
    });
  }

  get alive(): boolean {
    return this.exit === null;
  }

  signal(sig: NodeJS.Signals): void {
    if (this.exit === null) process.kill(this.pid, sig);
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it exited. */
  async stop(graceMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.exit) return this.exit;
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    const e = await this.exited;
    clearTimeout(timer);
    return e;
  }
}

// ---- nats-server ---------------------------------------------------------------------------

/** A real nats-server with JetStream on a loopback port and a store directory of its own. */
export class NatsServer {
  readonly port: number;
  readonly storeDir: string;
  readonly url: string;
  child: Child | null = null;
  private readonly procs: Procs;
  private readonly exe: string;
  starts = 0;

  private constructor(procs: Procs, exe: string, port: number, storeDir: string) {
    this.procs = procs;
    this.exe = exe;
    this.port = port;
    this.storeDir = storeDir;
    this.url = `nats://127.0.0.1:${port}`;
    storeDirs.add(storeDir);
  }

  static async start(procs: Procs): Promise<NatsServer> {
    const exe = natsServerPath();
    if (!exe) throw new Error('nats-server is not installed (Debian: apt-get install nats-server)');
    const server = new NatsServer(procs, exe, await freePort(), mkdtempSync(join(tmpdir(), 'pyvisor-nats-')));
    await server.run();
    return server;
  }

  get pid(): number | null {
    return this.child?.alive ? this.child.pid : null;
  }

  /** Start the process; resolves once it logged "Server is ready" and its port accepts. */
  private async run(): Promise<void> {
    this.starts++;
    this.child = new Child(this.procs, `nats-server :${this.port} #${this.starts}`, this.exe, ['-a', '127.0.0.1', '-p', String(this.port), '-js', '-sd', this.storeDir]);
    await this.child.waitFor(/Server is ready/, 20_000);
    await waitUntil(() => portAccepts(this.port), 5000, `nats-server accepting on port ${this.port}`);
  }

  /** Stop it by pid (SIGTERM: the store is flushed), resolving once it exited. */
  async stop(): Promise<void> {
    if (this.child) await this.child.stop(5000);
  }

  /** Start it again on the same port and store directory (after stop()). */
  async restart(): Promise<void> {
    if (this.child?.alive) throw new Error('restart(): the server still runs');
    await this.run();
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.storeDir, { recursive: true, force: true });
    storeDirs.delete(this.storeDir);
  }
}

// ---- agents --------------------------------------------------------------------------------

export interface AgentSpec {
  servers: string;
  pool: string;
  hostId: string;
  poolSize?: number;
  handlers?: string[];
  /** ms between heartbeats (the test script's startAgent option; the CLI keeps the default). */
  heartbeatInterval?: number;
  /** Run the real CLI (`src/cli.ts agent ...`) instead of test/cluster/_agent.ts (startAgent). */
  cli?: boolean;
  workerConcurrency?: number;
}

export class AgentProc {
  readonly child: Child;
  readonly hostId: string;
  /** Python worker pids the agent reported (the _agent.ts script prints them). */
  readonly workerPids = new Set<number>();

  constructor(procs: Procs, spec: AgentSpec, env: Record<string, string> = {}) {
    this.hostId = spec.hostId;
    const handlers = spec.handlers ?? [CLUSTER_HANDLERS, STREAM_HANDLERS];
    const args = spec.cli
      ? ['--import', 'tsx', CLI, 'agent', '--nats', spec.servers, '--pool', spec.pool, '--host-id', spec.hostId, '--pool-size', String(spec.poolSize ?? 2),
        ...(spec.workerConcurrency ? ['--worker-concurrency', String(spec.workerConcurrency)] : []), '--handlers', ...handlers]
      : ['--import', 'tsx', AGENT_SCRIPT, JSON.stringify({ ...spec, handlers })];
    this.child = new Child(procs, `agent ${spec.hostId}${spec.cli ? ' (cli)' : ''}`, process.execPath, args, { ...env, PYVISOR_TEST_HOST: spec.hostId });
    this.child.onLine((line) => {
      const m = /^worker pid (\d+)$/.exec(line.trim());
      if (m) {
        this.workerPids.add(Number(m[1]));
        procs.add(Number(m[1]), `python worker of ${spec.hostId}`);
      }
    });
  }

  get pid(): number {
    return this.child.pid;
  }

  /** Resolves once it printed "agent <hostId> serving pool <name> via <url>". */
  ready(timeoutMs = 30_000): Promise<RegExpMatchArray> {
    return this.child.waitFor(new RegExp(`agent ${this.hostId} serving pool \\S+ via \\S+`), timeoutMs);
  }
}

export async function startAgents(procs: Procs, specs: AgentSpec[]): Promise<AgentProc[]> {
  const agents = specs.map((s) => new AgentProc(procs, s));
  await Promise.all(agents.map((a) => a.ready()));
  procs.sample();
  return agents;
}

// ---- front ends ----------------------------------------------------------------------------

export interface FrontEndSpec {
  servers: string;
  pool: string;
  checkoutTimeout?: number;
  requestTimeout?: number;
  hostTimeout?: number;
}

/** What crosses from a front end: an error as plain data. */
export interface ErrorData {
  code?: string;
  name: string;
  message: string;
  reason?: string;
  [field: string]: unknown;
}

export type Outcome<T = unknown> = { ok: true; value: T; ms: number } | { ok: false; error: ErrorData; ms: number };

/** One request of a load run, as the front end recorded it (epoch ms). */
export interface LoadRecord {
  lane: number;
  kind: 'anon' | 'session' | 'program';
  cmd: string;
  t0: number;
  t1: number;
  ok: boolean;
  value?: any;
  error?: ErrorData;
  /** session lanes: the value appended (append) */
  appended?: number;
}

export interface LoadResult {
  records: LoadRecord[];
  /** Requests still unsettled when the load stopped, well past their deadline. */
  hung: Array<{ lane: number; cmd: string; t0: number }>;
  retries: Array<{ sessionId: string; reason: string; t: number }>;
}

export type Lane =
  | { kind: 'anon'; command: string; args?: unknown; timeout?: number }
  | { kind: 'session'; sessionId: string; timeout?: number }
  | { kind: 'program'; sessionId: string; timeout?: number };

/** A Node process running createClusterPool (test/cluster/_frontend.ts), driven by JSON lines. */
export class FrontEnd {
  readonly child: Child;
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();

  constructor(procs: Procs, spec: FrontEndSpec, name = 'front end') {
    this.child = new Child(procs, name, process.execPath, ['--import', 'tsx', FRONTEND_SCRIPT, JSON.stringify(spec)]);
    this.child.onLine((line) => {
      if (!line.startsWith('@@ {')) return;
      const msg = JSON.parse(line.slice(3)) as { id: number; ok: boolean; value?: unknown; error?: ErrorData };
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.value);
      else p.reject(Object.assign(new Error(`front end: ${msg.error?.message}`), { data: msg.error }));
    });
    void this.child.exited.then((e) => {
      for (const p of this.pending.values()) p.reject(new Error(`${name} exited (${e.code ?? e.signal}); its output:\n${this.child.tail()}`));
      this.pending.clear();
    });
  }

  get pid(): number {
    return this.child.pid;
  }

  ready(timeoutMs = 30_000): Promise<RegExpMatchArray> {
    return this.child.waitFor(/^@@ ready$/m, timeoutMs);
  }

  /** One operation of the front-end script (see _frontend.ts for the list). */
  op<T = any>(op: string, payload: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.proc.stdin!.write(`${JSON.stringify({ id, op, ...payload })}\n`);
    });
  }

  /** pool.execute through this front end: never rejects, the outcome says what happened. */
  execute<T = any>(command: string, args?: unknown, opts: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<Outcome<T>> {
    return this.op('execute', { command, args, opts, ...extra });
  }

  /** pool.execute, resolving with the value, throwing the error data otherwise. */
  async value<T = any>(command: string, args?: unknown, opts: Record<string, unknown> = {}): Promise<T> {
    const o = await this.execute<T>(command, args, opts);
    if (!o.ok) throw Object.assign(new Error(`${command} failed: ${o.error.code} ${o.error.message}`), { data: o.error });
    return o.value;
  }

  async close(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.child.alive) return this.child.exit!;
    this.child.proc.stdin!.end();
    const timer = setTimeout(() => this.child.signal('SIGKILL'), 15_000);
    const e = await this.child.exited;
    clearTimeout(timer);
    return e;
  }
}

export async function startFrontEnds(procs: Procs, spec: FrontEndSpec, n = 1): Promise<FrontEnd[]> {
  const fes = Array.from({ length: n }, (_, i) => new FrontEnd(procs, spec, `front end ${i + 1}`));
  await Promise.all(fes.map((f) => f.ready()));
  return fes;
}

/** Everything a suite runs, stopped in order: front ends, agents (SIGTERM: drain), the server. */
export async function stopAllProcs(procs: Procs, parts: { frontEnds?: FrontEnd[]; agents?: AgentProc[]; nats?: NatsServer | null }): Promise<void> {
  procs.sample();
  await Promise.all((parts.frontEnds ?? []).map((f) => f.close()));
  await Promise.all((parts.agents ?? []).map((a) => a.child.stop(15_000)));
  if (parts.nats) await parts.nats.close();
  // Whatever else this suite spawned and still runs (a test that failed half-way).
  await Promise.all([...procs.children].map((c) => c.stop(5000)));
}

// ---- checking a session's reads ----------------------------------------------------------------

/**
 * Checks a session lane's records (alternating `append {value: i}` and `read`): every read
 * returns exactly the values appended since the session (re)started on its host — the
 * confirmed ones in order, plus possibly ones whose request failed (it may have run) — and
 * the session stays on one host until a SESSION_WORKER_LOST, after which it starts fresh.
 * Returns what happened, or throws naming the first wrong answer.
 */
export function checkSessionLane(sessionId: string, records: LoadRecord[]): { hosts: string[]; lost: LoadRecord[]; errors: LoadRecord[]; reads: number } {
  const hosts: string[] = [];
  const lost: LoadRecord[] = [];
  const errors: LoadRecord[] = [];
  let confirmed: number[] = [];
  let uncertain = new Set<number>();
  let reads = 0;
  const sorted = [...records].sort((a, b) => a.t0 - b.t0);
  for (const r of sorted) {
    if (!r.ok) {
      if (r.error?.code === 'SESSION_WORKER_LOST') {
        lost.push(r);
        confirmed = [];
        uncertain = new Set();
        hosts.push('(lost)');
      } else {
        errors.push(r);
        if (r.cmd === 'append') uncertain.add(r.appended!);
      }
      continue;
    }
    const host = r.value.host as string;
    const current = hosts.at(-1);
    if (current === undefined || current === '(lost)') hosts.push(host);
    else if (current !== host) {
      throw new Error(`session ${sessionId}: served by ${current}, then by ${host} without a SESSION_WORKER_LOST (${r.cmd} at ${r.t0})`);
    }
    if (r.cmd === 'append') {
      confirmed.push(r.appended!);
      uncertain.delete(r.appended!);
      continue;
    }
    reads++;
    const log = r.value.log as number[];
    // The log must be the confirmed appends in order, interleaved with uncertain ones only.
    const extra = log.filter((v) => !confirmed.includes(v));
    const inOrder = log.filter((v) => confirmed.includes(v));
    if (JSON.stringify(inOrder) !== JSON.stringify(confirmed) || extra.some((v) => !uncertain.has(v))) {
      throw new Error(`session ${sessionId} on ${host}: read ${JSON.stringify(log)}, expected ${JSON.stringify(confirmed)}${uncertain.size ? ` (+ maybe ${[...uncertain]})` : ''}`);
    }
    // Uncertain appends the read saw did run: they are part of the log from now on.
    confirmed = log.slice();
    uncertain = new Set([...uncertain].filter((v) => !log.includes(v)));
  }
  return { hosts: hosts.filter((h) => h !== '(lost)'), lost, errors, reads };
}

/** Calls-per-second of successful records of `kind` whose t1 falls in [from, to). */
export function rateIn(records: LoadRecord[], from: number, to: number, filter: (r: LoadRecord) => boolean = () => true): number {
  const n = records.filter((r) => r.ok && r.t1 >= from && r.t1 < to && filter(r)).length;
  return n / ((to - from) / 1000);
}

export function describe(r: LoadRecord): string {
  return `${r.kind}#${r.lane} ${r.cmd} t0=${r.t0.toFixed(0)} ${(r.t1 - r.t0).toFixed(0)}ms ${r.ok ? 'ok' : `${r.error?.code}${r.error?.reason ? `/${r.error.reason}` : ''}: ${r.error?.message}`}`;
}
