"""Streams: chunk frames under a credit window, acks, cancels, control-frame
validation, generators without ``stream``, and error ``details`` -- at
``--concurrency 1`` and above it (the same suite runs on both)."""

import os
import shutil
import signal
import tempfile
import textwrap
import time
import unittest

from .helpers import GENERIC, PY_DIR, STREAM_HANDLERS, WorkerTestCase

EXTRA = textwrap.dedent('''
    import asyncio, os, sys
    from pyvisor import command


    def _mark(path, text):
        with open(path, "a") as f:
            f.write(text + "\\n")


    @command("guarded")
    def guarded(args, ctx):
        """Yield forever; the finally records that the generator was closed."""
        try:
            i = 0
            while True:
                yield i
                i += 1
        except KeyboardInterrupt:
            _mark(args["path"], "interrupted")
            raise
        finally:
            _mark(args["path"], "closed")


    @command("aguarded")
    async def aguarded(args, ctx):
        try:
            i = 0
            while True:
                yield i
                i += 1
                await asyncio.sleep(0)
        finally:
            _mark(args["path"], "closed")


    @command("bad_chunk")
    def bad_chunk(args, ctx):
        try:
            yield 1
            yield {"items": [1, {2, 3}]}
            yield 3
        finally:
            _mark(args["path"], "closed")


    class Detailed(Exception):
        def __init__(self, message, details):
            Exception.__init__(self, message)
            self.details = details


    @command("raise_details")
    def raise_details(args, ctx):
        kind = args["kind"]
        if kind == "dict":
            raise Detailed("with details", {"status": 429, "retry_after": 1.5,
                                            "nested": {"a": [1, "x"]}})
        if kind == "set":
            raise Detailed("unencodable details", {"bad": {1, 2}})
        if kind == "keys":
            raise Detailed("non-str keys", {1: "one"})
        if kind == "str":
            raise Detailed("details not a dict", "just text")
        raise ValueError("no details")


    @command("stream_details")
    def stream_details(args, ctx):
        yield "a"
        raise Detailed("mid-stream", {"code": "rate_limit"})


    @command("aw_from_sync")
    def aw_from_sync(args, ctx):
        async def later():
            await asyncio.sleep(0.01)
            return "awaited"
        return later()


    @command("agen_from_sync")
    def agen_from_sync(args, ctx):
        async def gen():
            for i in range(3):
                await asyncio.sleep(0)
                yield i
        return gen()
''')


class StreamTests(object):
    """The tests both concurrency levels run (mixed into a WorkerTestCase)."""

    concurrency = 1

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="pyvisor-streams-")
        cls.extra = os.path.join(cls.tmp, "stream_extra.py")
        with open(cls.extra, "w") as f:
            f.write(EXTRA)

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        super().setUp()
        self.w = self.start()

    def start(self, concurrency=None):
        n = self.concurrency if concurrency is None else concurrency
        extra = ["--concurrency", str(n)] if n != 1 else []
        return self.spawn(script=GENERIC, cwd=PY_DIR, mode=None,
                          handlers=[STREAM_HANDLERS, self.extra], extra_args=extra)

    def path(self, name):
        p = os.path.join(self.tmp, "%s-%d-%s" % (self.id().rsplit(".", 1)[-1], os.getpid(), name))
        if os.path.exists(p):
            os.unlink(p)
        return p

    def marks(self, path):
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return f.read().split()

    def stream(self, rid, cmd, args, window):
        self.w.send_request(rid, cmd, args, stream=window)

    # -- chunks and the final reply ------------------------------------------

    def test_chunks_in_order_then_final_reply(self):
        self.stream(1, "count", {"n": 50}, 100)
        chunks, reply = self.w.read_stream(1)
        self.assertEqual(chunks, list(range(50)))
        self.assertEqual(reply, {"id": 1, "ok": True, "result": {"total": 50}})

    def test_async_generator_chunks_and_nil_result(self):
        self.stream(2, "acount", {"n": 20, "delay_ms": 1}, 100)
        chunks, reply = self.w.read_stream(2)
        self.assertEqual(chunks, list(range(20)))
        self.assertEqual(reply, {"id": 2, "ok": True, "result": None})

    def test_acks_keep_a_long_stream_going(self):
        self.stream(3, "count", {"n": 1000}, 16)
        got = []
        while len(got) < 1000:
            got += self.w.read_chunks(3, 16 if 1000 - len(got) >= 16 else 1000 - len(got))
            self.w.send_control(3, ack=len(got))
        self.assertEqual(got, list(range(1000)))
        self.assertEqual(self.w.read_reply()["result"], {"total": 1000})

    def test_stream_then_fail(self):
        self.stream(4, "stream_then_fail", {"n": 3}, 10)
        chunks, reply = self.w.read_stream(4)
        self.assertEqual(chunks, [0, 1, 2])
        self.assertIs(reply["ok"], False)
        self.assertEqual(reply["error"]["type"], "ValueError")
        self.assertEqual(reply["error"]["message"], "failed after 3 chunks")
        self.assertIn("stream_handlers.py", reply["error"]["traceback"])
        self.assertNotIn("pyvisor/streams.py", reply["error"]["traceback"])
        self.assertIs(self.w.call("ping")["pong"], True)

    def test_stream_then_crash(self):
        self.stream(5, "stream_then_crash", {"n": 2}, 10)
        self.assertEqual(self.w.read_chunks(5, 2), [0, 1])
        self.assertEqual(self.w.wait(5), -signal.SIGKILL)

    def test_stream_key_on_a_plain_handler_is_a_plain_reply(self):
        self.stream(6, "tsleep", {"ms": 1, "value": "v"}, 4)
        self.assertEqual(self.w.read_reply(), {"id": 6, "ok": True, "result": "v"})

    def test_generator_without_stream_returns_the_list(self):
        self.assertEqual(self.w.call("count", {"n": 4}), [0, 1, 2, 3])
        self.assertEqual(self.w.call("acount", {"n": 3}), [0, 1, 2])
        self.assertEqual(self.w.call("count", {"n": 0}), [])

    def test_sync_handler_returning_an_async_generator(self):
        self.stream(7, "agen_from_sync", {}, 10)
        chunks, reply = self.w.read_stream(7)
        self.assertEqual((chunks, reply["result"]), ([0, 1, 2], None))
        self.assertEqual(self.w.call("agen_from_sync"), [0, 1, 2])
        self.assertEqual(self.w.call("aw_from_sync"), "awaited")

    # -- the credit window ---------------------------------------------------

    def test_backpressure_bound(self):
        # Exactly WINDOW chunks, then nothing until an ack; the generator
        # itself never ran past the last chunk it was allowed to send.
        path = self.path("count")
        self.stream(8, "stream_forever", {"path": path}, 4)
        self.assertEqual(self.w.read_chunks(8, 4), [0, 1, 2, 3])
        self.assertTrue(self.w.silent_for(0.3), "a chunk past the window was sent")
        with open(path) as f:
            self.assertEqual(f.read(), "4")
        self.w.send_control(8, ack=2)
        self.assertEqual(self.w.read_chunks(8, 2), [4, 5])
        self.assertTrue(self.w.silent_for(0.3), "a chunk past the window was sent")
        with open(path) as f:
            self.assertEqual(f.read(), "6")
        self.w.send_control(8, cancel=True)
        chunks, reply = self.w.read_stream(8)
        self.assertEqual(chunks, [])
        self.assertEqual(reply["error"]["type"], "Cancelled")

    def test_stale_ack_is_ignored(self):
        self.stream(9, "count", {"n": 5}, 2)
        self.assertEqual(self.w.read_chunks(9, 2), [0, 1])
        self.w.send_control(9, ack=1)
        self.assertEqual(self.w.read_chunks(9, 1), [2])
        self.w.send_control(9, ack=0)  # lower than before: no credit
        self.assertTrue(self.w.silent_for(0.3))
        self.w.send_control(9, ack=5)
        chunks, reply = self.w.read_stream(9)
        self.assertEqual(chunks, [3, 4])
        self.assertEqual(reply["result"], {"total": 5})

    def test_final_reply_waits_for_credit(self):
        # The last chunk fills the window: the generator may not be resumed
        # (not even to find out that it is over) until the host acks.
        self.stream(14, "count", {"n": 2}, 2)
        self.assertEqual(self.w.read_chunks(14, 2), [0, 1])
        self.assertTrue(self.w.silent_for(0.3), "resumed without credit")
        self.w.send_control(14, ack=1)
        self.assertEqual(self.w.read_reply(), {"id": 14, "ok": True, "result": {"total": 2}})

    def test_stale_ack_does_not_take_credit_back(self):
        # Both acks in one write: the stale one is read before the worker
        # has used the credit of the first, and must not shrink it.
        from pyvisor import codec
        self.stream(15, "count", {"n": 100}, 4)
        self.assertEqual(self.w.read_chunks(15, 4), [0, 1, 2, 3])
        frames = b""
        for ack in (4, 1):
            body = codec.encode({"id": 15, "ack": ack})
            frames += len(body).to_bytes(4, "big") + body
        self.w.send_raw(frames)
        self.assertEqual(self.w.read_chunks(15, 4), [4, 5, 6, 7])
        self.assertTrue(self.w.silent_for(0.3))
        self.w.send_control(15, cancel=True)
        self.assertEqual(self.w.read_stream(15)[1]["error"]["type"], "Cancelled")

    def test_window_of_one(self):
        self.stream(10, "count", {"n": 3}, 1)
        for i in range(3):
            self.assertEqual(self.w.read_chunks(10, 1), [i])
            self.w.send_control(10, ack=i + 1)
        self.assertEqual(self.w.read_reply()["result"], {"total": 3})

    # -- cancel --------------------------------------------------------------

    def test_cancel_while_waiting_for_credit_closes_the_generator(self):
        path = self.path("marks")
        self.stream(11, "guarded", {"path": path}, 2)
        self.assertEqual(self.w.read_chunks(11, 2), [0, 1])
        self.w.send_control(11, cancel=True)
        chunks, reply = self.w.read_stream(11)
        self.assertEqual(chunks, [])
        self.assertEqual(reply, {"id": 11, "ok": False, "error": {
            "type": "Cancelled", "message": "cancelled by the host", "traceback": ""}})
        self.assertEqual(self.marks(path), ["closed"], "the finally ran before the reply")
        self.assertIs(self.w.call("ping")["pong"], True)

    def test_cancel_async_generator_waiting_for_credit(self):
        path = self.path("amarks")
        self.stream(12, "aguarded", {"path": path}, 3)
        self.assertEqual(self.w.read_chunks(12, 3), [0, 1, 2])
        self.w.send_control(12, cancel=True)
        chunks, reply = self.w.read_stream(12)
        self.assertEqual((chunks, reply["error"]["type"]), ([], "Cancelled"))
        self.assertEqual(self.marks(path), ["closed"])
        self.assertIs(self.w.call("ping")["pong"], True)

    def test_cancel_and_ack_after_the_reply_are_ignored(self):
        self.stream(13, "count", {"n": 2}, 8)
        self.w.read_stream(13)
        self.w.send_control(13, ack=2)
        self.w.send_control(13, cancel=True)
        self.assertIs(self.w.call("ping")["pong"], True)

    def test_control_frames_for_unknown_ids_are_ignored(self):
        self.w.send_control(999, ack=3)
        self.w.send_control(998, cancel=True)
        self.w.send_control(997, ack=1, cancel=True)
        # The next frame is ping's reply: nothing answered the control frames.
        self.assertIs(self.w.call("ping")["pong"], True)
        stats = self.w.call("get_stats")
        self.assertEqual(stats["errors"], 0)
        self.assertEqual(stats["requests"], 2)

    # -- malformed frames ----------------------------------------------------

    def expect_protocol_error(self, msg, rid, names):
        self.w.send(msg)
        r = self.w.read_reply()
        self.assertEqual(r["id"], rid, r)
        self.assertIs(r["ok"], False)
        self.assertEqual(r["error"]["type"], "ProtocolError")
        self.assertIn("'%s'" % names, r["error"]["message"])
        return r["error"]["message"]

    def test_malformed_control_frames(self):
        m = self.expect_protocol_error({"id": 20, "ack": "3"}, 20, "ack")
        self.assertIn("got a str", m)
        self.assertIn("got -1", self.expect_protocol_error({"id": 21, "ack": -1}, 21, "ack"))
        self.expect_protocol_error({"id": 22, "ack": True}, 22, "ack")
        self.expect_protocol_error({"id": 23, "ack": 1.0}, 23, "ack")
        self.expect_protocol_error({"id": 24, "ack": None}, 24, "ack")
        self.expect_protocol_error({"id": 25, "cancel": False}, 25, "cancel")
        self.expect_protocol_error({"id": 26, "cancel": 1}, 26, "cancel")
        self.expect_protocol_error({"id": 27}, 27, "cmd")
        self.expect_protocol_error({"id": 28, "session": None}, 28, "cmd")
        self.assertIs(self.w.call("ping")["pong"], True)

    def test_malformed_control_frame_for_a_stream_is_its_final_reply(self):
        path = self.path("marks")
        self.stream(30, "guarded", {"path": path}, 1)
        self.assertEqual(self.w.read_chunks(30, 1), [0])
        self.w.send_control(30, ack="one")
        chunks, reply = self.w.read_stream(30)
        self.assertEqual(chunks, [])
        self.assertEqual(reply["error"]["type"], "ProtocolError")
        self.assertIn("'ack'", reply["error"]["message"])
        self.assertEqual(self.marks(path), ["closed"])
        # exactly one reply: the next frame is ping's
        self.assertIs(self.w.call("ping")["pong"], True)

    def test_stream_key_validation(self):
        path = self.path("never")
        for bad, shown in ((0, "got 0"), (-2, "got -2"), ("4", "got a str"),
                           (1.5, "got a float"), (True, "got a bool"), ([4], "got a array")):
            self.w.send_request(40, "stream_forever", {"path": path}, stream=bad)
            r = self.w.read_reply()
            self.assertEqual((r["id"], r["error"]["type"]), (40, "ProtocolError"))
            self.assertIn("'stream'", r["error"]["message"])
            self.assertIn(shown, r["error"]["message"])
        self.assertFalse(os.path.exists(path), "the command must not run")
        self.w.send_request(41, "count", {"n": 2}, stream=None)  # nil: not a stream
        self.assertEqual(self.w.read_reply()["result"], [0, 1])

    def test_unencodable_chunk(self):
        path = self.path("marks")
        self.stream(42, "bad_chunk", {"path": path}, 8)
        chunks, reply = self.w.read_stream(42)
        self.assertEqual(chunks, [1])
        self.assertEqual(reply["error"]["type"], "SerializationError")
        self.assertEqual(reply["error"]["message"], "chunk.items[1]: set is not serializable")
        self.assertEqual(self.marks(path), ["closed"])
        self.assertIs(self.w.call("ping")["pong"], True)

    # -- error details -------------------------------------------------------

    def test_error_details(self):
        e = self.w.error("raise_details", {"kind": "dict"})
        self.assertEqual(e["type"], "Detailed")
        self.assertEqual(e["message"], "with details")
        self.assertEqual(e["details"], {"status": 429, "retry_after": 1.5,
                                        "nested": {"a": [1, "x"]}})
        self.assertIn("Traceback", e["traceback"])

    def test_error_without_or_with_unusable_details(self):
        for kind, message in (("none", "no details"), ("set", "unencodable details"),
                              ("keys", "non-str keys"), ("str", "details not a dict")):
            e = self.w.error("raise_details", {"kind": kind})
            self.assertEqual(e["message"], message)
            self.assertNotIn("details", e)
            self.assertIn("Traceback", e["traceback"])
        self.assertIs(self.w.call("ping")["pong"], True)

    def test_details_of_an_error_mid_stream(self):
        self.stream(43, "stream_details", {}, 4)
        chunks, reply = self.w.read_stream(43)
        self.assertEqual(chunks, ["a"])
        self.assertEqual(reply["error"]["details"], {"code": "rate_limit"})


class StreamConcurrency1(StreamTests, WorkerTestCase):
    """Concurrency 1: the stream's own thread reads the host's frames."""

    concurrency = 1

    def test_requests_during_a_stream_are_served_after_it(self):
        self.stream(50, "count", {"n": 3}, 1)
        self.assertEqual(self.w.read_chunks(50, 1), [0])
        self.w.send_request(51, "ping", {})
        self.w.send_request(52, "count", {"n": 2})
        self.w.send_control(50, ack=3)
        chunks, reply = self.w.read_stream(50)
        self.assertEqual((chunks, reply["result"]), ([1, 2], {"total": 3}))
        self.assertIs(self.w.read_reply()["result"]["pong"], True)
        self.assertEqual(self.w.read_reply(), {"id": 52, "ok": True, "result": [0, 1]})

    def test_cancel_reaches_a_running_generator_at_its_next_yield(self):
        # Credit left, so the generator never waits: the cancel is found by
        # the look at the input after a chunk.
        path = self.path("count")
        self.stream(53, "stream_forever", {"path": path, "delay_ms": 20}, 1000000)
        self.w.read_chunks(53, 2)
        self.w.send_control(53, cancel=True)
        chunks, reply = self.w.read_stream(53)
        self.assertEqual(reply["error"]["type"], "Cancelled")
        self.assertLess(len(chunks), 10)

    def test_sigint_while_waiting_for_credit(self):
        path = self.path("marks")
        self.stream(54, "guarded", {"path": path}, 1)
        self.assertEqual(self.w.read_chunks(54, 1), [0])
        self.w.signal(signal.SIGINT)
        chunks, reply = self.w.read_stream(54)
        self.assertEqual(chunks, [])
        self.assertEqual(reply["error"]["type"], "KeyboardInterrupt")
        self.assertIn("closed", self.marks(path))
        self.assertIs(self.w.call("ping")["pong"], True)

    def test_sigint_with_half_a_frame_read_keeps_the_stream_in_sync(self):
        from pyvisor import codec
        self.stream(55, "guarded", {"path": self.path("marks")}, 1)
        self.assertEqual(self.w.read_chunks(55, 1), [0])
        body = codec.encode({"id": 55, "ack": 1})
        frame = len(body).to_bytes(4, "big") + body
        self.w.send_raw(frame[:3])
        time.sleep(0.1)  # let the worker start reading the frame (either way it must hold)
        self.w.signal(signal.SIGINT)
        time.sleep(0.1)
        self.w.send_raw(frame[3:])
        chunks, reply = self.w.read_stream(55)
        self.assertEqual(reply["error"]["type"], "KeyboardInterrupt")
        self.assertLessEqual(len(chunks), 1)
        self.assertIs(self.w.call("ping")["pong"], True)
        self.assertEqual(self.w.call("count", {"n": 2}), [0, 1])

    def test_sigterm_during_a_stream_lets_it_finish(self):
        self.stream(56, "count", {"n": 4}, 2)
        self.assertEqual(self.w.read_chunks(56, 2), [0, 1])
        self.w.signal(signal.SIGTERM)
        self.w.send_control(56, ack=2)
        chunks, reply = self.w.read_stream(56, ack_from=2)
        self.assertEqual((chunks, reply["result"]), ([2, 3], {"total": 4}))
        self.assertEqual(self.w.wait(5), 0)

    def test_stdin_eof_while_waiting_for_credit(self):
        path = self.path("marks")
        self.stream(57, "guarded", {"path": path}, 1)
        self.assertEqual(self.w.read_chunks(57, 1), [0])
        t = time.monotonic()
        self.w.close_stdin()
        self.assertEqual(self.w.wait(5), 0)
        self.assertLess(time.monotonic() - t, 1.0)
        self.assertEqual(self.marks(path), ["closed"])


class StreamConcurrency4(StreamTests, WorkerTestCase):
    """Concurrency 4: the main thread reads; generators run in handler threads
    (sync) or on the event loop (async)."""

    concurrency = 4

    def test_requests_are_served_while_a_stream_waits(self):
        self.stream(60, "count", {"n": 3}, 1)
        self.assertEqual(self.w.read_chunks(60, 1), [0])
        self.assertIs(self.w.call("ping")["pong"], True)
        self.assertEqual(self.w.call("acount", {"n": 2}), [0, 1])
        self.w.send_control(60, ack=3)
        chunks, reply = self.w.read_stream(60)
        self.assertEqual((chunks, reply["result"]), ([1, 2], {"total": 3}))

    def test_async_backpressure_bound(self):
        self.stream(61, "acount", {"n": 100}, 3)
        self.assertEqual(self.w.read_chunks(61, 3), [0, 1, 2])
        self.assertTrue(self.w.silent_for(0.3), "a chunk past the window was sent")
        self.w.send_control(61, ack=1)
        self.assertEqual(self.w.read_chunks(61, 1), [3])
        self.assertTrue(self.w.silent_for(0.3))
        self.w.send_control(61, cancel=True)
        self.assertEqual(self.w.read_stream(61)[1]["error"]["type"], "Cancelled")

    def test_cancel_a_sync_generator_between_yields(self):
        path = self.path("count")
        self.stream(62, "stream_forever", {"path": path, "delay_ms": 20}, 1000000)
        self.w.read_chunks(62, 2)
        self.w.send_control(62, cancel=True)
        chunks, reply = self.w.read_stream(62)
        self.assertEqual(reply["error"]["type"], "Cancelled")
        self.assertLess(len(chunks), 10)

    def test_concurrent_streams_each_in_order(self):
        n = 200
        for rid in (70, 71, 72, 73):
            self.stream(rid, "count" if rid % 2 else "acount", {"n": n}, 8)
        got = {rid: [] for rid in (70, 71, 72, 73)}
        done = {}
        while len(done) < 4:
            msg = self.w.read_reply()
            rid = msg["id"]
            if "chunk" in msg:
                got[rid].append(msg["chunk"])
                if len(got[rid]) % 8 == 0:
                    self.w.send_control(rid, ack=len(got[rid]))
            else:
                done[rid] = msg
        for rid in got:
            self.assertEqual(got[rid], list(range(n)), rid)
            self.assertIs(done[rid]["ok"], True)

    def test_sigint_is_ignored(self):
        self.stream(74, "count", {"n": 2}, 1)
        self.assertEqual(self.w.read_chunks(74, 1), [0])
        self.w.signal(signal.SIGINT)
        self.w.send_control(74, ack=1)
        chunks, reply = self.w.read_stream(74, ack_from=1)
        self.assertEqual((chunks, reply["result"]), ([1], {"total": 2}))


if __name__ == "__main__":
    unittest.main()
