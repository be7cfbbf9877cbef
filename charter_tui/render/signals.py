"""How a live signal and a target's state are named and drawn: shared by the Instances and detail screens."""

from __future__ import annotations

from rich.text import Text

SIGNAL_LABELS = {
    "ttft_p95_s": "TTFT p95",
    "generation_tokens_per_s": "tok/s",
    "kv_cache_usage": "KV",
    "prefix_hit_rate": "hit",
    "waiting": "queue",
}
# What a column shows for an engine that does not export its signal, with the mark that says so: Triton's
# core reports request durations and counts, not token timings (a TTFT column of "-" hid that it serves).
FALLBACK_SIGNALS = {
    "ttft_p95_s": ("e2e_mean_s", "e2e"),
    "generation_tokens_per_s": ("requests_success_per_s", "rq/s"),
}
# Fixed scales where the signal has one, so a sparkline at 40% looks like 40%, not "full".
SIGNAL_RANGE: dict[str, tuple[float | None, float | None]] = {
    "kv_cache_usage": (0.0, 1.0),
    "prefix_hit_rate": (0.0, 1.0),
}
STATE_STYLE = {"UP": "bold green", "STALE": "bold yellow", "DOWN": "bold red", "UNKNOWN": "dim"}


def state_badge(state: str) -> Text:
    return Text(f"● {state}", style=STATE_STYLE.get(state, ""))
