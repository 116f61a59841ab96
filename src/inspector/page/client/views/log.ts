/** The log: lifecycle changes and restarts, every transition, or the events sent to actors. */
import { $, esc } from '../dom.js';
import { fmtTime } from '../format.js';
import { colorOf } from '../states.js';
import { S } from '../store.js';
import type { LogEntry } from '../types.js';

function nameOfPathTail(p: string | undefined): string {
  const parts = String(p || '').split('.');
  return parts[parts.length - 1]!;
}

function entryHtml(x: LogEntry): string {
  const attrs = ' data-seq="' + x.seq + '" data-kind="' + x.kind + '" data-worker="' + esc(x.w) + '"' + (x.to ? ' data-to="' + esc(x.to) + '"' : '');
  const head = '<li class="' + x.kind + '"' + attrs + '><time>' + fmtTime(x.t) + '</time><span class="w">' + esc(x.w) + '</span>';
  if (x.kind === 'life' || x.kind === 'work' || x.kind === 'sub') {
    const sub = x.kind === 'sub' ? nameOfPathTail(x.path) : '';
    return head + '<span class="chip" style="background:' + colorOf(x.from) + '">' + esc(x.from) + '</span><span class="arrow">→</span><span class="chip" style="background:' + colorOf(x.to) + '">' + esc(x.to) + (sub ? ' · ' + esc(sub) : '') + '</span>' +
      (x.e ? '<span class="ev">on ' + esc(x.e) + '</span>' : '') + (x.pid ? '<span class="ev">pid ' + esc(x.pid) + '</span>' : '') + '</li>';
  }
  const icon = x.kind === 'restart' ? '↻ ' : x.kind === 'escalation' ? '⚠ ' : '';
  return head + '<span class="txt">' + icon + esc(x.text || '') + '</span></li>';
}

export function renderLog(): void {
  const el = $('log');
  let html = '', n = 0;
  if (S.tab === 'raw') {
    for (let i = S.raw.length - 1; i >= 0 && n < 250; i--, n++) {
      const r = S.raw[i]!;
      html += '<li data-kind="event"><time>' + fmtTime(r.t) + '</time><span class="w">' + esc(r.to) + '</span><span class="chip light">' + esc(r.type) + '</span>' +
        (r.from ? '<span class="ev">from ' + esc(r.from) + '</span>' : '') + (r.data ? '<span class="data">' + esc(JSON.stringify(r.data)) + '</span>' : '') + '</li>';
    }
    $('logMeta').textContent = 'events sent to actors (a sample under load)' + (S.sanitize ? ' · payloads hidden' : '');
  } else {
    for (let j = S.log.length - 1; j >= 0 && n < 300; j--) {
      const x = S.log[j]!;
      if (S.tab === 'life' && (x.kind === 'work' || x.kind === 'sub' || x.kind === 'session')) continue;
      html += entryHtml(x);
      n++;
    }
    $('logMeta').textContent = S.tab === 'life' ? 'state changes that matter: starts, crashes, restarts, stops' : 'every worker transition' + (S.routineDropped ? ' (' + S.routineDropped + ' routine ones skipped under load)' : '');
  }
  el.innerHTML = html || '<li class="empty">nothing yet</li>';
}
