"""A fast, strict parser for the Prometheus text exposition format (version 0.0.4).

Why not `prometheus_client.parser`: it builds a `Metric` object per family and a `Sample` namedtuple
per line and re-scans every label set character by character; at 100 targets polled each second that
is most of the daemon's CPU (see benchmarks/results/poll.md). This parser does one pass with
`str.split` on the common shapes and a compiled regex only for label sets, and keeps the result as
plain dicts keyed by sample name, which is what the collectors look up.

Strict like Prometheus itself: a malformed line fails the whole scrape with `ExpositionError`
naming the line and the reason, because a half-parsed exposition would silently turn into wrong
rates (a missing `_bucket` line shifts a quantile). Input larger than `max_bytes`, or with more than
`max_lines` lines, is refused before any parsing (`str.count`, C speed), so a hostile or broken
server cannot make the daemon allocate or compute without bound.

Large expositions on the event loop: `parse_async` runs the same parser in slices of a few
milliseconds with `await asyncio.sleep(0)` between them, so the other targets' polls keep their
schedule while one server's 8 MB exposition is read, and stops with an error once the parse has
used its CPU budget. Slices, not a thread: both keep the loop's worst wait near 10-20 ms for an
8 MB exposition where parsing on the loop stops it for 110-230 ms (benchmarks/parse_offloop.py,
figures in benchmarks/results/poll_hostile.md), but a thread cannot be stopped at a CPU budget —
a hostile server would keep it busy after its poll timed out — and slices need no pool.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Collection, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

DEFAULT_MAX_BYTES = 8 * 1024 * 1024
# A vLLM exposition is ~600 lines per engine, a Triton one ~30 per model; 50,000 lines is far past
# any real server (8 data-parallel engines, hundreds of models) and still parses in ~0.1 s.
DEFAULT_MAX_LINES = 50_000
# Parsing work between two chances to yield, in characters (~1-2 ms of parsing on a slow core).
STEP_CHARS = 64 * 1024
# Smaller texts are parsed in one go even by `parse_async`: they cost less than a slice.
INLINE_BYTES = 256 * 1024
# A label set longer than this is not something any inference server emits; refusing it keeps the
# regex scan linear and bounded even on adversarial input.
MAX_LINE_CHARS = 64 * 1024

Labels = dict[str, str]

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
# One `name="value"` pair followed by `,` or `}`; the value may contain escaped quotes/backslashes.
_PAIR = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\\n]|\\.)*)"[ \t]*(,|\})')
_CLOSE = re.compile(r"[ \t]*\}")
_UNESCAPE = re.compile(r"\\(.)")
# Series repeat from scrape to scrape, so the parsed form of a label set (and the validity of a
# metric name) is memoized by its exact text: most lines then cost one dict lookup. The dicts are
# shared between parses and must be treated as read-only. Bounded so hostile input cannot grow it.
_LABEL_CACHE: dict[str, Labels] = {}
_NAME_CACHE: set[str] = set()
_CACHE_MAX = 200_000
_METRIC_TYPES = frozenset(
    {"counter", "gauge", "histogram", "summary", "untyped", "info", "stateset", "gaugehistogram", "unknown"}
)


class ExpositionError(ValueError):
    """The text is not a Prometheus exposition we can trust; the message says where and why."""

    def __init__(self, reason: str, line_no: int | None = None, kind: str = "parse") -> None:
        # kind: "parse" (malformed), "too_large" (a size, line or CPU cap: refused, not misread)
        self.reason, self.line_no, self.kind = reason, line_no, kind
        super().__init__(f"line {line_no}: {reason}" if line_no is not None else reason)


@dataclass(slots=True)
class Exposition:
    """Parsed exposition: sample name -> [(labels, value)], plus `# TYPE` declarations."""

    samples: dict[str, list[tuple[Labels, float]]] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    lines: int = 0
    # Names whose NaN values `total`/`maximum` skipped: a NaN gauge is a broken exporter, and the
    # collectors' value checks report it (`daemon.collectors.checks`) rather than let it vanish.
    nan_skipped: set[str] = field(default_factory=set)

    def names(self) -> Iterable[str]:
        return self.samples.keys()

    def has(self, name: str) -> bool:
        return name in self.samples

    def series(self, name: str) -> list[tuple[Labels, float]]:
        return self.samples.get(name, [])

    def total(
        self,
        name: str,
        where: dict[str, str] | None = None,
        exclude: Mapping[str, Collection[str]] | None = None,
    ) -> float | None:
        """Sum of a sample over its label sets (e.g. over data-parallel engines or Triton models).

        `where` keeps only series whose labels equal the given values; `exclude` drops series whose
        label is in the given set. None when the name is absent or nothing matched, so "not exported"
        stays distinguishable from zero.
        """
        rows = self.samples.get(name)
        if rows is None:
            return None
        total, matched = 0.0, False
        for labels, value in rows:
            if where and any(labels.get(k) != v for k, v in where.items()):
                continue
            if exclude and any(labels.get(k) in vs for k, vs in exclude.items()):
                continue
            if math.isnan(value):
                self.nan_skipped.add(name)
                continue
            total += value
            matched = True
        return total if matched else None

    def maximum(self, name: str) -> float | None:
        """Largest value over label sets: a fraction such as KV usage must not be summed across
        data-parallel engines, and the fullest engine is the one that preempts first."""
        values = [v for _, v in self.samples.get(name, ()) if not math.isnan(v)]
        if len(values) < len(self.samples.get(name, ())):
            self.nan_skipped.add(name)
        return max(values) if values else None

    def maximum_where(self, name: str, label: str, value: str) -> float | None:
        rows = [v for labels, v in self.samples.get(name, ()) if labels.get(label) == value]
        values = [v for v in rows if not math.isnan(v)]
        if len(values) < len(rows):
            self.nan_skipped.add(name)
        return max(values) if values else None

    def first(self, *names: str, where: dict[str, str] | None = None) -> float | None:
        """The total of the first of `names` that is present: how renamed metrics are read."""
        for name in names:
            value = self.total(name, where)
            if value is not None:
                return value
        return None

    def buckets(self, base: str, where: dict[str, str] | None = None) -> dict[float, float] | None:
        """Cumulative bucket counts of histogram `base` by upper bound, summed over label sets."""
        rows = self.samples.get(base + "_bucket")
        if rows is None:
            return None
        out: dict[float, float] = {}
        for labels, value in rows:
            le = labels.get("le")
            if le is None or (where and any(labels.get(k) != v for k, v in where.items())):
                continue
            try:
                bound = float(le)
            except ValueError:
                continue
            out[bound] = out.get(bound, 0.0) + value
        return out or None

    def quantiles(self, base: str) -> dict[float, float] | None:
        """A summary's `{quantile="q"}` values (first label set only: quantiles cannot be summed)."""
        rows = self.samples.get(base)
        if rows is None:
            return None
        out: dict[float, float] = {}
        for labels, value in rows:
            q = labels.get("quantile")
            if q is not None and not math.isnan(value):
                try:
                    out.setdefault(float(q), value)
                except ValueError:
                    continue
        return out or None


def _parse_labels(line: str, start: int, line_no: int) -> tuple[Labels, int]:
    """Parse the label set that opens at `line[start] == '{'`; returns the labels and the end index."""
    labels: Labels = {}
    pos = start + 1
    close = _CLOSE.match(line, pos)
    if close:
        return labels, close.end()
    match = _PAIR.match
    while True:
        m = match(line, pos)
        if m is None:
            raise ExpositionError("malformed label set", line_no)
        name, value, sep = m.group(1, 2, 3)
        if "\\" in value:
            value = _UNESCAPE.sub(lambda e: "\n" if e.group(1) == "n" else e.group(1), value)
        labels[name] = value
        pos = m.end()
        if sep == "}":
            return labels, pos


def _parse_value(text: str, line_no: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise ExpositionError(f"value {text[:40]!r} is not a number", line_no) from None


def _checked_text(text: str | bytes, max_bytes: int, max_lines: int) -> str:
    """The text, decoded, after the size checks that need no parsing; raises `ExpositionError`."""
    if isinstance(text, bytes):
        if len(text) > max_bytes:
            raise ExpositionError(
                f"exposition too large: {len(text)} bytes > {max_bytes}-byte cap", kind="too_large"
            )
        lines = text.count(b"\n")
        if lines > max_lines:
            raise ExpositionError(
                f"exposition too long: {lines} lines > {max_lines}-line cap", kind="too_large"
            )
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ExpositionError(f"not UTF-8 text (byte {exc.start})") from None
    else:
        if len(text) > max_bytes:  # characters >= bytes/4; close enough for a guard, exact for ASCII
            raise ExpositionError(
                f"exposition too large: {len(text)} characters > {max_bytes}-byte cap", kind="too_large"
            )
        lines = text.count("\n")
        if lines > max_lines:
            raise ExpositionError(
                f"exposition too long: {lines} lines > {max_lines}-line cap", kind="too_large"
            )
    if "\x00" in text:
        raise ExpositionError("exposition contains NUL bytes (binary data, not text)")
    return text


def parse(
    text: str | bytes,
    max_bytes: int = DEFAULT_MAX_BYTES,
    only: frozenset[str] | None = None,
    max_lines: int = DEFAULT_MAX_LINES,
) -> Exposition:
    """Parse exposition text; raise `ExpositionError` on anything malformed or oversized.

    `only`: sample names to keep. Lines of other samples are skipped right after their name is read,
    unvalidated — the poller passes the names its collector reads once the engine is known, which
    skips ~80% of a vLLM exposition (`_created` series, histograms nobody reads). An exposition with
    none of those names is an error, so a login page or the wrong port never reads as an idle server.
    """
    out = Exposition()
    for _ in _parse_steps(_checked_text(text, max_bytes, max_lines), out, only):
        pass
    return out


async def parse_async(
    text: str | bytes,
    max_bytes: int = DEFAULT_MAX_BYTES,
    only: frozenset[str] | None = None,
    max_lines: int = DEFAULT_MAX_LINES,
    *,
    slice_s: float = 0.002,
    budget_s: float = 2.0,
) -> Exposition:
    """`parse` for the event loop: a large text is parsed in slices of about `slice_s` seconds with
    a yield to the loop between them, and abandoned with `ExpositionError` once the slices add up
    to more than `budget_s` seconds of parsing (a server cannot buy unbounded CPU with a valid but
    enormous exposition). Texts under `INLINE_BYTES` are parsed in one go, as `parse` does."""
    if len(text) <= INLINE_BYTES:
        return parse(text, max_bytes, only, max_lines)
    out = Exposition()
    # Wall clock decides when to yield (latency for the others); this thread's CPU time within our
    # own slices is what the budget counts — not the other coroutines' work between them, and not
    # time other processes had the cores.
    clock, cpu = time.perf_counter, time.thread_time
    cpu_started = cpu()
    checked = _checked_text(text, max_bytes, max_lines)
    used = cpu() - cpu_started
    await asyncio.sleep(0)
    started, cpu_started = clock(), cpu()
    for _ in _parse_steps(checked, out, only, remember=False):
        if clock() - started >= slice_s:
            used += cpu() - cpu_started
            if used > budget_s:
                raise ExpositionError(
                    f"exposition took more than {budget_s:g} CPU-s to parse "
                    f"({len(checked)} characters); refused",
                    kind="too_large",
                )
            await asyncio.sleep(0)
            started, cpu_started = clock(), cpu()
    return out


def _parse_steps(
    text: str, out: Exposition, only: frozenset[str] | None, remember: bool = True
) -> Generator[None, None, None]:
    """The parser proper: fills `out`, yielding after about every `STEP_CHARS` characters so a caller
    can interleave other work (`parse` ignores the yields, `parse_async` sleeps on them).

    `remember=False` reads the label cache but adds nothing to it (a per-parse cache stands in):
    one server's huge exposition would otherwise evict every healthy target's entries (and keep
    200,000 dicts alive)."""
    samples, types = out.samples, out.types
    line_no = 0
    step = STEP_CHARS
    # Label sets repeat within one exposition (every family of an engine shares its label set):
    # without the shared cache, a per-parse one keeps that reuse. Bounded by the line cap.
    local: dict[str, Labels] = {}
    for line_no, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip("\r")
        step -= len(line) + 16  # + per-line overhead: a million empty lines is work too
        if step <= 0:
            yield
            step = STEP_CHARS
        if not line:
            continue
        if len(line) > MAX_LINE_CHARS:
            raise ExpositionError(f"line is {len(line)} characters long", line_no)
        first = line[0]
        if first == "#":
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                kind = parts[3].strip()
                if kind not in _METRIC_TYPES:
                    raise ExpositionError(f"unknown metric type {kind[:40]!r}", line_no)
                types[parts[2]] = kind
            continue
        if first == " " or first == "\t":
            line = line.lstrip()
            if not line or line[0] == "#":
                continue
        brace = line.find("{")
        if brace == -1:
            parts = line.split()
            if not parts:
                continue  # whitespace only (\v, \f, ...): a blank line
            name = parts[0]
            if only is not None and name not in only:
                continue
            if len(parts) not in (2, 3):
                raise ExpositionError("expected `name value [timestamp]`", line_no)
            labels: Labels = {}
            value_text = parts[1]
            ts_text = parts[2] if len(parts) == 3 else None
        else:
            name = line[:brace].rstrip()
            if only is not None and name not in only:
                continue
            close = line.rfind("}")
            key = line[brace : close + 1]
            cached = _LABEL_CACHE.get(key)
            if cached is None and not remember:
                cached = local.get(key)
            if cached is not None:
                labels = cached
            else:
                labels, end = _parse_labels(line, brace, line_no)
                if end != close + 1:
                    raise ExpositionError("unexpected text after the label set", line_no)
                if remember:
                    if len(_LABEL_CACHE) >= _CACHE_MAX:
                        _LABEL_CACHE.clear()
                    _LABEL_CACHE[key] = labels
                else:
                    local[key] = labels
            parts = line[close + 1 :].split()
            if len(parts) not in (1, 2):
                raise ExpositionError("expected a value (and optional timestamp) after the labels", line_no)
            value_text = parts[0]
            ts_text = parts[1] if len(parts) == 2 else None
        if name not in _NAME_CACHE:
            if not _NAME.match(name):
                raise ExpositionError(f"invalid metric name {name[:60]!r}", line_no)
            if len(_NAME_CACHE) >= _CACHE_MAX:
                _NAME_CACHE.clear()
            _NAME_CACHE.add(name)
        try:
            value = float(value_text)
        except ValueError:
            raise ExpositionError(f"value {value_text[:40]!r} is not a number", line_no) from None
        if ts_text is not None:
            _parse_value(ts_text, line_no)  # validated, not used: we timestamp at receipt
        rows = samples.get(name)
        if rows is None:
            samples[name] = [(labels, value)]
        else:
            rows.append((labels, value))
    out.lines = line_no
    if only is not None and not samples:
        raise ExpositionError("none of the expected metric names are in the exposition")


def iter_families(expo: Exposition) -> Iterator[tuple[str, str]]:
    """(name, declared type) for every `# TYPE` line: used by engine detection and `probe`."""
    yield from expo.types.items()
