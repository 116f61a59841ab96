/**
 * MessagePack decoder for the pyvisor wire protocol (docs/PROTOCOL.md §3).
 *
 * Two steps per frame:
 *  1. `validate` walks the bytes once (no allocation, bulk data skipped, not read) and
 *     refuses anything outside the wire types: every ext type (msgpackr would otherwise turn
 *     0xd4/0xd5 0x72 into record definitions that change the meaning of later fixints, ext
 *     -1 into Dates, ext 0 into `undefined`, 0x62 into bundled strings...), the never-used
 *     byte 0xc1, map keys that are not strings, strings that are not valid UTF-8, nesting
 *     deeper than MAX_FRAME_DEPTH, truncated values and trailing bytes after the value.
 *  2. msgpackr's `Unpackr` (records off, maps as plain objects, `int64AsType: 'auto'`)
 *     builds the value from bytes that are now known to be plain MessagePack.
 *
 * Value mapping (MessagePack → JS): nil → null; bool → boolean; int → number when
 * |n| <= 2^53, else bigint; float32/float64 → number; str → string; bin → Buffer (a view
 * into the frame, no copy); array → Array; map → plain object. A map key "__proto__" arrives
 * as "__proto_" (msgpackr's guard against prototype pollution).
 */
import { isUtf8 } from 'node:buffer';
import { Unpackr } from 'msgpackr';
import { ProtocolError } from '../errors.js';
import { MAX_DEPTH } from './encode.js';

/**
 * Deepest nesting accepted in a frame payload: a value (args, result) may hold MAX_DEPTH
 * nested containers, and the request/reply map around it adds one level.
 */
export const MAX_FRAME_DEPTH = MAX_DEPTH + 1;

// 'auto' (safe integers as number, larger ones as bigint) is supported by msgpackr 1.11+
// but missing from its type declarations.
const unpackr = new Unpackr({
  useRecords: false,
  mapsAsObjects: true,
  int64AsType: 'auto' as 'bigint',
  structuredClone: false,
  moreTypes: false,
});

/** Thrown by the validator; carries a message and the byte offset. */
class Invalid {
  constructor(readonly message: string) {}
}

const EMPTY = Buffer.alloc(0);
let src: Buffer = EMPTY;
let end = 0;

function hex(b: number): string {
  return `0x${b.toString(16).padStart(2, '0')}`;
}

function truncated(at: number): never {
  throw new Invalid(`truncated MessagePack value (needs bytes past offset ${at}; frame has ${end})`);
}

function u16(p: number): number {
  return (src[p] << 8) | src[p + 1];
}

function u32(p: number): number {
  return ((src[p] << 24) >>> 0) + ((src[p + 1] << 16) | (src[p + 2] << 8) | src[p + 3]);
}

/** Check the UTF-8 of the string body [p, p + n). */
function checkUtf8(p: number, n: number): void {
  if (n < 48) {
    // Short strings are nearly always ASCII: check that in JS, no view, no native call.
    let i = p;
    const e = p + n;
    while (i < e && src[i] < 0x80) i++;
    if (i === e) return;
  }
  if (!isUtf8(src.subarray(p, p + n))) {
    throw new Invalid(`string at offset ${p} is not valid UTF-8`);
  }
}

/** Skip one string at p (as a map key); returns the position after it. */
function skipKey(p: number): number {
  if (p >= end) truncated(p);
  const t = src[p];
  let n: number;
  if (t >= 0xa0 && t <= 0xbf) { n = t & 0x1f; p += 1; }
  else if (t === 0xd9) { if (p + 2 > end) truncated(p); n = src[p + 1]; p += 2; }
  else if (t === 0xda) { if (p + 3 > end) truncated(p); n = u16(p + 1); p += 3; }
  else if (t === 0xdb) { if (p + 5 > end) truncated(p); n = u32(p + 1); p += 5; }
  else throw new Invalid(`map key at offset ${p} is not a string (type byte ${hex(t)})`);
  if (p + n > end) truncated(p + n);
  checkUtf8(p, n);
  return p + n;
}

function skipItems(p: number, count: number, isMap: boolean, depth: number): number {
  if (depth > MAX_FRAME_DEPTH) throw new Invalid(`value nested deeper than ${MAX_FRAME_DEPTH} levels (a frame holds a value of at most ${MAX_DEPTH} inside its request/reply map)`);
  // Every item takes at least one byte (two per map entry): reject impossible counts early.
  if (count > (end - p) / (isMap ? 2 : 1)) truncated(end);
  if (isMap) {
    for (let i = 0; i < count; i++) {
      p = skipKey(p);
      p = skip(p, depth);
    }
  } else {
    for (let i = 0; i < count; i++) p = skip(p, depth);
  }
  return p;
}

/** Skip one value at p; returns the position after it. */
function skip(p: number, depth: number): number {
  if (p >= end) truncated(p);
  const t = src[p];
  if (t < 0x80 || t >= 0xe0) return p + 1; // positive / negative fixint
  if (t < 0x90) return skipItems(p + 1, t & 0x0f, true, depth + 1); // fixmap
  if (t < 0xa0) return skipItems(p + 1, t & 0x0f, false, depth + 1); // fixarray
  if (t < 0xc0) { // fixstr
    const n = t & 0x1f;
    if (p + 1 + n > end) truncated(p + 1 + n);
    checkUtf8(p + 1, n);
    return p + 1 + n;
  }
  let n: number;
  switch (t) {
    case 0xc0: case 0xc2: case 0xc3: return p + 1;
    case 0xcc: case 0xd0: n = 2; break;
    case 0xcd: case 0xd1: n = 3; break;
    case 0xca: case 0xce: case 0xd2: n = 5; break;
    case 0xcb: case 0xcf: case 0xd3: n = 9; break;
    case 0xc4: // bin8
      if (p + 2 > end) truncated(p);
      n = 2 + src[p + 1];
      break;
    case 0xc5: // bin16
      if (p + 3 > end) truncated(p);
      n = 3 + u16(p + 1);
      break;
    case 0xc6: // bin32
      if (p + 5 > end) truncated(p);
      n = 5 + u32(p + 1);
      break;
    case 0xd9: case 0xda: case 0xdb: { // str8 / str16 / str32
      const h = t === 0xd9 ? 2 : t === 0xda ? 3 : 5;
      if (p + h > end) truncated(p);
      const len = h === 2 ? src[p + 1] : h === 3 ? u16(p + 1) : u32(p + 1);
      if (p + h + len > end) truncated(p + h + len);
      checkUtf8(p + h, len);
      return p + h + len;
    }
    case 0xdc: if (p + 3 > end) truncated(p); return skipItems(p + 3, u16(p + 1), false, depth + 1);
    case 0xdd: if (p + 5 > end) truncated(p); return skipItems(p + 5, u32(p + 1), false, depth + 1);
    case 0xde: if (p + 3 > end) truncated(p); return skipItems(p + 3, u16(p + 1), true, depth + 1);
    case 0xdf: if (p + 5 > end) truncated(p); return skipItems(p + 5, u32(p + 1), true, depth + 1);
    case 0xc1:
      throw new Invalid(`byte 0xc1 (never used in MessagePack) at offset ${p}`);
    default: {
      // 0xc7-0xc9 ext 8/16/32, 0xd4-0xd8 fixext: not part of the wire types.
      const typeAt = t === 0xc7 ? p + 2 : t === 0xc8 ? p + 3 : t === 0xc9 ? p + 5 : p + 1;
      const type = typeAt < end ? src[typeAt] : undefined;
      throw new Invalid(`MessagePack extension type ${type === undefined ? '?' : (type << 24 >> 24)} (${hex(t)}) at offset ${p} is not allowed on the wire`);
    }
  }
  p += n;
  if (p > end) truncated(p);
  return p;
}

/**
 * Check that `bytes` holds exactly one MessagePack value made only of the wire types.
 * Throws ProtocolError naming the problem and its offset.
 */
export function validate(bytes: Buffer): void {
  src = bytes;
  end = bytes.length;
  try {
    if (end === 0) throw new Invalid('empty payload (a zero-length frame is not a MessagePack value)');
    const after = skip(0, 0);
    if (after !== end) {
      throw new Invalid(`${end - after} trailing byte(s) after the MessagePack value (value ends at offset ${after} of ${end})`);
    }
  } catch (err) {
    if (err instanceof Invalid) throw new ProtocolError(`invalid frame: ${err.message}`);
    /* c8 ignore next */
    throw new ProtocolError('invalid frame: validation failed', { cause: err });
  } finally {
    src = EMPTY;
  }
}

/**
 * Decode one frame payload (the bytes after the 4-byte header) into a JS value.
 * Throws ProtocolError (with the underlying error as `cause`) for anything that is not
 * exactly one well-formed MessagePack value of the wire types.
 */
export function decode(payload: Buffer): unknown {
  validate(payload);
  try {
    return unpackr.unpack(payload);
  } catch (err) {
    throw new ProtocolError(`invalid frame: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  }
}
