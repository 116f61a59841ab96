/**
 * What travels over NATS between front ends and agents, as MessagePack (the project's codec,
 * src/codec): one value per NATS message. docs/CLUSTER.md "Messages" lists them.
 *
 * - request (front end → agent, on the anonymous or a host's request subject, with the reply
 *   subject of this attempt): the command, its args (encoded once by the front end, so that
 *   a value outside the wire types is refused before anything is sent, naming its path from
 *   `args`), the session, the per-call options, the absolute checkout deadline (ms since the
 *   Unix epoch) and the run timeout, the stream window, and for a session its placement.
 * - reply (agent → front end, on the request's reply subject): `acc` (an anonymous request
 *   was taken by this host), `chunk` (a stream chunk), `ok` / `err` (the outcome; an error as
 *   its wire form, src/errors.ts toWire/fromWire), `rej` (not run: the host is leaving, the
 *   placement is stale, or it belongs to an earlier life of the host).
 * - control (front end → agent, on the host's control subject): `cancel`, `ack` (stream
 *   credit: chunks consumed so far), `end` (end a session; answered with `ended` or `err`).
 * - heartbeat (agent → everyone): the host's capacity, load and its pool's stats and workers;
 *   `state` says whether it is serving, leaving (draining) or gone.
 * - placement (the KV value of a session): the host and the host's incarnation.
 *
 * Every decoder checks the shape and throws ProtocolError naming what was wrong: a message
 * from a peer that is not a pyvisor peer (or another version) never reaches the pool.
 */
import { encode } from '../codec/encode.js';
import { decode } from '../codec/decode.js';
import { ProtocolError, SerializationError, fromWire, toWire, type PyvisorError, type WireError } from '../errors.js';
import { AFFINITIES, type Affinity } from '../routing/route.js';
import type { PoolStats, WorkerInfo } from '../core/poolStats.js';

/** Bumped when a message changes incompatibly; a peer refuses another version's requests. */
export const ENVELOPE_VERSION = 1;

type Obj = Record<string, unknown>;

function asObject(value: unknown, what: string): Obj {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || Buffer.isBuffer(value)) throw new ProtocolError(`invalid ${what}: expected a map`);
  return value as Obj;
}

function str(o: Obj, key: string, what: string): string {
  const v = o[key];
  if (typeof v !== 'string') throw new ProtocolError(`invalid ${what}: "${key}" must be a string`);
  return v;
}

function num(o: Obj, key: string, what: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ProtocolError(`invalid ${what}: "${key}" must be a finite number`);
  return v;
}

function optNum(o: Obj, key: string, what: string, fallback: number): number {
  return o[key] === undefined || o[key] === null ? fallback : num(o, key, what);
}

function bytesOf(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function decodeMessage(data: Uint8Array, what: string): Obj {
  return asObject(decode(bytesOf(data)), what);
}

/**
 * Encode a message for NATS; past `maxBytes` (the server's max_payload) it is refused with
 * SerializationError naming `root`, since NATS would refuse it anyway.
 */
function encodeMessage(value: unknown, root: string, maxBytes: number): Buffer {
  const bytes = encode(value, root);
  if (bytes.length > maxBytes) throw tooLarge(root, bytes.length, maxBytes);
  return bytes;
}

export function tooLarge(root: string, bytes: number, maxBytes: number): SerializationError {
  return new SerializationError(root, `a message of ${bytes} bytes (more than the NATS server's max_payload of ${maxBytes} bytes)`);
}

// ---- request --------------------------------------------------------------------------------

/** Where a session's request is going: its placement, as the front end read it from the KV bucket. */
export interface PlacementRef {
  /** The placement's KV revision: a newer placement of the same session has a higher one. */
  rev: number;
  /** The incarnation of the host the placement names. */
  inc: string;
  /** The front end re-read the bucket after the agent called this revision stale: it is current. */
  confirmed: boolean;
}

export interface RequestEnvelope {
  cmd: string;
  /** The args, MessagePack-encoded by the front end. */
  args: Buffer;
  session: string | null;
  affinity: Affinity | null;
  idempotent: boolean;
  /** ms the command may run once a worker has it (the local pool's `timeout`). */
  timeout: number;
  /** ms since the Unix epoch by which a worker must have taken it (the local pool's checkout deadline). */
  checkoutBy: number;
  /** > 0: a stream, the front end's credit window in chunks. */
  window: number;
  /** For a request routed to its session's host. */
  place: PlacementRef | null;
}

/** Encode the args on their own first: a value outside the wire types is refused with its path from `args`. */
export function encodeArgs(args: unknown, maxBytes: number): Buffer {
  return encodeMessage(args === undefined ? null : args, 'args', maxBytes);
}

export function encodeRequest(request: RequestEnvelope, maxBytes: number): Buffer {
  const wire: Obj = {
    v: ENVELOPE_VERSION,
    cmd: request.cmd,
    args: request.args,
    session: request.session,
    timeout: request.timeout,
    checkoutBy: request.checkoutBy,
  };
  if (request.affinity !== null) wire.affinity = request.affinity;
  if (request.idempotent) wire.idempotent = true;
  if (request.window > 0) wire.window = request.window;
  if (request.place) wire.place = { rev: request.place.rev, inc: request.place.inc, ...(request.place.confirmed ? { confirmed: true } : {}) };
  const bytes = encode(wire, 'request');
  if (bytes.length > maxBytes) throw tooLarge('args', bytes.length, maxBytes);
  return bytes;
}

export function decodeRequest(data: Uint8Array): RequestEnvelope & { argsValue: unknown } {
  const what = 'request';
  const o = decodeMessage(data, what);
  if (o.v !== ENVELOPE_VERSION) throw new ProtocolError(`invalid request: envelope version ${String(o.v)} (this agent speaks ${ENVELOPE_VERSION})`);
  const args = o.args;
  if (!Buffer.isBuffer(args)) throw new ProtocolError('invalid request: "args" must be bytes');
  const session = o.session ?? null;
  if (session !== null && (typeof session !== 'string' || session.length === 0)) throw new ProtocolError('invalid request: "session" must be a non-empty string or nil');
  const affinity = o.affinity ?? null;
  if (affinity !== null && !AFFINITIES.includes(affinity as Affinity)) throw new ProtocolError(`invalid request: "affinity" must be one of ${AFFINITIES.join(', ')}`);
  let place: PlacementRef | null = null;
  if (o.place !== undefined && o.place !== null) {
    const p = asObject(o.place, 'request placement');
    place = { rev: num(p, 'rev', 'request placement'), inc: str(p, 'inc', 'request placement'), confirmed: p.confirmed === true };
  }
  const window = optNum(o, 'window', what, 0);
  return {
    cmd: str(o, 'cmd', what),
    args,
    argsValue: decode(args),
    session: session as string | null,
    affinity: affinity as Affinity | null,
    idempotent: o.idempotent === true,
    timeout: num(o, 'timeout', what),
    checkoutBy: num(o, 'checkoutBy', what),
    window: Number.isSafeInteger(window) && window > 0 ? window : 0,
    place,
  };
}

// ---- replies (agent → front end) ------------------------------------------------------------

export type RejectReason = 'leaving' | 'stale' | 'lost';
const REJECT_REASONS: readonly RejectReason[] = ['leaving', 'stale', 'lost'];

export type Reply =
  | { t: 'acc'; host: string; inc: string }
  | { t: 'chunk'; chunk: unknown }
  | { t: 'ok'; value: unknown }
  | { t: 'err'; error: PyvisorError }
  | { t: 'rej'; why: RejectReason; host: string; inc: string };

export function encodeAccept(host: string, inc: string): Buffer {
  return encode({ t: 'acc', host, inc }, 'reply');
}

export function encodeChunk(chunk: unknown, maxBytes: number): Buffer {
  return encodeMessage({ t: 'chunk', chunk }, 'chunk', maxBytes);
}

export function encodeOk(value: unknown, maxBytes: number): Buffer {
  return encodeMessage({ t: 'ok', value: value === undefined ? null : value }, 'result', maxBytes);
}

export function encodeError(error: unknown): Buffer {
  return encode({ t: 'err', error: toWire(error) }, 'error');
}

export function encodeReject(why: RejectReason, host: string, inc: string): Buffer {
  return encode({ t: 'rej', why, host, inc }, 'reply');
}

export function decodeReply(data: Uint8Array): Reply {
  const what = 'reply';
  const o = decodeMessage(data, what);
  switch (o.t) {
    case 'acc':
      return { t: 'acc', host: str(o, 'host', what), inc: str(o, 'inc', what) };
    case 'chunk':
      return { t: 'chunk', chunk: o.chunk ?? null };
    case 'ok':
      return { t: 'ok', value: o.value ?? null };
    case 'err':
      return { t: 'err', error: fromWire(o.error as WireError) };
    case 'rej': {
      const why = o.why as RejectReason;
      if (!REJECT_REASONS.includes(why)) throw new ProtocolError(`invalid reply: unknown reject reason ${JSON.stringify(String(o.why))}`);
      return { t: 'rej', why, host: str(o, 'host', what), inc: str(o, 'inc', what) };
    }
    default:
      throw new ProtocolError(`invalid reply: unknown type ${JSON.stringify(String(o.t))}`);
  }
}

// ---- control (front end → agent) ------------------------------------------------------------

export type Control =
  /** Stop the request answering on `rid` (its reply subject). */
  | { t: 'cancel'; rid: string }
  /** The stream answering on `rid` had `n` chunks consumed by its reader. */
  | { t: 'ack'; rid: string; n: number }
  /** End the session whose placement (revision `rev`) was just deleted. */
  | { t: 'end'; session: string; rev: number };

export function encodeControl(control: Control): Buffer {
  return encode(control, 'control');
}

export function decodeControl(data: Uint8Array): Control {
  const what = 'control';
  const o = decodeMessage(data, what);
  switch (o.t) {
    case 'cancel':
      return { t: 'cancel', rid: str(o, 'rid', what) };
    case 'ack':
      return { t: 'ack', rid: str(o, 'rid', what), n: num(o, 'n', what) };
    case 'end':
      return { t: 'end', session: str(o, 'session', what), rev: num(o, 'rev', what) };
    default:
      throw new ProtocolError(`invalid control message: unknown type ${JSON.stringify(String(o.t))}`);
  }
}

/** The answer to `end`: how many workers held the session, or the error. */
export function encodeEnded(workers: number): Buffer {
  return encode({ t: 'ended', n: workers }, 'reply');
}

export function decodeEnded(data: Uint8Array): number {
  const o = decodeMessage(data, 'end reply');
  if (o.t === 'err') throw fromWire(o.error as WireError);
  if (o.t !== 'ended') throw new ProtocolError(`invalid end reply: unknown type ${JSON.stringify(String(o.t))}`);
  return num(o, 'n', 'end reply');
}

// ---- heartbeat ------------------------------------------------------------------------------

export type HostState = 'up' | 'leaving' | 'gone';
const HOST_STATES: readonly HostState[] = ['up', 'leaving', 'gone'];

export interface Heartbeat {
  host: string;
  /** This life of the agent (random per start): a host that restarts under the same id is a new incarnation. */
  inc: string;
  state: HostState;
  /** ms between this agent's heartbeats. */
  interval: number;
  /** Requests its workers can run at once now (workers up × workerConcurrency). */
  capacity: number;
  /** Requests the agent is handling now. */
  inflight: number;
  /** Requests waiting in its local pool for a worker. */
  queue: number;
  /** Its workers that are up. */
  workers: number;
  /** Sessions its local pool knows. */
  sessions: number;
  stats: PoolStats;
  rows: WorkerInfo[];
}

export function encodeHeartbeat(hb: Heartbeat): Buffer {
  return encode({ v: ENVELOPE_VERSION, ...hb }, 'heartbeat');
}

export function decodeHeartbeat(data: Uint8Array): Heartbeat {
  const what = 'heartbeat';
  const o = decodeMessage(data, what);
  const state = o.state as HostState;
  if (!HOST_STATES.includes(state)) throw new ProtocolError(`invalid heartbeat: unknown state ${JSON.stringify(String(o.state))}`);
  const rows = Array.isArray(o.rows) ? (o.rows.filter((r) => r !== null && typeof r === 'object') as WorkerInfo[]) : [];
  return {
    host: str(o, 'host', what),
    inc: str(o, 'inc', what),
    state,
    interval: optNum(o, 'interval', what, 1000),
    capacity: optNum(o, 'capacity', what, 0),
    inflight: optNum(o, 'inflight', what, 0),
    queue: optNum(o, 'queue', what, 0),
    workers: optNum(o, 'workers', what, 0),
    sessions: optNum(o, 'sessions', what, 0),
    stats: (o.stats !== null && typeof o.stats === 'object' ? o.stats : {}) as PoolStats,
    rows,
  };
}

// ---- placement (the KV value) ---------------------------------------------------------------

export interface PlacementValue {
  host: string;
  inc: string;
}

export function encodePlacement(value: PlacementValue): Buffer {
  return encode({ host: value.host, inc: value.inc, at: Date.now() }, 'placement');
}

export function decodePlacement(data: Uint8Array): PlacementValue {
  const o = decodeMessage(data, 'placement');
  return { host: str(o, 'host', 'placement'), inc: str(o, 'inc', 'placement') };
}
