/**
 * `pyvisor types <handlers...> [-o FILE] [--python PATH] [--builtins]`: TypeScript types for the
 * commands of handler files, read from their Python annotations by `python3 -m pyvisor.typegen`
 * (python/pyvisor/typegen/), which loads the files as a worker does. docs/TYPES.md has the mapping.
 *
 * Exit codes: 0 written; 1 a handler file or module could not load (the Python one-line message:
 * the file and the error), the interpreter is missing, or the output cannot be written; 2 usage.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { PACKAGE_ROOT } from '../channel/python.js';
import { handlerOf } from '../options.js';

export interface TypesOptions {
  python?: string;
  out?: string;
  builtins?: boolean;
  verbose?: boolean;
}

export interface TypesIO {
  stdout(text: string): void;
  stderr(text: string): void;
}

/** The typegen's exit code for a handler file that failed to import (as the worker's). */
const HANDLER_IMPORT = 3;

interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  error?: NodeJS.ErrnoException;
}

function runTypegen(python: string, args: string[]): Promise<Ran> {
  return new Promise((resolvePromise) => {
    const pythonDir = join(PACKAGE_ROOT, 'python');
    const env = { ...process.env, PYTHONPATH: [pythonDir, process.env.PYTHONPATH].filter(Boolean).join(delimiter), PYTHONDONTWRITEBYTECODE: '1' };
    const child = spawn(python, ['-m', 'pyvisor.typegen', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    let failed: NodeJS.ErrnoException | undefined;
    child.on('error', (e) => (failed = e));
    child.on('close', (code, signal) =>
      resolvePromise({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), ...(failed ? { error: failed } : {}) }),
    );
  });
}

function lastLine(text: string): string {
  const lines = text.trimEnd().split('\n');
  return lines[lines.length - 1] ?? '';
}

/** Runs `pyvisor types`; resolves to the exit code. */
export async function types(handlers: string[], opts: TypesOptions, io: TypesIO): Promise<number> {
  const python = opts.python || process.env.PYVISOR_PYTHON || 'python3';
  let files: string[];
  try {
    files = handlers.map(handlerOf); // file: URLs as the pool takes them
  } catch (error) {
    io.stderr(`pyvisor types: ${(error as Error).message}\n`);
    return 2;
  }
  const args = [...(opts.builtins ? ['--builtins'] : []), ...(opts.verbose ? ['--traceback'] : []), '--', ...files];
  const ran = await runTypegen(python, args);
  if (ran.error) {
    const why = ran.error.code === 'ENOENT' ? 'interpreter not found' : ran.error.code === 'EACCES' ? 'interpreter is not executable' : ran.error.message;
    io.stderr(`pyvisor types: ${why}: ${python} (set --python or $PYVISOR_PYTHON)\n`);
    return 1;
  }
  if (ran.code === HANDLER_IMPORT) {
    // The typegen's last line names the file and the error ("pyvisor types: could not load handlers ...").
    if (opts.verbose) io.stderr(ran.stderr.endsWith('\n') ? ran.stderr : `${ran.stderr}\n`);
    else io.stderr(`${lastLine(ran.stderr)}\n(run with --verbose for the Python traceback)\n`);
    return 1;
  }
  if (ran.code !== 0) {
    const how = ran.signal ? `was killed by ${ran.signal}` : `exited with code ${ran.code}`;
    const noPackage = /No module named '?pyvisor/.test(ran.stderr);
    io.stderr(`pyvisor types: ${python} -m pyvisor.typegen ${how}${noPackage ? ` (the pyvisor Python package was not found in ${join(PACKAGE_ROOT, 'python')})` : ''}\n${ran.stderr.trimEnd()}\n`);
    return 1;
  }
  // What the handlers printed while they loaded went to stderr: pass it on.
  if (ran.stderr) io.stderr(ran.stderr);
  if (!opts.out) {
    io.stdout(ran.stdout);
    return 0;
  }
  const file = resolve(opts.out);
  try {
    mkdirSync(dirname(file), { recursive: true });
    // Written beside the target and renamed over it: a reader never sees half a file.
    const temp = `${file}.${process.pid}.tmp`;
    writeFileSync(temp, ran.stdout);
    renameSync(temp, file);
  } catch (error) {
    io.stderr(`pyvisor types: cannot write ${opts.out}: ${(error as Error).message}\n`);
    return 1;
  }
  return 0;
}

function nonEmpty(what: string) {
  return (raw: string): string => {
    if (raw.length === 0) throw new InvalidArgumentError(`${what} must not be empty`);
    return raw;
  };
}

export function registerTypesCommand(program: Command, io: TypesIO, setExit: (code: number) => void): void {
  program
    .command('types')
    .description("write TypeScript types of your handlers' commands (args, results, stream chunks) from their Python annotations")
    .argument('<handlers...>', 'Python files (relative to the current directory) or modules that register commands')
    .option('-o, --out <file>', 'write the declarations to this file (default: stdout)', nonEmpty('--out'))
    .option('--python <path>', 'Python interpreter (default $PYVISOR_PYTHON or python3)', nonEmpty('--python'))
    .option('--builtins', 'also the built-in commands (ping, get_stats, cleanup_session, shutdown)')
    .option('-v, --verbose', 'print the Python traceback of a handler file that cannot load')
    .addHelpText(
      'after',
      `
Loads the files as a worker does and reads the annotations of each @command handler: the first
parameter (args), the return type (result) and, for a generator, what it yields (chunk).
Use the result with pool.commands<Handlers>() (docs/TYPES.md):
  pyvisor types handlers.py -o src/handlers.d.ts
  import type { Handlers } from './handlers.js';
  const py = pool.commands<Handlers>();  await py.greet({ name: 'Ada' });`,
    )
    .action(async (handlers: string[], opts: TypesOptions) => setExit(await types(handlers, opts, io)));
}
