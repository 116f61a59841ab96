/**
 * A stream request's output as the caller reads it: an async iterable of the chunks a generator
 * handler yields, with credit-based backpressure. The worker may run ahead of the reader by at
 * most `window` chunks (docs/PROTOCOL.md: `stream`, `ack`); the reader's `break` (or `return()`)
 * cancels the request, and the request's own failure (crash, deadline, Python error) is thrown
 * from the iterator once the chunks that arrived before it have been read.
 *
 * The request's owner (the dispatcher, then the worker's handle) feeds it through `StreamSink`;
 * it never settles anything itself: `cancel` asks the owner to.
 */

/** What the owner of a stream request feeds. */
export interface StreamSink {
  /** Chunks the worker may send beyond the last acknowledgement. */
  readonly window: number;
  /** Chunks received so far in this attempt (a stream that delivered any is never retried). */
  readonly received: number;
  /** A chunk arrived. False: the worker sent more than its window allows (a protocol violation). */
  push(chunk: unknown): boolean;
  /** Set by the worker's handle while a process runs the request: sends `{id, ack: consumed}`. */
  credit: ((consumed: number) => void) | null;
}

export type StreamOutcome = { error: unknown } | { value: unknown };

/** Default for `window`: chunks in flight between a worker and a reader that has not read them. */
export const DEFAULT_STREAM_WINDOW = 16;

/** `T`: a chunk; `R`: the final result (typed by `pool.commands<Handlers>()`, docs/TYPES.md). */
export class ResultStream<T = unknown, R = unknown> implements AsyncIterableIterator<T>, StreamSink {
  readonly window: number;
  received = 0;
  credit: ((consumed: number) => void) | null = null;
  /** The final reply's result (a generator's `return` value; null for an async generator). */
  readonly result: Promise<R>;
  private consumed = 0;
  private acked = 0;
  private readonly buffer: T[] = [];
  private readonly readers: Array<{ resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void }> = [];
  private outcome: StreamOutcome | null = null;
  /** The reader stopped (break, return(), throw()): nothing more is delivered. */
  private closed = false;
  private readonly cancel: (reason: unknown) => void;
  private settleResult!: (outcome: StreamOutcome) => void;

  constructor(window: number, cancel: (reason: unknown) => void) {
    this.window = window;
    this.cancel = cancel;
    const result = new Promise<R>((resolve, reject) => {
      this.settleResult = (o) => ('error' in o ? reject(o.error) : resolve(o.value as R));
    });
    // Reading `result` is optional: its rejection is the iterator's too, and must not go unhandled.
    result.catch(() => {});
    this.result = result;
  }

  /** Chunks received and not read yet (never more than `window`). */
  get buffered(): number {
    return this.buffer.length;
  }

  push(chunk: unknown): boolean {
    if (this.received - this.acked >= this.window) return false;
    this.received++;
    if (this.closed) return true;
    const reader = this.readers.shift();
    if (reader) {
      this.read();
      reader.resolve({ value: chunk as T, done: false });
    } else this.buffer.push(chunk as T);
    return true;
  }

  /** The request settled: the iterator ends (or throws) once the buffered chunks are read. */
  end(outcome: StreamOutcome): void {
    if (this.outcome !== null) return;
    this.outcome = outcome;
    this.settleResult(outcome);
    if (this.buffer.length > 0) return;
    for (const reader of this.readers.splice(0)) this.finishRead(reader);
  }

  next(): Promise<IteratorResult<T>> {
    if (this.buffer.length > 0) {
      const value = this.buffer.shift()!;
      this.read();
      return Promise.resolve({ value, done: false });
    }
    if (this.closed || this.outcome !== null) {
      return new Promise((resolve, reject) => this.finishRead({ resolve, reject }));
    }
    return new Promise((resolve, reject) => this.readers.push({ resolve, reject }));
  }

  /** `break` out of `for await`: the request is cancelled (its handler interrupted), the worker freed. */
  return(): Promise<IteratorResult<T>> {
    this.stop('the stream was closed by its reader');
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(error?: unknown): Promise<IteratorResult<T>> {
    this.stop(error ?? 'the stream was closed by its reader');
    return Promise.reject(error);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  private stop(reason: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.buffer.length = 0;
    for (const reader of this.readers.splice(0)) reader.resolve({ value: undefined, done: true });
    if (this.outcome === null) this.cancel(reason);
  }

  private finishRead(reader: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void }): void {
    const outcome = this.outcome;
    if (!this.closed && outcome !== null && 'error' in outcome) {
      // Thrown once; after that the iterator is done, like any finished async generator.
      this.closed = true;
      reader.reject(outcome.error);
    } else reader.resolve({ value: undefined, done: true });
  }

  /** One chunk read: give the worker credit in batches of half a window (not a frame per chunk). */
  private read(): void {
    this.consumed++;
    if (this.consumed - this.acked >= Math.max(1, this.window >> 1)) {
      this.acked = this.consumed;
      this.credit?.(this.consumed);
    }
  }
}
