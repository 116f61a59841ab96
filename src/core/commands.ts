/**
 * Typed commands: `pool.commands<Handlers>()` is a proxy whose properties are the pool's commands,
 * typed by the `Handlers` interface that `pyvisor types handlers.py` writes from the handlers'
 * Python annotations (docs/TYPES.md):
 *
 *   import type { Handlers } from './handlers.js';      // pyvisor types handlers.py -o handlers.d.ts
 *   const py = pool.commands<Handlers>({ sessionId: 'user_1' });
 *   const { greeting } = await py.greet({ name: 'Ada' });      // execute('greet', { name: 'Ada' })
 *   for await (const word of py.tokens.stream({ text })) ...   // stream('tokens', { text })
 *
 * Each property is a function over the pool's own `execute`; `.stream` goes through its `stream`.
 * Nothing else is added: the options are the pool's (`ExecuteOptions`, `StreamOptions`), the
 * errors are the pool's, and the types describe what the Python side declares, not a check the
 * proxy makes (values are not validated at run time).
 */
import type { ExecuteOptions, StreamOptions } from '../options.js';
import type { Executor } from './executor.js';
import type { ResultStream } from './stream.js';

/** One command's types: its args, its result, and for a generator handler the type of a chunk. */
export interface CommandSpec {
  args: unknown;
  result: unknown;
  /** Present for a stream (generator) command: what each `yield` sends. */
  chunk?: unknown;
}

/**
 * A map of command name → CommandSpec, such as the generated `Handlers` interface. Written as a
 * mapped type over `H`'s own keys so that interfaces qualify (they have no index signature):
 * `H extends CommandMap<H>`.
 */
export type CommandMap<H> = { [K in keyof H]: CommandSpec };

/** What `pool.commands()` types without a map: any name, args and result unknown, `.stream` too. */
export type AnyCommands = Record<string, { args: unknown; result: unknown; chunk?: unknown }>;

/**
 * Names the proxy never turns into commands: `then` (so that `await pool.commands()` does not
 * treat it as a promise), `toJSON`, and what every object has from Object.prototype. Commands
 * with these names are reached with `pool.execute(name, ...)`.
 */
export type ReservedCommandName = 'then' | 'toJSON' | keyof Object;

/** The parameters of a call: `args` may be left out when the command accepts null (or unknown). */
export type CommandParams<A, O> = null extends A ? [args?: A, options?: O] : [args: A, options?: O];

/** A command: `py.greet(args, options?)` → `pool.execute('greet', args, options)`. */
export interface CommandCall<A, R> {
  (...params: CommandParams<A, ExecuteOptions>): Promise<R>;
}

/**
 * A stream (generator) command: called, it is `execute` — the chunks as one array (`Out`);
 * `.stream(args, options?)` reads them as they come, `.result` of the stream being `R`.
 */
export interface StreamCommandCall<A, C, R, Out = C[]> {
  (...params: CommandParams<A, ExecuteOptions>): Promise<Out>;
  stream(...params: CommandParams<A, StreamOptions>): ResultStream<C, R>;
}

/** The call type of one CommandSpec. A spec whose `chunk` is optional may stream: it gets both. */
export type CommandOf<S> = [S] extends [{ args: infer A; result: infer R }]
  ? 'chunk' extends keyof S
    ? {} extends Pick<S, 'chunk' & keyof S>
      ? StreamCommandCall<A, Exclude<S['chunk' & keyof S], undefined>, R, R>
      : StreamCommandCall<A, S['chunk' & keyof S], R>
    : CommandCall<A, R>
  : never;

/** The proxy's type: one function per command of `H` (docs/TYPES.md). */
export type Commands<H extends CommandMap<H> = AnyCommands> = {
  readonly [K in keyof H as K extends ReservedCommandName ? never : K extends string ? K : never]: CommandOf<H[K]>;
};

const RESERVED = new Set<string>(['then', 'toJSON']);

function merge<O extends ExecuteOptions>(defaults: ExecuteOptions | undefined, options: O | undefined): O {
  if (!defaults) return (options ?? {}) as O;
  return (options ? { ...defaults, ...options } : { ...defaults }) as O;
}

/**
 * The typed proxy over any Executor (what `pool.commands()` returns): `py[name](args, options)`
 * is `executor.execute(name, args, { ...defaults, ...options })` and `py[name].stream(args,
 * options)` is `executor.stream(...)`. The proxy is not thenable, has no own keys, cannot be
 * written to, and turns no symbol and no Object.prototype name into a command.
 */
export function createCommands<H extends CommandMap<H> = AnyCommands>(
  executor: Pick<Executor, 'execute' | 'stream'>,
  defaults?: ExecuteOptions,
): Commands<H> {
  const fixed = defaults ? Object.freeze({ ...defaults }) : undefined;
  const made = new Map<string, unknown>();
  const target: object = Object.freeze(Object.defineProperty({}, Symbol.toStringTag, { value: 'PyvisorCommands' }));
  const make = (name: string) => {
    const call = (args?: unknown, options?: ExecuteOptions) => executor.execute(name, args, merge(fixed, options));
    const stream = (args?: unknown, options?: StreamOptions) => executor.stream(name, args, merge(fixed, options));
    Object.defineProperty(call, 'name', { value: name });
    Object.defineProperty(stream, 'name', { value: `${name}.stream` });
    return Object.freeze(Object.assign(call, { stream }));
  };
  const refuse = () => false;
  return new Proxy(target, {
    get(t, key) {
      // Symbols (Symbol.iterator, util.inspect.custom, Symbol.toPrimitive...), `then`, `toJSON`
      // and Object.prototype's names are what a plain object would answer.
      if (typeof key !== 'string' || RESERVED.has(key) || key in t) return Reflect.get(t, key);
      let fn = made.get(key);
      if (fn === undefined) made.set(key, (fn = make(key)));
      return fn;
    },
    set: refuse,
    defineProperty: refuse,
    deleteProperty: refuse,
  }) as Commands<H>;
}
