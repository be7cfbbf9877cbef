"""The compiler's estimate for traffic: the hit share the prompts an agent would send could get.

A one-request figure on an empty cache (the plan's `block_shares`) cannot see reuse between requests
— a system prompt the second request finds cached — so on real traffic measurement beat it by up to
84 points. This estimate is for traffic instead: the compiled agent is bound to each record of a
sample of real inputs (the `bench` JSONL) exactly as `bench` binds it, every call is answered by a
`ModelledTarget` instead of a server, and the executor's own runner sends the requests (naive or
optimized, warm-ups included). What the cache can reuse across all of them is then totalled by the
same block-level rules the bench applies to the server's real token ids (`executor.ceiling`), with
the cache carried from one request to the next as a server carries it.

Two figures come out:
- `estimate`: the block-level share (full blocks, longest cached prefix, last token recomputed) —
  what a cache large enough for the traffic would deliver;
- `ceiling`: the same prompts at token granularity (no block flooring), which no engine can beat;
  it stays above a measurement even where the modelled prompts are a few tokens off the real ones.

What is modelled rather than known, and said in `assumptions`: the outputs. A call's output is a
stand-in text of its `max_tokens` tokens derived from its prompt — greedy decoding, so the same
prompt gives the same output and a repeated prompt reuses its generated blocks too — and the exact
words differ from the model's. Token ids come from the server's `/tokenize` when a target is given
(exact for every literal and input), else from a word-level stand-in tokenizer (sizes estimated).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from compiler.model import CompileResult
from daemon.bench.records import Ceiling, Mode
from executor.binding import Binder, BindOptions
from executor.ceiling import CeilingTracker, LruTracker
from executor.inputs import InputRecord
from executor.runner import RunOptions, run_workload
from executor.targets import Outcome, Target

# Words of the stand-in outputs: short and common, so most are one token in a BPE vocabulary.
_WORDS = (
    "the of and to in is it that for on was with as be at by this had not are but from or have an "
    "they which one you were all we her she there would their will when who him been has more if no "
    "out so said what up its about than into them can only other new some could time these two may"
).split()
_WORD = re.compile(r"\s*\S+|\s+")


def _stable(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def word_ids(text: str) -> list[int]:
    """A stand-in tokenizer: one id per word (with its leading space), the same id for the same word."""
    return [_stable(w) for w in _WORD.findall(text)]


def chat_text(messages: list[dict[str, str]]) -> str:
    """Chat messages flattened as the compiler flattens them (`compiler.templates`): role marks and content."""
    return "".join(f"<|{m.get('role', '')}|>\n{m.get('content', '')}\n" for m in messages) + "<|assistant|>\n"


class ModelledTarget:
    """A `Target` that answers at once: prompts tokenized (by `via`'s `/tokenize`, else `word_ids`),
    each output a stand-in of exactly the requested token count, the same for the same prompt."""

    engine = "modelled"

    def __init__(self, block_size: int, via: Target | None = None) -> None:
        self.block_size: int | None = block_size
        self.via = via
        self.url = f"modelled:{via.url}" if via is not None else "modelled:"
        self.model = via.model if via is not None else "modelled"
        self._outputs: dict[tuple[int, ...], tuple[str, list[int]]] = {}

    async def tokenize(
        self, text: str, messages: list[dict[str, str]] | None = None, continue_final: bool = False
    ) -> list[int] | None:
        if self.via is not None:
            return await self.via.tokenize(text, messages, continue_final)
        return word_ids(chat_text(messages) if messages is not None else text)

    async def _ids(self, text: str) -> list[int]:
        """Ids of `text` on its own (an output as a later prompt quotes it)."""
        if self.via is not None:
            ids = await self.via.tokenize(text)
            if ids is None:
                raise ValueError(f"{self.via.url}: /tokenize failed")
            return ids
        return word_ids(text)

    async def complete(
        self,
        prompt: str | list[int],
        max_tokens: int,
        timeout_s: float,
        messages: list[dict[str, str]] | None = None,
    ) -> Outcome:
        if isinstance(prompt, list):  # a warm-up: already token ids
            prompt_ids = prompt
        else:
            found = await self.tokenize(prompt, messages)
            if found is None:
                raise ValueError(f"{self.url}: /tokenize failed")
            prompt_ids = found
        key = (*prompt_ids, -max_tokens)
        if key not in self._outputs:
            self._outputs[key] = await self._output(_stable(",".join(map(str, key))), max_tokens)
        text, output_ids = self._outputs[key]
        return Outcome(
            text=text,
            prompt_tokens=len(prompt_ids),
            completion_tokens=len(output_ids),
            cached_tokens=None,
            ttft_s=0.0,
            latency_s=0.0,
            prompt_ids=prompt_ids,
            output_ids=output_ids,
        )

    async def _output(self, seed: int, max_tokens: int) -> tuple[str, list[int]]:
        """Stand-in words for an output, as many as fit in `max_tokens` tokens of the tokenizer."""
        words = [_WORDS[(seed // (i + 1) + i * 7919) % len(_WORDS)] for i in range(max_tokens)]
        count = max_tokens
        while count > 0:
            text = " " + " ".join(words[:count])
            ids = await self._ids(text)
            if len(ids) <= max_tokens:
                return text, ids
            count -= max(1, len(ids) - max_tokens)
        return "", []

    async def metrics_text(self) -> str:
        return ""  # no server counters: the estimate is the ceiling of what is sent

    async def reset_prefix_cache(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


@dataclass
class TrafficEstimate:
    requests: int
    block_size: int
    prompt_tokens: int = 0
    cached_tokens: int = 0  # block level: the estimate
    token_level_cached: int = 0  # no block flooring: the ceiling
    first_request_share: float = 0.0  # the first request alone, on an empty cache
    working_set_tokens: int = (
        0  # distinct tokens in reusable blocks: what a cache must hold to reach the estimate
    )
    assumptions: list[str] = field(default_factory=list)
    # What was sent, in order (prompt ids, generated ids): for replays on a bounded cache.
    sent: list[tuple[list[int], list[int]]] = field(default_factory=list, repr=False, compare=False)

    def replay(self, capacity_tokens: int | None, beside: float = 0.0) -> float:
        """The hit share of the same requests in the same order on an LRU cache of `capacity_tokens`
        (None: unbounded — what this order allows at best), `beside` requests running next to each one."""
        if not self.prompt_tokens:
            return 0.0
        distinct = sum(len(p) + len(g) for p, g in self.sent) // self.block_size + 1
        blocks = distinct if capacity_tokens is None else capacity_tokens // self.block_size
        lru = LruTracker(self.block_size, blocks, 0.0 if capacity_tokens is None else beside)
        for prompt, generated in self.sent:
            lru.add([prompt], [generated])
        return lru.cached_tokens() / self.prompt_tokens

    def held_tokens(self, beside: float) -> int:
        """What `beside` requests of the mean size hold (whole blocks, as the replay counts them)."""
        if not self.sent:
            return 0
        blocks = sum(len(p) + max(0, len(g) - 1) for p, g in self.sent) // self.block_size / len(self.sent)
        return round(beside * blocks) * self.block_size

    def capacity_for(self, beside: float = 0.0, within: float = 0.005) -> int:
        """The smallest KV size in tokens (whole blocks) at which the replay comes within `within` of the
        unbounded one: what the server needs for this traffic, before any headroom."""
        best = self.replay(None)
        low, high = 0, self.block_size
        while self.replay(high, beside) < best - within:
            low, high = high, high * 2
        while high - low > self.block_size:  # bisect on whole blocks
            mid = (low + high) // 2 // self.block_size * self.block_size
            if mid <= low:
                break
            if self.replay(mid, beside) >= best - within:
                high = mid
            else:
                low = mid
        return high

    @property
    def estimate(self) -> float:
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    @property
    def ceiling(self) -> float:
        return self.token_level_cached / self.prompt_tokens if self.prompt_tokens else 0.0


class _BothLevels(CeilingTracker):
    """The ceiling at the engine's block size, and beside it the same at one-token blocks (no flooring):
    the same order-independent rule, so neither depends on the order a concurrent plan sent things."""

    def __init__(self, block_size: int) -> None:
        super().__init__(block_size)
        self.token_level = CeilingTracker(1)
        self.sent: list[tuple[list[int], list[int]]] = []

    def add(
        self, prompts: Sequence[Sequence[int]], generated: Sequence[Sequence[int]] | None = None
    ) -> Ceiling:
        self.token_level.add(prompts, generated)
        for i, prompt in enumerate(prompts):
            self.sent.append((list(prompt), list(generated[i]) if generated is not None else []))
        return super().add(prompts, generated)


async def estimate_traffic(
    result: CompileResult,
    records: list[InputRecord],
    *,
    block_size: int,
    mode: Mode = "optimized",
    bind: BindOptions | None = None,
    via: Target | None = None,
) -> TrafficEstimate:
    """The estimate and ceiling for `records` sent one after another on a cache that starts empty, and
    what was sent, in order, for replays on a cache of the server's size (`TrafficEstimate.replay`)."""
    target = ModelledTarget(block_size, via)
    binder = Binder(result, bind)
    tracker = _BothLevels(block_size)
    out = TrafficEstimate(requests=len(records), block_size=block_size)
    options = RunOptions(timeout_s=60.0, concurrency=64)
    for i, record in enumerate(records):
        workload = binder.bind(record, i)
        run = await run_workload(target, workload, mode, options, ceiling=tracker)
        if i == 0 and run.ceiling is not None:
            out.first_request_share = run.ceiling.hit_share
        for note in workload.notes:
            if note not in out.assumptions:
                out.assumptions.append(note)
    out.prompt_tokens = tracker.prompt_tokens
    out.cached_tokens = tracker.cached_tokens()
    out.token_level_cached = tracker.token_level.cached_tokens()
    out.working_set_tokens = len(tracker.needed) * block_size
    out.sent = tracker.sent
    out.assumptions.insert(
        0,
        "outputs are stand-ins of each call's max_tokens, the same for the same prompt (greedy decoding)",
    )
    out.assumptions.insert(
        1,
        f"tokens by {via.url}/tokenize" if via is not None else "tokens estimated (one per word)",
    )
    return out
