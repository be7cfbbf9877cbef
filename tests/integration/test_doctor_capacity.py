"""The cache doctor on the real vLLM CPU server: a KV cache too small for the workload is named as the first
loss with its numbers, the proposed change goes through the normal rollout gate (the daemon relaunches
vLLM: canary, validation, rollout), and the delivered hit rate comes back to within 5 points of the ceiling.
The per-request check of the traced run explains its misses.

The scenario itself is benchmarks/doctor_capacity.py (its committed page:
benchmarks/results/doctor_capacity.md); this runs it once (two vLLM starts, ~3-4 minutes here).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.doctor_capacity import SMALL_KV_BYTES, run_scenario

pytestmark = pytest.mark.vllm


def test_capacity_is_found_fixed_through_the_gate_and_the_hit_rate_recovers(
    vllm_kit_dir: Path, tmp_path: Path
) -> None:
    result = run_scenario(tmp_path / "scenario", log=lambda _: None)
    before, after = result.before, result.after

    # Before: the server says how big its cache is, and the doctor names capacity first, with numbers.
    assert int(before.kv_cache["kv_cache_memory_bytes"]) == SMALL_KV_BYTES
    losses = [(name, pts) for name, pts in before.losses() if pts > 0.5]
    assert losses and losses[0][0] == "capacity", before.losses()
    capacity = next(s for s in before.doctor["steps"] if s["name"] == "capacity")
    assert f"LRU cache of {int(before.kv_cache['kv_cache_size_tokens']):,} tokens" in capacity["evidence"]
    assert "a cache of" in capacity["evidence"] and capacity["lever"].startswith("more KV memory")
    assert capacity["points"] >= 20.0, capacity  # the cliff: contracts evicted before their next question
    # Every step is labelled, and the modelled steps account for the gap: what is left is within 5 points.
    assert all(s["evidence"] for s in before.doctor["steps"])
    rest = before.step("unexplained") or before.step("eviction") or 0.0
    assert abs(rest) <= 5.0, before.losses()

    # The change, proposed and carried out through the gate, is what the server now runs.
    change = before.doctor["change"]
    assert change["param"] == "kv_cache_memory_bytes" and change["value"] > SMALL_KV_BYTES
    assert result.rollout["state"] == "COMPLETED"
    assert result.states == [
        "PENDING_APPROVAL",
        "APPROVED",
        "CANARY",
        "VALIDATING",
        "ROLLING_OUT",
        "COMPLETED",
    ]
    assert "--kv-cache-memory-bytes" in result.argv_after
    assert result.argv_after[result.argv_after.index("--kv-cache-memory-bytes") + 1] == str(change["value"])
    assert int(after.kv_cache["kv_cache_memory_bytes"]) == change["value"]

    # After: capacity costs nothing, and the delivered hit rate is within 5 points of the ceiling.
    assert (after.step("capacity") or 0.0) <= 0.5, after.losses()
    ceiling, delivered = after.step("ceiling"), after.step("delivered")
    assert ceiling is not None and delivered is not None
    assert abs(ceiling - delivered) <= 5.0, after.losses()
    assert delivered - (before.step("delivered") or 0.0) >= 20.0

    # What the cache saved, from the real server's counters: its prefill time per computed token is
    # measured, and the bigger cache saves more prompt tokens of the same traffic.
    saved_before, saved_after = before.doctor["saved"], after.doctor["saved"]
    assert saved_before["prefill_s_per_token"] > 0 and saved_after["prefill_seconds_saved_per_hour"] > 0
    share = [s["cached_tokens"] / s["queried_tokens"] for s in (saved_before, saved_after)]
    assert share[1] - share[0] >= 0.15, share

    # Per request: predicted vs the server's cached_tokens, misses explained (evicted: the traffic in
    # between was more than the cache holds).
    trace = before.doctor["trace"]
    assert trace["summary"]["reported"] == trace["summary"]["requests"] > 0
    evicted = [r for r in trace["requests"] if r["cause"] == "evicted"]
    assert evicted and all("more than the KV cache's" in r["reason"] for r in evicted)
    assert after.doctor["trace"]["summary"].get("evicted", 0) < len(evicted)
