/**
 * The TS codec against the shared vectors (test/fixtures/vectors.json, produced by the
 * Python side) plus round trips of the JS-specific mappings.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encode, encodeFrame, encodeRequest, MAX_DEPTH } from '../../src/codec/encode.js';
import { decode, validate, MAX_FRAME_DEPTH } from '../../src/codec/decode.js';
import { ProtocolError } from '../../src/errors.js';
import { assertWireEqual, encoderInput, expected, loadVectors } from './_helpers.js';

const file = loadVectors();

if (!file) {
  test('shared vectors (test/fixtures/vectors.json) — not present yet', () => {
    console.log('  [skip] test/fixtures/vectors.json does not exist yet; the Python side generates it');
  });
} else {
  const skipped: string[] = [];
  test(`vector file format is the one this test reads (${file.vectors.length} vectors)`, () => {
    assert.type(file.format, 'string');
    assert.ok(file.format.includes('"vectors"'), 'format mentions "vectors"');
    assert.ok(file.vectors.length > 0);
    for (const v of file.vectors) {
      assert.type(v.name, 'string');
      assert.type(v.hex, 'string');
      assert.type(v.value, 'object');
    }
  });

  test('decode: every vector decodes to its value', () => {
    for (const v of file.vectors) {
      const got = decode(Buffer.from(v.hex, 'hex'));
      assertWireEqual(got, expected(v.value), v.name);
    }
  });

  test('encode: every vector encodes to exactly its bytes (integral floats skipped)', () => {
    let checked = 0;
    for (const v of file.vectors) {
      const input = encoderInput(v.value);
      if (input.skip) {
        skipped.push(`${v.name}: ${input.skip}`);
        continue;
      }
      const got = encode(input.value).toString('hex');
      if (got !== v.hex) {
        assert.fixture(got.slice(0, 400), v.hex.slice(0, 400), `${v.name}: bytes differ`);
        assert.unreachable(`${v.name}: bytes differ past the first 200 bytes (length ${got.length / 2} vs ${v.hex.length / 2})`);
      }
      checked++;
    }
    assert.ok(checked > 0);
    console.log(`  encode: ${checked} vectors byte-exact; skipped ${skipped.length}: ${skipped.join('; ')}`);
  });

  test('encode: framed output is the 4-byte big-endian length plus the same bytes', () => {
    for (const v of file.vectors) {
      const input = encoderInput(v.value);
      if (input.skip) continue;
      const frame = encodeFrame(input.value);
      assert.is(frame.readUInt32BE(0), v.hex.length / 2, v.name);
      assert.is(frame.subarray(4).toString('hex'), v.hex, v.name);
    }
  });

  test('decode_only: non-canonical encodings decode to their value', () => {
    for (const v of file.decode_only ?? []) {
      assertWireEqual(decode(Buffer.from(v.hex, 'hex')), expected(v.value), v.name);
    }
  });

  test('invalid: every invalid input is refused with ProtocolError', () => {
    for (const v of file.invalid ?? []) {
      try {
        const got = decode(Buffer.from(v.hex, 'hex'));
        assert.unreachable(`${v.name} (${v.reason}) decoded to ${String(got)}`);
      } catch (err) {
        if ((err as Error).name === 'Assertion') throw err;
        assert.instance(err, ProtocolError, v.name);
        assert.is((err as ProtocolError).code, 'PROTOCOL_ERROR');
      }
    }
  });
}

// ---- JS-specific mappings ------------------------------------------------------------------

test('integers: number and bigint give the same minimal bytes; decode gives number up to 2^53', () => {
  const cases: [number | bigint, string][] = [
    [0, '00'], [127, '7f'], [128, 'cc80'], [-32, 'e0'], [-33, 'd0df'],
    [2 ** 32, 'cf0000000100000000'], [2 ** 53, 'cf0020000000000000'],
    [-(2 ** 31) - 1, 'd3ffffffff7fffffff'], [-(2 ** 63), 'd38000000000000000'],
    [2n ** 64n - 1n, 'cfffffffffffffffff'], [-(2n ** 63n), 'd38000000000000000'],
  ];
  for (const [v, hex] of cases) {
    assert.is(encode(v).toString('hex'), hex, `encode ${v}`);
    if (typeof v === 'number' && Number.isSafeInteger(v)) assert.is(encode(BigInt(v)).toString('hex'), hex, `encode ${v}n`);
  }
  assert.is(decode(Buffer.from('cf0020000000000000', 'hex')), 2 ** 53);
  assert.is(decode(Buffer.from('cf0020000000000001', 'hex')), 2n ** 53n + 1n);
  assert.is(decode(Buffer.from('d3ffdfffffffffffff', 'hex')), -(2n ** 53n) - 1n);
  assert.is(decode(Buffer.from('cfffffffffffffffff', 'hex')), 2n ** 64n - 1n);
  assert.is(encode(-0).toString('hex'), '00', '-0 is sent as the integer 0');
  assert.is(encode(2 ** 64).toString('hex'), 'cb43f0000000000000', 'integers beyond 2^64 are floats');
  assert.is(encode(1.5).toString('hex'), 'cb3ff8000000000000');
  assert.is(encode(NaN).toString('hex'), 'cb7ff8000000000000');
  assert.ok(Number.isNaN(decode(encode(NaN))));
  assert.is(decode(encode(-Infinity)), -Infinity);
});

test('strings: header widths follow UTF-8 byte length; ASCII fast path and Buffer#write agree', () => {
  for (const [s, head] of [
    ['', 'a0'], ['x'.repeat(31), 'bf'], ['x'.repeat(32), 'd920'], ['é'.repeat(15), 'be'], ['é'.repeat(16), 'd920'],
    ['x'.repeat(63), 'd93f'], ['x'.repeat(64), 'd940'], ['€'.repeat(85), 'd9ff'], ['€'.repeat(86), 'da0102'],
    ['x'.repeat(4095), 'da0fff'], ['x'.repeat(4096), 'da1000'], ['😀'.repeat(16384), 'db00010000'],
    ['a'.repeat(10) + 'é', 'ac'], ['x'.repeat(30000), 'da7530'], ['é'.repeat(1_100_000), 'db002191c0'], ['x'.repeat(1_048_576), 'db00100000'],
  ] as [string, string][]) {
    const b = encode(s);
    assert.is(b.subarray(0, head.length / 2).toString('hex'), head, `header of ${JSON.stringify(s.slice(0, 12))}… (${s.length} chars)`);
    assert.is(b.length, head.length / 2 + Buffer.byteLength(s), 'total length');
    assert.is(decode(b), s);
  }
});

test('maps: undefined properties are omitted (header count rewritten); symbol keys ignored', () => {
  assert.is(encode({ a: 1, b: undefined }).toString('hex'), '81a16101');
  const o: Record<string, unknown> = {};
  for (let i = 0; i < 20; i++) o[`k${i}`] = i % 5 === 0 ? i : undefined; // 20 keys, 4 defined
  const b = encode(o);
  assert.is(b[0], 0x84, 'map16 header shrunk to fixmap 4');
  assert.equal(decode(b), { k0: 0, k5: 5, k10: 10, k15: 15 });
  const big: Record<string, unknown> = {};
  for (let i = 0; i < 65536; i++) big[`k${i}`] = i === 65535 ? undefined : 1;
  const bb = encode(big);
  assert.is(bb[0], 0xde, 'map32 → map16');
  assert.is(Object.keys(decode(bb) as object).length, 65535);
  assert.is(encode({ [Symbol('hidden')]: 1, a: 2 }).toString('hex'), '81a16102');
  assert.is(encode(Object.assign(Object.create(null), { x: true })).toString('hex'), '81a178c3');
});

test('bin: Buffer and Uint8Array encode as bin; decode gives a Buffer view (no copy)', () => {
  const u = new Uint8Array([1, 2, 3]);
  assert.is(encode(u).toString('hex'), 'c403010203');
  const frame = encode({ b: Buffer.alloc(300, 9) });
  const out = decode(frame) as { b: Buffer };
  assert.ok(Buffer.isBuffer(out.b));
  assert.is(out.b.length, 300);
  assert.is(out.b.buffer, frame.buffer, 'bin is a view into the frame buffer');
});

test('depth: a value may nest MAX_DEPTH containers; a frame adds one level for its envelope', () => {
  let v: unknown = [];
  for (let i = 1; i < MAX_DEPTH; i++) v = [v];
  const b = encode(v);
  let d = 0;
  let x = decode(b);
  while (Array.isArray(x) && x.length) { d++; x = x[0]; }
  assert.is(d + 1, MAX_DEPTH);
  assert.throws(() => encode([v]), new RegExp(`nested deeper than ${MAX_DEPTH} levels`));
  // a request/reply map around a MAX_DEPTH value is MAX_FRAME_DEPTH deep: accepted
  const request = encodeRequest(1, 'echo', v, null);
  assert.ok(decode(request.subarray(4)));
  const tooDeep = Buffer.concat([Buffer.from([0x91, 0x91]), b]);
  assert.is(MAX_FRAME_DEPTH, MAX_DEPTH + 1);
  assert.throws(() => decode(tooDeep), (e: unknown) => e instanceof ProtocolError && /nested deeper than 512 levels/.test((e as Error).message));
});

test('decoder refuses msgpackr extensions a worker could smuggle in', () => {
  const cases: [string, string][] = [
    ['d6ff00000001', 'timestamp ext -1 → Date'],
    ['d40000', 'ext 0 → undefined'],
    ['d47200', 'record definition 0x72'],
    ['d57200c0', 'record definition (fixext2) 0x72'],
    ['c70373010203', 'ext8 0x73 → Set'],
    ['c7000c', 'ext8 empty'],
    ['81a161d6ff00000001', 'timestamp inside a map'],
    ['c1', 'never-used byte'],
    ['9201', 'truncated array'],
    ['c0c0', 'trailing bytes'],
    ['dd7fffffff', 'array32 with a huge count (no allocation)'],
  ];
  for (const [hex, what] of cases) {
    assert.throws(() => decode(Buffer.from(hex, 'hex')), (e: unknown) => e instanceof ProtocolError, what);
  }
  try {
    validate(Buffer.from('81a161d6ff00000001', 'hex'));
  } catch (e) {
    assert.match((e as Error).message, /extension type -1 \(0xd6\) at offset 3/);
  }
  try {
    decode(Buffer.from('c0c0c0', 'hex'));
  } catch (e) {
    assert.match((e as Error).message, /2 trailing byte\(s\)/);
  }
});

test('encodeRequest: {id, cmd, args, session} in that order; undefined args → nil', () => {
  const f = encodeRequest(1, 'ping', undefined, null);
  assert.is(f.readUInt32BE(0), f.length - 4);
  assert.is(f.subarray(4).toString('hex'), '84a2696401a3636d64a470696e67a461726773c0a773657373696f6ec0');
  assert.equal(decode(f.subarray(4)), { id: 1, cmd: 'ping', args: null, session: null });
  const g = encodeRequest(42, 'execute_program', { program_id: 'qa', inputs: { question: 'What is Elixir?' } }, 'user_123');
  assert.equal(decode(g.subarray(4)), { id: 42, cmd: 'execute_program', args: { program_id: 'qa', inputs: { question: 'What is Elixir?' } }, session: 'user_123' });
  const vec = file?.vectors.find((v) => v.name === 'nested request frame');
  if (vec) {
    const want = expected(vec.value) as { id: number; cmd: string; args: unknown; session: string | null };
    assert.is(encodeRequest(want.id, want.cmd, want.args, want.session).subarray(4).toString('hex'), vec.hex, 'matches the shared "nested request frame" vector');
  }
});

test('outputs are independent: a later encode never overwrites an earlier frame', () => {
  const frames = Array.from({ length: 5000 }, (_, i) => encodeFrame({ i, s: `value-${i}`, pad: 'p'.repeat(i % 200) }));
  frames.push(encodeFrame({ big: Buffer.alloc(300_000, 1) }));
  frames.push(encodeFrame({ after: 'big' }));
  for (let i = 0; i < 5000; i++) {
    assert.equal(decode(frames[i].subarray(4)), { i, s: `value-${i}`, pad: 'p'.repeat(i % 200) });
  }
  assert.equal(decode(frames[5001].subarray(4)), { after: 'big' });
});

test('a failed encode writes nothing and leaves the encoder usable', () => {
  const before = encodeFrame({ ok: 1 });
  assert.throws(() => encodeFrame({ ok: 1, bad: Symbol('x') }));
  const after = encodeFrame({ ok: 2 });
  assert.equal(decode(before.subarray(4)), { ok: 1 });
  assert.equal(decode(after.subarray(4)), { ok: 2 });
});

test.run();
