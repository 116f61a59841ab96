"""Namespaces and programs of the DSPy commands (see :mod:`pyvisor.dspy_commands`):
signature validation, building a program (with an optional state), and the
``restore`` argument that makes a worker's namespace match the host's spec.

Thread safety: a namespace's changes (its LM, creating, replacing, deleting a
program, loading a state) happen under the namespace's lock, each after
everything was validated and built; a running call reads a program's module
once, so it runs with one whole module even if another call swaps it.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from . import dspy_engine as _engine
from . import dspy_state as _state
from .lm import LM

if TYPE_CHECKING:
    from .registry import Context

#: ``(type, signature, state_rev)`` of a create_program spec: what restore compares.
SpecKey = Tuple[Any, Any, Any]

#: Key of the DSPy namespace inside a session's dict.
STATE_KEY = "__pyvisor_dspy__"
PROGRAM_TYPES = ("predict", "chain_of_thought")

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

    def __str__(self) -> str:  # LookupError would quote the message like KeyError
        return str(self.args[0]) if self.args else ""


class Program(object):
    __slots__ = ("program_id", "type", "signature", "created_at", "executions", "module",
                 "spec", "demos", "instructions")

    program_id: str
    type: str
    signature: Dict[str, Any]
    created_at: float
    executions: int
    module: Any
    spec: Optional[SpecKey]
    demos: List[Dict[str, Any]]
    instructions: Optional[str]

    def __init__(self, program_id: str, ptype: str, signature: Dict[str, Any],
                 module: Any = None, spec: Optional[SpecKey] = None) -> None:
        self.program_id = program_id
        self.type = ptype
        self.signature = signature
        self.created_at = time.time()
        self.executions = 0
        self.module = module  # the dspy module (None: the built-in runner)
        # (type, signature, state_rev) as sent: what restore.program is compared with
        self.spec = spec
        self.demos = []          # the built-in runner's demos (flat maps of field values)
        self.instructions = None  # the built-in runner's instructions from a state


class Namespace(object):
    __slots__ = ("label", "programs", "lm", "lm_args", "dspy_lm", "lock")

    label: str
    programs: Dict[str, Program]
    lm: Optional[LM]
    lm_args: Optional[Dict[str, Any]]
    dspy_lm: Any
    lock: threading.RLock

    def __init__(self, label: str) -> None:
        self.label = label
        self.programs = {}
        self.lm = None        # the built-in LM object (its provider/model label the results)
        self.lm_args = None   # the configure_lm args that built ``lm``
        self.dspy_lm = None   # the session's dspy.LM / DummyLM when dspy is in use
        self.lock = threading.RLock()


_global = Namespace("the standalone namespace")
_counter_lock = threading.Lock()


def count_execution(p: Program) -> None:
    with _counter_lock:
        p.executions += 1


def namespace(ctx: Context, cmd: str, create: bool = True) -> Namespace:
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
    ns: Optional[Namespace] = s.get(STATE_KEY)
    if ns is None:
        # setdefault: two calls of a new session on two threads get one namespace
        ns = s.setdefault(STATE_KEY, Namespace("session '%s'" % sid))
    return ns


def check_args(args: Any, cmd: str) -> Dict[str, Any]:
    if args is None:
        return {}
    if not isinstance(args, dict):
        raise ValueError("%s: args must be a map, got %s" % (cmd, type(args).__name__))
    return args


def program_id(args: Dict[str, Any], cmd: str) -> str:
    pid = args.get("program_id")
    if not isinstance(pid, str) or not pid:
        raise ValueError("%s: program_id must be a non-empty string, got %r" % (cmd, pid))
    return pid


def state_rev(args: Dict[str, Any], cmd: str, where: str = "state_rev") -> Optional[int]:
    rev = args.get("state_rev")
    if rev is not None and (isinstance(rev, bool) or not isinstance(rev, int) or rev < 0):
        raise ValueError("%s: %s must be an integer >= 0, got %r" % (cmd, where, rev))
    return rev


def _restore_args(args: Dict[str, Any], pid: str,
                  cmd: str) -> Tuple[Optional[Dict[str, Any]], Dict[str, Any]]:
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


def spec_key(args: Dict[str, Any]) -> SpecKey:
    ptype = args.get("type")
    return ("predict" if ptype is None else ptype, args.get("signature"), args.get("state_rev"))


def resolve(ns: Namespace, args: Dict[str, Any], cmd: str) -> Tuple[Program, Optional[bool]]:
    """The program ``args`` names, and whether ``args["restore"]`` had to (re)make
    it or the namespace's LM. Without ``restore``, a missing program is a
    ProgramNotFoundError. With it, everything is validated (and built) before
    anything changes, so a failing restore leaves the namespace as it was: the
    LM is (re)made when the namespace has none or another configuration, the
    program when it is missing or was made from another spec (type, signature,
    state_rev), with ``restore.program.state`` loaded."""
    pid = program_id(args, cmd)
    if args.get("restore") is None:
        p = ns.programs.get(pid)
        if p is None:
            raise ProgramNotFoundError("Program '%s' not found in %s" % (pid, ns.label))
        return p, None
    lm_args, prog = _restore_args(args, pid, cmd)
    with ns.lock:
        p = ns.programs.get(pid)
        made = None
        if lm_args is not None and not (ns.lm is not None and ns.lm_args == lm_args):
            made = _engine.make_lm(lm_args, "configure_lm")
        fresh = None
        if p is None or p.spec != spec_key(prog):
            fresh = build_program(ns, prog, replace=True)
        if made is not None and lm_args is not None:  # made from lm_args
            set_lm(ns, made, lm_args)
        if fresh is not None:
            p = ns.programs[pid] = fresh
        assert p is not None  # there, or just made
        return p, made is not None or fresh is not None


def set_lm(ns: Namespace, made: Tuple[LM, Any], lm_args: Dict[str, Any]) -> None:
    cfg, dspy_lm = made
    with ns.lock:
        if ns.dspy_lm is not None and ns.dspy_lm is not dspy_lm:
            _engine.close_dspy_lm(ns.dspy_lm)
        ns.lm = cfg
        ns.lm_args = copy.deepcopy(lm_args)
        ns.dspy_lm = dspy_lm


def session_lm(ns: Namespace) -> Tuple[LM, Any]:
    """``(built-in LM, dspy LM or None)`` of a call: the namespace's, or a fresh
    default dummy when the session configured none."""
    with ns.lock:
        lm, dspy_lm = ns.lm, ns.dspy_lm
    if lm is None:
        lm = _lm_default()
        dspy = _engine.dspy_module()
        dspy_lm = _engine.dummy_lm(dspy, lm) if dspy is not None else None
    return lm, dspy_lm


def _lm_default() -> LM:
    from .lm import DummyLM
    return DummyLM()


# -- signatures ---------------------------------------------------------------

def _reserved_reason(name: str, ptype: str) -> Optional[str]:
    if name in PREDICT_RESERVED:
        if name in ("self", "completions"):
            return "dspy.Predict's call has a parameter of that name"
        return "dspy.Predict takes '%s' as its own keyword argument" % name
    if name in PYDANTIC_RESERVED:
        return "it names an attribute of dspy.Signature (a pydantic model)"
    if name.startswith("model_"):
        return "names starting with 'model_' are pydantic's"
    return None


def normalize_signature(sig: Any, ptype: str, cmd: str = "create_program") -> Dict[str, Any]:
    """Validate a wire signature; return ``{inputs, outputs, instructions}``
    with every field as ``{name, description}``."""
    if sig is None:
        raise ValueError("%s: signature is required" % cmd)
    if not isinstance(sig, dict):
        raise ValueError("%s: signature must be a map with inputs and outputs, got %s"
                         % (cmd, type(sig).__name__))
    seen: Dict[str, str] = {}
    out: Dict[str, Any] = {}
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


# -- building -----------------------------------------------------------------

def build_program(ns: Namespace, args: Dict[str, Any], replace: bool = False) -> Program:
    """Validate create_program ``args`` (``state`` and ``state_rev`` included);
    return the new Program (not yet stored), its state loaded. The error
    messages are create_program's, whoever calls."""
    cmd = "create_program"
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
    state_rev(args, cmd)
    dspy = _engine.dspy_module()
    module = _engine.build_module(dspy, signature, ptype) if dspy is not None else None
    p = Program(pid, ptype, signature, module, copy.deepcopy(spec_key(args)))
    state = args.get("state")
    if state is not None:
        _state.apply_state(dspy, p, state, cmd)
    return p


def program_info(p: Program) -> Dict[str, Any]:
    return {"program_id": p.program_id, "type": p.type, "signature": p.signature,
            "executions": p.executions, "created_at": p.created_at,
            "engine": "dspy" if p.module is not None else "builtin",
            "demos": _state.demo_count(p)}


def set_state_rev(p: Program, rev: Optional[int]) -> None:
    """Record that program ``p`` now has the state of revision ``rev`` (when given)."""
    if rev is not None:
        spec = p.spec
        assert spec is not None  # every program is built with its spec
        p.spec = (spec[0], spec[1], rev)


def with_restored(result: Dict[str, Any], restored: Optional[bool]) -> Dict[str, Any]:

    """``restored`` is in the result when the request carried ``restore``."""
    if restored is not None:
        result["restored"] = restored
    return result
