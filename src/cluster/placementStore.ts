/**
 * A front end's access to the session placements in the pool's JetStream KV bucket, with a
 * bounded cache. The bucket is the authority; the cache saves a KV round trip per request, and
 * is corrected when it is wrong: the agent refuses a request under a placement that is no longer
 * current (`stale`, see ledger.ts) and the front end reads the bucket again.
 *
 * Every change is a compare-and-set, so front ends racing on the same session agree:
 * - create: only if the key does not exist (or was deleted) — the loser reads the winner's;
 * - remove: only if the key is still at the revision the caller saw — whoever removes a
 *   placement on a lost host is the one that reports the loss (once).
 */
import type { KV } from '@nats-io/kv';
import { decodePlacement, encodePlacement } from './envelope.js';
import { sessionKey } from './subjects.js';

export interface SessionPlacement {
  host: string;
  inc: string;
  /** The KV revision of this placement. */
  rev: number;
}

/** JetStream's "wrong last sequence": the key changed since the revision a compare-and-set named. */
const WRONG_SEQUENCE = new Set([10071, 10164]);

export function isConflict(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' && WRONG_SEQUENCE.has(code);
}

export class PlacementStore {
  private readonly cache = new Map<string, SessionPlacement>();
  private readonly reading = new Map<string, Promise<SessionPlacement | null>>();

  constructor(
    private readonly kv: KV,
    private readonly limit = 100_000,
  ) {}

  cached(sessionId: string): SessionPlacement | undefined {
    return this.cache.get(sessionId);
  }

  forget(sessionId: string): void {
    this.cache.delete(sessionId);
  }

  /** The session's placement as the bucket has it now (null: none), cached. Concurrent reads share one round trip. */
  read(sessionId: string): Promise<SessionPlacement | null> {
    let pending = this.reading.get(sessionId);
    if (!pending) {
      pending = this.kv.get(sessionKey(sessionId)).then((entry) => {
        if (!entry || entry.operation !== 'PUT') {
          this.cache.delete(sessionId);
          return null;
        }
        const value = decodePlacement(entry.value);
        const placement = { host: value.host, inc: value.inc, rev: entry.revision };
        this.remember(sessionId, placement);
        return placement;
      });
      const settled = () => this.reading.delete(sessionId);
      pending.then(settled, settled);
      this.reading.set(sessionId, pending);
    }
    return pending;
  }

  /** Place the session on `host` if it has no placement; null if another front end placed it first. */
  async create(sessionId: string, host: string, inc: string): Promise<SessionPlacement | null> {
    try {
      const rev = await this.kv.create(sessionKey(sessionId), encodePlacement({ host, inc }));
      const placement = { host, inc, rev };
      this.remember(sessionId, placement);
      return placement;
    } catch (error) {
      if (isConflict(error)) {
        this.cache.delete(sessionId);
        return null;
      }
      throw error;
    }
  }

  /** Delete the placement if it is still at `rev`: true if this call deleted it. */
  async remove(sessionId: string, rev: number): Promise<boolean> {
    this.cache.delete(sessionId);
    try {
      await this.kv.delete(sessionKey(sessionId), { previousSeq: rev });
      return true;
    } catch (error) {
      if (isConflict(error)) return false;
      throw error;
    }
  }

  private remember(sessionId: string, placement: SessionPlacement): void {
    this.cache.delete(sessionId);
    this.cache.set(sessionId, placement);
    if (this.cache.size > this.limit) this.cache.delete(this.cache.keys().next().value as string);
  }
}
