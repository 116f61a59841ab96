"""pyvisor.typegen: Python annotations -> the TypeScript of ``pyvisor types``.

Each mapping of docs/TYPES.md on a handler made here, then the whole path on
test/fixtures/typed_handlers.py: loading as the worker does, built-ins left out
(or in), the header, determinism, and ``python3 -m pyvisor.typegen``'s exit
codes. Standard library only (typing_extensions is not needed)."""

import collections
import dataclasses
import enum
import os
import subprocess
import sys
import tempfile
import typing
import unittest
from typing import (Any, AsyncGenerator, AsyncIterator, Dict, Generator, Iterable, Iterator,
                    List, Literal, Mapping, NamedTuple, NewType, Optional, Sequence, Set, Tuple,
                    TypedDict, Union)

from .helpers import PY_DIR, ROOT

from pyvisor import registry, typegen

TYPED_HANDLERS = os.path.join(ROOT, "test", "fixtures", "typed_handlers.py")


def _has_module(name):
    try:
        __import__(name)
        return True
    except ImportError:
        return False


def handler(args: object = typegen._MISSING, returns: object = typegen._MISSING):
    """A handler whose first parameter is annotated ``args`` and whose return is ``returns``."""
    def fn(a, ctx):
        return None
    annotations = {}
    if args is not typegen._MISSING:
        annotations["a"] = args
    if returns is not typegen._MISSING:
        annotations["return"] = returns
    fn.__annotations__ = annotations
    return fn


def entry(fn, name="cmd"):
    """The Handlers line of one command: ``{ args: ...; result: ... }``."""
    out = typegen.emit({name: fn})
    prefix = "  %s: " % name
    for line in out.splitlines():
        if line.startswith(prefix):
            return line[len(prefix):].rstrip(";")
    raise AssertionError("no entry for %s in:\n%s" % (name, out))


def args_ts(tp):
    text = entry(handler(args=tp))
    assert text.startswith("{ args: ") and text.endswith("; result: unknown }"), text
    return text[len("{ args: "):-len("; result: unknown }")]


def result_ts(tp):
    text = entry(handler(returns=tp))
    assert text.startswith("{ args: unknown; result: "), text
    return text[len("{ args: unknown; result: "):-len(" }")]


def decl(out, name):
    """The declaration of the interface/type ``name`` in a generated file."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("export interface %s " % name) or line.startswith("export type %s " % name):
            if line.startswith("export type"):
                return line
            end = lines.index("}", i)
            return "\n".join(lines[i:end + 1])
    raise AssertionError("no declaration of %s in:\n%s" % (name, out))


class GreetArgs(TypedDict):
    name: str
    times: int


class Sparse(TypedDict, total=False):
    a: int
    b: str


class Tree(TypedDict):
    value: int
    children: List["Tree"]


@dataclasses.dataclass
class Point:
    x: float
    y: float
    label: str = "origin"
    tags: List[str] = dataclasses.field(default_factory=list)
    norm: float = dataclasses.field(default=0.0, init=False)


@dataclasses.dataclass
class Plain:
    a: int
    b: Optional[str]


@dataclasses.dataclass
class Line:
    start: Point
    end: Point


class Pair(NamedTuple):
    left: int
    right: str


class Color(str, enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Shape(enum.Enum):
    SQUARE = object()


class Opaque:
    pass


UserId = NewType("UserId", int)
T = typing.TypeVar("T")


class TestPrimitives(unittest.TestCase):
    def test_scalars(self):
        self.assertEqual(args_ts(int), "number")
        self.assertEqual(args_ts(float), "number")
        self.assertEqual(args_ts(str), "string")
        self.assertEqual(args_ts(bool), "boolean")
        self.assertEqual(args_ts(type(None)), "null")
        self.assertEqual(result_ts(None), "null")

    def test_bytes_are_node_buffers(self):
        for tp in (bytes, bytearray, memoryview):
            self.assertEqual(args_ts(tp), "Buffer")
        out = typegen.emit({"cmd": handler(args=bytes)})
        self.assertIn('/// <reference types="node" />', out)
        self.assertNotIn("reference types", typegen.emit({"cmd": handler(args=int)}))

    def test_unannotated_and_any_are_unknown(self):
        self.assertEqual(entry(handler()), "{ args: unknown; result: unknown }")
        self.assertEqual(args_ts(Any), "unknown")
        self.assertEqual(args_ts(object), "unknown")

    def test_newtype_typevar_annotated(self):
        self.assertEqual(args_ts(UserId), "number")
        self.assertEqual(args_ts(T), "unknown /* python: TypeVar T */")
        self.assertEqual(args_ts(typing.Annotated[int, "meta"]), "number")

    def test_subclasses_of_wire_types(self):
        class Name(str):
            pass
        self.assertEqual(args_ts(Name), "string")
        self.assertEqual(args_ts(collections.OrderedDict), "Record<string, unknown>")


class TestContainers(unittest.TestCase):
    def test_arrays(self):
        self.assertEqual(args_ts(List[int]), "number[]")
        self.assertEqual(args_ts(list[str]), "string[]")
        self.assertEqual(args_ts(Sequence[bool]), "boolean[]")
        self.assertEqual(args_ts(Tuple[int, ...]), "number[]")
        self.assertEqual(args_ts(list), "unknown[]")
        self.assertEqual(args_ts(List), "unknown[]")
        self.assertEqual(args_ts(List[List[int]]), "number[][]")

    def test_fixed_tuples(self):
        self.assertEqual(args_ts(Tuple[int, str]), "[number, string]")
        self.assertEqual(args_ts(tuple[bool, None, float]), "[boolean, null, number]")
        self.assertEqual(args_ts(Tuple[()]), "[]")
        self.assertEqual(args_ts(tuple), "unknown[]")

    def test_maps(self):
        self.assertEqual(args_ts(Dict[str, int]), "Record<string, number>")
        self.assertEqual(args_ts(dict[str, List[str]]), "Record<string, string[]>")
        self.assertEqual(args_ts(Mapping[str, Optional[int]]), "Record<string, number | null>")
        self.assertEqual(args_ts(dict), "Record<string, unknown>")
        self.assertEqual(args_ts(Dict[Literal["a", "b"], int]), "Record<string, number>")

    def test_not_wire_types_are_unknown_with_a_note(self):
        self.assertEqual(args_ts(Set[int]), "unknown /* python: Set[int]: not a wire type */")
        self.assertEqual(args_ts(Dict[int, str]),
                         "unknown /* python: Dict[int, str]: map keys are str on the wire */")
        self.assertEqual(args_ts(Opaque), "unknown /* python: tests.test_typegen.Opaque */")
        self.assertEqual(args_ts(Shape), "unknown /* python: tests.test_typegen.Shape: an Enum "
                         "that is neither str nor int is not a wire type */")


class TestUnions(unittest.TestCase):
    def test_optional_and_union(self):
        self.assertEqual(args_ts(Optional[int]), "number | null")
        self.assertEqual(args_ts(Union[int, str, None]), "number | string | null")
        self.assertEqual(args_ts(Union[int, float]), "number", "one TS type once")
        self.assertEqual(args_ts(List[Optional[str]]), "(string | null)[]")
        self.assertEqual(args_ts(Optional[Any]), "unknown /* python: Optional[Any] */")

    @unittest.skipIf(sys.version_info < (3, 10), "X | Y needs Python 3.10")
    def test_pipe_unions(self):
        self.assertEqual(args_ts(eval("int | None")), "number | null")
        self.assertEqual(args_ts(eval("list[int | str]")), "(number | string)[]")

    def test_literals(self):
        self.assertEqual(args_ts(Literal["a", "b"]), '"a" | "b"')
        self.assertEqual(args_ts(Literal[1, -2, True, None]), "1 | -2 | true | null")
        self.assertEqual(args_ts(Literal['say "hi"']), '"say \\"hi\\""')
        self.assertEqual(args_ts(Literal[Color.RED]), '"red"')

    def test_enums_of_str_and_int(self):
        out = typegen.emit({"c": handler(args=Color, returns=List[Level])})
        self.assertIn("  c: { args: Color; result: Level[] };", out)
        self.assertEqual(decl(out, "Color"), 'export type Color = "red" | "green";')
        self.assertEqual(decl(out, "Level"), "export type Level = 1 | 2;")
        self.assertEqual(args_ts(enum.IntFlag("Perm", "R W X")), "number")


class TestNamedTypes(unittest.TestCase):
    def test_typeddict_interface(self):
        out = typegen.emit({"greet": handler(args=GreetArgs, returns=Sparse)})
        self.assertIn("  greet: { args: GreetArgs; result: Sparse };", out)
        self.assertEqual(decl(out, "GreetArgs"),
                         "export interface GreetArgs {\n  name: string;\n  times: number;\n}")
        self.assertEqual(decl(out, "Sparse"),
                         "export interface Sparse {\n  a?: number;\n  b?: string;\n}")

    @unittest.skipIf(not hasattr(typing, "NotRequired"), "typing.NotRequired needs Python 3.11")
    def test_required_and_not_required(self):
        ns = {}
        exec("from typing import TypedDict, NotRequired, Required\n"
             "class Opts(TypedDict, total=False):\n"
             "    depth: Required[int]\n"
             "    verbose: bool\n"
             "class Args(TypedDict):\n"
             "    name: str\n"
             "    excited: NotRequired[bool]\n", ns)
        out = typegen.emit({"c": handler(args=ns["Args"], returns=ns["Opts"])})
        self.assertEqual(decl(out, "Args"),
                         "export interface Args {\n  name: string;\n  excited?: boolean;\n}")
        self.assertEqual(decl(out, "Opts"),
                         "export interface Opts {\n  depth: number;\n  verbose?: boolean;\n}")

    def test_read_only(self):
        source = ("typing" if hasattr(typing, "ReadOnly") else
                  "typing_extensions" if _has_module("typing_extensions") else None)
        if source is None:
            self.skipTest("ReadOnly needs Python 3.13 or typing_extensions")
        ns = {}
        exec("from %s import TypedDict, ReadOnly, NotRequired\n"
             "class Frozen(TypedDict):\n"
             "    id: ReadOnly[int]\n"
             "    note: NotRequired[ReadOnly[str]]\n" % source, ns)
        out = typegen.emit({"c": handler(args=ns["Frozen"])})
        self.assertEqual(decl(out, "Frozen"),
                         "export interface Frozen {\n  readonly id: number;\n  readonly note?: string;\n}")

    def test_recursive_typeddict_is_emitted_once(self):
        out = typegen.emit({"t": handler(args=Tree, returns=List[Tree])})
        self.assertEqual(decl(out, "Tree"),
                         "export interface Tree {\n  value: number;\n  children: Tree[];\n}")
        self.assertEqual(out.count("export interface Tree "), 1)
        self.assertIn("  t: { args: Tree; result: Tree[] };", out)

    def test_dataclass_result_and_args_forms(self):
        out = typegen.emit({"p": handler(args=Point, returns=Point)})
        self.assertIn("  p: { args: PointInput; result: Point };", out)
        self.assertEqual(decl(out, "Point"), "export interface Point {\n  x: number;\n  y: number;\n"
                         "  label: string;\n  tags: string[];\n  norm: number;\n}")
        # The worker builds the dataclass from the args map: defaults may be left out,
        # init=False fields cannot be given.
        self.assertEqual(decl(out, "PointInput"), "export interface PointInput {\n  x: number;\n"
                         "  y: number;\n  label?: string;\n  tags?: string[];\n}")

    def test_dataclass_without_defaults_has_one_form(self):
        out = typegen.emit({"p": handler(args=Plain, returns=List[Plain])})
        self.assertIn("  p: { args: Plain; result: Plain[] };", out)
        self.assertNotIn("PlainInput", out)
        self.assertEqual(decl(out, "Plain"),
                         "export interface Plain {\n  a: number;\n  b: string | null;\n}")

    def test_nested_dataclass_args_form(self):
        out = typegen.emit({"l": handler(args=Line)})
        self.assertIn("  l: { args: LineInput; result: unknown };", out)
        self.assertEqual(decl(out, "LineInput"),
                         "export interface LineInput {\n  start: PointInput;\n  end: PointInput;\n}")
        self.assertNotIn("export interface Line ", out, "only what is used is emitted")

    def test_args_forms_follow_what_the_worker_builds(self):
        # pyvisor.typed_args builds the first parameter's dataclass, and inside one the
        # dataclasses of fields typed as one, Optional of one, a list or a dict[str, ...] of them.
        @dataclasses.dataclass
        class Shapes:
            one: Optional[Point]
            many: List[Point]
            named: Dict[str, Point]
            pair: Tuple[Point, Point]
            either: Union[Point, Plain, None]
            scale: dataclasses.InitVar[float] = 1.0

        out = typegen.emit({"s": handler(args=Shapes), "l": handler(args=List[Point]),
                            "td": handler(args=typing.TypedDict("Holder", {"p": Point}))})
        self.assertEqual(decl(out, "ShapesInput"), "export interface ShapesInput {\n"
                         "  one: PointInput | null;\n  many: PointInput[];\n"
                         "  named: Record<string, PointInput>;\n  pair: [Point, Point];\n"
                         "  either: Point | Plain | null;\n  scale?: number;\n}")
        self.assertIn("  l: { args: PointInput[]; result: unknown };", out, "a list at the top is built, as in a field")
        self.assertEqual(decl(out, "Holder"), "export interface Holder {\n  p: Point;\n}",
                         "a TypedDict's values arrive as they came")

    def test_namedtuple_is_a_labelled_tuple(self):
        out = typegen.emit({"p": handler(returns=Pair)})
        self.assertEqual(decl(out, "Pair"), "export type Pair = [left: number, right: string];")

    def test_name_clashes_are_disambiguated_by_module(self):
        a = TypedDict("Point", {"x": int})
        a.__module__ = "geo.flat"
        b = TypedDict("Point", {"lat": float})
        b.__module__ = "geo.sphere"
        out = typegen.emit({"one": handler(args=a), "two": handler(args=b)})
        self.assertIn("  one: { args: FlatPoint; result: unknown };", out)
        self.assertIn("  two: { args: SpherePoint; result: unknown };", out)
        self.assertEqual(out, typegen.emit({"two": handler(args=b), "one": handler(args=a)}))

    def test_reserved_names_are_renamed(self):
        handlers_td = TypedDict("Handlers", {"x": int})
        handlers_td.__module__ = "app"
        out = typegen.emit({"c": handler(args=handlers_td)})
        self.assertIn("  c: { args: AppHandlers; result: unknown };", out)
        self.assertEqual(out.count("export interface Handlers "), 1)

    def test_unresolved_forward_reference(self):
        out = entry(handler(args="NoSuchType"))
        self.assertEqual(out, "{ args: unknown /* python: 'NoSuchType' (unresolved) */; result: unknown }")


class TestStreams(unittest.TestCase):
    def test_sync_generator_iterator(self):
        def gen(args: int, ctx) -> Iterator[str]:
            yield "x"
        self.assertEqual(entry(gen), "{ args: number; chunk: string; result: null }")

    def test_generator_return_value_is_the_result(self):
        def gen(args, ctx) -> Generator[int, None, Dict[str, int]]:
            yield 1
            return {}
        self.assertEqual(entry(gen), "{ args: unknown; chunk: number; result: Record<string, number> }")

    def test_async_generators(self):
        async def agen(args: str, ctx) -> AsyncIterator[bytes]:
            yield b""

        async def agen2(args, ctx) -> AsyncGenerator[List[int], None]:
            yield []

        async def bare(args, ctx):
            yield 1
        self.assertEqual(entry(agen), "{ args: string; chunk: Buffer; result: null }")
        self.assertEqual(entry(agen2), "{ args: unknown; chunk: number[]; result: null }")
        self.assertEqual(entry(bare), "{ args: unknown; chunk: unknown; result: null }")

    def test_unannotated_generator_is_still_a_stream(self):
        def gen(args, ctx):
            yield 1
        self.assertEqual(entry(gen), "{ args: unknown; chunk: unknown; result: unknown }")

    def test_iterable_annotation_marks_a_stream(self):
        def returns_gen(args, ctx) -> Iterable[int]:
            return iter(())
        self.assertEqual(entry(returns_gen), "{ args: unknown; chunk: number; result: null }")

    def test_coroutines_give_their_value(self):
        async def coro(args: int, ctx) -> List[str]:
            return []
        self.assertEqual(entry(coro), "{ args: number; result: string[] }")

    def test_callable_object_handler(self):
        class Handler:
            def __call__(self, args: Dict[str, int], ctx) -> bool:
                return True
        self.assertEqual(entry(Handler()), "{ args: Record<string, number>; result: boolean }")


class TestOutput(unittest.TestCase):
    def test_header_sorting_and_determinism(self):
        def b(args: int, ctx) -> int:
            """Doubles.

            More text."""
            return args * 2
        commands = {"zeta": handler(args=str), "alpha": b, "with-dash": handler()}
        out = typegen.emit(commands, ["handlers.py", "more.py"], "pyvisor types handlers.py more.py")
        lines = out.splitlines()
        self.assertEqual(lines[0], "// generated by pyvisor types; do not edit.")
        self.assertEqual(lines[1], "// sources: handlers.py more.py")
        self.assertEqual(lines[2], "// regenerate: pyvisor types handlers.py more.py")
        keys = [l.split(":")[0].strip() for l in lines if l.startswith("  ") and not l.strip().startswith("/**")]
        self.assertEqual(keys, ["alpha", '"with-dash"', "zeta"])
        self.assertIn("  /** tests.test_typegen.TestOutput.test_header_sorting_and_determinism.<locals>.b: Doubles. */", lines)
        self.assertEqual(out, typegen.emit(dict(reversed(list(commands.items()))),
                                           ["handlers.py", "more.py"], "pyvisor types handlers.py more.py"))

    def test_comments_cannot_be_closed_by_a_docstring(self):
        def h(args, ctx):
            """Ends */ early"""
        self.assertIn("Ends *\\/ early", typegen.emit({"h": h}))


class TestLoading(unittest.TestCase):
    def tearDown(self):
        for name in list(registry.command_names()):
            fn = registry.get_command(name)
            if fn is not None and getattr(fn, "__module__", "").endswith("typed_handlers"):
                registry.unregister(name)

    def test_fixture_file_loads_as_the_worker_loads_it(self):
        out = typegen.generate([TYPED_HANDLERS])
        self.assertTrue(out.startswith("// generated by pyvisor types; do not edit.\n// source: %s\n"
                                       % TYPED_HANDLERS))
        self.assertIn("  greet: { args: GreetArgs; result: GreetResult };", out)
        self.assertIn("  tokens: { args: Record<string, string>; chunk: string; result: null };", out)
        self.assertIn("  countdown: { args: number; chunk: number; result: string };", out)
        self.assertIn("  segment: { args: SegmentInput; result: Point };", out)
        self.assertIn("  union_pipe: { args: number | string; result: (number | null)[] };", out)
        self.assertEqual(decl(out, "GreetArgs"),
                         "export interface GreetArgs {\n  name: string;\n  excited?: boolean;\n}")
        for builtin in ("ping", "get_stats", "cleanup_session", "shutdown"):
            self.assertNotIn("  %s: " % builtin, out)

    def test_builtins_on_request(self):
        commands = typegen.load_commands([], include_builtins=True)
        self.assertEqual(sorted(commands), ["cleanup_session", "get_stats", "ping", "shutdown"])
        self.assertEqual(typegen.load_commands([]), {})

    def test_a_replaced_builtin_is_the_handlers_own(self):
        original = getattr(registry, "get_handler", registry.get_command)("ping")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "my_ping.py")
            with open(path, "w") as f:
                f.write("from pyvisor import command\n"
                        "@command('ping', replace=True)\n"
                        "def ping(args: None, ctx) -> str:\n"
                        "    return 'pong'\n")
            try:
                out = typegen.generate([path])
            finally:
                registry.command("ping", replace=True, builtin=True)(original)
        self.assertIn("  ping: { args: null; result: string };", out)

    def test_a_failing_file_is_named(self):
        missing = os.path.join(tempfile.gettempdir(), "no_such_handlers_%d.py" % os.getpid())
        with self.assertRaises(typegen.LoadError) as cm:
            typegen.load_commands([missing])
        self.assertEqual(cm.exception.spec, missing)
        self.assertIn("FileNotFoundError: handlers file not found: %s" % missing, str(cm.exception))


class TestCommandLine(unittest.TestCase):
    def run_typegen(self, *argv, cwd=None):
        env = dict(os.environ, PYTHONPATH=PY_DIR)
        return subprocess.run([sys.executable, "-m", "pyvisor.typegen"] + list(argv), cwd=cwd or PY_DIR,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=60)

    def test_writes_the_declarations_and_keeps_prints_out_of_them(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "noisy.py")
            with open(path, "w") as f:
                f.write("import os\nfrom pyvisor import command\nprint('hello from import')\n"
                        "os.write(1, b'raw fd 1\\n')\n"
                        "@command('n')\ndef n(args: int, ctx) -> int:\n    return args\n")
            r = self.run_typegen("noisy.py", cwd=tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("// generated by pyvisor types; do not edit.\n// source: noisy.py\n"),
                        r.stdout)
        self.assertIn("  n: { args: number; result: number };", r.stdout)
        self.assertNotIn("hello", r.stdout)
        self.assertIn("hello from import", r.stderr)
        self.assertIn("raw fd 1", r.stderr)

    def test_builtins_flag(self):
        r = self.run_typegen("--builtins", TYPED_HANDLERS)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("  ping: {", r.stdout)
        self.assertIn("// regenerate: pyvisor types --builtins %s" % TYPED_HANDLERS, r.stdout)

    def test_exit_codes(self):
        r = self.run_typegen()
        self.assertEqual(r.returncode, 2)
        self.assertIn("HANDLERS", r.stderr)
        r = self.run_typegen("missing_handlers.py")
        self.assertEqual(r.returncode, 3)
        self.assertEqual(r.stdout, "")
        self.assertEqual(r.stderr.strip().splitlines()[-1],
                         "pyvisor types: could not load handlers 'missing_handlers.py': FileNotFoundError: "
                         "handlers file not found: %s" % os.path.join(PY_DIR, "missing_handlers.py"))
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "broken.py")
            with open(path, "w") as f:
                f.write("def oops(:\n")
            r = self.run_typegen("--traceback", path)
        self.assertEqual(r.returncode, 3)
        self.assertIn("Traceback", r.stderr)
        self.assertRegex(r.stderr.strip().splitlines()[-1],
                         r"^pyvisor types: could not load handlers '.*broken\.py': SyntaxError: .*\(broken\.py, line 1\)")


if __name__ == "__main__":
    unittest.main()
