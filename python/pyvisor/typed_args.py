"""Dataclass arguments: a handler whose first parameter is annotated with a
dataclass gets its ``args`` as an instance of it::

    from dataclasses import dataclass
    from pyvisor import Context, command

    @dataclass
    class GreetArgs:
        name: str
        greeting: str = "Hello"

    @dataclass
    class GreetResult:
        text: str

    @command("greet")
    def greet(args: GreetArgs, ctx: Context) -> GreetResult:
        return GreetResult("%s, %s!" % (args.greeting, args.name))

``args`` is ``GreetArgs(**<the request's args map>)``. Fields annotated with a
dataclass, with ``Optional[...]`` of one, a ``List[...]`` or a ``Dict[str, ...]``
of them are built the same way, recursively; every other value is passed as it
came (no type checks). The result, a dataclass instance, is sent as the map of
its fields (both codecs: :func:`pyvisor._purepack.dataclass_map`), so the host
gets ``{text: "Hello, Ada!"}``.

A request whose args do not fit gets a ``ValueError`` reply naming the field,
before the handler runs (the style of the DSPy commands' argument errors)::

    greet: args must be a map of GreetArgs fields, got array
    greet: args lacks field(s) 'name' (GreetArgs: name, greeting?)
    greet: args has unknown field(s) 'nmae' (GreetArgs: name, greeting?)
    order: args.items[2] lacks field(s) 'sku' (Item: sku, qty?)

The annotation is resolved once, when the command is registered (:func:`wrap`,
with ``typing.get_type_hints``): a request pays for the conversion only. An
annotation that cannot be resolved there (a name defined later, ``int | None``
on Python 3.9) is not converted: the value arrives as it came.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import inspect
import sys
import types
import typing
from typing import Any, Callable, Dict, FrozenSet, Optional, Tuple, Union

from ._purepack import _key_path
from .control import kind as _kind

__all__ = ["wrap", "args_dataclass", "converter", "Convert"]

#: ``convert(value, path, cmd)``: ``value`` (from the wire) built into what the
#: annotation at ``path`` (``args.items[2]``) asks for; ValueError when it does not fit.
Convert = Callable[[Any, str, str], Any]

_UnionType: Any = getattr(types, "UnionType", None)  # ``X | Y`` (Python >= 3.10)
_NoneType = type(None)
_SEQUENCES = (list, collections.abc.Sequence, collections.abc.MutableSequence)
_MAPPINGS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _is_dataclass_type(t: object) -> bool:
    return isinstance(t, type) and dataclasses.is_dataclass(t)


def _evaluate(annotation: object, globalns: Dict[str, Any],
              localns: Optional[Dict[str, Any]] = None) -> object:
    """A string annotation evaluated as typing.get_type_hints would, or None
    when it does not resolve (other annotations are returned as they are)."""
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, globalns, localns)  # what get_type_hints does with it
    except Exception:
        return None


def args_annotation(fn: Callable[..., Any]) -> object:
    """The resolved annotation of ``fn``'s first parameter, or None (none, or
    one that does not resolve)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if not params or params[0].kind not in _POSITIONAL:
        return None
    first = params[0]
    ann: object = first.annotation
    if ann is inspect.Parameter.empty:
        return None
    if isinstance(ann, str):
        try:
            ann = typing.get_type_hints(fn).get(first.name)
        except Exception:
            # Another annotation of fn does not resolve (e.g. ctx's, imported
            # under TYPE_CHECKING only): this one may still.
            target = inspect.unwrap(fn)
            ann = _evaluate(ann, getattr(target, "__globals__", {}))
    return ann


def _class_hints(cls: type) -> Dict[str, object]:
    """The resolved field annotations of ``cls``; when get_type_hints fails as
    a whole, each one alone (the ones that do not resolve are left out)."""
    try:
        return dict(typing.get_type_hints(cls))
    except Exception:
        pass
    out: Dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        module = sys.modules.get(klass.__module__)
        globalns = dict(vars(module)) if module is not None else {}
        for name, ann in klass.__dict__.get("__annotations__", {}).items():
            value = _evaluate(ann, globalns, dict(vars(klass)))
            if value is not None:
                out[name] = value
            else:
                out.pop(name, None)
    return out


class _Plan(object):
    """How a map becomes an instance of one dataclass: the keyword arguments
    its ``__init__`` takes, the required ones, converters for the fields that
    are (or hold) dataclasses."""

    __slots__ = ("cls", "accepted", "required", "nested", "any_key", "expects")

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.accepted: FrozenSet[str] = frozenset()

        self.required: Tuple[str, ...] = ()
        self.nested: Dict[str, Convert] = {}
        self.any_key = False
        self.expects = ""

    def convert(self, value: Any, path: str, cmd: str) -> Any:
        cls = self.cls
        if not isinstance(value, dict):
            raise ValueError("%s: %s must be a map of %s fields, got %s"
                             % (cmd, path, cls.__name__, _kind(value)))
        missing = [n for n in self.required if n not in value]
        unknown = [] if self.any_key else [k for k in value if k not in self.accepted]
        if missing or unknown:
            parts = []
            if missing:
                parts.append("lacks field(s) %s" % ", ".join("'%s'" % n for n in missing))
            if unknown:
                parts.append("has unknown field(s) %s" % ", ".join("'%s'" % k for k in unknown))
            raise ValueError("%s: %s %s (%s: %s)" % (cmd, path, " and ".join(parts),
                                                     cls.__name__, self.expects))
        if self.nested:
            value = dict(value)
            for name, conv in self.nested.items():
                if name in value:
                    value[name] = conv(value[name], _key_path(path, name), cmd)
        return cls(**value)


# One plan per dataclass (registration happens at import, in one thread).
_plans: Dict[type, Optional[_Plan]] = {}


def _plan(cls: type) -> Optional[_Plan]:
    """The plan for ``cls``, or None when its ``__init__`` cannot be called
    with keyword arguments only (positional-only parameters)."""
    if cls in _plans:
        return _plans[cls]
    try:
        params = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        _plans[cls] = None
        return None
    if any(p.kind is inspect.Parameter.POSITIONAL_ONLY for p in params):
        _plans[cls] = None
        return None
    plan = _plans[cls] = _Plan(cls)  # stored first: a dataclass may contain itself
    names = [p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                  inspect.Parameter.KEYWORD_ONLY)]
    plan.accepted = frozenset(names)
    plan.required = tuple(p.name for p in params if p.name in plan.accepted
                          and p.default is inspect.Parameter.empty)
    plan.any_key = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    plan.expects = ", ".join(n if n in plan.required else n + "?" for n in names)
    hints = _class_hints(cls)
    for name in names:
        conv = _converter_for(hints.get(name))
        if conv is not None:
            plan.nested[name] = conv
    return plan


def _optional(inner: Convert) -> Convert:
    def convert(value: Any, path: str, cmd: str) -> Any:
        return None if value is None else inner(value, path, cmd)
    return convert


def _list_of(inner: Convert) -> Convert:
    def convert(value: Any, path: str, cmd: str) -> Any:
        if not isinstance(value, list):
            raise ValueError("%s: %s must be an array, got %s" % (cmd, path, _kind(value)))
        return [inner(v, "%s[%d]" % (path, i), cmd) for i, v in enumerate(value)]
    return convert


def _dict_of(inner: Convert) -> Convert:
    def convert(value: Any, path: str, cmd: str) -> Any:
        if not isinstance(value, dict):
            raise ValueError("%s: %s must be a map, got %s" % (cmd, path, _kind(value)))
        return {k: inner(v, _key_path(path, k), cmd) for k, v in value.items()}
    return convert


def _converter_for(t: object) -> Optional[Convert]:
    """The converter for a field annotated ``t``, or None when nothing in it is
    a dataclass (the value is then passed as it came)."""
    if t is None:
        return None
    if isinstance(t, type):
        if not _is_dataclass_type(t):
            return None
        plan = _plan(t)
        return plan.convert if plan is not None else None
    origin = typing.get_origin(t)
    args = typing.get_args(t)
    if origin is Union or (_UnionType is not None and origin is _UnionType):
        rest = [a for a in args if a is not _NoneType]
        if len(rest) == 1 and len(args) == 2:  # Optional[X]
            inner = _converter_for(rest[0])
            return _optional(inner) if inner is not None else None
        return None  # a union of several types: which one is meant is not known
    if origin in _SEQUENCES and len(args) == 1:
        inner = _converter_for(args[0])
        return _list_of(inner) if inner is not None else None
    if origin in _MAPPINGS and len(args) == 2:
        inner = _converter_for(args[1])
        return _dict_of(inner) if inner is not None else None
    return None


def converter(cls: type) -> Optional[Convert]:
    """``convert(value, path, cmd)`` building an instance of the dataclass ``cls``."""
    plan = _plan(cls)
    return plan.convert if plan is not None else None


def wrap(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """What the request loop calls for the command ``name``: ``fn`` itself, or,
    when its first parameter is annotated with a dataclass (or an
    ``Optional``, a list or a ``Dict[str, ...]`` of them, as a field may be), a
    wrapper that builds it from the request's args first. The wrapper returns
    what ``fn`` returns (a coroutine or an async generator for an ``async
    def``: ``_pyvisor_async`` tells the dispatcher to run it on the event loop)."""
    convert = _converter_for(args_annotation(fn))
    if convert is None:
        return fn
    conv: Convert = convert

    def run(args: Any, ctx: Any) -> Any:
        return fn(conv(args, "args", name), ctx)

    functools.update_wrapper(run, fn)
    setattr(run, "_pyvisor_async",
            inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn))
    return run
