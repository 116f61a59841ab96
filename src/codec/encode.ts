/**
 * MessagePack encoder for the pyvisor wire protocol (docs/PROTOCOL.md §3).
 *
 * One pass validates and encodes. The output is byte-for-byte what Python's `msgpack`
 * (use_bin_type=True) writes for the same value: integers in their minimal width, every
 * other number as float64, strings as str8/16/32 with minimal headers, bytes as bin.
 *
 * Why not msgpackr's `pack`: it writes integer-valued numbers outside the 32-bit ranges as
 * float64 (Python would receive a float) and every BigInt as int64 (0xd3), so its bytes
 * differ from Python's for the shared vectors.
 *
 * Value mapping (JS → MessagePack):
 *   null                           → nil
 *   boolean                        → bool
 *   number, integer in [-2^63, 2^64) → int (minimal width; -0 is written as 0)
 *   other number (incl. NaN, ±Infinity, integers beyond that range) → float64
 *   bigint in [-2^63, 2^64)        → int (minimal width); outside → refused
 *   string                         → str (UTF-8; a lone UTF-16 surrogate is refused)
 *   Buffer / Uint8Array            → bin
 *   Array                          → array (a hole or `undefined` element is refused)
 *   plain object (prototype Object.prototype or null) → map with string keys;
 *                                    a property whose value is `undefined` is omitted
 *                                    (as JSON.stringify does); symbol-keyed properties
 *                                    are ignored (as JSON.stringify does)
 * Everything else (undefined outside an object property, symbol, function, Date, Map, Set,
 * RegExp, class instances, other typed arrays, circular references, nesting deeper than
 * MAX_DEPTH) throws SerializationError naming the path, e.g.
 * `args.items[3]: Symbol is not serializable`. Nothing is written when encoding fails.
 */
import { SerializationError } from '../errors.js';

/**
 * Most nested containers accepted (a top-level array or map counts 1), on both sides:
 * msgpack-python's limit, which the Python worker uses too.
 */
export const MAX_DEPTH = 511;
/** Default largest frame payload, in bytes (64 MiB). */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;

/**
 * Output goes into a slab that frames are carved from: a frame is returned as a view of the
 * slab (no copy-out) and the next frame starts after it, so the bytes handed out are never
 * written again. A new slab is taken when the current one runs low, or after a large frame
 * (so a big slab is not kept alive by later small frames).
 */
const SLAB_BYTES = 64 * 1024;
const MIN_FREE = 4 * 1024;
/** After a frame this large, the next encode starts on a fresh slab. */
const LARGE_FRAME = 256 * 1024;
/** Frames at least this large get a slab of their own (and may hand it back with releaseFrame). */
export const LARGE_FRAME_BYTES = LARGE_FRAME;
/** Strings shorter than this reserve 3 bytes per character instead of measuring first. */
const RESERVE_MAX_CHARS = 1 << 20;
const TWO_32 = 4294967296;
const TWO_63 = 9223372036854775808; // 2^63 as a double (exact)
const TWO_64 = 18446744073709551616; // 2^64 as a double (exact)
const BIG_MIN = -(1n << 63n);
const BIG_MAX = (1n << 64n) - 1n;
const BIG_MASK_32 = (1n << 32n) - 1n;

let buf: Buffer = Buffer.allocUnsafeSlow(SLAB_BYTES);
/** Where the output being encoded starts in `buf`. */
let start = 0;
/** Next byte to write. */
let pos = 0;
/** Where the MessagePack payload starts (start + 4 when a frame header is reserved). */
let payloadStart = 0;
/** The payload size limit for the current encode. */
let limit = DEFAULT_MAX_FRAME_BYTES;
let freshSlabNext = false;
/** The value being encoded (kept only during an encode, to rebuild paths on error). */
let rootValue: unknown = undefined;
/** Per-depth key (or index) leading to the value at that depth; [0] is the root's name. */
const keyTrail: (string | number)[] = [];

const f64 = new Float64Array(1);
const f64b = new Uint8Array(f64.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const stringIsWellFormed: (s: string) => boolean =
  typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === 'function'
    ? (s) => (s as unknown as { isWellFormed(): boolean }).isWellFormed()
    : (s) => !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?:^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);

/** Thrown inside the encoder when the output passes the frame limit; turned into a SerializationError. */
class TooLarge {
  constructor(readonly bytes: number) {}
}

/**
 * Make room up to absolute index `need` (computed from the current `pos`): moves the output
 * being encoded to the front of a new, larger buffer. Callers re-read `pos` after it and hold
 * no absolute positions across it.
 */
function grow(need: number): void {
  const want = need - start;
  if (need - payloadStart > limit) throw new TooLarge(need - payloadStart);
  const used = pos - start;
  let cap = want > 2 * used ? want + (want >>> 3) : want * 2;
  if (cap < SLAB_BYTES) cap = SLAB_BYTES;
  const next = takeSpare(cap) ?? Buffer.allocUnsafeSlow(cap);
  buf.copy(next, 0, start, pos);
  buf = next;
  pos -= start;
  payloadStart -= start;
  start = 0;
}

function writeFloat64(v: number): void {
  if (pos + 9 > buf.length) grow(pos + 9);
  const b = buf;
  let p = pos;
  b[p++] = 0xcb;
  f64[0] = v;
  if (LITTLE_ENDIAN) {
    b[p++] = f64b[7]; b[p++] = f64b[6]; b[p++] = f64b[5]; b[p++] = f64b[4];
    b[p++] = f64b[3]; b[p++] = f64b[2]; b[p++] = f64b[1]; b[p++] = f64b[0];
  } else {
    for (let i = 0; i < 8; i++) b[p++] = f64b[i];
  }
  pos = p;
}

function writeU32(b: Buffer, p: number, v: number): void {
  b[p] = v >>> 24;
  b[p + 1] = (v >>> 16) & 0xff;
  b[p + 2] = (v >>> 8) & 0xff;
  b[p + 3] = v & 0xff;
}

/** Integer-valued number. Caller guarantees Number.isInteger(v). */
function writeInt(v: number): void {
  if (pos + 9 > buf.length) grow(pos + 9);
  const b = buf;
  const p = pos;
  if (v >= 0) {
    if (v < 0x80) { b[p] = v; pos = p + 1; }
    else if (v < 0x100) { b[p] = 0xcc; b[p + 1] = v; pos = p + 2; }
    else if (v < 0x10000) { b[p] = 0xcd; b[p + 1] = v >>> 8; b[p + 2] = v & 0xff; pos = p + 3; }
    else if (v < TWO_32) { b[p] = 0xce; writeU32(b, p + 1, v); pos = p + 5; }
    else if (v < TWO_64) {
      const hi = Math.floor(v / TWO_32);
      b[p] = 0xcf; writeU32(b, p + 1, hi); writeU32(b, p + 5, v - hi * TWO_32); pos = p + 9;
    } else writeFloat64(v);
  } else {
    if (v >= -32) { b[p] = v & 0xff; pos = p + 1; }
    else if (v >= -0x80) { b[p] = 0xd0; b[p + 1] = v & 0xff; pos = p + 2; }
    else if (v >= -0x8000) { b[p] = 0xd1; b[p + 1] = (v >> 8) & 0xff; b[p + 2] = v & 0xff; pos = p + 3; }
    else if (v >= -0x80000000) { b[p] = 0xd2; writeU32(b, p + 1, v >>> 0); pos = p + 5; }
    else if (v >= -TWO_63) {
      // two's complement of a negative value below -2^31: hi word = floor(v / 2^32) (negative)
      const hi = Math.floor(v / TWO_32);
      const lo = v - hi * TWO_32; // in [0, 2^32)
      b[p] = 0xd3; writeU32(b, p + 1, hi >>> 0); writeU32(b, p + 5, lo); pos = p + 9;
    } else writeFloat64(v);
  }
}

function writeBigInt(v: bigint, depth: number): void {
  if (v >= -0x80000000n && v < 0x100000000n) {
    writeInt(Number(v));
    return;
  }
  if (v < BIG_MIN || v > BIG_MAX) {
    fail(depth, `BigInt ${v} (outside the 64-bit integer range [-2^63, 2^64-1])`);
  }
  if (pos + 9 > buf.length) grow(pos + 9);
  const b = buf;
  const p = pos;
  if (v > 0n) {
    b[p] = 0xcf;
  } else {
    b[p] = 0xd3;
    v = BigInt.asUintN(64, v);
  }
  writeU32(b, p + 1, Number(v >> 32n));
  writeU32(b, p + 5, Number(v & BIG_MASK_32));
  pos = p + 9;
}

function strHeaderSize(n: number): number {
  return n < 32 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
}

function writeStr(s: string, depth: number): void {
  const n = s.length;
  if (n < 64) {
    // Short strings (keys, names, most values): copy ASCII in JS, which beats the native
    // call's fixed cost; at the first non-ASCII character, fall back to Buffer#write.
    const hdr = n < 32 ? 1 : 2;
    if (pos + hdr + n > buf.length) grow(pos + hdr + n);
    const b = buf;
    const at = pos + hdr;
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      b[at + i] = c;
    }
    if (i === n) {
      if (hdr === 1) b[pos] = 0xa0 | n;
      else { b[pos] = 0xd9; b[pos + 1] = n; }
      pos = at + n;
      return;
    }
  }
  let written: number;
  const max = n * 3; // UTF-8 needs at most 3 bytes per UTF-16 code unit
  if (n < RESERVE_MAX_CHARS && pos + 5 + max - payloadStart <= limit) {
    // Reserve the header for the worst case, write, then move the bytes left if the real
    // length needs a smaller header (a move of at most 64 KiB: above that, the reserved
    // and the real header are both str32).
    const reserved = strHeaderSize(max);
    if (pos + reserved + max > buf.length) grow(pos + reserved + max);
    const at = pos + reserved;
    written = buf.write(s, at, 'utf8');
    const hdr = strHeaderSize(written);
    if (hdr !== reserved) buf.copyWithin(pos + hdr, at, at + written);
  } else {
    // Huge strings: measure exactly first rather than reserve three times the size.
    written = Buffer.byteLength(s, 'utf8');
    const hdr = strHeaderSize(written);
    if (pos + hdr + written > buf.length) grow(pos + hdr + written);
    buf.write(s, pos + hdr, 'utf8');
  }
  if (written !== n && !stringIsWellFormed(s)) {
    fail(depth, 'string containing a lone UTF-16 surrogate');
  }
  const b = buf;
  let p = pos;
  if (written < 32) b[p++] = 0xa0 | written;
  else if (written < 0x100) { b[p++] = 0xd9; b[p++] = written; }
  else if (written < 0x10000) { b[p++] = 0xda; b[p++] = written >>> 8; b[p++] = written & 0xff; }
  else { b[p] = 0xdb; writeU32(b, p + 1, written); p += 5; }
  pos = p + written;
}

function writeBin(v: Uint8Array, depth: number): void {
  const n = v.length;
  if (n > 0xffffffff) fail(depth, `binary of ${n} bytes (more than bin32 holds)`);
  if (pos + 5 + n > buf.length) grow(pos + 5 + n);
  const b = buf;
  let p = pos;
  if (n < 0x100) { b[p++] = 0xc4; b[p++] = n; }
  else if (n < 0x10000) { b[p++] = 0xc5; b[p++] = n >>> 8; b[p++] = n & 0xff; }
  else { b[p] = 0xc6; writeU32(b, p + 1, n); p += 5; }
  b.set(v, p);
  pos = p + n;
}

function writeContainerHeader(n: number, fix: number, h16: number, h32: number): void {
  if (pos + 5 > buf.length) grow(pos + 5);
  const b = buf;
  const p = pos;
  if (n < 16) { b[p] = fix | n; pos = p + 1; }
  else if (n < 0x10000) { b[p] = h16; b[p + 1] = n >>> 8; b[p + 2] = n & 0xff; pos = p + 3; }
  else { b[p] = h32; writeU32(b, p + 1, n); pos = p + 5; }
}

function containerHeaderSize(n: number): number {
  return n < 16 ? 1 : n < 0x10000 ? 3 : 5;
}

function writeArray(v: unknown[], depth: number): void {
  enter(depth);
  const n = v.length;
  writeContainerHeader(n, 0x90, 0xdc, 0xdd);
  const d = depth + 1;
  for (let i = 0; i < n; i++) {
    keyTrail[d] = i;
    const item = v[i];
    if (item === undefined) {
      fail(d, i in v ? 'undefined (use null)' : 'array hole (sparse array element)');
    }
    writeValue(item, d);
  }
}

function writeMap(v: Record<string, unknown>, depth: number): void {
  enter(depth);
  const keys = Object.keys(v);
  const n = keys.length;
  const headerAt = pos - start; // relative: grow() may move the output
  writeContainerHeader(n, 0x80, 0xde, 0xdf);
  const d = depth + 1;
  let count = 0;
  for (let i = 0; i < n; i++) {
    const k = keys[i];
    const item = v[k];
    if (item === undefined) continue; // omitted, as JSON.stringify does
    keyTrail[d] = k;
    writeStr(k, d);
    writeValue(item, d);
    count++;
  }
  if (count !== n) {
    // Some properties were undefined: rewrite the header with the real count.
    const at = start + headerAt;
    const oldSize = containerHeaderSize(n);
    const newSize = containerHeaderSize(count);
    if (newSize !== oldSize) {
      buf.copyWithin(at + newSize, at + oldSize, pos);
      pos -= oldSize - newSize;
    }
    const end = pos;
    pos = at;
    writeContainerHeader(count, 0x80, 0xde, 0xdf);
    pos = end;
  }
}

function enter(depth: number): void {
  if (depth >= MAX_DEPTH) {
    // Either a cycle or a genuinely deep value. Rebuild the chain of containers from the
    // root along the key trail and look for the first one that repeats.
    const chain: unknown[] = [rootValue];
    for (let i = 1; i <= depth; i++) {
      chain.push((chain[i - 1] as Record<string | number, unknown>)[keyTrail[i]]);
    }
    for (let j = 1; j <= depth; j++) {
      for (let i = 0; i < j; i++) {
        if (chain[i] === chain[j]) fail(j, `circular reference to ${pathOf(i)}`);
      }
    }
    fail(depth, `value nested deeper than ${MAX_DEPTH} levels`);
  }
}

function describe(v: object): string {
  const proto = Object.getPrototypeOf(v) as { constructor?: { name?: string } } | null;
  const name = proto?.constructor?.name;
  if (!name) return 'object with a non-plain prototype';
  if (v instanceof Date || v instanceof Map || v instanceof Set || v instanceof RegExp ||
      v instanceof Promise || v instanceof WeakMap || v instanceof WeakSet || v instanceof Error ||
      v instanceof ArrayBuffer || v instanceof DataView || ArrayBuffer.isView(v) ||
      v instanceof String || v instanceof Number || v instanceof Boolean) {
    return name;
  }
  return `instance of ${name}`;
}

function writeValue(v: unknown, depth: number): void {
  switch (typeof v) {
    case 'string':
      writeStr(v, depth);
      return;
    case 'number':
      if (Number.isInteger(v)) writeInt(v);
      else writeFloat64(v);
      return;
    case 'boolean':
      if (pos + 1 > buf.length) grow(pos + 1);
      buf[pos++] = v ? 0xc3 : 0xc2;
      return;
    case 'object': {
      if (v === null) {
        if (pos + 1 > buf.length) grow(pos + 1);
        buf[pos++] = 0xc0;
        return;
      }
      if (Array.isArray(v)) {
        writeArray(v, depth);
        return;
      }
      if (v instanceof Uint8Array) {
        writeBin(v, depth);
        return;
      }
      const proto = Object.getPrototypeOf(v);
      if (proto === Object.prototype || proto === null) {
        writeMap(v as Record<string, unknown>, depth);
        return;
      }
      return fail(depth, describe(v));
    }
    case 'bigint':
      writeBigInt(v, depth);
      return;
    case 'undefined':
      return fail(depth, 'undefined (use null)');
    case 'symbol':
      return fail(depth, 'Symbol');
    case 'function':
      return fail(depth, 'function');
    default:
      return fail(depth, typeof v);
  }
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function pathOf(depth: number): string {
  let p = String(keyTrail[0]);
  for (let i = 1; i <= depth; i++) {
    const k = keyTrail[i];
    if (typeof k === 'number') p += `[${k}]`;
    else if (IDENT.test(k)) p += `.${k}`;
    else p += `[${JSON.stringify(k)}]`;
  }
  return p;
}

function fail(depth: number, what: string): never {
  throw new SerializationError(pathOf(depth), what);
}

/** Begin an output; reserve the frame header if `frame`. */
function begin(frame: boolean, maxBytes: number): void {
  if (freshSlabNext && spare !== null && spare === buf.buffer) {
    // The large frame that filled this slab has been written and handed back: start over in it.
    spare = null;
    start = 0;
    freshSlabNext = false;
  } else if (freshSlabNext || buf.length - start < MIN_FREE) {
    buf = Buffer.allocUnsafeSlow(SLAB_BYTES);
    start = 0;
    freshSlabNext = false;
  }
  // MIN_FREE >= 4, so the frame header always fits here.
  pos = frame ? start + 4 : start;
  payloadStart = pos;
  limit = maxBytes;
}

/**
 * A large frame's slab, handed back once its write has completed (releaseFrame). Reusing it
 * for the next large frame spares a fresh multi-MiB allocation per request, which otherwise
 * survives a scavenge (the pipe write holds it) and ends in a Mark-Compact: GC was two thirds
 * of the Node side's time at 1 MiB.
 */
let spare: ArrayBuffer | null = null;

function takeSpare(cap: number): Buffer | null {
  if (spare === null || spare.byteLength < cap) return null;
  const slab = Buffer.from(spare, 0, spare.byteLength);
  spare = null;
  return slab;
}

/**
 * The caller is done with a frame this module produced (its write completed): a large frame's
 * slab may be reused. Never call it for a frame that is still referenced.
 */
export function releaseFrame(frame: Buffer): void {
  if (frame.length >= LARGE_FRAME && (spare === null || frame.buffer.byteLength > spare.byteLength)) {
    spare = frame.buffer as ArrayBuffer;
  }
}

/** Finish an output: fill the frame header, hand out the bytes as a view of the slab. */
function finish(frame: boolean): Buffer {
  const size = pos - payloadStart;
  if (size > limit) throw new TooLarge(size);
  if (frame) writeU32(buf, start, size);
  const out = buf.subarray(start, pos);
  start = pos;
  if (out.length >= LARGE_FRAME) freshSlabNext = true;
  rootValue = undefined;
  return out;
}

/** Drop a failed output: nothing was handed out, the slab space is reused. */
function abandon(err: unknown, root: string, noun = 'value'): never {
  pos = start;
  rootValue = undefined;
  if (err instanceof TooLarge) {
    throw new SerializationError(root, `a ${noun} encoding to more than ${limit} bytes (maxFrameBytes ${limit}; at least ${err.bytes} needed)`);
  }
  throw err;
}

function run(value: unknown, root: string, frame: boolean, maxBytes: number): Buffer {
  begin(frame, maxBytes);
  keyTrail[0] = root;
  rootValue = value;
  try {
    writeValue(value, 0);
    return finish(frame);
  } catch (err) {
    return abandon(err, root);
  }
}

/**
 * Encode one value as a bare MessagePack payload (no frame header).
 * @param root the name of the value in error paths (default "value")
 */
export function encode(value: unknown, root = 'value', maxBytes = Number.MAX_SAFE_INTEGER): Buffer {
  return run(value, root, false, maxBytes);
}

/**
 * Encode one value as a complete frame: 4-byte big-endian payload length, then the payload,
 * in one Buffer ready for a single write.
 */
export function encodeFrame(value: unknown, root = 'value', maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Buffer {
  return run(value, root, true, maxFrameBytes);
}

// Pre-encoded keys of a request map.
const K_ID = Buffer.from([0xa2, 0x69, 0x64]); // "id"
const K_CMD = Buffer.from([0xa3, 0x63, 0x6d, 0x64]); // "cmd"
const K_ARGS = Buffer.from([0xa4, 0x61, 0x72, 0x67, 0x73]); // "args"
const K_SESSION = Buffer.from([0xa7, 0x73, 0x65, 0x73, 0x73, 0x69, 0x6f, 0x6e]); // "session"
const K_DEADLINE = Buffer.from([0xa8, 0x64, 0x65, 0x61, 0x64, 0x6c, 0x69, 0x6e, 0x65]); // "deadline"
const K_STREAM = Buffer.from([0xa6, 0x73, 0x74, 0x72, 0x65, 0x61, 0x6d]); // "stream"

function writeRaw(b: Buffer): void {
  const n = b.length;
  if (pos + n > buf.length) grow(pos + n);
  const out = buf;
  const p = pos;
  for (let i = 0; i < n; i++) out[p + i] = b[i];
  pos = p + n;
}

/**
 * One request frame (host → worker), `{id, cmd, args, session}` plus `deadline` when there is
 * one (an absolute time in ms since the Unix epoch) and `stream` (the chunk window) for a stream
 * request (docs/PROTOCOL.md). `args === undefined` and a null `session` are sent as nil. Errors
 * name the path from `args`.
 */
export function encodeRequest(id: number, cmd: string, args: unknown, session: string | null, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES, deadline: number | null = null, window = 0): Buffer {
  begin(true, maxFrameBytes);
  try {
    if (pos + 1 > buf.length) grow(pos + 1);
    buf[pos++] = 0x84 + (deadline === null ? 0 : 1) + (window > 0 ? 1 : 0);
    writeRaw(K_ID);
    keyTrail[0] = 'id';
    if (!Number.isSafeInteger(id)) fail(0, `request id ${String(id)} (must be a safe integer)`);
    writeInt(id);
    writeRaw(K_CMD);
    keyTrail[0] = 'cmd';
    if (typeof cmd !== 'string') fail(0, `${typeof cmd} command name (must be a string)`);
    writeStr(cmd, 0);
    writeRaw(K_ARGS);
    keyTrail[0] = 'args';
    rootValue = args;
    if (args === undefined) {
      if (pos + 1 > buf.length) grow(pos + 1);
      buf[pos++] = 0xc0;
    } else {
      writeValue(args, 0);
    }
    writeRaw(K_SESSION);
    keyTrail[0] = 'session';
    if (session === null || session === undefined) {
      if (pos + 1 > buf.length) grow(pos + 1);
      buf[pos++] = 0xc0;
    } else if (typeof session === 'string') {
      writeStr(session, 0);
    } else {
      fail(0, `${typeof session} session id (must be a string or null)`);
    }
    if (deadline !== null) {
      writeRaw(K_DEADLINE);
      keyTrail[0] = 'deadline';
      if (!Number.isFinite(deadline)) fail(0, `deadline ${String(deadline)} (must be a finite number of ms)`);
      writeFloat64(deadline);
    }
    if (window > 0) {
      writeRaw(K_STREAM);
      keyTrail[0] = 'stream';
      if (!Number.isSafeInteger(window)) fail(0, `stream window ${String(window)} (must be a positive integer)`);
      writeInt(window);
    }
    return finish(true);
  } catch (err) {
    return abandon(err, 'args', 'request');
  }
}

