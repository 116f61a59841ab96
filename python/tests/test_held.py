"""A reply says whether the worker now holds state for the request's session
(``held``), and only when that changes: what lets the host pin a session to the
worker that holds its state (affinity 'auto') and nothing else."""

from .helpers import WorkerTestCase, ECHO_HANDLERS


class TestHeld(WorkerTestCase):
    def setUp(self):
        super().setUp()
        self.w = self.spawn(handlers=[ECHO_HANDLERS], worker_id="wh")

    def test_held_reported_when_it_changes_only(self):
        r = self.w.request("echo", {"x": 1}, session="s")
        self.assertNotIn("held", r, "a stateless request says nothing")
        r = self.w.request("session_put", {"key": "k", "value": 1}, session="s")
        self.assertIs(r["held"], True, "the first write: the worker now holds state")
        r = self.w.request("session_get", {"key": "k"}, session="s")
        self.assertNotIn("held", r, "unchanged: not repeated")
        r = self.w.request("session_put", {"key": "k2", "value": 2}, session="s")
        self.assertNotIn("held", r)

    def test_anonymous_requests_never_carry_held(self):
        r = self.w.request("session_put", {"key": "k", "value": 1})
        self.assertNotIn("held", r)

    def test_cleanup_forgets_and_a_new_write_reports_again(self):
        self.assertIs(self.w.request("session_put", {"key": "k", "value": 1}, session="s")["held"], True)
        self.w.call("cleanup_session", {"session_id": "s"})
        r = self.w.request("session_put", {"key": "k", "value": 1}, session="s")
        self.assertIs(r["held"], True, "after cleanup the session starts over")

    def test_an_error_reply_carries_held_too(self):
        r = self.w.request("session_put_then_raise", {"key": "k", "value": 1}, session="e")
        self.assertIs(r["ok"], False)
        self.assertIs(r["held"], True, "the handler wrote state before it raised")

    def test_sessions_are_independent(self):
        self.assertIs(self.w.request("session_put", {"key": "k", "value": 1}, session="a")["held"], True)
        self.assertIs(self.w.request("session_put", {"key": "k", "value": 1}, session="b")["held"], True)
