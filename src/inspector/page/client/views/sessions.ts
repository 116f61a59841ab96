/** The sessions table: which workers hold each session's state, the preferred one in bold. */
import { $, esc } from '../dom.js';
import { S } from '../store.js';
import type { Snap } from '../types.js';

export function renderSessions(): void {
  const snap: Partial<Snap> = S.snap || {}, list = (snap.sessions || []).slice().reverse();
  $('sessMeta').textContent = (snap.sessionCount || 0) + ' active' + ((snap.sessionCount ?? 0) > list.length ? ' (newest ' + list.length + ' shown)' : '');
  if (!list.length) {
    $('sessions').innerHTML = '<div class="empty">No sessions. Calls with a sessionId open one; endSession() closes it.</div>';
    return;
  }
  let html = '<table class="sess"><thead><tr><th>session</th><th>workers holding its state</th><th>in flight</th></tr></thead><tbody>';
  for (const s of list) {
    html += '<tr data-session="' + esc(s.id) + '"><td class="sid">' + esc(s.id) + '</td><td>' + s.workers.map((w) => (w === s.lastWorker ? '<b>' + esc(w) + '</b>' : esc(w))).join(', ') +
      (s.lost ? ' <span class="tag" style="color:#dc2626">lost ' + esc(s.lost) + '</span>' : '') + '</td><td>' + esc(s.active) + '</td></tr>';
  }
  $('sessions').innerHTML = html + '</tbody></table>';
}
