"""Deadlines travel with requests: ``deadline`` (ms since the Unix epoch) in the
request frame, ``ctx.deadline`` / ``ctx.remaining()`` in the handler, an expired
request answered without running, a malformed deadline refused."""

import os
import re
import tempfile
import time
import unittest

from .helpers import WorkerTestCase, DEADLINE_HANDLERS
from pyvisor.registry import Context

MINUTE_MS = 60 * 1000


def now_ms():
    return time.time() * 1000.0


class TestContextRemaining(unittest.TestCase):
    """Context.remaining() on its own (no process, no clock games)."""

    def test_no_deadline(self):
        ctx = Context(None, 1, None, "x")
        self.assertIsNone(ctx.deadline)
        self.assertIsNone(ctx.remaining())

    def test_past_deadline_is_zero_not_negative(self):
        ctx = Context(None, 1, None, "x", time.time() - 5)
        self.assertEqual(ctx.remaining(), 0.0)
        self.assertIsInstance(ctx.remaining(), float)

    def test_future_deadline(self):
        before = time.time()
        ctx = Context(None, 1, None, "x", before + 30)
        left = ctx.remaining()
        self.assertIsInstance(left, float)
        self.assertGreater(left, 0)
        self.assertLessEqual(left, 30)


class TestDeadlines(WorkerTestCase):
    def setUp(self):
        super().setUp()
        self.w = self.spawn(handlers=[DEADLINE_HANDLERS], worker_id="wd")
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.marker = os.path.join(self.tmp.name, "ran.txt")

    def marker_lines(self):
        if not os.path.exists(self.marker):
            return []
        with open(self.marker) as f:
            return f.read().splitlines()

    # -- what the handler sees ----------------------------------------------

    def test_handler_sees_float_deadline_in_seconds(self):
        deadline = now_ms() + MINUTE_MS
        r = self.w.call("deadline_info", deadline=deadline)
        self.assertEqual(r["deadline"], deadline / 1000.0)
        self.assertIsInstance(r["remaining"], float)
        self.assertGreater(r["remaining"], 0)
        # remaining() is ctx.deadline minus the handler's own clock at the call
        self.assertGreaterEqual(r["remaining"], r["deadline"] - r["after"])
        self.assertLessEqual(r["remaining"], r["deadline"] - r["before"])
        self.assertLessEqual(r["remaining"], 60.0)

    def test_integer_deadline(self):
        deadline = int(now_ms()) + MINUTE_MS
        r = self.w.call("deadline_info", deadline=deadline)
        self.assertEqual(r["deadline"], deadline / 1000.0)
        self.assertGreater(r["remaining"], 0)

    def test_no_deadline(self):
        none = {"deadline": None, "remaining": None}
        r = self.w.call("deadline_info")  # no deadline key at all
        self.assertEqual({k: r[k] for k in none}, none)
        r = self.w.call("deadline_info", deadline=None)  # explicit nil
        self.assertEqual({k: r[k] for k in none}, none)

    # -- expired ------------------------------------------------------------

    def test_expired_deadline_is_not_run(self):
        sent = now_ms()
        r = self.w.request("mark", {"path": self.marker}, session="s", rid=41,
                           deadline=sent - 5000)
        self.assertEqual(set(r), {"id", "ok", "error"})
        self.assertEqual((r["id"], r["ok"]), (41, False))
        e = r["error"]
        self.assertEqual(e["type"], "DeadlineExceeded")
        self.assertEqual(e["traceback"], "")
        m = re.match(r"^deadline passed (\d+) ms before mark could start$", e["message"])
        self.assertIsNotNone(m, e["message"])
        late = int(m.group(1))
        self.assertGreaterEqual(late, 5000)
        self.assertLessEqual(late, 5000 + (now_ms() - sent) + 1)
        # the handler never ran: no side effect, no session created
        self.assertEqual(self.marker_lines(), [])
        self.assertEqual(self.w.call("runs", session="s"), 0)
        stats = self.w.call("get_stats")
        self.assertEqual(stats["sessions"], 0)
        self.assertEqual(stats["errors"], 1)

    def test_epoch_zero_deadline_is_expired(self):
        e = self.w.error("mark", {"path": self.marker}, session="s", deadline=0)
        self.assertEqual(e["type"], "DeadlineExceeded")
        self.assertEqual(self.marker_lines(), [])

    def test_expired_and_live_requests_in_one_write(self):
        # The expired one is answered at once, in order, and the stream stays in sync.
        w = self.w
        args = {"path": self.marker}
        w.send_raw(w.request_frame(1, "mark", args, "s", now_ms() - 1)
                   + w.request_frame(2, "mark", args, "s", now_ms() + MINUTE_MS)
                   + w.request_frame(3, "mark", args, "s"))
        r1, r2, r3 = w.read_reply(), w.read_reply(), w.read_reply()
        self.assertEqual((r1["id"], r1["ok"], r1["error"]["type"]), (1, False, "DeadlineExceeded"))
        self.assertEqual((r2["id"], r2["ok"], r2["result"]), (2, True, 1))
        self.assertEqual((r3["id"], r3["ok"], r3["result"]), (3, True, 2))
        self.assertEqual(self.marker_lines(), ["ran 2", "ran 3"])

    def test_unknown_command_wins_over_expired_deadline(self):
        e = self.w.error("no_such_command", deadline=now_ms() - 1000)
        self.assertEqual(e["type"], "UnknownCommand")

    # -- malformed ----------------------------------------------------------

    def test_malformed_deadline(self):
        cases = [("soon", "got a str"), (True, "got a bool"), (False, "got a bool"),
                 (float("nan"), "got nan"), (float("inf"), "got inf"),
                 (float("-inf"), "got -inf"), ([1], "got a array"), ({}, "got a map"),
                 (b"\x01", "got a binary")]
        for i, (bad, says) in enumerate(cases, start=100):
            r = self.w.request("mark", {"path": self.marker}, session="s", rid=i, deadline=bad)
            self.assertEqual((r["id"], r["ok"]), (i, False), r)
            e = r["error"]
            self.assertEqual(e["type"], "ProtocolError", e)
            self.assertIn("request 'deadline' must be a", e["message"])
            self.assertIn(says, e["message"])
            self.assertEqual(e["traceback"], "")
        # none of them ran, and the worker keeps serving
        self.assertEqual(self.marker_lines(), [])
        self.assertEqual(self.w.call("runs", session="s"), 0)
        self.assertEqual(self.w.call("mark", {"path": self.marker}, session="s",
                                     deadline=now_ms() + MINUTE_MS), 1)


if __name__ == "__main__":
    unittest.main()
