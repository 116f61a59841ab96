/** The big machine diagram for the selected worker, its legend and the worker's lifecycle. */
import { $, esc, h } from '../dom.js';
import { fmtTime } from '../format.js';
import { clearHot, drawMachine, showState } from '../machine.js';
import { colorOf, LEGEND_STATES } from '../states.js';
import { S, stateOf, workerList } from '../store.js';

function legend(): void {
  const lg = $('legend');
  lg.innerHTML = '';
  for (const n of LEGEND_STATES) {
    const L = S.L;
    if (!L || !Object.keys(L.st).some((id) => L.st[id]!.key === n)) continue;
    const s = h('span');
    const sw = h('span', 'sw');
    sw.style.background = colorOf(n);
    s.appendChild(sw);
    s.appendChild(document.createTextNode(n));
    lg.appendChild(s);
  }
  lg.appendChild(h('span', null, '— event   - - - automatic (always)   “after …” = a timeout   an arrow from a box’s border applies to every state inside it; hover an arrow for its events and guards'));
}

export function renderSelected(): void {
  if (!S.L) return;
  const list = workerList();
  if (!S.selected || !list.some((w) => w.id === S.selected)) S.selected = list.length ? list[0]!.id : null;
  if (!S.bigView) {
    S.bigView = drawMachine(S.L, false);
    $('machine').innerHTML = '';
    $('machine').appendChild(S.bigView.svg);
    legend();
  }
  const big = S.bigView;
  const w = list.filter((x) => x.id === S.selected)[0];
  if (!w) {
    $('machineTitle').textContent = '— no worker yet';
    return;
  }
  const s = stateOf(w);
  if (big.worker !== w.id) {
    clearHot(big);
    big.path = null;
    big.worker = w.id;
  }
  $('machineTitle').innerHTML = '<b>' + esc(w.id) + '</b> · <span style="color:' + colorOf(s) + ';font-weight:650">' + esc(s) + '</span>' + (w.pid ? ' · pid ' + esc(w.pid) : '') + ' · ' + esc(w.requests) + ' requests · ' + esc(w.restarts) + ' restarts';
  showState(big, S.paths[w.id] || w.state, S.prevPaths[w.id], s, S.lastEvent[w.id]);
  const hist = (S.history[w.id] || []).slice(-14), hh = $('whist');
  hh.innerHTML = '';
  if (!hist.length) hh.appendChild(h('span', null, 'Lifecycle of ' + w.id + ': up since the inspector started (no crash, restart or recycle seen).'));
  if (hist.length) {
    hh.appendChild(h('span', null, 'Lifecycle of ' + w.id + ':'));
    hist.forEach((x, i) => {
      const c = h('span', 'chip light' + (i === hist.length - 1 ? ' last' : ''), x.to);
      c.title = fmtTime(x.t) + (x.e ? ' on ' + x.e : '');
      const dot = h('span');
      dot.style.cssText = 'width:8px;height:8px;border-radius:50%;background:' + colorOf(x.to);
      c.insertBefore(dot, c.firstChild);
      hh.appendChild(c);
      if (i < hist.length - 1) hh.appendChild(h('span', null, '→'));
    });
  }
}
