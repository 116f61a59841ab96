/**
 * Throughput vs concurrency as a standalone SVG, written by hand (no charting library):
 * one panel per codec, x = concurrency on a log2 axis, y = calls/s on a log10 axis; solid lines are the pool
 * at poolSize 1/2/4, dashed lines the matching N raw echo processes.
 */

export interface Curve {
  codec: string;
  label: string;
  poolSize: number;
  points: Array<{ x: number; y: number }>;
  dashed: boolean;
}

const COLORS: Record<number, string> = { 1: '#1f77b4', 2: '#d62728', 4: '#2ca02c' };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** A round axis maximum: 1, 2 or 5 times a power of ten at or above `v`. */
function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function label(v: number): string {
  return v >= 1000 ? `${+(v / 1000).toFixed(1)}k` : String(v);
}

export function throughputSvg(curves: Curve[], opts: { title: string; subtitle?: string }): string {
  const codecs = [...new Set(curves.map((c) => c.codec))];
  const panelW = 440;
  const panelH = 300;
  const m = { left: 64, right: 16, top: 56, bottom: 48 };
  const width = codecs.length * panelW + 20;
  const height = panelH + 90;
  const xs = [...new Set(curves.flatMap((c) => c.points.map((p) => p.x)))].sort((a, b) => a - b);
  // y on a log10 axis: the pool and the raw baseline differ by more than an order of magnitude.
  const ys = curves.flatMap((c) => c.points.map((p) => p.y)).filter((y) => y > 0);
  const yLo = 10 ** Math.floor(Math.log10(Math.min(...ys)));
  const yHi = niceMax(Math.max(...ys) * 1.05);
  const ly = (y: number) => Math.log10(Math.max(y, yLo));
  const yTicks: number[] = [];
  for (let d = yLo; d <= yHi; d *= 10) for (const m of [1, 2, 5]) if (d * m >= yLo && d * m <= yHi) yTicks.push(d * m);
  const lx = (x: number) => Math.log2(x);
  const x0 = lx(xs[0] ?? 1);
  const x1 = lx(xs[xs.length - 1] ?? 64);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="#fff"/>`);
  out.push(`<text x="12" y="20" font-size="15" font-weight="bold">${esc(opts.title)}</text>`);
  if (opts.subtitle) out.push(`<text x="12" y="38" fill="#555">${esc(opts.subtitle)}; solid: pool, dashed: N raw echo processes</text>`);
  codecs.forEach((codec, i) => {
    const ox = 10 + i * panelW;
    const pw = panelW - m.left - m.right;
    const ph = panelH - m.top - m.bottom + 40;
    const px = (x: number) => ox + m.left + ((lx(x) - x0) / Math.max(1e-9, x1 - x0)) * pw;
    const py = (y: number) => m.top + ph - ((ly(y) - ly(yLo)) / (ly(yHi) - ly(yLo))) * ph;
    out.push(`<text x="${ox + m.left}" y="${m.top - 8}" font-weight="bold">codec: ${esc(codec)}</text>`);
    // grid and axes
    for (const v of yTicks) {
      out.push(`<line x1="${ox + m.left}" x2="${ox + m.left + pw}" y1="${py(v)}" y2="${py(v)}" stroke="#e5e5e5"/>`);
      out.push(`<text x="${ox + m.left - 6}" y="${py(v) + 4}" text-anchor="end" fill="#333">${label(Math.round(v))}</text>`);
    }
    for (const x of xs) {
      out.push(`<line x1="${px(x)}" x2="${px(x)}" y1="${m.top}" y2="${m.top + ph}" stroke="#f0f0f0"/>`);
      out.push(`<text x="${px(x)}" y="${m.top + ph + 16}" text-anchor="middle" fill="#333">${x}</text>`);
    }
    out.push(`<line x1="${ox + m.left}" x2="${ox + m.left + pw}" y1="${m.top + ph}" y2="${m.top + ph}" stroke="#333"/>`);
    out.push(`<line x1="${ox + m.left}" x2="${ox + m.left}" y1="${m.top}" y2="${m.top + ph}" stroke="#333"/>`);
    out.push(`<text x="${ox + m.left + pw / 2}" y="${m.top + ph + 34}" text-anchor="middle">concurrency (callers)</text>`);
    out.push(`<text transform="translate(${ox + 14} ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">calls/s (log scale)</text>`);
    // curves
    const mine = curves.filter((c) => c.codec === codec);
    for (const c of mine) {
      const color = COLORS[c.poolSize] ?? '#555';
      const d = c.points.map((p, j) => `${j ? 'L' : 'M'}${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(' ');
      out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="${c.dashed ? 1.5 : 2.2}"${c.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
      if (!c.dashed) for (const p of c.points) out.push(`<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="2.8" fill="${color}"/>`);
    }
    // legend: one row under the axis title
    let lxp = ox + m.left - 40;
    const legendY = m.top + ph + 56;
    for (const c of mine) {
      const color = COLORS[c.poolSize] ?? '#555';
      out.push(`<line x1="${lxp}" x2="${lxp + 18}" y1="${legendY}" y2="${legendY}" stroke="${color}" stroke-width="2"${c.dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
      out.push(`<text x="${lxp + 22}" y="${legendY + 4}" fill="#222">${esc(c.label)}</text>`);
      lxp += 22 + c.label.length * 6.5 + 12;
    }
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
