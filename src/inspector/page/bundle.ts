/**
 * The page script: the TypeScript in ./client/ (DOM, strict), bundled by esbuild into one IIFE
 * that renderPage() inlines, so the page stays one self-contained document.
 *
 * Where the bundle comes from:
 *  - `npm run build` (which `prepare` runs, so `npm ci` and the published package have it)
 *    type-checks ./client/ and writes the bundle to dist/src/inspector/page/client.bundle.js,
 *    with buildPageScript() below (scripts/build-page.mjs), so the build and development bundle
 *    the same way.
 *  - At run time this module finds the package root from its own location, which is either
 *    <root>/src/inspector/page/bundle.ts (from source, under tsx) or
 *    <root>/dist/src/inspector/page/bundle.js (compiled: tsc's outDir "dist", rootDir "."), and
 *    so the bundle at <root>/dist/src/inspector/page/client.bundle.js in both cases.
 *  - Compiled, that file is used as it is. From source, it is used only if it is newer than
 *    every file of ./client/. Otherwise (or if the file is missing) the script is bundled
 *    in-process with esbuild's API (a devDependency, present in development), in memory; with
 *    no esbuild, an older file is still used, and with neither renderPage() throws and says to
 *    run the build. Whichever it is, it is done once per process, on the first renderPage().
 * The in-process bundle is not type-checked (esbuild strips types); the build is.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
/** The folder that holds src/: the package root, or its dist/ when this module is compiled. */
const base = resolve(here, '..', '..', '..');
const compiled = basename(base) === 'dist';
const root = compiled ? dirname(base) : base;

/** The page script's sources and entry point. */
export const CLIENT_DIR = join(root, 'src', 'inspector', 'page', 'client');
const ENTRY = join(CLIENT_DIR, 'main.ts');
/** Where `npm run build` writes the bundle. */
export const BUNDLE_FILE = join(root, 'dist', 'src', 'inspector', 'page', 'client.bundle.js');

interface EsbuildApi {
  buildSync(options: Record<string, unknown>): { outputFiles?: Array<{ text: string }> };
}

/** Bundle ./client/ with esbuild (throws if esbuild is not installed). */
export function buildPageScript(): string {
  const esbuild = createRequire(import.meta.url)('esbuild') as EsbuildApi;
  const result = esbuild.buildSync({
    entryPoints: [ENTRY],
    tsconfig: join(CLIENT_DIR, 'tsconfig.json'),
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    target: 'es2020',
    minify: true,
    charset: 'utf8',
    legalComments: 'none',
    logLevel: 'silent',
  });
  const text = result.outputFiles?.[0]?.text;
  if (!text) throw new Error('inspector page: esbuild produced no output');
  // The script is inlined in a <script> element: it must not be able to end it.
  if (/<\/script|<!--/i.test(text)) throw new Error('inspector page: the bundle contains "</script" or "<!--"');
  return text;
}

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs);
  }
  return newest;
}

function load(): string {
  const built = existsSync(BUNDLE_FILE) ? BUNDLE_FILE : null;
  const fromSource = !compiled && existsSync(CLIENT_DIR);
  if (built && (compiled || !fromSource || statSync(built).mtimeMs >= newestSource(CLIENT_DIR))) return readFileSync(built, 'utf8');
  if (existsSync(ENTRY)) {
    try {
      return buildPageScript();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err;
      // No esbuild (not a development install): an older bundle is better than none.
      if (built) return readFileSync(built, 'utf8');
    }
  }
  throw new Error(`inspector page: the page script ${BUNDLE_FILE} is missing; run \`npm run build\``);
}

let script: string | null = null;

/** The page script (loaded or built on first use, then kept). */
export function pageScript(): string {
  return (script ??= load());
}
