/**
 * Layer 3: where a worker's print(), logging and tracebacks go (`logs`). The default, 'inherit',
 * writes each stderr line to the host's stderr prefixed with the worker and its pid, and emits
 * `worker_log`; 'events' only emits; 'silent' drops them. A bad value is refused, naming it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createPool, InvalidOptionError } from '../../src/index.js';
import { ECHO_HANDLERS, PYTHON, assertAllDead, nextEvent, suitePids } from './helpers.js';

/** Run `fn` with process.stderr.write captured (and still written). */
async function capturingStderr(fn: () => Promise<void>): Promise<string> {
  let text = '';
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
  try {
    await fn();
  } finally {
    process.stderr.write = write;
  }
  return text;
}

for (const mode of ['inherit', 'events', 'silent'] as const) {
  test(`logs: '${mode}'`, async () => {
    const pool = suitePids.watch(await createPool({ python: PYTHON, poolSize: 1, handlers: [ECHO_HANDLERS], ...(mode === 'inherit' ? {} : { logs: mode }) }));
    const events: string[] = [];
    pool.on('worker_log', (e: { line: string }) => events.push(e.line));
    const pid = pool.workers()[0]!.pid;
    const stderr = await capturingStderr(async () => {
      const seen = mode === 'silent' ? Promise.resolve() : nextEvent(pool, 'worker_log', (e: { line: string }) => e.line.includes('more noise'));
      await pool.execute('print_noise');
      await seen;
      if (mode === 'silent') await pool.execute('echo', 'flush'); // a later reply: the stderr lines before it were read
    });
    const prefixed = `[worker_1 ${pid}] noise from print()`;
    if (mode === 'inherit') assert.ok(stderr.includes(prefixed), `stderr has ${JSON.stringify(prefixed)}: ${JSON.stringify(stderr)}`);
    else assert.not.ok(stderr.includes('noise from print()'), `nothing on stderr under '${mode}'`);
    if (mode === 'silent') assert.equal(events, []);
    else assert.ok(events.includes('noise from print()'), `worker_log events: ${JSON.stringify(events)}`);
    await pool.stop();
  });
}

test('logs: a bad value is an InvalidOptionError naming the option and the values it takes', async () => {
  try {
    await createPool({ python: PYTHON, logs: 'stdout' as never });
    assert.unreachable('should refuse');
  } catch (error) {
    assert.instance(error, InvalidOptionError);
    assert.match((error as Error).message, /logs.*'inherit', 'events', 'silent'/);
  }
});

test('no Python process started here is still alive', () => {
  assertAllDead(suitePids);
});

test.run();
