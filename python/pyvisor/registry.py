"""Command registry and per-request context.

Handler modules register commands with the :func:`command` decorator::

    from pyvisor import command

    @command("echo")
    def echo(args, ctx):
        return args

A handler receives the request's ``args`` (any wire value; ``{}`` when the
request carried none; an instance of the dataclass its first parameter is
annotated with, if it is: :mod:`pyvisor.typed_args`) and a :class:`Context`.
Whatever it returns (a dataclass instance is sent as the map of its fields) is the
reply's ``result``; whatever it raises becomes an error reply carrying the
exception's class name, message and traceback (and its ``details`` when that
is a dict of wire values). ``async def`` handlers are awaited. A generator
(or async generator) handler streams: each ``yield`` is a chunk when the
request asked for a stream, and the yielded values come back as a list when
it did not (:mod:`pyvisor.streams`).

Modules that keep per-session state can register hooks:

* :func:`on_cleanup` -- ``fn(session_id, session_dict) -> dict | None`` runs
  when ``cleanup_session`` frees a session (before the dict is dropped); the
  returned keys are merged into the ``cleanup_session`` result.
* :func:`on_stats` -- ``fn(sessions) -> dict | None`` where ``sessions`` maps
  session id to its dict; the returned keys are merged into ``get_stats``.
"""

from __future__ import annotations

import time
from typing import (TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Set, TypeVar,
                    Union, overload)

from . import typed_args as _typed_args

if TYPE_CHECKING:
    from .loop import Worker

__all__ = ["command", "Context", "on_cleanup", "on_stats", "get_command", "get_handler",
           "command_names", "unregister", "CommandError", "Handler", "CleanupHook", "StatsHook"]

#: A command handler: ``fn(args, ctx)`` returning the result (or an awaitable, or
#: a generator of chunks).
Handler = Callable[..., Any]
#: ``fn(session_id, session_dict) -> dict | None`` (:func:`on_cleanup`).
CleanupHook = Callable[[str, Dict[str, Any]], Optional[Mapping[str, Any]]]
#: ``fn(sessions) -> dict | None`` (:func:`on_stats`).
StatsHook = Callable[[Dict[str, Dict[str, Any]]], Optional[Mapping[str, Any]]]

_F = TypeVar("_F", bound=Callable[..., Any])
_C = TypeVar("_C", bound=CleanupHook)
_S = TypeVar("_S", bound=StatsHook)

# name -> what the request loop calls: the handler, or the wrapper that builds
# its dataclass args (typed_args); the handler itself in _handlers.
_commands: Dict[str, Handler] = {}
_handlers: Dict[str, Handler] = {}
_builtin: Set[str] = set()
cleanup_hooks: List[CleanupHook] = []
stats_hooks: List[StatsHook] = []


class CommandError(Exception):
    """Convenience base for handler errors; the reply type is the subclass name."""


@overload
def command(name: _F) -> _F: ...


@overload
def command(name: Optional[str] = None, replace: bool = False,
            builtin: bool = False) -> Callable[[_F], _F]: ...


def command(name: Union[str, Callable[..., Any], None] = None, replace: bool = False,
            builtin: bool = False) -> Any:
    """Register ``fn(args, ctx)`` as the command ``name``.

    Usable as ``@command("name")``, ``@command()`` / ``@command`` (the
    function's own name); the function is returned as it is (its type too).
    Registering a name twice raises ``ValueError`` unless ``replace=True``.
    ``builtin=True`` marks one of the worker's own commands
    (``pyvisor.builtins`` uses it; it only changes the message a duplicate
    gets). A handler whose first parameter is annotated with a dataclass gets
    its ``args`` as an instance of it (:mod:`pyvisor.typed_args`).
    """
    if callable(name):
        fn = name
        _register(fn.__name__, fn, False)
        return fn

    def deco(fn: _F) -> _F:
        _register(name or fn.__name__, fn, replace, builtin)
        return fn
    return deco


def _register(name: object, fn: Handler, replace: bool, builtin: bool = False) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError("command name must be a non-empty string, got %r" % (name,))
    if not callable(fn):
        raise TypeError("command %r: handler must be callable" % name)
    if name in _commands and not replace:
        kind = "a built-in command" if name in _builtin else "already registered"
        raise ValueError("command %r is %s (pass replace=True to override it)" % (name, kind))
    # Resolved here, once: a request pays nothing for it (typed_args).
    _commands[name] = _typed_args.wrap(fn, name)
    _handlers[name] = fn
    if builtin:
        _builtin.add(name)
    else:
        _builtin.discard(name)


def unregister(name: str) -> None:
    """Remove a command (mostly for tests). Unknown names are ignored."""
    _commands.pop(name, None)
    _handlers.pop(name, None)
    _builtin.discard(name)


#: ``get_command(name)``: what runs the command ``name`` (its handler, or the
#: wrapper that builds the handler's dataclass args), or ``None`` (the
#: registry's own lookup, bound once: the request loop calls it per request).
get_command: Callable[[str], Optional[Handler]] = _commands.get


def get_handler(name: str) -> Optional[Handler]:
    """The function registered as the command ``name`` (as it was decorated), or ``None``."""
    return _handlers.get(name)


def command_names() -> List[str]:
    """Every registered command name, sorted."""
    return sorted(_commands)


def on_cleanup(fn: _C) -> _C:
    """Register ``fn(session_id, session_dict) -> dict | None`` (see module doc)."""
    cleanup_hooks.append(fn)
    return fn


def on_stats(fn: _S) -> _S:
    """Register ``fn(sessions) -> dict | None`` (see module doc)."""
    stats_hooks.append(fn)
    return fn


class Context(object):
    """What a handler knows about its request.

    * ``request_id`` -- the request's ``id``
    * ``session_id`` -- the request's ``session`` (``None`` for anonymous calls)
    * ``session`` -- a dict private to that session in this worker, created on
      first access and dropped by ``cleanup_session``. For anonymous calls it
      is one dict shared by all anonymous calls of this worker.
    * ``worker_id``, ``mode`` (``'pool-worker'`` or ``'standalone'``), ``pid``
    * ``deadline`` -- when the host gives up on this request, as Unix time in
      seconds (comparable to ``time.time()``), or ``None`` without a deadline
    * ``remaining()`` -- seconds left until ``deadline`` (a float, never
      negative), or ``None`` without a deadline
    * ``cancelled`` -- True once the host cancelled this request (a cancel
      frame). A generator is closed at its next ``yield`` and an ``async``
      handler's task is cancelled without looking at it; a plain sync
      handler cannot be interrupted and should poll it in long loops.
    * ``log(message, level='info')`` -- send a ``{event: 'log'}`` notice to
      the host.
    * ``worker`` -- the :class:`pyvisor.loop.Worker` serving the request
      (its counters and sessions; what the built-in commands read)
    """

    __slots__ = ("_worker", "request_id", "session_id", "command", "deadline", "_cancelled")

    request_id: int
    session_id: Optional[str]
    command: Optional[str]
    deadline: Optional[float]

    def __init__(self, worker: Worker, request_id: int, session_id: Optional[str],
                 command: Optional[str] = None, deadline: Optional[float] = None) -> None:
        self._worker = worker
        self.request_id = request_id
        self.session_id = session_id
        self.command = command
        self.deadline = deadline
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        """True once the host cancelled this request."""
        return self._cancelled

    def remaining(self) -> Optional[float]:
        """Seconds left until the deadline (>= 0.0), or None without one."""
        d = self.deadline
        if d is None:
            return None
        left = d - time.time()
        return left if left > 0.0 else 0.0

    @property
    def worker(self) -> Worker:
        return self._worker

    @property
    def session(self) -> Dict[str, Any]:
        return self._worker.session_dict(self.session_id, create=True)


    @property
    def has_session(self) -> bool:
        """True when this session's dict already exists (does not create it)."""
        return self._worker.session_dict(self.session_id, create=False) is not None

    @property
    def worker_id(self) -> str:
        return self._worker.worker_id

    @property
    def mode(self) -> str:
        return self._worker.mode

    @property
    def pid(self) -> int:
        return self._worker.pid

    def log(self, message: object, level: str = "info", **fields: Any) -> None:
        """Send ``{event: 'log', level, message, worker_id, request_id, ...}``."""
        self._worker.output.log(message, level, self.request_id, **fields)

    def __repr__(self) -> str:
        return "<Context request_id=%r session_id=%r worker_id=%r deadline=%r>" % (
            self.request_id, self.session_id, self._worker.worker_id, self.deadline)
