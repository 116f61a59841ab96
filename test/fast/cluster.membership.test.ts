/**
 * The front end's host membership (src/cluster/membership.ts) on a fake clock: heartbeats make
 * hosts live, silence past hostTimeout drops them, leaving/gone/restarts, the freeze while the
 * front end itself is disconnected, and how a session's placement is judged.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Membership, type MembershipEvent } from '../../src/cluster/membership.js';
import type { Heartbeat } from '../../src/cluster/envelope.js';

function clock(start = 1000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

const stats = { activeSessions: 0, poolSize: 2, utilization: 0, healthyWorkers: 2, unhealthyWorkers: 0, busyWorkers: 0, overflowWorkers: 0, queueLength: 0, totalCommands: 0, totalErrors: 0, restarts: 0, latencyMs: { p50: 0, p99: 0 } };

function hb(host: string, inc = 'i1', extra: Partial<Heartbeat> = {}): Heartbeat {
  return { host, inc, state: 'up', interval: 1000, capacity: 2, inflight: 0, queue: 0, workers: 2, sessions: 0, stats, rows: [], ...extra };
}

const names = (events: MembershipEvent[]) => events.map((e) => `${e.type} ${e.hostId}${e.type === 'down' ? ` ${e.reason}` : ''}`);

test('a first heartbeat makes a host up; later ones update it without an event', () => {
  const c = clock();
  const m = new Membership(3000, c.now);
  assert.equal(names(m.heartbeat(hb('a'))), ['up a']);
  assert.equal(names(m.heartbeat(hb('a', 'i1', { inflight: 3, sessions: 7 }))), []);
  const a = m.get('a')!;
  assert.is(a.inflight, 3);
  assert.is(a.sessions, 7);
  assert.equal(m.eligible().map((h) => h.hostId), ['a']);
});

test('silence past hostTimeout drops a host (sweep), not before', () => {
  const c = clock();
  const m = new Membership(3000, c.now);
  m.heartbeat(hb('a'));
  m.heartbeat(hb('b'));
  c.advance(2000);
  m.heartbeat(hb('b'));
  c.advance(1000);
  assert.equal(names(m.sweep()), [], 'exactly hostTimeout: still there');
  c.advance(1);
  assert.equal(names(m.sweep()), ['down a timeout']);
  assert.equal(m.all().map((h) => h.hostId), ['b']);
  assert.equal(names(m.sweep()), [], 'dropped once');
});

test('placement status: live, lost once dropped, unknown before hostTimeout of listening', () => {
  const c = clock();
  const m = new Membership(3000, c.now);
  assert.is(m.status('a', 'i1'), 'unknown', 'just started: the host may not have been heard yet');
  m.heartbeat(hb('a'));
  assert.is(m.status('a', 'i1'), 'live');
  assert.is(m.status('a', 'i0'), 'lost', 'another incarnation of the host');
  c.advance(3001);
  m.sweep();
  assert.is(m.status('a', 'i1'), 'lost', 'dropped');
  assert.is(m.status('never', 'x'), 'lost', 'never heard of, after hostTimeout of listening');
});

test('a dropped host that heartbeats again (same incarnation) is live again', () => {
  const c = clock();
  const m = new Membership(1000, c.now);
  m.heartbeat(hb('a'));
  c.advance(1500);
  assert.equal(names(m.sweep()), ['down a timeout']);
  assert.equal(names(m.heartbeat(hb('a'))), ['up a']);
  assert.is(m.status('a', 'i1'), 'live');
});

test('a restarted host (new incarnation): the old one is down (restarted) and stays lost', () => {
  const c = clock();
  const m = new Membership(3000, c.now);
  m.heartbeat(hb('a', 'old'));
  assert.equal(names(m.heartbeat(hb('a', 'new'))), ['down a restarted', 'up a']);
  assert.is(m.status('a', 'old'), 'lost');
  assert.is(m.status('a', 'new'), 'live');
  assert.equal(names(m.heartbeat(hb('a', 'old'))), [], 'a late heartbeat of the old life is ignored');
  assert.is(m.get('a')!.inc, 'new');
});

test('leaving: out of placement at once, still listed; gone: removed; a late up does not revive it', () => {
  const c = clock();
  const m = new Membership(3000, c.now);
  m.heartbeat(hb('a'));
  m.heartbeat(hb('b'));
  assert.equal(names(m.heartbeat(hb('a', 'i1', { state: 'leaving' }))), ['leaving a']);
  assert.equal(m.eligible().map((h) => h.hostId), ['b']);
  assert.equal(m.all().map((h) => h.hostId).sort(), ['a', 'b']);
  assert.is(m.status('a', 'i1'), 'lost', 'its sessions are re-placed');
  assert.equal(names(m.heartbeat(hb('a', 'i1'))), [], 'a heartbeat sent before the leaving one, arriving late');
  assert.is(m.get('a')!.state, 'leaving');
  assert.equal(names(m.heartbeat(hb('a', 'i1', { state: 'gone' }))), ['down a left']);
  assert.is(m.get('a'), undefined);
  assert.equal(names(m.heartbeat(hb('a', 'i1'))), [], 'a gone incarnation never comes back');
  assert.is(m.status('a', 'i1'), 'lost');
});

test('markLeaving / markDead on a host\'s own word', () => {
  const c = clock();
  const m = new Membership(3000, c.now);
  m.heartbeat(hb('a'));
  assert.equal(names(m.markLeaving('a', 'i1')), ['leaving a']);
  assert.equal(names(m.markLeaving('a', 'i1')), [], 'once');
  assert.equal(names(m.markDead('a', 'i1')), ['down a restarted']);
  assert.is(m.status('a', 'i1'), 'lost');
  assert.equal(names(m.markDead('b', 'x')), [], 'an unknown host: nothing to drop');
  assert.is(m.status('b', 'x'), 'lost');
});

test('frozen (the front end is disconnected): nobody is dropped; thaw gives each a fresh hostTimeout', () => {
  const c = clock();
  const m = new Membership(1000, c.now);
  m.heartbeat(hb('a'));
  m.freeze();
  c.advance(10_000);
  assert.equal(names(m.sweep()), []);
  assert.is(m.status('b', 'x'), 'unknown', 'while cut off, an unheard host may well be there');
  m.thaw();
  c.advance(999);
  assert.equal(names(m.sweep()), []);
  assert.is(m.status('b', 'x'), 'unknown', 'just reconnected: listen for hostTimeout first');
  c.advance(2);
  assert.equal(names(m.sweep()), ['down a timeout']);
  assert.is(m.status('b', 'x'), 'lost');
});

test('pending placements count until the next heartbeat; unreachable hosts take no new session', () => {
  const c = clock();
  const m = new Membership(3000, c.now);
  m.heartbeat(hb('a'));
  m.placed('a');
  m.placed('a');
  m.placed('a', -1);
  assert.is(m.get('a')!.pending, 1);
  m.unreachable('a', 'i1');
  assert.equal(m.eligible(), []);
  assert.equal(m.up().map((h) => h.hostId), ['a'], 'still up (its placements still count as live)');
  assert.is(m.status('a', 'i1'), 'live');
  m.heartbeat(hb('a'));
  assert.is(m.get('a')!.pending, 0);
  assert.equal(m.eligible().map((h) => h.hostId), ['a'], 'heard from again');
});

test.run();
