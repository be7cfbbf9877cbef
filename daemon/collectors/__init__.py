"""Per-engine collectors: parsed exposition -> `RawReading` (see `base`), and engine detection.

Usage: `engine = detect_engine(expo)`; `reading = read(expo, engine, ts)`; then a `CounterWindow`
per target (`daemon.collectors.window`) turns successive readings into `MetricSample`s.
"""

from __future__ import annotations

from types import ModuleType

from daemon.collectors import llamacpp, sglang, tgi, triton, vllm
from daemon.collectors.base import RawReading
from daemon.prom import Exposition

COLLECTORS: dict[str, ModuleType] = {m.ENGINE: m for m in (vllm, triton, sglang, tgi, llamacpp)}
ENGINES: tuple[str, ...] = tuple(COLLECTORS)


class UnknownEngineError(ValueError):
    pass


def detect_engine(expo: Exposition) -> str | None:
    """The engine whose metric names dominate the exposition, or None if none is recognised.

    Counting names rather than testing for one marker handles servers that embed another (vLLM as a
    Triton backend exports both `vllm:*` and `nv_inference_*`: the per-engine families win there
    because they outnumber Triton's handful of core counters — and they carry the LLM signals).
    """
    best, best_score = None, 0
    for name, module in COLLECTORS.items():
        s = module.score(expo)
        if s > best_score:
            best, best_score = name, s
    return best


def read(expo: Exposition, engine: str, ts: float) -> RawReading:
    module = COLLECTORS.get(engine)
    if module is None:
        raise UnknownEngineError(f"unknown engine {engine!r} (known: {', '.join(ENGINES)})")
    return module.read(expo, ts)
