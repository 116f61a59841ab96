/**
 * Locating the Python side: the interpreter's real executable and the bundled worker script.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NO_WORKER, WorkerStartError } from '../errors.js';

function findPackageRoot(from: string): string {
  let dir = from;
  for (;;) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) {
      try {
        const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string };
        if (pkg.name === 'pyvisor') return dir;
      } catch {
        // not ours; keep looking
      }
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  // Fallback: src/channel/ (tsx) is two levels below the root, dist/src/channel/ three.
  const here = from.replace(/\\/g, '/');
  return resolve(from, here.includes('/dist/src/') ? '../../..' : '../..');
}

/** Absolute path of the package root (the folder holding pyvisor's package.json). */
export const PACKAGE_ROOT: string = findPackageRoot(dirname(fileURLToPath(import.meta.url)));

/** Absolute path of the bundled worker script, python/dspy_bridge.py. */
export const BRIDGE_SCRIPT: string = join(PACKAGE_ROOT, 'python', 'dspy_bridge.py');

const PROBE = 'import sys; sys.stdout.write(sys.executable)';
const PROBE_TIMEOUT_MS = 15_000;
const cache = new Map<string, Promise<string>>();

/**
 * Resolve an interpreter name or shim (e.g. pyenv's `python3`, which costs 50-100 ms per
 * start) to the real executable, once per distinct input: runs it with
 * `-c "import sys; print(sys.executable)"`. Rejects with WorkerStartError (worker id "-")
 * naming the path tried when the interpreter is missing, not executable, or fails.
 * A failed resolution is not cached (a later call tries again).
 */
export function resolvePython(python: string): Promise<string> {
  let p = cache.get(python);
  if (!p) {
    p = probe(python);
    cache.set(python, p);
    p.catch(() => cache.delete(python));
  }
  return p;
}

/** Forget cached resolutions (tests; or after installing a new interpreter). */
export function clearPythonCache(): void {
  cache.clear();
}

function probe(python: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    if (typeof python !== 'string' || python.length === 0) {
      reject(new WorkerStartError(NO_WORKER, String(python), 'the interpreter path is empty'));
      return;
    }
    const where = python.includes('/') || python.includes('\\')
      ? `path tried: ${python}`
      : `looked up "${python}" on PATH=${process.env.PATH ?? ''}`;
    execFile(python, ['-c', PROBE], { timeout: PROBE_TIMEOUT_MS, windowsHide: true, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) {
        const e = err as NodeJS.ErrnoException & { killed?: boolean; signal?: string; code?: string | number };
        let reason: string;
        if (e.code === 'ENOENT') reason = `interpreter not found (${where})`;
        else if (e.code === 'EACCES') reason = `interpreter is not executable (${where})`;
        else if (e.killed || e.signal) reason = `interpreter did not answer within ${PROBE_TIMEOUT_MS} ms (killed by ${e.signal ?? 'timeout'}; ${where})`;
        else if (typeof e.code === 'number') reason = `interpreter exited with code ${e.code} when asked for sys.executable (${where})`;
        else reason = `${e.message} (${where})`;
        reject(new WorkerStartError(NO_WORKER, python, reason, String(stderr ?? '').trim(), { cause: err }));
        return;
      }
      const exe = String(stdout).trim();
      if (!exe) {
        // sys.executable can be empty (embedded interpreters): keep what we were given.
        resolvePromise(python);
        return;
      }
      access(exe, constants.X_OK).then(
        () => resolvePromise(exe),
        () => resolvePromise(python),
      );
    });
  });
}

/** Synchronous check that a file exists and is executable (for option validation). */
export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
