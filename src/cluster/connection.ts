/**
 * One NATS connection as both sides of the cluster use it: reconnect forever (a restarted
 * nats-server is found again without restarting anything), quickly (250 ms between attempts),
 * ping often enough to notice a half-open connection within seconds, and report what happens
 * to it as plain events. A first connection that fails rejects with HostUnavailableError
 * saying which servers were tried, the NATS error as its cause.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { HostUnavailableError } from '../errors.js';

export type ConnectionEvent = 'disconnect' | 'reconnect';

export interface Connected {
  nc: NatsConnection;
  /** The server's largest message, in bytes (max_payload). */
  maxPayload(): number;
}

/** NATS's default max_payload, for the moment before the server has said its own. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

export async function openConnection(pool: string, servers: string[], name: string, onEvent: (event: ConnectionEvent, server: string) => void): Promise<Connected> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers,
      name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      reconnectJitter: 100,
      pingInterval: 5_000,
      maxPingOut: 3,
      timeout: 5_000,
    });
  } catch (error) {
    throw new HostUnavailableError(pool, `cannot connect to NATS at ${servers.join(', ')}: ${(error as Error)?.message ?? String(error)}`, { cause: error });
  }
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') onEvent('disconnect', status.server);
      else if (status.type === 'reconnect') onEvent('reconnect', status.server);
    }
  })().catch(() => {});
  return { nc, maxPayload: () => nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD };
}

/** A NATS message's status code (503: nobody subscribes to the subject it was sent to), or 0. */
export function statusCode(msg: { headers?: { code: number } | undefined; data: Uint8Array }): number {
  return msg.data.length === 0 && msg.headers ? msg.headers.code : 0;
}

/** A promise that settles with `p`, or resolves after `ms` anyway (NATS calls while disconnected). */
export function bounded<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    timer.unref?.();
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      () => {
        clearTimeout(timer);
        resolve(undefined);
      },
    );
  });
}
