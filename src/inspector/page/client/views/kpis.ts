/** The figures across the top: workers up, busy, queue, throughput, latency, sessions, restarts, errors. */
import { $, esc } from '../dom.js';
import { fmtMs, fmtNum } from '../format.js';
import { isUp } from '../states.js';
import { S, stateOf } from '../store.js';
import type { ChartPoint, PoolStats } from '../types.js';

/** Label, value (HTML), subline (HTML), and whether it is bad news. */
type Kpi = [string, string, string, boolean?];

export function renderKpis(): void {
  const st: Partial<PoolStats> = (S.snap && S.snap.stats) || {};
  const pt: Partial<ChartPoint> = S.chart.length ? S.chart[S.chart.length - 1]! : {};
  const ws = S.workers;
  let healthy = 0;
  for (const w of ws) if (isUp(stateOf(w))) healthy++;
  const lat = st.latencyMs;
  const k: Kpi[] = [
    ['Workers', healthy + '<small>/ ' + ws.length + ' up</small>', (st.overflowWorkers ? st.overflowWorkers + ' overflow · ' : '') + 'pool size ' + (st.poolSize !== undefined ? st.poolSize : '–'), healthy < ws.length],
    ['Busy', esc(st.busyWorkers !== undefined ? st.busyWorkers : '–'), 'utilization ' + Math.round((st.utilization || 0) * 100) + '%'],
    ['Queue', esc(st.queueLength !== undefined ? st.queueLength : '–'), 'callers waiting for a worker', (st.queueLength ?? 0) > 0],
    ['Throughput', fmtNum(pt.rps) + '<small>req/s</small>', esc(st.totalCommands !== undefined ? st.totalCommands : 0) + ' commands in all'],
    ['Latency p50', fmtMs(pt.p50 !== undefined && pt.p50 !== null ? pt.p50 : lat?.p50) + '<small>ms</small>', 'p99 ' + fmtMs(pt.p99 !== undefined && pt.p99 !== null ? pt.p99 : lat?.p99) + ' ms'],
    ['Sessions', esc(st.activeSessions !== undefined ? st.activeSessions : '–'), 'with state in Python'],
    ['Restarts', esc(st.restarts !== undefined ? st.restarts : 0), 'worker processes replaced', (st.restarts ?? 0) > 0],
    ['Errors', esc(st.totalErrors !== undefined ? st.totalErrors : 0), fmtNum(pt.errors || 0) + ' / s now', (pt.errors ?? 0) > 0],
  ];
  $('kpis').innerHTML = k
    .map((x) => '<div class="kpi' + (x[3] && (x[0] === 'Errors' || x[0] === 'Workers') ? ' bad' : '') + '"><div class="k">' + x[0] + '</div><div class="v">' + x[1] + '</div><div class="s">' + x[2] + '</div></div>')
    .join('');
}
