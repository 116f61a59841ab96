"""Python types -> the intermediate form; registered handlers -> commands.

Part of :mod:`pyvisor.typegen`. A :class:`Translator` turns annotations into
:mod:`.forms` nodes and collects the named types (TypedDict, dataclass, NamedTuple,
Enum) they reach, with a dataclass's args form (what the worker builds it from, as
pyvisor.typed_args does); :func:`analyze` reads one handler's first parameter,
return annotation and generator-ness into a :class:`~.forms.Command`.
"""

from __future__ import annotations

import collections.abc as cabc
import dataclasses
import enum
import inspect
import json
import typing
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .annotations import (
    _ARRAY_ORIGINS, _ASYNC_ITER_ORIGINS, _AWAITABLE_ORIGINS, _LITERAL, _MAP_ORIGINS, _MISSING,
    _SET_ORIGINS, _SYNC_ITER_ORIGINS, _UNION_TYPES, _Unresolved, _describe, _hints,
    _is_namedtuple, _is_typeddict, _module_label, _strip)
from .forms import (
    BOOLEAN, BUFFER, NULL, NUMBER, STRING, UNKNOWN, Arr, Command, Field, Lit, Named, Node, Prim,
    Rec, Ref, Tup, Uni)


class Translator:
    """Turns annotations into nodes, collecting the named types they reach."""

    def __init__(self) -> None:
        self.named: Dict[type, Named] = {}

    def node(self, tp: object) -> Node:
        tp, _, _, _ = _strip(tp)
        if tp is _MISSING or tp is typing.Any or tp is object:
            return UNKNOWN
        if isinstance(tp, _Unresolved):
            return Prim("unknown", _describe(tp))
        if tp is None or tp is type(None):
            return NULL
        supertype = getattr(tp, "__supertype__", None)
        if supertype is not None and callable(tp):  # typing.NewType
            return self.node(supertype)
        if isinstance(tp, typing.TypeVar):
            bound = tp.__bound__
            return self.node(bound) if bound is not None else \
                Prim("unknown", "TypeVar %s" % tp.__name__)
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in _LITERAL:
            return self._union([self._literal(v) for v in args])
        if origin in _UNION_TYPES:
            return self._union([self.node(a) for a in args], tp)
        if origin is not None:
            return self._generic(tp, origin, args)
        if isinstance(tp, type):
            return self._class(tp)
        if isinstance(tp, str):  # a string inside a generic that nobody evaluated
            return Prim("unknown", "%r (unresolved)" % tp)
        if isinstance(tp, typing.ForwardRef):
            return Prim("unknown", "%r (unresolved)" % tp.__forward_arg__)
        return Prim("unknown", _describe(tp))

    def _literal(self, value: object) -> Node:
        if value is None:
            return NULL
        if isinstance(value, enum.Enum):
            value = value.value
        if isinstance(value, bool):
            return Lit("true" if value else "false")
        if isinstance(value, int):
            return Lit(str(int(value)))
        if isinstance(value, str):
            return Lit(json.dumps(str(value)))
        if isinstance(value, (bytes, bytearray)):
            return BUFFER
        return Prim("unknown", "Literal[%r]" % (value,))

    def _union(self, members: Sequence[Node], tp: object = None) -> Node:
        flat: List[Node] = []
        for member in members:
            for m in (member.members if isinstance(member, Uni) else (member,)):
                if m not in flat:
                    flat.append(m)
        if any(isinstance(m, Prim) and m.text == "unknown" for m in flat):
            return Prim("unknown", _describe(tp)) if tp is not None else UNKNOWN
        if not flat:
            return Prim("never")
        return flat[0] if len(flat) == 1 else Uni(tuple(flat))

    def _generic(self, tp: object, origin: object, args: Tuple[object, ...]) -> Node:
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return Arr(self.node(args[0]))
            if args == ((),) or (not args and tp is not typing.Tuple):  # Tuple[()], tuple[()]
                return Tup(())
            if not args:
                return Arr(UNKNOWN)
            return Tup(tuple(self.node(a) for a in args))
        if origin in _ARRAY_ORIGINS:
            return Arr(self.node(args[0]) if args else UNKNOWN)
        if origin in _MAP_ORIGINS:
            if not args:
                return Rec(UNKNOWN)
            if not self._str_key(args[0]):
                return Prim("unknown", "%s: map keys are str on the wire" % _describe(tp))
            return Rec(self.node(args[1]))
        if origin in _SET_ORIGINS:
            return Prim("unknown", "%s: not a wire type" % _describe(tp))
        if isinstance(origin, type) and (_is_typeddict(origin) or dataclasses.is_dataclass(origin)
                                         or _is_namedtuple(origin)):
            return self._class(origin)  # a generic one: its type variables are unknown
        return Prim("unknown", _describe(tp))

    def _str_key(self, key: object) -> bool:
        key, _, _, _ = _strip(key)
        if key is str or key is typing.Any:
            return True
        if isinstance(key, type) and issubclass(key, str):
            return True
        if typing.get_origin(key) in _LITERAL:
            return all(isinstance(v, str) for v in typing.get_args(key))
        return False

    def _class(self, cls: type) -> Node:
        if issubclass(cls, enum.Enum):
            return self._enum(cls)
        if issubclass(cls, bool):
            return BOOLEAN
        if _is_typeddict(cls) or dataclasses.is_dataclass(cls) or _is_namedtuple(cls):
            self._define(cls)
            return Ref(cls, False)
        if issubclass(cls, (int, float)):
            return NUMBER
        if issubclass(cls, str):
            return STRING
        if issubclass(cls, (bytes, bytearray, memoryview)):
            return BUFFER
        if issubclass(cls, (list, tuple)):
            return Arr(UNKNOWN)
        if issubclass(cls, dict):
            return Rec(UNKNOWN)
        return Prim("unknown", _describe(cls))

    def _enum(self, cls: type) -> Node:
        if issubclass(cls, enum.Flag) and issubclass(cls, int):
            return NUMBER  # an IntFlag's values are its members' combinations
        if not issubclass(cls, (int, str)):
            return Prim("unknown", "%s: an Enum that is neither str nor int is not a wire type"
                        % _describe(cls))
        self._define(cls)
        return Ref(cls, False)

    def _define(self, cls: type) -> None:
        if cls in self.named:
            return
        if issubclass(cls, enum.Enum):
            named = Named(cls, "Enum")
            self.named[cls] = named
            members = [self._literal(m.value) for m in cls]
            named.alias = self._union(members)
            return
        hints = _hints(cls)
        if _is_typeddict(cls):
            named = Named(cls, "TypedDict")
            self.named[cls] = named
            required = set(getattr(cls, "__required_keys__", ()))
            for key, annotation in hints.items():
                inner, req, not_req, readonly = _strip(annotation)
                optional = not_req or (key not in required and not req)
                named.fields.append(Field(key, self.node(inner), optional, readonly))
            return
        if dataclasses.is_dataclass(cls):
            named = Named(cls, "dataclass")
            self.named[cls] = named
            for f in _dataclass_fields(cls):
                annotation = hints.get(f.name, f.type)
                if isinstance(annotation, str):
                    annotation = _Unresolved(annotation)
                named.fields.append(Field(f.name, self.node(annotation)))
            self._define_args_form(named, hints)
            return
        named = Named(cls, "NamedTuple")
        self.named[cls] = named
        for name in getattr(cls, "_fields", ()):
            named.fields.append(Field(str(name), self.node(hints.get(name, _MISSING))))

    def _define_args_form(self, named: Named, hints: Mapping[str, object]) -> None:
        """The parameters of the dataclass's ``__init__``, as pyvisor.typed_args takes them."""
        try:
            params = list(inspect.signature(named.cls).parameters.values())
        except (TypeError, ValueError):
            return
        if any(p.kind is inspect.Parameter.POSITIONAL_ONLY for p in params):
            return  # the worker cannot build it from keywords: the map arrives as it came
        keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        fields: List[Field] = []
        for p in params:
            if p.kind not in keyword:
                continue
            annotation = hints.get(p.name, p.annotation)
            if annotation is inspect.Parameter.empty:
                annotation = _MISSING
            inner = getattr(annotation, "type", None)
            if isinstance(annotation, dataclasses.InitVar) and inner is not None:
                annotation = inner
            elif isinstance(annotation, str):
                annotation = _Unresolved(annotation)
            fields.append(Field(p.name, self.args_node(annotation),
                                p.default is not inspect.Parameter.empty))
        named.args_fields = fields
        names = [f.name for f in named.fields]
        named.own_args_form = [f.name for f in fields] != names or any(f.optional for f in fields)

    def args_node(self, tp: object) -> Node:
        """An argument's type: a dataclass the worker builds from a map is in its args form.

        A dataclass, an ``Optional``, a list or a ``dict[str, ...]`` of dataclasses is
        built, at the top (the handler's first parameter) as in a field (pyvisor.typed_args'
        converters). Anything else arrives as it came."""
        tp, _, _, _ = _strip(tp)
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            node = self.node(tp)
            return Ref(tp, True) if isinstance(node, Ref) else node
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in _UNION_TYPES and len(args) == 2 and type(None) in args:
            inner = args[0] if args[1] is type(None) else args[1]
            if _holds_dataclass(inner):
                return self._union([self.args_node(inner), NULL])
        if origin in (list, cabc.Sequence, cabc.MutableSequence) and len(args) == 1 \
                and _holds_dataclass(args[0]):
            return Arr(self.args_node(args[0]))
        if origin in (dict, cabc.Mapping, cabc.MutableMapping) and len(args) == 2 \
                and _holds_dataclass(args[1]):
            return Rec(self.args_node(args[1]))
        return self.node(tp)


def _holds_dataclass(tp: object) -> bool:
    """Whether pyvisor.typed_args builds something inside a field of this type."""
    tp, _, _, _ = _strip(tp)
    if isinstance(tp, type):
        return dataclasses.is_dataclass(tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in _UNION_TYPES:
        return len(args) == 2 and type(None) in args and any(
            _holds_dataclass(a) for a in args if a is not type(None))
    if origin in (list, cabc.Sequence, cabc.MutableSequence) and len(args) == 1:
        return _holds_dataclass(args[0])
    if origin in (dict, cabc.Mapping, cabc.MutableMapping) and len(args) == 2:
        return _holds_dataclass(args[1])
    return False


def _dataclass_fields(cls: type) -> Tuple["dataclasses.Field[object]", ...]:
    return dataclasses.fields(typing.cast(typing.Any, cls))


# ---- handlers -> commands ---------------------------------------------------------------------

def _first_line(doc: Optional[str]) -> str:
    for line in (doc or "").strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


def _hint_target(fn: Callable[..., object]) -> object:
    if inspect.isfunction(fn) or inspect.ismethod(fn):
        return fn
    func = getattr(fn, "func", None)  # functools.partial
    if func is not None and callable(func):
        return func
    return getattr(type(fn), "__call__", fn)


def analyze(name: str, fn: Callable[..., object], tr: Translator) -> Command:
    """One registered handler: its args, result and (for a generator) chunk types."""
    hints = _hints(_hint_target(fn))
    args_annotation: object = _MISSING
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if params and params[0].kind in positional:
        args_annotation = hints.get(params[0].name, _MISSING)
    returns = hints.get("return", _MISSING)
    base = inspect.unwrap(fn)
    is_gen = inspect.isgeneratorfunction(base) or inspect.isgeneratorfunction(fn)
    is_async_gen = inspect.isasyncgenfunction(base) or inspect.isasyncgenfunction(fn)
    ret, _, _, _ = _strip(returns)
    origin = typing.get_origin(ret)
    targs = typing.get_args(ret)
    if ret in _SYNC_ITER_ORIGINS or ret in _ASYNC_ITER_ORIGINS:  # bare typing.Iterator etc.
        origin, targs = ret, ()
    chunk: Optional[Node] = None
    result: Node
    if origin in _SYNC_ITER_ORIGINS or origin in _ASYNC_ITER_ORIGINS or is_gen or is_async_gen:
        iterating = origin in _SYNC_ITER_ORIGINS or origin in _ASYNC_ITER_ORIGINS
        chunk = tr.node(targs[0]) if iterating and targs else UNKNOWN
        if origin is cabc.Generator:
            result = tr.node(targs[2]) if len(targs) == 3 else UNKNOWN
        elif iterating or is_async_gen:
            result = NULL
        else:  # a generator whose return annotation says nothing about it
            result = UNKNOWN if returns is _MISSING else Prim("unknown", _describe(ret))
    else:
        if origin in _AWAITABLE_ORIGINS and targs:  # a plain def returning a coroutine
            ret = targs[-1]
        result = tr.node(ret)
    module = _module_label(str(getattr(base, "__module__", "") or ""))
    qualname = str(getattr(base, "__qualname__", getattr(base, "__name__", name)))
    where = "%s.%s" % (module, qualname) if module else qualname
    return Command(name, tr.args_node(args_annotation), result, chunk, where,
                   _first_line(getattr(base, "__doc__", None)))
