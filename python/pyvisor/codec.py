"""MessagePack codec selection.

``msgpack`` (the C-accelerated module) is used when it can be imported;
otherwise the bundled pure-Python implementation in :mod:`pyvisor._purepack`.
Set ``PYVISOR_CODEC=pure`` to force the pure codec, ``PYVISOR_CODEC=msgpack``
to require the module (import error otherwise). :data:`NAME` says which one is
active: ``'msgpack'`` or ``'pure'``.

Both codecs accept and produce exactly the same values and bytes:

* encode: nil, bool, int (-2**63 .. 2**64-1), float (always float64), str,
  bytes/bytearray/memoryview (bin), list/tuple (array), dict with str keys,
  dataclass instances (the map of their fields, :func:`pyvisor._purepack.dataclass_map`).
  Anything else raises :class:`SerializationError` (a ``TypeError``) naming the
  path, e.g. ``result.items[3]: set is not serializable``.
* decode: one value per call; extension types, non-str map keys, the byte
  0xc1, truncated input and trailing bytes raise :class:`DecodeError` (a
  ``ValueError``). Binary comes back as ``bytes``, arrays as ``list``.
"""

from __future__ import annotations

import os
import struct
from typing import Any, Callable, Dict, List, Optional, Sequence

from . import _purepack
from ._purepack import DecodeError, SerializationError, MAX_DEPTH
from .framing import Buffer

__all__ = ["NAME", "encode", "encode_frame", "decode", "get_codec", "available",
           "SerializationError", "DecodeError"]

_hdr = struct.Struct(">I").pack

#: ``encode(obj, root=None) -> bytes``: one value (``root`` names it in error paths).
Encoder = Callable[..., bytes]
#: ``encode_frame(obj, root=None)``: one value behind its 4-byte length.
FrameEncoder = Callable[..., Buffer]
#: ``decode(data) -> value``.
Decoder = Callable[[Any], Any]
#: ``reply_frame(rid, result)``: the buffers of the frame ``{id, ok: true, result}``.
ReplyFramer = Callable[[Any, Any], Sequence[Buffer]]


class Codec(object):
    """One codec: ``name``, ``encode(obj, root=None)``, ``encode_frame(obj,
    root=None)`` (4-byte length + payload), ``decode(data)`` and
    ``reply_frame(rid, result)`` (the frame of ``{id, ok: true, result}`` as a
    list of buffers to write in order; the wrapping map does not count
    against the nesting limit, and errors name paths from ``result``)."""

    __slots__ = ("name", "encode", "encode_frame", "decode", "reply_frame")

    def __init__(self, name: str, encode: Encoder, encode_frame: FrameEncoder, decode: Decoder,
                 reply_frame: ReplyFramer) -> None:
        self.name = name
        self.encode = encode
        self.encode_frame = encode_frame
        self.decode = decode
        self.reply_frame = reply_frame

    def __repr__(self) -> str:
        return "<pyvisor codec %s>" % self.name


def _make_pure() -> Codec:
    return Codec("pure", _purepack.packb, _purepack.pack_frame, _purepack.unpackb,
                 _purepack.reply_frame)


def _make_msgpack() -> Codec:
    import msgpack  # noqa: raises ImportError when absent

    packb: Callable[..., bytes] = msgpack.packb
    unpackb: Callable[..., Any] = msgpack.unpackb
    reject = tuple(t for t in (getattr(msgpack, "ExtType", None),
                               getattr(msgpack, "Timestamp", None)) if t is not None)
    find = _purepack.find_unserializable
    leaf = frozenset((str, int, float, bool, type(None), bytes, bytearray, memoryview))
    dataclass_map = _purepack.dataclass_map

    def _checker(dataclasses: bool) -> Callable[[Any, int], bool]:
        def _ok(o: Any, depth: int) -> bool:
            # Pre-flight check for what msgpack would silently accept but the
            # wire contract refuses (non-str keys, ext types, nesting past
            # MAX_DEPTH) or would refuse with a pathless message. Exact types take
            # the fast path; maps inside arrays are checked inline (rows of
            # records are the common shape). Dataclass instances are refused
            # unless ``dataclasses`` (the second pass of encode below).
            t = type(o)
            if t is dict:
                if depth >= MAX_DEPTH:
                    return False
                depth += 1
                for k, v in o.items():
                    if type(k) is not str and not isinstance(k, str):
                        return False
                    if type(v) not in leaf and not _ok(v, depth):
                        return False
                return True
            if t is list or t is tuple:
                if depth >= MAX_DEPTH:
                    return False
                depth += 1
                if len(o) > 32 and set(map(type, o)) <= leaf:
                    return True  # all leaves: checked at C speed
                for v in o:
                    tv = type(v)
                    if tv in leaf:
                        continue
                    if tv is dict and depth < MAX_DEPTH:
                        for k, x in v.items():
                            if type(k) is not str and not isinstance(k, str):
                                return False
                            if type(x) not in leaf and not _ok(x, depth + 1):
                                return False
                    elif not _ok(v, depth):
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
            if isinstance(o, (str, int, float, bytes, bytearray)):
                return True
            if dataclasses:
                m = dataclass_map(o)
                if m is not None:
                    return _ok(m, depth)  # sent as this map (_as_map below)
            return False
        return _ok

    _ok = _checker(False)
    _ok_dataclasses = _checker(True)

    def _as_map(o: Any) -> Dict[str, Any]:
        # msgpack's ``default``: called for what it cannot pack itself, which
        # after _ok_dataclasses is a dataclass instance; the map it returns is
        # packed in its place, at the same nesting level.
        m = dataclass_map(o)
        if m is None:
            raise TypeError("can not serialize %r object" % type(o).__name__)
        return m

    def _fail(obj: Any, root: Optional[str], exc: Optional[BaseException] = None
              ) -> SerializationError:
        msg = find(obj, root, reject)
        if msg is None:
            msg = "value is not serializable" + (" (%s)" % exc if exc else "")
        return SerializationError(msg)

    def encode(obj: Any, root: Optional[str] = None) -> bytes:
        if type(obj) not in leaf and not _ok(obj, 0):
            # Refused by the fast check: a dataclass instance somewhere (sent as
            # the map of its fields, msgpack's ``default`` making the maps), or
            # a value that cannot be sent at all.
            if not _ok_dataclasses(obj, 0):
                raise _fail(obj, root)
            try:
                return packb(obj, use_bin_type=True, default=_as_map)
            except (TypeError, ValueError, OverflowError) as e:
                raise _fail(obj, root, e) from None
        try:
            return packb(obj, use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as e:
            raise _fail(obj, root, e) from None

    def encode_frame(obj: Any, root: Optional[str] = None) -> bytes:
        payload = encode(obj, root)
        return _hdr(len(payload)) + payload

    def _ext_hook(code: int, data: bytes) -> Any:
        raise DecodeError("extension types are not supported (type %d)" % code)

    def _check_keys(d: Dict[Any, Any]) -> Dict[Any, Any]:
        for k in d:
            if type(k) is not str:
                raise DecodeError("map key %r is %s, not str" % (k, type(k).__name__))
        return d

    def decode(data: Any) -> Any:
        # strict_map_key already refuses every key type but str and bytes, and
        # a bytes key needs a bin header byte (0xc4..0xc6) somewhere in the
        # input: only then is the per-map key check needed.
        if type(data) is not bytes:
            data = bytes(data)
        hook = _check_keys if (b"\xc4" in data or b"\xc5" in data or b"\xc6" in data) \
            else None
        try:
            return unpackb(data, raw=False, strict_map_key=True, max_ext_len=0,
                           ext_hook=_ext_hook, object_hook=hook)
        except DecodeError:
            raise
        except (ValueError, TypeError, OverflowError) as e:
            raise DecodeError(_explain_msgpack_error(e)) from None
        except RecursionError:
            raise DecodeError("nesting too deep") from None

    reply_head = b"\x83\xa2id"
    reply_mid = b"\xa2ok\xc3\xa6result"

    def reply_frame(rid: Any, result: Any) -> List[bytes]:
        body = encode(result, "result")
        head = reply_head + encode(rid, "id") + reply_mid
        return [_hdr(len(head) + len(body)) + head, body]

    return Codec("msgpack", encode, encode_frame, decode, reply_frame)


def _explain_msgpack_error(e: BaseException) -> str:
    """Word msgpack's decode errors like the pure codec's."""
    name = type(e).__name__
    text = str(e)
    if name == "ExtraData":
        extra = getattr(e, "extra", b"")
        return "%d trailing bytes after the value" % len(extra)
    if name == "FormatError":
        return "invalid type byte (0xc1, never used) in input"
    if name == "StackError":
        return "nesting too deep"
    if isinstance(e, UnicodeDecodeError):
        return "invalid UTF-8 in str: %s" % e.reason
    if "incomplete input" in text:
        return "truncated input: a value runs past the end"
    if "max_ext_len" in text:
        return "extension types are not supported"
    if "exceeds max_" in text:
        return "truncated input: a length (%s) is larger than the input" % text.split()[0]
    if "is not allowed for map key" in text:
        return "map key is %s, not str" % text.split()[0]
    return "%s: %s" % (name, text)


_cache: Dict[str, Codec] = {}


def available() -> List[str]:
    """Names of the codecs that can be used in this interpreter."""
    names = ["pure"]
    try:
        get_codec("msgpack")
        names.insert(0, "msgpack")
    except ImportError:
        pass
    return names


def get_codec(name: str) -> Codec:
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


def _select() -> Codec:
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
