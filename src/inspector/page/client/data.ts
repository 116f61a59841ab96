/** What the stream's messages do to the page's state, and the connection pill. */
import { $ } from './dom.js';
import { buildLayout } from './layout.js';
import { mark, S } from './store.js';
import type { Batch, Hello, LogEntry, Snap } from './types.js';

export type Connection = 'live' | 'down' | 'wait';

function pushLog(x: LogEntry): void {
  S.log.push(x);
  if (S.log.length > 1500) S.log.splice(0, S.log.length - 1200);
  if (x.to && x.kind === 'life') {
    const hist = S.history[x.w] || (S.history[x.w] = []);
    if (!hist.length && x.from) hist.push({ t: x.t, to: x.from });
    hist.push({ t: x.t, to: x.to, e: x.e });
    if (hist.length > 60) hist.shift();
  }
}

function applySnap(snap: Snap): void {
  S.snap = snap;
  S.workers = snap.workers || [];
  S.closed = !!snap.closed;
  const paths = snap.paths || {};
  for (const id of Object.keys(paths)) {
    if (S.paths[id] !== paths[id]) {
      S.prevPaths[id] = S.paths[id];
      S.paths[id] = paths[id]!;
      S.lastEvent[id] = null;
    }
  }
  const b = $('banner');
  if (S.closed) {
    b.textContent = 'The pool has stopped. The page shows its last state.';
    b.classList.add('show');
  } else b.classList.remove('show');
  setConn(S.closed ? 'down' : 'live');
  mark('kpis');
  mark('tree');
  mark('cards');
  mark('machine');
  mark('sessions');
}

export function onHello(msg: Hello): void {
  S.machine = msg.machine;
  S.options = msg.options || {};
  S.sanitize = msg.sanitize;
  if (!S.L) S.L = buildLayout(msg.machine);
  S.log = [];
  S.history = {};
  S.raw = [];
  for (const x of msg.log || []) pushLog(x);
  S.chart = (msg.chart || []).slice();
  const o = S.options;
  $('summary').textContent = o.cluster ? o.poolSize + ' workers · ' + o.strategy + ' · sessions placed by load' : o.poolSize + ' workers · ' + o.strategy + ' (max ' + o.maxRestarts + ' restarts per ' + o.maxSeconds + ' s) · affinity ' + o.affinity + ((o.workerConcurrency ?? 1) > 1 ? ' · ' + o.workerConcurrency + ' requests per worker' : '');
  const sz = $('sanitized');
  sz.textContent = msg.sanitize ? 'payloads hidden' : 'payloads shown';
  sz.title = msg.sanitize
    ? 'Event payloads (command arguments, results, errors, session state) are reduced to types, ids and command names. Serve with sanitize: false to see them.'
    : 'sanitize: false — command arguments and results are visible on this page.';
  applySnap(msg.snap);
  mark('log');
  mark('charts');
}

export function onBatch(msg: Batch): void {
  const transitions = msg.transitions || [], events = msg.events || [];
  for (const x of transitions) {
    if (x.to && x.path) {
      S.prevPaths[x.w] = S.paths[x.w];
      S.paths[x.w] = x.path;
      S.lastEvent[x.w] = x.e;
    }
    pushLog(x);
  }
  S.routineDropped += msg.routineDropped || 0;
  for (const e of events) S.raw.push(e);
  if (S.raw.length > 400) S.raw.splice(0, S.raw.length - 300);
  if (transitions.length) {
    mark('cards');
    mark('machine');
    mark('tree');
    mark('kpis');
  }
  if (transitions.length || (S.tab === 'raw' && events.length)) mark('log');
}

export function onSnap(snap: Snap): void {
  applySnap(snap);
  if (snap.point) {
    S.chart.push(snap.point);
    if (S.chart.length > 180) S.chart.shift();
  }
  mark('charts');
}

export function setConn(state: Connection): void {
  const c = $('conn');
  c.className = 'pill ' + (state === 'live' ? 'live' : state === 'down' ? 'down' : 'wait');
  $('connText').textContent = state === 'live' ? 'live' : state === 'down' ? (S.closed ? 'pool stopped' : 'disconnected') : 'reconnecting…';
  document.body.setAttribute('data-connection', state);
}
