/**
 * The recipes in examples/ that need the DSPy virtualenv, run as a user runs them (a Node
 * process each, importing 'pyvisor' by name from the built package: `npm run build` first):
 *
 *   venv-interpreter.mjs  the workers run the venv's interpreter (sys.prefix is the venv) and import
 *                         its packages (dspy, pydantic); on an interpreter without dspy it exits 1
 *                         quoting the ModuleNotFoundError
 *   dspy-openai.mjs       real DSPy ChainOfThought through PythonPool against a loopback
 *                         OpenAI-compatible server (test/fixtures/chat-server.ts): the answer, the
 *                         reasoning, token usage, a streamed answer; an HTTP 401 exits 1 naming it
 *
 * Run by the `dspy-pool` tier of scripts/run-tests.mjs (PYVISOR_DSPY_PYTHON=.venv/bin/python).
 * Offline: the workers run with python/tests/netguard on their PYTHONPATH (through the example's
 * environment), and the test checks that no connection beyond loopback was tried. Each test ends
 * by proving that no worker the example started is alive.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startChatServer, type ChatServer } from '../fixtures/chat-server.js';
import { ROOT, isAlive } from '../integration/helpers.js';

const PYTHON = process.env.PYVISOR_DSPY_PYTHON ?? '';
const EXAMPLES = join(ROOT, 'examples');
const home = mkdtempSync(join(tmpdir(), 'pyvisor-dspy-examples-home-'));
const running = new Set<ChildProcess>();
let chat: ChatServer;

/** The example's environment, which its workers inherit: the network guard, no proxy, no key, a private HOME. */
const OFFLINE = {
  PYTHONPATH: join(ROOT, 'python', 'tests', 'netguard'),
  HOME: home,
  NO_PROXY: '127.0.0.1,localhost',
  HTTP_PROXY: '',
  HTTPS_PROXY: '',
  OPENAI_API_KEY: '',
  OPENAI_BASE_URL: '',
};

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run an example to its end (the recipes here are one-shot programs). */
function runExample(file: string, args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<Run> {
  const child = spawn(process.execPath, [join(EXAMPLES, file), ...args], { cwd: ROOT, env: { ...process.env, ...OFFLINE, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${file} still running after ${timeoutMs} ms:\n${stdout}${stderr}`)), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

function line(run: Run, re: RegExp): RegExpExecArray {
  const m = re.exec(run.stdout);
  assert.ok(m, `no ${re} in:\n${run.stdout}\n${run.stderr}`);
  return m!;
}

function assertOffline(run: Run): void {
  assert.not.match(run.stderr, /pyvisor-netguard: blocked/, 'no worker tried to reach beyond loopback');
}

const assertDead = (pids: number[], what: string) => assert.equal(pids.filter(isAlive), [], `no worker of ${what} is alive`);
/** Every worker pid in the pool's prefixed stderr lines ("[worker_1 4242] ..."). */
const stderrPids = (stderr: string) => [...new Set([...stderr.matchAll(/^\[worker_\d+ (\d+)\]/gm)].map((m) => Number(m[1])))];

function python(code: string, interpreter = PYTHON): { ok: boolean; out: string } {
  const r = spawnSync(interpreter, ['-c', code], { encoding: 'utf8', env: { ...process.env, ...OFFLINE } });
  return { ok: r.status === 0, out: (r.stdout ?? '').trim() };
}

test.before(async () => {
  if (!PYTHON) throw new Error('PYVISOR_DSPY_PYTHON is not set: run this suite through `node scripts/run-tests.mjs dspy-pool`');
  assert.ok(existsSync(join(ROOT, 'dist', 'src', 'index.js')), 'dist/ is missing: run `npm run build`');
  chat = await startChatServer();
});

test.after(async () => {
  for (const child of running) child.kill('SIGKILL');
  await chat?.close();
  rmSync(home, { recursive: true, force: true });
});

test('examples/venv-interpreter.mjs: workers on the venv interpreter import its dspy and pydantic; sys.prefix is the venv', async () => {
  const want = python('import sys, dspy, pydantic; print(sys.prefix); print(dspy.__version__); print(pydantic.VERSION)').out.split('\n');
  const run = await runExample('venv-interpreter.mjs', [PYTHON], {});
  assert.is(run.code, 0, `${run.stdout}${run.stderr}`);
  const pid = Number(line(run, /^worker pid (\d+) on (.+)$/m)[1]);
  const prefix = line(run, /^sys\.prefix: (.+?) \((a virtualenv|not a virtualenv)/m);
  assert.is(prefix[1], want[0]);
  assert.is(prefix[2], 'a virtualenv');
  assert.not.equal(prefix[1], python('import sys; print(sys.base_prefix)').out, 'the venv, not its base interpreter');
  line(run, new RegExp(`^python [\\d.]+, dspy ${want[1]!.replace(/\./g, '\\.')}, pydantic ${want[2]!.replace(/\./g, '\\.')}$`, 'm'));
  assert.equal(JSON.parse(line(run, /^validated: (.+)$/m)[1]!), { text: 'What is a venv?', max_words: 20 });
  line(run, /^refused: ValueError: invalid question: text: Input should be a valid string$/m);
  assertOffline(run);
  assertDead([pid], 'venv-interpreter.mjs');
});

test('examples/venv-interpreter.mjs: an interpreter without dspy fails to start, quoting the ModuleNotFoundError (exit 1)', async () => {
  const system = process.env.PYVISOR_PYTHON || 'python3';
  if (python('import dspy', system).ok) {
    console.log(`  (skipped: ${system} imports dspy)`);
    return;
  }
  const run = await runExample('venv-interpreter.mjs', [system], {});
  assert.is(run.code, 1, `${run.stdout}${run.stderr}`);
  assert.match(run.stderr, /cannot start workers on .+: Worker worker_1 could not start .*could not load handlers '.*venv_info\.py': ModuleNotFoundError: No module named 'dspy'/);
  const pids = stderrPids(run.stderr);
  assert.ok(pids.length > 0, 'the failed workers wrote their traceback');
  assertDead(pids, 'the failed start');
});

test('examples/dspy-openai.mjs: real DSPy ChainOfThought against a loopback OpenAI-compatible server: reasoning, answer, usage, a streamed answer', async () => {
  const run = await runExample('dspy-openai.mjs', ['What is a supervision tree?'], {
    VENV_PYTHON: PYTHON,
    OPENAI_BASE_URL: chat.url('example'),
    OPENAI_API_KEY: 'sk-example',
    OPENAI_MODEL: 'test-model',
  });
  assert.is(run.code, 0, `${run.stdout}${run.stderr}`);
  const pids = line(run, /^workers: pids (\d+(?:, \d+)*)$/m)[1]!.split(', ').map(Number);
  assert.is(pids.length, 2);
  line(run, /^lm: openai\/test-model$/m);
  line(run, /^engine: dspy$/m);
  line(run, /^reasoning: reasoning from example #1$/m);
  line(run, /^answer: answer from example #1$/m);
  assert.equal(JSON.parse(line(run, /^usage: (.+)$/m)[1]!), { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 });
  line(run, /^streamed: answer from example #2$/m);
  const seen = chat.seen('example');
  assert.is(seen.length, 2, 'one LM request per execution');
  assert.ok(seen.every((r) => r.body.model === 'test-model'), 'the model as given, no provider prefix');
  assert.ok(JSON.stringify(seen[0]!.body.messages).includes('What is a supervision tree?'));
  assert.not.ok(seen[0]!.body.stream);
  assert.is(seen[1]!.body.stream, true);
  assertOffline(run);
  assertDead(pids, 'dspy-openai.mjs');
});

test('examples/dspy-openai.mjs: an endpoint answering 401 is reported with its HTTP status (exit 1)', async () => {
  const run = await runExample('dspy-openai.mjs', [], { VENV_PYTHON: PYTHON, OPENAI_BASE_URL: chat.url('401'), OPENAI_API_KEY: 'sk-wrong' });
  assert.is(run.code, 1, `${run.stdout}${run.stderr}`);
  const pids = line(run, /^workers: pids (\d+(?:, \d+)*)$/m)[1]!.split(', ').map(Number);
  line(run, /^lm: openai\/gpt-4o-mini$/m);
  assert.match(run.stderr, /^LM call failed \(HTTP 401\): LMError: dspy program 'qa' failed: LMAuthError \(HTTP 401\)/m);
  assert.not.match(run.stdout, /^answer:/m);
  assert.is(chat.seen('401').length, 1, 'an LM error is not retried');
  assertOffline(run);
  assertDead(pids, 'dspy-openai.mjs');
});

test.run();
