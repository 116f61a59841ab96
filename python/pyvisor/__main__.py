"""``python3 -m pyvisor ...``: the worker with the built-in commands only
(no DSPy commands). Same arguments as dspy_bridge.py."""

if __name__ == "__main__":
    from pyvisor.worker import main
    main()
