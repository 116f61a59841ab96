#!/usr/bin/env python3
"""pyvisor worker entry point with the DSPy commands (the DSPy preset).

    python3 python/dspy_bridge.py --mode pool-worker|standalone --worker-id ID
            [--max-frame-bytes N] [--handlers FILE_OR_MODULE ...]

Runs from any working directory: the directory holding this file is put on
sys.path so ``import pyvisor`` finds the bundled package. See README.md.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

if __name__ == "__main__":
    from pyvisor.bootstrap import main
    # The DSPy commands are imported by main() after the protocol file
    # descriptors are secured, like any handler module.
    main(preload=["pyvisor.dspy_commands"])
