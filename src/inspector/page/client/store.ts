/**
 * The page's state (one object, also on window.__pyvisor for debugging) and the render
 * scheduler: a change marks the parts it affects, and the next animation frame redraws them.
 */
import type { Layout } from './layout.js';
import type { MachineView } from './machine.js';
import { natural } from './format.js';
import { stateNameOfPath } from './states.js';
import type { ChartPoint, EventSummary, LogEntry, MachineGraph, PoolOptionsSummary, Snap, WorkerInfo } from './types.js';

/** The parts of the page that are redrawn, in the order they are. */
export const PARTS = ['kpis', 'tree', 'cards', 'machine', 'charts', 'sessions', 'log'] as const;
export type Part = (typeof PARTS)[number];

export type Tab = 'life' | 'all' | 'raw';

/** One step of a worker's lifecycle (shown under the machine). */
export interface HistoryItem {
  t: number;
  to: string;
  e?: string;
}

/** A worker's card and the elements that change on it. */
export interface CardView {
  card: HTMLDivElement;
  badge: HTMLSpanElement;
  mini: MachineView;
  dd: Record<CardField, HTMLElement>;
}
export type CardField = 'pid' | 'inflight' | 'requests' | 'errors' | 'restarts' | 'sessions';

export interface PageState {
  machine: MachineGraph | null;
  /** The machine's layout, computed once from the first `hello`. */
  L: Layout | null;
  options: Partial<PoolOptionsSummary>;
  sanitize: boolean;
  snap: Snap | null;
  workers: WorkerInfo[];
  /** Each worker's current full state path, its previous one and the event between them. */
  paths: Record<string, string>;
  prevPaths: Record<string, string | undefined>;
  lastEvent: Record<string, string | null | undefined>;
  history: Record<string, HistoryItem[]>;
  selected: string | null;
  log: LogEntry[];
  raw: EventSummary[];
  chart: ChartPoint[];
  routineDropped: number;
  tab: Tab;
  closed: boolean;
  dirty: Partial<Record<Part, boolean>>;
  views: Record<string, CardView>;
  bigView: MachineView | null;
  /** The pending animation frame (0 or absent: none). */
  raf?: number;
}

declare global {
  interface Window {
    __pyvisor?: PageState;
  }
}

export const S: PageState = {
  machine: null, L: null, options: {}, sanitize: true,
  snap: null, workers: [], paths: {}, prevPaths: {}, lastEvent: {}, history: {},
  selected: null, log: [], raw: [], chart: [], routineDropped: 0,
  tab: 'life', closed: false, dirty: {}, views: {}, bigView: null,
};
window.__pyvisor = S;

let renderers: Partial<Record<Part, () => void>> = {};

/** How each part is drawn (set once by main.ts). */
export function setRenderers(r: Record<Part, () => void>): void {
  renderers = r;
}

export function mark(what: Part): void {
  S.dirty[what] = true;
  if (!S.raf) S.raf = requestAnimationFrame(render);
}

function render(): void {
  S.raf = 0;
  const d = S.dirty;
  S.dirty = {};
  try {
    for (const part of PARTS) if (d[part]) renderers[part]?.();
  } catch (err) {
    if (window.console) console.error(err);
  }
}

export function select(id: string): void {
  S.selected = id;
  mark('machine');
  mark('cards');
  mark('tree');
}

/** The workers, pool slots first, in natural order of their ids. */
export function workerList(): WorkerInfo[] {
  return S.workers.slice().sort((a, b) => Number(a.overflow) - Number(b.overflow) || natural(a.id, b.id));
}

/** A worker's state: from its latest transition if there was one, else from the snapshot. */
export function stateOf(w: WorkerInfo): string {
  const p = S.paths[w.id];
  return p ? stateNameOfPath(p) : w.state;
}
