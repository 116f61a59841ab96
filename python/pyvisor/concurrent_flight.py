"""A request in flight above ``--concurrency 1``, and how its driver waits
for credit: a sync generator in a handler thread on a condition variable, an
async generator on the event loop on an ``asyncio.Event``. The main thread,
which reads the acks and cancels, wakes either one.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional

from .streams import Flight

if TYPE_CHECKING:
    from .registry import Context

__all__ = ["ConcurrentFlight", "WAITING", "RUNNING"]

WAITING, RUNNING = 0, 1


class ConcurrentFlight(Flight):
    """A request at concurrency > 1. Its fields change under the
    dispatcher's lock; ``cond`` (a sync generator's credit wait) is built on
    that lock, ``event`` (an async generator's) lives on the loop thread."""

    __slots__ = ("fn", "args", "is_async", "state", "cond", "loop", "event", "canceller",
                 "entered", "finished")

    fn: Callable[..., Any]
    args: Any
    is_async: bool
    state: int
    cond: Optional[threading.Condition]
    loop: Optional[asyncio.AbstractEventLoop]
    event: Optional[asyncio.Event]
    canceller: Optional[Callable[[], Any]]
    entered: bool
    finished: bool

    def __init__(self, ctx: Context, window: Optional[int], fn: Callable[..., Any], args: Any,
                 is_async: bool, lock: threading.Lock) -> None:
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

    def wake(self) -> None:
        if self.cond is not None:
            self.cond.notify_all()
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._set_event)

    def _set_event(self) -> None:
        if self.event is not None:
            self.event.set()

    def interrupt(self) -> None:
        if self.canceller is not None:
            self.canceller()

    def wait_credit(self) -> None:
        cond, window = self.cond, self.window
        assert cond is not None and window is not None  # a stream has both
        with cond:
            while self.stop_error is None and self.sent - self.acked >= window:
                cond.wait()

    async def await_credit(self) -> None:
        window = self.window
        assert window is not None  # a stream has its window
        ev = self.event
        if ev is None:
            ev = self.event = asyncio.Event()
        while self.stop_error is None and self.sent - self.acked >= window:
            ev.clear()
            # An ack that landed before clear() is seen here; one after it sets the event.
            if self.stop_error is not None or self.sent - self.acked < window:
                break
            await ev.wait()
