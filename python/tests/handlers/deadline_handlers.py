"""Handlers for the deadline tests: what a handler sees, and a side effect
that proves whether it ran."""

import time

from pyvisor import command


@command("deadline_info")
def deadline_info(args, ctx):
    """ctx.deadline and ctx.remaining() as the handler sees them, bracketed by
    the handler's clock read just before and just after remaining()."""
    before = time.time()
    remaining = ctx.remaining()
    after = time.time()
    return {"deadline": ctx.deadline, "remaining": remaining, "before": before,
            "after": after}


@command("mark")
def mark(args, ctx):
    """Append a line to args.path and count the call in the session."""
    with open(args["path"], "a") as f:
        f.write("ran %s\n" % ctx.request_id)
    ctx.session["runs"] = ctx.session.get("runs", 0) + 1
    return ctx.session["runs"]


@command("runs")
def runs(args, ctx):
    """How many times mark ran in this session (does not create the session)."""
    return ctx.session.get("runs", 0) if ctx.has_session else 0
