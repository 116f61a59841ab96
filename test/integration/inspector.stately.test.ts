/**
 * The @statelyai/inspect path: createPool({ inspect: createWebSocketInspector(...).inspect })
 * streams every actor of the pool — supervisors, session pool, monitor, workers — with their
 * events and snapshots to a WebSocket endpoint (here a local `ws` server on 127.0.0.1 standing
 * in for the Stately inspector / createInspectorServer relay).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { createWebSocketInspector } from '@statelyai/inspect';
import { createPool } from '../../src/local/createPool.js';
import type { Pool } from '../../src/local/pool.js';
import { PidTracker, assertAllDead } from './helpers.js';

interface Received {
  type: string;
  name?: string;
  sessionId: string;
  parentId?: string;
  event?: { type: string } & Record<string, unknown>;
  snapshot?: { value?: unknown; status?: string; context?: Record<string, unknown> };
}

const tracker = new PidTracker();
let wss: WebSocketServer | null = null;
let pool: Pool | null = null;
let inspector: ReturnType<typeof createWebSocketInspector> | null = null;
const received: Received[] = [];
const waiters = new Set<() => void>();

/** Resolve when `check` holds for what has arrived; re-checked on every message (no polling). */
function until<T>(what: string, check: () => T | undefined | false, timeoutMs = 20_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const v = check();
      if (v) {
        waiters.delete(attempt);
        clearTimeout(timer);
        resolve(v);
        return true;
      }
      return false;
    };
    const timer = setTimeout(() => {
      waiters.delete(attempt);
      reject(new Error(`timed out waiting for ${what}; received ${received.length} messages, actors: ${[...names()].join(', ')}`));
    }, timeoutMs);
    if (!attempt()) waiters.add(attempt);
  });
}

function names(): Set<string> {
  return new Set(received.filter((m) => m.type === '@xstate.actor').map((m) => m.name!));
}

async function cleanup(): Promise<void> {
  await pool?.stop();
  pool = null;
  inspector?.stop();
  inspector = null;
  if (wss) {
    for (const client of wss.clients) client.terminate();
    await new Promise<void>((resolve) => wss!.close(() => resolve()));
    wss = null;
  }
}

test('every actor of the pool reaches a WebSocket inspector, with events and snapshots', async () => {
  wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  const { port } = wss.address() as AddressInfo;
  const connected = new Promise<WebSocket>((resolve) => wss!.once('connection', resolve));
  wss.on('connection', (ws) => {
    ws.on('message', (data) => {
      received.push(JSON.parse(String(data)) as Received);
      for (const w of [...waiters]) w();
    });
  });

  inspector = createWebSocketInspector({ url: `ws://127.0.0.1:${port}`, maxDeferredEvents: 10_000 });
  await connected;
  pool = tracker.watch(await createPool({ poolSize: 2, inspect: inspector.inspect }));
  const result = await pool.execute<{ pong: boolean }>('ping', null, { sessionId: 'inspect-session' });
  assert.is(result.pong, true);

  const expected = ['pool', 'sessionPool', 'workers', 'monitor', 'worker_1', 'worker_2'];
  await until('the @xstate.actor of every pool actor', () => expected.every((n) => names().has(n)));

  const actor = (name: string) => received.find((m) => m.type === '@xstate.actor' && m.name === name)!;
  // The supervision tree is in the parent links.
  const root = actor('pool');
  for (const child of ['sessionPool', 'workers', 'monitor']) assert.is(actor(child).parentId, root.sessionId, `${child} is a child of pool`);
  for (const w of ['worker_1', 'worker_2']) assert.is(actor(w).parentId, actor('workers').sessionId, `${w} is a child of the worker supervisor`);

  // Events: the request itself travels beside the actors (the direct path); what the machines
  // hear of it is the new session at the session pool and the worker's coalesced LOAD.
  const workerIds = new Set(['worker_1', 'worker_2'].map((w) => actor(w).sessionId));
  await until('a LOAD event at a worker', () => received.find((m) => m.type === '@xstate.event' && m.event?.type === 'LOAD' && workerIds.has(m.sessionId)));
  await until('a SESSION_SEEN event at the session pool', () =>
    received.find((m) => m.type === '@xstate.event' && m.event?.type === 'SESSION_SEEN' && m.sessionId === actor('sessionPool').sessionId),
  );
  // Snapshots: a worker's state value, as the worker machine defines it.
  const healthy = await until('a worker snapshot in live.healthy', () =>
    received.find((m) => m.type === '@xstate.snapshot' && workerIds.has(m.sessionId) && JSON.stringify(m.snapshot?.value) === '{"live":"healthy"}'),
  );
  assert.ok(healthy.snapshot!.context!.pid, 'the snapshot carries the worker context (pid)');
  await until('a session pool snapshot that knows the session', () =>
    received.find((m) => m.type === '@xstate.snapshot' && m.sessionId === actor('sessionPool').sessionId && JSON.stringify(m.snapshot?.context ?? {}).includes('inspect-session')),
  );
});

test('no Python process started here is still alive', async () => {
  await cleanup();
  assertAllDead(tracker);
});

test.after(cleanup);

test.run();
