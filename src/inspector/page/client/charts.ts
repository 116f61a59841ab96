/** The load charts: throughput, latency, queue and busy workers over the last 3 minutes. */
import { $, esc, sv } from './dom.js';
import { fmtMs, fmtNum } from './format.js';
import { S } from './store.js';
import type { ChartKey, ChartPoint } from './types.js';

interface Series {
  key: ChartKey;
  color: string;
  /** Fill the area under the line. */
  area?: boolean;
  width?: number;
  dash?: string;
}

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v))), n = v / p;
  return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * p;
}

function chart(svg: Element, series: Series[]): void {
  const W = Math.max(200, svg.clientWidth || 400), H = 150, L0 = 36, R0 = 8, T0 = 8, B0 = 20;
  svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
  svg.innerHTML = '';
  const now = S.chart.length ? S.chart[S.chart.length - 1]!.t : Date.now(), span = 180000;
  let max = 0;
  for (const p of S.chart) {
    for (const s of series) {
      const v = p[s.key];
      if (v !== null && v !== undefined && v > max) max = v;
    }
  }
  max = niceMax(max * 1.1);
  const lead = max / Math.pow(10, Math.floor(Math.log10(max))), div = lead === 5 ? 5 : 4;
  const g = sv('g', { class: 'grid' });
  for (let i = 0; i <= div; i++) {
    const y = T0 + ((H - T0 - B0) * i) / div;
    g.appendChild(sv('line', { x1: L0, x2: W - R0, y1: y, y2: y }));
    const t = sv('text', { x: L0 - 5, y: y + 3.5, 'text-anchor': 'end', class: 'axis' });
    t.textContent = fmtNum((max * (div - i)) / div);
    g.appendChild(t);
  }
  for (const s of [0, 60, 120, 180]) {
    const x = W - R0 - ((W - L0 - R0) * s) / 180;
    const t = sv('text', { x, y: H - 5, 'text-anchor': s === 0 ? 'end' : 'middle', class: 'axis' });
    t.textContent = s === 0 ? 'now' : '-' + s + ' s';
    g.appendChild(t);
  }
  svg.appendChild(g);
  const X = (t: number) => W - R0 - ((W - L0 - R0) * (now - t)) / span;
  const Y = (v: number) => T0 + (H - T0 - B0) * (1 - v / max);
  for (const s of series) {
    let d = '', pen = false;
    for (const p of S.chart) {
      if (now - p.t > span) continue;
      const v = p[s.key];
      if (v === null || v === undefined) {
        pen = false;
        continue;
      }
      d += (pen ? 'L' : 'M') + X(p.t).toFixed(1) + ',' + Y(v).toFixed(1) + ' ';
      pen = true;
    }
    if (s.area && d) {
      const pts = S.chart.filter((p) => now - p.t <= span && p[s.key] !== null && p[s.key] !== undefined);
      if (pts.length > 1) svg.appendChild(sv('path', { d: d + 'L' + X(pts[pts.length - 1]!.t).toFixed(1) + ',' + Y(0) + ' L' + X(pts[0]!.t).toFixed(1) + ',' + Y(0) + ' Z', fill: s.color, opacity: 0.1 }));
    }
    svg.appendChild(sv('path', { d, fill: 'none', stroke: s.color, 'stroke-width': s.width || 1.8, 'stroke-linejoin': 'round', 'stroke-dasharray': s.dash || null }));
  }
  if (!S.chart.length) {
    const e = sv('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'axis' });
    e.textContent = 'no data yet';
    svg.appendChild(e);
  }
}

/** Legend items: label, colour, current value. */
function legendHtml(items: Array<[string, string, string | number]>): string {
  return items.map((x) => '<span class="lg"><i style="background:' + x[1] + '"></i>' + esc(x[0]) + ' <b>' + x[2] + '</b></span>').join(' ');
}

export function renderCharts(): void {
  const pt: Partial<ChartPoint> = S.chart.length ? S.chart[S.chart.length - 1]! : {};
  chart($('chRps'), [{ key: 'rps', color: '#4f46e5', area: true }, { key: 'errors', color: '#dc2626', width: 1.4 }]);
  $('lgRps').innerHTML = legendHtml([['req/s', '#4f46e5', fmtNum(pt.rps)], ['errors/s', '#dc2626', fmtNum(pt.errors)]]);
  chart($('chLat'), [{ key: 'p50', color: '#0891b2', area: true }, { key: 'p99', color: '#ea580c', dash: '5 3' }]);
  $('lgLat').innerHTML = legendHtml([['p50', '#0891b2', fmtMs(pt.p50) + ' ms'], ['p99', '#ea580c', fmtMs(pt.p99) + ' ms']]);
  chart($('chQ'), [{ key: 'queue', color: '#d97706', area: true }, { key: 'busy', color: '#2563eb', width: 1.4 }]);
  $('lgQ').innerHTML = legendHtml([['queue', '#d97706', pt.queue !== undefined ? pt.queue : '–'], ['busy', '#2563eb', pt.busy !== undefined ? pt.busy : '–']]);
}
