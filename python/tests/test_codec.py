"""Codec tests, run against every codec available in this interpreter."""

import collections
import enum
import json
import math
import os
import random
import subprocess
import sys
import tracemalloc
import unittest

from . import helpers
from pyvisor import codec, _purepack
from pyvisor.codec import DecodeError, SerializationError

import gen_vectors

CODECS = [codec.get_codec(n) for n in codec.available()]

try:
    import msgpack
except ImportError:
    msgpack = None


def _load_vectors():
    with open(helpers.VECTORS, encoding="utf-8") as f:
        return json.load(f)


VEC = _load_vectors()


class Color(enum.IntEnum):
    RED = 1
    BIG = 300


class Name(str):
    pass


Point = collections.namedtuple("Point", "x y")


class CodecCase(unittest.TestCase):
    def each(self):
        for c in CODECS:
            with self.subTest(codec=c.name):
                yield c


class TestSelection(unittest.TestCase):
    def test_name_matches_env(self):
        want = os.environ.get("PYVISOR_CODEC", "").lower()
        if want == "pure":
            self.assertEqual(codec.NAME, "pure")
        elif msgpack is not None:
            self.assertEqual(codec.NAME, "msgpack")
        else:
            self.assertEqual(codec.NAME, "pure")

    def _probe(self, env_value):
        env = dict(os.environ, PYVISOR_CODEC=env_value)
        return subprocess.run([sys.executable, "-c", "import pyvisor.codec as c; print(c.NAME)"],
                              cwd=helpers.PY_DIR, env=env, capture_output=True, text=True)

    def test_force_pure(self):
        r = self._probe("pure")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), "pure")

    def test_bad_value_is_refused(self):
        r = self._probe("bogus")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("PYVISOR_CODEC", r.stderr)

    def test_require_msgpack(self):
        r = self._probe("msgpack")
        if msgpack is None:
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("msgpack", r.stderr)
        else:
            self.assertEqual(r.stdout.strip(), "msgpack")

    def test_error_classes(self):
        self.assertTrue(issubclass(DecodeError, ValueError))
        self.assertTrue(issubclass(SerializationError, TypeError))


class TestVectors(CodecCase):
    def test_file_shape(self):
        self.assertIn("format", VEC)
        self.assertGreaterEqual(len(VEC["vectors"]), 80)
        for v in VEC["vectors"]:
            self.assertEqual(set(v), {"name", "value", "hex"})
            self.assertEqual(v["hex"], v["hex"].lower())

    def test_encode_byte_for_byte(self):
        for c in self.each():
            for v in VEC["vectors"]:
                value = gen_vectors.untag(v["value"])
                self.assertEqual(bytes(c.encode(value)).hex(), v["hex"], v["name"])

    def test_decode_back(self):
        for c in self.each():
            for v in VEC["vectors"]:
                got = c.decode(bytes.fromhex(v["hex"]))
                self.assertTrue(gen_vectors.strict_equal(got, gen_vectors.untag(v["value"])),
                                v["name"])

    def test_decode_only(self):
        for c in self.each():
            for v in VEC["decode_only"]:
                got = c.decode(bytes.fromhex(v["hex"]))
                self.assertTrue(gen_vectors.strict_equal(got, gen_vectors.untag(v["value"])),
                                v["name"])

    def test_invalid(self):
        for c in self.each():
            for v in VEC["invalid"]:
                with self.assertRaises(DecodeError, msg=v["name"]):
                    c.decode(bytes.fromhex(v["hex"]))

    def test_required_boundaries_present(self):
        ints = {int(v["value"]["int"]) for v in VEC["vectors"] if "int" in v["value"]}
        for n in [0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**53, 2**63 - 1,
                  2**64 - 1, -1, -32, -33, -128, -129, -32768, -32769, -2**31, -2**31 - 1,
                  -2**63]:
            self.assertIn(n, ints)

    def test_frame_matches_payload(self):
        for c in self.each():
            f = bytes(c.encode_frame({"a": [1, 2.5, "x"]}))
            p = bytes(c.encode({"a": [1, 2.5, "x"]}))
            self.assertEqual(f[:4], len(p).to_bytes(4, "big"))
            self.assertEqual(f[4:], p)


class TestReplyFrame(CodecCase):
    def test_same_bytes_as_encoding_the_map(self):
        for c in self.each():
            for rid, result in [(1, None), (2**40, {"a": [1, b"x" * 70000]}), (-5, "s" * 100000)]:
                parts = c.reply_frame(rid, result)
                got = b"".join(bytes(p) for p in parts)
                want = bytes(c.encode_frame({"id": rid, "ok": True, "result": result}))
                self.assertEqual(got, want)

    def test_errors_name_result_paths(self):
        for c in self.each():
            with self.assertRaises(SerializationError) as cm:
                c.reply_frame(1, {"x": [1, {2}]})
            self.assertEqual(str(cm.exception), "result.x[1]: set is not serializable")
            with self.assertRaises(SerializationError) as cm:
                c.reply_frame(1, object())
            self.assertEqual(str(cm.exception), "result: object is not serializable")

    def test_wrapper_does_not_count_against_depth(self):
        deep = 1
        for _ in range(511):
            deep = [deep]
        for c in self.each():
            frame = b"".join(bytes(p) for p in c.reply_frame(1, deep))
            self.assertEqual(c.decode(frame[4:])["result"], deep)
            with self.assertRaises(SerializationError):
                c.encode({"result": deep})
            with self.assertRaises(SerializationError):
                c.reply_frame(1, [deep])


class TestRoundTrip(CodecCase):
    def random_value(self, rnd, depth=0):
        kinds = ["nil", "bool", "int", "float", "str", "bin"]
        if depth < 4:
            kinds += ["list", "dict"]
        k = rnd.choice(kinds)
        if k == "nil":
            return None
        if k == "bool":
            return rnd.random() < 0.5
        if k == "int":
            bits = rnd.choice([5, 7, 8, 15, 16, 31, 32, 53, 63])
            n = rnd.randrange(-(2 ** bits), 2 ** bits)
            return n if rnd.random() < 0.9 else rnd.choice([2**64 - 1, -2**63, 2**63])
        if k == "float":
            return rnd.choice([rnd.uniform(-1e6, 1e6), rnd.random(), 1e300, -0.0, math.inf])
        if k == "str":
            alphabet = "ab\u00e9\u65e5\U0001F600 "
            return "".join(rnd.choice(alphabet) for _ in range(rnd.choice([0, 3, 31, 40, 300])))
        if k == "bin":
            return bytes(rnd.randrange(256) for _ in range(rnd.choice([0, 1, 300])))
        if k == "list":
            return [self.random_value(rnd, depth + 1) for _ in range(rnd.choice([0, 2, 17]))]
        return {"k%d" % i: self.random_value(rnd, depth + 1)
                for i in range(rnd.choice([0, 3, 16, 17]))}

    def test_random_round_trip_and_agreement(self):
        rnd = random.Random(1234)
        values = [self.random_value(rnd) for _ in range(300)]
        for v in values:
            encs = set()
            for c in CODECS:
                data = bytes(c.encode(v))
                encs.add(data)
                for d in CODECS:
                    self.assertTrue(gen_vectors.strict_equal(d.decode(data), v))
            self.assertEqual(len(encs), 1, "codecs disagree on %r" % (v,))
            if msgpack is not None:
                self.assertEqual(msgpack.packb(v, use_bin_type=True), encs.pop())

    def test_tuple_bytearray_memoryview(self):
        for c in self.each():
            self.assertEqual(c.decode(c.encode((1, 2))), [1, 2])
            self.assertEqual(c.decode(c.encode(bytearray(b"ab"))), b"ab")
            self.assertEqual(c.decode(c.encode(memoryview(b"xyz"))), b"xyz")
            self.assertIs(type(c.decode(c.encode(b"q"))), bytes)

    def test_subclasses_pack_as_base_types(self):
        for c in self.each():
            self.assertEqual(bytes(c.encode(Color.RED)), bytes(c.encode(1)))
            self.assertEqual(bytes(c.encode(Color.BIG)), bytes(c.encode(300)))
            self.assertEqual(bytes(c.encode(Name("hi"))), bytes(c.encode("hi")))
            self.assertEqual(bytes(c.encode({Name("k"): 1})), bytes(c.encode({"k": 1})))
            od = collections.OrderedDict([("b", 1), ("a", 2)])
            self.assertEqual(bytes(c.encode(od)), bytes(c.encode({"b": 1, "a": 2})))
            self.assertEqual(bytes(c.encode(Point(1, 2))), bytes(c.encode([1, 2])))

    def test_large_values(self):
        for c in self.each():
            big = {"blob": os.urandom(3 << 20), "items": list(range(70000)),
                   "text": "\u00e9" * 100000}
            self.assertEqual(c.decode(c.encode(big)), big)


class TestUnserializable(CodecCase):
    def check(self, value, expected, root=None):
        for c in self.each():
            with self.assertRaises(SerializationError) as cm:
                c.encode(value, root)
            self.assertEqual(str(cm.exception), expected)
            self.assertIsInstance(cm.exception, TypeError)

    def test_set_with_path(self):
        self.check({"id": 1, "ok": True, "result": {"items": [1, 2, 3, {4}]}},
                   "result.items[3]: set is not serializable")

    def test_root_name(self):
        self.check({"items": [object()]}, "result.items[0]: object is not serializable",
                   root="result")
        self.check({1, 2}, "value: set is not serializable")
        self.check([1, complex(1, 2)], "value[1]: complex is not serializable")

    def test_odd_keys_in_path(self):
        self.check({"a b": {"x": [None, {"y": Ellipsis}]}},
                   "['a b'].x[1].y: ellipsis is not serializable")

    def test_int_range(self):
        self.check({"n": 2 ** 64}, "n: int 18446744073709551616 is out of range (-2**63 .. 2**64-1)")
        self.check([-(2 ** 63) - 1],
                   "value[0]: int -9223372036854775809 is out of range (-2**63 .. 2**64-1)")

    def test_non_str_keys(self):
        self.check({"m": {1: "a"}}, "m: map key 1 (int) is not a str")
        self.check({None: 1}, "value: map key None (NoneType) is not a str")
        self.check({"m": {(1, 2): 3}}, "m: map key (1, 2) (tuple) is not a str")
        self.check({b"k": 1}, "value: map key b'k' (bytes) is not a str")

    def test_surrogates(self):
        for c in self.each():
            with self.assertRaises(SerializationError) as cm:
                c.encode({"s": "bad \udc80"})
            self.assertTrue(str(cm.exception).startswith("s: str is not valid UTF-8"))

    def test_circular(self):
        a = []
        a.append(a)
        for c in self.each():
            with self.assertRaises(SerializationError) as cm:
                c.encode({"loop": a})
            self.assertEqual(str(cm.exception), "loop[0]: circular reference")

    def test_too_deep(self):
        v = 1
        for _ in range(600):
            v = [v]
        for c in self.each():
            with self.assertRaises(SerializationError) as cm:
                c.encode(v)
            self.assertIn("nesting deeper than 511 levels", str(cm.exception))

    def test_shared_reference_is_fine(self):
        shared = [1, 2]
        for c in self.each():
            self.assertEqual(c.decode(c.encode({"a": shared, "b": shared})),
                             {"a": [1, 2], "b": [1, 2]})

    @unittest.skipIf(msgpack is None, "msgpack not importable")
    def test_msgpack_types_refused(self):
        for c in self.each():
            with self.assertRaises(SerializationError) as cm:
                c.encode({"e": msgpack.ExtType(1, b"x")})
            self.assertEqual(str(cm.exception), "e: ExtType is not serializable")
            with self.assertRaises(SerializationError):
                c.encode([msgpack.Timestamp(1, 0)])


class TestBadInput(CodecCase):
    def test_every_truncation_is_an_error(self):
        value = {"id": 7, "cmd": "x" * 40, "args": {"b": b"\x00" * 300, "l": list(range(20)),
                                                   "f": 1.5, "n": -70000, "u": 2**40}}
        for c in self.each():
            data = bytes(c.encode(value))
            for cut in range(len(data)):
                with self.assertRaises(DecodeError, msg="cut at %d" % cut):
                    c.decode(data[:cut])

    def test_trailing_bytes(self):
        for c in self.each():
            with self.assertRaises(DecodeError):
                c.decode(bytes(c.encode({"a": 1})) + b"\x00")

    def test_every_ext_type_byte(self):
        for c in self.each():
            for b in (0xC7, 0xC8, 0xC9, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8):
                with self.assertRaises(DecodeError, msg=hex(b)):
                    c.decode(bytes([b]) + b"\x01" * 20)

    def test_reserved_byte(self):
        for c in self.each():
            with self.assertRaises(DecodeError):
                c.decode(b"\xc1")
            with self.assertRaises(DecodeError):
                c.decode(b"\x92\x01\xc1")

    def test_non_str_keys_rejected(self):
        for c in self.each():
            for hx in ("81cc0501", "81c3c3", "81cb3ff000000000000001", "8180c0",
                       "82a161018102c0"):
                with self.assertRaises(DecodeError, msg=hx):
                    c.decode(bytes.fromhex(hx))

    def test_invalid_utf8(self):
        for c in self.each():
            with self.assertRaises(DecodeError):
                c.decode(b"\xa1\xff")

    def test_huge_lengths_do_not_allocate(self):
        headers = ["dbffffffff", "c6ffffffff", "ddffffffff", "dfffffffff", "dafff0",
                   "c5fff0", "dcfff0", "defff0",
                   "91" * 10 + "ddffffffff"]
        for c in self.each():
            for hx in headers:
                data = bytes.fromhex(hx) + b"\x00" * 16
                tracemalloc.start()
                try:
                    with self.assertRaises(DecodeError, msg=hx):
                        c.decode(data)
                    peak = tracemalloc.get_traced_memory()[1]
                finally:
                    tracemalloc.stop()
                self.assertLess(peak, 256 * 1024, "%s allocated %d bytes" % (hx, peak))

    def test_deep_nesting_rejected_not_crash(self):
        for c in self.each():
            data = b"\x91" * 5000 + b"\x01"
            with self.assertRaises(DecodeError):
                c.decode(data)

    def test_nesting_up_to_the_limit_decodes(self):
        v = 1
        for _ in range(500):
            v = [v]
        for c in self.each():
            self.assertEqual(c.decode(c.encode(v)), v)
            # decoders of both codecs accept exactly 1024 nested containers
            v = c.decode(b"\x91" * 1024 + b"\x01")
            for _ in range(1024):
                v = v[0]
            self.assertEqual(v, 1)
            with self.assertRaises(DecodeError):
                c.decode(b"\x91" * 1025 + b"\x01")
            with self.assertRaises(DecodeError):
                c.decode(b"\x81\xa1k" * 1025 + b"\x01")
            c.decode(b"\x81\xa1k" * 1024 + b"\x01")

    def test_not_bytes_input(self):
        for c in self.each():
            self.assertEqual(c.decode(bytearray(b"\x01")), 1)
            self.assertEqual(c.decode(memoryview(b"\xa1a")), "a")


class TestPureSpecifics(unittest.TestCase):
    def test_pack_frame_header(self):
        f = _purepack.pack_frame([1, 2, 3])
        self.assertIsInstance(f, bytearray)
        self.assertEqual(bytes(f), b"\x00\x00\x00\x04\x93\x01\x02\x03")

    def test_find_unserializable_ok(self):
        self.assertIsNone(_purepack.find_unserializable({"a": [1, "x", b"y", None, 1.5]}))


if __name__ == "__main__":
    unittest.main()
