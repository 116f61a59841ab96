/**
 * The cluster's own options (docs/CLUSTER.md "Options"), validated before anything connects:
 * an unknown key or a bad value throws InvalidOptionError naming it. An agent's other keys are
 * the local pool's (src/options.ts), which createPool validates the same way.
 */
import os from 'node:os';
import { InvalidOptionError } from '../errors.js';
import type { PoolOptions } from '../options.js';
import { NAME_PATTERN } from './subjects.js';

export interface AgentOptions extends PoolOptions {
  /** NATS URLs, e.g. 'nats://127.0.0.1:4222' (several: the servers of one NATS cluster). */
  servers: string | string[];
  /** The cluster pool's name: [A-Za-z0-9_-]+. */
  pool: string;
  /** This host's id in the pool; default `${os.hostname()}-${process.pid}` (made of [A-Za-z0-9_-]). */
  hostId?: string;
  /** ms between heartbeats; default 1000. */
  heartbeatInterval?: number;
}

export interface ClusterPoolOptions {
  servers: string | string[];
  pool: string;
  /** ms a request may wait for a live host (then HostUnavailableError); default 5000. */
  checkoutTimeout?: number;
  /** ms a command may run (per-call `timeout` overrides); default 30000. */
  requestTimeout?: number;
  /** ms without a heartbeat after which a host is dropped; default 3000. */
  hostTimeout?: number;
}

export interface ResolvedClusterOptions {
  servers: string[];
  pool: string;
  checkoutTimeout: number;
  requestTimeout: number;
  hostTimeout: number;
}

export interface ResolvedAgentOptions {
  servers: string[];
  pool: string;
  hostId: string;
  heartbeatInterval: number;
  /** What is left: the local pool's options. */
  poolOptions: PoolOptions;
}

const MAX_MS = 2 ** 31 - 1;

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function checkServers(value: unknown): string[] {
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.length === 0 || !list.every((s) => typeof s === 'string' && s.trim().length > 0)) {
    throw new InvalidOptionError('servers', `must be a NATS URL or a non-empty array of them (e.g. 'nats://127.0.0.1:4222'), got ${describe(value)}`);
  }
  return list.map((s: string) => s.trim());
}

function checkName(option: string, value: unknown): string {
  if (typeof value !== 'string' || !NAME_PATTERN.test(value)) {
    throw new InvalidOptionError(option, `must be a non-empty string of letters, digits, '_' and '-', got ${describe(value)}`);
  }
  return value;
}

function checkMs(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > MAX_MS) {
    throw new InvalidOptionError(option, `must be a number of milliseconds > 0 and <= ${MAX_MS}, got ${describe(value)}`);
  }
  return value;
}

function checkObject(value: unknown): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new InvalidOptionError('options', `must be an object, got ${describe(value)}`);
  return value as Record<string, unknown>;
}

const CLUSTER_KEYS = ['servers', 'pool', 'checkoutTimeout', 'requestTimeout', 'hostTimeout'];

export function resolveClusterOptions(options: ClusterPoolOptions): ResolvedClusterOptions {
  const o = checkObject(options);
  for (const key of Object.keys(o)) {
    if (!CLUSTER_KEYS.includes(key)) {
      const near = CLUSTER_KEYS.find((k) => k.toLowerCase() === key.toLowerCase());
      throw new InvalidOptionError(key, `unknown cluster pool option${near ? ` (did you mean "${near}"?)` : ''}; known: ${CLUSTER_KEYS.join(', ')}`);
    }
  }
  return {
    servers: checkServers(o.servers),
    pool: checkName('pool', o.pool),
    checkoutTimeout: checkMs('checkoutTimeout', o.checkoutTimeout, 5_000),
    requestTimeout: checkMs('requestTimeout', o.requestTimeout, 30_000),
    hostTimeout: checkMs('hostTimeout', o.hostTimeout, 3_000),
  };
}

/** The default host id: this machine's name and the process id, reduced to [A-Za-z0-9_-]. */
export function defaultHostId(): string {
  const name = os.hostname().replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '') || 'host';
  return `${name}-${process.pid}`;
}

export function resolveAgentOptions(options: AgentOptions): ResolvedAgentOptions {
  const o = checkObject(options);
  const { servers, pool, hostId, heartbeatInterval, ...poolOptions } = o;
  return {
    servers: checkServers(servers),
    pool: checkName('pool', pool),
    hostId: hostId === undefined ? defaultHostId() : checkName('hostId', hostId),
    heartbeatInterval: checkMs('heartbeatInterval', heartbeatInterval, 1_000),
    poolOptions: poolOptions as PoolOptions,
  };
}
