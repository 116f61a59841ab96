/**
 * `pyvisor demo` (= `npm start`): a real pool of Python workers serving many concurrent
 * sessions through the PythonPool adapter, with one worker SIGKILLed mid-run.
 *
 * Every session configures the deterministic dummy LM, creates a `predict` and a
 * `chain_of_thought` program and executes them in a loop; each answer is checked against
 * what the dummy LM must say. The run passes when every execution answered correctly, the
 * killed worker came back with a new process, and no Python process is left after stop.
 *
 * The engine: real DSPy modules (on DSPy's DummyLM) when `.venv/bin/python` imports dspy (npm
 * test creates that venv), else the bridge's built-in runner; the answers are the same, and
 * the title says which one runs.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PACKAGE_ROOT } from '../channel/python.js';
import { PythonPool, type SessionAdapter } from '../adapter/pythonPool.js';
import type { WorkerInfo } from '../local/pool.js';
import { createPool } from '../local/createPool.js';
import { LatencyWindow } from '../telemetry.js';
import { ansiStyle, frame, labelled, line, LiveRegion, ms, noStyle, num, seconds, type Snapshot, type DemoCounters } from './view.js';

export interface DemoOptions {
  sessions: number;
  durationMs: number;
  workers: number;
  /** SIGKILL one worker's Python process mid-run. */
  kill: boolean;
  python?: string;
  out: NodeJS.WritableStream;
  /** Live view (redrawn in place) instead of plain lines. */
  tty: boolean;
  color: boolean;
  columns?: number;
  signal?: AbortSignal;
}

export interface DemoResult extends DemoCounters {
  ok: boolean;
  interrupted: boolean;
  reasons: string[];
  poolLatency: { p50: number; p99: number };
  elapsedMs: number;
  kill: { workerId: string; pid: number; newPid: number | null; recoveryMs: number | null } | null;
  leftoverPids: number[];
}

const QA = {
  id: 'qa',
  type: 'predict' as const,
  signature: {
    inputs: [{ name: 'question', description: 'a question about the BEAM' }],
    outputs: [{ name: 'answer', description: 'a short answer' }],
    instructions: 'Answer the question in one sentence.',
  },
};

const REASON = {
  id: 'reason',
  type: 'chain_of_thought' as const,
  signature: {
    inputs: ['question', 'context'],
    outputs: ['answer', 'confidence'],
    instructions: 'Think step by step, then answer from the context.',
  },
};

const TOPICS = ['supervision trees', 'session affinity', 'MessagePack frames', 'restart intensity', 'overflow workers', 'health checks', 'checkout queues', 'OTP strategies'];

/** What the dummy LM answers: every output is "dummy <field> to: <inputs joined by ' | '>". */
export function expectedOutputs(program: 'qa' | 'reason', inputs: Record<string, string>): Record<string, string> {
  if (program === 'qa') return { answer: `dummy answer to: ${inputs.question}` };
  const subject = `${inputs.question} | ${inputs.context}`;
  return { reasoning: `dummy reasoning about: ${subject}`, answer: `dummy answer to: ${subject}`, confidence: `dummy confidence to: ${subject}` };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const sleep = (msec: number) => new Promise<void>((r) => setTimeout(r, msec));

/** The interpreter to run, and the engine it gives: .venv's when it has DSPy, else the default. */
export function demoEngine(python: string | undefined): { python: string | undefined; engine: string } {
  const venv = join(PACKAGE_ROOT, '.venv', 'bin', 'python');
  const candidate = python ?? (existsSync(venv) ? venv : undefined);
  if (candidate === undefined) return { python, engine: 'built-in runner (no DSPy in .venv)' };
  try {
    const version = execFileSync(candidate, ['-c', 'import dspy; print(dspy.__version__)'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, LITELLM_LOCAL_MODEL_COST_MAP: 'True' }, timeout: 30_000 }).trim();
    return { python: candidate, engine: `real DSPy ${version}` };
  } catch {
    return { python, engine: 'built-in runner (DSPy not importable)' };
  }
}

export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const { out } = options;
  const style = options.color ? ansiStyle() : noStyle;
  const started = performance.now();
  const clock = () => performance.now() - started;
  const stamp = () => `${(clock() / 1000).toFixed(1).padStart(5)}s`;
  const events: string[] = [];
  const region = options.tty ? new LiveRegion(out) : null;
  const note = (text: string) => {
    events.push(`${stamp()}  ${text}`);
    if (!region) out.write(`${stamp()}  ${text}\n`);
  };

  const { python, engine } = demoEngine(options.python);
  const title = `pyvisor demo — ${options.workers} workers · ${options.sessions} sessions · ${engine} · dummy LM · ${seconds(options.durationMs)}`;
  if (!region) out.write(`${title}\n`);
  note(`starting ${options.workers} workers…`);

  const pool = await createPool({
    poolSize: options.workers,
    maxOverflow: 0,
    checkoutTimeout: 30_000,
    // Worker stderr goes into the demo's event list: written straight to the terminal it would
    // tear the live view.
    logs: 'events',
    ...(python ? { python } : {}),
    restart: { maxRestarts: 5, maxSeconds: 5 },
  });
  const py = new PythonPool(pool, { ownsPool: true });
  const pids = new Set<number>();
  const trackPids = (infos: WorkerInfo[]) => infos.forEach((w) => w.pid !== null && pids.add(w.pid));
  trackPids(pool.workers());
  pool.on('worker_state', (e: { pid: number | null }) => e.pid !== null && pids.add(e.pid));

  let kill: DemoResult['kill'] = null;
  let killedAt = 0;
  let restartSeen: () => void = () => {};
  const restarted = new Promise<void>((r) => (restartSeen = r));
  pool.on('worker_restarted', (e: { workerId: string; oldPid: number | null; newPid: number | null }) => {
    if (e.newPid !== null) pids.add(e.newPid);
    const recovery = kill && kill.workerId === e.workerId ? clock() - killedAt : null;
    note(`${style.green('restarted')} ${e.workerId}: pid ${e.oldPid ?? '?'} → ${e.newPid ?? '?'}${recovery !== null ? ` (back in ${ms(recovery)})` : ''}`);
    if (kill && kill.workerId === e.workerId && kill.newPid === null) {
      kill.newPid = e.newPid;
      kill.recoveryMs = recovery;
      restartSeen();
    }
  });
  py.on('retry', (e) => {
    if (e.reason === 'worker_crashed' || e.reason === 'worker_lost') note(`${style.yellow('retry')} ${e.sessionId}/${e.programId}: worker died under the call, retrying on a live one`);
  });
  note(`pool ready: ${pool.workers().map((w) => `${w.id}=${w.pid}`).join(' ')}`);
  pool.on('worker_log', (e) => note(`${style.dim(`[${e.workerId} ${e.pid ?? '-'}]`)} ${e.line}`));

  // ---- the load ---------------------------------------------------------------------------
  const latency = new LatencyWindow(8192);
  let executions = 0;
  let wrong = 0;
  let failed = 0;
  const failures: string[] = [];
  const completions: number[] = [];
  // The load runs for durationMs once the pool is ready (a real-DSPy worker takes a second to start).
  const loadStart = clock();
  const deadline = loadStart + options.durationMs;
  let stopLoad = false;
  const onAbort = () => (stopLoad = true);
  options.signal?.addEventListener('abort', onAbort, { once: true });

  const session = async (index: number): Promise<void> => {
    const id = `demo-user-${String(index + 1).padStart(2, '0')}`;
    let adapter: SessionAdapter | null = null;
    try {
      adapter = py.sessionAdapter(id);
      await adapter.configureLM({ provider: 'dummy', model: 'demo-dummy' });
      await adapter.createProgram(QA);
      await adapter.createProgram(REASON);
      if (index === 0) note(`engine in the workers: ${(await adapter.getProgramInfo('qa')).engine === 'dspy' ? engine : 'built-in runner'}`);
      let n = 0;
      while (!stopLoad && clock() < deadline) {
        n++;
        const program = (n + index) % 2 === 0 ? 'qa' : 'reason';
        const topic = TOPICS[(n + index) % TOPICS.length]!;
        const inputs: Record<string, string> =
          program === 'qa'
            ? { question: `${id} #${n}: what are ${topic}?` }
            : { question: `${id} #${n}: why do ${topic} matter?`, context: `${topic} keep a pool alive` };
        const t0 = performance.now();
        try {
          const result = await adapter.executeProgram(program, inputs);
          latency.add(performance.now() - t0);
          executions++;
          completions.push(clock());
          if (JSON.stringify(result.outputs) !== JSON.stringify(expectedOutputs(program, inputs))) {
            wrong++;
            if (failures.length < 5) failures.push(`${id}/${program}: wrong outputs ${JSON.stringify(result.outputs)}`);
          }
        } catch (error) {
          failed++;
          if (failures.length < 5) failures.push(`${id}/${program}: ${(error as Error).message.split('\n')[0]}`);
        }
      }
    } catch (error) {
      failed++;
      if (failures.length < 5) failures.push(`${id}: setup failed: ${(error as Error).message.split('\n')[0]}`);
    } finally {
      if (adapter) await adapter.endSession().catch((error: Error) => failures.push(`${id}: endSession failed: ${error.message}`));
    }
  };

  // ---- the view -----------------------------------------------------------------------------
  const snapshot = (phase: string): Snapshot => {
    const now = clock();
    while (completions.length > 0 && completions[0]! < now - 1000) completions.shift();
    const workers = pool.isClosed ? [] : pool.workers();
    trackPids(workers);
    const stats = pool.stats();
    const adapterStats = py.stats();
    return {
      elapsedMs: now,
      durationMs: options.durationMs,
      workers,
      sessions: options.sessions,
      activeSessions: stats.activeSessions,
      executions,
      wrong,
      failed,
      restores: adapterStats.restores,
      retries: adapterStats.retries,
      restarts: stats.restarts,
      throughput: completions.length * (1000 / Math.min(1000, Math.max(1, now))),
      latency: latency.percentiles(),
      events,
      phase,
    };
  };
  let phase = 'running';
  const render = () => {
    const s = snapshot(phase);
    if (region) region.draw(frame(s, title, style, options.columns || 100));
    else out.write(`${line(s)}\n`);
  };
  const timer = setInterval(render, region ? 200 : 1000);
  if (region) render();

  // ---- the kill -----------------------------------------------------------------------------
  const killer = (async () => {
    if (!options.kill) return;
    const at = loadStart + Math.max(500, Math.min(options.durationMs * 0.4, options.durationMs - 1500));
    while (!stopLoad && clock() < at) await sleep(50);
    if (stopLoad) return;
    const infos = pool.workers().filter((w) => w.pid !== null);
    const victim = infos.find((w) => w.state === 'busy') ?? infos.find((w) => w.state === 'healthy') ?? infos[0];
    if (!victim || victim.pid === null) {
      note(style.red('no worker to kill'));
      return;
    }
    kill = { workerId: victim.id, pid: victim.pid, newPid: null, recoveryMs: null };
    killedAt = clock();
    note(`${style.red('SIGKILL')} → ${victim.id} (pid ${victim.pid}, ${victim.state}): supervision should replace it`);
    process.kill(victim.pid, 'SIGKILL');
  })();

  await Promise.all(Array.from({ length: options.sessions }, (_, i) => session(i)));
  await killer;
  if (kill !== null && (kill as NonNullable<DemoResult['kill']>).newPid === null && !stopLoad) {
    // The load is over; give the supervisor a bounded moment to finish the restart.
    phase = 'waiting for the restart';
    await Promise.race([restarted, sleep(10_000)]);
  }
  const elapsedLoad = Math.min(clock() - loadStart, Math.max(options.durationMs, 1));
  phase = 'stopping';
  const poolLatency = pool.stats().latencyMs;
  const final = snapshot('stopping');
  clearInterval(timer);
  const restarts = pool.stats().restarts;
  const { restores, retries } = py.stats();
  await py.close();
  options.signal?.removeEventListener('abort', onAbort);
  const leftoverPids = [...pids].filter(alive);

  if (region) {
    region.draw(frame({ ...final, phase: 'done', workers: final.workers }, title, style, options.columns || 100));
    region.release();
  }

  // ---- the verdict ----------------------------------------------------------------------------
  const reasons: string[] = [];
  const interrupted = options.signal?.aborted ?? false;
  if (interrupted) reasons.push('interrupted');
  if (executions === 0) reasons.push('no execution completed');
  if (wrong > 0) reasons.push(`${wrong} execution(s) answered wrong outputs`);
  if (failed > 0) reasons.push(`${failed} execution(s) failed`);
  reasons.push(...failures.map((f) => `  ${f}`));
  const k = kill as DemoResult['kill'];
  if (options.kill && !interrupted) {
    if (!k) reasons.push('no worker was killed');
    else if (k.newPid === null) reasons.push(`killed ${k.workerId} (pid ${k.pid}) did not come back`);
  }
  if (leftoverPids.length > 0) reasons.push(`Python processes still alive after stop: ${leftoverPids.join(', ')}`);
  const result: DemoResult = {
    ok: reasons.length === 0,
    interrupted,
    reasons,
    executions,
    wrong,
    failed,
    restores,
    retries,
    restarts,
    throughput: executions / (elapsedLoad / 1000),
    latency: latency.percentiles(),
    poolLatency,
    elapsedMs: clock(),
    kill: k,
    leftoverPids,
  };
  out.write(summary(result, options, style));
  return result;
}

export function summary(r: DemoResult, options: Pick<DemoOptions, 'sessions' | 'workers' | 'kill'>, style = noStyle): string {
  const rows: Array<[string, string]> = [
    ['executions', `${num(r.executions)} (${num(r.wrong)} wrong, ${num(r.failed)} failed) over ${options.sessions} sessions on ${options.workers} workers`],
    ['throughput', `${num(r.throughput)} executions/s`],
    ['latency', `p50 ${ms(r.latency.p50)}, p99 ${ms(r.latency.p99)} per execution (pool, per command: p50 ${ms(r.poolLatency.p50)}, p99 ${ms(r.poolLatency.p99)})`],
    ['restarts', `${r.restarts} worker restart(s)`],
    ['restores', `${num(r.restores)} program restore(s) on workers that lacked them, ${num(r.retries)} retried call(s)`],
  ];
  if (r.kill) {
    rows.push([
      'SIGKILL',
      r.kill.newPid !== null
        ? `${r.kill.workerId} pid ${r.kill.pid} → ${r.kill.newPid}, back in ${r.kill.recoveryMs !== null ? ms(r.kill.recoveryMs) : '?'}`
        : `${r.kill.workerId} pid ${r.kill.pid} did not come back`,
    ]);
  } else if (options.kill) {
    rows.push(['SIGKILL', 'none sent']);
  }
  rows.push(['processes', r.leftoverPids.length === 0 ? 'no Python process left after stop' : `${r.leftoverPids.length} left alive: ${r.leftoverPids.join(', ')}`]);
  rows.push(['elapsed', seconds(r.elapsedMs)]);
  const verdict = r.ok
    ? [style.green(style.bold('PASS')) + ' — every execution answered correctly' + (r.kill ? ', the killed worker came back' : '') + ', nothing left running']
    : [style.red(style.bold('FAIL')) + ` — ${r.reasons[0]}`, ...r.reasons.slice(1)];
  // At most 80 columns: a value too long for one line goes on under itself.
  const lines = [...rows, ...verdict.map((v, i): [string, string] => [i === 0 ? 'verdict' : '', v])].flatMap(([k, v]) => labelled(`  ${k}`, v, 13));
  return `\n${style.bold('summary')}\n${lines.join('\n')}\n`;
}
