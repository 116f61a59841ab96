/**
 * Layer 3: the `pyvisor` command line, spawned as `node --import tsx src/cli.ts ...` (no build
 * needed) against real python3 workers. Exit codes, messages, JSON output, and the demo.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isAlive, markedProcesses, runCli, type CliRun } from './helpers.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const HANDLERS = 'test/fixtures/handlers/echo_handlers.py';
/** Marks the Python processes this file's CLI runs start (they inherit the environment). */
const MARK = `cli-test-${randomUUID()}`;
const pids = new Set<number>();

type Run = CliRun;

function cli(args: string[], timeoutMs = 60_000): Promise<Run> {
  return runCli(args, { PYVISOR_TEST_MARK: MARK }, timeoutMs);
}

function usageError(r: Run, message: string | RegExp): void {
  assert.is(r.code, 2, `exit code 2 expected, got ${r.code}; stderr: ${r.stderr}`);
  if (typeof message === 'string') assert.ok(r.stderr.includes(message), `stderr should mention ${JSON.stringify(message)}: ${r.stderr}`);
  else assert.match(r.stderr, message);
  assert.is(r.stdout, '');
}

test('--help exits 0 and lists the commands', async () => {
  const r = await cli(['--help']);
  assert.is(r.code, 0);
  assert.match(r.stdout, /Usage: pyvisor/);
  for (const cmd of ['demo', 'call', 'inspect']) assert.match(r.stdout, new RegExp(`\\n  ${cmd}\\b`));
  assert.match(r.stdout, /Exit codes: 0 success, 1 .*, 2 bad usage/);
  const sub = await cli(['call', '--help']);
  assert.is(sub.code, 0);
  for (const opt of ['--session', '--handlers', '--python', '--timeout']) assert.ok(sub.stdout.includes(opt), opt);
  assert.ok(sub.stdout.includes('{"$bytes": "<base64>"}'));
});

test('--version prints the package version', async () => {
  const r = await cli(['--version']);
  assert.is(r.code, 0);
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  assert.is(r.stdout.trim(), version);
});

test('bad arguments exit 2 with a clear message', async () => {
  const cases: Array<[string[], string | RegExp]> = [
    [[], /Usage: pyvisor/],
    [['frobnicate'], "unknown command 'frobnicate'"],
    [['call'], "missing required argument 'command'"],
    [['call', 'ping', '--frobnicate'], "unknown option '--frobnicate'"],
    [['call', 'ping', '--timeout', 'soon'], `option '--timeout <ms>' argument 'soon' is invalid. must be a number of milliseconds > 0`],
    [['call', 'ping', '{}', 'extra'], /too many arguments/],
    [['demo', '--sessions', '0'], `option '--sessions <n>' argument '0' is invalid. must be an integer from 1 to 1000, got "0"`],
    [['demo', '--duration', '-3'], /--duration/],
    [['demo', '--workers', 'many'], `argument 'many' is invalid`],
  ];
  await Promise.all(
    cases.map(async ([args, message]) => {
      const r = await cli(args);
      usageError(r, message);
    }),
  );
});

test('invalid JSON args are named as such (exit 2)', async () => {
  const r = await cli(['call', 'echo', '{"hello": world}', '--handlers', HANDLERS]);
  usageError(r, /^pyvisor: invalid JSON args "\{\\"hello\\": world\}": .*JSON/m);
});

test('call ping prints the result as JSON', async () => {
  const r = await cli(['call', 'ping']);
  assert.is(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout) as { pong: boolean; pid: number; mode: string; worker_id: string };
  assert.is(result.pong, true);
  assert.is(result.mode, 'pool-worker');
  assert.is(result.worker_id, 'worker_1');
  pids.add(result.pid);
  assert.not.ok(isAlive(result.pid), `the worker ${result.pid} outlived the CLI`);
});

test('--handlers takes one value (repeatable): JSON args after it are the args, not a module', async () => {
  const r = await cli(['call', 'echo', '--handlers', HANDLERS, '{"x":1}', '--compact']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout.trim(), '{"x":1}');
  const twice = await cli(['call', 'pid', '--handlers', HANDLERS, '--handlers', 'test/fixtures/handlers/pool_handlers.py']);
  assert.is(twice.code, 0, twice.stderr);
});

test('call echo with --handlers round-trips JSON, and bytes as {"$bytes": base64}', async () => {
  const args = { hello: 'world', n: [1, 2.5, null, true], nested: { data: { $bytes: Buffer.from('hi there').toString('base64') } } };
  const r = await cli(['call', 'echo', JSON.stringify(args), '--handlers', HANDLERS, '--compact']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout.trim().split('\n').length, 1);
  assert.equal(JSON.parse(r.stdout), args);
  const blob = await cli(['call', 'blob', '{"size": 4}', '--handlers', HANDLERS]);
  assert.is(blob.code, 0, blob.stderr);
  assert.equal(JSON.parse(blob.stdout), { $bytes: Buffer.from([0, 1, 2, 3]).toString('base64') });
  const pid = await cli(['call', 'pid', '--handlers', HANDLERS]);
  pids.add(JSON.parse(pid.stdout) as number);
});

test('a failed call exits 1 with the error code and message', async () => {
  const raised = await cli(['call', 'raise', '{"message": "kaboom"}', '--handlers', HANDLERS]);
  assert.is(raised.code, 1);
  assert.is(raised.stdout, '');
  assert.match(raised.stderr, /^pyvisor call raise: PYTHON_ERROR: ValueError: kaboom$/m);
  assert.match(raised.stderr, /--verbose/);
  const verbose = await cli(['call', 'raise', '{"message": "kaboom"}', '--handlers', HANDLERS, '--verbose']);
  assert.match(verbose.stderr, /Traceback/);
  const unknown = await cli(['call', 'no_such_command']);
  assert.is(unknown.code, 1);
  assert.match(unknown.stderr, /PYTHON_ERROR: UnknownCommand: Unknown command 'no_such_command'/);
  const noSession = await cli(['call', 'list_programs']);
  assert.is(noSession.code, 1);
  assert.match(noSession.stderr, /SessionRequiredError: list_programs: session_id required in pool-worker mode/);
  const badPython = await cli(['call', 'ping', '--python', '/nonexistent/python3']);
  assert.is(badPython.code, 1);
  assert.match(badPython.stderr, /WORKER_START_FAILED: No worker could start with interpreter "\/nonexistent\/python3": interpreter not found \(path tried: \/nonexistent\/python3\)/);
  const timeout = await cli(['call', 'sleep', '{"seconds": 5}', '--handlers', HANDLERS, '--timeout', '200']);
  assert.is(timeout.code, 1);
  assert.match(timeout.stderr, /REQUEST_TIMEOUT: Command "sleep" ran past its timeout of 200 ms/);
});

test('call runs the DSPy commands in a session', async () => {
  const r = await cli(['call', 'create_program', '{"id": "qa", "signature": {"inputs": ["question"], "outputs": ["answer"]}}', '--session', 's1']);
  assert.is(r.code, 0, r.stderr);
  const created = JSON.parse(r.stdout) as { program_id: string; type: string };
  assert.is(created.program_id, 'qa');
  assert.is(created.type, 'predict');
});

test('demo --duration 3 --sessions 6 finishes green without a TTY and prints a summary', async () => {
  const r = await cli(['demo', '--duration', '3', '--sessions', '6', '--workers', '3']);
  assert.is(r.code, 0, `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  assert.not.match(r.stdout, /\x1b\[/, 'no escape sequences when stdout is not a TTY');
  assert.match(r.stdout, /pyvisor demo — 3 workers · 6 sessions · (real DSPy [0-9.]+|built-in runner[^·]*) · dummy LM/);
  assert.match(r.stdout, /\[ +\d+\.\d s +\d+%\] executions \d+/); // the periodic plain lines
  assert.match(r.stdout, /SIGKILL → worker_\d \(pid \d+/);
  assert.match(r.stdout, /restarted worker_\d: pid \d+ → \d+/);
  assert.match(r.stdout, /\nsummary\n/);
  assert.match(r.stdout, /executions +\d[\d,]* \(0 wrong, 0 failed\) over 6 sessions on 3 workers/);
  assert.match(r.stdout, /throughput +[\d,]+ executions\/s/);
  assert.match(r.stdout, /latency +p50 [\d.]+ ms, p99 [\d.]+ ms/);
  assert.match(r.stdout, /processes +no Python process left after stop/);
  assert.match(r.stdout, /verdict +PASS/);
  for (const m of r.stdout.matchAll(/worker_\d+=(\d+)|pid (\d+) → (\d+)/g)) for (const g of m.slice(1)) if (g) pids.add(Number(g));
  assert.ok(pids.size >= 4);
});

test('demo --no-kill runs without killing anything', async () => {
  const r = await cli(['demo', '--duration', '1', '--sessions', '2', '--workers', '1', '--no-kill']);
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.not.match(r.stdout, /SIGKILL/);
  assert.match(r.stdout, /verdict +PASS/);
  for (const m of r.stdout.matchAll(/worker_\d+=(\d+)/g)) pids.add(Number(m[1]));
});

test('no Python process started by this file is still alive', async () => {
  assert.ok(pids.size > 0);
  const alive = [...pids].filter(isAlive);
  assert.equal(alive, [], `still alive: ${alive.join(', ')}`);
  // Every worker the CLI runs started inherited MARK: none may be left anywhere.
  const marked = markedProcesses(MARK);
  assert.equal(marked, [], `processes started by this file still running: ${marked.join(', ')}`);
});

test.run();
