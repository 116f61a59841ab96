"""Shared test helpers: paths, a real worker process driver, a base TestCase
that guarantees every spawned process is dead at the end."""

import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import unittest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
PY_DIR = os.path.dirname(TESTS_DIR)
ROOT = os.path.dirname(PY_DIR)
BRIDGE = os.path.join(PY_DIR, "dspy_bridge.py")
HANDLERS_DIR = os.path.join(ROOT, "test", "fixtures", "handlers")
ECHO_HANDLERS = os.path.join(HANDLERS_DIR, "echo_handlers.py")
STREAM_HANDLERS = os.path.join(HANDLERS_DIR, "stream_handlers.py")
DEADLINE_HANDLERS = os.path.join(TESTS_DIR, "handlers", "deadline_handlers.py")
VECTORS = os.path.join(ROOT, "test", "fixtures", "vectors.json")

if PY_DIR not in sys.path:
    sys.path.insert(0, PY_DIR)
if os.path.join(PY_DIR, "tools") not in sys.path:
    sys.path.insert(0, os.path.join(PY_DIR, "tools"))

from pyvisor import codec  # noqa: E402

_hdr = struct.Struct(">I")
_NOARGS = object()


def pid_alive(pid):
    """True if ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except OSError:
        return True


def wait_dead(pid, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.01)
    return not pid_alive(pid)


def cpu_ticks(pid):
    """utime + stime of ``pid`` in clock ticks (None when it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


def wait_spinning(pid, timeout=5.0):
    """True once ``pid`` has used CPU for a few ticks in a row: it is spinning."""
    deadline = time.monotonic() + timeout
    start = cpu_ticks(pid)
    while time.monotonic() < deadline:
        now = cpu_ticks(pid)
        if start is not None and now is not None and now - start >= 5:
            return True
        time.sleep(0.01)
    return False


#: ``script`` for the generic worker, ``python3 -m pyvisor`` (run it with ``cwd=PY_DIR``).
GENERIC = ("-m", "pyvisor")


class WorkerProcess(object):
    """A real worker (python dspy_bridge.py ..., or ``script=GENERIC``: python
    -m pyvisor ...) spoken to over its pipes. ``mode=None`` passes no --mode."""

    def __init__(self, mode="pool-worker", worker_id="w_test", handlers=(), extra_args=(),
                 env=None, python=None, cwd=None, script=BRIDGE, wait_ready=True):
        cmd = [python or sys.executable] + (list(script) if isinstance(script, tuple)
                                            else [script])
        if mode is not None:
            cmd += ["--mode", mode]
        cmd += ["--worker-id", worker_id]
        if handlers:
            cmd += ["--handlers"] + list(handlers)
        cmd += list(extra_args)
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=full_env, cwd=cwd)
        self.pid = self.proc.pid
        self._buf = bytearray()
        self._stderr = bytearray()
        self._err_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._err_thread.start()
        self._next_id = 1
        self.notices = []
        self.ready = self.read_msg(timeout=15) if wait_ready else None

    def _drain_stderr(self):
        fd = self.proc.stderr.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self._stderr += chunk

    @property
    def stderr(self):
        return bytes(self._stderr).decode("utf-8", "replace")

    def stderr_after_exit(self, timeout=5):
        self._err_thread.join(timeout)
        return self.stderr

    # -- raw I/O ------------------------------------------------------------

    def send_raw(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, obj):
        payload = codec.encode(obj)
        self.send_raw(_hdr.pack(len(payload)) + payload)

    def request_frame(self, rid, cmd, args, session=None, deadline=_NOARGS, stream=_NOARGS):
        """The frame of {id, cmd, args, session[, deadline][, stream]}, built
        the way the host does: the request map is spliced around the encoded
        args, so it does not count against the args' nesting allowance."""
        enc = codec.encode
        payload = (b"\xa2id" + enc(rid) + b"\xa3cmd" + enc(cmd) + b"\xa4args" + enc(args)
                   + b"\xa7session" + enc(session))
        keys = 4
        if deadline is not _NOARGS:
            payload += b"\xa8deadline" + enc(deadline)
            keys += 1
        if stream is not _NOARGS:
            payload += b"\xa6stream" + enc(stream)
            keys += 1
        payload = bytes([0x80 | keys]) + payload
        return _hdr.pack(len(payload)) + payload

    def send_request(self, rid, cmd, args, session=None, deadline=_NOARGS, stream=_NOARGS):
        self.send_raw(self.request_frame(rid, cmd, args, session, deadline, stream))

    def send_control(self, rid, **fields):
        """A control frame: ``send_control(3, ack=5)``, ``send_control(3, cancel=True)``."""
        msg = {"id": rid}
        msg.update(fields)
        self.send(msg)

    def _fill(self, n, deadline):
        fd = self.proc.stdout.fileno()
        while len(self._buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame from worker within the timeout; stderr:\n"
                                   + self.stderr[-2000:])
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise EOFError("worker closed stdout (exit %r); stderr:\n%s"
                               % (self.proc.poll(), self.stderr[-2000:]))
            self._buf += chunk

    def read_frame(self, timeout=10):
        deadline = time.monotonic() + timeout
        self._fill(4, deadline)
        n = _hdr.unpack(bytes(self._buf[:4]))[0]
        self._fill(4 + n, deadline)
        payload = bytes(self._buf[4:4 + n])
        del self._buf[:4 + n]
        return payload

    def read_msg(self, timeout=10):
        return codec.decode(self.read_frame(timeout))

    def read_reply(self, timeout=10):
        """Next reply (frames with an 'event' key are notices, kept aside)."""
        while True:
            msg = self.read_msg(timeout)
            if isinstance(msg, dict) and "event" in msg:
                self.notices.append(msg)
                continue
            return msg

    def read_chunks(self, rid, n, timeout=10):
        """The next ``n`` frames, which must be chunk frames of ``rid``: their values."""
        out = []
        for _ in range(n):
            msg = self.read_reply(timeout)
            assert msg.get("id") == rid and "chunk" in msg and "ok" not in msg, \
                "expected chunk %d of request %r, got %r" % (len(out), rid, msg)
            out.append(msg["chunk"])
        return out

    def read_stream(self, rid, timeout=10, others=None, ack_from=None):
        """Chunks of ``rid`` up to its final reply: ``(chunks, reply)``.
        Frames of other requests go to ``others`` (a list) when given, else
        fail. With ``ack_from`` (the chunks of ``rid`` consumed before), each
        chunk is acknowledged as it is read, as the host does: the worker
        resumes a generator only with credit, so a stream whose window is
        full sends its final reply only after an ack."""
        chunks = []
        deadline = time.monotonic() + timeout
        while True:
            msg = self.read_reply(max(0.01, deadline - time.monotonic()))
            if msg.get("id") != rid:
                assert others is not None, "frame of another request: %r" % (msg,)
                others.append(msg)
                continue
            if "ok" in msg:
                return chunks, msg
            assert "chunk" in msg, "neither a chunk nor a reply: %r" % (msg,)
            chunks.append(msg["chunk"])
            if ack_from is not None:
                try:
                    self.send_control(rid, ack=ack_from + len(chunks))
                except BrokenPipeError:  # a worker that exits after its reply
                    pass

    def silent_for(self, seconds):
        """True when no byte at all arrives on stdout for ``seconds`` (a bound
        being kept is checked this way: by what does not arrive)."""
        if self._buf:
            return False
        r, _, _ = select.select([self.proc.stdout.fileno()], [], [], seconds)
        return not r

    def stdout_eof(self, timeout=5):
        """True when stdout reaches EOF with no more bytes."""
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], deadline - time.monotonic())
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return True
                self._buf += chunk
        return False

    # -- requests -----------------------------------------------------------

    def request(self, cmd, args=_NOARGS, session=None, rid=None, timeout=10,
                deadline=_NOARGS):
        """Send one request (``deadline`` only when given) and return its reply."""
        if rid is None:
            rid = self._next_id
            self._next_id += 1
        self.send_request(rid, cmd, {} if args is _NOARGS else args, session, deadline)
        reply = self.read_reply(timeout)
        assert reply.get("id") == rid, "reply id %r != request id %r: %r" % (
            reply.get("id"), rid, reply)
        return reply

    def call(self, cmd, args=_NOARGS, session=None, timeout=10, deadline=_NOARGS):
        """Request and return the result; fail the test on an error reply."""
        reply = self.request(cmd, args, session, timeout=timeout, deadline=deadline)
        if not reply.get("ok"):
            raise AssertionError("%s failed: %r" % (cmd, reply.get("error")))
        return reply["result"]

    def error(self, cmd, args=_NOARGS, session=None, timeout=10, deadline=_NOARGS):
        """Request and return the error map; fail the test on success."""
        reply = self.request(cmd, args, session, timeout=timeout, deadline=deadline)
        if reply.get("ok"):
            raise AssertionError("%s unexpectedly succeeded: %r" % (cmd, reply.get("result")))
        return reply["error"]

    # -- lifecycle ----------------------------------------------------------

    def signal(self, sig):
        os.kill(self.pid, sig)

    def wait(self, timeout=5):
        return self.proc.wait(timeout)

    def close_stdin(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def kill(self):
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except Exception:
                pass


class WorkerTestCase(unittest.TestCase):
    """Every worker spawned through ``self.spawn`` is killed and asserted dead
    (by pid) when the test ends; class-level workers likewise at class end."""

    _class_workers = None

    def setUp(self):
        self._workers = []

    def spawn(self, **kw):
        w = WorkerProcess(**kw)
        self._workers.append(w)
        return w

    @classmethod
    def spawn_class(cls, **kw):
        if cls._class_workers is None:
            cls._class_workers = []
        w = WorkerProcess(**kw)
        cls._class_workers.append(w)
        return w

    def track_pid(self, pid):
        """Also kill and check a pid this test caused to exist."""
        self._workers.append(pid)

    def tearDown(self):
        _reap_all(self, self._workers)

    @classmethod
    def tearDownClass(cls):
        if cls._class_workers:
            _reap_all(None, cls._class_workers)
            cls._class_workers = []


def _reap_all(tc, items):
    for w in items:
        if isinstance(w, int):
            try:
                os.kill(w, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            dead = wait_dead(w)
            pid = w
        else:
            w.kill()
            pid = w.pid
            dead = not pid_alive(pid)
        msg = "process %d is still alive after the test" % pid
        if tc is not None:
            tc.assertTrue(dead, msg)
        elif not dead:
            raise AssertionError(msg)


def expected_codec():
    return codec.NAME
