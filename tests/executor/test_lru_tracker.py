"""The hits an LRU cache of a given size allows (executor/ceiling.py LruTracker), worked by hand."""

from __future__ import annotations

import pytest

from executor.ceiling import CeilingTracker, LruTracker

B = 4


def doc(n: int, length: int = 9) -> list[int]:
    """A prompt of `length` tokens unique to document n: 2 full blocks + 1 token."""
    return [n * 1000 + i for i in range(length)]


def test_a_cache_that_holds_the_working_set_reaches_the_unbounded_ceiling():
    prompts = [doc(1), doc(2), doc(1), doc(2)]
    assert LruTracker(B, 4).add(prompts).cached_tokens == CeilingTracker(B).add(prompts).cached_tokens == 16


def test_round_robin_over_more_documents_than_fit_hits_nothing_the_lru_cliff():
    prompts = [doc(1), doc(2), doc(3), doc(1), doc(2), doc(3)]
    assert LruTracker(B, 4).add(prompts).cached_tokens == 0  # each document was evicted before its turn
    assert LruTracker(B, 6).add(prompts).cached_tokens == 24


def test_the_tail_of_a_request_is_evicted_before_its_head():
    # 3 blocks computed, room for 2: the head two stay, so the same prompt hits 2 blocks (8 tokens).
    prompts = [doc(1, 13), doc(1, 13)]
    assert LruTracker(B, 2).add(prompts).cached_tokens == 8


def test_requests_running_beside_hold_their_share_of_the_cache():
    prompts = [doc(1), doc(1)]
    assert LruTracker(B, 4).add(prompts).cached_tokens == 8
    # One request beside each, holding the mean request's 2 blocks: 2 left, still enough.
    assert LruTracker(B, 4, beside=1.0).add(prompts).cached_tokens == 8
    # Two beside: 4 held of 4, nothing stays.
    tracker = LruTracker(B, 4, beside=2.0)
    assert tracker.add(prompts).cached_tokens == 0 and tracker.held_blocks() == 4


def test_generated_blocks_are_cached_too():
    tracker = LruTracker(B, 8)
    tracker.add([doc(1, 8)], [[7, 7, 7, 7, 7]])  # 8 prompt + 4 computed generated tokens = 3 blocks
    assert tracker.add([[*doc(1, 8), 7, 7, 7, 7, 9]]).cached_tokens == 12


def test_block_size_must_be_positive():
    with pytest.raises(ValueError):
        LruTracker(0, 4)
