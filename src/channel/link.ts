/**
 * The seam between a process and the owner of its requests. A process actor (one per process
 * generation, src/channel/processActor.ts) offers a ProcessPort; the worker's handle
 * (src/local/workerHandle.ts) implements ProcessLink. Request frames and their replies pass
 * between the two directly, never through an actor's mailbox.
 */
import type { ExitInfo, PyvisorError } from '../errors.js';

/** What a live process offers its request owner. */
export interface ProcessPort {
  readonly pid: number | undefined;
  /** True once the process has terminated (or never started). */
  readonly exited: boolean;
  /**
   * Send one request frame. `deadline` is absolute on the pool clock (null: none); the port
   * turns it into the wire's epoch time. Throws SerializationError, having sent nothing, for a
   * value outside the wire types.
   */
  send(id: number, cmd: string, args: unknown, session: string | null, deadline: number | null, window?: number): void;
  /** A control frame for request `id` (credit for its stream, or its cancellation); dropped once it is answered. */
  control(id: number, control: { ack: number } | { cancel: true }): void;
  signal(signal: 'SIGTERM' | 'SIGKILL' | 'SIGINT'): void;
}

/** A Python error reply, as the worker sent it. */
export interface PythonErrorInfo {
  type: string;
  message: string;
  traceback: string;
  /** Structured data the exception carried (its `details` dict), e.g. an LM error's `status`. */
  details?: Record<string, unknown>;
}

/** What a process tells its request owner. */
export interface ProcessLink {
  /** A new process of the worker exists; requests may be sent through `port` once the worker is healthy. */
  attach(port: ProcessPort, generation: number): void;
  /** A frame id no other frame of this worker has had or will have (pings use them too). */
  nextId(): number;
  /**
   * A reply arrived; `held` (when the worker says) is whether it now holds state for the
   * request's session. False: no request of the link has this id (a protocol violation).
   */
  reply(id: number, ok: true, result: unknown, held?: boolean): boolean;
  reply(id: number, ok: false, error: PythonErrorInfo, held?: boolean): boolean;
  /** A chunk of a stream request's output arrived. False: no stream request of the link has this id. */
  chunk(id: number, value: unknown): boolean;
  /**
   * The process of `generation` is gone or condemned. Every request still on it is settled —
   * with `cause`, or when null (the pool took the process away) with the reason the owner set
   * when it asked for that. `strayId`: the violation was a reply to this id, which nobody is
   * waiting for; when it repeats an earlier frame's answer the running requests are not its
   * cause and are dispatched again instead.
   * Returns how many requests were in flight. Idempotent.
   */
  detach(generation: number, cause: PyvisorError | null, exit: ExitInfo | null, strayId?: number): number;
}

/** How a process comes into being: the real spawner (pipes, python3) or the simulation's. */
export interface ProcessHooks {
  onSpawned(pid: number, python: string): void;
  onReady(pid: number, python: string, codec: string): void;
  onReply(id: number, ok: boolean, value: unknown, held?: boolean): void;
  onChunk(id: number, value: unknown): void;
  onProtocolError(error: PyvisorError): void;
  onExit(exit: ExitInfo, startError?: PyvisorError): void;
}

export type Spawner = (workerId: string, generation: number, hooks: ProcessHooks) => ProcessPort;
