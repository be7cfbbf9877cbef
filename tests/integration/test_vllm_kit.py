"""The vLLM fixture serves a real model: completions, metrics that move, a prefix cache that hits."""

from __future__ import annotations

import re

import httpx
import pytest

pytestmark = pytest.mark.vllm


def counter(text: str, name: str) -> float:
    """Sum a counter's samples across label sets (one engine here, but be exact about it)."""
    total = 0.0
    for m in re.finditer(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.eE+-]+)$", text, re.M):
        total += float(m.group(1))
    return total


def test_completion_moves_vllm_counters_and_hits_prefix_cache(vllm_server) -> None:
    base = vllm_server.url
    before = httpx.get(f"{base}/metrics").text
    prompt = "charter-tui test kit shared prefix. " * 40  # ~280 tokens: many 32-token blocks
    for suffix in ("first", "second"):
        r = httpx.post(
            f"{base}/v1/completions",
            json={"model": vllm_server.model, "prompt": prompt + suffix, "max_tokens": 4, "temperature": 0},
            timeout=120,
        )
        r.raise_for_status()
        body = r.json()
        assert body["choices"][0]["text"] != "" or body["usage"]["completion_tokens"] > 0
    after = httpx.get(f"{base}/metrics").text

    prompt_tokens = counter(after, "vllm:prompt_tokens_total") - counter(before, "vllm:prompt_tokens_total")
    hits = counter(after, "vllm:prefix_cache_hits_total") - counter(before, "vllm:prefix_cache_hits_total")
    assert prompt_tokens >= 2 * 200, "both prompts were counted by the server"
    # The second request reuses the first one's full blocks of the shared text.
    assert hits >= 160, f"expected the shared prefix to hit the prefix cache, got {hits} hit tokens"
    assert 'enable_prefix_caching="True"' in after
    assert 'block_size="32"' in after
