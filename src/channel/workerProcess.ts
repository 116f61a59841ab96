/**
 * One Python worker process and its pipes: frames in, frames out, stderr lines, one exit
 * report. Plain callbacks, no EventEmitter on the hot path. The transport never kills a
 * worker on its own: it reports (onProtocolError, onExit) and the host decides.
 *
 * See docs/PROTOCOL.md for the wire contract.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { ProtocolError, WorkerStartError, type ExitInfo } from '../errors.js';
import { decode } from '../codec/decode.js';
import { DEFAULT_MAX_FRAME_BYTES, LARGE_FRAME_BYTES, encodeFrame, encodeRequest, releaseFrame } from '../codec/encode.js';
import { FrameReader } from '../codec/frames.js';
import { BRIDGE_SCRIPT } from './python.js';

export interface PythonErrorInfo {
  type: string;
  message: string;
  traceback: string;
  details?: Record<string, unknown>;
}

export interface ReplyOk {
  kind: 'reply';
  id: number;
  ok: true;
  result: unknown;
  /** Whether the worker now holds state for the request's session, when that changed. */
  held?: boolean;
}

export interface ReplyError {
  kind: 'reply';
  id: number;
  ok: false;
  error: PythonErrorInfo;
  held?: boolean;
}

export interface ReadyNotice {
  kind: 'ready';
  workerId: string;
  pid: number;
  python: string;
  codec: string;
  /** The worker's --mode, when it reports it. */
  mode?: string;
  /** The whole decoded notice (extra fields such as `commands`, `max_frame_bytes`). */
  data: Record<string, unknown>;
}

export interface LogNotice {
  kind: 'log';
  level: string;
  message: string;
}

/** Any other `{event, ...}` the worker sends; `data` is the whole decoded map. */
export interface OtherNotice {
  kind: 'notice';
  event: string;
  data: Record<string, unknown>;
}

/** One chunk of a stream request's output, before its final reply. */
export interface Chunk {
  kind: 'chunk';
  id: number;
  chunk: unknown;
}

export type Reply = ReplyOk | ReplyError;
export type WorkerMessage = ReplyOk | ReplyError | Chunk | ReadyNotice | LogNotice | OtherNotice;

export interface WorkerExitInfo extends ExitInfo {
  /** Set when the process could not be started at all (ENOENT, EACCES, ...). */
  startError?: WorkerStartError;
}

export interface WorkerProcessOptions {
  workerId: string;
  /** Interpreter executable (resolve shims first with resolvePython). */
  python: string;
  /** Worker script (default: the bundled python/dspy_bridge.py). */
  script?: string;
  mode?: 'pool-worker' | 'standalone';
  /** Python files or modules to load, passed as `--handlers ...`. */
  handlers?: string[];
  /** More arguments for the worker script (placed before --handlers). */
  extraArgs?: string[];
  /** Full override of the command line, [executable, ...args] (mock workers). */
  argv?: string[];
  /** Extra environment variables, merged over process.env (PYTHONUNBUFFERED=1 is set unless given). */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Largest frame accepted from, and sent to, the worker (default 64 MiB). */
  maxFrameBytes?: number;
  /** How many trailing stderr lines to keep for the exit report (default 20). */
  stderrTailLines?: number;
  /** Longest stderr line kept, in characters; longer lines are cut (default 8192). */
  maxStderrLineLength?: number;
  /**
   * After the process exits, how long to wait for its pipes to close before giving up on
   * them (a grandchild that inherited them can hold them open). Default 500 ms.
   */
  exitDrainMs?: number;
}

export interface WorkerProcessHandlers {
  onMessage(msg: WorkerMessage): void;
  onStderr?(line: string): void;
  onProtocolError(err: ProtocolError): void;
  onExit(info: WorkerExitInfo): void;
}

const DEFAULT_STDERR_TAIL = 20;
const DEFAULT_MAX_LINE = 8192;
const DEFAULT_EXIT_DRAIN_MS = 500;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

export class WorkerProcess {
  readonly workerId: string;
  readonly argv: readonly string[];
  readonly maxFrameBytes: number;
  private readonly child: ChildProcess;
  private readonly handlers: WorkerProcessHandlers;
  private readonly reader: FrameReader;
  private readonly inFlight = new Set<number>();
  private readonly tail: string[] = [];
  private readonly tailMax: number;
  private readonly maxLine: number;
  private readonly exitDrainMs: number;
  private readonly stderrDecoder = new StringDecoder('utf8');
  private partialLine = '';
  private partialCut = false;
  private processGone = false;
  private reported = false;
  private startError: WorkerStartError | undefined;
  private drainTimer: NodeJS.Timeout | undefined;
  private exitCode: number | null = null;
  private exitSignal: string | null = null;
  private readonly cwd: string | undefined;

  private constructor(options: WorkerProcessOptions, handlers: WorkerProcessHandlers) {
    this.workerId = options.workerId;
    this.handlers = handlers;
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.tailMax = options.stderrTailLines ?? DEFAULT_STDERR_TAIL;
    this.maxLine = options.maxStderrLineLength ?? DEFAULT_MAX_LINE;
    this.exitDrainMs = options.exitDrainMs ?? DEFAULT_EXIT_DRAIN_MS;
    this.argv = options.argv ?? WorkerProcess.buildArgv(options);
    this.cwd = options.cwd;
    this.reader = new FrameReader({
      maxFrameBytes: this.maxFrameBytes,
      onFrame: (payload) => this.onFrame(payload),
      onError: (err) => this.protocolError(err),
    });

    const env: NodeJS.ProcessEnv = { ...process.env, PYTHONUNBUFFERED: '1', ...options.env };
    const [exe, ...args] = this.argv;
    this.child = spawn(exe, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: false,
      env,
      cwd: options.cwd,
      windowsHide: true,
    });
    const child = this.child;
    child.on('error', (err: NodeJS.ErrnoException) => this.onSpawnError(err));
    child.on('exit', (code, signal) => this.onProcessExit(code, signal));
    child.on('close', () => this.report());
    // EPIPE and friends when the worker is gone: the exit report follows.
    child.stdin!.on('error', () => {});
    child.stdout!.on('data', (chunk: Buffer) => this.reader.push(chunk));
    child.stdout!.on('error', () => {});
    child.stderr!.on('data', (chunk: Buffer) => this.onStderrChunk(chunk));
    child.stderr!.on('error', () => {});
  }

  /**
   * Start a worker process. Never throws for a missing interpreter: a spawn failure is
   * reported through `handlers.onExit` with `startError` (asynchronously).
   */
  static spawn(options: WorkerProcessOptions, handlers: WorkerProcessHandlers): WorkerProcess {
    return new WorkerProcess(options, handlers);
  }

  /** The command line used for a worker when `argv` is not given. */
  static buildArgv(options: WorkerProcessOptions): string[] {
    const argv = [options.python, options.script ?? BRIDGE_SCRIPT, '--mode', options.mode ?? 'pool-worker', '--worker-id', options.workerId];
    const max = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    if (max !== DEFAULT_MAX_FRAME_BYTES) argv.push('--max-frame-bytes', String(max));
    if (options.extraArgs) argv.push(...options.extraArgs);
    if (options.handlers && options.handlers.length > 0) argv.push('--handlers', ...options.handlers);
    return argv;
  }

  /** OS process id (undefined when the spawn failed). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** True once the process has terminated (or never started); onExit may still be pending. */
  get exited(): boolean {
    return this.processGone;
  }

  /** True once onExit has been called. */
  get closed(): boolean {
    return this.reported;
  }

  /** Requests sent and not yet answered. */
  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** The last stderr lines seen so far, oldest first (a copy). */
  stderrTail(): string[] {
    return this.tail.slice();
  }

  /**
   * Send `{id, cmd, args, session, deadline?}` as one frame with one write; `deadline` is
   * absolute, in ms since the Unix epoch (null: none). Throws SerializationError
   * synchronously (nothing written) when `args` holds a value outside the wire types or the
   * frame would exceed maxFrameBytes; throws ProtocolError if `id` is already in flight.
   * A write to a process that is gone is dropped silently: onExit follows.
   */
  send(id: number, cmd: string, args: unknown, session: string | null, deadline: number | null = null, window = 0): void {
    if (this.inFlight.has(id)) {
      throw new ProtocolError(`request id ${id} is already in flight on worker ${this.workerId}`);
    }
    const frame = encodeRequest(id, cmd, args, session, this.maxFrameBytes, deadline, window);
    const stdin = this.child.stdin;
    if (this.processGone || !stdin || stdin.destroyed || !stdin.writable) return;
    this.inFlight.add(id);
    // A large frame's slab goes back to the encoder once the OS has the bytes.
    if (frame.length >= LARGE_FRAME_BYTES) stdin.write(frame, () => releaseFrame(frame));
    else stdin.write(frame);
  }

  /**
   * Send a control frame for request `id` in flight: `{id, ack: n}` (n chunks consumed so far)
   * or `{id, cancel: true}`. Dropped when the request is no longer in flight (its reply crossed)
   * or the process is gone.
   */
  control(id: number, control: { ack: number } | { cancel: true }): void {
    const stdin = this.child.stdin;
    if (!this.inFlight.has(id) || this.processGone || !stdin || stdin.destroyed || !stdin.writable) return;
    stdin.write(encodeFrame({ id, ...control }, 'control', this.maxFrameBytes));
  }

  /**
   * Send a signal if the process is still alive. Never signals a process that has already
   * exited (its pid may have been reused). Returns true if the signal was delivered.
   */
  signal(sig: NodeJS.Signals = 'SIGTERM'): boolean {
    if (this.processGone || this.child.pid === undefined) return false;
    try {
      return this.child.kill(sig);
    } catch {
      return false;
    }
  }

  /** Close the worker's stdin (the worker exits on EOF). */
  endInput(): void {
    const stdin = this.child.stdin;
    if (stdin && !stdin.destroyed) stdin.end();
  }

  // --- incoming ------------------------------------------------------------------------

  private onFrame(payload: Buffer): void {
    let value: unknown;
    try {
      value = decode(payload);
    } catch (err) {
      this.protocolError(err instanceof ProtocolError ? err : new ProtocolError(String(err), { cause: err }));
      return;
    }
    this.classify(value);
  }

  private classify(value: unknown): void {
    if (!isPlainObject(value)) {
      this.protocolError(new ProtocolError(`frame is not a map (got ${describeValue(value)})`));
      return;
    }
    const msg = value as Record<string, unknown>;
    if ('chunk' in msg && !('ok' in msg)) {
      const id = msg.id;
      if (typeof id !== 'number' || !Number.isInteger(id)) {
        this.protocolError(new ProtocolError(`chunk without an integer "id" (got ${describeValue(id)})`));
        return;
      }
      if (!this.inFlight.has(id)) {
        this.protocolError(strayReply(new ProtocolError(`chunk for request id ${id}, which is not in flight on worker ${this.workerId}`), id));
        return;
      }
      this.handlers.onMessage({ kind: 'chunk', id, chunk: msg.chunk });
      return;
    }
    if ('ok' in msg || ('id' in msg && typeof msg.event !== 'string')) {
      const id = msg.id;
      const ok = msg.ok;
      if (typeof ok !== 'boolean') {
        this.protocolError(new ProtocolError(`reply without a boolean "ok" (id ${describeValue(id)})`));
        return;
      }
      if (!ok) {
        const error = msg.error;
        if (!isPlainObject(error) || typeof error.type !== 'string' || typeof error.message !== 'string') {
          this.protocolError(new ProtocolError(`error reply without error.type / error.message strings (id ${describeValue(id)})`));
          return;
        }
        // Structured data about the error (an LM error's HTTP status...), when it is a map.
        if ('details' in error && !isPlainObject(error.details)) delete error.details;
        if (error.traceback === undefined || error.traceback === null) error.traceback = '';
        else if (typeof error.traceback !== 'string') error.traceback = String(error.traceback);
        if (id === null) {
          // The worker could not read one of our frames: it says so with id nil.
          this.protocolError(new ProtocolError(`worker ${this.workerId} reported a protocol error: ${error.type}: ${error.message}`));
          return;
        }
      } else if (!('result' in msg)) {
        this.protocolError(new ProtocolError(`reply without "result" (id ${describeValue(id)})`));
        return;
      }
      if (typeof id !== 'number' || !Number.isInteger(id)) {
        this.protocolError(new ProtocolError(`reply without an integer "id" (got ${describeValue(id)})`));
        return;
      }
      if (!this.inFlight.delete(id)) {
        this.protocolError(strayReply(new ProtocolError(`reply for request id ${id}, which is not in flight on worker ${this.workerId}`), id));
        return;
      }
      msg.kind = 'reply';
      this.handlers.onMessage(msg as unknown as Reply);
      return;
    }
    const event = msg.event;
    if (typeof event !== 'string') {
      this.protocolError(new ProtocolError(`frame is neither a reply (id, ok) nor a notice (event): keys ${Object.keys(msg).slice(0, 8).join(', ')}`));
      return;
    }
    if (event === 'ready') {
      const ready: ReadyNotice = {
        kind: 'ready',
        workerId: typeof msg.worker_id === 'string' ? msg.worker_id : this.workerId,
        pid: typeof msg.pid === 'number' ? msg.pid : (this.child.pid ?? -1),
        python: typeof msg.python === 'string' ? msg.python : '',
        codec: typeof msg.codec === 'string' ? msg.codec : '',
        data: msg,
      };
      if (typeof msg.mode === 'string') ready.mode = msg.mode;
      this.handlers.onMessage(ready);
      return;
    }
    if (event === 'log') {
      this.handlers.onMessage({
        kind: 'log',
        level: typeof msg.level === 'string' ? msg.level : 'info',
        message: typeof msg.message === 'string' ? msg.message : String(msg.message),
      });
      return;
    }
    this.handlers.onMessage({ kind: 'notice', event, data: msg });
  }

  private protocolError(err: ProtocolError): void {
    this.handlers.onProtocolError(err);
  }

  private onStderrChunk(chunk: Buffer): void {
    const text = this.stderrDecoder.write(chunk);
    if (text.length === 0) return;
    let from = 0;
    for (;;) {
      const nl = text.indexOf('\n', from);
      if (nl === -1) {
        this.appendPartial(text.slice(from));
        return;
      }
      this.appendPartial(text.slice(from, nl));
      this.flushLine();
      from = nl + 1;
    }
  }

  private appendPartial(piece: string): void {
    if (piece.length === 0 || this.partialCut) return;
    const room = this.maxLine - this.partialLine.length;
    if (piece.length > room) {
      this.partialLine += piece.slice(0, room);
      this.partialCut = true;
    } else {
      this.partialLine += piece;
    }
  }

  private flushLine(): void {
    let line = this.partialLine;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (this.partialCut) line += ` … [line cut at ${this.maxLine} characters]`;
    this.partialLine = '';
    this.partialCut = false;
    this.tail.push(line);
    if (this.tail.length > this.tailMax) this.tail.shift();
    this.handlers.onStderr?.(line);
  }

  // --- lifecycle -----------------------------------------------------------------------

  private onSpawnError(err: NodeJS.ErrnoException): void {
    if (this.child.pid !== undefined && !this.processGone) {
      // An error after a successful spawn (e.g. kill failure): not a start failure.
      return;
    }
    if (this.startError) return;
    const exe = this.argv[0];
    const reason = err.code === 'ENOENT' && this.cwd !== undefined && !existsSync(this.cwd)
      ? `working directory does not exist: ${this.cwd}`
      : err.code === 'ENOENT'
      ? `interpreter not found (path tried: ${exe})`
      : err.code === 'EACCES'
        ? `interpreter is not executable (path tried: ${exe})`
        : `spawn failed: ${err.code ?? err.message} (path tried: ${exe})`;
    this.startError = new WorkerStartError(this.workerId, exe, reason, '', { cause: err });
    this.processGone = true;
  }

  private onProcessExit(code: number | null, signal: NodeJS.Signals | null): void {
    this.processGone = true;
    this.exitCode = code;
    this.exitSignal = signal;
    // Normally 'close' follows as soon as stdout/stderr drain. If a grandchild inherited
    // the pipes it never would: stop waiting after exitDrainMs.
    this.drainTimer = setTimeout(() => {
      this.drainTimer = undefined;
      this.child.stdout?.destroy();
      this.child.stderr?.destroy();
      this.report();
    }, this.exitDrainMs);
  }

  private report(): void {
    if (this.reported) return;
    this.reported = true;
    if (this.drainTimer) {
      clearTimeout(this.drainTimer);
      this.drainTimer = undefined;
    }
    this.processGone = true;
    const rest = this.stderrDecoder.end();
    if (rest) this.appendPartial(rest);
    if (this.partialLine.length > 0 || this.partialCut) this.flushLine();
    if (!this.reader.closed && (this.reader.bufferedBytes > 0 || this.reader.pendingFrameLength >= 0)) {
      const need = this.reader.pendingFrameLength;
      this.protocolError(new ProtocolError(need >= 0
        ? `worker ${this.workerId} output ended inside a frame (${this.reader.bufferedBytes} of ${need} payload bytes received)`
        : `worker ${this.workerId} output ended inside a frame header (${this.reader.bufferedBytes} of 4 bytes received)`));
    }
    this.reader.close();
    this.inFlight.clear();
    const info: WorkerExitInfo = {
      code: this.startError ? null : this.exitCode ?? this.child.exitCode,
      signal: this.startError ? null : this.exitSignal ?? this.child.signalCode,
      stderrTail: this.tail.slice(),
    };
    if (this.startError) info.startError = this.startError;
    this.handlers.onExit(info);
  }
}

/**
 * Marks a protocol error as a reply nobody is waiting for, with its id: the request owner can
 * then tell a duplicate of an earlier reply (the violation is the worker's, not the request it
 * runs now) from an answer to an id that was never sent.
 */
export function strayReply<E extends Error>(error: E, id: number): E {
  (error as { strayId?: number }).strayId = id;
  return error;
}

export function strayIdOf(error: unknown): number | undefined {
  return (error as { strayId?: number } | null)?.strayId;
}

function describeValue(v: unknown): string {
  if (v === null) return 'nil';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v instanceof Uint8Array) return `${v.length} bytes of binary`;
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'object') return 'a map';
  return String(v);
}
