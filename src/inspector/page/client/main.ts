/**
 * The inspector page's script: wires the views to the page's state and the page to the pool's
 * /events stream (Server-Sent Events: `hello`, `batch`, `snap`). Bundled by
 * src/inspector/page/bundle.ts into one IIFE that the page inlines.
 */
import { renderCharts } from './charts.js';
import { onBatch, onHello, onSnap, setConn } from './data.js';
import { $ } from './dom.js';
import { mark, S, select, setRenderers, type Tab } from './store.js';
import { renderCards } from './views/cards.js';
import { renderKpis } from './views/kpis.js';
import { renderLog } from './views/log.js';
import { renderSelected } from './views/machinePanel.js';
import { renderSessions } from './views/sessions.js';
import { renderTree } from './views/tree.js';

setRenderers({
  kpis: renderKpis,
  tree: renderTree,
  cards: renderCards,
  machine: renderSelected,
  charts: renderCharts,
  sessions: renderSessions,
  log: renderLog,
});

$('tabs').addEventListener('click', (ev) => {
  const b = ev.target instanceof Element ? ev.target.closest('button') : null;
  if (!b) return;
  S.tab = b.getAttribute('data-tab') as Tab;
  for (const x of Array.from($('tabs').children)) x.classList.toggle('on', x === b);
  mark('log');
});
$('tree').addEventListener('click', (ev) => {
  const n = ev.target instanceof Element ? ev.target.closest('[data-tree-worker]') : null;
  if (n) select(n.getAttribute('data-tree-worker')!);
});
window.addEventListener('resize', () => mark('charts'));

/** A stream listener: the message's JSON to `fn`; an error is logged, never thrown at the stream. */
function handler<T>(fn: (msg: T) => void): (ev: MessageEvent<string>) => void {
  return (ev) => {
    try {
      fn(JSON.parse(ev.data) as T);
    } catch (err) {
      if (window.console) console.error(err);
    }
  };
}

const es = new EventSource('events' + location.search);
es.addEventListener('hello', handler(onHello));
es.addEventListener('batch', handler(onBatch));
es.addEventListener('snap', handler(onSnap));
es.onopen = () => setConn('live');
es.onerror = () => setConn(es.readyState === 2 ? 'down' : 'wait');
