"""The pyvisor worker loop.

    python3 python/dspy_bridge.py --mode pool-worker|standalone --worker-id ID
            [--handlers FILE_OR_MODULE ...] [--max-frame-bytes N]

Startup, in this order:

1. keep private duplicates of the original stdin/stdout for protocol frames;
   point file descriptor 1 (and ``sys.stdout``) at stderr and fd 0 at
   /dev/null, before any user code is imported, so ``print()``, C-level writes
   to fd 1 and child processes can never corrupt or steal the protocol;
2. parse the command line (bad usage: exit 2);
3. on Linux, ask to receive SIGTERM when the parent dies (best effort);
4. install the SIGTERM/SIGINT handlers;
5. import the handler files/modules (a failure prints the traceback to
   stderr and exits 3);
6. send ``{event: 'ready', worker_id, pid, python, codec, mode, ...}``;
7. serve requests until stdin EOF, ``shutdown`` or SIGTERM.

Exit codes: 0 normal end (stdin EOF, ``shutdown``, SIGTERM, host went away),
1 internal error, 2 bad command line, 3 a handler failed to import,
4 the input stream broke framing (oversized length header, truncated frame).
"""

import os
import signal
import struct
import sys
import time

from . import codec as _codec
from . import framing
from . import registry
from .registry import Context

__all__ = ["Worker", "main", "EXIT_OK", "EXIT_INTERNAL", "EXIT_USAGE",
           "EXIT_HANDLER_IMPORT", "EXIT_PROTOCOL"]

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_HANDLER_IMPORT = 3
EXIT_PROTOCOL = 4

PY_VERSION = "%d.%d.%d" % sys.version_info[:3]
_hdr = struct.Struct(">I").pack
MODES = ("pool-worker", "standalone")

_PLAIN = frozenset((dict, list, tuple, str, int, float, bool, bytes, type(None)))


class _Terminate(BaseException):
    """Raised by the SIGTERM handler to leave an idle read."""


from _thread import allocate_lock as _lock, get_ident as _get_ident


def _clean_str(s):
    """A str that UTF-8 can encode (lone surrogates escaped)."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "backslashreplace").decode("utf-8")


def _rss_kb():
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(r // 1024) if sys.platform == "darwin" else int(r)
    except Exception:
        return None


class Worker(object):
    """Serves framed requests from ``in_fd`` and writes replies to ``out_fd``."""

    def __init__(self, worker_id, mode="pool-worker", in_fd=0, out_fd=1,
                 max_frame_bytes=framing.DEFAULT_MAX_FRAME_BYTES, codec=None):
        if mode not in MODES:
            raise ValueError("mode must be one of %s, got %r" % (", ".join(MODES), mode))
        self.worker_id = worker_id
        self.mode = mode
        self.pid = os.getpid()
        self.codec = codec or _codec.CODEC
        self.max_frame_bytes = int(max_frame_bytes)
        self.reader = framing.FrameReader(in_fd, self.max_frame_bytes)
        self.out_fd = out_fd
        self.sessions = {}
        self.anonymous_session = None
        self.requests = 0
        self.errors = 0
        self.started = time.monotonic()
        self.idle = False
        self.busy = False
        self.term_requested = False
        self.stop_code = None
        self._lock = _lock()
        self._main_ident = _get_ident()
        self._writing = False
        self._int_pending = False
        self._decode = self.codec.decode
        self._pure = self.codec.name == "pure"
        self._encode = self.codec.encode
        self._encode_frame = self.codec.encode_frame
        self._reply_frame = self.codec.reply_frame

    # -- state --------------------------------------------------------------

    def uptime(self):
        return round(time.monotonic() - self.started, 3)

    def session_dict(self, session_id, create=True):
        if session_id is None:
            if self.anonymous_session is None and create:
                self.anonymous_session = {}
            return self.anonymous_session
        d = self.sessions.get(session_id)
        if d is None and create:
            d = self.sessions[session_id] = {}
        return d

    # -- output -------------------------------------------------------------

    def emit(self, obj):
        """Encode ``obj`` and write it as one frame. Raises SerializationError
        (nothing is written) when it cannot be encoded or is over the max.

        Safe from any thread. A SIGINT that arrives while the main thread is
        writing is held until the frame is complete, so a frame is never cut.
        """
        if self._pure:
            data = self._encode_frame(obj)
            n = len(data) - 4
        else:
            data = self._encode(obj)
            n = len(data)
        if n > self.max_frame_bytes:
            raise _codec.SerializationError(
                "reply of %d bytes exceeds the maximum frame size of %d bytes"
                % (n, self.max_frame_bytes))
        self._write([data] if self._pure else [_hdr(n), data])

    def emit_result(self, rid, result):
        """Write the success reply ``{id, ok: true, result}``. The wrapping map
        does not count against the nesting limit; errors name ``result...``."""
        parts = self._reply_frame(rid, result)
        n = -4
        for p in parts:
            n += len(p)
        if n > self.max_frame_bytes:
            raise _codec.SerializationError(
                "reply of %d bytes exceeds the maximum frame size of %d bytes"
                % (n, self.max_frame_bytes))
        self._write(parts)

    def _write(self, parts):
        main = _get_ident() == self._main_ident
        with self._lock:
            if main:
                self._writing = True
            try:
                framing.write_parts(self.out_fd, parts)
            finally:
                if main:
                    self._writing = False
        if main and self._int_pending:
            self._int_pending = False
            if self.busy:
                raise KeyboardInterrupt()

    def notice(self, event, **fields):
        msg = {"event": event, "worker_id": self.worker_id}
        msg.update(fields)
        try:
            self.emit(msg)
        except _codec.SerializationError as e:
            sys.stderr.write("pyvisor: dropped %s notice: %s\n" % (event, e))

    def reply_error(self, rid, etype, message, traceback=""):
        self.errors += 1
        err = {"type": etype, "message": message, "traceback": traceback}
        try:
            self.emit({"id": rid, "ok": False, "error": err})
        except _codec.SerializationError:
            err = {"type": _clean_str(str(etype)), "message": _clean_str(str(message)),
                   "traceback": _clean_str(str(traceback))}
            self.emit({"id": rid, "ok": False, "error": err})

    def reply_exception(self, rid, exc):
        import traceback as _tb
        tb = exc.__traceback__
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next  # drop the worker's own frame
        try:
            text = "".join(_tb.format_exception(type(exc), exc, tb))
        except Exception:
            text = ""
        try:
            message = str(exc)
        except Exception:
            message = "<unprintable %s>" % type(exc).__name__
        if not message:
            message = ("interrupted (SIGINT)" if isinstance(exc, KeyboardInterrupt)
                       else type(exc).__name__)
        self.reply_error(rid, type(exc).__name__, message, text)

    # -- requests -----------------------------------------------------------

    def handle(self, payload):
        """Decode one frame, run its command, write exactly one reply."""
        self.requests += 1
        try:
            msg = self._decode(payload)
        except _codec.DecodeError as e:
            return self.reply_error(None, "ProtocolError", "invalid MessagePack frame: %s" % e)
        if type(msg) is not dict:
            return self.reply_error(None, "ProtocolError",
                                    "request frame must be a map, got %s" % _kind(msg))
        rid = msg.get("id")
        if type(rid) is not int:
            what = "missing" if "id" not in msg else "a %s" % _kind(rid)
            return self.reply_error(None, "ProtocolError",
                                    "request 'id' must be an integer, got %s" % what)
        cmd = msg.get("cmd")
        if type(cmd) is not str:
            what = "missing" if "cmd" not in msg else "a %s" % _kind(cmd)
            return self.reply_error(rid, "ProtocolError",
                                    "request 'cmd' must be a string, got %s" % what)
        session = msg.get("session")
        if session is not None and type(session) is not str:
            return self.reply_error(rid, "ProtocolError",
                                    "request 'session' must be a string or nil, got a %s"
                                    % _kind(session))
        fn = registry._commands.get(cmd)
        if fn is None:
            return self.reply_error(rid, "UnknownCommand", "Unknown command '%s' (known: %s)"
                                    % (cmd, ", ".join(registry.command_names())))
        args = msg["args"] if "args" in msg else {}
        ctx = Context(self, rid, session, cmd)
        self.busy = True
        try:
            result = fn(args, ctx)
            if type(result) not in _PLAIN and hasattr(type(result), "__await__"):
                result = _run_awaitable(result)
            self.busy = False
        except BaseException as e:
            self.busy = False
            self.reply_exception(rid, e)
            if isinstance(e, SystemExit):
                code = e.code
                self.stop_code = code if isinstance(code, int) else (0 if code is None else 1)
            return
        try:
            self.emit_result(rid, result)
        except _codec.SerializationError as e:
            self.reply_error(rid, "SerializationError", str(e))

    def serve(self):
        """Run until stdin EOF / shutdown / SIGTERM. Returns the exit code."""
        read_frame = self.reader.read_frame
        handle = self.handle
        while True:
            if self.term_requested:
                return EXIT_OK
            self.idle = True
            try:
                payload = read_frame()
                self.idle = False
            except _Terminate:
                self.idle = False
                return EXIT_OK
            except framing.FrameTooLarge as e:
                self.idle = False
                try:
                    self.reply_error(None, "ProtocolError",
                                     "frame length %d exceeds the maximum of %d bytes; "
                                     "the input stream cannot be trusted, worker exiting"
                                     % (e.length, e.maximum))
                except OSError:
                    pass
                sys.stderr.write("pyvisor worker %s: %s; exiting\n" % (self.worker_id, e))
                return EXIT_PROTOCOL
            except framing.TruncatedFrame as e:
                self.idle = False
                sys.stderr.write("pyvisor worker %s: %s; exiting\n" % (self.worker_id, e))
                return EXIT_PROTOCOL
            if payload is None:
                return EXIT_OK
            try:
                handle(payload)
            except BrokenPipeError:
                sys.stderr.write("pyvisor worker %s: the host closed the reply pipe; exiting\n"
                                 % self.worker_id)
                return EXIT_OK
            except KeyboardInterrupt:
                # A SIGINT landed between bookkeeping steps; the command itself
                # already ran or never started. Keep serving.
                self.busy = False
                sys.stderr.write("pyvisor worker %s: interrupt outside a command ignored\n"
                                 % self.worker_id)
            if self.stop_code is not None:
                return self.stop_code
            if self.term_requested:
                return EXIT_OK

    # -- signals ------------------------------------------------------------

    def _on_sigterm(self, signum, frame):
        self.term_requested = True
        if self.idle:
            raise _Terminate()

    def _on_sigint(self, signum, frame):
        if self.busy:
            if self._writing:
                self._int_pending = True  # raised once the frame is out
                return
            raise KeyboardInterrupt()
        # idle: ignored

    def install_signal_handlers(self):
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGINT, self._on_sigint)


def _kind(v):
    if v is None:
        return "nil"
    t = type(v)
    if t is dict:
        return "map"
    if t is list:
        return "array"
    if t is bytes:
        return "binary"
    return t.__name__


def _run_awaitable(aw):
    import asyncio

    async def _await():
        return await aw
    return asyncio.run(_await())


# -- built-in commands ------------------------------------------------------

def _ping(args, ctx):
    w = ctx._worker
    return {"pong": True, "worker_id": w.worker_id, "pid": w.pid, "mode": w.mode,
            "python": PY_VERSION, "codec": w.codec.name, "uptime_s": w.uptime()}


def _get_stats(args, ctx):
    w = ctx._worker
    out = {"worker_id": w.worker_id, "pid": w.pid, "mode": w.mode, "codec": w.codec.name,
           "python": PY_VERSION, "requests": w.requests, "errors": w.errors,
           "sessions": len(w.sessions), "session_ids": list(w.sessions),
           "uptime_s": w.uptime(), "rss_kb": _rss_kb(),
           "max_frame_bytes": w.max_frame_bytes}
    for hook in registry.stats_hooks:
        extra = hook(w.sessions)
        if extra:
            out.update(extra)
    return out


def _cleanup_session(args, ctx):
    w = ctx._worker
    sid = args.get("session_id") if isinstance(args, dict) else None
    if sid is None:
        sid = ctx.session_id
    if not isinstance(sid, str) or not sid:
        raise ValueError("cleanup_session: a session id is required "
                         "(args.session_id or the request's session)")
    d = w.sessions.pop(sid, None)
    existed = d is not None
    if d is None:
        d = {}
    out = {"session_id": sid, "existed": existed}
    hook_errors = []
    for hook in registry.cleanup_hooks:
        try:
            extra = hook(sid, d)
        except Exception as e:
            hook_errors.append("%s: %s" % (type(e).__name__, e))
            continue
        if extra:
            out.update(extra)
    out["freed_keys"] = len(d)
    d.clear()
    if hook_errors:
        out["hook_errors"] = hook_errors
    return out


def _shutdown(args, ctx):
    ctx._worker.stop_code = EXIT_OK
    return {"shutting_down": True}


for _name, _fn in (("ping", _ping), ("get_stats", _get_stats),
                   ("cleanup_session", _cleanup_session), ("shutdown", _shutdown)):
    registry._register(_name, _fn, replace=True, builtin=True)


# -- process entry ----------------------------------------------------------

USAGE = ("usage: dspy_bridge.py [--mode pool-worker|standalone] [--worker-id ID]\n"
         "                      [--handlers FILE_OR_MODULE ...] [--max-frame-bytes N]\n")


class UsageError(Exception):
    pass


def parse_args(argv):
    opts = {"mode": "standalone", "worker_id": None, "handlers": [],
            "max_frame_bytes": framing.DEFAULT_MAX_FRAME_BYTES}
    i = 0
    n = len(argv)

    def value(flag):
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


def load_handlers(spec):
    """Import a handlers file (``*.py`` or a path) or a dotted module name."""
    import importlib
    import importlib.util
    if spec.endswith(".py") or os.sep in spec or "/" in spec:
        path = os.path.abspath(spec)
        if not os.path.isfile(path):
            raise FileNotFoundError("handlers file not found: %s" % path)
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


def _die_with_parent():
    """Linux: get SIGTERM when the parent dies (best effort)."""
    if not sys.platform.startswith("linux") or os.environ.get("PYVISOR_NO_PDEATHSIG"):
        return True
    try:
        import ctypes
        parent = os.getppid()
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            return False  # the parent died before the request took effect
    except Exception:
        pass
    return True


def _hard_exit(code):
    """Exit now: user threads must not keep a finished worker alive."""
    try:
        import atexit
        atexit._run_exitfuncs()
    except Exception:
        pass
    for f in (sys.stderr, sys.__stderr__):
        try:
            f.flush()
        except Exception:
            pass
    os._exit(code)


def main(argv=None, preload=()):
    """Process entry point: see the module docstring. Never returns."""
    # 1. Protect the protocol before anything else can write to fd 1.
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

    # 2. Command line.
    try:
        opts = parse_args(list(sys.argv[1:] if argv is None else argv))
    except UsageError as e:
        if str(e):
            sys.stderr.write("error: %s\n" % e)
        sys.stderr.write(USAGE)
        _hard_exit(EXIT_USAGE if str(e) else EXIT_OK)

    # 3. Die with the parent.
    if not _die_with_parent():
        _hard_exit(EXIT_OK)

    # 4. Signals.
    worker = Worker(opts["worker_id"], opts["mode"], in_fd, out_fd,
                    opts["max_frame_bytes"])
    worker.install_signal_handlers()

    # 5. Handlers (user code).
    for spec in list(preload) + opts["handlers"]:
        try:
            load_handlers(spec)
        except BaseException as e:
            import traceback
            sys.stderr.write("pyvisor worker %s: failed to load handlers %r:\n"
                             % (worker.worker_id, spec))
            traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
            _hard_exit(EXIT_HANDLER_IMPORT)

    if worker.term_requested:
        _hard_exit(EXIT_OK)

    # 6. Ready.
    try:
        worker.notice("ready", pid=worker.pid, python=PY_VERSION, codec=worker.codec.name,
                      mode=worker.mode, max_frame_bytes=worker.max_frame_bytes,
                      commands=registry.command_names())
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
