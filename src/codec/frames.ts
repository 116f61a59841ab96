/**
 * Streaming frame reader: turns arbitrary stdout chunks into frame payloads.
 *
 * Frame = 4-byte big-endian unsigned payload length, then the payload. The reader keeps a
 * list of pending chunks and a byte count; a payload that lies inside one chunk is handed
 * out as a view (no copy), a payload spread over several chunks is copied exactly once into
 * a Buffer of its own size. Nothing is ever re-concatenated, so the cost is linear in the
 * bytes received whatever the chunking.
 *
 * - A zero-length frame is reported through `onError` (it is not a MessagePack value); the
 *   reader stays in sync and goes on.
 * - A length above `maxFrameBytes` is reported through `onError` without allocating
 *   anything, and the reader closes: after a bad header the stream cannot be trusted.
 */
import { ProtocolError } from '../errors.js';
import { DEFAULT_MAX_FRAME_BYTES } from './encode.js';

export interface FrameReaderOptions {
  /** Largest accepted payload length in bytes (default 64 MiB). */
  maxFrameBytes?: number;
  /** Called with each complete payload. The Buffer may be a view into a received chunk. */
  onFrame(payload: Buffer): void;
  /** Called for a zero-length frame (reader goes on) or an oversized header (reader closes). */
  onError(err: ProtocolError): void;
}

export class FrameReader {
  readonly maxFrameBytes: number;
  private readonly onFrame: (payload: Buffer) => void;
  private readonly onError: (err: ProtocolError) => void;
  /** Pending chunks from index `first` on; chunks[first] is consumed from `headOffset`. */
  private chunks: Buffer[] = [];
  private first = 0;
  private headOffset = 0;
  /** Bytes pending across `chunks` (from headOffset on). */
  private pending = 0;
  /** Payload length of the frame being assembled, or -1 while waiting for a header. */
  private need = -1;
  private isClosed = false;
  /** Payload bytes copied to assemble frames that spanned chunks (for tests and metrics). */
  bytesCopied = 0;
  /** Number of frames that had to be assembled by copying. */
  framesCopied = 0;

  constructor(options: FrameReaderOptions) {
    const max = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    if (!Number.isInteger(max) || max < 1 || max > 0xffffffff) {
      throw new RangeError(`maxFrameBytes must be an integer in [1, 2^32-1], got ${max}`);
    }
    this.maxFrameBytes = max;
    this.onFrame = options.onFrame;
    this.onError = options.onError;
  }

  /** True after an oversized header or close(): further input is ignored. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Bytes received but not yet handed out (a partial frame, or a partial header). */
  get bufferedBytes(): number {
    return this.pending;
  }

  /** Length of the frame being assembled (-1 while between frames). */
  get pendingFrameLength(): number {
    return this.need;
  }

  /** Stop reading; drop what is buffered. */
  close(): void {
    this.isClosed = true;
    this.chunks = [];
    this.first = 0;
    this.pending = 0;
    this.headOffset = 0;
  }

  push(chunk: Buffer): void {
    if (this.isClosed || chunk.length === 0) return;
    if (this.pending === 0 && this.need < 0) {
      this.pushFresh(chunk);
      return;
    }
    this.chunks.push(chunk);
    this.pending += chunk.length;
    this.drain();
  }

  /** Fast path: nothing pending, walk the frames inside this chunk directly. */
  private pushFresh(chunk: Buffer): void {
    let off = 0;
    const len = chunk.length;
    while (len - off >= 4) {
      const n = chunk.readUInt32BE(off);
      if (n > this.maxFrameBytes) {
        this.oversized(n);
        return;
      }
      if (len - off - 4 < n) {
        // Partial frame: remember the header, keep the rest.
        this.need = n;
        off += 4;
        break;
      }
      off += 4;
      const payload = chunk.subarray(off, off + n);
      off += n;
      this.emit(payload);
      if (this.isClosed) return;
    }
    if (off < len) {
      this.chunks.push(chunk);
      this.headOffset = off;
      this.pending = len - off;
    }
  }

  private drain(): void {
    while (!this.isClosed) {
      if (this.need < 0) {
        if (this.pending < 4) return;
        const n = this.readHeader();
        if (n > this.maxFrameBytes) {
          this.oversized(n);
          return;
        }
        this.need = n;
      }
      const n = this.need;
      if (this.pending < n) return;
      const payload = this.take(n);
      this.need = -1;
      this.emit(payload);
      if (this.pending === 0) return;
      if (this.chunks.length - this.first === 1) {
        // The rest lies in one chunk: continue on the fast path.
        const rest = this.chunks[this.first].subarray(this.headOffset);
        this.chunks = [];
        this.first = 0;
        this.headOffset = 0;
        this.pending = 0;
        this.pushFresh(rest);
        return;
      }
    }
  }

  private emit(payload: Buffer): void {
    if (payload.length === 0) {
      this.onError(new ProtocolError('zero-length frame (an empty payload is not a MessagePack value)'));
      return;
    }
    this.onFrame(payload);
  }

  private oversized(n: number): void {
    this.close();
    this.onError(new ProtocolError(`frame length ${n} bytes exceeds the maximum of ${this.maxFrameBytes} bytes (maxFrameBytes); stream closed`));
  }

  /** Read and consume a 4-byte header that may span chunks. Caller checked pending >= 4. */
  private readHeader(): number {
    const c = this.chunks[this.first];
    if (c.length - this.headOffset >= 4) {
      const n = c.readUInt32BE(this.headOffset);
      this.consume(4);
      return n;
    }
    let n = 0;
    for (let i = 0; i < 4; i++) {
      n = n * 256 + this.chunks[this.first][this.headOffset];
      this.consume(1);
    }
    return n;
  }

  /** Drop `k` bytes from the front (k <= bytes left in the first chunk). */
  private consume(k: number): void {
    this.headOffset += k;
    this.pending -= k;
    if (this.headOffset === this.chunks[this.first].length) this.dropFirst();
  }

  /** Done with chunks[first]: advance without Array#shift (which may be O(n)). */
  private dropFirst(): void {
    this.headOffset = 0;
    this.first++;
    if (this.first === this.chunks.length) {
      this.chunks = [];
      this.first = 0;
    } else if (this.first >= 1024 && this.first * 2 >= this.chunks.length) {
      this.chunks = this.chunks.slice(this.first);
      this.first = 0;
    }
  }

  /** Take `n` bytes from the front: a view when they lie in the first chunk, else one copy. */
  private take(n: number): Buffer {
    if (n === 0) return EMPTY;
    const head = this.chunks[this.first];
    const avail = head.length - this.headOffset;
    if (avail >= n) {
      const view = head.subarray(this.headOffset, this.headOffset + n);
      this.consume(n);
      return view;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[this.first];
      const k = Math.min(c.length - this.headOffset, n - filled);
      c.copy(out, filled, this.headOffset, this.headOffset + k);
      filled += k;
      this.headOffset += k;
      this.pending -= k;
      if (this.headOffset === c.length) this.dropFirst();
    }
    this.bytesCopied += n;
    this.framesCopied++;
    return out;
  }
}

const EMPTY = Buffer.alloc(0);
