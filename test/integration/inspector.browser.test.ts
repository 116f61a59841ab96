/**
 * The inspector page in a real browser (Debian's chromium, driven by playwright-core) against a
 * pool of real Python workers: it shows the workers, and when one is SIGKILLed the page shows
 * it go through `restarting` and back to `healthy` with a new pid. Saves a screenshot to
 * test/artifacts/inspector.png. Skipped, with a message, where /usr/bin/chromium is missing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createPool } from '../../src/local/createPool.js';
import type { Pool } from '../../src/local/pool.js';
import { serveInspector, type InspectorServer } from '../../src/inspector/server.js';
import { PidTracker, ROOT, assertAllDead, nextEvent } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACT = join(ROOT, 'test', 'artifacts', 'inspector.png');
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const WAIT = { timeout: 30_000 };

const tracker = new PidTracker();
let pool: Pool | null = null;
let inspector: InspectorServer | null = null;
let browser: Browser | null = null;
let page: Page | null = null;
const pageErrors: string[] = [];

async function cleanup(): Promise<void> {
  await browser?.close().catch(() => {});
  browser = null;
  await inspector?.close();
  inspector = null;
  await pool?.stop();
  pool = null;
}

const present = existsSync(CHROMIUM);
if (!present) {
  console.log(`inspector.browser: SKIPPED — ${CHROMIUM} is not installed (apt-get install -y chromium); .ci/run installs it`);
}
const it = present ? test : test.skip;

it('the page shows the supervision tree, the machine and 3 workers', async () => {
  pool = tracker.watch(await createPool({ poolSize: 3 }));
  inspector = await serveInspector(pool);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => m.type() === 'error' && pageErrors.push(m.text()));
  await page.goto(inspector.url);

  await page.waitForFunction(() => {
    const cards = document.querySelectorAll('.card[data-worker]');
    return cards.length === 3 && [...cards].every((c) => c.getAttribute('data-state') === 'healthy' && c.getAttribute('data-pid'));
  }, undefined, WAIT);
  const ids = await page.$$eval('.card[data-worker]', (cards) => cards.map((c) => c.getAttribute('data-worker')));
  assert.equal(ids, ['worker_1', 'worker_2', 'worker_3']);
  const pids = await page.$$eval('.card[data-worker]', (cards) => cards.map((c) => Number(c.getAttribute('data-pid'))));
  assert.equal(pids, pool.workers().map((w) => w.pid));
  // Each card shows its requests in flight out of its slots (workerConcurrency 1 here).
  const inflight = await page.$$eval('.card[data-worker] dl div:nth-child(6)', (ds) => ds.map((d) => d.textContent));
  assert.equal(inflight, ['in flight0/1', 'in flight0/1', 'in flight0/1']);

  // The supervision tree names every actor of the pool.
  const tree = await page.textContent('#tree');
  for (const name of ['pool', 'sessionPool', 'workers', 'monitor', 'worker_1', 'worker_2', 'worker_3']) assert.ok(tree!.includes(name), `tree shows ${name}`);
  // The machine diagram is drawn from the definition: every state of the worker machine is a box.
  const boxes = await page.$$eval('svg.big text.nlabel', (ts) => ts.map((t) => t.textContent));
  for (const state of ['idle', 'initializing', 'restarting', 'healthy', 'busy', 'checking', 'recycling', 'stopping', 'unhealthy', 'stopped']) {
    assert.ok(boxes.includes(state), `diagram has ${state}`);
  }
  assert.is(await page.getAttribute('body', 'data-connection'), 'live');
  assert.is((await page.textContent('#sanitized'))?.trim(), 'payloads hidden');
});

it('a SIGKILLed worker goes through restarting back to healthy on the page', async () => {
  assert.ok(pool && page);
  // Some traffic, so the charts and counters move.
  await Promise.all(Array.from({ length: 12 }, (_, i) => pool!.execute('ping', null, { sessionId: `s${i % 3}` })));
  const victim = pool.workers()[1]!;
  assert.ok(victim.pid);
  const before = await page.$$eval('#log li[data-seq]', (lis) => Math.max(0, ...lis.map((li) => Number(li.getAttribute('data-seq')))));
  const restarted = nextEvent<{ workerId: string; oldPid: number | null; newPid: number | null }>(pool, 'worker_restarted', (e) => e.workerId === victim.id, 20_000);
  process.kill(victim.pid, 'SIGKILL');
  const { newPid } = await restarted;
  tracker.add(newPid);
  assert.ok(newPid && newPid !== victim.pid);

  // The transition log shows restarting, then healthy, for that worker (newer than the kill).
  const seen = await page.waitForFunction(
    ({ id, before }) => {
      const entries = [...document.querySelectorAll('#log li[data-seq]')]
        .filter((li) => li.getAttribute('data-worker') === id && Number(li.getAttribute('data-seq')) > before)
        .map((li) => ({ seq: Number(li.getAttribute('data-seq')), to: li.getAttribute('data-to'), kind: li.getAttribute('data-kind') }))
        .sort((a, b) => a.seq - b.seq);
      const r = entries.findIndex((e) => e.to === 'restarting');
      const h = entries.findIndex((e, i) => i > r && e.to === 'healthy');
      return r >= 0 && h > r ? entries : null;
    },
    { id: victim.id, before },
    WAIT,
  );
  const entries = (await seen.jsonValue()) as Array<{ to: string | null; kind: string | null }>;
  const states = entries.filter((e) => e.to).map((e) => e.to);
  assert.ok(states.indexOf('unhealthy') < states.indexOf('restarting'), `unhealthy before restarting: ${states.join(' → ')}`);
  assert.ok(entries.some((e) => e.kind === 'restart'), 'a restart entry is logged');

  // The card is healthy again, with the new pid and one restart.
  await page.waitForFunction(
    ({ id, pid }) => {
      const card = document.querySelector(`.card[data-worker="${id}"]`);
      return card?.getAttribute('data-state') === 'healthy' && card.getAttribute('data-pid') === String(pid);
    },
    { id: victim.id, pid: newPid },
    WAIT,
  );
  // The counters come with the next periodic snapshot, which may trail the live transitions.
  await page.waitForFunction(
    (id) => document.querySelector(`.card[data-worker="${id}"] dl div:nth-child(4) dd`)?.textContent === '1',
    victim.id,
    WAIT,
  );

  // Selecting the worker shows its lifecycle under the diagram.
  await page.click(`.card[data-worker="${victim.id}"]`);
  await page.waitForFunction((id) => document.querySelector('#machineTitle')?.textContent?.includes(id) && document.querySelector('#whist')?.textContent?.includes('restarting'), victim.id, WAIT);
  // The charts have points once a snapshot carried the traffic.
  await page.waitForFunction(() => document.querySelectorAll('#chRps path').length > 0 && !document.querySelector('#chRps')!.textContent!.includes('no data'), undefined, WAIT);

  mkdirSync(join(ROOT, 'test', 'artifacts'), { recursive: true });
  await page.screenshot({ path: ARTIFACT, fullPage: true });
  assert.ok(existsSync(ARTIFACT));
  assert.equal(pageErrors, [], 'no error in the page');
});

it('closing the server ends the page stream', async () => {
  assert.ok(page && inspector);
  await inspector.close();
  inspector = null;
  await page.waitForFunction(() => document.body.getAttribute('data-connection') !== 'live', undefined, WAIT);
});

test('no Python process started here is still alive', async () => {
  await cleanup();
  assertAllDead(tracker);
});

test.after(cleanup);

test.run();
