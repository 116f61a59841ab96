/**
 * The demo's summary fits an 80-column terminal: every row, however long its figures, is broken
 * at spaces under its own first column, and the labels stay where they were.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { summary, type DemoResult } from '../../src/demo/run.js';
import { ansiStyle, labelled, visible } from '../../src/demo/view.js';

const result = (over: Partial<DemoResult> = {}): DemoResult => ({
  executions: 123_456, wrong: 0, failed: 12, restores: 1_234, retries: 56, restarts: 1, throughput: 4_321,
  latency: { p50: 12.3, p99: 456.7 }, poolLatency: { p50: 1.2, p99: 45.6 },
  ok: true, interrupted: false, reasons: [], elapsedMs: 20_000,
  kill: { workerId: 'worker_2', pid: 1_234_567, newPid: 1_234_999, recoveryMs: 312 }, leftoverPids: [],
  ...over,
});
const options = { sessions: 12, workers: 4, kill: true };

test('every line of the summary is at most 80 columns, styled or not, PASS or FAIL', () => {
  const failing = result({ ok: false, reasons: ['3 executions answered wrong (expected the echo of their question, got another session\'s)', 'worker_2 did not come back after SIGKILL within 10000 ms'], leftoverPids: [11, 12, 13] });
  for (const text of [summary(result(), options), summary(result(), options, ansiStyle()), summary(failing, options, ansiStyle())]) {
    const lines = text.split('\n');
    const wide = lines.filter((l) => visible(l) > 80);
    assert.equal(wide, [], 'lines wider than 80 columns');
    assert.ok(lines.some((l) => l.startsWith('  latency    p50 ')), 'labels in their column');
  }
  const text = summary(failing, options);
  assert.match(text, /\n  verdict    FAIL — 3 executions answered wrong/);
  assert.match(text, /\n {13}worker_2 did not come back/, 'a second reason under the first');
});

test('labelled: breaks at spaces under the first column; a word longer than the line stays whole', () => {
  assert.equal(labelled('  k', 'aaa bbb ccc', 5, 12), ['  k  aaa bbb', '     ccc']);
  assert.equal(labelled('  k', 'x'.repeat(20), 5, 12), [`  k  ${'x'.repeat(20)}`]);
  assert.equal(labelled('  k', '', 5, 12), ['  k  ']);
});

test.run();
