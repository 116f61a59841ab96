/**
 * What the page receives on its /events stream (Server-Sent Events, JSON data): `hello` once
 * per connection (and again after the server dropped messages for a slow page), `batch` every
 * flush and `snap` every snapshot. These mirror what src/inspector/server.ts sends (hello(),
 * takeSnapshot(), flush()); the machine description is typed by the module that produces it.
 * Everything here is trusted only as far as JSON.parse goes: the page stays defensive.
 */
import type { MachineGraph } from '../../machineGraph.js';

export type { GraphState, GraphTransition, MachineGraph } from '../../machineGraph.js';

export type { EventSummary, LogEntry, LogKind } from '../../stream.js';
export type { PoolStats, WorkerInfo } from '../../../core/poolStats.js';
import type { PoolStats, WorkerInfo } from '../../../core/poolStats.js';
import type { EventSummary, LogEntry } from '../../stream.js';

/** One chart point per snapshot (rates per second, latencies in ms). */
export interface ChartPoint {
  t: number;
  rps: number;
  errors: number;
  p50: number | null;
  p99: number | null;
  queue: number;
  busy: number;
}

export type ChartKey = Exclude<keyof ChartPoint, 't'>;

export interface SessionRow {
  id: string;
  workers: string[];
  lastWorker: string | null;
  active: number;
  lost: string | null;
}

export interface SessionPoolNode {
  id: 'sessionPool';
  role: string;
  status: string;
  state: string;
  queue: number;
  sessions: number;
  affinity: string | null;
}

export interface SupervisedChild {
  id: string;
  restart: string;
  status: string;
  pid: number | null;
  state: string | null;
}

export interface WorkerSupervisorNode {
  id: 'workers';
  role: string;
  status: string;
  state: string;
  strategy: string | null;
  maxRestarts: number | null;
  periodMs: number | null;
  recentRestarts: number;
  maxOverflow: number | null;
  children: SupervisedChild[];
}

export interface MonitorNode {
  id: 'monitor';
  role: string;
  status: string;
  state: string;
  intervalMs: number | null;
  ticks: number;
}

export type TreeChild = SessionPoolNode | WorkerSupervisorNode | MonitorNode;

/** The supervision tree: the pool and its three children. */
export interface PoolTree {
  id: string;
  role: string;
  strategy: string;
  status: string;
  state: string;
  children: TreeChild[];
  /** A cluster pool's hosts (role 'ClusterPool'), each with its workers. */
  hosts?: ClusterHostNode[];
}

export interface ClusterHostNode {
  hostId: string;
  capacity: number;
  inflight: number;
  queue: number;
  lastSeen: number;
  workers: Array<{ id: string; state: string; pid: number | null; overflow: boolean }>;
}

export interface Snap {
  t: number;
  closed: boolean;
  stats: PoolStats | null;
  workers: WorkerInfo[];
  /** Each worker's full state path. */
  paths: Record<string, string>;
  tree: PoolTree | null;
  sessions: SessionRow[];
  sessionCount: number;
  point?: ChartPoint;
}

export interface PoolOptionsSummary {
  poolSize: number;
  maxOverflow: number;
  strategy: string;
  maxRestarts: number;
  maxSeconds: number;
  healthCheckInterval: number;
  affinity: string;
  /** Requests in flight per worker (workerConcurrency). */
  workerConcurrency: number;
  /** A cluster pool's page: hosts → workers, no supervision tree of its own. */
  cluster?: boolean;
}

export interface Hello {
  v: number;
  t: number;
  startedAt: number;
  sanitize: boolean;
  machine: MachineGraph;
  options: PoolOptionsSummary;
  log: LogEntry[];
  chart: ChartPoint[];
  snap: Snap;
  /** Messages dropped while the page was too slow (the reason for this `hello`). */
  dropped?: number;
}

export interface Batch {
  t: number;
  transitions: LogEntry[];
  routineDropped: number;
  events: EventSummary[];
  eventsDropped: number;
  counts: Record<string, number>;
}
