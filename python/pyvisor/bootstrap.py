"""Process entry: file descriptors, command line, parent death, handler
imports, the ``ready`` notice, then the request loop.

    python3 -m pyvisor --worker-id ID [--concurrency N] [--handlers FILE_OR_MODULE ...]
    python3 python/dspy_bridge.py --mode pool-worker --worker-id ID
            [--max-frame-bytes N] [--concurrency N] [--handlers FILE_OR_MODULE ...]

Startup, in this order:

1. keep private duplicates of the original stdin/stdout for protocol frames;
   point file descriptor 1 (and ``sys.stdout``) at stderr and fd 0 at
   /dev/null, before any user code is imported, so ``print()``, C-level writes
   to fd 1 and child processes can never corrupt or steal the protocol;
2. parse the command line (bad usage: exit 2);
3. on Linux, ask the kernel to SIGKILL this process when its parent dies (best effort);
4. install the SIGTERM/SIGINT handlers;
5. import the preloaded modules, then the handler files/modules (a failure
   prints the traceback to stderr and exits 3);
6. send ``{event: 'ready', worker_id, pid, python, codec, mode, concurrency, ...}``;
7. serve requests until stdin EOF, ``shutdown`` or SIGTERM.

Exit codes: 0 normal end (stdin EOF, ``shutdown``, SIGTERM, host went away),
1 internal error, 2 bad command line, 3 a handler failed to import,
4 the input stream broke framing (oversized length header, truncated frame).
"""

from __future__ import annotations

import os
import signal
import sys
from types import ModuleType
from typing import Any, Dict, List, NoReturn, Optional, Sequence, Tuple

from . import builtins as _builtins  # noqa: F401  (registers ping, get_stats, ...)
from . import framing
from . import registry
from .loop import (EXIT_HANDLER_IMPORT, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, MAX_CONCURRENCY,
                   MODES, PY_VERSION, Worker)

__all__ = ["main", "parse_args", "load_handlers", "UsageError"]

USAGE = ("usage: %s [--mode pool-worker|standalone] [--worker-id ID]\n"
         "       %s [--max-frame-bytes N] [--concurrency N] [--handlers FILE_OR_MODULE ...]\n")


class UsageError(Exception):
    pass


def parse_args(argv: List[str], default_mode: str = "standalone") -> Dict[str, Any]:
    """The command line as ``{mode, worker_id, handlers, max_frame_bytes, concurrency}``."""
    opts: Dict[str, Any] = {"mode": default_mode, "worker_id": None, "handlers": [],
                            "max_frame_bytes": framing.DEFAULT_MAX_FRAME_BYTES, "concurrency": 1}
    i = 0
    n = len(argv)

    def value(flag: str) -> str:
        if i + 1 >= n:
            raise UsageError("%s needs a value" % flag)
        return argv[i + 1]

    while i < n:
        a = argv[i]
        if "=" in a and a.startswith("--"):
            flag, _, val = a.partition("=")
            argv = argv[:i] + [flag, val] + argv[i + 1:]
            n = len(argv)
            a = flag
        if a == "--mode":
            opts["mode"] = value(a)
            if opts["mode"] not in MODES:
                raise UsageError("--mode must be one of %s, got %r" % (", ".join(MODES),
                                                                         opts["mode"]))
            i += 2
        elif a == "--worker-id":
            opts["worker_id"] = value(a)
            i += 2
        elif a == "--max-frame-bytes":
            try:
                opts["max_frame_bytes"] = int(value(a))
            except ValueError:
                raise UsageError("--max-frame-bytes needs an integer, got %r" % argv[i + 1])
            if opts["max_frame_bytes"] <= 0 or opts["max_frame_bytes"] > 0xFFFFFFFF:
                raise UsageError("--max-frame-bytes must be in 1 .. 4294967295")
            i += 2
        elif a == "--concurrency":
            raw = value(a)
            count = int(raw) if raw.isascii() and raw.isdigit() else None
            if count is None or not 1 <= count <= MAX_CONCURRENCY:
                raise UsageError("--concurrency must be an integer in 1 .. %d (requests run "
                                 "at once), got %r" % (MAX_CONCURRENCY, raw))
            opts["concurrency"] = count
            i += 2
        elif a == "--handlers":
            i += 1
            got = 0
            while i < n and not argv[i].startswith("--"):
                opts["handlers"].append(argv[i])
                i += 1
                got += 1
            if not got:
                raise UsageError("--handlers needs at least one file or module")
        elif a in ("-h", "--help"):
            raise UsageError("")
        else:
            raise UsageError("unknown argument %r" % a)
    if opts["worker_id"] is None:
        opts["worker_id"] = "%s_%d" % (opts["mode"].replace("-", "_"), os.getpid())
    return opts


class HandlersNotFound(FileNotFoundError):
    """The handlers path names no file: said in one line, without a traceback
    (which would show only this module's own frames)."""


def load_handlers(spec: str) -> ModuleType:
    """Import a handlers file (``*.py`` or a path) or a dotted module name."""
    import importlib
    import importlib.util
    if spec.endswith(".py") or os.sep in spec or "/" in spec:
        path = os.path.abspath(spec)
        if not os.path.isfile(path):
            raise HandlersNotFound("handlers file not found: %s" % path)
        stem = os.path.splitext(os.path.basename(path))[0]
        name = stem if stem.isidentifier() and stem not in sys.modules else \
            "pyvisor_handlers_%d_%s" % (len(sys.modules), "".join(
                c if c.isalnum() else "_" for c in stem))
        directory = os.path.dirname(path)
        if directory not in sys.path:
            sys.path.insert(0, directory)
        mspec = importlib.util.spec_from_file_location(name, path)
        if mspec is None or mspec.loader is None:
            raise ImportError("cannot load handlers from %s" % path)
        module = importlib.util.module_from_spec(mspec)
        sys.modules[name] = module
        try:
            mspec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return module
    return importlib.import_module(spec)


def _die_with_parent() -> bool:
    """Linux: the kernel SIGKILLs this worker when its parent dies, busy or not
    (best effort). SIGKILL, not SIGTERM: SIGTERM means "finish the current
    command", and a handler stuck in C code, or one that ignores SIGTERM, would
    outlive its parent. False when the parent is already gone."""
    if not sys.platform.startswith("linux") or os.environ.get("PYVISOR_NO_PDEATHSIG"):
        return True
    try:
        import ctypes
        parent = os.getppid()
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            return False  # the parent died before the request took effect
    except Exception:
        pass
    return True


def _hard_exit(code: int) -> NoReturn:
    """Exit now: user threads must not keep a finished worker alive."""
    try:
        import atexit
        atexit._run_exitfuncs()
    except Exception:
        pass
    for f in (sys.stderr, sys.__stderr__):
        try:
            if f is not None:
                f.flush()
        except Exception:
            pass
    os._exit(code)


def _secure_fds() -> Tuple[int, int]:
    """Step 1: returns (in_fd, out_fd), the private protocol descriptors."""
    out_fd = os.dup(1)
    in_fd = os.dup(0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    except OSError:
        pass
    return in_fd, out_fd


def _one_line(e: BaseException) -> str:
    """``SyntaxError: expected ':' (handlers.py, line 7)``: the exception as one line."""
    # HandlersNotFound is only this module's marker: the user reads the built-in name.
    name = "FileNotFoundError" if isinstance(e, HandlersNotFound) else type(e).__name__
    text = "%s: %s" % (name, e)
    if isinstance(e, SyntaxError) and e.filename and "line" not in str(e):
        text += " (%s, line %s)" % (os.path.basename(e.filename), e.lineno)
    return " ".join(text.split())


def main(argv: Optional[Sequence[str]] = None, preload: Sequence[str] = (),
         default_mode: str = "standalone", prog: Optional[str] = None) -> NoReturn:

    """Process entry point: see the module docstring. Never returns.

    ``preload``: modules imported before the ``--handlers`` (the DSPy preset
    passes ``pyvisor.dspy_commands``). ``default_mode``: the mode without
    ``--mode``. ``prog``: the program name in the usage text.
    """
    # 1. Protect the protocol before anything else can write to fd 1.
    in_fd, out_fd = _secure_fds()

    # 2. Command line.
    try:
        opts = parse_args(list(sys.argv[1:] if argv is None else argv), default_mode)
    except UsageError as e:
        if str(e):
            sys.stderr.write("error: %s\n" % e)
        prog = prog or os.path.basename(sys.argv[0] or "pyvisor")
        sys.stderr.write(USAGE % (prog, " " * len(prog)))
        _hard_exit(EXIT_USAGE if str(e) else EXIT_OK)

    # 3. Die with the parent.
    if not _die_with_parent():
        _hard_exit(EXIT_OK)

    # 4. Signals.
    worker = Worker(opts["worker_id"], opts["mode"], in_fd, out_fd, opts["max_frame_bytes"],
                    concurrency=opts["concurrency"])
    worker.install_signal_handlers()

    # 5. Handlers (user code).
    for spec in list(preload) + opts["handlers"]:
        try:
            load_handlers(spec)
        except BaseException as e:
            if not isinstance(e, HandlersNotFound):
                import traceback
                sys.stderr.write("pyvisor worker %s: failed to load handlers %r:\n"
                                 % (worker.worker_id, spec))
                traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
            # The last line is what the host's start error quotes: the file and the error, in one.
            sys.stderr.write("pyvisor worker %s: could not load handlers %r: %s\n"
                             % (worker.worker_id, spec, _one_line(e)))
            sys.stderr.flush()
            _hard_exit(EXIT_HANDLER_IMPORT)

    if worker.term_requested:
        _hard_exit(EXIT_OK)

    # 6. Ready.
    try:
        worker.notice("ready", pid=worker.pid, python=PY_VERSION, codec=worker.codec.name,
                      mode=worker.mode, max_frame_bytes=worker.max_frame_bytes,
                      concurrency=worker.concurrency, commands=registry.command_names())
    except OSError:
        _hard_exit(EXIT_OK)

    # 7. Serve.
    try:
        code = worker.serve()
    except BrokenPipeError:
        code = EXIT_OK
    except BaseException:
        import traceback
        traceback.print_exc()
        code = EXIT_INTERNAL
    _hard_exit(code)
