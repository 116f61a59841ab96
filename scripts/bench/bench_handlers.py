"""Commands the benchmarks run in pool workers.

noop: does nothing and returns None (the round-trip and throughput benchmarks).
echo: returns its args unchanged (the payload benchmarks send bytes).
"""

from pyvisor import command


@command("noop")
def noop(args, ctx):
    return None


@command("echo")
def echo(args, ctx):
    return args
