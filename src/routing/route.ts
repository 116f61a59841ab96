/**
 * The routing rule, as one pure function over live state: which worker a request goes to now,
 * or that it must wait, or that it cannot be served because the worker holding its session's
 * state is gone. The local dispatcher calls it on every request; it reads, never changes.
 */
export type Affinity = 'prefer' | 'strict' | 'none';

/** A worker as routing sees it. */
export interface Candidate {
  readonly id: string;
  readonly overflow: boolean;
  /** It can take a request now (up, and a free slot). */
  readonly free: boolean;
  /** It exists and will serve again (not down, not retiring). */
  readonly alive: boolean;
}

/** Where a session's state is, as the session registry knows it. */
export interface Placement {
  home: string | null;
  lost: { workerId: string; reason: string } | null;
}

export type Route<C extends Candidate> = C | 'wait' | { lost: { workerId: string; reason: string } };

export function route<C extends Candidate>(candidates: readonly C[], affinity: Affinity, placement: Placement | undefined, target: string | null): Route<C> {
  if (target !== null) {
    const worker = candidates.find((c) => c.id === target);
    if (!worker || !worker.alive) return { lost: { workerId: target, reason: 'removed' } };
    return worker.free ? worker : 'wait';
  }
  const home = placement?.home ?? null;
  if (affinity === 'strict' && placement?.lost) return { lost: placement.lost };
  if (affinity === 'strict' && home !== null) {
    const worker = candidates.find((c) => c.id === home);
    return worker?.free ? worker : 'wait';
  }
  if (affinity === 'prefer' && home !== null) {
    const worker = candidates.find((c) => c.id === home);
    if (worker?.free) return worker;
  }
  // Permanent workers first, so that overflow workers go idle and can be retired.
  let overflow: C | undefined;
  for (const c of candidates) {
    if (!c.free) continue;
    if (!c.overflow) return c;
    overflow ??= c;
  }
  return overflow ?? 'wait';
}

/** A waiting request that only one worker may serve does not justify starting another. */
export function isPinned(affinity: Affinity, placement: Placement | undefined, target: string | null): boolean {
  return target !== null || (affinity === 'strict' && !!placement?.home);
}
