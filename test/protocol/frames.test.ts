/**
 * FrameReader: chunking at every byte position, many frames per chunk, zero-length frames,
 * oversized headers (no allocation, reader closes), and linear cost (one copy per frame).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FrameReader } from '../../src/codec/frames.js';
import { encodeFrame } from '../../src/codec/encode.js';
import { decode } from '../../src/codec/decode.js';
import { ProtocolError } from '../../src/errors.js';

function collect(maxFrameBytes?: number) {
  const frames: Buffer[] = [];
  const errors: ProtocolError[] = [];
  const reader = new FrameReader({
    maxFrameBytes,
    onFrame: (b) => frames.push(Buffer.from(b)),
    onError: (e) => errors.push(e),
  });
  return { reader, frames, errors };
}

const values = [{ id: 1, ok: true, result: 'pong' }, [1, 2, 3], 'x'.repeat(300), { b: Buffer.alloc(70, 3) }, null];
const stream = Buffer.concat(values.map((v) => encodeFrame(v)));

test('whole stream in one chunk: every frame, in order', () => {
  const { reader, frames, errors } = collect();
  reader.push(stream);
  assert.is(errors.length, 0);
  assert.equal(frames.map((f) => decode(f)), values);
  assert.is(reader.bufferedBytes, 0);
});

test('split into two chunks at every byte position', () => {
  for (let cut = 0; cut <= stream.length; cut++) {
    const { reader, frames, errors } = collect();
    reader.push(stream.subarray(0, cut));
    reader.push(stream.subarray(cut));
    assert.is(errors.length, 0, `cut ${cut}`);
    assert.equal(frames.map((f) => decode(f)), values, `cut ${cut}`);
  }
});

test('split into three chunks at every pair of positions (first 3 frames)', () => {
  const s = Buffer.concat(values.slice(0, 3).map((v) => encodeFrame(v)));
  for (let i = 0; i <= s.length; i++) {
    for (let j = i; j <= s.length; j++) {
      const { reader, frames } = collect();
      reader.push(s.subarray(0, i));
      reader.push(s.subarray(i, j));
      reader.push(s.subarray(j));
      assert.is(frames.length, 3, `cuts ${i},${j}`);
      assert.equal(decode(frames[2]), values[2]);
    }
  }
});

test('one byte at a time', () => {
  const { reader, frames } = collect();
  for (let i = 0; i < stream.length; i++) reader.push(stream.subarray(i, i + 1));
  assert.equal(frames.map((f) => decode(f)), values);
});

test('many frames per chunk: 10 000 small frames in one push, as views without copies', () => {
  const many = Buffer.concat(Array.from({ length: 10000 }, (_, i) => encodeFrame({ id: i })));
  let n = 0;
  let copiedViews = 0;
  const reader = new FrameReader({
    onFrame: (b) => { if (b.buffer !== many.buffer) copiedViews++; assert.equal(decode(b), { id: n }); n++; },
    onError: (e) => { throw e; },
  });
  reader.push(many);
  assert.is(n, 10000);
  assert.is(copiedViews, 0);
  assert.is(reader.bytesCopied, 0);
});

test('zero-length frame: reported, reader stays in sync', () => {
  const { reader, frames, errors } = collect();
  const s = Buffer.concat([encodeFrame(1), Buffer.from([0, 0, 0, 0]), encodeFrame(2)]);
  reader.push(s.subarray(0, 6));
  reader.push(s.subarray(6));
  assert.is(errors.length, 1);
  assert.match(errors[0].message, /zero-length frame/);
  assert.equal(frames.map((f) => decode(f)), [1, 2]);
  assert.not.ok(reader.closed);
});

test('oversized header: ProtocolError naming length and max, no allocation, reader closed', () => {
  const { reader, frames, errors } = collect(1024);
  const before = process.memoryUsage().arrayBuffers;
  reader.push(Buffer.concat([encodeFrame('ok'), Buffer.from([0xff, 0xff, 0xff, 0xf0]), Buffer.alloc(100)]));
  const after = process.memoryUsage().arrayBuffers;
  assert.is(frames.length, 1);
  assert.is(errors.length, 1);
  assert.instance(errors[0], ProtocolError);
  assert.match(errors[0].message, /frame length 4294967280 bytes exceeds the maximum of 1024 bytes/);
  assert.ok(reader.closed);
  assert.is(reader.bufferedBytes, 0);
  assert.ok(after - before < 1024 * 1024, 'no large allocation');
  reader.push(encodeFrame('ignored'));
  assert.is(frames.length, 1, 'closed reader ignores input');
});

test('oversized header split across chunks is caught too', () => {
  const { reader, errors } = collect(1000);
  reader.push(Buffer.from([0x00, 0x00]));
  reader.push(Buffer.from([0x03, 0xe9])); // 1001
  assert.is(errors.length, 1);
  assert.match(errors[0].message, /1001 bytes exceeds the maximum of 1000/);
  assert.ok(reader.closed);
});

test('a frame of exactly maxFrameBytes is accepted', () => {
  const { reader, frames, errors } = collect(1000);
  const f = encodeFrame(Buffer.alloc(995)); // c5 03e3 + 995 = 998 bytes... pad to 1000
  const g = encodeFrame('a'.repeat(997)); // da 03e5 + 997 = 1000
  assert.is(g.readUInt32BE(0), 1000);
  reader.push(f);
  reader.push(g);
  assert.is(errors.length, 0);
  assert.is(frames.length, 2);
});

/** Feed one frame of `size` payload bytes in 64 KiB chunks; return bytes copied and frames copied. */
function feedLarge(size: number, chunk = 65536) {
  const payload = Buffer.alloc(size, 0x61);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(size);
  const all = Buffer.concat([header, payload]);
  let got: Buffer | undefined;
  const reader = new FrameReader({ maxFrameBytes: 64 * 1024 * 1024, onFrame: (b) => { got = b; }, onError: (e) => { throw e; } });
  // start mid-chunk so the header itself is split too
  reader.push(all.subarray(0, 2));
  for (let o = 2; o < all.length; o += chunk) reader.push(all.subarray(o, Math.min(all.length, o + chunk)));
  assert.ok(got, 'frame delivered');
  assert.is(got!.length, size);
  assert.ok(got!.equals(payload));
  return { bytesCopied: reader.bytesCopied, framesCopied: reader.framesCopied };
}

test('linear: a frame spread over many chunks is copied exactly once (1 MiB and 16 MiB)', () => {
  const one = feedLarge(1024 * 1024);
  const sixteen = feedLarge(16 * 1024 * 1024);
  assert.equal(one, { bytesCopied: 1024 * 1024, framesCopied: 1 });
  assert.equal(sixteen, { bytesCopied: 16 * 1024 * 1024, framesCopied: 1 });
  // per-byte copy cost is identical: 1 byte copied per payload byte, whatever the size
  const tiny = feedLarge(16 * 1024 * 1024, 1000);
  assert.equal(tiny, { bytesCopied: 16 * 1024 * 1024, framesCopied: 1 }, 'small chunks: still one copy');
});

test('linear (timing, loose bound): per-byte cost of 16 MiB within 8x of 1 MiB (quadratic would be ~16x)', () => {
  // The copy count above is the real assertion; this only guards against a quadratic
  // regression with a bound loose enough for a loaded 2-core machine. Only push() is timed.
  const prepare = (size: number) => {
    const all = Buffer.alloc(4 + size, 0x61);
    all.writeUInt32BE(size, 0);
    const chunks: Buffer[] = [];
    for (let o = 0; o < all.length; o += 65536) chunks.push(all.subarray(o, o + 65536));
    return chunks;
  };
  const time = (chunks: Buffer[], size: number) => {
    let got = 0;
    const reader = new FrameReader({ onFrame: (b) => { got += b.length; }, onError: (e) => { throw e; } });
    const t0 = process.hrtime.bigint();
    for (const c of chunks) reader.push(c);
    const ns = Number(process.hrtime.bigint() - t0);
    assert.is(got, size);
    return ns / size;
  };
  const small = prepare(1024 * 1024);
  const large = prepare(16 * 1024 * 1024);
  time(small, 1024 * 1024);
  const a = Math.min(time(small, 1024 * 1024), time(small, 1024 * 1024), time(small, 1024 * 1024));
  const b = Math.min(time(large, 16 * 1024 * 1024), time(large, 16 * 1024 * 1024), time(large, 16 * 1024 * 1024));
  console.log(`  frame reader: 1 MiB ${a.toFixed(3)} ns/byte, 16 MiB ${b.toFixed(3)} ns/byte`);
  assert.ok(b < a * 8, `16 MiB: ${b.toFixed(2)} ns/byte vs 1 MiB: ${a.toFixed(2)} ns/byte`);
});

test('callbacks may close the reader mid-chunk', () => {
  let n = 0;
  const reader: FrameReader = new FrameReader({ onFrame: () => { n++; if (n === 2) reader.close(); }, onError: () => {} });
  reader.push(Buffer.concat([encodeFrame(1), encodeFrame(2), encodeFrame(3)]));
  assert.is(n, 2);
});

test('invalid maxFrameBytes is refused', () => {
  assert.throws(() => new FrameReader({ maxFrameBytes: 0, onFrame() {}, onError() {} }), RangeError);
  assert.throws(() => new FrameReader({ maxFrameBytes: 2 ** 32, onFrame() {}, onError() {} }), RangeError);
});

test.run();
