"""``python3 -m pyvisor --worker-id ID [--handlers FILE_OR_MODULE ...]``: the
generic worker, with the built-in commands and the given handlers only (no
DSPy commands). Same flags as dspy_bridge.py; ``--mode`` defaults to
``pool-worker``."""

if __name__ == "__main__":
    from pyvisor.bootstrap import main
    main(default_mode="pool-worker", prog="python3 -m pyvisor")
