/**
 * Layout of a state machine, from its description: compound states are containers, their
 * children are laid out in columns by distance from the initial state (breadth-first), and
 * directions of edges decide how they are routed. Depth is capped at 2; deeper states fold
 * into their parent (and show as a sub-label when current).
 */
import type { GraphTransition, MachineGraph } from './types.js';

const MAXD = 2, NODE_H = 30, GAPX = 74, GAPY = 22, PAD = 16, HEAD = 28, CHARW = 7.1;

type Pt = [number, number];

/** A state of the machine, with its children in declaration order. */
export interface LState {
  id: string;
  key: string;
  parent: string | null;
  depth: number;
  initial: string | null;
  order: number;
  kids: string[];
}

/** A transition between two drawn states. */
interface RawEdge {
  s: string;
  t: string;
  ev: string;
  kind: GraphTransition['kind'];
  guard: string | null;
}

/** One arrow: every transition from `s` to `t`, with its path and label. */
export interface Edge {
  key: string;
  s: string;
  t: string;
  items: RawEdge[];
  /** From a container to a state inside it (drawn down from its border). */
  fromParent: boolean;
  /** Only eventless (always) transitions: drawn dashed. */
  always: boolean;
  d: string;
  lx: number;
  ly: number;
  label: string;
  title: string;
}

/** A drawn state: a container (compound state) or a leaf box. */
export interface Box {
  id: string;
  key: string;
  depth: number;
  x: number;
  y: number;
  w: number;
  h: number;
  leaf: boolean;
  /** Position of each child relative to this box. */
  rel: Record<string, { x: number; y: number }>;
  kids: string[];
}

export interface Layout {
  st: Record<string, LState>;
  rootId: string;
  box: Record<string, Box>;
  /** Every box but the root's. */
  drawn: Box[];
  edges: Edge[];
  /** The drawn state a state shows as (itself, or its ancestor at the depth cap). */
  vis(id: string): string;
  /** Whether a is an ancestor of b. */
  isAnc(a: string, b: string): boolean;
  /** The SVG viewBox. */
  view: [number, number, number, number];
}

interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

export function buildLayout(m: MachineGraph): Layout {
  const st: Record<string, LState> = {};
  let rootId: string | null = null;
  for (const s of m.states) {
    st[s.id] = { id: s.id, key: s.key, parent: s.parent, depth: s.depth, initial: s.initial, order: s.order, kids: [] };
    if (!s.parent) rootId = s.id;
  }
  for (const s of m.states) if (s.parent) st[s.parent]!.kids.push(s.id);
  for (const id of Object.keys(st)) st[id]!.kids.sort((a, b) => st[a]!.order - st[b]!.order);
  if (rootId === null) throw new Error('inspector page: the machine has no root state');
  const root: string = rootId;

  const up = (s: LState): LState | undefined => (s.parent === null ? undefined : st[s.parent]);
  function vis(id: string): string {
    let s = st[id];
    while (s && s.depth > MAXD) s = up(s);
    return s ? s.id : id;
  }
  function enter(id: string): string {
    let s = st[id];
    while (s && s.depth < MAXD && s.initial && s.kids.length) s = st[s.initial];
    return s ? s.id : id;
  }
  function isAnc(a: string, b: string): boolean {
    let s = st[b];
    while (s && s.parent) {
      if (s.parent === a) return true;
      s = st[s.parent];
    }
    return false;
  }
  function childOf(c: string, id: string): string | null {
    let s = st[id];
    while (s && s.parent !== c) s = up(s);
    return s ? s.id : null;
  }

  const raw: RawEdge[] = [];
  for (const t of m.transitions) {
    if (!st[t.source] || !st[t.target]) continue;
    const s = vis(t.source), d = vis(enter(t.target));
    if (s === d) continue;
    raw.push({ s, t: d, ev: t.event, kind: t.kind, guard: t.guard });
  }
  const has: Record<string, boolean> = {};
  for (const e of raw) has[e.s + '>' + e.t] = true;
  const merged: Record<string, Edge> = {};
  const edges: Edge[] = [];
  for (const e of raw) {
    // A state's transition that its container also has (e.g. "process died" from any live
    // state) is drawn once, from the container's border.
    let src = e.s;
    let a = st[e.s]!.parent;
    while (a && st[a]!.depth >= 1) {
      if (!isAnc(a, e.t) && has[a + '>' + e.t]) src = a;
      a = st[a]!.parent;
    }
    const key = src + '>' + e.t;
    let g = merged[key];
    if (!g) {
      g = merged[key] = { key, s: src, t: e.t, items: [], fromParent: isAnc(src, e.t), always: true, d: '', lx: 0, ly: 0, label: '', title: '' };
      edges.push(g);
    }
    if (!g.items.some((x) => x.ev === e.ev && x.guard === e.guard)) g.items.push(e);
    if (e.kind !== 'always') g.always = false;
  }

  const box: Record<string, Box> = {};
  function place(id: string): void {
    const n = st[id]!, kids = n.depth < MAXD ? n.kids : [];
    const b: Box = (box[id] = { id, key: n.key, depth: n.depth, x: 0, y: 0, w: 0, h: 0, leaf: !kids.length, rel: {}, kids });
    if (!kids.length) {
      b.w = Math.max(84, Math.round(n.key.length * CHARW + 26));
      b.h = NODE_H;
      return;
    }
    kids.forEach(place);
    const succ: Record<string, string[]> = {};
    for (const k of kids) succ[k] = [];
    for (const e of raw) {
      const p = childOf(id, e.s), q = childOf(id, e.t);
      if (p && q && p !== q && succ[p]!.indexOf(q) < 0) succ[p]!.push(q);
    }
    const start = n.initial && kids.indexOf(n.initial) >= 0 ? n.initial : kids[0]!;
    const rank: Record<string, number> = {};
    rank[start] = 0;
    const queue = [start];
    while (queue.length) {
      const u = queue.shift()!;
      for (const v of succ[u]!) {
        if (rank[v] === undefined) {
          rank[v] = rank[u]! + 1;
          queue.push(v);
        }
      }
    }
    let maxR = 0;
    for (const k of kids) if (rank[k] !== undefined) maxR = Math.max(maxR, rank[k]);
    for (const k of kids) if (rank[k] === undefined) rank[k] = maxR + 1;
    // Two states joined by a transition never share a column: the later-declared one moves right.
    for (let guard = 0, moved = true; moved && guard < kids.length * kids.length; guard++) {
      moved = false;
      for (const u of kids) {
        for (const v of succ[u]!) {
          if (rank[u] !== rank[v]) continue;
          const later = st[u]!.order > st[v]!.order ? u : v;
          rank[later] = rank[later]! + 1;
          moved = true;
        }
      }
    }
    let cols: string[][] = [];
    for (const k of kids) (cols[rank[k]!] = cols[rank[k]!] || []).push(k);
    cols = cols.filter(Boolean);
    const pos: Record<string, number> = {};
    cols.forEach((col, ci) => {
      const bary: Record<string, number> = {};
      for (const k of col) {
        const ps: number[] = [];
        for (const p of kids) {
          const pp = pos[p];
          if (pp !== undefined && succ[p]!.indexOf(k) >= 0) ps.push(pp);
        }
        bary[k] = ps.length ? ps.reduce((a, c) => a + c, 0) / ps.length : 0.5 + st[k]!.order / 1000;
      }
      if (ci > 0) col.sort((a, c) => bary[a]! - bary[c]! || st[a]!.order - st[c]!.order);
      col.forEach((k, i) => {
        pos[k] = (i + 0.5) / col.length;
      });
    });
    const head = n.depth === 0 ? 0 : HEAD, pad = n.depth === 0 ? 0 : PAD;
    const cw = cols.map((col) => Math.max(...col.map((k) => box[k]!.w)));
    const chs = cols.map((col) => col.reduce((a, k) => a + box[k]!.h, 0) + GAPY * (col.length - 1));
    const innerH = Math.max(...chs);
    let x = pad;
    cols.forEach((col, ci) => {
      let y = head + pad + (innerH - chs[ci]!) / 2;
      for (const k of col) {
        b.rel[k] = { x: x + (cw[ci]! - box[k]!.w) / 2, y };
        y += box[k]!.h + GAPY;
      }
      x += cw[ci]! + (n.depth === 0 ? GAPX * 1.6 : GAPX);
    });
    b.w = x - (n.depth === 0 ? GAPX * 1.6 : GAPX) + pad;
    b.h = head + pad * 2 + innerH;
  }
  place(root);
  (function abs(id: string, ox: number, oy: number): void {
    const b = box[id]!;
    b.x = ox;
    b.y = oy;
    for (const k of b.kids) abs(k, ox + b.rel[k]!.x, oy + b.rel[k]!.y);
  })(root, 0, 0);

  const drawn = Object.keys(box).filter((id) => id !== root).map((id) => box[id]!);
  let minX = 0, minY = 0, maxX = box[root]!.w, maxY = box[root]!.h;
  function grow(x: number, y: number): void {
    minX = Math.min(minX, x);
    maxX = Math.max(maxX, x);
    minY = Math.min(minY, y);
    maxY = Math.max(maxY, y);
  }
  let above = 0, below = 0;
  for (const e of edges) {
    const a = box[e.s]!, b = box[e.t]!;
    let p0: Pt, c1: Pt, c2: Pt, p3: Pt;
    const rev = merged[e.t + '>' + e.s];
    if (e.fromParent) {
      const fx = b.x + b.w / 2 - 14;
      p0 = [fx, a.y + HEAD - 6];
      p3 = [fx, b.y];
      c1 = p0;
      c2 = p3;
    } else if (b.x >= a.x + a.w - 1 || a.x >= b.x + b.w - 1) {
      const fwd = b.x >= a.x + a.w - 1;
      const lo = fwd ? a.x + a.w : b.x + b.w, hi = fwd ? b.x : a.x;
      const obst = drawn.filter((o) => o !== a && o !== b && !isAnc(o.id, a.id) && !isAnc(o.id, b.id) && o.x >= lo - 1 && o.x + o.w <= hi + 1);
      if (obst.length) {
        for (const o of drawn) if (isAnc(o.id, a.id) !== isAnc(o.id, b.id)) obst.push(o);
        if (fwd) {
          const top = Math.min(...obst.map((o) => o.y)) - 16 - above;
          above += 13;
          p0 = [a.x + a.w / 2 + 10, a.y];
          p3 = [b.x + b.w / 2 - 10, b.y];
          const Y = (top - (p0[1] + p3[1]) / 8) / 0.75;
          c1 = [p0[0], Y];
          c2 = [p3[0], Y];
        } else {
          const bot = Math.max(...obst.map((o) => o.y + o.h)) + 16 + below;
          below += 13;
          p0 = [a.x + a.w / 2 - 10, a.y + a.h];
          p3 = [b.x + b.w / 2 + 10, b.y + b.h];
          const Y2 = (bot - (p0[1] + p3[1]) / 8) / 0.75;
          c1 = [p0[0], Y2];
          c2 = [p3[0], Y2];
        }
      } else if (fwd) {
        const off = rev ? -5 : 0;
        p0 = [a.x + a.w, a.y + a.h / 2 + off];
        p3 = [b.x, b.y + b.h / 2 + off];
        const dx = p3[0] - p0[0];
        c1 = [p0[0] + dx * 0.5, p0[1]];
        c2 = [p3[0] - dx * 0.5, p3[1]];
      } else {
        const off2 = rev ? 5 : 0;
        p0 = [a.x, a.y + a.h / 2 + off2];
        p3 = [b.x + b.w, b.y + b.h / 2 + off2];
        const dx2 = p0[0] - p3[0], bulge = 10 + Math.abs(p0[1] - p3[1]) * 0.1 + dx2 * 0.12;
        c1 = [p0[0] - dx2 * 0.35, p0[1] + bulge];
        c2 = [p3[0] + dx2 * 0.35, p3[1] + bulge];
      }
    } else if (b.y >= a.y + a.h) {
      p0 = [a.x + a.w / 2 + 8, a.y + a.h];
      p3 = [b.x + b.w / 2 + 8, b.y];
      c1 = p0;
      c2 = p3;
    } else {
      p0 = [a.x + a.w / 2 - 8, a.y];
      p3 = [b.x + b.w / 2 - 8, b.y + b.h];
      c1 = p0;
      c2 = p3;
    }
    e.d = 'M' + p0[0].toFixed(1) + ',' + p0[1].toFixed(1) + ' C' + c1[0].toFixed(1) + ',' + c1[1].toFixed(1) + ' ' + c2[0].toFixed(1) + ',' + c2[1].toFixed(1) + ' ' + p3[0].toFixed(1) + ',' + p3[1].toFixed(1);
    e.lx = (p0[0] + 3 * c1[0] + 3 * c2[0] + p3[0]) / 8;
    e.ly = (p0[1] + 3 * c1[1] + 3 * c2[1] + p3[1]) / 8;
    if (e.fromParent) {
      e.lx = p0[0] + 4;
      e.ly = (p0[1] + p3[1]) / 2 + 4;
    }
    const names: string[] = [];
    for (const x of e.items) if (names.indexOf(x.ev) < 0) names.push(x.ev);
    e.label = names[0] + (names.length > 1 ? ' +' + (names.length - 1) : '');
    e.title = e.s.split('.').pop() + ' → ' + e.t.split('.').pop() + ':\n' + e.items.map((x) => '  ' + x.ev + (x.guard ? '  [' + x.guard + ']' : '')).join('\n');
    grow(p0[0], p0[1]);
    grow(p3[0], p3[1]);
    grow(e.lx - 50, e.ly - 10);
    grow(e.lx + 50, e.ly + 6);
    grow(p0[0], (p0[1] + 3 * c1[1]) / 4);
    grow(p3[0], (p3[1] + 3 * c2[1]) / 4);
  }
  // Nudge edge labels off the state boxes and off each other: the candidate spot with the least overlap wins.
  const placed: Rect[] = [];
  function overlap(r: Rect, o: Rect): number {
    const w = Math.min(r.x + r.w, o.x + o.w) - Math.max(r.x, o.x), hh = Math.min(r.y + r.h, o.y + o.h) - Math.max(r.y, o.y);
    return w > 0 && hh > 0 ? w * hh : 0;
  }
  function cost(r: Rect): number {
    let c = 0;
    for (const b of drawn) if (b.leaf) c += 10 * overlap(r, b);
    for (const p of placed) c += 4 * overlap(r, p);
    return c;
  }
  const tries: Pt[] = [[0, 0]];
  for (const dy of [11, 22, 33, 44]) tries.push([0, -dy], [0, dy]);
  for (const dx of [24, 44]) for (const dy of [0, -11, 11]) tries.push([-dx, dy], [dx, dy]);
  for (const e of edges) {
    const w = e.label.length * 5.8 + 6;
    let best: Pt | null = null, bestCost = Infinity;
    for (let i = 0; i < tries.length && bestCost > 0; i++) {
      const t = tries[i]!;
      const r: Rect = { x: (e.fromParent ? e.lx : e.lx - w / 2) + t[0], y: e.ly + t[1] - 7, w, h: 13 };
      const c = cost(r) + Math.abs(t[0]) * 0.5 + Math.abs(t[1]) * 0.5;
      if (c < bestCost) {
        bestCost = c;
        best = t;
      }
    }
    if (!best) throw new Error('inspector page: no place for the label of ' + e.key);
    e.lx += best[0];
    e.ly += best[1];
    const px = e.fromParent ? e.lx : e.lx - w / 2;
    placed.push({ x: px, y: e.ly - 7, w, h: 13 });
    grow(px, e.ly - 9);
    grow(px + w, e.ly + 7);
  }
  return {
    st, rootId: root, box, drawn, edges, vis, isAnc,
    view: [minX - 8, minY - 8, maxX - minX + 16, maxY - minY + 16],
  };
}
