"""The exposition parser: real captures, agreement with prometheus_client, and hostile input."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from daemon import prom
from tests.daemon.helpers import FIXTURES

CAPTURES = sorted(p.name for p in FIXTURES.glob("*.prom"))


def _ours(text: str) -> list[tuple[str, tuple[tuple[str, str], ...], float]]:
    expo = prom.parse(text)
    return sorted((n, tuple(sorted(l.items())), v) for n, rows in expo.samples.items() for l, v in rows)


def _reference(text: str) -> list[tuple[str, tuple[tuple[str, str], ...], float]]:
    # prometheus_client appends `_total` to counter samples that lack it (Triton's); the names on
    # the wire are what a scraper must match, so undo that before comparing.
    def wire(name: str) -> str:
        return name if name in text or not name.endswith("_total") else name[: -len("_total")]

    return sorted(
        (wire(s.name), tuple(sorted(s.labels.items())), float(s.value))
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    )


@pytest.mark.parametrize("name", CAPTURES)
def test_every_capture_parses_like_prometheus_client(name: str) -> None:
    text = (FIXTURES / name).read_text()
    ours = _ours(text)
    assert ours == _reference(text)
    assert len(ours) == sum(1 for l in text.splitlines() if l and not l.startswith("#"))


def test_capture_values_are_read_exactly() -> None:
    expo = prom.parse((FIXTURES / "vllm-0.32.0-cpu.prom").read_text())
    assert expo.total("vllm:prefix_cache_hits_total") == 2304.0
    assert expo.total("vllm:prefix_cache_queries_total") == 3828.0
    assert expo.types["vllm:time_to_first_token_seconds"] == "histogram"
    buckets = expo.buckets("vllm:time_to_first_token_seconds")
    assert buckets is not None and buckets[math.inf] == 3.0
    info = expo.series("vllm:cache_config_info")[0][0]
    assert info["enable_prefix_caching"] == "True" and info["block_size"] == "128"
    triton = prom.parse((FIXTURES / "triton-2.51.0-cpu-core.prom").read_text())
    assert triton.total("nv_inference_request_success") == 20
    assert triton.total("nv_inference_request_failure", exclude={"reason": ("CANCELED",)}) == 0


def test_label_escapes_commas_braces_and_timestamps() -> None:
    text = 'm{a="x\\"y",b="c\\\\d",c="1,2}",d="line\\nbreak"} 3.5 1700000000000\nplain 7\nn{} +Inf\n'
    expo = prom.parse(text)
    labels, value = expo.series("m")[0]
    assert labels == {"a": 'x"y', "b": "c\\d", "c": "1,2}", "d": "line\nbreak"} and value == 3.5
    assert expo.total("plain") == 7 and math.isinf(expo.series("n")[0][1])
    assert _ours(text) == _reference(text)


def test_nan_is_skipped_by_totals_but_kept_as_a_sample() -> None:
    expo = prom.parse('g{x="1"} NaN\ng{x="2"} 4\n')
    assert len(expo.series("g")) == 2 and expo.total("g") == 4.0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('metric{a="1" 2\n', "line 1: malformed label set"),
        ("ok 1\nmetric{a=1} 2\n", "line 2: malformed label set"),
        ("metric abc\n", "not a number"),
        ("9metric 1\n", "invalid metric name"),
        ("metric 1 2 3\n", "expected `name value"),
        ('metric{a="1"} 1 2 3\n', "expected a value"),
        ("# TYPE metric bogus\n", "unknown metric type"),
        ("metric 1\x00\n", "NUL"),
        ('m{a="1"}junk 1\n', "line 1"),
    ],
)
def test_malformed_input_names_the_line_and_reason(text: str, fragment: str) -> None:
    with pytest.raises(prom.ExpositionError) as err:
        prom.parse(text)
    assert fragment in str(err.value)


def test_size_cap_is_checked_before_parsing() -> None:
    with pytest.raises(prom.ExpositionError, match="exposition too large: 4000 bytes > 1000-byte cap"):
        prom.parse(b"m 1\n" * 1000, max_bytes=1000)
    with pytest.raises(prom.ExpositionError, match="too large: 40 characters > 10-byte cap"):
        prom.parse("m 1\n" * 10, max_bytes=10)
    with pytest.raises(prom.ExpositionError, match="not UTF-8"):
        prom.parse(b"m 1\n\xff\xfe\n")


@pytest.mark.parametrize("as_bytes", [True, False])
def test_line_cap_is_checked_before_parsing(as_bytes: bool) -> None:
    text = "m 1\n" * 101
    with pytest.raises(prom.ExpositionError, match="exposition too long: 101 lines > 100-line cap"):
        prom.parse(text.encode() if as_bytes else text, max_lines=100)
    assert prom.parse(text, max_lines=101).total("m") == 101


def _big_exposition(lines: int = 40_000) -> bytes:
    return b"".join(
        b'vllm:num_requests_running{model_name="m%d",engine="%d"} %d\n' % (i, i % 7, i % 3)
        for i in range(lines)
    )


async def test_parse_async_yields_to_the_loop_and_agrees_with_parse() -> None:
    import asyncio

    body = _big_exposition()
    assert len(body) > prom.INLINE_BYTES
    ticks = 0
    parsing = True

    async def ticker() -> None:
        nonlocal ticks
        while parsing:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    ticks = 0
    expo = await prom.parse_async(body, slice_s=0.0)  # yield at every step: deterministic
    parsing = False
    await task
    # A one-go parse would let the ticker run zero times; sliced, it ran between the steps.
    assert ticks >= len(body) // prom.STEP_CHARS // 2
    assert expo.samples == prom.parse(body).samples


async def test_parse_async_stops_at_its_cpu_budget() -> None:
    with pytest.raises(prom.ExpositionError, match="CPU-s to parse"):
        await prom.parse_async(_big_exposition(), slice_s=0.0, budget_s=0.0)


def test_a_very_long_line_is_refused_not_scanned() -> None:
    with pytest.raises(prom.ExpositionError, match="characters long"):
        prom.parse('m{a="' + "x" * (prom.MAX_LINE_CHARS + 10) + '"} 1\n')


# --- property-based: whatever arrives, the result is an Exposition or an ExpositionError ---------

_ALPHABET = st.sampled_from(list('abc_:{}="\\,.# \t\n+-eE0123456789NaInf') + ["\x00", "é", "\r"])


def render(expo: prom.Exposition) -> str:
    """An Exposition back to canonical text (no TYPE lines, `repr` floats, escaped label values)."""
    out = []
    for name, rows in expo.samples.items():
        for labels, value in rows:
            out.append(_render(name, labels, value))
    return "\n".join(out) + "\n" if out else ""


def _key(name: str, labels: dict[str, str], value: float) -> tuple[str, tuple[tuple[str, str], ...], str]:
    return name, tuple(sorted(labels.items())), repr(value)  # repr: NaN compares equal to NaN


def assert_parses_or_fails_clearly(data: str | bytes) -> None:
    """Whatever arrives: an `ExpositionError` whose message names a line inside the text (or a whole-
    text reason), or an Exposition that is right — every name and label name valid, and the same
    samples as prometheus_client reads from its canonical rendering (so nothing was half-parsed)."""
    text_lines = (data.count(b"\n") if isinstance(data, bytes) else data.count("\n")) + 1
    try:
        expo = prom.parse(data, max_bytes=64 * 1024)
    except prom.ExpositionError as exc:
        message = str(exc)
        assert message and "\n" not in message
        if exc.line_no is not None:
            assert 1 <= exc.line_no <= text_lines and message.startswith(f"line {exc.line_no}: ")
        return
    ours = []
    for name, rows in expo.samples.items():
        assert prom._NAME.match(name), name
        for labels, value in rows:
            assert isinstance(value, float)
            assert all(re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", k) for k in labels), labels
            ours.append(_key(name, labels, value))
    canonical = render(expo)
    # prometheus_client refuses `__`-prefixed label names (reserved by Prometheus for its own use);
    # the exposition format itself allows them, and so do we.
    if not any(k.startswith("__") for _, labels, _ in ours for k, _ in labels):
        reference = [
            _key(s.name, s.labels, float(s.value))
            for fam in text_string_to_metric_families(canonical)
            for s in fam.samples
        ]
        assert sorted(ours) == sorted(reference)
    again = prom.parse(canonical)
    assert sorted(_key(n, l, v) for n, rows in again.samples.items() for l, v in rows) == sorted(ours)
    if isinstance(data, str):
        # Where prometheus_client also accepts the original text, it must read the same samples.
        try:
            reference = _reference(data)
        except Exception:  # noqa: BLE001 - it refuses more than we do (and raises assorted types)
            return
        assert sorted(ours) == sorted((n, labels, repr(v)) for n, labels, v in reference)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=_ALPHABET, max_size=400))
def test_garbage_text_never_crashes(text: str) -> None:
    assert_parses_or_fails_clearly(text)


def test_exotic_whitespace_lines_are_blank() -> None:
    assert prom.parse(b"\x0b\nm 1\n\x0c\n").total("m") == 1


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_garbage_bytes_never_crash(data: bytes) -> None:
    assert_parses_or_fails_clearly(data)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(CAPTURES), st.floats(min_value=0, max_value=1))
def test_truncated_captures_never_crash(name: str, cut: float) -> None:
    text = (FIXTURES / name).read_text()
    assert_parses_or_fails_clearly(text[: int(len(text) * cut)])


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=5000), st.sampled_from(["\\", '"', "{", "=", ",", 'a="b",']))
def test_adversarial_repetition_stays_fast_and_safe(n: int, piece: str) -> None:
    # Patterns that make backtracking regexes explode: the parser must stay linear and just answer.
    assert_parses_or_fails_clearly('m{a="' + piece * n + "\n")
    assert_parses_or_fails_clearly("m{" + piece * n + "} 1\n")


_name = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,20}", fullmatch=True)
_label_value = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)
_series = st.tuples(
    _name,
    st.dictionaries(
        st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,8}", fullmatch=True).filter(
            lambda k: not k.startswith("__")
        ),  # reserved: see above
        _label_value,
        max_size=4,
    ),
    st.floats(allow_nan=False, width=64),
)


def _render(name: str, labels: dict[str, str], value: float) -> str:
    esc = {k: v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for k, v in labels.items()}
    inner = ",".join(f'{k}="{v}"' for k, v in esc.items())
    return f"{name}{{{inner}}} {value!r}" if labels else f"{name} {value!r}"


@settings(max_examples=100, deadline=None)
@given(st.lists(_series, max_size=30))
def test_rendered_series_round_trip(series: list[tuple[str, dict[str, str], float]]) -> None:
    text = "\n".join(_render(*s) for s in series) + "\n"
    expo = prom.parse(text)
    got = [(n, l, v) for n, rows in expo.samples.items() for l, v in rows]
    assert sorted(map(repr, got)) == sorted(map(repr, [(n, l, v) for n, l, v in series]))
    # ... and prometheus_client reads the same text the same way.
    reference = [
        (s.name, s.labels, float(s.value))
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    ]
    assert sorted(map(repr, got)) == sorted(map(repr, reference))


_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([-5.0, -1e-9, 0.0, 1.0, 1.5, 1e308])
)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(CAPTURES), st.data())
def test_captures_with_hostile_values_round_trip(name: str, data: st.DataObject) -> None:
    """A real capture with some of its values replaced by NaN, ±Inf, negatives or huge numbers:
    parsed exactly like prometheus_client parses it."""
    lines = (FIXTURES / name).read_text().splitlines()
    numeric = [i for i, line in enumerate(lines) if line and not line.startswith("#")]
    for i in data.draw(st.lists(st.sampled_from(numeric), max_size=20, unique=True)):
        head = lines[i].rsplit(" ", 1)[0]
        lines[i] = f"{head} {data.draw(_values)!r}".replace(" inf", " +Inf").replace(" nan", " NaN")
    text = "\n".join(lines) + "\n"
    assert sorted(map(repr, _ours(text))) == sorted(map(repr, _reference(text)))
