"""Real DSPy (3.x, python/requirements-dspy.txt) in the worker.

Run by the ``dspy`` tier of scripts/run-tests.mjs with ``.venv/bin/python``::

    cd python && ../.venv/bin/python -m unittest tests.test_dspy_real

Where ``import dspy`` fails these tests skip themselves (the ``python`` and
``python-system`` tiers), unless ``PYVISOR_DSPY_TESTS=require`` (the ``dspy``
tier sets it), which makes a missing dspy a failure.

Offline: the only network is a chat-completions server on 127.0.0.1 started
here, answering in ChatAdapter's ``[[ ## field ## ]]`` form (and as a
server-sent event stream when asked to stream). Every worker runs
with tests/netguard/sitecustomize.py, which refuses any other connection or
name lookup and says so on stderr; each test asserts it never had to.
"""

import glob
import http.server
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import unittest

from .helpers import TESTS_DIR, WorkerProcess, WorkerTestCase
from .test_dspy import field_texts, stream_request

try:
    import dspy
    HAVE_DSPY = True
    DSPY_ERROR = None
except Exception as e:  # noqa: BLE001 -- any broken install is "no dspy" here
    dspy = None
    HAVE_DSPY = False
    DSPY_ERROR = "%s: %s" % (type(e).__name__, e)

REQUIRED = os.environ.get("PYVISOR_DSPY_TESTS", "").lower() == "require"
NETGUARD = os.path.join(TESTS_DIR, "netguard")
BLOCKED = "pyvisor-netguard: blocked"

QA = {"inputs": [{"name": "question", "description": "a question"}],
      "outputs": [{"name": "answer"}], "instructions": "Answer briefly."}


def needs_dspy(cls):
    if HAVE_DSPY:
        return cls
    if REQUIRED:
        def fail(self):
            self.fail("PYVISOR_DSPY_TESTS=require but dspy is not importable in %s: %s"
                      % (sys.executable, DSPY_ERROR))
        return type(cls.__name__, (unittest.TestCase,), {"test_dspy_importable": fail})
    return unittest.skip("dspy is not importable in this interpreter (%s)" % DSPY_ERROR)(cls)


class _Server(http.server.ThreadingHTTPServer):
    # socketserver's listen backlog of 5 drops the SYNs of a burst of concurrent
    # clients (they retry after 1 s): room for every request a test has in flight
    request_queue_size = 256
    daemon_threads = True


class ChatServer(object):
    """An OpenAI-compatible chat-completions server on 127.0.0.1 speaking
    ChatAdapter's format. The URL path picks the behavior: ``/<tag>/v1`` answers
    every output field the system message asks for with ``<field> from <tag>
    #<n>`` (n counts this server's requests) and reports token usage; the tags
    401, 429 (Retry-After: 7), 500, malformed (not JSON), garbage (not
    ChatAdapter's format) and slow (1.5 s) fail that way; ``delay200...`` answers
    after 200 ms; ``upper`` answers every output field (but ``reasoning``) with
    the request's first input value in upper case (a right answer for a
    trainset labelled so). A request with ``stream: true`` gets the same content
    as server-sent ``chat.completion.chunk`` events, a word per event (usage in
    a last chunk when ``stream_options.include_usage``; ``slowstream``: 50 ms
    before each event)."""

    def __init__(self):
        self.requests = []
        self.stream_ends = []  # (path, "done" | "aborted") of every streamed reply
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n))
                tag = self.path.strip("/").split("/")[0]
                with outer.lock:
                    outer.requests.append({"path": self.path, "headers": dict(self.headers),
                                           "body": body, "tag": tag})
                    count = sum(1 for r in outer.requests if r["tag"] == tag)
                if tag == "401":
                    return self._send(401, {"error": {"message": "Incorrect API key provided",
                                                      "code": "invalid_api_key"}})
                if tag == "429":
                    return self._send(429, {"error": {"message": "Rate limit reached"}},
                                      {"Retry-After": "7"})
                if tag == "500":
                    return self._send(500, b"upstream exploded")
                if tag == "malformed":
                    return self._send(200, b'{"choices": [ {"message": ')
                if tag == "slow":
                    time.sleep(1.5)
                if tag.startswith("delay200"):
                    time.sleep(0.2)
                system = body["messages"][0]["content"]
                part = system.split("Your output fields are:", 1)[1].split(
                    "All interactions", 1)[0]
                names = re.findall(r"\d+\. `(\w+)`", part)
                values = {f: "%s from %s #%d" % (f, tag, count) for f in names}
                if tag == "upper":
                    first = re.search(r"\[\[ ## \w+ ## \]\]\n(.*?)(\n\n|$)",
                                      body["messages"][-1]["content"], re.S).group(1)
                    values = {f: "reasoning from upper" if f == "reasoning" else first.upper()
                              for f in names}
                content = "".join("[[ ## %s ## ]]\n%s\n\n" % (f, values[f])
                                  for f in names) + "[[ ## completed ## ]]"
                if tag == "garbage":
                    content = "I refuse to use your format."
                if body.get("stream"):
                    return self._stream(body, count, content)
                self._send(200, {"id": "cmpl-%d" % count, "object": "chat.completion",
                                 "created": 1, "model": body["model"],
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant",
                                                          "content": content}}],
                                 "usage": {"prompt_tokens": 11, "completion_tokens": 7,
                                           "total_tokens": 18}})

            def _stream(self, body, count, content):
                def event(obj):
                    data = obj if isinstance(obj, str) else json.dumps(obj)
                    self.wfile.write(("data: %s\n\n" % data).encode())
                    self.wfile.flush()

                def chunk(delta, finish=None, **extra):
                    return dict({"id": "chunk-%d" % count, "object": "chat.completion.chunk",
                                 "created": 1, "model": body["model"],
                                 "choices": [{"index": 0, "delta": delta,
                                              "finish_reason": finish}]}, **extra)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Cache-Control", "no-cache")
                    self.end_headers()  # HTTP/1.0: the body ends when the connection closes
                    event(chunk({"role": "assistant", "content": ""}))
                    for piece in re.findall(r"\S+\s*|\s+", content):
                        if self.path.startswith("/slowstream/"):
                            time.sleep(0.05)
                        event(chunk({"content": piece}))
                    event(chunk({}, "stop"))
                    if (body.get("stream_options") or {}).get("include_usage"):
                        event({"id": "chunk-%d" % count, "object": "chat.completion.chunk",
                               "created": 1, "model": body["model"], "choices": [],
                               "usage": {"prompt_tokens": 11, "completion_tokens": 7,
                                         "total_tokens": 18}})
                    event("[DONE]")
                    outer.stream_ends.append((self.path, "done"))
                except (BrokenPipeError, ConnectionResetError):
                    outer.stream_ends.append((self.path, "aborted"))

            def _send(self, code, data, headers=None):
                if not isinstance(data, bytes):
                    data = json.dumps(data).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, tag):
        return "http://127.0.0.1:%d/%s/v1" % (self.port, tag)

    def seen(self, tag):
        with self.lock:
            return [r for r in self.requests if r["tag"] == tag]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def offline_env(home, **extra):
    """The workers' environment: real DSPy required, the network guard, no
    proxy, a private HOME (so nothing can land in ~/.dspy_cache)."""
    env = {"PYVISOR_DSPY": "require", "PYTHONPATH": NETGUARD, "HOME": home,
           "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
           "HTTP_PROXY": "", "HTTPS_PROXY": "", "http_proxy": "", "https_proxy": "",
           "ALL_PROXY": "", "all_proxy": "", "OPENAI_API_KEY": "", "OPENAI_BASE_URL": "",
           "OPENAI_API_BASE": "", "DSPY_CACHEDIR": ""}
    env.update(extra)
    return env


class RealDspyCase(WorkerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = ChatServer()
        cls.home = tempfile.mkdtemp(prefix="pyvisor-dspy-home-")

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()
        shutil.rmtree(cls.home, True)
        super().tearDownClass()

    def spawn_real(self, extra_args=(), **env):
        w = self.spawn(mode="pool-worker", worker_id="dspy_real", extra_args=extra_args,
                       env=offline_env(self.home, **env))
        self.assertIn("execute_program", w.ready["commands"])
        return w

    def tearDown(self):
        stderr = "".join(w.stderr for w in self._workers
                         if not isinstance(w, int) and not getattr(w, "may_be_blocked", False))
        super().tearDown()
        self.assertNotIn(BLOCKED, stderr, "a worker tried to reach the network:\n" + stderr)
        self.assertFalse(os.path.exists(os.path.join(self.home, ".dspy_cache")))

    def openai(self, w, tag, session="s", **extra):
        args = {"provider": "openai", "model": "test-model", "base_url": self.srv.url(tag),
                "api_key": "sk-test", "timeout_s": 5}
        args.update(extra)
        return w.call("configure_lm", args, session=session)

    def execute(self, w, pid="qa", session="s", question="What is DSPy?", timeout=30):
        return w.request("execute_program", {"program_id": pid,
                                             "inputs": {"question": question}},
                         session=session, timeout=timeout)


@needs_dspy
class TestDummyLMInTheWorker(RealDspyCase):
    """The dummy provider runs the real dspy module with a dspy.utils.DummyLM
    answering what the built-in dummy would: the same results as without DSPy."""

    def test_predict_and_chain_of_thought(self):
        w = self.spawn_real()
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")
        w.call("create_program", {"id": "cot", "type": "chain_of_thought", "signature": QA},
               session="s")
        info = w.call("get_program_info", {"program_id": "cot"}, session="s")
        self.assertEqual(info["engine"], "dspy")
        r = self.execute(w)
        self.assertEqual(r["result"], {"program_id": "qa", "provider": "dummy", "model": "dummy",
                                       "outputs": {"answer": "dummy answer to: What is DSPy?"}})
        r = self.execute(w, "cot")
        self.assertEqual(list(r["result"]["outputs"]), ["reasoning", "answer"])
        self.assertEqual(r["result"]["outputs"],
                         {"reasoning": "dummy reasoning about: What is DSPy?",
                          "answer": "dummy answer to: What is DSPy?"})

    def test_answers_table_and_rotation(self):
        w = self.spawn_real()
        w.call("create_program", {"id": "cot", "type": "chain_of_thought", "signature": QA},
               session="s")
        w.call("configure_lm", {"provider": "dummy", "model": "canned", "answers": {
            "What is DSPy?": {"answer": "A framework", "reasoning": "I read it"},
            "*": {"answer": "fallback"}}}, session="s")
        r = self.execute(w, "cot")["result"]
        self.assertEqual((r["model"], r["outputs"]), ("canned", {"reasoning": "I read it",
                                                                 "answer": "A framework"}))
        self.assertEqual(self.execute(w, "cot", question="other")["result"]["outputs"]["answer"],
                         "fallback")
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")
        w.call("configure_lm", {"provider": "dummy", "answers": [{"answer": "one"},
                                                                 {"answer": 2}]}, session="s")
        got = [self.execute(w)["result"]["outputs"]["answer"] for _ in range(3)]
        # through DSPy every output is text, as from a real LM (the fields are str)
        self.assertEqual(got, ["one", "2", "one"])


@needs_dspy
class TestLoopbackEndpoint(RealDspyCase):
    def test_predict_and_chain_of_thought(self):
        w = self.spawn_real()
        self.assertEqual(self.openai(w, "ok", model="gpt-test"),
                         {"configured": True, "provider": "openai", "model": "gpt-test"})
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")
        w.call("create_program", {"id": "cot", "type": "chain_of_thought", "signature": QA},
               session="s")
        n = len(self.srv.seen("ok"))
        r = self.execute(w)
        self.assertTrue(r["ok"], r)
        res = r["result"]
        self.assertEqual((res["provider"], res["model"]), ("openai", "gpt-test"))
        self.assertRegex(res["outputs"]["answer"], r"^answer from ok #\d+$")
        self.assertEqual(res["usage"], {"prompt_tokens": 11, "completion_tokens": 7,
                                        "total_tokens": 18})
        req = self.srv.seen("ok")[n]
        self.assertEqual(req["path"], "/ok/v1/chat/completions")
        self.assertEqual(req["headers"]["Authorization"], "Bearer sk-test")
        self.assertEqual(req["body"]["model"], "gpt-test")
        prompt = "\n".join(m["content"] for m in req["body"]["messages"])
        self.assertIn("Answer briefly.", prompt)
        self.assertIn("[[ ## question ## ]]", prompt)
        self.assertIn("What is DSPy?", prompt)
        r = self.execute(w, "cot")["result"]
        self.assertEqual(list(r["outputs"]), ["reasoning", "answer"])
        self.assertRegex(r["outputs"]["reasoning"], r"^reasoning from ok #\d+$")

    def test_model_names_and_keyless_endpoints(self):
        w = self.spawn_real()
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")
        for model, sent in [("meta-llama/Llama-3", "meta-llama/Llama-3"),
                            ("openai/gpt-x", "gpt-x"), ("plain", "plain")]:
            self.openai(w, "models", model=model, api_key=None, api_key_env="PYVISOR_NO_KEY")
            r = self.execute(w)
            self.assertTrue(r["ok"], (model, r))
            self.assertEqual(r["result"]["model"], model)
            req = self.srv.seen("models")[-1]
            self.assertEqual(req["body"]["model"], sent)
            self.assertEqual(req["headers"]["Authorization"], "Bearer pyvisor-no-key")

    def expect(self, w, tag, etype, *fragments, **extra):
        self.openai(w, tag, **extra)
        n = len(self.srv.seen(tag))
        r = self.execute(w)
        self.assertIs(r["ok"], False, r)
        self.assertEqual(r["error"]["type"], etype, r["error"])
        for f in fragments:
            self.assertIn(f, r["error"]["message"])
        self.assertIs(w.call("ping")["pong"], True)
        return r["error"]["message"], len(self.srv.seen(tag)) - n

    def test_http_errors_keep_their_status(self):
        w = self.spawn_real()
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")
        m, n = self.expect(w, "401", "LMError", "dspy program 'qa' failed: LMAuthError (HTTP 401)",
                           "Incorrect API key provided")
        self.assertEqual(n, 1)  # num_retries=0: one execution, one request
        m, n = self.expect(w, "429", "LMError",
                           "LMRateLimitError (HTTP 429, retry after 7s)", "Rate limit reached")
        self.assertEqual(n, 1)
        m, n = self.expect(w, "500", "LMError", "LMServerError (HTTP 500)", "upstream exploded")
        self.assertEqual(n, 1)
        m, n = self.expect(w, "malformed", "LMError", "(HTTP 200)", "is not JSON")
        self.assertEqual(n, 1)
        # An answer that is not ChatAdapter's format: DSPy retries once with its
        # JSONAdapter, then it is a parse error, not an LM error.
        m, n = self.expect(w, "garbage", "AdapterParseError",
                           "dspy program 'qa' failed: AdapterParseError",
                           "I refuse to use your format.")
        self.assertEqual(n, 2)

    def test_retries_when_the_session_asks(self):
        w = self.spawn_real()
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")
        self.openai(w, "500", num_retries=1)
        n = len(self.srv.seen("500"))
        t = time.monotonic()
        r = self.execute(w, timeout=60)
        self.assertEqual(r["error"]["type"], "LMError")
        self.assertEqual(len(self.srv.seen("500")) - n, 2, "num_retries=1: two requests")
        self.assertLess(time.monotonic() - t, 30)

    def test_timeout_and_refused_connection(self):
        w = self.spawn_real()
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")
        t = time.monotonic()
        # DSPy 3.4's native engine reports a read timeout as a transport error
        self.expect(w, "slow", "LMError", "dspy program 'qa' failed: LMTransportError",
                    "timed out", timeout_s=0.3)
        self.assertLess(time.monotonic() - t, 1.4)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        w.call("configure_lm", {"provider": "openai", "model": "m", "api_key": "k",
                                "base_url": "http://127.0.0.1:%d/v1" % port, "timeout_s": 2},
               session="s")
        r = self.execute(w)
        self.assertEqual(r["error"]["type"], "LMError")
        self.assertIn("LMTransportError", r["error"]["message"])
        self.assertIn("Connection refused", r["error"]["message"])

    def test_configuration_errors_surface_at_configure_lm(self):
        w = self.spawn_real()
        # DSPy refuses a temperature for OpenAI's reasoning models when the LM is built.
        e = w.error("configure_lm", {"provider": "openai", "model": "gpt-5", "api_key": "k",
                                     "base_url": self.srv.url("ok"), "temperature": 0.2},
                    session="s")
        self.assertEqual(e["type"], "LMError")
        self.assertTrue(e["message"].startswith(
            "configure_lm: dspy.LM('openai/gpt-5') refused the configuration: "
            "LMConfigurationError: "), e["message"])
        e = w.error("configure_lm", {"provider": "openai", "model": "openai/",
                                     "base_url": self.srv.url("ok")}, session="s")
        self.assertEqual(e["type"], "ValueError")
        self.assertIn("has a provider prefix but no model id", e["message"])
        # Nothing was configured: the session still runs on the default dummy.
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")
        self.assertEqual(self.execute(w)["result"]["provider"], "dummy")

    def test_the_guard_sees_what_the_settings_prevent(self):
        # With the cost-map setting turned off, DSPy fetches its model metadata
        # from the internet on the first call: the guard refuses it (and so the
        # other tests, which assert it never had to, are not vacuous).
        w = self.spawn_real(LITELLM_LOCAL_MODEL_COST_MAP="False", LITELLM_OFFLINE_MODE="false")
        w.may_be_blocked = True
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")
        self.openai(w, "ok", model="gpt-4o-mini")
        self.assertTrue(self.execute(w)["ok"])
        w.close_stdin()
        w.wait(10)
        self.assertIn(BLOCKED + " name lookup of 'raw.githubusercontent.com'",
                      w.stderr_after_exit())

    def test_through_litellm_stays_offline(self):
        # An OPENAI_BASE_URL in the environment makes DSPy route through litellm
        # (its compatibility engine): the explicit endpoint is still the one called,
        # and litellm's import fetches nothing (LITELLM_LOCAL_MODEL_COST_MAP).
        w = self.spawn_real(OPENAI_BASE_URL="http://127.0.0.1:9/v1")
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")
        self.openai(w, "vialitellm")
        r = self.execute(w, timeout=60)
        self.assertTrue(r["ok"], r)
        self.assertRegex(r["result"]["outputs"]["answer"], r"^answer from vialitellm #1$")
        self.expect(w, "429", "LMError", "LMRateLimitError (HTTP 429, retry after 7s)")


@needs_dspy
class TestSessionsAreIsolated(RealDspyCase):
    def test_two_sessions_two_lms_one_worker(self):
        w = self.spawn_real()
        for sid, tag in (("a", "endpoint-a"), ("b", "endpoint-b")):
            # the same model name and the same prompt: only the endpoint differs
            self.openai(w, tag, session=sid, api_key="key-" + sid)
            w.call("create_program", {"id": "qa", "signature": QA}, session=sid)
        answers = {"a": [], "b": []}
        for _ in range(2):
            for sid in ("a", "b"):
                answers[sid].append(self.execute(w, session=sid)["result"]["outputs"]["answer"])
        # no shared LM, no shared cache: every call reached its own session's endpoint
        self.assertEqual(answers, {"a": ["answer from endpoint-a #1", "answer from endpoint-a #2"],
                                   "b": ["answer from endpoint-b #1", "answer from endpoint-b #2"]})
        self.assertEqual([r["headers"]["Authorization"] for r in self.srv.seen("endpoint-a")],
                         ["Bearer key-a"] * 2)
        self.assertEqual([r["headers"]["Authorization"] for r in self.srv.seen("endpoint-b")],
                         ["Bearer key-b"] * 2)
        # b's prompts never show up in a's requests
        for r in self.srv.seen("endpoint-a"):
            self.assertEqual(len(r["body"]["messages"]), 2)  # system + this call's user turn
        self.assertEqual(w.call("cleanup_session", {"session_id": "a"})["freed_programs"], 1)
        self.assertEqual(self.execute(w, session="b")["result"]["outputs"]["answer"],
                         "answer from endpoint-b #3")

    def test_cache_only_when_asked_and_never_in_home(self):
        w = self.spawn_real()
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")
        self.openai(w, "cached", cache=True)
        first = self.execute(w)["result"]["outputs"]["answer"]
        second = self.execute(w)["result"]["outputs"]["answer"]
        self.assertEqual((first, second), ("answer from cached #1", "answer from cached #1"))
        self.assertEqual(len(self.srv.seen("cached")), 1)
        dirs = glob.glob(os.path.join(tempfile.gettempdir(), "pyvisor-dspy-cache-%d-*" % w.pid))
        self.assertEqual(len(dirs), 1, "the disk cache is in the worker's own temporary dir")
        w.close_stdin()
        w.wait(10)
        self.assertFalse(os.path.exists(dirs[0]), "removed when the worker exits")


TRAIN = [{"inputs": {"question": q}, "outputs": {"answer": a}}
         for q, a in (("a", "A"), ("b", "B"), ("c", "C"))]
ANSWERS = {"provider": "dummy", "answers": {"a": {"answer": "A"}, "b": {"answer": "b "}}}


def collect(w, rids, timeout=30):
    """Read frames until every request in ``rids`` has its final reply; ack every
    chunk. ``{rid: (chunks, reply)}`` and the order the final replies came in."""
    out = {rid: ([], None) for rid in rids}
    order = []
    deadline = time.monotonic() + timeout
    while len(order) < len(rids):
        msg = w.read_reply(max(0.1, deadline - time.monotonic()))
        rid = msg.get("id")
        assert rid in out, "frame for an id not in flight: %r" % (msg,)
        if "chunk" in msg and "ok" not in msg:
            out[rid][0].append(msg["chunk"])
            w.send({"id": rid, "ack": len(out[rid][0])})
        else:
            out[rid] = (out[rid][0], msg)
            order.append(rid)
    return out, order


@needs_dspy
class TestProgramState(RealDspyCase):
    """export_program / import_program / optimize_program / restore.program.state
    with real DSPy, across worker processes."""

    def optimize(self, w, pid="qa", session="s", trainset=TRAIN, **extra):
        chunks, reply = stream_request(w, "optimize_program", dict(
            extra, program_id=pid, trainset=trainset), session=session, timeout=60)
        self.assertTrue(reply["ok"], reply)
        self.assertIsNone(reply["result"])
        return chunks

    def test_optimize_export_import_elsewhere(self):
        w = self.spawn_real()
        w.call("configure_lm", ANSWERS, session="s")
        w.call("create_program", {"id": "qa", "type": "chain_of_thought",
                                  "signature": dict(QA, instructions="Answer in one letter.")},
               session="s")
        chunks = self.optimize(w)
        progress, result = chunks[:-1], chunks[-1]
        self.assertEqual(progress, [{"type": "progress", "done": i, "total": 3}
                                    for i in (1, 2, 3)])
        self.assertEqual((result["type"], result["program_id"], result["demos"]),
                         ("result", "qa", 3))
        demos = result["state"]["predict"]["demos"]
        # "a" is answered right by the LM (bootstrapped, with its reasoning), "b" too
        # (case and spaces ignored), "c" is not: it stays a labeled demo
        self.assertEqual(demos, [
            {"augmented": True, "question": "a", "reasoning": "dummy reasoning about: a",
             "answer": "A"},
            {"augmented": True, "question": "b", "reasoning": "dummy reasoning about: b",
             "answer": "b"},
            {"question": "c", "answer": "C"}])
        self.assertNotIn("lm", result["state"]["predict"])
        exported = w.call("export_program", {"program_id": "qa"}, session="s")
        self.assertEqual(exported["state"], result["state"])
        self.assertEqual(exported["state"]["predict"]["signature"]["instructions"],
                         "Answer in one letter.")
        self.assertEqual(w.call("get_program_info", {"program_id": "qa"}, session="s")["demos"],
                         3)
        # the dummy answers a demo's inputs with the demo's outputs
        self.assertEqual(self.execute(w, question="c")["result"]["outputs"]["answer"], "C")
        # another worker process, with the default dummy LM (no answers table)
        w2 = self.spawn_real()
        w2.call("create_program", {"id": "p2", "type": exported["type"],
                                   "signature": exported["signature"]}, session="t")
        self.assertEqual(w2.call("import_program", {"program_id": "p2",
                                                    "state": exported["state"]}, session="t"),
                         {"program_id": "p2", "imported": True, "demos": 3})
        for q, a in (("a", "A"), ("b", "b"), ("c", "C"), ("d", "dummy answer to: d")):
            r = self.execute(w2, "p2", session="t", question=q)["result"]
            self.assertEqual(r["outputs"]["answer"], a, q)
        self.assertEqual(w2.call("export_program", {"program_id": "p2"}, session="t")["state"],
                         exported["state"])

    def test_demos_reach_the_prompt(self):
        # BootstrapFewShot against the loopback LM, whose "upper" answers are right for
        # a trainset labelled in upper case: bootstrapped demos, then in every prompt.
        w = self.spawn_real()
        self.openai(w, "upper")
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")
        train = [{"inputs": {"question": q}, "outputs": {"answer": q.upper()}}
                 for q in ("first question", "second question", "third question")]
        chunks = self.optimize(w, trainset=train, max_bootstrapped_demos=2,
                               max_labeled_demos=2)
        # two bootstrapped demos are enough: BootstrapFewShot stops before the third
        # example, and the last progress chunk says the run is through the trainset
        self.assertEqual(chunks[:-1], [{"type": "progress", "done": i, "total": 3}
                                       for i in (1, 2, 3)])
        demos = chunks[-1]["state"]["demos"]
        self.assertEqual([d["question"] for d in demos], ["first question", "second question"])
        self.assertTrue(all(d.get("augmented") for d in demos))
        n = len(self.srv.seen("upper"))
        r = self.execute(w, question="new one")["result"]
        self.assertEqual(r["outputs"]["answer"], "NEW ONE")
        req = self.srv.seen("upper")[n]
        turns = [m["content"] for m in req["body"]["messages"][1:]]
        self.assertEqual(len(turns), 5, "two demos (user + assistant each), then the question")
        self.assertIn("first question", turns[0])
        self.assertIn("FIRST QUESTION", turns[1])
        self.assertIn("second question", turns[2])
        self.assertIn("new one", turns[4])

    def test_restore_with_state_on_a_fresh_worker(self):
        w = self.spawn_real()
        w.call("configure_lm", ANSWERS, session="s")
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")
        state = self.optimize(w)[-1]["state"]
        w.kill()  # the worker that optimized is gone
        w2 = self.spawn_real()
        spec = {"id": "qa", "signature": QA, "state": state, "state_rev": 1}

        def run(question, program):
            return w2.call("execute_program", {"program_id": "qa",
                                               "inputs": {"question": question},
                                               "restore": {"program": program}}, session="s")
        r = run("c", spec)
        self.assertEqual((r["outputs"]["answer"], r["restored"]), ("C", True))
        r = run("a", spec)
        self.assertEqual((r["outputs"]["answer"], r["restored"]), ("A", False))
        info = w2.call("get_program_info", {"program_id": "qa", "restore": {"program": spec}},
                       session="s")
        self.assertEqual((info["demos"], info["restored"]), (3, False))
        empty = dict(state, demos=[])
        r = run("c", dict(spec, state=empty, state_rev=2))
        self.assertEqual((r["outputs"]["answer"], r["restored"]), ("dummy answer to: c", True))
        # export with restore: the state the spec says
        r = w2.call("export_program", {"program_id": "qa", "restore": {"program": spec}},
                    session="s")
        self.assertEqual((r["state"], r["restored"]), (state, True))

    def test_bad_states_are_refused_precisely(self):
        w = self.spawn_real()
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")
        w.call("create_program", {"id": "cot", "type": "chain_of_thought", "signature": QA},
               session="s")
        good = w.call("export_program", {"program_id": "qa"}, session="s")["state"]
        good["demos"] = [{"question": "q", "answer": "kept"}]
        w.call("import_program", {"program_id": "qa", "state": good}, session="s")
        fields = good["signature"]["fields"]
        cases = [
            ("qa", "nope", "import_program: state must be a map, got str"),
            ("qa", dict(good, forward=1),
             "import_program: state has unknown key(s) 'forward' (a Predict's state has "
             "'traces', 'train', 'demos', 'signature')"),
            ("qa", {"demos": []}, "import_program: state lacks 'signature'"),
            ("qa", dict(good, demos=[{"question": "q"}, ["x"]]),
             "import_program: state.demos[1] must be a map of field values, got list"),
            ("qa", dict(good, signature={"instructions": 3, "fields": fields}),
             "import_program: state.signature.instructions must be a string, got 3"),
            ("qa", dict(good, signature={"instructions": "", "fields": fields + fields}),
             "import_program: state.signature.fields has 4 entries, the program's signature "
             "has 2 field(s) (question, answer)"),
            ("qa", dict(good, signature={"instructions": "", "fields": [fields[0], "x"]}),
             "import_program: state.signature.fields[1] (field 'answer') must be a map with "
             "string prefix and description, got 'x'"),
            ("qa", dict(good, fields={"answer": {"threshold": 0.5}}),
             "import_program: load_state refused the state: ValueError: Decision "
             "configuration refers to unsupported outputs: ['answer']."),
            ("cot", good, "import_program: state lacks 'predict' and has unknown key(s) "
                          "'traces', 'train', 'demos', 'signature' (a ChainOfThought program's "
                          "state has 'predict')"),
            ("cot", {"predict": good},
             "import_program: state.predict.signature.fields has 2 entries, the program's "
             "signature has 3 field(s) (question, reasoning, answer)"),
        ]
        for pid, state, message in cases:
            e = w.error("import_program", {"program_id": pid, "state": state}, session="s")
            self.assertEqual((e["type"], e["message"]), ("ValueError", message))
        # nothing was half-loaded
        self.assertEqual(w.call("export_program", {"program_id": "qa"}, session="s")["state"],
                         good)
        self.assertEqual(self.execute(w, question="q")["result"]["outputs"]["answer"], "kept")
        # an lm in an imported state is ignored: the session's LM answers
        w.call("import_program", {"program_id": "qa", "state": dict(good, lm={
            "model": "openai/elsewhere", "api_base": "http://10.0.0.1/v1"})}, session="s")
        self.assertEqual(self.execute(w, question="q")["result"]["provider"], "dummy")

    def test_optimize_fails_when_every_attempt_fails(self):
        w = self.spawn_real()
        self.openai(w, "401")
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")
        chunks, reply = stream_request(w, "optimize_program", {
            "program_id": "qa", "trainset": TRAIN}, session="s", timeout=60)
        self.assertEqual([c["type"] for c in chunks], [])
        self.assertIs(reply["ok"], False)
        err = reply["error"]
        self.assertEqual(err["type"], "LMError")
        self.assertTrue(err["message"].startswith(
            "optimize_program: BootstrapFewShot on program 'qa' failed: LMAuthError (HTTP 401)"),
            err["message"])
        self.assertEqual(err.get("details", {}).get("status"), 401)
        self.assertEqual(w.call("export_program", {"program_id": "qa"}, session="s")["state"]
                         ["demos"], [])


@needs_dspy
class TestStreaming(RealDspyCase):
    def stream(self, w, pid="qa", question="What is DSPy?", session="s"):
        return stream_request(w, "stream_program", {"program_id": pid,
                                                    "inputs": {"question": question}},
                              session=session)

    def test_token_stream_from_the_loopback_server(self):
        w = self.spawn_real()
        self.openai(w, "ok")
        w.call("create_program", {"id": "cot", "type": "chain_of_thought", "signature": QA},
               session="s")
        n = len(self.srv.seen("ok"))
        chunks, reply = self.stream(w, "cot")
        self.assertTrue(reply["ok"], reply)
        self.assertIs(self.srv.seen("ok")[n]["body"]["stream"], True)
        self.assertEqual(chunks[-1]["type"], "result")
        fields = chunks[:-1]
        self.assertTrue(all(c["type"] == "field" for c in fields), chunks)
        self.assertEqual([c["field"] for c in fields],
                         sorted((c["field"] for c in fields), key=["reasoning", "answer"].index),
                         "reasoning, then answer")
        self.assertGreaterEqual(sum(c["field"] == "answer" for c in fields), 3)
        result = chunks[-1]["result"]
        self.assertEqual(field_texts(chunks), result["outputs"])
        self.assertRegex(result["outputs"]["answer"], r"^answer from ok #\d+$")
        self.assertEqual(sorted(result), ["model", "outputs", "program_id", "provider", "usage"])
        self.assertEqual(result["usage"]["total_tokens"], 18)
        self.assertEqual(sorted(self.execute(w, "cot")["result"]), sorted(result))

    def test_dummy_lm_gives_each_field_whole(self):
        w = self.spawn_real()
        w.call("create_program", {"id": "cot", "type": "chain_of_thought", "signature": QA},
               session="s")
        chunks, reply = self.stream(w, "cot", "hi")
        self.assertEqual(chunks, [
            {"type": "field", "field": "reasoning", "text": "dummy reasoning about: hi"},
            {"type": "field", "field": "answer", "text": "dummy answer to: hi"},
            {"type": "result", "result": {"program_id": "cot", "provider": "dummy",
                                          "model": "dummy", "outputs": {
                                              "reasoning": "dummy reasoning about: hi",
                                              "answer": "dummy answer to: hi"}}}])
        self.assertIsNone(reply["result"])

    def test_errors_keep_their_details(self):
        w = self.spawn_real()
        self.openai(w, "429")
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")
        chunks, reply = self.stream(w)
        self.assertEqual(chunks, [])
        err = reply["error"]
        self.assertEqual(err["type"], "LMError")
        self.assertIn("dspy program 'qa' failed: LMRateLimitError (HTTP 429, retry after 7s)",
                      err["message"])
        self.assertEqual((err["details"]["status"], err["details"]["retry_after"],
                          err["details"]["kind"]), (429, 7.0, "LMRateLimitError"))
        e = self.execute(w)["error"]
        self.assertEqual(e["details"], dict(err["details"]))


@needs_dspy
class TestCancel(RealDspyCase):
    """A cancel frame stops a DSPy stream (its LM request is dropped) and an
    optimization (the program is left as it was)."""

    def test_cancel_mid_stream_drops_the_lm_request(self):
        w = self.spawn_real()
        self.openai(w, "slowstream")
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")
        w.send({"id": 77, "cmd": "stream_program", "session": "s", "stream": 1,
                "args": {"program_id": "qa", "inputs": {"question": "q"}}})
        first = w.read_reply(30)
        self.assertEqual((first["id"], first["chunk"]["type"]), (77, "field"))
        t = time.monotonic()
        w.send({"id": 77, "cancel": True})  # no ack: the stream waits for credit
        final = w.read_reply(10)
        self.assertEqual((final["id"], final["ok"], final["error"]["type"]),
                         (77, False, "Cancelled"))
        self.assertIs(w.call("ping")["pong"], True)
        self.assertLess(time.monotonic() - t, 1.0)
        deadline = time.monotonic() + 5
        while not self.srv.stream_ends and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual([e for _, e in self.srv.stream_ends], ["aborted"],
                         "the LM's stream was closed, not read to its end")

    def test_cancelled_optimization_changes_nothing(self):
        w = self.spawn_real()
        self.openai(w, "delay200")
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")
        train = [{"inputs": {"question": "q%d" % i}, "outputs": {"answer": "x"}}
                 for i in range(4)]
        w.send({"id": 78, "cmd": "optimize_program", "session": "s", "stream": 1,
                "args": {"program_id": "qa", "trainset": train}})
        first = w.read_reply(30)
        self.assertEqual(first["chunk"], {"type": "progress", "done": 1, "total": 4})
        w.send({"id": 78, "cancel": True})
        final = w.read_reply(10)
        self.assertEqual((final["id"], final["error"]["type"]), (78, "Cancelled"))
        self.assertEqual(w.call("export_program", {"program_id": "qa"}, session="s")
                         ["state"]["demos"], [])
        time.sleep(1.0)  # the helper thread has finished meanwhile
        self.assertEqual(w.call("export_program", {"program_id": "qa"}, session="s")
                         ["state"]["demos"], [])
        self.assertEqual(len(self.srv.seen("delay200")), 4, "the thread ran to its end")


@needs_dspy
class TestConcurrency(RealDspyCase):
    def test_eight_executions_in_flight(self):
        w = self.spawn_real(extra_args=["--concurrency", "8"])
        self.assertEqual(w.ready.get("concurrency"), 8)
        self.openai(w, "delay200")
        w.call("create_program", {"id": "qa", "signature": QA}, session="s")
        self.execute(w)  # the first call builds the LM's connection pool
        rids = list(range(1000, 1008))
        t = time.monotonic()
        for rid in rids:
            w.send_request(rid, "execute_program", {"program_id": "qa",
                                                    "inputs": {"question": "q%d" % rid}}, "s")
        replies, _ = collect(w, rids)
        elapsed = time.monotonic() - t
        self.assertTrue(all(r["ok"] for _, r in replies.values()), replies)
        self.assertLess(elapsed, 0.9, "8 x 200 ms in flight at once, not one after another")
        # each result has its own call's usage, not a sum over the calls in flight
        self.assertEqual([r["result"]["usage"]["total_tokens"] for _, r in replies.values()],
                         [18] * 8)
        answers = {r["result"]["outputs"]["answer"] for _, r in replies.values()}
        self.assertEqual(len(answers), 8, "8 requests reached the server")
        self.assertEqual(w.call("get_program_info", {"program_id": "qa"},
                                session="s")["executions"], 9)

    def test_two_sessions_never_see_each_others_lm(self):
        w = self.spawn_real(extra_args=["--concurrency", "8"])
        for sid in ("a", "b"):
            self.openai(w, "delay200-" + sid, session=sid, api_key="key-" + sid)
            w.call("create_program", {"id": "qa", "type": "chain_of_thought", "signature": QA},
                   session=sid)
        rids = {}
        for i in range(8):
            sid = "ab"[i % 2]
            rid = 2000 + i
            rids[rid] = sid
            if i % 4 == 3:  # streams in flight among the executions
                w.send({"id": rid, "cmd": "stream_program", "session": sid, "stream": 64,
                        "args": {"program_id": "qa", "inputs": {"question": "q"}}})
            else:
                w.send_request(rid, "execute_program", {"program_id": "qa",
                                                        "inputs": {"question": "q"}}, sid)
        replies, _ = collect(w, list(rids))
        for rid, sid in rids.items():
            chunks, reply = replies[rid]
            self.assertTrue(reply["ok"], reply)
            result = chunks[-1]["result"] if chunks else reply["result"]
            for field in ("reasoning", "answer"):
                self.assertRegex(result["outputs"][field],
                                 r"^%s from delay200-%s #\d+$" % (field, sid))
        for sid in ("a", "b"):
            seen = self.srv.seen("delay200-" + sid)
            self.assertEqual(len(seen), 4)
            self.assertEqual({r["headers"]["Authorization"] for r in seen}, {"Bearer key-" + sid})


class _FakeWorker(object):
    mode = "pool-worker"
    worker_id = "in_process"
    pid = os.getpid()

    def __init__(self):
        self.sessions = {}

    def session_dict(self, sid, create=True):
        if sid not in self.sessions and create:
            self.sessions[sid] = {}
        return self.sessions.get(sid)


@needs_dspy
class TestInProcess(unittest.TestCase):
    """The bridge's DSPy glue in this process, where DSPy's own state can be read."""

    @classmethod
    def setUpClass(cls):
        cls.srv = ChatServer()
        from pyvisor import dspy_commands, registry
        cls.dc = dspy_commands
        cls.registry = registry
        cls.worker = _FakeWorker()

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def call(self, cmd, args, session):
        ctx = self.registry.Context(self.worker, 1, session, cmd)
        return self.registry.get_command(cmd)(args, ctx)

    def configure(self, session, tag):
        self.call("configure_lm", {"provider": "openai", "model": "shared",
                                   "base_url": self.srv.url(tag), "api_key": "k"}, session)

    def test_imported_at_start_with_the_environment_set(self):
        self.assertIs(self.dc.dspy_module(), dspy)
        self.assertEqual(self.dc.engine_name(), "dspy")
        self.assertEqual(os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP"), "True")
        self.assertEqual(os.environ.get("LITELLM_OFFLINE_MODE"), "true")
        self.assertTrue(os.environ.get("DSPY_CACHEDIR"))
        self.assertGreaterEqual(sys.version_info[:2], (3, 10), "DSPy 3.x needs Python >= 3.10")
        self.assertTrue(dspy.settings.disable_history)

    def test_no_history_no_trace_no_cache(self):
        from dspy.clients import base_lm
        for sid, tag in (("h1", "hist-1"), ("h2", "hist-2")):
            self.configure(sid, tag)
            self.call("create_program", {"id": "qa", "type": "chain_of_thought",
                                         "signature": QA}, sid)
        trace = dspy.settings.trace
        trace_len = len(trace) if trace is not None else None
        for sid in ("h1", "h2", "h1"):
            r = self.call("execute_program", {"program_id": "qa",
                                              "inputs": {"question": "secret of " + sid}}, sid)
            self.assertIn("from hist-", r["outputs"]["answer"])
        self.assertEqual(base_lm.GLOBAL_HISTORY, [])
        for sid in ("h1", "h2"):
            ns = self.worker.sessions[sid][self.dc.STATE_KEY]
            self.assertEqual(ns.dspy_lm.history, [])
            self.assertEqual(ns.dspy_lm.cache, False)
            self.assertEqual(ns.dspy_lm.num_retries, 0)
            for module in (ns.programs["qa"].module, ns.programs["qa"].module.predict):
                self.assertEqual(getattr(module, "history", []), [])
        now = dspy.settings.trace
        self.assertEqual(len(now) if now is not None else None, trace_len)
        self.assertNotIn("cache", vars(dspy), "dspy.cache was never built")
        self.assertNotIn("litellm", sys.modules, "the native engine served the calls")
        lm = self.worker.sessions["h1"][self.dc.STATE_KEY].dspy_lm
        self.assertEqual(self.dc._cleanup("h1", self.worker.sessions.pop("h1")),
                         {"freed_programs": 1})
        self.assertEqual(lm._engine_store, {}, "cleanup closed the session's LM (its pools)")

    def test_lm_error_attributes(self):
        self.configure("e", "429")
        self.call("create_program", {"id": "qa", "signature": QA}, "e")
        with self.assertRaises(self.dc.LMError) as cm:
            self.call("execute_program", {"program_id": "qa", "inputs": {"question": "q"}}, "e")
        e = cm.exception
        self.assertEqual((e.status, e.retry_after, e.code, e.kind),
                         (429, 7.0, "rate_limit", "LMRateLimitError"))
        self.assertIsInstance(e.__cause__, dspy.LMRateLimitError)
        self.assertEqual(e.details["status"], 429)
        self.configure("e", "garbage")
        with self.assertRaises(self.dc.AdapterParseError) as cm:
            self.call("execute_program", {"program_id": "qa", "inputs": {"question": "q"}}, "e")
        self.assertIsInstance(cm.exception.__cause__, dspy.AdapterParseError)

    def drain(self, cmd, args, session):
        """All chunks of a generator command (sync or async), as the worker
        would stream them."""
        import asyncio
        gen = self.call(cmd, args, session)
        if hasattr(gen, "__anext__"):
            async def run():
                return [c async for c in gen]
            return asyncio.run(run())
        return list(gen)

    def test_stream_over_sse(self):
        self.configure("st", "ok")
        self.call("create_program", {"id": "cot", "type": "chain_of_thought", "signature": QA},
                  "st")
        n = len(self.srv.seen("ok"))
        chunks = self.drain("stream_program", {"program_id": "cot",
                                               "inputs": {"question": "q"}}, "st")
        req = self.srv.seen("ok")[n]
        self.assertIs(req["body"].get("stream"), True, "DSPy asked for a stream")
        fields = [c for c in chunks[:-1]]
        self.assertTrue(all(c["type"] == "field" for c in fields), chunks)
        self.assertEqual(chunks[-1]["type"], "result")
        res = chunks[-1]["result"]
        joined = {}
        for c in fields:
            joined[c["field"]] = joined.get(c["field"], "") + c["text"]
        self.assertEqual(joined, res["outputs"])
        self.assertEqual(list(joined), ["reasoning", "answer"])
        self.assertGreater(sum(1 for c in fields if c["field"] == "answer"), 2,
                           "the answer came in several chunks")
        self.assertRegex(res["outputs"]["answer"], r"^answer from ok #\d+$")
        self.assertEqual(res["usage"], {"prompt_tokens": 11, "completion_tokens": 7,
                                        "total_tokens": 18})
        # streaming twice in a row (a new event loop each time, as the worker runs them)
        again = self.drain("stream_program", {"program_id": "cot",
                                              "inputs": {"question": "q"}}, "st")
        self.assertEqual(again[-1]["type"], "result")

    def test_threads_keep_sessions_lms_and_usage_apart(self):
        # 8 threads, 2 sessions on 2 endpoints, interleaved: every result is its
        # session's, and its usage is its own call's (not summed across threads).
        from concurrent.futures import ThreadPoolExecutor
        for sid in ("ta", "tb"):
            self.configure(sid, "thr-" + sid)
            self.call("create_program", {"id": "qa", "signature": QA}, sid)
        self.call("configure_lm", {"provider": "dummy", "answers": {"*": {"answer": "dummy-c"}}},
                  "tc")
        self.call("create_program", {"id": "qa", "signature": QA}, "tc")

        def one(i):
            sid = ("ta", "tb", "tc")[i % 3]
            r = self.call("execute_program", {"program_id": "qa",
                                              "inputs": {"question": "q%d" % i}}, sid)
            return sid, r
        with ThreadPoolExecutor(8) as ex:
            results = list(ex.map(one, range(48)))
        for sid, r in results:
            if sid == "tc":
                self.assertEqual((r["outputs"]["answer"], r.get("usage")), ("dummy-c", None))
            else:
                self.assertRegex(r["outputs"]["answer"], r"^answer from thr-%s #\d+$" % sid)
                self.assertEqual(r["usage"]["total_tokens"], 18)
        for sid in ("ta", "tb"):
            self.assertEqual(len(self.srv.seen("thr-" + sid)), 16)
            self.assertEqual(self.call("get_program_info", {"program_id": "qa"},
                                       sid)["executions"], 16)

    def test_optimize_closed_early_changes_nothing(self):
        self.configure("oc", "delay200")
        self.call("create_program", {"id": "qa", "signature": QA}, "oc")
        gen = self.call("optimize_program", {"program_id": "qa", "trainset": [
            {"inputs": {"question": "q%d" % i}, "outputs": {"answer": "a"}}
            for i in range(4)]}, "oc")
        first = next(gen)
        self.assertEqual(first, {"type": "progress", "done": 1, "total": 4})
        gen.close()  # what the worker does on a cancel
        time.sleep(1.2)  # the helper thread finishes alone meanwhile
        state = self.call("export_program", {"program_id": "qa"}, "oc")["state"]
        self.assertEqual(state["demos"], [])

    def test_reserved_names_cover_dspy_and_pydantic(self):
        import pydantic
        public = set()
        for obj in (dspy.Signature, type(dspy.Signature), pydantic.BaseModel):
            public |= {n for n in dir(obj) if not n.startswith("_")}
        public -= {n for n in dir(type) if not n.startswith("_")} - {"mro"}
        missing = sorted(n for n in public if n not in self.dc.RESERVED_FIELD_NAMES
                         and not n.startswith("model_"))
        self.assertEqual(missing, [], "names DSPy/pydantic use that signatures may still take")


if __name__ == "__main__":
    unittest.main()
