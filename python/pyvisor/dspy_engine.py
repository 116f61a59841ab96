"""The real-DSPy engine of the DSPy commands (see :mod:`pyvisor.dspy_commands`):
importing and configuring DSPy once, a session's ``dspy.LM``, building and
running a program's module, DSPy's errors as :class:`pyvisor.lm.LMError`,
token usage.

Thread safety: nothing here keeps per-call state in a global. What one call
needs travels in ``dspy.context(...)`` (DSPy's settings are a contextvar) and
in :data:`_CURRENT` (a contextvar too), so calls may run at once on several
threads or asyncio tasks.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import threading
from typing import (TYPE_CHECKING, Any, ContextManager, Dict, Iterator, List, Mapping, Optional,
                    Tuple)

from . import lm as _lm
from .lm import AdapterParseError, LMError

if TYPE_CHECKING:
    from .dspy_programs import Program

#: What the worker knows of one ``dspy.Predict`` call of the dummy provider:
#: (runner, signature, inputs, reasoning, demos); see :data:`_CURRENT`.
_Call = Tuple[Any, Dict[str, Any], Dict[str, Any], bool, List[Dict[str, Any]]]

#: The oldest DSPy the bridge drives (tested with the pin in python/requirements-dspy.txt).
MIN_DSPY_MAJOR = 3
#: Sent as the API key to an endpoint configured without one (a local server):
#: DSPy refuses to call an OpenAI-compatible endpoint without a key.
NO_KEY_PLACEHOLDER = "pyvisor-no-key"
#: Longest DSPy error message passed on (an AdapterParseError quotes the whole reply).
MAX_MESSAGE = 4000


# -- dspy probing (at import: worker start) -----------------------------------

_dspy_state: Dict[str, Any] = {"probed": False, "module": None, "error": None}


def _prepare_environment() -> None:
    """What DSPy and litellm read from the environment, set before they are
    imported; a value the worker was given is kept."""
    env = os.environ
    # DSPy's model metadata and litellm's cost map are otherwise fetched from the
    # network on first use (5 s timeout); offline mode stops litellm's other fetches.
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    env.setdefault("LITELLM_OFFLINE_MODE", "true")
    if not env.get("DSPY_CACHEDIR"):
        # Not created here: only a session that asks for cache=True makes DSPy write there.
        import tempfile
        d = os.path.join(tempfile.gettempdir(), "pyvisor-dspy-cache-%d-%s"
                         % (os.getpid(), os.urandom(4).hex()))
        env["DSPY_CACHEDIR"] = d
        import atexit
        import shutil
        atexit.register(shutil.rmtree, d, True)


def dspy_module() -> Any:
    """The ``dspy`` module when usable, else ``None`` (probed once)."""
    st = _dspy_state
    if not st["probed"]:
        probe()
    if st["module"] is None and st["error"] and _dspy_mode() == "require":
        raise ImportError("PYVISOR_DSPY=require but dspy is unusable: %s" % st["error"])
    return st["module"]


def probe() -> None:
    st = _dspy_state
    st["probed"] = True
    if _dspy_mode() == "off":
        return
    _prepare_environment()
    try:
        import dspy  # noqa
        version = getattr(dspy, "__version__", "?")
        try:
            major = int(str(version).split(".")[0])
        except ValueError:
            major = None
        if major is not None and major < MIN_DSPY_MAJOR:
            raise ImportError("dspy %s is too old: the bridge needs dspy >= %d "
                              "(python/requirements-dspy.txt)" % (version, MIN_DSPY_MAJOR))
        for attr in ("Predict", "ChainOfThought", "Signature", "InputField", "OutputField",
                     "LM", "context", "configure", "utils"):
            if not hasattr(dspy, attr):
                raise ImportError("dspy %s lacks dspy.%s (need dspy >= %d)"
                                  % (version, attr, MIN_DSPY_MAJOR))
        if not hasattr(dspy.utils, "DummyLM"):
            raise ImportError("dspy %s lacks dspy.utils.DummyLM" % version)
        _configure_once(dspy)
        st["module"] = dspy
    except Exception as e:  # a broken install must not break the worker
        st["error"] = "%s: %s" % (type(e).__name__, e)
        if sys.version_info < (3, 10):
            st["error"] += (" (DSPy 3.x needs Python >= 3.10; this worker runs %d.%d.%d)"
                            % sys.version_info[:3])


def _configure_once(dspy: Any) -> None:
    """The one ``dspy.configure`` of the process: from the main thread (DSPy
    refuses ``configure`` from any thread but the first that called it)."""
    if threading.current_thread() is threading.main_thread():
        dspy.configure(disable_history=True)


def _dspy_mode() -> str:
    v = os.environ.get("PYVISOR_DSPY", "auto").strip().lower()
    if v in ("0", "off", "false", "no"):
        return "off"
    if v in ("1", "on", "require", "true", "yes"):
        return "require"
    return "auto"


def engine_name() -> str:
    return "dspy" if dspy_module() is not None else "builtin"


# -- modules ------------------------------------------------------------------

def build_module(dspy: Any, signature: Dict[str, Any], ptype: str) -> Any:
    """A fresh ``dspy.Predict`` / ``dspy.ChainOfThought`` for a normalized signature."""
    fields: Dict[str, Any] = {}
    for f in signature["inputs"]:
        kw = {"desc": f["description"]} if f["description"] else {}
        fields[f["name"]] = (str, dspy.InputField(**kw))
    for f in signature["outputs"]:
        kw = {"desc": f["description"]} if f["description"] else {}
        fields[f["name"]] = (str, dspy.OutputField(**kw))
    if signature["instructions"]:
        sig = dspy.Signature(fields, signature["instructions"])
    else:
        sig = dspy.Signature(fields)
    return dspy.ChainOfThought(sig) if ptype == "chain_of_thought" else dspy.Predict(sig)


def predictors(module: Any) -> List[Any]:
    """The module's ``dspy.Predict`` objects (a Predict is its own only one)."""
    named = getattr(module, "predictors", None)
    return list(named()) if named is not None else []


def demo_count(module: Any) -> int:
    return sum(len(getattr(p, "demos", None) or ()) for p in predictors(module))


def demo_dict(demo: Any) -> Dict[str, Any]:
    """A demo (``dspy.Example`` or a plain map, as ``load_state`` leaves them) as a dict."""
    if isinstance(demo, dict):
        return demo
    to_dict = getattr(demo, "toDict", None)
    if to_dict is not None:
        out: Dict[str, Any] = to_dict()
        return out
    try:
        return dict(demo)
    except Exception:
        return {}


# -- LMs ----------------------------------------------------------------------

def dspy_model_name(model: str) -> str:
    """The model string for ``dspy.LM`` of an OpenAI-compatible endpoint:
    ``openai/`` + the name, unless the name already starts with ``openai/``
    (``meta-llama/Llama-3`` is a model name there, not a provider)."""
    return model if model.startswith("openai/") else "openai/" + model


#: (runner, signature, inputs, reasoning, demos) of the ``dspy.Predict`` call in
#: progress: what the DummyLM of the ``dummy`` provider answers from. Set by
#: :class:`_DummyCall` (a DSPy callback) at each Predict call, so it is right
#: for every LM call, also those an optimizer makes with other inputs.
_CURRENT: contextvars.ContextVar[Optional[_Call]] = contextvars.ContextVar(
    "pyvisor_dspy_call", default=None)


class _DummyAnswers(object):
    """The answers iterator of a ``dspy.utils.DummyLM``: each LM call takes the
    built-in dummy's outputs for the Predict call in progress."""

    def __init__(self, runner: _lm.LM) -> None:
        self.runner = runner

    def __iter__(self) -> _DummyAnswers:
        return self

    def __next__(self) -> Dict[str, str]:
        call = _CURRENT.get()
        if call is None or call[0] is not self.runner:
            raise StopIteration  # DummyLM answers "No more responses"
        _, signature, inputs, reasoning, demos = call
        return {k: v if isinstance(v, str) else _lm._text(v)
                for k, v in self.runner.complete(signature, inputs, reasoning, demos).items()}


def dummy_lm(dspy: Any, runner: _lm.LM) -> Any:
    return dspy.utils.DummyLM(_DummyAnswers(runner))


_callback_class: List[type] = []


def _dummy_call_class(dspy: Any) -> type:
    if _callback_class:
        return _callback_class[0]
    from dspy.utils.callback import BaseCallback

    class _DummyCall(BaseCallback):
        """Sets :data:`_CURRENT` for each ``dspy.Predict`` call of one run (its
        inputs and demos), resets it when the call ends."""

        def __init__(self, runner: _lm.LM, signature: Dict[str, Any],

                     reasoning: bool) -> None:
            self.runner = runner
            self.signature = signature
            self.reasoning = reasoning
            self.names = [f["name"] for f in signature["inputs"]]
            self.tokens: Dict[str, contextvars.Token[Optional[_Call]]] = {}

        def on_module_start(self, call_id: str, instance: Any, inputs: Dict[str, Any]) -> None:
            if not isinstance(instance, dspy.Predict):
                return
            kw = inputs.get("kwargs")
            if not isinstance(kw, dict):
                kw = inputs
            values = {n: kw[n] for n in self.names if n in kw}
            demos = [demo_dict(d) for d in (getattr(instance, "demos", None) or ())]
            self.tokens[call_id] = _CURRENT.set((self.runner, self.signature, values,
                                                 self.reasoning, demos))

        def on_module_end(self, call_id: str, outputs: Any,
                          exception: Optional[Exception] = None) -> None:
            token = self.tokens.pop(call_id, None)
            if token is not None:
                try:
                    _CURRENT.reset(token)
                except ValueError:  # another context (cannot happen in one task/thread)
                    pass

    _callback_class.append(_DummyCall)
    return _DummyCall


def build_dspy_lm(dspy: Any, cfg: _lm.LM, cmd: str) -> Any:
    """The session's DSPy LM for the built-in LM object ``cfg`` (validated)."""
    if cfg.provider == "dummy":
        return dummy_lm(dspy, cfg)
    assert isinstance(cfg, _lm.OpenAILM)  # the one other provider
    model = dspy_model_name(cfg.model)

    kw: Dict[str, Any] = {"api_base": cfg.base_url, "api_key": cfg.api_key or NO_KEY_PLACEHOLDER,
          "timeout": cfg.timeout_s, "cache": cfg.cache, "num_retries": cfg.num_retries}
    if cfg.temperature is not None:
        kw["temperature"] = cfg.temperature
    if cfg.max_tokens is not None:
        kw["max_tokens"] = cfg.max_tokens
    try:
        return dspy.LM(model, **kw)
    except (ValueError, TypeError) as e:
        raise ValueError("%s: dspy.LM(%r) refused the configuration: %s"
                         % (cmd, model, clip(str(e)))) from e
    except Exception as e:
        raise lm_error(e, "%s: dspy.LM(%r) refused the configuration" % (cmd, model)) from e


def make_lm(args: Any, cmd: str) -> Tuple[_lm.LM, Any]:
    """Validate configure_lm ``args``; return ``(built-in LM, DSPy LM or None)``."""
    cfg = _lm.make_lm(args, cmd)
    dspy = dspy_module()
    return cfg, (build_dspy_lm(dspy, cfg, cmd) if dspy is not None else None)


def close_dspy_lm(dlm: Any) -> None:
    close = getattr(dlm, "close", None)
    if close is not None:
        try:
            close()  # DSPy 3.4: releases the LM's connection pools
        except Exception:
            pass


def call_settings(dspy: Any, p: Program, dspy_lm: Any, runner: _lm.LM) -> Dict[str, Any]:
    """The ``dspy.context`` keyword arguments of one run of program ``p``: the
    session's LM, no history, a trace list of its own, and for the dummy
    provider the callback that tells the DummyLM what it is answering."""
    kw: Dict[str, Any] = {"lm": dspy_lm, "disable_history": True, "trace": []}
    if runner.provider == "dummy":
        kw["callbacks"] = [_dummy_call_class(dspy)(runner, p.signature,
                                                   p.type == "chain_of_thought")]
    return kw


# -- errors -------------------------------------------------------------------

def clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "..."


def _causes(e: Optional[BaseException]) -> Iterator[BaseException]:
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def _int_status(v: Any) -> Optional[int]:
    return v if isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 599 else None


def lm_error(e: BaseException, prefix: str) -> LMError:
    """``e`` (raised by DSPy) as a pyvisor LMError / AdapterParseError, keeping
    its structure: DSPy 3.4's ``status``/``retry_after``/``code``/``provider``/
    ``request_id`` attributes, or litellm's ``status_code`` where an unwrapped
    litellm exception surfaces, found on ``e`` or along its causes. A pyvisor
    LMError (the built-in runner's) is kept as it is."""
    if isinstance(e, LMError):
        return e
    kind = type(e).__name__
    names = [c.__name__ for c in type(e).__mro__]
    if "AdapterParseError" in names:
        return AdapterParseError("%s: %s: %s" % (prefix, kind, clip(str(e))), kind=kind,
                                 code=getattr(e, "code", None) or "adapter_parse_error")
    status: Optional[int] = None
    retry_after: Optional[float] = None
    for c in _causes(e):
        status = _int_status(getattr(c, "status", None)) or \
            _int_status(getattr(c, "status_code", None))
        if status is not None:
            ra = getattr(c, "retry_after", None)
            if ra is None:
                headers = getattr(getattr(c, "response", None), "headers", None)
                ra = _lm._retry_after(headers) if headers is not None else None
            if isinstance(ra, (int, float)) and not isinstance(ra, bool):
                retry_after = float(ra)
            break
    code = getattr(e, "code", None)
    if not isinstance(code, str):
        code = _lm._status_code(status) if status is not None else None
    provider = getattr(e, "provider", None)
    request_id = getattr(e, "request_id", None)
    note = ""
    if status is not None:
        note = " (HTTP %d%s)" % (status, ", retry after %gs" % retry_after
                                 if retry_after is not None else "")
    return LMError("%s: %s%s: %s" % (prefix, kind, note, clip(str(e))), status=status,
                   retry_after=retry_after, code=code,
                   provider=provider if isinstance(provider, str) else None,
                   request_id=request_id if isinstance(request_id, str) else None, kind=kind)


# -- usage --------------------------------------------------------------------

def track_usage(dspy: Any) -> ContextManager[Any]:
    track = getattr(dspy, "track_usage", None)
    if track is None:
        return contextlib.nullcontext(None)
    cm: ContextManager[Any] = track()
    return cm


def usage_of(tracker: Any, runner: _lm.LM) -> Optional[Dict[str, Any]]:
    """The run's token usage summed over its LM calls (one LM per session), or
    None (always for the dummy, which reports zeros)."""
    if tracker is None or runner.provider == "dummy":
        return None
    try:
        totals = tracker.get_total_tokens()
    except Exception:
        return None
    out: Dict[str, Any] = {}
    for per_lm in (totals or {}).values():
        counts = _lm.usage_counts(per_lm) or {}
        for k, v in counts.items():
            if isinstance(v, dict):
                inner = out.setdefault(k, {})
                for ik, iv in v.items():
                    inner[ik] = inner.get(ik, 0) + iv
            else:
                out[k] = out.get(k, 0) + v
    return out or None


# -- running ------------------------------------------------------------------

def output_names(p: Program) -> List[str]:
    return (["reasoning"] if p.type == "chain_of_thought" else []) + \
        [f["name"] for f in p.signature["outputs"]]


def outputs_of(p: Program, pred: Any) -> Dict[str, Any]:
    outputs: Dict[str, Any] = {}
    for name in output_names(p):
        try:
            outputs[name] = plain(pred[name])  # not getattr: Prediction has methods named keys, items, ...
        except KeyError:
            outputs[name] = None
    return outputs


def failure_prefix(p: Program) -> str:
    return "dspy program '%s' failed" % p.program_id


def run(dspy: Any, p: Program, module: Any, dspy_lm: Any, runner: _lm.LM,
        inputs: Mapping[str, Any]) -> Tuple[Dict[str, Any], Optional[Dict[str, Any]]]:
    """Run ``module`` (program ``p``'s) with the session's LM; ``(outputs, usage)``.

    One execution makes one Predict call with the caller's inputs, so the dummy
    provider is told what it answers directly (:data:`_CURRENT`), not through the
    per-Predict callback: any DSPy callback makes every module call pay for
    ``inspect.getcallargs`` (about a third of a dummy execution). Optimizers,
    whose Predict calls carry other inputs, keep the callback (:func:`call_settings`).
    """
    token: Optional[contextvars.Token[Optional[_Call]]] = None
    if runner.provider == "dummy":
        predictors = module.predictors() if hasattr(module, "predictors") else []
        demos = [demo_dict(d) for d in (getattr(predictors[0], "demos", None) or ())] if predictors else []
        token = _CURRENT.set((runner, p.signature, {n: inputs[n] for n in inputs},
                              p.type == "chain_of_thought", demos))
    try:
        with dspy.context(lm=dspy_lm, disable_history=True, trace=[]):
            with track_usage(dspy) as tracker:
                pred = module(**inputs)
    except Exception as e:
        raise lm_error(e, failure_prefix(p)) from e
    finally:
        if token is not None:
            _CURRENT.reset(token)
    return outputs_of(p, pred), usage_of(tracker, runner)


def plain(v: Any) -> Any:
    """``v`` as wire values: str-keyed maps, lists, str/int/float/bool/bytes/None
    (anything else as its ``str``)."""
    if v is None or isinstance(v, (str, int, float, bool, bytes)):
        return v
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    return str(v)
