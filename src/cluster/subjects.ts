/**
 * Every NATS name a cluster pool uses, in one place (docs/CLUSTER.md "Subjects"). A pool name
 * and a host id are single subject tokens: `[A-Za-z0-9_-]+`.
 *
 *   pyvisor.<pool>.req                 anonymous requests; agents subscribe in the queue group
 *                                      `pyvisor.<pool>.agents`, so NATS hands each to one of them
 *   pyvisor.<pool>.host.<host>.req     requests for a session placed on that host
 *   pyvisor.<pool>.host.<host>.ctl     control for that host: cancel, stream credit, end session
 *   pyvisor.<pool>.hb                  heartbeats (and leaving/gone notices) of every agent
 *   pyvisor.<pool>.hello               a front end that starts asks every agent for a heartbeat now
 *   pyvisor.<pool>.fe.<fe>.<token>     a front end's replies: one subject per request attempt
 *
 * Session placements live in the JetStream KV bucket `pyvisor-<pool>-sessions`, one key per
 * session (`sessionKey`).
 */

/** What a pool name and a host id may be made of (one NATS subject token, one KV bucket name part). */
export const NAME_PATTERN = /^[A-Za-z0-9_-]+$/;

export interface Subjects {
  readonly anonymous: string;
  readonly queue: string;
  readonly heartbeat: string;
  readonly hello: string;
  hostRequests(hostId: string): string;
  hostControl(hostId: string): string;
  /** The prefix of one front end's reply subjects (subscribe to `${inbox}.>`). */
  inbox(frontEndId: string): string;
}

export function subjects(pool: string): Subjects {
  const base = `pyvisor.${pool}`;
  return {
    anonymous: `${base}.req`,
    queue: `${base}.agents`,
    heartbeat: `${base}.hb`,
    hello: `${base}.hello`,
    hostRequests: (hostId) => `${base}.host.${hostId}.req`,
    hostControl: (hostId) => `${base}.host.${hostId}.ctl`,
    inbox: (frontEndId) => `${base}.fe.${frontEndId}`,
  };
}

/** The KV bucket's settings (whoever comes first creates it; an existing bucket is used as it is). */
export const BUCKET_OPTIONS = { history: 1 } as const;

/** The KV bucket holding the pool's session placements. */
export function bucketName(pool: string): string {
  return `pyvisor-${pool}-sessions`;
}

// A KV key is made of `[-/_=.A-Za-z0-9]`, its dots separating tokens. A session id that is one
// plain token is kept readable (`s.<id>`); any other is base64url-encoded (`b.<base64url>`), so
// two session ids never share a key.
const PLAIN_ID = /^[A-Za-z0-9_=-]{1,200}$/;

/** The KV key of a session's placement. */
export function sessionKey(sessionId: string): string {
  return PLAIN_ID.test(sessionId) ? `s.${sessionId}` : `b.${Buffer.from(sessionId, 'utf8').toString('base64url')}`;
}

/** The session id a key stands for (the inverse of sessionKey); null for a key that is not one. */
export function sessionOfKey(key: string): string | null {
  if (key.startsWith('s.')) return key.slice(2);
  if (key.startsWith('b.')) return Buffer.from(key.slice(2), 'base64url').toString('utf8');
  return null;
}
