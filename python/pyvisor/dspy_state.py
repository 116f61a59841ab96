"""Program state: what ``export_program`` gives and ``import_program`` (and
``create_program`` / ``restore.program`` with ``state``) takes.

* Real DSPy: the module's ``dump_state()`` with every ``lm`` entry removed (the
  session's LM applies wherever the state is loaded), as plain wire values. A
  ``predict`` program's state is the Predict's own
  ``{traces, train, demos, signature: {instructions, fields: [{prefix,
  description}]}}`` (plus ``fields`` when DSPy has decision overrides); a
  ``chain_of_thought`` program's is ``{predict: <that>}``.
* The built-in runner: ``{demos: [...], instructions: str}``; a demo is a flat
  map of field values, as in DSPy's state.

Loading validates the whole state first and loads it into a freshly built
module, so a state that is refused leaves the program as it was.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Tuple

from . import dspy_engine as _engine

if TYPE_CHECKING:
    from .dspy_programs import Program

#: Keys of a Predict's state (DSPy 3.4's ``Predict.dump_state``); ``load_state``
#: would ``setattr`` any other key onto the Predict, so others are refused.
PREDICT_STATE_KEYS = ("traces", "train", "demos", "signature", "lm", "fields")
BUILTIN_STATE_KEYS = ("demos", "instructions")


def _keys(d: Iterable[str]) -> str:
    return ", ".join("'%s'" % k for k in d)


def _check_demos(demos: Any, where: str, cmd: str) -> None:
    if not isinstance(demos, list):
        raise ValueError("%s: %s must be a list of demos (maps of field values), got %s"
                         % (cmd, where, type(demos).__name__))
    for i, d in enumerate(demos):
        if not isinstance(d, dict):
            raise ValueError("%s: %s[%d] must be a map of field values, got %s"
                             % (cmd, where, i, type(d).__name__))
        bad = [k for k in d if not isinstance(k, str)]
        if bad:
            raise ValueError("%s: %s[%d] has a key that is not a string: %r"
                             % (cmd, where, i, bad[0]))


# -- export -------------------------------------------------------------------

def _strip_lm(state: Any) -> Any:
    """Remove the ``lm`` entry of every predictor state (maps holding a
    ``signature`` and ``demos``) in a dumped state."""
    if isinstance(state, dict):
        if "signature" in state and "demos" in state:
            state.pop("lm", None)
        else:
            for v in state.values():
                _strip_lm(v)
    return state


def export_state(p: Program, module: Any = None) -> Dict[str, Any]:
    """Program ``p``'s state as wire values (``module``: the one to dump, ``p.module``
    when not given)."""
    module = p.module if module is None else module
    if module is None:
        return {"demos": copy.deepcopy(p.demos), "instructions": builtin_instructions(p)}
    state: Dict[str, Any] = _engine.plain(_strip_lm(module.dump_state()))
    return state


def builtin_instructions(p: Program) -> str:
    if p.instructions is None:
        instructions: str = p.signature["instructions"]
        return instructions
    return p.instructions


# -- import -------------------------------------------------------------------

def _check_predictor_state(predictor: Any, state: Any, where: str, cmd: str) -> None:
    if not isinstance(state, dict):
        raise ValueError("%s: %s must be a map (a Predict's dump_state), got %s"
                         % (cmd, where, type(state).__name__))
    unknown = [k for k in state if k not in PREDICT_STATE_KEYS]
    if unknown:
        raise ValueError("%s: %s has unknown key(s) %s (a Predict's state has %s)"
                         % (cmd, where, _keys(unknown), _keys(PREDICT_STATE_KEYS[:4])))
    missing = [k for k in ("demos", "signature") if k not in state]
    if missing:
        raise ValueError("%s: %s lacks %s" % (cmd, where, _keys(missing)))
    _check_demos(state["demos"], where + ".demos", cmd)
    for key in ("traces", "train"):
        if key in state and not isinstance(state[key], list):
            raise ValueError("%s: %s.%s must be a list, got %s"
                             % (cmd, where, key, type(state[key]).__name__))
    if "fields" in state and not isinstance(state["fields"], dict):
        raise ValueError("%s: %s.fields must be a map, got %s"
                         % (cmd, where, type(state["fields"]).__name__))
    sig = state["signature"]
    w = where + ".signature"
    if not isinstance(sig, dict):
        raise ValueError("%s: %s must be a map {instructions, fields}, got %s"
                         % (cmd, w, type(sig).__name__))
    unknown = [k for k in sig if k not in ("instructions", "fields")]
    if unknown:
        raise ValueError("%s: %s has unknown key(s) %s (expected 'instructions', 'fields')"
                         % (cmd, w, _keys(unknown)))
    if not isinstance(sig.get("instructions"), str):
        raise ValueError("%s: %s.instructions must be a string, got %r"
                         % (cmd, w, sig.get("instructions")))
    fields = sig.get("fields")
    names = list(predictor.signature.fields)
    if not isinstance(fields, list):
        raise ValueError("%s: %s.fields must be a list of {prefix, description}, got %s"
                         % (cmd, w, "nothing" if fields is None else type(fields).__name__))
    if len(fields) != len(names):
        raise ValueError("%s: %s.fields has %d entr%s, the program's signature has %d "
                         "field(s) (%s)" % (cmd, w, len(fields), "y" if len(fields) == 1
                                             else "ies", len(names), ", ".join(names)))
    for i, f in enumerate(fields):
        if not isinstance(f, dict) or not isinstance(f.get("prefix"), str) or \
                not isinstance(f.get("description"), str):
            raise ValueError("%s: %s.fields[%d] (field '%s') must be a map with string "
                             "prefix and description, got %r" % (cmd, w, i, names[i], f))


def _predictor_states(dspy: Any, module: Any, state: Any,
                      cmd: str) -> List[Tuple[Any, Dict[str, Any], str]]:
    """``[(predictor, its state, where)]`` of ``state`` for ``module``, checked."""
    if isinstance(module, dspy.Predict):
        _check_predictor_state(module, state, "state", cmd)
        return [(module, state, "state")]
    if not isinstance(state, dict):
        raise ValueError("%s: state must be a map, got %s" % (cmd, type(state).__name__))
    named = list(module.named_parameters())
    names = [n for n, _ in named]
    unknown = [k for k in state if k not in names]
    missing = [n for n in names if n not in state]
    if unknown or missing:
        parts: List[str] = []
        if missing:
            parts.append("lacks %s" % _keys(missing))
        if unknown:
            parts.append("has unknown key(s) %s" % _keys(unknown))
        raise ValueError("%s: state %s (a %s program's state has %s)"
                         % (cmd, " and ".join(parts), type(module).__name__, _keys(names)))
    out = []
    for name, predictor in named:
        _check_predictor_state(predictor, state[name], "state." + name, cmd)
        out.append((predictor, state[name], "state." + name))
    return out


def load_dspy_state(dspy: Any, p: Program, state: Any, cmd: str) -> Any:
    """A new module for program ``p`` with ``state`` loaded (``p`` is untouched)."""
    module = _engine.build_module(dspy, p.signature, p.type)
    if not isinstance(state, dict):
        raise ValueError("%s: state must be a map, got %s" % (cmd, type(state).__name__))
    state = copy.deepcopy(state)
    for _, sub, _ in _predictor_states(dspy, module, state, cmd):
        sub["lm"] = None  # the session's LM applies; an lm in the state is ignored
    try:
        module.load_state(state)
    except Exception as e:
        raise ValueError("%s: load_state refused the state: %s: %s"
                         % (cmd, type(e).__name__, _engine.clip(str(e)))) from e
    return module


def load_builtin_state(p: Program, state: Any,
                       cmd: str) -> Tuple[List[Dict[str, Any]], Optional[str]]:
    """``(demos, instructions or None)`` from a built-in runner's state."""
    if not isinstance(state, dict):
        raise ValueError("%s: state must be a map, got %s" % (cmd, type(state).__name__))
    unknown = [k for k in state if k not in BUILTIN_STATE_KEYS]
    if unknown:
        raise ValueError("%s: state has unknown key(s) %s (the built-in runner's state is "
                         "{demos, instructions}; a state exported by a DSPy worker loads only "
                         "where DSPy runs)" % (cmd, _keys(unknown)))
    demos = state.get("demos")
    if demos is None:
        demos = []
    _check_demos(demos, "state.demos", cmd)
    instructions = state.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise ValueError("%s: state.instructions must be a string, got %r" % (cmd, instructions))
    return copy.deepcopy(demos), instructions


def apply_state(dspy: Any, p: Program, state: Any, cmd: str) -> None:
    """Load ``state`` into program ``p``: validated and built first, then swapped in."""
    if p.module is not None:
        p.module = load_dspy_state(dspy, p, state, cmd)
    else:
        p.demos, p.instructions = load_builtin_state(p, state, cmd)


def demo_count(p: Program) -> int:
    return _engine.demo_count(p.module) if p.module is not None else len(p.demos)
