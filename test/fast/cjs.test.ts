/**
 * CommonJS: `require('pyvisor')`, `require('pyvisor/testing')` and `require('pyvisor/cluster')`
 * work (the package's exports have a `default` condition over the ES modules, which Node >= 20.19
 * loads with require(esm)). test/fixtures/cjs-app.cjs requires all three by the package name and
 * runs a simulated pool. Needs the build (dist/), which `npm ci` / `npm install` makes.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const ROOT = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..');

test('a CommonJS app requires pyvisor, pyvisor/testing and pyvisor/cluster by name, and a pool answers', () => {
  assert.ok(existsSync(join(ROOT, 'dist', 'src', 'index.js')), 'dist/ is missing: run `npm run build` (npm ci runs it)');
  const r = spawnSync(process.execPath, [join(ROOT, 'test', 'fixtures', 'cjs-app.cjs')], { encoding: 'utf8', cwd: ROOT });
  assert.is(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout.trim()), { value: { n: 42 }, types: ['function', 'function', 'function', 'function', 'function'] });
  assert.not.match(r.stderr, /ERR_REQUIRE|ERR_PACKAGE_PATH_NOT_EXPORTED/);
});

test.run();
