/**
 * The placement rule, as one pure function: which live host a new session goes to. The least
 * loaded by its reported capacity: load is what the host holds or runs — its sessions, the
 * sessions this front end placed on it since its last heartbeat (so that a burst of new sessions
 * between two heartbeats is spread, not piled on one host), the requests it is handling and
 * those waiting in its pool — divided by its capacity (workers up × workerConcurrency). Ties go
 * to the host with more free slots, then to the smaller host id (deterministic).
 *
 * A host with no capacity (every worker restarting) is chosen only when every host has none:
 * its local pool then queues the request within its checkout deadline.
 */

export interface HostLoad {
  readonly hostId: string;
  /** Requests its workers can run at once. */
  readonly capacity: number;
  /** Requests it is handling. */
  readonly inflight: number;
  /** Requests waiting in its pool for a worker. */
  readonly queue: number;
  /** Sessions its pool holds (as of its last heartbeat). */
  readonly sessions: number;
  /** Sessions placed on it by this front end since its last heartbeat. */
  readonly pending: number;
}

/** Load per slot; Infinity for a host with no capacity. */
export function loadScore(host: HostLoad): number {
  const load = host.sessions + host.pending + host.inflight + host.queue;
  return host.capacity > 0 ? load / host.capacity : Number.POSITIVE_INFINITY;
}

function freeSlots(host: HostLoad): number {
  return host.capacity - host.inflight - host.queue;
}

/** The host a new session is placed on, or null when there is none. */
export function chooseHost<H extends HostLoad>(hosts: readonly H[]): H | null {
  let best: H | null = null;
  let bestScore = 0;
  for (const host of hosts) {
    const score = loadScore(host);
    if (best === null || better(host, score, best, bestScore)) {
      best = host;
      bestScore = score;
    }
  }
  return best;
}

function better(a: HostLoad, scoreA: number, b: HostLoad, scoreB: number): boolean {
  if (scoreA !== scoreB) return scoreA < scoreB;
  if (scoreA === Number.POSITIVE_INFINITY) {
    // No capacity anywhere: the least loaded in absolute terms.
    const la = a.sessions + a.pending + a.inflight + a.queue;
    const lb = b.sessions + b.pending + b.inflight + b.queue;
    if (la !== lb) return la < lb;
  }
  const fa = freeSlots(a);
  const fb = freeSlots(b);
  if (fa !== fb) return fa > fb;
  return a.hostId < b.hostId;
}
