"""The request loop: read a frame, check it, run its command through the one
handler wrapper (:func:`invoke`), write exactly one reply; SIGTERM/SIGINT.

A request is ``{id, cmd, args?, session?, deadline?, stream?}``. ``deadline``
is an absolute time in milliseconds since the Unix epoch (the host's wall
clock, comparable to ``time.time() * 1000``) or nil/absent; a request whose
deadline has passed when it is read is answered with ``DeadlineExceeded`` and
never run. ``stream`` (a positive int, the chunk window) asks for a
generator's values as chunk frames (:mod:`pyvisor.streams`). A map with an
``id``, no ``cmd`` and an ``ack`` or ``cancel`` key is a control frame for the
request in flight with that id.

This module serves one request at a time (``--concurrency 1``, the default);
above 1, :mod:`pyvisor.reader` reads and :mod:`pyvisor.dispatch` runs the
requests instead, after the same checks (:meth:`Worker.handle`).
"""

from __future__ import annotations

import collections
import math
import os
import signal
import sys
import threading
import time
from types import AsyncGeneratorType as _AsyncGenerator, FrameType, GeneratorType as _Generator
from typing import (TYPE_CHECKING, Any, Awaitable, Callable, Deque, Dict, Literal, Optional,
                    overload)

from . import codec as _codec
from . import control as _control
from . import framing
from . import inline as _inline
from . import registry
from .output import Output
from .registry import Context, get_command as _get_command
from .control import describe as _got, kind as _kind
from .streams import Cancelled, Flight, InputEnded

if TYPE_CHECKING:
    from .dispatch import Dispatcher

__all__ = ["Worker", "invoke", "MODES", "PY_VERSION", "EXIT_OK", "EXIT_INTERNAL",
           "EXIT_USAGE", "EXIT_HANDLER_IMPORT", "EXIT_PROTOCOL", "MAX_CONCURRENCY"]

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_HANDLER_IMPORT = 3
EXIT_PROTOCOL = 4

PY_VERSION = "%d.%d.%d" % sys.version_info[:3]
MODES = ("pool-worker", "standalone")
MAX_CONCURRENCY = 1024

_PLAIN = frozenset((dict, list, tuple, str, int, float, bool, bytes, type(None)))
_INF = math.inf


class _Terminate(BaseException):
    """Raised by the SIGTERM handler to leave an idle read."""


def invoke(worker: Worker, fn: Callable[..., Any], args: Any, ctx: Context,
           window: Optional[int] = None) -> None:
    """THE handler wrapper at concurrency 1: every command, built-ins
    included, runs here.

    Calls ``fn(args, ctx)`` (awaiting an awaitable result with
    ``asyncio.run``; a generator's values streamed as chunks when ``window``
    is set, else collected into a list) and writes exactly one reply: the
    result, or an error reply for anything raised (``BaseException``
    included), or a ``SerializationError`` reply when the result cannot be
    encoded. ``SystemExit`` is replied to, then stops the worker with its code.
    """
    out = worker.output
    worker.busy = True
    try:
        result = fn(args, ctx)
        t = type(result)
        if t not in _PLAIN:
            if t is _Generator or t is _AsyncGenerator:
                result = _inline.run(worker, result, ctx, window)
            elif hasattr(t, "__await__"):
                result = _run_awaitable(result)
        worker.busy = False
    except BaseException as e:
        worker.busy = False
        t = type(e)
        if t is Cancelled:
            assert isinstance(e, Cancelled)
            out.error(ctx.request_id, e.etype, e.message,
                      held=worker.held_change(ctx.session_id))
            return
        if t is InputEnded:
            raise
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


def _run_awaitable(aw: Awaitable[Any]) -> Any:
    import asyncio

    async def _await() -> Any:
        return await aw
    return asyncio.run(_await())


def _ignore_sigint(signum: int, frame: Optional[FrameType]) -> None:
    # A Python-level handler rather than SIG_IGN: an ignored disposition
    # would be inherited by the handlers' child processes.
    pass


def unknown_command(cmd: str) -> str:
    """The message for a command nobody registered: the closest names first (a typo is the
    usual cause), then every known one."""
    import difflib

    known = registry.command_names()
    near = difflib.get_close_matches(cmd, known, n=3, cutoff=0.6)
    hint = " (did you mean %s?)" % " or ".join("'%s'" % n for n in near) if near else ""
    return "Unknown command '%s'%s; known: %s" % (cmd, hint, ", ".join(known))


class Worker(object):
    """Serves framed requests from ``in_fd`` and writes replies to ``out_fd``.

    Public state (read by the built-in commands): ``worker_id``, ``mode``,
    ``pid``, ``codec``, ``max_frame_bytes``, ``concurrency``, ``sessions``
    (session id -> dict), ``requests`` (request frames received, malformed
    ones included), ``control_frames`` (ack/cancel frames received),
    ``errors`` (error replies sent), ``inflight`` (requests received and not
    yet answered, the one running included), ``uptime()``; ``stop(code)``
    ends the loop after the current reply (at concurrency > 1: once every
    request in flight is answered).
    """

    def __init__(self, worker_id: str, mode: str = "pool-worker", in_fd: int = 0, out_fd: int = 1,
                 max_frame_bytes: int = framing.DEFAULT_MAX_FRAME_BYTES,
                 codec: Optional[_codec.Codec] = None, concurrency: int = 1) -> None:
        if mode not in MODES:
            raise ValueError("mode must be one of %s, got %r" % (", ".join(MODES), mode))
        if type(concurrency) is not int or not 1 <= concurrency <= MAX_CONCURRENCY:
            raise ValueError("concurrency must be an integer in 1 .. %d, got %r"
                             % (MAX_CONCURRENCY, concurrency))
        self.worker_id = worker_id
        self.mode = mode
        self.pid = os.getpid()
        self.codec = codec or _codec.CODEC
        self.max_frame_bytes = int(max_frame_bytes)
        self.reader = framing.FrameReader(in_fd, self.max_frame_bytes)
        self.output = Output(out_fd, worker_id, self.codec, self.max_frame_bytes)
        self.sessions: Dict[str, Dict[str, Any]] = {}
        # Sessions the host was told this worker holds state for (see held_change).
        self.held: Dict[str, bool] = {}
        self.anonymous_session: Optional[Dict[str, Any]] = None
        self.requests = 0
        self.control_frames = 0
        self.started = time.monotonic()
        self.idle = False
        self.busy = False
        self.term_requested = False
        self.stop_code: Optional[int] = None
        self.concurrency = concurrency
        # Requests control frames can reach: id -> streams.Flight.
        self.flights: Dict[int, Flight] = {}
        # Request frames read while a stream waited for credit (concurrency 1).
        self.pending: Deque[bytes] = collections.deque()
        # SIGINT while a stream reads frames inline: deferred to a frame boundary.
        self.sigint_defer = False
        self.sigint_pending = False
        # Session state and held flags change from handler threads above
        # concurrency 1; replies are written under this lock so that the
        # held flags the host sees arrive in the order they were computed.
        self.state_lock = threading.RLock()
        self._session_users: Optional[Dict[str, int]] = None
        self._dispatcher: Optional[Dispatcher] = None
        self._decode = self.codec.decode
        if concurrency > 1:
            from .dispatch import Dispatcher
            self._session_users = {}
            self._dispatcher = Dispatcher(self, concurrency)

    # -- state --------------------------------------------------------------

    @property
    def errors(self) -> int:
        return self.output.errors

    @property
    def inflight(self) -> int:
        """Requests received and not yet answered (the running ones and the
        ones waiting for a free slot)."""
        if self._dispatcher is None:
            return int(self.busy) + len(self.pending)
        return len(self.flights)

    def uptime(self) -> float:
        return round(time.monotonic() - self.started, 3)

    def stop(self, code: int = EXIT_OK) -> None:
        """End the loop with ``code`` once the current request is replied to
        (above concurrency 1: once every request in flight is; no new
        request is started meanwhile)."""
        self.stop_code = code
        if self._dispatcher is not None:
            self._dispatcher.wake()

    def held_change(self, session_id: Optional[str]) -> Optional[bool]:
        """Whether this worker now holds state for ``session_id`` (a non-empty
        session dict, where session-scoped registries such as DSPy programs
        live too) — or None when that is what the host was last told. The host
        pins a session to the worker holding its state (affinity 'auto')."""
        if session_id is None:
            return None
        d = self.sessions.get(session_id)
        now = bool(d)
        if d is not None and not now:
            # Touched but empty (a handler only looked): nothing to keep, nothing to
            # clean later -- unless another request of the session, running in
            # another thread, may hold that very dict.
            users = self._session_users
            if users is None or users.get(session_id, 0) <= 1:
                self.sessions.pop(session_id, None)
        if self.held.get(session_id, False) is now:
            return None
        if now:
            self.held[session_id] = True
        else:
            self.held.pop(session_id, None)
        return now

    @overload
    def session_dict(self, session_id: Optional[str],
                     create: Literal[True] = ...) -> Dict[str, Any]: ...

    @overload
    def session_dict(self, session_id: Optional[str],
                     create: bool) -> Optional[Dict[str, Any]]: ...

    def session_dict(self, session_id: Optional[str],
                     create: bool = True) -> Optional[Dict[str, Any]]:
        if session_id is None:
            if self.anonymous_session is None and create:
                with self.state_lock:  # two threads must not make two dicts
                    if self.anonymous_session is None:
                        self.anonymous_session = {}
            return self.anonymous_session
        d = self.sessions.get(session_id)
        if d is None and create:
            d = self.sessions.setdefault(session_id, {})  # atomic: one dict per session
        return d

    def notice(self, event: str, **fields: Any) -> None:
        self.output.notice(event, **fields)

    # -- requests -----------------------------------------------------------

    def handle(self, payload: bytes) -> None:
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
            if "cmd" not in msg and ("ack" in msg or "cancel" in msg):
                self.requests -= 1  # a control frame (pyvisor.control), not a request
                return _control.apply(self, rid, msg)
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
        window = msg.get("stream")
        if window is not None and (type(window) is not int or window < 1):
            return self._bad(rid, "request 'stream' must be a positive integer (the chunk "
                             "window) or nil, got %s" % _got(window))
        fn = _get_command(cmd)
        if fn is None:
            return self.output.error(rid, "UnknownCommand", unknown_command(cmd))
        if deadline is not None:
            late = time.time() * 1000.0 - deadline
            if late >= 0:
                return self.output.error(rid, "DeadlineExceeded",
                                         "deadline passed %d ms before %s could start"
                                         % (int(late), cmd))
            deadline = deadline / 1000.0
        if self._dispatcher is None:
            invoke(self, fn, msg["args"] if "args" in msg else {},
                   Context(self, rid, session, cmd, deadline), window)
        else:
            self._dispatcher.submit(fn, msg["args"] if "args" in msg else {},
                                    Context(self, rid, session, cmd, deadline), window)

    def _bad(self, rid: Optional[int], message: str) -> None:
        """The reply to a malformed request (``id`` nil when it had no usable id)."""
        self.output.error(rid, "ProtocolError", message)

    def input_broken(self, e: framing.FrameError) -> int:
        """Report input that broke framing (``e``: a FrameError) and return
        the exit code: the stream cannot be trusted past it."""
        if isinstance(e, framing.FrameTooLarge):
            try:
                self.output.error(None, "ProtocolError",
                                  "frame length %d exceeds the maximum of %d bytes; "
                                  "the input stream cannot be trusted, worker exiting"
                                  % (e.length, e.maximum))
            except OSError:
                pass
        sys.stderr.write("pyvisor worker %s: %s; exiting\n" % (self.worker_id, e))
        return EXIT_PROTOCOL

    def serve(self) -> int:
        """Run until stdin EOF / shutdown / SIGTERM. Returns the exit code."""
        if self._dispatcher is not None:
            return self._dispatcher.serve()
        read_frame = self.reader.read_frame
        handle = self.handle
        pending = self.pending
        payload: Optional[bytes]
        while True:
            if self.term_requested:
                return EXIT_OK
            if pending:
                payload = pending.popleft()
            else:
                self.idle = True
                try:
                    payload = read_frame()
                    self.idle = False
                except _Terminate:
                    self.idle = False
                    return EXIT_OK
                except framing.FrameError as e:
                    self.idle = False
                    return self.input_broken(e)
                if payload is None:
                    return EXIT_OK
            try:
                handle(payload)
            except BrokenPipeError:
                sys.stderr.write("pyvisor worker %s: the host closed the reply pipe; exiting\n"
                                 % self.worker_id)
                return EXIT_OK
            except InputEnded as e:
                # stdin ended (or broke) while a stream read it: no reply is owed.
                self.busy = False
                return e.code
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

    def _on_sigterm(self, signum: int, frame: Optional[FrameType]) -> None:
        self.term_requested = True
        if self.idle:
            raise _Terminate()

    def _on_sigint(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.busy:
            if self.sigint_defer:
                self.sigint_pending = True  # a stream is reading a frame: raised after it
                return
            if self.output.writing:
                self.output.interrupt_pending = True  # raised once the frame is out
                return
            raise KeyboardInterrupt()
        # idle: ignored

    def install_signal_handlers(self) -> None:
        """SIGTERM: finish what runs, then exit 0. SIGINT: interrupt the
        running handler at concurrency 1; ignored above it (the host cancels
        with cancel frames there)."""
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGINT,
                      self._on_sigint if self._dispatcher is None else _ignore_sigint)
