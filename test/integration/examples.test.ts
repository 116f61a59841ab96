/**
 * Layer 3: the recipes in examples/ run as a user runs them, each in a Node process of its own,
 * importing 'pyvisor' by name (against the built package, so `npm run build` first; npm ci does
 * it). Each test synchronizes on the example's output lines and ends by proving that no Python
 * worker the example started is alive. The recipes that need the DSPy virtualenv are run by
 * test/dspy/examples.dspy.test.ts.
 *
 *   express-server.mjs  POSTs reach a real Python worker; errors become statuses by code; on
 *                       SIGTERM a request in flight still answers, a new one is refused, exit 0
 *   await-using.ts      compiled by the repo's TypeScript (ES2022 target, which lowers `await
 *                       using`) into a project of its own that has pyvisor in node_modules
 *   pino-logs.mjs       every stdout line is pino JSON; print(), logging, ctx.log and a
 *                       traceback arrive at their levels, bound to the worker and its pid
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WebSocket } from 'ws';
import { PYTHON, ROOT, isAlive } from './helpers.js';

const EXAMPLES = join(ROOT, 'examples');
const running = new Set<ChildProcess>();
const temps: string[] = [];

interface Example {
  child: ChildProcess;
  /** stdout and stderr as they arrived, interleaved. */
  output(): string;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of `re` in the output (so far or to come); rejects if the process ends first. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** The exit code, once stdout and stderr are closed. */
  exited(timeoutMs?: number): Promise<number | null>;
}

function runExample(file: string, options: { args?: string[]; env?: Record<string, string>; cwd?: string } = {}): Example {
  const child = spawn(process.execPath, [file, ...(options.args ?? [])], {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, PYVISOR_PYTHON: PYTHON, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let all = '';
  let out = '';
  let err = '';
  const listeners = new Set<() => void>();
  child.stdout!.on('data', (d) => ((out += d), (all += d), listeners.forEach((l) => l())));
  child.stderr!.on('data', (d) => ((err += d), (all += d), listeners.forEach((l) => l())));
  let code: number | null | undefined;
  const closed = new Promise<number | null>((resolve) =>
    child.on('close', (c) => {
      running.delete(child);
      code = c;
      listeners.forEach((l) => l());
      resolve(c);
    }),
  );
  return {
    child,
    output: () => all,
    stdout: () => out,
    stderr: () => err,
    waitFor: (re, timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        const done = (f: () => void) => (clearTimeout(timer), listeners.delete(check), f());
        const check = () => {
          const m = re.exec(all);
          if (m) done(() => resolve(m));
          else if (code !== undefined) done(() => reject(new Error(`exited (${code}) without ${re}:\n${all}`)));
        };
        const timer = setTimeout(() => done(() => reject(new Error(`no ${re} within ${timeoutMs} ms:\n${all}`))), timeoutMs);
        listeners.add(check);
        check();
      }),
    exited: (timeoutMs = 30_000) =>
      Promise.race([closed, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`still running after ${timeoutMs} ms:\n${all}`)), timeoutMs).unref())]),
  };
}

const pidList = (text: string) => text.split(/,\s*/).map(Number);
const assertDead = (pids: number[], what: string) => assert.equal(pids.filter(isAlive), [], `no worker of ${what} is alive`);

test.before(() => {
  assert.ok(existsSync(join(ROOT, 'dist', 'src', 'index.js')), 'dist/ is missing: run `npm run build`');
});

test('examples/express-server.mjs: commands by POST, errors to statuses by code, SIGTERM drains the request in flight, exit 0', async () => {
  const ex = runExample(join(EXAMPLES, 'express-server.mjs'), { env: { PORT: '0' } });
  const listening = await ex.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+) with (\d+) Python workers \(pids ([\d, ]+)\)/);
  const url = listening[1]!;
  const pids = pidList(listening[3]!);
  assert.is(pids.length, Number(listening[2]));
  const post = (command: string, body: string) => fetch(`${url}/${command}`, { method: 'POST', body });

  const ok = await post('echo', JSON.stringify({ hello: 'world' }));
  assert.is(ok.status, 200);
  assert.equal(await ok.json(), { hello: 'world' });
  const bad = await post('raise', JSON.stringify({ message: 'kaboom' }));
  assert.is(bad.status, 422);
  const wire = (await bad.json()) as { code: string; message: string; fields: Record<string, unknown> };
  assert.is(wire.code, 'PYTHON_ERROR');
  assert.is(wire.message, 'ValueError: kaboom');
  assert.is(wire.fields.pythonType, 'ValueError');
  assert.not.ok('traceback' in wire.fields, 'the Python traceback stays on the server');
  const typo = await post('ehco', '{}');
  assert.is(typo.status, 404);
  assert.match(((await typo.json()) as { message: string }).message, /did you mean 'echo'/);
  const notJson = await post('echo', '{"hello":');
  assert.is(notJson.status, 400);
  assert.is(((await notJson.json()) as { code: string }).code, 'BAD_JSON');

  // A request in flight when SIGTERM arrives still gets its answer; a new one does not get in.
  const slow = post('slow', JSON.stringify({ seconds: 1.5 })).then(async (r) => ({ status: r.status, body: await r.json(), draining: ex.output().includes('SIGTERM: draining') }));
  await ex.waitFor(/\[worker_\d+ \d+\] slow: started, 1\.5 s/); // the handler's print(), on the server's stderr
  ex.child.kill('SIGTERM');
  await ex.waitFor(/SIGTERM: draining/);
  const late = await post('echo', '1').then((r) => r.status, () => 'refused');
  assert.ok(late === 503 || late === 'refused', `a request after SIGTERM: ${late}`);
  const answered = await slow;
  assert.is(answered.status, 200);
  assert.equal(answered.body, { slept: 1.5 });
  assert.ok(answered.draining, 'the slow request was answered after the drain began');
  const answeredAt = performance.now();
  assert.is(await ex.exited(), 0, ex.output());
  // Its response closed its connection: server.close() did not wait for an idle keep-alive socket (~4 s).
  const lingered = performance.now() - answeredAt;
  assert.ok(lingered < 1500, `exited ${lingered.toFixed(0)} ms after the last answer`);
  assert.match(ex.stdout(), /stopped: no worker left\n$/);
  assertDead(pids, 'express-server.mjs');
});

test('examples/await-using.ts: compiled for Node 20, the pool is stopped when its block ends, also when it throws', async () => {
  assert.type(Symbol.asyncDispose, 'symbol', 'Node >= 20.4 defines Symbol.asyncDispose');
  // A project of the user's own: the compiled file, "type": "module", and pyvisor in node_modules.
  const dir = mkdtempSync(join(tmpdir(), 'pyvisor-await-using-'));
  temps.push(dir);
  const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(EXAMPLES, 'tsconfig.json'), '--outDir', dir], { cwd: ROOT, encoding: 'utf8' });
  assert.is(tsc.status, 0, `tsc failed:\n${tsc.stdout}${tsc.stderr}`);
  const js = readFileSync(join(dir, 'await-using.js'), 'utf8');
  assert.not.match(js, /^\s*await using /m, 'TypeScript lowered `await using`');
  assert.match(js, /Symbol\.asyncDispose/);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'app', type: 'module', private: true }));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(ROOT, join(dir, 'node_modules', 'pyvisor'), 'dir');

  const ex = runExample(join(dir, 'await-using.js'), { cwd: dir });
  const inside = await ex.waitFor(/in the block: 2 workers \(pids (\d+, \d+)\), ping answered by pid (\d+)/);
  const pids = pidList(inside[1]!);
  assert.ok(pids.includes(Number(inside[2])), 'a worker of the pool answered');
  await ex.waitFor(/after the block: workers alive: none\n/);
  const threw = await ex.waitFor(/a block that threw \(something went wrong in the block\): its workers \(pids (\d+)\) alive: none\n/);
  pids.push(Number(threw[1]));
  assert.is(await ex.exited(), 0, ex.output());
  assert.is(ex.stderr(), '');
  assertDead(pids, 'await-using.js');
});

interface PinoLine {
  level: number;
  msg: string;
  name: string;
  worker?: string;
  workerPid?: number;
  source?: string;
  logger?: string;
  pids?: number[];
}

test("examples/pino-logs.mjs: the workers' print(), logging, log notices and tracebacks are pino JSON lines at their levels", async () => {
  const ex = runExample(join(EXAMPLES, 'pino-logs.mjs'));
  assert.is(await ex.exited(), 0, ex.output());
  assert.is(ex.stderr(), '', "logs: 'events' writes nothing to stderr");
  const lines = ex.stdout().trimEnd().split('\n').map((l) => JSON.parse(l) as PinoLine);
  assert.ok(lines.every((l) => l.name === 'app' && typeof l.level === 'number' && typeof l.msg === 'string'));
  const started = lines.find((l) => l.msg === 'pool started')!;
  assert.ok(started, 'pool started');
  const pids = started.pids!;
  assert.is(pids.length, 2);
  const find = (msg: string) => {
    const found = lines.filter((l) => l.msg === msg);
    assert.is(found.length, 1, `one line ${JSON.stringify(msg)} in:\n${ex.stdout()}`);
    const line = found[0]!;
    assert.match(line.worker ?? '', /^worker_[12]$/);
    assert.ok(pids.includes(line.workerPid!), `${msg}: bound to a worker pid`);
    return line;
  };
  const level = { debug: 20, info: 30, warn: 40, error: 50 };
  for (const order of [42, 43]) {
    assert.is(find(`processing order ${order}`).level, level.info, 'print() is info');
    const accepted = find(`order ${order} accepted`);
    assert.equal([accepted.level, accepted.source, accepted.logger], [level.info, 'logging', 'shop.orders']);
    const done = find(`order ${order} done`);
    assert.equal([done.level, done.source], [level.debug, 'notice'], 'ctx.log(..., "debug")');
  }
  assert.is(find('order 43 is late').level, level.warn, 'logging.warning is warn');
  const failed = find('order 44 failed');
  assert.is(failed.level, level.error);
  const traceback = lines.filter((l) => l.source === 'traceback');
  assert.is(traceback[0]?.msg, 'Traceback (most recent call last):');
  assert.is(traceback.at(-1)?.msg, 'RuntimeError: payment declined');
  assert.ok(traceback.every((l) => l.level === level.error && l.workerPid === failed.workerPid));
  assert.is(lines.at(-1)!.msg, 'pool stopped');
  assertDead(pids, 'pino-logs.mjs');
});

test('examples/stately-inspect.mjs: a relay on 127.0.0.1 serves the bridge page and relays every actor of the pool; SIGTERM stops it all', async () => {
  const ex = runExample(join(EXAMPLES, 'stately-inspect.mjs'), { env: { PORT: '0' } });
  const [, port, pidText] = await ex.waitFor(/inspector on http:\/\/127\.0\.0\.1:(\d+) \(pool of 2 Python workers, pids ([\d, ]+);/);
  const pids = pidList(pidText!);
  assert.is(pids.length, 2);
  const page = await (await fetch(`http://127.0.0.1:${port}/`)).text();
  assert.match(page, /<iframe id="ui" src="https:\/\/stately\.ai\/inspect">/);
  assert.ok(page.includes(`new WebSocket("ws://127.0.0.1:${port}")`), 'the page reads the relay on loopback');
  // A browser's side of the relay: it is sent what the pool's inspector sent before and since.
  const socket = new WebSocket(`ws://127.0.0.1:${port}`);
  const actors = new Set<string>();
  const events = new Set<string>();
  const seen = new Promise<void>((resolve, reject) => {
    socket.on('error', reject);
    socket.on('message', (data) => {
      const m = JSON.parse(String(data)) as { type: string; name?: string; event?: { type: string } };
      if (m.type === '@xstate.actor' && m.name) actors.add(m.name);
      if (m.type === '@xstate.event' && m.event) events.add(m.event.type);
      if (['pool', 'workers', 'sessionPool', 'monitor', 'worker_1', 'worker_2'].every((n) => actors.has(n)) && events.has('PROC.READY')) resolve();
    });
  });
  await Promise.race([seen, ex.exited().then((c) => Promise.reject(new Error(`exited ${c}:\n${ex.output()}`)))]);
  socket.close();
  ex.child.kill('SIGTERM');
  assert.is(await ex.exited(), 0, ex.output());
  assert.match(ex.stdout(), /\nstopped\n$/);
  assertDead(pids, 'stately-inspect.mjs');
});

test.after(() => {
  for (const child of running) child.kill('SIGKILL');
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

test.run();
