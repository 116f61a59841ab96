"""What an annotation is: typing's special forms, evaluated hints, the types with fields.

Part of :mod:`pyvisor.typegen`. The special forms come from ``typing`` and, when
importable, ``typing_extensions`` (whose ``Required``, ``NotRequired``, ``ReadOnly``
and ``TypedDict`` may be other objects); the origins group the generic aliases
(``list[T]``, ``Mapping[K, V]``, ``Iterator[T]``...) by what they become in TypeScript.
:func:`_hints` evaluates a class's or function's annotations as ``typing.get_type_hints``
does, one by one when that fails, an annotation that does not resolve becoming an
:class:`_Unresolved`; :func:`_strip` peels the wrappers that do not change the type.
"""

from __future__ import annotations

import collections
import collections.abc as cabc
import importlib
import inspect
import re
import sys
import types
import typing
from typing import Dict, FrozenSet, Optional, Set, Tuple


def _optional_module(name: str) -> Optional[types.ModuleType]:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


_TE = _optional_module("typing_extensions")


def _forms(name: str) -> FrozenSet[object]:
    """The special form ``name`` from typing and typing_extensions (which may differ)."""
    found: Set[object] = set()
    for module in (typing, _TE):
        form = getattr(module, name, None) if module is not None else None
        if form is not None:
            found.add(form)
    return frozenset(found)


_LITERAL = _forms("Literal")
_ANNOTATED = _forms("Annotated")
_REQUIRED = _forms("Required")
_NOT_REQUIRED = _forms("NotRequired")
_READ_ONLY = _forms("ReadOnly")
_FINAL = _forms("Final")
_UNION_TYPES: Tuple[object, ...] = tuple(
    t for t in (typing.Union, getattr(types, "UnionType", None)) if t is not None)

_ARRAY_ORIGINS: FrozenSet[object] = frozenset(
    {list, cabc.Sequence, cabc.MutableSequence, cabc.Collection})
_MAP_ORIGINS: FrozenSet[object] = frozenset(
    {dict, cabc.Mapping, cabc.MutableMapping, collections.OrderedDict, collections.defaultdict})
_SET_ORIGINS: FrozenSet[object] = frozenset({set, frozenset, cabc.Set, cabc.MutableSet})
_SYNC_ITER_ORIGINS: FrozenSet[object] = frozenset({cabc.Iterator, cabc.Iterable, cabc.Generator})
_ASYNC_ITER_ORIGINS: FrozenSet[object] = frozenset(
    {cabc.AsyncIterator, cabc.AsyncIterable, cabc.AsyncGenerator})
_AWAITABLE_ORIGINS: FrozenSet[object] = frozenset({cabc.Awaitable, cabc.Coroutine})


class _Unresolved:
    """An annotation that could not be evaluated (a forward reference to nothing)."""

    def __init__(self, text: str) -> None:
        self.text = text


_MISSING = object()


def _describe(tp: object) -> str:
    """How a note names a Python type: ``datetime.datetime``, ``set[int]``."""
    if isinstance(tp, _Unresolved):
        return "%r (unresolved)" % tp.text
    if isinstance(tp, type) and not typing.get_args(tp):
        module = getattr(tp, "__module__", "")
        name = getattr(tp, "__qualname__", getattr(tp, "__name__", repr(tp)))
        return name if module in ("builtins", "") else "%s.%s" % (_module_label(module), name)
    return repr(tp).replace("typing.", "").replace("collections.abc.", "")


def _module_label(module: str) -> str:
    """A module's name without the prefix load_handlers gives a file whose stem was taken."""
    return re.sub(r"^pyvisor_handlers_\d+_", "", module)


def _eval_annotation(value: object, globalns: Dict[str, object],
                     localns: Optional[Dict[str, object]] = None) -> object:
    if isinstance(value, typing.ForwardRef):
        value = value.__forward_arg__
    if isinstance(value, str):
        try:
            return eval(value, globalns, localns)  # what typing.get_type_hints does
        except Exception:
            return _Unresolved(value)
    return value


def _hints(obj: object) -> Dict[str, object]:
    """``get_type_hints(obj, include_extras=True)``; annotation by annotation when that fails."""
    try:
        return dict(typing.get_type_hints(obj, include_extras=True))
    except Exception:
        pass
    out: Dict[str, object] = {}
    if isinstance(obj, type):
        for base in reversed(obj.__mro__):
            raw = base.__dict__.get("__annotations__", {})
            module = sys.modules.get(base.__module__)
            globalns = dict(vars(module)) if module is not None else {}
            localns = dict(vars(base))
            for key, value in dict(raw).items():
                out[str(key)] = _eval_annotation(value, globalns, localns)
        return out
    raw_annotations = getattr(obj, "__annotations__", None)
    if not isinstance(raw_annotations, dict):
        return out
    globalns = dict(getattr(inspect.unwrap(obj), "__globals__", {})) \
        if callable(obj) else {}
    for key, value in raw_annotations.items():
        out[str(key)] = _eval_annotation(value, globalns)
    return out


def _is_typeddict(tp: object) -> bool:
    return (isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")
            and hasattr(tp, "__total__"))


def _is_namedtuple(tp: object) -> bool:
    return isinstance(tp, type) and issubclass(tp, tuple) and hasattr(tp, "_fields")


def _strip(tp: object) -> Tuple[object, bool, bool, bool]:
    """Peel Annotated/Required/NotRequired/ReadOnly/Final: (type, required, not_required, readonly)."""
    required = not_required = readonly = False
    while True:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in _ANNOTATED and args:
            tp = args[0]
        elif origin in _REQUIRED and args:
            required, tp = True, args[0]
        elif origin in _NOT_REQUIRED and args:
            not_required, tp = True, args[0]
        elif origin in _READ_ONLY and args:
            readonly, tp = True, args[0]
        elif origin in _FINAL and args:
            tp = args[0]
        else:
            return tp, required, not_required, readonly
