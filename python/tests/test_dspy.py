"""DSPy commands through a real worker: namespaces, validation, dummy LM,
the OpenAI-compatible backend against a local HTTP server, cleanup."""

import http.server
import json
import os
import socket
import threading
import time
import unittest

from . import helpers
from .helpers import WorkerTestCase
from pyvisor import lm as lm_mod

try:
    import dspy  # noqa: F401
    HAVE_DSPY = True
except Exception:
    HAVE_DSPY = False

# The built-in runner is what these tests pin down; real dspy has tests/test_dspy_real.py.
BUILTIN_ENV = {"PYVISOR_DSPY": "off"}

QA = {"inputs": [{"name": "question", "description": "a question"}],
      "outputs": [{"name": "answer"}]}


def stream_request(w, cmd, args, session=None, window=64, timeout=30):
    """Send ``cmd`` as a stream request (``stream: window``), acknowledge every
    chunk; return ``(chunks, final reply)``."""
    rid = w._next_id
    w._next_id += 1
    w.send({"id": rid, "cmd": cmd, "args": args, "session": session, "stream": window})
    chunks = []
    while True:
        msg = w.read_reply(timeout)
        assert msg.get("id") == rid, "frame for id %r while streaming %r: %r" % (
            msg.get("id"), rid, msg)
        if "chunk" in msg and "ok" not in msg:
            chunks.append(msg["chunk"])
            w.send({"id": rid, "ack": len(chunks)})
            continue
        return chunks, msg


def field_texts(chunks):
    """The field chunks of a stream_program run joined per field, in order of appearance."""
    out = {}
    for c in chunks:
        if c.get("type") == "field":
            out[c["field"]] = out.get(c["field"], "") + c["text"]
    return out


class FakeOpenAI(object):
    """A local chat-completions server; the URL path picks the behavior:
    /ok/v1, /usage/v1 (reports token usage), /401/v1, /429/v1 (Retry-After: 7),
    /500/v1, /malformed/v1, /text/v1, /slow/v1."""

    def __init__(self):
        self.requests = []
        self.reply_content = None
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                mode = self.path.strip("/").split("/")[0]
                outer.requests.append({"path": self.path, "headers": dict(self.headers),
                                       "body": json.loads(body)})
                if mode == "401":
                    return self._send(401, b'{"error": {"message": "Incorrect API key provided"}}')
                if mode == "429":
                    return self._send(429, b'{"error": {"message": "Rate limit reached"}}',
                                      {"Retry-After": "7"})
                if mode == "500":
                    return self._send(500, b"upstream exploded")
                if mode == "malformed":
                    return self._send(200, b'{"choices": [ {"message": ')
                if mode == "slow":
                    time.sleep(1.5)
                if mode == "text":
                    content = "Elixir is a functional language."
                elif outer.reply_content is not None:
                    content = outer.reply_content
                else:
                    req = json.loads(body)
                    keys = json.loads(req["messages"][0]["content"].rsplit(
                        "keys are exactly: ", 1)[1].rstrip(".").join("[]"))
                    content = "```json\n" + json.dumps(
                        {k: "%s from fake" % k for k in keys}) + "\n```"
                payload = {"id": "cmpl-1", "object": "chat.completion",
                           "choices": [{"index": 0, "message": {"role": "assistant",
                                                                "content": content}}]}
                if mode == "usage":
                    payload["usage"] = {"prompt_tokens": 11, "completion_tokens": 7,
                                        "total_tokens": 18, "is_byok": False}
                try:
                    self._send(200, json.dumps(payload).encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _send(self, code, data, headers=None):
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, mode):
        return "http://127.0.0.1:%d/%s/v1" % (self.port, mode)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class DspyPoolCase(WorkerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = cls.spawn_class(mode="pool-worker", worker_id="dspy_w", env=BUILTIN_ENV)

    def setUp(self):
        super().setUp()
        self.sid = "s_%s" % self._testMethodName

    def tearDown(self):
        super().tearDown()
        self.w.call("cleanup_session", {"session_id": self.sid})

    def call(self, cmd, args=None, session="__default__"):
        return self.w.call(cmd, {} if args is None else args,
                           session=self.sid if session == "__default__" else session)

    def err(self, cmd, args=None, session="__default__"):
        return self.w.error(cmd, {} if args is None else args,
                            session=self.sid if session == "__default__" else session)


class TestPoolWorkerNamespaces(DspyPoolCase):
    def test_session_required(self):
        for cmd, args in [("configure_lm", {"provider": "dummy"}),
                          ("create_program", {"signature": QA}),
                          ("execute_program", {"program_id": "x", "inputs": {}}),
                          ("list_programs", {}), ("delete_program", {"program_id": "x"}),
                          ("get_program_info", {"program_id": "x"})]:
            e = self.w.error(cmd, args, session=None)
            self.assertEqual(e["type"], "SessionRequiredError", cmd)
            self.assertIn("session_id required in pool-worker mode", e["message"])
            self.assertTrue(e["message"].startswith(cmd + ":"))

    def test_full_cycle(self):
        r = self.call("create_program", {"id": "qa", "signature": QA})
        self.assertEqual(r, {"program_id": "qa", "type": "predict", "signature": {
            "inputs": [{"name": "question", "description": "a question"}],
            "outputs": [{"name": "answer", "description": ""}], "instructions": ""}})
        r = self.call("execute_program", {"program_id": "qa",
                                          "inputs": {"question": "What is Elixir?"}})
        self.assertEqual(r, {"program_id": "qa",
                             "outputs": {"answer": "dummy answer to: What is Elixir?"},
                             "provider": "dummy", "model": "dummy"})
        self.assertEqual(self.call("list_programs"),
                         {"programs": [{"program_id": "qa", "type": "predict"}]})
        info = self.call("get_program_info", {"program_id": "qa"})
        self.assertEqual(info["executions"], 1)
        self.assertEqual(info["type"], "predict")
        self.assertEqual(info["engine"], "builtin")
        self.assertAlmostEqual(info["created_at"], time.time(), delta=60)
        self.assertEqual(self.call("delete_program", {"program_id": "qa"}), {"deleted": "qa"})
        self.assertEqual(self.call("list_programs"), {"programs": []})

    def test_session_isolation(self):
        self.call("create_program", {"id": "qa", "signature": QA}, session="iso_a")
        try:
            e = self.err("execute_program", {"program_id": "qa", "inputs": {"question": "q"}},
                         session="iso_b")
            self.assertEqual(e["type"], "ProgramNotFoundError")
            self.assertEqual(e["message"], "Program 'qa' not found in session 'iso_b'")
            self.assertEqual(self.call("list_programs", session="iso_b"), {"programs": []})
            # same id may exist independently in another session
            self.call("create_program", {"id": "qa", "type": "chain_of_thought",
                                         "signature": QA}, session="iso_b")
            self.assertEqual(self.call("get_program_info", {"program_id": "qa"},
                                       session="iso_a")["type"], "predict")
            self.call("configure_lm", {"provider": "dummy", "model": "m-a",
                                       "answers": [{"answer": "A"}]}, session="iso_a")
            ra = self.call("execute_program", {"program_id": "qa", "inputs": {"question": "q"}},
                           session="iso_a")
            rb = self.call("execute_program", {"program_id": "qa", "inputs": {"question": "q"}},
                           session="iso_b")
            self.assertEqual((ra["model"], ra["outputs"]["answer"]), ("m-a", "A"))
            self.assertEqual((rb["model"], rb["outputs"]["answer"]),
                             ("dummy", "dummy answer to: q"))
        finally:
            for s in ("iso_a", "iso_b"):
                self.w.call("cleanup_session", {"session_id": s})

    def test_cleanup_frees_programs(self):
        base = self.w.call("get_stats")["programs"]
        for i in range(3):
            self.call("create_program", {"id": "p%d" % i, "signature": QA})
        self.call("configure_lm", {"provider": "dummy"})
        self.assertEqual(self.w.call("get_stats")["programs"], base + 3)
        r = self.w.call("cleanup_session", {"session_id": self.sid})
        self.assertEqual(r, {"session_id": self.sid, "existed": True, "freed_programs": 3,
                             "freed_keys": 0})
        self.assertEqual(self.w.call("get_stats")["programs"], base)
        self.assertNotIn(self.sid, self.w.call("get_stats")["session_ids"])
        e = self.err("execute_program", {"program_id": "p0", "inputs": {"question": "q"}})
        self.assertEqual(e["type"], "ProgramNotFoundError")

    def test_generated_ids(self):
        a = self.call("create_program", {"signature": QA})["program_id"]
        b = self.call("create_program", {"signature": QA})["program_id"]
        self.assertNotEqual(a, b)
        self.assertTrue(a.startswith("program_"))
        self.assertEqual(len(self.call("list_programs")["programs"]), 2)


class TestValidation(DspyPoolCase):
    def assert_error(self, cmd, args, message, etype="ValueError"):
        e = self.err(cmd, args)
        self.assertEqual(e["type"], etype, e)
        self.assertEqual(e["message"], message)

    def test_create_program_errors(self):
        c = "create_program"
        self.assert_error(c, {}, "create_program: signature is required")
        self.assert_error(c, {"signature": "q -> a"},
                          "create_program: signature must be a map with inputs and outputs, got str")
        self.assert_error(c, {"signature": {"outputs": [{"name": "a"}]}},
                          "create_program: signature.inputs must be a non-empty list of fields, "
                          "got nothing")
        self.assert_error(c, {"signature": {"inputs": [], "outputs": [{"name": "a"}]}},
                          "create_program: signature.inputs must be a non-empty list of fields, "
                          "got []")
        self.assert_error(c, {"signature": {"inputs": [{"name": "q"}], "outputs": {}}},
                          "create_program: signature.outputs must be a non-empty list of "
                          "fields, got {}")
        self.assert_error(c, {"signature": {"inputs": [{"name": "q"}],
                                            "outputs": [{"description": "x"}]}},
                          "create_program: signature.outputs[0].name must be a non-empty "
                          "string, got None")
        self.assert_error(c, {"signature": {"inputs": [{"name": "q"}, {"name": 5}],
                                            "outputs": [{"name": "a"}]}},
                          "create_program: signature.inputs[1].name must be a non-empty "
                          "string, got 5")
        self.assert_error(c, {"signature": {"inputs": [{"name": "q"}], "outputs": [{"name": "q"}]}},
                          "create_program: duplicate field name 'q' (signature.inputs[0] and "
                          "signature.outputs[0])")
        self.assert_error(c, {"signature": {"inputs": [{"name": "a b"}],
                                            "outputs": [{"name": "x"}]}},
                          "create_program: signature.inputs[0].name 'a b' must be an identifier "
                          "not starting with '_'")
        self.assert_error(c, {"type": "react", "signature": QA},
                          "create_program: unknown type 'react' (expected 'predict' or "
                          "'chain_of_thought')")
        self.assert_error(c, {"type": "chain_of_thought",
                              "signature": {"inputs": [{"name": "q"}],
                                            "outputs": [{"name": "reasoning"}]}},
                          "create_program: signature.outputs[0].name 'reasoning' is reserved "
                          "for chain_of_thought's own reasoning output")
        self.assert_error(c, {"id": 5, "signature": QA},
                          "create_program: id must be a non-empty string, got 5")
        self.call(c, {"id": "dup", "signature": QA})
        self.assert_error(c, {"id": "dup", "signature": QA},
                          "create_program: program 'dup' already exists in session '%s'"
                          % self.sid)
        self.assert_error(c, "nope", "create_program: args must be a map, got str")

    def test_execute_program_errors(self):
        self.call("create_program", {"id": "two", "signature": {
            "inputs": [{"name": "question"}, {"name": "context"}],
            "outputs": [{"name": "answer"}]}})
        e = "execute_program"
        self.assert_error(e, {"program_id": "two", "inputs": {"question": "q"}},
                          "execute_program: missing input(s) 'context' for program 'two' "
                          "(expects: question, context)")
        self.assert_error(e, {"program_id": "two",
                              "inputs": {"question": "q", "context": "c", "extra": 1}},
                          "execute_program: unknown input(s) 'extra' for program 'two' "
                          "(expects: question, context)")
        self.assert_error(e, {"program_id": "two", "inputs": {"qestion": "q"}},
                          "execute_program: missing input(s) 'question', 'context'; unknown "
                          "input(s) 'qestion' for program 'two' (expects: question, context)")
        self.assert_error(e, {"program_id": "two", "inputs": [1]},
                          "execute_program: inputs must be a map, got list")
        self.assert_error(e, {"program_id": "nope", "inputs": {}},
                          "Program 'nope' not found in session '%s'" % self.sid,
                          "ProgramNotFoundError")
        self.assert_error(e, {"inputs": {}},
                          "execute_program: program_id must be a non-empty string, got None")

    def test_delete_and_info_unknown(self):
        self.assert_error("delete_program", {"program_id": "ghost"},
                          "Program 'ghost' not found in session '%s'" % self.sid,
                          "ProgramNotFoundError")
        self.assert_error("get_program_info", {"program_id": "ghost"},
                          "Program 'ghost' not found in session '%s'" % self.sid,
                          "ProgramNotFoundError")

    def test_configure_lm_errors(self):
        c = "configure_lm"
        self.assert_error(c, {}, "configure_lm: provider must be one of 'dummy', 'openai', "
                                 "got None")
        self.assert_error(c, {"provider": "anthropic"},
                          "configure_lm: provider must be one of 'dummy', 'openai', got "
                          "'anthropic'")
        self.assert_error(c, {"provider": "dummy", "answers": "x"},
                          "configure_lm: answers must be a map (input value -> outputs) or a "
                          "list of outputs maps, got str")
        self.assert_error(c, {"provider": "dummy", "answers": [{"a": 1}, 2]},
                          "configure_lm: answers[1] must be a map of output values, got int")
        self.assert_error(c, {"provider": "dummy", "answers": []},
                          "configure_lm: answers must not be an empty list")
        self.assert_error(c, {"provider": "openai", "api_key_env": "PYVISOR_TEST_NO_SUCH_KEY"},
                          "configure_lm: no API key for https://api.openai.com/v1: set "
                          "PYVISOR_TEST_NO_SUCH_KEY or pass api_key")
        self.assert_error(c, {"provider": "openai", "base_url": "ftp://x", "api_key": "k"},
                          "configure_lm: base_url must be an http(s) URL, got 'ftp://x'")
        self.assert_error(c, {"provider": "openai", "base_url": "http://h", "timeout_s": 0},
                          "configure_lm: timeout_s must be > 0, got 0.0")
        self.assert_error(c, {"provider": "openai", "base_url": "http://h", "max_tokens": 1.5},
                          "configure_lm: max_tokens must be an integer, got 1.5")
        self.assert_error(c, {"provider": "openai", "base_url": "http://h", "cache": "yes"},
                          "configure_lm: cache must be true or false, got 'yes'")
        self.assert_error(c, {"provider": "openai", "base_url": "http://h", "num_retries": -1},
                          "configure_lm: num_retries must be >= 0, got -1")
        self.assert_error(c, {"provider": "dummy", "num_retries": 1.5},
                          "configure_lm: num_retries must be an integer, got 1.5")

    def test_reserved_field_names(self):
        def check(part, name, reason):
            sig = {"inputs": [{"name": "q"}], "outputs": [{"name": "a"}]}
            sig[part] = [{"name": name}]
            self.assert_error("create_program", {"signature": sig},
                              "create_program: signature.%s[0].name '%s' is reserved: %s"
                              % (part, name, reason))
        for name in ("lm", "config", "demos", "signature", "new_signature"):
            reason = "dspy.Predict takes '%s' as its own keyword argument" % name
            check("inputs", name, reason)
            check("outputs", name, reason)
        for name in ("self", "completions"):
            check("inputs", name, "dspy.Predict's call has a parameter of that name")
        for name in ("instructions", "fields", "json", "copy", "schema", "validate", "dict"):
            check("inputs", name, "it names an attribute of dspy.Signature (a pydantic model)")
            check("outputs", name, "it names an attribute of dspy.Signature (a pydantic model)")
        check("outputs", "model_config", "names starting with 'model_' are pydantic's")
        # names a Prediction has methods for are fine (outputs are read with pred[name])
        self.call("create_program", {"signature": {"inputs": ["items", "text"],
                                                   "outputs": ["keys", "values", "rationale"]}})


class TestDummyLM(DspyPoolCase):
    def test_deterministic(self):
        self.call("create_program", {"id": "qa", "signature": QA})
        outs = [self.call("execute_program", {"program_id": "qa",
                                              "inputs": {"question": "same"}})["outputs"]
                for _ in range(3)]
        self.assertEqual(outs, [{"answer": "dummy answer to: same"}] * 3)

    def test_multi_field_derivation(self):
        self.call("create_program", {"id": "m", "signature": {
            "inputs": [{"name": "question"}, {"name": "context"}],
            "outputs": [{"name": "answer"}, {"name": "confidence"}]}})
        r = self.call("execute_program", {"program_id": "m",
                                          "inputs": {"question": "Q?", "context": [1, 2]}})
        self.assertEqual(r["outputs"], {"answer": "dummy answer to: Q? | [1, 2]",
                                        "confidence": "dummy confidence to: Q? | [1, 2]"})

    def test_chain_of_thought_reasoning(self):
        self.call("create_program", {"id": "cot", "type": "chain_of_thought", "signature": QA})
        r = self.call("execute_program", {"program_id": "cot",
                                          "inputs": {"question": "Why?"}})
        self.assertEqual(list(r["outputs"]), ["reasoning", "answer"])
        self.assertEqual(r["outputs"], {"reasoning": "dummy reasoning about: Why?",
                                        "answer": "dummy answer to: Why?"})

    def test_answers_dict(self):
        self.call("configure_lm", {"provider": "dummy", "model": "fixture", "answers": {
            "What is Elixir?": {"answer": "A functional language", "reasoning": "I know it"},
            "*": {"answer": "fallback"}}})
        self.call("create_program", {"id": "cot", "type": "chain_of_thought", "signature": QA})
        r = self.call("execute_program", {"program_id": "cot",
                                          "inputs": {"question": "What is Elixir?"}})
        self.assertEqual(r["outputs"], {"reasoning": "I know it",
                                        "answer": "A functional language"})
        self.assertEqual(r["model"], "fixture")
        r = self.call("execute_program", {"program_id": "cot", "inputs": {"question": "other"}})
        self.assertEqual(r["outputs"]["answer"], "fallback")

    def test_answers_list_rotation(self):
        r = self.call("configure_lm", {"provider": "dummy", "answers": [
            {"answer": "one"}, {"answer": "two"}]})
        self.assertEqual(r, {"configured": True, "provider": "dummy", "model": "dummy"})
        self.call("create_program", {"id": "qa", "signature": QA})
        got = [self.call("execute_program", {"program_id": "qa", "inputs": {"question": "x"}})
               ["outputs"]["answer"] for _ in range(5)]
        self.assertEqual(got, ["one", "two", "one", "two", "one"])


class TestRestore(DspyPoolCase):
    """The optional ``restore`` argument of execute_program, get_program_info and
    delete_program: one call that works on a worker that lacks the program."""

    LM = {"provider": "dummy", "model": "table", "answers": {"*": {"answer": "from the table"}}}
    PROG = {"id": "qa", "signature": QA}

    def execute(self, question="q", restore=None, program_id="qa"):
        args = {"program_id": program_id, "inputs": {"question": question}}
        if restore is not None:
            args["restore"] = restore
        return self.call("execute_program", args)

    def test_missing_program_restored_in_one_call(self):
        base = self.w.call("get_stats")["programs"]
        r = self.execute(restore={"lm": self.LM, "program": self.PROG})
        self.assertEqual(r, {"program_id": "qa", "outputs": {"answer": "from the table"},
                             "provider": "dummy", "model": "table", "restored": True})
        self.assertEqual(self.w.call("get_stats")["programs"], base + 1)
        self.assertEqual(self.call("list_programs"),
                         {"programs": [{"program_id": "qa", "type": "predict"}]})
        # Now the worker has both: nothing to restore, the result says so.
        r = self.execute(restore={"lm": self.LM, "program": self.PROG})
        self.assertIs(r["restored"], False)
        self.assertEqual(r["outputs"], {"answer": "from the table"})
        info = self.call("get_program_info", {"program_id": "qa",
                                              "restore": {"program": self.PROG}})
        self.assertEqual((info["executions"], info["restored"]), (2, False))
        # Without restore the result has no "restored" key (unchanged shape).
        self.assertNotIn("restored", self.execute())

    def test_info_and_delete_restore_too(self):
        info = self.call("get_program_info", {"program_id": "cot", "restore": {"program": {
            "type": "chain_of_thought", "signature": QA}}})
        self.assertEqual((info["program_id"], info["type"], info["executions"],
                          info["restored"]), ("cot", "chain_of_thought", 0, True))
        r = self.call("delete_program", {"program_id": "gone",
                                         "restore": {"program": {"signature": QA}}})
        self.assertEqual(r, {"deleted": "gone", "restored": True})
        r = self.call("delete_program", {"program_id": "cot", "restore": {"program": {
            "type": "chain_of_thought", "signature": QA}}})
        self.assertEqual(r, {"deleted": "cot", "restored": False})
        self.assertEqual(self.call("list_programs"), {"programs": []})

    def test_without_restore_still_not_found(self):
        self.execute(restore={"program": self.PROG})
        self.call("cleanup_session", {"session_id": self.sid})
        e = self.err("execute_program", {"program_id": "qa", "inputs": {"question": "q"}})
        self.assertEqual(e["type"], "ProgramNotFoundError")
        self.assertEqual(e["message"], "Program 'qa' not found in session '%s'" % self.sid)

    def test_different_lm_replaced(self):
        self.call("configure_lm", {"provider": "dummy", "model": "old",
                                   "answers": {"*": {"answer": "old"}}})
        self.call("create_program", self.PROG)
        r = self.execute(restore={"lm": self.LM, "program": self.PROG})
        self.assertEqual((r["model"], r["outputs"]["answer"], r["restored"]),
                         ("table", "from the table", True))
        # The new LM is the session's now, with or without restore.
        self.assertEqual(self.execute()["outputs"]["answer"], "from the table")
        self.assertIs(self.execute(restore={"lm": self.LM, "program": self.PROG})["restored"],
                      False)
        # No restore.lm: the session's LM is left as it is.
        r = self.execute(restore={"program": self.PROG})
        self.assertEqual((r["model"], r["restored"]), ("table", False))

    def test_lm_kept_when_equal(self):
        # Rotation state shows whether the LM object was rebuilt.
        lm = {"provider": "dummy", "answers": [{"answer": "one"}, {"answer": "two"}]}
        self.assertEqual(self.call("configure_lm", lm),
                         {"configured": True, "provider": "dummy", "model": "dummy"})
        self.call("create_program", self.PROG)
        self.assertEqual(self.execute()["outputs"]["answer"], "one")
        # configure_lm with the same configuration is a no-op...
        self.assertEqual(self.call("configure_lm", dict(lm)),
                         {"configured": True, "provider": "dummy", "model": "dummy"})
        self.assertEqual(self.execute()["outputs"]["answer"], "two")
        # ...and so is a restore carrying it.
        r = self.execute(restore={"lm": lm, "program": self.PROG})
        self.assertEqual((r["outputs"]["answer"], r["restored"]), ("one", False))
        # A different configuration is rebuilt (the rotation starts again).
        self.call("configure_lm", dict(lm, model="other"))
        self.assertEqual(self.execute()["outputs"]["answer"], "one")

    def test_stale_copy_replaced_by_the_spec(self):
        self.call("create_program", {"id": "qa", "signature": QA})
        topic = {"id": "qa", "signature": {"inputs": ["topic"], "outputs": ["answer"]}}
        r = self.call("execute_program", {"program_id": "qa", "inputs": {"topic": "t"},
                                          "restore": {"program": topic}})
        self.assertEqual((r["outputs"], r["restored"]), ({"answer": "dummy answer to: t"}, True))
        info = self.call("get_program_info", {"program_id": "qa"})
        self.assertEqual([f["name"] for f in info["signature"]["inputs"]], ["topic"])

    def test_bad_spec_gives_create_programs_error(self):
        bad_programs = [
            {},
            {"signature": "q -> a"},
            {"signature": {"inputs": [], "outputs": ["a"]}},
            {"signature": {"inputs": ["q"], "outputs": [{"description": "x"}]}},
            {"signature": {"inputs": ["a b"], "outputs": ["x"]}},
            {"signature": {"inputs": ["q"], "outputs": ["q"]}},
            {"type": "react", "signature": QA},
            {"type": "chain_of_thought", "signature": {"inputs": ["q"],
                                                       "outputs": ["reasoning"]}},
        ]
        for prog in bad_programs:
            want = self.err("create_program", dict(prog, id="qa"))
            for cmd, extra in [("execute_program", {"inputs": {"question": "q"}}),
                               ("get_program_info", {}), ("delete_program", {})]:
                got = self.err(cmd, dict(extra, program_id="qa", restore={"program": prog}))
                self.assertEqual((got["type"], got["message"]), (want["type"], want["message"]),
                                 (cmd, prog))
                self.assertTrue(got["message"].startswith("create_program: "), got)
        # A bad LM gives configure_lm's error, and a failing restore changes nothing.
        want = self.err("configure_lm", {"provider": "dummy", "answers": []})
        got = self.err("execute_program", {"program_id": "qa", "inputs": {"question": "q"},
                                           "restore": {"lm": {"provider": "dummy",
                                                              "answers": []},
                                                       "program": self.PROG}})
        self.assertEqual((got["type"], got["message"]), (want["type"], want["message"]))
        self.assertEqual(self.call("list_programs"), {"programs": []})

    def test_restore_shape_errors(self):
        def check(restore, message):
            e = self.err("execute_program", {"program_id": "qa", "inputs": {},
                                             "restore": restore})
            self.assertEqual((e["type"], e["message"]), ("ValueError", message))
        check("x", "execute_program: restore must be a map {lm?, program}, got str")
        check({}, "execute_program: restore.program must be a map of create_program args, "
                  "got nothing")
        check({"program": self.PROG, "lm": "dummy"},
              "execute_program: restore.lm must be a map of configure_lm args, got str")
        check({"program": self.PROG, "extra": 1},
              "execute_program: restore has unknown key(s) 'extra' (expected lm, program)")
        check({"program": {"id": "other", "signature": QA}},
              "execute_program: restore.program.id 'other' does not match program_id 'qa'")
        e = self.w.error("execute_program", {"program_id": "qa", "inputs": {},
                                             "restore": {"program": self.PROG}}, session=None)
        self.assertEqual(e["type"], "SessionRequiredError")

    def test_create_program_replace(self):
        self.call("create_program", self.PROG)
        e = self.err("create_program", self.PROG)
        self.assertIn("already exists", e["message"])
        r = self.call("create_program", {"id": "qa", "replace": True, "type": "chain_of_thought",
                                         "signature": QA})
        self.assertEqual(r["type"], "chain_of_thought")
        self.assertEqual(len(self.call("list_programs")["programs"]), 1)
        e = self.err("create_program", dict(self.PROG, replace="yes"))
        self.assertEqual(e["message"], "create_program: replace must be true or false, got 'yes'")


class TestStandalone(WorkerTestCase):
    def test_global_namespace(self):
        w = self.spawn(mode="standalone", env=BUILTIN_ENV)
        w.call("create_program", {"id": "qa", "signature": QA})
        # visible with or without a session: one shared namespace
        self.assertEqual(w.call("list_programs", {}, session="anything"),
                         {"programs": [{"program_id": "qa", "type": "predict"}]})
        r = w.call("execute_program", {"program_id": "qa", "inputs": {"question": "hi"}})
        self.assertEqual(r["outputs"], {"answer": "dummy answer to: hi"})
        e = w.error("get_program_info", {"program_id": "zz"})
        self.assertEqual(e["message"], "Program 'zz' not found in the standalone namespace")
        self.assertEqual(w.call("get_stats")["programs"], 1)
        self.assertEqual(w.call("cleanup_session", {"session_id": "anything"})["freed_programs"],
                         0)
        self.assertEqual(w.call("get_stats")["programs"], 1)


class TestOpenAIBackend(DspyPoolCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.srv = FakeOpenAI()

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()
        super().tearDownClass()

    def configure(self, mode, **extra):
        args = {"provider": "openai", "model": "gpt-test", "base_url": self.srv.url(mode),
                "api_key": "sk-test", "temperature": 0.2, "max_tokens": 64, "timeout_s": 5}
        args.update(extra)
        return self.call("configure_lm", args)

    def run_qa(self, ptype="predict", signature=QA, inputs=None):
        self.call("create_program", {"id": "p", "type": ptype, "signature": signature})
        return self.w.request("execute_program", {"program_id": "p", "inputs": inputs or {
            "question": "What is Elixir?"}}, session=self.sid)

    def test_success(self):
        self.assertEqual(self.configure("ok"),
                         {"configured": True, "provider": "openai", "model": "gpt-test"})
        n = len(self.srv.requests)
        r = self.run_qa()
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["result"], {"program_id": "p", "outputs": {"answer": "answer from fake"},
                                       "provider": "openai", "model": "gpt-test"})
        req = self.srv.requests[n]
        self.assertEqual(req["path"], "/ok/v1/chat/completions")
        self.assertEqual(req["headers"]["Authorization"], "Bearer sk-test")
        body = req["body"]
        self.assertEqual(body["model"], "gpt-test")
        self.assertEqual(body["temperature"], 0.2)
        self.assertEqual(body["max_tokens"], 64)
        self.assertEqual([m["role"] for m in body["messages"]], ["system", "user"])
        self.assertIn("What is Elixir?", body["messages"][1]["content"])
        self.assertIn("answer", body["messages"][0]["content"])
        self.assertIn("a question", body["messages"][0]["content"])

    def test_chain_of_thought(self):
        self.configure("ok")
        r = self.run_qa("chain_of_thought")
        self.assertEqual(r["result"]["outputs"], {"reasoning": "reasoning from fake",
                                                  "answer": "answer from fake"})

    def test_api_key_from_env_var(self):
        # the worker's environment has no such variable -> no Authorization header
        self.configure("ok", api_key=None, api_key_env="PYVISOR_TEST_UNSET_KEY")
        n = len(self.srv.requests)
        self.assertTrue(self.run_qa()["ok"])
        self.assertNotIn("Authorization", self.srv.requests[n]["headers"])

    def test_plain_text_single_output(self):
        self.configure("text")
        r = self.run_qa()
        self.assertEqual(r["result"]["outputs"], {"answer": "Elixir is a functional language."})

    def test_plain_text_multiple_outputs_is_an_error(self):
        self.configure("text")
        r = self.run_qa(signature={"inputs": [{"name": "question"}],
                                   "outputs": [{"name": "answer"}, {"name": "source"}]})
        self.assertEqual(r["error"]["type"], "AdapterParseError")
        self.assertIn("not a JSON object with the fields 'answer', 'source'",
                      r["error"]["message"])

    def expect_lm_error(self, mode, *fragments, **extra):
        self.configure(mode, **extra)
        r = self.run_qa()
        self.assertIs(r["ok"], False)
        self.assertEqual(r["error"]["type"], "LMError")
        for f in fragments:
            self.assertIn(f, r["error"]["message"])
        self.assertIs(self.w.call("ping")["pong"], True)
        return r["error"]["message"]

    def test_401(self):
        m = self.expect_lm_error("401", "openai endpoint returned 401 Unauthorized",
                                 "Incorrect API key provided")
        self.assertTrue(m.startswith("openai endpoint returned 401 Unauthorized: "))

    def test_429(self):
        self.expect_lm_error("429", "openai endpoint returned 429 Too Many Requests",
                             "Rate limit reached")

    def test_500(self):
        self.expect_lm_error("500", "openai endpoint returned 500 Internal Server Error",
                             "upstream exploded")

    def test_malformed_json(self):
        self.expect_lm_error("malformed", "openai endpoint returned malformed JSON",
                             '{"choices"')

    def test_timeout(self):
        t = time.monotonic()
        self.expect_lm_error("slow", "timed out after 0.3s", timeout_s=0.3)
        self.assertLess(time.monotonic() - t, 1.4)

    def test_connection_refused(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        self.call("configure_lm", {"provider": "openai", "base_url": "http://127.0.0.1:%d/v1"
                                   % port, "api_key": "k", "timeout_s": 2})
        r = self.run_qa()
        self.assertEqual(r["error"]["type"], "LMError")
        self.assertIn("refused the connection", r["error"]["message"])


class TestLMUnits(unittest.TestCase):
    SIG = {"inputs": [{"name": "q", "description": ""}],
           "outputs": [{"name": "a", "description": ""}, {"name": "b", "description": ""}],
           "instructions": "Be brief."}

    def test_parse_outputs_json_in_prose(self):
        out = lm_mod.parse_outputs('Sure! {"a": "1", "b": 2} hope that helps',
                                   self.SIG, reasoning=False)
        self.assertEqual(out, {"a": "1", "b": 2})

    def test_parse_outputs_missing_field(self):
        with self.assertRaises(lm_mod.LMError) as cm:
            lm_mod.parse_outputs('{"a": "1"}', self.SIG)
        self.assertIn("lacks output field(s) 'b'", str(cm.exception))

    def test_messages_mention_instructions_and_fields(self):
        msgs = lm_mod.build_messages(self.SIG, {"q": "hello"}, reasoning=True)
        self.assertIn("Be brief.", msgs[0]["content"])
        self.assertIn('"reasoning", "a", "b"', msgs[0]["content"])
        self.assertIn('"q": "hello"', msgs[1]["content"])


class TestDspyGlueWithStub(WorkerTestCase):
    """Drives the dspy code path with tests/stubs/dspy (a stand-in for DSPy 3.4's
    API, see its docstring), so the glue is exercised even where dspy is not
    installed. tests/test_dspy_real.py runs the same against real DSPy."""

    def spawn_stubbed(self, **env):
        stub = os.path.join(helpers.TESTS_DIR, "stubs")
        e = {"PYTHONPATH": stub, "PYVISOR_DSPY": "require"}
        e.update(env)
        return self.spawn(mode="pool-worker", env=e)

    def openai(self, w, session="s", **extra):
        args = {"provider": "openai", "model": "gpt-test", "base_url": "http://127.0.0.1:9/v1",
                "api_key": "k1"}
        args.update(extra)
        return w.call("configure_lm", args, session=session)

    def test_dspy_engine(self):
        w = self.spawn_stubbed()
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")
        w.call("create_program", {"id": "cot", "type": "chain_of_thought",
                                  "signature": dict(QA, instructions="Be brief.")}, session="s")
        self.assertEqual(w.call("get_program_info", {"program_id": "qa"}, session="s")["engine"],
                         "dspy")
        # dummy provider: the dspy module runs with a dspy.utils.DummyLM that answers
        # what the built-in dummy would, so the results are the built-in runner's
        r = w.call("execute_program", {"program_id": "qa", "inputs": {"question": "q"}},
                   session="s")
        self.assertEqual(r, {"program_id": "qa", "outputs": {"answer": "dummy answer to: q"},
                             "provider": "dummy", "model": "dummy"})
        r = w.call("execute_program", {"program_id": "cot", "inputs": {"question": "q"}},
                   session="s")
        self.assertEqual(r["outputs"], {"reasoning": "dummy reasoning about: q",
                                        "answer": "dummy answer to: q"})
        self.openai(w)
        r = w.call("execute_program", {"program_id": "qa", "inputs": {"question": "q"}},
                   session="s")
        self.assertEqual(r, {"program_id": "qa", "provider": "openai", "model": "gpt-test",
                             "outputs": {"answer": "stub answer via openai/gpt-test at "
                                                   "http://127.0.0.1:9/v1 key=k1"},
                             "usage": {"prompt_tokens": 3, "completion_tokens": 5,
                                       "total_tokens": 8}})
        r = w.call("execute_program", {"program_id": "cot", "inputs": {"question": "q"}},
                   session="s")
        self.assertEqual(list(r["outputs"]), ["reasoning", "answer"])
        self.assertTrue(r["outputs"]["reasoning"].startswith("stub reasoning via openai/gpt-test"))
        self.assertEqual(w.call("cleanup_session", {"session_id": "s"})["freed_programs"], 2)

    def test_configured_once_from_the_main_thread(self):
        w = self.spawn_stubbed()
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")
        w.call("execute_program", {"program_id": "qa", "inputs": {"question": "q"}}, session="s")
        self.openai(w)
        w.call("execute_program", {"program_id": "qa", "inputs": {"question": "q"}}, session="s")
        w.close_stdin()
        w.wait()
        lines = [l for l in w.stderr_after_exit().splitlines() if l.startswith("dspy-stub:")]
        self.assertEqual(lines, ["dspy-stub: configure(disable_history=True) from the main "
                                 "thread"])

    def test_dspy_lm_arguments(self):
        w = self.spawn_stubbed(PYVISOR_TEST_UNSET_KEY="")
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")

        def describe(**extra):
            self.openai(w, **extra)
            r = w.call("execute_program", {"program_id": "qa",
                                           "inputs": {"question": "describe-lm"}}, session="s")
            return json.loads(r["outputs"]["answer"])

        d = describe(temperature=0.2, max_tokens=64, timeout_s=5)
        self.assertEqual((d["model"], d["cache"], d["num_retries"]), ("openai/gpt-test", False, 0))
        self.assertEqual(d["kwargs"], {"api_base": "http://127.0.0.1:9/v1", "api_key": "k1",
                                       "timeout": 5.0, "temperature": 0.2, "max_tokens": 64})
        # Routing: the name goes to the OpenAI-compatible endpoint as it is.
        self.assertEqual(describe(model="meta-llama/Llama-3")["model"],
                         "openai/meta-llama/Llama-3")
        self.assertEqual(describe(model="openai/gpt-x")["model"], "openai/gpt-x")
        # A keyless local endpoint gets a placeholder key (DSPy refuses no key).
        d = describe(api_key=None, api_key_env="PYVISOR_TEST_UNSET_KEY")
        self.assertEqual(d["kwargs"]["api_key"], "pyvisor-no-key")
        # The session may ask for DSPy's cache and retries.
        d = describe(cache=True, num_retries=2)
        self.assertEqual((d["cache"], d["num_retries"]), (True, 2))
        self.assertEqual(d["kwargs"]["timeout"], 60.0)

    def test_configuration_errors_surface_at_configure_lm(self):
        w = self.spawn_stubbed()
        e = w.error("configure_lm", {"provider": "openai", "model": "openai/",
                                     "base_url": "http://127.0.0.1:9/v1"}, session="s")
        self.assertEqual(e["type"], "ValueError")
        self.assertEqual(e["message"], "configure_lm: dspy.LM('openai/') refused the "
                                       "configuration: model 'openai/' has a provider prefix "
                                       "but no model id after it")
        # nothing was configured: the session still has the default dummy LM
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")
        r = w.call("execute_program", {"program_id": "qa", "inputs": {"question": "q"}},
                   session="s")
        self.assertEqual(r["provider"], "dummy")

    def test_errors_keep_dspys_structure(self):
        w = self.spawn_stubbed()
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")
        self.openai(w)

        def err(question):
            return w.error("execute_program", {"program_id": "qa",
                                               "inputs": {"question": question}}, session="s")
        e = err("explode")
        self.assertEqual(e["type"], "LMError")
        self.assertEqual(e["message"], "dspy program 'qa' failed: RuntimeError: stub LM exploded")
        e = err("http-401")
        self.assertEqual((e["type"], e["message"]), (
            "LMError", "dspy program 'qa' failed: LMAuthError (HTTP 401): [openai/gpt-test] "
                       "Incorrect API key provided"))
        e = err("http-429")
        self.assertEqual(e["message"], "dspy program 'qa' failed: LMRateLimitError (HTTP 429, "
                                       "retry after 7s): [openai/gpt-test] Rate limit reached")
        e = err("http-500")
        self.assertEqual(e["message"], "dspy program 'qa' failed: LMServerError (HTTP 500): "
                                       "[openai/gpt-test] upstream exploded")
        e = err("unparseable")
        self.assertEqual(e["type"], "AdapterParseError")
        self.assertTrue(e["message"].startswith(
            "dspy program 'qa' failed: AdapterParseError: Adapter ChatAdapter failed to parse"),
            e["message"])
        self.assertIn("I refuse to use your format.", e["message"])
        self.assertIs(w.call("ping")["pong"], True)

    def test_state_through_the_dspy_engine(self):
        w = self.spawn_stubbed()
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")
        r = w.call("export_program", {"program_id": "qa"}, session="s")
        fields = [{"prefix": "Question:", "description": "a question"},
                  {"prefix": "Answer:", "description": "${answer}"}]
        self.assertEqual(r["state"], {"traces": [], "train": [], "demos": [],
                                      "signature": {"instructions": "", "fields": fields}})
        state = {"traces": [], "train": [], "demos": [{"question": "q", "answer": "from demo"}],
                 "signature": {"instructions": "Imported.", "fields": fields},
                 "lm": {"model": "ignored"}}
        self.assertEqual(w.call("import_program", {"program_id": "qa", "state": state},
                                session="s"),
                         {"program_id": "qa", "imported": True, "demos": 1})
        # the dummy answers a demo's inputs with its outputs (told by a DSPy callback)
        r = w.call("execute_program", {"program_id": "qa", "inputs": {"question": "q"}},
                   session="s")
        self.assertEqual(r["outputs"], {"answer": "from demo"})
        r = w.call("execute_program", {"program_id": "qa", "inputs": {"question": "q2"}},
                   session="s")
        self.assertEqual(r["outputs"], {"answer": "dummy answer to: q2"})
        exported = w.call("export_program", {"program_id": "qa"}, session="s")["state"]
        self.assertEqual(exported["signature"]["instructions"], "Imported.")
        self.assertNotIn("lm", exported)
        e = w.error("import_program", {"program_id": "qa", "state": dict(
            state, signature={"instructions": "", "fields": fields[:1]})}, session="s")
        self.assertEqual(e["message"], "import_program: state.signature.fields has 1 entry, the "
                                       "program's signature has 2 field(s) (question, answer)")
        e = w.error("import_program", {"program_id": "qa", "state": dict(state, forward=1)},
                    session="s")
        self.assertEqual(e["message"], "import_program: state has unknown key(s) 'forward' (a "
                                       "Predict's state has 'traces', 'train', 'demos', "
                                       "'signature')")
        w.call("create_program", {"id": "cot", "type": "chain_of_thought", "signature": QA},
               session="s")
        e = w.error("import_program", {"program_id": "cot", "state": state}, session="s")
        self.assertEqual(e["message"], "import_program: state lacks 'predict' and has unknown "
                                       "key(s) 'traces', 'train', 'demos', 'signature', 'lm' (a "
                                       "ChainOfThought program's state has 'predict')")
        self.assertEqual(w.call("export_program", {"program_id": "qa"}, session="s")["state"],
                         exported)

    def test_dspy_off(self):
        w = self.spawn_stubbed(PYVISOR_DSPY="off")
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")
        self.assertEqual(w.call("get_program_info", {"program_id": "qa"}, session="s")["engine"],
                         "builtin")

    def test_dspy_required_but_missing(self):
        w = self.spawn(mode="pool-worker", env={"PYVISOR_DSPY": "require",
                                                "PYTHONPATH": "/nonexistent"})
        if HAVE_DSPY:
            self.skipTest("dspy is installed")
        e = w.error("create_program", {"id": "qa", "signature": QA}, session="s")
        self.assertEqual(e["type"], "ImportError")
        self.assertIn("PYVISOR_DSPY=require", e["message"])


TRAIN = [{"inputs": {"question": "q%d" % i}, "outputs": {"answer": "A%d" % i}} for i in range(5)]


class TestBuiltinState(DspyPoolCase):
    """export_program / import_program / restore.program.state with the built-in runner:
    its state is {demos, instructions}, and its dummy answers a demo's inputs with the
    demo's outputs, so a state is observable in the answers."""

    STATE = {"demos": [{"question": "What is DSPy?", "answer": "A framework"},
                       {"question": "Why?", "answer": "Because"}],
             "instructions": "Answer in two words."}

    def execute(self, question, session="__default__", **extra):
        args = dict(extra, program_id=extra.pop("program_id", "qa"),
                    inputs={"question": question})
        return self.call("execute_program", args, session=session)

    def test_export_a_fresh_program(self):
        self.call("create_program", {"id": "qa", "signature": dict(QA, instructions="Be brief.")})
        r = self.call("export_program", {"program_id": "qa"})
        self.assertEqual(r, {"program_id": "qa", "type": "predict", "signature": {
            "inputs": [{"name": "question", "description": "a question"}],
            "outputs": [{"name": "answer", "description": ""}], "instructions": "Be brief."},
            "state": {"demos": [], "instructions": "Be brief."}})
        e = self.err("export_program", {"program_id": "nope"})
        self.assertEqual((e["type"], e["message"]), (
            "ProgramNotFoundError", "Program 'nope' not found in session '%s'" % self.sid))

    def test_import_then_export_into_another_worker(self):
        self.call("create_program", {"id": "qa", "type": "chain_of_thought", "signature": QA})
        r = self.call("import_program", {"program_id": "qa", "state": self.STATE})
        self.assertEqual(r, {"program_id": "qa", "imported": True, "demos": 2})
        self.assertEqual(self.call("get_program_info", {"program_id": "qa"})["demos"], 2)
        # a demo's inputs -> the demo's outputs (no reasoning in the demo: empty); others: the dummy
        self.assertEqual(self.execute("What is DSPy?")["outputs"],
                         {"reasoning": "", "answer": "A framework"})
        self.assertEqual(self.execute("what is dspy?")["outputs"]["answer"],
                         "dummy answer to: what is dspy?")
        exported = self.call("export_program", {"program_id": "qa"})
        self.assertEqual(exported["state"], self.STATE)
        # Another worker process: the exported program behaves the same there.
        other = self.spawn(mode="pool-worker", worker_id="dspy_other", env=BUILTIN_ENV)
        other.call("create_program", {"id": "qa", "type": exported["type"],
                                      "signature": exported["signature"]}, session="x")
        other.call("import_program", {"program_id": "qa", "state": exported["state"]},
                   session="x")
        r = other.call("execute_program", {"program_id": "qa",
                                           "inputs": {"question": "Why?"}}, session="x")
        self.assertEqual(r["outputs"], {"reasoning": "", "answer": "Because"})
        self.assertEqual(other.call("export_program", {"program_id": "qa"}, session="x"),
                         exported)

    def test_demos_come_before_the_answers_table(self):
        self.call("configure_lm", {"provider": "dummy", "answers": {"*": {"answer": "table"}}})
        self.call("create_program", {"id": "qa", "signature": QA, "state": self.STATE})
        self.assertEqual(self.execute("Why?")["outputs"], {"answer": "Because"})
        self.assertEqual(self.execute("other")["outputs"], {"answer": "table"})

    def test_bad_states_change_nothing(self):
        self.call("create_program", {"id": "qa", "signature": QA})
        self.call("import_program", {"program_id": "qa", "state": self.STATE})
        before = self.call("export_program", {"program_id": "qa"})
        cases = [
            (None, "import_program: state is required (a map, as export_program gives it)"),
            ([1], "import_program: state must be a map, got list"),
            ({"demos": [], "predict": {}},
             "import_program: state has unknown key(s) 'predict' (the built-in runner's state "
             "is {demos, instructions}; a state exported by a DSPy worker loads only where "
             "DSPy runs)"),
            ({"demos": "x"}, "import_program: state.demos must be a list of demos (maps of "
                             "field values), got str"),
            ({"demos": [{"question": "q", "answer": "a"}, 3]},
             "import_program: state.demos[1] must be a map of field values, got int"),
            ({"demos": [], "instructions": 5},
             "import_program: state.instructions must be a string, got 5"),
        ]
        for state, message in cases:
            args = {"program_id": "qa"}
            if state is not None:
                args["state"] = state
            e = self.err("import_program", args)
            self.assertEqual((e["type"], e["message"]), ("ValueError", message), state)
        self.assertEqual(self.call("export_program", {"program_id": "qa"}), before)
        e = self.err("import_program", {"program_id": "qa", "state": {}, "state_rev": -1})
        self.assertEqual(e["message"], "import_program: state_rev must be an integer >= 0, got -1")
        # create_program's state is checked the same way, under create_program's name
        e = self.err("create_program", {"id": "new", "signature": QA, "state": {"demos": 1}})
        self.assertEqual(e["message"], "create_program: state.demos must be a list of demos "
                                       "(maps of field values), got int")
        self.assertEqual(self.call("list_programs")["programs"],
                         [{"program_id": "qa", "type": "predict"}])

    def test_restore_with_state_and_state_rev(self):
        spec = {"id": "qa", "signature": QA, "state": self.STATE, "state_rev": 1}
        # A worker without the program builds it and loads the state.
        r = self.execute("Why?", restore={"program": spec})
        self.assertEqual((r["outputs"], r["restored"]), ({"answer": "Because"}, True))
        # The same revision again: nothing to rebuild.
        self.assertIs(self.execute("Why?", restore={"program": spec})["restored"], False)
        # A new revision with another state: rebuilt with it.
        spec2 = dict(spec, state={"demos": [{"question": "Why?", "answer": "Why not"}]},
                     state_rev=2)
        r = self.execute("Why?", restore={"program": spec2})
        self.assertEqual((r["outputs"], r["restored"]), ({"answer": "Why not"}, True))
        # A spec without state (revision none) is another spec: the plain program again.
        r = self.execute("Why?", restore={"program": {"id": "qa", "signature": QA}})
        self.assertEqual((r["outputs"]["answer"], r["restored"]), ("dummy answer to: Why?", True))
        # import_program with state_rev records the revision: a restore carrying it keeps it.
        self.call("import_program", {"program_id": "qa", "state": self.STATE, "state_rev": 7})
        r = self.execute("What is DSPy?", restore={"program": dict(spec, state_rev=7)})
        self.assertEqual((r["outputs"]["answer"], r["restored"]), ("A framework", False))
        # import_program without state_rev keeps the revision the program had.
        self.call("import_program", {"program_id": "qa", "state": {"demos": []}})
        r = self.execute("What is DSPy?", restore={"program": dict(spec, state_rev=7)})
        self.assertEqual((r["outputs"]["answer"], r["restored"]),
                         ("dummy answer to: What is DSPy?", False))

    def test_restore_with_a_bad_state(self):
        self.call("create_program", {"id": "qa", "signature": QA})
        for prog, message in [
                ({"signature": QA, "state": "x", "state_rev": 1},
                 "create_program: state must be a map, got str"),
                ({"signature": QA, "state": {}, "state_rev": "1"},
                 "create_program: state_rev must be an integer >= 0, got '1'"),
                ({"signature": QA, "state": {}, "state_rev": True},
                 "create_program: state_rev must be an integer >= 0, got True")]:
            e = self.err("execute_program", {"program_id": "qa", "inputs": {"question": "q"},
                                             "restore": {"program": prog}})
            self.assertEqual((e["type"], e["message"]), ("ValueError", message))
        self.assertEqual(self.call("export_program", {"program_id": "qa"})["state"],
                         {"demos": [], "instructions": ""})

    def test_demos_and_instructions_reach_the_openai_prompt(self):
        srv = FakeOpenAI()
        self.addCleanup(srv.close)
        self.call("configure_lm", {"provider": "openai", "base_url": srv.url("ok"),
                                   "api_key": "k", "timeout_s": 5})
        self.call("create_program", {"id": "qa", "signature": QA, "state": self.STATE})
        self.assertEqual(self.execute("Next?")["outputs"], {"answer": "answer from fake"})
        msgs = srv.requests[-1]["body"]["messages"]
        self.assertEqual([m["role"] for m in msgs],
                         ["system", "user", "assistant", "user", "assistant", "user"])
        self.assertTrue(msgs[0]["content"].startswith("Answer in two words."))
        self.assertIn('"What is DSPy?"', msgs[1]["content"])
        self.assertEqual(json.loads(msgs[2]["content"]), {"answer": "A framework"})
        self.assertIn('"Next?"', msgs[5]["content"])


class TestBuiltinOptimize(DspyPoolCase):
    """optimize_program with the built-in runner: the trainset's examples (up to
    max_labeled_demos) become the demos, with the same chunks as with DSPy."""

    def test_progress_then_result_then_the_demos_answer(self):
        self.call("create_program", {"id": "qa", "signature": QA})
        chunks, reply = stream_request(self.w, "optimize_program", {
            "program_id": "qa", "trainset": TRAIN, "max_labeled_demos": 3}, session=self.sid)
        self.assertTrue(reply["ok"], reply)
        self.assertIsNone(reply["result"])
        self.assertEqual(chunks[:-1], [{"type": "progress", "done": i, "total": 5}
                                       for i in range(1, 6)])
        demos = [{"question": "q%d" % i, "answer": "A%d" % i} for i in range(3)]
        self.assertEqual(chunks[-1], {"type": "result", "program_id": "qa", "demos": 3,
                                      "state": {"demos": demos, "instructions": ""}})
        self.assertEqual(self.call("export_program", {"program_id": "qa"})["state"],
                         chunks[-1]["state"])
        r = self.call("execute_program", {"program_id": "qa", "inputs": {"question": "q1"}})
        self.assertEqual(r["outputs"], {"answer": "A1"})
        r = self.call("execute_program", {"program_id": "qa", "inputs": {"question": "q4"}})
        self.assertEqual(r["outputs"], {"answer": "dummy answer to: q4"})

    def test_without_a_stream_the_reply_is_the_list_of_chunks(self):
        r = self.call("optimize_program", {"program_id": "qa", "trainset": TRAIN[:2],
                                           "restore": {"program": {"signature": QA}}})
        self.assertEqual([c["type"] for c in r], ["progress", "progress", "result"])
        self.assertEqual((r[-1]["demos"], r[-1]["restored"]), (2, True))

    def test_state_rev_recorded_for_the_next_restore(self):
        spec = {"id": "qa", "signature": QA}
        chunks, reply = stream_request(self.w, "optimize_program", {
            "program_id": "qa", "trainset": TRAIN[:2], "state_rev": 1,
            "restore": {"program": spec}}, session=self.sid)
        state = chunks[-1]["state"]
        self.assertIs(chunks[-1]["restored"], True)
        # the host keeps (state, 1) with the spec: this worker has it already
        r = self.call("execute_program", {"program_id": "qa", "inputs": {"question": "q1"},
                                          "restore": {"program": dict(spec, state=state,
                                                                      state_rev=1)}})
        self.assertEqual((r["outputs"]["answer"], r["restored"]), ("A1", False))

    def test_trainset_errors(self):
        self.call("create_program", {"id": "qa", "signature": {
            "inputs": ["question", "context"], "outputs": ["answer"]}})

        def check(args, message):
            chunks, reply = stream_request(self.w, "optimize_program",
                                           dict(args, program_id="qa"), session=self.sid)
            self.assertEqual(chunks, [])
            self.assertIs(reply["ok"], False, reply)
            self.assertEqual((reply["error"]["type"], reply["error"]["message"]),
                             ("ValueError", message))
        good = {"inputs": {"question": "q", "context": "c"}, "outputs": {"answer": "a"}}
        check({}, "optimize_program: trainset must be a non-empty list of {inputs, outputs}, "
                  "got nothing")
        check({"trainset": []}, "optimize_program: trainset must be a non-empty list of "
                                "{inputs, outputs}, got []")
        check({"trainset": [good, 5]}, "optimize_program: trainset[1] must be a map "
                                       "{inputs, outputs}, got int")
        check({"trainset": [dict(good, label=1)]},
              "optimize_program: trainset[0] has unknown key(s) 'label' (expected inputs, "
              "outputs)")
        check({"trainset": [good, {"inputs": {"question": "q"}}]},
              "optimize_program: trainset[1].outputs must be a map of field values, got nothing")
        check({"trainset": [good, {"inputs": {"question": "q", "ctx": "c"},
                                   "outputs": {"answer": "a", "score": 1}}]},
              "optimize_program: trainset[1]: missing input(s) 'context'; unknown input(s) "
              "'ctx'; unknown output(s) 'score' for program 'qa' (inputs: question, context; "
              "outputs: answer)")
        check({"trainset": [good], "max_rounds": 0},
              "optimize_program: max_rounds must be an integer >= 1, got 0")
        check({"trainset": [good], "max_labeled_demos": 1.5},
              "optimize_program: max_labeled_demos must be an integer >= 0, got 1.5")
        check({"trainset": [good], "max_bootstrapped_demos": -1},
              "optimize_program: max_bootstrapped_demos must be an integer >= 0, got -1")
        self.assertEqual(self.call("export_program", {"program_id": "qa"})["state"]["demos"], [])


class TestBuiltinStream(DspyPoolCase):
    def test_fields_word_by_word_then_the_result(self):
        self.call("create_program", {"id": "cot", "type": "chain_of_thought", "signature": QA})
        chunks, reply = stream_request(self.w, "stream_program", {
            "program_id": "cot", "inputs": {"question": "What is Elixir?"}}, session=self.sid)
        self.assertTrue(reply["ok"], reply)
        fields = [c for c in chunks if c["type"] == "field"]
        self.assertEqual(chunks[-1]["type"], "result")
        self.assertEqual(len(fields), len(chunks) - 1, "field chunks, then one result chunk")
        self.assertEqual([c["text"] for c in fields if c["field"] == "answer"],
                         ["dummy ", "answer ", "to: ", "What ", "is ", "Elixir?"])
        self.assertEqual([c["field"] for c in fields][0], "reasoning")
        result = chunks[-1]["result"]
        self.assertEqual(field_texts(chunks), result["outputs"])
        self.assertEqual(result, {"program_id": "cot", "provider": "dummy", "model": "dummy",
                                  "outputs": {"reasoning": "dummy reasoning about: What is "
                                                           "Elixir?",
                                              "answer": "dummy answer to: What is Elixir?"}})
        self.assertEqual(self.call("get_program_info", {"program_id": "cot"})["executions"], 1)

    def test_restored_and_errors(self):
        chunks, reply = stream_request(self.w, "stream_program", {
            "program_id": "qa", "inputs": {"question": "q"},
            "restore": {"program": {"signature": QA}}}, session=self.sid)
        self.assertIs(chunks[-1]["result"]["restored"], True)
        chunks, reply = stream_request(self.w, "stream_program", {
            "program_id": "qa", "inputs": {"q": "x"}}, session=self.sid)
        self.assertEqual(chunks, [])
        self.assertEqual(reply["error"]["message"],
                         "stream_program: missing input(s) 'question'; unknown input(s) 'q' "
                         "for program 'qa' (expects: question)")
        chunks, reply = stream_request(self.w, "stream_program", {
            "program_id": "ghost", "inputs": {}}, session=self.sid)
        self.assertEqual(reply["error"]["type"], "ProgramNotFoundError")

    def test_lm_errors_keep_their_details(self):
        srv = FakeOpenAI()
        self.addCleanup(srv.close)
        self.call("configure_lm", {"provider": "openai", "base_url": srv.url("429"),
                                   "api_key": "k", "timeout_s": 5})
        self.call("create_program", {"id": "qa", "signature": QA})
        chunks, reply = stream_request(self.w, "stream_program", {
            "program_id": "qa", "inputs": {"question": "q"}}, session=self.sid)
        self.assertEqual(chunks, [])
        err = reply["error"]
        self.assertEqual(err["type"], "LMError")
        self.assertIn("openai endpoint returned 429", err["message"])
        self.assertEqual(err.get("details"), {"status": 429, "retry_after": 7.0,
                                              "code": "rate_limit", "provider": "openai"})
        e = self.err("execute_program", {"program_id": "qa", "inputs": {"question": "q"}})
        self.assertEqual(e.get("details"), err["details"])


class TestDemoUnits(unittest.TestCase):
    SIG = {"inputs": [{"name": "q", "description": ""}, {"name": "c", "description": ""}],
           "outputs": [{"name": "a", "description": ""}], "instructions": ""}

    def test_demo_answer_needs_every_input_equal_and_every_output(self):
        demos = [{"q": "x", "a": "no c"}, {"q": "x", "c": 1, "b": "no a"},
                 {"q": "x", "c": 1, "a": "hit", "augmented": True}]
        self.assertEqual(lm_mod.demo_answer(self.SIG, {"q": "x", "c": 1}, False, demos),
                         {"a": "hit"})
        self.assertEqual(lm_mod.demo_answer(self.SIG, {"q": "x", "c": 1}, True, demos),
                         {"reasoning": "", "a": "hit"})
        self.assertIsNone(lm_mod.demo_answer(self.SIG, {"q": "x", "c": "1"}, False, demos))
        self.assertIsNone(lm_mod.demo_answer(self.SIG, {"q": "x", "c": 1}, False, []))

    def test_dummy_rotation_is_one_step_per_call_across_threads(self):
        lm = lm_mod.DummyLM(answers=[{"a": str(i)} for i in range(7)])
        got = []
        lock = threading.Lock()

        def work():
            for _ in range(100):
                a = lm.complete(self.SIG, {"q": "x", "c": 1})["a"]
                with lock:
                    got.append(a)
        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(lm.calls, 800)
        self.assertEqual(sorted(got.count(str(i)) for i in range(7)),
                         sorted(len(range(i, 800, 7)) for i in range(7)))


class TestLMErrorStructure(unittest.TestCase):
    """The built-in runner's LMError carries the same structure as DSPy's."""

    @classmethod
    def setUpClass(cls):
        cls.srv = FakeOpenAI()

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    SIG = {"inputs": [{"name": "question", "description": ""}],
           "outputs": [{"name": "answer", "description": ""}], "instructions": ""}

    def run_mode(self, mode):
        lm = lm_mod.make_lm({"provider": "openai", "base_url": self.srv.url(mode), "api_key": "k",
                             "timeout_s": 5})
        return lm.run(self.SIG, {"question": "q"})

    def failure(self, mode):
        with self.assertRaises(lm_mod.LMError) as cm:
            self.run_mode(mode)
        return cm.exception

    def test_details(self):
        self.assertEqual(self.failure("401").details,
                         {"status": 401, "code": "auth", "provider": "openai"})
        self.assertEqual(self.failure("429").details,
                         {"status": 429, "retry_after": 7.0, "code": "rate_limit",
                          "provider": "openai"})
        self.assertEqual(self.failure("500").details,
                         {"status": 500, "code": "server", "provider": "openai"})
        self.assertEqual(self.failure("malformed").details,
                         {"status": 200, "code": "provider", "provider": "openai"})

    def test_usage_when_reported(self):
        outputs, usage = self.run_mode("usage")
        self.assertEqual(outputs, {"answer": "answer from fake"})
        self.assertEqual(usage, {"prompt_tokens": 11, "completion_tokens": 7,
                                 "total_tokens": 18})
        self.assertEqual(self.run_mode("ok")[1], None)

    def test_parse_failure_is_adapter_parse_error(self):
        self.assertTrue(issubclass(lm_mod.AdapterParseError, lm_mod.LMError))


if __name__ == "__main__":
    unittest.main()
