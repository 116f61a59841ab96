/**
 * The public types, checked by the compiler: test/types/*.ts are compiled with tsc (strict);
 * each `@ts-expect-error` there must be an error, so an event name or payload field that the
 * types stopped refusing fails this test, as does any error in the valid uses.
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const ROOT = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

test('typed events: valid uses compile, unknown events and wrong fields do not (test/types/events.ts)', () => {
  const r = spawnSync(process.execPath, [tsc, '-p', join(ROOT, 'test', 'types', 'tsconfig.json')], { encoding: 'utf8', cwd: ROOT });
  assert.is(r.status, 0, `tsc reported:\n${r.stdout}${r.stderr}`);
});

test.run();
