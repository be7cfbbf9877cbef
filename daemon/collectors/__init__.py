"""Per-engine collectors: parsed exposition -> `RawReading` (see `base`), and engine detection.

Usage: `engine = detect_engine(expo)`; `reading = read(expo, engine, ts)` (server strings cleaned,
values checked: `daemon.collectors.checks`); then a `CounterWindow`
per target (`daemon.collectors.window`) turns successive readings into `MetricSample`s.
"""

from __future__ import annotations

from types import ModuleType

from daemon.collectors import checks, llamacpp, sglang, tgi, triton, vllm
from daemon.collectors.base import RawReading
from daemon.prom import Exposition, Labels
from daemon.text import clean_json

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


class _EveryName(dict[str, list[tuple[Labels, float]]]):
    """A samples dict that claims to hold every name (empty) and records what was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: object = None) -> list[tuple[Labels, float]]:
        self.asked.add(key)
        return []

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return True


_WANTED: dict[str, frozenset[str]] = {}


def wanted_names(engine: str) -> frozenset[str]:
    """Every sample name the engine's collector reads, found by running it on a recording exposition.

    Derived, not declared, so the parser's `only=` filter can never drift from what the collector
    uses. Every presence test answers yes, so every branch's names are recorded.
    """
    names = _WANTED.get(engine)
    if names is None:
        expo = Exposition()
        recorder = _EveryName()
        expo.samples = recorder
        COLLECTORS[engine].read(expo, 0.0)
        names = _WANTED[engine] = frozenset(recorder.asked)
    return names


def read(expo: Exposition, engine: str, ts: float) -> RawReading:
    module = COLLECTORS.get(engine)
    if module is None:
        raise UnknownEngineError(f"unknown engine {engine!r} (known: {', '.join(ENGINES)})")
    reading: RawReading = module.read(expo, ts)  # collectors are modules: read() is typed in each
    # `info` is the only place label text from the server leaves a collector (model names, cache
    # config): cleaned here, once for every engine, because it is shown on a terminal.
    reading.info = clean_json(reading.info)
    # Every number checked once, for every engine: NaN/Inf/out-of-range values are dropped with
    # the reason (`reading.rejected`), so they are never shown as data nor turned into bottlenecks.
    checks.check_reading(reading, expo.nan_skipped)
    return reading
