/**
 * Hostile worker: a fake worker (test/fixtures/hostile-worker.mjs, Node) that passes the
 * handshake and then writes fuzzed bytes (test/fixtures/hostile-cases.mjs): random bytes,
 * truncated frames, length headers up to 4 GiB, invalid MessagePack, wrong ids, replies
 * nobody asked for...
 *
 * Two levels:
 * 1. transport (`WorkerProcess` with an argv override): one hostile process writes thousands
 *    of frame-intact cases back to back, each followed by a marker notice; every case must
 *    produce exactly one ProtocolError and nothing else (the frame reader stays in sync).
 * 2. pool: a real Pool whose worker_1 is the hostile process and whose other workers are real
 *    Python. Each case (frame-breaking ones included) is sent as a `fuzz` request to worker_1:
 *    the request fails with ProtocolError (or, for a reply nobody asked for, succeeds and the
 *    worker is condemned), the supervisor sees worker_1 exit with a ProtocolError, worker_1
 *    alone is restarted (the other workers keep their pids), and the pool serves again.
 * Host memory (heap after GC, RSS) must stay bounded: a 4 GiB header allocates nothing.
 *
 * createPool has no argv override, so the pool is wired here as createPool wires it, with a
 * process logic that gives worker_1 the hostile script as its "interpreter" (the script
 * ignores the bridge path and flags it is handed).
 */
import { chmodSync, statSync } from 'node:fs';
import type { InspectionEvent } from 'xstate';
import { ProtocolError, PythonError, type PyvisorError } from '../../src/errors.js';
import { resolveOptions } from '../../src/options.js';
import { Pool } from '../../src/local/pool.js';
import { resolvePython } from '../../src/channel/python.js';
import { WorkerProcess } from '../../src/channel/workerProcess.js';
import { processActorLogic, ProcessRegistry, spawnPython } from '../../src/channel/processActor.js';
import { realClock, realEpochMs } from '../../src/core/clock.js';
import { isRunning, identify, type ProcId } from './procs.js';
import { ECHO_HANDLERS, gc, HOSTILE_WORKER, mb, nextEvent, PoolProcesses, PYTHON, quiet, within, type Log } from './common.js';
// @ts-expect-error a plain .mjs fixture without type declarations
import { CATEGORIES, FRAME_INTACT } from '../../test/fixtures/hostile-cases.mjs';

export interface HostileOptions {
  /** Frame-intact cases through one hostile process at the transport level. */
  streamCases: number;
  /** Cases through the pool, one hostile process (and one restart) each. */
  poolCases: number;
  seed?: number;
  python?: string;
  /** Allowed growth of the host's heap (after GC) and RSS over the run, in MiB. */
  memorySlackMb?: number;
  log?: Log;
}

export interface HostileReport {
  stream: { cases: number; protocolErrors: number; byCategory: Record<string, number> };
  pool: { cases: number; protocolErrors: number; restarts: number; byCategory: Record<string, number>; otherWorkersRestarted: number };
  memory: { heapBeforeMb: number; heapAfterMb: number; rssBeforeMb: number; rssAfterMb: number };
  violations: string[];
}

function ensureExecutable(path: string): void {
  const mode = statSync(path).mode;
  if ((mode & 0o111) !== 0o111) chmodSync(path, mode | 0o111);
}

/** Level 1: thousands of frame-intact cases through one hostile process, one ProtocolError each. */
async function streamFuzz(cases: number, seed: number, violations: string[], byCategory: Record<string, number>): Promise<number> {
  let errorsInCase = 0;
  let total = 0;
  let lastCase = -1;
  const firstErrors: string[] = [];
  const done = new Promise<void>((resolve, reject) => {
    const proc = WorkerProcess.spawn(
      { workerId: 'hostile-stream', python: process.execPath, argv: [process.execPath, HOSTILE_WORKER, '--worker-id', 'hostile-stream', '--mode', 'stream', '--count', String(cases), '--seed', String(seed)] },
      {
        onMessage(msg) {
          if (msg.kind !== 'notice') return;
          if (msg.event === 'case') {
            const n = Number(msg.data.n);
            const category = String(msg.data.category);
            if (n !== lastCase + 1) violations.push(`stream: case ${n} arrived after case ${lastCase}`);
            lastCase = n;
            if (errorsInCase !== 1) violations.push(`stream: case ${n} (${category}) produced ${errorsInCase} ProtocolErrors, expected 1${firstErrors.length ? ` (${firstErrors.join(' | ')})` : ''}`);
            else byCategory[category] = (byCategory[category] ?? 0) + 1;
            errorsInCase = 0;
            firstErrors.length = 0;
          } else if (msg.event === 'done') {
            proc.endInput();
          }
        },
        onProtocolError(err) {
          if (!(err instanceof ProtocolError)) violations.push(`stream: onProtocolError got ${(err as Error).name}`);
          errorsInCase++;
          total++;
          if (firstErrors.length < 2) firstErrors.push(err.message.slice(0, 100));
        },
        onExit(info) {
          if (lastCase !== cases - 1) reject(new Error(`stream: the hostile process exited after case ${lastCase} of ${cases} (${JSON.stringify(info)})`));
          else resolve();
        },
      },
    );
  });
  const r = await within(done, 120_000);
  if (!r.settled) violations.push('stream: the hostile stream did not finish within 120 s');
  else if (!r.ok) violations.push(String((r.error as Error).message));
  return total;
}

/** Level 2: each case through a real pool, worker_1 hostile, the others real Python. */
async function poolFuzz(options: HostileOptions, seed: number, violations: string[], report: HostileReport['pool'], log: Log): Promise<void> {
  ensureExecutable(HOSTILE_WORKER);
  const python = await resolvePython(options.python ?? PYTHON);
  const resolved = resolveOptions({
    poolSize: 3,
    maxOverflow: 0,
    python,
    handlers: [ECHO_HANDLERS],
    restart: { maxRestarts: 1_000_000, maxSeconds: 1 },
    requestTimeout: 10_000,
    checkoutTimeout: 10_000,
    healthCheckInterval: 0,
  });
  const registry = new ProcessRegistry();
  const common = { handlers: resolved.handlers, env: resolved.env, cwd: resolved.cwd, maxFrameBytes: resolved.maxFrameBytes, registry, toEpochMs: realEpochMs, onLog: () => {} };
  const real = spawnPython({ ...common, python });
  // The hostile script stands in for the interpreter: it is handed (and ignores) the bridge path and flags.
  const hostile = spawnPython({ ...common, python: HOSTILE_WORKER, handlers: [] });
  const processLogic = processActorLogic((workerId, generation, hooks) => (workerId === 'worker_1' ? hostile : real)(workerId, generation, hooks));
  const pool = new Pool(resolved, {
    processLogic,
    clock: realClock,
    allExited: () => registry.allExited(),
    pids: () => registry.pids(),
  });
  // Every exit the supervisor hears of, with its error: how a protocol failure is seen even when no caller is told.
  const exits: Array<{ id: string; error: PyvisorError | undefined }> = [];
  pool.observeInspection((e: InspectionEvent) => {
    if (e.type !== '@xstate.event') return;
    const ev = (e as { event: { type: string; id?: string; error?: PyvisorError } }).event;
    if (ev.type === 'CHILD.EXITED') exits.push({ id: String(ev.id), error: ev.error });
  });
  const procs = new PoolProcesses();
  try {
    await pool.whenReady();
    procs.watch(pool);
    const others = () => pool.workers().filter((w) => w.id !== 'worker_1');
    const otherPids = new Map(others().map((w) => [w.id, w.pid]));
    const otherIds: ProcId[] = others().map((w) => identify(w.pid!)).filter((x): x is ProcId => x !== null);
    const healthy1 = () => pool.workers().find((w) => w.id === 'worker_1')?.state === 'healthy';
    let misses = 0;
    for (let i = 0; i < options.poolCases; i++) {
      // worker_1 first in the slot order: an idle pool hands a request to it.
      if (!healthy1()) await nextEvent(pool, 'worker_state', () => healthy1(), 15_000).catch(() => {});
      const category = CATEGORIES[i % CATEGORIES.length] as string;
      const exitsBefore = exits.length;
      const restarted = nextEvent<{ workerId: string }>(pool, 'worker_restarted', (e) => e.workerId === 'worker_1', 15_000);
      restarted.catch(() => {});
      const outcome = await within(pool.execute('fuzz', { case: i, seed }), 15_000);
      if (!outcome.settled) {
        violations.push(`pool: case ${i} (${category}) did not settle`);
        continue;
      }
      if (!outcome.ok && outcome.error instanceof PythonError && /UnknownCommand|unknown command/i.test(outcome.error.message)) {
        // Landed on a real Python worker (worker_1 was not idle): not a case; try it again.
        misses++;
        if (misses > options.poolCases) {
          violations.push('pool: fuzz requests keep missing the hostile worker');
          break;
        }
        i--;
        continue;
      }
      const unsolicited = category === 'unsolicited-reply';
      if (unsolicited ? !outcome.ok : true) {
        if (outcome.ok) violations.push(`pool: case ${i} (${category}) succeeded; expected ProtocolError`);
        else if (!(outcome.error instanceof ProtocolError)) {
          violations.push(`pool: case ${i} (${category}) failed with ${(outcome.error as Error).name}: ${(outcome.error as Error).message.split('\n')[0]}; expected ProtocolError`);
        } else report.protocolErrors++;
      }
      const r = await within(restarted, 15_000);
      if (!r.settled || !r.ok) {
        violations.push(`pool: worker_1 was not restarted after case ${i} (${category})`);
        continue;
      }
      report.restarts++;
      const mine = exits.slice(exitsBefore);
      const protocolExit = mine.find((x) => x.id === 'worker_1' && (x.error as { code?: string } | undefined)?.code === 'PROTOCOL_ERROR');
      if (!protocolExit) violations.push(`pool: case ${i} (${category}): the supervisor saw no ProtocolError exit of worker_1 (${JSON.stringify(mine.map((x) => [x.id, (x.error as { code?: string } | undefined)?.code, x.error?.message?.slice(0, 60)]))})`);
      else if (unsolicited) report.protocolErrors++;
      if (mine.some((x) => x.id !== 'worker_1')) violations.push(`pool: case ${i} (${category}): another worker exited too`);
      report.byCategory[category] = (report.byCategory[category] ?? 0) + 1;
      report.cases++;
      if (report.cases % 100 === 0) log(`  hostile pool: ${report.cases} cases`);
    }
    // The other workers never noticed: same pids, never restarted, and they serve.
    for (const w of others()) {
      if (otherPids.get(w.id) !== w.pid) report.otherWorkersRestarted++;
      if (w.restarts > 0) report.otherWorkersRestarted++;
    }
    if (report.otherWorkersRestarted) violations.push(`pool: other workers were restarted (${JSON.stringify(others())})`);
    for (let k = 0; k < 6; k++) {
      const echoed = await within(pool.execute('echo', { k }), 10_000);
      if (!echoed.settled || !echoed.ok || JSON.stringify(echoed.value) !== JSON.stringify({ k })) violations.push(`pool: echo ${k} after the fuzzing failed`);
    }
    if (otherIds.some((id) => !isRunning(id))) violations.push('pool: a real Python worker died during the fuzzing');
  } finally {
    await pool.stop();
  }
  const alive = procs.alive();
  if (alive.length) violations.push(`pool: processes still alive after stop(): ${alive.map((p) => p.pid).join(', ')}`);
  if (registry.pids().length) violations.push(`pool: the registry still lists ${registry.pids().join(', ')}`);
}

export async function hostile(options: HostileOptions): Promise<HostileReport> {
  const log = options.log ?? quiet;
  const seed = options.seed ?? 7;
  const violations: string[] = [];
  gc();
  const before = process.memoryUsage();
  const report: HostileReport = {
    stream: { cases: options.streamCases, protocolErrors: 0, byCategory: {} },
    pool: { cases: 0, protocolErrors: 0, restarts: 0, byCategory: {}, otherWorkersRestarted: 0 },
    memory: { heapBeforeMb: mb(before.heapUsed), heapAfterMb: 0, rssBeforeMb: mb(before.rss), rssAfterMb: 0 },
    violations,
  };
  if (options.streamCases > 0) {
    report.stream.protocolErrors = await streamFuzz(options.streamCases, seed, violations, report.stream.byCategory);
    log(`  hostile stream: ${options.streamCases} cases, ${report.stream.protocolErrors} ProtocolErrors, ${Object.keys(report.stream.byCategory).length}/${FRAME_INTACT.length} categories`);
  }
  if (options.poolCases > 0) {
    await poolFuzz(options, seed, violations, report.pool, log);
    log(`  hostile pool: ${report.pool.cases} cases, ${report.pool.protocolErrors} ProtocolErrors, ${report.pool.restarts} restarts of worker_1, ${report.pool.otherWorkersRestarted} of the others`);
  }
  gc();
  const after = process.memoryUsage();
  report.memory.heapAfterMb = mb(after.heapUsed);
  report.memory.rssAfterMb = mb(after.rss);
  const slack = options.memorySlackMb ?? 64;
  if (after.heapUsed - before.heapUsed > slack * 1048576) violations.push(`host heap grew by ${mb(after.heapUsed - before.heapUsed)} MiB`);
  if (after.rss - before.rss > slack * 1048576) violations.push(`host RSS grew by ${mb(after.rss - before.rss)} MiB`);
  return report;
}
