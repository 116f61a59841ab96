/**
 * The inspector page: one HTML document with its CSS and script inline, so nothing is fetched
 * from anywhere but the pool's own /events stream. The script draws everything itself (SVG),
 * including each worker's state machine, laid out from the machine description the server
 * sends (src/inspector/machineGraph.ts), never from a hand-drawn copy.
 *
 * The page source avoids backticks and dollar-brace sequences so that it can live in these
 * template strings unchanged.
 */

const CSS = String.raw`
:root {
  --bg: #f4f6fa; --panel: #ffffff; --line: #e2e7ef; --line2: #cfd7e3; --text: #0f172a; --muted: #64748b; --faint: #94a3b8;
  --accent: #4f46e5; --ok: #16a34a; --warn: #d97706; --bad: #dc2626; --info: #2563eb;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
}
* { box-sizing: border-box; }
html, body { margin: 0; background: var(--bg); color: var(--text); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header.top { display: flex; align-items: center; gap: 14px; padding: 12px 22px; background: #0f172a; color: #e2e8f0; }
header.top h1 { font-size: 17px; margin: 0; font-weight: 650; letter-spacing: .2px; }
header.top h1 span { color: #a5b4fc; font-weight: 500; }
header.top .sub { color: #94a3b8; font-size: 13px; }
header.top .spacer { flex: 1; }
.pill { display: inline-flex; align-items: center; gap: 6px; padding: 3px 10px; border-radius: 999px; font-size: 12px; background: #1e293b; color: #cbd5e1; white-space: nowrap; }
.pill .dot { width: 8px; height: 8px; border-radius: 50%; background: var(--faint); }
.pill.live .dot { background: #22c55e; box-shadow: 0 0 0 3px rgba(34,197,94,.25); }
.pill.wait .dot { background: #f59e0b; }
.pill.down .dot { background: #ef4444; }
main { padding: 16px 22px 40px; display: grid; gap: 16px; grid-template-columns: minmax(300px, 380px) minmax(0, 1fr); max-width: 1800px; margin: 0 auto; }
.full { grid-column: 1 / -1; }
#treePanel { grid-row: span 2; }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(130px, 1fr)); gap: 12px; }
.kpi { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 10px 14px; }
.kpi .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .5px; }
.kpi .v { font-size: 24px; font-weight: 650; font-variant-numeric: tabular-nums; line-height: 1.2; margin-top: 2px; }
.kpi .v small { font-size: 13px; color: var(--muted); font-weight: 500; margin-left: 3px; }
.kpi .s { color: var(--muted); font-size: 12px; }
.kpi.bad .v { color: var(--bad); }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 12px; padding: 14px 16px; min-width: 0; }
.panel > h2 { font-size: 14px; margin: 0 0 2px; font-weight: 650; display: flex; align-items: baseline; gap: 8px; flex-wrap: wrap; }
.panel > h2 .h-meta { font-weight: 500; color: var(--muted); font-size: 13px; }
.panel > p.hint { margin: 0 0 10px; color: var(--muted); font-size: 12.5px; }
/* supervision tree */
ul.tree, ul.tree ul { list-style: none; margin: 0; padding: 0; }
ul.tree ul { margin-left: 11px; padding-left: 14px; border-left: 1px solid var(--line2); }
ul.tree li { position: relative; }
ul.tree ul > li::before { content: ""; position: absolute; left: -14px; top: 15px; width: 11px; border-top: 1px solid var(--line2); }
ul.tree ul > li:last-child::after { content: ""; position: absolute; left: -15px; top: 16px; bottom: 0; width: 3px; background: var(--panel); }
.tn { display: flex; align-items: center; gap: 7px; padding: 4px 6px; border-radius: 7px; min-height: 30px; flex-wrap: wrap; }
.tn b { font-weight: 620; }
.tn .role { color: var(--muted); font-size: 12px; }
.tn .meta { color: var(--muted); font-size: 12px; width: 100%; padding-left: 17px; margin-top: -3px; }
.tn .sdot { width: 10px; height: 10px; border-radius: 3px; flex: none; background: var(--faint); }
.tn.sup .sdot { border-radius: 50%; background: var(--accent); }
.tn.worker { cursor: pointer; }
.tn.worker:hover, .tn.worker.sel { background: #eef2ff; }
.tn .st { font-size: 12px; font-weight: 600; }
.tn .pid { color: var(--faint); font-size: 12px; font-family: var(--mono); margin-left: auto; }
.tn .tag, .card .tag { font-size: 10.5px; padding: 0 6px; border-radius: 4px; background: #f1f5f9; color: var(--muted); border: 1px solid var(--line); }
ul.wgrid { display: grid; grid-template-columns: repeat(auto-fill, minmax(112px, 1fr)); gap: 2px 6px; }
ul.wgrid > li::before, ul.wgrid > li::after { display: none; }
ul.wgrid .tn { min-height: 24px; padding: 2px 5px; font-size: 12.5px; }
ul.wgrid .pid, ul.wgrid .st, ul.wgrid .tag { display: none; }
ul.wgrid .tn { flex-wrap: nowrap; }
.tree-key { color: var(--muted); font-size: 12px; margin: 2px 0 4px; }
/* machine */
.machine-wrap { overflow-x: auto; }
svg.big { width: 100%; height: auto; display: block; min-width: 900px; max-height: 460px; }
svg .cont { fill: #f8fafc; stroke: #cbd5e1; stroke-width: 1.2; }
svg .cont.on { stroke: var(--sc, #4f46e5); stroke-width: 2; fill: #f5f7ff; }
svg .clabel { font: 600 12px system-ui, sans-serif; fill: #475569; }
svg .node { fill: #ffffff; stroke: #94a3b8; stroke-width: 1.2; transition: fill .15s; }
svg .node.on { fill: var(--sc, #4f46e5); stroke: var(--sc, #4f46e5); }
svg .nlabel { font: 500 12.5px system-ui, sans-serif; fill: #1e293b; pointer-events: none; }
svg .nlabel.on { fill: #fff; font-weight: 650; }
svg .sublabel { font: 500 10px system-ui, sans-serif; fill: rgba(255,255,255,.9); pointer-events: none; }
svg .edge { fill: none; stroke: #a3afc2; stroke-width: 1.2; }
svg .edge.always { stroke-dasharray: 4 3; }
svg .edge.hot { stroke: var(--accent); stroke-width: 2.4; }
svg .elabel { font: 10.5px system-ui, sans-serif; fill: #64748b; paint-order: stroke; stroke: #fff; stroke-width: 4px; stroke-linejoin: round; }
svg .elabel.hot { fill: var(--accent); font-weight: 650; }
svg.mini { width: 100%; height: 58px; display: block; margin: 6px 0 2px; }
svg.mini .cont { fill: #f8fafc; stroke: #d5dce6; stroke-width: 4; }
svg.mini .node { stroke: #cbd5e1; stroke-width: 4; fill: #eef2f7; }
svg.mini .node.on { stroke: var(--sc); fill: var(--sc); }
.legend { display: flex; flex-wrap: wrap; gap: 6px 16px; color: var(--muted); font-size: 12px; margin-top: 6px; align-items: center; }
.legend svg { vertical-align: middle; }
.legend .sw { display: inline-block; width: 12px; height: 12px; border-radius: 3px; vertical-align: -2px; margin-right: 4px; }
.hist { display: flex; flex-wrap: wrap; gap: 4px; margin-top: 8px; align-items: center; font-size: 12px; color: var(--muted); }
.chip { display: inline-flex; align-items: center; gap: 5px; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600; color: #fff; background: var(--faint); white-space: nowrap; }
.chip.light { background: #f1f5f9; color: #334155; font-weight: 500; border: 1px solid var(--line); }
.chip.light.last { border-color: #a5b4fc; background: #eef2ff; }
/* charts */
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(250px, 1fr)); gap: 16px; }
.chart h3 { margin: 0; font-size: 13px; font-weight: 650; display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; }
.chart h3 .lg { font-weight: 500; color: var(--muted); font-size: 12px; display: inline-flex; align-items: center; gap: 4px; }
.chart h3 .lg i { width: 10px; height: 3px; display: inline-block; border-radius: 2px; }
.chart h3 .lg b { color: var(--text); font-variant-numeric: tabular-nums; }
.chart svg { width: 100%; height: 150px; display: block; margin-top: 4px; }
.chart .grid line { stroke: #eef1f5; }
.chart .axis { font: 10.5px system-ui, sans-serif; fill: var(--faint); }
/* worker cards */
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 12px; }
.cards.compact { grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 10px; }
.cards.compact svg.mini { height: 40px; margin: 4px 0 0; }
.cards.compact .card { padding: 8px 10px 6px; }
.card { border: 1px solid var(--line); border-radius: 10px; padding: 10px 12px 8px; cursor: pointer; background: #fff; border-top: 4px solid var(--sc, var(--faint)); transition: box-shadow .15s; }
.card:hover { box-shadow: 0 2px 10px rgba(15,23,42,.08); }
.card.sel { box-shadow: 0 0 0 2px #a5b4fc; }
.card .ch { display: flex; align-items: center; gap: 6px; }
.card .wid { font-weight: 650; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; min-width: 0; }
.card .ch .tag, .card .badge { flex: none; }
.card .badge { margin-left: auto; }
.card dl { display: grid; grid-template-columns: repeat(5, 1fr); margin: 6px 0 0; gap: 2px; }
.card dl div { text-align: center; }
.card dt { color: var(--faint); font-size: 10.5px; text-transform: uppercase; letter-spacing: .3px; }
.card dd { margin: 0; font-weight: 600; font-variant-numeric: tabular-nums; font-size: 13px; }
.card dd.pid { font-family: var(--mono); font-size: 12px; font-weight: 500; }
.card dd.bad { color: var(--bad); }
/* sessions and log */
table.sess { width: 100%; border-collapse: collapse; font-size: 13px; }
table.sess th { text-align: left; color: var(--muted); font-weight: 600; font-size: 12px; border-bottom: 1px solid var(--line); padding: 4px 6px; }
table.sess td { border-bottom: 1px solid #f1f4f8; padding: 5px 6px; vertical-align: top; }
table.sess td.sid { font-family: var(--mono); font-size: 12.5px; }
.scroll { max-height: 420px; overflow: auto; }
.tabs { display: flex; gap: 4px; margin: 4px 0 8px; flex-wrap: wrap; }
.tabs button { font: inherit; font-size: 12.5px; border: 1px solid var(--line); background: #f8fafc; color: #334155; padding: 3px 10px; border-radius: 7px; cursor: pointer; }
.tabs button.on { background: var(--accent); border-color: var(--accent); color: #fff; }
ol.log { list-style: none; margin: 0; padding: 0; font-size: 13px; }
ol.log li { display: flex; gap: 8px; align-items: center; padding: 4px 4px; border-bottom: 1px solid #f1f4f8; flex-wrap: wrap; }
ol.log li time { color: var(--faint); font-family: var(--mono); font-size: 11.5px; flex: none; }
ol.log li .w { font-weight: 620; min-width: 76px; }
ol.log li .ev { color: var(--muted); font-family: var(--mono); font-size: 11.5px; }
ol.log li .arrow { color: var(--faint); }
ol.log li.restart { background: #fff7ed; }
ol.log li.escalation { background: #fef2f2; }
ol.log li .txt { color: #334155; }
ol.log li .data { color: var(--muted); font-family: var(--mono); font-size: 11.5px; word-break: break-all; flex-basis: 100%; padding-left: 92px; }
.empty { color: var(--faint); font-size: 13px; padding: 8px 2px; }
.banner { display: none; grid-column: 1 / -1; padding: 10px 14px; border-radius: 10px; background: #fef2f2; color: #991b1b; border: 1px solid #fecaca; }
.banner.show { display: block; }
@media (max-width: 900px) { main { grid-template-columns: minmax(0, 1fr); } }
`;

const BODY = String.raw`
<header class="top">
  <svg width="26" height="26" viewBox="0 0 26 26" aria-hidden="true"><circle cx="13" cy="5" r="3.2" fill="#a5b4fc"/><circle cx="5" cy="19" r="3.2" fill="#22c55e"/><circle cx="13" cy="19" r="3.2" fill="#22c55e"/><circle cx="21" cy="19" r="3.2" fill="#f59e0b"/><path d="M13 8v8M13 10l-7 7M13 10l7 7" stroke="#64748b" stroke-width="1.4" fill="none"/></svg>
  <h1>pyvisor <span>inspector</span></h1>
  <span class="sub" id="summary">connecting to the pool…</span>
  <span class="spacer"></span>
  <span class="pill" id="sanitized" title=""></span>
  <span class="pill wait" id="conn"><span class="dot"></span><span id="connText">connecting</span></span>
</header>
<main>
  <div class="banner" id="banner"></div>
  <section class="kpis full" id="kpis" aria-label="pool figures"></section>

  <section class="panel" id="treePanel">
    <h2>Supervision tree</h2>
    <p class="hint">Who restarts whom: the pool supervises the session pool, the worker supervisor and the monitor; the worker supervisor restarts crashed workers. Click a worker to see it in the state machine below.</p>
    <ul class="tree" id="tree"></ul>
  </section>

  <section class="panel">
    <h2>Workers <span class="h-meta" id="workersMeta"></span></h2>
    <p class="hint">One card per Python process slot: its state (the small map is the state machine below), process id and counters. A restart keeps the slot and changes the pid.</p>
    <div class="cards" id="cards"></div>
  </section>

  <section class="panel" id="loadPanel">
    <h2>Load <span class="h-meta">last 3 minutes, one point per second</span></h2>
    <div class="charts">
      <div class="chart"><h3>Throughput <span class="lg" id="lgRps"></span></h3><svg id="chRps"></svg></div>
      <div class="chart"><h3>Latency <span class="lg" id="lgLat"></span></h3><svg id="chLat"></svg></div>
      <div class="chart"><h3>Queue &amp; busy workers <span class="lg" id="lgQ"></span></h3><svg id="chQ"></svg></div>
    </div>
  </section>

  <section class="panel full" id="machinePanel">
    <h2>Worker state machine <span class="h-meta" id="machineTitle"></span></h2>
    <p class="hint">The machine every worker runs, drawn from its XState definition. The filled box is where the selected worker is now; blue arrows are the transition it took last.</p>
    <div class="machine-wrap" id="machine"></div>
    <div class="legend" id="legend"></div>
    <div class="hist" id="whist"></div>
  </section>

  <section class="panel">
    <h2>Sessions <span class="h-meta" id="sessMeta"></span></h2>
    <p class="hint">Each session's state lives in the Python workers that served it; the last one (bold) is preferred for its next call.</p>
    <div class="scroll" id="sessions"></div>
  </section>

  <section class="panel">
    <h2>Log <span class="h-meta" id="logMeta"></span></h2>
    <div class="tabs" id="tabs">
      <button data-tab="life" class="on">Lifecycle &amp; restarts</button>
      <button data-tab="all">All transitions</button>
      <button data-tab="raw">Actor events</button>
    </div>
    <div class="scroll"><ol class="log" id="log"></ol></div>
  </section>
</main>
`;

const SCRIPT = String.raw`
(function () {
  'use strict';
  var SVGNS = 'http://www.w3.org/2000/svg';
  var $ = function (id) { return document.getElementById(id); };
  function h(tag, cls, text) { var e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined && text !== null) e.textContent = String(text); return e; }
  function sv(tag, attrs) { var e = document.createElementNS(SVGNS, tag); if (attrs) for (var k in attrs) if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, attrs[k]); return e; }
  function esc(s) { return String(s === undefined || s === null ? '' : s).replace(/[&<>"']/g, function (c) { return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]; }); }

  var COLORS = { healthy: '#16a34a', busy: '#2563eb', settled: '#2563eb', checking: '#0891b2', afterCheck: '#0891b2', interrupting: '#ea580c',
    initializing: '#d97706', restarting: '#d97706', boot: '#d97706', recycling: '#7c3aed', stopping: '#64748b', stopped: '#475569',
    unhealthy: '#dc2626', idle: '#94a3b8', removed: '#94a3b8' };
  function colorOf(name) {
    if (COLORS[name]) return COLORS[name];
    var x = 0; for (var i = 0; i < String(name).length; i++) x = (x * 31 + String(name).charCodeAt(i)) >>> 0;
    return 'hsl(' + (x % 360) + ',55%,45%)';
  }
  function natural(a, b) { return String(a).localeCompare(String(b), undefined, { numeric: true }); }
  function fmtMs(x) { if (x === null || x === undefined) return '–'; if (x < 1) return x.toFixed(2); if (x < 10) return x.toFixed(1); return String(Math.round(x)); }
  function fmtNum(x) { if (x === null || x === undefined) return '–'; if (x >= 100) return String(Math.round(x)); if (x >= 10) return x.toFixed(1); return (Math.round(x * 10) / 10).toString(); }
  function fmtTime(t) { var d = new Date(t); function p(n, w) { n = String(n); while (n.length < (w || 2)) n = '0' + n; return n; } return p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds()) + '.' + p(d.getMilliseconds(), 3); }
  function fmtDur(ms) { if (ms === null || ms === undefined) return '?'; if (ms % 60000 === 0 && ms >= 60000) return (ms / 60000) + ' min'; if (ms % 1000 === 0) return (ms / 1000) + ' s'; return ms + ' ms'; }

  var S = {
    machine: null, L: null, options: {}, sanitize: true,
    snap: null, workers: [], paths: {}, prevPaths: {}, lastEvent: {}, history: {},
    selected: null, log: [], raw: [], chart: [], routineDropped: 0,
    tab: 'life', closed: false, dirty: {}, views: {}, bigView: null
  };
  window.__pyvisor = S;

  // ------------------------------------------------------------------------------------------
  // Layout of a state machine, from its description: compound states are containers, their
  // children are laid out in columns by distance from the initial state (breadth-first), and
  // directions of edges decide how they are routed. Depth is capped at 2; deeper states fold
  // into their parent (and show as a sub-label when current).
  // ------------------------------------------------------------------------------------------
  var MAXD = 2, NODE_H = 30, GAPX = 74, GAPY = 22, PAD = 16, HEAD = 28, CHARW = 7.1;

  function buildLayout(m) {
    var st = {}, rootId = null;
    m.states.forEach(function (s) { st[s.id] = { id: s.id, key: s.key, parent: s.parent, depth: s.depth, initial: s.initial, order: s.order, kids: [] }; if (!s.parent) rootId = s.id; });
    m.states.forEach(function (s) { if (s.parent) st[s.parent].kids.push(s.id); });
    Object.keys(st).forEach(function (id) { st[id].kids.sort(function (a, b) { return st[a].order - st[b].order; }); });
    function vis(id) { var s = st[id]; while (s && s.depth > MAXD) s = st[s.parent]; return s ? s.id : id; }
    function enter(id) { var s = st[id]; while (s && s.depth < MAXD && s.initial && s.kids.length) s = st[s.initial]; return s ? s.id : id; }
    function isAnc(a, b) { var s = st[b]; while (s && s.parent) { if (s.parent === a) return true; s = st[s.parent]; } return false; }
    function childOf(c, id) { var s = st[id]; while (s && s.parent !== c) s = st[s.parent]; return s ? s.id : null; }

    var raw = [];
    m.transitions.forEach(function (t) {
      if (!st[t.source] || !st[t.target]) return;
      var s = vis(t.source), d = vis(enter(t.target));
      if (s === d) return;
      raw.push({ s: s, t: d, ev: t.event, kind: t.kind, guard: t.guard });
    });
    var has = {}; raw.forEach(function (e) { has[e.s + '>' + e.t] = true; });
    var merged = {}, edges = [];
    raw.forEach(function (e) {
      // A state's transition that its container also has (e.g. "process died" from any live
      // state) is drawn once, from the container's border.
      var src = e.s, a = st[e.s].parent;
      while (a && st[a].depth >= 1) { if (!isAnc(a, e.t) && has[a + '>' + e.t]) src = a; a = st[a].parent; }
      var key = src + '>' + e.t;
      var g = merged[key];
      if (!g) { g = merged[key] = { key: key, s: src, t: e.t, items: [], fromParent: isAnc(src, e.t), always: true }; edges.push(g); }
      if (!g.items.some(function (x) { return x.ev === e.ev && x.guard === e.guard; })) g.items.push(e);
      if (e.kind !== 'always') g.always = false;
    });

    var box = {};
    function place(id) {
      var n = st[id], kids = n.depth < MAXD ? n.kids : [];
      var b = box[id] = { id: id, key: n.key, depth: n.depth, x: 0, y: 0, w: 0, h: 0, leaf: !kids.length, rel: {}, kids: kids };
      if (!kids.length) { b.w = Math.max(84, Math.round(n.key.length * CHARW + 26)); b.h = NODE_H; return; }
      kids.forEach(place);
      var succ = {}; kids.forEach(function (k) { succ[k] = []; });
      raw.forEach(function (e) { var p = childOf(id, e.s), q = childOf(id, e.t); if (p && q && p !== q && succ[p].indexOf(q) < 0) succ[p].push(q); });
      var start = n.initial && kids.indexOf(n.initial) >= 0 ? n.initial : kids[0];
      var rank = {}; rank[start] = 0; var queue = [start];
      while (queue.length) { var u = queue.shift(); succ[u].forEach(function (v) { if (rank[v] === undefined) { rank[v] = rank[u] + 1; queue.push(v); } }); }
      var maxR = 0; kids.forEach(function (k) { if (rank[k] !== undefined) maxR = Math.max(maxR, rank[k]); });
      kids.forEach(function (k) { if (rank[k] === undefined) rank[k] = maxR + 1; });
      // Two states joined by a transition never share a column: the later-declared one moves right.
      for (var guard = 0, moved = true; moved && guard < kids.length * kids.length; guard++) {
        moved = false;
        kids.forEach(function (u) { succ[u].forEach(function (v) {
          if (rank[u] !== rank[v]) return;
          var later = st[u].order > st[v].order ? u : v; rank[later]++; moved = true;
        }); });
      }
      var cols = []; kids.forEach(function (k) { (cols[rank[k]] = cols[rank[k]] || []).push(k); });
      cols = cols.filter(Boolean);
      var pos = {};
      cols.forEach(function (col, ci) {
        var bary = {};
        col.forEach(function (k) {
          var ps = []; kids.forEach(function (p) { if (pos[p] !== undefined && succ[p].indexOf(k) >= 0) ps.push(pos[p]); });
          bary[k] = ps.length ? ps.reduce(function (a, c) { return a + c; }, 0) / ps.length : 0.5 + st[k].order / 1000;
        });
        if (ci > 0) col.sort(function (a, c) { return bary[a] - bary[c] || st[a].order - st[c].order; });
        col.forEach(function (k, i) { pos[k] = (i + 0.5) / col.length; });
      });
      var head = n.depth === 0 ? 0 : HEAD, pad = n.depth === 0 ? 0 : PAD;
      var cw = cols.map(function (col) { return Math.max.apply(null, col.map(function (k) { return box[k].w; })); });
      var chs = cols.map(function (col) { return col.reduce(function (a, k) { return a + box[k].h; }, 0) + GAPY * (col.length - 1); });
      var innerH = Math.max.apply(null, chs);
      var x = pad;
      cols.forEach(function (col, ci) {
        var y = head + pad + (innerH - chs[ci]) / 2;
        col.forEach(function (k) { b.rel[k] = { x: x + (cw[ci] - box[k].w) / 2, y: y }; y += box[k].h + GAPY; });
        x += cw[ci] + (n.depth === 0 ? GAPX * 1.6 : GAPX);
      });
      b.w = x - (n.depth === 0 ? GAPX * 1.6 : GAPX) + pad;
      b.h = head + pad * 2 + innerH;
    }
    place(rootId);
    (function abs(id, ox, oy) { var b = box[id]; b.x = ox; b.y = oy; b.kids.forEach(function (k) { abs(k, ox + b.rel[k].x, oy + b.rel[k].y); }); })(rootId, 0, 0);

    var drawn = Object.keys(box).filter(function (id) { return id !== rootId; }).map(function (id) { return box[id]; });
    var minX = 0, minY = 0, maxX = box[rootId].w, maxY = box[rootId].h;
    function grow(x, y) { minX = Math.min(minX, x); maxX = Math.max(maxX, x); minY = Math.min(minY, y); maxY = Math.max(maxY, y); }
    var above = 0, below = 0;
    edges.forEach(function (e) {
      var a = box[e.s], b = box[e.t], p0, c1, c2, p3;
      var rev = merged[e.t + '>' + e.s];
      if (e.fromParent) {
        var fx = b.x + b.w / 2 - 14;
        p0 = [fx, a.y + HEAD - 6]; p3 = [fx, b.y]; c1 = p0; c2 = p3;
      } else if (b.x >= a.x + a.w - 1 || a.x >= b.x + b.w - 1) {
        var fwd = b.x >= a.x + a.w - 1;
        var lo = fwd ? a.x + a.w : b.x + b.w, hi = fwd ? b.x : a.x;
        var obst = drawn.filter(function (o) { return o !== a && o !== b && !isAnc(o.id, a.id) && !isAnc(o.id, b.id) && o.x >= lo - 1 && o.x + o.w <= hi + 1; });
        if (obst.length) {
          drawn.forEach(function (o) { if (isAnc(o.id, a.id) !== isAnc(o.id, b.id)) obst.push(o); });
          if (fwd) {
            var top = Math.min.apply(null, obst.map(function (o) { return o.y; })) - 16 - above; above += 13;
            p0 = [a.x + a.w / 2 + 10, a.y]; p3 = [b.x + b.w / 2 - 10, b.y];
            var Y = (top - (p0[1] + p3[1]) / 8) / 0.75; c1 = [p0[0], Y]; c2 = [p3[0], Y];
          } else {
            var bot = Math.max.apply(null, obst.map(function (o) { return o.y + o.h; })) + 16 + below; below += 13;
            p0 = [a.x + a.w / 2 - 10, a.y + a.h]; p3 = [b.x + b.w / 2 + 10, b.y + b.h];
            var Y2 = (bot - (p0[1] + p3[1]) / 8) / 0.75; c1 = [p0[0], Y2]; c2 = [p3[0], Y2];
          }
        } else if (fwd) {
          var off = rev ? -5 : 0;
          p0 = [a.x + a.w, a.y + a.h / 2 + off]; p3 = [b.x, b.y + b.h / 2 + off];
          var dx = p3[0] - p0[0]; c1 = [p0[0] + dx * 0.5, p0[1]]; c2 = [p3[0] - dx * 0.5, p3[1]];
        } else {
          var off2 = rev ? 5 : 0;
          p0 = [a.x, a.y + a.h / 2 + off2]; p3 = [b.x + b.w, b.y + b.h / 2 + off2];
          var dx2 = p0[0] - p3[0], bulge = 10 + Math.abs(p0[1] - p3[1]) * 0.1 + dx2 * 0.12;
          c1 = [p0[0] - dx2 * 0.35, p0[1] + bulge]; c2 = [p3[0] + dx2 * 0.35, p3[1] + bulge];
        }
      } else if (b.y >= a.y + a.h) {
        p0 = [a.x + a.w / 2 + 8, a.y + a.h]; p3 = [b.x + b.w / 2 + 8, b.y]; c1 = p0; c2 = p3;
      } else {
        p0 = [a.x + a.w / 2 - 8, a.y]; p3 = [b.x + b.w / 2 - 8, b.y + b.h]; c1 = p0; c2 = p3;
      }
      e.d = 'M' + p0[0].toFixed(1) + ',' + p0[1].toFixed(1) + ' C' + c1[0].toFixed(1) + ',' + c1[1].toFixed(1) + ' ' + c2[0].toFixed(1) + ',' + c2[1].toFixed(1) + ' ' + p3[0].toFixed(1) + ',' + p3[1].toFixed(1);
      e.lx = (p0[0] + 3 * c1[0] + 3 * c2[0] + p3[0]) / 8; e.ly = (p0[1] + 3 * c1[1] + 3 * c2[1] + p3[1]) / 8;
      if (e.fromParent) { e.lx = p0[0] + 4; e.ly = (p0[1] + p3[1]) / 2 + 4; }
      var names = []; e.items.forEach(function (x) { if (names.indexOf(x.ev) < 0) names.push(x.ev); });
      e.label = names[0] + (names.length > 1 ? ' +' + (names.length - 1) : '');
      e.title = e.s.split('.').pop() + ' → ' + e.t.split('.').pop() + ':\n' + e.items.map(function (x) { return '  ' + x.ev + (x.guard ? '  [' + x.guard + ']' : ''); }).join('\n');
      grow(p0[0], p0[1]); grow(p3[0], p3[1]); grow(e.lx - 50, e.ly - 10); grow(e.lx + 50, e.ly + 6);
      grow(p0[0], (p0[1] + 3 * c1[1]) / 4); grow(p3[0], (p3[1] + 3 * c2[1]) / 4);
    });
    // Nudge edge labels off the state boxes and off each other: the candidate spot with the least overlap wins.
    var placed = [];
    function overlap(r, o) { var w = Math.min(r.x + r.w, o.x + o.w) - Math.max(r.x, o.x), hh = Math.min(r.y + r.h, o.y + o.h) - Math.max(r.y, o.y); return w > 0 && hh > 0 ? w * hh : 0; }
    function cost(r) {
      var c = 0;
      drawn.forEach(function (b) { if (b.leaf) c += 10 * overlap(r, b); });
      placed.forEach(function (p) { c += 4 * overlap(r, p); });
      return c;
    }
    var tries = [[0, 0]];
    [11, 22, 33, 44].forEach(function (dy) { tries.push([0, -dy], [0, dy]); });
    [24, 44].forEach(function (dx) { [0, -11, 11].forEach(function (dy) { tries.push([-dx, dy], [dx, dy]); }); });
    edges.forEach(function (e) {
      var w = e.label.length * 5.8 + 6, best = null, bestCost = Infinity;
      for (var i = 0; i < tries.length && bestCost > 0; i++) {
        var r = { x: (e.fromParent ? e.lx : e.lx - w / 2) + tries[i][0], y: e.ly + tries[i][1] - 7, w: w, h: 13 };
        var c = cost(r) + Math.abs(tries[i][0]) * 0.5 + Math.abs(tries[i][1]) * 0.5;
        if (c < bestCost) { bestCost = c; best = tries[i]; }
      }
      e.lx += best[0]; e.ly += best[1];
      var px = e.fromParent ? e.lx : e.lx - w / 2;
      placed.push({ x: px, y: e.ly - 7, w: w, h: 13 }); grow(px, e.ly - 9); grow(px + w, e.ly + 7);
    });
    return { st: st, rootId: rootId, box: box, drawn: drawn, edges: edges, vis: vis, isAnc: isAnc,
      view: [minX - 8, minY - 8, maxX - minX + 16, maxY - minY + 16] };
  }

  function stateIdOf(path) { return S.L ? S.L.rootId + '.' + path : path; }

  function drawMachine(L, mini) {
    var v = L.view;
    var svg = sv('svg', { viewBox: v.join(' '), 'class': mini ? 'mini' : 'big', preserveAspectRatio: 'xMidYMid meet', role: 'img' });
    var view = { svg: svg, nodes: {}, labels: {}, subs: {}, edges: {}, elabels: {}, cur: null, hot: null };
    if (!mini) {
      var defs = sv('defs');
      [['arr', '#a3afc2'], ['arrHot', '#4f46e5']].forEach(function (m) {
        var mk = sv('marker', { id: m[0], viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
        mk.appendChild(sv('path', { d: 'M0,0 L10,5 L0,10 z', fill: m[1] })); defs.appendChild(mk);
      });
      svg.appendChild(defs);
    }
    var conts = L.drawn.filter(function (b) { return !b.leaf; }).sort(function (a, b) { return a.depth - b.depth; });
    conts.forEach(function (b) {
      var r = sv('rect', { x: b.x, y: b.y, width: b.w, height: b.h, rx: mini ? 14 : 12, 'class': 'cont' });
      view.nodes[b.id] = r; svg.appendChild(r);
      if (!mini) { var t = sv('text', { x: b.x + 12, y: b.y + 17, 'class': 'clabel' }); t.textContent = b.key; svg.appendChild(t); }
    });
    if (!mini) {
      L.edges.forEach(function (e) {
        var p = sv('path', { d: e.d, 'class': 'edge' + (e.always ? ' always' : ''), 'marker-end': 'url(#arr)' });
        var title = sv('title'); title.textContent = e.title; p.appendChild(title);
        view.edges[e.key] = p; svg.appendChild(p);
      });
    }
    if (!mini) {
      L.edges.forEach(function (e) {
        var t = sv('text', { x: e.lx, y: e.ly + 3.5, 'text-anchor': e.fromParent ? 'start' : 'middle', 'class': 'elabel' }); t.textContent = e.label;
        var title = sv('title'); title.textContent = e.title; t.appendChild(title);
        view.elabels[e.key] = t; svg.appendChild(t);
      });
    }
    L.drawn.filter(function (b) { return b.leaf; }).forEach(function (b) {
      var r = sv('rect', { x: b.x, y: b.y, width: b.w, height: b.h, rx: mini ? 10 : 8, 'class': 'node' });
      var tt = sv('title'); tt.textContent = b.id.split('.').slice(1).join('.'); r.appendChild(tt);
      view.nodes[b.id] = r; svg.appendChild(r);
      if (!mini) {
        var t = sv('text', { x: b.x + b.w / 2, y: b.y + b.h / 2 + 4.5, 'text-anchor': 'middle', 'class': 'nlabel' }); t.textContent = b.key;
        view.labels[b.id] = t; svg.appendChild(t);
      }
    });
    return view;
  }

  /** Highlight path (e.g. live.restarting.awaitReady) in a drawn machine; prev lights the transition taken. */
  function showState(view, path, prev, name, ev) {
    var L = S.L; if (!L || !view) return;
    if (view.path === path) return;
    view.path = path;
    var full = stateIdOf(path), id = L.st[full] ? L.vis(full) : null;
    var color = colorOf(name || (id ? L.st[id].key : 'idle'));
    Object.keys(view.nodes).forEach(function (k) {
      var on = id !== null && (k === id || L.isAnc(k, id));
      var el = view.nodes[k];
      if (on) { el.classList.add('on'); el.style.setProperty('--sc', color); } else el.classList.remove('on');
      if (view.labels[k]) view.labels[k].classList.toggle('on', k === id);
    });
    Object.keys(view.subs).forEach(function (k) { view.subs[k].remove(); }); view.subs = {};
    if (!view.svg.classList.contains('mini') && id && full !== id && L.st[full]) {
      var b = L.box[id];
      view.labels[id].setAttribute('y', b.y + b.h / 2 + 1);
      var sub = sv('text', { x: b.x + b.w / 2, y: b.y + b.h / 2 + 11, 'text-anchor': 'middle', 'class': 'sublabel' });
      sub.textContent = full.slice(id.length + 1); view.subs[id] = sub; view.svg.appendChild(sub);
    } else if (id && view.labels[id]) {
      var b2 = L.box[id]; view.labels[id].setAttribute('y', b2.y + b2.h / 2 + 4.5);
    }
    if (prev && id && Object.keys(view.edges).length) {
      var pf = stateIdOf(prev), pid = L.st[pf] ? L.vis(pf) : null;
      if (pid && pid !== id) {
        clearHot(view);
        var hot = hotChain(L, pid, id, ev);
        hot.forEach(function (k) { view.edges[k].classList.add('hot'); view.edges[k].setAttribute('marker-end', 'url(#arrHot)'); view.elabels[k].classList.add('hot'); view.edges[k].parentNode.appendChild(view.edges[k]); view.elabels[k].parentNode.appendChild(view.elabels[k]); });
        view.hot = hot;
      }
    }
  }

  function clearHot(view) {
    if (view.hot) view.hot.forEach(function (k) { view.edges[k].classList.remove('hot'); view.edges[k].setAttribute('marker-end', 'url(#arr)'); view.elabels[k].classList.remove('hot'); });
    view.hot = null;
  }

  /** The arrows of the step from a to b: the one taken on event ev, then any automatic (always) ones. */
  function hotChain(L, a, b, ev) {
    var name = ev && ev.indexOf('xstate.after.') === 0 ? 'after ' + ev.split('.')[2] : ev;
    function from(x) { return L.edges.filter(function (e) { return e.s === x || L.isAnc(e.s, x); }); }
    function reaches(e, x) { return e.t === x || L.isAnc(e.t, x); }
    var first = from(a).filter(function (e) { return !name || e.items.some(function (i) { return i.ev === name; }); });
    for (var i = 0; i < first.length; i++) {
      if (reaches(first[i], b)) return [first[i].key];
      var chain = [first[i].key], at = first[i].t;
      for (var step = 0; step < 4; step++) {
        var next = from(at).filter(function (e) { return e.always; });
        var direct = next.filter(function (e) { return reaches(e, b); })[0];
        if (direct) { chain.push(direct.key); return chain; }
        if (next.length !== 1) break;
        chain.push(next[0].key); at = next[0].t;
      }
    }
    var plain = from(a).filter(function (e) { return reaches(e, b); });
    return plain.length === 1 ? [plain[0].key] : [];
  }

  function legend() {
    var lg = $('legend'); lg.innerHTML = '';
    var items = ['healthy', 'busy', 'checking', 'initializing', 'restarting', 'recycling', 'unhealthy', 'stopped'];
    items.forEach(function (n) { if (!S.L || !Object.keys(S.L.st).some(function (id) { return S.L.st[id].key === n; })) return; var s = h('span'); var sw = h('span', 'sw'); sw.style.background = colorOf(n); s.appendChild(sw); s.appendChild(document.createTextNode(n)); lg.appendChild(s); });
    lg.appendChild(h('span', null, '— event   - - - automatic (always)   “after …” = a timeout   an arrow from a box’s border applies to every state inside it; hover an arrow for its events and guards'));
  }

  // ------------------------------------------------------------------------------------------
  // Rendering
  // ------------------------------------------------------------------------------------------
  function mark(what) { S.dirty[what] = true; if (!S.raf) S.raf = requestAnimationFrame(render); }
  function render() {
    S.raf = 0; var d = S.dirty; S.dirty = {};
    try {
      if (d.kpis) renderKpis();
      if (d.tree) renderTree();
      if (d.cards) renderCards();
      if (d.machine) renderSelected();
      if (d.charts) renderCharts();
      if (d.sessions) renderSessions();
      if (d.log) renderLog();
    } catch (err) { if (window.console) console.error(err); }
  }

  function workerList() {
    return S.workers.slice().sort(function (a, b) { return (a.overflow - b.overflow) || natural(a.id, b.id); });
  }
  function stateOf(w) { var p = S.paths[w.id]; return p ? nameOfPath(p) : w.state; }
  function nameOfPath(p) { var parts = String(p).split('.'); return parts.length > 1 && parts[0] === 'live' ? parts[1] : parts[0]; }

  function renderKpis() {
    var st = (S.snap && S.snap.stats) || {}, pt = S.chart.length ? S.chart[S.chart.length - 1] : {};
    var ws = S.workers, healthy = 0; ws.forEach(function (w) { var s = stateOf(w); if (s === 'healthy' || s === 'busy' || s === 'checking' || s === 'afterCheck') healthy++; });
    var k = [
      ['Workers', healthy + '<small>/ ' + ws.length + ' up</small>', (st.overflowWorkers ? st.overflowWorkers + ' overflow · ' : '') + 'pool size ' + (st.poolSize !== undefined ? st.poolSize : '–'), healthy < ws.length],
      ['Busy', esc(st.busyWorkers !== undefined ? st.busyWorkers : '–'), 'utilization ' + Math.round((st.utilization || 0) * 100) + '%'],
      ['Queue', esc(st.queueLength !== undefined ? st.queueLength : '–'), 'callers waiting for a worker', st.queueLength > 0],
      ['Throughput', fmtNum(pt.rps) + '<small>req/s</small>', esc(st.totalCommands !== undefined ? st.totalCommands : 0) + ' commands in all'],
      ['Latency p50', fmtMs(pt.p50 !== undefined && pt.p50 !== null ? pt.p50 : (st.latencyMs || {}).p50) + '<small>ms</small>', 'p99 ' + fmtMs(pt.p99 !== undefined && pt.p99 !== null ? pt.p99 : (st.latencyMs || {}).p99) + ' ms'],
      ['Sessions', esc(st.activeSessions !== undefined ? st.activeSessions : '–'), 'with state in Python'],
      ['Restarts', esc(st.restarts !== undefined ? st.restarts : 0), 'worker processes replaced', st.restarts > 0],
      ['Errors', esc(st.totalErrors !== undefined ? st.totalErrors : 0), fmtNum(pt.errors || 0) + ' / s now', pt.errors > 0]
    ];
    $('kpis').innerHTML = k.map(function (x) { return '<div class="kpi' + (x[3] && (x[0] === 'Errors' || x[0] === 'Workers') ? ' bad' : '') + '"><div class="k">' + x[0] + '</div><div class="v">' + x[1] + '</div><div class="s">' + x[2] + '</div></div>'; }).join('');
  }

  function renderTree() {
    var tree = S.snap && S.snap.tree; if (!tree) { $('tree').innerHTML = '<li class="empty">waiting for the pool…</li>'; return; }
    var kids = tree.children || [];
    var sp = kids.filter(function (c) { return c.id === 'sessionPool'; })[0] || {};
    var sup = kids.filter(function (c) { return c.id === 'workers'; })[0] || {};
    var mon = kids.filter(function (c) { return c.id === 'monitor'; })[0] || {};
    var info = {}; S.workers.forEach(function (w) { info[w.id] = w; });
    var children = (sup.children || []).slice().sort(function (a, b) { return ((a.restart === 'temporary') - (b.restart === 'temporary')) || natural(a.id, b.id); });
    var grid = children.length > 8;
    function status(s) { return s && s !== 'active' ? ' <span class="tag">' + esc(s) + '</span>' : ''; }
    var html = '<li><div class="tn sup"><span class="sdot"></span><b>pool</b><span class="role">PoolSupervisor · one_for_one</span>' + status(tree.status) + '</div><ul>';
    html += '<li><div class="tn"><span class="sdot" style="background:#0891b2"></span><b>sessionPool</b><span class="role">SessionPool</span>' + status(sp.status) +
      '<span class="meta">queue ' + esc(sp.queue) + ' · ' + esc(sp.sessions) + ' session' + (sp.sessions === 1 ? '' : 's') + (sp.affinity ? ' · affinity ' + esc(sp.affinity) : '') + '</span></div></li>';
    html += '<li><div class="tn sup"><span class="sdot"></span><b>workers</b><span class="role">WorkerSupervisor · ' + esc(sup.strategy || '') + '</span>' + status(sup.status) +
      '<span class="meta">restarts in window: ' + esc(sup.recentRestarts) + ' of max ' + esc(sup.maxRestarts) + ' per ' + fmtDur(sup.periodMs) + (sup.maxOverflow ? ' · up to ' + esc(sup.maxOverflow) + ' overflow' : '') + '</span></div>';
    if (grid) html += '<div class="tree-key">' + children.length + ' workers; colour = state, hover for details</div>';
    html += '<ul class="' + (grid ? 'wgrid' : '') + '">';
    children.forEach(function (c) {
      var w = info[c.id], s = w ? stateOf(w) : (c.state || c.status);
      html += '<li><div class="tn worker' + (S.selected === c.id ? ' sel' : '') + '" data-tree-worker="' + esc(c.id) + '" title="' + esc(c.id + ': ' + s + (c.pid ? ', pid ' + c.pid : '') + ', child status ' + c.status + ', restart ' + c.restart) + '">' +
        '<span class="sdot" style="background:' + colorOf(s) + '"></span><b>' + esc(c.id) + '</b>' + (c.restart === 'temporary' ? '<span class="tag">overflow</span>' : '') +
        '<span class="st" style="color:' + colorOf(s) + '">' + esc(s) + '</span><span class="pid">' + (c.pid ? esc(c.pid) : '') + '</span></div></li>';
    });
    if (!children.length) html += '<li><div class="tn"><span class="role">no workers yet (lazy pool)</span></div></li>';
    html += '</ul></li>';
    html += '<li><div class="tn"><span class="sdot" style="background:#7c3aed"></span><b>monitor</b><span class="role">PoolMonitor</span>' + status(mon.status) +
      '<span class="meta">' + (mon.intervalMs ? 'health checks every ' + fmtDur(mon.intervalMs) + ' · ' + esc(mon.ticks) + ' so far' : 'health checks off') + '</span></div></li>';
    html += '</ul></li>';
    $('tree').innerHTML = html;
  }

  function renderCards() {
    var box = $('cards'), list = workerList(), seen = {};
    if (!S.L) return;
    box.classList.toggle('compact', list.length > 8);
    list.forEach(function (w, i) {
      seen[w.id] = true;
      var v = S.views[w.id];
      if (!v) {
        var card = h('div', 'card'); card.setAttribute('data-worker', w.id);
        var ch = h('div', 'ch'); var wid = h('span', 'wid', w.id); ch.appendChild(wid);
        if (w.overflow && w.id.indexOf('overflow') < 0) ch.appendChild(h('span', 'tag', 'overflow'));
        var badge = h('span', 'chip badge', ''); ch.appendChild(badge); card.appendChild(ch);
        var mv = drawMachine(S.L, true); card.appendChild(mv.svg);
        var dl = h('dl'), dd = {};
        [['pid', 'pid'], ['requests', 'req'], ['errors', 'err'], ['restarts', 'restarts'], ['sessions', 'sess']].forEach(function (f) { var d = h('div'); d.appendChild(h('dt', null, f[1])); dd[f[0]] = h('dd', f[0] === 'pid' ? 'pid' : null, ''); d.appendChild(dd[f[0]]); dl.appendChild(d); });
        card.appendChild(dl);
        card.addEventListener('click', function () { select(w.id); });
        v = S.views[w.id] = { card: card, badge: badge, mini: mv, dd: dd };
      }
      if (box.children[i] !== v.card) box.insertBefore(v.card, box.children[i] || null);
      var s = stateOf(w);
      v.card.setAttribute('data-state', s); v.card.setAttribute('data-pid', w.pid || '');
      v.card.style.setProperty('--sc', colorOf(s)); v.card.classList.toggle('sel', S.selected === w.id);
      v.badge.textContent = s; v.badge.style.background = colorOf(s);
      v.dd.pid.textContent = w.pid || '–'; v.dd.requests.textContent = w.requests; v.dd.errors.textContent = w.errors; v.dd.errors.className = w.errors ? 'bad' : '';
      v.dd.restarts.textContent = w.restarts; v.dd.sessions.textContent = w.sessions;
      showState(v.mini, S.paths[w.id] || w.state, null, s);
    });
    Object.keys(S.views).forEach(function (id) { if (!seen[id]) { S.views[id].card.remove(); delete S.views[id]; } });
    $('workersMeta').textContent = list.length + ' worker' + (list.length === 1 ? '' : 's');
  }

  function select(id) { S.selected = id; mark('machine'); mark('cards'); mark('tree'); }

  function renderSelected() {
    if (!S.L) return;
    var list = workerList();
    if (!S.selected || !list.some(function (w) { return w.id === S.selected; })) S.selected = list.length ? list[0].id : null;
    if (!S.bigView) { S.bigView = drawMachine(S.L, false); $('machine').innerHTML = ''; $('machine').appendChild(S.bigView.svg); legend(); }
    var w = list.filter(function (x) { return x.id === S.selected; })[0];
    if (!w) { $('machineTitle').textContent = '— no worker yet'; return; }
    var s = stateOf(w);
    if (S.bigView.worker !== w.id) { clearHot(S.bigView); S.bigView.path = null; S.bigView.worker = w.id; }
    $('machineTitle').innerHTML = '<b>' + esc(w.id) + '</b> · <span style="color:' + colorOf(s) + ';font-weight:650">' + esc(s) + '</span>' + (w.pid ? ' · pid ' + esc(w.pid) : '') + ' · ' + esc(w.requests) + ' requests · ' + esc(w.restarts) + ' restarts';
    showState(S.bigView, S.paths[w.id] || w.state, S.prevPaths[w.id], s, S.lastEvent[w.id]);
    var hist = (S.history[w.id] || []).slice(-14), hh = $('whist');
    hh.innerHTML = '';
    if (!hist.length) hh.appendChild(h('span', null, 'Lifecycle of ' + w.id + ': up since the inspector started (no crash, restart or recycle seen).'));
    if (hist.length) {
      hh.appendChild(h('span', null, 'Lifecycle of ' + w.id + ':'));
      hist.forEach(function (x, i) {
        var c = h('span', 'chip light' + (i === hist.length - 1 ? ' last' : ''), x.to); c.title = fmtTime(x.t) + (x.e ? ' on ' + x.e : '');
        var dot = h('span'); dot.style.cssText = 'width:8px;height:8px;border-radius:50%;background:' + colorOf(x.to); c.insertBefore(dot, c.firstChild);
        hh.appendChild(c); if (i < hist.length - 1) hh.appendChild(h('span', null, '→'));
      });
    }
  }

  function niceMax(v) { if (!(v > 0)) return 1; var p = Math.pow(10, Math.floor(Math.log10(v))), n = v / p; return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * p; }
  function chart(svg, series, unit) {
    var W = Math.max(200, svg.clientWidth || 400), H = 150, L0 = 36, R0 = 8, T0 = 8, B0 = 20;
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H); svg.innerHTML = '';
    var now = S.chart.length ? S.chart[S.chart.length - 1].t : Date.now(), span = 180000;
    var max = 0; S.chart.forEach(function (p) { series.forEach(function (s) { var v = p[s.key]; if (v !== null && v !== undefined && v > max) max = v; }); });
    max = niceMax(max * 1.1);
    var lead = max / Math.pow(10, Math.floor(Math.log10(max))), div = lead === 5 ? 5 : 4;
    var g = sv('g', { 'class': 'grid' });
    for (var i = 0; i <= div; i++) {
      var y = T0 + (H - T0 - B0) * i / div; g.appendChild(sv('line', { x1: L0, x2: W - R0, y1: y, y2: y }));
      var t = sv('text', { x: L0 - 5, y: y + 3.5, 'text-anchor': 'end', 'class': 'axis' }); t.textContent = fmtNum(max * (div - i) / div); g.appendChild(t);
    }
    [0, 60, 120, 180].forEach(function (s) { var x = W - R0 - (W - L0 - R0) * s / 180; var t = sv('text', { x: x, y: H - 5, 'text-anchor': s === 0 ? 'end' : 'middle', 'class': 'axis' }); t.textContent = s === 0 ? 'now' : '-' + s + ' s'; g.appendChild(t); });
    svg.appendChild(g);
    function X(t) { return W - R0 - (W - L0 - R0) * (now - t) / span; }
    function Y(v) { return T0 + (H - T0 - B0) * (1 - v / max); }
    series.forEach(function (s) {
      var d = '', pen = false;
      S.chart.forEach(function (p) {
        if (now - p.t > span) return;
        var v = p[s.key]; if (v === null || v === undefined) { pen = false; return; }
        d += (pen ? 'L' : 'M') + X(p.t).toFixed(1) + ',' + Y(v).toFixed(1) + ' '; pen = true;
      });
      if (s.area && d) {
        var pts = S.chart.filter(function (p) { return now - p.t <= span && p[s.key] !== null && p[s.key] !== undefined; });
        if (pts.length > 1) svg.appendChild(sv('path', { d: d + 'L' + X(pts[pts.length - 1].t).toFixed(1) + ',' + Y(0) + ' L' + X(pts[0].t).toFixed(1) + ',' + Y(0) + ' Z', fill: s.color, opacity: 0.1 }));
      }
      svg.appendChild(sv('path', { d: d, fill: 'none', stroke: s.color, 'stroke-width': s.width || 1.8, 'stroke-linejoin': 'round', 'stroke-dasharray': s.dash || null }));
    });
    if (!S.chart.length) { var e = sv('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', 'class': 'axis' }); e.textContent = 'no data yet'; svg.appendChild(e); }
  }
  function legendHtml(items) { return items.map(function (x) { return '<span class="lg"><i style="background:' + x[1] + '"></i>' + esc(x[0]) + ' <b>' + x[2] + '</b></span>'; }).join(' '); }
  function renderCharts() {
    var pt = S.chart.length ? S.chart[S.chart.length - 1] : {};
    chart($('chRps'), [{ key: 'rps', color: '#4f46e5', area: true }, { key: 'errors', color: '#dc2626', width: 1.4 }]);
    $('lgRps').innerHTML = legendHtml([['req/s', '#4f46e5', fmtNum(pt.rps)], ['errors/s', '#dc2626', fmtNum(pt.errors)]]);
    chart($('chLat'), [{ key: 'p50', color: '#0891b2', area: true }, { key: 'p99', color: '#ea580c', dash: '5 3' }]);
    $('lgLat').innerHTML = legendHtml([['p50', '#0891b2', fmtMs(pt.p50) + ' ms'], ['p99', '#ea580c', fmtMs(pt.p99) + ' ms']]);
    chart($('chQ'), [{ key: 'queue', color: '#d97706', area: true }, { key: 'busy', color: '#2563eb', width: 1.4 }]);
    $('lgQ').innerHTML = legendHtml([['queue', '#d97706', pt.queue !== undefined ? pt.queue : '–'], ['busy', '#2563eb', pt.busy !== undefined ? pt.busy : '–']]);
  }

  function renderSessions() {
    var snap = S.snap || {}, list = (snap.sessions || []).slice().reverse();
    $('sessMeta').textContent = (snap.sessionCount || 0) + ' active' + (snap.sessionCount > list.length ? ' (newest ' + list.length + ' shown)' : '');
    if (!list.length) { $('sessions').innerHTML = '<div class="empty">No sessions. Calls with a sessionId open one; endSession() closes it.</div>'; return; }
    var html = '<table class="sess"><thead><tr><th>session</th><th>workers holding its state</th><th>in flight</th></tr></thead><tbody>';
    list.forEach(function (s) {
      html += '<tr data-session="' + esc(s.id) + '"><td class="sid">' + esc(s.id) + '</td><td>' + s.workers.map(function (w) { return w === s.lastWorker ? '<b>' + esc(w) + '</b>' : esc(w); }).join(', ') +
        (s.lost ? ' <span class="tag" style="color:#dc2626">lost ' + esc(s.lost) + '</span>' : '') + '</td><td>' + esc(s.active) + '</td></tr>';
    });
    $('sessions').innerHTML = html + '</tbody></table>';
  }

  function entryHtml(x) {
    var attrs = ' data-seq="' + x.seq + '" data-kind="' + x.kind + '" data-worker="' + esc(x.w) + '"' + (x.to ? ' data-to="' + esc(x.to) + '"' : '');
    var head = '<li class="' + x.kind + '"' + attrs + '><time>' + fmtTime(x.t) + '</time><span class="w">' + esc(x.w) + '</span>';
    if (x.kind === 'life' || x.kind === 'work' || x.kind === 'sub') {
      var sub = x.kind === 'sub' ? nameOfPathTail(x.path) : '';
      return head + '<span class="chip" style="background:' + colorOf(x.from) + '">' + esc(x.from) + '</span><span class="arrow">→</span><span class="chip" style="background:' + colorOf(x.to) + '">' + esc(x.to) + (sub ? ' · ' + esc(sub) : '') + '</span>' +
        (x.e ? '<span class="ev">on ' + esc(x.e) + '</span>' : '') + (x.pid ? '<span class="ev">pid ' + esc(x.pid) + '</span>' : '') + '</li>';
    }
    var icon = x.kind === 'restart' ? '↻ ' : x.kind === 'escalation' ? '⚠ ' : '';
    return head + '<span class="txt">' + icon + esc(x.text || '') + '</span></li>';
  }
  function nameOfPathTail(p) { var parts = String(p || '').split('.'); return parts[parts.length - 1]; }
  function renderLog() {
    var el = $('log'), html = '', n = 0;
    if (S.tab === 'raw') {
      for (var i = S.raw.length - 1; i >= 0 && n < 250; i--, n++) {
        var r = S.raw[i];
        html += '<li data-kind="event"><time>' + fmtTime(r.t) + '</time><span class="w">' + esc(r.to) + '</span><span class="chip light">' + esc(r.type) + '</span>' +
          (r.from ? '<span class="ev">from ' + esc(r.from) + '</span>' : '') + (r.data ? '<span class="data">' + esc(JSON.stringify(r.data)) + '</span>' : '') + '</li>';
      }
      $('logMeta').textContent = 'events sent to actors (a sample under load)' + (S.sanitize ? ' · payloads hidden' : '');
    } else {
      for (var j = S.log.length - 1; j >= 0 && n < 300; j--) {
        var x = S.log[j];
        if (S.tab === 'life' && (x.kind === 'work' || x.kind === 'sub' || x.kind === 'session')) continue;
        html += entryHtml(x); n++;
      }
      $('logMeta').textContent = S.tab === 'life' ? 'state changes that matter: starts, crashes, restarts, stops' : 'every worker transition' + (S.routineDropped ? ' (' + S.routineDropped + ' routine ones skipped under load)' : '');
    }
    el.innerHTML = html || '<li class="empty">nothing yet</li>';
  }

  // ------------------------------------------------------------------------------------------
  // Data
  // ------------------------------------------------------------------------------------------
  function pushLog(x) {
    S.log.push(x); if (S.log.length > 1500) S.log.splice(0, S.log.length - 1200);
    if (x.to && x.kind === 'life') {
      var hist = S.history[x.w] || (S.history[x.w] = []);
      if (!hist.length && x.from) hist.push({ t: x.t, to: x.from });
      hist.push({ t: x.t, to: x.to, e: x.e }); if (hist.length > 60) hist.shift();
    }
  }
  function applySnap(snap) {
    S.snap = snap; S.workers = snap.workers || []; S.closed = !!snap.closed;
    var paths = snap.paths || {};
    Object.keys(paths).forEach(function (id) { if (S.paths[id] !== paths[id]) { S.prevPaths[id] = S.paths[id]; S.paths[id] = paths[id]; S.lastEvent[id] = null; } });
    var b = $('banner');
    if (S.closed) { b.textContent = 'The pool has stopped. The page shows its last state.'; b.classList.add('show'); } else b.classList.remove('show');
    setConn(S.closed ? 'down' : 'live');
    ['kpis', 'tree', 'cards', 'machine', 'sessions'].forEach(mark);
  }
  function onHello(msg) {
    S.machine = msg.machine; S.options = msg.options || {}; S.sanitize = msg.sanitize;
    if (!S.L) { S.L = buildLayout(msg.machine); }
    S.log = []; S.history = {}; S.raw = [];
    (msg.log || []).forEach(pushLog);
    S.chart = (msg.chart || []).slice();
    var o = S.options;
    $('summary').textContent = o.poolSize + ' workers · ' + o.strategy + ' (max ' + o.maxRestarts + ' restarts per ' + o.maxSeconds + ' s) · affinity ' + o.affinity;
    var sz = $('sanitized');
    sz.textContent = msg.sanitize ? 'payloads hidden' : 'payloads shown';
    sz.title = msg.sanitize ? 'Event payloads (command arguments, results, errors, session state) are reduced to types, ids and command names. Serve with sanitize: false to see them.' : 'sanitize: false — command arguments and results are visible on this page.';
    applySnap(msg.snap);
    ['log', 'charts'].forEach(mark);
  }
  function onBatch(msg) {
    (msg.transitions || []).forEach(function (x) {
      if (x.to && x.path) { S.prevPaths[x.w] = S.paths[x.w]; S.paths[x.w] = x.path; S.lastEvent[x.w] = x.e; }
      pushLog(x);
    });
    S.routineDropped += msg.routineDropped || 0;
    (msg.events || []).forEach(function (e) { S.raw.push(e); }); if (S.raw.length > 400) S.raw.splice(0, S.raw.length - 300);
    if ((msg.transitions || []).length) ['cards', 'machine', 'tree', 'kpis'].forEach(mark);
    if ((msg.transitions || []).length || (S.tab === 'raw' && (msg.events || []).length)) mark('log');
  }
  function onSnap(snap) {
    applySnap(snap);
    if (snap.point) { S.chart.push(snap.point); if (S.chart.length > 180) S.chart.shift(); }
    mark('charts');
  }
  function setConn(state) {
    var c = $('conn'); c.className = 'pill ' + (state === 'live' ? 'live' : state === 'down' ? 'down' : 'wait');
    $('connText').textContent = state === 'live' ? 'live' : state === 'down' ? (S.closed ? 'pool stopped' : 'disconnected') : 'reconnecting…';
    document.body.setAttribute('data-connection', state);
  }

  $('tabs').addEventListener('click', function (ev) {
    var b = ev.target.closest('button'); if (!b) return;
    S.tab = b.getAttribute('data-tab');
    Array.prototype.forEach.call($('tabs').children, function (x) { x.classList.toggle('on', x === b); });
    mark('log');
  });
  $('tree').addEventListener('click', function (ev) { var n = ev.target.closest('[data-tree-worker]'); if (n) select(n.getAttribute('data-tree-worker')); });
  window.addEventListener('resize', function () { mark('charts'); });

  function handler(fn) { return function (ev) { try { fn(JSON.parse(ev.data)); } catch (err) { if (window.console) console.error(err); } }; }
  var es = new EventSource('events' + location.search);
  es.addEventListener('hello', handler(onHello));
  es.addEventListener('batch', handler(onBatch));
  es.addEventListener('snap', handler(onSnap));
  es.onopen = function () { setConn('live'); };
  es.onerror = function () { setConn(es.readyState === 2 ? 'down' : 'wait'); };
})();
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>pyvisor inspector</title>
<link rel="icon" href="data:,">
<style>${CSS}</style>
</head>
<body>
${BODY}
<script nonce="__NONCE__">${SCRIPT}</script>
</body>
</html>
`;

/** The page, with the nonce its Content-Security-Policy allows for the inline script. */
export function renderPage(nonce: string): string {
  return PAGE.replace('__NONCE__', nonce);
}

/** The inline script alone (for syntax checks). */
export const PAGE_SCRIPT = SCRIPT;
