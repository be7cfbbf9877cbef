"""What the prefix cache saved, in the units people budget: prefill tokens, prefill seconds, money.

Samples are sliding windows (each holds the counter deltas of the last `window_s`, one per poll), so
their deltas overlap and cannot be summed: the totals here integrate each window's *rate* over the time
to the previous sample, which counts every token once whatever the poll interval and window length.

Prefill seconds come from vLLM's per-request `request_prefill_time_seconds`: its seconds per computed
(uncached) prompt token, times the tokens the cache supplied. Requests prefilled side by side in one
batch each count their own time, so on a busy server this is request-seconds, an upper bound on the
accelerator's own seconds; it is labelled so wherever it is shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from daemon.models import MetricSample

HOUR_S = 3600.0


@dataclass(frozen=True, slots=True)
class Savings:
    span_s: float  # the time the samples cover
    cached_tokens: float  # prompt tokens the cache supplied (prefix hits)
    queried_tokens: float  # prompt tokens looked up in the cache (all of them, on vLLM)
    prefill_s_per_token: float | None = None  # measured seconds per computed prompt token
    price_per_million: float | None = None  # the config's price per million prompt tokens

    @property
    def computed_tokens(self) -> float:
        return max(self.queried_tokens - self.cached_tokens, 0.0)

    @property
    def prefill_seconds_saved(self) -> float | None:
        if self.prefill_s_per_token is None:
            return None
        return self.cached_tokens * self.prefill_s_per_token

    @property
    def money_saved(self) -> float | None:
        if self.price_per_million is None:
            return None
        return self.cached_tokens * self.price_per_million / 1e6

    def per_hour(self, value: float | None) -> float | None:
        """`value` (a total over the span) as a rate per hour; None without a span to divide by."""
        if value is None or self.span_s <= 0:
            return None
        return value * HOUR_S / self.span_s


def savings(samples: Sequence[MetricSample], since: float, price_per_million: float | None = None) -> Savings:
    """The cache's savings over `samples` (one target's, any order), which cover the time from `since`."""
    cached = queried = prefill_s = prefilled_tokens = 0.0
    first_ts: float | None = None
    last_ts: float | None = None
    prev_ts = since
    for s in sorted(samples, key=lambda s: s.ts):
        window = s.window_s
        if window is None or window <= 0 or s.ts <= prev_ts:
            prev_ts = max(prev_ts, s.ts)
            continue
        # The share of this window not already counted by the previous sample (all of it after a gap).
        share = min(s.ts - prev_ts, window) / window
        prev_ts = s.ts
        first_ts = s.ts - share * window if first_ts is None else first_ts
        last_ts = s.ts
        hits, queries = (s.prefix_hits or 0.0) * share, (s.prefix_queries or 0.0) * share
        cached += hits
        queried += queries
        if s.prefill_seconds is not None and queries > hits:
            prefill_s += s.prefill_seconds * share
            prefilled_tokens += queries - hits
    span = (last_ts - first_ts) if first_ts is not None and last_ts is not None else 0.0
    return Savings(
        span_s=span,
        cached_tokens=cached,
        queried_tokens=queried,
        prefill_s_per_token=prefill_s / prefilled_tokens if prefilled_tokens > 0 else None,
        price_per_million=price_per_million,
    )
