"""The built-in commands: ``ping``, ``get_stats``, ``cleanup_session``,
``shutdown``. Importing this module registers them, through the same
``@command`` decorator handler files use; they run through the same handler
wrapper as any other command."""

from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional

from .loop import EXIT_OK, PY_VERSION
from .registry import Context, cleanup_hooks, command, stats_hooks

__all__ = ["ping", "get_stats", "cleanup_session", "shutdown", "rss_kb"]


def rss_kb() -> Optional[int]:
    """This process's resident set size in KiB (``/proc`` VmRSS, else getrusage)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(r // 1024) if sys.platform == "darwin" else int(r)
    except Exception:
        return None


@command("ping", builtin=True)
def ping(args: Any, ctx: Context) -> Dict[str, Any]:
    w = ctx.worker
    return {"pong": True, "worker_id": w.worker_id, "pid": w.pid, "mode": w.mode,
            "python": PY_VERSION, "codec": w.codec.name, "uptime_s": w.uptime()}


@command("get_stats", builtin=True)
def get_stats(args: Any, ctx: Context) -> Dict[str, Any]:
    w = ctx.worker
    out: Dict[str, Any] = {"worker_id": w.worker_id, "pid": w.pid, "mode": w.mode, "codec": w.codec.name,
           "python": PY_VERSION, "requests": w.requests, "errors": w.errors,
           "sessions": len(w.sessions), "session_ids": list(w.sessions),
           "uptime_s": w.uptime(), "rss_kb": rss_kb(),
           "max_frame_bytes": w.max_frame_bytes, "concurrency": w.concurrency,
           "inflight": w.inflight}
    sessions = dict(w.sessions)  # a snapshot: handler threads may add sessions meanwhile
    for hook in stats_hooks:
        extra = hook(sessions)
        if extra:
            out.update(extra)
    return out


@command("cleanup_session", builtin=True)
def cleanup_session(args: Any, ctx: Context) -> Dict[str, Any]:
    w = ctx.worker
    sid = args.get("session_id") if isinstance(args, dict) else None
    if sid is None:
        sid = ctx.session_id
    if not isinstance(sid, str) or not sid:
        raise ValueError("cleanup_session: a session id is required "
                         "(args.session_id or the request's session)")
    with w.state_lock:  # against the held flags of replies written by other threads
        d = w.sessions.pop(sid, None)
        w.held.pop(sid, None)  # ended: the host forgets the session too
    existed = d is not None
    if d is None:
        d = {}
    out: Dict[str, Any] = {"session_id": sid, "existed": existed}
    hook_errors: List[str] = []
    for hook in cleanup_hooks:
        try:
            extra = hook(sid, d)
        except Exception as e:
            hook_errors.append("%s: %s" % (type(e).__name__, e))
            continue
        if extra:
            out.update(extra)
    out["freed_keys"] = len(d)
    d.clear()
    if hook_errors:
        out["hook_errors"] = hook_errors
    return out


@command("shutdown", builtin=True)
def shutdown(args: Any, ctx: Context) -> Dict[str, Any]:
    ctx.worker.stop(EXIT_OK)
    return {"shutting_down": True}
