// `await using`: a pool that stops itself when its block ends, also when the block throws.
//
//   npm run build                                   # once: the example imports the built package
//   npx tsc -p examples/tsconfig.json               # Node 20 cannot parse `await using`: compile it
//   node examples/build/await-using.js
//
// A pool is AsyncDisposable: `await using pool = await createPool(...)` awaits
// pool[Symbol.asyncDispose]() — which is pool.stop() — when the block is left, however it is left
// (return, throw, break). examples/tsconfig.json has what TypeScript needs to lower it for Node 20:
// a target below ESNext (ES2022 here) and lib esnext.disposable. At run time the lowered code needs
// Symbol.asyncDispose, which Node defines from 20.4 (and 18.18) on. A cluster pool
// (pyvisor/cluster) is AsyncDisposable the same way.
//
// Environment: PYVISOR_PYTHON (the interpreter, default python3).
import { createPool } from 'pyvisor';

/** True while a process with this pid exists (ESRCH is the only proof that it is gone). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

const describe = (pids: number[]) => pids.filter(alive).join(', ') || 'none';

async function ping(): Promise<number[]> {
  await using pool = await createPool({ poolSize: 2 });
  const pids = pool.workers().map((w) => w.pid!);
  const pong = await pool.execute<{ pid: number }>('ping');
  console.log(`in the block: ${pids.length} workers (pids ${pids.join(', ')}), ping answered by pid ${pong.pid}`);
  return pids;
} // here: await pool[Symbol.asyncDispose](), after the return value is computed

async function failing(pids: number[]): Promise<void> {
  await using pool = await createPool({ poolSize: 1 });
  pids.push(...pool.workers().map((w) => w.pid!));
  throw new Error('something went wrong in the block');
} // here too: the pool is stopped before the error leaves the function

const pids = await ping();
console.log(`after the block: workers alive: ${describe(pids)}`);

const more: number[] = [];
try {
  await failing(more);
} catch (error) {
  console.log(`a block that threw (${(error as Error).message}): its workers (pids ${more.join(', ')}) alive: ${describe(more)}`);
}
