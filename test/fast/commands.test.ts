/**
 * pool.commands<H>() on the simulation: each property is the pool's execute under that name
 * (args, options, the defaults merged under a call's own), `.stream` its stream (chunks, window,
 * result), errors are the pool's; and the proxy is inert as an object — not thenable, no
 * symbol, Object.prototype name or toJSON becomes a command, nothing can be written to it, and
 * inspecting, printing or serializing it sends no request. The types are checked by tsc in
 * test/integration/typegen.test.ts against a file `pyvisor types` wrote.
 */
import { inspect } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createCommands } from '../../src/core/commands.js';
import type { RequestObservation } from '../../src/local/pool.js';
import type { ExecuteOptions, StreamOptions } from '../../src/options.js';
import type { ResultStream } from '../../src/core/stream.js';
import { setup, type Harness } from './pool.harness.js';

interface Handlers {
  echo: { args: unknown; result: unknown };
  greet: { args: { name: string }; result: { greeting: string } };
  count: { args: { n: number }; chunk: number; result: { total: number } };
  raise: { args: { message: string } | null; result: never };
  get: { args: { key: string }; result: { value: unknown; worker: string } };
  put: { args: { key: string; value: unknown }; result: string };
  nope: { args: null; result: unknown };
}

function harness(): Harness {
  return setup({ poolSize: 1 }, {}, (sim) =>
    sim
      .handle('greet', (a: { name: string }) => ({ greeting: `Hello, ${a.name}` }))
      .handle('count', function* (a: { n: number }) {
        for (let i = 0; i < a.n; i++) yield i;
        return { total: a.n };
      }),
  );
}

function watch(h: Harness): RequestObservation[] {
  const seen: RequestObservation[] = [];
  h.pool.observeRequests((e) => seen.push(e));
  return seen;
}

test('a property is execute under its name: args in, result out', async () => {
  const h = harness();
  await h.pool.whenReady();
  const seen = watch(h);
  const py = h.pool.commands<Handlers>();
  assert.equal(await py.greet({ name: 'Ada' }), { greeting: 'Hello, Ada' });
  assert.equal(await py.echo([1, 'two', { three: 3 }]), [1, 'two', { three: 3 }]);
  assert.is(await py.echo(), null, 'args left out are null, as with execute(cmd)');
  const sent = seen.filter((e) => e.phase === 'sent').map((e) => [e.cmd, e.args]);
  assert.equal(sent, [['greet', { name: 'Ada' }], ['echo', [1, 'two', { three: 3 }]], ['echo', null]]);
  assert.is(h.pool.stats().totalCommands, 3);
  await h.finish();
});

test('defaults go with every call, a call’s own options win, and nothing is shared between calls', async () => {
  const h = harness();
  await h.pool.whenReady();
  const seen = watch(h);
  const defaults: ExecuteOptions = { sessionId: 'user_1' };
  const py = h.pool.commands<Handlers>(defaults);
  await py.put({ key: 'k', value: 42 });
  assert.equal(await py.get({ key: 'k' }), { value: 42, worker: 'worker_1' }, 'same session, same state');
  assert.equal((await py.get({ key: 'k' }, { sessionId: 'user_2' })).value, null, 'another session sees none');
  await py.echo(1, { sessionId: null });
  const sessions = seen.filter((e) => e.phase === 'sent').map((e) => e.sessionId);
  assert.equal(sessions, ['user_1', 'user_1', 'user_2', null]);
  assert.equal(defaults, { sessionId: 'user_1' }, 'the defaults object is not changed');
  defaults.sessionId = 'changed_later';
  await py.echo(2);
  assert.is(seen.filter((e) => e.phase === 'sent').at(-1)!.sessionId, 'user_1', 'defaults are copied when the proxy is made');
  await h.finish();
});

test('.stream reads a generator command’s chunks as they come, with its window and final result; called, it returns the chunks', async () => {
  const h = harness();
  await h.pool.whenReady();
  const py = h.pool.commands<Handlers>({ sessionId: 's' });
  const stream: ResultStream<number, { total: number }> = py.count.stream({ n: 5 }, { window: 2 });
  await h.advance(1);
  assert.is(h.sim.processOf('worker_1')!.chunksProduced, 2, 'the window reached the worker');
  const chunks: number[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.equal(chunks, [0, 1, 2, 3, 4]);
  assert.equal(await stream.result, { total: 5 });
  assert.equal(await py.count({ n: 3 }), [0, 1, 2], 'execute() of a generator: its chunks as a list');
  await h.finish();
});

test('errors are the pool’s: Python errors, unknown commands, invalid options, a closed pool', async () => {
  const h = harness();
  await h.pool.whenReady();
  const py = h.pool.commands<Handlers>();
  const failure = async (p: Promise<unknown>) => p.then(() => assert.unreachable('should fail'), (e: Error & { code?: string }) => e);
  const raised = await failure(py.raise({ message: 'kaboom' }));
  assert.is(raised.code, 'PYTHON_ERROR');
  assert.match(raised.message, /kaboom/);
  assert.is((await failure(py.nope(null))).code, 'PYTHON_ERROR');
  assert.is((await failure(py.echo(1, { timeout: -5 }))).code, 'INVALID_OPTION');
  const badStream = h.pool.commands<Handlers>({ sessionId: '' }).count.stream({ n: 1 });
  assert.is((await failure(badStream.next())).code, 'INVALID_OPTION');
  await h.finish();
  assert.is((await failure(py.echo(1))).code, 'POOL_CLOSED');
});

test('the proxy is not thenable: awaiting it gives the proxy itself, and no request is sent', async () => {
  const h = harness();
  await h.pool.whenReady();
  const py = h.pool.commands<Handlers>();
  assert.is((py as unknown as { then?: unknown }).then, undefined);
  assert.is(await py, py);
  assert.is(await Promise.resolve(py), py);
  assert.is(h.pool.stats().totalCommands, 0);
  await h.finish();
});

test('symbols, Object.prototype names and toJSON are no commands; inspecting, printing and serializing send nothing', async () => {
  const h = harness();
  await h.pool.whenReady();
  const seen = watch(h);
  const py = h.pool.commands<Handlers>() as unknown as Record<string | symbol, unknown>;
  for (const key of [Symbol.iterator, Symbol.asyncIterator, Symbol.toPrimitive, Symbol.for('nodejs.util.inspect.custom'), 'toJSON', 'then']) {
    assert.is(py[key], undefined, String(key));
  }
  assert.is(py.toString, Object.prototype.toString);
  assert.is(py.hasOwnProperty, Object.prototype.hasOwnProperty);
  assert.is(py.constructor, Object);
  assert.is(py[Symbol.toStringTag], 'PyvisorCommands');
  assert.is(String(py), '[object PyvisorCommands]');
  assert.is(`${py}`, '[object PyvisorCommands]');
  assert.is(JSON.stringify(py), '{}');
  assert.is(JSON.stringify({ py }), '{"py":{}}');
  assert.match(inspect(py), /PyvisorCommands/);
  assert.equal(Object.keys(py), []);
  assert.is('greet' in py, false);
  assert.equal({ ...py }, {});
  await h.advance(10);
  assert.equal(seen, [], 'no request was sent');
  assert.is(h.pool.stats().totalCommands, 0);
  await h.finish();
});

test('the proxy cannot be written to; a command is one function, named after it', async () => {
  const h = harness();
  const py = h.pool.commands<Handlers>();
  assert.throws(() => {
    (py as unknown as Record<string, unknown>).greet = () => 'spoofed';
  }, TypeError);
  assert.throws(() => Object.defineProperty(py, 'x', { value: 1 }), TypeError);
  assert.throws(() => delete (py as unknown as Record<string, unknown>).greet, TypeError);
  assert.is(py.greet, py.greet);
  assert.is(py.greet.name, 'greet');
  assert.is(py.count.stream.name, 'count.stream');
  assert.is(Object.isFrozen(py.greet), true);
  assert.is.not(h.pool.commands<Handlers>().greet, py.greet, 'each proxy has its own functions (and defaults)');
  await h.finish();
});

test('createCommands over any executor: the name, the args as given, the options merged', async () => {
  const calls: Array<[string, string, unknown, unknown]> = [];
  const executor = {
    execute: <T>(command: string, args?: unknown, options?: ExecuteOptions) => {
      calls.push(['execute', command, args, options]);
      return Promise.resolve(`ran ${command}` as T);
    },
    stream: <T>(command: string, args?: unknown, options?: StreamOptions) => {
      calls.push(['stream', command, args, options]);
      return 'a stream' as unknown as ResultStream<T>;
    },
  };
  const py = createCommands(executor, { timeout: 100, idempotent: true });
  assert.is(await py['get-user']!(7), 'ran get-user', 'any name, also one that is no identifier');
  await py.thing!(undefined, { timeout: 5 });
  assert.is(py.tokens!.stream({ a: 1 }, { window: 4 }) as unknown, 'a stream');
  assert.equal(calls, [
    ['execute', 'get-user', 7, { timeout: 100, idempotent: true }],
    ['execute', 'thing', undefined, { timeout: 5, idempotent: true }],
    ['stream', 'tokens', { a: 1 }, { timeout: 100, idempotent: true, window: 4 }],
  ]);
  const bare = createCommands(executor);
  await bare.x!();
  assert.equal(calls.at(-1), ['execute', 'x', undefined, {}]);
});

test.run();
