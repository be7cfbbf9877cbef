"""Clients for the servers a benchmark runs against, timing every request from the client side.

- `VllmTarget`: the OpenAI-compatible `/v1/completions`, streamed, so time-to-first-token is the time
  to the first chunk that carries text; `stream_options.include_usage` brings back the prompt tokens
  and, when the server runs with `--enable-prompt-tokens-details`, `prompt_tokens_details.cached_tokens`.
  Requests use `temperature: 0` and `ignore_eos: true`: the output length is then exactly `max_tokens`,
  so naive and optimized runs do the same decode work and differ only in what the plan changes.
- `TritonTarget`: KServe v2 `POST /v2/models/<m>/generate` (non-streaming: the latency is also the
  time to the whole answer; TTFT is left empty rather than faked).

Both read `/metrics` (for `counters`) and say whether they can reset their prefix cache.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Protocol

import httpx

from executor.errors import CallFailed, CallTimeout, TargetDown

CONNECT_TIMEOUT_S = 5.0


@dataclass
class Outcome:
    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_tokens: int | None
    ttft_s: float | None
    latency_s: float
    prompt_ids: list[int] | None = None  # the server's own token ids, when it returns them
    output_ids: list[int] | None = None


class Target(Protocol):
    engine: str
    url: str
    model: str
    block_size: int | None

    async def complete(
        self,
        prompt: str | list[int],
        max_tokens: int,
        timeout_s: float,
        messages: list[dict[str, str]] | None = None,
    ) -> Outcome: ...
    async def metrics_text(self) -> str: ...
    async def reset_prefix_cache(self) -> bool: ...
    async def tokenize(
        self, text: str, messages: list[dict[str, str]] | None = None, continue_final: bool = False
    ) -> list[int] | None: ...
    async def aclose(self) -> None: ...


def _down(url: str, exc: Exception) -> TargetDown:
    return TargetDown(
        f"target {url} is not answering ({type(exc).__name__}: {exc or 'no detail'}); "
        "is the server running and the URL right?"
    )


class VllmTarget:
    engine = "vllm"

    def __init__(self, url: str, model: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.model = model or ""
        self.block_size: int | None = None
        self.cache_config: dict[str, str] = {}
        self._http = httpx.AsyncClient(
            base_url=self.url, timeout=httpx.Timeout(60.0, connect=CONNECT_TIMEOUT_S)
        )

    async def connect(self) -> VllmTarget:
        """Check the server answers, pick the served model, read the block size from `/metrics`."""
        try:
            models = (await self._http.get("/v1/models")).json()
        except (httpx.HTTPError, ValueError) as exc:
            raise _down(self.url, exc) from None
        # A model entry without a string id is not a model we could ask for by name.
        names = [
            m["id"] for m in models.get("data", []) if isinstance(m, dict) and isinstance(m.get("id"), str)
        ]
        if not names:
            raise TargetDown(f"target {self.url} serves no model (GET /v1/models is empty)")
        if self.model and self.model not in names:
            raise TargetDown(
                f"target {self.url} does not serve model {self.model!r}; it serves {', '.join(names)}"
            )
        self.model = self.model or names[0]
        from daemon.collectors import vllm as collector
        from daemon.prom import parse

        reading = collector.read(parse(await self.metrics_text()), time.time())
        self.cache_config = reading.info.get("cache_config", {})
        size = self.cache_config.get("block_size")
        self.block_size = int(size) if size and size.isdigit() else None
        return self

    async def complete(
        self,
        prompt: str | list[int],
        max_tokens: int,
        timeout_s: float,
        messages: list[dict[str, str]] | None = None,
    ) -> Outcome:
        """A completion of `prompt` (text, or token ids for a warm-up), or with `messages` a chat
        completion: the server applies its own chat template, as it does for the agent."""
        body: dict[str, object] = {
            "model": self.model,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
            # The exact token ids (prompt and generated) feed the block-level ceiling: vLLM also
            # caches the blocks of generated text, which a later prompt quoting it can hit.
            "return_token_ids": True,
        }
        if messages is not None:
            body["messages"] = messages
            path = "/v1/chat/completions"
        else:
            body["prompt"] = prompt
            path = "/v1/completions"
        start = time.perf_counter()
        try:
            return await asyncio.wait_for(self._stream(path, body, start), timeout_s)
        except TimeoutError:
            raise CallTimeout(f"no complete answer within {timeout_s:g} s") from None
        except httpx.TransportError as exc:
            raise _down(self.url, exc) from None

    async def _stream(self, path: str, body: dict[str, object], start: float) -> Outcome:
        ttft: float | None = None
        pieces: list[str] = []
        usage: dict[str, object] = {}
        prompt_ids: list[int] | None = None
        output_ids: list[int] = []
        async with self._http.stream("POST", path, json=body, timeout=None) as response:
            if response.status_code != 200:
                detail = (await response.aread()).decode(errors="replace")[:300]
                raise CallFailed(f"HTTP {response.status_code}: {detail}")
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    raise CallFailed(str(chunk["error"])[:300])
                if chunk.get("prompt_token_ids"):  # chat completions put them on the chunk
                    prompt_ids = list(chunk["prompt_token_ids"])
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta")
                    text = (delta.get("content") if isinstance(delta, dict) else choice.get("text")) or ""
                    # The first token, not the first visible text: a token can decode to nothing (a random
                    # model's, or half of a multi-byte character), and waiting for text counted the whole
                    # call as time to first token.
                    if ttft is None and (text or choice.get("token_ids")):
                        ttft = time.perf_counter() - start
                    pieces.append(text)
                    if choice.get("prompt_token_ids"):
                        prompt_ids = list(choice["prompt_token_ids"])
                    output_ids.extend(choice.get("token_ids") or ())
                if chunk.get("usage"):
                    usage = chunk["usage"]
        latency = time.perf_counter() - start
        details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        return Outcome(
            text="".join(pieces),
            prompt_tokens=_int(usage.get("prompt_tokens")),
            completion_tokens=_int(usage.get("completion_tokens")),
            cached_tokens=_int(cached),
            ttft_s=ttft,
            latency_s=latency,
            prompt_ids=prompt_ids,
            output_ids=output_ids if prompt_ids is not None else None,
        )

    async def metrics_text(self) -> str:
        try:
            response = await self._http.get("/metrics")
        except httpx.HTTPError as exc:
            raise _down(self.url, exc) from None
        response.raise_for_status()
        return response.text

    async def reset_prefix_cache(self) -> bool:
        """`POST /reset_prefix_cache` (needs `VLLM_SERVER_DEV_MODE=1`). It fails while blocks are still
        held by running requests, so it is retried briefly; False when the server refuses it."""
        for _ in range(20):
            try:
                response = await self._http.post("/reset_prefix_cache")
            except httpx.HTTPError as exc:
                raise _down(self.url, exc) from None
            if response.status_code == 404:
                return False  # dev endpoints off
            if response.status_code == 200:
                try:
                    ok = response.json().get("success", True) if response.content else True
                except ValueError:
                    ok = True
                if ok:
                    return True
            await asyncio.sleep(0.25)
        return False

    async def tokenize(
        self, text: str, messages: list[dict[str, str]] | None = None, continue_final: bool = False
    ) -> list[int] | None:
        """The ids the server computes for this request (for a chat request: after its chat template,
        with the generation prompt, as `/v1/chat/completions` renders it; with `continue_final`, the
        last message left open instead, as a chat warm-up renders it)."""
        body: dict[str, object] = {"model": self.model}
        if messages is not None:
            body.update(
                messages=messages,
                add_generation_prompt=not continue_final,
                continue_final_message=continue_final,
            )
        else:
            body["prompt"] = text
        response = await self._http.post("/tokenize", json=body)
        if response.status_code != 200:
            return None
        tokens = response.json().get("tokens")
        return list(tokens) if isinstance(tokens, list) else None

    async def aclose(self) -> None:
        await self._http.aclose()


class TritonTarget:
    """Triton's generate extension. The prefix cache of a TensorRT-LLM model cannot be reset over the
    API (only a model reload clears it), so `reset_prefix_cache` reloads nothing and says False."""

    engine = "triton"

    def __init__(self, url: str, model: str, metrics_url: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.metrics_url = metrics_url
        self.block_size: int | None = None
        self._http = httpx.AsyncClient(
            base_url=self.url, timeout=httpx.Timeout(60.0, connect=CONNECT_TIMEOUT_S)
        )

    async def connect(self) -> TritonTarget:
        try:
            ready = await self._http.get(f"/v2/models/{self.model}/ready")
        except httpx.HTTPError as exc:
            raise _down(self.url, exc) from None
        if ready.status_code != 200:
            raise TargetDown(
                f"target {self.url}: model {self.model!r} is not ready (HTTP {ready.status_code})"
            )
        return self

    async def complete(
        self,
        prompt: str | list[int],
        max_tokens: int,
        timeout_s: float,
        messages: list[dict[str, str]] | None = None,
    ) -> Outcome:
        """`generate` takes text only: chat calls are sent in the compiler's flattened form (the
        caller passes it as `prompt`); token-id prompts cannot be sent and fail clearly."""
        if not isinstance(prompt, str):
            raise CallFailed("Triton's generate endpoint takes text, not token ids")
        start = time.perf_counter()
        try:
            response = await asyncio.wait_for(
                self._http.post(
                    f"/v2/models/{self.model}/generate",
                    json={"text_input": prompt, "max_tokens": max_tokens},
                    timeout=None,
                ),
                timeout_s,
            )
        except TimeoutError:
            raise CallTimeout(f"no answer within {timeout_s:g} s") from None
        except httpx.TransportError as exc:
            raise _down(self.url, exc) from None
        latency = time.perf_counter() - start
        if response.status_code != 200:
            raise CallFailed(f"HTTP {response.status_code}: {response.text[:300]}")
        data = response.json()
        return Outcome(
            text=str(data.get("text_output", "")),
            prompt_tokens=None,
            completion_tokens=_int(data.get("output_tokens")),
            cached_tokens=None,
            ttft_s=None,
            latency_s=latency,
        )

    async def metrics_text(self) -> str:
        if not self.metrics_url:
            return ""
        try:
            response = await self._http.get(self.metrics_url)
        except httpx.HTTPError as exc:
            raise _down(self.metrics_url, exc) from None
        response.raise_for_status()
        return response.text

    async def reset_prefix_cache(self) -> bool:
        return False

    async def tokenize(
        self, text: str, messages: list[dict[str, str]] | None = None, continue_final: bool = False
    ) -> list[int] | None:
        return None

    async def aclose(self) -> None:
        await self._http.aclose()


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


async def connect_target(
    url: str, *, engine: str = "auto", model: str | None = None, metrics_url: str | None = None
) -> VllmTarget | TritonTarget:
    """A connected target. `auto` asks the server: vLLM answers `/v1/models`, Triton `/v2/health/ready`."""
    if engine == "auto":
        engine = await _detect(url)
    if engine == "vllm":
        return await VllmTarget(url, model).connect()
    if engine == "triton":
        if not model:
            raise TargetDown(f"target {url} is Triton: say which model with --model")
        return await TritonTarget(url, model, metrics_url).connect()
    raise TargetDown(f"unknown engine {engine!r}: expected vllm, triton or auto")


async def _detect(url: str) -> str:
    async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=httpx.Timeout(5.0)) as http:
        try:
            if (await http.get("/v1/models")).status_code == 200:
                return "vllm"
            if (await http.get("/v2/health/ready")).status_code == 200:
                return "triton"
        except httpx.HTTPError as exc:
            raise _down(url, exc) from None
    raise TargetDown(
        f"target {url} is neither a vLLM OpenAI server (/v1/models) nor Triton (/v2/health/ready)"
    )
