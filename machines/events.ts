/**
 * The events that cross actor boundaries. Keeping them in one file makes the protocol between
 * a worker, its process actor, its supervisor and the session pool readable in one place.
 */
import type { ExitInfo, PyvisorError } from '../src/errors.js';

/** Sent by a process actor (real or simulated) to the worker machine that invoked it. */
export type ProcessEvent =
  /** The OS process exists (sent synchronously at spawn; a spawn failure sends PROC.EXIT with startError instead). */
  | { type: 'PROC.SPAWNED'; pid: number; /** The interpreter executable, for start errors before the ready notice. */ python: string }
  | { type: 'PROC.READY'; pid: number; python: string; codec: string }
  | { type: 'PROC.REPLY'; id: number; ok: true; result: unknown }
  | { type: 'PROC.REPLY'; id: number; ok: false; error: { type: string; message: string; traceback: string } }
  | { type: 'PROC.SEND_FAILED'; id: number; error: PyvisorError }
  | { type: 'PROC.PROTOCOL_ERROR'; error: PyvisorError }
  | { type: 'PROC.EXIT'; exit: ExitInfo; startError?: PyvisorError };

/** Sent by a worker machine to its process actor. */
export type ProcessCommand =
  | { type: 'SEND'; id: number; cmd: string; args: unknown; session: string | null }
  | { type: 'SIGNAL'; signal: 'SIGTERM' | 'SIGKILL' | 'SIGINT' };

/**
 * The fast lane from a worker to its process actor. Every request frame would otherwise be an
 * actor event to the process actor (mailbox, snapshot, observers: ~7 µs, a fifth of a request's
 * cost in the machines). A process actor may register its command handler here under its parent
 * worker; the worker then calls it directly, at the same point in its action sequence where a
 * `sendTo` would have been delivered. Without a registration the worker falls back to sendTo.
 */
export const processChannels = new WeakMap<object, (command: ProcessCommand) => void>();

/** Register a process actor's command handler as its worker's channel; returns the unregistration. */
export function openChannel(self: object, handle: (command: ProcessCommand) => void): () => void {
  const worker = (self as { _parent?: object })._parent;
  if (!worker) return () => {};
  processChannels.set(worker, handle);
  return () => {
    if (processChannels.get(worker) === handle) processChannels.delete(worker);
  };
}

export interface ProcessActorInput {
  workerId: string;
  /** 1 for the first process of a worker, then +1 per (re)start. */
  generation: number;
}

/**
 * OTP exit reasons. `normal` and `shutdown` are the two a transient child may exit with
 * without being restarted; anything else is abnormal.
 */
export type ExitReason = 'normal' | 'shutdown' | { abnormal: string };

/** Child → supervisor. Every supervised child machine speaks this. */
export type ChildReport =
  | { type: 'CHILD.STARTED'; id: string; pid: number | null }
  | { type: 'CHILD.START_FAILED'; id: string; error: PyvisorError }
  | { type: 'CHILD.EXITED'; id: string; reason: ExitReason; error?: PyvisorError }
  | { type: 'CHILD.STOPPED'; id: string };

/** Supervisor → child. */
export type ChildCommand = { type: 'START' } | { type: 'STOP' };
