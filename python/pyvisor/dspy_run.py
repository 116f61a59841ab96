"""Running programs (see :mod:`pyvisor.dspy_commands`): one execution, a
streamed execution (an async generator) and an optimization run (a generator
whose compile runs in a helper thread).

Chunks (the values the generators yield):

* ``stream_program``: ``{"type": "field", "field": name, "text": piece}`` for
  the output fields as they are produced (chain of thought's ``reasoning``
  first), then one ``{"type": "result", "result": <execute_program's result>}``.
  Every output field has at least one field chunk: when the LM did not stream
  a field (DSPy's DummyLM never streams), its whole text is one chunk before
  the result. The pieces of a field, joined, are its text.
* ``optimize_program``: ``{"type": "progress", "done": i, "total": n}`` as the
  trainset's examples are evaluated (``n`` = examples; a last progress chunk
  has ``done == total``), then one ``{"type": "result", "program_id", "demos":
  <count>, "state": <export_program's state>}``.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import re
import threading
from typing import (TYPE_CHECKING, Any, AsyncGenerator, Dict, Iterator, List, Mapping,
                    Optional, Set, Tuple)


from . import dspy_engine as _engine
from . import dspy_programs as _programs
from . import dspy_state as _state
from . import lm as _lm

if TYPE_CHECKING:
    from .dspy_programs import Namespace, Program
    from .registry import Context

#: A chunk of stream_program / optimize_program.
Chunk = Dict[str, Any]

#: How often a waiting optimize_program looks at ``ctx.cancelled`` (seconds).
CANCEL_POLL_S = 0.1


def check_inputs(p: Program, inputs: Any, cmd: str) -> Dict[str, Any]:
    if inputs is None:
        inputs = {}
    if not isinstance(inputs, dict):
        raise ValueError("%s: inputs must be a map, got %s" % (cmd, type(inputs).__name__))
    expected = [f["name"] for f in p.signature["inputs"]]
    missing = [n for n in expected if n not in inputs]
    unknown = [n for n in inputs if n not in expected]
    if missing or unknown:
        parts = []
        if missing:
            parts.append("missing input(s) %s" % ", ".join("'%s'" % n for n in missing))
        if unknown:
            parts.append("unknown input(s) %s" % ", ".join("'%s'" % n for n in unknown))
        raise ValueError("%s: %s for program '%s' (expects: %s)"
                         % (cmd, "; ".join(parts), p.program_id, ", ".join(expected)))
    return inputs


def _builtin_signature(p: Program) -> Dict[str, Any]:
    if p.instructions is None:
        return p.signature
    return dict(p.signature, instructions=p.instructions)


def _result(p: Program, lm: _lm.LM, outputs: Dict[str, Any],
            usage: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    result: Dict[str, Any] = {"program_id": p.program_id, "outputs": outputs, "provider": lm.provider,
              "model": lm.model}
    if usage:
        result["usage"] = usage
    return result


def execute(ns: Namespace, p: Program, inputs: Mapping[str, Any]) -> Dict[str, Any]:
    """One execution of program ``p`` with the session's LM: execute_program's
    result (without ``restored``)."""
    lm, dspy_lm = _programs.session_lm(ns)
    module = p.module
    if module is not None:
        outputs, usage = _engine.run(_engine.dspy_module(), p, module, dspy_lm, lm, inputs)
    else:
        outputs, usage = lm.run(_builtin_signature(p), inputs, p.type == "chain_of_thought",
                                p.demos)
    _programs.count_execution(p)
    return _result(p, lm, outputs, usage)


# -- stream_program -----------------------------------------------------------

def _text(v: Any) -> str:
    return "" if v is None else _lm._text(v)


def _pieces(text: str) -> List[str]:
    """``text`` word by word (each word with the whitespace before it)."""
    return [s for s in re.split(r"(?<=\s)(?=\S)", text) if s] or [text]


async def stream(ns: Namespace, p: Program, inputs: Mapping[str, Any],
                 restored: Optional[bool]) -> AsyncGenerator[Chunk, None]:
    """The chunks of one streamed execution (see the module doc)."""
    lm, dspy_lm = _programs.session_lm(ns)
    module = p.module
    if module is None:
        loop = asyncio.get_running_loop()
        outputs, usage = await loop.run_in_executor(
            None, lm.run, _builtin_signature(p), inputs, p.type == "chain_of_thought", p.demos)
        for name in _engine.output_names(p):
            for piece in _pieces(_text(outputs.get(name))):
                yield {"type": "field", "field": name, "text": piece}
    else:
        box: Dict[str, Any] = {}
        inner = _stream_dspy(p, module, dspy_lm, lm, inputs, box)
        try:
            async for chunk in inner:
                yield chunk
        finally:
            await inner.aclose()  # closed with this generator: its task is cancelled now
        outputs, usage = box["outputs"], box["usage"]
    _programs.count_execution(p)
    yield {"type": "result",
           "result": _programs.with_restored(_result(p, lm, outputs, usage), restored)}


async def _stream_dspy(p: Program, module: Any, dspy_lm: Any, runner: _lm.LM,
                       inputs: Mapping[str, Any],
                       box: Dict[str, Any]) -> AsyncGenerator[Chunk, None]:
    """``dspy.streamify`` with a StreamListener per output field, run in a task
    of its own (its ``dspy.context`` never spans this generator's yields, so it
    is right whichever task resumes the generator), its values passed on
    through a queue; the task is cancelled when the generator is closed."""
    dspy = _engine.dspy_module()
    names = _engine.output_names(p)
    q: asyncio.Queue[Tuple[Any, ...]] = asyncio.Queue()
    done = object()

    async def pump() -> None:
        try:
            from dspy.streaming import StreamResponse
            listeners = [dspy.streaming.StreamListener(signature_field_name=n) for n in names]
            pred = None
            with dspy.context(**_engine.call_settings(dspy, p, dspy_lm, runner)):
                with _engine.track_usage(dspy) as tracker:
                    program = dspy.streamify(module, stream_listeners=listeners,
                                             async_streaming=True, is_async_program=True)
                    async for v in program(**inputs):
                        if isinstance(v, StreamResponse):
                            await q.put(("field", v.signature_field_name, v.chunk))
                        elif isinstance(v, dspy.Prediction):
                            pred = v
            if pred is None:
                raise RuntimeError("dspy.streamify ended without a Prediction")
            await q.put((done, _engine.outputs_of(p, pred), _engine.usage_of(tracker, runner)))
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # the consumer must hear of any end of this task
            failure = _engine.lm_error(e, _engine.failure_prefix(p)) if isinstance(e, Exception) \
                else e
            q.put_nowait(("error", failure, e))
            if not isinstance(e, Exception):
                raise

    task = asyncio.ensure_future(pump())
    seen: Set[str] = set()
    try:
        while True:
            item = await q.get()
            if item[0] is done:
                _, outputs, usage = item
                break
            if item[0] == "error":
                if item[1] is item[2]:
                    raise item[1]
                raise item[1] from item[2]
            _, name, text = item
            if isinstance(text, str) and text and name in names:
                seen.add(name)
                yield {"type": "field", "field": name, "text": text}
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})  # its end, without raising its CancelledError here
    for name in names:
        if name not in seen:
            yield {"type": "field", "field": name, "text": _text(outputs.get(name))}
    box["outputs"], box["usage"] = outputs, usage


# -- optimize_program ---------------------------------------------------------

def _int_arg(args: Mapping[str, Any], key: str, default: int, minimum: int, cmd: str) -> int:
    v = args.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ValueError("%s: %s must be an integer >= %d, got %r" % (cmd, key, minimum, v))
    n: int = v
    return n


def check_trainset(p: Program, trainset: Any,
                   cmd: str) -> List[Tuple[Dict[str, Any], Dict[str, Any]]]:
    """``[(inputs, outputs)]`` of a wire trainset, every example checked against
    the program's signature (precise names of missing and unknown fields)."""
    if not isinstance(trainset, list) or not trainset:
        raise ValueError("%s: trainset must be a non-empty list of {inputs, outputs}, got %s"
                         % (cmd, "nothing" if trainset is None else
                            repr(trainset) if trainset == [] else type(trainset).__name__))
    in_names = [f["name"] for f in p.signature["inputs"]]
    out_names = [f["name"] for f in p.signature["outputs"]]
    out: List[Tuple[Dict[str, Any], Dict[str, Any]]] = []
    for i, ex in enumerate(trainset):
        where = "trainset[%d]" % i
        if not isinstance(ex, dict):
            raise ValueError("%s: %s must be a map {inputs, outputs}, got %s"
                             % (cmd, where, type(ex).__name__))
        unknown = [k for k in ex if k not in ("inputs", "outputs")]
        if unknown:
            raise ValueError("%s: %s has unknown key(s) %s (expected inputs, outputs)"
                             % (cmd, where, ", ".join("'%s'" % k for k in unknown)))
        problems: List[str] = []
        parts: List[Dict[str, Any]] = []
        for part, names, label in (("inputs", in_names, "input"),
                                   ("outputs", out_names, "output")):
            values = ex.get(part)
            if not isinstance(values, dict):
                raise ValueError("%s: %s.%s must be a map of field values, got %s"
                                 % (cmd, where, part, "nothing" if values is None
                                    else type(values).__name__))
            missing = [n for n in names if n not in values]
            extra = [k for k in values if k not in names]
            if missing:
                problems.append("missing %s(s) %s" % (label, ", ".join("'%s'" % n
                                                                      for n in missing)))
            if extra:
                problems.append("unknown %s(s) %s" % (label, ", ".join("'%s'" % str(n)
                                                                      for n in extra)))
            parts.append(values)
        if problems:
            raise ValueError("%s: %s: %s for program '%s' (inputs: %s; outputs: %s)"
                             % (cmd, where, "; ".join(problems), p.program_id,
                                ", ".join(in_names), ", ".join(out_names)))
        out.append((parts[0], parts[1]))
    return out


def optimize(ns: Namespace, p: Program, args: Dict[str, Any], restored: Optional[bool],
             ctx: Context, cmd: str = "optimize_program") -> Iterator[Chunk]:
    """The chunks of an optimization run of program ``p`` (see the module doc)."""
    examples = check_trainset(p, args.get("trainset"), cmd)
    max_boot = _int_arg(args, "max_bootstrapped_demos", 4, 0, cmd)
    max_labeled = _int_arg(args, "max_labeled_demos", 16, 0, cmd)
    max_rounds = _int_arg(args, "max_rounds", 1, 1, cmd)
    rev = _programs.state_rev(args, cmd)
    total = len(examples)
    if p.module is None:
        for i in range(total):
            yield {"type": "progress", "done": i + 1, "total": total}
        demos = [dict(inputs, **outputs) for inputs, outputs in examples[:max_labeled]]
        with ns.lock:
            _check_still_there(ns, p, cmd)
            p.demos = demos
            _programs.set_state_rev(p, rev)
            state = _state.export_state(p)
    else:
        box: Dict[str, Any] = {}
        yield from _optimize_dspy(ns, p, examples, max_boot, max_labeled, max_rounds, ctx, box)
        if "module" not in box:
            return  # cancelled: the program is left as it was
        with ns.lock:
            _check_still_there(ns, p, cmd)
            p.module = box["module"]
            _programs.set_state_rev(p, rev)
        state = box["state"]
    yield _programs.with_restored({"type": "result", "program_id": p.program_id,
                                   "demos": _state.demo_count(p), "state": state}, restored)


def _check_still_there(ns: Namespace, p: Program, cmd: str) -> None:
    if ns.programs.get(p.program_id) is not p:
        raise RuntimeError("%s: program '%s' was replaced or deleted in %s while it was "
                           "optimized; nothing changed" % (cmd, p.program_id, ns.label))


def _optimize_dspy(ns: Namespace, p: Program,
                   examples: List[Tuple[Dict[str, Any], Dict[str, Any]]], max_boot: int,
                   max_labeled: int, max_rounds: int, ctx: Context,
                   box: Dict[str, Any]) -> Iterator[Chunk]:
    """BootstrapFewShot in a helper thread (with this thread's contextvars);
    progress comes from its metric calls through a queue. Sets ``box["module"]``
    and ``box["state"]`` when it finished; a generator closed early (or a
    cancelled request) stops waiting and leaves the thread to finish alone."""
    dspy = _engine.dspy_module()
    lm, dspy_lm = _programs.session_lm(ns)
    in_names = [f["name"] for f in p.signature["inputs"]]
    out_names = [f["name"] for f in p.signature["outputs"]]
    trainset = [dspy.Example(**dict(inputs, **outputs)).with_inputs(*in_names)
                for inputs, outputs in examples]
    index = {id(ex): i for i, ex in enumerate(trainset)}
    total = len(trainset)
    q: queue.Queue[Tuple[Any, ...]] = queue.Queue()
    seen: Set[int] = set()

    def metric(example: Any, pred: Any, trace: Any = None) -> bool:
        ok = True
        for n in out_names:
            try:
                got = pred[n]
            except (KeyError, AttributeError, TypeError):
                ok = False
                break
            if str(example[n]).strip().lower() != str(got).strip().lower():
                ok = False
                break
        i = index.get(id(example))
        if i is not None and i not in seen:
            seen.add(i)
            q.put(("progress", len(seen)))
        return ok

    student = p.module.deepcopy()
    student._compiled = False  # the program may have been optimized before: start again

    def work() -> None:
        try:
            with dspy.context(**_engine.call_settings(dspy, p, dspy_lm, lm)):
                # max_errors: only when every attempt failed is the run a failure (DSPy
                # re-raises the last error then); otherwise failed examples are skipped.
                teleprompter = dspy.BootstrapFewShot(
                    metric=metric, max_bootstrapped_demos=max_boot,
                    max_labeled_demos=max_labeled, max_rounds=max_rounds,
                    max_errors=total * max_rounds)
                compiled = teleprompter.compile(student, trainset=trainset)
            state = _state.export_state(p, compiled)
            q.put(("done", compiled, state))
        except BaseException as e:
            q.put(("error", e))

    thread = threading.Thread(target=contextvars.copy_context().run, args=(work,),
                              name="pyvisor-optimize-%s" % p.program_id, daemon=True)
    thread.start()
    done = 0
    while True:
        try:
            item = q.get(timeout=CANCEL_POLL_S)
        except queue.Empty:
            if getattr(ctx, "cancelled", False):
                return  # the thread finishes alone; nobody swaps its module in
            continue
        if item[0] == "progress":
            done = item[1]
            yield {"type": "progress", "done": done, "total": total}
        elif item[0] == "error":
            e = item[1]
            raise _engine.lm_error(e, "optimize_program: BootstrapFewShot on program '%s' "
                                      "failed" % p.program_id) from e
        else:
            box["module"], box["state"] = item[1], item[2]
            break
    if done < total:
        yield {"type": "progress", "done": total, "total": total}
