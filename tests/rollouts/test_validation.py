"""Validation: canary vs baseline per signal, thresholds and min samples from the config."""

from __future__ import annotations

from daemon.config import RolloutConfig, SignalThreshold
from daemon.models import MetricSample
from daemon.rollouts.validation import baseline_samples, canary_samples, compare, signal_value

CFG = RolloutConfig(min_samples=3)


def samples(
    values: list[float], *, start: float = 100.0, signal: str = "ttft_p95_s", **extra: float
) -> list[MetricSample]:
    return [
        MetricSample(instance="a", ts=start + i, window_s=1.0, **{signal: v}, **extra)
        for i, v in enumerate(values)
    ]


def test_latency_regression_beyond_both_thresholds_fails() -> None:
    result = compare(samples([0.10, 0.11, 0.10]), samples([0.20, 0.21, 0.19]), ["ttft_p95_s"], CFG)
    assert result.verdict == "FAIL"
    sig = result.signals[0]
    assert sig["baseline"] == 0.10 and sig["canary"] == 0.20
    assert abs(sig["relative"] - 1.0) < 1e-9
    assert "ttft_p95_s worse by" in result.summary


def test_small_absolute_change_is_noise_even_if_relative_is_large() -> None:
    # +50% but only 0.5 ms: under the 5 ms floor of ttft_p95_s.
    assert compare(samples([0.001] * 3), samples([0.0015] * 3), ["ttft_p95_s"], CFG).verdict == "PASS"
    strict = RolloutConfig(
        min_samples=3, thresholds={"ttft_p95_s": SignalThreshold(max_regression=0.1, min_abs_change=0)}
    )
    assert compare(samples([0.001] * 3), samples([0.0015] * 3), ["ttft_p95_s"], strict).verdict == "FAIL"


def test_direction_matters_for_throughput_and_hit_rate() -> None:
    up = compare(
        samples([100, 100, 100], signal="generation_tokens_per_s"),
        samples([150, 150, 150], signal="generation_tokens_per_s"),
        ["generation_tokens_per_s"],
        CFG,
    )
    down = compare(
        samples([100, 100, 100], signal="generation_tokens_per_s"),
        samples([50, 50, 50], signal="generation_tokens_per_s"),
        ["generation_tokens_per_s"],
        CFG,
    )
    assert (up.verdict, down.verdict) == ("PASS", "FAIL")
    hit = compare(
        samples([0.8] * 3, signal="prefix_hit_rate"),
        samples([0.2] * 3, signal="prefix_hit_rate"),
        ["prefix_hit_rate"],
        CFG,
    )
    assert hit.verdict == "FAIL"


def test_too_few_samples_is_inconclusive_not_a_pass() -> None:
    result = compare(samples([0.1, 0.1, 0.1]), samples([0.1, 0.1]), ["ttft_p95_s"], CFG)
    assert result.verdict == "INCONCLUSIVE"
    assert "2 canary samples, need 3" in result.summary


def test_no_traffic_at_all_is_inconclusive() -> None:
    idle = [MetricSample(instance="a", ts=100.0 + i) for i in range(5)]
    assert compare(idle, idle, ["ttft_p95_s", "error_rate"], CFG).verdict == "INCONCLUSIVE"


def test_a_regression_fails_even_when_another_signal_lacks_data() -> None:
    base = samples([0.1] * 3)
    canary = samples([0.5] * 3)
    result = compare(base, canary, ["ttft_p95_s", "itl_p95_s"], CFG)
    assert result.verdict == "FAIL"
    assert [s["verdict"] for s in result.signals] == ["fail", "unavailable"]


def test_error_rate_is_failures_over_all_requests() -> None:
    s = MetricSample(instance="a", requests_success_per_s=9.0, requests_failure_per_s=1.0)
    assert signal_value(s, "error_rate") == 0.1
    assert (
        signal_value(
            MetricSample(instance="a", requests_success_per_s=0.0, requests_failure_per_s=0.0), "error_rate"
        )
        is None
    )
    ok = samples([1.0] * 3, signal="requests_success_per_s", requests_failure_per_s=0.0)
    bad = samples([1.0] * 3, signal="requests_success_per_s", requests_failure_per_s=1.0)
    assert compare(ok, bad, ["error_rate"], CFG).verdict == "FAIL"
    assert compare(ok, ok, ["error_rate"], CFG).verdict == "PASS"


def test_window_selection_excludes_straddling_and_reset_samples() -> None:
    rows = [
        MetricSample(instance="a", ts=105.0, window_s=10.0),  # window 95-105 straddles a change at 100
        MetricSample(instance="a", ts=111.0, window_s=10.0),  # 101-111: fully after
        MetricSample(instance="a", ts=112.0, window_s=1.0, counter_reset=True),
        MetricSample(instance="a", ts=150.0, window_s=1.0),  # after the window's end
    ]
    assert [s.ts for s in canary_samples(rows, 100.0, 140.0)] == [111.0]
    assert [s.ts for s in baseline_samples(rows, 100.0, 140.0)] == [105.0, 111.0]


def test_window_means_judge_engines_without_histograms() -> None:
    # Triton core exports request duration as counters: the collector stores the window mean.
    result = compare(
        samples([0.02] * 3, signal="e2e_mean_s"),
        samples([0.40] * 3, signal="e2e_mean_s"),
        ["e2e_mean_s", "ttft_p95_s"],
        CFG,
    )
    assert result.verdict == "FAIL"
    assert [s["verdict"] for s in result.signals] == ["fail", "unavailable"]


def test_only_a_regression_beyond_factor_times_the_threshold_is_gross() -> None:
    """ttft +35% (threshold 10%) is a failure and, at factor 3, gross, not at 4; +25% fails at the window's
    end but is not gross; factor 0 turns the early check off; a passing signal is never gross."""
    from daemon.rollouts.validation import gross_regressions

    cfg = RolloutConfig(min_samples=2)

    def comparison(canary_value: float):
        base = [MetricSample(instance="a", ts=float(i), ttft_p95_s=0.1) for i in range(3)]
        can = [MetricSample(instance="a", ts=float(i), ttft_p95_s=canary_value) for i in range(3)]
        return compare(base, can, ["ttft_p95_s"], cfg)

    worse = comparison(0.135)
    assert worse.verdict == "FAIL" and [r["signal"] for r in gross_regressions(worse, 3.0)] == ["ttft_p95_s"]
    assert gross_regressions(worse, 4.0) == [] and gross_regressions(worse, 0) == []
    assert gross_regressions(comparison(0.125), 3.0) == []  # +25%: fails at the window's end, not gross
    assert gross_regressions(comparison(0.1), 1.0) == []


def test_a_canary_window_shorter_than_the_samples_window_says_why_it_cannot_judge(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Samples cover the `[thresholds] window_s` before them; only one wholly inside the canary window
    counts. A 30 s canary window under 60 s samples can never count one: the pause says so and what to set."""
    from daemon.models import Rollout
    from daemon.rollouts.canary import compare_canary
    from daemon.rollouts.model import StageDetail
    from daemon.store import Store

    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    since = 1000.0
    store.add_all(
        [
            MetricSample(instance="a", ts=since - 60 + i, window_s=60.0, ttft_p95_s=0.1)
            for i in range(0, 60, 5)
        ]
        + [MetricSample(instance="a", ts=since + i, window_s=60.0, ttft_p95_s=0.1) for i in range(1, 30, 5)]
    )
    stage = StageDetail(
        canary="a", order=["a"], canary_since=since, baseline={"since": since - 60, "until": since}
    )
    row = Rollout(id=1, targets=["a"], changes=[], stage_detail=stage.model_dump(mode="json"))
    cfg = RolloutConfig(warmup_s=0.0, canary_window_s=30.0, min_samples=3, default_signals=["ttft_p95_s"])
    comparison = compare_canary(store, row, cfg, clock=lambda: since + 40)
    assert comparison.verdict == "INCONCLUSIVE"
    assert "make [rollouts] canary_window_s longer than 60 s" in comparison.summary
    wide = compare_canary(
        store, row, cfg.model_copy(update={"canary_window_s": 90.0}), clock=lambda: since + 40
    )
    assert "canary_window_s longer" not in wide.summary  # long enough: only waiting for samples
    store.close()
