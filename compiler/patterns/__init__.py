"""Pattern rules, one module per pattern: each a `PatternRule` class whose examples document and test it."""

from __future__ import annotations

from compiler.patterns.base import PatternRule
from compiler.patterns.branching import BranchingRule
from compiler.patterns.delta_matching import DeltaMatchingRule
from compiler.patterns.dynamic_prefix import DynamicPrefixRule
from compiler.patterns.growing_history import GrowingHistoryRule
from compiler.patterns.loop_invariant import LoopInvariantRule
from compiler.patterns.map_reduce import MapReduceRule
from compiler.patterns.misplaced_shared_context import MisplacedSharedContextRule
from compiler.patterns.sequential_chain import SequentialChainRule
from compiler.patterns.shared_prefix import SharedPrefixRule

# In the order findings are detected (ties in the sorted output keep it).
RULES: tuple[type[PatternRule], ...] = (
    SharedPrefixRule,
    SequentialChainRule,
    MapReduceRule,
    BranchingRule,
    LoopInvariantRule,
    GrowingHistoryRule,
    DeltaMatchingRule,
    DynamicPrefixRule,
    MisplacedSharedContextRule,
)
