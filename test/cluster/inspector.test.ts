/**
 * Cluster tier: the inspector page of a cluster pool in a real browser (Debian's chromium, as
 * test/integration/inspector.browser.test.ts): a real nats-server, two agent processes, the
 * cluster pool in this process. The page shows the cluster → hosts → workers tree and a card
 * per worker with a page-unique id; a SIGKILLed agent leaves the tree and the log says so.
 * Skipped, with a message, where /usr/bin/chromium is missing.
 */
import { existsSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chromium, type Browser } from 'playwright-core';
import { serveInspector, type InspectorServer } from '../../src/index.js';
import { createClusterPool, type ClusterPool } from '../../src/cluster/index.js';
import { assertAllDead, NatsServer, Procs, startAgents, type AgentProc } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const present = existsSync(CHROMIUM);
const WAIT = { timeout: 20_000 };
const procs = new Procs();
let nats: NatsServer | null = null;
let agents: AgentProc[] = [];
let cluster: ClusterPool | null = null;
let inspector: InspectorServer | null = null;
let browser: Browser | null = null;

if (!present) console.log(`cluster inspector: SKIPPED — ${CHROMIUM} is not installed (apt-get install -y chromium); .ci/run installs it`);
const it = present ? test : test.skip;

it('the page of a cluster pool: hosts → workers, a card per worker, a lost host leaves the tree', async () => {
  nats = await NatsServer.start(procs);
  agents = await startAgents(procs, ['ia', 'ib'].map((hostId) => ({ servers: nats!.url, pool: 'insp', hostId, poolSize: hostId === 'ia' ? 2 : 1, heartbeatInterval: 200 })));
  cluster = await createClusterPool({ servers: nats.url, pool: 'insp', hostTimeout: 1000 });
  await cluster.whenHosts(2);
  for (let i = 0; i < 12; i++) await cluster.execute('whoami', null, { sessionId: `s${i}` });
  inspector = await serveInspector(cluster);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--headless=new'] });
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(inspector.url);
  await page.waitForFunction(() => document.querySelectorAll('.card[data-worker]').length === 3, undefined, WAIT);
  const cards = await page.$$eval('.card[data-worker]', (cs) => cs.map((c) => c.getAttribute('data-worker')).sort());
  assert.equal(cards, ['ia/worker_1', 'ia/worker_2', 'ib/worker_1']);
  const tree = (await page.textContent('#tree'))!;
  for (const text of ['cluster', 'ClusterPool', 'ia', 'ib', 'worker_1', 'worker_2']) assert.ok(tree.includes(text), `tree shows ${text}: ${tree}`);
  assert.match((await page.textContent('#summary'))!, /3 workers · cluster of 2 host\(s\)/);
  // The pids on the cards are the agents' workers'.
  const pids = await page.$$eval('.card[data-worker]', (cs) => cs.map((c) => Number(c.getAttribute('data-pid'))));
  const known = new Set(agents.flatMap((a) => [...a.workerPids]));
  assert.ok(pids.every((p) => known.has(p)), `card pids ${pids} are the agents' workers ${[...known]}`);

  // An agent SIGKILLed: its host is dropped, its cards go, the log says so.
  process.kill(agents[1]!.pid, 'SIGKILL');
  await page.waitForFunction(() => document.querySelectorAll('.card[data-worker]').length === 2, undefined, WAIT);
  await page.waitForFunction(() => [...document.querySelectorAll('#log li')].some((li) => li.textContent?.includes('ib') && li.textContent.includes('host dropped')), undefined, WAIT);
  assert.not.ok((await page.textContent('#tree'))!.includes('ib'), 'the lost host left the tree');
  assert.equal(errors, [], 'no error in the page');
});

test('nothing this suite started is still alive', async () => {
  await browser?.close();
  await inspector?.close();
  await cluster?.stop();
  // SIGTERM, the agent drains and exits (the SIGKILLed one is gone already).
  for (const a of agents) await a.child.stop();
  await nats?.stop();
  await assertAllDead(procs);
});

test.after(() => procs.killAll());

test.run();
