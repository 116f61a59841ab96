/**
 * The agent's session ledger (src/cluster/ledger.ts): which placement revision of each session
 * a host serves, so that a session's state is never served under two placements.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SessionLedger } from '../../src/cluster/ledger.js';

test('first request of a session: served and adopted', () => {
  const l = new SessionLedger();
  assert.is(l.check('s', 5, false), 'serve');
  assert.is(l.revision('s'), 5);
  assert.is(l.check('s', 5, false), 'serve');
});

test('a newer placement resets the local state first; an older one is stale', () => {
  const l = new SessionLedger();
  l.check('s', 5, false);
  assert.is(l.check('s', 9, false), 'reset');
  assert.is(l.revision('s'), 9);
  assert.is(l.check('s', 5, false), 'stale');
  assert.is(l.revision('s'), 9, 'a stale request changes nothing');
});

test('confirmed: the front end re-read the bucket, the older revision is current (a wiped bucket)', () => {
  const l = new SessionLedger();
  l.check('s', 50, false);
  assert.is(l.check('s', 3, true), 'reset');
  assert.is(l.revision('s'), 3);
});

test('ended: requests under that revision (or older) are stale; a new placement is served without reset', () => {
  const l = new SessionLedger();
  l.check('s', 5, false);
  l.end('s', 5);
  assert.is(l.revision('s'), null);
  assert.is(l.check('s', 5, false), 'stale', 'a front end whose cache still has the ended placement');
  assert.is(l.check('s', 4, false), 'stale');
  assert.is(l.check('s', 7, false), 'serve', 'its state was cleaned when it ended');
  assert.is(l.revision('s'), 7);
});

test('end of a session never seen here still makes its revision stale', () => {
  const l = new SessionLedger();
  l.end('s', 8);
  assert.is(l.check('s', 8, false), 'stale');
  assert.is(l.check('s', 8, true), 'serve', 'unless the front end confirms it is current');
});

test('bounded: the least recently used session is forgotten', () => {
  const l = new SessionLedger(3);
  l.check('a', 1, false);
  l.check('b', 2, false);
  l.check('c', 3, false);
  l.check('a', 1, false); // touched: b is now the oldest
  l.check('d', 4, false);
  assert.is(l.size, 3);
  assert.is(l.revision('b'), null);
  assert.is(l.revision('a'), 1);
  assert.is(l.check('b', 1, false), 'serve', 'a forgotten session is adopted as it comes');
});

test.run();
