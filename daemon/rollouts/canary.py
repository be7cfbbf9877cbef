"""Which samples judge a canary: the windows the VALIDATING step compares, read from the store.

`validation` judges two lists of samples and knows nothing of time; choosing the lists is a rule of its own,
kept here so it can be read (and changed) in one place:
- the canary window starts `warmup_s` after the change was verified on the canary and lasts
  `canary_window_s`;
- with other targets in the rollout (still on the old config), the baseline is their samples over the same
  window: same time, same traffic;
- with one target, the baseline is its own samples from the `baseline_window_s` before the change (recorded
  when the change was applied, `stage.baseline`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from daemon.config import RolloutConfig
from daemon.models import MetricSample, Rollout
from daemon.rollouts.model import Comparison
from daemon.rollouts.repo import stage_of
from daemon.rollouts.validation import baseline_samples, canary_samples, compare
from daemon.store import Store


def compare_canary(
    store: Store, row: Rollout, cfg: RolloutConfig, *, clock: Callable[[], float], so_far: bool = False
) -> Comparison:
    """The canary's window against its baseline, on the rollout's signals (blocking: reads the store).
    `so_far`: the window up to now, for the early check while the canary still runs."""
    stage = stage_of(row)
    assert stage.canary is not None and stage.canary_since is not None
    since = stage.canary_since + cfg.warmup_s
    until = since + cfg.canary_window_s
    if so_far:
        until = min(until, clock())
    in_range = store.samples(stage.canary, since - 3600, until + 1)
    canary = canary_samples(in_range, since, until)
    others = [t for t in stage.order if t != stage.canary]
    baseline: list[MetricSample]
    info: dict[str, Any]
    if others:  # the rest still run the old config: judge the canary against them, same time, same traffic
        baseline = [
            s for t in others for s in baseline_samples(store.samples(t, since, until + 1), since, until)
        ]
        info = {"targets": others, "since": since, "until": until, "kind": "peers"}
    else:  # one target: against its own samples from before the change
        b = stage.baseline or {}
        b_since, b_until = b.get("since", since - cfg.baseline_window_s), b.get("until", stage.canary_since)
        baseline = baseline_samples(store.samples(stage.canary, b_since, b_until), b_since, b_until)
        info = {"targets": [stage.canary], "since": b_since, "until": b_until, "kind": "self-before"}
    comparison = compare(
        baseline,
        canary,
        stage.signals or cfg.default_signals,
        cfg,
        baseline_info=info,
        canary_info={"target": stage.canary, "since": since, "until": until},
        now=clock(),
    )
    widest = max((s.window_s or 0.0 for s in in_range if s.ts > since), default=0.0)
    if not canary and comparison.verdict == "INCONCLUSIVE" and widest > cfg.canary_window_s:
        # Only a sample whose whole window lies in the canary's can judge it: a window this short can never
        # hold one (a new user's canaries paused "0 canary samples" with no reason given).
        comparison.summary += (
            f"; no sample can count: each covers the {widest:g} s before it ([thresholds] window_s) and the canary "
            f"window is {cfg.canary_window_s:g} s: make [rollouts] canary_window_s longer than {widest:g} s"
        )
    return comparison
