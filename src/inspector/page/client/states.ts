/**
 * Everything the page knows about worker states, in one place: their colours, which of them
 * count as "up", which the legend shows, and how a state path names the state. No other file
 * of the page names a worker state.
 */
import { UP_STATES } from '../../../../machines/workerStates.js';

// Which states count as up is the machine's fact (machines/workerStates.ts, bundled in); the
// colours and the legend's order are the page's own presentation.

/** The colour of each worker state (on cards, chips, the tree and the machine diagram). */
const STATE_COLORS: Readonly<Record<string, string>> = {
  healthy: '#16a34a', busy: '#2563eb', checking: '#0891b2',
  initializing: '#d97706', restarting: '#d97706', boot: '#d97706', recycling: '#7c3aed', stopping: '#64748b', stopped: '#475569',
  unhealthy: '#dc2626', idle: '#94a3b8', removed: '#94a3b8',
};

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
  return UP_STATES.has(state);
}

/** The name of the state at a full path: `live.restarting.awaitReady` → `restarting`, `stopped` → `stopped`. */
export function stateNameOfPath(path: string): string {
  const parts = String(path).split('.');
  return parts.length > 1 && parts[0] === LIVE_STATE ? parts[1]! : parts[0]!;
}
