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

import copy
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
        self.lm = None
        self.lm_args = None  # the configure_lm args that built ``lm``
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
    ProgramNotFoundError. With it, everything is validated before anything
    changes, so a failing restore leaves the namespace as it was."""
    pid = _program_id(args, cmd)
    p = ns.programs.get(pid)
    if args.get("restore") is None:
        if p is None:
            raise ProgramNotFoundError("Program '%s' not found in %s" % (pid, ns.label))
        return p, None
    lm_args, prog = _restore_args(args, pid, cmd)
    lm = None
    if lm_args is not None and not (ns.lm is not None and ns.lm_args == lm_args):
        lm = _lm.make_lm(lm_args, "configure_lm")
    fresh = None
    if p is None or p.spec != _spec_key(prog):
        fresh = _build_program(ns, prog, replace=True)
    if lm is not None:
        _set_lm(ns, lm, lm_args)
    if fresh is not None:
        p = ns.programs[pid] = fresh
    return p, lm is not None or fresh is not None


@on_cleanup
def _cleanup(session_id, session):
    ns = session.pop(STATE_KEY, None)
    n = len(ns.programs) if ns is not None else 0
    if ns is not None:
        ns.programs.clear()
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

def _set_lm(ns, lm, lm_args):
    ns.lm = lm
    ns.lm_args = copy.deepcopy(lm_args)
    ns.dspy_lm = None


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
        _set_lm(ns, _lm.make_lm(args, "configure_lm"), args)
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
    return _with_restored({"program_id": p.program_id, "outputs": outputs,
                           "provider": lm.provider, "model": lm.model}, restored)


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
