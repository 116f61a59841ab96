"""The real worker process: protocol, handlers, errors, signals, lifecycle."""

import os
import signal
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

from . import helpers
from .helpers import WorkerTestCase, ECHO_HANDLERS, HANDLERS_DIR, pid_alive, wait_dead
from pyvisor import codec

hdr = struct.Struct(">I").pack


def frame(obj):
    p = codec.encode(obj)
    return hdr(len(p)) + p


class TestStartup(WorkerTestCase):
    def test_ready_notice(self):
        w = self.spawn(mode="pool-worker", worker_id="worker_7")
        r = w.ready
        self.assertEqual(r["event"], "ready")
        self.assertEqual(r["worker_id"], "worker_7")
        self.assertEqual(r["pid"], w.pid)
        self.assertEqual(r["python"], "%d.%d.%d" % sys.version_info[:3])
        self.assertEqual(r["codec"], codec.NAME)
        self.assertEqual(r["mode"], "pool-worker")
        self.assertIn("ping", r["commands"])
        self.assertIn("execute_program", r["commands"])

    def test_standalone_mode(self):
        w = self.spawn(mode="standalone", worker_id="solo")
        self.assertEqual(w.ready["mode"], "standalone")
        self.assertEqual(w.call("ping")["mode"], "standalone")

    def test_runs_from_any_cwd(self):
        w = self.spawn(cwd=tempfile.gettempdir(), handlers=[ECHO_HANDLERS])
        self.assertEqual(w.call("echo", {"a": 1}), {"a": 1})

    def test_module_name_handlers(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "pv_mod_handlers.py"), "w") as f:
                f.write(textwrap.dedent("""
                    from pyvisor import command

                    @command("twice")
                    def twice(args, ctx):
                        return args["n"] * 2

                    @command()
                    def named_after_function(args, ctx):
                        return ctx.command

                    @command("aio")
                    async def aio(args, ctx):
                        import asyncio
                        await asyncio.sleep(0.01)
                        return "async ok"
                """))
            w = self.spawn(handlers=["pv_mod_handlers"], env={"PYTHONPATH": d})
            self.assertEqual(w.call("twice", {"n": 21}), 42)
            self.assertEqual(w.call("named_after_function"), "named_after_function")
            self.assertEqual(w.call("aio"), "async ok")

    def test_several_handler_files(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "more.py")
            with open(p, "w") as f:
                f.write("from pyvisor import command\n"
                        "@command('more')\n"
                        "def more(args, ctx):\n    return 'more'\n")
            w = self.spawn(handlers=[ECHO_HANDLERS, p])
            self.assertEqual(w.call("more"), "more")
            self.assertEqual(w.call("echo", [1]), [1])

    def _start_fails(self, handlers, code=3, extra=()):
        cmd = [sys.executable, helpers.BRIDGE, "--mode", "pool-worker", "--worker-id", "bad"]
        if handlers:
            cmd += ["--handlers"] + handlers
        cmd += list(extra)
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.track_pid(p.pid)
        out, err = p.communicate(timeout=15)
        self.assertEqual(p.returncode, code, err.decode())
        self.assertEqual(out, b"", "nothing may reach the protocol stream")
        return err.decode()

    def test_syntax_error_exits_3_with_traceback(self):
        err = self._start_fails([os.path.join(HANDLERS_DIR, "syntax_error.py")])
        self.assertIn("SyntaxError", err)
        self.assertIn("syntax_error.py", err)
        self.assertIn("Traceback", err)

    def test_missing_handlers_file_is_one_line(self):
        missing = os.path.join(HANDLERS_DIR, "no_such_handlers.py")
        err = self._start_fails([missing])
        self.assertEqual(err.strip().splitlines(), [
            "pyvisor worker bad: could not load handlers %r: FileNotFoundError: "
            "handlers file not found: %s" % (missing, missing)])

    def test_import_error_exits_3(self):
        err = self._start_fails([os.path.join(HANDLERS_DIR, "import_error.py")])
        self.assertIn("RuntimeError: handlers failed on purpose during import", err)

    def test_missing_handlers_exits_3(self):
        err = self._start_fails(["/nonexistent/handlers.py"])
        self.assertIn("handlers file not found", err)
        err = self._start_fails(["no_such_module_xyz"])
        self.assertIn("ModuleNotFoundError", err)

    def test_duplicate_command_exits_3(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "dup.py")
            with open(p, "w") as f:
                f.write("from pyvisor import command\n"
                        "@command('ping')\n"
                        "def ping(args, ctx):\n    return 1\n")
            err = self._start_fails([p])
            self.assertIn("'ping' is a built-in command", err)

    def test_usage_errors_exit_2(self):
        err = self._start_fails([], code=2, extra=["--bogus"])
        self.assertIn("unknown argument", err)
        err = self._start_fails([], code=2, extra=["--max-frame-bytes", "x"])
        self.assertIn("--max-frame-bytes", err)
        cmd = [sys.executable, helpers.BRIDGE, "--mode", "nope"]
        p = subprocess.run(cmd, capture_output=True, timeout=15)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"--mode", p.stderr)


class TestRequests(WorkerTestCase):
    def setUp(self):
        super().setUp()
        self.w = self.spawn(handlers=[ECHO_HANDLERS], worker_id="w1")

    def test_ping(self):
        r = self.w.call("ping")
        self.assertEqual(set(r), {"worker_id", "pid", "mode", "python", "codec", "uptime_s",
                                  "pong"})
        self.assertIs(r["pong"], True)
        self.assertEqual(r["pid"], self.w.pid)
        self.assertEqual(r["worker_id"], "w1")
        self.assertIsInstance(r["uptime_s"], float)

    def test_echo_values(self):
        for v in [None, True, 0, -1, 2**64 - 1, -2**63, 1.5, "h\u00e9\U0001F600", b"\x00\xff",
                  [], {}, {"nested": [1, {"b": b"x" * 300}], "s": "x" * 70000},
                  list(range(1000))]:
            self.assertEqual(self.w.call("echo", v), v)

    def test_nesting_limit(self):
        # 511 nested containers (the TypeScript side's MAX_DEPTH) round-trip;
        # the request/reply maps around them do not count.
        deep = "leaf"
        for i in range(511):
            deep = {"d": deep} if i % 2 else [deep]
        self.assertEqual(self.w.call("echo", deep), deep)
        # deeper args still decode (decoders accept up to 1024 levels) but
        # the echoed result cannot be encoded
        self.w.send_raw(self._deep_request(600))
        r = self.w.read_reply()
        self.assertEqual(r["error"]["type"], "SerializationError")
        self.assertIn("nesting deeper than 511 levels", r["error"]["message"])
        self.assertTrue(r["error"]["message"].startswith("result[0][0]"))
        # past 1024 levels the request itself is refused; the stream stays in sync
        self.w.send_raw(self._deep_request(1100))
        r = self.w.read_reply()
        self.assertEqual(r["error"]["type"], "ProtocolError")
        self.assertEqual(self.w.call("echo", 1), 1)

    def _deep_request(self, levels):
        payload = (b"\x84\xa2id\x03\xa3cmd\xa4echo\xa7session\xc0\xa4args"
                   + b"\x91" * levels + b"\x01")
        return hdr(len(payload)) + payload

    def test_large_payload_round_trip(self):
        blob = os.urandom(6 << 20)
        self.assertEqual(self.w.call("echo", {"blob": blob}, timeout=30), {"blob": blob})

    def test_missing_args_defaults_to_empty_map(self):
        self.w.send({"id": 5, "cmd": "echo"})
        self.assertEqual(self.w.read_reply(), {"id": 5, "ok": True, "result": {}})

    def test_pid(self):
        self.assertEqual(self.w.call("pid"), self.w.pid)

    def test_unknown_command(self):
        e = self.w.error("does_not_exist")
        self.assertEqual(e["type"], "UnknownCommand")
        self.assertIn("does_not_exist", e["message"])
        self.assertIs(self.w.call("ping")["pong"], True)

    def test_unknown_command_suggests_the_closest(self):
        e = self.w.error("ehco")
        self.assertEqual(e["type"], "UnknownCommand")
        self.assertTrue(e["message"].startswith("Unknown command 'ehco' (did you mean 'echo'?); known: "),
                        e["message"])
        far = self.w.error("zzzzzz")
        self.assertNotIn("did you mean", far["message"])
        self.assertIn("ping", far["message"])

    def test_raising_handler(self):
        r = self.w.request("raise", {"message": "bad thing"}, rid=99)
        self.assertEqual(r["id"], 99)
        self.assertIs(r["ok"], False)
        e = r["error"]
        self.assertEqual(e["type"], "ValueError")
        self.assertEqual(e["message"], "bad thing")
        self.assertIn("Traceback", e["traceback"])
        self.assertIn("echo_handlers.py", e["traceback"])
        self.assertIn("ValueError: bad thing", e["traceback"])
        self.assertIs(self.w.call("ping")["pong"], True)

    def test_print_noise_cannot_corrupt_frames(self):
        for _ in range(3):
            self.assertEqual(self.w.call("print_noise"), {"ok": True})
            self.assertEqual(self.w.call("echo", "after"), "after")
        time.sleep(0.2)
        err = self.w.stderr
        self.assertIn("noise from print()", err)
        self.assertIn("garbage written to fd 1", err)

    def test_unserializable_return(self):
        e = self.w.error("bad_return")
        self.assertEqual(e["type"], "SerializationError")
        self.assertEqual(e["message"], "result.items[3]: set is not serializable")
        self.assertEqual(self.w.call("echo", 1), 1)

    def test_log_notice(self):
        self.assertEqual(self.w.call("log", {"message": "hi there", "level": "warn"}),
                         {"logged": True})
        self.assertEqual(len(self.w.notices), 1)
        n = self.w.notices[0]
        self.assertEqual((n["event"], n["level"], n["message"], n["worker_id"]),
                         ("log", "warn", "hi there", "w1"))

    def test_sessions_are_private(self):
        self.w.call("session_put", {"key": "k", "value": 1}, session="a")
        self.w.call("session_put", {"key": "k", "value": 2}, session="b")
        self.w.call("session_put", {"key": "only_a", "value": True}, session="a")
        self.assertEqual(self.w.call("session_get", {"key": "k"}, session="a")["value"], 1)
        self.assertEqual(self.w.call("session_get", {"key": "k"}, session="b")["value"], 2)
        self.assertFalse(self.w.call("session_get", {"key": "only_a"}, session="b")["found"])
        self.assertFalse(self.w.call("session_get", {"key": "k"}, session="c")["found"])
        stats = self.w.call("get_stats")
        self.assertEqual(stats["sessions"], 2)
        self.assertEqual(sorted(stats["session_ids"]), ["a", "b"])

    def test_cleanup_session(self):
        self.w.call("session_put", {"key": "k1", "value": 1}, session="s")
        self.w.call("session_put", {"key": "k2", "value": 2}, session="s")
        r = self.w.call("cleanup_session", {"session_id": "s"})
        self.assertEqual(r["session_id"], "s")
        self.assertIs(r["existed"], True)
        self.assertEqual(r["freed_keys"], 2)
        self.assertEqual(r["freed_programs"], 0)
        self.assertFalse(self.w.call("session_get", {"key": "k1"}, session="s")["found"])
        r = self.w.call("cleanup_session", {"session_id": "s"})
        self.assertIs(r["existed"], False)
        self.assertEqual(r["freed_keys"], 0)
        # falls back to the frame's session
        self.w.call("session_put", {"key": "k", "value": 1}, session="t")
        r = self.w.call("cleanup_session", {}, session="t")
        self.assertEqual((r["session_id"], r["existed"]), ("t", True))
        e = self.w.error("cleanup_session", {})
        self.assertEqual(e["type"], "ValueError")
        self.assertEqual(self.w.call("get_stats")["sessions"], 0)

    def test_alloc_and_cleanup_frees_memory(self):
        before = self.w.call("get_stats")["rss_kb"]
        self.w.call("alloc", {"mb": 40}, session="big")
        during = self.w.call("get_stats")["rss_kb"]
        self.assertGreater(during - before, 30 * 1024)
        self.w.call("cleanup_session", {"session_id": "big"})
        after = self.w.call("get_stats")["rss_kb"]
        self.assertLess(after, during - 20 * 1024)

    def test_get_stats(self):
        self.w.call("ping")
        self.w.error("raise", {"message": "x"})
        s = self.w.call("get_stats")
        for key in ("worker_id", "pid", "mode", "codec", "requests", "errors", "sessions",
                    "session_ids", "uptime_s", "rss_kb", "programs"):
            self.assertIn(key, s)
        self.assertEqual(s["requests"], 3)
        self.assertEqual(s["errors"], 1)
        self.assertIsInstance(s["rss_kb"], int)
        self.assertGreater(s["rss_kb"], 1000)
        self.assertEqual(s["codec"], codec.NAME)

    def test_anonymous_session(self):
        self.w.call("session_put", {"key": "k", "value": "anon"})
        self.assertEqual(self.w.call("session_get", {"key": "k"})["value"], "anon")
        self.assertEqual(self.w.call("get_stats")["sessions"], 0)

    def test_crash(self):
        self.w.send({"id": 1, "cmd": "crash", "args": {"code": 7}, "session": None})
        self.assertEqual(self.w.wait(5), 7)

    def test_shutdown(self):
        self.assertEqual(self.w.call("shutdown"), {"shutting_down": True})
        self.assertEqual(self.w.wait(5), 0)

    def test_handler_sys_exit(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "exits.py")
            with open(p, "w") as f:
                f.write("import sys\nfrom pyvisor import command\n"
                        "@command('quit')\n"
                        "def quit(args, ctx):\n    sys.exit(5)\n")
            w = self.spawn(handlers=[p])
            e = w.error("quit")
            self.assertEqual(e["type"], "SystemExit")
            self.assertEqual(w.wait(5), 5)


class TestBadFrames(WorkerTestCase):
    def setUp(self):
        super().setUp()
        self.w = self.spawn(handlers=[ECHO_HANDLERS])

    def expect_protocol_error(self, raw, rid=None, contains=None):
        self.w.send_raw(raw)
        r = self.w.read_reply()
        self.assertIs(r["ok"], False, r)
        self.assertEqual(r["id"], rid)
        self.assertEqual(r["error"]["type"], "ProtocolError")
        if contains:
            self.assertIn(contains, r["error"]["message"])
        # still in sync
        self.assertEqual(self.w.call("echo", "sync"), "sync")

    def test_garbage_bytes(self):
        self.expect_protocol_error(hdr(5) + b"\xc1\xc1\xc1\xc1\xc1", contains="MessagePack")

    def test_truncated_value_inside_frame(self):
        self.expect_protocol_error(hdr(3) + b"\x93\x01\x02")

    def test_trailing_bytes_inside_frame(self):
        p = codec.encode({"id": 1, "cmd": "ping"})
        self.expect_protocol_error(hdr(len(p) + 1) + p + b"\xc0", contains="trailing")

    def test_ext_type(self):
        self.expect_protocol_error(hdr(3) + b"\xd4\x01\x01", contains="extension type")

    def test_non_str_key(self):
        self.expect_protocol_error(hdr(3) + b"\x81\x01\x02")

    def test_not_a_map(self):
        self.expect_protocol_error(frame([1, 2, 3]), contains="must be a map, got array")
        self.expect_protocol_error(frame("ping"), contains="must be a map, got str")

    def test_missing_or_bad_id(self):
        self.expect_protocol_error(frame({"cmd": "ping"}), contains="'id'")
        self.expect_protocol_error(frame({"id": "1", "cmd": "ping"}), contains="got a str")
        self.expect_protocol_error(frame({"id": True, "cmd": "ping"}), contains="got a bool")
        self.expect_protocol_error(frame({"id": 1.0, "cmd": "ping"}), contains="float")

    def test_missing_or_bad_cmd_keeps_id(self):
        self.expect_protocol_error(frame({"id": 12}), rid=12, contains="'cmd'")
        self.expect_protocol_error(frame({"id": 13, "cmd": 5}), rid=13, contains="'cmd'")

    def test_bad_session(self):
        self.expect_protocol_error(frame({"id": 14, "cmd": "ping", "session": 3}), rid=14,
                                   contains="'session'")

    def test_empty_frame(self):
        self.expect_protocol_error(hdr(0))

    def test_many_bad_frames_in_one_write(self):
        raw = (hdr(1) + b"\xc1") + frame({"cmd": "x"}) + frame({"id": 1, "cmd": "echo",
                                                                "args": "ok"})
        self.w.send_raw(raw)
        a, b, c = self.w.read_reply(), self.w.read_reply(), self.w.read_reply()
        self.assertEqual((a["ok"], b["ok"], c["ok"]), (False, False, True))
        self.assertEqual(c["result"], "ok")

    def test_oversized_header_exits_4(self):
        self.w.send_raw(hdr(0xFFFFFFF0))
        r = self.w.read_reply()
        self.assertEqual(r["id"], None)
        self.assertEqual(r["error"]["type"], "ProtocolError")
        self.assertIn(str(0xFFFFFFF0), r["error"]["message"])
        self.assertIn(str(64 * 1024 * 1024), r["error"]["message"])
        self.assertEqual(self.w.wait(5), 4)

    def test_configured_max_frame_bytes(self):
        w = self.spawn(handlers=[ECHO_HANDLERS], extra_args=["--max-frame-bytes", "1000"])
        self.assertEqual(w.ready["max_frame_bytes"], 1000)
        self.assertEqual(w.call("echo", "x" * 900), "x" * 900)
        # a reply over the max is refused, not sent
        e = w.error("blob", {"size": 1001})
        self.assertEqual(e["type"], "SerializationError")
        self.assertIn("1000", e["message"])
        w.send_raw(hdr(1001) + b"\x00" * 1001)
        r = w.read_reply()
        self.assertIn("1001", r["error"]["message"])
        self.assertIn("1000", r["error"]["message"])
        self.assertEqual(w.wait(5), 4)

    def test_truncated_frame_at_eof_exits(self):
        self.w.send_raw(hdr(100) + b"abc")
        self.w.close_stdin()
        self.assertEqual(self.w.wait(5), 4)
        self.assertIn("stream ended inside a frame", self.w.stderr_after_exit())


class TestLifecycle(WorkerTestCase):
    def test_stdin_eof_exits_fast(self):
        w = self.spawn(handlers=[ECHO_HANDLERS])
        w.call("ping")
        t = time.monotonic()
        w.close_stdin()
        self.assertEqual(w.wait(5), 0)
        self.assertLess(time.monotonic() - t, 1.0)

    def test_stdin_eof_exits_despite_user_threads(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "threads.py")
            with open(p, "w") as f:
                f.write("import threading, time\nfrom pyvisor import command\n"
                        "@command('spawn_thread')\n"
                        "def spawn_thread(args, ctx):\n"
                        "    threading.Thread(target=time.sleep, args=(60,)).start()\n"
                        "    return True\n")
            w = self.spawn(handlers=[p])
            w.call("spawn_thread")
            t = time.monotonic()
            w.close_stdin()
            self.assertEqual(w.wait(5), 0)
            self.assertLess(time.monotonic() - t, 1.0)

    def test_does_not_spin_while_idle(self):
        w = self.spawn(handlers=[ECHO_HANDLERS])
        with open("/proc/%d/stat" % w.pid) as f:
            f1 = f.read().rsplit(")", 1)[1].split()
        time.sleep(1.0)
        with open("/proc/%d/stat" % w.pid) as f:
            f2 = f.read().rsplit(")", 1)[1].split()
        ticks = (int(f2[11]) + int(f2[12])) - (int(f1[11]) + int(f1[12]))
        self.assertLessEqual(ticks, 2, "worker used CPU while idle")

    def test_sigterm_idle(self):
        w = self.spawn(handlers=[ECHO_HANDLERS])
        w.call("ping")
        t = time.monotonic()
        w.signal(signal.SIGTERM)
        self.assertEqual(w.wait(5), 0)
        self.assertLess(time.monotonic() - t, 1.0)

    def test_sigterm_during_command_finishes_it(self):
        w = self.spawn(handlers=[ECHO_HANDLERS])
        w.send({"id": 1, "cmd": "sleep", "args": {"seconds": 0.6, "announce": True}, "session": None})
        self.assertEqual(w.read_msg()["message"], "sleeping")  # the command is running
        w.signal(signal.SIGTERM)
        r = w.read_reply(timeout=5)
        self.assertEqual(r, {"id": 1, "ok": True, "result": {"slept": 0.6}})
        self.assertEqual(w.wait(5), 0)

    def test_sigint_during_command(self):
        w = self.spawn(handlers=[ECHO_HANDLERS])
        w.send({"id": 1, "cmd": "sleep", "args": {"seconds": 5, "announce": True}, "session": None})
        self.assertEqual(w.read_msg()["message"], "sleeping")  # the command is running
        t = time.monotonic()
        w.signal(signal.SIGINT)
        r = w.read_reply(timeout=5)
        self.assertLess(time.monotonic() - t, 2)
        self.assertIs(r["ok"], False)
        self.assertEqual(r["id"], 1)
        self.assertEqual(r["error"]["type"], "KeyboardInterrupt")
        self.assertTrue(r["error"]["message"])
        self.assertIs(w.call("ping")["pong"], True)
        self.assertIsNone(w.proc.poll())

    def test_sigint_idle_ignored(self):
        w = self.spawn(handlers=[ECHO_HANDLERS])
        w.signal(signal.SIGINT)
        time.sleep(0.2)
        w.signal(signal.SIGINT)
        self.assertIs(w.call("ping")["pong"], True)
        self.assertEqual(w.call("get_stats")["errors"], 0)
        self.assertIsNone(w.proc.poll())

    def test_sigkill(self):
        w = self.spawn(handlers=[ECHO_HANDLERS])
        w.signal(signal.SIGKILL)
        self.assertEqual(w.wait(5), -signal.SIGKILL)

    def test_ignore_sigterm_handler(self):
        w = self.spawn(handlers=[ECHO_HANDLERS])
        w.call("ignore_sigterm")
        w.signal(signal.SIGTERM)
        # Still serving after the SIGTERM it ignored: the round trip proves it, no delay guessed.
        self.assertIs(w.call("ping")["pong"], True)
        self.assertIsNone(w.proc.poll())

    @unittest.skipUnless(sys.platform.startswith("linux"), "PR_SET_PDEATHSIG is Linux-only")
    def test_dies_with_parent(self):
        # The worker's stdin stays open (this test holds the write end), so
        # only the parent-death signal can end it.
        rfd, wfd = os.pipe()
        launcher = textwrap.dedent("""
            import subprocess, sys, time
            p = subprocess.Popen([sys.executable, %r, "--mode", "pool-worker",
                                  "--worker-id", "orphan"], stdin=%d, stdout=subprocess.DEVNULL,
                                 pass_fds=(%d,))
            print(p.pid, flush=True)
            time.sleep(60)
        """ % (helpers.BRIDGE, rfd, rfd))
        parent = subprocess.Popen([sys.executable, "-c", launcher], stdout=subprocess.PIPE,
                                  pass_fds=(rfd,))
        self.track_pid(parent.pid)
        try:
            child_pid = int(parent.stdout.readline())
            self.track_pid(child_pid)
            time.sleep(0.5)  # let it reach the loop
            self.assertTrue(pid_alive(child_pid))
            parent.kill()
            parent.wait(5)
            self.assertTrue(wait_dead(child_pid, 3), "worker outlived its parent")
        finally:
            os.close(rfd)
            os.close(wfd)
            parent.stdout.close()

    @unittest.skipUnless(sys.platform.startswith("linux"), "PR_SET_PDEATHSIG is Linux-only")
    def test_dies_with_parent_while_spinning_with_sigterm_ignored(self):
        # PDEATHSIG is SIGKILL: a handler that ignores SIGTERM and never returns
        # dies with its parent all the same.
        launcher = textwrap.dedent('''
            import subprocess, sys, time, struct
            sys.path.insert(0, %r)
            from pyvisor import codec
            p = subprocess.Popen([sys.executable, %r, "--mode", "pool-worker", "--worker-id", "spinner",
                                  "--handlers", %r], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            hdr = p.stdout.read(4); p.stdout.read(struct.unpack(">I", hdr)[0])  # the ready notice
            body = codec.CODEC.encode({"id": 1, "cmd": "spin", "args": None, "session": None})
            p.stdin.write(struct.pack(">I", len(body)) + body); p.stdin.flush()
            print(p.pid, flush=True)
            time.sleep(60)
        ''' % (helpers.PY_DIR, helpers.BRIDGE, helpers.ECHO_HANDLERS))
        parent = subprocess.Popen([sys.executable, "-c", launcher], stdout=subprocess.PIPE)
        self.track_pid(parent.pid)
        try:
            child_pid = int(parent.stdout.readline())
            self.track_pid(child_pid)
            self.assertTrue(helpers.wait_spinning(child_pid, 5), "the handler never started spinning")
            parent.kill()
            parent.wait(5)
            self.assertTrue(wait_dead(child_pid, 2), "a spinning worker outlived its parent")
        finally:
            parent.stdout.close()


if __name__ == "__main__":
    unittest.main()
