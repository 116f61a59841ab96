// Workers on a virtualenv's (or uv's) interpreter, with handlers that import its packages.
//
//   python3 -m venv .venv && .venv/bin/pip install -r python/requirements-dspy.txt   # or: uv venv && uv pip install -r ...
//   npm run build                                       # once: the example imports the built package
//   node examples/venv-interpreter.mjs                  # .venv/bin/python
//   node examples/venv-interpreter.mjs /path/to/venv/bin/python    # or VENV_PYTHON=...
//
// `python` is the interpreter each worker runs; the worker itself needs nothing installed, and
// the handlers' imports (examples/handlers/venv_info.py imports dspy and pydantic) come from
// that environment. No activation is needed: a venv's bin/python is enough (a relative path is
// relative to the current directory). With an interpreter that lacks a package createPool
// rejects, quoting Python's ModuleNotFoundError, and this example exits 1.
import { createPool } from 'pyvisor';

const python = process.argv[2] ?? process.env.VENV_PYTHON ?? './.venv/bin/python';

let pool;
try {
  pool = await createPool({ python, poolSize: 1, handlers: [new URL('./handlers/venv_info.py', import.meta.url)] });
} catch (error) {
  console.error(`cannot start workers on ${python}: ${error.message}`);
  process.exit(1);
}
try {
  console.log(`worker pid ${pool.workers()[0].pid} on ${python}`);
  const info = await pool.execute('venv_info');
  console.log(`sys.executable: ${info.executable}`);
  console.log(`sys.prefix: ${info.prefix}${info.in_venv ? ` (a virtualenv; base ${info.base_prefix})` : ' (not a virtualenv)'}`);
  console.log(`python ${info.python}, dspy ${info.dspy}, pydantic ${info.pydantic}`);
  console.log(`validated: ${JSON.stringify(await pool.execute('validate', { text: 'What is a venv?' }))}`);
  await pool.execute('validate', { text: 42 }).catch((error) => console.log(`refused: ${error.message}`));
} finally {
  await pool.stop();
}
