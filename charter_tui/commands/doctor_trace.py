"""`charter-tui doctor TARGET --trace FILE`: predicted vs delivered cached tokens for each traced request.

The trace is what `TracingOpenAI` / `AsyncTracingOpenAI` recorded (`client.tracer.save(path)`). Each
request's prompt is tokenized by the target itself (`/tokenize`, chat requests through its own chat
template) so the prediction of `executor/request_check.py` is made on the ids the cache hashed; the
KV size for the eviction evidence is read from the target's `vllm:cache_config_info`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.errors import UserError
from executor.request_check import RequestCheck, SentRequest, check_requests, summary
from executor.trace_file import load_trace
from executor.tracing import TraceRecord

TOKENIZE_CONCURRENCY = 8
LIST_ALL_UP_TO = 40  # requests; past that only the misses are listed


@dataclass
class TraceCheck:
    path: Path
    block_size: int
    kv_capacity_tokens: int | None
    checks: list[RequestCheck]
    untokenized: int  # records the server would not tokenize (left out)
    failed: int  # records of requests that failed (never cached anything)


async def check_trace(url: str, path: Path) -> TraceCheck:
    from executor.errors import TargetDown
    from executor.targets import connect_target

    records = load_trace(path)
    try:
        via = await connect_target(url)
    except TargetDown as exc:
        raise UserError(f"{exc} (the trace's prompts are tokenized by the target itself)") from None
    try:
        block = via.block_size
        if not block:
            raise UserError(
                f"{url}: its block size is unknown (no vllm:cache_config_info); cannot check a trace"
            )
        cache = getattr(via, "cache_config", {}) or {}
        capacity = cache.get("kv_cache_size_tokens", "")
        gate = asyncio.Semaphore(TOKENIZE_CONCURRENCY)

        async def tokens(r: TraceRecord) -> list[int] | None:
            async with gate:
                return await via.tokenize(r.prompt, r.messages, r.continue_final)

        sent_records = [r for r in records if r.error is None]
        ids = await asyncio.gather(*(tokens(r) for r in sent_records))
    finally:
        await via.aclose()
    sent = [
        SentRequest(
            seq=r.seq,
            call_id=r.call_id,
            replica=r.replica,
            started_at=r.started_at,
            prefilled_at=r.started_at + (r.ttft_s if r.ttft_s is not None else r.latency_s),
            tokens=t,
            delivered=r.cached_tokens,
            checked=r.kind == "call",
        )
        for r, t in zip(sent_records, ids, strict=True)
        if t is not None
    ]
    return TraceCheck(
        path=path,
        block_size=block,
        kv_capacity_tokens=int(capacity) if str(capacity).isdigit() else None,
        checks=check_requests(sent, block, int(capacity) if str(capacity).isdigit() else None),
        untokenized=sum(1 for t in ids if t is None),
        failed=len(records) - len(sent_records),
    )


def as_json(result: TraceCheck) -> dict[str, Any]:
    return {
        "trace": str(result.path),
        "block_size": result.block_size,
        "kv_capacity_tokens": result.kv_capacity_tokens,
        "summary": summary(result.checks),
        "requests": [{**vars(c), "missed": c.missed} for c in result.checks],
        "left_out": {"untokenized": result.untokenized, "failed": result.failed},
    }


def render(result: TraceCheck, price_per_million: float | None = None) -> list[str]:
    total = summary(result.checks)
    lines = [
        f"predicted vs delivered cached tokens, per request ({result.path.name}: {total['requests']} requests, "
        f"block {result.block_size})"
    ]
    if not total["reported"]:
        lines.append(
            "  the server reported no cached_tokens for these requests: start vLLM with "
            "--enable-prompt-tokens-details, or trace with the synchronous client (it reads the counters)"
        )
    listed = result.checks if len(result.checks) <= LIST_ALL_UP_TO else [c for c in result.checks if c.cause]
    lines.append(f"  {'#':>4}  {'call':<8} {'prompt':>7} {'predicted':>9} {'delivered':>9}")
    for c in listed:
        got = "-" if c.delivered is None else str(c.delivered)
        lines.append(f"  {c.seq:>4}  {c.call_id or '?':<8} {c.prompt_tokens:>7} {c.predicted:>9} {got:>9}")
        if c.cause:
            lines.append(f"        missed {c.missed}: {c.reason}")
    causes = ", ".join(
        f"{total[k]} {k.replace('_', ' ')}"
        for k in ("first", "in_flight", "replica", "evicted")
        if total.get(k)
    )
    lines.append(
        f"  total: predicted {total['predicted']:,}, delivered {total['delivered']:,} tokens over "
        f"{total['reported']} reporting request(s); {total['misses']} miss(es)"
        + (f" ({causes})" if causes else "")
    )
    if total["prompt"]:
        cost = (
            f", {total['delivered'] * price_per_million / 1e6:,.4g} at {price_per_million:g} per million"
            if price_per_million is not None
            else ""
        )
        lines.append(
            f"  saved on this run: {total['delivered']:,} of {total['prompt']:,} prompt tokens came from the "
            f"cache ({total['delivered'] / total['prompt']:.1%}){cost}"
        )
    if result.untokenized or result.failed:
        lines.append(
            f"  left out: {result.untokenized} the server would not tokenize, {result.failed} that failed"
        )
    return lines
