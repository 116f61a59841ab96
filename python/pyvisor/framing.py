"""Length-prefixed frames: a 4-byte big-endian unsigned length, then that many
bytes holding one MessagePack value.

The reader never allocates what a header asks for up front: lengths above the
configured maximum are refused before any payload is read, and large payloads
are read in bounded chunks, so memory grows only with bytes that actually
arrive.
"""

from __future__ import annotations

import io
import os
import select
import struct
from typing import BinaryIO, Callable, List, Optional, Sequence, Union

#: What a frame's buffers may be (``bytes`` or a ``bytearray`` being built in place).
Buffer = Union[bytes, bytearray, memoryview]

__all__ = ["DEFAULT_MAX_FRAME_BYTES", "FrameError", "FrameTooLarge", "TruncatedFrame",
           "FrameReader", "FrameAssembler", "frame", "write_all", "write_frame", "write_parts"]

#: Default largest payload accepted (64 MiB).
DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024

#: Payloads up to this size are read with one call; larger ones in chunks.
_CHUNK = 1 << 20

_hdr_pack = struct.Struct(">I").pack
_hdr_unpack = struct.Struct(">I").unpack
_hdr_unpack_from = struct.Struct(">I").unpack_from

_writev: Optional[Callable[[int, Sequence[Buffer]], int]] = getattr(os, "writev", None)


class FrameError(Exception):
    """The byte stream broke the framing contract."""


class FrameTooLarge(FrameError):
    """A header announced more than the maximum. The stream cannot be resynced."""

    def __init__(self, length: int, maximum: int) -> None:
        FrameError.__init__(self, "frame length %d exceeds the maximum of %d bytes"
                            % (length, maximum))
        self.length = length
        self.maximum = maximum


class TruncatedFrame(FrameError):
    """The stream ended inside a frame."""

    def __init__(self, got: int, wanted: int, where: str) -> None:
        FrameError.__init__(self, "stream ended inside a frame %s (%d of %d bytes)"
                            % (where, got, wanted))
        self.got = got
        self.wanted = wanted


def frame(payload: bytes) -> bytes:
    """Return ``payload`` with its 4-byte length header."""
    return _hdr_pack(len(payload)) + payload


class FrameReader(object):
    """Reads frames from a file descriptor or a binary file object.

    ``read_frame()`` returns the payload ``bytes``, or ``None`` at a clean end
    of stream (EOF exactly between frames). It raises :class:`FrameTooLarge`
    or :class:`TruncatedFrame`.
    """

    def __init__(self, source: Union[int, BinaryIO], max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
                 buffer_size: int = 65536) -> None:
        if isinstance(source, int):
            source = io.open(source, "rb", buffering=buffer_size, closefd=True)
        self._f: BinaryIO = source
        self._read: Callable[[int], bytes] = source.read
        self.max_frame_bytes = int(max_frame_bytes)
        if self.max_frame_bytes <= 0:
            raise ValueError("max_frame_bytes must be positive")

    def read_frame(self) -> Optional[bytes]:
        read = self._read
        hdr = read(4)
        if len(hdr) != 4:
            if not hdr:
                return None
            raise TruncatedFrame(len(hdr), 4, "header")
        n = _hdr_unpack(hdr)[0]
        if n > self.max_frame_bytes:
            raise FrameTooLarge(n, self.max_frame_bytes)
        if n <= _CHUNK:
            data = read(n)
            if len(data) != n:
                raise TruncatedFrame(len(data), n, "payload")
            return data
        parts: List[bytes] = []
        got = 0
        while got < n:
            part = read(min(_CHUNK, n - got))
            if not part:
                raise TruncatedFrame(got, n, "payload")
            parts.append(part)
            got += len(part)
        return b"".join(parts)

    def fileno(self) -> int:
        return self._f.fileno()

    def wait_readable(self) -> bool:
        """Block until a byte can be read (True) or the stream ended (False),
        consuming nothing: an exception raised by a signal handler while it
        waits loses no input, unlike one raised inside :meth:`read_frame`."""
        peek = getattr(self._f, "peek", None)
        if peek is None:
            return True
        return bool(peek(1))

    def ready(self) -> bool:
        """True when :meth:`read_frame` would find input (or the end of the
        stream) without waiting for the writer. Costs a few system calls:
        the buffered reader's own buffer is invisible to ``select``, so an
        empty pipe is double-checked with a non-blocking peek."""
        try:
            fd = self._f.fileno()
        except (AttributeError, OSError, ValueError):
            return False
        if select.select([fd], [], [], 0)[0]:
            return True
        peek = getattr(self._f, "peek", None)
        if peek is None:
            return False
        os.set_blocking(fd, False)
        try:
            return bool(peek(1))
        finally:
            os.set_blocking(fd, True)

    def close(self) -> None:
        self._f.close()


class FrameAssembler(object):
    """Frames out of bytes fed in arbitrary pieces: for a reader that must
    wait on more than one descriptor (``select``), where a blocking buffered
    read cannot be used. A header above the maximum raises
    :class:`FrameTooLarge` as soon as its 4 bytes are in, before the payload
    is read; memory grows only with bytes that arrived."""

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = int(max_frame_bytes)
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_frame(self) -> Optional[bytes]:
        """The next complete payload, or None until one is complete."""
        buf = self._buf
        have = len(buf)
        if have < 4:
            return None
        n: int = _hdr_unpack_from(buf)[0]
        if n > self.max_frame_bytes:
            raise FrameTooLarge(n, self.max_frame_bytes)
        end = 4 + n
        if have < end:
            return None
        with memoryview(buf) as view:
            payload = bytes(view[4:end])
        del buf[:end]  # bytearray drops a prefix without moving the rest
        return payload

    def read_size(self) -> int:
        """How much to ask ``os.read`` for: the rest of a large frame in one
        go (bounded), else a pipe's worth."""
        buf = self._buf
        if len(buf) >= 4:
            missing: int = 4 + _hdr_unpack_from(buf)[0] - len(buf)
            if missing > _CHUNK:
                return _CHUNK
            if missing > 65536:
                return missing
        return 65536

    def truncated(self) -> Optional[TruncatedFrame]:
        """The :class:`TruncatedFrame` for input that ended now, or None
        when it ended cleanly between frames."""
        have = len(self._buf)
        if not have:
            return None
        if have < 4:
            return TruncatedFrame(have, 4, "header")
        return TruncatedFrame(have - 4, _hdr_unpack_from(self._buf)[0], "payload")


def write_all(fd: int, data: Buffer) -> None:
    """Write all of ``data`` to ``fd``, looping on partial writes."""
    n = os.write(fd, data)
    total = len(data)
    if n == total:
        return
    view = memoryview(data)
    while n < total:
        n += os.write(fd, view[n:])


def write_frame(fd: int, payload: bytes) -> None:
    """Write header + ``payload`` to ``fd`` in one system call when possible.

    Small payloads are concatenated with their header; large ones go out with
    ``writev`` so the payload is not copied.
    """
    n = len(payload)
    hdr = _hdr_pack(n)
    if n < 65536 or _writev is None:
        write_all(fd, hdr + payload)
        return
    w = _writev(fd, [hdr, payload])
    if w == n + 4:
        return
    if w < 4:
        write_all(fd, hdr[w:])
        w = 4
    write_all(fd, memoryview(payload)[w - 4:])


def write_parts(fd: int, parts: Sequence[Buffer]) -> None:
    """Write the buffers in ``parts`` back to back (one frame, header
    included): small frames joined into one ``write``, large ones with
    ``writev`` so big payloads are not copied."""
    if len(parts) == 1:
        write_all(fd, parts[0])
        return
    total = 0
    for p in parts:
        total += len(p)
    if total < 65536 or _writev is None:
        write_all(fd, b"".join(parts))
        return
    w = _writev(fd, parts)
    if w == total:
        return
    for p in parts:  # finish a partial writev
        n = len(p)
        if w >= n:
            w -= n
            continue
        write_all(fd, memoryview(p)[w:] if w else p)
        w = 0
