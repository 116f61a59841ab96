/** The DSPy adapter's public types (src/adapter/pythonPool.ts, sessionAdapter.ts). */

export type ProgramType = 'predict' | 'chain_of_thought';

export interface FieldSpec {
  name: string;
  description?: string;
}

export interface SignatureSpec {
  /** Input fields, in order; a bare string is a field with no description. */
  inputs: Array<FieldSpec | string>;
  /** Output fields, in order; chain_of_thought adds its own `reasoning` before them. */
  outputs: Array<FieldSpec | string>;
  /** The task description given to the LM. */
  instructions?: string;
}

export interface ProgramConfig {
  /** Program id, unique in the session; generated ("program_" + 12 hex digits) when absent. */
  id?: string;
  /** Default 'predict'. */
  type?: ProgramType;
  signature: SignatureSpec;
}

export interface DummyLMConfig {
  provider: 'dummy';
  /** A label echoed in results. Default "dummy". */
  model?: string;
  /**
   * Canned answers: a map from an input value to an outputs object (the first input field,
   * in signature order, whose value is a key selects it; "*" is the fallback), or a list of
   * outputs objects used in rotation. Without it every output is derived from the inputs:
   * `dummy <field> to: <input values joined by " | ">`.
   */
  answers?: Record<string, Record<string, unknown>> | Array<Record<string, unknown>>;
}

export interface OpenAILMConfig {
  provider: 'openai';
  /** Default "gpt-4o-mini". */
  model?: string;
  /** Any OpenAI-compatible endpoint; `${baseUrl}/chat/completions` is called. Default https://api.openai.com/v1. */
  baseUrl?: string;
  /** The key itself (kept in Node memory and re-sent when a worker is restored); prefer apiKeyEnv. */
  apiKey?: string;
  /** Name of the environment variable of the Python process holding the key. Default OPENAI_API_KEY. */
  apiKeyEnv?: string;
  /** HTTP timeout in ms. Default 60000. */
  timeoutMs?: number;
  temperature?: number;
  maxTokens?: number;
  /**
   * DSPy's LM cache. Default false: DSPy's cache key ignores the key and the base URL, so two
   * sessions with different endpoints would share answers (docs/ADAPTER.md).
   */
  cache?: boolean;
  /** Retries of a failed LM call inside DSPy (litellm). Default 0: one execution, one request. */
  numRetries?: number;
}

export type LMConfig = DummyLMConfig | OpenAILMConfig;

export interface LMInfo {
  provider: string;
  model: string;
}

export interface ProgramCallOptions {
  /** ms the command may run (default: the pool's requestTimeout). */
  timeout?: number;
  /** ms to wait for a worker (default: the pool's checkoutTimeout). */
  checkoutTimeout?: number;
  signal?: AbortSignal;
  /** Retry once when the worker dies under the call (default true). Set false for LM calls that must not be repeated. */
  retryOnCrash?: boolean;
}

export interface ExecuteResult<O extends Record<string, unknown> = Record<string, unknown>> {
  programId: string;
  /** The output fields (chain_of_thought: `reasoning` first). */
  outputs: O;
  provider: string;
  model: string;
  /** The worker that answered had to (re)create the program or the session's LM configuration first, in the same call. */
  restored: boolean;
  /** Calls sent to the pool for this execution: 1, or 2 when it was retried after its worker died. */
  attempts: number;
  /** Token counts of this execution, when the LM reported them (DSPy's track_usage, summed over its LM calls). */
  usage?: TokenUsage;
}

/** Token counts as the LM reports them (OpenAI's names; other keys the provider adds are kept). */
export interface TokenUsage {
  prompt_tokens?: number;
  completion_tokens?: number;
  total_tokens?: number;
  [key: string]: unknown;
}

/** A program as exportProgram gives it: enough to rebuild it anywhere, optimization included. */
export interface ExportedProgram {
  programId: string;
  type: ProgramType;
  signature: { inputs: NormalizedField[]; outputs: NormalizedField[]; instructions: string };
  /** DSPy's `dump_state()` without the LM (the session's LM applies): demos, instructions, ... (plain values). */
  state: Record<string, unknown>;
}

/** One example for optimizeProgram: input values and the outputs a right answer has. */
export interface TrainingExample {
  inputs: Record<string, unknown>;
  outputs: Record<string, unknown>;
}

export interface OptimizeOptions extends ProgramCallOptions {
  /** Demos BootstrapFewShot may bootstrap (default 4). */
  maxBootstrappedDemos?: number;
  /** Labeled demos it may add from the trainset (default 16). */
  maxLabeledDemos?: number;
  /** Bootstrapping rounds (default 1). */
  maxRounds?: number;
  /** Called as examples are evaluated. */
  onProgress?: (progress: { done: number; total: number }) => void;
}

export interface OptimizeResult {
  programId: string;
  /** Demos the optimized program carries. */
  demos: number;
  /** The optimized program's state (what exportProgram returns as `state`). */
  state: Record<string, unknown>;
}

/** What streamProgram yields: output text as the LM produces it, then the whole result once. */
export type ProgramStreamEvent =
  | { type: 'field'; field: string; text: string }
  | { type: 'result'; result: ExecuteResult };

export interface NormalizedField {
  name: string;
  description: string;
}

export interface ProgramInfo {
  programId: string;
  type: ProgramType;
  signature: { inputs: NormalizedField[]; outputs: NormalizedField[]; instructions: string };
  /** Successful executions through this adapter, on all workers together. */
  executions: number;
  /** When the program was created, ms since the epoch (Node's clock). */
  createdAt: number;
  /** 'builtin' (the bridge's signature runner) or 'dspy' (a real dspy module). */
  engine: string;
}

export interface ProgramSummary {
  programId: string;
  type: ProgramType;
  executions: number;
  createdAt: number;
}

/**
 * Why a worker lacked a session's state: 'program_missing' (routing: it never held the
 * program, held an older spec of it, or another LM configuration), 'worker_crashed' (the call
 * is a retry after its worker died under it), 'worker_lost' (a retry after an
 * `affinity: 'strict'` session lost its pinned worker).
 */
export type RestoreReason = 'program_missing' | 'worker_crashed' | 'worker_lost';

export interface PythonPoolEvents {
  /** A worker (re)created a program or the session's LM configuration from the spec the call carried. */
  program_restored: { sessionId: string; programId: string; reason: RestoreReason };
  /** A call is being retried once: its worker died under it, or a strict session's worker is gone. */
  retry: { sessionId: string; programId: string; command: string; reason: 'worker_crashed' | 'worker_lost'; attempt: number };
}

export interface PythonPoolStats {
  /** Sessions the adapter holds state for. */
  sessions: number;
  /** Programs over all sessions. */
  programs: number;
  /** Successful executions. */
  executions: number;
  /** Calls whose worker (re)created the program or LM configuration from the spec they carried. */
  restores: number;
  /** Calls retried after their worker died (or a strict session's worker was lost). */
  retries: number;
}

// ---- what the adapter keeps per session (internal) ------------------------------------------

/** @internal */
export interface ProgramSpec {
  id: string;
  type: ProgramType;
  signature: { inputs: NormalizedField[]; outputs: NormalizedField[]; instructions: string };
  /** create_program's args, sent as `restore.program` with every call about the program. */
  wire: Record<string, unknown>;
  /** The program's latest state (optimization, import), sent with `restore.program` so any worker rebuilds it; null: as created. */
  state: Record<string, unknown> | null;
  /** Bumped whenever `state` changes: a worker holding another revision rebuilds the program. */
  stateRev: number;
  createdAt: number;
  executions: number;
}

/** @internal */
export interface SessionState {
  id: string;
  lm: LMConfig | null;
  /** configure_lm's args, sent as `restore.lm` with every execute/info call. */
  lmWire: Record<string, unknown> | null;
  programs: Map<string, ProgramSpec>;
  /** Ids being created right now (a concurrent duplicate must fail, like Python would). */
  reserved: Set<string>;
}
