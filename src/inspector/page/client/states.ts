/**
 * Everything the page knows about worker states, in one place: their colours, which of them
 * count as "up", which the legend shows, and how a state path names the state. No other file
 * of the page names a worker state.
 */
// TODO(lead): import from machines/workerStates.ts
// (its UP_STATES for UP_STATES here, and workerStateName's rule for stateNameOfPath; the colours
// and the legend's order are the page's own presentation and can stay here, keyed by its states).

/** The colour of each worker state (on cards, chips, the tree and the machine diagram). */
const STATE_COLORS: Readonly<Record<string, string>> = {
  healthy: '#16a34a', busy: '#2563eb', settled: '#2563eb', checking: '#0891b2', afterCheck: '#0891b2', interrupting: '#ea580c',
  initializing: '#d97706', restarting: '#d97706', boot: '#d97706', recycling: '#7c3aed', stopping: '#64748b', stopped: '#475569',
  unhealthy: '#dc2626', idle: '#94a3b8', removed: '#94a3b8',
};

/** States in which a worker counts as up (serving, or able to serve): the "N / M up" figure. */
const UP_STATES: readonly string[] = ['healthy', 'busy', 'checking', 'afterCheck'];

/** States the legend under the machine explains, in this order (those the machine has). */
export const LEGEND_STATES: readonly string[] = ['healthy', 'busy', 'checking', 'initializing', 'restarting', 'recycling', 'unhealthy', 'stopped'];

/** The compound state whose children are the states a worker is named by (live.busy is "busy"). */
const LIVE_STATE = 'live';

/** The state a path the machine does not know is drawn as. */
export const FALLBACK_STATE = 'idle';

/** A state's colour; a state without one gets a stable colour of its own. */
export function colorOf(name: string | null | undefined): string {
  const key = String(name);
  if (Object.prototype.hasOwnProperty.call(STATE_COLORS, key) && STATE_COLORS[key]) return STATE_COLORS[key];
  let x = 0;
  for (let i = 0; i < key.length; i++) x = (x * 31 + key.charCodeAt(i)) >>> 0;
  return 'hsl(' + (x % 360) + ',55%,45%)';
}

export function isUp(state: string): boolean {
  return UP_STATES.indexOf(state) >= 0;
}

/** The name of the state at a full path: `live.restarting.awaitReady` → `restarting`, `stopped` → `stopped`. */
export function stateNameOfPath(path: string): string {
  const parts = String(path).split('.');
  return parts.length > 1 && parts[0] === LIVE_STATE ? parts[1]! : parts[0]!;
}
