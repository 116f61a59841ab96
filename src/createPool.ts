import { isAbsolute, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { resolveOptions, type PoolOptions } from './options.js';
import { Pool } from './pool.js';
import { resolvePython } from './transport/python.js';
import { createProcessLogic, ProcessRegistry } from './worker/processActor.js';
import { readRssMb } from './worker/rss.js';

/** A handler given as a file path is made absolute, so the workers' cwd does not change its meaning. */
function handlerPath(handler: string): string {
  const isFile = handler.endsWith('.py') || handler.includes('/') || handler.includes('\\');
  return isFile && !isAbsolute(handler) ? resolve(handler) : handler;
}

/**
 * Start a supervised pool of Python workers. Resolves when the non-lazy workers are healthy;
 * rejects with InvalidOptionError (bad options), WorkerStartError (no usable interpreter) or
 * SupervisorEscalationError (workers kept failing to start; its `cause` says why), having
 * left no process behind.
 */
export async function createPool(options: PoolOptions = {}): Promise<Pool> {
  const resolved = resolveOptions(options);
  const python = await resolvePython(resolved.python);
  const registry = new ProcessRegistry();
  let sink: (workerId: string, pid: number | null, line: string) => void = () => {};
  const processLogic = createProcessLogic({
    python,
    handlers: resolved.handlers.map(handlerPath),
    env: resolved.env,
    cwd: resolved.cwd,
    maxFrameBytes: resolved.maxFrameBytes,
    registry,
    onLog: (workerId, pid, line) => sink(workerId, pid, line),
  });
  const pool = new Pool(resolved, {
    processLogic,
    now: () => performance.now(),
    rssMb: readRssMb,
    allExited: () => registry.allExited(),
    setLogSink: (s) => (sink = s),
    pids: () => registry.pids(),
  });
  try {
    await pool.whenReady();
  } catch (error) {
    await pool.stop();
    throw error;
  }
  return pool;
}
