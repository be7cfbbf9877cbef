"""Recommendations from the compiler's cache plans (`CompileResult` JSON, as stored in `CompileRecord.result`).

    specs = recommend_from_compile(record.result, ctx)

Takes a plain dict so the daemon does not depend on the compiler's classes (the JSON is the
contract, schema 1.x). Three outcomes, each only when the plan says it pays:
- the agent's prompts could hit the cache (`plan.block_shares`) but the target has prefix caching /
  KV reuse off -> enable it (same change as the KV optimizer's, so the fingerprints coincide);
- the plan's engine settings (`plan.settings`) that differ from the target's current values -> one
  recommendation carrying those changes with the compiler's reasons;
- anti-patterns with fixes (dynamic prefix, misplaced shared context) -> a prompt-layout change with
  the cacheable share before and after.
"""

from __future__ import annotations

from typing import Any

from daemon.actuators.params import as_bool
from daemon.ceiling import PLAN_ENGINE
from daemon.paths import agent_label
from daemon.optimizer.context import Context
from daemon.optimizer.kv_cache import enable_prefix_caching
from daemon.optimizer.models import Apply, ConfigChange, RecommendationSpec

MIN_HIT_SHARE = 0.2  # below this, caching would not change much for this agent
_APPLY: dict[str, Apply] = {"restart": "restart", "model_reload": "reload", "engine_rebuild": "rebuild"}


def _block_share(plan: dict[str, Any], engine: str, block_size: Any) -> dict[str, Any] | None:
    shares = [s for s in plan.get("block_shares") or [] if isinstance(s, dict) and s.get("engine") == engine]
    if not shares:
        return None
    if isinstance(block_size, int):
        exact = [s for s in shares if s.get("block_size") == block_size]
        if exact:
            return exact[0]
        return min(shares, key=lambda s: abs(int(s.get("block_size") or 0) - block_size))
    return max(shares, key=lambda s: float(s.get("hit_share") or 0))


def _parameter(setting: dict[str, Any]) -> str:
    name = str(setting.get("name"))
    where = setting.get("where")
    if where == "config.pbtxt":
        return name if name.startswith("parameters.") else f"parameters.{name}"
    if where == "engine_build":
        return f"trtllm-build {name}"
    return name


def _same(current: Any, recommended: Any) -> bool:
    """Equal as settings: `true` and `on` are one value (the plan writes "on", the server reports True)."""
    a, b = as_bool(current), as_bool(recommended)
    if a is not None and b is not None and not (isinstance(current, int) and not isinstance(current, bool)):
        return a == b
    return str(current).strip().lower() == str(recommended).strip().lower()


def recommend_from_compile(result: dict[str, Any], ctx: Context) -> list[RecommendationSpec]:
    plan = result.get("plan") or {}
    path = str(result.get("path") or "?")
    # Titles name the file, not its directory: a table row at 80 columns would show only the start of a
    # long absolute path (the detail keeps the whole path).
    name = agent_label(path)
    plan_engine = PLAN_ENGINE.get(ctx.engine)
    if plan_engine is None:
        return []
    block = (
        ctx.settings.value("--block-size") if ctx.engine == "vllm" else ctx.settings.value("tokens_per_block")
    )
    share = _block_share(plan, plan_engine, block)
    source: dict[str, object] = {
        "compile": {"path": path, "source_sha256": result.get("source_sha256"), "block_share": share}
    }
    out: list[RecommendationSpec] = []

    hit = float(share.get("hit_share") or 0) if share else 0.0
    if share and hit >= MIN_HIT_SHARE:
        enable = enable_prefix_caching(
            ctx,
            f"{path}: {hit:.0%} of its prompt tokens can come from the cache "
            f"at block size {share.get('block_size')}",
            source,
        )
        if enable is not None:
            enable.estimated_improvement = (
                f"{hit:.0%} of this agent's prompt tokens ({share.get('cached_tokens')} of "
                f"{share.get('prompt_tokens')}) served from cache instead of prefilled"
            )
            out.append(enable)

    changes: list[ConfigChange] = []
    for setting in plan.get("settings") or []:
        if not isinstance(setting, dict) or setting.get("engine") != plan_engine:
            continue
        parameter = _parameter(setting)
        current, where = ctx.settings.get(parameter)
        value, reason = setting.get("value"), str(setting.get("reason") or "")
        if parameter == "--block-size" and ctx.engine == "vllm":
            value, reason = _block_this_server_takes(ctx, value, reason)
        if _same(current, value):
            continue
        if any(c.parameter == parameter for r in out for c in r.changes):
            continue  # already carried by the enable-caching recommendation
        changes.append(
            ConfigChange(
                parameter=parameter,
                current_value=current,
                current_source=where,
                recommended_value=value,
                reason=reason,
                apply=_APPLY.get(str(setting.get("applies")), "restart"),
            )
        )
    if changes:
        rebuild = any(c.apply == "rebuild" for c in changes)
        out.append(
            RecommendationSpec(
                instance=ctx.instance,
                engine=ctx.engine,
                kind="kv_cache",
                title=f"Apply the cache plan of {name}",
                description="The compiler planned these engine settings for the agent's call graph; they differ from "
                "what the target runs now.",
                changes=changes,
                expected_impact="high" if hit >= 0.5 else "medium",
                estimated_improvement=f"prefix-cache hit share up to {hit:.0%} for this agent"
                if share
                else "see the plan",
                effort="high" if rebuild else "medium",
                effort_detail="engine rebuild" if rebuild else "restart or model reload, per change",
                risks=["Settings tuned for one agent affect every client of the target"],
                prerequisites=list(plan.get("assumptions") or [])[:5],
                source=source,
            )
        )

    for fix in result.get("fixes") or []:
        if not isinstance(fix, dict):
            continue
        before, after = (
            float(fix.get("cacheable_share_before") or 0),
            float(fix.get("cacheable_share_after") or 0),
        )
        if after - before < 0.05:
            continue
        calls = ", ".join(fix.get("calls") or [])
        out.append(
            RecommendationSpec(
                instance=ctx.instance,
                engine=ctx.engine,
                kind="prompt_layout",
                title=f"Restructure prompts in {name} ({fix.get('pattern')})",
                description=str(fix.get("description") or ""),
                changes=[
                    ConfigChange(
                        parameter=f"{path}: prompt of {calls}",
                        current_value=f"cacheable share {before:.0%}",
                        current_source="compiler",
                        recommended_value=f"cacheable share {after:.0%}",
                        reason=str(fix.get("description") or fix.get("pattern")),
                        apply="code",
                    )
                ],
                expected_impact="high" if after - before >= 0.3 else "medium",
                estimated_improvement=f"cacheable share of prompt tokens {before:.0%} -> {after:.0%}",
                effort="low" if fix.get("diff") else "medium",
                effort_detail="apply the compiler's diff" if fix.get("diff") else "manual rewrite",
                risks=[str(fix.get("warning"))] if fix.get("warning") else [],
                prerequisites=[],
                source=source | {"diff": fix.get("diff") or ""},
            )
        )
    return out


def _block_this_server_takes(ctx: Context, value: Any, reason: str) -> tuple[Any, str]:
    """The plan's block size, raised to the smallest this server's attention backend takes (a CPU vLLM
    refuses 16-token blocks and fails to start: `Context.smallest_block`)."""
    try:
        planned = int(value)
    except (TypeError, ValueError):
        return value, reason
    small = ctx.smallest_block()
    if planned >= small:
        return value, reason
    return str(small), f"{reason} ({small}: the smallest block this server's attention backend takes)".strip()
