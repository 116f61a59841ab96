"""Framing: length-prefixed reader/writer."""

import io
import os
import struct
import threading
import unittest

from . import helpers  # noqa: F401  (sets sys.path)
from pyvisor import framing
from pyvisor.framing import FrameReader, FrameTooLarge, TruncatedFrame


def hdr(n):
    return struct.pack(">I", n)


class RecordingReader(io.RawIOBase):
    """A raw stream that records every read size requested."""

    def __init__(self, data):
        self._data = memoryview(data)
        self._pos = 0
        self.requests = []

    def readable(self):
        return True

    def read(self, n=-1):
        self.requests.append(n)
        if n is None or n < 0:
            n = len(self._data) - self._pos
        chunk = bytes(self._data[self._pos:self._pos + n])
        self._pos += len(chunk)
        return chunk


class TestReader(unittest.TestCase):
    def test_frames_then_clean_eof(self):
        data = framing.frame(b"abc") + framing.frame(b"") + framing.frame(b"x" * 70000)
        r = FrameReader(io.BytesIO(data))
        self.assertEqual(r.read_frame(), b"abc")
        self.assertEqual(r.read_frame(), b"")
        self.assertEqual(r.read_frame(), b"x" * 70000)
        self.assertIsNone(r.read_frame())
        self.assertIsNone(r.read_frame())

    def test_truncated_header(self):
        r = FrameReader(io.BytesIO(b"\x00\x00"))
        with self.assertRaises(TruncatedFrame) as cm:
            r.read_frame()
        self.assertIn("header", str(cm.exception))

    def test_truncated_payload(self):
        r = FrameReader(io.BytesIO(hdr(10) + b"abc"))
        with self.assertRaises(TruncatedFrame) as cm:
            r.read_frame()
        self.assertEqual((cm.exception.got, cm.exception.wanted), (3, 10))

    def test_truncated_large_payload(self):
        r = FrameReader(io.BytesIO(hdr(5 << 20) + b"a" * (3 << 20)))
        with self.assertRaises(TruncatedFrame) as cm:
            r.read_frame()
        self.assertEqual(cm.exception.got, 3 << 20)

    def test_oversized_refused_before_reading_payload(self):
        raw = RecordingReader(hdr(0xFFFFFFFF) + b"zz")
        r = FrameReader(raw)
        with self.assertRaises(FrameTooLarge) as cm:
            r.read_frame()
        self.assertEqual(cm.exception.length, 0xFFFFFFFF)
        self.assertEqual(cm.exception.maximum, framing.DEFAULT_MAX_FRAME_BYTES)
        self.assertIn("4294967295", str(cm.exception))
        self.assertIn(str(framing.DEFAULT_MAX_FRAME_BYTES), str(cm.exception))
        self.assertEqual(raw.requests, [4])

    def test_configurable_max(self):
        r = FrameReader(io.BytesIO(hdr(100) + b"a" * 100 + hdr(101) + b"a" * 101),
                        max_frame_bytes=100)
        self.assertEqual(len(r.read_frame()), 100)
        with self.assertRaises(FrameTooLarge):
            r.read_frame()

    def test_large_frames_read_in_bounded_chunks(self):
        n = (3 << 20) + 5
        raw = RecordingReader(hdr(n) + b"q" * n)
        r = FrameReader(raw)
        self.assertEqual(len(r.read_frame()), n)
        self.assertLessEqual(max(raw.requests), 1 << 20)

    def test_bad_max(self):
        with self.assertRaises(ValueError):
            FrameReader(io.BytesIO(b""), max_frame_bytes=0)

    def test_reads_from_fd(self):
        rfd, wfd = os.pipe()
        os.write(wfd, framing.frame(b"hello"))
        os.close(wfd)
        r = FrameReader(rfd)
        try:
            self.assertEqual(r.read_frame(), b"hello")
            self.assertIsNone(r.read_frame())
        finally:
            r.close()


class TestWriter(unittest.TestCase):
    def _pipe_roundtrip(self, writer):
        rfd, wfd = os.pipe()
        got = bytearray()

        def drain():
            while True:
                chunk = os.read(rfd, 1 << 16)
                if not chunk:
                    return
                got.extend(chunk)
        t = threading.Thread(target=drain)
        t.start()
        try:
            writer(wfd)
        finally:
            os.close(wfd)
            t.join(10)
            os.close(rfd)
        return bytes(got)

    def test_write_all_large(self):
        data = os.urandom(5 << 20)  # far beyond the pipe buffer: partial writes
        self.assertEqual(self._pipe_roundtrip(lambda fd: framing.write_all(fd, data)), data)

    def test_write_frame_small_and_large(self):
        small = b"abc"
        large = os.urandom(3 << 20)
        out = self._pipe_roundtrip(lambda fd: (framing.write_frame(fd, small),
                                               framing.write_frame(fd, large)))
        self.assertEqual(out, hdr(3) + small + hdr(len(large)) + large)

    def test_write_parts(self):
        big = os.urandom(4 << 20)
        parts_list = [[b"abc"], [b"ab", b"cd"], [hdr(len(big) + 3) + b"xyz", big],
                      [bytearray(b"q"), memoryview(big)]]
        for parts in parts_list:
            out = self._pipe_roundtrip(lambda fd: framing.write_parts(fd, parts))
            self.assertEqual(out, b"".join(bytes(p) for p in parts))

    def test_write_frame_bytearray(self):
        out = self._pipe_roundtrip(lambda fd: framing.write_frame(fd, bytearray(b"xy")))
        self.assertEqual(out, hdr(2) + b"xy")


if __name__ == "__main__":
    unittest.main()
