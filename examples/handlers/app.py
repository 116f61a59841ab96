"""Handlers for examples/express-server.mjs (and any pool: `handlers: ['examples/handlers/app.py']`).

    curl -s localhost:3000/echo -d '{"hello": "world"}'
    curl -s localhost:3000/slow -d '{"seconds": 2}'      # then SIGTERM the server: this one still answers
    curl -s localhost:3000/raise -d '{"message": "no"}'  # 422, the Python error as JSON
"""

import time

from pyvisor import command


@command("echo")
def echo(args, ctx):
    """Answer the arguments unchanged."""
    return args


@command("slow")
def slow(args, ctx):
    """Sleep args.seconds (default 1), then answer {slept}. Says so on stderr when it starts."""
    seconds = float((args or {}).get("seconds", 1))
    print("slow: started, %.1f s" % seconds, flush=True)  # stdout is the worker's stderr
    time.sleep(seconds)
    return {"slept": seconds}


@command("raise")
def raise_(args, ctx):
    """Raise ValueError(args.message)."""
    raise ValueError((args or {}).get("message", "boom"))
