"""The request loop: read a frame, check it, run its command through the one
handler wrapper (:func:`invoke`), write exactly one reply; SIGTERM/SIGINT.

A request is ``{id, cmd, args?, session?, deadline?}``. ``deadline`` is an
absolute time in milliseconds since the Unix epoch (the host's wall clock,
comparable to ``time.time() * 1000``) or nil/absent; a request whose deadline
has passed when it is read is answered with ``DeadlineExceeded`` and never run.
"""

import math
import os
import signal
import sys
import time

from . import codec as _codec
from . import framing
from . import registry
from .output import Output
from .registry import Context, get_command as _get_command

__all__ = ["Worker", "invoke", "MODES", "PY_VERSION", "EXIT_OK", "EXIT_INTERNAL",
           "EXIT_USAGE", "EXIT_HANDLER_IMPORT", "EXIT_PROTOCOL"]

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_HANDLER_IMPORT = 3
EXIT_PROTOCOL = 4

PY_VERSION = "%d.%d.%d" % sys.version_info[:3]
MODES = ("pool-worker", "standalone")

_PLAIN = frozenset((dict, list, tuple, str, int, float, bool, bytes, type(None)))
_INF = math.inf


class _Terminate(BaseException):
    """Raised by the SIGTERM handler to leave an idle read."""


def invoke(worker, fn, args, ctx):
    """THE handler wrapper: every command, built-ins included, runs here.

    Calls ``fn(args, ctx)`` (awaiting an awaitable result with
    ``asyncio.run``) and writes exactly one reply: the result, or an error
    reply for anything raised (``BaseException`` included), or a
    ``SerializationError`` reply when the result cannot be encoded.
    ``SystemExit`` is replied to, then stops the worker with its code.
    """
    out = worker.output
    worker.busy = True
    try:
        result = fn(args, ctx)
        if type(result) not in _PLAIN and hasattr(type(result), "__await__"):
            result = _run_awaitable(result)
        worker.busy = False
    except BaseException as e:
        worker.busy = False
        out.exception(ctx.request_id, e, skip_frames=1,  # drop this wrapper's frame
                      held=worker.held_change(ctx.session_id))
        if isinstance(e, SystemExit):
            code = e.code
            worker.stop_code = code if isinstance(code, int) else (0 if code is None else 1)
        return
    held = worker.held_change(ctx.session_id)
    try:
        out.result(ctx.request_id, result, held)
    except _codec.SerializationError as e:
        out.error(ctx.request_id, "SerializationError", str(e), held=held)


def _run_awaitable(aw):
    import asyncio

    async def _await():
        return await aw
    return asyncio.run(_await())


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


class Worker(object):
    """Serves framed requests from ``in_fd`` and writes replies to ``out_fd``.

    Public state (read by the built-in commands): ``worker_id``, ``mode``,
    ``pid``, ``codec``, ``max_frame_bytes``, ``sessions`` (session id -> dict),
    ``requests`` (frames received), ``errors`` (error replies sent),
    ``uptime()``; ``stop(code)`` ends the loop after the current reply.
    """

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
        self.output = Output(out_fd, worker_id, self.codec, self.max_frame_bytes)
        self.sessions = {}
        # Sessions the host was told this worker holds state for (see held_change).
        self.held = {}
        self.anonymous_session = None
        self.requests = 0
        self.started = time.monotonic()
        self.idle = False
        self.busy = False
        self.term_requested = False
        self.stop_code = None
        self._decode = self.codec.decode

    # -- state --------------------------------------------------------------

    @property
    def errors(self):
        return self.output.errors

    def uptime(self):
        return round(time.monotonic() - self.started, 3)

    def stop(self, code=EXIT_OK):
        """End the loop with ``code`` once the current request is replied to."""
        self.stop_code = code

    def held_change(self, session_id):
        """Whether this worker now holds state for ``session_id`` (a non-empty
        session dict, where session-scoped registries such as DSPy programs
        live too) — or None when that is what the host was last told. The host
        pins a session to the worker holding its state (affinity 'auto')."""
        if session_id is None:
            return None
        d = self.sessions.get(session_id)
        now = bool(d)
        if d is not None and not now:
            # Touched but empty (a handler only looked): nothing to keep, nothing to clean later.
            del self.sessions[session_id]
        if self.held.get(session_id, False) is now:
            return None
        if now:
            self.held[session_id] = True
        else:
            self.held.pop(session_id, None)
        return now

    def session_dict(self, session_id, create=True):
        if session_id is None:
            if self.anonymous_session is None and create:
                self.anonymous_session = {}
            return self.anonymous_session
        d = self.sessions.get(session_id)
        if d is None and create:
            d = self.sessions[session_id] = {}
        return d

    def notice(self, event, **fields):
        self.output.notice(event, **fields)

    # -- requests -----------------------------------------------------------

    def handle(self, payload):
        """Decode one frame, check it, run its command, write exactly one reply."""
        self.requests += 1
        try:
            msg = self._decode(payload)
        except _codec.DecodeError as e:
            return self._bad(None, "invalid MessagePack frame: %s" % e)
        if type(msg) is not dict:
            return self._bad(None, "request frame must be a map, got %s" % _kind(msg))
        rid = msg.get("id")
        if type(rid) is not int:
            what = "missing" if "id" not in msg else "a %s" % _kind(rid)
            return self._bad(None, "request 'id' must be an integer, got %s" % what)
        cmd = msg.get("cmd")
        if type(cmd) is not str:
            what = "missing" if "cmd" not in msg else "a %s" % _kind(cmd)
            return self._bad(rid, "request 'cmd' must be a string, got %s" % what)
        session = msg.get("session")
        if session is not None and type(session) is not str:
            return self._bad(rid, "request 'session' must be a string or nil, got a %s"
                             % _kind(session))
        deadline = msg.get("deadline")
        if deadline is not None:
            t = type(deadline)
            if t is not int and t is not float:
                return self._bad(rid, "request 'deadline' must be a number (milliseconds "
                                 "since the Unix epoch) or nil, got a %s" % _kind(deadline))
            if deadline != deadline or deadline == _INF or deadline == -_INF:
                return self._bad(rid, "request 'deadline' must be a finite number "
                                 "(milliseconds since the Unix epoch) or nil, got %r" % deadline)
        fn = _get_command(cmd)
        if fn is None:
            return self.output.error(rid, "UnknownCommand", "Unknown command '%s' (known: %s)"
                                     % (cmd, ", ".join(registry.command_names())))
        if deadline is not None:
            late = time.time() * 1000.0 - deadline
            if late >= 0:
                return self.output.error(rid, "DeadlineExceeded",
                                         "deadline passed %d ms before %s could start"
                                         % (int(late), cmd))
            deadline = deadline / 1000.0
        invoke(self, fn, msg["args"] if "args" in msg else {},
               Context(self, rid, session, cmd, deadline))

    def _bad(self, rid, message):
        """The reply to a malformed request (``id`` nil when it had no usable id)."""
        self.output.error(rid, "ProtocolError", message)

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
                    self.output.error(None, "ProtocolError",
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
            if self.output.writing:
                self.output.interrupt_pending = True  # raised once the frame is out
                return
            raise KeyboardInterrupt()
        # idle: ignored

    def install_signal_handlers(self):
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGINT, self._on_sigint)
