"""``--concurrency N``: requests in flight at once, replies out of order,
async handlers on one event loop, sync handlers on threads, queueing past N,
cancel, session state, and the signals / EOF / exit semantics above 1."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

from . import helpers
from .helpers import GENERIC, PY_DIR, STREAM_HANDLERS, WorkerTestCase

EXTRA = textwrap.dedent('''
    import sys, threading, time
    from pyvisor import command


    @command("quit")
    def quit(args, ctx):
        sys.exit(args.get("code", 5))


    @command("thread_name")
    def thread_name(args, ctx):
        return threading.current_thread().name


    @command("athread_name")
    async def athread_name(args, ctx):
        return threading.current_thread().name


    @command("hold_then_set")
    def hold_then_set(args, ctx):
        """Take the session dict (still empty), say so, wait, then store into it."""
        session = ctx.session
        ctx.log("holding")
        time.sleep(args["ms"] / 1000.0)
        session["v"] = args["value"]
        return True
''')


class ConcurrencyCase(WorkerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="pyvisor-concurrency-")
        cls.extra = os.path.join(cls.tmp, "concurrency_extra.py")
        with open(cls.extra, "w") as f:
            f.write(EXTRA)

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def start(self, n=4):
        extra = ["--concurrency", str(n)] if n is not None else []
        return self.spawn(script=GENERIC, cwd=PY_DIR, mode=None,
                          handlers=[STREAM_HANDLERS, self.extra], extra_args=extra)

    def read_replies(self, w, n, timeout=10):
        """The next ``n`` replies, keyed by id, in arrival order."""
        out = {}
        for _ in range(n):
            r = w.read_reply(timeout)
            self.assertNotIn(r["id"], out, "two replies for one id")
            out[r["id"]] = r
        return out

    def wait_inflight(self, w, rid, expected):
        """Sync point: the main thread read every earlier request (it answers
        ``inflight`` only after dispatching them)."""
        w.send_request(rid, "inflight", {})
        r = w.read_reply()
        self.assertEqual((r["id"], r["result"]), (rid, expected))


class TestStartup(ConcurrencyCase):
    def test_ready_carries_concurrency(self):
        self.assertEqual(self.start(None).ready["concurrency"], 1)
        w = self.start(8)
        self.assertEqual(w.ready["concurrency"], 8)
        self.assertEqual(w.call("get_stats")["concurrency"], 8)

    def test_bad_concurrency_is_a_usage_error(self):
        for value in ("0", "abc", "2000", "-1", "1.5", ""):
            p = subprocess.run([sys.executable, "-m", "pyvisor", "--worker-id", "bad",
                                "--concurrency", value], cwd=PY_DIR, capture_output=True,
                               timeout=15)
            self.assertEqual(p.returncode, 2, (value, p.stderr))
            err = p.stderr.decode()
            self.assertIn("--concurrency must be an integer in 1 .. 1024", err)
            self.assertIn(repr(value), err)
            self.assertEqual(p.stdout, b"")
        p = subprocess.run([sys.executable, helpers.BRIDGE, "--mode", "pool-worker",
                            "--concurrency"], capture_output=True, timeout=15)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"--concurrency needs a value", p.stderr)

    def test_limits_are_accepted(self):
        for n in (1, 1024):
            w = self.start(n)
            self.assertEqual(w.ready["concurrency"], n)
            self.assertIs(w.call("ping")["pong"], True)


class TestOutOfOrder(ConcurrencyCase):
    def setUp(self):
        super().setUp()
        self.w = self.start(4)

    def test_short_request_answers_first(self):
        self.w.send_request(1, "tsleep", {"ms": 300, "value": "long"})
        self.w.send_request(2, "tsleep", {"ms": 10, "value": "short"})
        first, second = self.w.read_reply(), self.w.read_reply()
        self.assertEqual((first["id"], first["result"]), (2, "short"))
        self.assertEqual((second["id"], second["result"]), (1, "long"))

    def test_async_sleeps_overlap(self):
        t = time.monotonic()
        for i in range(4):
            self.w.send_request(10 + i, "asleep", {"ms": 200, "value": i})
        replies = self.read_replies(self.w, 4)
        elapsed = time.monotonic() - t
        self.assertEqual({r["result"] for r in replies.values()}, {0, 1, 2, 3})
        self.assertLess(elapsed, 0.4, "4 x 200 ms async sleeps took %.3f s" % elapsed)

    def test_thread_sleeps_overlap(self):
        t = time.monotonic()
        for i in range(4):
            self.w.send_request(20 + i, "tsleep", {"ms": 200, "value": i})
        self.read_replies(self.w, 4)
        elapsed = time.monotonic() - t
        self.assertLess(elapsed, 0.4, "4 x 200 ms thread sleeps took %.3f s" % elapsed)

    def test_handlers_run_where_they_should(self):
        self.assertTrue(self.w.call("thread_name").startswith("pyvisor-handler-"))
        self.assertEqual(self.w.call("athread_name"), "pyvisor-asyncio")

    def test_inflight_counts_requests_running(self):
        self.w.send_request(30, "tsleep", {"ms": 300})
        self.w.send_request(31, "asleep", {"ms": 300})
        self.wait_inflight(self.w, 32, 3)
        self.read_replies(self.w, 2)
        self.assertEqual(self.w.call("inflight"), 1)

    def test_more_than_n_requests_wait_for_a_slot(self):
        w = self.start(2)
        t = time.monotonic()
        for i in range(6):
            w.send_request(40 + i, "tsleep", {"ms": 150, "value": i})
        replies = self.read_replies(w, 6)
        elapsed = time.monotonic() - t
        self.assertTrue(all(r["ok"] for r in replies.values()))
        # three waves of two: they were queued, not run at once, and none failed
        self.assertGreaterEqual(elapsed, 0.42)
        self.assertEqual(w.call("get_stats")["errors"], 0)

    def test_queued_request_past_its_deadline_is_not_run(self):
        w = self.start(2)
        w.send_request(50, "tsleep", {"ms": 300})
        w.send_request(51, "tsleep", {"ms": 300})
        w.send_request(52, "tsleep", {"ms": 1, "value": "ran"},
                       deadline=time.time() * 1000 + 100)
        replies = self.read_replies(w, 3)
        e = replies[52]["error"]
        self.assertEqual(e["type"], "DeadlineExceeded")
        self.assertIn("before tsleep could start", e["message"])

    def test_session_state_across_threads(self):
        for i in range(20):
            self.w.send_request(100 + i, "set_state", {"value": i}, session="s%d" % i)
        replies = self.read_replies(self.w, 20)
        self.assertTrue(all(r.get("held") is True for r in replies.values()))
        for i in range(20):
            self.w.send_request(200 + i, "get_state", {}, session="s%d" % i)
        replies = self.read_replies(self.w, 20)
        self.assertEqual({rid - 200: r["result"] for rid, r in replies.items()},
                         {i: i for i in range(20)})
        self.assertNotIn("held", replies[200], "held is sent only when it changes")
        self.assertEqual(self.w.call("get_stats")["sessions"], 20)
        r = self.w.request("cleanup_session", {"session_id": "s3"})
        self.assertIs(r["result"]["existed"], True)
        self.assertIsNone(self.w.call("get_state", session="s3"))

    def test_one_session_many_requests(self):
        # An empty session dict may not be dropped while another request of
        # the session (another thread) may be holding it.
        for round_ in range(5):
            for i in range(8):
                cmd = "set_state" if i == 7 else "get_state"
                self.w.send_request(300 + i, cmd, {"value": round_}, session="shared")
            self.read_replies(self.w, 8)
            self.assertEqual(self.w.call("get_state", session="shared"), round_)

    def test_empty_session_dict_held_by_another_request_is_kept(self):
        self.w.send_request(90, "hold_then_set", {"ms": 300, "value": "kept"}, session="h")
        notice = self.w.read_msg()
        self.assertEqual((notice.get("event"), notice.get("message")), ("log", "holding"))
        # get_state only looks: the session dict is empty when it replies, but
        # hold_then_set holds that dict and writes to it afterwards.
        r = self.w.request("get_state", {}, session="h")
        self.assertIsNone(r["result"])
        r = self.w.read_reply()
        self.assertEqual((r["id"], r.get("held")), (90, True))
        self.assertEqual(self.w.call("get_state", session="h"), "kept")

    def test_cancel_an_async_task(self):
        self.w.send_request(60, "ahang", {})
        self.wait_inflight(self.w, 61, 2)
        t = time.monotonic()
        self.w.send_control(60, cancel=True)
        r = self.w.read_reply()
        self.assertEqual(r, {"id": 60, "ok": False, "error": {
            "type": "Cancelled", "message": "cancelled by the host", "traceback": ""}})
        self.assertLess(time.monotonic() - t, 1.0)

    def test_cancel_reaches_a_cooperative_sync_handler(self):
        self.w.send_request(62, "cancelled_seen", {"ms": 10000})
        self.wait_inflight(self.w, 63, 2)
        t = time.monotonic()
        self.w.send_control(62, cancel=True)
        r = self.w.read_reply()
        self.assertEqual((r["id"], r["error"]["type"]), (62, "Cancelled"))
        self.assertLess(time.monotonic() - t, 2.0, "the handler did not see ctx.cancelled")

    def test_cancel_cannot_interrupt_a_deaf_sync_handler(self):
        self.w.send_request(64, "deaf_hang", {"ms": 600})
        self.wait_inflight(self.w, 65, 2)
        t = time.monotonic()
        self.w.send_control(64, cancel=True)
        self.assertIs(self.w.call("ping")["pong"], True)  # served meanwhile
        r = self.w.read_reply()
        self.assertEqual((r["id"], r["error"]["type"]), (64, "Cancelled"))
        self.assertGreater(time.monotonic() - t, 0.3, "it ran to its end")

    def test_cancel_a_queued_request(self):
        w = self.start(2)
        w.send_request(70, "deaf_hang", {"ms": 800})
        w.send_request(71, "deaf_hang", {"ms": 800})
        w.send_request(72, "tsleep", {"ms": 1, "value": "never"})
        w.send_control(72, cancel=True)
        r = w.read_reply()
        self.assertEqual((r["id"], r["error"]["type"]), (72, "Cancelled"))
        replies = self.read_replies(w, 2)
        self.assertEqual(set(replies), {70, 71})

    def test_malformed_control_frame_for_a_running_request(self):
        self.w.send_request(73, "ahang", {})
        self.wait_inflight(self.w, 74, 2)
        self.w.send_control(73, cancel="yes")
        r = self.w.read_reply()
        self.assertEqual((r["id"], r["error"]["type"]), (73, "ProtocolError"))
        self.assertIn("'cancel'", r["error"]["message"])
        self.assertIs(self.w.call("ping")["pong"], True)

    def test_sync_handler_returning_an_awaitable(self):
        with open(os.path.join(self.tmp, "aw.py"), "w") as f:
            f.write("import asyncio\nfrom pyvisor import command\n"
                    "@command('aw')\ndef aw(args, ctx):\n"
                    "    async def later():\n        await asyncio.sleep(0.01)\n"
                    "        return 'awaited'\n    return later()\n")
        w = self.spawn(script=GENERIC, cwd=PY_DIR, mode=None,
                       handlers=[os.path.join(self.tmp, "aw.py")],
                       extra_args=["--concurrency", "3"])
        self.assertEqual(w.call("aw"), "awaited")

    def test_errors_keep_their_type_and_traceback(self):
        self.w.send_request(80, "stream_then_fail", {"n": 2})
        r = self.w.read_reply()
        self.assertEqual(r["error"]["type"], "ValueError")
        self.assertIn("stream_handlers.py", r["error"]["traceback"])
        self.assertNotIn("dispatch.py", r["error"]["traceback"])


class TestLifecycle(ConcurrencyCase):
    def test_sigterm_lets_in_flight_requests_finish(self):
        w = self.start(4)
        w.send_request(1, "tsleep", {"ms": 300, "value": "t"})
        w.send_request(2, "asleep", {"ms": 300, "value": "a"})
        self.wait_inflight(w, 3, 3)
        w.signal(signal.SIGTERM)
        replies = self.read_replies(w, 2)
        self.assertEqual({rid: r["result"] for rid, r in replies.items()}, {1: "t", 2: "a"})
        self.assertEqual(w.wait(5), 0)

    def test_sigterm_idle_exits_at_once(self):
        w = self.start(4)
        w.call("ping")
        t = time.monotonic()
        w.signal(signal.SIGTERM)
        self.assertEqual(w.wait(5), 0)
        self.assertLess(time.monotonic() - t, 1.0)

    def test_requests_after_sigterm_are_not_run(self):
        w = self.start(4)
        w.send_request(1, "tsleep", {"ms": 300, "value": "t"})
        self.wait_inflight(w, 2, 2)
        w.signal(signal.SIGTERM)
        w.send_request(3, "tsleep", {"ms": 1, "value": "late"})
        r = w.read_reply()
        self.assertEqual((r["id"], r["result"]), (1, "t"))
        self.assertEqual(w.wait(5), 0)
        self.assertTrue(w.stdout_eof())
        self.assertIn("not run: the worker is stopping", w.stderr_after_exit())

    def test_stream_finishes_after_sigterm(self):
        w = self.start(4)
        w.send_request(1, "count", {"n": 4}, stream=2)
        self.assertEqual(w.read_chunks(1, 2), [0, 1])
        w.signal(signal.SIGTERM)
        w.send_control(1, ack=2)  # still read after SIGTERM: the stream can go on
        chunks, reply = w.read_stream(1, ack_from=2)
        self.assertEqual((chunks, reply["result"]), ([2, 3], {"total": 4}))
        self.assertEqual(w.wait(5), 0)

    def test_stdin_eof_exits_with_requests_in_flight(self):
        w = self.start(4)
        w.send_request(1, "deaf_hang", {"ms": 30000})
        w.send_request(2, "ahang", {})
        self.wait_inflight(w, 3, 3)
        t = time.monotonic()
        w.close_stdin()
        self.assertEqual(w.wait(5), 0)
        self.assertLess(time.monotonic() - t, 1.0)

    def test_sigint_is_ignored(self):
        w = self.start(4)
        w.send_request(1, "tsleep", {"ms": 300, "value": "t"})
        self.wait_inflight(w, 2, 2)
        w.signal(signal.SIGINT)
        r = w.read_reply()
        self.assertEqual((r["id"], r["ok"], r["result"]), (1, True, "t"))
        w.signal(signal.SIGINT)
        self.assertIs(w.call("ping")["pong"], True)
        self.assertIsNone(w.proc.poll())

    def test_crash_under_concurrency(self):
        w = self.start(4)
        w.send_request(1, "deaf_hang", {"ms": 30000})
        w.send_request(2, "crash_after", {"ms": 50})
        self.assertEqual(w.wait(5), -signal.SIGKILL)

    def test_system_exit_waits_for_the_others(self):
        w = self.start(4)
        w.send_request(1, "tsleep", {"ms": 300, "value": "t"})
        self.wait_inflight(w, 2, 2)
        w.send_request(3, "quit", {"code": 5})
        replies = self.read_replies(w, 2)
        self.assertEqual(list(replies), [3, 1], "quit answers first, the sleeper after")
        self.assertEqual(replies[3]["error"]["type"], "SystemExit")
        self.assertEqual(replies[1]["result"], "t")
        self.assertEqual(w.wait(5), 5)

    def test_shutdown_waits_for_the_others(self):
        w = self.start(4)
        w.send_request(1, "asleep", {"ms": 300, "value": "a"})
        self.wait_inflight(w, 2, 2)
        w.send_request(3, "shutdown", {})
        replies = self.read_replies(w, 2)
        self.assertEqual(replies[3]["result"], {"shutting_down": True})
        self.assertEqual(replies[1]["result"], "a")
        self.assertEqual(w.wait(5), 0)

    def test_oversized_header_exits_4(self):
        w = self.start(4)
        w.send_request(1, "deaf_hang", {"ms": 30000})
        w.send_raw((0xFFFFFFF0).to_bytes(4, "big"))
        r = w.read_reply()
        self.assertEqual((r["id"], r["error"]["type"]), (None, "ProtocolError"))
        self.assertEqual(w.wait(5), 4)

    def test_truncated_frame_at_eof_exits_4(self):
        w = self.start(4)
        w.send_raw((100).to_bytes(4, "big") + b"abc")
        w.close_stdin()
        self.assertEqual(w.wait(5), 4)
        self.assertIn("stream ended inside a frame", w.stderr_after_exit())

    def test_frames_split_across_writes(self):
        from pyvisor import codec
        w = self.start(4)
        body = codec.encode({"id": 9, "cmd": "tsleep", "args": {"ms": 1, "value": "x" * 200000},
                             "session": None})
        frame = len(body).to_bytes(4, "big") + body
        for i in range(0, len(frame), 7000):
            w.send_raw(frame[i:i + 7000])
        self.assertEqual(w.read_reply()["result"], "x" * 200000)
        w.send_raw(b"".join(len(b).to_bytes(4, "big") + b for b in (
            codec.encode({"id": 10 + i, "cmd": "ping", "args": None, "session": None})
            for i in range(50))))
        self.assertEqual(set(self.read_replies(w, 50)), set(range(10, 60)))


if __name__ == "__main__":
    unittest.main()
