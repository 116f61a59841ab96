/** The process transport: one Python worker process and its pipes. See docs/PROTOCOL.md. */
export {
  WorkerProcess,
  type WorkerProcessOptions,
  type WorkerProcessHandlers,
  type WorkerMessage,
  type WorkerExitInfo,
  type Reply,
  type ReplyOk,
  type ReplyError,
  type ReadyNotice,
  type LogNotice,
  type OtherNotice,
  type PythonErrorInfo,
} from './workerProcess.js';
export { resolvePython, clearPythonCache, isExecutable, BRIDGE_SCRIPT, PACKAGE_ROOT } from './python.js';
