"""Dataclasses on the wire, both directions.

* A dataclass instance in a result or a chunk is sent as the map of its fields,
  recursively, by both codecs, byte for byte the same (pyvisor._purepack and the
  msgpack module path of pyvisor.codec).
* A handler whose first parameter is annotated with a dataclass gets an instance
  built from the args map; args that do not fit are a ValueError reply naming
  the field (pyvisor.typed_args).
"""

import dataclasses
import enum
import os
import sys
import unittest
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from . import helpers
from .helpers import TESTS_DIR, WorkerTestCase
from pyvisor import Context, codec, command, _purepack, registry, typed_args
from pyvisor.codec import SerializationError

CODECS = [codec.get_codec(n) for n in codec.available()]
DATACLASS_HANDLERS = os.path.join(TESTS_DIR, "handlers", "dataclass_handlers.py")

try:
    import msgpack
except ImportError:
    msgpack = None


@dataclass
class Point:
    x: int
    y: int


@dataclass
class Line:
    start: Point
    end: Point
    label: Optional[str] = None
    tags: List[str] = field(default_factory=list)


@dataclass
class Counted:
    name: str
    size: int = field(init=False, default=0)


@dataclass
class Base:
    a: int


@dataclass
class Derived(Base):
    b: str = "b"


@dataclass(frozen=True)
class Frozen:
    key: str
    blob: bytes


@dataclass
class Node:
    value: int
    child: Optional["Node"] = None


class Mood(enum.IntEnum):
    OK = 1


@dataclass
class Holder:
    items: list
    meta: dict


def _chain(n):
    """``n`` dataclasses, each the ``child`` of the one before."""
    node = None
    for i in range(n):
        node = Node(i, node)
    return node


def _chain_dicts(n):
    node = None
    for i in range(n):
        node = {"value": i, "child": node}
    return node


class TestEncoding(unittest.TestCase):
    """A dataclass instance is the map of its fields, for every codec."""

    SAMPLES = [
        Point(1, 2),
        Line(Point(0, 0), Point(3, 4), "diag", ["a", "b"]),
        [Point(1, 2), {"p": Point(3, 4)}, (Point(5, 6),)],
        Counted("x"),
        Derived(1),
        Frozen("k", b"\x00\xff"),
        _chain(5),
        Holder([Point(1, 1), None, 1.5, Mood.OK], {"nested": [Derived(2, "z")]}),
    ]

    @staticmethod
    def as_plain(o):
        """What the value is sent as: dataclasses.asdict, which recurses the same way."""
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return {f.name: TestEncoding.as_plain(getattr(o, f.name))
                    for f in dataclasses.fields(o)}
        if isinstance(o, (list, tuple)):
            return [TestEncoding.as_plain(v) for v in o]
        if isinstance(o, dict):
            return {k: TestEncoding.as_plain(v) for k, v in o.items()}
        return o

    def test_same_bytes_as_the_map_of_fields(self):
        for c in CODECS:
            for sample in self.SAMPLES:
                with self.subTest(codec=c.name, sample=repr(sample)[:60]):
                    self.assertEqual(c.encode(sample), c.encode(self.as_plain(sample)))
                    self.assertEqual(c.decode(c.encode(sample)), self.as_plain(sample))

    def test_field_order_and_every_field(self):
        for c in CODECS:
            with self.subTest(codec=c.name):
                self.assertEqual(c.encode(Derived(7, "q")), c.encode({"a": 7, "b": "q"}))
                self.assertEqual(c.decode(c.encode(Counted("n"))), {"name": "n", "size": 0},
                                 "init=False fields are fields too")

    def test_both_codecs_produce_identical_bytes(self):
        pure = codec.get_codec("pure")
        if "msgpack" not in codec.available():
            self.skipTest("the msgpack module is not importable here (the python-system tier has it)")
        mp = codec.get_codec("msgpack")
        for sample in self.SAMPLES:
            with self.subTest(sample=repr(sample)[:60]):
                self.assertEqual(mp.encode(sample), pure.encode(sample))
                self.assertEqual(bytes(mp.encode_frame(sample)), bytes(pure.encode_frame(sample)))
                self.assertEqual(b"".join(bytes(b) for b in mp.reply_frame(7, sample)),
                                 b"".join(bytes(b) for b in pure.reply_frame(7, sample)))

    def test_reply_and_chunk_frames(self):
        for c in CODECS:
            with self.subTest(codec=c.name):
                frame = b"".join(bytes(b) for b in c.reply_frame(3, Point(1, 2)))
                self.assertEqual(c.decode(frame[4:]), {"id": 3, "ok": True,
                                                       "result": {"x": 1, "y": 2}})

    def test_a_dataclass_type_is_not_a_value(self):
        for c in CODECS:
            with self.subTest(codec=c.name):
                with self.assertRaises(SerializationError) as cm:
                    c.encode({"cls": Point}, "result")
                self.assertEqual(str(cm.exception), "result.cls: type is not serializable")

    def test_unserializable_field_is_named_by_its_path(self):
        for c in CODECS:
            with self.subTest(codec=c.name):
                with self.assertRaises(SerializationError) as cm:
                    c.encode({"lines": [Line(Point(0, 0), Point(1, {1, 2}))]}, "result")
                self.assertEqual(str(cm.exception),
                                 "result.lines[0].end.y: set is not serializable")
                with self.assertRaises(SerializationError) as cm:
                    c.encode(Holder([], {1: "x"}), "chunk")
                self.assertEqual(str(cm.exception), "chunk.meta: map key 1 (int) is not a str")

    def test_circular_dataclass(self):
        loop = Node(1)
        loop.child = loop
        for c in CODECS:
            with self.subTest(codec=c.name):
                with self.assertRaises(SerializationError) as cm:
                    c.encode(loop, "result")
                self.assertEqual(str(cm.exception), "result.child: circular reference")

    def test_nesting_limit_counts_a_dataclass_as_a_map(self):
        # 511 nested containers are allowed, 512 are not: Node chains as dict chains.
        for c in CODECS:
            with self.subTest(codec=c.name):
                self.assertEqual(c.encode(_chain(511)), c.encode(_chain_dicts(511)))
                with self.assertRaises(SerializationError) as cm:
                    c.encode(_chain(512), "result")
                self.assertIn("nesting deeper than 511 levels", str(cm.exception))

    def test_plain_values_are_unchanged(self):
        # The dataclass path is only taken for what the fast paths refuse.
        for c in CODECS:
            with self.subTest(codec=c.name):
                value = {"a": [1, "x", None, 2.5, b"b", {"c": True}]}
                self.assertEqual(c.decode(c.encode(value)), value)
                with self.assertRaises(SerializationError):
                    c.encode({"s": {1}}, "result")

    def test_dataclass_map(self):
        self.assertEqual(_purepack.dataclass_map(Point(1, 2)), {"x": 1, "y": 2})
        self.assertIsNone(_purepack.dataclass_map(Point))
        self.assertIsNone(_purepack.dataclass_map({"x": 1}))
        self.assertIsNone(_purepack.dataclass_map(object()))


# -- args: typed_args ---------------------------------------------------------

@dataclass
class Address:
    street: str
    city: str


@dataclass
class Item:
    sku: str
    qty: int = 1


@dataclass
class Order:
    to: Address
    items: List[Item]
    gift: Optional[Address] = None
    by_tag: Dict[str, Item] = field(default_factory=dict)


@dataclass
class Tree:
    name: str
    children: List["Tree"] = field(default_factory=list)


@dataclass
class WithInitVar:
    a: int
    scale: dataclasses.InitVar[int] = 1

    def __post_init__(self, scale):
        self.a = self.a * scale


class TestArgsConversion(unittest.TestCase):
    def convert(self, cls, value, cmd="cmd"):
        conv = typed_args.converter(cls)
        self.assertIsNotNone(conv)
        return conv(value, "args", cmd)

    def error(self, cls, value, cmd="cmd"):
        with self.assertRaises(ValueError) as cm:
            self.convert(cls, value, cmd)
        return str(cm.exception)

    def test_nested_optional_list_dict(self):
        o = self.convert(Order, {"to": {"street": "Main", "city": "X"},
                                 "items": [{"sku": "a"}, {"sku": "b", "qty": 3}],
                                 "gift": {"street": "Side", "city": "Y"},
                                 "by_tag": {"t": {"sku": "c"}}})
        self.assertEqual(o, Order(Address("Main", "X"), [Item("a"), Item("b", 3)],
                                  Address("Side", "Y"), {"t": Item("c")}))
        o = self.convert(Order, {"to": {"street": "Main", "city": "X"}, "items": [],
                                 "gift": None})
        self.assertIsNone(o.gift)
        self.assertEqual(o.by_tag, {})

    def test_recursive_dataclass(self):
        t = self.convert(Tree, {"name": "r", "children": [{"name": "a", "children": [
            {"name": "b"}]}]})
        self.assertEqual(t, Tree("r", [Tree("a", [Tree("b")])]))
        self.assertEqual(self.error(Tree, {"name": "r", "children": [{"nam": "a"}]}),
                         "cmd: args.children[0] lacks field(s) 'name' and has unknown "
                         "field(s) 'nam' (Tree: name, children?)")

    def test_init_var_is_an_argument(self):
        self.assertEqual(self.convert(WithInitVar, {"a": 2, "scale": 3}).a, 6)

    def test_messages_name_the_field(self):
        self.assertEqual(self.error(Item, [1], "order"),
                         "order: args must be a map of Item fields, got array")
        self.assertEqual(self.error(Item, None, "order"),
                         "order: args must be a map of Item fields, got nil")
        self.assertEqual(self.error(Item, {}, "order"),
                         "order: args lacks field(s) 'sku' (Item: sku, qty?)")
        self.assertEqual(self.error(Item, {"sku": "a", "qtty": 2, "x": 1}, "order"),
                         "order: args has unknown field(s) 'qtty', 'x' (Item: sku, qty?)")
        self.assertEqual(self.error(Order, {"to": {"street": "s"}, "items": []}, "order"),
                         "order: args.to lacks field(s) 'city' (Address: street, city)")
        self.assertEqual(self.error(Order, {"to": {"street": "s", "city": "c"},
                                            "items": [{"sku": "a"}, "b"]}, "order"),
                         "order: args.items[1] must be a map of Item fields, got str")
        self.assertEqual(self.error(Order, {"to": {"street": "s", "city": "c"},
                                            "items": {"sku": "a"}}, "order"),
                         "order: args.items must be an array, got map")
        self.assertEqual(self.error(Order, {"to": {"street": "s", "city": "c"}, "items": [],
                                            "by_tag": {"my tag": {}}}, "order"),
                         "order: args.by_tag['my tag'] lacks field(s) 'sku' (Item: sku, qty?)")

    def test_args_dataclass_detection(self):
        def typed(args: Item, ctx: Context):
            return args

        def typed_str(args: "Item", ctx: "NotDefinedAnywhere"):  # noqa: F821
            return args

        def untyped(args, ctx):
            return args

        def other(args: dict, ctx):
            return args

        def optional(args: Optional[Item], ctx):
            return args

        def listed(args: List[Item], ctx):
            return args

        self.assertIs(typed_args.args_annotation(typed), Item)
        self.assertIs(typed_args.args_annotation(typed_str), Item,
                      "resolved alone when another annotation does not resolve")
        self.assertIsNone(typed_args.args_annotation(untyped))
        self.assertIsNone(typed_args.args_annotation(len))
        self.assertIs(typed_args.wrap(other, "x"), other, "nothing to build in a dict")
        # At the top as in a field: an Optional or a list of dataclasses is built too.
        wrapped = typed_args.wrap(optional, "opt")
        self.assertIsNone(wrapped(None, None))
        self.assertEqual(wrapped({"sku": "a"}, None), Item("a"))
        self.assertEqual(typed_args.wrap(listed, "many")([{"sku": "a", "qty": 2}], None), [Item("a", 2)])
        with self.assertRaisesRegex(ValueError, r"^many: args must be an array, got map$"):
            typed_args.wrap(listed, "many")({"sku": "a"}, None)

    def test_unresolvable_annotation_is_not_converted(self):
        def handler(args: "Missing", ctx):  # noqa: F821
            return args
        self.assertIs(typed_args.wrap(handler, "x"), handler)

    def test_wrap_keeps_the_handler_for_untyped_commands(self):
        def handler(args, ctx):
            return args
        self.assertIs(typed_args.wrap(handler, "x"), handler)


class TestRegistry(unittest.TestCase):
    def tearDown(self):
        for name in ("t_dc_sync", "t_dc_async", "t_dc_plain"):
            registry.unregister(name)

    def test_decorating_keeps_the_function(self):
        def greet(args: Item, ctx: Context) -> Item:
            return args
        self.assertIs(command("t_dc_sync")(greet), greet)
        run = registry.get_command("t_dc_sync")
        self.assertIsNot(run, greet, "the loop calls the wrapper that builds the args")
        self.assertIs(registry.get_handler("t_dc_sync"), greet)
        self.assertIs(run.__wrapped__, greet)
        self.assertEqual(run({"sku": "a"}, None), Item("a"))
        with self.assertRaises(ValueError) as cm:
            run({"qty": 2}, None)
        self.assertEqual(str(cm.exception),
                         "t_dc_sync: args lacks field(s) 'sku' (Item: sku, qty?)")

    def test_async_handler_stays_async_for_the_dispatcher(self):
        async def greet(args: Item, ctx: Context) -> Item:
            return args
        command("t_dc_async")(greet)
        self.assertTrue(getattr(registry.get_command("t_dc_async"), "_pyvisor_async"))

    def test_plain_handler_is_registered_as_it_is(self):
        def plain(args, ctx):
            return args
        command("t_dc_plain")(plain)
        self.assertIs(registry.get_command("t_dc_plain"), plain)


class TestWorker(WorkerTestCase):
    """Real workers with tests/handlers/dataclass_handlers.py, on every codec and at
    concurrency 1 and 4 (started once for the class)."""

    @classmethod
    def setUpClass(cls):
        cls.all = []
        for name in codec.available():
            for concurrency in (1, 4):
                w = cls.spawn_class(script=helpers.GENERIC, cwd=helpers.PY_DIR,
                                    handlers=[DATACLASS_HANDLERS],
                                    extra_args=["--concurrency", str(concurrency)],
                                    env={"PYVISOR_CODEC": name})
                cls.all.append(("%s, concurrency %d" % (name, concurrency), w))

    def each(self, check):
        """``check(w)`` for each worker, in a subTest naming its codec and concurrency."""
        for label, w in self.all:
            with self.subTest(label):
                self.assertIn(w.ready["codec"], label)
                check(w)

    def test_args_in_result_out(self):
        def check(w):
            for cmd in ("dc_greet", "dc_async_greet"):
                self.assertEqual(w.call(cmd, {"name": "Ada"}),
                                 {"text": "Hello, Ada!", "length": 11, "args_type": "GreetArgs"})
                self.assertEqual(w.call(cmd, {"name": "Ada", "greeting": "Hi"})["text"],
                                 "Hi, Ada!")
        self.each(check)

    def test_nested_args_and_a_dataclass_inside_a_result(self):
        args = {"to": {"street": "Main", "city": "X"}, "items": [{"sku": "a"}],
                "by_tag": {"t": {"sku": "b", "qty": 2}}}

        def check(w):
            r = w.call("dc_order", args)
            self.assertEqual(r["to"], "Address")
            self.assertEqual(r["items"], [["Item", "a", 1]])
            self.assertEqual(r["by_tag"], {"t": ["Item", "b"]})
            self.assertIsNone(r["gift"])
            self.assertEqual(r["echo"], {"to": {"street": "Main", "city": "X"},
                                         "items": [{"sku": "a", "qty": 1}], "gift": None,
                                         "by_tag": {"t": {"sku": "b", "qty": 2}}, "note": ""})
        self.each(check)

    def test_bad_args_are_a_value_error_naming_the_field(self):
        def check(w):
            e = w.error("dc_greet", {"nmae": "Ada"})
            self.assertEqual(e["type"], "ValueError")
            self.assertEqual(e["message"], "dc_greet: args lacks field(s) 'name' and has "
                                           "unknown field(s) 'nmae' (GreetArgs: name, greeting?)")
            e = w.error("dc_async_greet", ["Ada"])
            self.assertEqual((e["type"], e["message"]),
                             ("ValueError", "dc_async_greet: args must be a map of GreetArgs "
                                            "fields, got array"))
            e = w.error("dc_order", {"to": {"street": "s"}, "items": []})
            self.assertEqual(e["message"],
                             "dc_order: args.to lacks field(s) 'city' (Address: street, city)")
            e = w.error("dc_greet")  # no args at all: {}
            self.assertEqual(e["message"],
                             "dc_greet: args lacks field(s) 'name' (GreetArgs: name, greeting?)")
            self.assertNotIn("loop.py", e["traceback"])
            self.assertEqual(w.call("ping")["pong"], True, "the worker stays healthy")
        self.each(check)

    def test_stream_chunks_and_collected_lists(self):
        ticks = [{"n": i, "label": "Ada"} for i in range(3)]

        def check(w):
            rid = 100
            w.send_request(rid, "dc_ticks", {"name": "Ada"}, stream=8)
            chunks, reply = w.read_stream(rid)
            self.assertEqual(chunks, ticks)
            self.assertEqual(reply["result"], {"text": "done", "length": 4,
                                               "args_type": "GreetArgs"})
            w.send_request(rid + 1, "dc_async_ticks", {"name": "Ada"}, stream=8)
            chunks, reply = w.read_stream(rid + 1)
            self.assertEqual(chunks, ticks)
            self.assertTrue(reply["ok"])
            self.assertEqual(w.call("dc_ticks", {"name": "Ada"}), ticks)
            self.assertEqual(w.call("dc_async_ticks", {"name": "Ada"}), ticks)
            e = w.error("dc_ticks", {})
            self.assertEqual(e["type"], "ValueError")
        self.each(check)

    def test_unserializable_field_in_a_result(self):
        def check(w):
            e = w.error("dc_bad_result")
            self.assertEqual((e["type"], e["message"]),
                             ("SerializationError", "result.items[0].sku: set is not serializable"))
        self.each(check)

    def test_untyped_handlers_get_args_as_they_came(self):
        def check(w):
            self.assertEqual(w.call("dc_untyped", {"a": 1}), {"type": "dict", "args": {"a": 1}})
            self.assertEqual(w.call("dc_untyped", [1]), {"type": "list", "args": [1]})
        self.each(check)


if __name__ == "__main__":
    unittest.main()
