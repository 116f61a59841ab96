"""``python3 -m pyvisor.typegen [--builtins] [--traceback] HANDLERS...``: the
declarations on stdout; exit 0 written, 2 bad usage, 3 a handler that failed to
load (:func:`pyvisor.typegen.main`)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
