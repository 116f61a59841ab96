"""DSPy commands: configure_lm, create_program, execute_program, list_programs,
delete_program, get_program_info.

Namespaces: in ``pool-worker`` mode every command needs the request's
``session`` and works in that session's namespace, stored in the session's
dict, so ``cleanup_session`` frees its programs and LM configuration. In
``standalone`` mode there is one global namespace and ``session`` is ignored.

Engines: when ``import dspy`` works (DSPy 3.x, which needs Python >= 3.10; and
``PYVISOR_DSPY`` is not ``off``), ``create_program`` builds a real
``dspy.Predict`` / ``dspy.ChainOfThought`` module and every execution runs it:
an ``openai`` configuration through a ``dspy.LM``, the ``dummy`` provider
through a ``dspy.utils.DummyLM`` that answers what the built-in dummy would.
Otherwise a built-in signature runner gives the same commands and result
shapes. With no ``configure_lm``, a namespace uses the dummy LM.

How DSPy is used (DSPy keeps process-wide state; a worker serves many sessions):

* DSPy is imported when this module is (at worker start, in the main thread,
  before the ``ready`` notice), not inside the first request; with it,
  ``dspy.configure(disable_history=True)`` is called once, there. Nothing
  calls ``dspy.configure`` again: DSPy refuses it from any other thread.
* Every execution runs inside ``dspy.context(lm=<the session's LM>,
  disable_history=True, trace=[])``: the session's own LM, no prompt kept in
  DSPy's process-wide history (which ``cleanup_session`` could not clear), a
  trace list that dies with the call.
* A session's ``dspy.LM`` is built by ``configure_lm`` (so a configuration DSPy
  refuses is ``configure_lm``'s error), with ``cache=False`` (DSPy's cache key
  ignores ``api_key`` and ``api_base``: sessions with different endpoints would
  share answers) and ``num_retries=0`` (one execution, one request) unless the
  session asks otherwise (``cache``, ``num_retries``), ``timeout`` from
  ``timeout_s``; the model is sent as ``openai/<model>`` unless it already
  starts with ``openai/``; a keyless local endpoint gets a placeholder key.
* Before DSPy is imported: ``LITELLM_LOCAL_MODEL_COST_MAP=True`` and
  ``LITELLM_OFFLINE_MODE=true`` (DSPy and litellm otherwise fetch a model map
  from the network, 5 s timeout) and ``DSPY_CACHEDIR`` set to a per-worker
  temporary directory, each unless already set.
* Failures keep DSPy's structure: a ``dspy.LMError`` (or a litellm exception)
  becomes :class:`pyvisor.lm.LMError` with its ``status``, ``retry_after``,
  ``code``, ``provider``, ``request_id`` and ``kind`` (the DSPy class name); a
  ``dspy.AdapterParseError`` becomes :class:`pyvisor.lm.AdapterParseError`.
* Token usage (``dspy.track_usage``) is in ``execute_program``'s result as
  ``usage`` when the LM reported some.

``PYVISOR_DSPY``: ``auto`` (default: use dspy if importable), ``off`` (never
import it), ``require`` (fail the command if it cannot be imported).

Self-sufficient calls: ``execute_program``, ``get_program_info`` and
``delete_program`` take an optional ``restore: {lm?: <configure_lm args>,
program: <create_program args>}``. With it, the call first makes this worker's
namespace match: the LM is (re)configured from ``restore.lm`` when the namespace
has no LM or a different one, and the program is created from
``restore.program`` when it is missing or was created from a different spec.
Then the command proceeds, and its result carries ``restored`` (True when
anything had to be (re)made). A host that keeps the specs (the TypeScript
``PythonPool``) can so send one call to any worker. ``configure_lm`` with the
configuration a namespace already has is a no-op.
"""

import contextvars
import copy
import os
import sys
import threading
import time

from .registry import command, on_cleanup, on_stats
from . import lm as _lm
from .lm import AdapterParseError, LMError

__all__ = ["SessionRequiredError", "ProgramNotFoundError", "LMError", "AdapterParseError",
           "STATE_KEY", "RESERVED_FIELD_NAMES", "dspy_module", "engine_name"]

#: Key of the DSPy namespace inside a session's dict.
STATE_KEY = "__pyvisor_dspy__"
PROGRAM_TYPES = ("predict", "chain_of_thought")
#: The oldest DSPy the bridge drives (tested with the pin in python/requirements-dspy.txt).
MIN_DSPY_MAJOR = 3
#: Sent as the API key to an endpoint configured without one (a local server):
#: DSPy refuses to call an OpenAI-compatible endpoint without a key.
NO_KEY_PLACEHOLDER = "pyvisor-no-key"
#: Longest DSPy error message passed on (an AdapterParseError quotes the whole reply).
MAX_MESSAGE = 4000

# Field names a signature may not use, with the reason. Engine-independent: the
# built-in runner refuses them too, so a program means the same on every worker.
#: Keyword arguments ``dspy.Predict`` takes for itself (``lm``, ``config``,
#: ``demos``, ``signature``, ``new_signature``) and the parameters of its call
#: (``self``, and ``completions``, which it passes on next to the inputs).
PREDICT_RESERVED = frozenset(("lm", "config", "demos", "signature", "new_signature", "self",
                              "completions"))
#: Attributes of ``dspy.Signature``, its metaclass and ``pydantic.BaseModel``
#: (DSPy 3.4 on pydantic 2): a field with such a name shadows the attribute or is
#: refused by pydantic. Names starting with ``model_`` are pydantic's too.
PYDANTIC_RESERVED = frozenset((
    "append", "append_instructions", "construct", "copy", "delete", "dict", "dump_state",
    "equals", "fields", "from_orm", "input_fields", "insert", "instructions", "json",
    "load_state", "mro", "output_fields", "parse_file", "parse_obj", "parse_raw", "prepend",
    "register", "schema", "schema_json", "signature", "update_forward_refs", "validate",
    "with_instructions", "with_updated_fields"))
RESERVED_FIELD_NAMES = PREDICT_RESERVED | PYDANTIC_RESERVED


class SessionRequiredError(ValueError):
    """A DSPy command arrived without a session in pool-worker mode."""


class ProgramNotFoundError(LookupError):
    """No program with that id in the namespace."""

    def __str__(self):  # LookupError would quote the message like KeyError
        return self.args[0] if self.args else ""


# -- dspy probing (at import: worker start) -----------------------------------

_dspy_state = {"probed": False, "module": None, "error": None}


def _prepare_environment():
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


def dspy_module():
    """The ``dspy`` module when usable, else ``None`` (probed once)."""
    st = _dspy_state
    if not st["probed"]:
        _probe()
    if st["module"] is None and st["error"] and _dspy_mode() == "require":
        raise ImportError("PYVISOR_DSPY=require but dspy is unusable: %s" % st["error"])
    return st["module"]


def _probe():
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


def _configure_once(dspy):
    """The one ``dspy.configure`` of the process: from the main thread (DSPy
    refuses ``configure`` from any thread but the first that called it)."""
    if threading.current_thread() is threading.main_thread():
        dspy.configure(disable_history=True)


def _dspy_mode():
    v = os.environ.get("PYVISOR_DSPY", "auto").strip().lower()
    if v in ("0", "off", "false", "no"):
        return "off"
    if v in ("1", "on", "require", "true", "yes"):
        return "require"
    return "auto"


def engine_name():
    return "dspy" if dspy_module() is not None else "builtin"


# -- namespaces -------------------------------------------------------------

class Program(object):
    __slots__ = ("program_id", "type", "signature", "created_at", "executions", "module",
                 "spec")

    def __init__(self, program_id, ptype, signature, module=None, spec=None):
        self.program_id = program_id
        self.type = ptype
        self.signature = signature
        self.created_at = time.time()
        self.executions = 0
        self.module = module
        self.spec = spec  # (type, signature) as sent: what restore.program is compared with


class Namespace(object):
    __slots__ = ("label", "programs", "lm", "lm_args", "dspy_lm")

    def __init__(self, label):
        self.label = label
        self.programs = {}
        self.lm = None        # the built-in LM object (its provider/model label the results)
        self.lm_args = None   # the configure_lm args that built ``lm``
        self.dspy_lm = None   # the session's dspy.LM / DummyLM when dspy is in use


_global = Namespace("the standalone namespace")


def _namespace(ctx, cmd, create=True):
    if ctx.mode != "pool-worker":
        return _global
    sid = ctx.session_id
    if sid is None:
        raise SessionRequiredError(
            "%s: session_id required in pool-worker mode (send the request with a session)"
            % cmd)
    if not create and not ctx.has_session:
        return Namespace("session '%s'" % sid)
    s = ctx.session
    ns = s.get(STATE_KEY)
    if ns is None:
        ns = s[STATE_KEY] = Namespace("session '%s'" % sid)
    return ns


def _args(args, cmd):
    if args is None:
        return {}
    if not isinstance(args, dict):
        raise ValueError("%s: args must be a map, got %s" % (cmd, type(args).__name__))
    return args


def _program_id(args, cmd):
    pid = args.get("program_id")
    if not isinstance(pid, str) or not pid:
        raise ValueError("%s: program_id must be a non-empty string, got %r" % (cmd, pid))
    return pid


def _restore_args(args, pid, cmd):
    """Check ``args["restore"]``; return ``(lm_args or None, program_args)``."""
    restore = args["restore"]
    if not isinstance(restore, dict):
        raise ValueError("%s: restore must be a map {lm?, program}, got %s"
                         % (cmd, type(restore).__name__))
    unknown = sorted(k for k in restore if k not in ("lm", "program"))
    if unknown:
        raise ValueError("%s: restore has unknown key(s) %s (expected lm, program)"
                         % (cmd, ", ".join(repr(k) for k in unknown)))
    lm_args = restore.get("lm")
    if lm_args is not None and not isinstance(lm_args, dict):
        raise ValueError("%s: restore.lm must be a map of configure_lm args, got %s"
                         % (cmd, type(lm_args).__name__))
    prog = restore.get("program")
    if not isinstance(prog, dict):
        raise ValueError("%s: restore.program must be a map of create_program args, got %s"
                         % (cmd, "nothing" if prog is None else type(prog).__name__))
    rid = prog.get("id", prog.get("program_id"))
    if rid is None:
        prog = dict(prog, id=pid)
    elif rid != pid:
        raise ValueError("%s: restore.program.id %r does not match program_id %r"
                         % (cmd, rid, pid))
    return lm_args, prog


def _spec_key(args):
    ptype = args.get("type")
    return ("predict" if ptype is None else ptype, args.get("signature"))


def _program(ns, args, cmd):
    """The program ``args`` names, and whether ``args["restore"]`` had to (re)make
    it or the namespace's LM. Without ``restore``, a missing program is a
    ProgramNotFoundError. With it, everything is validated (and built) before
    anything changes, so a failing restore leaves the namespace as it was."""
    pid = _program_id(args, cmd)
    p = ns.programs.get(pid)
    if args.get("restore") is None:
        if p is None:
            raise ProgramNotFoundError("Program '%s' not found in %s" % (pid, ns.label))
        return p, None
    lm_args, prog = _restore_args(args, pid, cmd)
    made = None
    if lm_args is not None and not (ns.lm is not None and ns.lm_args == lm_args):
        made = _make_lm(lm_args, "configure_lm")
    fresh = None
    if p is None or p.spec != _spec_key(prog):
        fresh = _build_program(ns, prog, replace=True)
    if made is not None:
        _set_lm(ns, made, lm_args)
    if fresh is not None:
        p = ns.programs[pid] = fresh
    return p, made is not None or fresh is not None


def _close_dspy_lm(dlm):
    close = getattr(dlm, "close", None)
    if close is not None:
        try:
            close()  # DSPy 3.4: releases the LM's connection pools
        except Exception:
            pass


@on_cleanup
def _cleanup(session_id, session):
    ns = session.pop(STATE_KEY, None)
    n = len(ns.programs) if ns is not None else 0
    if ns is not None:
        ns.programs.clear()
        if ns.dspy_lm is not None:
            _close_dspy_lm(ns.dspy_lm)
        ns.lm = ns.lm_args = ns.dspy_lm = None
    return {"freed_programs": n}


@on_stats
def _stats(sessions):
    n = len(_global.programs)
    for s in sessions.values():
        ns = s.get(STATE_KEY)
        if ns is not None:
            n += len(ns.programs)
    return {"programs": n}


# -- signature validation ---------------------------------------------------

def _reserved_reason(name, ptype):
    if name in PREDICT_RESERVED:
        if name in ("self", "completions"):
            return "dspy.Predict's call has a parameter of that name"
        return "dspy.Predict takes '%s' as its own keyword argument" % name
    if name in PYDANTIC_RESERVED:
        return "it names an attribute of dspy.Signature (a pydantic model)"
    if name.startswith("model_"):
        return "names starting with 'model_' are pydantic's"
    return None


def normalize_signature(sig, ptype, cmd="create_program"):
    """Validate a wire signature; return ``{inputs, outputs, instructions}``
    with every field as ``{name, description}``."""
    if sig is None:
        raise ValueError("%s: signature is required" % cmd)
    if not isinstance(sig, dict):
        raise ValueError("%s: signature must be a map with inputs and outputs, got %s"
                         % (cmd, type(sig).__name__))
    seen = {}
    out = {}
    for part in ("inputs", "outputs"):
        fields = sig.get(part)
        if not isinstance(fields, list) or not fields:
            raise ValueError("%s: signature.%s must be a non-empty list of fields, got %s"
                             % (cmd, part, "nothing" if fields is None else repr(fields)))
        norm = []
        for i, f in enumerate(fields):
            where = "signature.%s[%d]" % (part, i)
            if isinstance(f, str):
                f = {"name": f}
            if not isinstance(f, dict):
                raise ValueError("%s: %s must be a map with a name, got %s"
                                 % (cmd, where, type(f).__name__))
            name = f.get("name")
            if not isinstance(name, str) or not name:
                raise ValueError("%s: %s.name must be a non-empty string, got %r"
                                 % (cmd, where, name))
            if not name.isidentifier() or name.startswith("_"):
                raise ValueError("%s: %s.name %r must be an identifier not starting with '_'"
                                 % (cmd, where, name))
            if name in seen:
                raise ValueError("%s: duplicate field name '%s' (%s and %s)"
                                 % (cmd, name, seen[name], where))
            if name == "reasoning" and ptype == "chain_of_thought":
                raise ValueError("%s: %s.name 'reasoning' is reserved for chain_of_thought's "
                                 "own reasoning output" % (cmd, where))
            reason = _reserved_reason(name, ptype)
            if reason is not None:
                raise ValueError("%s: %s.name '%s' is reserved: %s"
                                 % (cmd, where, name, reason))
            seen[name] = where
            desc = f.get("description")
            if desc is None:
                desc = ""
            if not isinstance(desc, str):
                raise ValueError("%s: %s.description must be a string, got %r"
                                 % (cmd, where, desc))
            norm.append({"name": name, "description": desc})
        out[part] = norm
    instructions = sig.get("instructions")
    if instructions is None:
        instructions = ""
    if not isinstance(instructions, str):
        raise ValueError("%s: signature.instructions must be a string, got %r"
                         % (cmd, instructions))
    out["instructions"] = instructions
    return out


# -- the DSPy engine ----------------------------------------------------------

def _build_dspy_module(dspy, signature, ptype):
    fields = {}
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


def dspy_model_name(model):
    """The model string for ``dspy.LM`` of an OpenAI-compatible endpoint:
    ``openai/`` + the name, unless the name already starts with ``openai/``
    (``meta-llama/Llama-3`` is a model name there, not a provider)."""
    return model if model.startswith("openai/") else "openai/" + model


#: (runner, signature, inputs, reasoning) of the execution in progress: what the
#: dspy DummyLM of the ``dummy`` provider answers from.
_CURRENT = contextvars.ContextVar("pyvisor_dspy_call", default=None)


class _DummyAnswers(object):
    """The answers iterator of a ``dspy.utils.DummyLM``: each LM call takes the
    built-in dummy's outputs for the execution in progress."""

    def __init__(self, runner):
        self.runner = runner

    def __iter__(self):
        return self

    def __next__(self):
        call = _CURRENT.get()
        if call is None or call[0] is not self.runner:
            raise StopIteration  # DummyLM answers "No more responses"
        _, signature, inputs, reasoning = call
        return {k: v if isinstance(v, str) else _lm._text(v)
                for k, v in self.runner.complete(signature, inputs, reasoning).items()}


def _dspy_dummy(dspy, runner):
    return dspy.utils.DummyLM(_DummyAnswers(runner))


def _build_dspy_lm(dspy, cfg, cmd):
    """The session's DSPy LM for the built-in LM object ``cfg`` (validated)."""
    if cfg.provider == "dummy":
        return _dspy_dummy(dspy, cfg)
    model = dspy_model_name(cfg.model)
    kw = {"api_base": cfg.base_url, "api_key": cfg.api_key or NO_KEY_PLACEHOLDER,
          "timeout": cfg.timeout_s, "cache": cfg.cache, "num_retries": cfg.num_retries}
    if cfg.temperature is not None:
        kw["temperature"] = cfg.temperature
    if cfg.max_tokens is not None:
        kw["max_tokens"] = cfg.max_tokens
    try:
        return dspy.LM(model, **kw)
    except (ValueError, TypeError) as e:
        raise ValueError("%s: dspy.LM(%r) refused the configuration: %s"
                         % (cmd, model, _clip(str(e)))) from e
    except Exception as e:
        raise _lm_error(e, "%s: dspy.LM(%r) refused the configuration" % (cmd, model)) from e


def _make_lm(args, cmd):
    """Validate configure_lm ``args``; return ``(built-in LM, DSPy LM or None)``."""
    cfg = _lm.make_lm(args, cmd)
    dspy = dspy_module()
    return cfg, (_build_dspy_lm(dspy, cfg, cmd) if dspy is not None else None)


def _clip(text):
    text = text.strip()
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "..."


def _causes(e):
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def _int_status(v):
    return v if isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 599 else None


def _lm_error(e, prefix):
    """``e`` (raised by DSPy) as a pyvisor LMError / AdapterParseError, keeping
    its structure: DSPy 3.4's ``status``/``retry_after``/``code``/``provider``/
    ``request_id`` attributes, or litellm's ``status_code`` where an unwrapped
    litellm exception surfaces, found on ``e`` or along its causes."""
    kind = type(e).__name__
    names = [c.__name__ for c in type(e).__mro__]
    if "AdapterParseError" in names:
        return AdapterParseError("%s: %s: %s" % (prefix, kind, _clip(str(e))), kind=kind,
                                 code=getattr(e, "code", None) or "adapter_parse_error")
    status = retry_after = None
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
    return LMError("%s: %s%s: %s" % (prefix, kind, note, _clip(str(e))), status=status,
                   retry_after=retry_after, code=code,
                   provider=provider if isinstance(provider, str) else None,
                   request_id=request_id if isinstance(request_id, str) else None, kind=kind)


def _track_usage(dspy):
    track = getattr(dspy, "track_usage", None)
    if track is None:
        import contextlib
        return contextlib.nullcontext(None)
    return track()


def _usage_of(tracker):
    """The run's token usage summed over its LM calls (one LM per session), or None."""
    if tracker is None:
        return None
    try:
        totals = tracker.get_total_tokens()
    except Exception:
        return None
    out = {}
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


def _run_dspy(dspy, p, dspy_lm, runner, inputs):
    """Run the program's DSPy module with the session's LM; ``(outputs, usage)``."""
    reasoning = p.type == "chain_of_thought"
    token = _CURRENT.set((runner, p.signature, inputs, reasoning))
    try:
        with dspy.context(lm=dspy_lm, disable_history=True, trace=[]):
            with _track_usage(dspy) as tracker:
                pred = p.module(**inputs)
    except Exception as e:
        raise _lm_error(e, "dspy program '%s' failed" % p.program_id) from e
    finally:
        _CURRENT.reset(token)
    names = (["reasoning"] if reasoning else []) + [f["name"] for f in p.signature["outputs"]]
    outputs = {}
    for name in names:
        try:
            outputs[name] = _plain(pred[name])  # not getattr: Prediction has methods named keys, items, ...
        except KeyError:
            outputs[name] = None
    return outputs, (_usage_of(tracker) if runner.provider != "dummy" else None)


def _plain(v):
    if v is None or isinstance(v, (str, int, float, bool, bytes)):
        return v
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return str(v)


# -- commands ---------------------------------------------------------------

def _set_lm(ns, made, lm_args):
    cfg, dspy_lm = made
    if ns.dspy_lm is not None and ns.dspy_lm is not dspy_lm:
        _close_dspy_lm(ns.dspy_lm)
    ns.lm = cfg
    ns.lm_args = copy.deepcopy(lm_args)
    ns.dspy_lm = dspy_lm


def _build_program(ns, args, replace=False):
    """Validate create_program ``args``; return the new Program (not yet stored).
    The error messages are create_program's, whoever calls."""
    ptype = args.get("type")
    if ptype is None:
        ptype = "predict"
    if ptype not in PROGRAM_TYPES:
        raise ValueError("create_program: unknown type %r (expected %s)"
                         % (ptype, " or ".join(repr(t) for t in PROGRAM_TYPES)))
    pid = args.get("id")
    if pid is None:
        pid = args.get("program_id")
    if pid is None:
        pid = "program_" + os.urandom(6).hex()
        while pid in ns.programs:
            pid = "program_" + os.urandom(6).hex()
    elif not isinstance(pid, str) or not pid:
        raise ValueError("create_program: id must be a non-empty string, got %r" % (pid,))
    elif pid in ns.programs and not replace:
        raise ValueError("create_program: program '%s' already exists in %s"
                         % (pid, ns.label))
    signature = normalize_signature(args.get("signature"), ptype)
    dspy = dspy_module()
    module = _build_dspy_module(dspy, signature, ptype) if dspy is not None else None
    return Program(pid, ptype, signature, module, copy.deepcopy(_spec_key(args)))


@command("configure_lm")
def configure_lm(args, ctx):
    args = _args(args, "configure_lm")
    ns = _namespace(ctx, "configure_lm")
    if ns.lm is None or ns.lm_args != args:  # the same configuration again: a no-op
        _set_lm(ns, _make_lm(args, "configure_lm"), args)
    return {"configured": True, "provider": ns.lm.provider, "model": ns.lm.model}


@command("create_program")
def create_program(args, ctx):
    args = _args(args, "create_program")
    ns = _namespace(ctx, "create_program")
    replace = args.get("replace", False)
    if not isinstance(replace, bool):
        raise ValueError("create_program: replace must be true or false, got %r" % (replace,))
    p = _build_program(ns, args, replace)
    ns.programs[p.program_id] = p
    return {"program_id": p.program_id, "type": p.type, "signature": p.signature}


@command("execute_program")
def execute_program(args, ctx):
    args = _args(args, "execute_program")
    ns = _namespace(ctx, "execute_program", create=args.get("restore") is not None)
    p, restored = _program(ns, args, "execute_program")
    inputs = args.get("inputs")
    if inputs is None:
        inputs = {}
    if not isinstance(inputs, dict):
        raise ValueError("execute_program: inputs must be a map, got %s"
                         % type(inputs).__name__)
    expected = [f["name"] for f in p.signature["inputs"]]
    missing = [n for n in expected if n not in inputs]
    unknown = [n for n in inputs if n not in expected]
    if missing or unknown:
        parts = []
        if missing:
            parts.append("missing input(s) %s" % ", ".join("'%s'" % n for n in missing))
        if unknown:
            parts.append("unknown input(s) %s" % ", ".join("'%s'" % n for n in unknown))
        raise ValueError("execute_program: %s for program '%s' (expects: %s)"
                         % ("; ".join(parts), p.program_id, ", ".join(expected)))
    lm = ns.lm if ns.lm is not None else _lm.DummyLM()
    if p.module is not None:
        dspy = dspy_module()
        dspy_lm = ns.dspy_lm if ns.lm is not None else _dspy_dummy(dspy, lm)
        outputs, usage = _run_dspy(dspy, p, dspy_lm, lm, inputs)
    else:
        outputs, usage = lm.run(p.signature, inputs, p.type == "chain_of_thought")
    p.executions += 1
    result = {"program_id": p.program_id, "outputs": outputs, "provider": lm.provider,
              "model": lm.model}
    if usage:
        result["usage"] = usage
    return _with_restored(result, restored)


@command("list_programs")
def list_programs(args, ctx):
    ns = _namespace(ctx, "list_programs", create=False)
    return {"programs": [{"program_id": p.program_id, "type": p.type}
                         for p in ns.programs.values()]}


@command("delete_program")
def delete_program(args, ctx):
    args = _args(args, "delete_program")
    ns = _namespace(ctx, "delete_program", create=args.get("restore") is not None)
    p, restored = _program(ns, args, "delete_program")
    del ns.programs[p.program_id]
    return _with_restored({"deleted": p.program_id}, restored)


@command("get_program_info")
def get_program_info(args, ctx):
    args = _args(args, "get_program_info")
    ns = _namespace(ctx, "get_program_info", create=args.get("restore") is not None)
    p, restored = _program(ns, args, "get_program_info")
    return _with_restored({"program_id": p.program_id, "type": p.type,
                           "signature": p.signature, "executions": p.executions,
                           "created_at": p.created_at,
                           "engine": "dspy" if p.module is not None else "builtin"}, restored)


def _with_restored(result, restored):
    """``restored`` is in the result when the request carried ``restore``."""
    if restored is not None:
        result["restored"] = restored
    return result


# Import DSPy now, at worker start (the module is preloaded by dspy_bridge.py in
# the main thread, before the ``ready`` notice): ~0.7 s here instead of inside the
# first request, and the one ``dspy.configure`` happens in the main thread.
_probe()
