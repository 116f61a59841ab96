/**
 * A front-end process for the cluster suites: createClusterPool() (and a PythonPool over it)
 * in its own Node process, driven by the test over stdin, one JSON object a line
 * ({id, op, ...}); each answer is one stdout line "@@ {id, ok, value | error}". "@@ ready"
 * once the pool is created. stdin closing stops the pool and exits 0.
 *
 * Ops: execute, stream, endSession, hosts, whenHosts, stats, workers, createProgram,
 * executeProgram, loadStart, loadProgress, loadStop (see `ops` below).
 *
 *   node --import tsx test/cluster/_frontend.ts '{"servers":"nats://...","pool":"p","hostTimeout":1000}'
 */
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { createClusterPool } from '../../src/cluster/index.js';
import { PythonPool } from '../../src/adapter/pythonPool.js';

const spec = JSON.parse(process.argv[2] ?? '{}') as { servers: string; pool: string; checkoutTimeout?: number; requestTimeout?: number; hostTimeout?: number };
const pool = await createClusterPool(spec);
const py = new PythonPool(pool);
const now = () => performance.timeOrigin + performance.now();
const QA = { id: 'qa', signature: { inputs: ['question'], outputs: ['answer'] } };
const retries: Array<{ sessionId: string; reason: string; t: number }> = [];
py.on('retry', (e: { sessionId: string; reason: string }) => retries.push({ sessionId: e.sessionId, reason: e.reason, t: now() }));

/** An error as plain data: its code, class name, message and its own primitive fields. */
function data(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { name: typeof error, message: String(error) };
  const out: Record<string, unknown> = { name: error.name, message: error.message };
  for (const [k, v] of Object.entries(error)) if (v === null || ['string', 'number', 'boolean'].includes(typeof v)) out[k] = v;
  if (error.cause instanceof Error) out.cause = { name: error.cause.name, message: error.cause.message, code: (error.cause as { code?: unknown }).code };
  return out;
}

async function outcome<T>(fn: () => Promise<T>): Promise<{ ok: true; value: T; ms: number } | { ok: false; error: Record<string, unknown>; ms: number }> {
  const t0 = now();
  try {
    const value = await fn();
    return { ok: true, value, ms: now() - t0 };
  } catch (error) {
    return { ok: false, error: data(error), ms: now() - t0 };
  }
}

/** An AbortSignal aborted once `file` exists (the handler announced it runs) or after `ms`. */
function abortOn(msg: { abortWhenFile?: string; abortAfterMs?: number; preAborted?: boolean }): { signal?: AbortSignal; abortedAt: () => number | null; done: () => void } {
  if (!msg.abortWhenFile && msg.abortAfterMs === undefined && !msg.preAborted) return { abortedAt: () => null, done: () => {} };
  const ac = new AbortController();
  let at: number | null = null;
  const abort = () => {
    if (at === null) {
      at = now();
      ac.abort(new Error('aborted by the test'));
    }
  };
  if (msg.preAborted) abort();
  const timer = msg.abortWhenFile
    ? setInterval(() => existsSync(msg.abortWhenFile!) && abort(), 5)
    : msg.abortAfterMs !== undefined ? setTimeout(abort, msg.abortAfterMs) : null;
  return { signal: ac.signal, abortedAt: () => at, done: () => timer && clearInterval(timer) };
}

// ---- load -----------------------------------------------------------------------------------

type Lane = { kind: 'anon'; command: string; args?: unknown; timeout?: number } | { kind: 'session'; sessionId: string; timeout?: number } | { kind: 'program'; sessionId: string; timeout?: number };
interface LoadRecord { lane: number; kind: string; cmd: string; t0: number; t1: number; ok: boolean; value?: unknown; error?: Record<string, unknown>; appended?: number; question?: string }

let load: { stopped: boolean; lanes: Promise<void>[]; records: LoadRecord[]; inflight: Map<number, { cmd: string; t0: number }>; timeout: number } | null = null;

async function laneLoop(idx: number, lane: Lane): Promise<void> {
  const l = load!;
  const timeout = lane.timeout ?? l.timeout;
  let i = 0;
  const run = async (cmd: string, fn: () => Promise<unknown>, extra: Partial<LoadRecord> = {}) => {
    const t0 = now();
    l.inflight.set(idx, { cmd, t0 });
    const o = await outcome(fn);
    l.inflight.delete(idx);
    l.records.push({ lane: idx, kind: lane.kind, cmd, t0, t1: now(), ok: o.ok, ...(o.ok ? { value: o.value } : { error: o.error }), ...extra });
    // A failing lane paces itself instead of spinning on an error that comes back at once.
    if (!o.ok) await new Promise((r) => setTimeout(r, 20));
    return o.ok;
  };
  if (lane.kind === 'program') {
    const a = py.sessionAdapter(lane.sessionId);
    while (!l.stopped && !(await run('createProgram', () => a.createProgram(QA), {})));
  }
  while (!l.stopped) {
    if (lane.kind === 'anon') {
      await run(lane.command, () => pool.execute(lane.command, lane.args ?? null, { timeout }));
    } else if (lane.kind === 'session') {
      const n = i;
      if (i % 2 === 0) await run('append', () => pool.execute('append', { value: n }, { sessionId: lane.sessionId, timeout }), { appended: n });
      else await run('read', () => pool.execute('read', null, { sessionId: lane.sessionId, timeout }));
    } else {
      const q = `q${lane.sessionId}-${i}`;
      await run('executeProgram', async () => {
        const r = await py.sessionAdapter(lane.sessionId).executeProgram('qa', { question: q }, { timeout });
        return { answer: r.outputs.answer, restored: r.restored, attempts: r.attempts };
      }, { question: q });
    }
    i++;
  }
}

// ---- ops ------------------------------------------------------------------------------------

type Msg = Record<string, any>;
const ops: Record<string, (m: Msg) => Promise<unknown> | unknown> = {
  async execute(m) {
    const a = abortOn(m);
    const o = await outcome(() => pool.execute(m.command, m.args ?? null, { ...m.opts, ...(a.signal ? { signal: a.signal } : {}) }));
    a.done();
    const at = a.abortedAt();
    return at === null ? o : { ...o, sinceAbortMs: now() - at };
  },
  /** Read a stream: every chunk, or `take` chunks then break (reading each after `readDelayMs`). */
  async stream(m) {
    const a = abortOn(m);
    const t0 = now();
    const chunks: unknown[] = [];
    const s = pool.stream(m.command, m.args ?? null, { ...m.opts, ...(a.signal ? { signal: a.signal } : {}) });
    let error: Record<string, unknown> | null = null;
    let result: unknown;
    try {
      for await (const c of s) {
        chunks.push(c);
        if (m.take !== undefined && chunks.length >= m.take) break;
        if (m.readDelayMs) await new Promise((r) => setTimeout(r, m.readDelayMs));
      }
      if (m.take === undefined) result = await s.result;
    } catch (e) {
      error = data(e);
    }
    a.done();
    return { chunks, result, error, ms: now() - t0 };
  },
  endSession: (m) => outcome(() => pool.endSession(m.sessionId)),
  hosts: () => pool.hosts(),
  whenHosts: (m) => outcome(() => pool.whenHosts(m.n, m.timeout)),
  stats: () => pool.stats(),
  workers: () => pool.workers(),
  createProgram: (m) => outcome(() => py.sessionAdapter(m.sessionId).createProgram(QA)),
  executeProgram: (m) => outcome(async () => {
    const r = await py.sessionAdapter(m.sessionId).executeProgram('qa', { question: m.question }, m.opts);
    return { answer: r.outputs.answer, restored: r.restored, attempts: r.attempts };
  }),
  retries: () => retries,
  loadStart(m) {
    if (load) throw new Error('a load runs already');
    load = { stopped: false, lanes: [], records: [], inflight: new Map(), timeout: m.timeout ?? 5000 };
    load.lanes = (m.lanes as Lane[]).map((lane, i) => laneLoop(i, lane));
    return { lanes: load.lanes.length, t: now() };
  },
  /** Counts so far: records, successes, failures, successes per host and per lane (after `since`, epoch ms). */
  loadProgress(m) {
    const since = m.since ?? 0;
    const recs = load?.records.filter((r) => r.t1 >= since) ?? [];
    const hosts: Record<string, number> = {};
    const codes: Record<string, number> = {};
    const lanes: number[] = Array.from({ length: load?.lanes.length ?? 0 }, () => 0);
    for (const r of recs) {
      if (r.ok) {
        lanes[r.lane]!++;
        const h = (r.value as { host?: string } | null)?.host;
        if (h) hosts[h] = (hosts[h] ?? 0) + 1;
      } else {
        const c = String(r.error?.code ?? r.error?.name);
        codes[c] = (codes[c] ?? 0) + 1;
      }
    }
    return { records: recs.length, ok: recs.filter((r) => r.ok).length, failed: recs.filter((r) => !r.ok).length, hosts, codes, lanes, t: now() };
  },
  async loadStop() {
    const l = load;
    if (!l) throw new Error('no load runs');
    l.stopped = true;
    const bound = new Promise((r) => setTimeout(r, l.timeout + 3000).unref());
    await Promise.race([Promise.all(l.lanes), bound]);
    load = null;
    return { records: l.records, hung: [...l.inflight].map(([lane, v]) => ({ lane, ...v })), retries: retries.slice() };
  },
};

const reply = (id: number, body: Record<string, unknown>) => process.stdout.write(`@@ ${JSON.stringify({ id, ...body })}\n`);
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (!line.trim()) return;
  const m = JSON.parse(line) as Msg;
  const op = ops[m.op as string];
  if (!op) return reply(m.id, { ok: false, error: { name: 'Error', message: `unknown op ${m.op}` } });
  Promise.resolve()
    .then(() => op(m))
    .then(
      (value) => reply(m.id, { ok: true, value: value ?? null }),
      (error) => reply(m.id, { ok: false, error: data(error) }),
    );
});
rl.on('close', async () => {
  await py.close();
  await pool.stop();
  process.exit(0);
});
process.stdout.write('@@ ready\n');
