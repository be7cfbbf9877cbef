"""Renderings of a `CompileResult`: JSON (the versioned schema), Graphviz DOT, Mermaid, and text."""

from __future__ import annotations

import json

from compiler.model import SCHEMA_VERSION, CallSite, CompileResult

FORMATS = ("text", "json", "dot", "mermaid")


def to_json(result: CompileResult, indent: int | None = 2) -> str:
    return result.model_dump_json(indent=indent)


def json_schema() -> str:
    schema = CompileResult.model_json_schema()
    schema["$id"] = f"https://charter-tui/compile-result/{SCHEMA_VERSION}"
    schema["description"] = (CompileResult.__doc__ or "").strip() or "charter-tui compile result"
    return json.dumps(schema, indent=2)


def _label(call: CallSite) -> str:
    out = call.output_var or "_"
    loops = [l for l in call.loops if not l.request_loop]
    extra = f" loop@{loops[-1].line}" if loops else ""
    fan = f" n={call.fanout}" if call.fanout is not None else ""
    return f"{call.id} {out} = {call.callee}() L{call.line}{extra}{fan}"


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(result: CompileResult) -> str:
    lines = [
        f'digraph "{_dot_escape(result.path)}" {{',
        "  rankdir=LR;",
        '  node [shape=box, fontname="monospace"];',
    ]
    flagged = {c for f in result.patterns if f.anti_pattern for c in f.calls}
    for call in result.calls:
        color = ', color="red"' if call.id in flagged else ""
        label = "\\n".join(
            _dot_escape(t)
            for t in (_label(call), f"{call.prompt_tokens} tok ({call.static_prefix_tokens} static prefix)")
        )
        lines.append(f'  {call.id} [label="{label}"{color}];')
    for e in result.edges:
        style = {"fanout": ", style=dashed", "carried": ", style=dotted"}.get(e.kind, "")
        lines.append(f'  {e.source} -> {e.target} [label="{_dot_escape(", ".join(e.variables))}"{style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("[", "#91;").replace("]", "#93;")


def to_mermaid(result: CompileResult) -> str:
    lines = ["flowchart LR"]
    for call in result.calls:
        lines.append(f'  {call.id}["{_mermaid_text(_label(call))}"]')
    for e in result.edges:
        arrow = {"fanout": "-.->", "carried": "-.->"}.get(e.kind, "-->")
        lines.append(f'  {e.source} {arrow}|"{_mermaid_text(", ".join(e.variables))}"| {e.target}')
    flagged = sorted(
        {c for f in result.patterns if f.anti_pattern for c in f.calls}, key=lambda c: int(c[1:])
    )
    if flagged:
        lines.append("  classDef anti stroke:#d33,stroke-width:2px")
        lines.append(f"  class {','.join(flagged)} anti")
    return "\n".join(lines) + "\n"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def to_text(result: CompileResult, engine: str | None = None, show_diff: bool = False) -> str:
    engine = engine or result.plan.engine
    est = "~" if result.estimates.tokens_estimated else ""
    out: list[str] = [
        f"{result.path}: {len(result.calls)} LLM call(s), {len(result.edges)} edge(s)"
        + (" (token counts are estimates)" if result.estimates.tokens_estimated else "")
    ]
    if not result.calls:
        out.append(
            "  no LLM calls found (styles: OpenAI/litellm/LangChain/tritonclient/HTTP, and functions "
            "named like llm_*, call_llm, generate, complete, chat)"
        )
    for call in result.calls:
        loops = [l for l in call.loops if not l.request_loop]
        ctx = []
        if loops:
            ctx.append("in loop@" + ",".join(str(l.line) for l in loops))
        if call.branches:
            ctx.append(f"if {call.branches[-1].test}" if call.branches[-1].arm == "if" else "in else branch")
        if call.fanout is not None:
            ctx.append(f"n={call.fanout}")
        if call.is_async:
            ctx.append("async")
        via = f" -> {call.api}" if call.callee != call.api else ""
        out.append(
            f"  {call.id}  line {call.line:<5} {call.function}: {call.output_var or '_'} = {call.callee}(...){via}"
            + (f"  [{'; '.join(ctx)}]" if ctx else "")
        )
        shape = " + ".join(
            (repr(s.text[:24] + ("..." if len(s.text) > 24 else "")) if s.kind == "static" else s.text)
            + f"({est}{s.tokens})"
            for s in call.segments
            if not s.synthetic
        )
        out.append(f"        prompt {est}{call.prompt_tokens} tok: {shape}")
    if result.edges:
        out.append("edges:")
        for e in result.edges:
            out.append(
                f"  {e.source} -> {e.target}  via {', '.join(e.variables)}"
                + {"fanout": "  (fan-out)", "carried": "  (carried into a later iteration)"}.get(e.kind, "")
            )
    if result.order:
        out.append("order: " + " -> ".join(result.order))
    if result.patterns:
        out.append("patterns:")
        for f in result.patterns:
            tag = "ANTI-PATTERN " if f.anti_pattern else ""
            out.append(f"  {tag}{f.kind.value} [{', '.join(f.calls)}] {f.message}")
    plan = result.plan
    if not result.calls:
        for d in result.diagnostics:
            out.append(f"{result.path}:{d.line}:{d.col}: {d.level}: {d.message}")
        return "\n".join(out) + "\n"
    out.append(
        "cache plan (best reachable prefix-cache hit share: one request on an empty cache | steady state):"
    )
    for b in plan.block_shares:
        after = (
            f"  -> after fixes {_pct(b.hit_share_after_fixes)} | {_pct(b.steady_state_share_after_fixes)}"
            if b.hit_share_after_fixes is not None
            else ""
        )
        out.append(
            f"  {b.engine:<7} block {b.block_size:<3} {_pct(b.hit_share)} "
            f"({b.cached_tokens}/{b.prompt_tokens} tokens) | {_pct(b.steady_state_share)}{after}"
        )
    for w in plan.warmups:
        out.append(f"  warm before {w.before_call}: {w.prefix_tokens} tokens ({w.reason})")
    for s in plan.schedule:
        out.append(
            f"  stage {s.stage}: {', '.join(s.calls)}{' (concurrent)' if s.concurrent else ''} - {s.note}"
        )
    out.append(f"engine settings ({engine}):")
    for setting in plan.settings:
        if setting.engine == engine:
            out.append(
                f"  {setting.where:<12} {setting.name} = {setting.value}  [{setting.applies}]  {setting.reason}"
            )
    if engine == "trtllm":
        for r in plan.retention:
            out.append(
                f"  retention tokens [{r.token_start}, {r.token_end}) priority {r.priority} "
                f"duration {r.duration_ms} ms for {', '.join(r.calls)}: {r.reason}"
            )
    # One request's hit share before and after every fix, as the cache plan gives it: each fix line names
    # its own calls' share and this one, so the two figures read as the parts of one gain.
    whole = next(
        (b for b in plan.block_shares if b.engine == engine and b.hit_share_after_fixes is not None), None
    )
    for fix in result.fixes:
        later = fix.pattern.value == "MISPLACED_SHARED_CONTEXT" and len(fix.calls) > 1
        scope = ", ".join(fix.calls[1:] if later else fix.calls)
        request = (
            f"; the whole request {_pct(whole.hit_share)} -> {_pct(whole.hit_share_after_fixes)} "
            f"({whole.engine} block {whole.block_size}, with every fix, as in the cache plan)"
            if whole is not None
            else ""
        )
        out.append(
            f"fix ({fix.pattern.value}): {fix.description}; cacheable share of {scope} "
            f"{_pct(fix.cacheable_share_before)} -> {_pct(fix.cacheable_share_after)}{request}"
        )
        out.append(f"  warning: {fix.warning}")
        if show_diff and fix.diff:
            out.append(fix.diff.rstrip("\n"))
    for d in result.diagnostics:
        out.append(f"{result.path}:{d.line}:{d.col}: {d.level}: {d.message}")
    out.append("assumptions: " + " | ".join(plan.assumptions))
    return "\n".join(out) + "\n"


def render(result: CompileResult, fmt: str, engine: str | None = None, show_diff: bool = False) -> str:
    if fmt == "json":
        return to_json(result) + "\n"
    if fmt == "dot":
        return to_dot(result)
    if fmt == "mermaid":
        return to_mermaid(result)
    return to_text(result, engine, show_diff)
