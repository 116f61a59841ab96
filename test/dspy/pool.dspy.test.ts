/**
 * Real DSPy (python/requirements-dspy.txt, in .venv) in the pool, end to end through PythonPool:
 * Predict and ChainOfThought on DSPy's DummyLM and on a loopback OpenAI-compatible server, LM
 * errors with their HTTP status, two sessions with different LMs on one worker, an optimized
 * program (BootstrapFewShot in a worker, progress streamed) exported, its worker SIGKILLed, and
 * the program executed on another worker with its demos, streaming of output fields, and
 * workerConcurrency letting one worker wait on many LM calls at once.
 *
 * Run by the `dspy-pool` tier of scripts/run-tests.mjs, which sets PYVISOR_DSPY_PYTHON to
 * .venv/bin/python. Offline: the workers run with python/tests/netguard (any connection but
 * loopback is refused and reported on stderr, which the suite checks).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PythonError, PythonPool, WorkerCrashedError, type ExportedProgram, type Pool, type PoolOptions } from '../../src/index.js';
import { startChatServer, type ChatServer } from '../fixtures/chat-server.js';
import { ROOT, assertAllDead, isAlive, nextEvent, startPool, stopAll, suitePids } from '../integration/helpers.js';

const PYTHON = process.env.PYVISOR_DSPY_PYTHON ?? '';
const QA = { id: 'qa', signature: { inputs: [{ name: 'question' }], outputs: [{ name: 'answer' }], instructions: 'Answer briefly.' } };
const home = mkdtempSync(join(tmpdir(), 'pyvisor-dspy-home-'));
const stderr: string[] = [];
let chat: ChatServer;

/** The workers' environment: real DSPy required, the network guard, no proxy, a private HOME. */
function offline(): PoolOptions {
  return {
    python: PYTHON,
    env: {
      PYVISOR_DSPY: 'require',
      PYTHONPATH: join(ROOT, 'python', 'tests', 'netguard'),
      HOME: home,
      NO_PROXY: '127.0.0.1,localhost',
      HTTP_PROXY: '',
      HTTPS_PROXY: '',
      OPENAI_API_KEY: '',
      OPENAI_BASE_URL: '',
    },
  };
}

async function dspyPool(options: PoolOptions = {}): Promise<{ pool: Pool; py: PythonPool }> {
  const pool = await startPool({ ...offline(), poolSize: 2, maxOverflow: 0, ...options });
  pool.on('worker_log', (e: { line: string }) => stderr.push(e.line));
  return { pool, py: new PythonPool(pool) };
}

const openai = (tag: string) => ({ provider: 'openai' as const, model: 'test-model', baseUrl: chat.url(tag), apiKey: 'sk-test', timeoutMs: 10_000 });

test.before(async () => {
  if (!PYTHON) throw new Error('PYVISOR_DSPY_PYTHON is not set: run this suite through `node scripts/run-tests.mjs dspy-pool`');
  chat = await startChatServer();
});

test.after(async () => {
  await stopAll();
  await chat?.close();
  rmSync(home, { recursive: true, force: true });
  assertAllDead(suitePids);
  const blocked = stderr.filter((l) => l.includes('pyvisor-netguard: blocked'));
  assert.equal(blocked, [], 'no worker tried to reach beyond loopback');
});

test('Predict and ChainOfThought run real DSPy modules on DummyLM; ChainOfThought has its reasoning field', async () => {
  const { py } = await dspyPool();
  const s = py.sessionAdapter('dummy');
  await s.createProgram(QA);
  await s.createProgram({ id: 'cot', type: 'chain_of_thought', signature: { inputs: ['question'], outputs: ['answer'] } });
  const info = await s.getProgramInfo('qa');
  assert.is(info.engine, 'dspy');
  const r = await s.executeProgram('qa', { question: 'What is DSPy?' });
  assert.type(r.outputs.answer, 'string');
  const cot = await s.executeProgram('cot', { question: 'Why?' });
  assert.equal(Object.keys(cot.outputs), ['reasoning', 'answer']);
  assert.type(cot.outputs.reasoning, 'string');
});

test('through a loopback OpenAI-compatible server: the answer, the model, token usage', async () => {
  const { py } = await dspyPool();
  const s = py.sessionAdapter('http');
  await s.configureLM(openai('ok'));
  await s.createProgram(QA);
  const r = await s.executeProgram('qa', { question: 'What is DSPy?' });
  assert.match(String(r.outputs.answer), /^answer from ok #\d+$/);
  assert.is(r.provider, 'openai');
  assert.ok(r.usage, 'usage reported');
  assert.equal(r.usage, { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 });
  const sent = chat.seen('ok').at(-1)!;
  assert.is(sent.body.model, 'test-model', 'no provider prefix on the wire');
});

test('LM errors are PythonErrors with their HTTP status (401, 429 with retryAfter, 500); a malformed reply is typed too; the worker is kept', async () => {
  const { pool, py } = await dspyPool({ poolSize: 1 });
  const pid = pool.workers()[0]!.pid;
  for (const [tag, status] of [['401', 401], ['429', 429], ['500', 500]] as const) {
    const s = py.sessionAdapter(`err-${tag}`);
    await s.configureLM(openai(tag));
    await s.createProgram(QA);
    try {
      await s.executeProgram('qa', { question: 'q' });
      assert.unreachable('should fail');
    } catch (error) {
      assert.instance(error, PythonError);
      const e = error as PythonError;
      assert.is(e.status, status, `${tag}: ${e.message}`);
      assert.is(e.details?.status, status);
      if (status === 429) assert.is(e.retryAfter, 7);
    }
  }
  const s = py.sessionAdapter('err-malformed');
  await s.configureLM(openai('malformed'));
  await s.createProgram(QA);
  const e = await s.executeProgram('qa', { question: 'q' }).catch((x: unknown) => x);
  assert.instance(e, PythonError);
  assert.ok((e as PythonError).pythonType.length > 0);
  assert.is(pool.workers()[0]!.pid, pid, 'LM errors never cost the worker');
});

test('two sessions with different LMs on one worker never see each other’s LM', async () => {
  const { py } = await dspyPool({ poolSize: 1 });
  const a = py.sessionAdapter('lm-a');
  const b = py.sessionAdapter('lm-b');
  await a.configureLM(openai('alpha'));
  await b.configureLM(openai('beta'));
  await a.createProgram(QA);
  await b.createProgram(QA);
  const answers = await Promise.all([a, b, a, b, a, b].map((s) => s.executeProgram('qa', { question: 'same question' })));
  answers.forEach((r, i) => assert.match(String(r.outputs.answer), i % 2 === 0 ? /from alpha/ : /from beta/));
  // No cache: the same question twice in one session reached the server twice.
  assert.is(chat.seen('alpha').length, 3);
});

test('optimize (BootstrapFewShot in a worker, progress streamed) → export → SIGKILL that worker → execute elsewhere: the demos are there', async () => {
  const { pool, py } = await dspyPool({ poolSize: 2 });
  const s = py.sessionAdapter('opt');
  await s.configureLM(openai('teacher'));
  await s.createProgram(QA);
  const trainset = [
    { inputs: { question: 'What is the capital of France?' }, outputs: { answer: 'Paris' } },
    { inputs: { question: 'What is 2 + 2?' }, outputs: { answer: '4' } },
    { inputs: { question: 'What colour is the sky?' }, outputs: { answer: 'blue' } },
  ];
  const progress: Array<{ done: number; total: number }> = [];
  const optimized = await s.optimizeProgram('qa', trainset, { maxBootstrappedDemos: 2, maxLabeledDemos: 3, onProgress: (p) => progress.push(p) });
  assert.ok(progress.length > 0, 'progress was streamed');
  assert.ok(optimized.demos > 0, `demos: ${optimized.demos}`);
  const exported: ExportedProgram = await s.exportProgram('qa');
  assert.equal(exported.state, optimized.state);
  assert.not.ok(JSON.stringify(exported.state).includes('sk-test'), 'the LM (and its key) is not in the state');
  // Kill every worker that may hold the optimized program; the next call lands on a fresh process.
  const before = pool.workers().map((w) => w.pid!);
  for (const pid of before) process.kill(pid, 'SIGKILL');
  for (const [i] of before.entries()) await nextEvent(pool, 'worker_restarted', (e: { workerId: string }) => e.workerId === `worker_${i + 1}`).catch(() => undefined);
  assert.ok(before.every((pid) => !isAlive(pid)));
  const seen = chat.seen('teacher').length;
  const r = await s.executeProgram('qa', { question: 'What is the capital of Italy?' });
  assert.ok(r.restored, 'rebuilt on a fresh worker from the state the adapter kept');
  const prompt = JSON.stringify(chat.seen('teacher').slice(seen).at(-1)!.body.messages);
  assert.ok(prompt.includes('What is the capital of France?'), 'the optimized program’s demos are in the prompt');
  // And into another session, from the export alone.
  const other = py.sessionAdapter('imported');
  await other.configureLM(openai('student'));
  await other.importProgram(exported);
  await other.executeProgram('qa', { question: 'Q?' });
  assert.ok(JSON.stringify(chat.seen('student').at(-1)!.body.messages).includes('What is 2 + 2?'));
});

test('streamProgram: field text as the LM streams it, then the result', async () => {
  const { py } = await dspyPool({ poolSize: 1 });
  const s = py.sessionAdapter('stream');
  await s.configureLM(openai('streamed'));
  await s.createProgram(QA);
  const events = [];
  for await (const e of s.streamProgram('qa', { question: 'Stream it' })) events.push(e);
  const fields = events.filter((e) => e.type === 'field');
  assert.ok(fields.length >= 2, `several field chunks, got ${JSON.stringify(events)}`);
  const last = events.at(-1)!;
  assert.is(last.type, 'result');
  const text = fields.map((e) => (e as { text: string }).text).join('');
  if (last.type === 'result') assert.is(text.trim(), String(last.result.outputs.answer).trim(), 'the chunks add up to the answer');
  assert.is(chat.seen('streamed').at(-1)!.body.stream, true);
});

test('workerConcurrency: one worker waits on 16 LM calls of 200 ms at once', async () => {
  const { pool, py } = await dspyPool({ poolSize: 1, workerConcurrency: 16 });
  const sessions = Array.from({ length: 16 }, (_, i) => py.sessionAdapter(`c${i}`));
  await Promise.all(sessions.map(async (s) => {
    await s.configureLM(openai('delay200'));
    await s.createProgram(QA);
  }));
  const t0 = performance.now();
  const results = await Promise.all(sessions.map((s) => s.executeProgram('qa', { question: 'wait' })));
  const ms = performance.now() - t0;
  assert.is(results.length, 16);
  // 16 sequential calls would take 3.2 s; concurrently they take about one LM latency.
  assert.ok(ms < 1600, `16 concurrent LM calls took ${ms.toFixed(0)} ms`);
  assert.is(pool.workers()[0]!.inflight, 0);
});

test('a crash under a streaming program is WorkerCrashedError from the iterator', async () => {
  const { pool, py } = await dspyPool({ poolSize: 1 });
  const s = py.sessionAdapter('crash-stream');
  await s.configureLM(openai('delay200'));
  await s.createProgram(QA);
  const before = chat.seen('delay200').length;
  const iterator = s.streamProgram('qa', { question: 'q' })[Symbol.asyncIterator]();
  const pending = iterator.next();
  // Synchronized on the LM server having the call (it answers after 200 ms), not on a delay.
  for (const end = Date.now() + 10_000; chat.seen('delay200').length === before && Date.now() < end; ) await new Promise((r) => setTimeout(r, 5));
  assert.ok(chat.seen('delay200').length > before, 'the streamed LM call reached the server');
  process.kill(pool.workers()[0]!.pid!, 'SIGKILL');
  const error = await pending.then(() => null, (e: unknown) => e);
  assert.instance(error, WorkerCrashedError);
});

test.run();
