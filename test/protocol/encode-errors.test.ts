/**
 * Every value outside the wire types is refused with SerializationError naming its path,
 * and nothing is written.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encode, encodeFrame, encodeRequest, MAX_DEPTH } from '../../src/codec/encode.js';
import { decode } from '../../src/codec/decode.js';
import { SerializationError } from '../../src/errors.js';

function refuses(value: unknown, message: string, root = 'args'): void {
  try {
    encode(value, root);
  } catch (err) {
    assert.instance(err, SerializationError);
    assert.is((err as SerializationError).code, 'NOT_SERIALIZABLE');
    assert.is((err as Error).message, message);
    assert.is((err as SerializationError).path, message.slice(0, message.indexOf(': ')));
    return;
  }
  assert.unreachable(`expected "${message}"`);
}

class Foo { x = 1; }

test('each refused type, with the exact path', () => {
  refuses({ items: [1, 2, 3, Symbol('s')] }, 'args.items[3]: Symbol is not serializable');
  refuses({ user: { 'bad key': () => 1 } }, 'args.user["bad key"]: function is not serializable');
  refuses({ when: new Date(0) }, 'args.when: Date is not serializable');
  refuses({ m: new Map() }, 'args.m: Map is not serializable');
  refuses({ s: new Set([1]) }, 'args.s: Set is not serializable');
  refuses({ r: /x/ }, 'args.r: RegExp is not serializable');
  refuses({ e: new Error('x') }, 'args.e: Error is not serializable');
  refuses({ p: Promise.resolve() }, 'args.p: Promise is not serializable');
  refuses({ f: new Foo() }, 'args.f: instance of Foo is not serializable');
  refuses({ t: new Float64Array(1) }, 'args.t: Float64Array is not serializable');
  refuses({ ab: new ArrayBuffer(4) }, 'args.ab: ArrayBuffer is not serializable');
  refuses({ boxed: new String('x') }, 'args.boxed: String is not serializable');
  refuses([undefined], 'args[0]: undefined (use null) is not serializable');
  // eslint-disable-next-line no-sparse-arrays
  refuses([1, , 3], 'args[1]: array hole (sparse array element) is not serializable');
  refuses(undefined, 'args: undefined (use null) is not serializable');
  refuses(Symbol.iterator, 'args: Symbol is not serializable');
  refuses({ n: 2n ** 64n }, 'args.n: BigInt 18446744073709551616 (outside the 64-bit integer range [-2^63, 2^64-1]) is not serializable');
  refuses({ n: -(2n ** 63n) - 1n }, 'args.n: BigInt -9223372036854775809 (outside the 64-bit integer range [-2^63, 2^64-1]) is not serializable');
  refuses({ s: 'ok\uD800' }, 'args.s: string containing a lone UTF-16 surrogate is not serializable');
  refuses({ s: '\uDC00'.repeat(5000) }, 'args.s: string containing a lone UTF-16 surrogate is not serializable');
  refuses({ 'a.b': { $ok: [{ 'x y': [null, Symbol('deep')] }] } }, 'args["a.b"].$ok[0]["x y"][1]: Symbol is not serializable');
});

test('circular references name both ends', () => {
  const a: Record<string, unknown> = { name: 'a' };
  a.self = a;
  refuses({ x: a }, 'args.x.self: circular reference to args.x is not serializable');
  const list: unknown[] = [1];
  list.push({ back: list });
  refuses(list, 'args[1].back: circular reference to args is not serializable');
});

test('too deep', () => {
  let v: unknown = 1;
  for (let i = 0; i < MAX_DEPTH + 1; i++) v = { d: v };
  const want = `args${'.d'.repeat(MAX_DEPTH)}: value nested deeper than ${MAX_DEPTH} levels is not serializable`;
  assert.throws(() => encode(v, 'args'), (e: unknown) => e instanceof SerializationError && (e as Error).message === want);
  let ok: unknown = 1;
  for (let i = 0; i < MAX_DEPTH; i++) ok = { d: ok };
  encode(ok, 'args');
});

test('encodeRequest: bad id, cmd, session, args', () => {
  assert.throws(() => encodeRequest(1.5, 'x', null, null), /^id: request id 1.5 \(must be a safe integer\) is not serializable$/);
  assert.throws(() => encodeRequest(1, 7 as unknown as string, null, null), /^cmd: number command name/);
  assert.throws(() => encodeRequest(1, 'x', null, 5 as unknown as string), /^session: number session id/);
  assert.throws(() => encodeRequest(1, 'x', { a: [new Date()] }, null), /^args\.a\[0\]: Date is not serializable$/);
});

test('frame size limit: refused before anything is sent', () => {
  assert.throws(() => encodeFrame({ b: Buffer.alloc(2000) }, 'args', 1000), (e: unknown) => e instanceof SerializationError && /^args: a value encoding to more than 1000 bytes/.test((e as Error).message));
  assert.throws(() => encodeRequest(1, 'echo', 'x'.repeat(5000), null, 1000), /^args: a request encoding to more than 1000 bytes/);
  assert.is(encodeFrame({ b: Buffer.alloc(10) }, 'args', 1000).length, 4 + 1 + 2 + 2 + 10);
  // a string whose worst-case size (3 bytes per char) is above the limit but whose real size fits
  assert.is(encodeFrame('x'.repeat(900), 'args', 1000).length, 4 + 3 + 900);
  assert.throws(() => encodeFrame('é'.repeat(900), 'args', 1000), /^args: a value encoding to more than 1000 bytes/);
});

test('nothing is written on failure: the next frame is intact', () => {
  const ok1 = encodeFrame([1, 2, 3]);
  for (let i = 0; i < 100; i++) {
    assert.throws(() => encodeFrame({ big: 'z'.repeat(10000), bad: () => 0 }));
  }
  const ok2 = encodeFrame([4, 5, 6]);
  assert.equal(decode(ok1.subarray(4)), [1, 2, 3]);
  assert.equal(decode(ok2.subarray(4)), [4, 5, 6]);
  assert.is(ok2.length, 8);
});

test.run();
