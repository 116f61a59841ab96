/**
 * The adapter's argument checks and its camelCase → bridge (snake_case) translations: cheap shape
 * checks in Node, each naming the field; the semantic rules (identifiers, reserved names) are the
 * bridge's own.
 */
import { InvalidOptionError, PythonError } from '../errors.js';
import type { ExecuteOptions } from '../options.js';
import type { LMConfig, ProgramCallOptions, ProgramConfig, ProgramType } from './types.js';

export const PROGRAM_TYPES: readonly ProgramType[] = ['predict', 'chain_of_thought'];

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || Buffer.isBuffer(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

export function describe(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'function') return 'a function';
  if (Array.isArray(v)) return 'an array';
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

export function bad(field: string, problem: string, value: unknown): InvalidOptionError {
  return new InvalidOptionError(field, `${problem}, got ${describe(value)}`);
}

export function checkKeys(where: string, obj: Record<string, unknown>, known: string[], hints: Record<string, string> = {}): void {
  for (const key of Object.keys(obj)) {
    if (known.includes(key)) continue;
    const hint = hints[key] ? ` (did you mean "${hints[key]}"?)` : '';
    throw new InvalidOptionError(`${where}${key}`, `unknown field${hint}; known: ${known.join(', ')}`);
  }
}

/** Cheap shape checks of a program config; the semantic rules (identifiers, duplicates, reserved names) are the bridge's. */
export function programWire(config: ProgramConfig, id: string, type: ProgramType): Record<string, unknown> {
  const sig = config.signature as unknown;
  if (sig === undefined || sig === null) throw bad('signature', 'is required (an object with inputs and outputs)', sig);
  if (!isPlainObject(sig)) throw bad('signature', 'must be an object with inputs and outputs', sig);
  checkKeys('signature.', sig, ['inputs', 'outputs', 'instructions']);
  const fields = (part: 'inputs' | 'outputs') => {
    const list = sig[part];
    if (!Array.isArray(list) || list.length === 0) throw bad(`signature.${part}`, 'must be a non-empty array of fields ({ name, description? } or a name)', list);
    return list.map((f, i) => {
      const where = `signature.${part}[${i}]`;
      if (typeof f === 'string') {
        if (f.length === 0) throw bad(`${where}`, 'must be a non-empty name', f);
        return { name: f };
      }
      if (!isPlainObject(f)) throw bad(where, 'must be { name, description? } or a name', f);
      checkKeys(`${where}.`, f, ['name', 'description']);
      if (typeof f.name !== 'string' || f.name.length === 0) throw bad(`${where}.name`, 'must be a non-empty string', f.name);
      if (f.description !== undefined && typeof f.description !== 'string') throw bad(`${where}.description`, 'must be a string', f.description);
      return f.description === undefined ? { name: f.name } : { name: f.name, description: f.description };
    });
  };
  const signature: Record<string, unknown> = { inputs: fields('inputs'), outputs: fields('outputs') };
  if (sig.instructions !== undefined) {
    if (typeof sig.instructions !== 'string') throw bad('signature.instructions', 'must be a string', sig.instructions);
    signature.instructions = sig.instructions;
  }
  return { id, type, signature };
}

/** camelCase LM config → configure_lm's snake_case args. */
export function lmWire(config: LMConfig): Record<string, unknown> {
  if (!isPlainObject(config)) throw bad('lm', 'must be an object with a provider', config);
  const provider = (config as { provider?: unknown }).provider;
  if (provider !== 'dummy' && provider !== 'openai') throw bad('provider', "must be 'dummy' or 'openai'", provider);
  const c = config as unknown as Record<string, unknown>;
  if (c.model !== undefined && (typeof c.model !== 'string' || c.model.length === 0)) throw bad('model', 'must be a non-empty string', c.model);
  if (provider === 'dummy') {
    checkKeys('', c, ['provider', 'model', 'answers']);
    const wire: Record<string, unknown> = { provider };
    if (c.model !== undefined) wire.model = c.model;
    if (c.answers !== undefined) {
      if (!isPlainObject(c.answers) && !Array.isArray(c.answers)) throw bad('answers', 'must be an object (input value → outputs) or an array of outputs objects', c.answers);
      wire.answers = structuredClone(c.answers);
    }
    return wire;
  }
  checkKeys('', c, ['provider', 'model', 'baseUrl', 'apiKey', 'apiKeyEnv', 'timeoutMs', 'temperature', 'maxTokens', 'cache', 'numRetries'], {
    base_url: 'baseUrl',
    api_key: 'apiKey',
    api_key_env: 'apiKeyEnv',
    timeout_s: 'timeoutMs',
    timeout: 'timeoutMs',
    max_tokens: 'maxTokens',
    num_retries: 'numRetries',
  });
  const wire: Record<string, unknown> = { provider };
  if (c.model !== undefined) wire.model = c.model;
  if (c.baseUrl !== undefined) {
    if (typeof c.baseUrl !== 'string' || !/^https?:\/\//.test(c.baseUrl)) throw bad('baseUrl', 'must be an http(s) URL', c.baseUrl);
    wire.base_url = c.baseUrl;
  }
  if (c.apiKey !== undefined) {
    if (typeof c.apiKey !== 'string') throw bad('apiKey', 'must be a string', c.apiKey);
    wire.api_key = c.apiKey;
  }
  if (c.apiKeyEnv !== undefined) {
    if (typeof c.apiKeyEnv !== 'string' || c.apiKeyEnv.length === 0) throw bad('apiKeyEnv', 'must be a non-empty string', c.apiKeyEnv);
    wire.api_key_env = c.apiKeyEnv;
  }
  if (c.timeoutMs !== undefined) {
    if (typeof c.timeoutMs !== 'number' || !Number.isFinite(c.timeoutMs) || c.timeoutMs <= 0) throw bad('timeoutMs', 'must be a number of milliseconds > 0', c.timeoutMs);
    wire.timeout_s = c.timeoutMs / 1000;
  }
  if (c.temperature !== undefined) {
    if (typeof c.temperature !== 'number' || !Number.isFinite(c.temperature) || c.temperature < 0) throw bad('temperature', 'must be a number >= 0', c.temperature);
    wire.temperature = c.temperature;
  }
  if (c.maxTokens !== undefined) {
    if (!Number.isSafeInteger(c.maxTokens) || (c.maxTokens as number) < 1) throw bad('maxTokens', 'must be an integer >= 1', c.maxTokens);
    wire.max_tokens = c.maxTokens;
  }
  if (c.cache !== undefined) {
    if (typeof c.cache !== 'boolean') throw bad('cache', 'must be true or false', c.cache);
    wire.cache = c.cache;
  }
  if (c.numRetries !== undefined) {
    if (!Number.isSafeInteger(c.numRetries) || (c.numRetries as number) < 0) throw bad('numRetries', 'must be an integer >= 0', c.numRetries);
    wire.num_retries = c.numRetries;
  }
  return wire;
}

export const CALL_OPTIONS = ['timeout', 'checkoutTimeout', 'signal', 'retryOnCrash'];

export function callOptions(opts: ProgramCallOptions | undefined, known: string[] = CALL_OPTIONS): { exec: Omit<ExecuteOptions, 'sessionId'>; retryOnCrash: boolean } {
  if (opts === undefined) return { exec: {}, retryOnCrash: true };
  if (!isPlainObject(opts as unknown)) throw bad('options', 'must be an object', opts);
  checkKeys('options.', opts as unknown as Record<string, unknown>, known);
  if (opts.retryOnCrash !== undefined && typeof opts.retryOnCrash !== 'boolean') throw bad('options.retryOnCrash', 'must be true or false', opts.retryOnCrash);
  const exec: Omit<ExecuteOptions, 'sessionId'> = {};
  if (opts.timeout !== undefined) exec.timeout = opts.timeout;
  if (opts.checkoutTimeout !== undefined) exec.checkoutTimeout = opts.checkoutTimeout;
  if (opts.signal !== undefined) exec.signal = opts.signal;
  return { exec, retryOnCrash: opts.retryOnCrash ?? true };
}

export function checkProgramId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || id.length === 0) throw bad('programId', 'must be a non-empty string', id);
}

/**
 * The bridge's "Program 'x' not found in session 's'", answered in Node: the adapter knows
 * every program of the session, and a worker may still hold a stale copy of a deleted one.
 */
export function programNotFound(sessionId: string, programId: string, command: string): PythonError {
  return new PythonError('ProgramNotFoundError', `Program '${programId}' not found in session '${sessionId}'`, '', command);
}

/** optimize_program's trainset, checked for shape (field names are the bridge's to check, per example). */
export function trainsetWire(trainset: unknown): Array<{ inputs: Record<string, unknown>; outputs: Record<string, unknown> }> {
  if (!Array.isArray(trainset) || trainset.length === 0) throw bad('trainset', 'must be a non-empty array of { inputs, outputs }', trainset);
  return trainset.map((ex, i) => {
    if (!isPlainObject(ex)) throw bad(`trainset[${i}]`, 'must be { inputs, outputs }', ex);
    checkKeys(`trainset[${i}].`, ex, ['inputs', 'outputs']);
    if (!isPlainObject(ex.inputs)) throw bad(`trainset[${i}].inputs`, 'must be an object of input field values', ex.inputs);
    if (!isPlainObject(ex.outputs)) throw bad(`trainset[${i}].outputs`, 'must be an object of output field values', ex.outputs);
    return { inputs: ex.inputs, outputs: ex.outputs };
  });
}

/** A positive integer option, or undefined. */
export function positiveInt(name: string, value: unknown, min = 0): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isSafeInteger(value) || (value as number) < min) throw bad(name, `must be an integer >= ${min}`, value);
  return value as number;
}
