"""The intermediate form -> TypeScript: the declarations and their names.

Part of :mod:`pyvisor.typegen`. A :class:`Renderer` takes a :class:`~.translate.Translator`'s
named types and the commands: which dataclasses need a separate ``<Name>Input`` args
form, which named types the commands reach, the interface name of each (unique, none
of TypeScript's globals, a module prefix when two classes share a name), then the
``Handlers`` interface and each named type's declaration.
"""

from __future__ import annotations

import json
import re
from typing import Dict, List, Sequence, Set, Tuple

from .annotations import _module_label
from .forms import Arr, Command, Field, Lit, Named, Node, Prim, Rec, Ref, Tup, Uni
from .translate import Translator

_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
#: Names a generated interface must not take: the file's own, and TS's global types.
_RESERVED_NAMES = frozenset({
    "Handlers", "Buffer", "Record", "Array", "ReadonlyArray", "Partial", "Required", "Readonly",
    "Pick", "Omit", "Promise", "Object", "String", "Number", "Boolean", "Symbol", "BigInt",
    "Date", "Map", "Set", "Error", "Function", "RegExp", "JSON", "Math", "Uint8Array",
    "unknown", "any", "never", "object", "string", "number", "boolean", "null", "undefined",
    "void", "symbol", "bigint", "type", "interface",
})


def _comment(text: str) -> str:
    return text.replace("*/", "*\\/")


def _key(name: str) -> str:
    return name if _IDENTIFIER.match(name) else json.dumps(name)


class Renderer:
    def __init__(self, tr: Translator, commands: Sequence[Command]) -> None:
        self.tr = tr
        self.commands = commands
        self.uses_buffer = False
        self.needs_args_form = self._args_forms()
        self.emitted = self._reachable()
        self.names = self._names()

    def _refs(self, node: Node) -> List[Ref]:
        if isinstance(node, Ref):
            return [node]
        if isinstance(node, Arr):
            return self._refs(node.item)
        if isinstance(node, Rec):
            return self._refs(node.value)
        if isinstance(node, (Tup, Uni)):
            out: List[Ref] = []
            for n in (node.items if isinstance(node, Tup) else node.members):
                out.extend(self._refs(n))
            return out
        return []

    def _body(self, named: Named, args_form: bool) -> List[Field]:
        if args_form and named.args_fields is not None:
            return named.args_fields
        return named.fields

    def _args_forms(self) -> Dict[type, bool]:
        """A dataclass gets its own args form when its __init__'s parameters differ from its
        fields, or one of the dataclasses that are built with it (its args form's refs) does."""
        edges: Dict[type, Set[type]] = {}
        for cls, named in self.tr.named.items():
            edges[cls] = {r.cls for f in (named.args_fields or ()) for r in self._refs(f.node)
                          if r.args_form}
        out: Dict[type, bool] = {}
        for cls, named in self.tr.named.items():
            if named.args_fields is None:
                out[cls] = False
                continue
            seen: Set[type] = set()
            todo = [cls]
            while todo:
                c = todo.pop()
                if c in seen:
                    continue
                seen.add(c)
                todo.extend(edges.get(c, ()))
            out[cls] = any(self.tr.named[c].own_args_form for c in seen)
        return out

    def canonical(self, ref: Ref) -> Tuple[type, bool]:
        return (ref.cls, ref.args_form and self.needs_args_form.get(ref.cls, False))

    def _reachable(self) -> Set[Tuple[type, bool]]:
        todo: List[Ref] = []
        for c in self.commands:
            for node in (c.args, c.result) + ((c.chunk,) if c.chunk is not None else ()):
                todo.extend(self._refs(node))
        seen: Set[Tuple[type, bool]] = set()
        while todo:
            key = self.canonical(todo.pop())
            if key in seen:
                continue
            seen.add(key)
            named = self.tr.named[key[0]]
            for field in self._body(named, key[1]):
                todo.extend(self._refs(field.node))
            if named.alias is not None:
                todo.extend(self._refs(named.alias))
        return seen

    def _names(self) -> Dict[Tuple[type, bool], str]:
        classes = sorted({cls for cls, _ in self.emitted},
                         key=lambda c: (_module_label(c.__module__), c.__qualname__))
        wanted: Dict[str, List[type]] = {}
        for cls in classes:
            wanted.setdefault(_ts_name(cls.__name__), []).append(cls)
        taken: Set[str] = set()
        base: Dict[type, str] = {}
        for name, group in sorted(wanted.items()):
            for cls in group:
                candidate = name
                if len(group) > 1 or name in _RESERVED_NAMES:
                    candidate = _pascal(_module_label(cls.__module__).split(".")[-1]) + name
                base[cls] = _unique(candidate, taken)
        names: Dict[Tuple[type, bool], str] = {}
        for cls in classes:
            if (cls, False) in self.emitted:
                names[(cls, False)] = base[cls]
        for cls in classes:
            if (cls, True) in self.emitted:
                names[(cls, True)] = _unique(base[cls] + "Input", taken)
        return names

    def ts(self, node: Node) -> str:
        if isinstance(node, Prim):
            if node.text == "Buffer":
                self.uses_buffer = True
            return node.text + (" /* python: %s */" % _comment(node.note) if node.note else "")
        if isinstance(node, Lit):
            return node.text
        if isinstance(node, Arr):
            inner = self.ts(node.item)
            return ("(%s)[]" if isinstance(node.item, Uni) else "%s[]") % inner
        if isinstance(node, Tup):
            items = [self.ts(n) for n in node.items]
            if node.labels:
                items = ["%s: %s" % (label, t) for label, t in zip(node.labels, items)]
            return "[%s]" % ", ".join(items)
        if isinstance(node, Rec):
            return "Record<string, %s>" % self.ts(node.value)
        if isinstance(node, Uni):
            out: List[str] = []
            for m in node.members:
                text = self.ts(m)
                if text not in out:
                    out.append(text)
            return " | ".join(out)
        return self.names[self.canonical(node)]

    def named_decl(self, key: Tuple[type, bool]) -> str:
        named = self.tr.named[key[0]]
        cls = named.cls
        label = "%s.%s" % (_module_label(cls.__module__), cls.__qualname__)
        name = self.names[key]
        if named.kind == "Enum":
            assert named.alias is not None
            return "/** %s (Enum) */\nexport type %s = %s;\n" % (_comment(label), name,
                                                                self.ts(named.alias))
        fields = self._body(named, key[1])
        if named.kind == "NamedTuple":
            items = ", ".join("%s: %s" % (f.name, self.ts(f.node)) for f in fields)
            return "/** %s (NamedTuple) */\nexport type %s = [%s];\n" % (_comment(label), name, items)
        note = named.kind
        if key[1] and named.kind == "dataclass":
            note += ", as an argument: what its constructor takes"
        lines = ["/** %s (%s) */" % (_comment(label), note), "export interface %s {" % name]
        for f in fields:
            lines.append("  %s%s%s: %s;" % ("readonly " if f.readonly else "", _key(f.name),
                                           "?" if f.optional else "", self.ts(f.node)))
        lines.append("}")
        return "\n".join(lines) + "\n"

    def handlers_decl(self) -> str:
        lines = ["/** The commands, for pool.commands<Handlers>(): args, result and a stream's chunk. */",
                 "export interface Handlers {"]
        for c in sorted(self.commands, key=lambda c: c.name):
            doc = c.where + (" (a stream)" if c.chunk is not None else "") \
                + (": " + c.doc if c.doc else "")
            lines.append("  /** %s */" % _comment(doc))
            parts = ["args: %s" % self.ts(c.args)]
            if c.chunk is not None:
                parts.append("chunk: %s" % self.ts(c.chunk))
            parts.append("result: %s" % self.ts(c.result))
            lines.append("  %s: { %s };" % (_key(c.name), "; ".join(parts)))
        lines.append("}")
        return "\n".join(lines) + "\n"


def _ts_name(name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_$]", "_", name)
    return name if _IDENTIFIER.match(name) else "_" + name


def _pascal(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", text) if part)


def _unique(name: str, taken: Set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken or candidate in _RESERVED_NAMES:
        candidate = "%s%d" % (name, n)
        n += 1
    taken.add(candidate)
    return candidate
