"""TypeScript types for the commands of handler files, from their Python annotations.

    python3 -m pyvisor.typegen [--builtins] [--traceback] HANDLERS...

(``pyvisor types`` in Node runs this.) The handler files or modules are loaded
as the worker loads them (:func:`pyvisor.bootstrap.load_handlers`), the
registered commands are read from the registry, and a TypeScript declaration
file goes to stdout: one ``export interface Handlers`` with an entry per
command, ``{ args; result }``, or ``{ args; chunk; result }`` for a generator
(stream) command, plus an exported interface per ``TypedDict`` or dataclass
they use. The pool's typed proxy takes it: ``pool.commands<Handlers>()``.

* ``args`` is the annotation of the handler's first parameter, ``result`` its
  return annotation (``unknown`` when absent). A generator handler's return
  annotation (``Iterator[T]``, ``Iterable[T]``, ``Generator[T, S, R]``,
  ``AsyncIterator[T]``, ``AsyncIterable[T]``, ``AsyncGenerator[T, S]``) gives
  ``chunk: T``; its ``result`` is what the stream's final reply carries: ``R``
  of a ``Generator``, ``null`` otherwise (a sync generator typed as an
  iterator returns nothing; an async generator cannot return a value).
* The mapping (docs/TYPES.md has the table): ``int``/``float`` -> ``number``,
  ``str`` -> ``string``, ``bool`` -> ``boolean``, ``None`` -> ``null``,
  ``bytes``/``bytearray``/``memoryview`` -> ``Buffer`` (what Node's decoder
  gives for MessagePack bin), ``list[T]``/``Sequence[T]``/``tuple[T, ...]`` ->
  ``T[]``, ``tuple[A, B]`` -> ``[A, B]``, ``dict[str, T]``/``Mapping`` ->
  ``Record<string, T>``, ``Optional[T]`` -> ``T | null``, unions, ``Literal``
  -> literal unions, str/int enums -> the union of their values, ``NewType``
  -> its base, ``Annotated[T, ...]`` -> ``T``; ``TypedDict`` -> an interface
  (``total=``, ``Required``, ``NotRequired``, ``ReadOnly``), a dataclass -> an
  interface of its fields, a ``NamedTuple`` -> a labelled tuple. A dataclass
  whose fields have defaults also gets a ``<Name>Input`` interface (those
  fields optional, ``init=False`` ones left out) where it is an argument: the
  worker builds the dataclass from the args map, while a result carries every
  field. Everything else (``Any``, ``object``, sets, arbitrary classes,
  unresolvable forward references) is ``unknown``, with a ``/* python: ... */``
  comment naming what it was when that says more.
* The built-in commands (``ping``, ``get_stats``, ``cleanup_session``,
  ``shutdown``) are left out unless ``--builtins``; a handler that replaces one
  (``replace=True``) is the handlers' own and is included.

The output is deterministic: commands and named types sorted by name, fields
in declaration order. Exit codes: 0 written, 2 bad usage, 3 a handler file or
module failed to load (the last stderr line names it and the error, as the
worker's does).

The package is fully typed and needs only the standard library;
``typing_extensions`` is used when importable (its ``Required``,
``NotRequired``, ``ReadOnly`` and ``TypedDict`` on older Pythons). Its parts,
in the order a run goes through them: :mod:`.api` (loading the handlers,
:func:`emit`, :func:`generate`), :mod:`.annotations` (typing's forms, evaluated
hints), :mod:`.translate` (Python types -> the intermediate form of
:mod:`.forms`; a handler -> a command), :mod:`.render` (that form ->
TypeScript, the names) and :mod:`.cli` (:func:`main`, run by ``__main__``).
"""

from __future__ import annotations

from .annotations import _MISSING as _MISSING
from .api import HEADER, LoadError, emit, generate, load_commands
from .cli import main

__all__ = ["generate", "emit", "main", "load_commands", "LoadError", "HEADER"]
