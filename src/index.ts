export { createPool } from './createPool.js';
export { Pool, Pool as PoolHandle } from './pool.js';
export type { PoolStats, WorkerInfo } from './pool.js';
export { presets, resolveOptions } from './options.js';
export type { PoolOptions, ExecuteOptions, RestartOptions, RecycleOptions } from './options.js';
export * from './errors.js';
export type { PoolEvents, PoolEventName } from './telemetry.js';
