/**
 * The routing rule as tables: route() and isPinned() are pure functions over live state, so
 * every row is one (candidates, affinity, placement, target) → decision. A decision is written
 * as the worker id, 'wait', or 'lost <worker> <reason>'.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isPinned, route, type Affinity, type Candidate, type Placement } from '../../src/routing/route.js';

type Kind = 'free' | 'busy' | 'down';
/** `w1` free permanent, `o1:busy` busy overflow (ids starting with `o` are overflow). */
function pool(spec: string): Candidate[] {
  return spec
    .split(' ')
    .filter(Boolean)
    .map((token) => {
      const [id, kind = 'free'] = token.split(':') as [string, Kind?];
      return { id, overflow: id.startsWith('o'), free: kind === 'free', alive: kind !== 'down' };
    });
}

const home = (id: string | null): Placement => ({ home: id, lost: null });
const lost = (id: string, reason = 'crashed'): Placement => ({ home: id, lost: { workerId: id, reason } });

function decide(candidates: Candidate[], affinity: Affinity, placement: Placement | undefined, target: string | null = null): string {
  const r = route(candidates, affinity, placement, target);
  if (r === 'wait') return 'wait';
  if ('lost' in r) return `lost ${r.lost.workerId} ${r.lost.reason}`;
  assert.ok(candidates.includes(r), 'route returns one of the candidates, not a copy');
  return r.id;
}

type Row = [workers: string, placement: Placement | undefined, expected: string, why: string];

function table(affinity: Affinity, rows: Row[]): void {
  for (const [workers, placement, expected, why] of rows) {
    assert.is(decide(pool(workers), affinity, placement), expected, `${affinity} | ${workers} | ${JSON.stringify(placement ?? null)}: ${why}`);
  }
}

/** What every affinity does for a request with no session, or a session that has no home yet. */
const UNPLACED: Row[] = [
  ['w1 w2', undefined, 'w1', 'the first free worker'],
  ['w1:busy w2', undefined, 'w2', 'a busy one is skipped'],
  ['o1 w1', undefined, 'w1', 'permanent before overflow, whatever the order'],
  ['o1 o2 w1:busy w2', undefined, 'w2', 'permanent before overflow'],
  ['w1:busy o1:busy o2', undefined, 'o2', 'overflow when no permanent worker is free'],
  ['w1:busy w2:down', undefined, 'wait', 'nobody free'],
  ['', undefined, 'wait', 'no worker at all (lazy pool)'],
  ['w1:down w2', undefined, 'w2', 'a down worker is never chosen'],
  ['w1 w2', home(null), 'w1', 'a session with no home yet goes anywhere'],
];

test('every affinity: a request with no placement takes a free worker, permanent before overflow, or waits', () => {
  for (const affinity of ['prefer', 'strict', 'none'] as const) table(affinity, UNPLACED);
});

test("'prefer': the session's home when it is free, else any free worker; a lost pin is ignored", () => {
  table('prefer', [
    ['w1 w2', home('w2'), 'w2', 'home is free'],
    ['w1 w2:busy', home('w2'), 'w1', 'home busy: anyone else rather than wait'],
    ['w1:busy w2:busy', home('w2'), 'wait', 'nobody free'],
    ['w1 o1', home('o1'), 'o1', 'an overflow home is still preferred over a free permanent worker'],
    ['w1:busy o1:busy o2', home('o1'), 'o2', 'home busy, no permanent free: another overflow worker'],
    ['w1 w2', home('gone'), 'w1', 'a home that is not a candidate any more'],
    ['w1 w2:down', home('w2'), 'w1', 'a down home'],
    ['w1 w2', lost('w2'), 'w2', "'prefer' never fails a session: a lost home that is back serves again"],
    ['w1 w2:down', lost('w2'), 'w1', 'lost and still down: elsewhere'],
  ]);
});

test("'strict': only the session's home, waiting while it is busy; a lost pin is reported", () => {
  table('strict', [
    ['w1 w2', home('w2'), 'w2', 'home is free'],
    ['w1 w2:busy', home('w2'), 'wait', 'home busy: wait for it, even with w1 free'],
    ['w1 o1:busy', home('o1'), 'wait', 'an overflow home the same'],
    ['w1 w2:down', home('w2'), 'wait', 'down without a recorded loss: wait (the registry records the loss)'],
    ['w1 w2', lost('w2', 'crashed'), 'lost w2 crashed', 'its state is gone: the caller is told'],
    ['w1 w2:down', lost('w2', 'timeout'), 'lost w2 timeout', 'with the reason the registry recorded'],
    ['w1', lost('o1', 'removed'), 'lost o1 removed', 'a removed overflow home'],
    ['w1:busy', lost('w2', 'recycled'), 'lost w2 recycled', 'reported even when nobody is free'],
  ]);
});

test("'none': sessions never steer a request", () => {
  table('none', [
    ['w1 w2', home('w2'), 'w1', 'home ignored'],
    ['w1:busy w2', home('w1'), 'w2', 'never waits for a home'],
    ['w1 w2', lost('w2'), 'w1', 'a lost pin is nobody’s business'],
    ['o1 w1:busy', home('o1'), 'o1', ''],
  ]);
});

test('a targeted request (endSession cleanup) takes its worker or waits for it; a worker that is gone is lost as removed', () => {
  const rows: Array<[string, string, string]> = [
    ['w1 w2', 'w2', 'w2'],
    ['w1 w2:busy', 'w2', 'wait'],
    ['w1 w2:down', 'w2', 'lost w2 removed'],
    ['w1', 'o1', 'lost o1 removed'],
    ['o1 w1', 'o1', 'o1'],
  ];
  for (const affinity of ['prefer', 'strict', 'none'] as const) {
    for (const [workers, target, expected] of rows) {
      for (const placement of [undefined, home('w1'), lost('w1')]) {
        assert.is(decide(pool(workers), affinity, placement, target), expected, `${affinity} | ${workers} | target ${target}: the placement plays no part`);
      }
    }
  }
});

test('a retiring worker is alive = false: routing treats it as gone', () => {
  const retiring: Candidate = { id: 'o1', overflow: true, free: false, alive: false };
  assert.is(decide([retiring], 'prefer', undefined), 'wait');
  assert.is(decide([retiring], 'strict', undefined, 'o1'), 'lost o1 removed');
});

test('isPinned: only a targeted request, or a placed session under strict, waits for one worker', () => {
  const rows: Array<[Affinity, Placement | undefined, string | null, boolean]> = [
    ['prefer', undefined, null, false],
    ['prefer', home('w1'), null, false],
    ['prefer', lost('w1'), null, false],
    ['none', home('w1'), null, false],
    ['strict', undefined, null, false],
    ['strict', home(null), null, false],
    ['strict', home('w1'), null, true],
    ['strict', lost('w1'), null, true],
    ['prefer', undefined, 'w1', true],
    ['none', home('w2'), 'w1', true],
    ['strict', home(null), 'w1', true],
  ];
  for (const [affinity, placement, target, expected] of rows) {
    assert.is(isPinned(affinity, placement, target), expected, `${affinity} ${JSON.stringify(placement ?? null)} target=${target}`);
  }
});

test('route and isPinned agree: a pinned request never takes a worker other than its own', () => {
  const pools = ['w1 w2', 'w1:busy w2', 'w1 w2:busy', 'o1 w1:busy', 'w1:down w2', ''];
  const placements = [undefined, home(null), home('w1'), home('w2'), home('o1'), lost('w1')];
  for (const affinity of ['prefer', 'strict', 'none'] as const) {
    for (const workers of pools) {
      for (const placement of placements) {
        for (const target of [null, 'w1', 'w2']) {
          if (!isPinned(affinity, placement, target)) continue;
          const r = decide(pool(workers), affinity, placement, target);
          const own = target ?? placement!.home!;
          assert.ok(r === 'wait' || r === own || r.startsWith('lost '), `${affinity} | ${workers} | ${JSON.stringify(placement)} | ${target}: ${r}`);
        }
      }
    }
  }
});

test('route reads, never changes: candidates and placement are left as they were', () => {
  const candidates = Object.freeze(pool('w1:busy o1 w2').map((c) => Object.freeze(c)));
  const placement = Object.freeze(lost('w2'));
  for (const affinity of ['prefer', 'strict', 'none'] as const) route(candidates, affinity, placement, null);
  assert.equal(candidates.map((c) => c.id), ['w1', 'o1', 'w2']);
});

test.run();
