"""The cache plan: what hit share the program can reach per engine block size, what to warm, in what
order to run the calls, and which engine settings to use, each with the reason.

Engine facts (see ../shared/reference/inference-servers.md): vLLM hashes full 16-token blocks by
default and always recomputes the last prompt token; TRT-LLM's `tokens_per_block` is fixed when the
engine is built (32 in current builds, 64 in older ones), reuse needs `enable_kv_cache_reuse` (a model
reload) and paged context FMHA (an engine build flag), and retention priorities 0-100 (default 35)
decide which blocks are evicted last; SGLang matches at `page_size` granularity and only schedules by
longest prefix match with `--schedule-policy lpm` (default fcfs).
"""

from __future__ import annotations

import networkx as nx

from compiler.model import (
    BlockShare,
    CachePlan,
    Engine,
    EngineSetting,
    Finding,
    PatternKind,
    RetentionConfig,
    ScheduleStage,
    Warmup,
)
from compiler.patterns.base import Context, lcp_chars, readable
from compiler.prefix import Unit, share
from compiler.tokens import FILL_TOKENS

# The block sizes each engine's plan is computed at: vLLM's GPU default (16), and 32 and 128, what its CPU
# backend takes (128 its own default), so a server is compared with the ceiling at the block it runs.
ENGINE_BLOCKS: tuple[tuple[Engine, int], ...] = (
    ("vllm", 16),
    ("vllm", 32),
    ("vllm", 128),
    ("trtllm", 32),
    ("trtllm", 64),
    ("sglang", 1),
)
MIN_WARMUP_TOKENS = 16


def build_plan(
    ctx: Context,
    findings: list[Finding],
    engine: Engine,
    fixed_shapes: dict[str, list[Unit]] | None,
    assumptions: list[str],
) -> CachePlan:
    plan = CachePlan(engine=engine, assumptions=assumptions)
    # Two requests back to back: the first is the per-request figure, the second the steady state.
    two = ctx.two_requests if ctx.two_requests is not None else ctx.simulate({}, requests=2)
    fixed_two = ctx.simulate(fixed_shapes, requests=2) if fixed_shapes else None
    for eng, bs in ENGINE_BLOCKS:
        cached, total, hit = share(two, bs, request=0)
        after = round(share(fixed_two, bs, request=0)[2], 4) if fixed_two is not None else None
        steady_after = round(share(fixed_two, bs, request=1)[2], 4) if fixed_two is not None else None
        plan.block_shares.append(
            BlockShare(
                engine=eng,
                block_size=bs,
                prompt_tokens=total,
                cached_tokens=cached,
                hit_share=round(hit, 4),
                hit_share_after_fixes=after,
                steady_state_share=round(share(two, bs, request=1)[2], 4),
                steady_state_share_after_fixes=steady_after,
            )
        )
    if not ctx.calls:
        return plan  # nothing to cache: settings with reasons about zero tokens would only be noise
    plan.warmups = _warmups(ctx, findings, engine)
    plan.schedule = _schedule(ctx, findings)
    plan.settings = _settings(ctx, plan, findings)
    plan.retention = _retention(ctx, findings)
    return plan


def _prefix_segments(ctx: Context, cid: str, chars: int) -> tuple[list[str], str, bool]:
    _enc, spans = ctx.encoding(cid)
    labels: list[str] = []
    pieces: list[str] = []
    all_static = True
    for start, end, unit in spans:
        if start >= chars:
            break
        text = unit.text[: chars - start] if end > chars and not unit.dynamic else unit.text
        if unit.dynamic:
            all_static = False
            labels.append(readable(unit.text, 60))
            pieces.append(readable(unit.text, 10_000))
        else:
            labels.append(readable(text, 60))
            pieces.append(text)
    return labels, "".join(pieces), all_static


def _request(engine: str, text: str, all_static: bool) -> dict[str, object]:
    note = (
        "send as-is"
        if all_static
        else "fill the {names} with the request's values at run time; send before the dependent calls"
    )
    if engine == "sglang":
        return {"endpoint": "/generate", "text": text, "sampling_params": {"max_new_tokens": 0}, "note": note}
    if engine == "trtllm":
        return {"endpoint": "/v2/models/ensemble/generate", "text_input": text, "max_tokens": 1, "note": note}
    return {"endpoint": "/v1/completions", "prompt": text, "max_tokens": 1, "note": note}


def _warmups(ctx: Context, findings: list[Finding], engine: str) -> list[Warmup]:
    out: list[Warmup] = []
    seen: set[tuple[str, int]] = set()
    by_id = ctx.by_id

    seen_text: set[str] = set()

    def add(cid: str, chars: int, reason: str) -> None:
        tokens = ctx.tokens_upto(cid, chars)
        if tokens < MIN_WARMUP_TOKENS or (cid, chars) in seen:
            return
        seen.add((cid, chars))
        labels, text, all_static = _prefix_segments(ctx, cid, chars)
        if text in seen_text:
            return  # the same prefix is already warmed earlier in the plan
        seen_text.add(text)
        out.append(
            Warmup(
                before_call=cid,
                reason=reason,
                prefix_segments=labels,
                prefix_tokens=tokens,
                request=_request(engine, text, all_static),
            )
        )

    for f in findings:
        if f.kind is PatternKind.LOOP_INVARIANT:
            cid = f.calls[0]
            call = by_id[cid]
            _enc, spans = ctx.encoding(cid)
            chars = 0
            template = None
            for (_start, end, _unit), seg in zip(spans, call.segments):
                if seg.varies_in_loop:
                    template = seg if seg.fills else None
                    break
                chars = end
            loop_line = f.figures.get("loop_line")
            add(
                cid,
                chars,
                f"before the loop at line {loop_line}: the invariant prefix of {cid}, so every "
                f"iteration (also concurrent ones) starts from a cached prefix",
            )
            if template is not None and out and out[-1].before_call == cid:
                # `template.format(**fields)`: the template's text up to its first field is invariant
                # too, but only known at run time; the runner appends it to the warm-up.
                w = out[-1]
                w.prefix_segments.append(f"{{{template.name}}} up to its first replacement field")
                key = (
                    "text"
                    if "text" in w.request
                    else ("text_input" if "text_input" in w.request else "prompt")
                )
                w.request[key] = f"{w.request[key]}{{{template.name}}}"
                w.request["note"] = (
                    f"append `{template.name}` cut before its first {{field}} (known at run "
                    f"time); the part shown is static"
                )
        elif f.kind is PatternKind.BRANCHING:
            children = [c for c in f.calls[1:]]
            parent = f.calls[0]
            if len(children) >= 1:
                encs = [ctx.encoding(c)[0] for c in children]
                chars = min((lcp_chars(encs[0], e) for e in encs[1:]), default=len(encs[0]))
                # Only what exists before the fan-out can be warmed: stop at the parent's output and at
                # anything that differs per branch.
                chars = min(chars, _cut_before_varying(ctx, children[0], parent))
                if lcp_chars(ctx.encoding(parent)[0], encs[0]) >= chars:
                    continue  # the parent's own prompt already put this prefix in the cache
                add(
                    children[0],
                    chars,
                    f"before the fan-out of {parent}: the prefix its branches "
                    f"{', '.join(children)} share, so parallel branches do not each prefill it",
                )
        elif f.kind is PatternKind.SHARED_PREFIX:
            first = next(c for c in ctx.order if c in f.calls)
            chars = lcp_chars(ctx.encoding(f.calls[0])[0], ctx.encoding(f.calls[1])[0])
            for c in f.calls[2:]:
                chars = min(chars, lcp_chars(ctx.encoding(f.calls[0])[0], ctx.encoding(c)[0]))
            add(
                first, chars, f"at start-up and after cache resets: the prefix shared by {', '.join(f.calls)}"
            )
    position = {cid: i for i, cid in enumerate(ctx.order)}
    out.sort(key=lambda w: position.get(w.before_call, 0))
    return out


def _cut_before_varying(ctx: Context, cid: str, parent: str | None = None) -> int:
    _enc, spans = ctx.encoding(cid)
    chars = 0
    for (_start, end, _unit), seg in zip(spans, ctx.by_id[cid].segments):
        if seg.varies_in_loop or (parent is not None and parent in seg.origin_calls):
            break
        chars = end
    return chars


def _schedule(ctx: Context, findings: list[Finding]) -> list[ScheduleStage]:
    shared_groups = [set(f.calls) for f in findings if f.kind is PatternKind.SHARED_PREFIX]
    by_id = ctx.by_id
    stages: list[ScheduleStage] = []
    position = {c.id: i for i, c in enumerate(ctx.calls)}
    for i, gen in enumerate(nx.topological_generations(ctx.graph)):
        calls = sorted(gen, key=lambda c: position[c])
        notes: list[str] = []
        for group in shared_groups:
            members = [c for c in calls if c in group]
            if len(members) > 1:
                notes.append(
                    f"run {members[0]} first (or its warm-up) to seed the shared prefix, then "
                    f"{', '.join(members[1:])} concurrently"
                )
        for cid in calls:
            call = by_id[cid]
            if any(not l.request_loop for l in call.loops):
                if call.loop_carried:
                    notes.append(
                        f"{cid}: iterations depend on each other ({', '.join(call.loop_carried)}); "
                        f"run them in order"
                    )
                else:
                    notes.append(
                        f"{cid}: iterations are independent; run the first alone to seed the "
                        f"invariant prefix, then the rest concurrently"
                    )
        if not notes:
            notes.append("independent calls: run concurrently" if len(calls) > 1 else "single call")
        stages.append(
            ScheduleStage(stage=i + 1, calls=calls, concurrent=len(calls) > 1, note="; ".join(notes))
        )
    return stages


def _settings(ctx: Context, plan: CachePlan, findings: list[Finding]) -> list[EngineSetting]:
    shares = {(b.engine, b.block_size): b for b in plan.block_shares}
    v16 = shares[("vllm", 16)]
    t32, t64 = shares[("trtllm", 32)], shares[("trtllm", 64)]
    largest = max((c.prompt_tokens for c in ctx.calls), default=0)
    width = max((len(s.calls) for s in plan.schedule), default=1)
    fan = 1
    for c in ctx.calls:
        if isinstance(c.fanout, int):
            fan = max(fan, c.fanout)
        if any(not l.request_loop for l in c.loops):
            fan = max(fan, ctx.sim.iterations)
    concurrency = max(width, fan)
    kinds = {f.kind for f in findings}
    batched = max(2048, ((largest + 1023) // 1024) * 1024)
    out = [
        EngineSetting(
            engine="vllm",
            where="flag",
            name="--enable-prefix-caching",
            value="on",
            applies="restart",
            reason=f"{v16.cached_tokens} of {v16.prompt_tokens} prompt tokens per request "
            f"({v16.hit_share:.0%}) can come from the prefix cache at block size 16",
        ),
        EngineSetting(
            engine="vllm",
            where="flag",
            name="--block-size",
            value="16",
            applies="restart",
            reason="only full blocks are reused; 16 (the default) loses fewer tokens per shared prefix "
            "than 32",
        ),
        EngineSetting(
            engine="vllm",
            where="flag",
            name="--max-num-seqs",
            value=str(max(16, concurrency * 4)),
            applies="restart",
            reason=f"up to {concurrency} call(s) of one request can run at once (stage width {width}, "
            f"fan-out {fan}); room for several requests keeps shared blocks referenced",
        ),
        EngineSetting(
            engine="vllm",
            where="flag",
            name="--max-num-batched-tokens",
            value=str(batched),
            applies="restart",
            reason=f"the largest prompt is ~{largest} tokens; a step budget at least that large "
            f"prefills it without splitting",
        ),
        EngineSetting(
            engine="vllm",
            where="flag",
            name="--gpu-memory-utilization",
            value="0.92",
            applies="restart",
            reason="more KV memory keeps shared prefixes resident between calls instead of evicting "
            "them (LRU over free blocks)",
        ),
        EngineSetting(
            engine="vllm",
            where="flag",
            name="--enable-prompt-tokens-details",
            value="on",
            applies="restart",
            reason="reports cached_tokens per response, so the plan can be verified request by request",
        ),
        EngineSetting(
            engine="trtllm",
            where="config.pbtxt",
            name="enable_kv_cache_reuse",
            value="true",
            applies="model_reload",
            reason=f"{t32.hit_share:.0%} of prompt tokens are reusable at 32-token blocks; older "
            f"backends default to false",
        ),
        EngineSetting(
            engine="trtllm",
            where="config.pbtxt",
            name="kv_cache_free_gpu_mem_fraction",
            value="0.9",
            applies="model_reload",
            reason="reused blocks only help while they stay in memory; 0.9 of the memory left after "
            "the engine loads is the usual safe maximum",
        ),
        EngineSetting(
            engine="trtllm",
            where="config.pbtxt",
            name="batch_scheduler_policy",
            value="max_utilization" if concurrency > 1 else "guaranteed_no_evict",
            applies="model_reload",
            reason=(
                "parallel branches/iterations share prefixes; max_utilization admits them together"
                if concurrency > 1
                else "calls run one after another; no need to risk pausing"
            ),
        ),
        EngineSetting(
            engine="trtllm",
            where="engine_build",
            name="tokens_per_block",
            value="32" if t32.hit_share >= t64.hit_share else "64",
            applies="engine_rebuild",
            reason=f"fixed when the engine is built: hit share {t32.hit_share:.0%} at 32 vs "
            f"{t64.hit_share:.0%} at 64 (only full blocks are shared)",
        ),
        EngineSetting(
            engine="trtllm",
            where="engine_build",
            name="use_paged_context_fmha",
            value="enable",
            applies="engine_rebuild",
            reason="KV cache reuse needs paged context FMHA; older trtllm-build defaults to disable",
        ),
        EngineSetting(
            engine="sglang",
            where="flag",
            name="--schedule-policy",
            value="lpm",
            applies="restart",
            reason=(
                "branches/iterations/calls share prefixes; longest-prefix-match scheduling runs "
                "them while the prefix is cached (default is fcfs)"
            )
            if kinds & {PatternKind.BRANCHING, PatternKind.SHARED_PREFIX, PatternKind.LOOP_INVARIANT}
            else "harmless here; helps once several requests share prefixes",
        ),
        EngineSetting(
            engine="sglang",
            where="flag",
            name="--page-size",
            value="1",
            applies="restart",
            reason="token-granular radix matching reuses partial blocks that 16/32-token pages lose",
        ),
        EngineSetting(
            engine="sglang",
            where="flag",
            name="--enable-cache-report",
            value="on",
            applies="restart",
            reason="reports cached tokens per response to verify the plan",
        ),
    ]
    return out


def _retention(ctx: Context, findings: list[Finding]) -> list[RetentionConfig]:
    out: list[RetentionConfig] = []
    for f in findings:
        if f.kind is PatternKind.SHARED_PREFIX:
            tokens = int(f.number("prefix_tokens"))
            if tokens < 32:
                continue
            out.append(
                RetentionConfig(
                    calls=f.calls,
                    token_start=0,
                    token_end=tokens,
                    priority=90 if len(f.calls) >= 3 else 80,
                    duration_ms=60_000,
                    reason=f"prefix shared by {len(f.calls)} calls of each request; keep it above the default "
                    f"priority 35 for a minute so per-call tails are evicted first",
                )
            )
        elif f.kind is PatternKind.LOOP_INVARIANT:
            tokens = int(f.number("invariant_prefix_tokens"))
            if tokens < 32:
                continue
            out.append(
                RetentionConfig(
                    calls=f.calls,
                    token_start=0,
                    token_end=tokens,
                    priority=95,
                    duration_ms=120_000,
                    reason=f"invariant prefix reused by every loop iteration (~{ctx.sim.iterations} assumed, "
                    f"+{FILL_TOKENS}-token deltas)",
                )
            )
    return out
