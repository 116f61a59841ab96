/**
 * The inspector page's stylesheet and markup. They stay plain template strings (no script in
 * them); the page's behaviour is the TypeScript in ./client/, bundled by ./bundle.ts.
 */

export const CSS = String.raw`
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

export const BODY = String.raw`
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

/** The whole document around the page script (`script` is inlined as is; see bundle.ts). */
export function pageDocument(nonce: string, script: string): string {
  return `<!doctype html>
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
<script nonce="${nonce}">${script}</script>
</body>
</html>
`;
}
