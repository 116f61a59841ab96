"""The in-process baseline of the real-DSPy benchmark: the same Predict program on DSPy's
DummyLM, called in a loop inside one Python (no pool, no pipes). Prints calls per second as
JSON: {"calls_per_s": [...per window...]}.

    .venv/bin/python scripts/bench/dspy_inprocess.py WARM_MS WINDOW_MS REPEATS
"""
import json
import os
import sys
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import dspy  # noqa: E402


class QA(dspy.Signature):
    """Answer briefly."""
    question: str = dspy.InputField()
    answer: str = dspy.OutputField()


class Forever(dspy.utils.DummyLM):
    """DummyLM pops its answers; this one never runs out (the pool's dummy LM answers forever too)."""

    def __init__(self):
        super().__init__([{"answer": "dummy"}])

    def forward(self, *args, **kwargs):
        self.answers = iter([{"answer": "dummy"}])
        return super().forward(*args, **kwargs)


def main():
    warm_ms, window_ms, repeats = (int(a) for a in sys.argv[1:4])
    lm = Forever()
    program = dspy.Predict(QA)

    def window(ms):
        n = 0
        t0 = time.perf_counter()
        end = t0 + ms / 1000.0
        with dspy.context(lm=lm, disable_history=True, trace=[]):
            while True:
                program(question="What is DSPy?")
                n += 1
                now = time.perf_counter()
                if now >= end:
                    return n / (now - t0)

    window(warm_ms)
    print(json.dumps({"calls_per_s": [window(window_ms) for _ in range(repeats)]}))


if __name__ == "__main__":
    main()
