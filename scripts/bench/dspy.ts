/**
 * The real-DSPy benchmarks (issue 12), run by `npm run bench` when .venv has DSPy:
 *   [7a] a 200 ms loopback LM: a pool of 2 workers with workerConcurrency 32 against the same
 *        pool with one request per worker — program executions per second, memory per worker;
 *   [7b] a Predict program on DSPy's DummyLM through the pool (one worker, sequential) against
 *        the same program called in a loop inside one Python: the pool's overhead on the real
 *        workload.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createPool } from '../../src/local/createPool.js';
import { PythonPool } from '../../src/adapter/pythonPool.js';
import { readRssMb } from '../../src/channel/rss.js';
import { startChatServer } from '../../test/fixtures/chat-server.js';
import { fmt, median, measureRate, ROOT, type BenchRow } from './lib.js';

export const VENV_PYTHON = join(ROOT, '.venv', 'bin', 'python');
const QA = { id: 'qa', signature: { inputs: ['question'], outputs: ['answer'], instructions: 'Answer briefly.' } };
const ENV = { PYVISOR_DSPY: 'require', NO_PROXY: '127.0.0.1,localhost', HTTP_PROXY: '', HTTPS_PROXY: '', OPENAI_API_KEY: '' };


export function dspyAvailable(): string | null {
  if (!existsSync(VENV_PYTHON)) return 'no .venv (npm test or `node scripts/run-tests.mjs --prepare-dspy` creates it)';
  try {
    execFileSync(VENV_PYTHON, ['-c', 'import dspy'], { stdio: 'ignore', env: { ...process.env, LITELLM_LOCAL_MODEL_COST_MAP: 'True' } });
    return null;
  } catch {
    return '.venv/bin/python cannot import dspy';
  }
}

/** [7a] executions/s of programs waiting on a 200 ms LM, with and without concurrency inside a worker. */
export async function dspyConcurrency(add: (row: BenchRow) => void, p: { ms: number; repeats: number }): Promise<void> {
  console.log('\n[7a] real DSPy, a 200 ms loopback LM: poolSize 2 × workerConcurrency 32 vs 1 request per worker');
  const chat = await startChatServer();
  const callers = 64;
  const measure = async (workerConcurrency: number) => {
    const pool = await createPool({ python: VENV_PYTHON, env: ENV, poolSize: 2, maxOverflow: 0, workerConcurrency, requestTimeout: 60_000, checkoutTimeout: 60_000 });
    const py = new PythonPool(pool);
    try {
      const sessions = Array.from({ length: callers }, (_, i) => py.sessionAdapter(`bench-${i}`));
      await Promise.all(sessions.map(async (s) => {
        await s.configureLM({ provider: 'openai', model: 'bench', baseUrl: chat.url('delay200'), apiKey: 'sk-bench', timeoutMs: 30_000 });
        await s.createProgram(QA);
      }));
      const m = await measureRate((lane) => sessions[lane]!.executeProgram('qa', { question: `q${lane}` }), { concurrency: callers, warmMs: 1000, ms: p.ms, repeats: p.repeats });
      const rss = pool.workers().map((w) => (w.pid ? readRssMb(w.pid) : null)).filter((x): x is number => x !== null);
      return { ...m, rssMb: median(rss) };
    } finally {
      await py.close();
      await pool.stop();
    }
  };
  try {
    const one = await measure(1);
    const many = await measure(32);
    const base = { bench: 'dspy concurrency', codec: 'dspy', unit: 'exec/s' };
    add({ ...base, subject: 'poolSize 2 × workerConcurrency 32, 200 ms LM', value: many.value, samples: many.samples, baselineName: 'target rate', baseline: 100, target: '>= 1.00x', check: (r) => r >= 1, note: `${fmt(many.rssMb)} MiB RSS per worker` });
    add({ ...base, subject: 'poolSize 2 × workerConcurrency 32, 200 ms LM', value: many.value, samples: many.samples, baselineName: '1 request per worker', baseline: one.value, baselineSamples: one.samples, target: '', note: `1 per worker: ${fmt(one.value, 1)} exec/s (≤ 10 by construction), ${fmt(one.rssMb)} MiB RSS per worker` });
  } finally {
    await chat.close();
  }
}

/** [7b] the pool's overhead on a real DSPy call: Predict on DummyLM via the pool vs in one Python. */
export async function dspyOverhead(add: (row: BenchRow) => void, p: { warmMs: number; ms: number; repeats: number }): Promise<void> {
  console.log('\n[7b] real DSPy Predict on DummyLM: through the pool (1 worker, sequential) vs in-process');
  const pool = await createPool({ python: VENV_PYTHON, env: ENV, poolSize: 1, maxOverflow: 0 });
  const py = new PythonPool(pool);
  try {
    const s = py.sessionAdapter('overhead');
    await s.configureLM({ provider: 'dummy', model: 'bench' });
    await s.createProgram(QA);
    const viaPool = await measureRate(() => s.executeProgram('qa', { question: 'What is DSPy?' }), { warmMs: p.warmMs, ms: p.ms, repeats: p.repeats });
    const out = execFileSync(VENV_PYTHON, [join(ROOT, 'scripts', 'bench', 'dspy_inprocess.py'), String(p.warmMs), String(p.ms), String(p.repeats)], { encoding: 'utf8', env: { ...process.env, ...ENV } });
    const inProcess = (JSON.parse(out.trim().split('\n').pop()!) as { calls_per_s: number[] }).calls_per_s;
    add({
      bench: 'dspy overhead',
      subject: 'Predict on DummyLM through the pool',
      codec: 'dspy',
      value: viaPool.value,
      samples: viaPool.samples,
      unit: 'calls/s',
      baselineName: 'the same program in-process',
      baseline: median(inProcess),
      baselineSamples: inProcess,
      target: '>= 0.80x',
      check: (r) => r >= 0.8,
      note: `${fmt(1e6 / viaPool.value - 1e6 / median(inProcess))} µs added per call`,
    });
  } finally {
    await py.close();
    await pool.stop();
  }
}
