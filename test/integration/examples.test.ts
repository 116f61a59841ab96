/**
 * Layer 3: the recipes in examples/ run as a user runs them (against the built package, so
 * `npm run build` first; npm ci does it). examples/http-server.mjs: a POST reaches a real
 * Python worker, a Python error becomes 422 with the error as data, SIGTERM drains and exits 0,
 * and no worker it started is left.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ECHO_HANDLERS, PYTHON, ROOT, isAlive } from './helpers.js';

let child: ChildProcess | null = null;
const pids: number[] = [];

test('examples/http-server.mjs: serves commands, maps errors to statuses, drains on SIGTERM', async () => {
  assert.ok(existsSync(join(ROOT, 'dist', 'src', 'index.js')), 'dist/ is missing: run `npm run build`');
  child = spawn(process.execPath, [join(ROOT, 'examples', 'http-server.mjs')], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HANDLERS: ECHO_HANDLERS, PYVISOR_PYTHON: PYTHON },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child!.on('exit', (code) => resolve(code)));
  const listening = await new Promise<RegExpMatchArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening" line:\n${out}`)), 30_000);
    child!.stdout!.on('data', () => {
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+) with \d+ Python workers \(pids ([\d, ]+)\)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
  });
  pids.push(...listening[2]!.split(', ').map(Number));
  const url = listening[1]!;
  const ok = await fetch(`${url}/echo`, { method: 'POST', body: JSON.stringify({ hello: 'world' }) });
  assert.is(ok.status, 200);
  assert.equal(await ok.json(), { hello: 'world' });
  const bad = await fetch(`${url}/raise`, { method: 'POST', body: JSON.stringify({ message: 'kaboom' }) });
  assert.is(bad.status, 422);
  const wire = (await bad.json()) as { code: string; message: string };
  assert.is(wire.code, 'PYTHON_ERROR');
  assert.match(wire.message, /kaboom/);
  const typo = await fetch(`${url}/ehco`, { method: 'POST', body: '{}' });
  assert.match(((await typo.json()) as { message: string }).message, /did you mean 'echo'/);
  child.kill('SIGTERM');
  assert.is(await exited, 0, out);
  child = null;
  assert.match(out, /stopped: no worker left/);
  assert.equal(pids.filter(isAlive), [], 'no worker of the example is alive');
});

test.after(() => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
});

test.run();
