/**
 * Codec micro-benchmark (not a test: the .mts name keeps uvu from loading it).
 *   npx tsx test/protocol/codec-bench.mts
 * Compares src/codec against msgpackr's pack/unpack for small objects and large payloads.
 */
import { Packr, Unpackr } from 'msgpackr';
import { encode, encodeFrame, encodeRequest } from '../../src/codec/encode.js';
import { decode } from '../../src/codec/decode.js';
import { FrameReader } from '../../src/codec/frames.js';

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** Best of 3 rounds (the machine is shared: take the least disturbed run). */
function bench(name: string, fn: () => unknown, minMs = 250): number {
  return Math.max(once(fn, minMs), once(fn, minMs), once(fn, minMs));
}

function once(fn: () => unknown, minMs: number): number {
  for (let i = 0; i < 200; i++) fn();
  let n = 0;
  const t0 = process.hrtime.bigint();
  let el = 0;
  let batch = 1;
  while (el < minMs) {
    for (let i = 0; i < batch; i++) fn();
    n += batch;
    el = Number(process.hrtime.bigint() - t0) / 1e6;
    if (batch < 1 << 16) batch *= 2;
  }
  const ops = (n / el) * 1000;
  return ops;
}

const small = { id: 17, cmd: 'execute_program', args: { program_id: 'qa', inputs: { question: 'What is Elixir?' }, n: 3, temperature: 0.7, flags: [true, false, null] }, session: 'user_123' };
const reply = { id: 17, ok: true, result: { outputs: { answer: 'A functional language on the BEAM.' }, usage: { prompt_tokens: 120, completion_tokens: 18 }, elapsed: 0.0123 } };
const mixed = { list: Array.from({ length: 100 }, (_, i) => ({ i, name: `item-${i}`, score: i * 1.25, tags: ['a', 'b'] })) };

const rows: string[] = [];
function row(label: string, ours: number, theirs: number, unit = 'ops/s') {
  rows.push(`${label.padEnd(36)} ours ${fmt(ours).padStart(12)} ${unit}   msgpackr ${fmt(theirs).padStart(12)} ${unit}   ratio ${(ours / theirs).toFixed(2)}`);
}
function fmt(x: number) { return x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1); }

for (const [label, v] of [['small request', small], ['small reply', reply], ['100-item list', mixed]] as const) {
  row(`encode ${label}`, bench('', () => encode(v)), bench('', () => packr.pack(v)));
  const ours = encode(v);
  const theirs = packr.pack(v);
  row(`decode ${label}`, bench('', () => decode(ours)), bench('', () => unpackr.unpack(theirs)));
}
row('encodeRequest (frame) small', bench('', () => encodeRequest(17, 'execute_program', small.args, 'user_123')), bench('', () => packr.pack(small)));

for (const mib of [1, 16]) {
  const payload = Buffer.alloc(mib * 1024 * 1024, 7);
  const v = { id: 1, ok: true, result: payload };
  const mb = mib * 1.048576;
  const e = bench('', () => encodeFrame(v), 400);
  const p = bench('', () => packr.pack(v), 400);
  row(`encode ${mib} MiB Buffer`, e * mb, p * mb, 'MB/s');
  const enc = encode(v);
  const penc = packr.pack(v);
  row(`decode ${mib} MiB Buffer`, bench('', () => decode(enc), 400) * mb, bench('', () => unpackr.unpack(penc), 400) * mb, 'MB/s');
  const s = 'x'.repeat(mib * 1024 * 1024);
  row(`encode ${mib} MiB string`, bench('', () => encode(s), 400) * mb, bench('', () => packr.pack(s), 400) * mb, 'MB/s');
  const es = encode(s);
  row(`decode ${mib} MiB string`, bench('', () => decode(es), 400) * mb, bench('', () => unpackr.unpack(es), 400) * mb, 'MB/s');
  // frame reader: frame arriving in 64 KiB chunks, then decoded
  const frame = encodeFrame(v);
  const chunks: Buffer[] = [];
  for (let o = 0; o < frame.length; o += 65536) chunks.push(frame.subarray(o, o + 65536));
  let got = 0;
  const reader = new FrameReader({ onFrame: (b) => { decode(b); got++; }, onError: (e) => { throw e; } });
  const r = bench('', () => { for (const c of chunks) reader.push(c); }, 400);
  rows.push(`${`read+decode ${mib} MiB frame (64K chunks)`.padEnd(36)} ours ${fmt(r * mb).padStart(12)} MB/s`);
}
console.log(`node ${process.version}, ${process.arch}, load average ${(await import('node:os')).loadavg().map((x) => x.toFixed(1)).join(' ')}; best of 3 rounds`);
console.log(rows.join('\n'));
