/**
 * The `pythonProcess` actor: one process per invocation (one per worker generation), bridged
 * to the worker machine's lifecycle events and, for requests, straight to the worker's
 * ProcessLink. Disposal (the machine leaving `live`) SIGKILLs a process that is still running
 * and settles whatever it still had, so a process can never outlive the state that owns it and
 * no request can outlive its process.
 *
 * The same actor runs real processes (spawnPython below) and the simulation's fake ones: only
 * the Spawner differs.
 */
import { fromCallback, type CallbackActorLogic } from 'xstate';
import type { ProcessActorInput, ProcessCommand, ProcessEvent } from '../../machines/events.js';
import { ProtocolError, PyvisorError, WorkerCrashedError, WorkerStartError, toWire, type ExitInfo } from '../errors.js';
import type { ProcessLink, ProcessPort, PythonErrorInfo, Spawner } from './link.js';
import { WorkerProcess, strayIdOf, strayReply } from './workerProcess.js';

/** The errno spawn(2) failed with (ENOENT, EAGAIN...), from the start error's cause chain. */
function errnoOf(error: unknown): string | null {
  for (let at = error, depth = 0; at instanceof Error && depth < 4; at = at.cause, depth++) {
    const code = (at as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) return code;
  }
  return null;
}

export function processActorLogic(spawn: Spawner): CallbackActorLogic<ProcessCommand, ProcessActorInput> {
  return fromCallback<ProcessCommand, ProcessActorInput>(({ input, sendBack, receive }) => {
    const { workerId, generation } = input;
    const link = (input.link ?? null) as ProcessLink | null;
    let disposed = false;
    let pingId: number | null = null;
    let ownIds = 0;
    const send = (event: ProcessEvent) => {
      if (!disposed) sendBack(event);
    };
    const settleAll = (cause: PyvisorError | null, exit: ExitInfo | null, strayId?: number) => link?.detach(generation, cause, exit, strayId) ?? 0;
    const condemn = (error: PyvisorError) => {
      settleAll(error, null, strayIdOf(error));
      send({ type: 'PROC.PROTOCOL_ERROR', failure: toWire(error) });
    };
    // Hooks may fire inside spawn() itself (a simulated process answers synchronously).
    let port: ProcessPort | null = null;
    port = spawn(workerId, generation, {
      onSpawned: (pid, python) => send({ type: 'PROC.SPAWNED', pid, python }),
      onReady: (pid, python, codec) => send({ type: 'PROC.READY', pid, python, codec }),
      onReply(id, ok, value, held) {
        if (id === pingId) {
          pingId = null;
          send(ok ? { type: 'PROC.PONG', ok: true } : { type: 'PROC.PONG', ok: false, error: value as PythonErrorInfo });
          return;
        }
        const mine = ok ? link?.reply(id, true, value, held) : link?.reply(id, false, value as PythonErrorInfo, held);
        if (!mine) condemn(strayReply(new ProtocolError(`reply with id ${id}, which no request of worker ${workerId} is waiting for`), id));
      },
      onChunk(id, value) {
        if (!link?.chunk(id, value)) condemn(strayReply(new ProtocolError(`chunk with id ${id}, which no stream request of worker ${workerId} is waiting for`), id));
      },
      onProtocolError: condemn,
      onExit(exit, startError) {
        // After disposal the kill is the owner's doing: its requests get the owner's reason.
        const inflight = settleAll(disposed ? null : new WorkerCrashedError(workerId, port?.pid, exit), exit);
        send({ type: 'PROC.EXIT', exit, inflight, ...(startError ? { startFailure: toWire(startError), spawnErrno: errnoOf(startError) } : {}) });
      },
    });
    const live: ProcessPort = port;
    link?.attach(live, generation);

    receive((command) => {
      if (disposed) return;
      if (command.type === 'SIGNAL') {
        live.signal(command.signal);
        return;
      }
      pingId = link ? link.nextId() : ++ownIds;
      live.send(pingId, 'ping', null, null, null);
    });

    return () => {
      disposed = true;
      // Killed first, so that a request retried elsewhere never runs while this process still
      // does; settled with the owner's reason (also when the kill reports back at once).
      if (!live.exited) live.signal('SIGKILL');
      settleAll(null, null);
    };
  });
}

/**
 * Registry of live processes: how `pool.stop()` knows that none is left, and how none is left
 * when the host exits without `stop()` (`process.exit()`): while any process is live, an
 * `exit` listener SIGKILLs them all. (A host that is SIGKILLed itself runs nothing; there the
 * worker's parent-death signal, SIGKILL too, does the same.)
 */
export class ProcessRegistry {
  private readonly live = new Map<WorkerProcess, Promise<void>>();
  private readonly exits = new Map<WorkerProcess, () => void>();
  private readonly killAll = (): void => {
    for (const proc of this.live.keys()) proc.signal('SIGKILL');
  };

  add(proc: WorkerProcess): void {
    if (this.live.size === 0) process.on('exit', this.killAll);
    this.live.set(proc, new Promise<void>((resolve) => this.exits.set(proc, resolve)));
  }

  exited(proc: WorkerProcess): void {
    this.exits.get(proc)?.();
    this.exits.delete(proc);
    this.live.delete(proc);
    if (this.live.size === 0) process.off('exit', this.killAll);
  }

  /** pids of the processes that have not exited yet. */
  pids(): number[] {
    return [...this.live.keys()].map((p) => p.pid).filter((pid): pid is number => pid !== undefined);
  }

  /** Resolves once every registered process has exited (including ones registered meanwhile). */
  async allExited(): Promise<void> {
    while (this.live.size > 0) await Promise.all(this.live.values());
  }
}

export interface PythonSpawnConfig {
  /** The interpreter's real executable (see resolvePython). */
  python: string;
  handlers: string[];
  env: Record<string, string>;
  cwd: string | undefined;
  maxFrameBytes: number;
  /** Requests in flight per worker (`--concurrency`; 1: one at a time, the worker's default). */
  concurrency: number;
  registry: ProcessRegistry;
  /** A pool-clock time as ms since the Unix epoch (the wire's deadlines). */
  toEpochMs: (time: number) => number;
  /** stderr lines and `log` notices of a worker. */
  onLog: (workerId: string, pid: number | null, line: string) => void;
}

/** The real Spawner: a python3 process on pipes (src/channel/workerProcess.ts). */
export function spawnPython(config: PythonSpawnConfig): Spawner {
  return (workerId, _generation, hooks) => {
    const proc = WorkerProcess.spawn(
      { workerId, python: config.python, handlers: config.handlers, env: config.env, cwd: config.cwd, maxFrameBytes: config.maxFrameBytes, ...(config.concurrency > 1 ? { extraArgs: ['--concurrency', String(config.concurrency)] } : {}) },
      {
        onMessage(msg) {
          if (msg.kind === 'reply') hooks.onReply(msg.id, msg.ok, msg.ok ? msg.result : msg.error, typeof msg.held === 'boolean' ? msg.held : undefined);
          else if (msg.kind === 'chunk') hooks.onChunk(msg.id, msg.chunk);
          else if (msg.kind === 'ready') hooks.onReady(msg.pid, msg.python, msg.codec);
          else if (msg.kind === 'log') config.onLog(workerId, proc.pid ?? null, `[${msg.level}] ${msg.message}`);
        },
        onStderr: (line) => config.onLog(workerId, proc.pid ?? null, line),
        onProtocolError: (error) => hooks.onProtocolError(error),
        onExit(info) {
          config.registry.exited(proc);
          const startError = info.startError
            ? new WorkerStartError(workerId, config.python, info.startError.message, info.startError.output, { cause: info.startError })
            : undefined;
          hooks.onExit({ code: info.code, signal: info.signal, stderrTail: info.stderrTail }, startError);
        },
      },
    );
    config.registry.add(proc);
    // Spawned (the pid is known at once) or not (ENOENT etc.: onExit follows with startError).
    if (proc.pid !== undefined) hooks.onSpawned(proc.pid, config.python);
    return {
      get pid() {
        return proc.pid;
      },
      get exited() {
        return proc.exited;
      },
      send: (id, cmd, args, session, deadline, window) => proc.send(id, cmd, args, session, deadline === null ? null : config.toEpochMs(deadline), window),
      control: (id, control) => proc.control(id, control),
      signal: (signal) => void proc.signal(signal),
    };
  };
}
