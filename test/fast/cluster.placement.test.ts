/**
 * The cluster's placement rule (src/cluster/placement.ts): a new session goes to the least
 * loaded live host by reported capacity; ties to more free slots, then the smaller id.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chooseHost, loadScore, type HostLoad } from '../../src/cluster/placement.js';

const host = (hostId: string, capacity: number, load: Partial<Omit<HostLoad, 'hostId' | 'capacity'>> = {}): HostLoad => ({
  hostId,
  capacity,
  inflight: 0,
  queue: 0,
  sessions: 0,
  pending: 0,
  ...load,
});

test('no host: null', () => {
  assert.is(chooseHost([]), null);
});

test('one host is chosen whatever its load', () => {
  const only = host('a', 2, { sessions: 100, queue: 5 });
  assert.is(chooseHost([only]), only);
});

test('least loaded per slot wins, not least loaded in absolute terms', () => {
  // a: 4 sessions on 2 slots (2 per slot); b: 6 sessions on 8 slots (0.75 per slot)
  assert.is(chooseHost([host('a', 2, { sessions: 4 }), host('b', 8, { sessions: 6 })])!.hostId, 'b');
});

test('sessions, sessions placed since the last heartbeat, in-flight and queued requests all count', () => {
  const base = [host('a', 2), host('b', 2)];
  for (const key of ['sessions', 'pending', 'inflight', 'queue'] as const) {
    const hosts = [host('a', 2, { [key]: 1 }), host('b', 2)];
    assert.is(chooseHost(hosts)!.hostId, 'b', key);
  }
  assert.is(chooseHost(base)!.hostId, 'a', 'a tie goes to the smaller id');
});

test('a burst of placements between heartbeats spreads (pending)', () => {
  const hosts = [host('a', 2), host('b', 2), host('c', 2)].map((h) => ({ ...h }));
  const placed: string[] = [];
  for (let i = 0; i < 9; i++) {
    const h = chooseHost(hosts)!;
    placed.push(h.hostId);
    (h as { pending: number }).pending++;
  }
  assert.equal(placed.join(''), 'abcabcabc');
});

test('ties: more free slots first, then the smaller id', () => {
  // Same score (1 per slot); b has more free slots (its load is sessions, not running requests).
  const a = host('a', 2, { inflight: 2 });
  const b = host('b', 2, { sessions: 2 });
  assert.is(chooseHost([a, b]), b);
  assert.is(chooseHost([host('z', 4), host('y', 4)])!.hostId, 'y');
});

test('a host with no capacity is chosen only when every host has none', () => {
  const dead = host('a', 0);
  const busy = host('b', 1, { sessions: 50, inflight: 1, queue: 20 });
  assert.is(chooseHost([dead, busy]), busy);
  assert.is(loadScore(dead), Number.POSITIVE_INFINITY);
  // All without capacity: the least loaded in absolute terms.
  assert.is(chooseHost([host('a', 0, { sessions: 3 }), host('b', 0, { sessions: 1 })])!.hostId, 'b');
});

test('chooseHost returns one of the given objects (not a copy) and does not change them', () => {
  const hosts = [host('a', 2, { sessions: 1 }), host('b', 2)];
  const before = JSON.stringify(hosts);
  assert.ok(hosts.includes(chooseHost(hosts)!));
  assert.is(JSON.stringify(hosts), before);
});

test.run();
