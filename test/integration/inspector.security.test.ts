/**
 * The inspector server's rules, against a pool of real Python workers: loopback only unless
 * told otherwise, a token on every request when serving beyond loopback, loopback Host
 * headers only (no DNS rebinding), a self-contained page (nothing fetched from elsewhere),
 * payloads hidden unless `sanitize: false`, and close() ends the streams and unsubscribes.
 * Every server here binds 127.0.0.1.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request, type IncomingMessage } from 'node:http';
import { createPool } from '../../src/local/createPool.js';
import type { Pool } from '../../src/local/pool.js';
import { InvalidOptionError } from '../../src/errors.js';
import { serveInspector, type InspectorServer } from '../../src/inspector/server.js';
import { PidTracker, assertAllDead } from './helpers.js';

const tracker = new PidTracker();
const TOKEN = 'correct-horse-battery-staple';
const SECRET = 'hunter2-do-not-show';
let pool: Pool;
const servers: InspectorServer[] = [];

async function serve(options: Parameters<typeof serveInspector>[1] = {}): Promise<InspectorServer> {
  const s = await serveInspector(pool, options);
  servers.push(s);
  return s;
}

interface Response {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A plain GET; `headers` may set Host, which fetch() does not allow. */
function get(url: string, headers: Record<string, string> = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** An open /events stream: its frames as they come, and waits on their content. */
function openStream(url: string) {
  const frames: Array<{ event: string; data: string }> = [];
  const waiters = new Set<() => void>();
  let buffer = '';
  let ended = false;
  let res: IncomingMessage | null = null;
  const ready = new Promise<IncomingMessage>((resolve, reject) => {
    const req = request(url, { agent: false }, (r) => {
      res = r;
      r.setEncoding('utf8');
      r.on('data', (chunk: string) => {
        buffer += chunk;
        let i: number;
        while ((i = buffer.indexOf('\n\n')) >= 0) {
          const raw = buffer.slice(0, i);
          buffer = buffer.slice(i + 2);
          const event = /^event: (.*)$/m.exec(raw)?.[1];
          const data = /^data: (.*)$/m.exec(raw)?.[1];
          if (event && data !== undefined) frames.push({ event, data });
        }
        for (const w of [...waiters]) w();
      });
      r.on('end', () => {
        ended = true;
        for (const w of [...waiters]) w();
      });
      resolve(r);
    });
    req.on('error', reject);
    req.end();
  });
  const until = <T>(what: string, check: () => T | false | undefined, timeoutMs = 15_000) =>
    new Promise<T>((resolve, reject) => {
      const attempt = () => {
        const v = check();
        if (!v) return false;
        waiters.delete(attempt);
        clearTimeout(timer);
        resolve(v);
        return true;
      };
      const timer = setTimeout(() => {
        waiters.delete(attempt);
        reject(new Error(`timed out waiting for ${what} (${frames.length} frames: ${frames.map((f) => f.event).join(',')})`));
      }, timeoutMs);
      if (!attempt()) waiters.add(attempt);
    });
  return {
    frames,
    ready,
    until,
    get ended() {
      return ended;
    },
    text: () => frames.map((f) => f.data).join('\n'),
    close: () => res?.destroy(),
  };
}

function rejectsWith(promise: Promise<unknown>, option: string, pattern: RegExp) {
  return promise.then(
    () => assert.unreachable('should have been refused'),
    (err: unknown) => {
      assert.instance(err, InvalidOptionError);
      assert.is((err as InvalidOptionError).code, 'INVALID_OPTION');
      assert.is((err as InvalidOptionError).option, option);
      assert.match((err as Error).message, pattern);
    },
  );
}

test.before(async () => {
  pool = tracker.watch(await createPool({ poolSize: 2 }));
});

test('a non-loopback host is refused unless allowRemote, and allowRemote needs a token', async () => {
  await rejectsWith(serveInspector(pool, { host: '0.0.0.0' }), 'host', /not a loopback address.*allowRemote/);
  await rejectsWith(serveInspector(pool, { host: '192.168.1.20' }), 'host', /not a loopback/);
  await rejectsWith(serveInspector(pool, { host: '0.0.0.0', allowRemote: true }), 'token', /required when allowRemote/);
  await rejectsWith(serveInspector(pool, { host: '127.0.0.1', allowRemote: true }), 'token', /required/);
  await rejectsWith(serveInspector(pool, { allowRemote: true, token: 'short' }), 'token', /at least 8/);
  await rejectsWith(serveInspector(pool, { port: 70000 }), 'port', /0 to 65535/);
});

test('by default: 127.0.0.1, any free port, the page with a strict CSP and nothing from the internet', async () => {
  const s = await serve();
  assert.match(s.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  const page = await get(s.url);
  assert.is(page.status, 200);
  assert.match(page.headers['content-type'] ?? '', /text\/html/);
  assert.match(page.body, /pyvisor <span>inspector<\/span>/);
  const csp = page.headers['content-security-policy'] ?? '';
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /connect-src 'self'/);
  const nonce = /script-src 'nonce-([^']+)'/.exec(csp)?.[1];
  assert.ok(nonce && page.body.includes(`<script nonce="${nonce}">`), 'the inline script carries the CSP nonce');
  assert.not.match(page.body, /(src|href)\s*=\s*["']?(https?:)?\/\//i, 'no asset from another origin');
  assert.is(page.headers['referrer-policy'], 'no-referrer');
  assert.is((await get(s.url.replace(/\/$/, '/nope'))).status, 404);
  // A page elsewhere that points its own name at 127.0.0.1 (DNS rebinding) is refused.
  assert.is((await get(s.url, { host: 'attacker.example' })).status, 403);
  assert.is((await get(s.url, { host: `localhost:${new URL(s.url).port}` })).status, 200);
});

test('with allowRemote and a token: 401 without it, on the page, the stream and the API', async () => {
  const s = await serve({ host: '127.0.0.1', allowRemote: true, token: TOKEN });
  assert.ok(s.url.endsWith(`/?token=${TOKEN}`), s.url);
  const base = s.url.slice(0, s.url.indexOf('?'));
  for (const path of ['', 'events', 'api/snapshot']) {
    const bare = await get(base + path);
    assert.is(bare.status, 401, `/${path} without token`);
    assert.is(bare.headers['www-authenticate'], 'Bearer');
    assert.is((await get(`${base}${path}?token=wrong-token-value`)).status, 401, `/${path} with a wrong token`);
  }
  const page = await get(s.url);
  assert.is(page.status, 200);
  assert.match(page.body, /pyvisor/);
  const api = await get(`${base}api/snapshot`, { authorization: `Bearer ${TOKEN}` });
  assert.is(api.status, 200);
  const snapshot = JSON.parse(api.body);
  assert.equal(snapshot.snap.workers.map((w: { id: string }) => w.id), ['worker_1', 'worker_2']);
  assert.ok(snapshot.machine.states.some((st: { id: string }) => st.id === 'worker.live.restarting'), 'the machine description is derived from workerMachine');
  // Any Host is fine when remote access was asked for (the token is the guard).
  assert.is((await get(s.url, { host: 'pool-host.internal' })).status, 200);
  const stream = openStream(`${base}events?token=${TOKEN}`);
  await stream.until('hello', () => stream.frames.find((f) => f.event === 'hello'));
  stream.close();
});

test('sanitize (default) hides command arguments and results; sanitize: false shows them', async () => {
  const hidden = await serve();
  const shown = await serve({ sanitize: false });
  const a = openStream(`${hidden.url}events`);
  const b = openStream(`${shown.url}events`);
  await a.until('hello', () => a.frames.find((f) => f.event === 'hello'));
  await b.until('hello', () => b.frames.find((f) => f.event === 'hello'));
  assert.is(JSON.parse(a.frames[0]!.data).sanitize, true);
  assert.is(JSON.parse(b.frames[0]!.data).sanitize, false);

  await pool.execute('ping', { secret: SECRET }, { sessionId: 'sanitize-session' });
  await b.until('the arguments on the unsanitized stream', () => b.text().includes(SECRET));
  assert.match(b.text(), /"type":"EXECUTE"/);
  // The sanitized stream shows the same request by its name, and a snapshot after it still has no payload.
  // (The pool's request observer feeds these: requests do not pass through the actors.)
  const executeSeenAt = await a.until('EXECUTE on the sanitized stream', () => {
    const i = a.frames.findIndex((f) => f.event === 'batch' && f.data.includes('"type":"EXECUTE"'));
    return i >= 0 ? i + 1 : false;
  });
  await a.until('a snapshot after it', () => a.frames.slice(executeSeenAt).some((f) => f.event === 'snap'));
  const batch = a.frames[executeSeenAt - 1]!.data;
  assert.match(batch, /"cmd":"ping"/);
  assert.match(batch, /"session":"sanitize-session"/);
  assert.not.ok(a.text().includes(SECRET), 'the sanitized stream never carries the arguments');
  assert.not.ok(a.text().includes('"pong"'), 'nor the results');
  a.close();
  b.close();
});

test('close() ends every stream, stops answering and unsubscribes from the pool', async () => {
  const baseline = pool.listenerCount('checkin');
  const s = await serveInspector(pool);
  assert.is(pool.listenerCount('checkin'), baseline + 1);
  const stream = openStream(`${s.url}events`);
  await stream.until('hello', () => stream.frames.find((f) => f.event === 'hello'));
  await s.close();
  await stream.until('the end of the stream', () => stream.ended);
  assert.is(pool.listenerCount('checkin'), baseline);
  await get(s.url).then(
    () => assert.unreachable('the server should be closed'),
    (err: NodeJS.ErrnoException) => assert.is(err.code, 'ECONNREFUSED'),
  );
  await s.close(); // idempotent
});

test('no Python process started here is still alive', async () => {
  for (const s of servers.splice(0)) await s.close();
  await pool.stop();
  assertAllDead(tracker);
});

test.after(async () => {
  for (const s of servers.splice(0)) await s.close();
  await pool?.stop();
});

test.run();
