/** The supervision tree: the pool, the session pool, the worker supervisor with its workers, the monitor. */
import { $, esc } from '../dom.js';
import { fmtDur, natural } from '../format.js';
import { colorOf } from '../states.js';
import { S, stateOf } from '../store.js';
import type { ClusterHostNode, TreeChild, WorkerInfo } from '../types.js';

/** The child of the pool with this id (or an empty record while the pool has none). */
function child<K extends TreeChild['id']>(kids: TreeChild[], id: K): Partial<Extract<TreeChild, { id: K }>> {
  return (kids.filter((c) => c.id === id)[0] as Extract<TreeChild, { id: K }> | undefined) || {};
}

export function renderTree(): void {
  const tree = S.snap && S.snap.tree;
  if (!tree) {
    $('tree').innerHTML = '<li class="empty">waiting for the pool…</li>';
    return;
  }
  if (tree.role === 'ClusterPool') return renderClusterTree(tree.hosts || []);
  const kids = tree.children || [];
  const sp = child(kids, 'sessionPool');
  const sup = child(kids, 'workers');
  const mon = child(kids, 'monitor');
  const info: Record<string, WorkerInfo> = {};
  for (const w of S.workers) info[w.id] = w;
  const children = (sup.children || []).slice().sort((a, b) => Number(a.restart === 'temporary') - Number(b.restart === 'temporary') || natural(a.id, b.id));
  const grid = children.length > 8;
  const status = (s: string | undefined) => (s && s !== 'active' ? ' <span class="tag">' + esc(s) + '</span>' : '');
  let html = '<li><div class="tn sup"><span class="sdot"></span><b>pool</b><span class="role">PoolSupervisor · one_for_one</span>' + status(tree.status) + '</div><ul>';
  html += '<li><div class="tn"><span class="sdot" style="background:#0891b2"></span><b>sessionPool</b><span class="role">SessionPool</span>' + status(sp.status) +
    '<span class="meta">queue ' + esc(sp.queue) + ' · ' + esc(sp.sessions) + ' session' + (sp.sessions === 1 ? '' : 's') + (sp.affinity ? ' · affinity ' + esc(sp.affinity) : '') + '</span></div></li>';
  html += '<li><div class="tn sup"><span class="sdot"></span><b>workers</b><span class="role">WorkerSupervisor · ' + esc(sup.strategy || '') + '</span>' + status(sup.status) +
    '<span class="meta">restarts in window: ' + esc(sup.recentRestarts) + ' of max ' + esc(sup.maxRestarts) + ' per ' + fmtDur(sup.periodMs) + (sup.maxOverflow ? ' · up to ' + esc(sup.maxOverflow) + ' overflow' : '') + '</span></div>';
  if (grid) html += '<div class="tree-key">' + children.length + ' workers; colour = state, hover for details</div>';
  html += '<ul class="' + (grid ? 'wgrid' : '') + '">';
  for (const c of children) {
    const w = info[c.id], s = w ? stateOf(w) : c.state || c.status;
    html += '<li><div class="tn worker' + (S.selected === c.id ? ' sel' : '') + '" data-tree-worker="' + esc(c.id) + '" title="' + esc(c.id + ': ' + s + (c.pid ? ', pid ' + c.pid : '') + ', child status ' + c.status + ', restart ' + c.restart) + '">' +
      '<span class="sdot" style="background:' + colorOf(s) + '"></span><b>' + esc(c.id) + '</b>' + (c.restart === 'temporary' ? '<span class="tag">overflow</span>' : '') +
      '<span class="st" style="color:' + colorOf(s) + '">' + esc(s) + '</span><span class="pid">' + (c.pid ? esc(c.pid) : '') + '</span></div></li>';
  }
  if (!children.length) html += '<li><div class="tn"><span class="role">no workers yet (lazy pool)</span></div></li>';
  html += '</ul></li>';
  html += '<li><div class="tn"><span class="sdot" style="background:#7c3aed"></span><b>monitor</b><span class="role">PoolMonitor</span>' + status(mon.status) +
    '<span class="meta">' + (mon.intervalMs ? 'health checks every ' + fmtDur(mon.intervalMs) + ' · ' + esc(mon.ticks) + ' so far' : 'health checks off') + '</span></div></li>';
  html += '</ul></li>';
  $('tree').innerHTML = html;
}

/** A cluster pool: its hosts (from their heartbeats), each with its workers. */
function renderClusterTree(hosts: ClusterHostNode[]): void {
  let html = '<li><div class="tn sup"><span class="sdot"></span><b>cluster</b><span class="role">ClusterPool · ' + hosts.length + ' host' + (hosts.length === 1 ? '' : 's') + '</span></div><ul>';
  for (const h of hosts.slice().sort((a, b) => natural(a.hostId, b.hostId))) {
    html += '<li><div class="tn sup" data-tree-host="' + esc(h.hostId) + '"><span class="sdot" style="background:#0891b2"></span><b>' + esc(h.hostId) + '</b><span class="role">Host</span>' +
      '<span class="meta">' + esc(h.inflight) + ' in flight of ' + esc(h.capacity) + ' · queue ' + esc(h.queue) + '</span></div><ul>';
    for (const w of h.workers) {
      const s = w.state;
      html += '<li><div class="tn worker' + (S.selected === w.id ? ' sel' : '') + '" data-tree-worker="' + esc(w.id) + '" title="' + esc(w.id + ': ' + s + (w.pid ? ', pid ' + w.pid : '')) + '">' +
        '<span class="sdot" style="background:' + colorOf(s) + '"></span><b>' + esc(w.id.slice(h.hostId.length + 1)) + '</b>' + (w.overflow ? '<span class="tag">overflow</span>' : '') +
        '<span class="st" style="color:' + colorOf(s) + '">' + esc(s) + '</span><span class="pid">' + (w.pid ? esc(w.pid) : '') + '</span></div></li>';
    }
    if (!h.workers.length) html += '<li><div class="tn"><span class="role">no workers reported yet</span></div></li>';
    html += '</ul></li>';
  }
  if (!hosts.length) html += '<li><div class="tn"><span class="role">no live host (start one: pyvisor agent --nats URL --pool NAME)</span></div></li>';
  html += '</ul></li>';
  $('tree').innerHTML = html;
}
