"""pyvisor: the Python worker side of the pyvisor Node.js process pool.

Handler authors only need::

    from pyvisor import command

    @command("echo")
    def echo(args, ctx):
        return args

See python/README.md for the full worker contract.
"""

from .registry import command, Context, CommandError, on_cleanup, on_stats

__version__ = "0.1.0"

__all__ = ["command", "Context", "CommandError", "on_cleanup", "on_stats", "__version__"]
