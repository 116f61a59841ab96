"""Language-model backends of the built-in signature runner.

* :class:`DummyLM` -- deterministic, offline; for tests and demos.
* :class:`OpenAILM` -- any OpenAI-compatible chat-completions endpoint
  (``POST {base_url}/chat/completions``) over ``urllib``; standard library only.

Both implement ``complete(signature, inputs, reasoning, demos) -> dict`` where
``signature`` is the normalized signature dict (``inputs``/``outputs`` lists of
``{name, description}`` and ``instructions``), ``inputs`` maps input names to
values, ``reasoning`` asks for a leading ``reasoning`` output (chain of
thought) and ``demos`` is the program's list of demos (flat maps of field
values, as in DSPy's ``dump_state``), and ``run(...) -> (outputs, usage)``,
where ``usage`` is the token usage the endpoint reported (``None`` when it
reported none). Demos: the dummy answers an input exactly equal to a demo's
inputs with that demo's outputs (:func:`demo_answer`); the OpenAI-compatible
backend sends them as few-shot turns before the request. Both are safe to call
from several threads at once.

:func:`make_lm` validates ``configure_lm``'s arguments for both engines; the
real-DSPy engine (``pyvisor.dspy_commands``) builds its ``dspy.LM`` from the
object it returns.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

__all__ = ["LMError", "AdapterParseError", "DummyLM", "OpenAILM", "make_lm", "build_messages",
           "parse_outputs", "usage_counts", "demo_answer", "DEFAULT_OPENAI_BASE_URL",
           "DEFAULT_OPENAI_MODEL", "Signature", "Outputs", "Usage", "LM"]

#: A normalized signature: ``{inputs: [{name, description}], outputs: [...], instructions}``.
Signature = Dict[str, Any]
#: Output field name -> value.
Outputs = Dict[str, Any]
#: Token counts (``prompt_tokens``, ..., nested maps such as ``prompt_tokens_details``).
Usage = Dict[str, Any]
#: A program's demos: flat maps of field values (anything else is skipped).
Demos = Optional[Sequence[Any]]

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
DEFAULT_TIMEOUT_S = 60.0
PROVIDERS = ("dummy", "openai")


class LMError(RuntimeError):
    """The language model could not produce outputs.

    The structure follows DSPy 3.x's ``dspy.LMError`` (``dspy.utils.exceptions``),
    whichever engine raised it: ``status`` (the HTTP status, when there was
    one), ``retry_after`` (seconds the provider asked to wait, from a 429's
    ``Retry-After``), ``code`` (DSPy's stable error code: ``auth``,
    ``rate_limit``, ``server``, ``timeout``, ``transport``, ``invalid_request``,
    ``provider``, ...), ``provider``, ``request_id``, and ``kind``: the class
    name of the DSPy exception it reports (``LMAuthError``, ...), or ``None``
    from the built-in runner. :attr:`details` has the ones that are set.
    """

    def __init__(self, message: str, status: Optional[int] = None,
                 retry_after: Optional[float] = None, code: Optional[str] = None,
                 provider: Optional[str] = None, request_id: Optional[str] = None,
                 kind: Optional[str] = None) -> None:
        RuntimeError.__init__(self, message)
        self.status = status
        self.retry_after = retry_after
        self.code = code
        self.provider = provider
        self.request_id = request_id
        self.kind = kind

    @property
    def details(self) -> Dict[str, Any]:
        """``{status, retry_after, code, provider, request_id, kind}``, the ones
        that are set (plain values, for the wire)."""
        out: Dict[str, Any] = {}
        for key in ("status", "retry_after", "code", "provider", "request_id", "kind"):
            v = getattr(self, key, None)
            if v is not None:
                out[key] = v
        return out


class AdapterParseError(LMError):
    """The LM answered, but its reply could not be read as the signature's
    outputs (DSPy's ``dspy.AdapterParseError``; the built-in runner raises it
    for a reply that is not the JSON object it asked for)."""


def _status_code(status: Optional[int]) -> str:
    """DSPy's error code for an HTTP status."""
    if status in (401, 403):
        return "auth"
    if status == 402:
        return "billing"
    if status == 429:
        return "rate_limit"
    if status is not None and status >= 500:
        return "server"
    if status is not None and status >= 400:
        return "invalid_request"
    return "provider"


def _retry_after(headers: Any) -> Optional[float]:
    """Seconds from a ``Retry-After`` header (delta-seconds only), or None."""
    try:
        v = headers.get("Retry-After") if headers is not None else None
        return float(v) if v is not None and float(v) >= 0 else None
    except (TypeError, ValueError):
        return None


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v
    import json
    return json.dumps(v, sort_keys=True, ensure_ascii=False, default=repr)


def demo_answer(signature: Signature, inputs: Mapping[str, Any], reasoning: bool = False,
                demos: Demos = None) -> Optional[Outputs]:
    """The outputs of the first demo whose inputs are exactly ``inputs`` (every
    input field present and equal, as values) and which has every output field,
    or None. Chain of thought's ``reasoning`` is the demo's, or ``""``."""
    if not demos:
        return None
    in_names = [f["name"] for f in signature["inputs"]]
    out_names = [f["name"] for f in signature["outputs"]]
    for demo in demos:
        if not isinstance(demo, dict):
            continue
        if all(n in demo and n in inputs and demo[n] == inputs[n] for n in in_names) and \
                all(n in demo for n in out_names):
            out: Outputs = {}
            if reasoning:
                out["reasoning"] = demo.get("reasoning", "")
            for n in out_names:
                out[n] = demo[n]
            return out
    return None


def _excerpt(raw: Union[str, bytes, bytearray], limit: int = 300) -> str:
    if isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw).decode("utf-8", "replace")
    raw = raw.strip().replace("\n", " ")
    return raw if len(raw) <= limit else raw[:limit] + "..."


class DummyLM(object):
    """Deterministic fake LM.

    ``answers`` may be

    * a dict mapping an input value (as a string) to an outputs dict: the first
      input field, in signature order, whose value is a key selects the answer;
      the key ``"*"`` is the fallback;
    * a list of outputs dicts, used in rotation (call n gets item n % len);
    * absent: every output is derived from the inputs,
      ``"dummy <field> to: <input values joined by ' | '>"``, and chain of
      thought's reasoning is ``"dummy reasoning about: <same>"``.

    Output fields an answer leaves out are derived the same way. Before any of
    that, an input exactly equal to one of the program's demos' inputs is
    answered with that demo's outputs (:func:`demo_answer`; such a call does
    not advance the rotation).
    """

    provider = "dummy"

    def __init__(self, model: str = "dummy", answers: Any = None) -> None:
        self.model = model
        self.answers = answers
        self.calls = 0
        self._lock = threading.Lock()  # the rotation: one step per call, whatever the thread

    def complete(self, signature: Signature, inputs: Mapping[str, Any], reasoning: bool = False,
                 demos: Demos = None) -> Outputs:
        from_demo = demo_answer(signature, inputs, reasoning, demos)
        if from_demo is not None:
            return from_demo
        subject = " | ".join(_text(inputs.get(f["name"])) for f in signature["inputs"])
        picked: Any = None
        answers = self.answers
        with self._lock:
            n = self.calls
            self.calls += 1
        if isinstance(answers, list) and answers:
            picked = answers[n % len(answers)]
        elif isinstance(answers, dict):
            for f in signature["inputs"]:
                key = _text(inputs.get(f["name"]))
                if key in answers:
                    picked = answers[key]
                    break
            if picked is None:
                picked = answers.get("*")
        picked = picked or {}
        out: Outputs = {}
        if reasoning:
            out["reasoning"] = picked.get("reasoning", "dummy reasoning about: " + subject)
        for f in signature["outputs"]:
            name = f["name"]
            out[name] = picked[name] if name in picked else "dummy %s to: %s" % (name, subject)
        return out

    def run(self, signature: Signature, inputs: Mapping[str, Any], reasoning: bool = False,
            demos: Demos = None) -> Tuple[Outputs, Optional[Usage]]:
        """``(outputs, None)``: a dummy reports no token usage."""
        return self.complete(signature, inputs, reasoning, demos), None


def _user_turn(signature: Signature, values: Mapping[str, Any]) -> Dict[str, str]:
    import json
    return {"role": "user", "content": "Inputs (JSON):\n" + json.dumps(
        {f["name"]: values.get(f["name"]) for f in signature["inputs"]},
        ensure_ascii=False, default=repr, indent=1)}


def build_messages(signature: Signature, inputs: Mapping[str, Any], reasoning: bool = False,
                   demos: Demos = None) -> List[Dict[str, str]]:
    """Chat messages asking for the output fields as one JSON object; each demo
    (a map of field values) is a user turn with its inputs and an assistant
    turn with its outputs (the fields it has) before the request."""
    import json
    lines: List[str] = []
    instructions = signature.get("instructions") or ""
    lines.append(instructions.strip() or "Produce the output fields from the input fields.")
    lines.append("")
    lines.append("Input fields:")
    for f in signature["inputs"]:
        d = f.get("description") or ""
        lines.append("- %s%s" % (f["name"], ": " + d if d else ""))
    lines.append("Output fields:")
    keys: List[str] = []
    if reasoning:
        lines.append("- reasoning: think step by step to reach the outputs")
        keys.append("reasoning")
    for f in signature["outputs"]:
        d = f.get("description") or ""
        lines.append("- %s%s" % (f["name"], ": " + d if d else ""))
        keys.append(f["name"])
    lines.append("")
    lines.append("Reply with only a JSON object whose keys are exactly: %s."
                 % ", ".join(json.dumps(k) for k in keys))
    messages = [{"role": "system", "content": "\n".join(lines)}]
    for demo in demos or ():
        if not isinstance(demo, dict):
            continue
        messages.append(_user_turn(signature, demo))
        messages.append({"role": "assistant", "content": json.dumps(
            {k: demo[k] for k in keys if k in demo}, ensure_ascii=False, default=repr)})
    messages.append(_user_turn(signature, inputs))
    return messages


def _strip_fences(text: str) -> str:
    t = text.strip()
    if t.startswith("```"):
        nl = t.find("\n")
        t = t[nl + 1:] if nl >= 0 else t[3:]
        if t.rstrip().endswith("```"):
            t = t.rstrip()[:-3]
    return t.strip()


def parse_outputs(content: str, signature: Signature, reasoning: bool = False) -> Outputs:
    """Turn the model's reply text into the outputs dict."""
    import json
    names = [f["name"] for f in signature["outputs"]]
    text = _strip_fences(content)
    obj = None
    try:
        obj = json.loads(text)
    except ValueError:
        a, b = text.find("{"), text.rfind("}")
        if 0 <= a < b:
            try:
                obj = json.loads(text[a:b + 1])
            except ValueError:
                obj = None
    if isinstance(obj, dict):
        missing = [n for n in names if n not in obj]
        if not missing:
            out: Outputs = {}
            if reasoning:
                out["reasoning"] = obj.get("reasoning", "")
            for n in names:
                out[n] = obj[n]
            return out
        if len(names) != 1:
            raise AdapterParseError("LM reply lacks output field(s) %s: %s"
                          % (", ".join(repr(m) for m in missing), _excerpt(content)))
    elif len(names) != 1:
        raise AdapterParseError("LM reply is not a JSON object with the fields %s: %s"
                      % (", ".join(repr(n) for n in names), _excerpt(content)))
    # One output field: the whole text is the answer.
    out = {}
    if reasoning:
        out["reasoning"] = ""
    out[names[0]] = content.strip()
    return out


class OpenAILM(object):
    """OpenAI-compatible chat completions over urllib.

    ``cache`` and ``num_retries`` are kept for the real-DSPy engine (its
    ``dspy.LM(cache=..., num_retries=...)``); this runner never caches and never
    retries: one execution is one HTTP request.
    """

    provider = "openai"

    def __init__(self, model: str = DEFAULT_OPENAI_MODEL, base_url: str = DEFAULT_OPENAI_BASE_URL,
                 api_key: Optional[str] = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 temperature: Optional[float] = None, max_tokens: Optional[int] = None,
                 cache: bool = False, num_retries: int = 0) -> None:
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = float(timeout_s)
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.cache = bool(cache)
        self.num_retries = int(num_retries)
        self.calls = 0
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.base_url + "/chat/completions"

    def request_body(self, messages: List[Dict[str, str]]) -> Dict[str, Any]:
        body: Dict[str, Any] = {"model": self.model, "messages": messages}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        return body

    def chat(self, messages: List[Dict[str, str]]) -> str:
        """POST the messages; return the reply text."""
        return self.chat_with_usage(messages)[0]

    def chat_with_usage(self, messages: List[Dict[str, str]]) -> Tuple[str, Optional[Usage]]:
        """POST the messages; return ``(reply text, usage or None)``."""
        import json
        import socket
        import urllib.error
        import urllib.request
        url = self.url
        data = json.dumps(self.request_body(messages), ensure_ascii=False,
                          default=repr).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "User-Agent": "pyvisor-dspy-bridge"}
        if self.api_key:
            headers["Authorization"] = "Bearer " + self.api_key
        req = urllib.request.Request(url, data=data, headers=headers, method="POST")
        with self._lock:
            self.calls += 1
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            try:
                body = e.read()
            except Exception:
                body = b""
            reason = e.reason or _status_phrase(e.code)
            raise LMError("openai endpoint returned %d %s: %s"
                          % (e.code, reason, _excerpt(body) or "(empty body)"),
                          status=e.code, retry_after=_retry_after(e.headers),
                          code=_status_code(e.code), provider="openai") from None
        except urllib.error.URLError as e:
            r = e.reason
            if isinstance(r, (socket.timeout, TimeoutError)):
                raise LMError("openai endpoint timed out after %gs (%s)"
                              % (self.timeout_s, url), code="timeout",
                              provider="openai") from None
            if isinstance(r, ConnectionRefusedError):
                raise LMError("openai endpoint refused the connection (%s)" % url,
                              code="transport", provider="openai") from None
            raise LMError("openai endpoint unreachable (%s): %s" % (url, r),
                          code="transport", provider="openai") from None
        except (socket.timeout, TimeoutError):
            raise LMError("openai endpoint timed out after %gs (%s)"
                          % (self.timeout_s, url), code="timeout", provider="openai") from None
        except ConnectionError as e:
            raise LMError("openai endpoint connection failed (%s): %s" % (url, e),
                          code="transport", provider="openai") from None
        except OSError as e:
            raise LMError("openai endpoint request failed (%s): %s" % (url, e),
                          code="transport", provider="openai") from None
        try:
            payload = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise LMError("openai endpoint returned malformed JSON: %s"
                          % (_excerpt(raw) or "(empty body)"), status=200, code="provider",
                          provider="openai") from None
        try:
            content = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise LMError("openai endpoint reply has no choices[0].message.content: %s"
                          % _excerpt(raw), status=200, code="provider",
                          provider="openai") from None
        if not isinstance(content, str):
            raise LMError("openai endpoint reply content is %s, not text: %s"
                          % (type(content).__name__, _excerpt(raw)), status=200,
                          code="provider", provider="openai")
        return content, usage_counts(payload.get("usage") if isinstance(payload, dict) else None)

    def complete(self, signature: Signature, inputs: Mapping[str, Any], reasoning: bool = False,
                 demos: Demos = None) -> Outputs:
        return self.run(signature, inputs, reasoning, demos)[0]

    def run(self, signature: Signature, inputs: Mapping[str, Any], reasoning: bool = False,
            demos: Demos = None) -> Tuple[Outputs, Optional[Usage]]:
        content, usage = self.chat_with_usage(build_messages(signature, inputs, reasoning, demos))
        return parse_outputs(content, signature, reasoning), usage


def usage_counts(usage: Any) -> Optional[Usage]:
    """The token counts of an OpenAI-style ``usage`` map (the integer entries,
    and nested maps of them such as ``prompt_tokens_details``), or None when
    there are none."""
    if not isinstance(usage, dict):
        return None
    out: Usage = {}
    for k, v in usage.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            out[str(k)] = v
        elif isinstance(v, dict):
            inner = usage_counts(v)
            if inner:
                out[str(k)] = inner
    return out or None


def _status_phrase(code: int) -> str:
    try:
        from http import HTTPStatus
        return HTTPStatus(code).phrase
    except Exception:
        return ""


def _num(args: Mapping[str, Any], key: str, cmd: str,
         kind: Callable[[Any], Union[int, float]] = float,
         minimum: Optional[float] = None) -> Any:
    v = args.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and
                                                                   not isinstance(v, int)):
        raise ValueError("%s: %s must be %s, got %r"
                         % (cmd, key, "an integer" if kind is int else "a number", v))
    if minimum is not None and v < minimum:
        raise ValueError("%s: %s must be >= %s, got %r" % (cmd, key, minimum, v))
    return kind(v)


def make_lm(args: Any, cmd: str = "configure_lm") -> LM:
    """Build an LM from ``configure_lm`` args; validates them."""
    if not isinstance(args, dict):
        raise ValueError("%s: args must be a map" % cmd)
    provider = args.get("provider")
    if provider not in PROVIDERS:
        raise ValueError("%s: provider must be one of %s, got %r"
                         % (cmd, ", ".join(repr(p) for p in PROVIDERS), provider))
    model = args.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise ValueError("%s: model must be a non-empty string, got %r" % (cmd, model))
    cache = args.get("cache")
    if cache is not None and not isinstance(cache, bool):
        raise ValueError("%s: cache must be true or false, got %r" % (cmd, cache))
    num_retries = _num(args, "num_retries", cmd, int, 0)
    if provider == "dummy":
        answers = args.get("answers")
        if answers is not None:
            if isinstance(answers, dict):
                for k, v in answers.items():
                    if not isinstance(v, dict):
                        raise ValueError("%s: answers[%r] must be a map of output values, "
                                         "got %s" % (cmd, k, type(v).__name__))
            elif isinstance(answers, list):
                if not answers:
                    raise ValueError("%s: answers must not be an empty list" % cmd)
                for i, v in enumerate(answers):
                    if not isinstance(v, dict):
                        raise ValueError("%s: answers[%d] must be a map of output values, "
                                         "got %s" % (cmd, i, type(v).__name__))
            else:
                raise ValueError("%s: answers must be a map (input value -> outputs) or a "
                                 "list of outputs maps, got %s" % (cmd, type(answers).__name__))
        return DummyLM(model or "dummy", answers)
    base_url = args.get("base_url") or DEFAULT_OPENAI_BASE_URL
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ValueError("%s: base_url must be an http(s) URL, got %r" % (cmd, base_url))
    key_env = args.get("api_key_env") or "OPENAI_API_KEY"
    if not isinstance(key_env, str):
        raise ValueError("%s: api_key_env must be a string" % cmd)
    api_key = args.get("api_key")
    if api_key is not None and not isinstance(api_key, str):
        raise ValueError("%s: api_key must be a string" % cmd)
    if not api_key:
        api_key = os.environ.get(key_env) or None
    if not api_key and base_url.rstrip("/") == DEFAULT_OPENAI_BASE_URL:
        raise ValueError("%s: no API key for %s: set %s or pass api_key"
                         % (cmd, DEFAULT_OPENAI_BASE_URL, key_env))
    timeout_s = _num(args, "timeout_s", cmd, float)
    if timeout_s is not None and timeout_s <= 0:
        raise ValueError("%s: timeout_s must be > 0, got %r" % (cmd, timeout_s))
    temperature = _num(args, "temperature", cmd, float, 0)
    max_tokens = _num(args, "max_tokens", cmd, int, 1)
    return OpenAILM(model or DEFAULT_OPENAI_MODEL, base_url, api_key,
                    timeout_s or DEFAULT_TIMEOUT_S, temperature, max_tokens,
                    cache=bool(cache), num_retries=num_retries or 0)


#: A built-in LM backend (the ``lm`` of a namespace).
LM = Union[DummyLM, OpenAILM]
