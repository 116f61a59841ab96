"""Handlers for examples/venv-interpreter.mjs: they import packages that only the virtualenv has.

`import dspy` at the top, as a real handler would: under an interpreter without it the worker
cannot load this file and createPool rejects, quoting Python's ModuleNotFoundError.
"""

import sys

import dspy
import pydantic

from pyvisor import command


class Question(pydantic.BaseModel):
    text: str
    max_words: int = 20


@command("venv_info")
def venv_info(args, ctx):
    """Which interpreter and environment this worker runs in, and the venv's packages' versions."""
    return {
        "executable": sys.executable,
        "prefix": sys.prefix,
        "base_prefix": sys.base_prefix,
        "in_venv": sys.prefix != sys.base_prefix,
        "python": "%d.%d.%d" % sys.version_info[:3],
        "dspy": dspy.__version__,
        "pydantic": pydantic.VERSION,
    }


@command("validate")
def validate(args, ctx):
    """Validate args as a Question with pydantic: the model's dict, or pydantic's error as a ValueError."""
    try:
        return Question.model_validate(args).model_dump()
    except pydantic.ValidationError as e:
        raise ValueError("invalid question: %s" % "; ".join("%s: %s" % (".".join(map(str, err["loc"])), err["msg"]) for err in e.errors()))
