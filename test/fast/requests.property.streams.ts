/**
 * Streams in the property of test/fast/requests.property.test.ts: generator commands, the
 * schedule's stream steps and their readers, the ledger each generator keeps of itself, and the
 * invariants of every stream (see `checkStream`). The rest of the model (requests.property.model.ts)
 * treats a stream as one more request: it is settled once (its `.result`), by the same rules of
 * who owns it when its process dies, times out, is aborted or stopped.
 *
 * The generators count themselves: each attempt of a generator command (a frame that reached a
 * fake process) has a `Ledger` on its arrival, filled by the generator's own code as it runs —
 * when each chunk was produced, when it returned, raised, crashed its process, or was closed
 * (its `finally`: the cancel of a reader's break, an abort or a deadline). So the model knows,
 * exactly and without looking inside the pool or the simulation, when each stream frame is out on
 * its process and how many chunks each attempt produced, and can compare that with the fake
 * process's own account (`FakeProcess.chunksProduced`, `FakeProcess.controls`) and with what the
 * reader got.
 */
import fc from 'fast-check';
import type { FakeProcess, SimContext, Simulation } from '../../src/testing/index.js';
import { SimPythonError } from '../../src/testing/index.js';
import type { ResultStream } from '../../src/index.js';

// ---- generator commands -----------------------------------------------------------------------

/**
 * Generator commands, by how they end. Each chunk is `{n, i, pid}` (its request, its index, the
 * process that produced it), each chunk `latencyMs` after the one before (the first `latencyMs`
 * after arrival), and the end one more `latencyMs` later (as src/testing/simulation.ts drives
 * a generator).
 */
export const GEN = {
  /** `chunks` chunks, then returns {n, total, pid}. */
  gen: { latencyMs: 4, ends: 'return' },
  /** The same without latency: all chunks at once, as far as credit allows. */
  gen_burst: { latencyMs: 0, ends: 'return' },
  /** `chunks` chunks, then kills its process (exit code STREAM_CRASH_CODE). */
  gen_crash: { latencyMs: 4, ends: 'crash' },
  /** `chunks` chunks, then raises ValueError. */
  gen_raise: { latencyMs: 4, ends: 'raise' },
  /** Never ends: only a cancel, a deadline or a death stops it. */
  gen_forever: { latencyMs: 3, ends: 'never' },
} as const;
export type GenCmd = keyof typeof GEN;
export const GEN_CMDS = Object.keys(GEN) as GenCmd[];
export const isGen = (cmd: string): cmd is GenCmd => Object.prototype.hasOwnProperty.call(GEN, cmd);
/** The exit code of a process that a generator crashed (sim.crash(1) is the plain handlers'). */
export const STREAM_CRASH_CODE = 7;
/** Chunks of `gen` run with execute() (a list of its chunks, as in Python). */
export const EXEC_GEN_CHUNKS = 3;
/** execute() of `gen`: the reply leaves (chunks + 1) × latency after arrival (never paused: no window). */
export const EXEC_GEN_LATENCY = (EXEC_GEN_CHUNKS + 1) * GEN.gen.latencyMs;

/**
 * A cancel frame that reaches a generator command before its code has begun (within its
 * handler latency, e.g. an abort right after the request was sent) — strict (true): the
 * generator never runs, or stops at its first chunk, and the frame is answered (Cancelled), as
 * the real worker's `ctx.cancelled` would have it. false (today's behaviour of
 * src/testing/simulation.ts, see test/fast/streams.regressions.test.ts): the simulation drops
 * that cancel (it takes the generator for a sync handler in a thread, which "runs on and answers
 * late"), the generator then runs into its window and waits for credit that never comes, and
 * with workerConcurrency > 1 the frame holds its slot for good. Lenient here so that the
 * property guards everything else; see also ABANDONED_SLOTS_ARE_RECLAIMED in the model.
 */
export const CANCEL_BEFORE_START_STOPS_THE_GENERATOR = true;

/**
 * The acknowledgement of the first chunks of a stream whose first chunk comes back inside the
 * request frame's own send (a generator without latency, on the simulation): strict (true), it
 * is sent like any other. false (today's behaviour, see test/fast/streams.regressions.test.ts):
 * the handle installs the stream's credit callback only after port.send() returns, and
 * ResultStream counts an acknowledgement as given when no callback was there to send it, so the
 * worker never hears of the chunks read meanwhile: a later batch makes up for it, but with
 * window 1 (or a reader that reads nothing more) the worker waits for credit until the deadline.
 * Lenient here (the acknowledgement checks skip such an attempt) so that the property guards
 * everything else.
 */
export const SYNC_FIRST_CHUNK_IS_ACKED = true;

/** Whether the cancel of give-up `t` reached the generator before its code began (see CANCEL_BEFORE_START_STOPS_THE_GENERATOR). */
export function cancelledBeforeStart(g: Ledger, t: number): boolean {
  return g.startedAt === null || g.startedAt > t;
}

/** What one attempt of a generator command did, written by the generator itself. */
export interface Ledger {
  /** The frame id it arrived with (what its control frames carry). */
  frameId: number;
  /** Its credit window (0: run by execute(), chunks collected). */
  window: number;
  /** When its handler was called (its latency passed) and gave its generator; null: not yet. */
  handledAt: number | null;
  /** When its code began (its first step); null: not yet — or never, when a cancel came first. */
  startedAt: number | null;
  /** When each chunk was produced. */
  produced: number[];
  returnedAt: number | null;
  raisedAt: number | null;
  /** When it yielded sim.crash() (its process died then). */
  crashedAt: number | null;
  /** When its `finally` ran: returned, raised, or closed from outside (cancel). */
  closedAt: number | null;
}

/** When the attempt's frame stopped being out (its process may have died before: see frameOpen). */
export function ledgerEnd(g: Ledger): number | null {
  // Cancelled before its first step: the worker closes it unstarted (its body, `finally`
  // included, never runs) and answers Cancelled when the handler would have started.
  const closedUnstarted = g.startedAt === null && g.handledAt !== null ? g.handledAt : null;
  return g.closedAt ?? g.crashedAt ?? closedUnstarted;
}

/** What the stream helpers need from the run. */
export interface StreamEnv {
  sim: Simulation;
  now(): number;
  fail(message: string): void;
  /** The arrival of request n on pid whose generator is starting (the last one there). */
  arrival(n: number, pid: number): { gen?: Ledger } | undefined;
  /** The stream record of request n, if it is a stream. */
  stream(n: number): StreamRecord | undefined;
}

/** Register the generator commands on the simulation, each keeping its attempt's ledger. */
export function registerGenerators(env: StreamEnv): void {
  for (const cmd of GEN_CMDS) {
    const spec = GEN[cmd];
    const body = function* (args: { n: number; chunks: number }, ctx: SimContext) {
        const g = env.arrival(args.n, ctx.pid)?.gen;
        if (!g) {
          env.fail(`(model) generator ${cmd} of #${args.n} started on pid ${ctx.pid}, where it never arrived`);
          return null;
        }
        // Looked up at each chunk: a stream's first chunks may come before pool.stream() returned.
        const x = () => env.stream(args.n);
        const proc = () => env.sim.processes().find((p) => p.pid === ctx.pid);
        g.startedAt = env.now();
        try {
          for (let i = 0; spec.ends === 'never' || i < args.chunks; i++) {
            if (g.window > 0) {
              // Backpressure as the worker sees it: never more than `window` chunks beyond the
              // last acknowledgement it received (that none is beyond what was read: checkStream).
              const acked = ackedOf(proc(), g.frameId);
              if (g.produced.length + 1 > acked + g.window) {
                env.fail(`(s4) #${args.n} on pid ${ctx.pid} produced chunk ${g.produced.length + 1} at ${env.now()} with only ${acked} acknowledged and window ${g.window}`);
              }
              const rs = x()?.rs;
              if (rs && rs.buffered > g.window) env.fail(`(s3) #${args.n}: ${rs.buffered} chunks buffered at ${env.now()}, window ${g.window}`);
            }
            g.produced.push(env.now());
            yield { n: args.n, i, pid: ctx.pid };
          }
          if (spec.ends === 'crash') {
            g.crashedAt = env.now();
            yield env.sim.crash(STREAM_CRASH_CODE);
          }
          if (spec.ends === 'raise') {
            g.raisedAt = env.now();
            throw new SimPythonError('ValueError', `#${args.n} failed after ${args.chunks} chunks`);
          }
          g.returnedAt = env.now();
          return { n: args.n, total: args.chunks, pid: ctx.pid };
        } finally {
          g.closedAt ??= env.now();
        }
      };
    env.sim.handle(
      cmd,
      (args: { n: number; chunks: number }, ctx: SimContext) => {
        const g = env.arrival(args.n, ctx.pid)?.gen;
        if (g) g.handledAt = env.now();
        return body(args, ctx);
      },
      { latencyMs: spec.latencyMs },
    );
  }
}

/** The highest acknowledgement a process received for a frame (0: none). */
export function ackedOf(proc: FakeProcess | undefined, frameId: number): number {
  let acked = 0;
  for (const c of proc?.controls ?? []) if (c.id === frameId && c.ack !== undefined) acked = Math.max(acked, c.ack);
  return acked;
}

// ---- the schedule's stream steps ------------------------------------------------------------

/**
 * How a stream is read:
 *  - 'read': from the start, one chunk every `paceMs` of simulated time (0: as fast as they
 *    come); `breakAfter` chunks read, it breaks out of the loop (cancels); `abortAfter` chunks
 *    read, it aborts the stream's signal and reads on (what is buffered, then AbortError);
 *  - 'none': never reads while the request runs; only once it has settled does it read what
 *    was buffered (and the error, if any): what a caller that relies on `timeout` sees.
 */
export type Reader = { kind: 'read'; paceMs: number; breakAfter: number | null; abortAfter: number | null } | { kind: 'none' };

export interface StreamStep {
  k: 'stream';
  cmd: GenCmd;
  /** Chunks before the end (ignored by gen_forever). */
  chunks: number;
  window: number;
  reader: Reader;
  session: string | null;
  idempotent: boolean;
  timeout?: number;
  checkoutTimeout?: number;
  /** Give it an AbortSignal that a later `abort` step may fire. */
  abortable: boolean;
}

const readerArb: fc.Arbitrary<Reader> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('read' as const),
      paceMs: fc.constantFrom(0, 0, 1, 3, 8, 20),
      breakAfter: fc.option(fc.integer({ min: 1, max: 10 }), { nil: null, freq: 2 }),
      abortAfter: fc.option(fc.integer({ min: 0, max: 6 }), { nil: null, freq: 4 }),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ kind: 'none' as const }) },
);

export const streamStepArb: fc.Arbitrary<StreamStep> = fc
  .record({
    cmd: fc.constantFrom<GenCmd>('gen', 'gen', 'gen_burst', 'gen_crash', 'gen_crash', 'gen_raise', 'gen_forever'),
    chunks: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 4, max: 14 })),
    window: fc.integer({ min: 1, max: 8 }),
    reader: readerArb,
    session: fc.option(fc.constantFrom('a', 'b', 'c'), { nil: null, freq: 3 }),
    idempotent: fc.integer({ min: 0, max: 2 }).map((x) => x === 0),
    timeout: fc.option(fc.constantFrom(35, 90), { nil: undefined, freq: 2 }),
    checkoutTimeout: fc.option(fc.constantFrom(30, 120), { nil: undefined, freq: 3 }),
    abortable: fc.integer({ min: 0, max: 3 }).map((x) => x === 0),
  })
  .map((r) => {
    const step: StreamStep = { k: 'stream', cmd: r.cmd, chunks: r.chunks, window: r.window, reader: r.reader, session: r.session, idempotent: r.idempotent, abortable: r.abortable };
    if (r.timeout !== undefined) step.timeout = r.timeout;
    if (r.checkoutTimeout !== undefined) step.checkoutTimeout = r.checkoutTimeout;
    return step;
  });

// ---- reading a stream -----------------------------------------------------------------------

/** A stream as its reader saw it. */
export interface StreamRecord {
  rs: ResultStream<unknown>;
  window: number;
  chunks: number;
  reader: Reader;
  /** Every chunk read, in order, and when. */
  read: unknown[];
  readAt: number[];
  /** How the reader's loop ended (null: it has not). */
  end: null | { at: number; how: 'done' | 'break' | 'error'; error?: unknown };
  /** What next() gave after the loop ended (each must be done, none a throw). */
  after: string[];
  /** The most chunks it ever saw buffered. */
  maxBuffered: number;
}

/** Read a stream as its reader says; `onCancel` is told (first) when the reader breaks out or aborts the signal. */
export function readStream(
  env: StreamEnv,
  x: StreamRecord,
  opts: { controller: AbortController | null; onCancel: (how: 'break' | 'abort') => void; sleep: (ms: number) => Promise<void> },
): Promise<void> {
  const sample = () => {
    x.maxBuffered = Math.max(x.maxBuffered, x.rs.buffered);
  };
  const body = async () => {
    if (x.reader.kind === 'none') await x.rs.result.then(
      () => {},
      () => {},
    );
    const reader = x.reader;
    try {
      for await (const chunk of x.rs) {
        sample();
        x.read.push(chunk);
        x.readAt.push(env.now());
        if (reader.kind === 'read') {
          if (reader.breakAfter !== null && x.read.length >= reader.breakAfter) {
            opts.onCancel('break');
            x.end = { at: env.now(), how: 'break' };
            break;
          }
          if (reader.abortAfter !== null && x.read.length === reader.abortAfter && opts.controller && !opts.controller.signal.aborted) {
            opts.onCancel('abort');
            opts.controller.abort(new Error('the reader aborts'));
          }
          if (reader.paceMs > 0) await opts.sleep(reader.paceMs);
        }
      }
      x.end ??= { at: env.now(), how: 'done' };
    } catch (error) {
      x.end = { at: env.now(), how: 'error', error };
    }
    sample();
    // It ended once: whatever next() gives now is done, never another chunk or throw.
    for (let i = 0; i < 2; i++) {
      try {
        const r = await x.rs.next();
        if (!r.done) x.after.push(`a chunk ${JSON.stringify(r.value)}`);
      } catch (error) {
        x.after.push(`a throw ${(error as { code?: string }).code ?? String(error)}`);
      }
    }
  };
  if (x.reader.kind === 'read' && x.reader.abortAfter === 0 && opts.controller) {
    // Aborted before reading anything.
    opts.onCancel('abort');
    opts.controller.abort(new Error('the reader aborts'));
  }
  return body().catch((err) => env.fail(`(model) the reader threw: ${(err as Error)?.stack ?? String(err)}`));
}

// ---- the invariants of one stream ---------------------------------------------------------------

/** What checkStream needs to know about the request of a stream. */
export interface StreamFacts {
  n: number;
  /** Chunks the generator yields before it ends (Infinity: never ends). */
  chunksExpected: number;
  concurrency: number;
  interruptGraceMs: number;
  settledAt: number | null;
  outcome: { ok: true; value: unknown } | { ok: false; error: Error & { code?: string } } | null;
  arrivals: Array<{ pid: number; at: number; gen?: Ledger }>;
  /** When the request was given up on while it ran (abort, the reader's break or abort, its deadline), if it was. */
  gaveUpAt: number | null;
  /** When its reader broke or aborted (null: never). */
  cancelAt: number | null;
  /** pid → when it died. */
  deaths: Map<number, number>;
  /** When stop() was called (null: never): a stopping worker replaces no process, it waits for it to exit. */
  stopAt: number | null;
  /** Whether the process `pid` was stopped by the drain of its escalated tier, which began by time t (it too waits for the process to exit). */
  drainedBy(pid: number, t: number): boolean;
  processes: FakeProcess[];
}

/**
 * The invariants of a stream, once every request has settled and stop() has returned:
 *  (s1) it ended exactly once for its reader: the loop completed, broke, or threw one error —
 *       the very error `.result` rejected with (and the result an ok exactly when the loop
 *       completed); every next() after that is done;
 *  (s2) what was read is exactly the chunks 0..k-1 of the attempt that delivered them, in
 *       order, each of this request, from the process it last reached (a stream is never
 *       restarted once it delivered chunks; an earlier attempt delivered none); all N of them
 *       when it completed; a reader that neither broke nor aborted read every chunk its
 *       attempt produced before the request settled (ties at that instant either way);
 *  (s3) `buffered` never exceeded the window (sampled at every read and every instant);
 *  (s4) credit: the acknowledgements its process received for the frame are h, 2h, ... (h =
 *       max(1, window/2)), none beyond what was read (the window itself is checked by the
 *       generator, chunk by chunk: see registerGenerators);
 *  (s5) a stream given up on while its frame was out (break, abort, deadline) has that frame
 *       cancelled: its process gets a cancel control frame for it (but a deadline with
 *       workerConcurrency 1, which replaces the process) and the frame is gone — closed, or
 *       its process dead — within interruptGrace of the give-up (unless stop() or the drain of
 *       its escalated tier came first: a stopping worker replaces nothing, its process exits
 *       within shutdownTimeout).
 */
export function checkStream(x: StreamRecord, f: StreamFacts): { violations: string[]; tolerated: string[] } {
  const v: string[] = [];
  /** Today's known bugs that this stream ran into, tolerated by the lenient flags. */
  const tolerated: string[] = [];
  const last = f.arrivals[f.arrivals.length - 1];
  const g = last?.gen;
  const outcome = f.outcome;
  // (s1)
  if (!x.end) v.push('(s1) its reader never saw it end');
  for (const a of x.after) v.push(`(s1) after the loop ended, next() gave ${a}`);
  if (x.end && outcome) {
    if (x.end.how === 'error') {
      if (outcome.ok) v.push(`(s1) the loop threw ${(x.end.error as { code?: string }).code}, but .result resolved`);
      else if (x.end.error !== outcome.error) v.push(`(s1) the loop threw ${(x.end.error as { code?: string }).code ?? String(x.end.error)}, .result rejected with another error (${outcome.error.code})`);
    }
    if (x.end.how === 'done' && !outcome.ok) v.push(`(s1) the loop completed, but .result rejected with ${outcome.error.code}`);
    if (x.end.how === 'break' && x.reader.kind === 'read' && x.read.length !== x.reader.breakAfter) v.push(`(s1) the reader broke after ${x.read.length} chunks, not ${x.reader.breakAfter}`);
  }
  // (s2)
  const pid = last?.pid;
  for (const [i, chunk] of x.read.entries()) {
    const c = chunk as { n?: number; i?: number; pid?: number } | null;
    if (c?.n !== f.n || c.i !== i || c.pid !== pid) {
      v.push(`(s2) chunk ${i} read is ${JSON.stringify(chunk)}; expected ${JSON.stringify({ n: f.n, i, pid })}`);
      break;
    }
  }
  if (f.arrivals.length > 1) {
    const first = f.arrivals[0]!.gen;
    if (first && first.produced.length > 0) v.push(`(s2) restarted on pid ${last!.pid} after its first attempt on pid ${f.arrivals[0]!.pid} delivered ${first.produced.length} chunk(s)`);
  }
  if (!g && x.read.length > 0) v.push(`(s2) ${x.read.length} chunks read, but it never reached a process`);
  if (g && x.read.length > g.produced.length) v.push(`(s2) ${x.read.length} chunks read, but its attempt produced only ${g.produced.length}`);
  if (outcome?.ok && x.end?.how === 'done' && x.read.length !== f.chunksExpected) v.push(`(s2) it completed after ${x.read.length} chunks; the generator yields ${f.chunksExpected}`);
  const readAll = x.end?.how === 'error' || x.end?.how === 'done';
  const brokeOrAborted = f.cancelAt !== null && x.end?.how !== 'done';
  if (readAll && !brokeOrAborted && g && f.settledAt !== null) {
    const before = g.produced.filter((t) => t < f.settledAt!).length;
    const upTo = g.produced.filter((t) => t <= f.settledAt!).length;
    if (x.read.length < before || x.read.length > upTo) v.push(`(s2) its reader read ${x.read.length} chunk(s); its attempt produced ${before} before it settled at ${f.settledAt} (${upTo} up to then)`);
    if (x.read.length !== x.rs.received) v.push(`(s2) its reader read ${x.read.length} chunk(s), the stream says it received ${x.rs.received}`);
  }
  // (s3)
  if (x.maxBuffered > x.window) v.push(`(s3) ${x.maxBuffered} chunks buffered, window ${x.window}`);
  // (s4) and (s5)
  for (const a of f.arrivals) {
    if (!a.gen) continue;
    const proc = f.processes.find((p) => p.pid === a.pid);
    const controls = (proc?.controls ?? []).filter((c) => c.id === a.gen!.frameId);
    const acks = controls.filter((c) => c.ack !== undefined).map((c) => c.ack!);
    const h = Math.max(1, x.window >> 1);
    // Today's lost first acknowledgement (see SYNC_FIRST_CHUNK_IS_ACKED).
    const lostFirstAck = !SYNC_FIRST_CHUNK_IS_ACKED && a.gen.produced[0] === a.at;
    if (lostFirstAck && acks.some((ack, i) => ack !== (i + 1) * h)) tolerated.push('SYNC_FIRST_CHUNK_IS_ACKED: first acknowledgement lost');
    if (!lostFirstAck && acks.some((ack, i) => ack !== (i + 1) * h)) v.push(`(s4) pid ${a.pid} got acknowledgements ${acks.join(', ') || 'none'} for #${f.n}; with window ${x.window} they come in batches of ${h}: ${h}, ${2 * h}, ...`);
    if (acks.length > 0 && acks[acks.length - 1]! > x.read.length) v.push(`(s4) pid ${a.pid} was acknowledged ${acks[acks.length - 1]} chunks of #${f.n}, its reader read ${x.read.length}`);
    // Credit is given: every h chunks read while the request ran are acknowledged.
    if (a === last && f.settledAt !== null && !lostFirstAck) {
      const readWhileRunning = x.readAt.filter((t) => t < f.settledAt!).length;
      if (acks.length < Math.floor(readWhileRunning / h)) v.push(`(s4) its reader read ${readWhileRunning} chunk(s) of #${f.n} before it settled at ${f.settledAt}, but pid ${a.pid} got only the acknowledgements ${acks.join(', ') || 'none'} (window ${x.window}: one per ${h})`);
    }
    if (controls.filter((c) => c.cancel).length > 1) v.push(`(s5) pid ${a.pid} got ${controls.filter((c) => c.cancel).length} cancels for #${f.n}`);
  }
  if (f.gaveUpAt !== null && last && g) {
    const t = f.gaveUpAt;
    const died = f.deaths.get(last.pid);
    const end = ledgerEnd(g);
    const out = last.at <= t && (died === undefined || died > t) && (end === null || end >= t);
    const timedOutAlone = outcome && !outcome.ok && outcome.error.code === 'REQUEST_TIMEOUT' && f.concurrency === 1;
    if (out) {
      const proc = f.processes.find((p) => p.pid === last.pid);
      const cancelled = (proc?.controls ?? []).some((c) => c.id === g.frameId && c.cancel);
      if (!timedOutAlone && !cancelled && !(end !== null && end <= t)) v.push(`(s5) given up on at ${t} while its frame was out on pid ${last.pid}, but that process never got a cancel for it`);
      const gone = Math.min(end ?? Infinity, died ?? Infinity);
      const stopping = (f.stopAt !== null && f.stopAt <= t + f.interruptGraceMs) || f.drainedBy(last.pid, t + f.interruptGraceMs);
      const lenient = !CANCEL_BEFORE_START_STOPS_THE_GENERATOR && cancelledBeforeStart(g, t);
      if (gone > t + f.interruptGraceMs && !stopping && lenient) tolerated.push('CANCEL_BEFORE_START_STOPS_THE_GENERATOR: a cancel before the first chunk dropped');
      if (gone > t + f.interruptGraceMs && !stopping && !lenient) {
        v.push(`(s5) given up on at ${t} while its frame was out on pid ${last.pid}, but that frame was still out at ${t + f.interruptGraceMs} (${end !== null ? `closed at ${end}` : died !== undefined ? `its process died at ${died}` : 'never closed, its process alive'})`);
      }
    }
  }
  return { violations: v, tolerated };
}
