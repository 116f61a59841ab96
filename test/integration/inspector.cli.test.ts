/**
 * `pyvisor inspect` as a user runs it (src/cli.ts, run through tsx): it starts a demo pool of real Python workers under load,
 * prints the page's URL, kills a worker now and then (here every second) and, on SIGINT,
 * stops everything and exits 0 with no Python process left.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, PidTracker, assertAllDead } from './helpers.js';

const CLI = join(ROOT, 'src', 'cli.ts');
const tracker = new PidTracker();
let child: ChildProcess | null = null;

function startCli(args: string[]) {
  const proc = spawn(process.execPath, ['--import', 'tsx', CLI, 'inspect', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    for (const w of [...waiters]) w();
  });
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const until = (what: string, re: RegExp, timeoutMs = 30_000) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const attempt = () => {
        const m = re.exec(out);
        if (!m) return false;
        waiters.delete(attempt);
        clearTimeout(timer);
        resolve(m);
        return true;
      };
      const timer = setTimeout(() => {
        waiters.delete(attempt);
        reject(new Error(`no ${what} in the output of pyvisor inspect:\n${out}\n${err}`));
      }, timeoutMs);
      if (!attempt()) waiters.add(attempt);
    });
  return { proc, until, exited, output: () => out + err };
}

test('pyvisor inspect serves the page of a live demo pool and stops cleanly on SIGINT', async () => {
  const cli = startCli(['--workers', '2', '--kill-every', '1']);
  child = cli.proc;
  const url = (await cli.until('the URL', /pyvisor inspector: (http:\/\/127\.0\.0\.1:\d+\/)\n/))[1]!;
  const pids = (await cli.until('the worker pids', /pids ([\d, ]+)\)/))[1]!.split(', ').map(Number);
  assert.is(pids.length, 2);
  for (const pid of pids) tracker.add(pid);

  const page = await fetch(url);
  assert.is(page.status, 200);
  assert.match(await page.text(), /pyvisor <span>inspector<\/span>/);

  // A worker is killed within a second or two; the demo reports it.
  const killed = await cli.until('a kill', /killed (worker_\d) \(pid (\d+)\)/);
  tracker.add(Number(killed[2]));
  const snapshot = await (await fetch(`${url}api/snapshot`)).json();
  assert.equal(snapshot.snap.workers.map((w: { id: string }) => w.id).slice(0, 2), ['worker_1', 'worker_2']);
  for (const w of snapshot.snap.workers) tracker.add(w.pid);

  cli.proc.kill('SIGINT');
  const { code } = await cli.exited;
  child = null;
  for (const m of cli.output().matchAll(/killed worker_\d+ \(pid (\d+)\)/g)) tracker.add(Number(m[1]));
  assert.is(code, 0, cli.output());
  assert.match(cli.output(), /stopped; no worker process is left/);
});

test('pyvisor inspect --handlers FILE --python PATH: your handlers are loaded in the demo pool', async () => {
  const cli = startCli(['--workers', '1', '--no-load', '--handlers', 'test/fixtures/handlers/echo_handlers.py', '--python', process.env.PYVISOR_PYTHON || 'python3']);
  child = cli.proc;
  const url = (await cli.until('the URL', /pyvisor inspector: (http:\/\/127\.0\.0\.1:\d+\/)\n/))[1]!;
  const line = (await cli.until('the pool line', /pool: 1 Python workers \(pids (\d+)\), your handlers: (\S+)/));
  tracker.add(Number(line[1]));
  assert.is(line[2], 'test/fixtures/handlers/echo_handlers.py');
  assert.is((await fetch(url)).status, 200);
  cli.proc.kill('SIGINT');
  const { code } = await cli.exited;
  child = null;
  assert.is(code, 0, cli.output());
});

test('pyvisor inspect --handlers with a broken file: exit 1, and the message names the file and the Python error', async () => {
  const cli = startCli(['--workers', '1', '--no-load', '--handlers', 'test/fixtures/handlers/syntax_error.py']);
  child = cli.proc;
  const { code } = await cli.exited;
  child = null;
  assert.is(code, 1, cli.output());
  assert.match(cli.output(), /pyvisor inspect: .*syntax_error\.py/);
  assert.match(cli.output(), /SyntaxError/);
});

test('no Python process started here is still alive', () => {
  assertAllDead(tracker);
});

test.after(async () => {
  if (child && child.exitCode === null) {
    child.kill('SIGKILL');
  }
});

test.run();
