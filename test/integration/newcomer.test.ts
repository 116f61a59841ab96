/**
 * Layer 3: a newcomer's first five minutes, as issue 14 met them. The package is packed
 * (`npm pack`, from the current build) and installed by its tarball into a fresh app outside
 * the repository; then a TypeScript app compiled strictly (exactOptionalPropertyTypes, no
 * skipLibCheck), a CommonJS app, the `pyvisor` bin, a handler that print()s, and a typo in the
 * handler path: each works or explains itself in one message. Real python3 workers; every one
 * the apps start inherits a mark, and none may outlive the suite.
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { markedProcesses, PYTHON, ROOT } from './helpers.js';

const MARK = `newcomer-test-${randomUUID()}`;
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const app = mkdtempSync(join(tmpdir(), 'pyvisor-newcomer-'));
const env = { ...process.env, PYVISOR_PYTHON: PYTHON, PYVISOR_TEST_MARK: MARK, FORCE_COLOR: '0', npm_config_loglevel: 'error' };

function run(cmd: string, args: string[], cwd = app, timeoutMs = 120_000): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 16 << 20 });
  return { code: r.status, stdout: r.stdout ?? '', stderr: `${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

const HANDLERS = `from pyvisor import command

@command("greet")
def greet(args, ctx):
    print("greeting", args["name"])   # a newcomer's debugging: it must show up
    return {"greeting": "hello " + args["name"]}
`;

const TS_APP = `import { createPool, WorkerStartError, SupervisorEscalationError, type PoolEvents } from 'pyvisor';

// Compiled to out/app.js: the handlers are one directory up from it.
const pool = await createPool({ poolSize: 1, handlers: [new URL('../handlers.py', import.meta.url)] });
pool.on('checkin', (e: PoolEvents['checkin']) => void e.runMs);
const reply = await pool.execute<{ greeting: string }>('greet', { name: 'ada' });
console.log(JSON.stringify(reply));
await pool.stop();

try {
  await createPool({ poolSize: 1, handlers: ['./handlres.py'] });
} catch (error) {
  const known = error instanceof SupervisorEscalationError || error instanceof WorkerStartError;
  console.log(JSON.stringify({ known, first: (error as Error).message.split('\\n')[0] }));
}
`;

const CJS_APP = `'use strict';
const { createPool } = require('pyvisor');
createPool({ poolSize: 1, handlers: [require('node:path').join(__dirname, 'handlers.py')], logs: 'silent' })
  .then(async (pool) => {
    console.log(JSON.stringify(await pool.execute('greet', { name: 'cjs' })));
    await pool.stop();
  })
  .catch((e) => { console.error(e); process.exit(1); });
`;

test('npm pack, then installed by its tarball into a fresh app', () => {
  assert.ok(existsSync(join(ROOT, 'dist', 'src', 'index.js')), 'dist/ is missing: run `npm run build` (npm ci runs it)');
  // --ignore-scripts: the build is the one under test (prepare would rebuild it).
  const pack = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', app], ROOT);
  assert.is(pack.code, 0, pack.stderr);
  const [info] = JSON.parse(pack.stdout) as Array<{ filename: string; size: number; files: Array<{ path: string }> }>;
  const paths = info!.files.map((f) => f.path);
  assert.ok(paths.includes('python/pyvisor/loop.py') && paths.includes('dist/src/index.d.ts'), 'the worker and the declarations are shipped');
  assert.not.ok(paths.some((p) => p.startsWith('python/tests/') || p.includes('__pycache__')), 'no Python tests or bytecode in the package');
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'newcomer-app', version: '1.0.0', private: true, type: 'module' }));
  const install = run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(app, info!.filename)]);
  assert.is(install.code, 0, `npm install of the tarball failed:\n${install.stderr}`);
  assert.ok(existsSync(join(app, 'node_modules', 'pyvisor', 'python', 'pyvisor', '__main__.py')));
  assert.not.ok(existsSync(join(app, 'node_modules', '@statelyai')), '@statelyai/inspect is an optional peer, not installed by default');
  writeFileSync(join(app, 'handlers.py'), HANDLERS);
});

test('a strict TypeScript app (exactOptionalPropertyTypes, no skipLibCheck) compiles and runs; print() shows; a path typo is one message', () => {
  writeFileSync(join(app, 'app.ts'), TS_APP);
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, exactOptionalPropertyTypes: true,
      skipLibCheck: false, outDir: 'out', typeRoots: [join(ROOT, 'node_modules', '@types')], types: ['node'],
    },
    files: ['app.ts'],
  }));
  const build = run(process.execPath, [tsc, '-p', 'tsconfig.json']);
  assert.is(build.code, 0, `tsc:\n${build.stdout}${build.stderr}`);
  const r = run(process.execPath, ['out/app.js']);
  assert.is(r.code, 0, r.stderr);
  const [reply, failure] = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(reply, { greeting: 'hello ada' });
  assert.match(r.stderr, /^\[worker_1 \d+\] greeting ada$/m, 'print() reaches the host stderr, prefixed (logs: inherit)');
  assert.is(failure.known, true, 'a typed pyvisor error');
  // What the workers wrote meanwhile: one line per attempt, no traceback of pyvisor's own frames.
  const workerLines = r.stderr.split('\n').filter((l) => /^\[worker_1 \d+\] /.test(l) && !/greeting ada/.test(l));
  assert.ok(workerLines.length >= 1 && workerLines.length <= 2, workerLines.join('\n'));
  assert.ok(workerLines.every((l) => /could not load handlers '.*handlres\.py': FileNotFoundError: handlers file not found/.test(l)), workerLines.join('\n'));
  assert.match(failure.first, new RegExp(`could not load handlers '${app.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/handlres\\.py': FileNotFoundError`), failure.first);
});

test('a CommonJS app requires it by name', () => {
  writeFileSync(join(app, 'app.cjs'), CJS_APP);
  const r = run(process.execPath, ['app.cjs']);
  assert.is(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout.trim()), { greeting: 'hello cjs' });
  assert.is(r.stderr, '', "logs: 'silent' keeps the worker's print() off stderr");
});

const CTS_APP = `import { join } from 'node:path';
import { createPool, PoolTimeoutError } from 'pyvisor';

createPool({ poolSize: 1, handlers: [join(__dirname, '..', 'handlers.py')], logs: 'silent' }).then(async (pool) => {
  const reply: { greeting: string } = await pool.execute('greet', { name: 'cts' });
  console.log(JSON.stringify({ reply, timeoutError: typeof PoolTimeoutError }));
  await pool.stop();
});
`;

test("a CommonJS TypeScript app (.cts, module nodenext) compiles to require() calls and runs", () => {
  writeFileSync(join(app, 'cjs.cts'), CTS_APP);
  writeFileSync(join(app, 'tsconfig.cjs.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, exactOptionalPropertyTypes: true,
      skipLibCheck: false, outDir: 'out', typeRoots: [join(ROOT, 'node_modules', '@types')], types: ['node'],
    },
    files: ['cjs.cts'],
  }));
  const build = run(process.execPath, [tsc, '-p', 'tsconfig.cjs.json']);
  assert.is(build.code, 0, `tsc:\n${build.stdout}${build.stderr}`);
  const r = run(process.execPath, ['out/cjs.cjs']);
  assert.is(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout.trim()), { reply: { greeting: 'hello cts' }, timeoutError: 'function' });
});

test('the pyvisor bin: call with --handlers and JSON args; a usage error exits 2', () => {
  const bin = join(app, 'node_modules', '.bin', 'pyvisor');
  const ok = run(bin, ['call', 'greet', '--handlers', 'handlers.py', '{"name":"cli"}']);
  assert.is(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /hello cli/);
  const usage = run(bin, ['call']);
  assert.is(usage.code, 2, usage.stderr);
});

test.after(() => {
  // Every Python worker the apps started inherited MARK: none may be left.
  const marked = markedProcesses(MARK);
  rmSync(app, { recursive: true, force: true });
  assert.equal(marked, [], `processes the newcomer apps started are still alive: ${marked.join(', ')}`);
});

test.run();
