"""Everything the worker writes on the protocol stream: frames, replies,
notices and log records.

One :class:`Output` owns the private duplicate of the original stdout. Every
frame is encoded completely before anything is written (so a value that cannot
be encoded writes nothing) and goes out with one write call under a lock, so
frames from handler threads never interleave.

Error replies carry ``details`` when the exception has a ``details`` dict of
wire values; details that cannot be encoded are dropped, the reply still goes.
"""

from __future__ import annotations

import os
import struct
import sys
import traceback as _tb
from types import TracebackType
from typing import Any, Dict, Optional, Sequence

from _thread import allocate_lock as _lock, get_ident as _get_ident

from . import codec as _codec
from . import framing
from .framing import Buffer

__all__ = ["Output", "clean_str"]

_hdr = struct.Struct(">I").pack
_CHUNK_HEAD = b"\x82\xa2id"
_CHUNK_KEY = b"\xa5chunk"

# The worker's own frames between the request loop and a handler; tracebacks
# start below them (a handler's author has no use for them).
_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_MACHINERY = frozenset(("loop.py", "streams.py", "inline.py", "dispatch.py", "control.py",
                        "reader.py", "concurrent_flight.py", "typed_args.py"))


def _own_frame(tb: TracebackType) -> bool:
    path = tb.tb_frame.f_code.co_filename
    return (os.path.basename(path) in _MACHINERY
            and os.path.dirname(os.path.abspath(path)) == _PKG_DIR)


def clean_str(s: str) -> str:
    """A str that UTF-8 can encode (lone surrogates escaped)."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "backslashreplace").decode("utf-8")


class Output(object):
    """Writes frames to ``fd``; counts the error replies it sends (``errors``).

    A SIGINT that arrives while the main thread is writing a frame must not cut
    it: the signal handler sees ``writing`` and sets ``interrupt_pending``
    instead of raising; :meth:`write` raises the ``KeyboardInterrupt`` once
    the frame is complete. ``errors`` is counted under the write lock: error
    replies come from handler threads too under ``--concurrency``.
    """

    def __init__(self, fd: int, worker_id: str, codec: Optional[_codec.Codec] = None,
                 max_frame_bytes: int = framing.DEFAULT_MAX_FRAME_BYTES) -> None:
        self.fd = fd
        self.worker_id = worker_id
        self.codec = codec or _codec.CODEC
        self.max_frame_bytes = int(max_frame_bytes)
        self.errors = 0
        self.writing = False
        self.interrupt_pending = False
        self._lock = _lock()
        self._main_ident = _get_ident()
        self._pure = self.codec.name == "pure"
        self._encode = self.codec.encode
        self._encode_frame = self.codec.encode_frame
        self._reply_frame = self.codec.reply_frame

    # -- frames -------------------------------------------------------------

    def _too_big(self, n: int) -> _codec.SerializationError:
        return _codec.SerializationError(
            "reply of %d bytes exceeds the maximum frame size of %d bytes"
            % (n, self.max_frame_bytes))

    def emit(self, obj: Any, _error: bool = False) -> None:
        """Encode ``obj`` and write it as one frame. Raises SerializationError
        (nothing is written) when it cannot be encoded or is over the max.
        Safe from any thread."""
        data: Buffer
        if self._pure:
            data = self._encode_frame(obj)
            n = len(data) - 4
        else:
            data = self._encode(obj)
            n = len(data)
        if n > self.max_frame_bytes:
            raise self._too_big(n)
        self.write([data] if self._pure else [_hdr(n), data], _error)

    def write(self, parts: Sequence[Buffer], _error: bool = False) -> None:
        """Write already encoded buffers (header included) as one frame."""
        main = _get_ident() == self._main_ident
        with self._lock:
            if main:
                self.writing = True
            try:
                framing.write_parts(self.fd, parts)
                if _error:
                    self.errors += 1
            finally:
                if main:
                    self.writing = False
        if main and self.interrupt_pending:
            self.interrupt_pending = False
            raise KeyboardInterrupt()

    def chunk(self, rid: int, value: Any) -> None:
        """Write a stream chunk ``{id, chunk}``. Like a result, the wrapping
        map does not count against the nesting limit and errors name paths
        from ``chunk``; SerializationError when it cannot be sent."""
        body = self._encode(value, "chunk")
        head = _CHUNK_HEAD + self._encode(rid) + _CHUNK_KEY
        n = len(head) + len(body)
        if n > self.max_frame_bytes:
            raise _codec.SerializationError(
                "chunk of %d bytes exceeds the maximum frame size of %d bytes"
                % (n, self.max_frame_bytes))
        self.write([_hdr(n) + head, body])

    # -- replies ------------------------------------------------------------

    def result(self, rid: int, result: Any, held: Optional[bool] = None) -> None:
        """Write ``{id, ok: true, result}`` (plus ``held`` when it is not None:
        whether the worker now holds state for the request's session). The
        wrapping map does not count against the nesting limit; errors name
        paths from ``result``."""
        if held is not None:
            self.emit({"id": rid, "ok": True, "result": result, "held": held})
            return
        parts = self._reply_frame(rid, result)
        n = -4
        for p in parts:
            n += len(p)
        if n > self.max_frame_bytes:
            raise self._too_big(n)
        self.write(parts)

    def error(self, rid: Optional[int], etype: str, message: str, traceback: str = "",
              held: Optional[bool] = None, details: Optional[Dict[str, Any]] = None) -> None:
        """Write ``{id, ok: false, error: {type, message, traceback[, details]}}``
        (plus ``held``, as for :meth:`result`). ``details`` that cannot be
        encoded are left out; the reply is sent all the same."""
        err: Dict[str, Any] = {"type": etype, "message": message, "traceback": traceback}
        if details is not None:
            err["details"] = details
        reply: Dict[str, Any] = {"id": rid, "ok": False, "error": err}
        if held is not None:
            reply["held"] = held
        try:
            self.emit(reply, True)
            return
        except _codec.SerializationError:
            pass
        if details is not None:
            del err["details"]
            try:
                self.emit(reply, True)
                return
            except _codec.SerializationError:
                pass
        reply["error"] = {"type": clean_str(str(etype)), "message": clean_str(str(message)),
                          "traceback": clean_str(str(traceback))}
        self.emit(reply, True)

    def exception(self, rid: int, exc: BaseException, skip_frames: int = 0,
                  held: Optional[bool] = None) -> None:
        """Write the error reply for ``exc``: its class name, message,
        traceback (minus the first ``skip_frames`` frames and the worker's
        own machinery around the handler) and ``details`` when the exception
        has a ``details`` dict."""
        tb = exc.__traceback__
        while skip_frames and tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
            skip_frames -= 1
        while tb is not None and tb.tb_next is not None and _own_frame(tb):
            tb = tb.tb_next
        try:
            details = getattr(exc, "details", None)
        except Exception:  # a property that fails: no details, still a reply
            details = None
        if not isinstance(details, dict):
            details = None
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
        self.error(rid, type(exc).__name__, message, text, held, details)

    # -- notices ------------------------------------------------------------

    def notice(self, event: str, **fields: Any) -> None:
        """Write ``{event, worker_id, ...fields}``. A notice that cannot be
        encoded is dropped with a line on stderr, never raised."""
        msg: Dict[str, Any] = {"event": event, "worker_id": self.worker_id}
        msg.update(fields)
        try:
            self.emit(msg)
        except _codec.SerializationError as e:
            sys.stderr.write("pyvisor: dropped %s notice: %s\n" % (event, e))

    def log(self, message: object, level: object = "info", request_id: Optional[int] = None,
            **fields: Any) -> None:

        """Write ``{event: 'log', worker_id, level, message, request_id, ...}``."""
        self.notice("log", level=str(level), message=str(message), request_id=request_id,
                    **fields)
