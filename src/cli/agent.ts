/**
 * `pyvisor agent`: run a host agent (src/cluster/agent.ts) until SIGTERM or SIGINT, then drain
 * it (finish what is in flight, deregister, stop the workers) and exit 0. Prints one line on
 * stdout once it serves: `agent <hostId> serving pool <name> via <url>`. docs/CLI.md.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { PyvisorError } from '../errors.js';
import type { Agent, AgentOptions } from '../cluster/agent.js';
import { NAME_PATTERN } from '../cluster/subjects.js';

interface AgentCliOptions {
  nats: string[];
  pool: string;
  hostId?: string;
  poolSize?: number;
  maxOverflow?: number;
  workerConcurrency?: number;
  handlers?: string[];
  python?: string;
  heartbeatInterval?: number;
}

function intIn(min: number, max: number) {
  return (raw: string): number => {
    const n = Number(raw);
    if (!/^\s*\d+\s*$/.test(raw) || !Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`must be an integer from ${min} to ${max}, got "${raw}"`);
    return n;
  };
}

function name(what: string) {
  return (raw: string): string => {
    if (!NAME_PATTERN.test(raw)) throw new InvalidArgumentError(`${what} must be letters, digits, '_' and '-', got "${raw}"`);
    return raw;
  };
}

/** --nats may be repeated, or given a comma-separated list (the servers of one NATS cluster). */
function urls(raw: string, previous: string[] | undefined): string[] {
  const list = raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (list.length === 0) throw new InvalidArgumentError('--nats needs a URL, e.g. nats://127.0.0.1:4222');
  return [...(previous ?? []), ...list];
}

function collect(raw: string, previous: string[] | undefined): string[] {
  if (raw.length === 0) throw new InvalidArgumentError('a handler path must not be empty');
  return [...(previous ?? []), raw];
}

function describe(error: unknown): string {
  if (error instanceof PyvisorError) {
    let text = `${error.code}: ${error.message}`;
    for (let cause = error.cause, depth = 0; cause instanceof Error && depth < 3; cause = cause.cause, depth++) {
      text += `\n  caused by ${cause instanceof PyvisorError ? `${cause.code}: ` : `${cause.name}: `}${cause.message}`;
    }
    return text;
  }
  return (error as Error)?.message ?? String(error);
}

/** `setExit` receives the exit code of a start that failed (1); a drained agent exits 0 itself. */
export function registerAgentCommand(program: Command, setExit: (code: number) => void = (code) => (process.exitCode = code)): void {
  program
    .command('agent')
    .description('serve a supervised pool of Python workers on this host to a cluster pool over NATS (docs/CLUSTER.md)')
    .requiredOption('--nats <url>', 'NATS server URL (repeat, or separate with commas, for the servers of a NATS cluster)', urls)
    .requiredOption('--pool <name>', 'the cluster pool to serve (letters, digits, _ and -)', name('--pool'))
    .option('--host-id <id>', "this host's id in the pool (default: <hostname>-<pid>)", name('--host-id'))
    .option('--pool-size <n>', 'Python workers (default: 2 per core)', intIn(1, 1024))
    .option('--max-overflow <n>', 'extra workers while callers wait (default: 1 per core)', intIn(0, 1024))
    .option('--worker-concurrency <n>', 'requests in flight per worker (default 1)', intIn(1, 1024))
    .option('--handlers <files...>', 'Python files or modules to load into every worker (repeatable)', collect)
    .option('--python <path>', 'Python interpreter (default $PYVISOR_PYTHON or python3)')
    .option('--heartbeat-interval <ms>', 'ms between heartbeats (default 1000)', intIn(1, 2 ** 31 - 1))
    .addHelpText('after', '\nPrints "agent <hostId> serving pool <name> via <url>" once serving. SIGTERM or SIGINT drains it\n(in-flight requests finish, front ends stop sending to it) and exits 0.')
    .action(async (opts: AgentCliOptions) => {
      const options: AgentOptions = {
        servers: opts.nats,
        pool: opts.pool,
        ...(opts.hostId !== undefined ? { hostId: opts.hostId } : {}),
        ...(opts.poolSize !== undefined ? { poolSize: opts.poolSize } : {}),
        ...(opts.maxOverflow !== undefined ? { maxOverflow: opts.maxOverflow } : {}),
        ...(opts.workerConcurrency !== undefined ? { workerConcurrency: opts.workerConcurrency } : {}),
        ...(opts.handlers?.length ? { handlers: opts.handlers } : {}),
        ...(opts.python ? { python: opts.python } : {}),
        ...(opts.heartbeatInterval !== undefined ? { heartbeatInterval: opts.heartbeatInterval } : {}),
      };
      let agent: Agent;
      // A signal while starting: stop as soon as the agent is up.
      let early: string | null = null;
      const onEarly = (signal: string) => () => (early = signal);
      const earlyInt = onEarly('SIGINT');
      const earlyTerm = onEarly('SIGTERM');
      process.once('SIGINT', earlyInt);
      process.once('SIGTERM', earlyTerm);
      try {
        // Loaded here: the other commands do not pay for the NATS client.
        const { startAgent } = await import('../cluster/agent.js');
        agent = await startAgent(options);
      } catch (error) {
        process.off('SIGINT', earlyInt);
        process.off('SIGTERM', earlyTerm);
        process.stderr.write(`pyvisor agent: ${describe(error)}\n`);
        setExit(1);
        return;
      }
      process.off('SIGINT', earlyInt);
      process.off('SIGTERM', earlyTerm);
      process.stdout.write(`agent ${agent.hostId} serving pool ${opts.pool} via ${opts.nats.join(',')}\n`);
      await new Promise<void>((resolve) => {
        const shutdown = (signal: string) => {
          process.stderr.write(`agent ${agent.hostId}: ${signal}, draining (in-flight requests finish)…\n`);
          // A second signal while draining: leave at once.
          process.once('SIGINT', () => process.exit(130));
          process.once('SIGTERM', () => process.exit(143));
          agent.stop().then(
            () => {
              process.stderr.write(`agent ${agent.hostId}: drained and stopped\n`);
              resolve();
              process.exit(0);
            },
            (error: unknown) => {
              process.stderr.write(`pyvisor agent: ${describe(error)}\n`);
              process.exit(1);
            },
          );
        };
        if (early) return shutdown(early);
        process.once('SIGINT', () => shutdown('SIGINT'));
        process.once('SIGTERM', () => shutdown('SIGTERM'));
      });
    });
}
