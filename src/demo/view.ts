/**
 * The demo's terminal output: a live view redrawn in place when stdout is a TTY, plain
 * periodic lines otherwise. Pure formatting; run.ts owns the data.
 */
import type { WorkerInfo } from '../local/pool.js';

/** The counters a demo run keeps (the end result reports them too). */
export interface DemoCounters {
  executions: number;
  wrong: number;
  failed: number;
  restores: number;
  retries: number;
  restarts: number;
  throughput: number;
  latency: { p50: number; p99: number };
}

export interface Snapshot extends DemoCounters {
  elapsedMs: number;
  durationMs: number;
  workers: WorkerInfo[];
  sessions: number;
  activeSessions: number;
  events: string[];
  phase: string;
}

export interface Style {
  bold(s: string): string;
  dim(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  red(s: string): string;
  cyan(s: string): string;
}

const plain = (s: string) => s;
export const noStyle: Style = { bold: plain, dim: plain, green: plain, yellow: plain, red: plain, cyan: plain };

export function ansiStyle(): Style {
  const wrap = (open: number, close: number) => (s: string) => `\x1b[${open}m${s}\x1b[${close}m`;
  return { bold: wrap(1, 22), dim: wrap(2, 22), green: wrap(32, 39), yellow: wrap(33, 39), red: wrap(31, 39), cyan: wrap(36, 39) };
}

export function ms(value: number): string {
  if (!Number.isFinite(value)) return '-';
  return value >= 100 ? `${Math.round(value)} ms` : `${value.toFixed(value >= 10 ? 1 : 2)} ms`;
}

export function num(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

export function seconds(valueMs: number): string {
  return `${(valueMs / 1000).toFixed(1)} s`;
}

export function bar(fraction: number, width: number): string {
  const f = Math.max(0, Math.min(1, fraction));
  const full = Math.round(f * width);
  return '█'.repeat(full) + '░'.repeat(width - full);
}

function stateColor(state: string, style: Style): (s: string) => string {
  if (state === 'healthy') return style.green;
  if (state === 'busy' || state === 'checking' || state === 'afterCheck') return style.yellow;
  if (state === 'initializing' || state === 'starting') return style.cyan;
  return style.red;
}

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const lpad = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);

/** Visible width of a string that may hold ANSI escapes. */
export function visible(s: string): number {
  return s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').length;
}

/** Cut a line to the terminal width without breaking escapes (drops styling past the cut). */
function fit(line: string, columns: number): string {
  if (visible(line) <= columns) return line;
  const raw = line.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
  return raw.slice(0, Math.max(0, columns - 1)) + '…';
}

/**
 * `label` and `text` as lines of at most `columns` visible characters: the text broken at spaces,
 * its continuation lines under the text's first column (a word longer than a line stays whole).
 */
export function labelled(label: string, text: string, indent: number, columns = 80): string[] {
  const lines: string[] = [];
  let current = label.padEnd(indent);
  let empty = true;
  for (const word of text.split(' ')) {
    if (!empty && visible(current) + 1 + visible(word) > columns) {
      lines.push(current);
      current = ' '.repeat(indent);
      empty = true;
    }
    current += (empty ? '' : ' ') + word;
    empty = false;
  }
  lines.push(current);
  return lines;
}

/** The live view: one frame, as lines. */
export function frame(s: Snapshot, title: string, style: Style, columns = 100): string[] {
  const lines: string[] = [];
  const fraction = s.durationMs > 0 ? s.elapsedMs / s.durationMs : 1;
  lines.push(style.bold(title));
  lines.push(`${style.cyan(bar(fraction, 30))} ${lpad(String(Math.min(100, Math.floor(fraction * 100))), 3)}%  ${seconds(Math.min(s.elapsedMs, s.durationMs))} / ${seconds(s.durationMs)}  ${style.dim(s.phase)}`);
  lines.push('');
  lines.push(style.dim(`${pad('worker', 12)}${pad('state', 14)}${lpad('pid', 8)}${lpad('requests', 10)}${lpad('errors', 8)}${lpad('restarts', 10)}${lpad('sessions', 10)}`));
  for (const w of s.workers) {
    const state = stateColor(w.state, style)(pad(w.state, 14));
    const restarts = w.restarts > 0 ? style.yellow(lpad(String(w.restarts), 10)) : lpad('0', 10);
    lines.push(`${pad(w.id, 12)}${state}${lpad(w.pid === null ? '-' : String(w.pid), 8)}${lpad(num(w.requests), 10)}${lpad(num(w.errors), 8)}${restarts}${lpad(String(w.sessions), 10)}`);
  }
  lines.push('');
  lines.push(
    `${style.bold(lpad(num(s.throughput), 6))} exec/s · p50 ${style.bold(ms(s.latency.p50))} · p99 ${style.bold(ms(s.latency.p99))} · sessions active ${style.bold(String(s.activeSessions))}/${s.sessions}`,
  );
  const bad = (n: number, label: string) => (n > 0 ? style.red(`${num(n)} ${label}`) : `${num(n)} ${label}`);
  lines.push(`executions ${style.bold(num(s.executions))}: ${style.green(`${num(s.executions - s.wrong)} ok`)} · ${bad(s.wrong, 'wrong')} · ${bad(s.failed, 'failed')}`);
  lines.push(`restores ${num(s.restores)} · retries ${num(s.retries)} · worker restarts ${s.restarts}`);
  // Restores are routing, not failures: say so, or a count before any crash reads as alarming.
  lines.push(style.dim('restores: a worker lacked the program and rebuilt it within the call'));
  lines.push(style.dim('retries: calls sent again after their worker died under them'));
  lines.push('');
  lines.push(style.dim('events'));
  const recent = s.events.slice(-6);
  for (const e of recent) lines.push(`  ${e}`);
  for (let i = recent.length; i < 6; i++) lines.push('');
  return lines.map((l) => fit(l, columns));
}

/** Plain output: one line per period. */
export function line(s: Snapshot): string {
  const healthy = s.workers.filter((w) => w.state === 'healthy').length;
  const busy = s.workers.filter((w) => w.state === 'busy').length;
  const pct = s.durationMs > 0 ? Math.min(100, Math.floor((s.elapsedMs / s.durationMs) * 100)) : 100;
  return (
    `[${lpad(seconds(s.elapsedMs), 7)} ${lpad(String(pct), 3)}%] executions ${s.executions} (wrong ${s.wrong}, failed ${s.failed})` +
    ` | ${num(s.throughput)} exec/s | p50 ${ms(s.latency.p50)} p99 ${ms(s.latency.p99)}` +
    ` | sessions ${s.activeSessions}/${s.sessions} | workers ${healthy} idle, ${busy} busy, ${s.workers.length - healthy - busy} other | restarts ${s.restarts} restores ${s.restores}`
  );
}

/** Redraws a block of lines in place on a TTY. */
export class LiveRegion {
  private height = 0;
  constructor(private readonly out: NodeJS.WritableStream) {}
  draw(lines: string[]): void {
    let text = '';
    if (this.height > 0) text += `\x1b[${this.height}F`; // to the first line of the previous frame
    text += lines.map((l) => `\x1b[2K${l}`).join('\n') + '\n';
    if (lines.length < this.height) text += '\x1b[J';
    this.height = lines.length;
    this.out.write(text);
  }
  /** Leave the last frame on screen; the next output goes below it. */
  release(): void {
    this.height = 0;
  }
}
