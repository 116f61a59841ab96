/**
 * A front end's view of the hosts serving a pool, built from their heartbeats, on an injected
 * clock (`now`, ms on any monotonic scale). No I/O and no timers: the cluster pool feeds it
 * heartbeats, calls `sweep()` periodically, and acts on the events it returns.
 *
 * - A heartbeat from an unknown host (or a new incarnation of a known one) makes it `up`.
 * - `state: 'leaving'` (an agent draining) takes it out of placement at once; its requests in
 *   flight finish; `state: 'gone'` (drained) removes it.
 * - A host that has not been heard from for more than `hostTimeout` ms is dropped (`sweep`).
 * - While the front end itself is cut off from NATS (`freeze`), nobody is dropped: silence then
 *   says nothing about the hosts. `thaw` (reconnected) gives every host a fresh `hostTimeout`.
 *
 * `status(host, inc)` judges a placement: `live` (that incarnation is up), `lost` (it was dropped,
 * is leaving or gone, or the host runs another incarnation now) or `unknown` (not heard of yet,
 * and this front end has not listened for `hostTimeout` since it started or reconnected: wait).
 */
import type { Heartbeat } from './envelope.js';
import type { HostLoad } from './placement.js';
import type { PoolStats, WorkerInfo } from '../core/poolStats.js';

export interface HostView extends HostLoad {
  readonly hostId: string;
  inc: string;
  state: 'up' | 'leaving';
  capacity: number;
  inflight: number;
  queue: number;
  workers: number;
  sessions: number;
  pending: number;
  /** False once a request sent to it found nobody subscribed, until its next heartbeat. */
  reachable: boolean;
  /** When its last heartbeat arrived, on the membership's clock. */
  lastSeen: number;
  stats: PoolStats;
  rows: WorkerInfo[];
}

export type DownReason = 'timeout' | 'left' | 'restarted';

export type MembershipEvent =
  | { type: 'up'; hostId: string; inc: string }
  | { type: 'leaving'; hostId: string; inc: string }
  | { type: 'down'; hostId: string; inc: string; reason: DownReason };

export type PlacementStatus = 'live' | 'unknown' | 'lost';

/** How many finished incarnations are remembered. */
const DEAD_LIMIT = 10_000;

export class Membership {
  private readonly hosts = new Map<string, HostView>();
  /** Incarnations known to be over (`host/inc`): gone, replaced by a newer one, or refused by their host. */
  private readonly dead = new Set<string>();
  private listeningSince: number;
  private frozen = false;

  constructor(
    readonly hostTimeout: number,
    private readonly now: () => number,
  ) {
    this.listeningSince = now();
  }

  /** A heartbeat arrived. */
  heartbeat(hb: Heartbeat): MembershipEvent[] {
    const events: MembershipEvent[] = [];
    const known = this.hosts.get(hb.host);
    if (this.dead.has(key(hb.host, hb.inc))) return events; // a late message from a finished incarnation
    if (known && known.inc !== hb.inc) {
      this.hosts.delete(hb.host);
      this.bury(hb.host, known.inc);
      events.push({ type: 'down', hostId: hb.host, inc: known.inc, reason: 'restarted' });
    }
    if (hb.state === 'gone') {
      this.bury(hb.host, hb.inc);
      if (known && known.inc === hb.inc) {
        this.hosts.delete(hb.host);
        events.push({ type: 'down', hostId: hb.host, inc: hb.inc, reason: 'left' });
      }
      return events;
    }
    const current = known && known.inc === hb.inc ? known : undefined;
    const view: HostView = {
      hostId: hb.host,
      inc: hb.inc,
      // A leaving host never comes back as up under the same incarnation.
      state: current?.state === 'leaving' ? 'leaving' : hb.state,
      capacity: hb.capacity,
      inflight: hb.inflight,
      queue: hb.queue,
      workers: hb.workers,
      sessions: hb.sessions,
      pending: 0,
      reachable: true,
      lastSeen: this.now(),
      stats: hb.stats,
      rows: hb.rows,
    };
    this.hosts.set(hb.host, view);
    if (!current) events.push({ type: 'up', hostId: hb.host, inc: hb.inc });
    if (view.state === 'leaving' && current?.state !== 'leaving') events.push({ type: 'leaving', hostId: hb.host, inc: hb.inc });
    return events;
  }

  /** Drop the hosts not heard from for more than hostTimeout. */
  sweep(): MembershipEvent[] {
    if (this.frozen) return [];
    const now = this.now();
    const events: MembershipEvent[] = [];
    for (const host of [...this.hosts.values()]) {
      if (now - host.lastSeen > this.hostTimeout) {
        this.hosts.delete(host.hostId);
        events.push({ type: 'down', hostId: host.hostId, inc: host.inc, reason: 'timeout' });
      }
    }
    return events;
  }

  /** This front end lost its NATS connection: silence from the hosts means nothing until thaw(). */
  freeze(): void {
    this.frozen = true;
  }

  /** Reconnected: every host gets a fresh hostTimeout to be heard from again. */
  thaw(): void {
    this.frozen = false;
    const now = this.now();
    this.listeningSince = now;
    for (const host of this.hosts.values()) host.lastSeen = now;
  }

  get isFrozen(): boolean {
    return this.frozen;
  }

  /** The host refused a placement naming incarnation `inc` (it runs another one): that one is over. */
  markDead(hostId: string, inc: string): MembershipEvent[] {
    this.bury(hostId, inc);
    const known = this.hosts.get(hostId);
    if (!known || known.inc !== inc) return [];
    this.hosts.delete(hostId);
    return [{ type: 'down', hostId, inc, reason: 'restarted' }];
  }

  /** Mark a host leaving on its own word (it answered a request with `leaving`). */
  markLeaving(hostId: string, inc: string): MembershipEvent[] {
    const known = this.hosts.get(hostId);
    if (!known || known.inc !== inc || known.state === 'leaving') return [];
    known.state = 'leaving';
    return [{ type: 'leaving', hostId, inc }];
  }

  /** Whether a session placed on `hostId` (incarnation `inc`) can be served there. */
  status(hostId: string, inc: string): PlacementStatus {
    const known = this.hosts.get(hostId);
    if (known && known.inc === inc) return known.state === 'up' ? 'live' : 'lost';
    if (known || this.dead.has(key(hostId, inc))) return 'lost';
    if (this.frozen || this.now() - this.listeningSince < this.hostTimeout) return 'unknown';
    return 'lost';
  }

  /** A host and its last report. */
  get(hostId: string): HostView | undefined {
    return this.hosts.get(hostId);
  }

  /** Hosts taking new work: up, not leaving, and not found unreachable since their last heartbeat. */
  eligible(): HostView[] {
    return [...this.hosts.values()].filter((h) => h.state === 'up' && h.reachable);
  }

  /** Hosts up (not leaving), reachable or not: what `whenHosts` counts. */
  up(): HostView[] {
    return [...this.hosts.values()].filter((h) => h.state === 'up');
  }

  /** Every host heard from and not dropped (up or leaving). */
  all(): HostView[] {
    return [...this.hosts.values()];
  }

  /** This front end placed a session on the host (`delta` 1), or gave up doing so (-1); counted until its next heartbeat. */
  placed(hostId: string, delta: 1 | -1 = 1): void {
    const host = this.hosts.get(hostId);
    if (host) host.pending = Math.max(0, host.pending + delta);
  }

  /**
   * A request sent to the host found nobody subscribed (its connection is gone): it takes no new
   * session until its next heartbeat says it is back. Its placements are not judged by this.
   */
  unreachable(hostId: string, inc: string): void {
    const host = this.hosts.get(hostId);
    if (host && host.inc === inc) host.reachable = false;
  }

  private bury(hostId: string, inc: string): void {
    this.dead.add(key(hostId, inc));
    if (this.dead.size > DEAD_LIMIT) this.dead.delete(this.dead.values().next().value as string);
  }
}

function key(hostId: string, inc: string): string {
  return `${hostId}/${inc}`;
}
