"""``--concurrency N`` above 1: up to N requests run at once; replies in any
order, by id.

The main thread only reads the host's frames and dispatches them (it waits
on stdin and a wake-up pipe with ``poll``, so a signal delivered to any
thread, or a handler thread that finishes, wakes it). ``async def`` handlers
and async generators run as tasks on ONE asyncio event loop in a daemon
thread; sync handlers and sync generators on a pool of up to N daemon
threads (a sync handler that returns an awaitable has it run on the loop
and waits for it). Requests past N wait, in order, for a free slot; one
whose deadline passed while it waited is answered ``DeadlineExceeded``.

Cancel: a task is cancelled (``task.cancel()``); a thread cannot be
interrupted, so its ``ctx.cancelled`` becomes True, a generator is closed at
its next ``yield`` (at once when waiting for credit), and whatever it
returns, the final reply is ``Cancelled``.

Stopping: SIGINT is ignored. SIGTERM, ``shutdown`` or a handler's
``SystemExit`` start no new request (later request frames are dropped, with
a line on stderr) but the main thread keeps reading control frames, so
streams in flight can finish; once every request read has been answered
the worker exits (0, or the SystemExit code). stdin EOF exits at once,
abandoning what is in flight.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import os
import queue
import sys
import threading
import time
import traceback
from types import AsyncGeneratorType, GeneratorType
from typing import (TYPE_CHECKING, Any, Awaitable, Callable, Coroutine, Deque, Dict, List,
                    Optional, Tuple, cast)

from . import codec as _codec
from .concurrent_flight import RUNNING as _RUNNING, WAITING as _WAITING, ConcurrentFlight
from .streams import CANCEL_ERROR, Cancelled, collect, collect_async, drive, drive_async

if TYPE_CHECKING:
    from .loop import Worker
    from .registry import Context

__all__ = ["Dispatcher"]

_PLAIN = frozenset((dict, list, tuple, str, int, float, bool, bytes, type(None)))


async def _await(aw: Awaitable[Any]) -> Any:
    return await aw


class Dispatcher(object):
    """Runs the requests of a :class:`pyvisor.loop.Worker` with
    ``concurrency > 1`` (see the module doc). ``running`` counts the requests
    started and not yet answered."""

    def __init__(self, worker: Worker, n: int) -> None:
        self.worker = worker
        self.n = n
        self.lock = threading.Lock()
        # id -> flight, waiting or running (the worker's dict: control frames look there)
        self.flights = cast("Dict[int, ConcurrentFlight]", worker.flights)
        # session id -> requests of it in flight (Worker.held_change reads it too)
        users = worker._session_users
        assert users is not None  # a worker above concurrency 1 keeps it
        self.session_users: Dict[str, int] = users
        self.waiting: Deque[ConcurrentFlight] = collections.deque()
        self.running = 0
        self.jobs: queue.SimpleQueue[ConcurrentFlight] = queue.SimpleQueue()
        self.threads = 0
        self.free_threads = 0
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.broken = False
        self.wake_fd: Optional[int] = None  # the write end of the main thread's wake-up pipe
        self._is_async: Dict[Callable[..., Any], bool] = {}

    # -- main thread: requests and control frames ----------------------------

    def submit(self, fn: Callable[..., Any], args: Any, ctx: Context,
               window: Optional[int]) -> None:
        w = self.worker
        rid = ctx.request_id
        if w.term_requested or w.stop_code is not None:
            sys.stderr.write("pyvisor worker %s: request %d (%s) not run: the worker is stopping\n"
                             % (w.worker_id, rid, ctx.command))
            return
        is_async = self._is_async.get(fn)
        if is_async is None:
            # _pyvisor_async: typed_args' wrapper of an async handler
            is_async = self._is_async[fn] = bool(inspect.iscoroutinefunction(fn)
                                                 or inspect.isasyncgenfunction(fn)
                                                 or getattr(fn, "_pyvisor_async", False))
        flight = ConcurrentFlight(ctx, window, fn, args, is_async, self.lock)
        with self.lock:
            dup = rid in self.flights
            if not dup:
                self.flights[rid] = flight
                if self.running < self.n:
                    self.running += 1
                    flight.state = _RUNNING
                else:
                    self.waiting.append(flight)
        if dup:
            # Not this id's reply: that one belongs to the request already running.
            w.output.error(None, "ProtocolError", "request id %d is already in flight" % rid)
        elif flight.state == _RUNNING:
            self._start(flight)

    def control(self, rid: int, ack: Optional[int], cancel: bool, err: Optional[str]) -> None:
        reply: Optional[Tuple[str, str]] = None
        with self.lock:
            f = self.flights.get(rid)
            if f is None:
                if err is not None:
                    reply = ("ProtocolError", err)
            elif f.state == _WAITING:
                if err is not None or cancel:
                    self.waiting.remove(f)
                    del self.flights[rid]
                    f.finished = True
                    reply = ("ProtocolError", err) if err is not None else CANCEL_ERROR
                elif ack is not None:
                    f.on_ack(ack)
            elif err is not None:
                f.stop(("ProtocolError", err))
            else:
                if ack is not None:
                    f.on_ack(ack)
                if cancel:
                    f.stop(CANCEL_ERROR)
        if reply is not None:
            self.worker.output.error(rid, reply[0], reply[1])

    # -- starting ----------------------------------------------------------

    def _start(self, flight: ConcurrentFlight) -> None:
        if flight.is_async:
            loop = self._ensure_loop()
            with self.lock:
                flight.loop = loop
            loop.call_soon_threadsafe(self._start_task, flight)
            return
        with self.lock:
            new = not self.free_threads
            if new:
                self.threads += 1
                name = "pyvisor-handler-%d" % self.threads
            else:
                self.free_threads -= 1
        if new:
            threading.Thread(target=self._thread_main, name=name, daemon=True).start()
        self.jobs.put(flight)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        loop = self.loop
        if loop is None:
            with self.lock:
                if self.loop is None:
                    loop = asyncio.new_event_loop()
                    threading.Thread(target=self._loop_main, args=(loop,), name="pyvisor-asyncio",
                                     daemon=True).start()
                    self.loop = loop
                loop = self.loop
        return loop

    def _loop_main(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        while True:
            try:
                loop.run_forever()
                return
            except BaseException:
                # SystemExit/KeyboardInterrupt from a task a handler spawned
                # escapes asyncio's tasks: the loop must keep serving the others.
                traceback.print_exc()

    def _enter(self, flight: ConcurrentFlight) -> None:
        sid = flight.ctx.session_id
        if sid is not None:
            users = self.session_users
            with self.worker.state_lock:
                users[sid] = users.get(sid, 0) + 1
        flight.entered = True

    def _bind_task(self, flight: ConcurrentFlight, task: asyncio.Task[Any]) -> None:
        """On the loop thread: a cancel now cancels ``task`` (at once when it
        came before the task existed)."""
        loop = self.loop
        assert loop is not None  # the loop this runs on
        with self.lock:
            flight.canceller = functools.partial(loop.call_soon_threadsafe, task.cancel)
            stopped = flight.stop_error is not None
        if stopped:
            task.cancel()

    # -- running: threads --------------------------------------------------

    def _thread_main(self) -> None:
        jobs = self.jobs
        while True:
            flight = jobs.get()
            try:
                self._run_sync(flight)
            except BaseException:
                traceback.print_exc()

    def _run_sync(self, flight: ConcurrentFlight) -> None:
        out = self.worker.output
        self._enter(flight)
        try:
            flight.check()
            result = flight.fn(flight.args, flight.ctx)
            t = type(result)
            if t not in _PLAIN:
                if t is GeneratorType:
                    result = (drive(result, flight, out) if flight.window is not None
                              else collect(result, flight))
                elif t is AsyncGeneratorType:
                    result = self._on_loop(drive_async(result, flight, out)
                                           if flight.window is not None
                                           else collect_async(result, flight), flight)
                elif hasattr(t, "__await__"):
                    result = self._on_loop(_await(result), flight)
        except BaseException as e:
            self._finish(flight, exc=e, pool=True)
        else:
            self._finish(flight, result, pool=True)

    def _on_loop(self, coro: Coroutine[Any, Any, Any], flight: ConcurrentFlight) -> Any:
        """Run ``coro`` as a task on the loop, from a pool thread; return its
        result once the task is over (its cleanup included)."""
        loop = self._ensure_loop()
        with self.lock:
            flight.loop = loop
        done = threading.Event()
        box: List[asyncio.Task[Any]] = []

        def ended(t: asyncio.Task[Any]) -> None:
            box.append(t)
            done.set()

        def start() -> None:
            task = loop.create_task(coro)
            self._bind_task(flight, task)
            task.add_done_callback(ended)

        loop.call_soon_threadsafe(start)
        done.wait()
        task = box[0]
        if task.cancelled():
            raise asyncio.CancelledError()
        exc = task.exception()
        if exc is not None:
            raise exc
        return task.result()

    # -- running: tasks ----------------------------------------------------

    def _start_task(self, flight: ConcurrentFlight) -> None:
        loop = self.loop
        assert loop is not None  # the loop this runs on
        task = loop.create_task(self._run_task(flight))
        self._bind_task(flight, task)
        task.add_done_callback(functools.partial(self._task_done, flight))

    async def _run_task(self, flight: ConcurrentFlight) -> None:
        out = self.worker.output
        self._enter(flight)
        try:
            flight.check()
            result = flight.fn(flight.args, flight.ctx)
            t = type(result)
            if t is AsyncGeneratorType:
                result = await (drive_async(result, flight, out) if flight.window is not None
                                else collect_async(result, flight))
            elif t is GeneratorType:
                result = (drive(result, flight, out) if flight.window is not None
                          else collect(result, flight))
            elif t not in _PLAIN and hasattr(t, "__await__"):
                result = await result
        except BaseException as e:
            self._finish(flight, exc=e)
        else:
            self._finish(flight, result)

    def _task_done(self, flight: ConcurrentFlight, task: asyncio.Task[Any]) -> None:
        # A task cancelled before its first step never ran _run_task's body.
        if not flight.finished:
            self._finish(flight, exc=asyncio.CancelledError())

    # -- finishing ---------------------------------------------------------

    def _finish(self, flight: ConcurrentFlight, result: Any = None,
                exc: Optional[BaseException] = None, pool: bool = False) -> None:
        """Write ``flight``'s one final reply, then free its slot."""
        w = self.worker
        out = w.output
        ctx = flight.ctx
        rid = flight.rid
        with self.lock:
            if flight.finished:
                return
            flight.finished = True
            if self.flights.get(rid) is flight:
                del self.flights[rid]  # from here on, control frames for rid are ignored
            stop = flight.stop_error
        if isinstance(exc, SystemExit):
            code = exc.code
            w.stop_code = code if isinstance(code, int) else (0 if code is None else 1)
        try:
            with w.state_lock:
                sid = ctx.session_id
                held = w.held_change(sid)
                if flight.entered and sid is not None:
                    users = self.session_users
                    left = users.get(sid, 1) - 1
                    if left > 0:
                        users[sid] = left
                    else:
                        users.pop(sid, None)
                if stop is not None:
                    out.error(rid, stop[0], stop[1], held=held)
                elif exc is not None:
                    if type(exc) is Cancelled:
                        out.error(rid, exc.etype, exc.message, held=held)
                    else:
                        out.exception(rid, exc, held=held)
                else:
                    try:
                        out.result(rid, result, held)
                    except _codec.SerializationError as e:
                        out.error(rid, "SerializationError", str(e), held=held)
        except OSError as e:
            self.broken = True
            sys.stderr.write("pyvisor worker %s: cannot write the reply to %d (%s); exiting\n"
                             % (w.worker_id, rid, e))
        finally:
            with self.lock:
                if pool:
                    self.free_threads += 1
                self.running -= 1
                start, expired = self._admit()
            for f, late in expired:
                self._reply_late(f, late)
            for f in start:
                self._start(f)
            if self.broken or w.term_requested or w.stop_code is not None:
                self.wake()

    def _admit(self) -> Tuple[List[ConcurrentFlight], List[Tuple[ConcurrentFlight, float]]]:
        """Under the lock: the waiting flights that get the free slots, and
        the ones whose deadline passed while they waited."""
        start: List[ConcurrentFlight] = []
        expired: List[Tuple[ConcurrentFlight, float]] = []
        now: Optional[float] = None
        while self.waiting and self.running < self.n:
            f = self.waiting.popleft()
            d = f.ctx.deadline
            if d is not None:
                if now is None:
                    now = time.time()
                if now >= d:
                    del self.flights[f.rid]
                    f.finished = True
                    expired.append((f, now - d))
                    continue
            f.state = _RUNNING
            self.running += 1
            start.append(f)
        return start, expired

    def _reply_late(self, flight: ConcurrentFlight, late: float) -> None:
        try:
            self.worker.output.error(flight.rid, "DeadlineExceeded",
                                     "deadline passed %d ms before %s could start"
                                     % (int(late * 1000), flight.ctx.command))
        except OSError:
            self.broken = True

    def idle(self) -> bool:
        with self.lock:
            return self.running == 0 and not self.waiting

    def serve(self) -> int:
        """The main thread's loop (:func:`pyvisor.reader.serve`)."""
        from .reader import serve
        return serve(self)

    def wake(self) -> None:
        """Wake the main thread (a reply that may end a stop, a broken pipe)."""
        fd = self.wake_fd
        if fd is not None:
            try:
                os.write(fd, b"\0")
            except OSError:  # full: it is awake already
                pass
