"""Pattern detectors, one module per pattern; each carries its own positive and negative examples."""

from __future__ import annotations

from types import ModuleType

from compiler.patterns import (
    branching,
    delta_matching,
    dynamic_prefix,
    loop_invariant,
    misplaced_shared_context,
    sequential_chain,
    shared_prefix,
)

DETECTORS: tuple[ModuleType, ...] = (
    shared_prefix,
    sequential_chain,
    branching,
    loop_invariant,
    delta_matching,
    dynamic_prefix,
    misplaced_shared_context,
)
