"""A small stand-in for the ``dspy`` package (DSPy 3.4's API), used only by
the no-DSPy test tiers to drive pyvisor's DSPy code path where real DSPy is not
installed. The real thing is tested by tests/test_dspy_real.py.

It mirrors the names and behaviors pyvisor relies on, as real DSPy 3.4 has
them: ``configure`` (only the first thread that called it may call it again),
``context`` (per-context overrides), ``settings``, ``LM(model, cache=True,
num_retries=3, **kwargs)`` with ``.kwargs`` and ``close()``,
``Signature(dict_of_(type, field), instructions)``, ``InputField`` /
``OutputField``, ``Predict`` (refuses a ``new_signature`` keyword, takes
``lm``/``config``/``demos``/``signature`` for itself), ``ChainOfThought``
(prepends a ``reasoning`` output), ``Prediction`` (fields by ``[name]``; methods
such as ``keys`` win over fields as attributes), the ``LMError`` hierarchy
with ``status`` / ``retry_after`` / ``code`` / ``provider``,
``AdapterParseError``, ``track_usage``, ``utils.DummyLM`` (answers from a
list, a dict or any iterator), callbacks (``dspy.utils.callback.BaseCallback``:
``on_module_start`` / ``on_module_end`` around every module call, with
``inputs={"args": (), "kwargs": ...}``), a Predict's ``demos``,
``named_parameters`` / ``predictors`` / ``deepcopy``, and ``dump_state`` /
``load_state`` in real DSPy's shapes (a Predict's ``{traces, train, demos,
signature: {instructions, fields: [{prefix, description}]}, lm}``, a
ChainOfThought's ``{predict: ...}``). No streamify, no optimizers.

What it answers (for an ``LM``): every output is ``"stub <field> via <model> at
<api_base> key=<api_key>"``; some first-input values fail the way DSPy does:
``explode`` (RuntimeError), ``http-401`` (LMAuthError), ``http-429``
(LMRateLimitError, retry_after 7), ``http-500`` (LMServerError), ``unparseable``
(AdapterParseError), ``describe-lm`` (every output is the LM's model, cache,
num_retries and kwargs as JSON). Each call reports usage {prompt 3, completion 5, total 8}.
``configure`` writes one line per call to stderr, naming the thread.
"""

import contextlib
import copy as _copy
import sys
import threading
import types
import uuid

__version__ = "3.4.1+stub"

_main_config = {"lm": None, "disable_history": False, "trace": [], "usage_tracker": None,
                "track_usage": False, "callbacks": []}
_overrides = threading.local()
_owner = {"thread": None}
GLOBAL_HISTORY = []


def _config():
    return getattr(_overrides, "config", None) or _main_config


class _Settings(object):
    def __getattr__(self, name):
        try:
            return _config()[name]
        except KeyError:
            raise AttributeError(name)


settings = _Settings()


def configure(**kwargs):
    me = threading.get_ident()
    if _owner["thread"] is None:
        _owner["thread"] = me
    if _owner["thread"] != me:
        raise RuntimeError("dspy.settings can only be changed by the thread that initially "
                           "configured it.")
    sys.stderr.write("dspy-stub: configure(%s) from %s\n" % (
        ", ".join("%s=%r" % kv for kv in sorted(kwargs.items())),
        "the main thread" if threading.current_thread() is threading.main_thread()
        else "another thread"))
    _main_config.update(kwargs)


@contextlib.contextmanager
def context(**kwargs):
    prev = getattr(_overrides, "config", None)
    _overrides.config = dict(_config(), **kwargs)
    try:
        yield
    finally:
        _overrides.config = prev


# -- errors (dspy.utils.exceptions) -------------------------------------------

class DSPyError(Exception):
    default_code = None

    def __init__(self, message="", code=None, model=None, provider=None, provider_code=None,
                 status=None, request_id=None, retry_after=None):
        self.message = message
        self.code = code or self.default_code
        self.model = model
        self.provider = provider
        self.provider_code = provider_code
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after
        prefix = "[%s] " % model if model else ""
        Exception.__init__(self, prefix + message if message else prefix.rstrip())


class LMError(DSPyError):
    default_code = "lm_error"


class LMProviderError(LMError):
    default_code = "provider"


class LMAuthError(LMProviderError):
    default_code = "auth"


class LMRateLimitError(LMProviderError):
    default_code = "rate_limit"


class LMServerError(LMProviderError):
    default_code = "server"


class AdapterParseError(DSPyError):
    default_code = "adapter_parse_error"

    def __init__(self, adapter_name, signature, lm_response, message=None):
        self.adapter_name = adapter_name
        self.signature = signature
        self.lm_response = lm_response
        DSPyError.__init__(self, "%sAdapter %s failed to parse the LM response. \n\n"
                           "LM Response: %s" % (message + "\n\n" if message else "",
                                                adapter_name, lm_response))


# -- usage ---------------------------------------------------------------------

class UsageTracker(object):
    def __init__(self):
        self.usage_data = {}

    def add_usage(self, lm, entry):
        self.usage_data.setdefault(lm, []).append(dict(entry))

    def get_total_tokens(self):
        out = {}
        for lm, entries in self.usage_data.items():
            total = {}
            for e in entries:
                for k, v in e.items():
                    total[k] = total.get(k, 0) + v
            out[lm] = total
        return out


@contextlib.contextmanager
def track_usage():
    tracker = UsageTracker()
    with context(usage_tracker=tracker):
        yield tracker


# -- signatures ----------------------------------------------------------------

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

    def prepend(self, name, field, type_=str):
        fields = {name: (type_, field)}
        fields.update(self.fields)
        return _SignatureClass(fields, self.instructions)


def Signature(fields, instructions=None):
    if not isinstance(fields, dict):
        raise TypeError("stub only supports the dict form")
    for name, value in fields.items():
        type_, field = value
        if type_ is not str or not isinstance(field, _Field):
            raise TypeError("field %s must be (str, Field)" % name)
        if name.startswith("model_") or name in ("fields", "instructions", "signature"):
            raise ValueError("Field %r conflicts with a member of Signature" % name)
    return _SignatureClass(fields, instructions)


# -- LMs -----------------------------------------------------------------------

class BaseLM(object):
    def __init__(self, model, model_type="chat", temperature=None, max_tokens=None, cache=True,
                 num_retries=3, **kwargs):
        self.model = model
        self.model_type = model_type
        self.cache = cache
        self.num_retries = num_retries
        self.kwargs = dict(temperature=temperature, max_tokens=max_tokens, **kwargs)
        self.history = []
        self.closed = False

    def close(self):
        self.closed = True

    def _record(self, entry):
        if _config()["disable_history"]:
            return
        GLOBAL_HISTORY.append(entry)
        self.history.append(entry)


class LM(BaseLM):
    def __init__(self, model, model_type="chat", temperature=None, max_tokens=None, cache=True,
                 num_retries=3, **kwargs):
        if not isinstance(model, str) or not model:
            raise ValueError("model must be a non-empty string")
        head, sep, rest = model.partition("/")
        if sep and not rest:
            raise ValueError("model %r has a provider prefix but no model id after it" % model)
        if isinstance(num_retries, bool) or not isinstance(num_retries, int) or num_retries < 0:
            raise ValueError("num_retries must be a nonnegative integer")
        BaseLM.__init__(self, model, model_type, temperature, max_tokens, cache, num_retries,
                        **kwargs)

    def answer(self, signature, inputs):
        first = inputs.get(signature.input_fields[0])
        where = dict(model=self.model, provider="openai-chat")
        if first == "explode":
            raise RuntimeError("stub LM exploded")
        if first == "http-401":
            raise LMAuthError("Incorrect API key provided", status=401, **where)
        if first == "http-429":
            raise LMRateLimitError("Rate limit reached", status=429, retry_after=7.0, **where)
        if first == "http-500":
            raise LMServerError("upstream exploded", status=500, **where)
        if first == "unparseable":
            raise AdapterParseError("ChatAdapter", signature, "I refuse to use your format.")
        if first == "describe-lm":
            import json
            desc = json.dumps({"model": self.model, "cache": self.cache,
                               "num_retries": self.num_retries, "kwargs": self.kwargs},
                              sort_keys=True)
            return {n: desc for n in signature.output_fields}
        tracker = _config()["usage_tracker"]
        if tracker is not None:
            tracker.add_usage(self.model, {"prompt_tokens": 3, "completion_tokens": 5,
                                           "total_tokens": 8})
        out = {n: "stub %s via %s at %s key=%s" % (n, self.model, self.kwargs.get("api_base"),
                                                   self.kwargs.get("api_key"))
               for n in signature.output_fields}
        self._record({"inputs": dict(inputs), "outputs": out})
        return out


utils = types.ModuleType("dspy.utils")
sys.modules["dspy.utils"] = utils
callback = types.ModuleType("dspy.utils.callback")
sys.modules["dspy.utils.callback"] = callback
utils.callback = callback


class BaseCallback(object):
    def on_module_start(self, call_id, instance, inputs):
        pass

    def on_module_end(self, call_id, outputs, exception=None):
        pass


callback.BaseCallback = BaseCallback


def _with_callbacks(instance, kwargs, fn):
    callbacks = list(_config().get("callbacks") or [])
    call_id = uuid.uuid4().hex
    for cb in callbacks:
        try:
            cb.on_module_start(call_id=call_id, instance=instance,
                               inputs={"args": (), "kwargs": dict(kwargs)})
        except Exception as e:  # real DSPy only logs a failing callback
            sys.stderr.write("dspy-stub: callback failed: %r\n" % e)
    result = exception = None
    try:
        result = fn()
        return result
    except BaseException as e:
        exception = e
        raise
    finally:
        for cb in callbacks:
            try:
                cb.on_module_end(call_id=call_id, outputs=result, exception=exception)
            except Exception as e:
                sys.stderr.write("dspy-stub: callback failed: %r\n" % e)


class DummyLM(BaseLM):
    def __init__(self, answers, follow_examples=False, reasoning=False, adapter=None):
        BaseLM.__init__(self, "dummy", "chat", 0.0, 1000, True)
        self.answers = iter(answers) if isinstance(answers, list) else answers

    def answer(self, signature, inputs):
        if isinstance(self.answers, dict):
            picked = next((v for k, v in self.answers.items()
                           if any(k in str(x) for x in inputs.values())), None)
        else:
            picked = next(self.answers, None)
        if picked is None:
            picked = {"answer": "No more responses"}
        missing = [n for n in signature.output_fields if n not in picked]
        if missing:
            raise AdapterParseError("ChatAdapter", signature, repr(picked))
        out = {n: str(picked[n]) for n in signature.output_fields}
        self._record({"inputs": dict(inputs), "outputs": out})
        return out


utils.DummyLM = DummyLM


# -- modules -------------------------------------------------------------------

class Prediction(object):
    def __init__(self, **kw):
        self._store = dict(kw)

    def __getitem__(self, key):
        return self._store[key]

    def __getattr__(self, name):
        store = self.__dict__.get("_store", {})
        if name in store:
            return store[name]
        raise AttributeError(name)

    def keys(self):
        return self._store.keys()

    def items(self):
        return self._store.items()


class Module(object):
    def named_parameters(self):
        return [(n, v) for n, v in vars(self).items() if isinstance(v, Predict)]

    def predictors(self):
        return [v for _, v in self.named_parameters()]

    def deepcopy(self):
        return _copy.deepcopy(self)

    def dump_state(self, json_mode=True):
        return {n: v.dump_state() for n, v in self.named_parameters()}

    def load_state(self, state):
        for n, v in self.named_parameters():
            v.load_state(state[n])
        return self

    def __call__(self, **kwargs):
        return _with_callbacks(self, kwargs, lambda: self.forward(**kwargs))


class Predict(Module):
    def __init__(self, signature, **config):
        self.signature = signature
        self.config = config
        self.demos = []
        self.lm = None

    def named_parameters(self):
        return [("self", self)]

    def dump_state(self, json_mode=True):
        sig = self.signature
        return {"traces": [], "train": [], "demos": [dict(d) for d in self.demos],
                "signature": {"instructions": sig.instructions or "",
                              "fields": [{"prefix": n.capitalize() + ":",
                                          "description": f.desc or "${%s}" % n}
                                         for n, (t, f) in sig.fields.items()]},
                "lm": None}

    def load_state(self, state):
        sig = state["signature"]
        fields = {}
        for (n, (t, f)), saved in zip(self.signature.fields.items(), sig["fields"]):
            fields[n] = (t, _Field(f.kind, saved["description"]))
        self.signature = _SignatureClass(fields, sig["instructions"])
        self.demos = list(state.get("demos", []))
        if state.get("lm") is not None:
            raise ValueError("stub: load_state got an lm")
        return self

    def forward(self, **kwargs):
        assert "new_signature" not in kwargs, "new_signature is no longer a valid keyword argument."
        signature = kwargs.pop("signature", self.signature)
        kwargs.pop("demos", None)
        kwargs.pop("config", None)
        lm = kwargs.pop("lm", None) or _config()["lm"]
        if lm is None:
            raise ValueError("No LM is loaded. Please configure the LM using "
                             "`dspy.configure(lm=dspy.LM(...))`.")
        if set(kwargs) != set(signature.input_fields):
            raise ValueError("stub got inputs %s" % sorted(kwargs))
        trace = _config()["trace"]
        pred = Prediction(**lm.answer(signature, kwargs))
        if trace is not None:
            trace.append((self, dict(kwargs), pred))
        return pred


class ChainOfThought(Module):
    def __init__(self, signature, **config):
        self.predict = Predict(signature.prepend("reasoning", OutputField(desc="${reasoning}")),
                               **config)

    def forward(self, **kwargs):
        return self.predict(**kwargs)
