"""``python3 -m pyvisor.typegen``: the command line, the exit codes.

Part of :mod:`pyvisor.typegen` (the package's docstring has the usage). User code
that prints while its handler file loads goes to stderr: stdout carries only the
declarations.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional, Sequence

from .api import LoadError, _regenerate, emit, load_commands

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_HANDLER_IMPORT = 3


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python3 -m pyvisor.typegen``: the declarations on stdout; the exit code (module doc)."""
    parser = argparse.ArgumentParser(
        prog="python3 -m pyvisor.typegen",
        description="TypeScript types for the commands of pyvisor handler files.")
    parser.add_argument("handlers", nargs="+", metavar="HANDLERS",
                        help="handler files (*.py or paths) or dotted module names")
    parser.add_argument("--builtins", action="store_true",
                        help="also the built-in commands (ping, get_stats, cleanup_session, shutdown)")
    parser.add_argument("--traceback", action="store_true",
                        help="print the traceback of a handler that fails to load")
    try:
        opts = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as e:
        return EXIT_OK if e.code in (0, None) else EXIT_USAGE
    specs: List[str] = [str(s) for s in opts.handlers]
    builtins = bool(opts.builtins)
    # User code must not write into the declarations: fd 1 is stderr while it loads.
    sys.stdout.flush()
    out_fd = os.dup(1)
    saved_stdout = sys.stdout
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        commands = load_commands(specs, builtins)
        text = emit(commands, specs, _regenerate(specs, builtins))
    except LoadError as e:
        if opts.traceback:
            import traceback
            traceback.print_exception(type(e.error), e.error, e.error.__traceback__,
                                      file=sys.stderr)
        # The last line names the file and the error, as the worker's does.
        sys.stderr.write("pyvisor types: %s\n" % e)
        sys.stderr.flush()
        return EXIT_HANDLER_IMPORT
    finally:
        sys.stdout.flush()
        sys.stdout = saved_stdout
        os.dup2(out_fd, 1)
        os.close(out_fd)
    data = text.encode("utf-8")
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is not None:
        buffer.write(data)
        buffer.flush()
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return EXIT_OK
