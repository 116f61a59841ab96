"""Handlers for examples/pino-logs.mjs: a worker that writes print(), the logging module and
ctx.log notices, each of which reaches Node as a `worker_log` line."""

import logging

from pyvisor import command

# The logging module writes to stderr (which the pool reads line by line) in a format whose level
# the Node side can read back: "WARNING shop.orders: order 42 is late".
logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
log = logging.getLogger("shop.orders")


@command("process_order")
def process_order(args, ctx):
    order = (args or {}).get("order", 0)
    print("processing order %s" % order)                     # print(): an info line
    log.info("order %s accepted", order)                     # logging, with its level and logger
    if (args or {}).get("late"):
        log.warning("order %s is late", order)
    ctx.log("order %s done" % order, "debug")                # a log notice, through the protocol
    return {"order": order, "status": "done"}


@command("fail_order")
def fail_order(args, ctx):
    """Log an error with the traceback (logging.exception), then answer."""
    try:
        raise RuntimeError("payment declined")
    except RuntimeError:
        log.exception("order %s failed", (args or {}).get("order", 0))
    return {"status": "failed"}
