"""Pure-Python MessagePack for the pyvisor wire types.

Used when the ``msgpack`` module is not importable (or ``PYVISOR_CODEC=pure``).
It produces exactly the bytes ``msgpack.packb(obj, use_bin_type=True)`` produces
for the supported types, and decodes every non-extension MessagePack type.

Supported when encoding:

* ``None`` -> nil, ``bool`` -> true/false
* ``int`` in -2**63 .. 2**64-1, smallest width the way msgpack-python picks it:
  non-negative values use positive fixint/uint8/16/32/64, negative values
  negative fixint/int8/16/32/64
* ``float`` -> float64 (always 0xcb)
* ``str`` -> fixstr/str8/str16/str32 (UTF-8)
* ``bytes``/``bytearray``/``memoryview`` -> bin8/bin16/bin32
* ``list``/``tuple`` -> array, ``dict`` with ``str`` keys -> map
* a dataclass instance -> the map of its fields (name -> value, in field
  order; nested dataclasses likewise), as :func:`dataclass_map` gives it

Anything else raises :class:`SerializationError` (a ``TypeError``) whose
message names the offending path, e.g. ``result.items[3]: set is not
serializable``.

Decoding is a single forward pass over the buffer (offsets, no re-slicing of
the remainder), so it is linear in the input size. Lengths are checked against
the bytes actually present before anything is allocated. Extension types,
non-str map keys, the reserved byte 0xc1 and trailing bytes raise
:class:`DecodeError` (a ``ValueError``).
"""

from __future__ import annotations

import dataclasses
import struct
import sys
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

__all__ = ["packb", "pack_frame", "unpackb", "SerializationError", "DecodeError",
           "find_unserializable", "dataclass_map", "MAX_DEPTH"]

#: Values nested deeper than this many containers are refused when encoding
#: (msgpack-python's limit, and the TypeScript side's).
MAX_DEPTH = 511
#: Decoding accepts up to this many nested containers (msgpack-python's
#: unpacker limit), so both codecs accept the same inputs.
DECODE_MAX_DEPTH = 1024

# The decoder recurses up to twice per nesting level; make room for
# DECODE_MAX_DEPTH levels on interpreters that keep the default limit of 1000.
if sys.getrecursionlimit() < 2 * DECODE_MAX_DEPTH + 500:
    sys.setrecursionlimit(2 * DECODE_MAX_DEPTH + 500)

_INT_MIN = -(1 << 63)
_UINT_MAX = (1 << 64) - 1


class SerializationError(TypeError):
    """A value cannot be represented on the wire. The message names its path."""


class DecodeError(ValueError):
    """Bytes are not one valid pyvisor MessagePack value."""


class _Unpackable(Exception):
    """Internal: raised by the fast encoder; the slow walker explains it."""


# --------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------

_s_BH = struct.Struct(">BH").pack
_s_BI = struct.Struct(">BI").pack
_s_BQ = struct.Struct(">BQ").pack
_s_Bb = struct.Struct(">Bb").pack
_s_Bh = struct.Struct(">Bh").pack
_s_Bi = struct.Struct(">Bi").pack
_s_Bq = struct.Struct(">Bq").pack
_s_Bd = struct.Struct(">Bd").pack
_s_I_into = struct.Struct(">I").pack_into

# One-byte headers, precomputed.
_FIXINT = [bytes((i,)) for i in range(128)]
_FIXSTR = [bytes((0xA0 | i,)) for i in range(32)]
_FIXARR = [bytes((0x90 | i,)) for i in range(16)]
_FIXMAP = [bytes((0x80 | i,)) for i in range(16)]


def _int_bytes(o: int) -> bytes:
    if o >= 0:
        if o < 0x80:
            return _FIXINT[o]
        if o <= 0xFF:
            return bytes((0xCC, o))
        if o <= 0xFFFF:
            return _s_BH(0xCD, o)
        if o <= 0xFFFFFFFF:
            return _s_BI(0xCE, o)
        if o <= _UINT_MAX:
            return _s_BQ(0xCF, o)
        raise _Unpackable
    if o >= -32:
        return bytes((o & 0xFF,))
    if o >= -0x80:
        return _s_Bb(0xD0, o)
    if o >= -0x8000:
        return _s_Bh(0xD1, o)
    if o >= -0x80000000:
        return _s_Bi(0xD2, o)
    if o >= _INT_MIN:
        return _s_Bq(0xD3, o)
    raise _Unpackable


def _str_header(n: int) -> bytes:
    if n < 32:
        return _FIXSTR[n]
    if n <= 0xFF:
        return bytes((0xD9, n))
    if n <= 0xFFFF:
        return _s_BH(0xDA, n)
    if n <= 0xFFFFFFFF:
        return _s_BI(0xDB, n)
    raise _Unpackable


def _bin_header(n: int) -> bytes:
    if n <= 0xFF:
        return bytes((0xC4, n))
    if n <= 0xFFFF:
        return _s_BH(0xC5, n)
    if n <= 0xFFFFFFFF:
        return _s_BI(0xC6, n)
    raise _Unpackable


def _pack(o: Any, buf: bytearray, depth: int) -> None:
    """Append the encoding of ``o`` to the bytearray ``buf``."""
    t = type(o)
    if t is str:
        b = o.encode("utf-8")
        n = len(b)
        if n < 32:
            buf += _FIXSTR[n]
        else:
            buf += _str_header(n)
        buf += b
    elif t is int:
        if 0 <= o < 0x80:
            buf += _FIXINT[o]
        else:
            buf += _int_bytes(o)
    elif t is dict:
        if depth >= MAX_DEPTH:
            raise _Unpackable
        n = len(o)
        if n < 16:
            buf += _FIXMAP[n]
        elif n <= 0xFFFF:
            buf += _s_BH(0xDE, n)
        elif n <= 0xFFFFFFFF:
            buf += _s_BI(0xDF, n)
        else:
            raise _Unpackable
        depth += 1
        for k, v in o.items():
            if type(k) is not str:
                if not isinstance(k, str):
                    raise _Unpackable
                k = str.__str__(k)
            kb = k.encode("utf-8")
            kn = len(kb)
            if kn < 32:
                buf += _FIXSTR[kn]
            else:
                buf += _str_header(kn)
            buf += kb
            tv = type(v)
            if tv is str:
                b = v.encode("utf-8")
                n = len(b)
                if n < 32:
                    buf += _FIXSTR[n]
                else:
                    buf += _str_header(n)
                buf += b
            elif tv is int:
                if 0 <= v < 0x80:
                    buf += _FIXINT[v]
                else:
                    buf += _int_bytes(v)
            elif v is None:
                buf.append(0xC0)
            elif tv is float:
                buf += _s_Bd(0xCB, v)
            elif tv is bool:
                buf.append(0xC3 if v else 0xC2)
            else:
                _pack(v, buf, depth)
    elif t is list or t is tuple:
        if depth >= MAX_DEPTH:
            raise _Unpackable
        n = len(o)
        if n < 16:
            buf += _FIXARR[n]
        elif n <= 0xFFFF:
            buf += _s_BH(0xDC, n)
        elif n <= 0xFFFFFFFF:
            buf += _s_BI(0xDD, n)
        else:
            raise _Unpackable
        depth += 1
        for v in o:
            tv = type(v)
            if tv is int and 0 <= v < 0x80:
                buf += _FIXINT[v]
            elif tv is str:
                b = v.encode("utf-8")
                n = len(b)
                if n < 32:
                    buf += _FIXSTR[n]
                else:
                    buf += _str_header(n)
                buf += b
            else:
                _pack(v, buf, depth)
    elif o is None:
        buf.append(0xC0)
    elif t is bool:
        buf.append(0xC3 if o else 0xC2)
    elif t is float:
        buf += _s_Bd(0xCB, o)
    elif t is bytes or t is bytearray:
        buf += _bin_header(len(o))
        buf += o
    elif t is memoryview:
        b = o.tobytes()
        buf += _bin_header(len(b))
        buf += b
    else:
        _pack_subclass(o, buf, depth)


def _msgpack_type(o: object) -> bool:
    # msgpack.ExtType (a namedtuple) and msgpack.Timestamp are MessagePack
    # extension values, which the wire contract excludes.
    return type(o).__module__.partition(".")[0] == "msgpack"


# Field names of the dataclasses met so far (the class's ``dataclasses.fields``, once).
_dataclass_names: Dict[type, Tuple[str, ...]] = {}


def dataclass_map(o: object) -> Optional[Dict[str, Any]]:
    """The map a dataclass instance is sent as: its fields (``dataclasses.fields``:
    name -> value, in declaration order; values as they are, nested dataclasses
    are mapped when the encoder reaches them), or ``None`` when ``o`` is not a
    dataclass instance (a dataclass type is not one). Both codecs use it, so
    they produce the same bytes."""
    t = type(o)
    names = _dataclass_names.get(t)
    if names is None:
        if isinstance(o, type) or not dataclasses.is_dataclass(o):
            return None
        names = _dataclass_names[t] = tuple(f.name for f in dataclasses.fields(o))
    return {n: getattr(o, n) for n in names}


def _pack_subclass(o: Any, buf: bytearray, depth: int) -> None:
    # Subclasses of the supported types (IntEnum, str enums, OrderedDict, ...)
    # are packed as their base type, like msgpack-python does; a dataclass
    # instance as the map of its fields.
    if _msgpack_type(o):
        raise _Unpackable
    if isinstance(o, bool):
        buf.append(0xC3 if o else 0xC2)
    elif isinstance(o, int):
        buf += _int_bytes(int.__index__(o))
    elif isinstance(o, float):
        buf += _s_Bd(0xCB, float(o))
    elif isinstance(o, str):
        _pack(str.__str__(o), buf, depth)
    elif isinstance(o, (bytes, bytearray)):
        _pack(bytes(o), buf, depth)
    elif isinstance(o, dict):
        _pack(dict(o), buf, depth)
    elif isinstance(o, (list, tuple)):
        _pack(list(o), buf, depth)
    else:
        m = dataclass_map(o)
        if m is None:
            raise _Unpackable
        _pack(m, buf, depth)


def packb(obj: Any, root: Optional[str] = None) -> bytes:
    """Encode ``obj``; return ``bytes``. ``root`` names the value in errors."""
    buf = bytearray()
    try:
        _pack(obj, buf, 0)
    except (_Unpackable, UnicodeEncodeError, RecursionError, OverflowError):
        raise SerializationError(find_unserializable(obj, root) or
                                 "value is not serializable") from None
    return bytes(buf)


_REPLY_HEAD = b"\x83\xa2id"
_REPLY_MID = b"\xa2ok\xc3\xa6result"


def reply_frame(rid: Any, result: Any) -> List[bytearray]:
    """The frame of ``{id: rid, ok: true, result: result}`` as a list of
    buffers (here a single bytearray, header included). ``result`` gets the
    full nesting allowance: the wrapping map does not count, and errors name
    paths from ``result``."""
    buf = bytearray(b"\0\0\0\0")
    buf += _REPLY_HEAD
    try:
        _pack(rid, buf, 0)
    except (_Unpackable, OverflowError):
        raise SerializationError(find_unserializable(rid, "id") or "bad id") from None
    buf += _REPLY_MID
    try:
        _pack(result, buf, 0)
    except (_Unpackable, UnicodeEncodeError, RecursionError, OverflowError):
        raise SerializationError(find_unserializable(result, "result") or
                                 "result is not serializable") from None
    _s_I_into(buf, 0, len(buf) - 4)
    return [buf]


def pack_frame(obj: Any, root: Optional[str] = None) -> bytearray:
    """Encode ``obj`` behind a 4-byte big-endian length; return a bytearray.

    The header is reserved up front and filled in afterwards, so the frame is
    built without copying the payload.
    """
    buf = bytearray(b"\0\0\0\0")
    try:
        _pack(obj, buf, 0)
    except (_Unpackable, UnicodeEncodeError, RecursionError, OverflowError):
        raise SerializationError(find_unserializable(obj, root) or
                                 "value is not serializable") from None
    _s_I_into(buf, 0, len(buf) - 4)
    return buf


# -- explaining what is wrong (slow path, only after a failure) ------------

def _key_path(path: str, key: str) -> str:
    if key.isidentifier():
        return key if not path else path + "." + key
    return (path or "") + "[" + repr(key) + "]"


def _describe(o: object) -> str:
    return type(o).__name__


def find_unserializable(obj: Any, root: Optional[str] = None,
                        reject: Tuple[type, ...] = ()) -> Optional[str]:
    """Return ``"path: reason"`` for the first value that cannot be encoded,
    or ``None`` when ``obj`` is serializable. ``root`` names the top-level
    value in paths (``value`` when not given and the top level is the
    problem). ``reject`` is a tuple of extra types to refuse (the msgpack
    codec passes ``msgpack.ExtType`` and ``msgpack.Timestamp``)."""
    return _explain(obj, root or "", root or "value", 0, set(), reject)


def _explain(o: Any, path: str, shown: str, depth: int, on_path: Set[int],
             reject: Tuple[type, ...]) -> Optional[str]:
    if (reject and isinstance(o, reject)) or _msgpack_type(o):
        return "%s: %s is not serializable" % (shown, _describe(o))
    if o is None or isinstance(o, (bool, float)):
        return None
    if isinstance(o, int):
        if not (_INT_MIN <= o <= _UINT_MAX):
            return "%s: int %d is out of range (-2**63 .. 2**64-1)" % (shown, o)
        return None
    if isinstance(o, str):
        try:
            b = str.encode(o, "utf-8")
        except UnicodeEncodeError as e:
            return "%s: str is not valid UTF-8 (%s)" % (shown, e.reason)
        if len(b) > 0xFFFFFFFF:
            return "%s: str of %d bytes is too long" % (shown, len(b))
        return None
    if isinstance(o, (bytes, bytearray, memoryview)):
        n = o.nbytes if isinstance(o, memoryview) else len(o)
        if n > 0xFFFFFFFF:
            return "%s: %s of %d bytes is too long" % (shown, _describe(o), n)
        return None
    if not isinstance(o, (dict, list, tuple)):
        m = dataclass_map(o)
        if m is None:
            return "%s: %s is not serializable" % (shown, _describe(o))
        # Sent as the map of its fields; the instance itself is what a cycle returns to.
        if id(o) in on_path:
            return "%s: circular reference" % shown
        on_path.add(id(o))
        try:
            return _explain(m, path, shown, depth, on_path, reject)
        finally:
            on_path.discard(id(o))
    if id(o) in on_path:
        return "%s: circular reference" % shown
    if depth >= MAX_DEPTH:
        return "%s: nesting deeper than %d levels" % (shown, MAX_DEPTH)
    if len(o) > 0xFFFFFFFF:
        return "%s: too many items (%d)" % (shown, len(o))
    on_path.add(id(o))
    try:
        if isinstance(o, dict):
            for k, v in o.items():
                if not isinstance(k, str):
                    return "%s: map key %r (%s) is not a str" % (shown, k, _describe(k))
                try:
                    str.encode(k, "utf-8")
                except UnicodeEncodeError as e:
                    return "%s: map key %r is not valid UTF-8 (%s)" % (shown, k, e.reason)
                p = _key_path(path, k)
                r = _explain(v, p, p, depth + 1, on_path, reject)
                if r:
                    return r
        else:
            base = path or shown
            for i, v in enumerate(o):
                p = "%s[%d]" % (base, i)
                r = _explain(v, p, p, depth + 1, on_path, reject)
                if r:
                    return r
    finally:
        on_path.discard(id(o))
    return None


# --------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------

_Unpacker = Callable[[bytes, int], Tuple[Any, ...]]
_u16 = struct.Struct(">H").unpack_from
_u32 = struct.Struct(">I").unpack_from
_u64 = struct.Struct(">Q").unpack_from
_i8 = struct.Struct(">b").unpack_from
_i16 = struct.Struct(">h").unpack_from
_i32 = struct.Struct(">i").unpack_from
_i64 = struct.Struct(">q").unpack_from
_f32 = struct.Struct(">f").unpack_from
_f64 = struct.Struct(">d").unpack_from
_u8 = struct.Struct(">B").unpack_from

# Type bytes of fixed-width scalars: (name for errors, payload bytes, unpacker).
_FIXED_WIDTH: Dict[int, Tuple[str, int, _Unpacker]] = {
    0xCA: ("float32", 4, _f32), 0xCB: ("float64", 8, _f64),
    0xCC: ("uint8", 1, _u8), 0xCD: ("uint16", 2, _u16), 0xCE: ("uint32", 4, _u32), 0xCF: ("uint64", 8, _u64),
    0xD0: ("int8", 1, _i8), 0xD1: ("int16", 2, _i16), 0xD2: ("int32", 4, _i32), 0xD3: ("int64", 8, _i64),
}
# Type bytes of length-prefixed values: (kind, length bytes, length unpacker).
_SIZED: Dict[int, Tuple[str, int, _Unpacker]] = {
    0xC4: ("bin", 1, _u8), 0xC5: ("bin", 2, _u16), 0xC6: ("bin", 4, _u32),
    0xD9: ("str", 1, _u8), 0xDA: ("str", 2, _u16), 0xDB: ("str", 4, _u32),
    0xDC: ("array", 2, _u16), 0xDD: ("array", 4, _u32),
    0xDE: ("map", 2, _u16), 0xDF: ("map", 4, _u32),
}


def _truncated(what: str, pos: int) -> DecodeError:
    return DecodeError("truncated input: %s at offset %d runs past the end" % (what, pos))


def _str(data: bytes, pos: int, n: int, end: int) -> Tuple[str, int]:
    stop = pos + n
    if stop > end:
        raise _truncated("str of %d bytes" % n, pos)
    try:
        return data[pos:stop].decode("utf-8"), stop
    except UnicodeDecodeError as e:
        raise DecodeError("invalid UTF-8 in str at offset %d: %s" % (pos, e.reason)) from None


def _unpack(data: bytes, pos: int, end: int, depth: int) -> Tuple[Any, int]:
    """Decode one value at ``pos``; return ``(value, next_pos)``."""
    if pos >= end:
        raise _truncated("value", pos)
    b = data[pos]
    pos += 1
    if b < 0x80:                       # positive fixint
        return b, pos
    if b >= 0xE0:                      # negative fixint
        return b - 0x100, pos
    if b >= 0xA0 and b <= 0xBF:        # fixstr
        n = b & 0x1F
        stop = pos + n
        if stop > end:
            raise _truncated("str of %d bytes" % n, pos)
        try:
            return data[pos:stop].decode("utf-8"), stop
        except UnicodeDecodeError as e:
            raise DecodeError("invalid UTF-8 in str at offset %d: %s" % (pos, e.reason)) from None
    if b <= 0x8F:                      # fixmap
        return _map(data, pos, end, b & 0x0F, depth)
    if b <= 0x9F:                      # fixarray
        return _array(data, pos, end, b & 0x0F, depth)
    # 0xc0 .. 0xdf
    if b == 0xC0:
        return None, pos
    if b == 0xC2:
        return False, pos
    if b == 0xC3:
        return True, pos
    fixed = _FIXED_WIDTH.get(b)
    if fixed is not None:
        name, width, unpack = fixed
        if pos + width > end:
            raise _truncated(name, pos)
        return unpack(data, pos)[0], pos + width
    sized = _SIZED.get(b)
    if sized is not None:
        kind, width, unpack = sized
        if pos + width > end:
            raise _truncated("%s length" % kind, pos)
        n = unpack(data, pos)[0]
        pos += width
        if kind == "bin":
            stop = pos + n
            if stop > end:
                raise _truncated("bin of %d bytes" % n, pos)
            return data[pos:stop], stop
        if kind == "str":
            return _str(data, pos, n, end)
        if kind == "array":
            return _array(data, pos, end, n, depth)
        return _map(data, pos, end, n, depth)
    if b == 0xC1:
        raise DecodeError("invalid type byte 0xc1 (never used) at offset %d" % (pos - 1))
    # 0xc7 0xc8 0xc9 0xd4..0xd8: extension types
    raise DecodeError("extension type (0x%02x) at offset %d is not supported" % (b, pos - 1))


def _array(data: bytes, pos: int, end: int, n: int, depth: int) -> Tuple[List[Any], int]:
    # Every element takes at least one byte: refuse counts the input cannot
    # hold before building anything.
    if n > end - pos:
        raise _truncated("array of %d items" % n, pos)
    if depth >= DECODE_MAX_DEPTH:
        raise DecodeError("nesting deeper than %d levels at offset %d" % (DECODE_MAX_DEPTH, pos))
    depth += 1
    out: List[Any] = [None] * n
    for i in range(n):
        if pos < end:
            c = data[pos]
            if c < 0x80:
                out[i] = c
                pos += 1
                continue
            if 0xA0 <= c <= 0xBF:
                stop = pos + 1 + (c & 0x1F)
                if stop <= end:
                    try:
                        out[i] = data[pos + 1:stop].decode("utf-8")
                    except UnicodeDecodeError as e:
                        raise DecodeError("invalid UTF-8 in str at offset %d: %s"
                                          % (pos + 1, e.reason)) from None
                    pos = stop
                    continue
            elif 0x80 <= c <= 0x8F:
                out[i], pos = _map(data, pos + 1, end, c & 0x0F, depth)
                continue
        out[i], pos = _unpack(data, pos, end, depth)
    return out, pos


def _map(data: bytes, pos: int, end: int, n: int, depth: int) -> Tuple[Dict[str, Any], int]:
    if 2 * n > end - pos:
        raise _truncated("map of %d entries" % n, pos)
    if depth >= DECODE_MAX_DEPTH:
        raise DecodeError("nesting deeper than %d levels at offset %d" % (DECODE_MAX_DEPTH, pos))
    depth += 1
    out: Dict[str, Any] = {}
    for _ in range(n):
        if pos >= end:
            raise _truncated("map key", pos)
        c = data[pos]
        if 0xA0 <= c <= 0xBF:          # fixstr key: the usual case
            stop = pos + 1 + (c & 0x1F)
            if stop > end:
                raise _truncated("str of %d bytes" % (c & 0x1F), pos + 1)
            try:
                k = data[pos + 1:stop].decode("utf-8")
            except UnicodeDecodeError as e:
                raise DecodeError("invalid UTF-8 in str at offset %d: %s"
                                  % (pos + 1, e.reason)) from None
            pos = stop
        else:
            kpos = pos
            k, pos = _unpack(data, pos, end, depth)
            if type(k) is not str:
                raise DecodeError("map key at offset %d is %s, not str" % (kpos, type(k).__name__))
        if pos < end:
            c = data[pos]
            if c < 0x80:
                out[k] = c
                pos += 1
                continue
            if 0xA0 <= c <= 0xBF:
                stop = pos + 1 + (c & 0x1F)
                if stop <= end:
                    try:
                        out[k] = data[pos + 1:stop].decode("utf-8")
                    except UnicodeDecodeError as e:
                        raise DecodeError("invalid UTF-8 in str at offset %d: %s"
                                          % (pos + 1, e.reason)) from None
                    pos = stop
                    continue
            elif c == 0xC0:
                out[k] = None
                pos += 1
                continue
            elif c == 0xC3 or c == 0xC2:
                out[k] = c == 0xC3
                pos += 1
                continue
            elif c == 0xCB:
                if pos + 9 <= end:
                    out[k] = _f64(data, pos + 1)[0]
                    pos += 9
                    continue
            elif 0x90 <= c <= 0x9F:
                out[k], pos = _array(data, pos + 1, end, c & 0x0F, depth)
                continue
            elif 0x80 <= c <= 0x8F:
                out[k], pos = _map(data, pos + 1, end, c & 0x0F, depth)
                continue
        out[k], pos = _unpack(data, pos, end, depth)
    return out, pos


def unpackb(data: Any) -> Any:
    """Decode exactly one value from ``data`` (bytes-like)."""
    if type(data) is not bytes:
        data = bytes(data)
    end = len(data)
    try:
        obj, pos = _unpack(data, 0, end, 0)
    except RecursionError:
        raise DecodeError("nesting too deep") from None
    if pos != end:
        raise DecodeError("%d trailing bytes after the value (at offset %d)" % (end - pos, pos))
    return obj
