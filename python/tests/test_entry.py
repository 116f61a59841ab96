"""The generic entry, ``python3 -m pyvisor``: built-ins plus the given handlers
only, the same flags, frames and exit codes as the DSPy preset."""

import os
import subprocess
import sys
import tempfile
import unittest

from . import helpers
from .helpers import GENERIC, PY_DIR, ECHO_HANDLERS, WorkerTestCase
from pyvisor import codec

BUILTINS = ["cleanup_session", "get_stats", "ping", "shutdown"]


class TestGenericEntry(WorkerTestCase):
    def spawn_generic(self, **kw):
        kw.setdefault("mode", None)
        return self.spawn(script=GENERIC, cwd=PY_DIR, **kw)

    def test_ready_notice_lists_only_the_builtins(self):
        w = self.spawn_generic(worker_id="gen_1")
        r = w.ready
        self.assertEqual(r["event"], "ready")
        self.assertEqual(r["worker_id"], "gen_1")
        self.assertEqual(r["pid"], w.pid)
        self.assertEqual(r["python"], "%d.%d.%d" % sys.version_info[:3])
        self.assertEqual(r["codec"], codec.NAME)
        self.assertEqual(r["mode"], "pool-worker")  # the default without --mode
        self.assertEqual(r["max_frame_bytes"], 64 * 1024 * 1024)
        self.assertEqual(r["commands"], BUILTINS)  # no DSPy commands

    def test_ping(self):
        w = self.spawn_generic(worker_id="gen_2")
        r = w.call("ping")
        self.assertIs(r["pong"], True)
        self.assertEqual((r["worker_id"], r["pid"], r["mode"]), ("gen_2", w.pid, "pool-worker"))
        self.assertEqual(w.error("execute_program", {}, session="s")["type"], "UnknownCommand")

    def test_handler_file(self):
        w = self.spawn_generic(handlers=[ECHO_HANDLERS])
        self.assertIn("echo", w.ready["commands"])
        self.assertNotIn("configure_lm", w.ready["commands"])
        self.assertEqual(w.call("echo", {"a": [1, b"\x00"]}), {"a": [1, b"\x00"]})
        # print() in a handler goes to stderr; the frame stream is intact
        self.assertEqual(w.call("print_noise"), {"ok": True})
        self.assertEqual(w.call("echo", "after"), "after")
        self.assertEqual(w.call("shutdown"), {"shutting_down": True})
        self.assertEqual(w.wait(5), 0)

    def test_handler_module_and_flags(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "pv_generic_mod.py"), "w") as f:
                f.write("from pyvisor import command\n"
                        "@command('mode_of')\n"
                        "def mode_of(args, ctx):\n    return ctx.mode\n")
            w = self.spawn_generic(mode="standalone", handlers=["pv_generic_mod"],
                                   extra_args=["--max-frame-bytes", "4096"],
                                   env={"PYTHONPATH": d})
            self.assertEqual(w.ready["max_frame_bytes"], 4096)
            self.assertEqual(w.call("mode_of"), "standalone")

    def test_exit_codes(self):
        def run(*args):
            p = subprocess.Popen([sys.executable, "-m", "pyvisor"] + list(args), cwd=PY_DIR,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            self.track_pid(p.pid)
            out, err = p.communicate(timeout=15)
            return p.returncode, out, err.decode()

        code, out, err = run("--bogus")
        self.assertEqual(code, 2)
        self.assertIn("unknown argument", err)
        self.assertIn("usage: python3 -m pyvisor", err)
        self.assertEqual(out, b"", "nothing may reach the protocol stream")
        code, out, err = run("--worker-id", "x", "--handlers",
                        os.path.join(helpers.HANDLERS_DIR, "import_error.py"))
        self.assertEqual(code, 3)
        self.assertIn("RuntimeError: handlers failed on purpose during import", err)
        self.assertEqual(out, b"", "nothing may reach the protocol stream")
        code, out, err = run("--worker-id", "x")  # stdin ends right away
        self.assertEqual(code, 0)
        # stdout holds exactly one frame: the ready notice
        self.assertEqual(int.from_bytes(out[:4], "big"), len(out) - 4)
        self.assertEqual(codec.decode(out[4:])["event"], "ready")


if __name__ == "__main__":
    unittest.main()
