"""The intermediate form: a tree of TypeScript types, the named types and the commands.

Part of :mod:`pyvisor.typegen`. :mod:`.translate` builds it from Python annotations,
:mod:`.render` spells it as TypeScript. A :class:`Node` is a type (:class:`Prim` a
type spelled as-is, :class:`Lit` a literal, :class:`Arr`, :class:`Tup`, :class:`Rec`,
:class:`Uni`, and :class:`Ref` to a named type); a :class:`Named` is a TypedDict,
dataclass, NamedTuple or Enum with its fields; a :class:`Command` is one handler's
args, result and (for a stream) chunk.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Tuple, Union


@dataclasses.dataclass(frozen=True)
class Prim:
    """A type spelled as-is (``number``, ``unknown``...), with an optional note on what it was."""
    text: str
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Lit:
    text: str


@dataclasses.dataclass(frozen=True)
class Arr:
    item: "Node"


@dataclasses.dataclass(frozen=True)
class Tup:
    items: Tuple["Node", ...]
    labels: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Rec:
    value: "Node"


@dataclasses.dataclass(frozen=True)
class Uni:
    members: Tuple["Node", ...]


@dataclasses.dataclass(frozen=True)
class Ref:
    """A named type: ``cls`` as a result (``args_form`` False) or as an argument."""
    cls: type
    args_form: bool


Node = Union[Prim, Lit, Arr, Tup, Rec, Uni, Ref]

UNKNOWN = Prim("unknown")
NULL = Prim("null")
NUMBER = Prim("number")
STRING = Prim("string")
BOOLEAN = Prim("boolean")
BUFFER = Prim("Buffer")


@dataclasses.dataclass
class Field:
    name: str
    node: Node
    optional: bool = False
    readonly: bool = False


@dataclasses.dataclass
class Named:
    cls: type
    kind: str  # 'TypedDict' | 'dataclass' | 'NamedTuple' | 'Enum'
    fields: List[Field] = dataclasses.field(default_factory=list)
    #: Enum: the literal union of the values.
    alias: Optional[Node] = None
    #: dataclass: what its ``__init__`` takes, which the worker builds it with from an args
    #: map (pyvisor.typed_args): fields with defaults optional, init=False ones absent, nested
    #: dataclasses in their args form. None when the worker would not build it.
    args_fields: Optional[List[Field]] = None
    #: dataclass: args_fields differ from fields by themselves (a default, an init=False field).
    own_args_form: bool = False


@dataclasses.dataclass
class Command:
    name: str
    args: Node
    result: Node
    #: Not None for a stream (generator) command.
    chunk: Optional[Node]
    where: str
    doc: str
