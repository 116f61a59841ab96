/** One card per worker: its state, a small map of the machine, its pid and counters. */
import { $, h } from '../dom.js';
import { drawMachine, showState } from '../machine.js';
import { colorOf } from '../states.js';
import { S, select, stateOf, workerList, type CardField } from '../store.js';

const FIELDS: ReadonlyArray<[CardField, string]> = [['pid', 'pid'], ['requests', 'req'], ['errors', 'err'], ['restarts', 'restarts'], ['sessions', 'sess'], ['inflight', 'in flight']];

export function renderCards(): void {
  const box = $('cards'), list = workerList(), seen: Record<string, boolean> = {};
  const L = S.L;
  if (!L) return;
  box.classList.toggle('compact', list.length > 8);
  list.forEach((w, i) => {
    seen[w.id] = true;
    let v = S.views[w.id];
    if (!v) {
      const card = h('div', 'card');
      card.setAttribute('data-worker', w.id);
      const ch = h('div', 'ch');
      const wid = h('span', 'wid', w.id);
      ch.appendChild(wid);
      if (w.overflow && w.id.indexOf('overflow') < 0) ch.appendChild(h('span', 'tag', 'overflow'));
      const badge = h('span', 'chip badge', '');
      ch.appendChild(badge);
      card.appendChild(ch);
      const mv = drawMachine(L, true);
      card.appendChild(mv.svg);
      const dl = h('dl'), dd = {} as Record<CardField, HTMLElement>;
      for (const [field, label] of FIELDS) {
        const d = h('div');
        d.appendChild(h('dt', null, label));
        dd[field] = h('dd', field === 'pid' ? 'pid' : null, '');
        d.appendChild(dd[field]);
        dl.appendChild(d);
      }
      card.appendChild(dl);
      card.addEventListener('click', () => select(w.id));
      v = S.views[w.id] = { card, badge, mini: mv, dd };
    }
    if (box.children[i] !== v.card) box.insertBefore(v.card, box.children[i] || null);
    const s = stateOf(w);
    v.card.setAttribute('data-state', s);
    v.card.setAttribute('data-pid', String(w.pid || ''));
    v.card.style.setProperty('--sc', colorOf(s));
    v.card.classList.toggle('sel', S.selected === w.id);
    v.badge.textContent = s;
    v.badge.style.background = colorOf(s);
    v.dd.pid.textContent = String(w.pid || '–');
    // In flight out of the worker's slots: "3/32" with workerConcurrency 32.
    v.dd.inflight.textContent = String(w.inflight ?? 0) + '/' + String(S.options.workerConcurrency ?? 1);
    v.dd.requests.textContent = String(w.requests);
    v.dd.errors.textContent = String(w.errors);
    v.dd.errors.className = w.errors ? 'bad' : '';
    v.dd.restarts.textContent = String(w.restarts);
    v.dd.sessions.textContent = String(w.sessions);
    showState(v.mini, S.paths[w.id] || w.state, null, s);
  });
  for (const id of Object.keys(S.views)) {
    if (!seen[id]) {
      S.views[id]!.card.remove();
      delete S.views[id];
    }
  }
  $('workersMeta').textContent = list.length + ' worker' + (list.length === 1 ? '' : 's');
}
