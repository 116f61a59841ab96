/**
 * A compact, JSON-safe description of a state machine's structure (states and transitions),
 * read from the machine definition itself, so that the inspector page draws the machine that
 * actually runs and never a hand-drawn copy that drifts from it.
 */
import type { AnyStateMachine } from 'xstate';

export interface GraphState {
  /** Full id, e.g. `worker.live.busy`. */
  id: string;
  key: string;
  parent: string | null;
  type: string;
  /** Id of the initial child of a compound state. */
  initial: string | null;
  /** 0 for the root. */
  depth: number;
  order: number;
}

export interface GraphTransition {
  source: string;
  target: string;
  /** Display name: the event type, `after <delay>` for delayed transitions, `always` for eventless ones. */
  event: string;
  kind: 'event' | 'after' | 'always';
  guard: string | null;
  reenter: boolean;
}

export interface MachineGraph {
  id: string;
  states: GraphState[];
  transitions: GraphTransition[];
}

interface NodeLike {
  id: string;
  key: string;
  type: string;
  order: number;
  states: Record<string, NodeLike>;
  initial?: { target?: ReadonlyArray<NodeLike> };
  transitions: Map<string, TransitionLike[]>;
  always?: TransitionLike[];
}

interface TransitionLike {
  target?: ReadonlyArray<NodeLike>;
  eventType: string | null;
  guard?: unknown;
  reenter?: boolean;
  delay?: unknown;
}

function guardName(guard: unknown): string | null {
  if (guard === undefined || guard === null) return null;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'function') return guard.name || 'guard';
  const type = (guard as { type?: unknown }).type;
  return typeof type === 'string' ? type : 'guard';
}

function eventName(t: TransitionLike): { event: string; kind: GraphTransition['kind'] } {
  const type = t.eventType ?? '';
  if (type.startsWith('xstate.after.')) {
    const delay = typeof t.delay === 'string' || typeof t.delay === 'number' ? String(t.delay) : type.split('.')[2] ?? '';
    return { event: `after ${delay}${typeof t.delay === 'number' ? ' ms' : ''}`, kind: 'after' };
  }
  if (type.startsWith('xstate.done.actor.')) return { event: `done: ${type.slice('xstate.done.actor.'.length)}`, kind: 'event' };
  if (type.startsWith('xstate.error.actor.')) return { event: `error: ${type.slice('xstate.error.actor.'.length)}`, kind: 'event' };
  return { event: type, kind: 'event' };
}

/** Describe `machine.root`: every state node and every transition that has a target. */
export function describeMachine(machine: AnyStateMachine): MachineGraph {
  const states: GraphState[] = [];
  const transitions: GraphTransition[] = [];
  const visit = (node: NodeLike, parent: string | null, depth: number): void => {
    const children = Object.values(node.states ?? {}).sort((a, b) => a.order - b.order);
    states.push({
      id: node.id,
      key: node.key,
      parent,
      type: node.type,
      initial: node.initial?.target?.[0]?.id ?? null,
      depth,
      order: node.order,
    });
    const add = (t: TransitionLike, always: boolean) => {
      for (const target of t.target ?? []) {
        const { event, kind } = always ? { event: 'always', kind: 'always' as const } : eventName(t);
        transitions.push({ source: node.id, target: target.id, event, kind, guard: guardName(t.guard), reenter: Boolean(t.reenter) });
      }
    };
    for (const list of node.transitions.values()) for (const t of list) add(t, false);
    for (const t of node.always ?? []) add(t, true);
    for (const child of children) visit(child, node.id, depth + 1);
  };
  visit(machine.root as unknown as NodeLike, null, 0);
  return { id: machine.id, states, transitions };
}
