"""MessagePack codec selection.

``msgpack`` (the C-accelerated module) is used when it can be imported;
otherwise the bundled pure-Python implementation in :mod:`pyvisor._purepack`.
Set ``PYVISOR_CODEC=pure`` to force the pure codec, ``PYVISOR_CODEC=msgpack``
to require the module (import error otherwise). :data:`NAME` says which one is
active: ``'msgpack'`` or ``'pure'``.

Both codecs accept and produce exactly the same values and bytes:

* encode: nil, bool, int (-2**63 .. 2**64-1), float (always float64), str,
  bytes/bytearray/memoryview (bin), list/tuple (array), dict with str keys.
  Anything else raises :class:`SerializationError` (a ``TypeError``) naming the
  path, e.g. ``result.items[3]: set is not serializable``.
* decode: one value per call; extension types, non-str map keys, the byte
  0xc1, truncated input and trailing bytes raise :class:`DecodeError` (a
  ``ValueError``). Binary comes back as ``bytes``, arrays as ``list``.
"""

import os
import struct

from . import _purepack
from ._purepack import DecodeError, SerializationError, MAX_DEPTH

__all__ = ["NAME", "encode", "encode_frame", "decode", "get_codec", "available",
           "SerializationError", "DecodeError"]

_hdr = struct.Struct(">I").pack


class Codec(object):
    """One codec: ``name``, ``encode(obj, root=None)``, ``encode_frame(obj,
    root=None)`` (4-byte length + payload) and ``decode(data)``."""

    __slots__ = ("name", "encode", "encode_frame", "decode")

    def __init__(self, name, encode, encode_frame, decode):
        self.name = name
        self.encode = encode
        self.encode_frame = encode_frame
        self.decode = decode

    def __repr__(self):
        return "<pyvisor codec %s>" % self.name


def _make_pure():
    return Codec("pure", _purepack.packb, _purepack.pack_frame, _purepack.unpackb)


def _make_msgpack():
    import msgpack  # noqa: raises ImportError when absent

    packb = msgpack.packb
    unpackb = msgpack.unpackb
    reject = tuple(t for t in (getattr(msgpack, "ExtType", None),
                               getattr(msgpack, "Timestamp", None)) if t is not None)
    find = _purepack.find_unserializable
    leaf = frozenset((str, int, float, bool, type(None), bytes, bytearray, memoryview))

    def _ok(o, depth):
        # Pre-flight check for what msgpack would silently accept but the
        # wire contract refuses (non-str keys, ext types) or would refuse with
        # a pathless message. Exact types take the fast path.
        t = type(o)
        if t is dict:
            if depth >= MAX_DEPTH:
                return False
            for k, v in o.items():
                if type(k) is not str and not isinstance(k, str):
                    return False
                if type(v) not in leaf and not _ok(v, depth + 1):
                    return False
            return True
        if t is list or t is tuple:
            if depth >= MAX_DEPTH:
                return False
            if len(o) > 32 and set(map(type, o)) <= leaf:
                return True  # all leaves: checked at C speed
            for v in o:
                if type(v) not in leaf and not _ok(v, depth + 1):
                    return False
            return True
        if t in leaf:
            return True
        if reject and isinstance(o, reject):
            return False
        if isinstance(o, dict):
            return _ok(dict(o), depth)
        if isinstance(o, (list, tuple)):
            return _ok(list(o), depth)
        return isinstance(o, (str, int, float, bytes, bytearray))

    def _fail(obj, root, exc=None):
        msg = find(obj, root, reject)
        if msg is None:
            msg = "value is not serializable" + (" (%s)" % exc if exc else "")
        return SerializationError(msg)

    def encode(obj, root=None):
        if type(obj) not in leaf and not _ok(obj, 0):
            raise _fail(obj, root)
        try:
            return packb(obj, use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as e:
            raise _fail(obj, root, e) from None

    def encode_frame(obj, root=None):
        payload = encode(obj, root)
        return _hdr(len(payload)) + payload

    def _ext_hook(code, data):
        raise DecodeError("extension type %d is not supported" % code)

    def _check_keys(d):
        for k in d:
            if type(k) is not str:
                raise DecodeError("map key %r is %s, not str" % (k, type(k).__name__))
        return d

    def decode(data):
        try:
            return unpackb(data, raw=False, strict_map_key=True, max_ext_len=0,
                           ext_hook=_ext_hook, object_hook=_check_keys)
        except DecodeError:
            raise
        except (ValueError, TypeError, OverflowError) as e:
            # ExtraData, FormatError, StackError, "incomplete input",
            # UnicodeDecodeError, strict_map_key refusals, max_ext_len...
            raise DecodeError("%s: %s" % (type(e).__name__, e)) from None
        except RecursionError:
            raise DecodeError("nesting too deep") from None

    return Codec("msgpack", encode, encode_frame, decode)


_cache = {}


def available():
    """Names of the codecs that can be used in this interpreter."""
    names = ["pure"]
    try:
        get_codec("msgpack")
        names.insert(0, "msgpack")
    except ImportError:
        pass
    return names


def get_codec(name):
    """Return the :class:`Codec` called ``name`` ('msgpack' or 'pure')."""
    c = _cache.get(name)
    if c is None:
        if name == "pure":
            c = _make_pure()
        elif name == "msgpack":
            c = _make_msgpack()
        else:
            raise ValueError("unknown codec %r (expected 'msgpack' or 'pure')" % (name,))
        _cache[name] = c
    return c


def _select():
    want = os.environ.get("PYVISOR_CODEC", "").strip().lower() or "auto"
    if want == "pure":
        return get_codec("pure")
    if want == "msgpack":
        return get_codec("msgpack")
    if want != "auto":
        raise ValueError("PYVISOR_CODEC=%r: expected 'msgpack', 'pure' or 'auto'" % want)
    try:
        return get_codec("msgpack")
    except ImportError:
        return get_codec("pure")


CODEC = _select()
NAME = CODEC.name
encode = CODEC.encode
encode_frame = CODEC.encode_frame
decode = CODEC.decode
