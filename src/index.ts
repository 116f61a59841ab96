export { createPool } from './createPool.js';
export { Pool, Pool as PoolHandle } from './pool.js';
export type { PoolStats, WorkerInfo } from './pool.js';
export { presets, resolveOptions } from './options.js';
export type { PoolOptions, ExecuteOptions, RestartOptions, RecycleOptions } from './options.js';
export * from './errors.js';
export type { PoolEvents, PoolEventName } from './telemetry.js';
export { PythonPool, SessionAdapter } from './adapter/pythonPool.js';
export type { ProgramType, FieldSpec, SignatureSpec, ProgramConfig, LMConfig, DummyLMConfig, OpenAILMConfig, LMInfo, ProgramCallOptions, ExecuteResult, ProgramInfo, ProgramSummary, PythonPoolEvents, PythonPoolStats, PythonPoolOptions, RestoreReason } from './adapter/pythonPool.js';
