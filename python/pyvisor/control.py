"""Control frames: what the host sends about a request already in flight.

    { id, ack: n }        n = chunks of stream ``id`` the host has consumed so
                          far (cumulative; a lower ack than before is ignored)
    { id, cancel: true }  the host gave up on request ``id``

A control frame is a map with an ``id``, no ``cmd`` and an ``ack`` or
``cancel`` key. One for an id not in flight is ignored: it crossed the
request's final reply. A malformed one (``ack`` not a non-negative int,
``cancel`` not true) is answered with a ``ProtocolError`` naming the key, for
its id -- unless that id is in flight: then the error becomes the request's
final reply (the request is stopped as by a cancel), so that it still gets
exactly one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

from . import codec as _codec

if TYPE_CHECKING:
    from .loop import Worker

__all__ = ["apply", "take", "kind", "describe"]


def kind(v: object) -> str:
    """The wire type name of ``v`` (for messages)."""
    if v is None:
        return "nil"
    t = type(v)
    if t is dict:
        return "map"
    if t is list:
        return "array"
    if t is bytes:
        return "binary"
    return t.__name__


def describe(v: object) -> str:
    """How a refused field value is named: an int by its value, else its kind."""
    if type(v) is int:
        return "%d" % v
    return "nil" if v is None else "a %s" % kind(v)


def apply(worker: Worker, rid: int, msg: Dict[str, Any]) -> None:
    """Apply control frame ``msg`` (already known to be one) to request ``rid``."""
    worker.control_frames += 1
    err: Optional[str] = None
    ack = msg.get("ack")
    cancel = msg.get("cancel")
    if "ack" in msg and (type(ack) is not int or ack < 0):
        err = ("control frame 'ack' must be a non-negative integer (the chunks consumed "
               "so far), got %s" % describe(ack))
    elif "cancel" in msg and cancel is not True:
        err = "control frame 'cancel' must be true, got %s" % describe(cancel)
    d = worker._dispatcher
    if d is not None:
        return d.control(rid, ack, cancel is True, err)
    f = worker.flights.get(rid)
    if err is not None:
        if f is None:
            return worker.output.error(rid, "ProtocolError", err)
        return f.stop(("ProtocolError", err))
    if f is not None:
        if ack is not None:
            f.on_ack(ack)
        if cancel is True:
            f.stop()


def take(worker: Worker, payload: bytes) -> bool:
    """If ``payload`` is a control frame, apply it and return True. A stream
    reading the input inline sets every other frame aside for later, where
    the request loop checks (and, if need be, refuses) it."""
    try:
        msg = worker.codec.decode(payload)
    except _codec.DecodeError:
        return False
    if (type(msg) is dict and type(msg.get("id")) is int and "cmd" not in msg
            and ("ack" in msg or "cancel" in msg)):
        apply(worker, msg["id"], msg)
        return True
    return False
