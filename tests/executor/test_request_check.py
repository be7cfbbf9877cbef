"""Predicted vs delivered per request (executor/request_check.py): exact predictions and each miss's cause."""

from __future__ import annotations

import pytest

from executor.request_check import SentRequest, check_requests, summary

B = 4
SYSTEM = list(range(100, 108))  # two full blocks shared by every request below


def sent(
    seq: int,
    tail: list[int],
    delivered: int | None,
    *,
    at: float,
    prefill: float = 0.5,
    replica: str = "a",
    checked: bool = True,
    prefix: list[int] = SYSTEM,
) -> SentRequest:
    return SentRequest(seq, f"c{seq}", replica, at, at + prefill, [*prefix, *tail], delivered, checked)


def test_the_first_request_with_a_prefix_misses_it_and_the_next_one_hits():
    checks = check_requests([sent(0, [1, 2, 3], 0, at=0.0), sent(1, [7, 8, 9], 8, at=2.0)], B)
    assert [(c.predicted, c.delivered, c.cause) for c in checks] == [(8, 0, "first"), (8, 8, None)]
    assert checks[0].missed == 8 and checks[1].missed == 0
    assert "no request before it sent block 0 (tokens 0..3)" in (checks[0].reason or "")


def test_a_sibling_sent_before_the_prefix_was_computed_misses_in_flight():
    checks = check_requests([sent(0, [1], 0, at=0.0, prefill=1.0), sent(1, [2], 0, at=0.2)], B)
    assert checks[1].cause == "in_flight"
    assert checks[1].reason == (
        "sent 0.20s after #0, which computes block 0 (tokens 0..3), before its prefill had finished (1.00s)"
    )


def test_a_request_on_another_replica_misses_for_routing():
    checks = check_requests([sent(0, [1], 0, at=0.0), sent(1, [2], 0, at=3.0, replica="b")], B)
    assert checks[1].cause == "replica" and "on another server (a)" in (checks[1].reason or "")


def test_a_finished_prefix_that_is_gone_was_evicted_with_the_traffic_in_between_against_the_cache():
    other = list(range(500, 540))  # 40 tokens of unrelated traffic in between
    requests = [
        sent(0, [1], 0, at=0.0),
        sent(1, [], None, at=1.0, prefix=other),
        sent(2, [2], 0, at=2.0),
    ]
    checks = check_requests(requests, B, kv_capacity_tokens=32)
    assert checks[2].cause == "evicted"
    assert checks[2].reason is not None and checks[2].reason.endswith(
        "; 40 tokens sent in between, more than the KV cache's 32"
    )
    roomy = check_requests(requests, B, kv_capacity_tokens=4096)
    assert (roomy[2].reason or "").endswith("within the KV cache's 4,096")


def test_a_warm_up_computes_the_prefix_and_is_not_judged():
    warm = sent(0, [], 4, at=0.0, checked=False)  # the warm-up: the prefix alone
    checks = check_requests([warm, sent(1, [1, 2], 8, at=1.0), sent(2, [3, 4], 0, at=2.0)], B)
    assert [c.seq for c in checks] == [1, 2]
    assert checks[0].cause is None  # the warm-up served it
    assert checks[1].cause == "evicted"  # computed by the warm-up and #1, finished, then gone


def test_only_full_blocks_before_the_last_token_are_predicted_and_a_short_fall_under_a_block_is_no_miss():
    # 8 shared tokens + 0 more: the last token is always computed, so only block 0 can hit.
    checks = check_requests([sent(0, [], None, at=0.0), sent(1, [], 4, at=1.0), sent(2, [5], 7, at=2.0)], B)
    assert [c.predicted for c in checks] == [4, 4, 8]
    assert checks[2].cause is None  # 1 token short of the prediction: less than a block


def test_divergence_stops_the_prediction_at_the_first_unshared_block():
    a = sent(0, [1, 1, 1, 1, 9, 9, 9, 9, 0], None, at=0.0)
    b = sent(1, [1, 1, 1, 1, 8, 8, 8, 8, 0], None, at=1.0)  # shares blocks 0-2, differs in block 3
    assert [c.predicted for c in check_requests([a, b], B)] == [12, 12]


def test_summary_counts_what_was_reported_and_misses_by_cause():
    checks = check_requests(
        [
            sent(0, [1], 0, at=0.0),
            sent(1, [2], 0, at=0.1),
            sent(2, [3], None, at=5.0),
            sent(3, [4], 8, at=6.0),
        ],
        B,
    )
    assert summary(checks) == {
        "requests": 4,
        "reported": 3,
        "prompt": 27,  # the three that reported: 8 system tokens and their own one
        "predicted": 24,
        "delivered": 8,
        "misses": 2,
        "first": 1,
        "in_flight": 1,
    }


def test_block_size_must_be_positive():
    with pytest.raises(ValueError):
        check_requests([], 0)


def test_the_trace_report_says_what_the_run_saved_and_at_what_price() -> None:
    from pathlib import Path

    from charter_tui.commands.doctor_trace import TraceCheck, render

    checks = check_requests([sent(0, [1], 0, at=0.0), sent(1, [2], 8, at=1.0)], B)
    traced = TraceCheck(Path("run.json"), B, None, checks, untokenized=0, failed=0)
    assert "  saved on this run: 8 of 18 prompt tokens came from the cache (44.4%)" in render(traced)
    priced = render(traced, price_per_million=3.0)
    assert (
        "  saved on this run: 8 of 18 prompt tokens came from the cache (44.4%), 2.4e-05 at 3 per million"
        in priced
    )
