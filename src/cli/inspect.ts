/**
 * `pyvisor inspect`: start a demo pool of real Python workers, put a light synthetic load on
 * it (pings, and a few sessions running DSPy-style programs on the built-in dummy LM), kill
 * one worker now and then so that restarts can be watched, and serve the inspector page.
 * Runs until SIGINT/SIGTERM, then stops the load, the page and the pool, and exits 0.
 */
import { randomBytes } from 'node:crypto';
import { InvalidArgumentError, type Command } from 'commander';
import { createPool } from '../local/createPool.js';
import type { Pool } from '../local/pool.js';
import { serveInspector, type InspectorServer } from '../inspector/server.js';

export interface InspectOptions {
  port?: number;
  host?: string;
  workers?: number;
  token?: string;
  /** Run the synthetic load and the periodic kills (default true). */
  load?: boolean;
  /** Seconds between SIGKILLs of a random worker; 0 = never (default 20). */
  killEvery?: number;
  /** Show command arguments and results on the page (sanitize: false). */
  showArgs?: boolean;
  /** Your handler files or modules, loaded into the workers beside the DSPy preset's commands. */
  handlers?: string[];
  /** The interpreter (default $PYVISOR_PYTHON or python3). */
  python?: string;
}

export interface InspectHandle {
  url: string;
  pool: Pool;
  server: InspectorServer;
  /** Stop the load, close the page, stop the pool (no Python process is left). */
  stop(): Promise<void>;
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|::1|\[::1\])$/i;

function intOption(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}.`);
    return n;
  };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
const jitter = (ms: number) => ms * (0.6 + Math.random() * 0.8);

/** The demo's traffic: pings, sessions running programs, an occasional burst, and crashes. */
class DemoLoad {
  private running = true;
  private readonly loops: Promise<void>[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private nextSession = 1;

  constructor(
    private readonly pool: Pool,
    private readonly killEveryS: number,
    private readonly say: (line: string) => void,
  ) {}

  start(): void {
    this.loops.push(this.pinger());
    for (let i = 0; i < 3; i++) this.loops.push(this.session());
    this.loops.push(this.bursts());
    if (this.killEveryS > 0) {
      const t = setInterval(() => this.killOne(), this.killEveryS * 1000);
      t.unref();
      this.timers.push(t);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    for (const t of this.timers) clearInterval(t);
    // The loops notice within one sleep; a call in flight is answered or refused by pool.stop().
    await Promise.race([Promise.allSettled(this.loops), sleep(1500)]);
  }

  private async call(cmd: string, args: unknown, sessionId?: string): Promise<unknown> {
    try {
      return await this.pool.execute(cmd, args, sessionId ? { sessionId, timeout: 10_000 } : { timeout: 10_000 });
    } catch (error) {
      return error;
    }
  }

  private async pinger(): Promise<void> {
    while (this.running) {
      await this.call('ping', null);
      await sleep(jitter(90));
    }
  }

  /** One user: a session that creates a program and runs it, ending after a while. */
  private async session(): Promise<void> {
    while (this.running) {
      const sessionId = `user_${this.nextSession++}`;
      const calls = 60 + Math.floor(Math.random() * 80);
      let ready = false;
      for (let i = 0; i < calls && this.running; i++) {
        if (!ready) {
          const created = await this.call(
            'create_program',
            { id: 'qa', signature: { inputs: [{ name: 'question' }], outputs: [{ name: 'answer' }] } },
            sessionId,
          );
          ready = !(created instanceof Error);
        } else {
          const result = await this.call('execute_program', { program_id: 'qa', inputs: { question: `question ${i} of ${sessionId}` } }, sessionId);
          // The program lives in the worker that created it; after a crash or a re-route, create it again.
          if (result instanceof Error) ready = false;
        }
        await sleep(jitter(250));
      }
      if (this.running) await this.pool.endSession(sessionId).catch(() => 0);
    }
  }

  /** Now and then more callers than workers: the queue fills and overflow workers start. */
  private async bursts(): Promise<void> {
    await sleep(8000);
    while (this.running) {
      const n = this.pool.options.poolSize * 3;
      await Promise.all(Array.from({ length: n }, () => this.call('ping', null)));
      await sleep(jitter(30_000));
    }
  }

  private killOne(): void {
    if (!this.running) return;
    const candidates = this.pool.workers().filter((w) => w.pid && !w.overflow && (w.state === 'healthy' || w.state === 'busy'));
    const victim = candidates[Math.floor(Math.random() * candidates.length)];
    if (!victim?.pid) return;
    try {
      process.kill(victim.pid, 'SIGKILL');
      this.say(`  killed ${victim.id} (pid ${victim.pid}) with SIGKILL; watch it restart`);
    } catch {
      // It exited on its own meanwhile.
    }
  }
}

/** Start the demo pool, its load and the page. */
export async function startInspectDemo(options: InspectOptions = {}, say: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<InspectHandle> {
  const host = options.host ?? '127.0.0.1';
  const remote = !LOOPBACK.test(host);
  let token = options.token;
  if (remote && !token) token = randomBytes(18).toString('base64url');
  const pool = await createPool({
    poolSize: options.workers ?? 4,
    maxOverflow: 2,
    healthCheckInterval: 5_000,
    overflowIdle: 5_000,
    sessionTtl: 60_000,
    ...(options.handlers?.length ? { handlers: options.handlers } : {}),
    ...(options.python ? { python: options.python } : {}),
  });
  let server: InspectorServer;
  try {
    server = await serveInspector(pool, { port: options.port ?? 0, host, token, allowRemote: remote, sanitize: !options.showArgs });
  } catch (error) {
    await pool.stop();
    throw error;
  }
  const load = options.load === false ? null : new DemoLoad(pool, options.killEvery ?? 20, say);
  load?.start();
  let stopping: Promise<void> | null = null;
  return {
    url: server.url,
    pool,
    server,
    stop: () =>
      (stopping ??= (async () => {
        await load?.stop();
        await server.close();
        await pool.stop();
      })()),
  };
}

export function registerInspectCommand(program: Command, setExit: (code: number) => void = (code) => (process.exitCode = code)): void {
  program
    .command('inspect')
    .description('start a demo pool of Python workers under light load and serve the live inspector page')
    .option('--port <n>', 'port for the page (0 = any free port)', intOption('--port', 0, 65535), 0)
    .option('--host <host>', 'interface to bind; anything but loopback needs a token', '127.0.0.1')
    .option('--workers <n>', 'number of Python workers', intOption('--workers', 1, 64), 4)
    .option('--token <token>', 'require this token on every request (generated when --host is not loopback)')
    .option('--no-load', 'no synthetic load and no crashes: just an idle pool')
    .option('--kill-every <s>', 'SIGKILL a random worker every s seconds (0 = never)', intOption('--kill-every', 0, 86_400), 20)
    .option('--show-args', 'show command arguments and results on the page (sanitize: false)')
    .option('--handlers <file>', 'a Python file or module of yours to load into the workers (repeat for more)', (raw: string, previous: string[] | undefined) => {
      if (raw.length === 0) throw new InvalidArgumentError('a handler path must not be empty');
      return [...(previous ?? []), raw];
    })
    .option('--python <path>', 'Python interpreter (default $PYVISOR_PYTHON or python3)')
    .action(async (opts: { port: number; host: string; workers: number; token?: string; load: boolean; killEvery: number; showArgs?: boolean; handlers?: string[]; python?: string }) => {
      const say = (line: string) => process.stdout.write(`${line}\n`);
      let handle: InspectHandle;
      try {
        handle = await startInspectDemo(opts, say);
      } catch (error) {
        process.stderr.write(`pyvisor inspect: ${(error as Error).message}\n`);
        setExit(1);
        return;
      }
      const pids = handle.pool.workers().filter((w) => !w.overflow).map((w) => w.pid).filter(Boolean).join(', ');
      say(`pyvisor inspector: ${handle.url}`);
      say(`  pool: ${opts.workers} Python workers (pids ${pids})${opts.handlers?.length ? `, your handlers: ${opts.handlers.join(', ')}` : ''}`);
      say(
        opts.load
          ? `  load: pings and 3 sessions running programs${opts.killEvery > 0 ? `; one worker is SIGKILLed every ${opts.killEvery} s` : ''}`
          : '  load: none (--no-load)',
      );
      if (!LOOPBACK.test(opts.host)) say('  served beyond this machine: anyone with the URL (it carries the token) can watch the pool');
      say('  press Ctrl-C to stop');
      await new Promise<void>((resolve) => {
        const shutdown = (signal: string) => {
          say(`\n${signal}: stopping the pool…`);
          // A second signal while stopping: leave at once.
          process.once('SIGINT', () => process.exit(130));
          process.once('SIGTERM', () => process.exit(143));
          handle.stop().then(
            () => {
              say('stopped; no worker process is left');
              resolve();
              process.exit(0);
            },
            (error: unknown) => {
              process.stderr.write(`pyvisor inspect: ${(error as Error)?.message ?? error}\n`);
              process.exit(1);
            },
          );
        };
        process.once('SIGINT', () => shutdown('SIGINT'));
        process.once('SIGTERM', () => shutdown('SIGTERM'));
      });
    });
}
