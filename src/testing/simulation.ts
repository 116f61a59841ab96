/**
 * A deterministic stand-in for Python: fake worker processes driven by a simulated clock.
 *
 * The real machines run unchanged; only the `pythonProcess` actor is swapped. Nothing here
 * waits on real time: replies with no latency are sent synchronously, everything else is a
 * timer on `clock`, which only moves when the test calls `advance(ms)`.
 */
import { SimulatedClock, type CallbackActorLogic } from 'xstate';
import type { ExitInfo } from '../errors.js';
import { ProtocolError, WorkerStartError } from '../errors.js';
import type { ProcessActorInput, ProcessCommand } from '../../machines/events.js';
import { workerMachine } from '../../machines/worker.js';
import { processActorLogic } from '../channel/processActor.js';
import type { ProcessHooks, ProcessPort } from '../channel/link.js';
import type { Clock } from '../core/clock.js';
import type { ActorLogicView } from '../core/actorView.js';
import { Pool } from '../local/pool.js';
import { resolveOptions, type PoolOptions } from '../options.js';

/** What a scripted handler sees. */
export interface SimContext {
  workerId: string;
  pid: number;
  sessionId: string | null;
  /** Per-session state inside this fake process; gone when the process dies. */
  session: Record<string, unknown>;
  /** The request's deadline on the simulated clock (null: none). */
  deadline: number | null;
}

/** Throw this from a handler to produce a Python error reply. */
export class SimPythonError extends Error {
  constructor(readonly pythonType: string, message: string) {
    super(message);
  }
}

const HANG = Symbol('hang');
/** A hang that ignores SIGINT too (a handler stuck in C code). */
const HANG_HARD = Symbol('hang-hard');
interface CrashOrder {
  crash: { code: number | null; signal: string | null };
}

/**
 * A handler returns its result, or a generator (function*) to stream: each `yield` is a chunk
 * (yield `sim.crash()` to die there, `sim.hang()` to stop answering), its `return` value the final
 * result. As in Python, a request that is not a stream gets the yielded values as a list.
 */
export type SimHandler = (args: any, ctx: SimContext) => unknown;

export interface HandlerOptions {
  /** Simulated ms before the reply (0 = synchronous); for a generator, before each chunk and the end. */
  latencyMs?: number;
}

export interface StartFault {
  /** Only starts of this worker are affected (default: any). */
  workerId?: string;
  /**
   * 'boot' (default): the process starts, then exits before it is ready (a handler that fails to
   * import). 'spawn': the process cannot be started at all (a missing interpreter).
   */
  phase?: 'boot' | 'spawn';
  /** phase 'spawn': the errno spawn(2) fails with (default 'ENOENT'; 'EAGAIN' is one a retry may not meet). */
  errno?: string;
  /** Killed by this signal during start (e.g. 'SIGKILL', the OOM killer), which a retry may not meet... */
  signal?: string;
  /** ...or exit during start with this code (default 3) and these stderr lines... */
  code?: number;
  stderr?: string[];
  /** ...or never become ready. */
  hang?: boolean;
}

export interface FakeProcess {
  pid: number;
  workerId: string;
  generation: number;
  alive: boolean;
  exit: ExitInfo | null;
  ignoresSigterm: boolean;
  requests: number;
  sessions: Map<string, Record<string, unknown>>;
  /** Every signal delivered to the process, in order. */
  signals: string[];
  /** Position of this process's exit among all exits of the simulation (1 = first); null while alive. */
  exitSeq: number | null;
  /** The most requests this process ever had in flight at once. */
  peakInflight: number;
  /** Chunks its generator handlers produced (sent or, for a request that is not a stream, collected). */
  chunksProduced: number;
  /** Control frames it received, in order. */
  controls: Array<{ id: number; ack?: number; cancel?: true }>;
}

/** A request frame as a fake process received it (see Simulation.onRequest). */
export interface ReceivedRequest {
  pid: number;
  workerId: string;
  id: number;
  cmd: string;
  args: unknown;
  session: string | null;
  /** The deadline the frame carried, on the simulated clock (null: none). */
  deadline: number | null;
  /** Simulated time of arrival. */
  at: number;
}

/** A generator handler being driven, with its credit window (0: not a stream: chunks are collected). */
interface SimStream {
  gen: Iterator<unknown, unknown>;
  window: number;
  sent: number;
  acked: number;
  /** Out of credit: waiting for an ack. */
  paused: boolean;
  collected: unknown[];
  latencyMs: number;
  session: string | null;
}

interface InFlight {
  timer: number | null;
  cmd: string;
  interruptible?: boolean;
  stream?: SimStream;
  /** A cancel arrived before the handler ran: a generator or a hang it returns stops at once. */
  cancelled?: boolean;
}

interface Live extends FakeProcess {
  hooks: ProcessHooks;
  /** Sessions the host was told this process holds state for. */
  held: Set<string>;
  inflight: Map<number, InFlight>;
  /** SIGTERM arrived mid-command: exit once it is answered, as the real worker does. */
  exitAfterCurrent: boolean;
}

export interface Simulation {
  /** The simulated clock: give it to `createActor(logic, { clock: sim.clock })`; move it with advance(). */
  clock: Clock;
  /** The fake `pythonProcess` actor logic (XState logic: see ActorLogicView). */
  processLogic: ActorLogicView;
  /** The real worker machine with the fake process provided (XState logic: see ActorLogicView). */
  workerMachine: ActorLogicView;
  handle(cmd: string, handler: SimHandler, options?: HandlerOptions): Simulation;
  /** A handler result that never replies (SIGINT still interrupts it, unless `uninterruptible`). */
  hang(options?: { uninterruptible?: boolean }): symbol;
  /** A handler result that makes the process die instead of replying. */
  crash(code?: number | null, signal?: string | null): CrashOrder;
  /** Make the next `count` starts fail (Infinity: every start). */
  failStarts(count: number, fault?: StartFault): Simulation;
  /** Processes of this worker (or all) will ignore SIGTERM. */
  ignoreSigterm(workerId?: string): Simulation;
  /** Deliver a signal to a live fake process, as `kill(2)` would. */
  kill(pidOrWorkerId: number | string, signal?: 'SIGKILL' | 'SIGTERM' | 'SIGINT'): FakeProcess;
  /** Make a live fake process exit on its own, with this exit code or signal. */
  exit(pidOrWorkerId: number | string, code: number | null, signal?: string | null): FakeProcess;
  /** Make a process answer frame `id` again, or (without `id`) an id never sent: a reply nobody is waiting for. */
  strayReply(pidOrWorkerId: number | string, id?: number): void;
  /** Make a process send a frame that breaks the protocol. */
  corrupt(pidOrWorkerId: number | string, message?: string): void;
  /** Move simulated time forward, firing every timer that falls due. */
  advance(ms: number): void;
  processes(): FakeProcess[];
  alive(): FakeProcess[];
  processOf(workerId: string): FakeProcess | undefined;
  /**
   * A real pool (the same machines and facade as createPool) on fake processes and the
   * simulated clock. Returned at once: await `pool.whenReady()` (with startupMs > 0, advance
   * the clock first).
   */
  createPool(options?: PoolOptions): Pool;
  /** What the pool's recycle check reads as a process's resident memory. */
  setRssMb(pid: number, mb: number): void;
  /** Observe every request frame a fake process receives (built-ins included), at its arrival. */
  onRequest(listener: (request: ReceivedRequest) => void): () => void;
}

export interface SimulationOptions {
  /** First fake pid; fake pids never collide with the real ones a test may also track. */
  firstPid?: number;
  /** Simulated ms from spawn to the `ready` notice (0 = synchronous). */
  startupMs?: number;
}

export function createSimulation(options: SimulationOptions = {}): Simulation {
  const clock = new SimulatedClock();
  const handlers = new Map<string, { fn: SimHandler; latencyMs: number }>();
  const all: Live[] = [];
  const startFaults: Array<StartFault & { remaining: number }> = [];
  const sigtermIgnored = new Set<string>();
  let nextPid = options.firstPid ?? 900_000;
  const startupMs = options.startupMs ?? 0;
  const rss = new Map<number, number>();
  let exitCount = 0;
  const requestListeners = new Set<(request: ReceivedRequest) => void>();

  const builtins: Record<string, SimHandler> = {
    ping: (_args, ctx) => ({ pong: true, worker_id: ctx.workerId, pid: ctx.pid, mode: 'pool-worker', codec: 'sim' }),
    cleanup_session: (args, ctx) => {
      const proc = all.find((p) => p.pid === ctx.pid)!;
      const id = (args && args.session_id) ?? ctx.sessionId;
      const state = proc.sessions.get(id);
      proc.sessions.delete(id);
      proc.held.delete(id);
      return { session_id: id, existed: !!state, freed_keys: state ? Object.keys(state).length : 0 };
    },
    get_stats: (_args, ctx) => {
      const proc = all.find((p) => p.pid === ctx.pid)!;
      return { worker_id: ctx.workerId, pid: ctx.pid, requests: proc.requests, sessions: proc.sessions.size, session_ids: [...proc.sessions.keys()] };
    },
  };

  function exitProcess(proc: Live, exit: ExitInfo, notify: boolean): void {
    if (!proc.alive) return;
    proc.alive = false;
    proc.exit = exit;
    proc.exitSeq = ++exitCount;
    for (const { timer } of proc.inflight.values()) if (timer !== null) clock.clearTimeout(timer);
    proc.inflight.clear();
    if (notify) proc.hooks.onExit(exit);
  }

  function isGenerator(v: unknown): v is Iterator<unknown, unknown> {
    return typeof v === 'object' && v !== null && typeof (v as Iterator<unknown>).next === 'function' && typeof (v as Iterable<unknown>)[Symbol.iterator] === 'function';
  }

  /** Run a generator handler one chunk further; schedule the next step (or pause for credit). */
  function step(proc: Live, id: number): void {
    const entry = proc.inflight.get(id);
    const s = entry?.stream;
    if (!proc.alive || !entry || !s) return;
    entry.timer = null;
    if (s.window > 0 && s.sent - s.acked >= s.window) {
      s.paused = true;
      return;
    }
    let r: IteratorResult<unknown, unknown>;
    try {
      r = s.gen.next();
    } catch (err) {
      proc.inflight.delete(id);
      const type = err instanceof SimPythonError ? err.pythonType : (err as Error).name ?? 'Exception';
      proc.hooks.onReply(id, false, { type, message: (err as Error).message, traceback: `Traceback (simulated)\n${type}: ${(err as Error).message}` }, heldChange(proc, s.session));
      afterAnswer(proc);
      return;
    }
    if (r.done) {
      proc.inflight.delete(id);
      proc.hooks.onReply(id, true, s.window > 0 ? (r.value ?? null) : s.collected, heldChange(proc, s.session));
      afterAnswer(proc);
      return;
    }
    const v = r.value;
    if (v === HANG || v === HANG_HARD) {
      entry.interruptible = v === HANG;
      return;
    }
    if (v && typeof v === 'object' && 'crash' in v) {
      const { code, signal } = (v as CrashOrder).crash;
      exitProcess(proc, { code, signal, stderrTail: [`simulated crash in ${entry.cmd}`] }, true);
      return;
    }
    proc.chunksProduced++;
    if (s.window > 0) {
      s.sent++;
      proc.hooks.onChunk(id, v);
    } else s.collected.push(v);
    schedule(proc, id);
  }

  function schedule(proc: Live, id: number): void {
    const entry = proc.inflight.get(id);
    if (!proc.alive || !entry?.stream) return;
    if (entry.stream.latencyMs > 0) entry.timer = clock.setTimeout(() => step(proc, id), entry.stream.latencyMs) as unknown as number;
    // No latency: the next chunk in a microtask (not real time), never re-entering the host.
    else queueMicrotask(() => step(proc, id));
  }

  function afterAnswer(proc: Live): void {
    if (proc.alive && proc.exitAfterCurrent && proc.inflight.size === 0) exitProcess(proc, { code: 0, signal: null, stderrTail: [] }, true);
  }

  /** `{id, ack}` / `{id, cancel}` from the host, as the real worker handles them. */
  function control(proc: Live, id: number, frame: { ack: number } | { cancel: true }): void {
    proc.controls.push({ id, ...frame });
    const entry = proc.inflight.get(id);
    if (!proc.alive || !entry) return;
    const s = entry.stream;
    if ('ack' in frame) {
      if (!s || frame.ack <= s.acked) return;
      s.acked = frame.ack;
      if (s.paused) {
        s.paused = false;
        schedule(proc, id);
      }
      return;
    }
    // Cancel: a generator stops at once (waiting for credit or between chunks); a plain handler
    // that never answers (`hang`) is cancelled like an asyncio task; one with latency (a sync
    // handler in a thread) runs on and answers late; `hang({ uninterruptible })` never does.
    if (entry.interruptible === false) return;
    if (!s && entry.interruptible !== true) {
      // Not started yet (its latency runs): what it turns out to be decides (see `reply`).
      entry.cancelled = true;
      return;
    }
    if (entry.timer !== null) clock.clearTimeout(entry.timer);
    proc.inflight.delete(id);
    s?.gen.return?.(undefined);
    proc.hooks.onReply(id, false, { type: 'Cancelled', message: 'cancelled by the host', traceback: '' });
    afterAnswer(proc);
  }

  function reply(proc: Live, id: number, cmd: string, args: unknown, session: string | null, deadline: number | null, window: number): void {
    const spec = handlers.get(cmd) ?? (builtins[cmd] ? { fn: builtins[cmd]!, latencyMs: 0 } : undefined);
    const deliver = () => {
      if (!proc.alive || !proc.inflight.has(id)) return;
      const cancelled = proc.inflight.get(id)!.cancelled === true;
      proc.inflight.delete(id);
      proc.requests++;
      if (!spec) {
        proc.hooks.onReply(id, false, { type: 'UnknownCommand', message: `unknown command: ${cmd}`, traceback: '' });
        return;
      }
      let sessionState: Record<string, unknown> = {};
      if (session !== null) {
        sessionState = proc.sessions.get(session) ?? {};
        proc.sessions.set(session, sessionState);
      }
      let result: unknown;
      try {
        result = spec.fn(args, { workerId: proc.workerId, pid: proc.pid, sessionId: session, session: sessionState, deadline });
      } catch (err) {
        const type = err instanceof SimPythonError ? err.pythonType : (err as Error).name ?? 'Exception';
        proc.hooks.onReply(id, false, { type, message: (err as Error).message, traceback: `Traceback (simulated)\n${type}: ${(err as Error).message}` }, heldChange(proc, session));
        return;
      }
      if (cancelled && (result === HANG || isGenerator(result))) {
        // Cancelled before it started: a generator is closed at its first yield, a task cancelled.
        if (isGenerator(result)) result.return?.(undefined);
        proc.hooks.onReply(id, false, { type: 'Cancelled', message: 'cancelled by the host', traceback: '' });
        afterAnswer(proc);
        return;
      }
      if (result === HANG || result === HANG_HARD) {
        proc.inflight.set(id, { timer: null, cmd, interruptible: result === HANG });
        return;
      }
      if (isGenerator(result)) {
        // The first chunk comes at once (its latency was the wait so far), then one per latency.
        const stream: SimStream = { gen: result, window, sent: 0, acked: 0, paused: false, collected: [], latencyMs: spec.latencyMs, session };
        proc.inflight.set(id, { timer: null, cmd, stream });
        step(proc, id);
        return;
      }
      if (result && typeof result === 'object' && 'crash' in result) {
        const { code, signal } = (result as CrashOrder).crash;
        exitProcess(proc, { code, signal, stderrTail: [`simulated crash in ${cmd}`] }, true);
        return;
      }
      proc.hooks.onReply(id, true, result, heldChange(proc, session));
      if (proc.exitAfterCurrent && proc.inflight.size === 0) exitProcess(proc, { code: 0, signal: null, stderrTail: [] }, true);
    };
    const latency = spec?.latencyMs ?? 0;
    if (latency > 0) {
      proc.inflight.set(id, { timer: clock.setTimeout(deliver, latency) as unknown as number, cmd });
    } else {
      proc.inflight.set(id, { timer: null, cmd });
    }
    proc.peakInflight = Math.max(proc.peakInflight, proc.inflight.size);
    for (const listener of requestListeners) listener({ pid: proc.pid, workerId: proc.workerId, id, cmd, args, session, deadline, at: clock.now() });
    if (latency === 0) deliver();
  }

  /** As the real worker reports it: whether it now holds state for the session, when that changed. */
  function heldChange(proc: Live, session: string | null): boolean | undefined {
    if (session === null) return undefined;
    const now = Object.keys(proc.sessions.get(session) ?? {}).length > 0;
    if (proc.held.has(session) === now) return undefined;
    if (now) proc.held.add(session);
    else proc.held.delete(session);
    return now;
  }

  function signal(proc: Live, sig: 'SIGKILL' | 'SIGTERM' | 'SIGINT'): void {
    if (!proc.alive) return;
    proc.signals.push(sig);
    if (sig === 'SIGKILL') return exitProcess(proc, { code: null, signal: 'SIGKILL', stderrTail: [] }, true);
    if (sig === 'SIGTERM') {
      if (proc.ignoresSigterm) return;
      // The real worker finishes the running command first; a hung one never does.
      if (proc.inflight.size === 0) exitProcess(proc, { code: 0, signal: null, stderrTail: [] }, true);
      else proc.exitAfterCurrent = true;
      return;
    }
    // SIGINT: every running handler sees KeyboardInterrupt.
    // The handlers running when the signal lands; one an answer lets in meanwhile never saw it.
    for (const [id, { timer, interruptible }] of [...proc.inflight]) {
      if (interruptible === false || !proc.alive || !proc.inflight.has(id)) continue;
      if (timer !== null) clock.clearTimeout(timer);
      proc.inflight.delete(id);
      proc.hooks.onReply(id, false, { type: 'KeyboardInterrupt', message: '', traceback: 'KeyboardInterrupt' });
    }
    // A SIGTERM that waited for the running command: that command has now answered.
    if (proc.alive && proc.exitAfterCurrent && proc.inflight.size === 0) exitProcess(proc, { code: 0, signal: null, stderrTail: [] }, true);
  }

  /** The simulation's Spawner: a fake process behind the same process actor as a real one. */
  const spawnFake = (workerId: string, generation: number, hooks: ProcessHooks): ProcessPort => {
    const proc: Live = {
      pid: nextPid++,
      workerId,
      generation,
      alive: true,
      exit: null,
      ignoresSigterm: sigtermIgnored.has(workerId) || sigtermIgnored.has('*'),
      requests: 0,
      sessions: new Map(),
      signals: [],
      exitSeq: null,
      peakInflight: 0,
      chunksProduced: 0,
      controls: [],
      hooks,
      held: new Set(),
      inflight: new Map(),
      exitAfterCurrent: false,
    };
    const port: ProcessPort = {
      get pid() {
        return fault?.phase === 'spawn' ? undefined : proc.pid;
      },
      get exited() {
        return !proc.alive;
      },
      send(id, cmd, args, session, deadline, window = 0) {
        if (proc.alive) reply(proc, id, cmd, args, session, deadline, window);
      },
      control(id, frame) {
        if (proc.alive) control(proc, id, frame);
      },
      signal(sig) {
        signal(proc, sig);
      },
    };
    const fault = takeStartFault(workerId);
    all.push(proc);
    if (fault?.phase === 'spawn') {
      // Like ENOENT from spawn(2): no process, no pid; the exit report carries the start error.
      proc.alive = false;
      proc.exit = { code: null, signal: null, stderrTail: [] };
      proc.exitSeq = ++exitCount;
      const errno = fault.errno ?? 'ENOENT';
      hooks.onExit(proc.exit, new WorkerStartError(workerId, 'sim', `spawn failed (simulated ${errno})`, '', { cause: Object.assign(new Error(`spawn sim ${errno}`), { code: errno }) }));
      return port;
    }
    hooks.onSpawned(proc.pid, 'sim');
    const announce = () => {
      if (!proc.alive) return;
      if (fault && !fault.hang) {
        exitProcess(proc, { code: fault.signal ? null : fault.code ?? 3, signal: fault.signal ?? null, stderrTail: fault.stderr ?? ['Traceback (most recent call last):', 'SyntaxError: invalid syntax (simulated)'] }, true);
        return;
      }
      if (fault?.hang) return;
      hooks.onReady(proc.pid, 'sim', 'sim');
    };
    if (startupMs > 0) clock.setTimeout(announce, startupMs);
    else announce();
    return port;
  };
  const processLogic = processActorLogic(spawnFake);

  function takeStartFault(workerId: string): StartFault | undefined {
    const fault = startFaults.find((f) => f.remaining > 0 && (!f.workerId || f.workerId === workerId));
    if (!fault) return undefined;
    fault.remaining--;
    return fault;
  }

  function find(pidOrWorkerId: number | string): Live {
    const proc =
      typeof pidOrWorkerId === 'number'
        ? all.find((p) => p.pid === pidOrWorkerId && p.alive)
        : all.find((p) => p.workerId === pidOrWorkerId && p.alive);
    if (!proc) throw new Error(`simulation: no live process ${pidOrWorkerId}`);
    return proc;
  }

  const simClock: Clock = { now: () => clock.now(), setTimeout: (fn, ms) => clock.setTimeout(fn, ms), clearTimeout: (id) => clock.clearTimeout(id as number) };
  const sim: Simulation = {
    clock,
    processLogic,
    workerMachine: workerMachine.provide({ actors: { pythonProcess: processLogic } }),
    handle(cmd, fn, opts = {}) {
      handlers.set(cmd, { fn, latencyMs: opts.latencyMs ?? 0 });
      return sim;
    },
    hang: (opts = {}) => (opts.uninterruptible ? HANG_HARD : HANG),
    crash: (code = null, sig = 'SIGKILL') => ({ crash: { code, signal: code === null ? sig : null } }),
    failStarts(count, fault = {}) {
      startFaults.push({ ...fault, remaining: count });
      return sim;
    },
    ignoreSigterm(workerId = '*') {
      sigtermIgnored.add(workerId);
      for (const p of all) if (p.alive && (workerId === '*' || p.workerId === workerId)) p.ignoresSigterm = true;
      return sim;
    },
    kill(pidOrWorkerId, sig = 'SIGKILL') {
      const proc = find(pidOrWorkerId);
      signal(proc, sig);
      return proc;
    },
    exit(pidOrWorkerId, code, sig = null) {
      const proc = find(pidOrWorkerId);
      exitProcess(proc, { code: sig ? null : code, signal: sig, stderrTail: [] }, true);
      return proc;
    },
    strayReply(pidOrWorkerId, id = 2 ** 40) {
      find(pidOrWorkerId).hooks.onReply(id, true, 'stray');
    },
    corrupt(pidOrWorkerId, message = 'simulated garbage frame') {
      const proc = find(pidOrWorkerId);
      proc.hooks.onProtocolError(new ProtocolError(message));
    },
    advance(ms) {
      clock.increment(ms);
    },
    processes: () => all.slice(),
    alive: () => all.filter((p) => p.alive),
    processOf: (workerId) => all.find((p) => p.workerId === workerId && p.alive),
    createPool(poolOptions = {}) {
      return new Pool(resolveOptions({ python: 'sim', ...poolOptions }), {
        processLogic,
        clock: simClock,
        rssMb: (pid) => rss.get(pid) ?? null,
        allExited: async () => {
          const left = all.filter((p) => p.alive);
          if (left.length) throw new Error(`simulation: ${left.length} fake processes still alive after stop: ${left.map((p) => p.pid).join(', ')}`);
        },
      });
    },
    setRssMb(pid, mb) {
      rss.set(pid, mb);
    },
    onRequest(listener) {
      requestListeners.add(listener);
      return () => requestListeners.delete(listener);
    },
  };
  return sim;
}
