"""Token counts: exact for literal text when the caller injects the target's tokenizer, else estimated.

The compiler never talks to a server itself: the CLI/daemon pass a `TokenCounter` (for vLLM it wraps
`POST /tokenize`). Dynamic segments have no text at compile time, so their size is an *assumption*
chosen from the variable's name and origin; every figure built on them says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from compiler.model import SourceKind

TokenCounter = Callable[[str], int]

# Assumed sizes of run-time values, in tokens. The large-input default follows the spec's test case 1
# (a 500-1000 token document) and the template default its test case 2 (500-token base template).
LARGE_INPUT_TOKENS = 750
TEMPLATE_TOKENS = 500
HISTORY_TOKENS = 400
CALL_OUTPUT_TOKENS = 150
SMALL_VALUE_TOKENS = 40
VOLATILE_TOKENS = 12
FILL_TOKENS = 50  # `.format(**fields)` substitutions into a run-time template (spec: delta 50 tokens)

_LARGE = re.compile(
    r"(doc|document|text|context|article|content|report|transcript|passage|page|body|file|"
    r"source|code|paper|chunk|corpus|email|contract|essay|notes)s?$",
    re.IGNORECASE,
)
_TEMPLATE = re.compile(r"template|instructions?$|prompt_base|base_prompt", re.IGNORECASE)
_HISTORY = re.compile(
    r"history|messages|conversation|transcript|scratchpad|trajectory|memory|context_window", re.IGNORECASE
)


def estimate_tokens(text: str) -> int:
    """About 4 characters per token for English text with BPE tokenizers; never 0 for non-empty text."""
    if not text:
        return 0
    return max(1, (len(text) + 3) // 4)


@dataclass
class Tokenizer:
    """Counts literal text with the injected counter (cached) or the estimate."""

    counter: TokenCounter | None = None
    name: str = "estimate (chars/4)"
    _cache: dict[str, int] = field(default_factory=dict)

    @property
    def estimated(self) -> bool:
        return self.counter is None

    def count(self, text: str) -> int:
        if not text:
            return 0
        if self.counter is None:
            return estimate_tokens(text)
        cached = self._cache.get(text)
        if cached is None:
            cached = int(self.counter(text))
            self._cache[text] = cached
        return cached


def assumed_tokens(name: str, source: SourceKind, max_tokens: int | None = None, fills: int = 0) -> int:
    """The size we assume for a run-time value, from where it comes from and what it is called."""
    base = name.rsplit(".", 1)[-1].strip("()[]'\"")
    if source is SourceKind.VOLATILE:
        size = VOLATILE_TOKENS
    elif source is SourceKind.CALL_OUTPUT and not _HISTORY.search(base):
        size = min(max_tokens, 512) if max_tokens else CALL_OUTPUT_TOKENS
    elif _HISTORY.search(base):
        size = HISTORY_TOKENS
    elif _TEMPLATE.search(base):
        size = TEMPLATE_TOKENS
    elif _LARGE.search(base):
        size = LARGE_INPUT_TOKENS
    else:
        size = SMALL_VALUE_TOKENS
    return size + (FILL_TOKENS if fills else 0)
