"""Streamed replies: a generator handler's chunks under the host's credit window.

A request with ``stream: WINDOW`` whose handler returns a generator (or an
async generator) is answered with one ``{id, chunk}`` frame per ``yield``,
then its one final reply: the generator's ``return`` value (nil for an async
generator, which has none). The worker never has more than WINDOW chunks of
the request sent and not yet acknowledged: the host's ``{id, ack: n}`` (n =
chunks it consumed so far) gives credit back. ``{id, cancel: true}`` stops
the request: the generator is closed at its next ``yield`` (at once when it
is waiting for credit), an asyncio task is cancelled, and the final reply is
the ``Cancelled`` error.

A generator without ``stream`` is drained: the result is the list of the
values it yielded.

Who reads the host's control frames differs with ``--concurrency``: at 1 the
thread running the generator reads them itself while it waits for credit
(:mod:`pyvisor.inline`); above 1 the main thread reads them and wakes the
flight (:mod:`pyvisor.dispatch`). The drivers here serve both.
"""

from __future__ import annotations

import sys
import traceback
from typing import TYPE_CHECKING, Any, AsyncGenerator, Generator, List, Optional, Tuple

if TYPE_CHECKING:
    from .output import Output
    from .registry import Context

#: A generator handler's result: its values are the chunks.
ChunkGenerator = Generator[Any, Any, Any]
AsyncChunkGenerator = AsyncGenerator[Any, Any]

__all__ = ["Cancelled", "InputEnded", "Flight", "CANCEL_ERROR", "drive", "drive_async",
           "collect", "collect_async"]

#: The final reply of a cancelled request: ``(error.type, error.message)``.
CANCEL_ERROR = ("Cancelled", "cancelled by the host")


class Cancelled(Exception):
    """Raised by a driver whose flight was stopped. It becomes the final
    reply ``{type: etype, message}``: ``Cancelled``, or the ``ProtocolError``
    of a malformed control frame that named this request."""

    def __init__(self, etype: str = CANCEL_ERROR[0], message: str = CANCEL_ERROR[1]):
        Exception.__init__(self, message)
        self.etype = etype
        self.message = message


class InputEnded(BaseException):
    """The host's input ended (``code`` 0) or broke framing (``code`` 4)
    while a stream read it inline: the worker exits without a final reply.
    A BaseException, so that a handler's ``except Exception`` lets it by."""

    def __init__(self, code: int):
        BaseException.__init__(self, code)
        self.code = code


class Flight(object):
    """A request in flight that control frames can reach.

    ``sent`` counts the chunks written, ``acked`` the host's latest ack.
    ``stop_error`` is None until the request is stopped, then the
    ``(type, message)`` of its final reply. Subclasses say how to wait for
    credit and how to reach a waiting or running handler.
    """

    __slots__ = ("rid", "ctx", "window", "sent", "acked", "stop_error")

    rid: int
    ctx: Context
    window: Optional[int]
    sent: int
    acked: int
    stop_error: Optional[Tuple[str, str]]

    def __init__(self, ctx: Context, window: Optional[int]) -> None:
        self.rid = ctx.request_id
        self.ctx = ctx
        self.window = window
        self.sent = 0
        self.acked = 0
        self.stop_error = None

    def on_ack(self, n: int) -> None:
        if n > self.acked:  # cumulative: a stale (lower) ack changes nothing
            self.acked = n
            self.wake()

    def stop(self, error: Tuple[str, str] = CANCEL_ERROR) -> None:
        if self.stop_error is None:
            self.stop_error = error
            self.ctx._cancelled = True
            self.wake()
            self.interrupt()

    def check(self) -> None:
        """Raise :class:`Cancelled` once the request was stopped."""
        if self.stop_error is not None:
            raise Cancelled(*self.stop_error)

    # -- how this flight is reached (subclasses) -----------------------------

    def wake(self) -> None:
        """Credit or a stop arrived: wake a waiting driver."""

    def interrupt(self) -> None:
        """Stopped: interrupt the handler where that is possible (a task)."""

    def after_chunk(self) -> None:
        """Called after each chunk (inline flights look for control frames)."""

    def wait_credit(self) -> None:
        """Block until ``sent - acked < window`` or the flight is stopped."""
        raise NotImplementedError

    async def await_credit(self) -> None:
        """:meth:`wait_credit` for an async generator."""
        raise NotImplementedError


def _close(gen: ChunkGenerator, flight: Flight) -> None:
    try:
        gen.close()
    except Exception:
        if flight.stop_error is None:
            raise
        # Stopped: the reply is the stop's error whatever the cleanup did.
        sys.stderr.write("pyvisor: request %r: error while closing its generator:\n" % flight.rid)
        traceback.print_exc()


async def _aclose(agen: AsyncChunkGenerator, flight: Flight) -> None:
    try:
        await agen.aclose()
    except Exception:
        if flight.stop_error is None:
            raise
        sys.stderr.write("pyvisor: request %r: error while closing its generator:\n" % flight.rid)
        traceback.print_exc()


def drive(gen: ChunkGenerator, flight: Flight, out: Output) -> Any:
    """Run ``gen`` as the stream of ``flight``: one chunk per value, waiting
    for credit after each one that fills the window. Returns the
    generator's return value; raises what it raises, :class:`Cancelled`
    when stopped, SerializationError for a chunk that cannot be sent. The
    generator is always closed on the way out (its ``finally`` runs before
    the final reply)."""
    rid = flight.rid
    window = flight.window
    assert window is not None  # a stream has its window
    throw: Optional[BaseException] = None
    try:
        while True:
            try:
                if throw is None:
                    value = next(gen)
                else:
                    exc, throw = throw, None
                    value = gen.throw(exc)
            except StopIteration as e:
                return e.value
            flight.check()
            try:
                flight.sent += 1  # before the write: an ack may come back at once
                out.chunk(rid, value)
                flight.after_chunk()
                if flight.sent - flight.acked >= window:
                    flight.wait_credit()
            except KeyboardInterrupt as e:
                # SIGINT (concurrency 1) hit the worker's code, not the
                # generator's: deliver it where the generator is suspended.
                throw = e
            flight.check()
    finally:
        _close(gen, flight)


async def drive_async(agen: AsyncChunkGenerator, flight: Flight, out: Output) -> None:
    """:func:`drive` for an async generator (which returns nothing)."""
    rid = flight.rid
    window = flight.window
    assert window is not None  # a stream has its window
    throw: Optional[BaseException] = None
    try:
        while True:
            try:
                if throw is None:
                    value = await agen.__anext__()
                else:
                    exc, throw = throw, None
                    value = await agen.athrow(exc)
            except StopAsyncIteration:
                return None
            flight.check()
            try:
                flight.sent += 1
                out.chunk(rid, value)
                flight.after_chunk()
                if flight.sent - flight.acked >= window:
                    await flight.await_credit()
            except KeyboardInterrupt as e:
                throw = e
            flight.check()
    finally:
        await _aclose(agen, flight)


def collect(gen: ChunkGenerator, flight: Optional[Flight] = None) -> List[Any]:
    """The values ``gen`` yields, as a list (a generator called without
    ``stream``). With a ``flight``, a cancel stops it at its next yield."""
    if flight is None:
        return list(gen)
    items: List[Any] = []
    try:
        flight.check()
        for value in gen:
            items.append(value)
            flight.check()
    finally:
        _close(gen, flight)
    return items


async def collect_async(agen: AsyncChunkGenerator, flight: Optional[Flight] = None) -> List[Any]:
    """:func:`collect` for an async generator."""
    items: List[Any] = []

    try:
        async for value in agen:
            items.append(value)
            if flight is not None:
                flight.check()
    finally:
        if flight is None:
            await agen.aclose()
        else:
            await _aclose(agen, flight)
    return items
