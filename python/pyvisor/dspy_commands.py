"""DSPy commands: configure_lm, create_program, execute_program, list_programs,
delete_program, get_program_info.

Namespaces: in ``pool-worker`` mode every command needs the request's
``session`` and works in that session's namespace, stored in the session's
dict, so ``cleanup_session`` frees its programs and LM configuration. In
``standalone`` mode there is one global namespace and ``session`` is ignored.

Engines: when ``import dspy`` works (and ``PYVISOR_DSPY`` is not ``off``),
``create_program`` builds a real ``dspy.Predict`` / ``dspy.ChainOfThought``
module and an ``openai`` LM is a ``dspy.LM``. Otherwise a built-in signature
runner gives the same commands and result shapes. The ``dummy`` provider is
always served by the built-in deterministic runner so its results are the same
with or without dspy. With no ``configure_lm``, a namespace uses the dummy LM.

``PYVISOR_DSPY``: ``auto`` (default: use dspy if importable), ``off`` (never
import it), ``require`` (fail the command if it cannot be imported).
"""

import os
import time

from .registry import command, on_cleanup, on_stats
from . import lm as _lm
from .lm import LMError

__all__ = ["SessionRequiredError", "ProgramNotFoundError", "LMError", "STATE_KEY"]

#: Key of the DSPy namespace inside a session's dict.
STATE_KEY = "__pyvisor_dspy__"
PROGRAM_TYPES = ("predict", "chain_of_thought")


class SessionRequiredError(ValueError):
    """A DSPy command arrived without a session in pool-worker mode."""


class ProgramNotFoundError(LookupError):
    """No program with that id in the namespace."""

    def __str__(self):  # LookupError would quote the message like KeyError
        return self.args[0] if self.args else ""


# -- dspy probing -----------------------------------------------------------

_dspy_state = {"probed": False, "module": None, "error": None}


def dspy_module():
    """The ``dspy`` module when usable, else ``None`` (probed once)."""
    st = _dspy_state
    if st["probed"]:
        if st["module"] is None and st["error"] and _dspy_mode() == "require":
            raise ImportError("PYVISOR_DSPY=require but dspy is unusable: %s" % st["error"])
        return st["module"]
    st["probed"] = True
    mode = _dspy_mode()
    if mode == "off":
        return None
    try:
        import dspy  # noqa
        for attr in ("Predict", "ChainOfThought", "Signature", "InputField", "OutputField",
                     "LM", "context"):
            if not hasattr(dspy, attr):
                raise ImportError("dspy %s lacks dspy.%s (need dspy >= 2.5)"
                                  % (getattr(dspy, "__version__", "?"), attr))
        st["module"] = dspy
    except Exception as e:  # a broken install must not break the worker
        st["error"] = "%s: %s" % (type(e).__name__, e)
        if mode == "require":
            raise ImportError("PYVISOR_DSPY=require but dspy is unusable: %s" % st["error"])
    return st["module"]


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
    __slots__ = ("program_id", "type", "signature", "created_at", "executions", "module")

    def __init__(self, program_id, ptype, signature, module=None):
        self.program_id = program_id
        self.type = ptype
        self.signature = signature
        self.created_at = time.time()
        self.executions = 0
        self.module = module


class Namespace(object):
    __slots__ = ("label", "programs", "lm", "dspy_lm")

    def __init__(self, label):
        self.label = label
        self.programs = {}
        self.lm = None
        self.dspy_lm = None


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


def _program(ns, args, cmd):
    pid = args.get("program_id")
    if not isinstance(pid, str) or not pid:
        raise ValueError("%s: program_id must be a non-empty string, got %r" % (cmd, pid))
    p = ns.programs.get(pid)
    if p is None:
        raise ProgramNotFoundError("Program '%s' not found in %s" % (pid, ns.label))
    return p


@on_cleanup
def _cleanup(session_id, session):
    ns = session.pop(STATE_KEY, None)
    n = len(ns.programs) if ns is not None else 0
    if ns is not None:
        ns.programs.clear()
        ns.lm = ns.dspy_lm = None
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


def _dspy_lm_for(dspy, ns):
    """A dspy.LM matching the namespace's openai configuration (cached)."""
    if ns.dspy_lm is None:
        cfg = ns.lm
        model = cfg.model if "/" in cfg.model else "openai/" + cfg.model
        kw = {"api_base": cfg.base_url, "timeout": cfg.timeout_s}
        if cfg.api_key:
            kw["api_key"] = cfg.api_key
        if cfg.temperature is not None:
            kw["temperature"] = cfg.temperature
        if cfg.max_tokens is not None:
            kw["max_tokens"] = cfg.max_tokens
        ns.dspy_lm = dspy.LM(model, **kw)
    return ns.dspy_lm


def _plain(v):
    if v is None or isinstance(v, (str, int, float, bool, bytes)):
        return v
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return str(v)


# -- commands ---------------------------------------------------------------

@command("configure_lm")
def configure_lm(args, ctx):
    args = _args(args, "configure_lm")
    ns = _namespace(ctx, "configure_lm")
    lm = _lm.make_lm(args, "configure_lm")
    ns.lm = lm
    ns.dspy_lm = None
    return {"configured": True, "provider": lm.provider, "model": lm.model}


@command("create_program")
def create_program(args, ctx):
    args = _args(args, "create_program")
    ns = _namespace(ctx, "create_program")
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
    elif pid in ns.programs:
        raise ValueError("create_program: program '%s' already exists in %s"
                         % (pid, ns.label))
    signature = normalize_signature(args.get("signature"), ptype)
    dspy = dspy_module()
    module = _build_dspy_module(dspy, signature, ptype) if dspy is not None else None
    ns.programs[pid] = Program(pid, ptype, signature, module)
    return {"program_id": pid, "type": ptype, "signature": signature}


@command("execute_program")
def execute_program(args, ctx):
    args = _args(args, "execute_program")
    ns = _namespace(ctx, "execute_program", create=False)
    p = _program(ns, args, "execute_program")
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
    reasoning = p.type == "chain_of_thought"
    if lm.provider != "dummy" and p.module is not None:
        dspy = dspy_module()
        try:
            with dspy.context(lm=_dspy_lm_for(dspy, ns)):
                pred = p.module(**inputs)
        except Exception as e:
            raise LMError("dspy program '%s' failed: %s: %s"
                          % (p.program_id, type(e).__name__, e)) from e
        outputs = {}
        if reasoning:
            r = getattr(pred, "reasoning", None)
            if r is None:
                r = getattr(pred, "rationale", "")
            outputs["reasoning"] = _plain(r)
        for f in p.signature["outputs"]:
            outputs[f["name"]] = _plain(getattr(pred, f["name"], None))
    else:
        outputs = lm.complete(p.signature, inputs, reasoning)
    p.executions += 1
    return {"program_id": p.program_id, "outputs": outputs, "provider": lm.provider,
            "model": lm.model}


@command("list_programs")
def list_programs(args, ctx):
    ns = _namespace(ctx, "list_programs", create=False)
    return {"programs": [{"program_id": p.program_id, "type": p.type}
                         for p in ns.programs.values()]}


@command("delete_program")
def delete_program(args, ctx):
    args = _args(args, "delete_program")
    ns = _namespace(ctx, "delete_program", create=False)
    p = _program(ns, args, "delete_program")
    del ns.programs[p.program_id]
    return {"deleted": p.program_id}


@command("get_program_info")
def get_program_info(args, ctx):
    args = _args(args, "get_program_info")
    ns = _namespace(ctx, "get_program_info", create=False)
    p = _program(ns, args, "get_program_info")
    return {"program_id": p.program_id, "type": p.type, "signature": p.signature,
            "executions": p.executions, "created_at": p.created_at,
            "engine": "dspy" if p.module is not None else "builtin"}
