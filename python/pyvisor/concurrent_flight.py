"""A request in flight above ``--concurrency 1``, and how its driver waits
for credit: a sync generator in a handler thread on a condition variable, an
async generator on the event loop on an ``asyncio.Event``. The main thread,
which reads the acks and cancels, wakes either one.
"""

import asyncio
import threading

from .streams import Flight

__all__ = ["ConcurrentFlight", "WAITING", "RUNNING"]

WAITING, RUNNING = 0, 1


class ConcurrentFlight(Flight):
    """A request at concurrency > 1. Its fields change under the
    dispatcher's lock; ``cond`` (a sync generator's credit wait) is built on
    that lock, ``event`` (an async generator's) lives on the loop thread."""

    __slots__ = ("fn", "args", "is_async", "state", "cond", "loop", "event", "canceller",
                 "entered", "finished")

    def __init__(self, ctx, window, fn, args, is_async, lock):
        Flight.__init__(self, ctx, window)
        self.fn = fn
        self.args = args
        self.is_async = is_async
        self.state = WAITING
        self.cond = threading.Condition(lock) if window is not None else None
        self.loop = None
        self.event = None
        self.canceller = None
        self.entered = False
        self.finished = False

    def wake(self):
        if self.cond is not None:
            self.cond.notify_all()
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._set_event)

    def _set_event(self):
        if self.event is not None:
            self.event.set()

    def interrupt(self):
        if self.canceller is not None:
            self.canceller()

    def wait_credit(self):
        with self.cond:
            while self.stop_error is None and self.sent - self.acked >= self.window:
                self.cond.wait()

    async def await_credit(self):
        ev = self.event
        if ev is None:
            ev = self.event = asyncio.Event()
        while self.stop_error is None and self.sent - self.acked >= self.window:
            ev.clear()
            # An ack that landed before clear() is seen here; one after it sets the event.
            if self.stop_error is not None or self.sent - self.acked < self.window:
                break
            await ev.wait()
