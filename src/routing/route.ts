/**
 * The routing rule, as one pure function over live state: which worker a request goes to now,
 * or that it must wait, or that it cannot be served because the worker holding its session's
 * state is gone. The local dispatcher calls it on every request; it reads, never changes.
 *
 *   'auto'    a session whose state a worker holds is pinned to that worker (it waits for it);
 *             one without state goes to any free worker, the one holding the fewest pinned
 *             sessions first. When the holder goes away, the next request hears of it once.
 *   'strict'  a session is pinned to the worker that served it last, state or not.
 *   'prefer'  the worker that served it last if it is free, else any (the caller restores
 *             state itself, as PythonPool does).
 *   'none'    sessions do not steer routing.
 *
 * Among free workers, permanent ones come first (overflow workers go idle and can be retired),
 * and with several requests per worker (`workerConcurrency`) the least loaded one.
 */
export type Affinity = 'auto' | 'prefer' | 'strict' | 'none';

export const AFFINITIES: readonly Affinity[] = ['auto', 'prefer', 'strict', 'none'];

/** A worker as routing sees it. */
export interface Candidate {
  readonly id: string;
  readonly overflow: boolean;
  /** It can take a request now (up, and a free slot). */
  readonly free: boolean;
  /** It exists and will serve again (not down, not retiring). */
  readonly alive: boolean;
  /** Sessions whose state it holds. */
  readonly pinned: number;
  /** Requests in flight on it. */
  readonly load: number;
}

/** Where a session's state is, as the session registry knows it. */
export interface Placement {
  home: string | null;
  /** Its home holds state for it. */
  held: boolean;
  lost: { workerId: string; reason: string } | null;
}

export type Route<C extends Candidate> = C | 'wait' | { lost: { workerId: string; reason: string } };

/** The worker the session must run on, if it is pinned under `affinity`. */
function pin(affinity: Affinity, placement: Placement | undefined): string | null {
  if (!placement?.home) return null;
  if (affinity === 'strict') return placement.home;
  if (affinity === 'auto' && placement.held) return placement.home;
  return null;
}

export function route<C extends Candidate>(candidates: readonly C[], affinity: Affinity, placement: Placement | undefined, target: string | null): Route<C> {
  if (target !== null) {
    const worker = candidates.find((c) => c.id === target);
    if (!worker || !worker.alive) return { lost: { workerId: target, reason: 'removed' } };
    return worker.free ? worker : 'wait';
  }
  if ((affinity === 'strict' || affinity === 'auto') && placement?.lost) return { lost: placement.lost };
  const pinned = pin(affinity, placement);
  if (pinned !== null) {
    const worker = candidates.find((c) => c.id === pinned);
    return worker?.free ? worker : 'wait';
  }
  if (affinity === 'prefer' && placement?.home) {
    const worker = candidates.find((c) => c.id === placement.home);
    if (worker?.free) return worker;
  }
  // A session's first placement under 'auto' balances state: the fewest pinned sessions first.
  if (affinity === 'auto' && placement !== undefined) return leastPinned(candidates) ?? 'wait';
  return leastLoaded(candidates) ?? 'wait';
}

/** A free permanent worker before any overflow one; within each, the fewest requests in flight. */
function leastLoaded<C extends Candidate>(candidates: readonly C[]): C | undefined {
  let best: C | undefined;
  for (const c of candidates) {
    if (!c.free) continue;
    if (!c.overflow && c.load === 0) return c;
    if (!best || (best.overflow && !c.overflow) || (best.overflow === c.overflow && c.load < best.load)) best = c;
  }
  return best;
}

function leastPinned<C extends Candidate>(candidates: readonly C[]): C | undefined {
  let best: C | undefined;
  for (const c of candidates) {
    if (!c.free) continue;
    if (!best || c.pinned < best.pinned || (c.pinned === best.pinned && ((best.overflow && !c.overflow) || (best.overflow === c.overflow && c.load < best.load)))) best = c;
  }
  return best;
}

/** A waiting request that only one worker may serve does not justify starting another. */
export function isPinned(affinity: Affinity, placement: Placement | undefined, target: string | null): boolean {
  return target !== null || pin(affinity, placement) !== null;
}
