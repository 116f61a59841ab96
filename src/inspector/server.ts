/**
 * The local inspector: one self-contained page and a Server-Sent Events stream that shows a
 * running pool live — its supervision tree, every worker's state machine, sessions, charts
 * and a log of transitions and restarts.
 *
 * Data path: pool.observeInspection() (every XState inspection event of the pool's actors)
 * → reduced here to small records (worker transitions, event summaries, per-actor counts) →
 * batched and flushed every FLUSH_MS; plus a snapshot of stats()/workers()/the tree/sessions
 * every SNAPSHOT_MS. The inspection listener only appends to bounded arrays, and a client
 * whose socket buffer is full is skipped (and resynchronised later), so a slow or stalled
 * browser can never slow the pool down.
 *
 * Security: binds 127.0.0.1 by default and then only answers requests whose Host header
 * names a loopback address (no DNS rebinding). Another interface needs `allowRemote: true`
 * and a `token`, checked on every request. Event payloads (EXECUTE args, results, errors,
 * session state) are reduced to types, ids and command names unless `sanitize: false`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { hostname } from 'node:os';
import type { AddressInfo } from 'node:net';
import type { AnyActorRef, InspectionEvent } from 'xstate';
import { InvalidOptionError } from '../errors.js';
import { workerStateName } from '../../machines/workerStates.js';
import type { Pool, PoolStats, RequestObservation, WorkerInfo } from '../local/pool.js';
import type { ClusterPool } from '../cluster/clusterPool.js';
import { clusterOptions, clusterTree, clusterWorkers, isClusterPool } from './clusterView.js';
import type { EventSummary, LogEntry, LogKind } from './stream.js';
import { UP_STATES } from '../../machines/workerStates.js';
import { workerMachine } from '../../machines/worker.js';
import { describeMachine, type MachineGraph } from './machineGraph.js';
import { renderPage } from './page/index.js';

export interface InspectorOptions {
  /** TCP port; 0 (default) = any free port. */
  port?: number;
  /** Interface to bind; default 127.0.0.1. A non-loopback host needs `allowRemote: true`. */
  host?: string;
  /** Required with `allowRemote`; when set, every request must carry it (`?token=` or `Authorization: Bearer`). */
  token?: string;
  /** Reduce event payloads to types, ids and command names (default true). */
  sanitize?: boolean;
  /** Allow binding a non-loopback interface (requires `token`). */
  allowRemote?: boolean;
}

export interface InspectorServer {
  /** Where the page is, with the token if there is one. */
  url: string;
  /** End every stream, unsubscribe from the pool, close the server. */
  close(): Promise<void>;
}

const FLUSH_MS = 100;
const SNAPSHOT_MS = 1000;
/** Chart points kept for a page that connects later (one per snapshot). */
const CHART_POINTS = 180;
/** Log entries (lifecycle transitions, restarts, escalations) replayed to a new page. */
const LOG_KEEP = 300;
/** Per flush: transitions sent one by one; beyond this, routine (healthy⇄busy) ones are only counted. */
const MAX_TRANSITIONS = 150;
/** Per flush: individual event summaries sent (the rest are only counted per actor). */
const MAX_EVENTS = 80;
/** A client whose socket holds more than this is skipped until it drains. */
const MAX_BUFFERED_BYTES = 512 * 1024;
const MAX_SESSIONS = 200;
const MAX_LATENCY_SAMPLES = 20_000;
/** States a worker passes through in service: their transitions are routine, not lifecycle. */
const ROUTINE = UP_STATES;
/** Event fields shown even when sanitizing: identifiers and names, never payloads. */
const SAFE_FIELDS = ['cmd', 'ticket', 'id', 'ok', 'workerId', 'sessionId', 'session', 'signal', 'pid', 'generation', 'timeoutMs', 'overflow', 'n', 'delay'];

type Kind = LogKind;

interface Client {
  res: ServerResponse;
  /** Messages were dropped while its buffer was full: send a full `hello` before the next one. */
  stale: boolean;
  dropped: number;
}

function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || /^::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function hostOf(header: string | undefined): string | null {
  if (!header) return null;
  const m = /^(\[[^\]]+\]|[^:]+)(?::\d+)?$/.exec(header.trim());
  return m ? m[1]!.toLowerCase() : null;
}

/** `{live: {restarting: 'awaitReady'}}` → `live.restarting.awaitReady`; parallel regions are cut at their parent. */
function valuePath(value: unknown): string {
  if (typeof value === 'string') return value;
  if (!value || typeof value !== 'object') return String(value);
  const keys = Object.keys(value);
  if (keys.length !== 1) return '';
  const rest = valuePath((value as Record<string, unknown>)[keys[0]!]);
  return rest ? `${keys[0]}.${rest}` : keys[0]!;
}

/** A JSON-safe, bounded copy of a value (only used with sanitize: false). */
function jsonSafe(value: unknown, labelOf: (ref: object) => string, depth = 0): unknown {
  if (value === null || value === undefined) return value ?? null;
  switch (typeof value) {
    case 'string':
      return value.length > 300 ? `${value.slice(0, 300)}… (${value.length} chars)` : value;
    case 'number':
    case 'boolean':
      return value;
    case 'bigint':
      return `${value}n`;
    case 'function':
      return `[function ${value.name || 'anonymous'}]`;
    case 'symbol':
      return value.toString();
  }
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `<${value.byteLength} bytes>`;
  if (value instanceof Error) return { error: value.name, message: jsonSafe(value.message, labelOf, depth + 1), code: (value as { code?: unknown }).code ?? null };
  const ref = value as { sessionId?: unknown; send?: unknown };
  if (typeof ref.sessionId === 'string' && typeof ref.send === 'function') return `[actor ${labelOf(value as object)}]`;
  if (depth >= 4) return '…';
  if (Array.isArray(value)) {
    const out = value.slice(0, 20).map((v) => jsonSafe(v, labelOf, depth + 1));
    if (value.length > 20) out.push(`… ${value.length - 20} more`);
    return out;
  }
  const out: Record<string, unknown> = {};
  let n = 0;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (n++ >= 30) {
      out['…'] = 'more keys';
      break;
    }
    out[k] = jsonSafe(v, labelOf, depth + 1);
  }
  return out;
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * Compares fixed-length digests: comparing the tokens themselves would return early on a
 * length mismatch, and the time that takes tells an attacker the token's length.
 */
function tokenMatches(expected: Buffer, given: string | null): boolean {
  if (given === null) return false;
  return timingSafeEqual(digest(Buffer.from(given, 'utf8')), digest(expected));
}

const digest = (value: Buffer): Buffer => createHash('sha256').update(value).digest();

/**
 * Serve the live inspector page of `pool`. Resolves once listening, with the page's URL.
 * Throws InvalidOptionError for a non-loopback host without `allowRemote`, or `allowRemote`
 * without a token.
 */
/** The pool as an emitter of events by name (a local pool's and a cluster pool's names differ). */
function events_(pool: Pool | ClusterPool): { on(name: string, fn: (...args: unknown[]) => void): unknown; off(name: string, fn: (...args: unknown[]) => void): unknown } {
  return pool as unknown as ReturnType<typeof events_>;
}

export async function serveInspector(target: Pool | ClusterPool, options: InspectorOptions = {}): Promise<InspectorServer> {
  // A cluster pool has no actors here (each host supervises its own): hosts and workers only.
  const cluster = isClusterPool(target) ? target : null;
  const pool = target as Pool;
  const isClosed = () => (cluster ? false : pool.isClosed);
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 0;
  const sanitize = options.sanitize ?? true;
  const allowRemote = options.allowRemote ?? false;
  const token = options.token;
  if (typeof host !== 'string' || host.trim() === '') throw new InvalidOptionError('host', 'must be a non-empty string');
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidOptionError('port', `must be an integer from 0 to 65535, got ${String(port)}`);
  if (token !== undefined && (typeof token !== 'string' || token.length < 8)) throw new InvalidOptionError('token', 'must be a string of at least 8 characters');
  if (!isLoopback(host) && !allowRemote) {
    throw new InvalidOptionError('host', `"${host}" is not a loopback address; the inspector shows your pool's internals, so serving it to other machines needs allowRemote: true and a token`);
  }
  if (allowRemote && token === undefined) throw new InvalidOptionError('token', 'is required when allowRemote is true');
  const tokenBytes = token === undefined ? null : Buffer.from(token, 'utf8');

  const machine: MachineGraph = describeMachine(workerMachine);
  const clients = new Set<Client>();
  const startedAt = Date.now();
  let seq = 0;
  let closed = false;

  // ---- labels and classification of actors --------------------------------------------------
  const labels = new WeakMap<object, string>();
  const workerRefs = new WeakMap<object, boolean>();
  const owners = new WeakMap<object, object>();
  const labelOf = (ref: object): string => {
    let l = labels.get(ref);
    if (l) return l;
    const r = ref as unknown as { id?: string; systemId?: string; sessionId: string };
    // XState announces an actor (@xstate.actor) before it registers its systemId: a worker
    // (whose id is its systemId) is named by its id, and a label is only remembered once final.
    let final = true;
    if (ref === pool.actor) l = 'pool';
    else if (r.systemId) l = r.systemId;
    else if (isWorker(ref)) {
      l = r.id ?? r.sessionId;
      final = false;
    } else {
      // An actor without a systemId (a worker's process actor) is named after the actor that
      // talks to it, learned from the events it receives (public inspection data only).
      const owner = owners.get(ref);
      l = owner ? `${labelOf(owner)}/${r.id ?? r.sessionId}` : (r.id ?? r.sessionId);
      final = owner !== undefined;
    }
    if (final) labels.set(ref, l);
    return l;
  };
  const isWorker = (ref: object): boolean => {
    let w = workerRefs.get(ref);
    if (w === undefined) {
      const logic = (ref as unknown as { logic?: { id?: string; root?: unknown } }).logic;
      w = Boolean(logic && logic.root && logic.id === workerMachine.id);
      workerRefs.set(ref, w);
    }
    return w;
  };

  // ---- what the inspection listener collects between flushes ----------------------------------
  const lastState = new Map<string, { name: string; path: string }>();
  let transitions: LogEntry[] = [];
  let routineDropped = 0;
  let events: EventSummary[] = [];
  let counts: Record<string, number> = {};
  let eventsDropped = 0;
  const log: LogEntry[] = [];

  const remember = (entry: LogEntry) => {
    log.push(entry);
    if (log.length > LOG_KEEP) log.splice(0, log.length - LOG_KEEP);
  };
  const record = (entry: Omit<LogEntry, 'seq' | 't'>) => {
    const full: LogEntry = { seq: ++seq, t: Date.now(), ...entry };
    const routine = full.kind === 'work' || full.kind === 'sub';
    if (!routine) remember(full);
    if (clients.size === 0) return;
    if (routine && transitions.length >= MAX_TRANSITIONS) {
      routineDropped++;
      return;
    }
    transitions.push(full);
  };

  const summarize = (event: { type: string } & Record<string, unknown>): Record<string, unknown> | undefined => {
    if (!sanitize) {
      const { type: _type, ...rest } = event;
      return Object.keys(rest).length ? (jsonSafe(rest, labelOf) as Record<string, unknown>) : undefined;
    }
    let data: Record<string, unknown> | undefined;
    for (const field of SAFE_FIELDS) {
      const v = event[field];
      if (v === undefined || v === null) continue;
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') (data ??= {})[field] = typeof v === 'string' ? v.slice(0, 120) : v;
    }
    return data;
  };

  const onInspection = (event: InspectionEvent): void => {
    if (closed) return;
    try {
      if (event.type === '@xstate.snapshot') {
        const ref = event.actorRef;
        if (!isWorker(ref)) return;
        const snapshot = event.snapshot as { value?: unknown; context?: { pid?: number | null } };
        const path = valuePath(snapshot.value);
        const name = workerStateName(snapshot.value);
        const id = labelOf(ref);
        const prev = lastState.get(id);
        if (prev && prev.path === path) return;
        lastState.set(id, { name, path });
        // An actor's first snapshot is where it starts, not a transition.
        if (!prev && (event.event as { type?: string })?.type === 'xstate.init') return;
        const from = prev?.name ?? 'idle';
        const kind: Kind = prev && prev.name === name ? 'sub' : ROUTINE.has(from) && ROUTINE.has(name) ? 'work' : 'life';
        record({ kind, w: id, from, to: name, path, e: (event.event as { type?: string })?.type ?? '', pid: snapshot.context?.pid ?? null });
        return;
      }
      if (event.type === '@xstate.actor') {
        const ref = event.actorRef;
        if (isWorker(ref)) record({ kind: 'spawn', w: labelOf(ref), text: 'started by the supervisor' });
        return;
      }
      if (clients.size === 0) return;
      if (event.type === '@xstate.event') {
        const target = event.actorRef as unknown as { systemId?: string };
        if (!target.systemId && event.sourceRef && event.sourceRef !== event.actorRef && !owners.has(event.actorRef) && isWorker(event.sourceRef)) owners.set(event.actorRef, event.sourceRef);
        const to = labelOf(event.actorRef);
        counts[to] = (counts[to] ?? 0) + 1;
        if (events.length >= MAX_EVENTS) {
          eventsDropped++;
          return;
        }
        const ev = event.event as { type: string } & Record<string, unknown>;
        events.push({ t: Date.now(), to, from: event.sourceRef ? labelOf(event.sourceRef) : null, type: String(ev?.type ?? '?'), data: ev ? summarize(ev) : undefined });
      }
    } catch {
      // Inspection must never disturb the pool.
    }
  };

  // ---- telemetry: restarts, escalations, sessions, request latency ---------------------------
  let intervalCommands = 0;
  let intervalErrors = 0;
  let latencies: number[] = [];
  const onCheckin = (e: { runMs: number; ok: boolean }) => {
    intervalCommands++;
    if (!e.ok) intervalErrors++;
    if (latencies.length < MAX_LATENCY_SAMPLES) latencies.push(e.runMs);
  };
  const onRestarted = (e: { workerId: string; oldPid: number | null; newPid: number | null }) =>
    record({ kind: 'restart', w: e.workerId, pid: e.newPid, text: `restarted: pid ${e.oldPid ?? '?'} → ${e.newPid ?? '?'}` });
  const onEscalation = (e: { supervisorId: string; error: Error }) =>
    record({ kind: 'escalation', w: e.supervisorId, text: `escalation: ${sanitize ? (e.error as { code?: string }).code ?? 'ESCALATED' : e.error.message}` });
  const onWorkerState = (e: { workerId: string; to: string }) => {
    if (e.to === 'removed') record({ kind: 'spawn', w: e.workerId, text: 'left the supervision tree' });
  };
  const onSessionStart = (e: { sessionId: string }) => record({ kind: 'session', w: e.sessionId, text: 'session started' });
  const onSessionEnd = (e: { sessionId: string; reason: string; workers: number }) =>
    record({ kind: 'session', w: e.sessionId, text: `session ${e.reason} (cleaned in ${e.workers} worker${e.workers === 1 ? '' : 's'})` });
  const telemetry: Array<[string, (...args: never[]) => void]> = [
    ['checkin', onCheckin],
    ['worker_restarted', onRestarted],
    ['escalation', onEscalation],
    ['worker_state', onWorkerState],
    ['session_start', onSessionStart],
    ['session_end', onSessionEnd],
  ];
  // Requests travel beside the actors (the direct path): they come from the pool's request observer.
  const onRequest = (e: RequestObservation) => {
    if (closed || clients.size === 0) return;
    if (events.length >= MAX_EVENTS) {
      eventsDropped++;
      return;
    }
    const ev =
      e.phase === 'sent'
        ? { type: 'EXECUTE', cmd: e.cmd, session: e.sessionId, args: e.args }
        : { type: 'REPLY', cmd: e.cmd, session: e.sessionId, ok: e.ok, ...(e.ok ? { result: e.result } : { error: e.error?.code }) };
    counts[e.workerId] = (counts[e.workerId] ?? 0) + 1;
    events.push({ t: Date.now(), to: e.workerId, from: e.phase === 'sent' ? 'dispatcher' : e.workerId, type: ev.type, data: summarize(ev as { type: string } & Record<string, unknown>) });
  };
  if (cluster) {
    const onHost = (text: (e: { hostId: string; reason?: string }) => string) => (e: { hostId: string; reason?: string }) => record({ kind: 'restart', w: e.hostId, text: text(e) });
    telemetry.push(
      ['host_up', onHost(() => 'host joined the cluster')],
      ['host_leaving', onHost(() => 'host is draining')],
      ['host_down', onHost((e) => `host dropped (${e.reason ?? 'lost'})`)],
      ['disconnect', ((e: { server: string }) => record({ kind: 'escalation', w: 'nats', text: `disconnected from ${e.server}` })) as never],
      ['reconnect', ((e: { server: string }) => record({ kind: 'spawn', w: 'nats', text: `reconnected to ${e.server}` })) as never],
    );
  }
  for (const [name, fn] of telemetry) events_(target).on(name, fn as (...args: unknown[]) => void);
  const unsubscribe = cluster ? () => {} : pool.observeInspection((event) => onInspection(event as unknown as InspectionEvent));
  const unobserveRequests = cluster ? () => {} : pool.observeRequests(onRequest);

  // Seed the current states, so the first transition of each worker has a true `from`.
  for (const w of cluster ? [] : pool.workers()) {
    const ref = pool.actor.system.get(w.id) as AnyActorRef | undefined;
    if (!ref) continue;
    const value = (ref.getSnapshot() as { value?: unknown }).value;
    lastState.set(w.id, { name: workerStateName(value), path: valuePath(value) });
  }

  // ---- snapshots ---------------------------------------------------------------------------
  const chart: Array<Record<string, number | null>> = [];
  let lastSnapAt = Date.now();
  let lastSnap: Record<string, unknown> | null = null;

  const describeTree = (workers: WorkerInfo[]) => {
    const sys = pool.actor.system;
    const ctxOf = (id: string) => {
      try {
        const snap = sys.get(id)?.getSnapshot() as { context?: Record<string, unknown>; value?: unknown; status?: string } | undefined;
        return snap;
      } catch {
        return undefined;
      }
    };
    const rootSnap = pool.actor.getSnapshot() as { status: string; value: unknown };
    const sp = ctxOf('sessionPool');
    const sup = ctxOf('workers');
    const mon = ctxOf('monitor');
    const spc = (sp?.context ?? {}) as { queue?: unknown[]; sessions?: Record<string, unknown>; slots?: Array<{ id: string; state: string; overflow: boolean }>; affinity?: string; maxOverflow?: number };
    const supc = (sup?.context ?? {}) as {
      strategy?: string;
      maxRestarts?: number;
      periodMs?: number;
      recentRestarts?: number;
      children?: Array<{ spec: { id: string; restart: string }; status: string; pid: number | null }>;
    };
    const monc = (mon?.context ?? {}) as { intervalMs?: number; ticks?: number };
    const infoById = new Map(workers.map((w) => [w.id, w]));
    return {
      id: 'pool',
      role: 'PoolSupervisor',
      strategy: 'one_for_one',
      status: rootSnap.status,
      state: valuePath(rootSnap.value),
      children: [
        {
          id: 'sessionPool',
          role: 'SessionPool',
          status: sp?.status ?? 'stopped',
          state: valuePath(sp?.value),
          queue: spc.queue?.length ?? 0,
          sessions: spc.sessions ? Object.keys(spc.sessions).length : 0,
          affinity: (spc as { config?: { affinity?: string } }).config?.affinity ?? null,
          slots: (spc.slots ?? []).map((s) => ({ id: s.id, state: s.state, overflow: s.overflow })),
        },
        {
          id: 'workers',
          role: 'WorkerSupervisor',
          status: sup?.status ?? 'stopped',
          state: valuePath(sup?.value),
          strategy: supc.strategy ?? null,
          maxRestarts: supc.maxRestarts ?? null,
          periodMs: supc.periodMs ?? null,
          recentRestarts: supc.recentRestarts ?? 0,
          maxOverflow: (spc as { config?: { maxOverflow?: number } }).config?.maxOverflow ?? null,
          children: (supc.children ?? []).map((c) => ({
            id: c.spec.id,
            restart: c.spec.restart,
            status: c.status,
            pid: c.pid ?? infoById.get(c.spec.id)?.pid ?? null,
            state: infoById.get(c.spec.id)?.state ?? null,
          })),
        },
        {
          id: 'monitor',
          role: 'PoolMonitor',
          status: mon?.status ?? 'stopped',
          state: valuePath(mon?.value),
          intervalMs: monc.intervalMs ?? null,
          ticks: monc.ticks ?? 0,
        },
      ],
    };
  };

  let clusterCommands = 0;
  let clusterErrors = 0;
  const takeSnapshot = () => {
    const now = Date.now();
    let stats: PoolStats | null = null;
    let workers: WorkerInfo[] = [];
    let tree: unknown = null;
    let sessions: Array<{ id: string; workers: string[]; lastWorker: string | null; active: number; lost: string | null }> = [];
    let sessionCount = 0;
    try {
      if (cluster) {
        // No session registry to show: each host keeps its own.
        stats = cluster.stats();
        // The hosts count their commands; the chart's rate is the difference between snapshots.
        intervalCommands = Math.max(0, stats.totalCommands - clusterCommands);
        intervalErrors = Math.max(0, stats.totalErrors - clusterErrors);
        clusterCommands = stats.totalCommands;
        clusterErrors = stats.totalErrors;
        workers = clusterWorkers(cluster);
        tree = clusterTree(cluster, false);
      } else {
        stats = pool.stats();
        workers = pool.workers();
        tree = describeTree(workers);
        const spc = (pool.actor.system.get('sessionPool')?.getSnapshot() as { context?: { sessions?: Record<string, { workers: string[]; lastWorker: string | null; active: number; lostWorker: string | null }> } } | undefined)?.context;
        const entries = Object.entries(spc?.sessions ?? {});
        sessionCount = entries.length;
        sessions = entries.slice(-MAX_SESSIONS).map(([id, s]) => ({ id, workers: [...s.workers], lastWorker: s.lastWorker, active: s.active, lost: s.lostWorker }));
      }
    } catch {
      // A pool in the middle of stopping: send what we have.
    }
    const paths: Record<string, string> = {};
    for (const w of workers) paths[w.id] = lastState.get(w.id)?.path ?? w.state;
    const dt = Math.max(1, now - lastSnapAt) / 1000;
    lastSnapAt = now;
    const sorted = latencies.sort((a, b) => a - b);
    const point = {
      t: now,
      rps: round(intervalCommands / dt, 2),
      errors: round(intervalErrors / dt, 2),
      p50: sorted.length ? round(percentile(sorted, 0.5)) : null,
      p99: sorted.length ? round(percentile(sorted, 0.99)) : null,
      queue: stats?.queueLength ?? 0,
      busy: stats?.busyWorkers ?? 0,
    };
    intervalCommands = 0;
    intervalErrors = 0;
    latencies = [];
    chart.push(point);
    if (chart.length > CHART_POINTS) chart.splice(0, chart.length - CHART_POINTS);
    lastSnap = { t: now, closed: isClosed(), stats, workers, paths, tree, sessions, sessionCount, point };
    return lastSnap;
  };

  const hello = () => ({
    v: 1,
    t: Date.now(),
    startedAt,
    sanitize,
    machine,
    options: cluster ? clusterOptions(cluster) : {
      poolSize: pool.options.poolSize,
      maxOverflow: pool.options.maxOverflow,
      strategy: pool.options.restart.strategy,
      maxRestarts: pool.options.restart.maxRestarts,
      maxSeconds: pool.options.restart.maxSeconds,
      healthCheckInterval: pool.options.healthCheckInterval,
      affinity: pool.options.affinity,
      workerConcurrency: pool.options.workerConcurrency,
    },
    log,
    chart,
    snap: lastSnap ?? takeSnapshot(),
  });

  // ---- streaming -----------------------------------------------------------------------------
  const frame = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
  const deliver = (message: string) => {
    for (const client of clients) {
      const { res } = client;
      if (res.writableEnded || res.destroyed) continue;
      if (res.writableLength > MAX_BUFFERED_BYTES) {
        client.stale = true;
        client.dropped++;
        continue;
      }
      if (client.stale) {
        client.stale = false;
        res.write(frame('hello', { ...hello(), dropped: client.dropped }));
      }
      res.write(message);
    }
  };

  const flush = () => {
    if (clients.size === 0 || (transitions.length === 0 && events.length === 0 && routineDropped === 0 && eventsDropped === 0)) {
      transitions = [];
      events = [];
      counts = {};
      routineDropped = 0;
      eventsDropped = 0;
      return;
    }
    const message = frame('batch', { t: Date.now(), transitions, routineDropped, events, eventsDropped, counts });
    transitions = [];
    events = [];
    counts = {};
    routineDropped = 0;
    eventsDropped = 0;
    deliver(message);
  };

  const flushTimer = setInterval(flush, FLUSH_MS);
  flushTimer.unref();
  const snapTimer = setInterval(() => {
    flush();
    const snap = takeSnapshot();
    if (clients.size > 0) deliver(frame('snap', snap));
  }, SNAPSHOT_MS);
  snapTimer.unref();
  takeSnapshot();

  // ---- HTTP ----------------------------------------------------------------------------------
  const refuse = (res: ServerResponse, status: number, message: string, extra: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...extra });
    res.end(`${message}\n`);
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://inspector.invalid');
    if (!allowRemote) {
      // Loopback only: a page on some other site that resolves its own name to 127.0.0.1
      // (DNS rebinding) sends its own name as Host, and is refused here.
      const h = hostOf(req.headers.host);
      if (h === null || !(isLoopback(h) || h === host.toLowerCase())) return refuse(res, 403, 'forbidden: the inspector only answers requests addressed to a loopback host');
    }
    if (tokenBytes) {
      const auth = req.headers.authorization;
      const bearer = auth && /^Bearer\s+(.+)$/i.exec(auth)?.[1];
      if (!tokenMatches(tokenBytes, url.searchParams.get('token') ?? bearer ?? null)) {
        return refuse(res, 401, 'unauthorized: this inspector needs its token (?token=… or Authorization: Bearer …)', { 'www-authenticate': 'Bearer' });
      }
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(res, 405, 'method not allowed', { allow: 'GET, HEAD' });
    if (closed) return refuse(res, 503, 'the inspector is closing');

    switch (url.pathname) {
      case '/': {
        const nonce = randomBytes(16).toString('base64');
        const body = renderPage(nonce);
        res.writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'content-length': Buffer.byteLength(body),
          'cache-control': 'no-store',
          'content-security-policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
          'x-content-type-options': 'nosniff',
          'x-frame-options': 'DENY',
          'referrer-policy': 'no-referrer',
        });
        res.end(req.method === 'HEAD' ? undefined : body);
        return;
      }
      case '/events': {
        res.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-store',
          connection: 'keep-alive',
          'x-accel-buffering': 'no',
          'x-content-type-options': 'nosniff',
        });
        if (req.method === 'HEAD') return void res.end();
        req.socket.setNoDelay(true);
        req.socket.setKeepAlive(true);
        const client: Client = { res, stale: false, dropped: 0 };
        res.write('retry: 2000\n\n');
        res.write(frame('hello', hello()));
        clients.add(client);
        const drop = () => clients.delete(client);
        req.on('close', drop);
        res.on('error', drop);
        return;
      }
      case '/api/snapshot': {
        const body = JSON.stringify(hello());
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
        res.end(req.method === 'HEAD' ? undefined : body);
        return;
      }
      case '/favicon.ico':
        res.writeHead(204);
        res.end();
        return;
      default:
        return refuse(res, 404, 'not found');
    }
  };

  const server = createServer(handle);
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => {
      clearInterval(flushTimer);
      clearInterval(snapTimer);
      unsubscribe();
      unobserveRequests();
      for (const [name, fn] of telemetry) events_(target).off(name, fn as (...args: unknown[]) => void);
      reject(err);
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });

  const address = server.address() as AddressInfo;
  const wildcard = address.address === '0.0.0.0' || address.address === '::';
  let urlHost = wildcard ? hostname() : host;
  if (urlHost.includes(':') && !urlHost.startsWith('[')) urlHost = `[${urlHost}]`;
  const url = `http://${urlHost}:${address.port}/${token ? `?token=${encodeURIComponent(token)}` : ''}`;

  let closing: Promise<void> | null = null;
  const close = () => {
    if (closing) return closing;
    closed = true;
    clearInterval(flushTimer);
    clearInterval(snapTimer);
    unsubscribe();
    unobserveRequests();
    for (const [name, fn] of telemetry) events_(target).off(name, fn as (...args: unknown[]) => void);
    closing = new Promise<void>((resolve) => {
      for (const client of clients) {
        try {
          client.res.end();
        } catch {
          // already gone
        }
      }
      clients.clear();
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return closing;
  };

  return { url, close };
}
