/**
 * A HandleHost for tests of a WorkerHandle without a dispatcher: it settles as the dispatcher
 * does (the one place a request is settled; its timer goes with it) and logs every call, so a
 * test reads what the handle asked of its owner.
 */
import type { Clock } from '../../src/core/clock.js';
import type { Request } from '../../src/core/request.js';
import type { PyvisorError } from '../../src/errors.js';
import type { HandleHost, WorkerHandle } from '../../src/local/workerHandle.js';

export interface StubHostOptions {
  interruptGrace?: number;
  maxConsecutiveErrors?: number;
  recycleAfter?: number;
  /** Log an ok settlement with its value (`finish #1 ok "x"`) rather than `finish #1 ok`. */
  logValues?: boolean;
  /** Requests in flight per process (default 1). */
  concurrency?: number;
  /** What the handle's `freed` does (default: log it). */
  freed?: () => void;
}

export function stubHost(clock: Clock, log: string[], options: StubHostOptions = {}) {
  const host = {
    clock,
    concurrency: options.concurrency ?? 1,
    interruptGrace: options.interruptGrace ?? 1000,
    maxConsecutiveErrors: options.maxConsecutiveErrors ?? 10,
    recycleAfter: options.recycleAfter ?? 0,
    maxRssMb: 0,
    rssMb: () => null,
    stopping: false as boolean,
    finish(request: Request, error: PyvisorError | undefined, value?: unknown) {
      if (request.timer !== null) clock.clearTimeout(request.timer);
      request.timer = null;
      log.push(`finish #${request.id} ${error ? error.code : options.logValues ? `ok ${JSON.stringify(value)}` : 'ok'}`);
      request.settle(error, value);
    },
    redispatch(request: Request) {
      log.push(`redispatch #${request.id}`);
    },
    workerLost(request: Request, error: PyvisorError) {
      log.push(`lost #${request.id} ${error.code}`);
      host.finish(request, error);
    },
    freed: options.freed ?? (() => void log.push('freed')),
    timedOut: (_h: WorkerHandle, request: Request) => void log.push(`timedOut #${request.id}`),
    held: (h: WorkerHandle, sessionId: string, held: boolean) => void log.push(`held ${h.id} ${sessionId} ${held}`),
    restarted: (h: WorkerHandle, oldPid: number | null, reason: 'restart' | 'recycle') => void log.push(`restarted ${oldPid}→${h.pid} ${reason}`),
  } satisfies HandleHost;
  return host;
}
