/**
 * The events that cross actor boundaries. Keeping them in one file makes the protocol between
 * a worker, its process actor, its supervisor and the session pool readable in one place.
 *
 * Requests are not among them: a request travels from its owner (src/local) straight to the
 * process and back. The machines hear only of the process's life.
 */
import type { ExitInfo, Failure } from './failure.js';

/** Sent by a process actor (real or simulated) to the worker machine that invoked it. */
export type ProcessEvent =
  /** The OS process exists (sent synchronously at spawn; a spawn failure sends PROC.EXIT with startError instead). */
  | { type: 'PROC.SPAWNED'; pid: number; /** The interpreter executable, for start errors before the ready notice. */ python: string }
  | { type: 'PROC.READY'; pid: number; python: string; codec: string }
  /** The answer to the machine's own PING. */
  | { type: 'PROC.PONG'; ok: true }
  | { type: 'PROC.PONG'; ok: false; error: { type: string; message: string; traceback: string } }
  /** The process broke the protocol: it cannot be trusted with another request. */
  | { type: 'PROC.PROTOCOL_ERROR'; failure: Failure }
  /** `inflight`: how many requests the process had when it died (0: nobody's request killed it). */
  | { type: 'PROC.EXIT'; exit: ExitInfo; startFailure?: Failure; /** With startFailure: spawn(2)'s errno, when known. */ spawnErrno?: string | null; inflight: number };

/** Sent by a worker machine to its process actor. */
export type ProcessCommand =
  | { type: 'PING' }
  | { type: 'SIGNAL'; signal: 'SIGTERM' | 'SIGKILL' | 'SIGINT' };

export interface ProcessActorInput {
  workerId: string;
  /** 1 for the first process of a worker, then +1 per (re)start. */
  generation: number;
  /** The request owner of this worker (src/local's WorkerHandle); opaque to the machines. */
  link: unknown;
}

/**
 * OTP exit reasons. `normal` and `shutdown` are the two a transient child may exit with
 * without being restarted; anything else is abnormal.
 */
export type ExitReason = 'normal' | 'shutdown' | { abnormal: string };

/** Child → supervisor. Every supervised child machine speaks this. */
export type ChildReport =
  | { type: 'CHILD.STARTED'; id: string; pid: number | null }
  | { type: 'CHILD.START_FAILED'; id: string; error: Failure; deterministic?: boolean }
  /**
   * `deterministic`: the child failed before it was ever ready in a way the same start would
   * repeat — its process exited on its own (a handler file that does not import) or could not be
   * spawned (no such interpreter) — as opposed to a timeout or a kill, which may not recur.
   */
  | { type: 'CHILD.EXITED'; id: string; reason: ExitReason; error?: Failure; deterministic?: boolean }
  | { type: 'CHILD.STOPPED'; id: string };

/** Supervisor → child. */
export type ChildCommand = { type: 'START' } | { type: 'STOP' };
