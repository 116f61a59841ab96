import { isAbsolute, resolve } from 'node:path';
import { resolveOptions, type PoolOptions } from '../options.js';
import { realClock, realEpochMs } from '../core/clock.js';
import { resolvePython } from '../channel/python.js';
import { processActorLogic, ProcessRegistry, spawnPython } from '../channel/processActor.js';
import { readRssMb } from '../channel/rss.js';
import { Pool } from './pool.js';

/** A handler given as a file path is made absolute, so the workers' cwd does not change its meaning. */
function handlerPath(handler: string): string {
  const isFile = handler.endsWith('.py') || handler.includes('/') || handler.includes('\\');
  return isFile && !isAbsolute(handler) ? resolve(handler) : handler;
}

/**
 * Start a supervised pool of Python workers. Resolves when the non-lazy workers are healthy;
 * rejects with InvalidOptionError (bad options), WorkerStartError (no usable interpreter) or
 * SupervisorEscalationError (workers kept failing to start; its message leads with why),
 * having left no process behind.
 */
export async function createPool(options: PoolOptions = {}): Promise<Pool> {
  const resolved = resolveOptions(options);
  const python = await resolvePython(resolved.python);
  const registry = new ProcessRegistry();
  let sink: (workerId: string, pid: number | null, line: string) => void = () => {};
  const spawn = spawnPython({
    python,
    handlers: resolved.handlers.map(handlerPath),
    env: resolved.env,
    cwd: resolved.cwd,
    maxFrameBytes: resolved.maxFrameBytes,
    concurrency: resolved.workerConcurrency,
    registry,
    toEpochMs: realEpochMs,
    onLog: (workerId, pid, line) => sink(workerId, pid, line),
  });
  const pool = new Pool(resolved, {
    processLogic: processActorLogic(spawn),
    clock: realClock,
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
