#!/usr/bin/env node
/**
 * The `pyvisor` command line. docs/CLI.md describes every command.
 *
 *   pyvisor demo [--sessions N] [--duration S] [--workers N] [--no-kill] [--python PATH]
 *   pyvisor call <command> [json-args] [--session S] [--handlers FILE]... [--python PATH] [--timeout MS]
 *   pyvisor inspect ...
 *   pyvisor agent --nats URL --pool NAME [--host-id ID] [--pool-size N] [--worker-concurrency N] [--handlers FILE...]
 *   pyvisor types <handlers...> [-o FILE] [--python PATH] [--builtins]
 *
 * Exit codes: 0 success; 1 the call failed or the demo's verdict is FAIL; 2 bad usage
 * (unknown command or option, invalid value, invalid JSON args); 130 interrupted (Ctrl-C).
 */
import { readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { createPool } from './local/createPool.js';
import { PyvisorError, PythonError } from './errors.js';
import type { Pool } from './local/pool.js';
import { PACKAGE_ROOT } from './channel/python.js';
import { runDemo } from './demo/run.js';
import { registerInspectCommand } from './cli/inspect.js';
import { registerAgentCommand } from './cli/agent.js';
import { registerTypesCommand } from './cli/types.js';

export const EXIT = { ok: 0, failed: 1, usage: 2, interrupted: 130 } as const;

/** A usage problem found after commander's own parsing (e.g. invalid JSON args). */
export class UsageError extends Error {}

function version(): string {
  try {
    return (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

// ---- JSON in and out: bytes travel as { "$bytes": "<base64>" } --------------------------------

/** JSON args → wire value: `{ "$bytes": "<base64>" }` (exactly that one key) becomes a Buffer. */
export function fromJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(fromJson);
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value);
    const b64 = (value as { $bytes?: unknown }).$bytes;
    if (keys.length === 1 && keys[0] === '$bytes' && typeof b64 === 'string') return Buffer.from(b64, 'base64');
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fromJson(v)]));
  }
  return value;
}

/** Wire value → JSON: Buffers become `{ "$bytes": "<base64>" }`, big integers strings, non-finite floats strings. */
export function toJson(value: unknown): unknown {
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return { $bytes: Buffer.from(value as Uint8Array).toString('base64') };
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [String(k), toJson(v)]));
  if (Array.isArray(value)) return value.map(toJson);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJson(v)]));
  return value === undefined ? null : value;
}

// ---- argument parsers (commander turns InvalidArgumentError into a usage error) ------------------

function intIn(min: number, max: number) {
  return (raw: string): number => {
    const n = Number(raw);
    if (!/^\s*\d+\s*$/.test(raw) || !Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`must be an integer from ${min} to ${max}, got "${raw}"`);
    return n;
  };
}

function positiveNumber(max: number, unit: string) {
  return (raw: string): number => {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n) || n <= 0 || n > max) throw new InvalidArgumentError(`must be a number of ${unit} > 0 and <= ${max}, got "${raw}"`);
    return n;
  };
}

function nonEmpty(what: string) {
  return (raw: string): string => {
    if (raw.length === 0) throw new InvalidArgumentError(`${what} must not be empty`);
    return raw;
  };
}

function collect(raw: string, previous: string[] | undefined): string[] {
  if (raw.length === 0) throw new InvalidArgumentError('a handler path must not be empty');
  return [...(previous ?? []), raw];
}

// ---- commands -------------------------------------------------------------------------------

interface CallOptions {
  session?: string;
  handlers?: string[];
  python?: string;
  timeout?: number;
  compact?: boolean;
  verbose?: boolean;
}

async function call(command: string, jsonArgs: string | undefined, opts: CallOptions, io: CliIO): Promise<number> {
  let args: unknown = null;
  if (jsonArgs !== undefined) {
    try {
      args = fromJson(JSON.parse(jsonArgs));
    } catch (error) {
      throw new UsageError(`invalid JSON args ${JSON.stringify(jsonArgs.length > 80 ? `${jsonArgs.slice(0, 80)}…` : jsonArgs)}: ${(error as Error).message}`);
    }
  }
  let pool: Pool | null = null;
  const stop = async () => {
    if (pool) await pool.stop();
  };
  const onSigint = () => {
    void stop().finally(() => process.exit(EXIT.interrupted));
  };
  process.once('SIGINT', onSigint);
  try {
    pool = await createPool({
      poolSize: 1,
      maxOverflow: 0,
      ...(opts.python ? { python: opts.python } : {}),
      ...(opts.handlers?.length ? { handlers: opts.handlers } : {}),
      ...(opts.timeout ? { requestTimeout: opts.timeout } : {}),
    });
    const result = await pool.execute(command, args, opts.session ? { sessionId: opts.session } : {});
    io.stdout(`${JSON.stringify(toJson(result), null, opts.compact ? undefined : 2)}\n`);
    return EXIT.ok;
  } catch (error) {
    io.stderr(`pyvisor call ${command}: ${describeError(error, opts.verbose ?? false)}\n`);
    return EXIT.failed;
  } finally {
    process.off('SIGINT', onSigint);
    await stop();
  }
}

function describeError(error: unknown, verbose: boolean): string {
  if (error instanceof PyvisorError) {
    let text = `${error.code}: ${error.message}`;
    if (error instanceof PythonError && error.traceback) text += verbose ? `\n${error.traceback.trimEnd()}` : '\n(run with --verbose for the Python traceback)';
    else if (verbose && error.stack) text += `\n${error.stack}`;
    // e.g. an escalation caused by a worker that could not start: say why.
    for (let cause = error.cause, depth = 0; cause instanceof Error && depth < 3; cause = cause.cause, depth++) {
      text += `\n  caused by ${cause instanceof PyvisorError ? `${cause.code}: ` : `${cause.name}: `}${cause.message}`;
    }
    return text;
  }
  const e = error as Error;
  return verbose && e?.stack ? e.stack : `${e?.name ?? 'Error'}: ${e?.message ?? String(error)}`;
}

interface DemoCliOptions {
  sessions: number;
  duration: number;
  workers: number;
  kill: boolean;
  python?: string;
  color?: boolean;
}

async function demo(opts: DemoCliOptions): Promise<number> {
  const out = process.stdout;
  const tty = out.isTTY === true;
  const controller = new AbortController();
  const onSigint = () => controller.abort(new Error('interrupted'));
  process.once('SIGINT', onSigint);
  if (tty) out.write('\x1b[?25l'); // hide the cursor while the view redraws
  try {
    const result = await runDemo({
      sessions: opts.sessions,
      durationMs: Math.round(opts.duration * 1000),
      workers: opts.workers,
      kill: opts.kill,
      python: opts.python,
      out,
      tty,
      color: tty && opts.color !== false && !process.env.NO_COLOR,
      columns: out.columns,
      signal: controller.signal,
    });
    if (result.interrupted) return EXIT.interrupted;
    return result.ok ? EXIT.ok : EXIT.failed;
  } finally {
    if (tty) out.write('\x1b[?25h');
    process.off('SIGINT', onSigint);
  }
}

export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
}

const defaultIO: CliIO = { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t) };

export function buildProgram(io: CliIO = defaultIO, setExit: (code: number) => void = () => {}): Command {
  const program = new Command();
  program
    .name('pyvisor')
    .description('Supervised pools of Python worker processes for Node.js (XState actors, OTP supervision, session affinity, MessagePack frames).')
    .version(version(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .showHelpAfterError('(run "pyvisor --help" for usage)')
    .configureOutput({ writeOut: (s) => io.stdout(s), writeErr: (s) => io.stderr(s) })
    .exitOverride() // inherited by the subcommands below: usage errors reach run() as CommanderErrors
    .addHelpText(
      'after',
      `
Exit codes: 0 success, 1 the call failed (or the demo failed), 2 bad usage, 130 interrupted.
Examples:
  pyvisor demo --duration 10 --sessions 12
  pyvisor call ping
  pyvisor call echo --handlers ./my_handlers.py '{"hello":"world"}'
  pyvisor call create_program '{"id":"qa","signature":{"inputs":["question"],"outputs":["answer"]}}' --session s1
  pyvisor types ./my_handlers.py -o src/handlers.d.ts`,
    );

  program
    .command('demo')
    .description('run the showcase: many sessions executing DSPy programs on a pool of Python workers, one worker SIGKILLed mid-run')
    .option('--sessions <n>', 'concurrent sessions', intIn(1, 1000), 24)
    .option('--duration <seconds>', 'how long the load runs', positiveNumber(600, 'seconds'), 15)
    .option('--workers <n>', 'Python workers in the pool', intIn(1, 64), 4)
    .option('--no-kill', 'do not SIGKILL a worker mid-run')
    .option('--python <path>', 'Python interpreter (default $PYVISOR_PYTHON or python3)', nonEmpty('--python'))
    .option('--no-color', 'no ANSI colors in the live view')
    .action(async (opts: DemoCliOptions) => setExit(await demo(opts)));

  program
    .command('call')
    .description('start one Python worker, run one command, print its result as JSON')
    .argument('<command>', 'the command name (ping, get_stats, create_program, a handler of yours, ...)')
    .argument('[json-args]', 'the command\'s args as JSON; bytes as {"$bytes": "<base64>"}')
    .option('-s, --session <id>', 'run in this session (required by the DSPy commands)', nonEmpty('--session'))
    // One value per flag (repeat it for more): a variadic flag would swallow the JSON args after it.
    .option('--handlers <file>', 'a Python file or module to load into the worker (repeat for more)', collect)
    .option('--python <path>', 'Python interpreter (default $PYVISOR_PYTHON or python3)', nonEmpty('--python'))
    .option('--timeout <ms>', 'ms the command may run', positiveNumber(2 ** 31 - 1, 'milliseconds'))
    .option('--compact', 'print the JSON on one line')
    .option('-v, --verbose', 'print the Python traceback of a failed call')
    .addHelpText('after', '\nThe result is printed as JSON on stdout; bytes appear as {"$bytes": "<base64>"}.\nOn failure the error code and message go to stderr and the exit code is 1.')
    .action(async (command: string, jsonArgs: string | undefined, opts: CallOptions) => setExit(await call(command, jsonArgs, opts, io)));

  registerInspectCommand(program, setExit);
  registerAgentCommand(program, setExit);
  registerTypesCommand(program, io, setExit);
  return program;
}

/** Parse argv and run; resolves to the exit code. */
export async function run(argv: string[], io: CliIO = defaultIO): Promise<number> {
  let code: number = EXIT.ok;
  const program = buildProgram(io, (c) => (code = c));
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help / --version exit 0; everything else commander rejects is a usage error.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (error instanceof UsageError) {
      io.stderr(`pyvisor: ${error.message}\n(run "pyvisor --help" for usage)\n`);
      return EXIT.usage;
    }
    io.stderr(`pyvisor: ${describeError(error, false)}\n`);
    return EXIT.failed;
  }
}

/** True when this file is the process entry (node dist/src/cli.js, the npm bin link, or tsx src/cli.ts). */
function isEntry(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntry()) {
  run(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`pyvisor: ${(error as Error)?.stack ?? error}\n`);
      process.exitCode = EXIT.failed;
    },
  );
}
