#!/usr/bin/env node
// Builds the inspector page script (part of `npm run build`, after tsc):
//   1. type-checks src/inspector/page/client/ with its own tsconfig (DOM, strict): a type
//      error fails the build;
//   2. bundles it with esbuild, with the same function the server uses when it runs from
//      source (src/inspector/page/bundle.ts, here its compiled copy in dist/), and writes
//      dist/src/inspector/page/client.bundle.js, which renderPage() inlines.
// Usage: node scripts/build-page.mjs (needs dist/ from `tsc -p tsconfig.json` first).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsconfig = join(root, 'src', 'inspector', 'page', 'client', 'tsconfig.json');
const compiled = join(root, 'dist', 'src', 'inspector', 'page', 'bundle.js');

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const check = spawnSync(process.execPath, [tsc, '-p', tsconfig, '--noEmit'], { cwd: root, stdio: 'inherit' });
if (check.status !== 0) {
  console.error(`build-page: type errors in the inspector page (tsc -p ${relative(root, tsconfig)})`);
  process.exit(1);
}

if (!existsSync(compiled)) {
  console.error(`build-page: ${relative(root, compiled)} is missing; run tsc -p tsconfig.json first (npm run build does)`);
  process.exit(1);
}
const { buildPageScript, BUNDLE_FILE } = await import(pathToFileURL(compiled).href);
const script = buildPageScript();
mkdirSync(dirname(BUNDLE_FILE), { recursive: true });
writeFileSync(BUNDLE_FILE, script);
console.log(`build-page: ${relative(root, BUNDLE_FILE)} (${Buffer.byteLength(script)} bytes)`);
