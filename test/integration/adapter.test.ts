/**
 * Layer 3: the PythonPool adapter against real python3 workers running dspy_bridge.py.
 * Isolation, survival across SIGKILL and non-sticky routing, endSession freeing the Python
 * side, every bad input's precise error, the dummy LM's determinism, and the openai backend
 * end to end against a local HTTP server.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  InvalidOptionError,
  PythonError,
  PythonPool,
  SessionNotFoundError,
  WorkerCrashedError,
  type Pool,
  type SessionAdapter,
} from '../../src/index.js';
import { isAlive, nextEvent, PYTHON, startPool, statsByWorker, stopAll, suitePids } from './helpers.js';

const QA = { id: 'qa', signature: { inputs: [{ name: 'question' }], outputs: [{ name: 'answer' }] } };
const COT = { id: 'cot', type: 'chain_of_thought' as const, signature: { inputs: ['question', 'context'], outputs: ['answer'] } };

/** Asserts `fn` rejects with an error of `type` whose message matches `message`. */
async function rejects(fn: () => Promise<unknown>, type: new (...args: never[]) => Error, message: RegExp | string): Promise<Error> {
  try {
    await fn();
  } catch (error) {
    assert.instance(error, type, `expected ${type.name}, got ${(error as Error)?.name}: ${(error as Error)?.message}`);
    const text = (error as Error).message;
    if (typeof message === 'string') assert.ok(text.includes(message), `message ${JSON.stringify(text)} should contain ${JSON.stringify(message)}`);
    else assert.match(text, message);
    return error as Error;
  }
  assert.unreachable(`expected ${type.name} matching ${message}`);
  throw new Error('unreachable');
}

let shared: Pool;
let py: PythonPool;

test.before(async () => {
  shared = await startPool({ poolSize: 2, maxOverflow: 0 });
  py = new PythonPool(shared);
});

test.after(async () => {
  await stopAll();
});

// ---- the dummy LM -------------------------------------------------------------------------

test('dummy LM: predict answers deterministically from the inputs', async () => {
  const a = py.sessionAdapter('det');
  const id = await a.createProgram(QA);
  assert.is(id, 'qa');
  const first = await a.executeProgram(id, { question: 'What is Elixir?' });
  assert.equal(first.outputs, { answer: 'dummy answer to: What is Elixir?' });
  assert.is(first.programId, 'qa');
  assert.is(first.provider, 'dummy');
  assert.is(first.model, 'dummy');
  assert.is(first.restored, false);
  assert.is(first.attempts, 1);
  const again = await a.executeProgram(id, { question: 'What is Elixir?' });
  assert.equal(again.outputs, first.outputs);
  await a.endSession();
});

test('chain_of_thought adds a reasoning output, first', async () => {
  const a = py.sessionAdapter('cot');
  await a.configureLM({ provider: 'dummy', model: 'det-model' });
  const id = await a.createProgram(COT);
  const r = await a.executeProgram(id, { question: 'Why OTP?', context: 'supervisors restart children' });
  assert.equal(Object.keys(r.outputs), ['reasoning', 'answer']);
  assert.is(r.outputs.reasoning, 'dummy reasoning about: Why OTP? | supervisors restart children');
  assert.is(r.outputs.answer, 'dummy answer to: Why OTP? | supervisors restart children');
  assert.is(r.model, 'det-model');
  const info = await a.getProgramInfo(id);
  assert.is(info.type, 'chain_of_thought');
  assert.equal(info.signature.inputs.map((f) => f.name), ['question', 'context']);
  assert.is(info.executions, 1);
  await a.endSession();
});

test('dummy LM: an answers table is used, with "*" as the fallback, and results keep the given model name', async () => {
  const a = py.sessionAdapter('table');
  await a.configureLM({ provider: 'dummy', answers: { 'What is Elixir?': { answer: 'A BEAM language' }, '*': { answer: 'no idea' } } });
  await a.createProgram(QA);
  const hit = await a.executeProgram('qa', { question: 'What is Elixir?' });
  assert.equal(hit.outputs, { answer: 'A BEAM language' });
  assert.is(hit.model, 'dummy');
  const miss = await a.executeProgram('qa', { question: 'What is Rust?' });
  assert.equal(miss.outputs, { answer: 'no idea' });
  await a.endSession();
});

// ---- isolation --------------------------------------------------------------------------------

test('isolation: session B cannot list, execute, inspect or delete session A\'s programs', async () => {
  const a = py.sessionAdapter('iso-A');
  const b = py.sessionAdapter('iso-B');
  await a.createProgram(QA);
  await b.configureLM({ provider: 'dummy' }); // B exists in Python too
  assert.equal((await a.listPrograms()).map((p) => p.programId), ['qa']);
  assert.equal(await b.listPrograms(), []);
  await rejects(() => b.executeProgram('qa', { question: 'x' }), PythonError, "Program 'qa' not found in session 'iso-B'");
  await rejects(() => b.getProgramInfo('qa'), PythonError, "Program 'qa' not found in session 'iso-B'");
  const err = await rejects(() => b.deleteProgram('qa'), PythonError, "Program 'qa' not found in session 'iso-B'");
  assert.is((err as PythonError).pythonType, 'ProgramNotFoundError');
  // The Python side agrees, whichever worker answers.
  for (let i = 0; i < 3; i++) {
    const listed = await shared.execute<{ programs: unknown[] }>('list_programs', {}, { sessionId: 'iso-B' });
    assert.equal(listed.programs, []);
  }
  // A is untouched.
  const r = await a.executeProgram('qa', { question: 'still here?' });
  assert.equal(r.outputs, { answer: 'dummy answer to: still here?' });
  await a.endSession();
  await b.endSession();
});

test('anonymous adapter: one private generated session per PythonPool', async () => {
  const anon = py.anonymousAdapter();
  assert.is(py.anonymousAdapter(), anon);
  assert.ok(anon.anonymous);
  assert.match(anon.sessionId, /^anonymous-[0-9a-f-]{36}$/);
  const id = await anon.createProgram({ signature: { inputs: ['text'], outputs: ['summary'] } });
  assert.match(id, /^program_[0-9a-f]{12}$/);
  const r = await anon.executeProgram(id, { text: 'hello' });
  assert.equal(r.outputs, { summary: 'dummy summary to: hello' });
  assert.equal(await py.sessionAdapter('someone').listPrograms(), []);
  await rejects(() => py.sessionAdapter('someone').executeProgram(id, { text: 'x' }), PythonError, 'not found');
  await anon.endSession();
  assert.is.not(py.anonymousAdapter().sessionId, anon.sessionId); // a fresh one after it ended
});

// ---- bad inputs -------------------------------------------------------------------------------

test('errors: duplicate program id', async () => {
  const a = py.sessionAdapter('err-dup');
  await a.createProgram(QA);
  const e = await rejects(() => a.createProgram(QA), PythonError, "create_program: program 'qa' already exists in session 'err-dup'");
  assert.is((e as PythonError).pythonType, 'ValueError');
  // The bridge says the same on a worker that holds it (sequential calls stay on one idle
  // worker; should a health check make one land elsewhere, a third call meets a copy anyway).
  const wire = { id: 'dup', signature: { inputs: ['q'], outputs: ['a'] } };
  await shared.execute('create_program', wire, { sessionId: 'err-dup-raw' });
  await rejects(
    async () => {
      for (let i = 0; i < 3; i++) await shared.execute('create_program', wire, { sessionId: 'err-dup-raw' });
    },
    PythonError,
    "ValueError: create_program: program 'dup' already exists in session 'err-dup-raw'",
  );
  await a.endSession();
  await py.endSession('err-dup-raw');
});

test('errors: unknown program id', async () => {
  const a = py.sessionAdapter('err-unknown');
  await a.configureLM({ provider: 'dummy' });
  for (const call of [() => a.executeProgram('nope', {}), () => a.getProgramInfo('nope'), () => a.deleteProgram('nope')]) {
    const e = await rejects(call, PythonError, "ProgramNotFoundError: Program 'nope' not found in session 'err-unknown'");
    assert.is((e as PythonError).pythonType, 'ProgramNotFoundError');
  }
  await rejects(() => a.executeProgram('', {}), InvalidOptionError, '"programId"');
  await a.endSession();
});

test('errors: missing or mistyped signature fields', async () => {
  const a = py.sessionAdapter('err-sig');
  // Shapes are checked in Node, naming the field...
  await rejects(() => a.createProgram({} as never), InvalidOptionError, 'Invalid option "signature": is required');
  await rejects(() => a.createProgram({ signature: { outputs: ['a'] } } as never), InvalidOptionError, 'Invalid option "signature.inputs": must be a non-empty array');
  await rejects(() => a.createProgram({ signature: { inputs: ['q'], outputs: [] } }), InvalidOptionError, '"signature.outputs"');
  await rejects(() => a.createProgram({ signature: { inputs: ['q'], outputs: [{ name: 42 }] } } as never), InvalidOptionError, 'Invalid option "signature.outputs[0].name": must be a non-empty string, got 42');
  await rejects(() => a.createProgram({ signature: { inputs: [{ name: 'q', description: 7 }], outputs: ['a'] } } as never), InvalidOptionError, '"signature.inputs[0].description"');
  await rejects(() => a.createProgram({ type: 'react', signature: { inputs: ['q'], outputs: ['a'] } } as never), InvalidOptionError, 'Invalid option "type"');
  await rejects(() => a.createProgram({ program_id: 'x', signature: { inputs: ['q'], outputs: ['a'] } } as never), InvalidOptionError, 'did you mean "id"');
  // ...the rules are the bridge's, with its precise messages.
  await rejects(() => a.createProgram({ signature: { inputs: ['first name'], outputs: ['a'] } }), PythonError, "create_program: signature.inputs[0].name 'first name' must be an identifier not starting with '_'");
  await rejects(() => a.createProgram({ signature: { inputs: ['q', 'q'], outputs: ['a'] } }), PythonError, "create_program: duplicate field name 'q' (signature.inputs[0] and signature.inputs[1])");
  await rejects(() => a.createProgram({ type: 'chain_of_thought', signature: { inputs: ['q'], outputs: ['reasoning'] } }), PythonError, "'reasoning' is reserved for chain_of_thought");
  // The bridge's own checks, seen without the adapter.
  await rejects(() => shared.execute('create_program', { id: 'x' }, { sessionId: 'err-sig' }), PythonError, 'ValueError: create_program: signature is required');
  await rejects(() => shared.execute('create_program', { signature: { inputs: 'q', outputs: ['a'] } }, { sessionId: 'err-sig' }), PythonError, "create_program: signature.inputs must be a non-empty list of fields, got 'q'");
  await rejects(() => shared.execute('create_program', { type: 'react', signature: { inputs: ['q'], outputs: ['a'] } }, { sessionId: 'err-sig' }), PythonError, "create_program: unknown type 'react'");
  assert.equal(await a.listPrograms(), []); // nothing half-created
  await py.endSession('err-sig');
});

test('errors: inputs that do not match the signature', async () => {
  const a = py.sessionAdapter('err-inputs');
  await a.createProgram(COT);
  await rejects(() => a.executeProgram('cot', { question: 'q' }), PythonError, "execute_program: missing input(s) 'context' for program 'cot' (expects: question, context)");
  await rejects(() => a.executeProgram('cot', { question: 'q', context: 'c', extra: 1 }), PythonError, "execute_program: unknown input(s) 'extra' for program 'cot' (expects: question, context)");
  await rejects(() => a.executeProgram('cot', ['q', 'c'] as never), InvalidOptionError, 'Invalid option "inputs"');
  await rejects(() => shared.execute('execute_program', { program_id: 'cot', inputs: 'q' }, { sessionId: 'err-inputs' }), PythonError, 'execute_program: inputs must be a map, got str');
  await a.endSession();
});

test('errors: no session in pool-worker mode', async () => {
  for (const cmd of ['configure_lm', 'create_program', 'execute_program', 'list_programs', 'delete_program', 'get_program_info']) {
    const e = await rejects(() => shared.execute(cmd, {}), PythonError, `${cmd}: session_id required in pool-worker mode`);
    assert.is((e as PythonError).pythonType, 'SessionRequiredError');
  }
});

test('errors: LM configuration, checked in Node and by the bridge; a rejected one changes nothing', async () => {
  const a = py.sessionAdapter('err-lm');
  await rejects(() => a.configureLM({ provider: 'anthropic' } as never), InvalidOptionError, 'Invalid option "provider": must be \'dummy\' or \'openai\', got "anthropic"');
  await rejects(() => a.configureLM({ provider: 'openai', base_url: 'http://x' } as never), InvalidOptionError, 'did you mean "baseUrl"');
  await rejects(() => a.configureLM({ provider: 'openai', temperature: -1 }), InvalidOptionError, '"temperature"');
  await rejects(() => a.configureLM({ provider: 'openai', baseUrl: 'ftp://x' }), InvalidOptionError, '"baseUrl"');
  await rejects(() => a.configureLM({ provider: 'dummy', answers: [] }), PythonError, 'configure_lm: answers must not be an empty list');
  await rejects(
    () => a.configureLM({ provider: 'openai', apiKeyEnv: 'PYVISOR_TEST_NO_SUCH_KEY' }),
    PythonError,
    'configure_lm: no API key for https://api.openai.com/v1: set PYVISOR_TEST_NO_SUCH_KEY or pass api_key',
  );
  await rejects(() => shared.execute('configure_lm', { provider: 'nope' }, { sessionId: 'err-lm' }), PythonError, "configure_lm: provider must be one of 'dummy', 'openai', got 'nope'");
  assert.is(a.lmConfig(), null);
  await a.createProgram(QA);
  assert.is((await a.executeProgram('qa', { question: 'q' })).provider, 'dummy');
  await a.endSession();
});

// ---- survival ---------------------------------------------------------------------------------

test('a program survives a SIGKILL of its worker between create and execute', async () => {
  const a = py.sessionAdapter('survive-kill');
  await a.configureLM({ provider: 'dummy', model: 'survivor' });
  const checkout = nextEvent<{ workerId: string; sessionId: string | null; command: string }>(shared, 'checkout', (e) => e.sessionId === 'survive-kill' && e.command === 'create_program');
  await a.createProgram(QA);
  const { workerId } = await checkout;
  const victim = shared.workers().find((w) => w.id === workerId)!;
  assert.ok(victim.pid);
  const restarted = nextEvent<{ workerId: string; oldPid: number | null; newPid: number | null }>(shared, 'worker_restarted', (e) => e.workerId === workerId);
  const restores: string[] = [];
  const onRestore = (e: { sessionId: string; reason: string }) => e.sessionId === 'survive-kill' && restores.push(e.reason);
  py.on('program_restored', onRestore);
  process.kill(victim.pid!, 'SIGKILL');
  const e = await restarted;
  assert.is(e.oldPid, victim.pid);
  assert.ok(e.newPid !== null && e.newPid !== victim.pid);
  const r = await a.executeProgram('qa', { question: 'after the kill' });
  assert.equal(r.outputs, { answer: 'dummy answer to: after the kill' });
  assert.is(r.model, 'survivor'); // the LM configuration came back too
  assert.ok(r.restored, 'the program was re-created from its spec');
  assert.ok(restores.length >= 1);
  py.off('program_restored', onRestore);
  await a.endSession();
});

test('a program survives a strict-affinity session losing its worker', async () => {
  const pool = await startPool({ poolSize: 2, maxOverflow: 0, affinity: 'strict' });
  const strict = new PythonPool(pool);
  const a = strict.sessionAdapter('pinned');
  await a.createProgram(QA);
  await a.executeProgram('qa', { question: 'before' });
  const home = pool.workers().find((w) => w.sessions > 0)!;
  const restarted = nextEvent(pool, 'worker_restarted', (e: { workerId: string }) => e.workerId === home.id);
  process.kill(home.pid!, 'SIGKILL');
  await restarted;
  // The pool answers SessionWorkerLostError for the pinned session; the adapter re-pins it and restores.
  const r = await a.executeProgram('qa', { question: 'after' });
  assert.equal(r.outputs, { answer: 'dummy answer to: after' });
  assert.ok(r.restored);
  await pool.stop();
});

test("programs survive affinity 'none' with several workers (and LM configuration follows them)", async () => {
  const pool = await startPool({ poolSize: 3, maxOverflow: 0, affinity: 'none' });
  const loose = new PythonPool(pool);
  const a = loose.sessionAdapter('loose');
  await a.configureLM({ provider: 'dummy', answers: { '*': { answer: 'from the table' } } });
  await a.createProgram(QA);
  await a.createProgram(COT);
  const batch = async () => {
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => (i % 2 ? a.executeProgram('qa', { question: `q${i}` }) : a.executeProgram('cot', { question: `q${i}`, context: 'c' }))),
    );
    return results;
  };
  const first = await batch();
  for (const r of first) assert.is(r.outputs.answer, 'from the table');
  const served = pool.workers().filter((w) => w.requests > 0).length;
  assert.ok(served >= 2, `requests spread over ${served} workers`);
  assert.ok(loose.stats().restores >= 1, 'some worker lacked a program and got it restored');
  // Re-configuring the LM reaches every worker: none keeps the old table.
  await a.configureLM({ provider: 'dummy', answers: { '*': { answer: 'from the new table' } } });
  for (const r of await batch()) assert.is(r.outputs.answer, 'from the new table');
  // Deleting a program removes it everywhere; re-creating the id with another signature is safe.
  await a.deleteProgram('qa');
  await rejects(() => a.executeProgram('qa', { question: 'x' }), PythonError, "Program 'qa' not found in session 'loose'");
  await a.createProgram({ id: 'qa', signature: { inputs: ['topic'], outputs: ['answer'] } });
  const again = await Promise.all(Array.from({ length: 9 }, (_, i) => a.executeProgram('qa', { topic: `t${i}` })));
  for (const r of again) assert.is(r.outputs.answer, 'from the new table');
  await pool.stop();
});

test("every adapter call is one pool call, whichever worker it lands on (affinity 'none')", async () => {
  const pool = await startPool({ poolSize: 3, maxOverflow: 0, affinity: 'none' });
  const p = new PythonPool(pool);
  const a = p.sessionAdapter('one-call');
  await a.configureLM({ provider: 'dummy', model: 'labelled', answers: { '*': { answer: 'from the table' } } });
  await a.createProgram(QA);
  await a.createProgram(COT);
  let calls = 0;
  const onCheckout = (e: { sessionId: string | null }) => e.sessionId === 'one-call' && calls++;
  pool.on('checkout', onCheckout);
  const results = await Promise.all(
    Array.from({ length: 30 }, (_, i) => (i % 2 ? a.executeProgram('qa', { question: `q${i}` }) : a.executeProgram('cot', { question: `q${i}`, context: 'c' }))),
  );
  const infos = await Promise.all(Array.from({ length: 6 }, () => a.getProgramInfo('cot')));
  pool.off('checkout', onCheckout);
  assert.is(calls, 36, 'one checkout per call');
  for (const r of results) {
    assert.is(r.attempts, 1);
    assert.is(r.outputs.answer, 'from the table'); // never the default dummy LM of a worker without the configuration
    assert.is(r.model, 'labelled');
  }
  assert.ok(results.some((r) => r.restored), 'some worker lacked a program and made it in the same call');
  for (const info of infos) assert.is(info.executions, 15);
  assert.is(p.stats().retries, 0);
  await pool.stop();
});

test('deleteProgram deletes that program only: the session\'s other programs stay on the worker', async () => {
  const pool = await startPool({ poolSize: 1, maxOverflow: 0 });
  const p = new PythonPool(pool);
  const a = p.sessionAdapter('del-one');
  await a.createProgram(QA);
  await a.createProgram(COT);
  await a.executeProgram('qa', { question: 'q' });
  await a.deleteProgram('qa');
  assert.equal((await a.listPrograms()).map((x) => x.programId), ['cot']);
  const listed = await pool.execute<{ programs: Array<{ program_id: string }> }>('list_programs', {}, { sessionId: 'del-one' });
  assert.equal(listed.programs.map((x) => x.program_id), ['cot']);
  const r = await a.executeProgram('cot', { question: 'q', context: 'c' });
  assert.is(r.restored, false, 'cot was not dropped with qa');
  assert.is(p.stats().restores, 0);
  await rejects(() => a.deleteProgram('qa'), PythonError, "ProgramNotFoundError: Program 'qa' not found in session 'del-one'");
  await pool.stop();
});

test('endSession frees the session in every Python worker that served it', async () => {
  const pool = await startPool({ poolSize: 3, maxOverflow: 0, affinity: 'none' });
  const p = new PythonPool(pool);
  const a = p.sessionAdapter('to-free');
  const other = p.sessionAdapter('keeper');
  await other.createProgram(QA);
  await a.createProgram(QA);
  await a.createProgram(COT);
  await Promise.all(Array.from({ length: 12 }, (_, i) => a.executeProgram(i % 2 ? 'qa' : 'cot', i % 2 ? { question: 'q' } : { question: 'q', context: 'c' })));
  const before = await statsByWorker(pool);
  assert.is(before.size, 3);
  const holders = [...before.values()].filter((s) => s.session_ids.includes('to-free'));
  assert.ok(holders.length >= 2, `the session is held by ${holders.length} workers`);
  const programsBefore = [...before.values()].reduce((n, s) => n + s.programs, 0);
  const sessionsBefore = [...before.values()].reduce((n, s) => n + s.sessions, 0);

  const ended = await p.endSession('to-free');
  assert.is(ended.programs, 2);
  assert.ok(ended.workers >= holders.length, `cleaned ${ended.workers} workers`);

  const after = await statsByWorker(pool);
  for (const s of after.values()) assert.not.ok(s.session_ids.includes('to-free'), `${s.worker_id} still holds the session`);
  const programsAfter = [...after.values()].reduce((n, s) => n + s.programs, 0);
  const sessionsAfter = [...after.values()].reduce((n, s) => n + s.sessions, 0);
  assert.is(sessionsAfter, sessionsBefore - holders.length);
  assert.is(programsAfter, programsBefore - holders.reduce((n, s) => n + (s.programs - (s.session_ids.includes('keeper') ? 1 : 0)), 0));
  assert.equal(await a.listPrograms(), []);
  await rejects(() => p.endSession('to-free'), SessionNotFoundError, 'Session "to-free" not found');
  await rejects(() => p.endSession('never-seen'), SessionNotFoundError, 'never-seen');
  // The other session is intact.
  assert.equal((await other.executeProgram('qa', { question: 'q' })).outputs, { answer: 'dummy answer to: q' });
  await pool.stop();
});

test('PythonPool.create starts its own pool and close() stops it', async () => {
  const own = await PythonPool.create({ poolSize: 1, python: PYTHON });
  suitePids.watch(own.pool);
  const pids = own.pool.workers().map((w) => w.pid!);
  const a = own.sessionAdapter('own');
  await a.createProgram(QA);
  assert.equal((await a.executeProgram('qa', { question: 'q' })).outputs, { answer: 'dummy answer to: q' });
  assert.equal(own.stats(), { sessions: 1, programs: 1, executions: 1, restores: 0, retries: 0 });
  await own.close();
  assert.ok(own.pool.isClosed);
  for (const pid of pids) assert.not.ok(isAlive(pid), `pid ${pid} still alive after close()`);
});

// ---- the openai backend -----------------------------------------------------------------------

interface Seen {
  path: string;
  auth: string | undefined;
  body: { model: string; messages: Array<{ role: string; content: string }> };
}

type Reply = (req: Seen, res: ServerResponse) => void;

function startServer(): Promise<{ server: Server; url: string; seen: Seen[]; reply: { next: Reply }; requested: (n: number) => Promise<void> }> {
  const seen: Seen[] = [];
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const reply: { next: Reply } = { next: (_req, res) => res.end('{}') };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let raw = '';
    req.on('data', (d) => (raw += d));
    req.on('end', () => {
      const entry: Seen = { path: req.url ?? '', auth: req.headers.authorization, body: JSON.parse(raw || '{}') };
      seen.push(entry);
      for (const w of waiters.splice(0)) (seen.length >= w.n ? w.resolve : () => waiters.push(w))();
      reply.next(entry, res);
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        server,
        url: `http://127.0.0.1:${port}/v1`,
        seen,
        reply,
        requested: (n) => (seen.length >= n ? Promise.resolve() : new Promise((r) => waiters.push({ n, resolve: r }))),
      });
    });
  });
}

const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
};
const completion = (content: string) => ({ id: 'cmpl-1', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }] });

test('openai backend end to end through the pool: success and the error replies', async () => {
  const srv = await startServer();
  const pool = await startPool({ poolSize: 2, maxOverflow: 0, env: { NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost', PYVISOR_TEST_KEY: 'sk-from-env' } });
  const p = new PythonPool(pool);
  try {
    const a: SessionAdapter = p.sessionAdapter('openai');
    const lm = await a.configureLM({ provider: 'openai', baseUrl: srv.url, model: 'test-model', apiKeyEnv: 'PYVISOR_TEST_KEY', timeoutMs: 10_000 });
    assert.equal(lm, { provider: 'openai', model: 'test-model' });
    await a.createProgram({ id: 'qa', signature: { inputs: [{ name: 'question', description: 'a question' }], outputs: [{ name: 'answer' }], instructions: 'Answer briefly.' } });
    await a.createProgram(COT);

    srv.reply.next = (_req, res) => json(res, 200, completion('{"answer": "42"}'));
    const r = await a.executeProgram('qa', { question: 'the meaning of life?' });
    assert.equal(r.outputs, { answer: '42' });
    assert.is(r.provider, 'openai');
    assert.is(r.model, 'test-model');
    const req = srv.seen.at(-1)!;
    assert.is(req.path, '/v1/chat/completions');
    assert.is(req.auth, 'Bearer sk-from-env');
    assert.is(req.body.model, 'test-model');
    assert.is(req.body.messages[0]!.role, 'system');
    assert.ok(req.body.messages[0]!.content.includes('Answer briefly.'));
    assert.ok(req.body.messages[1]!.content.includes('the meaning of life?'));

    srv.reply.next = (_req, res) => json(res, 200, completion('```json\n{"reasoning": "6 x 7", "answer": "42"}\n```'));
    const c = await a.executeProgram('cot', { question: 'q', context: 'c' });
    assert.equal(c.outputs, { reasoning: '6 x 7', answer: '42' });

    const failing: Array<[string, Reply, RegExp]> = [
      ['401', (_q, res) => json(res, 401, { error: { message: 'Incorrect API key provided' } }), /LMError: openai endpoint returned 401 Unauthorized: .*Incorrect API key provided/],
      ['429', (_q, res) => json(res, 429, { error: { message: 'Rate limit reached' } }), /LMError: openai endpoint returned 429 Too Many Requests: .*Rate limit reached/],
      ['500', (_q, res) => json(res, 500, { error: { message: 'The server had an error' } }), /LMError: openai endpoint returned 500 Internal Server Error: .*The server had an error/],
      ['malformed JSON', (_q, res) => json(res, 200, '{"choices": [ nope'), /LMError: openai endpoint returned malformed JSON: \{"choices": \[ nope/],
      ['no content', (_q, res) => json(res, 200, { choices: [] }), /LMError: openai endpoint reply has no choices\[0\]\.message\.content/],
    ];
    for (const [label, handler, message] of failing) {
      srv.reply.next = handler;
      const before = srv.seen.length;
      const e = await rejects(() => a.executeProgram('qa', { question: label }), PythonError, message);
      assert.is((e as PythonError).pythonType, 'LMError', label);
      assert.is(srv.seen.length, before + 1, `${label}: exactly one HTTP request (an LM error is not retried)`);
    }
    // The worker is still fine after the errors.
    srv.reply.next = (_req, res) => json(res, 200, completion('{"answer": "ok again"}'));
    assert.equal((await a.executeProgram('qa', { question: 'again' })).outputs, { answer: 'ok again' });
  } finally {
    await pool.stop();
    await new Promise((r) => srv.server.close(r));
  }
});

test('a call in flight when its worker is SIGKILLed is retried on a live worker', async () => {
  const srv = await startServer();
  const pool = await startPool({ poolSize: 2, maxOverflow: 0, env: { NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost' } });
  const p = new PythonPool(pool);
  try {
    const a = p.sessionAdapter('inflight');
    await a.configureLM({ provider: 'openai', baseUrl: srv.url, model: 'slow-model', apiKey: 'sk-test' });
    await a.createProgram(QA);
    const held: ServerResponse[] = [];
    srv.reply.next = (_req, res) => held.push(res); // the first request hangs
    const checkout = nextEvent<{ workerId: string; command: string }>(pool, 'checkout', (e) => e.command === 'execute_program');
    const n0 = srv.seen.length;
    const running = a.executeProgram('qa', { question: 'will you survive?' });
    const { workerId } = await checkout;
    await srv.requested(n0 + 1);
    srv.reply.next = (_req, res) => json(res, 200, completion('{"answer": "yes"}'));
    const pid = pool.workers().find((w) => w.id === workerId)!.pid!;
    process.kill(pid, 'SIGKILL');
    const r = await running;
    assert.equal(r.outputs, { answer: 'yes' });
    assert.ok(r.attempts >= 2);
    for (const res of held) res.destroy();
    // retryOnCrash: false surfaces the crash instead.
    srv.reply.next = (_req, res) => held.push(res);
    const checkout2 = nextEvent<{ workerId: string; command: string }>(pool, 'checkout', (e) => e.command === 'execute_program');
    const n1 = srv.seen.length;
    const noRetry = a.executeProgram('qa', { question: 'no retry' }, { retryOnCrash: false });
    const w2 = (await checkout2).workerId;
    await srv.requested(n1 + 1);
    process.kill(pool.workers().find((w) => w.id === w2)!.pid!, 'SIGKILL');
    await rejects(() => noRetry, WorkerCrashedError, /Worker .* killed by SIGKILL/);
    for (const res of held) res.destroy();
  } finally {
    await pool.stop();
    srv.server.closeAllConnections();
    await new Promise((r) => srv.server.close(r));
  }
});

// ---- program state, optimization, streaming (the built-in runner) ------------------------------

test('optimize (built-in runner: labeled demos), progress streamed → export → SIGKILL both workers → the demos answer on a fresh process', async () => {
  const a = py.sessionAdapter('opt-builtin');
  await a.createProgram(QA);
  const progress: Array<{ done: number; total: number }> = [];
  const trainset = [
    { inputs: { question: 'What is OTP?' }, outputs: { answer: 'a set of Erlang libraries' } },
    { inputs: { question: 'What is BEAM?' }, outputs: { answer: 'the Erlang VM' } },
  ];
  const result = await a.optimizeProgram('qa', trainset, { onProgress: (p) => progress.push(p) });
  assert.is(result.demos, 2);
  assert.equal(progress.at(-1), { done: 2, total: 2 });
  const exported = await a.exportProgram('qa');
  assert.equal(exported.state, result.state);
  // Both processes gone and replaced (synchronized on the restarts, not on a delay).
  const restarted = shared.workers().map((w) => nextEvent(shared, 'worker_restarted', (e: { workerId: string }) => e.workerId === w.id));
  for (const w of shared.workers()) process.kill(w.pid!, 'SIGKILL');
  await Promise.all(restarted);
  const answer = await a.executeProgram('qa', { question: 'What is BEAM?' });
  assert.equal(answer.outputs, { answer: 'the Erlang VM' }, 'the optimized program, rebuilt from the state the adapter kept');
  assert.ok(answer.restored);
  // Into another session from the export alone; a state that does not fit is refused, precisely.
  const b = py.sessionAdapter('opt-imported');
  await b.importProgram(exported, { id: 'copy' });
  assert.equal((await b.executeProgram('copy', { question: 'What is OTP?' })).outputs, { answer: 'a set of Erlang libraries' });
  await rejects(() => b.importProgram({ ...exported, state: { demos: 'not a list' } }), PythonError, /demos/);
  await rejects(() => a.optimizeProgram('qa', [{ inputs: { q: 'x' }, outputs: { answer: 'y' } }]), PythonError, /trainset\[0\]: missing input\(s\) 'question'/);
  await rejects(() => a.optimizeProgram('qa', [] as never), InvalidOptionError, /trainset/);
  await a.endSession();
  await b.endSession();
});

test('streamProgram (built-in runner): field text word by word, then the result', async () => {
  const a = py.sessionAdapter('stream-builtin');
  await a.createProgram(QA);
  const events = [];
  for await (const e of a.streamProgram('qa', { question: 'What is Elixir?' })) events.push(e);
  const text = events.filter((e) => e.type === 'field').map((e) => (e as { text: string }).text).join('');
  assert.ok(events.length > 3, 'several chunks');
  assert.is(text, 'dummy answer to: What is Elixir?');
  const last = events.at(-1)!;
  assert.ok(last.type === 'result' && last.result.outputs.answer === text);
  // break cancels; the session goes on.
  for await (const _ of a.streamProgram('qa', { question: 'a b c d e f g' })) break;
  assert.equal((await a.executeProgram('qa', { question: 'x' })).outputs, { answer: 'dummy answer to: x' });
  await a.endSession();
});

// ---- nothing left behind --------------------------------------------------------------------

test('no Python process started by this file is still alive', async () => {
  await stopAll();
  assert.ok(suitePids.pids.size > 0);
  const alive = [...suitePids.pids].filter(isAlive);
  assert.equal(alive, [], `still alive: ${alive.join(', ')}`);
});

test.run();
