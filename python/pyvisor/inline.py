"""Streams at ``--concurrency 1``: the generator runs on the main thread, and
the main thread reads the host's frames itself while the stream runs.

After each chunk it takes whatever frames are already there (without
waiting); when the window is full it blocks until an ack or a cancel comes.
Acks and cancels for the stream apply at once; a request frame that arrives
meanwhile waits in ``worker.pending`` and is served after the stream's
final reply, in order.

SIGINT must not cut a frame in half: it may raise only while the reader is
parked at a frame boundary (:meth:`FrameReader.wait_readable` consumes
nothing). While a frame is being read or applied the signal handler only
sets ``worker.sigint_pending``, and the ``KeyboardInterrupt`` is raised once
the frame is complete; the driver then throws it into the generator.
"""

from __future__ import annotations

import asyncio
from types import GeneratorType
from typing import TYPE_CHECKING, Any, Optional

from . import control, framing
from .streams import Flight, InputEnded, collect_async, drive, drive_async

if TYPE_CHECKING:
    from .loop import Worker
    from .registry import Context

__all__ = ["InlineFlight", "run"]

_EOF = 0  # loop.EXIT_OK: the host closed stdin, a normal end


class InlineFlight(Flight):
    """A stream whose control frames the running thread reads itself."""

    __slots__ = ("worker",)

    def __init__(self, worker: Worker, ctx: Context, window: int) -> None:
        Flight.__init__(self, ctx, window)
        self.worker = worker

    def after_chunk(self) -> None:
        poll(self.worker)

    def wait_credit(self) -> None:
        read_until_credit(self.worker, self)

    async def await_credit(self) -> None:
        # The event loop stands still meanwhile: nothing in this request may
        # run ahead of the host's credit anyway.
        read_until_credit(self.worker, self)


def run(worker: Worker, result: Any, ctx: Context, window: Optional[int]) -> Any:
    """:func:`pyvisor.loop.invoke`'s path for a generator or async generator
    result: a stream when the request carried ``stream``, else the list."""
    if type(result) is GeneratorType:
        if window is None:
            return list(result)
        flight = InlineFlight(worker, ctx, window)
        worker.flights[flight.rid] = flight
        try:
            return drive(result, flight, worker.output)
        finally:
            worker.flights.pop(flight.rid, None)
    if window is None:
        return asyncio.run(collect_async(result))
    flight = InlineFlight(worker, ctx, window)
    worker.flights[flight.rid] = flight
    try:
        return asyncio.run(drive_async(result, flight, worker.output))
    finally:
        worker.flights.pop(flight.rid, None)


def _read_one(worker: Worker) -> bytes:
    try:
        payload = worker.reader.read_frame()
    except framing.FrameError as e:
        raise InputEnded(worker.input_broken(e))
    if payload is None:
        raise InputEnded(_EOF)
    return payload


def _take(worker: Worker, payload: bytes) -> None:
    if not control.take(worker, payload):
        worker.pending.append(payload)


def _raise_pending(worker: Worker) -> None:
    if worker.sigint_pending:
        worker.sigint_pending = False
        raise KeyboardInterrupt()


def poll(worker: Worker) -> None:
    """Apply the frames that already arrived; never waits for the host."""
    reader = worker.reader
    if not reader.ready():
        return
    worker.sigint_defer = True
    try:
        while True:
            _take(worker, _read_one(worker))
            if not reader.ready():
                break
    finally:
        worker.sigint_defer = False
    _raise_pending(worker)


def read_until_credit(worker: Worker, flight: Flight) -> None:
    """Read and apply frames until ``flight`` has credit or is stopped."""
    reader = worker.reader
    window = flight.window
    assert window is not None  # a stream has its window
    worker.sigint_defer = True
    try:
        while flight.stop_error is None and flight.sent - flight.acked >= window:
            if worker.sigint_pending:
                break
            worker.sigint_defer = False  # parked at a frame boundary: SIGINT may raise
            try:
                more = reader.wait_readable()
            finally:
                worker.sigint_defer = True
            if not more:
                raise InputEnded(_EOF)
            _take(worker, _read_one(worker))
    finally:
        worker.sigint_defer = False
    _raise_pending(worker)
