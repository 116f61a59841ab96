/** One session's view of the DSPy adapter (src/adapter/pythonPool.ts). */
import { randomUUID } from 'node:crypto';
import { PythonError, WorkerCrashedError } from '../errors.js';
import type { PythonPool } from './pythonPool.js';
import type { ExecuteResult, ExportedProgram, LMConfig, LMInfo, OptimizeOptions, OptimizeResult, ProgramCallOptions, ProgramConfig, ProgramInfo, ProgramSpec, ProgramStreamEvent, ProgramSummary, ProgramType, TokenUsage, TrainingExample } from './types.js';
import { CALL_OPTIONS, PROGRAM_TYPES, bad, checkKeys, checkProgramId, isPlainObject, lmWire, positiveInt, programWire, trainsetWire } from './wire.js';

/** execute_program's result as the bridge sends it. */
interface WireResult<O> {
  program_id: string;
  outputs: O;
  provider: string;
  model: string;
  usage?: TokenUsage;
  restored?: boolean;
}

type WireStreamEvent<O> = { type: 'field'; field: string; text: string } | { type: 'result'; result: WireResult<O> };
type WireOptimizeEvent = { type: 'progress'; done: number; total: number } | { type: 'result'; program_id: string; demos: number; state: Record<string, unknown> };

function executeResult<O extends Record<string, unknown>>(result: WireResult<O>, attempts: number): ExecuteResult<O> {
  const out: ExecuteResult<O> = { programId: result.program_id, outputs: result.outputs, provider: result.provider, model: result.model, restored: result.restored === true, attempts };
  if (result.usage) out.usage = result.usage;
  return out;
}

/**
 * One session's view of the adapter. Obtain it from `py.sessionAdapter(id)` or
 * `py.anonymousAdapter()`; every method runs in that session's namespace.
 */
export class SessionAdapter {
  readonly sessionId: string;
  /** True for the adapter from `anonymousAdapter()`. */
  readonly anonymous: boolean;
  private readonly py: PythonPool;

  /** @internal */
  constructor(py: PythonPool, sessionId: string, anonymous: boolean) {
    this.py = py;
    this.sessionId = sessionId;
    this.anonymous = anonymous;
  }

  /**
   * Configure the session's language model. The bridge validates the configuration (its
   * PythonError is the answer for a bad one) on the worker that takes the call; every later
   * call carries it, so each worker switches to it on the session's next call there.
   */
  async configureLM(config: LMConfig): Promise<LMInfo> {
    const wire = lmWire(config);
    const state = this.py.state(this.sessionId);
    const { result } = await this.py.call<{ provider: string; model: string }>(state, 'configure_lm', wire);
    state.lm = structuredClone(config);
    state.lmWire = wire;
    return { provider: result.provider, model: result.model };
  }

  /** The session's LM configuration (a copy), or null when it uses the default dummy LM. */
  lmConfig(): LMConfig | null {
    const lm = this.py.peek(this.sessionId)?.lm;
    return lm ? structuredClone(lm) : null;
  }

  /** Create a program; resolves to its id. */
  async createProgram(config: ProgramConfig): Promise<string> {
    if (!isPlainObject(config)) throw bad('config', 'must be an object with a signature', config);
    checkKeys('', config, ['id', 'type', 'signature'], { program_id: 'id', programId: 'id' });
    if (config.id !== undefined && (typeof config.id !== 'string' || config.id.length === 0)) throw bad('id', 'must be a non-empty string', config.id);
    const type = config.type ?? 'predict';
    if (!PROGRAM_TYPES.includes(type)) throw bad('type', "must be 'predict' or 'chain_of_thought'", config.type);
    const state = this.py.state(this.sessionId);
    let id = config.id;
    if (id === undefined) {
      do id = `program_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
      while (state.programs.has(id) || state.reserved.has(id));
    }
    const wire = programWire(config, id, type);
    if (state.programs.has(id) || state.reserved.has(id)) {
      // The bridge's own check and message: here in Node, so the answer does not depend on which worker the call lands on.
      throw new PythonError('ValueError', `create_program: program '${id}' already exists in session '${this.sessionId}'`, '', 'create_program');
    }
    state.reserved.add(id);
    try {
      // The bridge validates the signature; its PythonError (identifier rules, reserved names)
      // is the answer. `replace`: Node has no such program, so a copy the worker may hold is a
      // leftover of a deleted one.
      const { result } = await this.py.call<{ signature: ProgramSpec['signature'] }>(state, 'create_program', { ...wire, replace: true }, undefined, id);
      state.programs.set(id, { id, type, signature: result.signature, wire, state: null, stateRev: 0, createdAt: Date.now(), executions: 0 });
      return id;
    } finally {
      state.reserved.delete(id);
    }
  }

  /** Run a program on the inputs; resolves to `{ outputs, programId, provider, model, restored, attempts }`. */
  async executeProgram<O extends Record<string, unknown> = Record<string, unknown>>(programId: string, inputs: Record<string, unknown>, options?: ProgramCallOptions): Promise<ExecuteResult<O>> {
    checkProgramId(programId);
    if (!isPlainObject(inputs)) throw bad('inputs', 'must be an object of input field values', inputs);
    const state = this.py.state(this.sessionId);
    const { result, attempts, spec } = await this.py.programCall<WireResult<O>>(state, 'execute_program', programId, { inputs }, options);
    spec.executions++;
    this.py.countExecution();
    return executeResult(result, attempts);
  }

  /**
   * Run a program and read its output fields as the LM produces them (DSPy's streamify): `field`
   * events with text as it arrives, then one `result` event with what executeProgram returns.
   * With an LM that does not stream (the dummy LM), each field comes whole. `break` cancels the
   * call. Not retried on a crash (the reader may have text already): WorkerCrashedError.
   */
  streamProgram<O extends Record<string, unknown> = Record<string, unknown>>(programId: string, inputs: Record<string, unknown>, options?: ProgramCallOptions): AsyncIterable<ProgramStreamEvent> {
    checkProgramId(programId);
    if (!isPlainObject(inputs)) throw bad('inputs', 'must be an object of input field values', inputs);
    const py = this.py;
    const state = py.state(this.sessionId);
    const { stream, spec } = py.programStream<WireStreamEvent<O>>(state, 'stream_program', programId, { inputs }, options);
    return {
      async *[Symbol.asyncIterator]() {
        try {
          for await (const event of stream) {
            if (event.type === 'field') yield { type: 'field', field: event.field, text: event.text };
            else if (event.type === 'result') {
              if (event.result.restored === true) py.restored(state, programId, 'program_missing');
              spec.executions++;
              py.countExecution();
              yield { type: 'result', result: executeResult(event.result, 1) };
            }
          }
        } finally {
          await stream.return();
        }
      },
    };
  }

  /**
   * The program as it is now, optimization included: type, signature and DSPy state (demos,
   * instructions; the LM left out). `importProgram` rebuilds it in any session of any pool.
   */
  async exportProgram(programId: string, options?: ProgramCallOptions): Promise<ExportedProgram> {
    checkProgramId(programId);
    const state = this.py.state(this.sessionId);
    const { result, spec } = await this.py.programCall<{ program_id: string; type: ProgramType; signature: ExportedProgram['signature']; state: Record<string, unknown>; restored?: boolean }>(
      state,
      'export_program',
      programId,
      {},
      options,
    );
    return { programId: result.program_id, type: spec.type, signature: result.signature, state: result.state };
  }

  /**
   * Load an exported program into this session (created under `programId`, or `options.id`, if it
   * does not exist; an existing one takes the state). The adapter keeps the state with the spec,
   * so the program stays as imported on whichever worker serves it, also after a crash.
   */
  async importProgram(exported: ExportedProgram, options: ProgramCallOptions & { id?: string } = {}): Promise<string> {
    if (!isPlainObject(exported)) throw bad('exported', 'must be what exportProgram returned ({ programId, type, signature, state })', exported);
    checkKeys('exported.', exported as unknown as Record<string, unknown>, ['programId', 'type', 'signature', 'state']);
    if (!isPlainObject(exported.state)) throw bad('exported.state', 'must be an object (exportProgram’s state)', exported.state);
    const { id: wanted, ...callOpts } = options;
    const id = wanted ?? exported.programId;
    checkProgramId(id);
    const state = this.py.state(this.sessionId);
    if (!state.programs.has(id)) {
      const signature = { inputs: exported.signature?.inputs, outputs: exported.signature?.outputs, ...(exported.signature?.instructions ? { instructions: exported.signature.instructions } : {}) };
      await this.createProgram({ id, type: exported.type, signature: signature as ProgramConfig['signature'] });
    }
    // The new revision travels with the call, so the worker that loads it is up to date with the spec.
    const rev = state.programs.get(id)!.stateRev + 1;
    await this.py.programCall(state, 'import_program', id, { state: exported.state, state_rev: rev }, callOpts);
    this.keepState(id, exported.state, rev);
    return id;
  }

  /**
   * Optimize a program with DSPy's BootstrapFewShot on `trainset` (a right answer: every output
   * field equal, case and surrounding space ignored), with the session's LM, inside a worker;
   * progress comes through `onProgress` as examples are evaluated. The optimized state is kept
   * with the program's spec, so it survives crashes and re-routing.
   */
  async optimizeProgram(programId: string, trainset: TrainingExample[], options: OptimizeOptions = {}): Promise<OptimizeResult> {
    checkProgramId(programId);
    if (!isPlainObject(options as unknown)) throw bad('options', 'must be an object', options);
    const { maxBootstrappedDemos, maxLabeledDemos, maxRounds, onProgress, ...callOpts } = options;
    checkKeys('options.', callOpts as Record<string, unknown>, CALL_OPTIONS);
    if (onProgress !== undefined && typeof onProgress !== 'function') throw bad('options.onProgress', 'must be a function', onProgress);
    const args: Record<string, unknown> = { trainset: trainsetWire(trainset) };
    const set = (key: string, name: string, v: unknown, min: number) => {
      const n = positiveInt(`options.${name}`, v, min);
      if (n !== undefined) args[key] = n;
    };
    set('max_bootstrapped_demos', 'maxBootstrappedDemos', maxBootstrappedDemos, 0);
    set('max_labeled_demos', 'maxLabeledDemos', maxLabeledDemos, 0);
    set('max_rounds', 'maxRounds', maxRounds, 1);
    const state = this.py.state(this.sessionId);
    const rev = (state.programs.get(programId)?.stateRev ?? 0) + 1;
    args.state_rev = rev;
    const { stream } = this.py.programStream<WireOptimizeEvent>(state, 'optimize_program', programId, args, callOpts);
    let outcome: OptimizeResult | null = null;
    for await (const event of stream) {
      if (event.type === 'progress') onProgress?.({ done: event.done, total: event.total });
      else if (event.type === 'result') outcome = { programId: event.program_id, demos: event.demos, state: event.state };
    }
    if (!outcome) throw new PythonError('ProtocolError', 'optimize_program ended without a result', '', 'optimize_program');
    this.keepState(programId, outcome.state, rev);
    return outcome;
  }

  /** The program's state changed (revision `rev`, which the worker that changed it has too): keep it, so every other worker rebuilds it so. */
  private keepState(programId: string, programState: Record<string, unknown>, rev: number): void {
    const spec = this.py.peek(this.sessionId)?.programs.get(programId);
    if (!spec) return;
    spec.state = structuredClone(programState);
    spec.stateRev = rev;
  }

  /** The program's type, normalized signature and counters (the bridge's get_program_info). */
  async getProgramInfo(programId: string, options?: ProgramCallOptions): Promise<ProgramInfo> {
    checkProgramId(programId);
    const state = this.py.state(this.sessionId);
    const { result, spec } = await this.py.programCall<{ program_id: string; type: ProgramType; signature: ProgramInfo['signature']; engine: string; restored?: boolean }>(
      state,
      'get_program_info',
      programId,
      {},
      options,
    );
    return { programId: result.program_id, type: result.type, signature: result.signature, executions: spec.executions, createdAt: spec.createdAt, engine: result.engine };
  }

  /** The session's programs, as the adapter holds them (every worker's copy is rebuilt from these). */
  async listPrograms(): Promise<ProgramSummary[]> {
    const state = this.py.peek(this.sessionId);
    if (!state) return [];
    return [...state.programs.values()].map((p) => ({ programId: p.id, type: p.type, executions: p.executions, createdAt: p.createdAt }));
  }

  /**
   * Delete a program: the adapter forgets it, and the worker that takes the call drops its
   * copy. Copies on other workers are left to the session's end: they cannot be reached (the
   * adapter answers ProgramNotFoundError for an id it does not know), and a new program with
   * the same id replaces them (every call carries its spec).
   */
  async deleteProgram(programId: string, options?: ProgramCallOptions): Promise<void> {
    checkProgramId(programId);
    const state = this.py.state(this.sessionId);
    try {
      await this.py.programCall(state, 'delete_program', programId, {}, options, false);
    } catch (error) {
      if (!(error instanceof WorkerCrashedError)) throw error; // its copy died with the worker
    }
    state.programs.delete(programId);
  }

  /** End this session (PythonPool.endSession). */
  endSession(): Promise<{ workers: number; programs: number }> {
    return this.py.endSession(this.sessionId);
  }
}
