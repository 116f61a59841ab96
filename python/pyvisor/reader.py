"""The main thread above ``--concurrency 1``: it reads the host's frames and
hands them to :meth:`pyvisor.loop.Worker.handle`, which dispatches requests
(:mod:`pyvisor.dispatch`) and applies control frames at once.

It waits with ``poll`` on stdin and on a wake-up pipe rather than in a
blocking read: a signal may be delivered to any of the worker's threads, and
``signal.set_wakeup_fd`` on that pipe makes the main thread return and run
the Python handler now, not at the next frame; a handler thread that writes
the reply ending a stop wakes it the same way. Frames are assembled from
what ``os.read`` returns (:class:`pyvisor.framing.FrameAssembler`), never
from a buffered reader whose buffer ``poll`` cannot see.
"""

from __future__ import annotations

import os
import select
import signal
import sys
from typing import TYPE_CHECKING

from . import framing

if TYPE_CHECKING:
    from .dispatch import Dispatcher

__all__ = ["serve"]


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def serve(dispatcher: Dispatcher) -> int:
    """Read and dispatch frames until stdin EOF, or a stop (SIGTERM,
    ``shutdown``, SystemExit) once nothing is in flight. Returns the exit code."""
    w = dispatcher.worker
    # Nothing was read through the worker's buffered reader before this
    # loop, so its descriptor can be read directly from here on.
    fd = w.reader.fileno()
    frames = framing.FrameAssembler(w.max_frame_bytes)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    dispatcher.wake_fd = wake_w
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    handle = w.handle
    while True:
        if dispatcher.broken:
            return 0
        if (w.term_requested or w.stop_code is not None) and dispatcher.idle():
            return w.stop_code if w.stop_code is not None else 0
        try:
            payload = frames.next_frame()
        except framing.FrameTooLarge as e:
            return w.input_broken(e)
        if payload is not None:
            try:
                handle(payload)
            except BrokenPipeError:
                sys.stderr.write("pyvisor worker %s: the host closed the reply pipe; exiting\n"
                                 % w.worker_id)
                return 0
            continue
        for efd, _ in poller.poll():
            if efd == wake_r:
                _drain(wake_r)
                continue
            data = os.read(fd, frames.read_size())
            if not data:
                broken = frames.truncated()
                return w.input_broken(broken) if broken is not None else 0

            frames.feed(data)
