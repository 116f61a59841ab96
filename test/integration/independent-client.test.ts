/**
 * A client that knows only docs/PROTOCOL.md — no pyvisor import, its own
 * few-line MessagePack — drives the real worker: ready notice, ping, a handler command, error
 * replies for an unknown command and a raising handler, intact frames while the handler prints,
 * and exit within 1 s of stdin closing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, ECHO_HANDLERS, PYTHON, PidTracker, assertAllDead, isAlive } from './helpers.js';

// ---- a minimal MessagePack (PROTOCOL.md §3): nil, bool, int, str, array, map -------------

function pack(v: unknown): Buffer {
  if (v === null || v === undefined) return Buffer.from([0xc0]);
  if (v === true || v === false) return Buffer.from([v ? 0xc3 : 0xc2]);
  if (typeof v === 'number') {
    if (v >= 0 && v < 128) return Buffer.from([v]);
    const b = Buffer.alloc(5);
    b[0] = 0xd2;
    b.writeInt32BE(v, 1);
    return b;
  }
  if (typeof v === 'string') {
    const s = Buffer.from(v, 'utf8');
    return Buffer.concat([s.length < 32 ? Buffer.from([0xa0 | s.length]) : Buffer.from([0xd9, s.length]), s]);
  }
  if (Array.isArray(v)) return Buffer.concat([Buffer.from([0x90 | v.length]), ...v.map(pack)]);
  const entries = Object.entries(v as Record<string, unknown>);
  return Buffer.concat([Buffer.from([0x80 | entries.length]), ...entries.flatMap(([k, x]) => [pack(k), pack(x)])]);
}

function unpack(buf: Buffer, pos = 0): [unknown, number] {
  const b = buf[pos++]!;
  if (b < 0x80) return [b, pos];
  if (b >= 0xe0) return [b - 0x100, pos];
  const str = (n: number, at: number): [string, number] => [buf.toString('utf8', at, at + n), at + n];
  const many = (n: number, at: number, asMap: boolean): [unknown, number] => {
    const out: unknown[] = [];
    const obj: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) {
      const [k, p1] = unpack(buf, at);
      at = p1;
      if (asMap) {
        const [val, p2] = unpack(buf, at);
        at = p2;
        obj[k as string] = val;
      } else out.push(k);
    }
    return [asMap ? obj : out, at];
  };
  if (b >= 0xa0 && b <= 0xbf) return str(b & 0x1f, pos);
  if (b >= 0x80 && b <= 0x8f) return many(b & 0x0f, pos, true);
  if (b >= 0x90 && b <= 0x9f) return many(b & 0x0f, pos, false);
  switch (b) {
    case 0xc0: return [null, pos];
    case 0xc2: return [false, pos];
    case 0xc3: return [true, pos];
    case 0xcc: return [buf[pos], pos + 1];
    case 0xcd: return [buf.readUInt16BE(pos), pos + 2];
    case 0xce: return [buf.readUInt32BE(pos), pos + 4];
    case 0xcf: return [Number(buf.readBigUInt64BE(pos)), pos + 8];
    case 0xd0: return [buf.readInt8(pos), pos + 1];
    case 0xd1: return [buf.readInt16BE(pos), pos + 2];
    case 0xd2: return [buf.readInt32BE(pos), pos + 4];
    case 0xd3: return [Number(buf.readBigInt64BE(pos)), pos + 8];
    case 0xcb: return [buf.readDoubleBE(pos), pos + 8];
    case 0xd9: return str(buf[pos]!, pos + 1);
    case 0xda: return str(buf.readUInt16BE(pos), pos + 2);
    case 0xdb: return str(buf.readUInt32BE(pos), pos + 4);
    case 0xdc: return many(buf.readUInt16BE(pos), pos + 2, false);
    case 0xde: return many(buf.readUInt16BE(pos), pos + 2, true);
    default: throw new Error(`this minimal client does not decode type byte 0x${b.toString(16)}`);
  }
}

// ---- the client: length-prefixed frames on the worker's stdin/stdout (PROTOCOL.md §2) ----

class Client {
  readonly child: ChildProcessWithoutNullStreams;
  private buffered = Buffer.alloc(0);
  private waiting: Array<(frame: Record<string, unknown>) => void> = [];
  private frames: Array<Record<string, unknown>> = [];
  constructor() {
    this.child = spawn(PYTHON, [join(ROOT, 'python', 'dspy_bridge.py'), '--mode', 'pool-worker', '--worker-id', 'w1', '--handlers', ECHO_HANDLERS]);
    this.child.stdout.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      while (this.buffered.length >= 4 && this.buffered.length >= 4 + this.buffered.readUInt32BE(0)) {
        const length = this.buffered.readUInt32BE(0);
        const [value, end] = unpack(this.buffered.subarray(4, 4 + length));
        assert.is(end, length, 'exactly one value per frame');
        this.buffered = this.buffered.subarray(4 + length);
        const next = this.waiting.shift();
        if (next) next(value as Record<string, unknown>);
        else this.frames.push(value as Record<string, unknown>);
      }
    });
  }
  next(): Promise<Record<string, unknown>> {
    const ready = this.frames.shift();
    return ready ? Promise.resolve(ready) : new Promise((resolve) => this.waiting.push(resolve));
  }
  request(id: number, cmd: string, args: unknown, session: string | null = null): Promise<Record<string, unknown>> {
    const payload = pack({ id, cmd, args, session });
    const header = Buffer.alloc(4);
    header.writeUInt32BE(payload.length);
    this.child.stdin.write(Buffer.concat([header, payload]));
    return this.next();
  }
}

const tracker = new PidTracker();

test('an independent client: ready, ping, a handler, error replies, print noise, exit on EOF', async () => {
  const client = new Client();
  tracker.add(client.child.pid);

  const ready = await client.next();
  assert.is(ready.event, 'ready');
  assert.is(ready.worker_id, 'w1');
  assert.is(ready.pid, client.child.pid);

  const ping = await client.request(1, 'ping', null);
  assert.equal([ping.id, ping.ok, (ping.result as { pong: boolean }).pong], [1, true, true]);

  const echo = await client.request(2, 'echo', { text: 'héllo', n: 300, list: [1, 2, 3], nested: { deep: true } });
  assert.equal(echo, { id: 2, ok: true, result: { text: 'héllo', n: 300, list: [1, 2, 3], nested: { deep: true } } });

  const unknown = await client.request(3, 'no_such_command', null);
  assert.is(unknown.ok, false);
  assert.is((unknown.error as { type: string }).type, 'UnknownCommand');

  const raised = await client.request(4, 'raise', { message: 'boom' });
  assert.is(raised.ok, false);
  const error = raised.error as { type: string; message: string; traceback: string };
  assert.is(error.type, 'ValueError');
  assert.is(error.message, 'boom');
  assert.match(error.traceback, /Traceback/);

  const noisy = await client.request(5, 'print_noise', null);
  assert.equal(noisy, { id: 5, ok: true, result: { ok: true } }, 'print() and os.write(1, ...) never reach the frame stream');
  const after = await client.request(6, 'ping', null);
  assert.is(after.id, 6, 'the stream is still in sync');

  const closedAt = Date.now();
  const exited = new Promise<number | null>((resolve) => client.child.on('exit', (code) => resolve(code)));
  client.child.stdin.end();
  assert.is(await exited, 0);
  assert.ok(Date.now() - closedAt < 1000, `exited ${Date.now() - closedAt} ms after stdin closed`);
  assert.not.ok(isAlive(client.child.pid!));
});

test('no Python process started by this suite is alive', () => {
  assertAllDead(tracker);
});

test.run();
