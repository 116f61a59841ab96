"""A tiny stand-in for the ``dspy`` package, used only by the tests to drive
pyvisor's dspy code path where real dspy is not installed. It mimics the few
names pyvisor calls (dspy >= 2.5 API) and records what it was given."""

import contextlib

__version__ = "0.0-stub"

_current = {"lm": None}


class _Field(object):
    def __init__(self, kind, desc=None):
        self.kind = kind
        self.desc = desc


def InputField(desc=None, **kw):
    return _Field("input", desc)


def OutputField(desc=None, **kw):
    return _Field("output", desc)


class _SignatureClass(object):
    def __init__(self, fields, instructions):
        self.fields = fields
        self.instructions = instructions
        self.input_fields = [n for n, (t, f) in fields.items() if f.kind == "input"]
        self.output_fields = [n for n, (t, f) in fields.items() if f.kind == "output"]


def Signature(fields, instructions=None):
    if not isinstance(fields, dict):
        raise TypeError("stub only supports the dict form")
    for name, value in fields.items():
        type_, field = value
        if type_ is not str or not isinstance(field, _Field):
            raise TypeError("field %s must be (str, Field)" % name)
    return _SignatureClass(fields, instructions)


class LM(object):
    def __init__(self, model, **kwargs):
        self.model = model
        self.kwargs = kwargs


@contextlib.contextmanager
def context(**kwargs):
    prev = dict(_current)
    _current.update(kwargs)
    try:
        yield
    finally:
        _current.clear()
        _current.update(prev)


class Prediction(object):
    def __init__(self, **kw):
        self.__dict__.update(kw)


class Predict(object):
    def __init__(self, signature):
        self.signature = signature

    def _outputs(self, inputs):
        lm = _current.get("lm")
        if lm is None:
            raise RuntimeError("No LM is loaded.")
        if set(inputs) != set(self.signature.input_fields):
            raise ValueError("stub got inputs %s" % sorted(inputs))
        if inputs.get(self.signature.input_fields[0]) == "explode":
            raise RuntimeError("stub LM exploded")
        return {n: "stub %s via %s at %s key=%s" % (n, lm.model, lm.kwargs.get("api_base"),
                                                    lm.kwargs.get("api_key"))
                for n in self.signature.output_fields}

    def __call__(self, **inputs):
        return Prediction(**self._outputs(inputs))


class ChainOfThought(Predict):
    def __call__(self, **inputs):
        out = self._outputs(inputs)
        out["reasoning"] = "stub reasoning"
        return Prediction(**out)
