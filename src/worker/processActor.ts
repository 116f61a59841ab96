/**
 * The real `pythonProcess` actor: one python3 process per invocation, bridged to the worker
 * machine's events. Disposal (the machine leaving `live`) SIGKILLs a process that is still
 * running, so a process can never outlive the state that owns it. Every process is entered in
 * a ProcessRegistry, which is how `pool.stop()` knows that none is left.
 */
import { fromCallback, type CallbackActorLogic } from 'xstate';
import { openChannel, type ProcessActorInput, type ProcessCommand, type ProcessEvent } from '../../machines/events.js';
import { PyvisorError, WorkerStartError } from '../errors.js';
import { WorkerProcess } from '../transport/workerProcess.js';

export class ProcessRegistry {
  private readonly live = new Map<WorkerProcess, Promise<void>>();
  private readonly exits = new Map<WorkerProcess, () => void>();

  add(proc: WorkerProcess): void {
    this.live.set(proc, new Promise<void>((resolve) => this.exits.set(proc, resolve)));
  }

  exited(proc: WorkerProcess): void {
    this.exits.get(proc)?.();
    this.exits.delete(proc);
    this.live.delete(proc);
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

export interface ProcessLogicConfig {
  /** The interpreter's real executable (see resolvePython). */
  python: string;
  handlers: string[];
  env: Record<string, string>;
  cwd: string | undefined;
  maxFrameBytes: number;
  registry: ProcessRegistry;
  /** stderr lines and `log` notices of a worker. */
  onLog: (workerId: string, pid: number | null, line: string) => void;
}

export function createProcessLogic(config: ProcessLogicConfig): CallbackActorLogic<ProcessCommand, ProcessActorInput> {
  return fromCallback<ProcessCommand, ProcessActorInput>(({ input, sendBack, receive, self }) => {
    let disposed = false;
    const send = (event: ProcessEvent) => {
      if (!disposed) sendBack(event);
    };
    const { workerId } = input;
    const proc = WorkerProcess.spawn(
      {
        workerId,
        python: config.python,
        handlers: config.handlers,
        env: config.env,
        cwd: config.cwd,
        maxFrameBytes: config.maxFrameBytes,
      },
      {
        onMessage(msg) {
          switch (msg.kind) {
            case 'reply':
              send(msg.ok ? { type: 'PROC.REPLY', id: msg.id, ok: true, result: msg.result } : { type: 'PROC.REPLY', id: msg.id, ok: false, error: msg.error });
              return;
            case 'ready':
              send({ type: 'PROC.READY', pid: msg.pid, python: msg.python, codec: msg.codec });
              return;
            case 'log':
              config.onLog(workerId, proc.pid ?? null, `[${msg.level}] ${msg.message}`);
              return;
            default:
              return;
          }
        },
        onStderr(line) {
          config.onLog(workerId, proc.pid ?? null, line);
        },
        onProtocolError(error) {
          send({ type: 'PROC.PROTOCOL_ERROR', error });
        },
        onExit(info) {
          config.registry.exited(proc);
          const startError = info.startError
            ? new WorkerStartError(workerId, config.python, info.startError.message, info.startError.output, { cause: info.startError })
            : undefined;
          send({ type: 'PROC.EXIT', exit: { code: info.code, signal: info.signal, stderrTail: info.stderrTail }, startError });
        },
      },
    );
    config.registry.add(proc);
    // Spawned (the pid is known at once) or not (ENOENT etc.: onExit follows with startError).
    if (proc.pid !== undefined) send({ type: 'PROC.SPAWNED', pid: proc.pid, python: config.python });

    const handle = (command: ProcessCommand) => {
      if (disposed) return;
      if (command.type === 'SIGNAL') {
        proc.signal(command.signal);
        return;
      }
      try {
        proc.send(command.id, command.cmd, command.args, command.session);
      } catch (error) {
        // Refused before anything was written (a value outside the wire types): the worker stays.
        if (error instanceof PyvisorError) send({ type: 'PROC.SEND_FAILED', id: command.id, error });
        else throw error;
      }
    };
    receive(handle);
    const unregister = openChannel(self, handle);

    return () => {
      disposed = true;
      unregister();
      if (!proc.exited) proc.signal('SIGKILL');
    };
  });
}
