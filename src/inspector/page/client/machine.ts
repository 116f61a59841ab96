/**
 * The worker state machine drawn in SVG from its layout: the big diagram (with arrows and
 * labels) and the small map on each card, and the highlighting of where a worker is and of
 * the transition it took last.
 */
import { sv } from './dom.js';
import type { Layout } from './layout.js';
import { colorOf, FALLBACK_STATE } from './states.js';
import { S } from './store.js';

/** A drawn machine and the elements that highlighting changes. */
export interface MachineView {
  svg: SVGSVGElement;
  /** Containers and leaf boxes, by state id. */
  nodes: Record<string, SVGRectElement>;
  labels: Record<string, SVGTextElement>;
  /** The sub-state label inside the current box (a state below the depth cap). */
  subs: Record<string, SVGTextElement>;
  edges: Record<string, SVGPathElement>;
  elabels: Record<string, SVGTextElement>;
  /** Keys of the highlighted edges. */
  hot: string[] | null;
  /** The path shown now. */
  path?: string | null;
  /** The worker the view shows (the big diagram). */
  worker?: string;
}

function stateIdOf(path: string): string {
  return S.L ? S.L.rootId + '.' + path : path;
}

export function drawMachine(L: Layout, mini: boolean): MachineView {
  const v = L.view;
  const svg = sv('svg', { viewBox: v.join(' '), class: mini ? 'mini' : 'big', preserveAspectRatio: 'xMidYMid meet', role: 'img' });
  const view: MachineView = { svg, nodes: {}, labels: {}, subs: {}, edges: {}, elabels: {}, hot: null };
  if (!mini) {
    const defs = sv('defs');
    for (const [id, fill] of [['arr', '#a3afc2'], ['arrHot', '#4f46e5']] as const) {
      const mk = sv('marker', { id, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
      mk.appendChild(sv('path', { d: 'M0,0 L10,5 L0,10 z', fill }));
      defs.appendChild(mk);
    }
    svg.appendChild(defs);
  }
  const conts = L.drawn.filter((b) => !b.leaf).sort((a, b) => a.depth - b.depth);
  for (const b of conts) {
    const r = sv('rect', { x: b.x, y: b.y, width: b.w, height: b.h, rx: mini ? 14 : 12, class: 'cont' });
    view.nodes[b.id] = r;
    svg.appendChild(r);
    if (!mini) {
      const t = sv('text', { x: b.x + 12, y: b.y + 17, class: 'clabel' });
      t.textContent = b.key;
      svg.appendChild(t);
    }
  }
  if (!mini) {
    for (const e of L.edges) {
      const p = sv('path', { d: e.d, class: 'edge' + (e.always ? ' always' : ''), 'marker-end': 'url(#arr)' });
      const title = sv('title');
      title.textContent = e.title;
      p.appendChild(title);
      view.edges[e.key] = p;
      svg.appendChild(p);
    }
    for (const e of L.edges) {
      const t = sv('text', { x: e.lx, y: e.ly + 3.5, 'text-anchor': e.fromParent ? 'start' : 'middle', class: 'elabel' });
      t.textContent = e.label;
      const title = sv('title');
      title.textContent = e.title;
      t.appendChild(title);
      view.elabels[e.key] = t;
      svg.appendChild(t);
    }
  }
  for (const b of L.drawn.filter((x) => x.leaf)) {
    const r = sv('rect', { x: b.x, y: b.y, width: b.w, height: b.h, rx: mini ? 10 : 8, class: 'node' });
    const tt = sv('title');
    tt.textContent = b.id.split('.').slice(1).join('.');
    r.appendChild(tt);
    view.nodes[b.id] = r;
    svg.appendChild(r);
    if (!mini) {
      const t = sv('text', { x: b.x + b.w / 2, y: b.y + b.h / 2 + 4.5, 'text-anchor': 'middle', class: 'nlabel' });
      t.textContent = b.key;
      view.labels[b.id] = t;
      svg.appendChild(t);
    }
  }
  return view;
}

/**
 * Highlight `path` (e.g. live.restarting.awaitReady) in a drawn machine, in the colour of
 * state `name`; `prev` (the path before) lights the transition taken, on event `ev`.
 */
export function showState(view: MachineView | null, path: string, prev: string | null | undefined, name: string, ev?: string | null): void {
  const L = S.L;
  if (!L || !view) return;
  if (view.path === path) return;
  view.path = path;
  const full = stateIdOf(path), id = L.st[full] ? L.vis(full) : null;
  const color = colorOf(name || (id ? L.st[id]!.key : FALLBACK_STATE));
  for (const k of Object.keys(view.nodes)) {
    const on = id !== null && (k === id || L.isAnc(k, id));
    const el = view.nodes[k]!;
    if (on) {
      el.classList.add('on');
      el.style.setProperty('--sc', color);
    } else el.classList.remove('on');
    const label = view.labels[k];
    if (label) label.classList.toggle('on', k === id);
  }
  for (const k of Object.keys(view.subs)) view.subs[k]!.remove();
  view.subs = {};
  const label = id ? view.labels[id] : undefined;
  if (!view.svg.classList.contains('mini') && id && full !== id && L.st[full]) {
    const b = L.box[id]!;
    label!.setAttribute('y', String(b.y + b.h / 2 + 1));
    const sub = sv('text', { x: b.x + b.w / 2, y: b.y + b.h / 2 + 11, 'text-anchor': 'middle', class: 'sublabel' });
    sub.textContent = full.slice(id.length + 1);
    view.subs[id] = sub;
    view.svg.appendChild(sub);
  } else if (id && label) {
    const b2 = L.box[id]!;
    label.setAttribute('y', String(b2.y + b2.h / 2 + 4.5));
  }
  if (prev && id && Object.keys(view.edges).length) {
    const pf = stateIdOf(prev), pid = L.st[pf] ? L.vis(pf) : null;
    if (pid && pid !== id) {
      clearHot(view);
      const hot = hotChain(L, pid, id, ev);
      for (const k of hot) {
        const edge = view.edges[k]!, elabel = view.elabels[k]!;
        edge.classList.add('hot');
        edge.setAttribute('marker-end', 'url(#arrHot)');
        elabel.classList.add('hot');
        edge.parentNode!.appendChild(edge);
        elabel.parentNode!.appendChild(elabel);
      }
      view.hot = hot;
    }
  }
}

export function clearHot(view: MachineView): void {
  if (view.hot) {
    for (const k of view.hot) {
      view.edges[k]!.classList.remove('hot');
      view.edges[k]!.setAttribute('marker-end', 'url(#arr)');
      view.elabels[k]!.classList.remove('hot');
    }
  }
  view.hot = null;
}

/** The arrows of the step from a to b: the one taken on event ev, then any automatic (always) ones. */
function hotChain(L: Layout, a: string, b: string, ev: string | null | undefined): string[] {
  const name = ev && ev.indexOf('xstate.after.') === 0 ? 'after ' + ev.split('.')[2] : ev;
  const from = (x: string) => L.edges.filter((e) => e.s === x || L.isAnc(e.s, x));
  const reaches = (e: { t: string }, x: string) => e.t === x || L.isAnc(e.t, x);
  const first = from(a).filter((e) => !name || e.items.some((i) => i.ev === name));
  for (const f of first) {
    if (reaches(f, b)) return [f.key];
    const chain = [f.key];
    let at = f.t;
    for (let step = 0; step < 4; step++) {
      const next = from(at).filter((e) => e.always);
      const direct = next.filter((e) => reaches(e, b))[0];
      if (direct) {
        chain.push(direct.key);
        return chain;
      }
      if (next.length !== 1) break;
      chain.push(next[0]!.key);
      at = next[0]!.t;
    }
  }
  const plain = from(a).filter((e) => reaches(e, b));
  return plain.length === 1 ? [plain[0]!.key] : [];
}
