"""A drop-in OpenAI client that records every LLM call of a real agent, and applies the plan's warm-ups.

Use it where the agent builds its client::

    from executor.tracing import TracingOpenAI
    client = TracingOpenAI(base_url="http://127.0.0.1:8000/v1", api_key="EMPTY", plan=compile_result)
    agent = DocumentProcessor(client, model)          # unchanged agent code
    ...
    client.tracer.records                             # one TraceRecord per request

`TracingOpenAI` / `AsyncTracingOpenAI` subclass the SDK's `OpenAI` / `AsyncOpenAI`, so everything the
agent does with a client works; only `chat.completions.create` and `completions.create` are wrapped.
For each request the tracer keeps the flattened prompt (chat messages in the chat template's role
order), the call site in the agent (file:line, matched to the compiled call id), the latency and,
when streamed, the time to the first chunk, and the prompt's cached tokens:

- from `usage.prompt_tokens_details.cached_tokens` when the server reports it (vLLM does with
  `--enable-prompt-tokens-details`);
- otherwise, for the synchronous client, from the server's own counters (`vllm:prefix_cache_hits`)
  read right before and after the call: exact, because a synchronous agent has one call in flight;
- otherwise left empty (concurrent async calls cannot be told apart in a global counter).

Warm-ups: with a `plan` (a `CompileResult`), the first call from a call site that has a warm-up in
the plan first sends the warm-up's prefix — the concrete prompt cut where the plan's prefix ends —
as a prefill-only request (`max_tokens: 1`), once per distinct prefix. Concurrent async callers of the
same site wait for that one warm-up instead of each prefilling the prefix.

Priorities (`priority_hints=True`, for a vLLM started with `--scheduling-policy priority`): each request
carries the time its prefix group (the plan's warm-up prefix, made concrete) was first seen, so a group's
siblings are served together instead of behind other agents' requests (executor/hints.py).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import httpx

try:
    import openai
except ModuleNotFoundError as exc:  # pragma: no cover - a clear message instead of an import trace
    raise ModuleNotFoundError(
        "executor.tracing needs the `openai` package (pip install 'charter-tui[agents]')"
    ) from exc

from compiler.model import CompileResult, Warmup
from daemon.config import metrics_endpoint
from executor.hints import PriorityLine, with_priority

# A run-time value in the plan's warm-up text: `{template}`, `{param:f:doc}`, `{call:0}`, ... (a name or key
# without spaces, so literal JSON such as `{"a": 1}` in a prompt is not mistaken for one).
_PLACEHOLDER = re.compile(r"\{[A-Za-z_][^{}\s]*\}")
_THIS_FILE = __file__


@dataclass
class TraceRecord:
    seq: int
    kind: str  # "call" or "warmup"
    site: str  # "agent.py:42" in the agent, or "" when not found
    call_id: str | None  # the compiled call at that line, when a plan was given
    api: str  # "chat.completions" or "completions"
    prompt: str
    started_at: float
    latency_s: float = 0.0
    ttft_s: float | None = None
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    cached_source: str | None = None  # "usage", "counters" or None
    error: str | None = None
    # What the server tokenizes, for `charter-tui doctor --trace`: a chat call's messages (the server
    # applies its own chat template, which `prompt` only imitates), and the server it went to.
    messages: list[dict[str, str]] | None = None
    continue_final: bool = False  # a chat warm-up: the last message left open, no generation prompt
    replica: str = ""


@dataclass
class Tracer:
    """What a tracing client recorded, and the plan it applies."""

    plan: CompileResult | None = None
    records: list[TraceRecord] = field(default_factory=list)
    warmed: set[str] = field(default_factory=set)
    priorities: PriorityLine | None = None  # set: each request carries vLLM's `priority` (hints.py)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sent: int = 0

    def next_seq(self) -> int:
        """The request's number in the order sent (records are added as they finish, and concurrent
        calls finish out of order)."""
        with self._lock:
            self._sent += 1
            return self._sent - 1

    def add(self, record: TraceRecord) -> None:
        with self._lock:
            self.records.append(record)

    def call_at(self, sites: list[str]) -> str | None:
        """The compiled call a request comes from.

        First the caller's lines (innermost first) that lie inside a call site of the plan's file: a
        call made through a helper (`self.llm_extract(...)` -> `_complete` -> `.create`) is placed by
        the compiler at the helper call, which is on the stack of a synchronous agent. An async call
        run by `asyncio.gather` has only its own coroutine on the stack, so next the `.create` line
        itself is matched against the inner sites the compiler lists in `via`, when only one call
        goes through it.
        """
        if self.plan is None:
            return None
        plan_file = os.path.basename(self.plan.path)
        lines = []
        for site in sites:
            path, _, line_s = site.rpartition(":")
            if os.path.basename(path) == plan_file and line_s.isdigit():
                lines.append(int(line_s))
        for line in lines:
            for call in self.plan.calls:
                if call.line <= line <= call.end_line:
                    return call.id
        for line in lines:
            through = [c.id for c in self.plan.calls if any(v.split(":")[0] == str(line) for v in c.via)]
            if len(through) == 1:
                return through[0]
        return None

    def warmup_for(self, call_id: str | None) -> Warmup | None:
        if self.plan is None or call_id is None:
            return None
        return next((w for w in self.plan.plan.warmups if w.before_call == call_id), None)

    def hinted(self, call_id: str | None, kwargs: dict[str, Any], prompt: str) -> dict[str, Any]:
        """`kwargs` with the request's place in line, when priority hints are on."""
        if self.priorities is None:
            return kwargs
        warmup = self.warmup_for(call_id)
        group = warmup_prefix(warmup, prompt) if warmup is not None else None
        return with_priority(kwargs, self.priorities.place(group or None))

    def save(self, path: str | os.PathLike[str]) -> None:
        """The records as JSON lines, in the order sent, for `charter-tui doctor --trace`. The prompts are
        the agent's data: the file is the user's alone (0600), written whole or not at all."""
        from executor.trace_file import write_trace

        with self._lock:
            records = sorted(self.records, key=lambda r: r.seq)
        write_trace(path, records)

    def hit_share(self) -> float | None:
        known = [r for r in self.records if r.cached_tokens is not None and r.prompt_tokens]
        if not known:
            return None
        return sum(r.cached_tokens or 0 for r in known) / sum(r.prompt_tokens or 0 for r in known)


def plain_messages(messages: Any) -> list[dict[str, str]]:
    """Chat messages (dicts or SDK objects) as plain role/content text, content parts' text joined."""
    out = []
    for m in messages or ():
        role = m.get("role", "user") if isinstance(m, dict) else getattr(m, "role", "user")
        content = m.get("content", "") if isinstance(m, dict) else getattr(m, "content", "")
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        out.append({"role": str(role), "content": str(content or "")})
    return out


def flatten_messages(messages: Any) -> str:
    """Chat messages as the prefix cache sees them: role header, content, in order (the test kit's
    chat template, `<|role|>\\ncontent\\n`; other templates differ only in the header text)."""
    return "".join(f"<|{m['role']}|>\n{m['content']}" for m in plain_messages(messages))


def warmup_prefix(warmup: Warmup, prompt: str) -> str:
    """The concrete prompt cut where the plan's warm-up prefix ends.

    The plan's request has the literal text of the prefix with `{key}` placeholders for run-time
    values; the literal pieces are found in the prompt in order, and the prefix ends after the last
    piece found (a trailing placeholder has no known end, so the prefix stops before it).
    """
    template = str(
        warmup.request.get("prompt") or warmup.request.get("text_input") or warmup.request.get("text") or ""
    )
    pieces = _PLACEHOLDER.split(template)
    pos = end = 0
    for i, piece in enumerate(pieces):
        if not piece:
            continue
        found = prompt.startswith(piece, pos) and pos if i == 0 else prompt.find(piece, pos)
        if found is False or found < 0:
            break
        pos = end = found + len(piece)
    return prompt[:end]


def warmup_body(api: str, kwargs: dict[str, Any], prefix: str) -> tuple[str, dict[str, Any]] | None:
    """The prefill-only request that warms `prefix` of a call's prompt: (api, arguments).

    A completion is warmed with the prefix text itself. A chat call is warmed with a chat request of
    the messages the prefix covers, the last one cut where the prefix ends and left open
    (`continue_final_message`, vLLM's way to render a conversation prefix): the server renders them
    with its own chat template exactly as in the real request, so the blocks match whatever the
    template is, which the compiler's flattened `<|role|>` text would not.
    """
    body: dict[str, Any] = {"model": kwargs.get("model", ""), "max_tokens": 1, "temperature": 0.0}
    # The call's place in line, if it has one: a warm-up that jumped the queue would evict the prefixes
    # of the groups ahead of it.
    extra = {k: v for k, v in (kwargs.get("extra_body") or {}).items() if k == "priority"}
    if api != "chat.completions":
        return "completions", {**body, "prompt": prefix, **({"extra_body": extra} if extra else {})}
    warm: list[dict[str, Any]] = []
    used = 0
    for m in kwargs.get("messages") or ():
        whole = flatten_messages([m])
        if used + len(whole) <= len(prefix):
            warm.append(m)
            used += len(whole)
            continue
        header = len(whole) - len(flatten_messages([{**m, "content": ""}])) if isinstance(m, dict) else 0
        cut = len(prefix) - used - (len(whole) - header)  # chars of this message's content in the prefix
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str) and header and cut > 0:
            warm.append({**m, "content": content[:cut]})
            return "chat.completions", {
                **body,
                "messages": warm,
                "extra_body": {**extra, "continue_final_message": True, "add_generation_prompt": False},
            }
        break
    if not warm:
        return None
    return "chat.completions", {**body, "messages": warm, **({"extra_body": extra} if extra else {})}


def _caller_sites(limit: int = 12) -> list[str]:
    """file:line of the frames outside this module and the openai package, innermost first: the
    agent's `.create(...)` line, then the lines of the helpers that led to it (`llm_extract(...)`),
    which is where the compiler puts a call made through a wrapper."""
    sites: list[str] = []
    frame: FrameType | None = sys._getframe(1)
    marker = f"{os.sep}openai{os.sep}"
    while frame is not None and len(sites) < limit:
        name = frame.f_code.co_filename
        if name != _THIS_FILE and marker not in name and "asyncio" not in name:
            sites.append(f"{name}:{frame.f_lineno}")
        frame = frame.f_back
    return sites


def _prompt_of(api: str, kwargs: dict[str, Any]) -> str:
    if api == "chat.completions":
        return flatten_messages(kwargs.get("messages"))
    prompt = kwargs.get("prompt", "")
    return prompt if isinstance(prompt, str) else "".join(map(str, prompt))


def _messages_of(kwargs: dict[str, Any]) -> list[dict[str, str]] | None:
    return plain_messages(kwargs.get("messages")) or None


def _usage(response: Any) -> tuple[int | None, int | None]:
    usage = getattr(response, "usage", None)
    if usage is None:
        return None, None
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) if details is not None else None
    return getattr(usage, "prompt_tokens", None), cached


class _CounterProbe:
    """Reads `vllm:prefix_cache_hits_total` from the server's `/metrics` (sync client only)."""

    def __init__(self, base_url: str) -> None:
        self.url = metrics_endpoint(base_url)
        self.http = httpx.Client(timeout=5.0)

    def hits(self) -> float | None:
        from daemon.prom import parse

        try:
            expo = parse(self.http.get(self.url).text)
        except (httpx.HTTPError, ValueError):
            return None
        return expo.first("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total")


class _SyncCreate:
    def __init__(self, inner: Any, api: str, client: TracingOpenAI) -> None:
        self.inner, self.api, self.client = inner, api, client

    def create(self, **kwargs: Any) -> Any:
        return self.client._traced(self.inner.create, self.api, kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _Chat:
    def __init__(self, inner: Any, client: TracingOpenAI | AsyncTracingOpenAI, wrap: type) -> None:
        self.inner = inner
        self.completions = wrap(inner.completions, "chat.completions", client)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class TracingOpenAI(openai.OpenAI):
    def __init__(
        self,
        *args: Any,
        plan: CompileResult | None = None,
        counters: bool = True,
        priority_hints: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.tracer = Tracer(plan=plan, priorities=PriorityLine() if priority_hints else None)
        self._probe = _CounterProbe(str(self.base_url)) if counters else None
        self._traced_chat = _Chat(super().chat, self, _SyncCreate)
        self._traced_completions = _SyncCreate(super().completions, "completions", self)

    @property
    def chat(self) -> Any:
        return self._traced_chat

    @property
    def completions(self) -> Any:
        return self._traced_completions

    def _warm(self, call_id: str | None, api: str, kwargs: dict[str, Any], prompt: str) -> None:
        warmup = self.tracer.warmup_for(call_id)
        if warmup is None:
            return
        prefix = warmup_prefix(warmup, prompt)
        if not prefix or prefix in self.tracer.warmed:
            return
        self.tracer.warmed.add(prefix)
        planned = warmup_body(api, kwargs, prefix)
        if planned is None:
            return
        warm_api, body = planned
        record = TraceRecord(
            seq=self.tracer.next_seq(),
            kind="warmup",
            site="",
            call_id=call_id,
            api=warm_api,
            prompt=prefix,
            started_at=time.time(),
            messages=_messages_of(body),
            continue_final=bool((body.get("extra_body") or {}).get("continue_final_message")),
            replica=str(self.base_url),
        )
        start = time.perf_counter()
        try:
            endpoint = super().chat.completions if warm_api == "chat.completions" else super().completions
            response = endpoint.create(**body)
            record.prompt_tokens, record.cached_tokens = _usage(response)
            record.cached_source = "usage" if record.cached_tokens is not None else None
        except openai.OpenAIError as exc:  # a failed warm-up costs the cache hit, never the agent's call
            record.error = str(exc)[:300]
        record.latency_s = time.perf_counter() - start
        self.tracer.add(record)

    def _traced(self, create: Any, api: str, kwargs: dict[str, Any]) -> Any:
        sites = _caller_sites()
        site = sites[0] if sites else ""
        call_id = self.tracer.call_at(sites)
        prompt = _prompt_of(api, kwargs)
        kwargs = self.tracer.hinted(call_id, kwargs, prompt)
        self._warm(call_id, api, kwargs, prompt)
        record = TraceRecord(
            seq=self.tracer.next_seq(),
            kind="call",
            site=site,
            call_id=call_id,
            api=api,
            prompt=prompt,
            started_at=time.time(),
            messages=_messages_of(kwargs) if api == "chat.completions" else None,
            replica=str(self.base_url),
        )
        hits_before = self._probe.hits() if self._probe else None
        start = time.perf_counter()
        try:
            response = create(**kwargs)
        except openai.OpenAIError as exc:
            record.latency_s, record.error = time.perf_counter() - start, str(exc)[:300]
            self.tracer.add(record)
            raise
        if kwargs.get("stream"):
            return self._stream(response, record, start, hits_before)
        record.latency_s = time.perf_counter() - start
        self._finish(record, response, hits_before)
        return response

    def _stream(
        self, stream: Any, record: TraceRecord, start: float, hits_before: float | None
    ) -> Iterator[Any]:
        last = None
        for chunk in stream:
            if record.ttft_s is None and getattr(chunk, "choices", None):
                record.ttft_s = time.perf_counter() - start
            last = chunk
            yield chunk
        record.latency_s = time.perf_counter() - start
        self._finish(record, last, hits_before)

    def _finish(self, record: TraceRecord, response: Any, hits_before: float | None) -> None:
        record.prompt_tokens, record.cached_tokens = _usage(response)
        if record.cached_tokens is not None:
            record.cached_source = "usage"
        elif hits_before is not None and self._probe is not None:
            # vLLM counts the hits from its engine stats, a moment after the answer: poll briefly.
            deadline = time.monotonic() + 1.0
            while True:
                after = self._probe.hits()
                if after is None:
                    break
                if after > hits_before or time.monotonic() > deadline:
                    record.cached_tokens, record.cached_source = int(after - hits_before), "counters"
                    break
                time.sleep(0.02)
        self.tracer.add(record)


class _AsyncCreate:
    def __init__(self, inner: Any, api: str, client: AsyncTracingOpenAI) -> None:
        self.inner, self.api, self.client = inner, api, client

    async def create(self, **kwargs: Any) -> Any:
        return await self.client._traced(self.inner.create, self.api, kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class AsyncTracingOpenAI(openai.AsyncOpenAI):
    """The async twin: cached tokens come from `usage` only (calls overlap); warm-ups are shared
    between concurrent callers through one future per prefix."""

    def __init__(
        self, *args: Any, plan: CompileResult | None = None, priority_hints: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.tracer = Tracer(plan=plan, priorities=PriorityLine() if priority_hints else None)
        self._warmups: dict[str, asyncio.Future[None]] = {}
        self._traced_chat = _Chat(super().chat, self, _AsyncCreate)
        self._traced_completions = _AsyncCreate(super().completions, "completions", self)

    @property
    def chat(self) -> Any:
        return self._traced_chat

    @property
    def completions(self) -> Any:
        return self._traced_completions

    async def _warm(self, call_id: str | None, api: str, kwargs: dict[str, Any], prompt: str) -> None:
        warmup = self.tracer.warmup_for(call_id)
        if warmup is None:
            return
        prefix = warmup_prefix(warmup, prompt)
        planned = warmup_body(api, kwargs, prefix) if prefix else None
        if planned is None:
            return
        warm_api, body = planned
        if prefix in self._warmups:
            await asyncio.shield(self._warmups[prefix])
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._warmups[prefix] = future
        record = TraceRecord(
            seq=self.tracer.next_seq(),
            kind="warmup",
            site="",
            call_id=call_id,
            api=warm_api,
            prompt=prefix,
            started_at=time.time(),
            messages=_messages_of(body),
            continue_final=bool((body.get("extra_body") or {}).get("continue_final_message")),
            replica=str(self.base_url),
        )
        start = time.perf_counter()
        try:
            endpoint = super().chat.completions if warm_api == "chat.completions" else super().completions
            response = await endpoint.create(**body)
            record.prompt_tokens, record.cached_tokens = _usage(response)
            record.cached_source = "usage" if record.cached_tokens is not None else None
        except openai.OpenAIError as exc:
            record.error = str(exc)[:300]
        finally:
            record.latency_s = time.perf_counter() - start
            self.tracer.add(record)
            future.set_result(None)

    async def _traced(self, create: Any, api: str, kwargs: dict[str, Any]) -> Any:
        sites = _caller_sites()
        site = sites[0] if sites else ""
        call_id = self.tracer.call_at(sites)
        prompt = _prompt_of(api, kwargs)
        kwargs = self.tracer.hinted(call_id, kwargs, prompt)
        await self._warm(call_id, api, kwargs, prompt)
        record = TraceRecord(
            seq=self.tracer.next_seq(),
            kind="call",
            site=site,
            call_id=call_id,
            api=api,
            prompt=prompt,
            started_at=time.time(),
            messages=_messages_of(kwargs) if api == "chat.completions" else None,
            replica=str(self.base_url),
        )
        start = time.perf_counter()
        try:
            response = await create(**kwargs)
        except openai.OpenAIError as exc:
            record.latency_s, record.error = time.perf_counter() - start, str(exc)[:300]
            self.tracer.add(record)
            raise
        record.latency_s = time.perf_counter() - start
        if not kwargs.get("stream"):
            record.prompt_tokens, record.cached_tokens = _usage(response)
            record.cached_source = "usage" if record.cached_tokens is not None else None
        self.tracer.add(record)
        return response
