/**
 * The agent's record of which placement of each session it serves: a pure, bounded map from
 * session id to the KV revision of the placement whose state its pool holds. It keeps a
 * session's state from being served under two placements:
 *
 * - a request under a newer placement (a higher revision: the session was ended, or its host was
 *   declared lost, and it was placed afresh — here again) first resets the session's local state
 *   ('reset'): whatever the pool holds belongs to an earlier life of the session;
 * - a request under an older placement, or under one that was ended here, comes from a front end
 *   whose cached placement is stale ('stale'): the front end re-reads the bucket and retries,
 *   marking the request `confirmed` if the bucket still says that revision is current (a bucket
 *   that was wiped and started its revisions again), which is then adopted with a reset.
 *
 * Bounded: past `limit` sessions the least recently used record is forgotten (a forgotten
 * session's next request is adopted as it comes).
 */

export type LedgerVerdict = 'serve' | 'reset' | 'stale';

interface Entry {
  rev: number;
  /** Ended here (endSession, or the local pool expired it): its revision is no longer served. */
  ended: boolean;
}

export class SessionLedger {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly limit = 100_000) {}

  get size(): number {
    return this.entries.size;
  }

  /** What to do with a request of `session` under placement revision `rev`; records what it adopts. */
  check(session: string, rev: number, confirmed: boolean): LedgerVerdict {
    const entry = this.entries.get(session);
    if (entry === undefined) {
      this.set(session, { rev, ended: false });
      return 'serve';
    }
    if (entry.ended) {
      if (rev <= entry.rev && !confirmed) return 'stale';
      this.set(session, { rev, ended: false });
      return 'serve'; // its state was cleaned when it ended
    }
    if (rev === entry.rev) {
      this.touch(session, entry);
      return 'serve';
    }
    if (rev < entry.rev && !confirmed) return 'stale';
    this.set(session, { rev, ended: false });
    return 'reset';
  }

  /** The session ended here under revision `rev` (or its local state expired): requests under it are stale. */
  end(session: string, rev: number): void {
    const entry = this.entries.get(session);
    this.set(session, { rev: Math.max(rev, entry?.rev ?? 0), ended: true });
  }

  /** The live placement revision this host serves the session under, or null. */
  revision(session: string): number | null {
    const entry = this.entries.get(session);
    return entry && !entry.ended ? entry.rev : null;
  }

  private touch(session: string, entry: Entry): void {
    this.entries.delete(session);
    this.entries.set(session, entry);
  }

  private set(session: string, entry: Entry): void {
    this.entries.delete(session);
    this.entries.set(session, entry);
    if (this.entries.size > this.limit) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }
}
