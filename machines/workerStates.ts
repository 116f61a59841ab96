/**
 * The worker machine's states, and the groups everyone else reads them in: stats(), the
 * inspector server and its page. One list, so they cannot disagree about a state.
 */
export const WORKER_STATES = ['idle', 'initializing', 'restarting', 'healthy', 'busy', 'checking', 'recycling', 'stopping', 'cooldown', 'unhealthy', 'stopped'] as const;
export type WorkerStateName = (typeof WORKER_STATES)[number] | 'removed';

/** Up and serving, or about to again (a health ping is a moment, not an outage). */
export const UP_STATES: ReadonlySet<string> = new Set(['healthy', 'busy', 'checking']);
/** May be handed a request (the handle also needs a free slot). */
export const ROUTABLE_STATES: ReadonlySet<string> = new Set(['healthy', 'busy']);
/** Failed and not (yet) back (`cooldown`: its process died under a request). A recycle passes through `restarting` too, which is not a failure. */
export const FAILED_STATES: ReadonlySet<string> = new Set(['unhealthy', 'cooldown', 'restarting']);

/** The worker machine's state value as one word: the live substate, or the top-level state. */
export function workerStateName(value: unknown): string {
  if (typeof value === 'string') return value;
  const live = (value as { live?: unknown }).live;
  if (typeof live === 'string') return live;
  if (live && typeof live === 'object') return Object.keys(live)[0]!;
  return Object.keys(value as object)[0] ?? 'unknown';
}
