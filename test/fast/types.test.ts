/**
 * The public types, checked by the compiler: test/types/*.ts are compiled with tsc (strict);
 * each `@ts-expect-error` there must be an error, so an event name or payload field that the
 * types stopped refusing fails this test, as does any error in the valid uses. And the
 * declarations a user gets: emitted afresh, they import nothing from xstate, and an app compiled
 * with exactOptionalPropertyTypes and without skipLibCheck type-checks against them.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const ROOT = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

test('typed events: valid uses compile, unknown events and wrong fields do not (test/types/events.ts)', () => {
  const r = spawnSync(process.execPath, [tsc, '-p', join(ROOT, 'test', 'types', 'tsconfig.json')], { encoding: 'utf8', cwd: ROOT });
  assert.is(r.status, 0, `tsc reported:\n${r.stdout}${r.stderr}`);
});

/** Every declaration file reachable from `entries` by relative imports, and the bare packages each imports. */
function declarationGraph(entries: string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const visit = (file: string): void => {
    if (graph.has(file)) return;
    const packages: string[] = [];
    graph.set(file, packages);
    for (const [, spec] of readFileSync(file, 'utf8').matchAll(/(?:from\s+|import\()\s*['"]([^'"]+)['"]/g)) {
      if (!spec!.startsWith('.')) packages.push(spec!);
      else {
        const next = resolve(dirname(file), spec!.replace(/\.js$/, '.d.ts'));
        if (existsSync(next)) visit(next);
      }
    }
  };
  for (const entry of entries) visit(entry);
  return graph;
}

const STRICT_APP = `
import { createPool, PythonPool, type PoolEvents } from './src/index.js';
import { createSimulation } from './src/testing/index.js';
import { createClusterPool } from './src/cluster/index.js';

export async function app(): Promise<void> {
  const sim = createSimulation();
  const pool = sim.createPool({ poolSize: 1 });
  pool.on('worker_log', (e: PoolEvents['worker_log']) => void e.line);
  const state: unknown = pool.actor.getSnapshot().value;
  const stop = pool.observeInspection((e) => void (e.type === '@xstate.event' ? e.event.type : e.actorRef.sessionId));
  for await (const chunk of pool.stream<string>('tokens', { n: 2 })) void chunk.length;
  stop();
  void state;
  await pool.stop();
  const real = await createPool({ poolSize: 1, handlers: ['./h.py'], logs: 'events' });
  await real.stop();
  void PythonPool;
  void createClusterPool;
}
`;

test('the public declarations import nothing from xstate, and a strict app (exactOptionalPropertyTypes, no skipLibCheck) compiles', () => {
  // Inside node_modules/, so that the app resolves the dependencies' own declarations as an installed package would.
  const cache = join(ROOT, 'node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  const out = mkdtempSync(join(cache, 'pyvisor-dts-'));
  try {
    const emit = spawnSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.json'), '--emitDeclarationOnly', '--declarationMap', 'false', '--sourceMap', 'false', '--outDir', out], { encoding: 'utf8', cwd: ROOT });
    assert.is(emit.status, 0, `declaration emit failed:\n${emit.stdout}${emit.stderr}`);
    const graph = declarationGraph(['src/index.d.ts', 'src/testing/index.d.ts', 'src/cluster/index.d.ts'].map((e) => join(out, e)));
    const xstate = [...graph].filter(([, packages]) => packages.some((p) => p === 'xstate' || p.startsWith('xstate/'))).map(([file]) => relative(out, file));
    assert.equal(xstate, [], 'public declarations that import xstate');
    assert.ok(graph.size > 20, `walked ${graph.size} declaration files`);
    writeFileSync(join(out, 'app.ts'), STRICT_APP);
    writeFileSync(join(out, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, exactOptionalPropertyTypes: true, skipLibCheck: false, noEmit: true, types: ['node'] },
      files: ['app.ts'],
    }));
    const app = spawnSync(process.execPath, [tsc, '-p', join(out, 'tsconfig.json')], { encoding: 'utf8', cwd: out });
    assert.is(app.status, 0, `the strict app does not compile:\n${app.stdout}${app.stderr}`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test.run();
