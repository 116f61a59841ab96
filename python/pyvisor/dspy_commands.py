"""DSPy commands: configure_lm, create_program, execute_program, stream_program,
optimize_program, export_program, import_program, list_programs,
delete_program, get_program_info.

The parts: :mod:`pyvisor.dspy_engine` (importing DSPy, LMs, errors, usage),
:mod:`pyvisor.dspy_programs` (namespaces, signatures, ``restore``),
:mod:`pyvisor.dspy_state` (program state), :mod:`pyvisor.dspy_run`
(executions, streams, optimization). This module registers the commands.

Namespaces: in ``pool-worker`` mode every command needs the request's
``session`` and works in that session's namespace, stored in the session's
dict, so ``cleanup_session`` frees its programs and LM configuration. In
``standalone`` mode there is one global namespace and ``session`` is ignored.

Engines: when ``import dspy`` works (DSPy 3.x, which needs Python >= 3.10; and
``PYVISOR_DSPY`` is not ``off``), ``create_program`` builds a real
``dspy.Predict`` / ``dspy.ChainOfThought`` module and every execution runs it:
an ``openai`` configuration through a ``dspy.LM``, the ``dummy`` provider
through a ``dspy.utils.DummyLM`` that answers what the built-in dummy would
(demos included: an input exactly equal to a demo's inputs gets that demo's
outputs). Otherwise a built-in signature runner gives the same commands and
result shapes. With no ``configure_lm``, a namespace uses the dummy LM.

How DSPy is used (DSPy keeps process-wide state; a worker serves many sessions):

* DSPy is imported when this module is (at worker start, in the main thread,
  before the ``ready`` notice), not inside the first request; with it,
  ``dspy.configure(disable_history=True)`` is called once, there. Nothing
  calls ``dspy.configure`` again: DSPy refuses it from any other thread.
* Every run (execution, stream, optimization) is inside ``dspy.context(lm=<the
  session's LM>, disable_history=True, trace=[])``: the session's own LM, no
  prompt kept in DSPy's process-wide history (which ``cleanup_session`` could
  not clear), a trace list that dies with the call. Calls may run at once on
  several threads (``--concurrency``): nothing of a call lives in a global.
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
  ``code``, ``provider``, ``request_id`` and ``kind`` (the DSPy class name),
  all in its ``details``; a ``dspy.AdapterParseError`` becomes
  :class:`pyvisor.lm.AdapterParseError`.
* Token usage (``dspy.track_usage``) is in execute_program's (and
  stream_program's) result as ``usage`` when the LM reported some.

``PYVISOR_DSPY``: ``auto`` (default: use dspy if importable), ``off`` (never
import it), ``require`` (fail the command if it cannot be imported).

Program state: ``export_program`` gives ``{program_id, type, signature,
state}`` (see :mod:`pyvisor.dspy_state` for the state's shape: DSPy's
``dump_state`` without ``lm``, or the built-in ``{demos, instructions}``);
``import_program {program_id, state, state_rev?}`` loads one (validated and
built first: a refused state changes nothing). ``create_program`` takes
``state`` and ``state_rev`` too.

Self-sufficient calls: every command about a program takes an optional
``restore: {lm?: <configure_lm args>, program: <create_program args>}``. With
it, the call first makes this worker's namespace match: the LM is
(re)configured from ``restore.lm`` when the namespace has no LM or a different
one, and the program is created from ``restore.program`` when it is missing or
was created from a different spec: its ``type``, ``signature`` and
``state_rev`` (``restore.program.state`` is loaded into the new program; the
state itself is not compared: the host sends a new ``state_rev`` with a new
state). ``import_program`` and ``optimize_program`` with ``state_rev`` record
that revision, so the next restore carrying it rebuilds nothing. Then the
command proceeds, and its result carries ``restored`` (True when anything had
to be (re)made). A host that keeps the specs (the TypeScript ``PythonPool``)
can so send one call to any worker. ``configure_lm`` with the configuration a
namespace already has is a no-op.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Dict, Iterator, Optional, Tuple

from .registry import Context, command, on_cleanup, on_stats
from . import dspy_engine as _engine
from . import dspy_programs as _programs
from . import dspy_run as _run
from . import dspy_state as _state
from .dspy_engine import (MAX_MESSAGE, MIN_DSPY_MAJOR, NO_KEY_PLACEHOLDER,  # noqa: F401
                          dspy_model_name, dspy_module, engine_name)
from .dspy_programs import (PREDICT_RESERVED, PROGRAM_TYPES, PYDANTIC_RESERVED,  # noqa: F401
                            RESERVED_FIELD_NAMES, STATE_KEY, Namespace, Program,
                            ProgramNotFoundError, SessionRequiredError, normalize_signature)
from .lm import AdapterParseError, LMError

__all__ = ["SessionRequiredError", "ProgramNotFoundError", "LMError", "AdapterParseError",
           "STATE_KEY", "RESERVED_FIELD_NAMES", "dspy_module", "engine_name"]

_namespace = _programs.namespace
_args = _programs.check_args
_with_restored = _programs.with_restored


def _program_call(args: Any, ctx: Context,
                  cmd: str) -> Tuple[Dict[str, Any], Namespace, Program, Optional[bool]]:
    """``(args, namespace, program, restored)`` of a command about one program."""
    args = _args(args, cmd)
    ns = _namespace(ctx, cmd, create=args.get("restore") is not None)
    p, restored = _programs.resolve(ns, args, cmd)
    return args, ns, p, restored


@on_cleanup
def _cleanup(session_id: str, session: Dict[str, Any]) -> Dict[str, Any]:
    ns: Optional[Namespace] = session.pop(STATE_KEY, None)
    n = len(ns.programs) if ns is not None else 0
    if ns is not None:
        with ns.lock:
            ns.programs.clear()
            if ns.dspy_lm is not None:
                _engine.close_dspy_lm(ns.dspy_lm)
            ns.lm = ns.lm_args = ns.dspy_lm = None
    return {"freed_programs": n}


@on_stats
def _stats(sessions: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    n = len(_programs._global.programs)
    for s in list(sessions.values()):  # a copy: other threads may add sessions meanwhile
        ns = s.get(STATE_KEY)
        if ns is not None:
            n += len(ns.programs)
    return {"programs": n}


@command("configure_lm")
def configure_lm(args: Any, ctx: Context) -> Dict[str, Any]:
    args = _args(args, "configure_lm")
    ns = _namespace(ctx, "configure_lm")
    with ns.lock:
        if ns.lm is None or ns.lm_args != args:  # the same configuration again: a no-op
            _programs.set_lm(ns, _engine.make_lm(args, "configure_lm"), args)
        lm = ns.lm
        assert lm is not None  # set just now, or before
        return {"configured": True, "provider": lm.provider, "model": lm.model}


@command("create_program")
def create_program(args: Any, ctx: Context) -> Dict[str, Any]:
    args = _args(args, "create_program")
    ns = _namespace(ctx, "create_program")
    replace = args.get("replace", False)
    if not isinstance(replace, bool):
        raise ValueError("create_program: replace must be true or false, got %r" % (replace,))
    with ns.lock:
        p = _programs.build_program(ns, args, replace)
        ns.programs[p.program_id] = p
    return {"program_id": p.program_id, "type": p.type, "signature": p.signature}


@command("execute_program")
def execute_program(args: Any, ctx: Context) -> Dict[str, Any]:
    args, ns, p, restored = _program_call(args, ctx, "execute_program")
    inputs = _run.check_inputs(p, args.get("inputs"), "execute_program")
    return _with_restored(_run.execute(ns, p, inputs), restored)


@command("stream_program")
async def stream_program(args: Any, ctx: Context) -> AsyncIterator[Dict[str, Any]]:
    """An async generator: field chunks, then one result chunk (dspy_run)."""
    args, ns, p, restored = _program_call(args, ctx, "stream_program")
    inputs = _run.check_inputs(p, args.get("inputs"), "stream_program")
    chunks = _run.stream(ns, p, inputs, restored)
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        await chunks.aclose()


@command("optimize_program")
def optimize_program(args: Any, ctx: Context) -> Iterator[Dict[str, Any]]:
    """A generator: progress chunks, then one result chunk (dspy_run)."""
    args, ns, p, restored = _program_call(args, ctx, "optimize_program")
    yield from _run.optimize(ns, p, args, restored, ctx)


@command("export_program")
def export_program(args: Any, ctx: Context) -> Dict[str, Any]:
    args, ns, p, restored = _program_call(args, ctx, "export_program")
    with ns.lock:
        state = _state.export_state(p)
    return _with_restored({"program_id": p.program_id, "type": p.type,
                           "signature": p.signature, "state": state}, restored)


@command("import_program")
def import_program(args: Any, ctx: Context) -> Dict[str, Any]:
    cmd = "import_program"
    args, ns, p, restored = _program_call(args, ctx, cmd)
    if "state" not in args or args["state"] is None:
        raise ValueError("import_program: state is required (a map, as export_program "
                         "gives it)")
    rev = _programs.state_rev(args, cmd)
    with ns.lock:
        _state.apply_state(_engine.dspy_module(), p, args["state"], cmd)
        _programs.set_state_rev(p, rev)
        n = _state.demo_count(p)
    return _with_restored({"program_id": p.program_id, "imported": True, "demos": n}, restored)


@command("list_programs")
def list_programs(args: Any, ctx: Context) -> Dict[str, Any]:
    ns = _namespace(ctx, "list_programs", create=False)
    return {"programs": [{"program_id": p.program_id, "type": p.type}
                         for p in list(ns.programs.values())]}


@command("delete_program")
def delete_program(args: Any, ctx: Context) -> Dict[str, Any]:
    args, ns, p, restored = _program_call(args, ctx, "delete_program")
    with ns.lock:
        if ns.programs.get(p.program_id) is p:
            del ns.programs[p.program_id]
    return _with_restored({"deleted": p.program_id}, restored)


@command("get_program_info")
def get_program_info(args: Any, ctx: Context) -> Dict[str, Any]:
    args, ns, p, restored = _program_call(args, ctx, "get_program_info")
    return _with_restored(_programs.program_info(p), restored)


# Import DSPy now, at worker start (the module is preloaded by dspy_bridge.py in
# the main thread, before the ``ready`` notice): ~0.7 s here instead of inside the
# first request, and the one ``dspy.configure`` happens in the main thread.
_engine.probe()
