"""Prompts with their static/dynamic segments coloured, unified diffs, config-change diffs,
cache plans and evidence dicts, as Rich `Text`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from rich.text import Text

from compiler.model import CachePlan, CallSite, CompileResult, EngineSetting
from charter_tui.render.numbers import percent
from daemon.text import clean

STATIC_STYLE = "green"
DYNAMIC_STYLE = "bold black on yellow"
VOLATILE_STYLE = "bold white on red"  # clock/uuid/random: never cacheable, worst as a prefix
SYNTHETIC_STYLE = "dim italic"


def server_text(value: object, style: str = "") -> Text:
    """A string that came from an inference server (model name, version, reason) as plain `Text`:
    never parsed as markup (`[bold]` in a model name stays literal), and cleaned again of escape
    sequences — the daemon cleans at ingestion, but a remote daemon over MQTT may be older."""
    return Text(clean(value), style=style)


def prompt(call: CallSite, limit: int = 400) -> Text:
    """The call's prompt in model order: static text green, dynamic `{names}` highlighted.

    Long static text is cut in the middle (head … tail): the reader needs to see where the
    dynamic parts sit, not every word of a 2,000-token system prompt.
    """
    out = Text()
    share = call.static_prefix_tokens / call.prompt_tokens if call.prompt_tokens else 0.0
    out.append(f"{call.id} {call.function}:{call.line}  ", style="bold")
    out.append(
        f"{call.prompt_tokens} tok, static prefix {call.static_prefix_tokens} ({percent(share)})\n",
        style="dim",
    )
    role = None
    for seg in call.segments:
        if seg.role and seg.role != role:
            role = seg.role
            out.append(f"\n{role}: ", style="bold magenta")
        if seg.kind == "static":
            text = (
                seg.text
                if len(seg.text) <= limit
                else seg.text[: limit // 2] + " … " + seg.text[-limit // 2 :]
            )
            out.append(text, style=SYNTHETIC_STYLE if seg.synthetic else STATIC_STYLE)
        else:
            style = (
                VOLATILE_STYLE if seg.source is not None and seg.source.value == "volatile" else DYNAMIC_STYLE
            )
            out.append(seg.text or "{" + (seg.name or "?") + "}", style=style)
            if seg.source is not None:
                out.append(f"({seg.source.value}~{seg.tokens})", style="dim")
        out.append(" ")
    out.rstrip()
    return out


def unified_diff(diff: str) -> Text:
    out = Text()
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        elif line.startswith("@@"):
            style = "cyan"
        else:
            style = ""
        out.append(line + "\n", style=style)
    out.rstrip()
    return out


def _fmt(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True)


NAME_KEYS = ("param", "parameter", "key", "name", "setting")
OLD_KEYS = ("from", "current", "current_value", "old")
NEW_KEYS = ("to", "proposed", "value", "recommended_value", "recommended", "new")


def change_name(ch: Mapping[str, Any]) -> str:
    name = str(next((ch[k] for k in NAME_KEYS if ch.get(k) is not None), "?"))
    return f"{ch['model']}:{name}" if ch.get("model") else name


def config_changes(changes: Iterable[Mapping[str, Any]], current: Mapping[str, Any] | None = None) -> Text:
    """Changes as a diff, current -> proposed, grouped by target when they name one.

    Accepts the rollout manager's `{param, value, model}` and the optimizer's
    `{parameter, current_value, recommended_value}`; `current` supplies values a change does not
    carry (a rollout's changes are only the target values; the recommendation knows the current).
    """
    out = Text()
    current = current or {}
    last_target = None
    for ch in changes:
        target = ch.get("target")
        if target and target != last_target:
            out.append(f"@@ {target}\n", style="cyan")
            last_target = target
        key = change_name(ch)
        old = next((ch[k] for k in OLD_KEYS if k in ch), current.get(key))
        new = next((ch[k] for k in NEW_KEYS if k in ch), None)
        out.append(f"- {key} = {_fmt(old) if old is not None else '(current)'}\n", style="red")
        out.append(f"+ {key} = {_fmt(new) if new is not None else '(unset)'}", style="green")
        if ch.get("apply"):
            out.append(f"   ({ch['apply']})", style="dim")
        out.append("\n")
    out.rstrip()
    return out or Text("(no changes listed)", style="dim")


DEFAULT = "(default)"  # a setting the target leaves to the engine


def restored_changes(changes: Iterable[Mapping[str, Any]], before: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What a rollback puts back, per touched target: each change's value -> the value recorded before it
    (`StageDetail.before`, {target: {key: value}})."""
    out = []
    for target, values in before.items():
        if not isinstance(values, Mapping):
            continue
        for ch in changes:
            key = change_name(ch)
            if key in values:
                new = next((ch[k] for k in NEW_KEYS if k in ch), None)
                old = values[key]
                out.append(
                    {"target": target, "param": key, "from": new, "to": DEFAULT if old is None else old}
                )
    return out


def current_values(changes: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """`{name: current value}` from changes that carry one (the optimizer's)."""
    out = {}
    for ch in changes:
        old = next((ch[k] for k in OLD_KEYS if k in ch), None)
        if old is not None:
            out[change_name(ch)] = old
    return out


def key_values(d: Mapping[str, Any], indent: int = 0) -> Text:
    """Evidence and detail dicts as aligned `key  value` lines (nested dicts indented, empty
    values left out: `None`, `[]` and `{}` say nothing a reader needs)."""
    out = Text()
    d = {k: v for k, v in d.items() if v is not None and v != [] and v != {}}
    if not d:
        return Text("(none)", style="dim")
    width = max(len(str(k)) for k in d)
    for k, v in d.items():
        out.append(" " * indent + str(k).ljust(width) + "  ", style="bold")
        if isinstance(v, Mapping):
            out.append("\n")
            out.append_text(key_values(v, indent + 2))
        elif isinstance(v, list):
            out.append("; ".join(_fmt(x) for x in v))
        elif isinstance(v, float):
            out.append(f"{v:.4g}")
        else:
            out.append(_fmt(v))
        out.append("\n")
    out.rstrip()
    return out


def cache_plan(plan: CachePlan, smallest_blocks: Mapping[str, int] | None = None) -> Text:
    """The compiler's plan. `smallest_blocks` (vLLM target -> the smallest KV block its backend takes,
    `daemon.optimizer.context.smallest_vllm_block`) turns the plan's generic `--block-size` advice into
    a value each configured server accepts: the compiler knows the engine, not the server."""
    out = Text()
    out.append(f"engine {plan.engine}\n", style="bold")
    for b in plan.block_shares:
        after = (
            f" -> {percent(b.hit_share_after_fixes)} after fixes"
            if b.hit_share_after_fixes is not None and b.hit_share_after_fixes != b.hit_share
            else ""  # no fix, or one that changes nothing at this block size: claim no gain
        )
        out.append(
            f"  block {b.block_size:>3}: ceiling {percent(b.hit_share)} "
            f"({b.cached_tokens}/{b.prompt_tokens} tok){after}\n"
        )
    for w in plan.warmups:
        out.append(f"  warm-up before {w.before_call}: {w.prefix_tokens} tok — {w.reason}\n", style="cyan")
    for st in plan.schedule:
        mode = "concurrent" if st.concurrent else "serial"
        out.append(f"  stage {st.stage}: {', '.join(st.calls)} ({mode}) {st.note}\n")
    for s in plan.settings:
        if s.engine == "vllm" and s.name == "--block-size" and smallest_blocks:
            _block_size_lines(out, s, smallest_blocks)
            continue
        out.append(f"  {s.where} {s.name}={s.value} ({s.applies}): {s.reason}\n", style="yellow")
    for r in plan.retention:
        out.append(
            f"  retain tokens {r.token_start}-{r.token_end} prio {r.priority} for {', '.join(r.calls)}\n"
        )
    for a in plan.assumptions:
        out.append(f"  assumes: {a}\n", style="dim")
    out.rstrip()
    return out


def _block_size_lines(out: Text, setting: EngineSetting, smallest_blocks: Mapping[str, int]) -> None:
    advised = int(setting.value) if setting.value.isdigit() else 0
    refusing = {name: floor for name, floor in smallest_blocks.items() if floor > advised}
    if len(refusing) < len(smallest_blocks):
        out.append(
            f"  {setting.where} {setting.name}={setting.value} ({setting.applies}): {setting.reason}\n",
            style="yellow",
        )
    for name, floor in sorted(refusing.items()):
        out.append(
            f"  {setting.where} {setting.name}={floor} for {name} ({setting.applies}): its attention backend "
            f"takes no block under {floor} (it refuses {setting.value}); {floor} loses fewest tokens per "
            "shared prefix there\n",
            style="yellow",
        )


def fixes(result: CompileResult) -> Text:
    if not result.fixes:
        return Text("no restructuring needed", style="dim")
    out = Text()
    for fx in result.fixes:
        out.append(f"{fx.pattern.value} ({', '.join(fx.calls)}): {fx.description}\n", style="bold")
        out.append(
            f"cacheable share {percent(fx.cacheable_share_before)} -> {percent(fx.cacheable_share_after)}\n",
            style="green",
        )
        if fx.warning:
            out.append(f"warning: {fx.warning}\n", style="yellow")
        out.append_text(unified_diff(fx.diff) if fx.diff else Text("(manual rewrite)", style="dim"))
        out.append("\n")
    out.rstrip()
    return out
