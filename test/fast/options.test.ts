/**
 * Pool options: defaults, presets, and strict validation — every option's bad values and
 * unknown keys (top level, restart.*, recycle.*, execute options) throw InvalidOptionError
 * naming the key and the value, before anything is started.
 */
import os from 'node:os';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { InvalidOptionError, WorkerStartError } from '../../src/errors.js';
import { defaults, presets, resolveOptions, type PoolOptions } from '../../src/options.js';
import { createSimulation } from '../../src/testing/index.js';
import { flush } from './pool.harness.js';

const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;

/** How the message must show a refused value. */
function shown(value: unknown): string {
  if (typeof value === 'number') return String(value);
  return JSON.stringify(value);
}

function rejects(options: unknown, key: string, valueText?: string): void {
  try {
    resolveOptions(options as PoolOptions);
  } catch (error) {
    assert.instance(error, InvalidOptionError, `${JSON.stringify(options)}: not an InvalidOptionError: ${error}`);
    const e = error as InvalidOptionError;
    assert.is(e.code, 'INVALID_OPTION');
    assert.is(e.option, key, `${e.message} should name ${key}`);
    assert.match(e.message, `"${key}"`);
    if (valueText !== undefined) assert.match(e.message, valueText, `${e.message} should show the bad value ${valueText}`);
    return;
  }
  assert.unreachable(`${JSON.stringify(options)} was accepted`);
}

test('defaults: the documented values, plus the documented extras', () => {
  const saved = process.env.PYVISOR_PYTHON;
  delete process.env.PYVISOR_PYTHON;
  try {
    const o = resolveOptions();
    assert.equal(
      {
        poolSize: o.poolSize,
        maxOverflow: o.maxOverflow,
        checkoutTimeout: o.checkoutTimeout,
        requestTimeout: o.requestTimeout,
        healthCheckInterval: o.healthCheckInterval,
        lazy: o.lazy,
        maxQueue: o.maxQueue,
        affinity: o.affinity,
        python: o.python,
        handlers: o.handlers,
        restart: o.restart,
        shutdownTimeout: o.shutdownTimeout,
        recycle: o.recycle,
        inspect: o.inspect,
      },
      {
        poolSize: Math.min(cores, 4),
        maxOverflow: Math.min(cores, 4),
        checkoutTimeout: 5000,
        requestTimeout: 30_000,
        healthCheckInterval: 30_000,
        lazy: false,
        maxQueue: 1000,
        affinity: 'auto',
        python: 'python3',
        handlers: [],
        restart: { strategy: 'one_for_one', maxRestarts: 3, maxSeconds: 5, root: { maxRestarts: 3, maxSeconds: 30 } },
        shutdownTimeout: 5000,
        recycle: { maxRequests: 0, maxRssMb: 0, maxAgeMs: 0 },
        inspect: undefined,
      },
    );
    assert.equal(
      [o.sessionTtl, o.overflowIdle, o.startTimeout, o.pingTimeout, o.interruptGrace, o.maxConsecutiveErrors, o.maxFrameBytes, o.env, o.cwd],
      [30 * 60_000, 10_000, 30_000, 5_000, 1_000, 10, 64 * 1024 * 1024, {}, undefined],
    );
    process.env.PYVISOR_PYTHON = '/opt/py/bin/python3.12';
    assert.is(resolveOptions().python, '/opt/py/bin/python3.12', '$PYVISOR_PYTHON is the default interpreter');
    assert.is(resolveOptions({ python: 'python3.11' }).python, 'python3.11', 'the option wins over the variable');
  } finally {
    if (saved === undefined) delete process.env.PYVISOR_PYTHON;
    else process.env.PYVISOR_PYTHON = saved;
  }
});

test('given values override defaults; nested objects merge key by key; undefined means default', () => {
  const o = resolveOptions({ poolSize: 3, restart: { maxRestarts: 10 }, recycle: { maxAgeMs: 60_000 }, checkoutTimeout: undefined, affinity: 'strict' });
  assert.is(o.poolSize, 3);
  assert.is(o.affinity, 'strict');
  assert.is(o.checkoutTimeout, 5000);
  assert.equal(o.restart, { strategy: 'one_for_one', maxRestarts: 10, maxSeconds: 5, root: { maxRestarts: 3, maxSeconds: 30 } });
  assert.equal(o.recycle, { maxRequests: 0, maxRssMb: 0, maxAgeMs: 60_000 });
});

test('resolved options do not alias the caller\'s arrays and objects', () => {
  const handlers = ['a.py'];
  const env = { A: '1' };
  const o = resolveOptions({ handlers, env });
  handlers.push('b.py');
  env.A = '2';
  assert.equal(o.handlers, ['a.py']);
  assert.equal(o.env, { A: '1' });
  assert.is.not(defaults().restart, defaults().restart);
});

test('presets: dev (2 workers, lazy), test (4 workers, checkout 10 s), prod (cores×3, eager)', () => {
  assert.equal({ ...presets.dev }, { poolSize: 2, lazy: true });
  assert.equal({ ...presets.test }, { poolSize: 4, checkoutTimeout: 10_000 });
  assert.equal({ ...presets.prod }, { poolSize: cores * 3, lazy: false });
  for (const preset of [presets.dev, presets.test, presets.prod]) resolveOptions({ ...preset });
  assert.is(resolveOptions({ ...presets.dev, poolSize: 1 }).poolSize, 1, 'a preset is a starting point');
  assert.ok(Object.isFrozen(presets.dev) && Object.isFrozen(presets.test) && Object.isFrozen(presets.prod));
  assert.throws(() => {
    'use strict';
    (presets.dev as { poolSize: number }).poolSize = 99;
  });
  assert.is(presets.dev.poolSize, 2);
});

test('the options argument itself must be an object', () => {
  for (const bad of [5, 'x', null, [], true]) rejects(bad, 'options', `got ${shown(bad)}`);
});

test('unknown keys are refused, naming the key; a near miss gets a suggestion', () => {
  rejects({ workers: 4 }, 'workers');
  rejects({ poolsize: 4 }, 'poolsize');
  try {
    resolveOptions({ poolsize: 4 } as PoolOptions);
  } catch (e) {
    assert.match((e as Error).message, 'did you mean "poolSize"');
  }
  rejects({ restart: { intensity: 3 } }, 'restart.intensity');
  rejects({ restart: { maxrestarts: 3 } }, 'restart.maxrestarts');
  rejects({ recycle: { maxRss: 100 } }, 'recycle.maxRss');
});

const BAD: Array<[string, unknown[]]> = [
  ['poolSize', [0, -1, 1.5, '2', NaN, Infinity, null, true]],
  ['maxOverflow', [-1, 0.5, '1', NaN, null]],
  ['checkoutTimeout', [0, -1, NaN, Infinity, 2 ** 31, '100', null]],
  ['requestTimeout', [0, -5, NaN, Infinity, 2 ** 31, '1000', {}]],
  ['healthCheckInterval', [-1, NaN, Infinity, 2 ** 31, '30000']],
  ['lazy', ['yes', 1, 0, null]],
  ['maxQueue', [-1, 1.5, '10', NaN]],
  ['affinity', ['sticky', 'PREFER', 1, null]],
  ['python', ['', 5, null, ['python3']]],
  ['handlers', ['a.py', [''], [1], [null], {}]],
  ['restart', ['one_for_one', 5, null, []]],
  ['shutdownTimeout', [-1, NaN, 2 ** 31, '5000']],
  ['recycle', [100, 'x', null, []]],
  ['inspect', [5, 'x', {}, null, true]],
  ['sessionTtl', [-1, NaN, Infinity, '60000']],
  ['overflowIdle', [-1, NaN, '1000']],
  ['startTimeout', [0, -1, NaN]],
  ['pingTimeout', [0, -1, NaN]],
  ['interruptGrace', [-1, NaN, '1000']],
  ['maxConsecutiveErrors', [0, -1, 1.5, '10']],
  ['maxFrameBytes', [0, 15, 1.5, '1000']],
  ['env', ['A=1', null, [], { A: 1 }, { A: null }]],
  ['cwd', ['', 5, null]],
];

test('every top-level option: each bad value is refused, naming the key and showing the value', () => {
  for (const [key, values] of BAD) {
    for (const value of values) rejects({ [key]: value }, key, `got ${shown(value)}`);
  }
});

test('restart.* and recycle.*: each bad value is refused, naming the nested key', () => {
  const nested: Array<[string, string, unknown[]]> = [
    ['restart', 'strategy', ['one_for_rest', 'simple_one_for_one', 1, null]],
    ['restart', 'maxRestarts', [-1, 1.5, '3', NaN, null]],
    ['restart', 'maxSeconds', [0, -1, NaN, Infinity, '5', 2_147_484, null]],
    ['recycle', 'maxRequests', [-1, 1.5, '100', null]],
    ['recycle', 'maxRssMb', [-1, NaN, Infinity, '512', null]],
    ['recycle', 'maxAgeMs', [-1, NaN, 2 ** 31, '60000', null]],
  ];
  for (const [parent, key, values] of nested) {
    for (const value of values) rejects({ [parent]: { [key]: value } }, `${parent}.${key}`, `got ${shown(value)}`);
  }
});

test('a lazy pool needs a queue: lazy with maxQueue 0 is refused', () => {
  rejects({ lazy: true, maxQueue: 0 }, 'maxQueue', '0');
  resolveOptions({ lazy: true, maxQueue: 1 });
  resolveOptions({ lazy: false, maxQueue: 0 });
});

test('good values of every option are accepted', () => {
  const o = resolveOptions({
    poolSize: 1,
    maxOverflow: 0,
    checkoutTimeout: 1,
    requestTimeout: 2 ** 31 - 1,
    healthCheckInterval: 0,
    lazy: true,
    maxQueue: 1,
    affinity: 'none',
    python: '/usr/bin/python3',
    handlers: ['handlers.py', 'my_pkg.handlers'],
    restart: { strategy: 'rest_for_one', maxRestarts: 0, maxSeconds: 0.5 },
    shutdownTimeout: 0,
    recycle: { maxRequests: 1000, maxRssMb: 512.5, maxAgeMs: 3_600_000 },
    inspect: { next: () => {} },
    sessionTtl: 0,
    overflowIdle: 0,
    startTimeout: 1,
    pingTimeout: 1,
    interruptGrace: 0,
    maxConsecutiveErrors: 1,
    maxFrameBytes: 16,
    env: { PYTHONUNBUFFERED: '1' },
    cwd: '/tmp',
  });
  assert.is(o.restart.strategy, 'rest_for_one');
  resolveOptions({ inspect: () => {} });
  resolveOptions({ restart: { strategy: 'one_for_all' }, affinity: 'prefer' });
});

test('execute options: bad values and unknown keys are refused with InvalidOptionError, before anything runs', async () => {
  const sim = createSimulation();
  sim.handle('echo', (a) => a);
  const pool = sim.createPool({ poolSize: 1, healthCheckInterval: 0 });
  await pool.whenReady();
  const cases: Array<[unknown, string]> = [
    [{ sessionId: '' }, 'sessionId'],
    [{ sessionId: 5 }, 'sessionId'],
    [{ timeout: 0 }, 'timeout'],
    [{ timeout: -1 }, 'timeout'],
    [{ timeout: '100' }, 'timeout'],
    [{ timeout: 2 ** 31 }, 'timeout'],
    [{ checkoutTimeout: 0 }, 'checkoutTimeout'],
    [{ checkoutTimeout: NaN }, 'checkoutTimeout'],
    [{ signal: {} }, 'signal'],
    [{ signal: 'abort' }, 'signal'],
    [{ idempotent: 'yes' }, 'idempotent'],
    [{ idempotent: 1 }, 'idempotent'],
    [{ retries: 3 }, 'retries'],
    [{ session: 'a' }, 'session'],
    [null, 'options'],
    ['fast', 'options'],
  ];
  for (const [options, key] of cases) {
    const error = await pool.execute('echo', null, options as never).then(
      () => undefined,
      (e) => e,
    );
    assert.instance(error, InvalidOptionError, `${JSON.stringify(options)} accepted`);
    assert.is((error as InvalidOptionError).option, key);
    if (key !== 'options') assert.match((error as Error).message, 'execute option');
  }
  assert.is(pool.stats().totalCommands, 0, 'nothing ran');
  // The good ones.
  assert.is(await pool.execute('echo', 1, { sessionId: null }), 1, 'null: anonymous');
  assert.is(await pool.execute('echo', 2, { sessionId: 's', timeout: 10, checkoutTimeout: 10, signal: new AbortController().signal, idempotent: false }), 2);
  assert.is(await pool.execute('echo', 3, { sessionId: undefined, timeout: undefined }), 3, 'undefined: the default');
  const stopping = pool.stop();
  await flush();
  await stopping;
  assert.equal(sim.alive(), []);
});

test('createPool validates before it starts anything', async () => {
  const { createPool } = await import('../../src/local/createPool.js');
  for (const [options, key] of [
    [{ poolSize: 0 }, 'poolSize'],
    [{ restart: { maxRestarts: -1 } }, 'restart.maxRestarts'],
    [{ nope: 1 }, 'nope'],
  ] as Array<[PoolOptions, string]>) {
    const error = await createPool(options).then(
      () => undefined,
      (e) => e,
    );
    assert.instance(error, InvalidOptionError);
    assert.is((error as InvalidOptionError).option, key);
  }
});

test('createPool: an interpreter that does not exist → WorkerStartError naming the path tried, not an ENOENT stack', async () => {
  const { createPool } = await import('../../src/local/createPool.js');
  for (const python of ['/nonexistent/bin/python3', 'no-such-python-for-pyvisor']) {
    const error = await createPool({ python, poolSize: 1 }).then(
      () => undefined,
      (e) => e,
    );
    assert.instance(error, WorkerStartError);
    assert.is((error as WorkerStartError).code, 'WORKER_START_FAILED');
    assert.is((error as WorkerStartError).python, python);
    assert.match((error as Error).message, python);
    assert.not.match((error as Error).message, 'ENOENT');
  }
});

test('handlers: file: URLs (objects or strings, as import.meta.resolve gives them) are their paths; other URLs and broken ones are refused by name', () => {
  assert.equal(resolveOptions({ handlers: [new URL('file:///srv/app/handlers.py'), 'file:///srv/app/more.py', 'app.handlers', 'rel/h.py'] }).handlers, ['/srv/app/handlers.py', '/srv/app/more.py', 'app.handlers', 'rel/h.py']);
  for (const bad of [[new URL('https://example.invalid/h.py')], ['file://remote-host/h.py'], [''], [42]]) {
    assert.throws(() => resolveOptions({ handlers: bad as never }), (e: Error) => e instanceof InvalidOptionError && /handlers/.test(e.message));
  }
});

test.run();
