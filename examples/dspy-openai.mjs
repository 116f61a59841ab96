// Real DSPy behind the pool, against any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp's
// server, Ollama's /v1, LiteLLM's proxy...).
//
//   python3 -m venv .venv && .venv/bin/pip install -r python/requirements-dspy.txt   # DSPy, once
//   npm run build                                       # once: the example imports the built package
//   OPENAI_API_KEY=sk-... node examples/dspy-openai.mjs "What does a supervisor do in OTP?"
//   OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_MODEL=meta-llama/Llama-3.1-8B-Instruct node examples/dspy-openai.mjs
//
// A session configures its LM (a dspy.LM of its own in whichever worker serves it, no shared
// cache), creates a ChainOfThought program from a signature, executes it, then streams it. The
// API key never leaves the workers' environment: `configureLM` names the variable
// (`apiKeyEnv`) and each worker reads it from the environment it inherited. An LM error is a
// PythonError with the HTTP status (401, 429 with retryAfter, 500...): printed, exit 1.
//
// Environment: OPENAI_BASE_URL (default https://api.openai.com/v1), OPENAI_API_KEY (optional for
// a local server), OPENAI_MODEL (default gpt-4o-mini), VENV_PYTHON (default ./.venv/bin/python).
import { PythonError, PythonPool } from 'pyvisor';

const question = process.argv[2] ?? 'What does a supervisor do in OTP?';
const py = await PythonPool.create({
  python: process.env.VENV_PYTHON ?? './.venv/bin/python',
  poolSize: 2,
  workerConcurrency: 8, // a DSPy call mostly waits on its LM: let each worker wait on several
});
let failed = false;
try {
  console.log(`workers: pids ${py.pool.workers().map((w) => w.pid).join(', ')}`);
  const session = py.sessionAdapter('example');
  const lm = await session.configureLM({
    provider: 'openai',
    baseUrl: process.env.OPENAI_BASE_URL || 'https://api.openai.com/v1',
    model: process.env.OPENAI_MODEL || 'gpt-4o-mini',
    apiKeyEnv: 'OPENAI_API_KEY', // read in the worker; a local server needs none
  });
  console.log(`lm: ${lm.provider}/${lm.model}`);
  const qa = await session.createProgram({
    id: 'qa',
    type: 'chain_of_thought',
    signature: { inputs: ['question'], outputs: ['answer'], instructions: 'Answer in one sentence.' },
  });
  console.log(`engine: ${(await session.getProgramInfo(qa)).engine}`); // 'dspy': real DSPy modules

  const r = await session.executeProgram(qa, { question });
  console.log(`reasoning: ${r.outputs.reasoning}`);
  console.log(`answer: ${r.outputs.answer}`);
  console.log(`usage: ${JSON.stringify(r.usage ?? null)}`);

  process.stdout.write('streamed: ');
  for await (const e of session.streamProgram(qa, { question: `${question} (streamed)` })) {
    if (e.type === 'field' && e.field === 'answer') process.stdout.write(e.text);
  }
  process.stdout.write('\n');
} catch (error) {
  if (!(error instanceof PythonError)) throw error;
  failed = true;
  console.error(`LM call failed${error.status ? ` (HTTP ${error.status})` : ''}: ${error.message}`); // 'LMError: dspy program ...'
} finally {
  await py.close(); // stops the pool PythonPool.create started
}
process.exitCode = failed ? 1 : 0;
